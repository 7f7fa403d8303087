//! Runs under injected faults: the API server unreachable, slow, or cut off
//! at the worst moment. Each ends with nothing of kubesu's left after at
//! most one `gc`.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::proxy::{Fault, FaultProxy, api_port};
use common::*;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::ListParams;

const SH: &str = "/usr/bin/sh";

/// A proxy, and a root-owned config whose kubesu talks to the cluster
/// through it (users still get the real server).
struct Faulty {
    proxy: FaultProxy,
    config: String,
}

impl Faulty {
    fn new(name: &str, revoke_timeout: &str) -> Faulty {
        install();
        let proxy = FaultProxy::start(api_port());
        let config = proxy.config_variant(
            name,
            &[
                ("request_timeout = \"10s\"", "request_timeout = \"3s\""),
                (
                    "revoke_timeout = \"30s\"",
                    &format!("revoke_timeout = \"{revoke_timeout}\""),
                ),
            ],
        );
        Faulty { proxy, config }
    }

    fn kubesu(&self, args: &[&str]) -> std::process::Command {
        let mut all = vec![args[0], "--config", &self.config];
        all.extend_from_slice(&args[1..]);
        root_kubesu(&all)
    }
}

/// kubesu's ServiceAccounts of a user, straight from the API server.
async fn leases_of(user: &str) -> usize {
    Api::<ServiceAccount>::all(admin_client().await)
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/managed-by=kubesu,kubesu.io/user={user}"
        )))
        .await
        .expect("list")
        .items
        .len()
}

/// Block until the command printed "started" (the run is fully prepared).
fn wait_until_started(child: &mut std::process::Child) {
    use std::io::Read;
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut line = [0u8; 8];
    stdout
        .read_exact(&mut line)
        .expect("the command never started");
    assert_eq!(&line, b"started\n");
}

/// These tests count a user's leases and take the API server away: one at
/// a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

fn gc_clean() {
    let out = output(&mut root_kubesu(&["gc"]));
    assert_eq!(out.status.code(), Some(0), "gc: {}", stderr(&out));
}

#[tokio::test]
async fn an_unreachable_api_server_during_prepare_is_exit_69_within_the_deadline() {
    let _serial = serial().await;
    let faulty = Faulty::new("unreachable", "3s");
    faulty.proxy.set(Fault::Refuse);
    let start = Instant::now();
    let out = output(&mut faulty.kubesu(&["run", "--user", "grace", "--", "/usr/bin/true"]));
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        stderr(&out).contains("unavailable") || stderr(&out).contains("no answer"),
        "{}",
        stderr(&out)
    );
    // The start was audited, so is the failed end.
    let audit = std::fs::read_to_string("/var/log/kubesu/audit.jsonl").expect("audit file");
    let last = audit
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|r| r["user"] == "grace" && r["event"] == "end")
        .expect("an end record for the failed run");
    assert_eq!(last["status"], 69, "{last}");
    assert!(last["error"].is_string(), "{last}");
    assert_eq!(leases_of("grace").await, 0);
}

#[tokio::test]
async fn a_connection_cut_before_the_rolebinding_rolls_the_service_account_back() {
    let _serial = serial().await;
    let faulty = Faulty::new("cut", "10s");
    // Make sure carol's namespace exists so the cut hits the binding.
    let out = output(&mut faulty.kubesu(&["run", "--user", "carol", "--", "/usr/bin/true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    faulty.proxy.set(Fault::CutOnce("/rolebindings"));
    let out = output(&mut faulty.kubesu(&["run", "--user", "carol", "--", "/usr/bin/id"]));
    assert_ne!(
        out.status.code(),
        Some(0),
        "the run went on after losing its binding"
    );
    assert!(
        stdout(&out).is_empty(),
        "the command ran without its binding"
    );
    assert!(
        stderr(&out).contains("RoleBinding") || stderr(&out).contains("ClusterRole"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        leases_of("carol").await,
        0,
        "the rollback left the ServiceAccount"
    );
}

#[tokio::test]
async fn an_api_server_down_at_revocation_is_retried_then_left_to_gc() {
    let _serial = serial().await;
    let faulty = Faulty::new("down-at-exit", "3s");
    let mut child = faulty
        .kubesu(&[
            "run",
            "--json",
            "--user",
            "grace",
            "--",
            SH,
            "-c",
            "echo started; read line; exit 7",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Once the command runs, everything is prepared: take the API server away.
    wait_until_started(&mut child);
    faulty.proxy.set(Fault::Refuse);
    drop(child.stdin.take()); // the command reads EOF and exits 7
    let started = Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's status, whatever revocation did: {}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "revocation retried for {:?}",
        started.elapsed()
    );
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("kubesu gc"),
        "{}",
        stderr(&out)
    );
    assert_eq!(run_record(&out)["revoked"], false);
    assert_eq!(
        leases_of("grace").await,
        1,
        "the lease should still be there for gc"
    );
    faulty.proxy.set(Fault::None);
    gc_clean();
    assert_eq!(leases_of("grace").await, 0, "gc left the lease");
}

#[tokio::test]
async fn a_slow_api_server_delays_the_run_but_never_hangs_it() {
    let _serial = serial().await;
    let faulty = Faulty::new("slow", "10s");
    faulty.proxy.set(Fault::Delay(Duration::from_secs(2)));
    let start = Instant::now();
    let out = output(&mut faulty.kubesu(&["run", "--user", "grace", "--", "/usr/bin/true"]));
    let took = start.elapsed();
    assert!(
        matches!(out.status.code(), Some(0) | Some(69)),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(40), "took {took:?}");
    faulty.proxy.set(Fault::None);
    gc_clean();
    assert_eq!(leases_of("grace").await, 0);
}

#[tokio::test]
async fn thirty_runs_in_parallel_with_gc_in_a_loop_all_succeed_and_leave_nothing() {
    let _serial = serial().await;
    install();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut passes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = output(&mut root_kubesu(&["gc", "--json"]));
                assert_eq!(out.status.code(), Some(0), "gc: {}", stderr(&out));
                passes += 1;
            }
            passes
        })
    };
    let runs: Vec<_> = (0..30)
        .map(|i| {
            let user = ["alice", "bob", "carol"][i % 3];
            sudo_kubesu(&[
                "run",
                "--json",
                "--user",
                user,
                "--",
                SH,
                "-c",
                "kubectl get pods >/dev/null",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let mut finished = Vec::new();
    for run in runs {
        let out = run.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        finished.push(run_record(&out)["run"].as_str().expect("run").to_string());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = looping.join().expect("gc loop");
    assert!(passes > 0);
    let left = Api::<ServiceAccount>::all(admin_client().await)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubesu"))
        .await
        .expect("list");
    for account in left.items {
        let run = account
            .metadata
            .labels
            .unwrap_or_default()
            .remove("kubesu.io/run")
            .unwrap_or_default();
        assert!(
            !finished.contains(&run),
            "run {run} left its ServiceAccount"
        );
    }
}

/// Stops the bed's real API server; brings it back when dropped, whatever
/// the test did.
struct ApiServerDown;

impl ApiServerDown {
    fn now() -> ApiServerDown {
        bed("stop-apiserver");
        ApiServerDown
    }
}

impl Drop for ApiServerDown {
    fn drop(&mut self) {
        bed("start-apiserver");
    }
}

fn bed(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/bed.sh");
    let out = std::process::Command::new("bash")
        .args([script, command])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bed.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_real_api_server_stopped_while_the_command_runs_then_gc_cleans_up() {
    let _serial = serial().await;
    let config = &config_variant(
        "apiserver-down",
        &[
            ("request_timeout = \"10s\"", "request_timeout = \"2s\""),
            ("revoke_timeout = \"30s\"", "revoke_timeout = \"3s\""),
        ],
    );
    let mut child = root_kubesu(&[
        "run",
        "--config",
        config,
        "--json",
        "--user",
        "grace",
        "--",
        SH,
        "-c",
        "echo started; read line; exit 9",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    // Once the command runs, everything is prepared: take the API server away.
    wait_until_started(&mut child);
    let out = {
        let _down = ApiServerDown::now();
        drop(child.stdin.take());
        let started = Instant::now();
        let out = child.wait_with_output().expect("wait");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "revocation retried for {:?}",
            started.elapsed()
        );
        out
    };
    assert_eq!(
        out.status.code(),
        Some(9),
        "the command's own status: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("kubesu gc"), "{}", stderr(&out));
    assert_eq!(run_record(&out)["revoked"], false);
    assert_eq!(leases_of("grace").await, 1, "the lease is left for gc");
    gc_clean();
    assert_eq!(leases_of("grace").await, 0, "gc left the lease");
}
