//! What the command gets instead of kubesu's own standard streams, and the
//! supervising parent's sleep while it relays them: a pty for those that
//! are terminals (`run::relay`), pipes for its other output
//! (`run::output`). One poll on kubesu's signals and every relayed stream,
//! so that bytes are copied as they come, signals handled at once, and the
//! parent is otherwise idle in the kernel.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use nix::unistd::Uid;

use crate::failure::{Code, Context, Result};
use crate::run::output::Output;
use crate::run::relay::Relay;
use crate::run::supervise::Sleep;
use crate::sys::privdrop::CommandStreams;
use crate::sys::signals::{self, SignalDescriptor};

/// Everything kubesu relays for one run, and its signals.
pub struct Relays {
    watch: Watch,
    terminal: Option<Relay>,
    output: Output,
}

impl Relays {
    /// For the command of `user`, before it starts.
    pub fn open(user: &str, uid: Uid) -> Result<Relays> {
        let terminal = Relay::open(user, uid)?;
        let output = Output::open(user)?;
        let watch = Watch::open().or_fail(Code::Software, || {
            format!("cannot watch signals while relaying user {user}'s command")
        })?;
        Ok(Relays {
            watch,
            terminal,
            output,
        })
    }

    /// The command's terminal and other streams (once).
    pub fn for_command(&mut self) -> CommandStreams {
        let terminal = self.terminal.as_mut().and_then(Relay::command_terminal);
        CommandStreams {
            terminal,
            ..self.output.command_streams()
        }
    }

    /// Where supervise sleeps: relaying.
    pub fn sleep(&mut self) -> Watching<'_> {
        let mut relays: Vec<&mut dyn Watched> = vec![&mut self.output];
        if let Some(terminal) = self.terminal.as_mut() {
            relays.push(terminal);
        }
        self.watch.over(relays)
    }

    /// Once the command's tree is gone: its last output shown, the
    /// terminal put back, the pty hung up and the pipes closed.
    pub fn finish(self) {
        if let Some(terminal) = self.terminal {
            terminal.finish();
        }
        self.output.finish();
    }
}

/// A relay the parent drives while it sleeps.
pub trait Watched {
    /// Called at the start of every sleep.
    fn prepare(&mut self) {}
    /// A signal meant for this relay (SIGWINCH for the terminal): true
    /// when it took it, and supervise never sees it.
    fn take(&mut self, _signal: Signal) -> bool {
        false
    }
    /// The descriptors it waits on, each with its events, added to `fds`.
    /// Only descriptors with something to wait for: a hung-up one reports
    /// POLLHUP whatever is asked, and would spin the loop.
    fn watch<'a>(&'a self, fds: &mut Vec<PollFd<'a>>);
    /// What happened to the descriptors `watch` added, in its order.
    fn ready(&mut self, events: &[PollFlags]);
}

/// kubesu's signals as a descriptor, to poll beside the relays'.
pub struct Watch {
    signals: SignalDescriptor,
}

impl Watch {
    /// The watched signals and SIGWINCH (which the terminal relay takes).
    pub fn open() -> nix::Result<Watch> {
        SignalDescriptor::open(&[Signal::SIGWINCH]).map(|signals| Watch { signals })
    }

    /// A sleep that drives `relays` meanwhile.
    pub fn over<'a>(&'a self, relays: Vec<&'a mut dyn Watched>) -> Watching<'a> {
        Watching {
            signals: &self.signals,
            relays,
        }
    }
}

pub struct Watching<'a> {
    signals: &'a SignalDescriptor,
    relays: Vec<&'a mut dyn Watched>,
}

impl Sleep for Watching<'_> {
    fn until_signal(&mut self, timeout: Option<Duration>) -> Option<Signal> {
        for relay in &mut self.relays {
            relay.prepare();
        }
        let until = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(signal) = self.signals.take() {
                if !self.relays.iter_mut().any(|r| r.take(signal)) && signal != Signal::SIGWINCH {
                    return Some(signal);
                }
                continue;
            }
            let left = until.map(|u| u.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return None;
            }
            let wait = left.map_or(PollTimeout::NONE, |l| {
                PollTimeout::try_from(l).unwrap_or(PollTimeout::MAX)
            });
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let mut counts = Vec::with_capacity(self.relays.len());
            for relay in &self.relays {
                let before = fds.len();
                relay.watch(&mut fds);
                counts.push(fds.len() - before);
            }
            match poll(&mut fds, wait) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                // Cannot happen with valid descriptors; wait as supervise
                // would rather than spin.
                Err(_) => return signals::wait(left),
            }
            let events: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            let mut at = 1;
            for (relay, count) in self.relays.iter_mut().zip(counts) {
                relay.ready(&events[at..at + count]);
                at += count;
            }
        }
    }
}
