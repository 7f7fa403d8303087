//! The command's process tree, held by what kubesu owns and never by a bare
//! id: the run's cgroup where the host has cgroup v2 (`sys::cgroup`), and
//! always the command's own process, which kubesu leaves unreaped until
//! the tree is ended. While it is a zombie of kubesu's, its pid, which is
//! also the id of the process group and session it leads, cannot be taken
//! by anyone else: a signal to that group reaches the command's processes
//! only. Without a cgroup, the tree is that group and every orphan
//! re-parented to kubesu (a subreaper).

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::cgroup::Cgroup;
use super::process;

/// What kubesu tracked the tree by, for the run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tracking {
    Cgroup,
    ProcessGroup,
}

pub struct Tree {
    leader: Pid,
    cgroup: Option<Cgroup>,
}

impl Tree {
    /// The tree of `leader`, a child of kubesu's leading its own session,
    /// in `cgroup` if it joined one.
    pub fn new(leader: Pid, cgroup: Option<Cgroup>) -> Tree {
        Tree { leader, cgroup }
    }

    pub fn tracking(&self) -> Tracking {
        match self.cgroup {
            Some(_) => Tracking::Cgroup,
            None => Tracking::ProcessGroup,
        }
    }

    /// The command's status once it has exited. It stays unreaped until
    /// `release`; the children that ended before it are reaped now.
    pub fn command_exited(&self) -> Option<i32> {
        process::reap_until(self.leader)
    }

    /// A signal for the command's process group, as a terminal would send
    /// it (safe: the group's id is pinned by the unreaped command).
    pub fn forward(&self, signal: Signal) {
        let _ = killpg(self.leader, signal);
    }

    /// `signal` to every process of the tree.
    pub fn signal(&self, signal: Signal) {
        match &self.cgroup {
            Some(cgroup) if signal == Signal::SIGKILL => cgroup.kill(),
            Some(cgroup) => cgroup.signal(signal),
            None => {
                let _ = killpg(self.leader, signal);
                // kubesu's children are safe to signal: not reaped yet.
                for child in process::children() {
                    let _ = kill(child, signal);
                }
            }
        }
    }

    /// Whether a process of the tree is still alive. Zombies do not count:
    /// one held by a process outside the run (its tracer, say) must not
    /// keep kubesu waiting.
    pub fn alive(&self) -> bool {
        process::reap_all_but(self.leader);
        match &self.cgroup {
            Some(cgroup) => cgroup.populated(),
            None => process::any_alive_in(self.leader),
        }
    }

    /// Reap the command and remove the cgroup. The tree must have been
    /// ended; a cgroup something is still alive in stays, with the reason.
    pub fn release(self) -> Result<(), String> {
        process::reap_all_but(self.leader);
        process::reap(self.leader);
        match self.cgroup {
            Some(cgroup) => {
                let dir = cgroup.dir();
                cgroup
                    .remove()
                    .map_err(|e| format!("cannot remove the run's cgroup {}: {e}", dir.display()))
            }
            None => Ok(()),
        }
    }
}
