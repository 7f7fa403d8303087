//! Crash safety: `gc`, `list` and `revoke` against leases left by real
//! crashed runs and by hand-made records, on the real control plane.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

const SH: &str = "/usr/bin/sh";
const NAMESPACE: &str = "kubesu-bob";

/// gc removes every dead lease it sees, other tests' too: one test at a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

fn gc(args: &[&str]) -> std::process::Output {
    let mut all = vec!["gc", "--json"];
    all.extend_from_slice(args);
    output(&mut root_kubesu(&all))
}

fn gc_actions(out: &std::process::Output) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gc --json: {e}: {}", stdout(out)));
    report["actions"].as_array().cloned().unwrap_or_default()
}

fn mentions(actions: &[serde_json::Value], run: &str) -> bool {
    actions.iter().any(|a| a["run"] == run)
}

/// A run for bob that prints its run id and then sleeps.
fn start_sleeping_run() -> (Child, String) {
    start_bobs_run("exec sleep 60")
}

/// A run for bob that prints its run id, then runs `script`.
fn start_bobs_run(script: &str) -> (Child, String) {
    let (child, run) = start_and_read_first_line(&mut sudo_kubesu(&[
        "run",
        "--user",
        "bob",
        "--",
        SH,
        "-c",
        &format!("echo $KUBESU_RUN_ID; {script}"),
    ]));
    assert_eq!(run.len(), 16, "no run id printed: {run:?}");
    (child, run)
}

async fn lease_exists(run: &str) -> bool {
    let api: Api<ServiceAccount> = Api::namespaced(admin_client().await, NAMESPACE);
    !api.list(&kube::api::ListParams::default().labels(&format!("kubesu.io/run={run}")))
        .await
        .expect("list")
        .items
        .is_empty()
}

/// A lease record written by hand, as a crashed or foreign kubesu would
/// have left it.
async fn fake_lease(run: &str, annotations: &[(&str, String)]) {
    let admin = admin_client().await;
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "kubesu".to_string(),
        ),
        ("kubesu.io/run".to_string(), run.to_string()),
        ("kubesu.io/user".to_string(), "bob".to_string()),
    ]);
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(format!("kubesu-bob-{run}")),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(admin, NAMESPACE)
        .create(&PostParams::default(), &account)
        .await
        .expect("create fake lease");
}

/// A fresh run id no real run has.
fn fake_run(tag: char) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut id = String::from(tag);
    let mut n = nanos as u64 ^ (std::process::id() as u64) << 20;
    while id.len() < 16 {
        id.push(alphabet[(n % 32) as usize] as char);
        n = n / 32 + 7919;
    }
    id
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("utf8")
}

/// Make sure bob's namespace exists (a run creates it).
fn ensure_namespace() {
    let out = output(&mut sudo_kubesu(&[
        "run",
        "--user",
        "bob",
        "--",
        "/usr/bin/true",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn a_killed_supervisor_stops_its_command_and_gc_removes_its_lease() {
    let _serial = serial().await;
    let (sudo, run) = start_sleeping_run();
    let kubesu = kubesu_pid(&sudo);
    let sleeper = std::fs::read_to_string(format!("/proc/{kubesu}/task/{kubesu}/children"))
        .expect("children");
    let sleeper: i32 = sleeper
        .split_whitespace()
        .next()
        .expect("command")
        .parse()
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kubesu),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let out = sudo.wait_with_output().expect("wait");
    assert_ne!(out.status.code(), Some(0));
    // The command dies with its supervisor (parent-death signal).
    let start = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{sleeper}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        if state.contains(") Z") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the command outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lease_exists(&run).await,
        "a SIGKILLed kubesu cannot revoke: the lease must still be there"
    );
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let actions = gc_actions(&out);
    assert!(
        mentions(&actions, &run),
        "gc did not remove run {run}: {actions:?}"
    );
    assert!(!lease_exists(&run).await);
    assert!(
        !std::path::Path::new(&format!("/run/kubesu/{run}")).exists(),
        "run directory left"
    );
    // Idempotent: nothing of that run is left for a second pass.
    assert!(!mentions(&gc_actions(&gc(&[])), &run));
}

/// Where a run's cgroup is: beside (below) its kubesu's own.
fn run_cgroup(kubesu: i32, run: &str) -> std::path::PathBuf {
    cgroup_of(kubesu).join(format!("kubesu-{run}"))
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

/// A kubesu killed with SIGKILL cannot end its run: the command gets the
/// parent-death signal, but what it started in the background lives on
/// in the run's cgroup. gc ends it and removes the cgroup once no kubesu
/// holds it; a live run's cgroup it leaves alone, even after `kubesu
/// revoke` (no `--end`) took that run's lease.
#[tokio::test]
async fn gc_ends_what_a_killed_supervisor_left_in_its_cgroup_and_leaves_live_runs_alone() {
    let _serial = serial().await;
    let (live, live_run) = start_sleeping_run();
    let live_cgroup = run_cgroup(kubesu_pid(&live), &live_run);
    let revoked = output(&mut root_kubesu(&["revoke", &live_run]));
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));

    let (killed, run) = start_bobs_run("sleep 300 & wait");
    let kubesu = kubesu_pid(&killed);
    let cgroup = run_cgroup(kubesu, &run);
    assert!(cgroup.is_dir(), "{} is the run's cgroup", cgroup.display());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kubesu),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = killed.wait_with_output();
    // The shell dies with its supervisor; its background sleep does not.
    let mut left = Vec::new();
    for _ in 0..100 {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).expect("cgroup.procs");
        left = procs
            .lines()
            .filter_map(|l| l.parse::<i32>().ok())
            .collect();
        if left.len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left.len(), 1, "the background sleep is left: {left:?}");
    // gc gives a cgroup 10 s before it may take it for abandoned.
    std::thread::sleep(Duration::from_secs(11));
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let actions = gc_actions(&out);
    assert!(
        actions
            .iter()
            .any(|a| a["what"] == "run-cgroup" && a["run"] == run.as_str() && a["removed"] == true),
        "gc removes run {run}'s cgroup: {actions:?}"
    );
    assert!(!cgroup.exists(), "{} is removed", cgroup.display());
    assert!(!alive(left[0]), "the process left in the cgroup is ended");

    assert!(
        !actions
            .iter()
            .any(|a| a["run"] == live_run.as_str() && a["what"] == "run-cgroup"),
        "gc took the live run's cgroup: {actions:?}"
    );
    assert!(live_cgroup.is_dir(), "the live run's cgroup stays");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = live.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(143),
        "the live run's command ran to its end: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn gc_never_touches_a_live_run_and_list_shows_it_live() {
    let _serial = serial().await;
    let (sudo, run) = start_sleeping_run();
    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !mentions(&gc_actions(&out), &run),
        "gc touched live run {run}"
    );
    assert!(lease_exists(&run).await);
    let listed = output(&mut root_kubesu(&["list", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("list --json");
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["run"] == run.as_str())
        .expect("listed")
        .clone();
    assert_eq!(row["state"], "live");
    assert_eq!(row["user"], "bob");
    assert_eq!(row["namespace"], NAMESPACE);
    let table = stdout(&output(&mut root_kubesu(&["list"])));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&run) && l.ends_with("Live")),
        "{table}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sudo.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = sudo.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
}

#[tokio::test]
async fn leases_of_reused_pids_of_other_boots_and_expired_ones_are_removed_live_foreign_ones_kept()
{
    let _serial = serial().await;
    ensure_namespace();
    let future = "2099-01-01T00:00:00Z".to_string();
    // pid 1 is alive, but started long before this lease's recorded start.
    let reused = fake_run('r');
    fake_lease(
        &reused,
        &[
            ("kubesu.io/expires", future.clone()),
            ("kubesu.io/host", hostname()),
            ("kubesu.io/boot-id", boot_id()),
            ("kubesu.io/pid", "1".into()),
            ("kubesu.io/process-start", "999999999".into()),
        ],
    )
    .await;
    let rebooted = fake_run('b');
    fake_lease(
        &rebooted,
        &[
            ("kubesu.io/expires", future.clone()),
            ("kubesu.io/host", hostname()),
            (
                "kubesu.io/boot-id",
                "00000000-0000-0000-0000-000000000000".into(),
            ),
            ("kubesu.io/pid", "1".into()),
        ],
    )
    .await;
    let expired = fake_run('e');
    fake_lease(
        &expired,
        &[
            ("kubesu.io/expires", "2020-01-01T00:00:00Z".into()),
            ("kubesu.io/host", "elsewhere".into()),
        ],
    )
    .await;
    let foreign = fake_run('f');
    fake_lease(
        &foreign,
        &[
            ("kubesu.io/expires", future.clone()),
            ("kubesu.io/host", "elsewhere".into()),
        ],
    )
    .await;

    let dry = gc(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let planned = gc_actions(&dry);
    assert!(mentions(&planned, &reused) && mentions(&planned, &expired));
    assert!(lease_exists(&reused).await, "--dry-run removed something");

    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let actions = gc_actions(&out);
    for (run, why) in [
        (&reused, "ProcessGone"),
        (&rebooted, "Rebooted"),
        (&expired, "Expired"),
    ] {
        let action = actions
            .iter()
            .find(|a| a["run"] == run.as_str())
            .unwrap_or_else(|| panic!("{why} lease kept: {actions:?}"));
        assert_eq!(action["reason"], why);
        assert_eq!(action["removed"], true);
        assert!(!lease_exists(run).await);
    }
    assert!(
        !mentions(&actions, &foreign),
        "an unexpired lease of another host was removed"
    );
    assert!(lease_exists(&foreign).await);
    let out = output(&mut root_kubesu(&["revoke", &foreign]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!lease_exists(&foreign).await);
}

#[tokio::test]
async fn spark_leftovers_and_run_directories_of_dead_runs_are_removed() {
    let _serial = serial().await;
    ensure_namespace();
    let dead = fake_run('d');
    let admin = admin_client().await;
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    let leftover = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("spark-exec-{dead}")),
            labels: Some(BTreeMap::from([(
                "kubesu.io/run".to_string(),
                dead.clone(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    maps.create(&PostParams::default(), &leftover)
        .await
        .expect("create leftover");
    std::fs::create_dir_all(format!("/run/kubesu/{dead}")).expect("stale run dir");
    std::fs::write(format!("/run/kubesu/{dead}/token"), "stale").expect("stale token");

    let out = gc(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let actions = gc_actions(&out);
    assert!(
        actions
            .iter()
            .any(|a| a["run"] == dead.as_str() && a["what"] == "leftovers"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a["run"] == dead.as_str() && a["what"] == "run-directory"),
        "{actions:?}"
    );
    assert!(
        maps.get_opt(&format!("spark-exec-{dead}"))
            .await
            .expect("get")
            .is_none_or(|m| m.metadata.deletion_timestamp.is_some())
    );
    assert!(!std::path::Path::new(&format!("/run/kubesu/{dead}")).exists());
}

#[tokio::test]
async fn a_per_run_namespace_without_a_live_lease_is_removed_after_its_grace() {
    let _serial = serial().await;
    install();
    let dead = fake_run('n');
    let name = format!("kubesu-run-{dead}");
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    let orphan = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "kubesu".to_string(),
                ),
                ("kubesu.io/run".to_string(), dead.clone()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &orphan)
        .await
        .expect("create");
    // Young per-run namespaces may belong to a run still preparing.
    assert!(
        !mentions(&gc_actions(&gc(&[])), &dead),
        "removed within the grace period"
    );
    // The grace is three request timeouts: 3 s with this config.
    let config = &config_variant(
        "gc-short-grace",
        &[("request_timeout = \"10s\"", "request_timeout = \"1s\"")],
    );
    std::thread::sleep(Duration::from_millis(3500));
    let out = output(&mut root_kubesu(&["gc", "--json", "--config", config]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(mentions(&gc_actions(&out), &dead), "{}", stdout(&out));
    let gone = namespaces.get_opt(&name).await.expect("get");
    assert!(gone.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
}

#[tokio::test]
async fn revoke_kills_a_live_runs_credentials_at_once() {
    let _serial = serial().await;
    let (sudo, run) = start_sleeping_run();
    assert!(lease_exists(&run).await);
    let out = output(&mut root_kubesu(&["revoke", &run]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&run));
    assert!(!lease_exists(&run).await);
    // Nothing left to revoke: a clear refusal.
    let again = output(&mut root_kubesu(&["revoke", &run]));
    assert_eq!(again.status.code(), Some(65), "{}", stderr(&again));
    // Through sudo, revoke is not allowed by the sudoers drop-in at all.
    let denied = output(&mut sudo_kubesu(&["revoke", &run]));
    assert_ne!(denied.status.code(), Some(0));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sudo.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = sudo.wait_with_output().expect("wait");
    // The run's own revocation finds nothing left and is still clean.
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// [spark] driver_logs in the example config the tests install.
const DRIVER_LOGS: &str = "/var/log/kubesu-drivers";

/// A driver log as a run's revocation leaves it, last modified `age` ago.
fn driver_log(run: &str, age: Duration) -> std::path::PathBuf {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // As kubesu makes it at the first kept log.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(DRIVER_LOGS)
        .expect("driver log directory");
    std::fs::set_permissions(DRIVER_LOGS, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let path = std::path::Path::new(DRIVER_LOGS).join(format!("{run}.log"));
    let file = std::fs::File::create(&path).expect("create driver log");
    file.set_modified(std::time::SystemTime::now() - age)
        .expect("set mtime");
    path
}

#[tokio::test]
async fn driver_logs_older_than_their_retention_are_removed_and_younger_ones_kept() {
    let _serial = serial().await;
    install();
    let config = &config_variant(
        "gc-short-retention",
        &[(
            "driver_log_retention = \"7d\"",
            "driver_log_retention = \"1h\"",
        )],
    );
    let (old, fresh) = (fake_run('o'), fake_run('f'));
    let old_log = driver_log(&old, Duration::from_secs(2 * 3600));
    let fresh_log = driver_log(&fresh, Duration::from_secs(60));
    let removal = |actions: &[serde_json::Value], run: &str| {
        actions
            .iter()
            .find(|a| a["run"] == run && a["what"] == "driver-log")
            .cloned()
    };

    let dry = output(&mut root_kubesu(&[
        "gc",
        "--json",
        "--dry-run",
        "--config",
        config,
    ]));
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let planned = gc_actions(&dry);
    let would = removal(&planned, &old).unwrap_or_else(|| panic!("{planned:?}"));
    assert_eq!(would["path"], old_log.display().to_string(), "{would}");
    assert!(removal(&planned, &fresh).is_none(), "{planned:?}");
    assert!(old_log.exists(), "a dry run removes nothing");

    let out = output(&mut root_kubesu(&["gc", "--json", "--config", config]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let done = gc_actions(&out);
    let removed = removal(&done, &old).unwrap_or_else(|| panic!("{done:?}"));
    assert_eq!(removed["removed"], true, "{removed}");
    assert!(
        !old_log.exists(),
        "{} outlived its retention",
        old_log.display()
    );
    assert!(removal(&done, &fresh).is_none(), "{done:?}");
    assert!(fresh_log.exists(), "a young log is kept");
    std::fs::remove_file(&fresh_log).expect("clean up");
}
