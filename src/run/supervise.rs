//! The supervising parent: root, small and idle. It sleeps in one poll on
//! its signals and the streams it relays (`run::watch`), forwards
//! signals to the command's process group, and when the command ends, ends
//! what is left of its tree (TERM, a grace period, KILL) and reaps it all.
//! The tree is held by its cgroup and the unreaped command (`sys::tree`),
//! never by an id someone else could have taken; and the wait after KILL is
//! bounded, so that nothing of the user's keeps the run from being revoked.
//! At the run's deadline (`[cluster] max_run_time`), or when `kubesu revoke
//! --end` asks, it ends the command itself, the same way.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::sys::signals;
use crate::sys::tree::{Tracking, Tree};

/// How the command ended, and which signals kubesu passed on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The command's status as a shell reports it (128+N for signal N).
    pub status: i32,
    pub forwarded: Vec<String>,
    /// Processes of the tree still running after the command exited, that
    /// kubesu had to end.
    pub stragglers_ended: bool,
    /// Processes of the tree still alive after KILL and its wait (in
    /// uninterruptible sleep, say): the run is revoked anyway.
    pub processes_left: bool,
    /// What the tree was held by.
    pub tracked_by: Tracking,
    /// Why kubesu ended the command, when the command did not end by itself.
    pub ended_by: Option<Ending>,
}

/// Why kubesu ended a run's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// `[cluster] max_run_time` passed.
    MaxRunTime,
    /// `kubesu revoke --end` asked.
    Revoked,
}

/// The status of a run kubesu ended, as timeout(1) exits.
pub const ENDED_STATUS: i32 = 124;

/// Something the parent does at a given time while the command runs (the
/// token renewal): between two of them it sleeps.
pub trait Chore {
    fn due(&self) -> Instant;
    fn run(&mut self);
}

/// Where the parent sleeps until the next signal or timeout.
pub trait Sleep {
    /// A watched signal, or `None` once `timeout` passed (never, if `None`).
    fn until_signal(&mut self, timeout: Option<Duration>) -> Option<Signal>;
}

/// Time the rest of the tree gets between TERM and KILL.
const GRACE: Duration = Duration::from_secs(5);

/// How long kubesu waits for KILL to take effect before it revokes anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Wait for the command (the leader of its own session) to exit, or the
/// deadline to pass, then end its remaining tree. Signals must have been
/// blocked before the fork.
pub fn supervise(
    tree: &Tree,
    mut chore: Option<&mut dyn Chore>,
    deadline: Option<Instant>,
    sleep: &mut dyn Sleep,
) -> Outcome {
    let mut forwarded = Vec::new();
    let mut ended_by = None;
    let status = loop {
        let next = chore
            .as_ref()
            .map(|c| c.due())
            .into_iter()
            .chain(deadline)
            .min();
        let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
        match sleep.until_signal(timeout) {
            Some(Signal::SIGCHLD) => {
                if let Some(status) = tree.command_exited() {
                    break status;
                }
            }
            Some(signals::END_RUN) => {
                ended_by = Some(Ending::Revoked);
                break ENDED_STATUS;
            }
            Some(signal) => {
                tree.forward(signal);
                forwarded.push(signal.as_str().to_string());
            }
            // No renewal after the deadline: the tree is ended below.
            None if deadline.is_some_and(|d| d <= Instant::now()) => {
                ended_by = Some(Ending::MaxRunTime);
                break ENDED_STATUS;
            }
            None => {
                if let Some(chore) = chore.as_deref_mut()
                    && chore.due() <= Instant::now()
                {
                    chore.run();
                }
            }
        }
    };
    let ended = end_tree(tree, sleep);
    Outcome {
        status,
        forwarded,
        stragglers_ended: ended.stragglers && ended_by.is_none(),
        processes_left: ended.left,
        tracked_by: tree.tracking(),
        ended_by,
    }
}

struct Ended {
    /// Something was left when the command ended.
    stragglers: bool,
    /// Something is still alive after KILL.
    left: bool,
}

/// TERM what is left, wait up to the grace period, then KILL and wait a
/// bounded time for it to take effect.
fn end_tree(tree: &Tree, sleep: &mut dyn Sleep) -> Ended {
    if !tree.alive() {
        return Ended {
            stragglers: false,
            left: false,
        };
    }
    tree.signal(Signal::SIGTERM);
    let ended = |left| Ended {
        stragglers: true,
        left,
    };
    if wait_for_end(tree, sleep, GRACE, None) {
        return ended(false);
    }
    ended(!wait_for_end(tree, sleep, KILL_WAIT, Some(Signal::SIGKILL)))
}

/// Whether the tree ended within `limit`, sending `signal` again each time
/// round: a process forked since the last one gets it too.
fn wait_for_end(
    tree: &Tree,
    sleep: &mut dyn Sleep,
    limit: Duration,
    signal: Option<Signal>,
) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(signal) = signal {
            tree.signal(signal);
        }
        if !tree.alive() {
            return true;
        }
        // Woken early by SIGCHLD; other signals are dropped: the command
        // is already gone, the rest is being ended anyway.
        sleep.until_signal(Some(left.min(Duration::from_millis(100))));
    }
    !tree.alive()
}
