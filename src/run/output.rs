//! The command's output, relayed. Handed kubesu's own stdout and stderr
//! (the platform's pipes), the command could keep them past the run: a
//! process it left behind, or passed them to, would append a forged run
//! record after kubesu's own (`--json`), or hold the pipes open so that the
//! platform never reads end of file. So where kubesu's stdout or stderr is
//! not a terminal (a terminal gets a pty: `run::relay`), the command gets a
//! pipe of kubesu's instead, and the parent copies it to its own stream
//! while it supervises. When the command's tree is gone, kubesu takes what
//! the pipes hold and closes them: nothing written later reaches the
//! platform, and the platform's pipes are held by kubesu alone, until it
//! exits. The run record then comes last, on a line of its own.
//!
//! A platform that stops reading holds the command back, as before: kubesu
//! reads from a pipe only what it could pass on, and never waits in a
//! write (`sys::sink`). A platform that closes its end ends the command the
//! way a closed pipe does: kubesu closes the command's pipe too.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::failure::{Code, Context, Result};
use crate::run::watch::Watched;
use crate::sys::privdrop::CommandStreams;
use crate::sys::sink::{self, Sink, Spliced, Written};
use crate::sys::terminal::Streams;

/// Bytes moved per read: big enough that 1 GiB is few system calls.
const CHUNK: usize = 256 * 1024;

/// The pipe the command writes to: large, so that a command that writes
/// in bursts rarely waits for the relay.
const PIPE_SIZE: nix::libc::c_int = 1024 * 1024;

/// How long the platform may take nothing of the run's last output before
/// kubesu gives up on it: it must still revoke and exit.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// The command's non-terminal output streams, as kubesu relays them.
pub struct Output {
    relayed: Vec<Relayed>,
    /// For the command, until `command_streams` takes them.
    for_command: Option<CommandStreams>,
}

/// One pipe from the command to one of kubesu's streams (or to both, when
/// they are one file).
struct Relayed {
    /// The pipe's read end; `None` at end of file, or once closed.
    from: Option<OwnedFd>,
    to: Sink,
    /// Read and not yet written: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Moved pipe to pipe by splice, never through `buf`: where `to` is a
    /// pipe, and not stderr (see `Sink::splices`).
    splice: bool,
    /// The last splice waited on `to`, not on `from`.
    to_full: bool,
}

impl Output {
    /// Pipes for those of the command's stdout and stderr where kubesu's
    /// own are not terminals (one pipe for both when they are one file);
    /// and for its stdin, when kubesu's stdin is not a terminal but one of
    /// its output streams (a socket read and written, say), /dev/null: the
    /// command must not get the platform's output through its input.
    pub fn open(user: &str) -> Result<Output> {
        let what = || format!("cannot set up the output of user {user}'s command");
        let terminals = Streams::of_this_process();
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let mut relayed = Vec::new();
        let mut streams = CommandStreams::default();
        match (terminals.stdout, terminals.stderr) {
            (false, false) if sink::same_file(stdout.as_fd(), stderr.as_fd()) => {
                let (relay, write) =
                    Relayed::open(Sink::of(stdout.as_fd(), true)).or_fail(Code::Software, what)?;
                streams.stderr = Some(write.try_clone().or_fail(Code::Software, what)?);
                streams.stdout = Some(write);
                relayed.push(relay);
            }
            (out_terminal, err_terminal) => {
                if !out_terminal {
                    let (relay, write) = Relayed::open(Sink::of(stdout.as_fd(), false))
                        .or_fail(Code::Software, what)?;
                    streams.stdout = Some(write);
                    relayed.push(relay);
                }
                if !err_terminal {
                    let (relay, write) = Relayed::open(Sink::of(stderr.as_fd(), true))
                        .or_fail(Code::Software, what)?;
                    streams.stderr = Some(write);
                    relayed.push(relay);
                }
            }
        }
        let stdin = std::io::stdin();
        let input_is_output = [terminals.stdout, terminals.stderr]
            .into_iter()
            .zip([stdout.as_fd(), stderr.as_fd()])
            .any(|(terminal, out)| !terminal && sink::same_file(stdin.as_fd(), out));
        if !terminals.stdin && input_is_output {
            let null = std::fs::File::open("/dev/null").or_fail(Code::Software, what)?;
            streams.stdin = Some(null.into());
        }
        Ok(Output {
            relayed,
            for_command: Some(streams),
        })
    }

    /// The write ends (and stdin), for the command (once): the parent keeps
    /// no copy, so a pipe reads end of file when the command's tree has
    /// closed it.
    pub fn command_streams(&mut self) -> CommandStreams {
        self.for_command.take().unwrap_or_default()
    }

    /// Once the command's tree is gone: take what the pipes hold (that much
    /// and no more: a process outside the run that still writes to them
    /// is not the run), close them, and pass it on while the platform takes
    /// it. Afterwards only kubesu writes to its stdout and stderr.
    pub fn finish(mut self) {
        for relayed in &mut self.relayed {
            relayed.take_the_rest();
        }
        let mut progress = Instant::now();
        loop {
            let mut fds: Vec<PollFd<'_>> = self
                .relayed
                .iter()
                .filter(|r| r.start < r.end)
                .map(|r| PollFd::new(r.to.as_fd(), PollFlags::POLLOUT))
                .collect();
            let left = STALL_LIMIT.saturating_sub(progress.elapsed());
            if fds.is_empty() || left.is_zero() {
                return;
            }
            let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            if matches!(poll(&mut fds, wait), Err(e) if e != Errno::EINTR) {
                return;
            }
            drop(fds);
            for relayed in &mut self.relayed {
                if relayed.pass_on() {
                    progress = Instant::now();
                }
            }
        }
    }
}

impl Relayed {
    /// A pipe for the command, relayed to `to`: the read end kubesu's,
    /// non-blocking; the write end for the command. Both close on exec.
    fn open(to: std::io::Result<Sink>) -> nix::Result<(Relayed, OwnedFd)> {
        let to = to.map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        // Above /proc/sys/fs/pipe-max-size it stays at the default.
        let _ = fcntl(&read, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        let relayed = Relayed {
            from: Some(read),
            splice: to.splices(),
            to,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            to_full: false,
        };
        Ok((relayed, write))
    }

    /// What it waits for: room for nothing but what it holds, so it reads
    /// only when all read before is written.
    fn wanted(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        if self.start < self.end || (self.to_full && self.from.is_some()) {
            return Some((self.to.as_fd(), PollFlags::POLLOUT));
        }
        self.from
            .as_ref()
            .map(|from| (from.as_fd(), PollFlags::POLLIN))
    }

    /// Read when all before is written, then write what fits.
    fn step(&mut self) {
        if self.splice && self.start == self.end {
            self.splice();
            if self.splice {
                return;
            }
        }
        if self.start == self.end
            && let Some(from) = &self.from
        {
            match nix::unistd::read(from, &mut self.buf) {
                Ok(0) => self.from = None,
                Ok(n) => (self.start, self.end) = (0, n),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => self.from = None,
            }
        }
        self.pass_on();
    }

    /// Splice until one side must be waited for.
    fn splice(&mut self) {
        let Some(from) = &self.from else {
            return;
        };
        loop {
            match self.to.splice_from(from.as_fd(), CHUNK) {
                Spliced::Bytes(_) => continue,
                // Which side to wait for: `to` if `from` holds something.
                Spliced::Wait => self.to_full = sink::unread(from.as_fd()) > 0,
                Spliced::EndOfFile | Spliced::Closed => self.from = None,
                Spliced::Refused => self.splice = false,
            }
            return;
        }
    }

    /// Write what fits of what it holds. True if anything was written.
    fn pass_on(&mut self) -> bool {
        let mut wrote = false;
        while self.start < self.end {
            match self.to.write(&self.buf[self.start..self.end]) {
                Written::Bytes(n) => {
                    self.start += n;
                    wrote |= n > 0;
                }
                Written::Full => break,
                Written::Closed => {
                    // As if the command wrote to the closed pipe itself:
                    // its next write fails with EPIPE (SIGPIPE).
                    self.from = None;
                    self.start = self.end;
                }
            }
        }
        wrote
    }

    /// Everything the pipe holds now, read into the buffer; then the pipe
    /// is closed.
    fn take_the_rest(&mut self) {
        let Some(from) = self.from.take() else {
            return;
        };
        let mut owed = sink::unread(from.as_fd());
        self.buf.drain(..self.start);
        self.buf.truncate(self.end - self.start);
        (self.start, self.end) = (0, self.buf.len());
        while owed > 0 {
            self.buf.resize(self.end + owed, 0);
            match nix::unistd::read(&from, &mut self.buf[self.end..]) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => {
                    self.end += n;
                    owed -= n;
                }
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        self.buf.truncate(self.end);
    }
}

impl Watched for Output {
    fn watch<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        for (fd, events) in self.relayed.iter().filter_map(Relayed::wanted) {
            fds.push(PollFd::new(fd, events));
        }
    }

    fn ready(&mut self, events: &[PollFlags]) {
        // In `watch`'s order; nothing changed the state since.
        let mut events = events.iter();
        for relayed in &mut self.relayed {
            if relayed.wanted().is_some() && events.next().is_some_and(|e| !e.is_empty()) {
                relayed.step();
            }
        }
    }
}
