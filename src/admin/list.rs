//! `kubesu list`: the leases in the cluster, with whether their run is alive.

use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::admin::liveness::{self, Here};
use crate::admin::{self, Audience, human_duration};
use crate::cli::OutputArgs;
use crate::cluster::lease;
use crate::failure::Result;

pub fn list(config_path: Option<&Path>, args: &OutputArgs) -> Result<i32> {
    let session = admin::open(config_path, "list", Audience::AdministratorsAndCallers)?;
    let mut leases = session
        .runtime
        .block_on(lease::list(&session.cluster, None))?;
    // A sudo caller sees the runs it started, an administrator all.
    if session.caller.via_sudo {
        leases.retain(|l| l.holder.caller == session.caller.name);
    }
    leases.sort_by(|a, b| a.created.cmp(&b.created));
    let here = Here::now();
    let seconds_since = |t: &str| {
        t.parse::<Timestamp>()
            .map(|t| here.now.duration_since(t).as_secs())
            .ok()
    };
    if args.json {
        let rows: Vec<_> = leases
            .iter()
            .map(|l| {
                let mut row = json!(l);
                row["state"] = json!(liveness::judge(&l.holder, &here));
                row
            })
            .collect();
        out!("{}", json!(rows));
        return Ok(0);
    }
    out!(
        "{:<16}  {:<12}  {:<24}  {:>7}  {:>8}  {:<12}  {:>7}  STATE",
        "RUN",
        "USER",
        "NAMESPACE",
        "AGE",
        "EXPIRES",
        "HOST",
        "PID"
    );
    for l in &leases {
        let age = seconds_since(&l.created).map_or("?".into(), human_duration);
        let left = seconds_since(&l.holder.expires).map_or("?".into(), |s| human_duration(-s));
        out!(
            "{:<16}  {:<12}  {:<24}  {:>7}  {:>8}  {:<12}  {:>7}  {:?}",
            l.run,
            l.holder.user,
            l.namespace,
            age,
            left,
            l.holder.host,
            l.holder.pid,
            liveness::judge(&l.holder, &here)
        );
    }
    Ok(0)
}
