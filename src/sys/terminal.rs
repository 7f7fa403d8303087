//! The terminal kubesu was started from, and the pseudo-terminal its command
//! gets instead. A terminal handed to the user's command stays the user's:
//! a process of theirs that outlives the run, or one elsewhere on the host
//! the command passed the descriptor to (SCM_RIGHTS), reads what root types
//! at the prompt afterwards. So, as sudo's `use_pty` does, the command gets
//! a pty kubesu owns, kubesu relays between the two (`run::relay`), and
//! closing the master at the end hangs up every copy of the slave.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::pty::{PtyMaster, grantpt, posix_openpt, unlockpt};
use nix::sys::stat::Mode;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::Uid;

/// Which of kubesu's standard streams are terminals: those, and only
/// those, the command gets as the pty's slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Streams {
    pub fn of_this_process() -> Streams {
        Streams {
            stdin: std::io::stdin().is_terminal(),
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }

    pub fn any(self) -> bool {
        self.stdin || self.stdout || self.stderr
    }
}

/// kubesu's own terminal, through descriptors of its own: `input` when
/// stdin is a terminal, `output` for what the command shows (stdout, else
/// stderr, else stdin's terminal: the echo of what is typed goes there).
#[derive(Debug)]
pub struct Terminal {
    pub streams: Streams,
    pub input: Option<OwnedFd>,
    pub output: OwnedFd,
}

impl Terminal {
    /// `None` when no standard stream is a terminal.
    pub fn of_this_process() -> std::io::Result<Option<Terminal>> {
        let streams = Streams::of_this_process();
        let input = match streams.stdin {
            true => Some(std::io::stdin().as_fd().try_clone_to_owned()?),
            false => None,
        };
        let output = if streams.stdout {
            std::io::stdout().as_fd().try_clone_to_owned()?
        } else if streams.stderr {
            std::io::stderr().as_fd().try_clone_to_owned()?
        } else if let Some(input) = &input {
            input.try_clone()?
        } else {
            return Ok(None);
        };
        Ok(Some(Terminal {
            streams,
            input,
            output,
        }))
    }

    /// The descriptor its mode and window size are read from and set on.
    pub fn control(&self) -> BorrowedFd<'_> {
        self.input.as_ref().map_or(self.output.as_fd(), AsFd::as_fd)
    }
}

/// A new pseudo-terminal: the master stays with kubesu, the slave goes to
/// the command. Both close on exec: the command gets the slave only as the
/// streams kubesu dups it onto.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    /// With the mode and window size of `like` (so the command sees the
    /// terminal the caller has), the slave owned by `owner` as after a
    /// login (programs that reopen their terminal by name need that).
    pub fn open(like: BorrowedFd<'_>, owner: Uid) -> nix::Result<Pty> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let slave = open_peer(&master)?;
        let master = OwnedFd::from(master);
        if let Ok(mode) = tcgetattr(like) {
            tcsetattr(&slave, SetArg::TCSANOW, &mode)?;
        }
        // A terminal without a size (some consoles) leaves the pty's at 0x0.
        let _ = copy_window_size(like, master.as_fd());
        nix::unistd::fchown(&slave, Some(owner), None)?;
        nix::sys::stat::fchmod(&slave, Mode::from_bits_truncate(0o620))?;
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_RDWR | OFlag::O_NONBLOCK),
        )?;
        Ok(Pty { master, slave })
    }
}

/// The slave of `master`, opened through the master itself (TIOCGPTPEER,
/// Linux 4.13) rather than by a name in /dev/pts.
fn open_peer(master: &PtyMaster) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let fd = unsafe {
        nix::libc::ioctl(
            master.as_raw_fd(),
            nix::libc::TIOCGPTPEER,
            flags.bits() as nix::libc::c_int,
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Give `to` the window size of `from` (at start, and on SIGWINCH).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize, TIOCSWINSZ reads one.
    Errno::result(unsafe { nix::libc::ioctl(from.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut size) })?;
    // SAFETY: as above.
    Errno::result(unsafe { nix::libc::ioctl(to.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) })
        .map(drop)
}

/// In the forked child, after setsid and before exec: make the slave at
/// `slave` the session's controlling terminal, with the child's process
/// group in the foreground, so that a shell gets job control. Only
/// async-signal-safe calls.
pub fn take_as_controlling(slave: RawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int (0: do not steal from another session).
    Errno::result(unsafe { nix::libc::ioctl(slave, nix::libc::TIOCSCTTY, 0) })?;
    // SAFETY: the descriptor stays open for this call (the parent's copy
    // lives until spawn returns, and this runs before exec).
    let slave = unsafe { BorrowedFd::borrow_raw(slave) };
    nix::unistd::tcsetpgrp(slave, nix::unistd::getpgrp())
}

/// The terminal in raw mode while kubesu relays: keystrokes (^C, ^Z, ^D
/// included) pass to the pty, whose line discipline acts on them for the
/// command. The mode is put back when this is dropped, whatever ended the
/// relay.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    pub fn enter(terminal: BorrowedFd<'_>) -> nix::Result<RawMode> {
        let fd = terminal.try_clone_to_owned().map_err(|_| Errno::EBADF)?;
        let saved = tcgetattr(&fd)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // TCSADRAIN, not TCSAFLUSH: what was typed ahead still reaches the command.
        tcsetattr(&fd, SetArg::TCSADRAIN, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, SetArg::TCSADRAIN, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::LocalFlags;

    fn mode(fd: BorrowedFd<'_>) -> (u32, u32, u32, u32, Vec<u8>) {
        let t = tcgetattr(fd).unwrap();
        (
            t.input_flags.bits() as u32,
            t.output_flags.bits() as u32,
            t.control_flags.bits() as u32,
            t.local_flags.bits() as u32,
            t.control_chars.to_vec(),
        )
    }

    /// A terminal for the tests: a pty of their own, with a size.
    fn test_terminal() -> Pty {
        let pty = Pty::open(std::io::stdin().as_fd(), Uid::current()).unwrap();
        let size = nix::libc::winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        unsafe { nix::libc::ioctl(pty.master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
        pty
    }

    fn size_of(fd: BorrowedFd<'_>) -> (u16, u16) {
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills a winsize.
        unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut size) };
        (size.ws_row, size.ws_col)
    }

    #[test]
    fn a_pty_is_close_on_exec_nonblocking_and_takes_the_callers_mode_and_size() {
        let caller = test_terminal();
        let pty = Pty::open(caller.slave.as_fd(), Uid::current()).unwrap();
        for fd in [&pty.master, &pty.slave] {
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & nix::libc::FD_CLOEXEC, 0);
        }
        let status = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(status & nix::libc::O_NONBLOCK, 0);
        assert!(pty.slave.as_fd().is_terminal());
        assert_eq!(mode(pty.slave.as_fd()), mode(caller.slave.as_fd()));
        assert_eq!(size_of(pty.slave.as_fd()), (33, 101));

        let resized = Pty::open(caller.slave.as_fd(), Uid::current()).unwrap();
        let size = nix::libc::winsize {
            ws_row: 50,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        unsafe { nix::libc::ioctl(caller.master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
        copy_window_size(caller.slave.as_fd(), resized.master.as_fd()).unwrap();
        assert_eq!(size_of(resized.slave.as_fd()), (50, 200));
    }

    #[test]
    fn raw_mode_is_entered_and_the_mode_before_comes_back_when_dropped() {
        let terminal = test_terminal();
        let before = mode(terminal.slave.as_fd());
        let raw = RawMode::enter(terminal.slave.as_fd()).unwrap();
        let during = tcgetattr(&terminal.slave).unwrap();
        assert!(!during.local_flags.contains(LocalFlags::ICANON));
        assert!(!during.local_flags.contains(LocalFlags::ECHO));
        assert!(!during.local_flags.contains(LocalFlags::ISIG));
        drop(raw);
        assert_eq!(mode(terminal.slave.as_fd()), before);
    }

    #[test]
    fn closing_the_master_hangs_up_every_copy_of_the_slave() {
        let pty = test_terminal();
        let copy = pty.slave.try_clone().unwrap();
        drop(pty);
        let mut buf = [0u8; 16];
        // A hung-up terminal reads end of file, and refuses writes.
        assert_eq!(nix::unistd::read(&copy, &mut buf), Ok(0));
        assert_eq!(nix::unistd::write(&copy, b"x"), Err(Errno::EIO));
    }
}
