//! The terminal relay: when kubesu runs in a terminal, the command gets a
//! pty of kubesu's instead (see `sys::terminal` for why), and the parent
//! copies keystrokes to the pty's master and what the command shows back
//! to the terminal, while it supervises (`run::watch`). At the end it shows what is left
//! and closes the master: every copy of the slave, wherever the user's
//! processes passed it, is hung up, and root's terminal never was theirs.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::unistd::Uid;

use crate::failure::{Code, Context, Result};
use crate::run::watch::Watched;
use crate::sys::privdrop::CommandTerminal;
use crate::sys::signals::{self, Ignored};
use crate::sys::terminal::{self, Pty, RawMode, Terminal};

/// Bytes moved per read: a terminal's burst, not a file's.
const CHUNK: usize = 16 * 1024;

/// How long the last output is drained at most: a process outside the run
/// that holds the slave and writes without end must not hold kubesu.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

pub struct Relay {
    terminal: Terminal,
    master: OwnedFd,
    /// Given to the command by `command_terminal`.
    slave: Option<OwnedFd>,
    /// Raw mode and ignored signals, from the first wait until the end.
    relaying: Option<(Option<RawMode>, Ignored)>,
    /// Typed, not yet taken by the pty.
    typed: Vec<u8>,
    input_open: bool,
    output_open: bool,
    master_open: bool,
}

impl Relay {
    /// A pty for the command of `user` when one of kubesu's standard
    /// streams is a terminal; `None` when none is (pipes and files are
    /// passed on as they are).
    pub fn open(user: &str, uid: Uid) -> Result<Option<Relay>> {
        let what = || {
            format!(
                "cannot set up a terminal for user {user}'s command (redirect kubesu's input and \
                 output to run it without one)"
            )
        };
        let Some(terminal) = Terminal::of_this_process().or_fail(Code::Software, what)? else {
            return Ok(None);
        };
        let Pty { master, slave } =
            Pty::open(terminal.control(), uid).or_fail(Code::Software, what)?;
        Ok(Some(Relay {
            input_open: terminal.input.is_some(),
            terminal,
            master,
            slave: Some(slave),
            relaying: None,
            typed: Vec::new(),
            output_open: true,
            master_open: true,
        }))
    }

    /// The slave, for the command (once): the parent keeps no copy, so the
    /// master reads end of file when the command's tree has closed it.
    pub fn command_terminal(&mut self) -> Option<CommandTerminal> {
        Some(CommandTerminal {
            slave: self.slave.take()?,
            streams: self.terminal.streams,
        })
    }

    /// Show what the command left on the pty, put the terminal back and
    /// close the master. Called once the command's tree is gone; dropping
    /// the relay without it does the same but the showing.
    pub fn finish(mut self) {
        let until = Instant::now() + DRAIN_LIMIT;
        while self.master_open && Instant::now() < until && self.show_output() {}
    }

    /// Raw mode from the first wait on, not before: kubesu's own messages
    /// before the command starts are printed in the terminal's usual mode.
    fn start_relaying(&mut self) {
        if self.relaying.is_none() {
            let raw = match &self.terminal.input {
                // The mode fails to change only on a terminal that went away.
                Some(input) => RawMode::enter(input.as_fd()).ok(),
                None => None,
            };
            self.relaying = Some((raw, signals::ignore_while_relaying()));
        }
    }

    /// One read from the master, shown on the terminal. False when nothing
    /// was there (or the pty is closed).
    fn show_output(&mut self) -> bool {
        let mut buf = [0u8; CHUNK];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                // Every slave closed: nothing will come any more.
                self.master_open = false;
                false
            }
            Ok(n) => {
                if self.output_open && write_all(&self.terminal.output, &buf[..n]).is_err() {
                    // The terminal is gone: keep reading, so the command
                    // never blocks on a full pty.
                    self.output_open = false;
                }
                true
            }
            Err(Errno::EINTR) => true,
            Err(_) => false,
        }
    }

    /// Read what was typed, when the pty has taken all typed before.
    fn read_typed(&mut self) {
        let Some(input) = &self.terminal.input else {
            return;
        };
        let mut buf = [0u8; CHUNK];
        match nix::unistd::read(input, &mut buf) {
            Ok(n @ 1..) => self.typed.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            // Hung up: the command gets its SIGHUP from kubesu's.
            _ => self.input_open = false,
        }
    }

    /// The terminal's input, while it is open and the pty has taken all
    /// typed before.
    fn watched_input(&self) -> Option<&OwnedFd> {
        self.terminal
            .input
            .as_ref()
            .filter(|_| self.input_open && self.typed.is_empty())
    }

    fn pass_typed(&mut self) {
        match nix::unistd::write(&self.master, &self.typed) {
            Ok(n) => {
                self.typed.drain(..n);
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.typed.clear(),
        }
    }
}

impl Watched for Relay {
    fn prepare(&mut self) {
        self.start_relaying();
    }

    fn take(&mut self, signal: Signal) -> bool {
        if signal != Signal::SIGWINCH {
            return false;
        }
        let _ = terminal::copy_window_size(self.terminal.control(), self.master.as_fd());
        true
    }

    fn watch<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        if self.master_open {
            let mut events = PollFlags::POLLIN;
            events.set(PollFlags::POLLOUT, !self.typed.is_empty());
            fds.push(PollFd::new(self.master.as_fd(), events));
        }
        if let Some(input) = self.watched_input() {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
        }
    }

    fn ready(&mut self, events: &[PollFlags]) {
        // In `watch`'s order; nothing changed the state since.
        let mut events = events.iter().copied();
        let master = match self.master_open {
            true => events.next().unwrap_or(PollFlags::empty()),
            false => PollFlags::empty(),
        };
        let input = match self.watched_input() {
            Some(_) => events.next().unwrap_or(PollFlags::empty()),
            None => PollFlags::empty(),
        };
        let ready = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if master.intersects(ready) {
            self.show_output();
        }
        if master.contains(PollFlags::POLLOUT) {
            self.pass_typed();
        }
        if input.intersects(ready) {
            self.read_typed();
        }
        if !self.master_open {
            self.typed.clear();
        }
    }
}

fn write_all(to: &OwnedFd, mut bytes: &[u8]) -> nix::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(to, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
