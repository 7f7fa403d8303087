//! The start shared by the administrative modes (gc, list, revoke): root,
//! the config, an event loop and kubesu's own connection to the cluster.

pub mod check;
pub mod gc;
pub mod list;
pub mod liveness;
pub mod rbac;
pub mod revoke;

use std::path::Path;

use crate::cluster::Cluster;
use crate::failure::{Failure, Result};
use crate::policy::config::{self, Config};
use crate::run::authorize::{self, Caller};
use crate::sys::Invoker;

pub struct Session {
    pub config: Config,
    pub caller: Caller,
    pub runtime: tokio::runtime::Runtime,
    pub cluster: Cluster,
}

/// Who may use an administrative mode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Root in a shell only.
    Administrators,
    /// Also the configured sudo callers (for their own runs).
    AdministratorsAndCallers,
}

pub fn open(config_path: Option<&Path>, mode: &str, audience: Audience) -> Result<Session> {
    let invoker = Invoker::current();
    authorize::check_invoker(&invoker)?;
    let config = config::load(config::chosen(config_path, invoker.came_through_sudo())?)?;
    let caller = authorize::caller(&config, &invoker)?;
    if caller.via_sudo && audience == Audience::Administrators {
        return Err(Failure::denied(format!(
            "`kubesu {mode}` is for administrators in a root shell, not for sudo caller {}",
            caller.name
        )));
    }
    let (runtime, cluster) = Cluster::open(&config)?;
    Ok(Session {
        config,
        caller,
        runtime,
        cluster,
    })
}

/// "3m12s", "2h05m", "4d03h": an age or a time left, for tables.
pub fn human_duration(seconds: i64) -> String {
    let (sign, s) = if seconds < 0 {
        ("-", -seconds)
    } else {
        ("", seconds)
    };
    match s {
        0..60 => format!("{sign}{s}s"),
        60..3600 => format!("{sign}{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{sign}{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{sign}{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_like_kubectl_ages() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(7500), "2h05m");
        assert_eq!(human_duration(4 * 86400 + 3 * 3600), "4d03h");
        assert_eq!(human_duration(-90), "-1m30s");
    }
}
