//! Resource limits: a caller's limits are the command's, not kubesu's.
//!
//! A caller could set a file-size limit so that the audit file's append
//! fails (or SIGXFSZ kills kubesu mid-revocation), a descriptor limit so
//! that kubesu cannot reach the API server, or a CPU limit that ends the
//! supervisor. So kubesu raises each soft limit to its hard limit before it
//! does anything, and hands the caller's soft limits back to the command
//! just before exec. A hard limit the caller lowered stays: raising it needs
//! CAP_SYS_RESOURCE, which root may not have; then the audit reports the
//! failure and, with `[audit] required`, the run does not start.

use std::sync::OnceLock;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The limits a caller can use against kubesu.
const LIFTED: [Resource; 6] = [
    Resource::RLIMIT_FSIZE,
    Resource::RLIMIT_NOFILE,
    Resource::RLIMIT_CPU,
    Resource::RLIMIT_NPROC,
    Resource::RLIMIT_AS,
    Resource::RLIMIT_DATA,
];

/// (resource, the caller's soft limit, the hard limit).
pub type CallerLimits = Vec<(Resource, u64, u64)>;

static CALLERS: OnceLock<CallerLimits> = OnceLock::new();

/// Raise kubesu's soft limits to the hard ones, remembering the caller's,
/// and ignore SIGXFSZ: a write past a limit fails with EFBIG, which kubesu
/// reports, instead of killing it. Call first thing, once.
pub fn lift() {
    let callers = LIFTED
        .iter()
        .filter_map(|&resource| {
            let (soft, hard) = getrlimit(resource).ok()?;
            if soft != hard {
                let _ = setrlimit(resource, hard, hard);
            }
            Some((resource, soft, hard))
        })
        .collect();
    let _ = CALLERS.set(callers);
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { sigaction(Signal::SIGXFSZ, &ignore) };
}

/// The caller's limits, for the command (empty if `lift` never ran).
pub fn callers() -> CallerLimits {
    CALLERS.get().cloned().unwrap_or_default()
}

/// In the child before exec (async-signal-safe: one system call each): the
/// caller's soft limits back. SIGXFSZ is reset with the other signals.
pub fn restore(limits: &[(Resource, u64, u64)]) {
    for &(resource, soft, hard) in limits {
        let _ = setrlimit(resource, soft, hard);
    }
}
