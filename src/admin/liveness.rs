//! Is a lease still held? Decided from the lease record alone (no local
//! state): expired leases are dead everywhere; on the lease's own host, a
//! lease whose process is gone is dead too. The pid alone is not enough:
//! pids are reused, so the boot id and the process start time must match.

use k8s_openapi::jiff::Timestamp;

use crate::cluster::lease::Holder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its process runs on this host.
    Live,
    /// Not expired, held by another host: only its expiry can end it here.
    LiveElsewhere,
    Expired,
    /// This host rebooted since the lease was taken.
    Rebooted,
    /// The process is gone (or its pid now belongs to another process).
    ProcessGone,
}

impl State {
    pub fn is_live(self) -> bool {
        matches!(self, State::Live | State::LiveElsewhere)
    }
}

/// This host, as leases record it.
pub struct Here {
    pub host: String,
    pub boot_id: String,
    pub now: Timestamp,
}

impl Here {
    pub fn now() -> Here {
        Here {
            host: crate::sys::hostname(),
            boot_id: crate::sys::boot_id(),
            now: Timestamp::now(),
        }
    }
}

pub fn judge(lease: &Holder, here: &Here) -> State {
    judge_with(lease, here, |pid, start| {
        crate::sys::process::start_time(pid) == Some(start)
    })
}

fn judge_with(lease: &Holder, here: &Here, running: impl Fn(u32, u64) -> bool) -> State {
    let expired = lease
        .expires
        .parse::<Timestamp>()
        .map_or(true, |t| t <= here.now);
    if expired {
        return State::Expired;
    }
    if lease.host != here.host {
        return State::LiveElsewhere;
    }
    if lease.boot_id != here.boot_id {
        return State::Rebooted;
    }
    if lease.pid == 0 || !running(lease.pid, lease.process_start) {
        return State::ProcessGone;
    }
    State::Live
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires: &str, host: &str, boot: &str) -> Holder {
        Holder {
            user: "alice".into(),
            caller: "svc".into(),
            expires: expires.into(),
            host: host.into(),
            pid: 42,
            process_start: 1000,
            boot_id: boot.into(),
            command: "/usr/bin/id".into(),
        }
    }

    fn here() -> Here {
        Here {
            host: "h1".into(),
            boot_id: "b1".into(),
            now: "2026-01-01T12:00:00Z".parse().expect("time"),
        }
    }

    const FUTURE: &str = "2026-01-01T13:00:00Z";

    #[test]
    fn states() {
        let alive = |pid: u32, start: u64| pid == 42 && start == 1000;
        assert_eq!(
            judge_with(&lease(FUTURE, "h1", "b1"), &here(), alive),
            State::Live
        );
        assert_eq!(
            judge_with(&lease("2026-01-01T11:59:59Z", "h1", "b1"), &here(), alive),
            State::Expired
        );
        assert_eq!(
            judge_with(&lease("garbage", "h1", "b1"), &here(), alive),
            State::Expired
        );
        assert_eq!(
            judge_with(&lease(FUTURE, "h2", "b9"), &here(), alive),
            State::LiveElsewhere
        );
        assert_eq!(
            judge_with(&lease(FUTURE, "h1", "b0"), &here(), alive),
            State::Rebooted
        );
        assert_eq!(
            judge_with(&lease(FUTURE, "h1", "b1"), &here(), |_, _| false),
            State::ProcessGone
        );
    }

    #[test]
    fn a_reused_pid_is_not_the_lease_holder() {
        // Same pid, another process (another start time).
        let reused = |pid: u32, start: u64| pid == 42 && start == 5000;
        assert_eq!(
            judge_with(&lease(FUTURE, "h1", "b1"), &here(), reused),
            State::ProcessGone
        );
    }
}
