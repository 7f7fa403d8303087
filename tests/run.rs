//! `kubesu run` end to end: through real sudo as the platform's service
//! user, against the real control plane, asserting what the system and the
//! cluster show.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};

const SH: &str = "/usr/bin/sh";

fn run_as(user: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--json", "--user", user, "--"];
    args.extend_from_slice(command);
    output(&mut sudo_kubesu(&args))
}

/// Objects kubesu created for one run, in its namespace.
async fn run_objects(namespace: &str, run: &str) -> (usize, usize) {
    let admin = admin_client().await;
    let selector = ListParams::default().labels(&format!("kubesu.io/run={run}"));
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .list(&selector)
        .await
        .expect("list service accounts");
    let bindings = Api::<RoleBinding>::namespaced(admin, namespace)
        .list(&selector)
        .await
        .expect("list rolebindings");
    (accounts.items.len(), bindings.items.len())
}

/// Every kubesu-labelled ServiceAccount of a namespace.
async fn kubesu_accounts(namespace: &str) -> usize {
    let admin = admin_client().await;
    Api::<ServiceAccount>::namespaced(admin, namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubesu"))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[test]
fn the_command_runs_as_the_user_with_only_their_groups() {
    let out = run_as("alice", &["id"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "uid=3001(alice) gid=3001(alice) groups=3001(alice),1001(kubesu-users),1002(team-red)"
    );
    // Silent on success: only the --json record.
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| !l.starts_with('{')).count(),
        0,
        "unexpected stderr: {err}"
    );
}

#[test]
fn the_environment_holds_nothing_unexpected() {
    let out = run_as("alice", &["env"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: BTreeSet<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    let expected: BTreeSet<String> = [
        "HOME",
        "KUBECONFIG",
        "KUBESU_NAMESPACE",
        "KUBESU_RUN_ID",
        "LANG",
        "LOGNAME",
        "PATH",
        "SHELL",
        "TERM",
        "USER",
    ]
    .map(String::from)
    .into();
    let unexpected: Vec<_> = names.difference(&expected).collect();
    assert!(
        unexpected.is_empty(),
        "unexpected variables: {unexpected:?}"
    );
    assert!(
        names.is_superset(&expected),
        "missing: {:?}",
        expected.difference(&names).collect::<Vec<_>>()
    );
}

#[test]
fn a_hostile_environment_from_a_root_caller_does_not_reach_the_command() {
    let out = output(
        root_kubesu(&["run", "--user", "alice", "--", "env"])
            .env("LD_PRELOAD", "/nonexistent/evil.so")
            .env("LD_LIBRARY_PATH", "/tmp")
            .env("KUBECONFIG", "/tmp/mine")
            .env("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .env("SPARK_CONF_DIR", "/tmp/conf")
            .env("BASH_FUNC_x%%", "() { echo pwned; }")
            .env("TZ", "../../../etc/shadow")
            .env("PLATFORM_JOB_ID", "job-42"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let env = stdout(&out);
    for banned in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "KUBERNETES_SERVICE_HOST",
        "SPARK_CONF_DIR",
        "BASH_FUNC",
        "TZ=",
    ] {
        assert!(
            !env.contains(banned),
            "{banned} reached the command:\n{env}"
        );
    }
    assert!(
        !env.contains("/tmp/mine"),
        "the caller's KUBECONFIG reached the command"
    );
    assert!(
        env.contains("PLATFORM_JOB_ID=job-42"),
        "the configured keep-list was not honoured:\n{env}"
    );
}

#[test]
fn handed_credentials_work_in_the_namespace_only_and_files_are_private() {
    let script = r#"
        dir=$(dirname "$KUBECONFIG")
        stat -c '%a %U %G' "$dir" "$dir/kubeconfig" "$dir/token" "$dir/ca.crt"
        sleep 5 & echo fds: $(ls /proc/$!/fd); kill $!
        kubectl get pods >/dev/null && echo own-namespace-ok
        kubectl get pods -n default 2>&1 | grep -q Forbidden && echo other-namespace-forbidden
        kubectl get pods --all-namespaces 2>&1 | grep -q Forbidden && echo cluster-forbidden
        test -r /etc/kubesu/kubeconfig || echo kubesu-kubeconfig-unreadable
        tail -c 1 "$dir/token" | od -An -c
    "#;
    let out = run_as("alice", &[SH, "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    // Root's, read by alice through an ACL entry (the mode shows its mask).
    assert_eq!(lines[0], "750 root root", "run directory");
    for file in &lines[1..4] {
        assert_eq!(file, "640 root root", "a handed-over file");
    }
    assert_eq!(lines[4], "fds: 0 1 2", "descriptors above 2 must be closed");
    for expected in [
        "own-namespace-ok",
        "other-namespace-forbidden",
        "cluster-forbidden",
        "kubesu-kubeconfig-unreadable",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing {expected} in {lines:?}"
        );
    }
    assert!(
        !lines.last().expect("od").contains("\\n"),
        "the token ends with a newline"
    );
}

#[tokio::test]
async fn after_the_run_the_credentials_are_gone() {
    let out = run_as(
        "alice",
        &[SH, "-c", "cat \"$(dirname \"$KUBECONFIG\")/token\""],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = run_record(&out);
    let run = record["run"].as_str().expect("run id").to_string();
    let namespace = record["namespace"].as_str().expect("namespace").to_string();
    assert_eq!(record["revoked"], true);
    assert_eq!(
        run_objects(&namespace, &run).await,
        (0, 0),
        "ServiceAccount or RoleBinding left"
    );
    assert!(
        !std::path::Path::new(&format!("/run/kubesu/{run}")).exists(),
        "run directory left"
    );
    let token = stdout(&out);
    let user = token_client(&token).await;
    eventually(
        Duration::from_secs(15),
        "the run's token answers 401",
        || {
            let user = user.clone();
            let namespace = namespace.clone();
            async move { list_pods_status(&user, &namespace).await == 401 }
        },
    )
    .await;
}

#[test]
fn exit_statuses_come_back_as_the_command_left_them() {
    for (script, status) in [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 143)] {
        let out = run_as("alice", &[SH, "-c", script]);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{script}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn sigterm_to_kubesu_reaches_the_command_and_revocation_still_happens() {
    let (child, first) = start_and_read_first_line(&mut sudo_kubesu(&[
        "run",
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "echo started; exec sleep 60",
    ]));
    assert_eq!(first, "started");
    // sudo relays the signal to kubesu, as when a platform cancels a job.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let record = run_record(&out);
    assert_eq!(record["signals_forwarded"], serde_json::json!(["SIGTERM"]));
    assert_eq!(record["revoked"], true);
    let (run, namespace) = (
        record["run"].as_str().expect("run"),
        record["namespace"].as_str().expect("ns"),
    );
    assert_eq!(run_objects(namespace, run).await, (0, 0));
}

#[tokio::test]
async fn twenty_concurrent_runs_for_one_user_with_no_namespace_yet_all_succeed() {
    install();
    let admin = admin_client().await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    if namespaces
        .get_opt("kubesu-carol")
        .await
        .expect("get")
        .is_some()
    {
        namespaces
            .delete("kubesu-carol", &Default::default())
            .await
            .expect("delete");
        eventually(Duration::from_secs(60), "kubesu-carol deleted", || {
            let namespaces = namespaces.clone();
            async move {
                namespaces
                    .get_opt("kubesu-carol")
                    .await
                    .expect("get")
                    .is_none()
            }
        })
        .await;
    }
    let runs: Vec<_> = (0..20)
        .map(|_| {
            sudo_kubesu(&["run", "--user", "carol", "--", "/usr/bin/true"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(
        kubesu_accounts("kubesu-carol").await,
        0,
        "ServiceAccounts left behind"
    );
    let bindings = Api::<RoleBinding>::namespaced(admin, "kubesu-carol")
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubesu"))
        .await
        .expect("list");
    assert!(bindings.items.is_empty(), "RoleBindings left behind");
    let namespace = namespaces
        .get("kubesu-carol")
        .await
        .expect("namespace created");
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("kubesu")
    );
}

#[tokio::test]
async fn a_namespace_kubesu_does_not_own_is_refused_and_nothing_is_created() {
    let admin = admin_client().await;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    if namespaces
        .get_opt("kubesu-dave")
        .await
        .expect("get")
        .is_none()
    {
        let foreign = Namespace {
            metadata: ObjectMeta {
                name: Some("kubesu-dave".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &foreign)
            .await
            .expect("create");
    }
    let out = run_as("dave", &["id"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not created by kubesu"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "the command ran");
    assert_eq!(kubesu_accounts("kubesu-dave").await, 0);
}

const SPARK_SUBMIT: &str = "/var/cache/kubesu-testbed/pyspark-3.5/bin/spark-submit";

#[tokio::test]
async fn forbidden_spark_arguments_are_refused_before_anything_is_created() {
    for args in [
        &["--conf", "spark.kubernetes.namespace=default", "app.py"][..],
        &["--conf=spark.master=local[*]", "app.py"],
        &[
            "-c",
            "spark.kubernetes.authenticate.driver.oauthToken=x",
            "app.py",
        ],
        &["--master", "k8s://https://evil:6443", "app.py"],
        &["--proxy-user", "root", "app.py"],
    ] {
        let mut command = vec![SPARK_SUBMIT];
        command.extend_from_slice(args);
        let out = run_as("erin", &command);
        assert_eq!(out.status.code(), Some(65), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("kubesu: "), "{}", stderr(&out));
    }
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    assert!(
        namespaces
            .get_opt("kubesu-erin")
            .await
            .expect("get")
            .is_none(),
        "a namespace was created"
    );
}

#[tokio::test]
async fn callers_and_users_that_are_not_allowed_get_their_exit_code_and_a_clear_message() {
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["run", "--user", "root", "--", "id"], 77, "root"),
        (
            vec!["run", "--user", "nosuchuser", "--", "id"],
            77,
            "no such user",
        ),
        (
            vec!["run", "--user", "mallory", "--", "id"],
            77,
            "allowed group",
        ),
        (vec!["run", "--user", "lowuid", "--", "id"], 77, "minimum"),
        (
            vec!["run", "--user", "kubesu-svc", "--", "id"],
            77,
            "deny list",
        ),
        (vec!["run", "--user", "Alice", "--", "id"], 65, "refused"),
        (
            vec!["run", "--user", "alice", "--", "/bin/cat", "/etc/shadow"],
            77,
            "not allowed",
        ),
        (vec!["run", "--user", "alice", "--", "./id"], 64, "relative"),
        (
            vec!["run", "--user", "alice", "--team", "team-blue", "--", "id"],
            77,
            "not a member",
        ),
        (
            vec!["run", "--user", "alice", "--ttl", "1m", "--", "id"],
            64,
            "--ttl",
        ),
        (vec!["run", "--user", "alice", "id"], 64, ""),
        (
            vec![
                "run",
                "--config",
                "/tmp/mine.toml",
                "--user",
                "alice",
                "--",
                "id",
            ],
            77,
            "--config",
        ),
    ];
    for (args, code, message) in cases {
        let out = output(&mut sudo_kubesu(&args));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: the command ran");
    }
    // sudoers allows `kubesu run ...` only: options before `run` never reach kubesu.
    let out = output(&mut sudo_kubesu(&[
        "--config",
        "/tmp/mine.toml",
        "run",
        "--user",
        "alice",
        "--",
        "id",
    ]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "sudo must refuse: {}",
        stderr(&out)
    );
    // A caller that is not in [callers]: kubesu as sudo would start it.
    let out = output(
        root_kubesu(&["run", "--user", "alice", "--", "id"])
            .env("SUDO_USER", "mallory")
            .env("SUDO_UID", "3004"),
    );
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(stderr(&out).contains("mallory"), "{}", stderr(&out));
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    for ns in [
        "kubesu-root",
        "kubesu-mallory",
        "kubesu-lowuid",
        "kubesu-nosuchuser",
    ] {
        assert!(
            namespaces.get_opt(ns).await.expect("get").is_none(),
            "{ns} was created"
        );
    }
}

#[test]
fn every_run_is_audited_to_the_file_and_to_syslog() {
    let out = run_as("alice", &["/usr/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = run_record(&out)["run"].as_str().expect("run").to_string();
    let records = audit_records(&run);
    assert_eq!(records.len(), 2, "a start and an end record");
    assert_eq!(records[0]["event"], "start");
    assert_eq!(records[1]["event"], "end");
    assert_eq!(records[1]["status"], 0);
    assert_eq!(records[1]["caller"]["name"], "kubesu-svc");
    let mode = std::fs::metadata("/var/log/kubesu/audit.jsonl").map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.expect("stat"), 0o600);
    // rsyslogd writes asynchronously.
    let start = std::time::Instant::now();
    loop {
        // Other programs log non-UTF-8 bytes there too.
        let log = String::from_utf8_lossy(&std::fs::read("/var/log/auth.log").unwrap_or_default())
            .into_owned();
        if log
            .lines()
            .filter(|l| l.contains("kubesu[") && l.contains(&run))
            .count()
            == 2
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no authpriv syslog records for run {run}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_touches_nothing() {
    let out = output(&mut sudo_kubesu(&[
        "run",
        "--dry-run",
        "--user",
        "erin",
        "--",
        SPARK_SUBMIT,
        "--deploy-mode",
        "cluster",
        "app.py",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the plan is JSON");
    assert_eq!(plan["namespace"], "kubesu-erin");
    let argv: Vec<&str> = plan["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(&argv[..2], ["--master", "k8s://https://127.0.0.1:16443"]);
    assert!(argv.contains(&"spark.kubernetes.namespace=kubesu-erin"));
    assert_eq!(
        &argv[argv.len() - 3..],
        ["--deploy-mode", "cluster", "app.py"]
    );
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    assert!(
        namespaces
            .get_opt("kubesu-erin")
            .await
            .expect("get")
            .is_none(),
        "dry run created the namespace"
    );
}

/// The example config with another namespace policy.
fn policy_variant(name: &str, policy: &str, template: &str) -> String {
    config_variant(
        name,
        &[
            ("policy = \"per-user\"", &format!("policy = \"{policy}\"")),
            (
                "template = \"kubesu-{user}\"",
                &format!("template = \"{template}\""),
            ),
        ],
    )
}

#[tokio::test]
async fn a_per_run_namespace_is_created_for_the_run_and_deleted_after_it() {
    let config = policy_variant("per-run", "per-run", "kubesu-run-{run}");
    let out = output(&mut root_kubesu(&[
        "run",
        "--config",
        &config,
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "kubectl get pods && echo namespace=$KUBESU_NAMESPACE",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = run_record(&out);
    let namespace = record["namespace"].as_str().expect("namespace").to_string();
    assert_eq!(
        namespace,
        format!("kubesu-run-{}", record["run"].as_str().expect("run"))
    );
    assert!(stdout(&out).contains(&format!("namespace={namespace}")));
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    eventually(
        Duration::from_secs(60),
        "the per-run namespace is deleted",
        || {
            let namespaces = namespaces.clone();
            let namespace = namespace.clone();
            async move {
                match namespaces.get_opt(&namespace).await.expect("get") {
                    None => true,
                    Some(ns) => ns.metadata.deletion_timestamp.is_some(),
                }
            }
        },
    )
    .await;
}

#[test]
fn a_per_team_namespace_needs_a_team_the_user_is_in() {
    let config = policy_variant("per-team", "per-team", "kubesu-team-{team}");
    let with = |extra: &[&str]| {
        let mut args = vec!["run", "--config", &config, "--user", "bob"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", SH, "-c", "echo $KUBESU_NAMESPACE"]);
        output(&mut root_kubesu(&args))
    };
    let out = with(&["--team", "team-blue"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "kubesu-team-team-blue");
    let out = with(&[]);
    assert_eq!(out.status.code(), Some(64), "no --team: {}", stderr(&out));
    assert!(stderr(&out).contains("--team"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_token_is_renewed_in_the_kubeconfig_while_the_command_runs() {
    let config = &config_variant(
        "renewal",
        &[(
            "token_ttl = \"1h\"",
            "token_ttl = \"10m\"\nrenew_before = \"597s\"",
        )],
    );
    let script = r#"
        dir=$(dirname "$KUBECONFIG")
        before=$(cat "$dir/token")
        sleep 6
        after=$(cat "$dir/token")
        [ "$before" != "$after" ] && echo renewed
        grep -q "$after" "$KUBECONFIG" && echo kubeconfig-renewed
        kubectl get pods >/dev/null && echo works
        stat -c '%a %U' "$dir/token" "$KUBECONFIG"
        ls -A "$dir"
    "#;
    let out = output(&mut root_kubesu(&[
        "run", "--config", config, "--json", "--user", "alice", "--", SH, "-c", script,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().map(str::trim).collect();
    assert_eq!(
        &lines[..3],
        ["renewed", "kubeconfig-renewed", "works"],
        "{printed}"
    );
    // Replaced by root, still root's and read by alice through an ACL entry.
    assert_eq!(&lines[3..5], ["640 root", "640 root"]);
    assert_eq!(
        &lines[5..],
        ["ca.crt", "kubeconfig", "token"],
        "stray files in the run directory"
    );
    let record = run_record(&out);
    assert!(
        record["token_renewals"].as_u64().expect("renewals") >= 1,
        "{record}"
    );
    assert_eq!(record["revoked"], true);
}

#[tokio::test]
async fn shell_starts_the_users_login_shell_with_the_runs_credentials_and_revokes_after() {
    use std::io::Write;
    let mut child = root_kubesu(&["shell", "--json", "--user", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo $0 $(id -un) $KUBESU_NAMESPACE\nkubectl get pods >/dev/null && echo works\nexit 4\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/bin/bash alice kubesu-alice\nworks\n");
    let banner = stderr(&out);
    assert!(
        banner.contains("ServiceAccount kubesu-alice-")
            && banner.contains("Exit the shell to revoke"),
        "{banner}"
    );
    let record = run_record(&out);
    assert_eq!(record["revoked"], true);
    let (run, namespace) = (
        record["run"].as_str().expect("run"),
        record["namespace"].as_str().expect("ns"),
    );
    assert_eq!(run_objects(namespace, run).await, (0, 0));
    // A shell that is not a login shell, and a sudo caller's shell that is
    // not in [[command]], are refused.
    let out = output(&mut root_kubesu(&[
        "shell",
        "--user",
        "alice",
        "--shell",
        "/usr/bin/id",
    ]));
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    let out = output(&mut sudo_kubesu(&["shell", "--user", "alice"]));
    assert_ne!(
        out.status.code(),
        Some(0),
        "sudoers allows only `kubesu run`"
    );
}

#[test]
fn a_reader_that_goes_away_does_not_crash_kubesu() {
    install();
    // `head` closes the pipe after one byte: kubesu must not panic on EPIPE.
    let script = format!(
        "{KUBESU} run --dry-run --user alice -- id | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    );
    let out = output(
        std::process::Command::new("bash")
            .args(["-c", &script])
            .current_dir("/"),
    );
    assert_eq!(stdout(&out).trim(), "0", "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_refusal_with_json_ends_with_a_machine_readable_error() {
    let out = output(&mut sudo_kubesu(&[
        "run", "--json", "--user", "mallory", "--", "id",
    ]));
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    let record = run_record(&out);
    assert_eq!(record["event"], "error");
    assert_eq!(record["status"], 77);
    assert!(
        record["error"].as_str().expect("error").contains("mallory"),
        "{record}"
    );
}

/// `[cluster] max_run_time`: a forgotten job's credentials do not live for
/// ever. At the deadline kubesu stops renewing, ends the command (TERM, then
/// KILL for what ignores it), revokes, records why, and exits 124.
#[tokio::test]
async fn a_run_over_its_maximum_time_is_ended_and_revoked() {
    let config = config_variant(
        "max-run-time",
        &[("max_run_time = \"1d\"", "max_run_time = \"3s\"")],
    );
    let started = std::time::Instant::now();
    let out = output(&mut root_kubesu(&[
        "run",
        "--config",
        &config,
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        // A command that ignores TERM: only the KILL after the grace ends it.
        "trap '' TERM; echo started; sleep 300 & wait; sleep 300",
    ]));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        took < Duration::from_secs(60),
        "ended after {took:?}, not at its deadline"
    );
    assert!(stdout(&out).contains("started"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("reached its maximum run time"),
        "{}",
        stderr(&out)
    );
    let record = run_record(&out);
    assert_eq!(record["status"], 124, "{record}");
    assert_eq!(record["ended_by"], "max_run_time", "{record}");
    assert_eq!(record["revoked"], true, "{record}");
    let run = record["run"].as_str().expect("run id");
    assert_eq!(run_objects("kubesu-alice", run).await, (0, 0), "revoked");
}

/// A platform that stops reading kubesu's stderr holds the command's
/// output, never revocation: kubesu's own lines wait a bounded time for it
/// (here the one saying the maximum run time was reached), then the run is
/// revoked and recorded, and kubesu exits.
#[tokio::test]
async fn a_platform_that_stops_reading_stderr_does_not_hold_revocation() {
    let config = config_variant(
        "stalled-stderr",
        &[("max_run_time = \"1d\"", "max_run_time = \"3s\"")],
    );
    let (mut child, run) = start_and_read_first_line(&mut root_kubesu(&[
        "run",
        "--config",
        &config,
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        // More than the platform's pipe and kubesu's relay hold.
        "echo \"$KUBESU_RUN_ID\"; head -c 4194304 /dev/zero >&2; sleep 300",
    ]));
    // The read end stays open, never read.
    let _stalled = child.stderr.take().expect("stderr");
    let status = wait_at_most(&mut child, 90, "kubesu with a stalled stderr");
    assert_eq!(status.code(), Some(124));
    assert_eq!(run_objects("kubesu-alice", &run).await, (0, 0), "revoked");
    let records = audit_records(&run);
    let end = records.last().expect("an audit record of the run");
    assert_eq!(end["ended_by"], "max_run_time", "{end}");
    assert_eq!(end["revoked"], true, "{end}");
}

/// The record names each token minted for the run by its `jti` (where the
/// cluster puts one: 1.29 and later), which the cluster's audit log records
/// with every call the token made: kubesu's record and the cluster's join.
#[test]
fn the_record_names_the_runs_token_by_its_jti() {
    let out = run_as(
        "alice",
        &[SH, "-c", "cat \"$(dirname \"$KUBECONFIG\")/token\""],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out);
    let claims = {
        use base64::Engine;
        let payload = token.trim().split('.').nth(1).expect("a JWT");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .expect("base64url");
        serde_json::from_slice::<serde_json::Value>(&json).expect("claims")
    };
    let record = run_record(&out);
    match claims.get("jti") {
        Some(jti) => assert_eq!(record["token_ids"], serde_json::json!([jti]), "{record}"),
        None => assert!(record.get("token_ids").is_none(), "{record}"),
    }
    let run = record["run"].as_str().expect("run id");
    let audited = audit_records(run);
    let end = audited.last().expect("an end record in the audit file");
    assert_eq!(end["token_ids"], record["token_ids"], "{end}");
}

/// `kubesu revoke --end`: the run's credentials are revoked and its command
/// is ended the way a maximum run time ends it (a command that ignores TERM
/// included), by the supervising kubesu, which exits 124.
#[tokio::test]
async fn revoke_end_ends_the_command_and_the_run() {
    let (child, run) = start_and_read_first_line(&mut sudo_kubesu(&[
        "run",
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "trap '' TERM; echo \"$KUBESU_RUN_ID\"; sleep 300 & wait; sleep 300",
    ]));
    let revoked = output(&mut root_kubesu(&["revoke", "--end", &run]));
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    assert!(
        stdout(&revoked).contains("asked kubesu"),
        "{}",
        stdout(&revoked)
    );
    let started = std::time::Instant::now();
    let out = child.wait_with_output().expect("kubesu run ends");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run ended after {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    let record = run_record(&out);
    assert_eq!(record["ended_by"], "revoked", "{record}");
    assert_eq!(record["revoked"], true, "{record}");
    assert_eq!(run_objects("kubesu-alice", &run).await, (0, 0), "revoked");
}

/// The command's output reaches the platform as the command wrote it:
/// stdout and stderr apart, every byte value, a stderr that ends without a
/// newline left so, a few MiB (more than any pipe holds), and its exit
/// status.
#[test]
fn output_comes_through_whole_stdout_and_stderr_apart_and_the_status_kept() {
    let script = "import sys\n\
                  sys.stdout.buffer.write(bytes(range(256)) * 16384)\n\
                  sys.stderr.buffer.write(bytes(range(255, -1, -1)) * 64 + b'no newline')\n\
                  sys.exit(42)";
    let out = output(&mut sudo_kubesu(&[
        "run",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "exec /usr/bin/python3 -c \"$0\"",
        script,
    ]));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(
        out.stdout == (0..=255u8).cycle().take(256 * 16384).collect::<Vec<u8>>(),
        "stdout changed: {} bytes",
        out.stdout.len()
    );
    let mut expected: Vec<u8> = (0..=255u8).rev().cycle().take(256 * 64).collect();
    expected.extend_from_slice(b"no newline");
    assert!(
        out.stderr == expected,
        "stderr changed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A platform that reads stdout and stderr as one pipe (`2>&1`) gets the
/// command's lines in the order it wrote them.
#[test]
fn stdout_and_stderr_on_one_pipe_keep_their_order() {
    let script = "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let out = output(as_service_user("/usr/bin/sh").args([
        "-c",
        &format!("sudo -n {KUBESU} run --user alice -- {SH} -c '{script}' 2>&1"),
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let expected: String = (0..300).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(stdout(&out), expected);
}

/// A platform that stops reading (`| head -n 1`) ends the command as a
/// closed pipe would (SIGPIPE, status 141), promptly: kubesu neither spins
/// nor keeps the command writing.
#[test]
fn a_platform_that_closes_the_output_ends_the_command_as_a_closed_pipe_would() {
    let started = std::time::Instant::now();
    let out = output(as_service_user("/usr/bin/bash").args([
        "-c",
        &format!(
            "sudo -n {KUBESU} run --user alice -- {SH} -c 'exec yes' | head -n 1; echo ${{PIPESTATUS[0]}}"
        ),
    ]));
    assert_eq!(stdout(&out), "y\n141\n", "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
