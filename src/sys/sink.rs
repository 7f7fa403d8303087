//! kubesu's own standard output and error as the command's output reaches
//! them (`run::output`): written without ever blocking, because the
//! supervising parent must not sleep in a write while it supervises. A
//! platform that stops reading must not keep kubesu from forwarding
//! signals, renewing the token, ending the run at its deadline or
//! revoking; the command is held back instead, as when it wrote to the
//! platform's pipe itself.

use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{SFlag, fstat};

/// Whether the last byte that reached kubesu's stderr from the command was
/// not a newline: kubesu's own next line then starts with one.
static STDERR_MID_LINE: AtomicBool = AtomicBool::new(false);

/// How long one of kubesu's own lines waits for a stderr that takes
/// nothing (a platform that stopped reading): then the line is dropped,
/// and later ones are tried without waiting until one goes through. A
/// warning is not worth holding revocation for; the audit destinations
/// have the record anyway.
const OWN_LINE_WAIT: Duration = Duration::from_secs(5);

/// kubesu's stderr as a sink for its own lines; None for a terminal (or
/// what cannot be one), written plainly.
static OWN_STDERR: OnceLock<Option<Sink>> = OnceLock::new();

/// Whether the last own line found stderr full for all of `OWN_LINE_WAIT`.
static STDERR_STALLED: AtomicBool = AtomicBool::new(false);

/// One line of kubesu's own on its stderr (what `err!` writes): a line of
/// its own that the command cannot have begun (the run record above all),
/// after the command's unfinished last line if there is one. Never blocks
/// for longer than `OWN_LINE_WAIT`.
pub fn own_line(text: &str) {
    let mut line = Vec::with_capacity(text.len() + 2);
    if STDERR_MID_LINE.swap(false, Ordering::Relaxed) {
        line.push(b'\n');
    }
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    let sink = OWN_STDERR.get_or_init(|| {
        let stderr = std::io::stderr();
        if stderr.is_terminal() {
            return None;
        }
        Sink::of(stderr.as_fd(), false).ok()
    });
    match sink {
        Some(sink) => {
            let unwritten = sink.write_waiting(&line, OWN_LINE_WAIT, &STDERR_STALLED);
            if unwritten > 0 && unwritten < line.len() {
                STDERR_MID_LINE.store(true, Ordering::Relaxed);
            }
        }
        None => {
            let _ = std::io::stderr().write_all(&line);
        }
    }
}

/// How a sink is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// The caller's pipe, reopened with O_NONBLOCK: a description of
    /// kubesu's own.
    Pipe,
    /// One that never blocks for long (a file, /dev/null).
    Write,
    /// A socket: `send` with MSG_DONTWAIT, per call.
    Send,
    /// The caller's own pipe, which could not be reopened: at most
    /// `PIPE_BUF` bytes per write, which a pipe that polled writable takes
    /// without blocking.
    Atomic,
}

/// One of kubesu's output streams, for the relay.
#[derive(Debug)]
pub struct Sink {
    fd: OwnedFd,
    how: How,
    /// kubesu's stderr (alone or shared with stdout): what `own_line`
    /// looks after.
    stderr: bool,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Bytes(usize),
    /// Nothing fits now: wait for the sink to poll writable.
    Full,
    /// Nobody reads any more (EPIPE), or the stream failed for good.
    Closed,
}

impl Sink {
    /// `stream` (kubesu's stdout or stderr, which must not be a terminal)
    /// as a sink. A pipe's O_NONBLOCK flag belongs to its open file
    /// description, shared with the caller and whoever else holds it:
    /// rather than set it there, the pipe is opened anew through /proc,
    /// with a description (and flag) of kubesu's own.
    pub fn of(stream: BorrowedFd<'_>, stderr: bool) -> std::io::Result<Sink> {
        let kind = fstat(stream)
            .map(|s| SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits()))
            .unwrap_or(SFlag::empty());
        let how = if kind == SFlag::S_IFIFO {
            let reopened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", stream.as_raw_fd()));
            if let Ok(file) = reopened {
                return Ok(Sink {
                    fd: file.into(),
                    how: How::Pipe,
                    stderr,
                });
            }
            // ENXIO: nobody reads it (writes fail at once); or no /proc.
            How::Atomic
        } else if kind == SFlag::S_IFSOCK {
            How::Send
        } else {
            How::Write
        };
        Ok(Sink {
            fd: stream.try_clone_to_owned()?,
            how,
            stderr,
        })
    }

    /// Write what fits now, never waiting.
    pub fn write(&self, bytes: &[u8]) -> Written {
        let bytes = match self.how {
            How::Atomic => &bytes[..bytes.len().min(nix::libc::PIPE_BUF)],
            How::Pipe | How::Write | How::Send => bytes,
        };
        loop {
            let written = match self.how {
                How::Send => send(
                    self.fd.as_raw_fd(),
                    bytes,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                ),
                How::Pipe | How::Write | How::Atomic => nix::unistd::write(&self.fd, bytes),
            };
            return match written {
                Ok(n) => {
                    if self.stderr && n > 0 {
                        STDERR_MID_LINE.store(bytes[n - 1] != b'\n', Ordering::Relaxed);
                    }
                    Written::Bytes(n)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => Written::Full,
                Err(_) => Written::Closed,
            };
        }
    }
}

impl Sink {
    /// Write all of `bytes`, waiting for the sink to take them for up to
    /// `wait` in all, or not at all when `stalled` says the last wait was
    /// in vain. Returns how many bytes were not written. Polled before each
    /// write: an `Atomic` sink's write blocks unless the pipe has room.
    fn write_waiting(&self, mut bytes: &[u8], wait: Duration, stalled: &AtomicBool) -> usize {
        let deadline = Instant::now() + wait;
        while !bytes.is_empty() {
            let left = if stalled.load(Ordering::Relaxed) {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    stalled.store(true, Ordering::Relaxed);
                    break;
                }
                Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
            match self.write(bytes) {
                Written::Bytes(n) => {
                    bytes = &bytes[n..];
                    stalled.store(false, Ordering::Relaxed);
                }
                Written::Full => {}
                Written::Closed => break,
            }
        }
        bytes.len()
    }
}

/// What a splice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    Bytes(usize),
    /// The pipe read from is empty, and nobody writes to it any more.
    EndOfFile,
    /// Either the pipe read from is empty or this sink is full.
    Wait,
    Closed,
    /// Not between these two (the kernel's say): copy instead.
    Refused,
}

impl Sink {
    /// Whether `splice_from` can serve: a pipe (of kubesu's own
    /// description, so non-blocking) whose bytes kubesu need not see. On
    /// stderr kubesu must know the last byte (`own_line`).
    pub fn splices(&self) -> bool {
        self.how == How::Pipe && !self.stderr
    }

    /// Move up to `len` bytes from the pipe `from` to this sink, pipe to
    /// pipe, without copying them through kubesu, never waiting on either.
    pub fn splice_from(&self, from: BorrowedFd<'_>, len: usize) -> Spliced {
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        loop {
            return match splice(from, None, &self.fd, None, len, flags) {
                Ok(0) => Spliced::EndOfFile,
                Ok(n) => Spliced::Bytes(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => Spliced::Wait,
                Err(Errno::EPIPE) => Spliced::Closed,
                Err(_) => Spliced::Refused,
            };
        }
    }
}

impl AsFd for Sink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether two descriptors name the same file: kubesu's stdout and stderr
/// as one pipe (`2>&1`), which the command then gets as one pipe too, so
/// that the order of its lines is kept.
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (fstat(a), fstat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Bytes waiting in a pipe to be read (FIONREAD).
pub fn unread(pipe: BorrowedFd<'_>) -> usize {
    let mut count: nix::libc::c_int = 0;
    // SAFETY: FIONREAD stores an int through the pointer.
    let done = unsafe { nix::libc::ioctl(pipe.as_raw_fd(), nix::libc::FIONREAD, &mut count) };
    if done < 0 {
        return 0;
    }
    usize::try_from(count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Close-on-exec, as kubesu's own pipes are: a test in another thread
    /// that spawns a process must not inherit an end and keep it open.
    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[test]
    fn a_full_pipe_is_reported_full_not_waited_on_and_a_closed_one_closed() {
        let (reader, writer) = pipe();
        let sink = Sink::of(writer.as_fd(), false).unwrap();
        // The caller's description stays blocking.
        let flags = nix::fcntl::fcntl(&writer, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & nix::libc::O_NONBLOCK, 0);
        let chunk = vec![b'x'; 1 << 20];
        let mut total = 0;
        loop {
            match sink.write(&chunk) {
                Written::Bytes(n) => total += n,
                Written::Full => break,
                Written::Closed => panic!("closed"),
            }
        }
        assert_eq!(unread(reader.as_fd()), total);
        drop(reader);
        assert_eq!(sink.write(b"x"), Written::Closed);
    }

    #[test]
    fn a_splice_moves_pipe_to_pipe_and_says_when_to_wait_and_when_it_ended() {
        let (from, into) = pipe();
        let (reader, writer) = pipe();
        let sink = Sink::of(writer.as_fd(), false).unwrap();
        assert!(sink.splices());
        assert!(!Sink::of(writer.as_fd(), true).unwrap().splices());
        nix::unistd::write(&into, b"hello").unwrap();
        assert_eq!(sink.splice_from(from.as_fd(), 1 << 20), Spliced::Bytes(5));
        assert_eq!(sink.splice_from(from.as_fd(), 1 << 20), Spliced::Wait);
        let mut buf = [0u8; 16];
        assert_eq!(nix::unistd::read(&reader, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        drop(into);
        assert_eq!(sink.splice_from(from.as_fd(), 1 << 20), Spliced::EndOfFile);
    }

    #[test]
    fn an_own_line_waits_a_bounded_time_then_no_more_until_stderr_takes_again() {
        let (reader, writer) = pipe();
        let sink = Sink::of(writer.as_fd(), false).unwrap();
        while let Written::Bytes(_) = sink.write(&[b'x'; 4096]) {}
        let stalled = AtomicBool::new(false);
        let wait = Duration::from_millis(200);
        let started = Instant::now();
        assert_eq!(sink.write_waiting(b"line\n", wait, &stalled), 5);
        // poll counts whole milliseconds, rounded down.
        assert!(started.elapsed() >= wait - Duration::from_millis(2));
        assert!(stalled.load(Ordering::Relaxed));
        let started = Instant::now();
        assert_eq!(sink.write_waiting(b"line\n", wait, &stalled), 5);
        assert!(started.elapsed() < wait, "waited again on a stalled stderr");
        let mut buf = vec![0u8; 1 << 20];
        let _ = nix::unistd::read(&reader, &mut buf);
        stalled.store(false, Ordering::Relaxed);
        assert_eq!(sink.write_waiting(b"line\n", wait, &stalled), 0);
    }

    #[test]
    fn a_socket_is_written_without_waiting() {
        let (a, _b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let sink = Sink::of(a.as_fd(), false).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        while let Written::Bytes(_) = sink.write(&chunk) {}
        assert_eq!(sink.write(&chunk), Written::Full);
    }

    #[test]
    fn one_pipe_is_the_same_file_and_two_are_not() {
        let (r1, w1) = pipe();
        let (_r2, w2) = pipe();
        assert!(same_file(w1.as_fd(), r1.as_fd()));
        assert!(!same_file(w1.as_fd(), w2.as_fd()));
    }
}
