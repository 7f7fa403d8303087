//! The operating system, wrapped: who is calling, accounts, the privilege
//! drop, signals and processes. The only place for `unsafe` and libc.

pub mod account;
pub mod cgroup;
pub mod fs;
pub mod limits;
pub mod privdrop;
pub mod process;
pub mod signals;
pub mod sink;
pub mod terminal;
pub mod tree;

use nix::unistd::{Uid, getresuid};

/// Who started kubesu, as the kernel and sudo tell it.
#[derive(Debug, Clone)]
pub struct Invoker {
    pub real_uid: Uid,
    pub effective_uid: Uid,
    /// Set when kubesu came through sudo: the calling user.
    pub sudo: Option<SudoCaller>,
}

#[derive(Debug, Clone)]
pub struct SudoCaller {
    pub user: String,
    pub uid: Uid,
}

impl Invoker {
    /// sudo sets SUDO_USER and SUDO_UID after its own environment filtering,
    /// so a caller that came through sudo cannot remove or forge them; a
    /// root shell that sets them only restricts itself.
    pub fn current() -> Invoker {
        let ids = getresuid().ok();
        let sudo = match (std::env::var("SUDO_USER"), std::env::var("SUDO_UID")) {
            (Ok(user), Ok(uid)) => uid.parse().ok().map(|uid| SudoCaller {
                user,
                uid: Uid::from_raw(uid),
            }),
            _ => None,
        };
        Invoker {
            real_uid: ids.map_or(Uid::current(), |r| r.real),
            effective_uid: ids.map_or(Uid::effective(), |r| r.effective),
            sudo,
        }
    }

    /// Through sudo, or any hint of it: a sudo caller never gets to pick
    /// root-only options such as --config.
    pub fn came_through_sudo(&self) -> bool {
        self.sudo.is_some() || std::env::var_os("SUDO_UID").is_some()
    }
}

/// Close every descriptor above stderr that kubesu inherited, before it
/// opens any of its own: nothing the caller left open reaches root code or
/// the command.
pub fn close_inherited_descriptors() {
    // SAFETY: close_range only closes descriptors; none above 2 is in use yet.
    let closed = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed != 0 {
        // Kernels before 5.9: close one by one up to the limit.
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft.min(1 << 20));
        for fd in 3..limit as i32 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The kernel's boot id: with a pid and its start time it names a process
/// uniquely across reboots and pid reuse.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// For tests that need root (they run with `--features root-tests`): say so
/// and fail, rather than fail on a confusing permission error.
#[cfg(test)]
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root: run `cargo test --features root-tests` as root"
    );
}
