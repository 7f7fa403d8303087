//! The audit record of a run, written when it starts and again, completed,
//! when it has ended and been revoked; with --json also the run's last line
//! on stderr. Its field names are an interface: platforms and the tests
//! parse them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::policy::identity::RunIdentity;
use crate::run::authorize::Caller;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Start,
    End,
}

#[derive(Debug, Serialize)]
pub struct Record {
    pub event: Event,
    #[serde(flatten)]
    pub identity: RunIdentity,
    pub caller: Caller,
    pub user: String,
    pub uid: u32,
    pub team: Option<String>,
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub host: String,
    pub pid: u32,
    #[serde(flatten)]
    pub end: Option<End>,
}

/// What the end record adds.
#[derive(Debug, Serialize)]
pub struct End {
    /// The command's status, or kubesu's own when it failed.
    pub status: i32,
    /// Why a run that was refused or could not be prepared ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub revocation: Option<Revocation>,
}

/// How a prepared run ended: its token, its revocation, its phases.
#[derive(Debug, Serialize)]
pub struct Revocation {
    pub token_expires: String,
    pub token_renewals: u32,
    /// The `jti` of every token minted for the run, where the cluster puts
    /// one: what its audit log calls the credential.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<String>,
    pub revoked: bool,
    pub phases_ms: BTreeMap<&'static str, f64>,
    /// Only when the command ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals_forwarded: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stragglers_ended: Option<bool>,
    /// Processes of the tree still alive after SIGKILL and its wait.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub processes_left: bool,
    /// What the command's tree was held by: its cgroup, or its process
    /// group (hosts without cgroup v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracked_by: Option<crate::sys::tree::Tracking>,
    /// Why kubesu ended the command (`max_run_time`, `revoked`), when it
    /// did not end by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<crate::run::supervise::Ending>,
    /// The drivers' logs kept before revocation deleted their pods
    /// ([spark] driver_logs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub driver_logs: Vec<PathBuf>,
    /// What went wrong without failing the run (a log that could not be
    /// kept), one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Record {
    /// The start record completed into the end record.
    pub fn ended(&mut self, end: End) {
        self.event = Event::End;
        self.end = Some(end);
    }
}

/// Phase timings, in order, for `-v`, `--json` and the audit record.
pub struct Clock {
    verbose: bool,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Clock {
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    pub fn done(&mut self, phase: &'static str) {
        let took = self.last.elapsed();
        self.last = Instant::now();
        if self.verbose {
            err!("kubesu: {phase}: {:.1} ms", took.as_secs_f64() * 1000.0);
        }
        self.phases.push((phase, took));
    }

    /// Milliseconds per phase, to the microsecond.
    pub fn milliseconds(&self) -> BTreeMap<&'static str, f64> {
        self.phases
            .iter()
            .map(|(p, d)| (*p, (d.as_secs_f64() * 1e6).round() / 1e3))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::identity::RunId;

    fn start() -> Record {
        Record {
            event: Event::Start,
            identity: RunIdentity {
                run: RunId::parse("abcdefgh234567ab").unwrap(),
                namespace: "spark-alice".into(),
                service_account: "kubesu-alice-abcdefgh234567ab".into(),
            },
            caller: Caller {
                name: "dssuser".into(),
                uid: 1001,
                via_sudo: true,
            },
            user: "alice".into(),
            uid: 1002,
            team: None,
            program: "/usr/bin/env".into(),
            argv: vec!["true".into()],
            host: "h".into(),
            pid: 7,
            end: None,
        }
    }

    fn keys(record: &Record) -> Vec<String> {
        let value = serde_json::to_value(record).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// Platforms parse these names: they may grow, never change.
    #[test]
    fn records_keep_their_field_names() {
        let mut record = start();
        assert_eq!(
            keys(&record),
            [
                "argv",
                "caller",
                "event",
                "host",
                "namespace",
                "pid",
                "program",
                "run",
                "service_account",
                "team",
                "uid",
                "user"
            ]
        );
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["event"], "start");
        assert_eq!(json["run"], "abcdefgh234567ab");
        assert_eq!(json["team"], serde_json::Value::Null);
        assert_eq!(json["caller"]["name"], "dssuser");

        record.ended(End {
            status: 69,
            error: Some("unreachable".into()),
            revocation: None,
        });
        let with_error = keys(&record);
        assert!(with_error.contains(&"error".to_string()));
        assert!(!with_error.contains(&"revoked".to_string()));

        let mut record = start();
        let mut clock = Clock::new(false);
        clock.done("authorize");
        record.ended(End {
            status: 0,
            error: None,
            revocation: Some(Revocation {
                token_expires: "2026-01-01T00:00:00Z".into(),
                token_renewals: 0,
                token_ids: Vec::new(),
                revoked: true,
                phases_ms: clock.milliseconds(),
                signals_forwarded: Some(vec!["SIGTERM".into()]),
                stragglers_ended: Some(false),
                processes_left: true,
                tracked_by: Some(crate::sys::tree::Tracking::Cgroup),
                ended_by: Some(crate::run::supervise::Ending::MaxRunTime),
                driver_logs: vec!["/var/log/kubesu-drivers/abcdefgh234567ab.log".into()],
                warnings: vec!["a log could not be kept".into()],
            }),
        });
        let ended = keys(&record);
        for key in [
            "status",
            "token_expires",
            "token_renewals",
            "revoked",
            "phases_ms",
            "signals_forwarded",
            "stragglers_ended",
            "processes_left",
            "tracked_by",
            "ended_by",
            "driver_logs",
            "warnings",
        ] {
            assert!(ended.contains(&key.to_string()), "{key}: {ended:?}");
        }
        assert!(!ended.contains(&"error".to_string()));
        assert_eq!(serde_json::to_value(&record).unwrap()["event"], "end");
    }
}
