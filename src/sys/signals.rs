//! Signals kubesu waits for synchronously: blocked from the start of a run,
//! received with sigtimedwait, so the supervising parent sleeps in the kernel
//! and no handler ever runs in root code.

use std::time::Duration;

use nix::sys::signal::{
    SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask,
};

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
