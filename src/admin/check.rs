//! `kubesu check`: is this host set up right, and does kubesu's own identity
//! hold every permission it needs? One row per check, each failure with its
//! fix; nothing is created or changed.
//!
//! Exit status: 0 when every check passes; 78 (`Code::Config`) when any
//! check of the configuration, the files or the permissions fails; otherwise
//! 69 (`Code::Unavailable`) when the only failure is that the cluster could
//! not be reached. Checks that could not run because an earlier one failed
//! are listed as "not checked" and do not change the status on their own.
//!
//! The Spark ClusterRole's existence is read with `get` on that one
//! ClusterRole (granted by `kubesu rbac` with `resourceNames`): a RoleBinding
//! to a missing ClusterRole is accepted by the API server, and every run's
//! Spark driver would then be refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

use crate::admin::rbac::{KUBESU_PERMISSIONS, Names, Permission, SPARK_PERMISSIONS};
use crate::cluster::{Cluster, api_failure};
use crate::failure::{Code, Context, Failure, Result};
use crate::policy::config::{self, Config};
use crate::run::handover;
use crate::sys::Invoker;
use crate::sys::fs;

/// The sudoers drop-in checked when present.
pub const SUDOERS_DROP_IN: &str = "/etc/sudoers.d/kubesu";
const VISUDO: &str = "/usr/sbin/visudo";
const APPLY_RBAC: &str = "as a cluster administrator, apply `kubesu rbac | kubectl apply -f -` (see `kubesu rbac --help`)";

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do about a failure; null when ok.
    pub fix: Option<String>,
    /// Why it failed: decides the exit status.
    #[serde(skip)]
    pub code: Option<Code>,
    /// Not run because an earlier check failed.
    #[serde(skip)]
    pub skipped: bool,
}

#[derive(Debug, Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.rows.push(Row {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            code: None,
            skipped: false,
        });
    }

    fn fail(&mut self, name: impl Into<String>, failure: Failure, fix: impl Into<String>) {
        self.rows.push(Row {
            name: name.into(),
            ok: false,
            detail: failure.message,
            fix: Some(fix.into()),
            code: Some(failure.code),
            skipped: false,
        });
    }

    fn record(&mut self, name: impl Into<String>, result: Result<String>, fix: impl Into<String>) {
        match result {
            Ok(detail) => self.pass(name, detail),
            Err(failure) => self.fail(name, failure, fix),
        }
    }

    fn skip(&mut self, name: impl Into<String>, why: &str) {
        self.rows.push(Row {
            name: name.into(),
            ok: false,
            detail: format!("not checked: {why}"),
            fix: Some("fix the failures above, then run `kubesu check` again".into()),
            code: None,
            skipped: true,
        });
    }
}

/// The rule the help text documents: 78 beats 69 beats 0.
pub fn exit_status(rows: &[Row]) -> i32 {
    let mut status = 0;
    for row in rows.iter().filter(|r| !r.ok && !r.skipped) {
        match row.code {
            Some(Code::Unavailable) => {
                if status == 0 {
                    status = Code::Unavailable as i32;
                }
            }
            _ => status = Code::Config as i32,
        }
    }
    status
}

/// `kubesu check [--json]`.
pub fn check(config_path: Option<&Path>, json: bool) -> Result<i32> {
    let invoker = Invoker::current();
    let path = config::chosen(config_path, invoker.came_through_sudo())?;
    let rows = checks(path, &invoker);
    let status = exit_status(&rows);
    if json {
        let report = serde_json::json!({ "ok": status == 0, "checks": rows });
        out!("{report}");
    } else {
        out_raw!("{}", table(&rows));
    }
    Ok(status)
}

/// Every check, in order.
pub fn checks(path: &Path, invoker: &Invoker) -> Vec<Row> {
    let mut report = Report::default();
    if invoker.effective_uid.is_root() {
        report.pass("root", "running as root");
    } else {
        report.fail(
            "root",
            Failure::config(format!(
                "running as uid {}: kubesu's kubeconfig and other root-only files cannot be read",
                invoker.effective_uid
            )),
            "run it as root: sudo kubesu check",
        );
    }
    let config = config_checks(&mut report, path);
    sudoers_check(&mut report, Path::new(SUDOERS_DROP_IN));
    let Some(config) = config else {
        for name in [
            "kubeconfig",
            "runtime directory",
            "commands",
            "cluster",
            "rbac",
        ] {
            report.skip(name, "the config file is unusable");
        }
        return report.rows;
    };
    let kubeconfig = &config.cluster.kubeconfig;
    report.record(
        "kubeconfig",
        kubeconfig_file(kubeconfig),
        format!(
            "chown root:root {p} && chmod 0600 {p} ([cluster] kubeconfig), in root-owned directories nobody else can write",
            p = kubeconfig.display()
        ),
    );
    let dir = &config.runtime.dir;
    report.record(
        "runtime directory",
        runtime_dir(dir),
        format!(
            "chown root:root {d} && chmod 0711 {d}, or remove it (the first run creates it), or set [runtime] dir",
            d = dir.display()
        ),
    );
    for command in &config.commands {
        let p = command.path.display();
        report.record(
            "command",
            command_file(&command.path).map(|detail| format!("{p}: {detail}")),
            format!(
                "install {p} root-owned and not writable by group or others (chown root:root, chmod go-w), \
                 in root-owned directories, or remove its [[command]] entry"
            ),
        );
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cluster_checks(&mut report, &config)),
        Err(e) => report.fail(
            "cluster",
            Failure::software(format!("cannot start kubesu's event loop: {e}")),
            "retry; report a bug if it persists",
        ),
    }
    report.rows
}

// --- files ------------------------------------------------------------------

fn config_checks(report: &mut Report, path: &Path) -> Option<Config> {
    let p = path.display();
    report.record(
        "config file",
        fs::root_file(path, "config file").map(|mode| format!("{p}: root-owned, mode {mode:04o}")),
        format!(
            "chown root:root {p} && chmod 0644 {p}, with every directory above it root-owned and not \
             writable by group or others"
        ),
    );
    // Parsed even if the file is not trusted: the administrator wants every
    // error at once, and check acts on nothing it reads.
    let parsed = fs::read_no_follow(path)
        .or_fail(Code::Config, || {
            format!("cannot read config file {}", path.display())
        })
        .and_then(|text| Config::parse(&text, path));
    match parsed {
        Ok(config) => {
            report.pass(
                "config",
                format!(
                    "parses: {} caller(s), {} command(s), namespace policy {:?} with template {:?}, \
                     ClusterRole {}",
                    config.callers.users.len(),
                    config.commands.len(),
                    config.namespace.policy,
                    config.namespace.template,
                    config.cluster.cluster_role
                ),
            );
            Some(config)
        }
        Err(mut failure) => {
            let tail = "fix the file and run `kubesu check`";
            if let Some(stripped) = failure.message.trim_end().strip_suffix(tail) {
                failure.message = stripped.trim_end().to_string();
            }
            report.fail(
                "config",
                failure,
                format!(
                    "edit {p} at the line and column shown (unknown keys are errors; see `man kubesu` and \
                     the example config)"
                ),
            );
            None
        }
    }
}

fn kubeconfig_file(path: &Path) -> Result<String> {
    let what = "kubesu's kubeconfig";
    let mode = fs::root_file(path, what)?;
    if mode & 0o077 != 0 {
        return Err(Failure::config(format!(
            "{what} {} is accessible to group or others (mode {mode:04o}): it holds kubesu's own, \
             powerful credentials",
            path.display()
        )));
    }
    Ok(format!("{}: root-owned, mode {mode:04o}", path.display()))
}

fn runtime_dir(dir: &Path) -> Result<String> {
    if handover::check_runtime_dir(dir)? {
        let mode = std::fs::symlink_metadata(dir)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or_default();
        Ok(format!("{}: root-owned, mode {mode:04o}", dir.display()))
    } else {
        Ok(format!(
            "{} does not exist yet: the first run creates it (root-owned, mode 0711)",
            dir.display()
        ))
    }
}

/// A configured command: every entry on the way to it root-owned, the
/// directories not writable by group or others, and the file it resolves to
/// a root-owned executable nobody else can write.
fn command_file(path: &Path) -> Result<String> {
    let what = "command";
    if !path.is_absolute() {
        return Err(Failure::config(format!(
            "{what} {} is not an absolute path",
            path.display()
        )));
    }
    // The configured path as written: symlinks on the way must be root's.
    let mut walked = PathBuf::from("/");
    for part in path.components().skip(1) {
        walked.push(part);
        let meta = std::fs::symlink_metadata(&walked).or_fail(Code::Config, || {
            format!(
                "{what} {}: cannot inspect {}",
                path.display(),
                walked.display()
            )
        })?;
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 {
                return Err(Failure::config(format!(
                    "{what} {}: symbolic link {} is owned by uid {}, not root",
                    path.display(),
                    walked.display(),
                    meta.uid()
                )));
            }
        } else {
            fs::check_root_owned(
                &walked,
                &meta,
                &format!("on the way to {what} {},", path.display()),
            )?;
        }
    }
    let real = std::fs::canonicalize(path).or_fail(Code::Config, || {
        format!("{what} {}: cannot resolve it", path.display())
    })?;
    fs::check_trusted_path(&real, what)?;
    let meta = std::fs::metadata(&real).or_fail(Code::Config, || {
        format!("cannot inspect {what} {}", real.display())
    })?;
    fs::check_root_owned(&real, &meta, what)?;
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(Failure::config(format!(
            "{what} {} is not an executable file",
            real.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    Ok(if real == path {
        format!("root-owned, mode {mode:04o}")
    } else {
        format!("-> {}, root-owned, mode {mode:04o}", real.display())
    })
}

fn sudoers_check(report: &mut Report, path: &Path) {
    let name = "sudoers";
    let p = path.display();
    let fix = format!(
        "chown root:root {p} && chmod 0440 {p}, then correct it until `visudo -cf {p}` passes \
         (start from the sudoers.d/kubesu example)"
    );
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.pass(
                name,
                format!("{p} is absent: no service user can call kubesu through sudo yet"),
            );
            return;
        }
        Err(e) => {
            report.fail(
                name,
                Failure::config(format!("cannot inspect {p}: {e}")),
                fix,
            );
            return;
        }
        Ok(meta) => {
            let mut problems = Vec::new();
            if !meta.is_file() {
                problems.push("is not a regular file".to_string());
            }
            if meta.uid() != 0 {
                problems.push(format!("is owned by uid {}, not root", meta.uid()));
            }
            let mode = meta.mode() & 0o7777;
            if mode != 0o440 {
                problems.push(format!("has mode {mode:04o}, not 0440"));
            }
            if !problems.is_empty() {
                let failure = Failure::config(format!("{p} {}", problems.join(", ")));
                report.fail(name, failure, fix);
                return;
            }
        }
    }
    let visudo = Command::new(VISUDO)
        .args(["-c", "-f"])
        .arg(path)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output();
    match visudo {
        Ok(out) if out.status.success() => {
            report.pass(
                name,
                format!("{p}: visudo -cf passes; root-owned, mode 0440"),
            );
        }
        Ok(out) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let failure = Failure::config(format!("`visudo -cf {p}` fails: {}", said.trim()));
            report.fail(name, failure, fix);
        }
        Err(e) => {
            let failure = Failure::config(format!("cannot run {VISUDO} to check {p}: {e}"));
            report.fail(name, failure, "install sudo (it provides visudo)");
        }
    }
}

// --- the cluster ------------------------------------------------------------

async fn cluster_checks(report: &mut Report, config: &Config) {
    let fix_connect =
        "check [cluster] kubeconfig and server in the config; start the API server if it is down";
    let cluster = match Cluster::connect(
        &config.cluster.kubeconfig,
        config.cluster.server.as_deref(),
        config.cluster.request_timeout,
    )
    .await
    {
        Ok(cluster) => cluster,
        Err(failure) => {
            report.fail("cluster", failure, fix_connect);
            report.skip("rbac", "no connection to the cluster");
            return;
        }
    };
    match cluster
        .call(
            "reading the API server's version",
            cluster.client.apiserver_version(),
        )
        .await
    {
        Ok(info) => report.pass(
            "cluster",
            format!(
                "reachable; Kubernetes {} (users get {})",
                info.git_version, cluster.server
            ),
        ),
        Err(failure) => {
            report.fail("cluster", failure, fix_connect);
            report.skip("rbac", "the cluster is unreachable");
            return;
        }
    }
    let role = config.cluster.cluster_role.as_str();
    let answers = futures::future::join_all(
        KUBESU_PERMISSIONS
            .iter()
            .map(|p| permission_row(&cluster, p, role)),
    )
    .await;
    report.rows.extend(answers);
    report.rows.push(spark_role_row(&cluster, role).await);
}

/// "rbac namespaces", "rbac clusterroles/kubesu-spark": short, the group is
/// in `kubesu rbac`'s output.
fn row_name(p: &Permission, role: &str) -> String {
    let resources = p.resources.join(",");
    match p.names {
        Names::Any => format!("rbac {resources}"),
        Names::ClusterRole => format!("rbac {resources}/{role}"),
    }
}

/// One row per rule of `kubesu rbac`: every verb on every resource asked
/// with a SelfSubjectAccessReview, cluster-wide (no namespace).
async fn permission_row(cluster: &Cluster, p: &Permission, role: &str) -> Row {
    let name = row_name(p, role);
    let pairs: Vec<_> = p.pairs().collect();
    let answers =
        futures::future::join_all(pairs.iter().map(|(r, v)| allowed(cluster, p, r, v, role))).await;
    // Per resource, in order: "get, delete on pods".
    let mut missing: Vec<(&str, Vec<&str>)> = Vec::new();
    for ((resource, verb), answer) in pairs.iter().zip(answers) {
        match answer {
            Ok(true) => {}
            Ok(false) => match missing.iter_mut().find(|(r, _)| r == resource) {
                Some((_, verbs)) => verbs.push(verb),
                None => missing.push((resource, vec![verb])),
            },
            Err(failure) => {
                return Row {
                    name,
                    ok: false,
                    detail: failure.message,
                    fix: Some(APPLY_RBAC.into()),
                    code: Some(failure.code),
                    skipped: false,
                };
            }
        }
    }
    let mut report = Report::default();
    if missing.is_empty() {
        report.pass(name, format!("granted: {}", p.verbs.join(", ")));
    } else {
        let missing: Vec<String> = missing
            .iter()
            .map(|(resource, verbs)| format!("{} on {resource}", verbs.join(", ")))
            .collect();
        let failure = Failure::config(format!("missing: {} ({})", missing.join("; "), p.why));
        report.fail(name, failure, APPLY_RBAC);
    }
    report.rows.remove(0)
}

/// The review for one verb on one resource, as kubesu's identity.
pub fn review(p: &Permission, resource: &str, verb: &str, role: &str) -> SelfSubjectAccessReview {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(p.group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                name: (p.names == Names::ClusterRole).then(|| role.to_string()),
                // Cluster-wide: kubesu works in any namespace it names.
                namespace: None,
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn allowed(
    cluster: &Cluster,
    p: &Permission,
    resource: &str,
    verb: &str,
    role: &str,
) -> Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let what = format!("asking the API server whether kubesu may {verb} {resource}");
    let answer = cluster
        .call(
            &what,
            api.create(&PostParams::default(), &review(p, resource, verb, role)),
        )
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn spark_role_row(cluster: &Cluster, role: &str) -> Row {
    let name = format!("spark role {role}");
    let mut report = Report::default();
    let api: Api<ClusterRole> = Api::all(cluster.client.clone());
    let what = format!("reading ClusterRole {role}");
    let found = match cluster.deadline(&what, api.get_opt(role)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) if crate::cluster::status_of(&e) == Some(403) => {
            let failure = Failure::config(format!(
                "kubesu's identity may not read ClusterRole {role}: it needs get on clusterroles/{role}"
            ));
            report.fail(name, failure, APPLY_RBAC);
            return report.rows.remove(0);
        }
        Ok(Err(e)) => {
            report.fail(name, api_failure(&what, e), APPLY_RBAC);
            return report.rows.remove(0);
        }
        Err(failure) => {
            report.fail(name, failure, APPLY_RBAC);
            return report.rows.remove(0);
        }
    };
    match found {
        None => report.fail(
            name,
            Failure::config(format!(
                "ClusterRole {role} ([cluster] cluster_role) does not exist: runs would be bound to \
                 nothing and every Spark driver refused"
            )),
            APPLY_RBAC,
        ),
        Some(found) => {
            let rules = found.rules.unwrap_or_default();
            let missing = uncovered(&rules, SPARK_PERMISSIONS);
            if missing.is_empty() {
                report.pass(name, "exists and grants everything a Spark driver needs");
            } else {
                report.fail(
                    name,
                    Failure::config(format!(
                        "ClusterRole {role} lacks what a Spark driver needs: {}",
                        missing.join(", ")
                    )),
                    APPLY_RBAC,
                );
            }
        }
    }
    report.rows.remove(0)
}

/// The (verb resource) pairs of `wanted` that no rule grants on every
/// object.
pub fn uncovered(rules: &[PolicyRule], wanted: &[Permission]) -> Vec<String> {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    let resource_matches = |list: &Option<Vec<String>>, want: &str| {
        has(list, want)
            || want.split_once('/').is_some_and(|(_, sub)| {
                list.as_ref()
                    .is_some_and(|l| l.iter().any(|x| *x == format!("*/{sub}")))
            })
    };
    let mut missing = Vec::new();
    for p in wanted {
        for (resource, verb) in p.pairs() {
            let granted = rules.iter().any(|r| {
                r.resource_names.as_ref().is_none_or(Vec::is_empty)
                    && has(&r.api_groups, p.group)
                    && resource_matches(&r.resources, resource)
                    && r.verbs.iter().any(|v| v == verb || v == "*")
            });
            if !granted {
                missing.push(format!("{verb} {resource}"));
            }
        }
    }
    missing
}

// --- output -----------------------------------------------------------------

/// The human-readable report: CHECK, RESULT, DETAIL; a fix under each
/// failure; a summary line.
pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let indent = " ".repeat(width + 8);
    let mut out = format!("{:<width$}  RESULT  DETAIL\n", "CHECK");
    for row in rows {
        let result = match (row.ok, row.skipped) {
            (true, _) => "OK",
            (false, false) => "FAIL",
            (false, true) => "SKIP",
        };
        let mut lines = row.detail.lines();
        out.push_str(&format!(
            "{:<width$}  {result:<6}  {}\n",
            row.name,
            lines.next().unwrap_or("")
        ));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(fix) = row.fix.as_ref().filter(|_| !row.skipped) {
            out.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    let failed = rows.iter().filter(|r| !r.ok && !r.skipped).count();
    let skipped = rows.iter().filter(|r| r.skipped).count();
    match (failed, skipped) {
        (0, 0) => out.push_str(&format!("all {} checks passed\n", rows.len())),
        (_, 0) => out.push_str(&format!("{failed} of {} checks failed\n", rows.len())),
        _ => out.push_str(&format!(
            "{failed} of {} checks failed, {skipped} could not run\n",
            rows.len()
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ok: bool, code: Option<Code>, skipped: bool) -> Row {
        Row {
            name: "x".into(),
            ok,
            detail: "d".into(),
            fix: (!ok).then(|| "f".into()),
            code,
            skipped,
        }
    }

    #[test]
    fn exit_status_rule() {
        assert_eq!(exit_status(&[row(true, None, false)]), 0);
        assert_eq!(exit_status(&[]), 0);
        let unreachable = row(false, Some(Code::Unavailable), false);
        let skipped = row(false, None, true);
        let config = row(false, Some(Code::Config), false);
        let software = row(false, Some(Code::Software), false);
        assert_eq!(exit_status(&[unreachable.clone(), skipped.clone()]), 69);
        assert_eq!(exit_status(&[unreachable.clone(), config.clone()]), 78);
        assert_eq!(exit_status(&[config, unreachable.clone()]), 78);
        assert_eq!(exit_status(&[software]), 78);
        assert_eq!(exit_status(&[row(true, None, false), skipped]), 0);
    }

    #[test]
    fn table_shows_fixes_under_failures_and_indents_details() {
        let rows = vec![
            Row {
                name: "config".into(),
                ok: false,
                detail: "line 3, column 1\n  |\nunknown field".into(),
                fix: Some("edit it".into()),
                code: Some(Code::Config),
                skipped: false,
            },
            row(true, None, false),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CHECK   RESULT  DETAIL");
        assert_eq!(lines[1], "config  FAIL    line 3, column 1");
        assert_eq!(lines[2], format!("{}  |", " ".repeat(14)));
        assert_eq!(lines[3], "              unknown field");
        assert_eq!(lines[4], "              fix: edit it");
        assert_eq!(lines[5], "x       OK      d");
        assert_eq!(lines[6], "1 of 2 checks failed");
        let text = table(&[row(false, None, true)]);
        assert_eq!(text.lines().nth(1), Some("x      SKIP    d"));
        assert!(!text.contains("fix:"), "{text}");
        assert!(
            text.ends_with("0 of 1 checks failed, 1 could not run\n"),
            "{text}"
        );
    }

    #[test]
    fn json_rows_have_name_ok_detail_fix() {
        let value = serde_json::to_value(row(false, Some(Code::Config), false)).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "fix", "name", "ok"]);
    }

    #[test]
    fn reviews_are_cluster_wide_and_name_the_cluster_role() {
        let bind = KUBESU_PERMISSIONS
            .iter()
            .find(|p| p.names == Names::ClusterRole)
            .unwrap();
        let r = review(bind, "clusterroles", "bind", "spark");
        let a = r.spec.resource_attributes.unwrap();
        assert_eq!(a.group.as_deref(), Some("rbac.authorization.k8s.io"));
        assert_eq!(a.name.as_deref(), Some("spark"));
        assert_eq!(a.namespace, None);
        let token = KUBESU_PERMISSIONS
            .iter()
            .find(|p| p.resources == ["serviceaccounts/token"])
            .unwrap();
        let a = review(token, "serviceaccounts/token", "create", "spark")
            .spec
            .resource_attributes
            .unwrap();
        assert_eq!(a.resource.as_deref(), Some("serviceaccounts"));
        assert_eq!(a.subresource.as_deref(), Some("token"));
        assert_eq!(a.name, None);
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: if names.is_empty() { None } else { v(names) },
            non_resource_urls: None,
        }
    }

    #[test]
    fn spark_role_coverage() {
        // What `kubesu rbac` prints covers it.
        let printed: Vec<PolicyRule> = SPARK_PERMISSIONS
            .iter()
            .map(|p| rule(&[p.group], p.resources, p.verbs, &[]))
            .collect();
        assert!(uncovered(&printed, SPARK_PERMISSIONS).is_empty());
        assert!(uncovered(&[rule(&["*"], &["*"], &["*"], &[])], SPARK_PERMISSIONS).is_empty());
        // Restricted by name, or another group, covers nothing.
        let named: Vec<PolicyRule> = SPARK_PERMISSIONS
            .iter()
            .map(|p| rule(&[p.group], p.resources, p.verbs, &["x"]))
            .collect();
        assert_eq!(uncovered(&named, SPARK_PERMISSIONS).len(), 35);
        let missing = uncovered(
            &[
                rule(
                    &[""],
                    &["pods", "services", "configmaps", "persistentvolumeclaims"],
                    &["*"],
                    &[],
                ),
                rule(&["apps"], &["*/log"], &["get", "list", "watch"], &[]),
            ],
            SPARK_PERMISSIONS,
        );
        assert_eq!(missing, ["get pods/log", "list pods/log", "watch pods/log"]);
        let missing = uncovered(
            &[
                rule(
                    &[""],
                    &["pods", "services", "configmaps", "persistentvolumeclaims"],
                    &["*"],
                    &[],
                ),
                rule(&[""], &["*/log"], &["get", "list", "watch"], &[]),
            ],
            SPARK_PERMISSIONS,
        );
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn sudoers_absent_passes_and_a_bad_mode_fails() {
        let mut report = Report::default();
        sudoers_check(&mut report, Path::new("/nonexistent/kubesu-sudoers"));
        assert!(report.rows[0].ok, "{:?}", report.rows);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubesu");
        std::fs::write(&file, "# nothing\n").unwrap();
        sudoers_check(&mut report, &file);
        assert!(!report.rows[1].ok);
        assert!(
            report.rows[1].detail.contains("not 0440"),
            "{:?}",
            report.rows[1]
        );
        assert_eq!(exit_status(&report.rows), 78);
    }

    #[test]
    fn commands_must_exist_and_be_root_owned() {
        assert!(command_file(Path::new("/nonexistent/kubesu-command")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        // Below the world-writable /tmp: never trusted.
        assert_eq!(command_file(&file).unwrap_err().code, Code::Config);
        let sh = command_file(Path::new("/bin/sh"));
        assert!(sh.is_ok(), "{sh:?}");
    }
}
