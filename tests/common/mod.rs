//! Shared by the integration tests: the test bed's admin client and helpers
//! to act as a minted token. Tests that cannot reach the bed fail: they never
//! skip.
#![allow(dead_code)] // each test binary uses a different subset

pub mod proxy;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub const BED_HELP: &str = "the Kubernetes test bed is not running: start it with `bash tests/run.sh` (or `bash tests/testbed/bed.sh up`) as root";

pub fn bed_dir() -> String {
    std::env::var("KUBESU_TESTBED_DIR").unwrap_or_else(|_| "/var/tmp/kubesu-testbed".into())
}

pub fn admin_kubeconfig_path() -> String {
    format!("{}/admin.kubeconfig", bed_dir())
}

pub async fn admin_config() -> Config {
    let path = admin_kubeconfig_path();
    let kubeconfig =
        Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{BED_HELP} ({path}: {e})"));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{BED_HELP} ({path}: {e})"))
}

pub async fn admin_client() -> Client {
    let client = Client::try_from(admin_config().await).expect("admin client");
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("{BED_HELP} ({e})"));
    client
}

/// A client that authenticates with nothing but a bearer token.
pub async fn token_client(token: &str) -> Client {
    let mut config = admin_config().await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("token client")
}

/// The HTTP status of listing pods in `namespace` with `client`.
pub async fn list_pods_status(client: &Client, namespace: &str) -> u16 {
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("listing pods in {namespace} failed without an HTTP status: {e}"),
    }
}

/// Poll until `check` holds, at most `limit`. The API server caches successful
/// token reviews for 10 s, so a revoked token may work a little longer.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "{what}: still not true after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos)
}

// --- the installed kubesu, as a platform uses it ---------------------------

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const KUBESU: &str = "/usr/sbin/kubesu";
pub const CONFIG: &str = "/etc/kubesu/config.toml";
pub const SERVICE_USER: &str = "kubesu-svc";

/// Install this build of kubesu as an administrator would (see
/// tests/testbed/install-kubesu.sh), once per test binary. Needs root, the
/// bed and the test users: fails loudly without them. With
/// KUBESU_TEST_INSTALLED=1 (tests/run.sh, after `dpkg -i` of the package)
/// the packaged /usr/sbin/kubesu stays and everything else is installed.
pub fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "integration tests run as root: `sudo bash tests/run.sh`"
        );
        assert!(
            nix::unistd::User::from_name(SERVICE_USER)
                .ok()
                .flatten()
                .is_some(),
            "test users missing: run `bash tests/testbed/users.sh` (tests/run.sh does)"
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/testbed/install-kubesu.sh"
        );
        let out = Command::new("bash")
            .args([script, env!("CARGO_BIN_EXE_kubesu")])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{script} failed: {}{BED_HELP}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub fn ids_of(user: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(user)
        .expect("getpwnam")
        .unwrap_or_else(|| panic!("no user {user}"));
    (u.uid.as_raw(), u.gid.as_raw())
}

/// `sudo -n kubesu ARGS` as the platform's service user, as a platform runs it.
pub fn sudo_kubesu(args: &[&str]) -> Command {
    let mut command = as_service_user("sudo");
    command.arg("-n").arg(KUBESU).args(args);
    command
}

/// `program` started by the platform's service user, with a clean environment.
pub fn as_service_user(program: &str) -> Command {
    install();
    let (uid, gid) = ids_of(SERVICE_USER);
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null());
    command
}

/// kubesu as root directly (an administrator's shell), with a clean
/// environment.
pub fn root_kubesu(args: &[&str]) -> Command {
    install();
    let mut command = Command::new(KUBESU);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null());
    command
}

pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run record kubesu prints with --json: the last line of stderr.
pub fn run_record(o: &Output) -> serde_json::Value {
    let err = stderr(o);
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON record in: {err}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad record {line}: {e}"))
}

/// A root-owned copy of the example config with each `(from, to)` text
/// replaced, as /etc/kubesu/test-NAME.toml: for settings the installed
/// config does not have. Only a root shell may pass it with --config.
pub fn config_variant(name: &str, edits: &[(&str, &str)]) -> String {
    install();
    let mut text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .expect("example config");
    for (from, to) in edits {
        assert!(text.contains(from), "the example config has no {from:?}");
        text = text.replace(from, to);
    }
    let path = format!("/etc/kubesu/test-{name}.toml");
    std::fs::write(&path, text).expect("write config variant");
    path
}

/// The audit file's records of one run, each line a whole JSON object.
pub fn audit_records(run: &str) -> Vec<serde_json::Value> {
    let audit = std::fs::read_to_string("/var/log/kubesu/audit.jsonl").expect("audit file");
    audit
        .lines()
        .filter(|l| l.contains(run))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect()
}

/// Start `command` (a kubesu run) with its output piped, and read the first
/// line its command prints (a run id, "started"): by then the run is
/// prepared and its command running. The child's stdout is taken.
pub fn start_and_read_first_line(command: &mut Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the command's first line");
    (child, line.trim().to_string())
}

/// The child's status, or a failed test (and the child killed) after `secs`.
pub fn wait_at_most(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within {secs}s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// kubesu's own pid: the child of sudo.
pub fn kubesu_pid(sudo: &std::process::Child) -> i32 {
    let children =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", sudo.id(), sudo.id()))
            .expect("children");
    children
        .split_whitespace()
        .next()
        .expect("sudo has a child")
        .parse()
        .expect("pid")
}

/// The cgroup v2 directory process `pid` is in.
pub fn cgroup_of(pid: i32) -> std::path::PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (fields, tail) = l.split_once(" - ")?;
            (tail.split_whitespace().next()? == "cgroup2")
                .then(|| fields.split_whitespace().nth(4))?
        })
        .expect("a cgroup v2 mount (the bed's kubelet needs one)");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("0::");
    std::path::Path::new(mount).join(own.trim_start_matches('/'))
}
