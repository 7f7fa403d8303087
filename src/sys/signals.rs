//! Signals kubesu waits for synchronously: blocked from the start of a run,
//! received with sigtimedwait, so the supervising parent sleeps in the kernel
//! and no handler ever runs in root code.

use std::time::Duration;

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{
    SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask,
};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Forwarded to the command's process group.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Not forwarded: asks the supervising kubesu to end its run as at its
/// maximum run time. `kubesu revoke --end` sends it; only root can signal
/// kubesu (sudo relays it from its caller, who may end its own run anyway).
pub const END_RUN: Signal = Signal::SIGALRM;

fn watched() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set.add(END_RUN);
    set
}

/// Block the forwarded signals and SIGCHLD in this thread (threads started
/// later inherit the mask), with default dispositions: a caller that ignored
/// SIGCHLD or SIGHUP (nohup) would otherwise make them vanish.
pub fn block() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in watched().iter() {
        // SAFETY: installing the default disposition is always sound.
        let _ = unsafe { sigaction(s, &default) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&watched()), None);
}

/// Wait for one watched signal, at most `timeout` (forever when `None`).
/// `None` when the time ran out.
pub fn wait(timeout: Option<Duration>) -> Option<Signal> {
    let set = watched();
    loop {
        let ts = timeout.map(|t| nix::libc::timespec {
            tv_sec: t.as_secs() as nix::libc::time_t,
            tv_nsec: t.subsec_nanos() as nix::libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: a valid signal set and an optional valid timespec.
        let n = unsafe { nix::libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
        if n > 0 {
            return Signal::try_from(n).ok();
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::EINTR => continue,
            _ => return None,
        }
    }
}

/// A watched signal already pending, without waiting.
pub fn pending() -> Option<Signal> {
    wait(Some(Duration::ZERO)).filter(|s| *s != Signal::SIGCHLD)
}

/// The watched signals, and `also`, as a descriptor to poll beside others
/// (the terminal relay waits on its terminals and on signals at once). It
/// takes the same pending signals `wait` would. `also` is blocked here.
#[derive(Debug)]
pub struct SignalDescriptor(SignalFd);

impl SignalDescriptor {
    pub fn open(also: &[Signal]) -> nix::Result<SignalDescriptor> {
        let mut set = watched();
        let mut extra = SigSet::empty();
        for s in also {
            set.add(*s);
            extra.add(*s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&extra), None)?;
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        SignalFd::with_flags(&set, flags).map(SignalDescriptor)
    }

    /// One pending signal, without waiting.
    pub fn take(&self) -> Option<Signal> {
        loop {
            match self.0.read_signal() {
                Ok(Some(info)) => return Signal::try_from(info.ssi_signo as i32).ok(),
                Err(nix::errno::Errno::EINTR) => continue,
                _ => return None,
            }
        }
    }
}

impl AsFd for SignalDescriptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Signals that would end or stop kubesu while the terminal is raw, though
/// kubesu neither forwards nor expects them: ignored while it relays, so
/// that the terminal is always put back (and the run revoked). A stop
/// signal from the terminal cannot come: in raw mode ^Z goes to the pty.
/// (SIGALRM is END_RUN: watched, so taken like the forwarded ones.)
const FATAL_WHILE_RELAYING: [Signal; 8] = [
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Dispositions changed for a while; the old ones come back on drop.
#[derive(Debug)]
pub struct Ignored(Vec<(Signal, SigAction)>);

/// Ignore `FATAL_WHILE_RELAYING` until the result is dropped.
pub fn ignore_while_relaying() -> Ignored {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    Ignored(
        FATAL_WHILE_RELAYING
            .iter()
            // SAFETY: ignoring a signal is always sound.
            .filter_map(|s| unsafe { sigaction(*s, &ignore) }.ok().map(|old| (*s, old)))
            .collect(),
    )
}

impl Drop for Ignored {
    fn drop(&mut self) {
        for (signal, old) in &self.0 {
            // SAFETY: putting back a disposition sigaction returned.
            let _ = unsafe { sigaction(*signal, old) };
        }
    }
}
