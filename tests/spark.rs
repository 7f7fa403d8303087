//! A real spark-submit (pyspark from PyPI, installed by
//! tests/testbed/install-pyspark.sh) through `sudo -n kubesu run`, against
//! the test bed.
//!
//! Most tests give Spark an image the node does not have and may not pull,
//! so pods never start: what they test is the API calls Spark makes with the
//! run's credentials, where the objects it creates end up, and what is left
//! when the run is ended. They pass on a bed without nodes (Kubernetes 1.20).
//! The tests in `on_a_node` run SparkPi to completion on the bed's node, with
//! the Spark images built from the same pyspark releases
//! (tests/testbed/build-spark-image.sh).
//!
//! Every child process is bounded in time: a submission that hangs is ended
//! (SIGTERM, then SIGKILL) and the test fails with its output.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use kube::api::ListParams;
use kube::{Api, Client};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const SPARK_SUBMIT: &str = "/var/cache/kubesu-testbed/pyspark-3.5/bin/spark-submit";
/// An image the node does not have: pods are created and never start.
const IMAGE: &str = "spark.kubernetes.container.image=kubesu.test/absent:0";
/// Nothing is ever pulled here (and the bed has no registry to pull from).
const NO_PULL: &str = "spark.kubernetes.container.image.pullPolicy=Never";
const SPARK_PI: &str = "org.apache.spark.examples.SparkPi";
const EXAMPLES_JAR: &str = "local:///opt/spark/examples/jars/spark-examples_2.12-3.5.0.jar";
const RUN_LABEL: &str = "kubesu.io/run";
/// [spark] driver_logs in the example config the tests install.
const DRIVER_LOGS: &str = "/var/log/kubesu-drivers";

/// How long one spark-submit may take to do what the test waits for (a JVM
/// start and a few API calls: about 4 s on an idle machine).
const SUBMIT_LIMIT: Duration = Duration::from_secs(120);
/// How long a run may take to end once told to (SIGTERM) or once refused.
const END_LIMIT: Duration = Duration::from_secs(60);

/// Fails loudly, never skips, when pyspark is missing.
fn require_pyspark() {
    let ok = std::fs::metadata(SPARK_SUBMIT)
        .map(|m| m.is_file() && m.permissions().mode() & 0o001 != 0)
        .unwrap_or(false);
    assert!(
        ok,
        "pyspark 3.5 is not installed: {SPARK_SUBMIT} is missing or not executable by all; \
         run `bash tests/testbed/install-pyspark.sh` as root"
    );
}

// --- bounded child processes ------------------------------------------------

/// `sudo -n kubesu ARGS` running in the background, its output drained by
/// threads so that a chatty JVM never blocks on a full pipe.
struct Running {
    what: String,
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

fn start(what: &str, args: &[&str]) -> Running {
    start_command(what, sudo_kubesu(args))
}

fn start_command(what: &str, mut command: Command) -> Running {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    Running {
        what: what.to_string(),
        child,
        stdout,
        stderr,
    }
}

impl Running {
    fn exited(&mut self) -> bool {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("{}: wait: {e}", self.what))
            .is_some()
    }

    /// SIGTERM to sudo, which relays it to kubesu, which forwards it to the
    /// command's process group.
    fn terminate(&self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
    }

    /// Wait at most `limit` for the end. Past it, end the run and panic.
    async fn finish(mut self, limit: Duration) -> Output {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("{}: wait: {e}", self.what))
            {
                let stdout = self.stdout.join().expect("stdout reader");
                let stderr = self.stderr.join().expect("stderr reader");
                return Output {
                    status,
                    stdout,
                    stderr,
                };
            }
            if started.elapsed() > limit {
                self.terminate();
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline && !self.exited() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !self.exited() {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
                // The readers may never finish if a straggler holds the
                // pipes: report what is known without them.
                panic!(
                    "{}: still running after {limit:?}; it was sent SIGTERM (then SIGKILL)",
                    self.what
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn describe(what: &str, o: &Output) -> String {
    let err = stderr(o);
    let tail: Vec<&str> = err.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr (last 40 lines)\n{}",
        o.status,
        stdout(o),
        tail.join("\n")
    )
}

// --- the cluster, seen by the administrator ---------------------------------

/// Removes, when dropped (pass or fail), the pods a test's Spark application
/// left in `namespace`; the Services and ConfigMaps Spark owner-references to
/// a driver pod go with it. Until kubesu cleans up at revocation, this keeps
/// the tests from filling the bed.
struct Leftovers {
    namespace: String,
    selector: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args(["--kubeconfig", &admin_kubeconfig_path()])
            .args(["delete", "pods,services,configmaps", "--wait=false"])
            .args(["--ignore-not-found", "-n", &self.namespace])
            .args(["-l", &self.selector])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn app_cleanup(namespace: &str, app: &str) -> Leftovers {
    Leftovers {
        namespace: namespace.to_string(),
        selector: format!("spark-app-name={app}"),
    }
}

/// The executors' ConfigMap carries no run or app-name label, only Spark's
/// application id.
fn executor_cleanup(executor: &Pod) -> Option<Leftovers> {
    Some(Leftovers {
        namespace: executor.metadata.namespace.clone()?,
        selector: format!(
            "spark-app-selector={}",
            label(executor, "spark-app-selector")?
        ),
    })
}

/// A Spark application name that is also a valid label value, unique to
/// this test.
fn app_name(prefix: &str) -> String {
    let name = unique(prefix);
    assert!(name.len() <= 40, "app name too long: {name}");
    name
}

async fn pods(client: &Client, namespace: Option<&str>, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("list pods {selector}: {e}"))
        .items
}

/// Poll until a pod matching `selector` exists in `namespace`, while `run`
/// is still running. Panics with the run's output if it ends first.
async fn wait_for_pod(client: &Client, namespace: &str, selector: &str, run: &mut Running) -> Pod {
    let started = Instant::now();
    loop {
        if let Some(pod) = pods(client, Some(namespace), selector)
            .await
            .into_iter()
            .next()
        {
            return pod;
        }
        if run.exited() {
            let what = run.what.clone();
            let status = run.child.try_wait().ok().flatten();
            let err = std::mem::replace(&mut run.stderr, std::thread::spawn(Vec::new));
            let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!(
                "{what}: ended ({status:?}) before a pod {selector} appeared in {namespace}; stderr:\n{err}"
            );
        }
        if started.elapsed() > SUBMIT_LIMIT {
            run.terminate();
            panic!(
                "{}: no pod {selector} in {namespace} after {SUBMIT_LIMIT:?}",
                run.what
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

fn service_account_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

fn record_str(record: &serde_json::Value, key: &str) -> String {
    record[key]
        .as_str()
        .unwrap_or_else(|| panic!("run record has no string {key:?}: {record}"))
        .to_string()
}

/// A cluster-mode SparkPi through kubesu for `user`. With
/// `wait_completion`, spark-submit stays until the driver ends (never, on the
/// bed): the run lasts until the test ends it.
fn cluster_submission(user: &str, app: &str, wait_completion: bool) -> Running {
    let wait = format!("spark.kubernetes.submission.waitAppCompletion={wait_completion}");
    start(
        &format!("cluster-mode spark-submit for {user} ({app})"),
        &[
            "run",
            "--user",
            user,
            "--json",
            "--",
            SPARK_SUBMIT,
            "--deploy-mode",
            "cluster",
            "--name",
            app,
            "--conf",
            &wait,
            "--conf",
            IMAGE,
            "--conf",
            NO_PULL,
            "--class",
            SPARK_PI,
            EXAMPLES_JAR,
            "10",
        ],
    )
}

/// The driver pod of a waiting cluster-mode submission, seen while the run
/// lives; then the run is ended with SIGTERM and its record returned.
async fn driver_pod_during_run(admin: &Client, user: &str, app: &str) -> (Pod, serde_json::Value) {
    let namespace = format!("kubesu-{user}");
    let mut run = cluster_submission(user, app, true);
    let selector = format!("spark-app-name={app},spark-role=driver");
    let pod = wait_for_pod(admin, &namespace, &selector, &mut run).await;
    run.terminate();
    let output = run.finish(END_LIMIT).await;
    assert_eq!(
        output.status.code(),
        Some(143),
        "{}",
        describe("a run ended by SIGTERM exits 128+15", &output)
    );
    (pod, run_record(&output))
}

// --- the tests ------------------------------------------------------------

/// `spark-submit --verbose --version` parses its options and properties and
/// prints them, then stops: what Spark read, without a submission.
#[tokio::test]
async fn a_properties_file_reaches_spark_as_the_checked_copy_kubesu_wrote() {
    require_pyspark();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = dir.path().join("job.conf");
    // Java's syntax: an escape, a separator with blanks, a continued line.
    std::fs::write(
        &file,
        "# the job's settings\nspark.app.name = my\\u0041pp\n\
         spark.executor.extraJavaOptions=-Da=b \\\n   -Dc=d\n",
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (alice, _) = ids_of("alice");
    std::os::unix::fs::chown(&file, Some(alice), None).expect("chown");
    let file = file.to_string_lossy().into_owned();

    let output = start(
        "spark-submit --verbose --version with a properties file",
        &[
            "run",
            "--user",
            "alice",
            "--json",
            "--",
            SPARK_SUBMIT,
            "--verbose",
            "--properties-file",
            &file,
            "--version",
        ],
    )
    .finish(SUBMIT_LIMIT)
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        describe("spark-submit --version", &output)
    );
    let record = run_record(&output);
    let copy = format!(
        "/run/kubesu/{}/spark.properties",
        record_str(&record, "run")
    );
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    for expected in [
        format!("the properties file {copy}:"),
        "(spark.app.name,myApp)".to_string(),
        "(spark.executor.extraJavaOptions,-Da=b -Dc=d)".to_string(),
        // Forced by the config, beside the file's settings.
        "(spark.authenticate,true)".to_string(),
        "(spark.kubernetes.driver.podTemplateFile,/etc/kubesu/spark-driver-template.yaml)"
            .to_string(),
    ] {
        assert!(
            printed.contains(&expected),
            "spark-submit did not print {expected:?}: {printed}"
        );
    }
    let argv: Vec<&str> = record["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(argv.contains(&copy.as_str()), "{record}");
    assert!(!argv.contains(&file.as_str()), "{record}");
    assert!(
        !Path::new(&copy).exists(),
        "the copy outlived its run: {copy}"
    );
}

#[tokio::test]
async fn cluster_mode_driver_pod_is_in_the_users_namespace_as_the_runs_service_account() {
    require_pyspark();
    let admin = admin_client().await;
    let app = app_name("spark-cluster");
    let _cleanup = app_cleanup("kubesu-alice", &app);

    let (pod, record) = driver_pod_during_run(&admin, "alice", &app).await;

    let run = record_str(&record, "run");
    let service_account = record_str(&record, "service_account");
    assert_eq!(record_str(&record, "namespace"), "kubesu-alice", "{record}");
    assert_eq!(record_str(&record, "user"), "alice", "{record}");
    assert_eq!(
        pod.metadata.namespace.as_deref(),
        Some("kubesu-alice"),
        "driver pod {}",
        name_of(&pod)
    );
    assert_eq!(
        service_account_of(&pod),
        Some(service_account.as_str()),
        "driver pod {} runs as the run's ServiceAccount",
        name_of(&pod)
    );
    assert!(
        service_account.starts_with("kubesu-alice-"),
        "run ServiceAccount {service_account}"
    );
    assert_eq!(
        label(&pod, RUN_LABEL),
        Some(run.as_str()),
        "driver pod {} carries the run label",
        name_of(&pod)
    );
    // Nowhere else: the run's pods are all in alice's namespace.
    for other in pods(&admin, None, &format!("{RUN_LABEL}={run}")).await {
        assert_eq!(
            other.metadata.namespace.as_deref(),
            Some("kubesu-alice"),
            "pod {} of run {run} outside alice's namespace",
            name_of(&other)
        );
    }
}

#[tokio::test]
async fn submissions_aimed_at_another_namespace_or_master_are_refused_before_anything_is_created() {
    require_pyspark();
    let admin = admin_client().await;
    // carol: no other test in this binary runs as her, so any new object in
    // her namespace would be this test's.
    let user = "carol";
    let namespace = "kubesu-carol";
    let app = app_name("spark-refused");
    let _cleanup = app_cleanup(namespace, &app);

    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let existed = namespaces
        .get_opt(namespace)
        .await
        .expect("get namespace")
        .is_some();
    let account_names = async || -> BTreeSet<String> {
        accounts
            .list(&ListParams::default())
            .await
            .expect("list service accounts")
            .items
            .into_iter()
            .filter_map(|a| a.metadata.name)
            .collect()
    };
    let before = account_names().await;

    let cases: &[&[&str]] = &[
        &["--conf", "spark.kubernetes.namespace=kubesu-bob"],
        &["--conf", "spark.kubernetes.namespace=default"],
        &["--conf=spark.kubernetes.namespace=default"],
        &["--master", "k8s://https://127.0.0.1:16443"],
        &["--master=k8s://https://kubernetes.invalid:6443"],
        &["--master", "local[1]"],
        &[
            "--conf",
            "spark.master=k8s://https://kubernetes.invalid:6443",
        ],
        &[
            "--conf",
            "spark.kubernetes.driver.master=https://kubernetes.invalid:6443",
        ],
    ];
    for case in cases {
        let mut args = vec![
            "run",
            "--user",
            user,
            "--",
            SPARK_SUBMIT,
            "--deploy-mode",
            "cluster",
            "--name",
            &app,
        ];
        args.extend_from_slice(case);
        args.extend_from_slice(&["--conf", IMAGE, "--class", SPARK_PI, EXAMPLES_JAR, "10"]);
        let what = format!("spark-submit with {}", case.join(" "));
        let output = start(&what, &args).finish(END_LIMIT).await;
        assert_eq!(
            output.status.code(),
            Some(65),
            "{}",
            describe(&what, &output)
        );
        let err = stderr(&output);
        assert!(
            err.contains("refused") && err.contains(case[0]),
            "{what}: the refusal names the argument: {err}"
        );
        assert!(
            !err.contains("SparkSubmit") && !err.contains("Deployed Spark application"),
            "{what}: spark-submit must not have started: {err}"
        );
    }

    assert_eq!(
        namespaces
            .get_opt(namespace)
            .await
            .expect("get namespace")
            .is_some(),
        existed,
        "refused runs must not create (or delete) {namespace}"
    );
    let after = account_names().await;
    let created: Vec<_> = after.difference(&before).collect();
    assert!(
        created.is_empty(),
        "refused runs created ServiceAccounts in {namespace}: {created:?}"
    );
    let spark_pods = pods(&admin, None, &format!("spark-app-name={app}")).await;
    assert!(
        spark_pods.is_empty(),
        "refused runs created pods: {:?}",
        spark_pods.iter().map(name_of).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn two_users_submitting_at_once_each_see_only_their_own_namespace() {
    require_pyspark();
    let admin = admin_client().await;
    let users = ["alice", "bob"];
    let apps: Vec<String> = users
        .iter()
        .map(|u| app_name(&format!("spark-{u}")))
        .collect();
    let _cleanup: Vec<Leftovers> = users
        .iter()
        .zip(&apps)
        .map(|(u, app)| app_cleanup(&format!("kubesu-{u}"), app))
        .collect();

    // Both submit at once and stay (waitAppCompletion) while we look.
    let mut runs: Vec<Running> = users
        .iter()
        .zip(&apps)
        .map(|(u, app)| cluster_submission(u, app, true))
        .collect();
    let mut drivers = Vec::new();
    for ((user, app), run) in users.iter().zip(&apps).zip(runs.iter_mut()) {
        let selector = format!("spark-app-name={app},spark-role=driver");
        drivers.push(wait_for_pod(&admin, &format!("kubesu-{user}"), &selector, run).await);
    }

    // While both live, each user's credentials see their own namespace (and
    // their own driver in it) and are refused the other's.
    for (i, user) in users.iter().enumerate() {
        let other = users[1 - i];
        let own = start(
            &format!("{user} lists pods in their namespace"),
            &[
                "run",
                "--user",
                user,
                "--",
                "/usr/local/bin/kubectl",
                "get",
                "pods",
                "-o",
                "name",
            ],
        )
        .finish(END_LIMIT)
        .await;
        assert!(own.status.success(), "{}", describe("own namespace", &own));
        let listed = stdout(&own);
        assert!(
            listed.contains(name_of(&drivers[i])),
            "{user} sees their driver {}: {listed}",
            name_of(&drivers[i])
        );
        assert!(
            !listed.contains(name_of(&drivers[1 - i])),
            "{user} sees {other}'s driver: {listed}"
        );
        let theirs = start(
            &format!("{user} lists pods in {other}'s namespace"),
            &[
                "run",
                "--user",
                user,
                "--",
                "/usr/local/bin/kubectl",
                "get",
                "pods",
                "-n",
                &format!("kubesu-{other}"),
            ],
        )
        .finish(END_LIMIT)
        .await;
        assert!(
            !theirs.status.success() && stderr(&theirs).contains("forbidden"),
            "{}",
            describe(
                &format!("{user} in kubesu-{other} must be forbidden"),
                &theirs
            )
        );
    }

    for run in &runs {
        run.terminate();
    }
    let mut records = Vec::new();
    for run in runs {
        let output = run.finish(END_LIMIT).await;
        records.push(run_record(&output));
    }

    for (i, user) in users.iter().enumerate() {
        let record = &records[i];
        let driver = &drivers[i];
        let namespace = format!("kubesu-{user}");
        assert_eq!(record_str(record, "user"), *user, "{record}");
        assert_eq!(record_str(record, "namespace"), namespace, "{record}");
        assert_eq!(
            driver.metadata.namespace.as_deref(),
            Some(namespace.as_str())
        );
        assert_eq!(
            service_account_of(driver),
            Some(record_str(record, "service_account").as_str()),
            "{user}'s driver {} runs as {user}'s run ServiceAccount",
            name_of(driver)
        );
        let run = record_str(record, "run");
        assert_eq!(label(driver, RUN_LABEL), Some(run.as_str()));
        for pod in pods(&admin, None, &format!("{RUN_LABEL}={run}")).await {
            assert_eq!(
                pod.metadata.namespace.as_deref(),
                Some(namespace.as_str()),
                "pod {} of {user}'s run {run} outside {namespace}",
                name_of(&pod)
            );
        }
    }
    assert_ne!(
        record_str(&records[0], "run"),
        record_str(&records[1], "run")
    );
}

/// A PySpark script that needs one executor; on the bed it waits forever.
fn pi_script() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("kubesu-spark-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = dir.path().join("pi.py");
    std::fs::write(
        &script,
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.getOrCreate()\n\
         print('COUNT', spark.sparkContext.parallelize(range(1000), 2).count(), flush=True)\n\
         spark.stop()\n",
    )
    .expect("write pi.py");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (dir, script)
}

/// The uid of the process whose command line holds `needle`, if any.
fn uid_of_process_with(needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle)
            && String::from_utf8_lossy(&cmdline).contains("org.apache.spark.deploy.SparkSubmit")
        {
            let status = std::fs::read_to_string(path.join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

/// Client mode: the driver runs locally as alice and asks for an executor
/// pod in alice's namespace. Returns the executor pod seen during the run,
/// the run's record, and Spark's application id.
async fn client_mode_run(admin: &Client, app: &str, script: &Path) -> (Pod, serde_json::Value) {
    let script = script.to_str().expect("utf-8 path");
    let mut run = start(
        &format!("client-mode spark-submit for alice ({app})"),
        &[
            "run",
            "--user",
            "alice",
            "--json",
            "--",
            SPARK_SUBMIT,
            "--deploy-mode",
            "client",
            "--name",
            app,
            "--conf",
            "spark.executor.instances=1",
            "--conf",
            "spark.scheduler.maxRegisteredResourcesWaitingTime=5s",
            "--conf",
            IMAGE,
            "--conf",
            NO_PULL,
            script,
        ],
    );
    let selector = format!("spark-app-name={app},spark-role=executor");
    let executor = wait_for_pod(admin, "kubesu-alice", &selector, &mut run).await;
    let (alice, _) = ids_of("alice");
    assert_eq!(
        uid_of_process_with(app),
        Some(alice),
        "the client-mode driver (the local JVM) runs as alice"
    );
    run.terminate();
    let output = run.finish(END_LIMIT).await;
    assert_eq!(
        output.status.code(),
        Some(143),
        "{}",
        describe("a run ended by SIGTERM exits 128+15", &output)
    );
    let record = run_record(&output);
    assert!(
        record["signals_forwarded"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "SIGTERM")),
        "kubesu forwarded SIGTERM to the driver: {record}"
    );
    (executor, record)
}

#[tokio::test]
async fn client_mode_driver_runs_as_the_user_and_creates_executors_in_their_namespace() {
    require_pyspark();
    let admin = admin_client().await;
    let app = app_name("spark-client");
    let _cleanup = app_cleanup("kubesu-alice", &app);
    let (_dir, script) = pi_script();

    let (executor, record) = client_mode_run(&admin, &app, &script).await;
    let _executor_maps = executor_cleanup(&executor);

    assert_eq!(executor.metadata.namespace.as_deref(), Some("kubesu-alice"));
    assert_eq!(
        label(&executor, RUN_LABEL),
        Some(record_str(&record, "run").as_str()),
        "executor pod {} carries the run label",
        name_of(&executor)
    );
    assert_eq!(
        service_account_of(&executor),
        Some(record_str(&record, "service_account").as_str()),
        "executor pod {} runs as the run's ServiceAccount",
        name_of(&executor)
    );
}

// --- what Spark leaves behind: needs kubesu's cleanup at revocation --------

/// Every Spark object of `run` still in `namespace`: pods with the run label,
/// Services selecting them, ConfigMaps carrying the run's Spark properties
/// (the driver's) or its application id (the executors').
async fn spark_objects_of_run(
    admin: &Client,
    namespace: &str,
    run: &str,
    app_id: Option<&str>,
) -> Vec<String> {
    let mut left = Vec::new();
    for pod in pods(admin, Some(namespace), &format!("{RUN_LABEL}={run}")).await {
        left.push(format!("pod/{}", name_of(&pod)));
    }
    let services: Api<Service> = Api::namespaced(admin.clone(), namespace);
    for service in services
        .list(&ListParams::default())
        .await
        .expect("list services")
        .items
    {
        let selects_run = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(RUN_LABEL))
            .is_some_and(|v| v == run);
        if selects_run {
            left.push(format!(
                "service/{}",
                service.metadata.name.unwrap_or_default()
            ));
        }
    }
    let marker = format!("{RUN_LABEL}={run}");
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), namespace);
    for map in configmaps
        .list(&ListParams::default())
        .await
        .expect("list configmaps")
        .items
    {
        let mentions_run = map
            .data
            .as_ref()
            .is_some_and(|d| d.values().any(|v| v.contains(&marker)));
        let of_app = app_id.is_some_and(|id| {
            map.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("spark-app-selector"))
                .is_some_and(|v| v == id)
        });
        if mentions_run || of_app {
            left.push(format!(
                "configmap/{}",
                map.metadata.name.unwrap_or_default()
            ));
        }
    }
    left
}

async fn assert_nothing_left(
    admin: &Client,
    run: &str,
    app_id: Option<&str>,
    service_account: &str,
) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kubesu-alice");
    let limit = Duration::from_secs(30);
    let started = Instant::now();
    loop {
        let mut left = spark_objects_of_run(admin, "kubesu-alice", run, app_id).await;
        if accounts
            .get_opt(service_account)
            .await
            .expect("get service account")
            .is_some()
        {
            left.push(format!("serviceaccount/{service_account}"));
        }
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "after run {run} ended, kubesu-alice still holds {left:?} ({limit:?} later)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn cluster_mode_leftovers_are_removed_at_revocation() {
    require_pyspark();
    let admin = admin_client().await;
    let app = app_name("spark-leftovers");
    let _cleanup = app_cleanup("kubesu-alice", &app);

    // The platform cancels a waiting cluster-mode job: its driver pod, the
    // pod's Service and ConfigMap must go with the run.
    let (driver, record) = driver_pod_during_run(&admin, "alice", &app).await;
    let run = record_str(&record, "run");
    assert_eq!(record["revoked"], true, "{record}");
    assert_nothing_left(&admin, &run, None, &record_str(&record, "service_account")).await;
    let driver_pod: Api<Pod> = Api::namespaced(admin.clone(), "kubesu-alice");
    let left = driver_pod.get_opt(name_of(&driver)).await.expect("get pod");
    assert!(
        left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "driver pod {} of run {run} is left",
        name_of(&driver)
    );
}

#[tokio::test]
async fn a_cluster_submission_that_would_not_wait_is_refused() {
    require_pyspark();
    let app = app_name("spark-nowait");
    let output = cluster_submission("alice", &app, false)
        .finish(SUBMIT_LIMIT)
        .await;
    assert_eq!(
        output.status.code(),
        Some(65),
        "{}",
        describe("waitAppCompletion=false", &output)
    );
    assert!(
        stderr(&output).contains("waited for"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn client_mode_leftovers_are_removed_when_the_run_is_terminated() {
    require_pyspark();
    let admin = admin_client().await;
    let app = app_name("spark-client-left");
    let _cleanup = app_cleanup("kubesu-alice", &app);
    let (_dir, script) = pi_script();

    let (executor, record) = client_mode_run(&admin, &app, &script).await;
    let _executor_maps = executor_cleanup(&executor);

    // Spark deletes its executors on a clean stop, but not reliably on
    // SIGTERM: kubesu must.
    let app_id = label(&executor, "spark-app-selector")
        .expect("executor pods carry spark-app-selector")
        .to_string();
    assert_nothing_left(
        &admin,
        &record_str(&record, "run"),
        Some(&app_id),
        &record_str(&record, "service_account"),
    )
    .await;
}

// --- jobs that run to completion on the node --------------------------------

/// SparkPi to completion on the bed's node, in both deploy modes, with each
/// pyspark release the bed has an image of. Needs a node: not run on the
/// Kubernetes 1.20 bed (tests/run.sh skips this module there, by name).
mod on_a_node {
    use super::*;
    use futures::{AsyncBufReadExt, StreamExt};
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use kube::api::LogParams;

    /// A job on the node: JVM starts in pods on two cores, with the image's
    /// Python for the PySpark workers.
    const JOB_LIMIT: Duration = Duration::from_secs(420);
    /// SparkPi as a PySpark script in the bed's Spark image.
    const PI_IN_IMAGE: &str = "local:///opt/kubesu/pi.py";
    /// Small pods, so that a driver and two executors fit on two cores.
    const SMALL: [&str; 10] = [
        "--conf",
        "spark.executor.instances=2",
        "--conf",
        "spark.kubernetes.driver.request.cores=0.3",
        "--conf",
        "spark.kubernetes.executor.request.cores=0.3",
        "--conf",
        "spark.driver.memory=512m",
        "--conf",
        "spark.executor.memory=512m",
    ];

    /// A pyspark release the bed has a spark-submit and an image of.
    struct Release {
        series: &'static str,
    }

    const SPARK_3: Release = Release { series: "3.5" };
    const SPARK_4: Release = Release { series: "4.3" };

    impl Release {
        fn spark_submit(&self) -> String {
            format!(
                "/var/cache/kubesu-testbed/pyspark-{}/bin/spark-submit",
                self.series
            )
        }

        /// The image the bed built from this release and imported into the
        /// node's containerd (`bed.sh env` names it).
        fn image(&self) -> String {
            let variable = format!(
                "KUBESU_TESTBED_SPARK_IMAGE_{}",
                self.series.replace('.', "_")
            );
            let image = std::env::var(&variable).unwrap_or_else(|_| {
                panic!(
                    "{variable} is not set: start the bed with KUBESU_TESTBED_SPARK=\"3.5 4.3\" \
                     and eval \"$(bash tests/testbed/bed.sh env)\" (tests/run.sh does)"
                )
            });
            let submit = self.spark_submit();
            assert!(
                std::fs::metadata(&submit).is_ok(),
                "pyspark {} is not installed ({submit} is missing): \
                 bash tests/testbed/install-pyspark.sh {}",
                self.series,
                self.series
            );
            image
        }
    }

    /// What the test saw of a job while its run lived.
    #[derive(Default)]
    struct Seen {
        /// The run's minted token, read from its run directory.
        token: Option<String>,
        /// (pod name, ServiceAccount) of every executor seen Running.
        running_executors: BTreeSet<(String, String)>,
        /// The ServiceAccount token the kubelet projected into one of the
        /// job's pods, read on the node.
        pod_token: Option<String>,
        driver_log: Option<tokio::task::JoinHandle<String>>,
        /// (name, its kubesu.io/run label) of every Service selecting the
        /// run's pods: a cluster-mode driver's.
        services: BTreeSet<(String, Option<String>)>,
    }

    /// Follows the log of `pod` from the start of its container to its end,
    /// in the background: a cluster-mode driver's output is only there, and
    /// revocation deletes the pod once spark-submit returns.
    fn follow_log(client: &Client, namespace: &str, pod: &str) -> tokio::task::JoinHandle<String> {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pod = pod.to_string();
        tokio::spawn(async move {
            let params = LogParams {
                follow: true,
                ..Default::default()
            };
            let started = Instant::now();
            let mut text = String::new();
            loop {
                match api.log_stream(&pod, &params).await {
                    Ok(stream) => {
                        let mut lines = stream.lines();
                        while let Some(Ok(line)) = lines.next().await {
                            text.push_str(&line);
                            text.push('\n');
                        }
                        // A stream can end before the container does (seen
                        // under load): follow again until it has ended or
                        // is gone. Repeated lines do no harm to the search.
                        if driver_done(&api, &pod).await {
                            return text;
                        }
                    }
                    // Not started yet: the log exists once the container does.
                    Err(_) if started.elapsed() < JOB_LIMIT => {}
                    Err(e) => return format!("{text}(no log of {pod}: {e})"),
                }
                if started.elapsed() >= JOB_LIMIT {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    }

    /// Whether `pod` is gone or its containers have all terminated.
    async fn driver_done(api: &Api<Pod>, pod: &str) -> bool {
        match api.get_opt(pod).await {
            Ok(Some(found)) => found
                .status
                .and_then(|s| s.container_statuses)
                .is_some_and(|all| {
                    all.iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
                }),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Watches `app`'s pods in alice's namespace until the run ends (at most
    /// JOB_LIMIT), then returns the run's output and what was seen.
    async fn watch_job(
        admin: &Client,
        app: &str,
        mut run: Running,
        cluster: bool,
    ) -> (Output, Seen) {
        let mut seen = Seen::default();
        let started = Instant::now();
        while !run.exited() {
            for pod in pods(
                admin,
                Some("kubesu-alice"),
                &format!("spark-app-name={app}"),
            )
            .await
            {
                if seen.token.is_none()
                    && let Some(run_id) = label(&pod, RUN_LABEL)
                {
                    seen.token =
                        std::fs::read_to_string(format!("/run/kubesu/{run_id}/token")).ok();
                }
                if cluster
                    && seen.services.is_empty()
                    && let Some(run_id) = label(&pod, RUN_LABEL)
                {
                    seen.services
                        .extend(services_selecting(admin, run_id).await);
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if seen.pod_token.is_none() && phase == Some("Running") {
                    seen.pod_token = projected_token(&pod);
                }
                match label(&pod, "spark-role") {
                    Some("driver") if cluster && seen.driver_log.is_none() => {
                        seen.driver_log = Some(follow_log(admin, "kubesu-alice", name_of(&pod)));
                    }
                    Some("executor") if phase == Some("Running") => {
                        seen.running_executors.insert((
                            name_of(&pod).to_string(),
                            service_account_of(&pod).unwrap_or("").to_string(),
                        ));
                    }
                    _ => {}
                }
            }
            if started.elapsed() > JOB_LIMIT {
                // finish() ends the run and fails the test.
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (run.finish(END_LIMIT).await, seen)
    }

    /// (name, kubesu.io/run label) of the Services in alice's namespace
    /// that select the pods of run `run_id`.
    async fn services_selecting(admin: &Client, run_id: &str) -> Vec<(String, Option<String>)> {
        let services: Api<Service> = Api::namespaced(admin.clone(), "kubesu-alice");
        let listed = services.list(&ListParams::default()).await;
        listed
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.get(RUN_LABEL))
                    .is_some_and(|v| v == run_id)
            })
            .map(|s| {
                let run = s.metadata.labels.and_then(|mut l| l.remove(RUN_LABEL));
                (s.metadata.name.unwrap_or_default(), run)
            })
            .collect()
    }

    /// The token the kubelet mounted into `pod`: a projected volume under
    /// the kubelet's root dir on this node (tests/testbed/bed.sh).
    fn projected_token(pod: &Pod) -> Option<String> {
        let uid = pod.metadata.uid.as_deref()?;
        let volumes = format!(
            "{}/kubelet/pods/{uid}/volumes/kubernetes.io~projected",
            bed_dir()
        );
        std::fs::read_dir(volumes)
            .ok()?
            .flatten()
            .find_map(|volume| std::fs::read_to_string(volume.path().join("token")).ok())
    }

    /// The claims of a JWT, unverified: what the API server put in the token.
    fn claims(token: &str) -> serde_json::Value {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT has three parts");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .expect("base64url claims");
        serde_json::from_slice(&json).expect("JSON claims")
    }

    fn submission(release: &Release, app: &str, mode: &str, tail: &[&str]) -> Running {
        submission_with(release, app, mode, tail, None)
    }

    /// A submission through sudo, or with `config` from a root shell (only
    /// root may name a config).
    fn submission_with(
        release: &Release,
        app: &str,
        mode: &str,
        tail: &[&str],
        config: Option<&str>,
    ) -> Running {
        let submit = release.spark_submit();
        let image = format!("spark.kubernetes.container.image={}", release.image());
        let mut args = vec!["run"];
        if let Some(config) = config {
            args.extend_from_slice(&["--config", config]);
        }
        args.extend_from_slice(&[
            "--user",
            "alice",
            "--json",
            "--",
            &submit,
            "--deploy-mode",
            mode,
            "--name",
            app,
            "--conf",
            &image,
            "--conf",
            NO_PULL,
        ]);
        args.extend_from_slice(&SMALL);
        args.extend_from_slice(tail);
        let what = format!(
            "{mode}-mode SparkPi with pyspark {} ({app})",
            release.series
        );
        match config {
            Some(_) => start_command(&what, root_kubesu(&args)),
            None => start(&what, &args),
        }
    }

    /// After the run: nothing of it is left in the namespace, its
    /// RoleBinding is gone, and its token answers 401.
    async fn assert_revoked(admin: &Client, record: &serde_json::Value, seen: &Seen) {
        let run = record_str(record, "run");
        // kubesu forces the application id; the executors' ConfigMap carries
        // only that.
        let app_id = format!("spark-kubesu-{run}");
        let app_id = Some(app_id.as_str());
        assert_nothing_left(admin, &run, app_id, &record_str(record, "service_account")).await;
        let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "kubesu-alice");
        let left = bindings
            .list(&ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
            .await
            .expect("list rolebindings");
        assert!(
            left.items.is_empty(),
            "run {run} left RoleBindings {:?}",
            left.items
                .iter()
                .map(|b| b.metadata.name.clone())
                .collect::<Vec<_>>()
        );
        let token = seen.token.as_deref().unwrap_or_else(|| {
            panic!("the test never read run {run}'s token from /run/kubesu/{run}/token")
        });
        token_answers_401(token, "the run's token answers 401").await;
    }

    /// Polls (the API server caches successful token checks for 10 s).
    async fn token_answers_401(token: &str, what: &str) {
        let client = token_client(token.trim()).await;
        eventually(Duration::from_secs(30), what, || {
            let client = client.clone();
            async move { list_pods_status(&client, "kubesu-alice").await == 401 }
        })
        .await;
    }

    /// The token a pod of the run mounted is a projected one, bound to that
    /// pod and to the run's ServiceAccount (no legacy Secret token), and it
    /// dies with them.
    async fn assert_pod_token_revoked(record: &serde_json::Value, seen: &Seen) {
        let run = record_str(record, "run");
        let pod_token = seen
            .pod_token
            .as_deref()
            .unwrap_or_else(|| panic!("no projected token was read from a pod of run {run}"));
        let bound = &claims(pod_token)["kubernetes.io"];
        assert!(
            bound["pod"]["name"].is_string()
                && bound["serviceaccount"]["name"] == record["service_account"],
            "a pod-bound token of the run's ServiceAccount: {bound}"
        );
        token_answers_401(pod_token, "the pod's token answers 401").await;
    }

    fn assert_executors_ran_as_the_run(seen: &Seen, record: &serde_json::Value) {
        assert!(
            !seen.running_executors.is_empty(),
            "no executor pod was seen Running: {record}"
        );
        let account = record_str(record, "service_account");
        for (pod, sa) in &seen.running_executors {
            assert_eq!(
                sa, &account,
                "executor {pod} runs as the run's ServiceAccount"
            );
        }
    }

    async fn sparkpi_in_cluster_mode_completes(release: Release) {
        require_pyspark();
        let admin = admin_client().await;
        let app = app_name(&format!("pi-cluster-{}", release.series.replace('.', "")));
        let _cleanup = app_cleanup("kubesu-alice", &app);
        // Spark 4.2+ applies a NetworkPolicy per driver, which a run may not
        // create: kubesu leaves that step out, with no help from the user.
        let run = submission(&release, &app, "cluster", &[PI_IN_IMAGE, "8"]);
        let (output, mut seen) = watch_job(&admin, &app, run, true).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            describe("SparkPi in cluster mode", &output)
        );
        let log = match seen.driver_log.take() {
            Some(log) => log.await.expect("driver log reader"),
            None => panic!("no driver pod was seen: {}", describe("SparkPi", &output)),
        };
        assert!(
            log.contains("Pi is roughly 3.1"),
            "the driver printed SparkPi's result; its log:\n{log}"
        );
        let record = run_record(&output);
        assert_executors_ran_as_the_run(&seen, &record);
        // kubesu forces the run's label onto the driver's Service: its
        // admission policy refuses a run's Service without it.
        let run = record_str(&record, "run");
        assert!(!seen.services.is_empty(), "no driver Service was seen");
        for (service, label) in &seen.services {
            assert_eq!(
                label.as_deref(),
                Some(run.as_str()),
                "the driver's Service {service} carries the run's label"
            );
        }
        assert_revoked(&admin, &record, &seen).await;
        assert_pod_token_revoked(&record, &seen).await;
    }

    async fn sparkpi_in_client_mode_completes(release: Release) {
        require_pyspark();
        let admin = admin_client().await;
        let app = app_name(&format!("pi-client-{}", release.series.replace('.', "")));
        let _cleanup = app_cleanup("kubesu-alice", &app);
        let (_dir, script) = sparkpi_script();
        let script = script.to_str().expect("utf-8 path").to_string();
        // The driver runs here, as alice; executors in pods call back to it
        // on the node's bridge address.
        let tail = [
            "--conf",
            "spark.driver.host=10.244.0.1",
            "--conf",
            "spark.driver.bindAddress=10.244.0.1",
            &script,
        ];
        let run = submission(&release, &app, "client", &tail);
        let (output, seen) = watch_job(&admin, &app, run, false).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            describe("SparkPi in client mode", &output)
        );
        assert!(
            stdout(&output).contains("Pi is roughly 3.1"),
            "{}",
            describe("the local driver prints SparkPi's result", &output)
        );
        let record = run_record(&output);
        assert_executors_ran_as_the_run(&seen, &record);
        assert_revoked(&admin, &record, &seen).await;
        assert_pod_token_revoked(&record, &seen).await;
    }

    /// The image's SparkPi script, for a driver that runs here: a copy alice
    /// can read.
    fn sparkpi_script() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("kubesu-sparkpi-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let script = dir.path().join("pi.py");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/testbed/spark-image/pi.py"
            ),
            &script,
        )
        .expect("copy pi.py");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        (dir, script)
    }

    #[tokio::test]
    async fn sparkpi_with_spark_3_completes_in_cluster_mode_and_leaves_nothing() {
        sparkpi_in_cluster_mode_completes(SPARK_3).await;
    }

    #[tokio::test]
    async fn sparkpi_with_spark_4_completes_in_cluster_mode_and_leaves_nothing() {
        sparkpi_in_cluster_mode_completes(SPARK_4).await;
    }

    #[tokio::test]
    async fn sparkpi_with_spark_3_completes_in_client_mode_and_leaves_nothing() {
        sparkpi_in_client_mode_completes(SPARK_3).await;
    }

    #[tokio::test]
    async fn sparkpi_with_spark_4_completes_in_client_mode_and_leaves_nothing() {
        sparkpi_in_client_mode_completes(SPARK_4).await;
    }

    #[tokio::test]
    /// spark-submit 4.3.0 exits 0 in cluster mode although its driver pod
    /// failed: kubesu ends the run with the driver container's status
    /// (Spark's 101 for a class it cannot load), read before revocation
    /// deletes the pod.
    async fn a_driver_that_fails_with_spark_4_ends_the_run_with_the_drivers_status_and_leaves_nothing()
     {
        require_pyspark();
        let admin = admin_client().await;
        let app = app_name("pi-fails");
        let _cleanup = app_cleanup("kubesu-alice", &app);
        // A jar the image has (Spark's own core), a class it does not.
        let image = SPARK_4.image();
        let version = image.rsplit_once(':').map_or("", |(_, v)| v);
        let jar = format!("local:///opt/spark/jars/spark-core_2.13-{version}.jar");
        let tail = ["--class", "org.example.NoSuchMain", &jar];
        let run = submission(&SPARK_4, &app, "cluster", &tail);
        let (output, seen) = watch_job(&admin, &app, run, true).await;
        assert_eq!(
            output.status.code(),
            Some(101),
            "{}",
            describe(
                "a failed driver: the driver container's status, not kubesu's own",
                &output
            )
        );
        assert!(
            stderr(&output).contains("failed with exit status 101"),
            "{}",
            describe("kubesu says why the run failed", &output)
        );
        let record = run_record(&output);
        assert_eq!(record["revoked"], true, "{record}");
        assert_revoked(&admin, &record, &seen).await;
        // SparkSubmit in the driver pod logs this for a missing main class.
        assert_driver_log_kept(&record, &["Failed to load class", "org.example.NoSuchMain"]);
    }

    /// Without [spark] driver_logs too: spark-submit 3.5.9 exits 0 in
    /// cluster mode although its driver failed, and the run ends with the
    /// driver container's status all the same.
    #[tokio::test]
    async fn a_driver_that_fails_with_spark_3_ends_the_run_with_its_status_without_kept_logs() {
        require_pyspark();
        let admin = admin_client().await;
        let app = app_name("pi-fails-3");
        let _cleanup = app_cleanup("kubesu-alice", &app);
        let config = common::config_variant(
            "no-driver-logs",
            &[("driver_logs = \"/var/log/kubesu-drivers\"", "")],
        );
        let image = SPARK_3.image();
        let version = image.rsplit_once(':').map_or("", |(_, v)| v);
        let jar = format!("local:///opt/spark/jars/spark-core_2.12-{version}.jar");
        let tail = ["--class", "org.example.NoSuchMain", &jar];
        let run = submission_with(&SPARK_3, &app, "cluster", &tail, Some(&config));
        let (output, seen) = watch_job(&admin, &app, run, true).await;
        assert_eq!(
            output.status.code(),
            Some(101),
            "{}",
            describe(
                "a failed driver, no driver_logs: the driver's status",
                &output
            )
        );
        let record = run_record(&output);
        assert_eq!(record["revoked"], true, "{record}");
        assert!(record.get("driver_logs").is_none(), "{record}");
        assert_revoked(&admin, &record, &seen).await;
    }

    /// A run for alice that prints its run id and sleeps, with a pod
    /// labelled as its driver (as Spark labels one) that has printed
    /// `says`, within Pod Security "restricted". Returns the run's sudo,
    /// its run id and the pod's name.
    async fn a_run_with_a_printing_driver(says: &str) -> (Child, String, String) {
        let image = SPARK_3.image();
        let (child, run) = start_and_read_first_line(&mut sudo_kubesu(&[
            "run",
            "--user",
            "alice",
            "--",
            "/usr/bin/sh",
            "-c",
            "echo \"$KUBESU_RUN_ID\"; exec sleep 300",
        ]));
        let name = format!("spark-{run}-driver");
        let driver: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {RUN_LABEL: run, "spark-role": "driver"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "spark-kubernetes-driver",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", format!("echo {says}; exec sleep 300")],
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }],
            },
        }))
        .expect("pod manifest");
        let pods = Api::<Pod>::namespaced(admin_client().await, "kubesu-alice");
        pods.create(&kube::api::PostParams::default(), &driver)
            .await
            .expect("create the driver pod");
        for _ in 0..240 {
            let log = pods.logs(&name, &Default::default()).await;
            if log.is_ok_and(|l| l.contains(says)) {
                return (child, run, name);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the driver pod {name} never printed {says:?}");
    }

    async fn pod_is_going(name: &str) -> bool {
        Api::<Pod>::namespaced(admin_client().await, "kubesu-alice")
            .get_opt(name)
            .await
            .expect("get the driver pod")
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    }

    /// `kubesu revoke --end` of a live run keeps its driver's log before
    /// the driver pod goes, as the run's own revocation does: ending a job
    /// from outside does not erase what it printed.
    #[tokio::test]
    async fn kubesu_revoke_keeps_the_driver_log_before_the_driver_pod_goes() {
        let (child, run, pod) = a_run_with_a_printing_driver("the driver says goodbye").await;
        let revoked = output(&mut root_kubesu(&["revoke", "--end", &run]));
        assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
        let kept = format!("{DRIVER_LOGS}/{run}.log");
        assert!(
            stdout(&revoked).contains(&kept),
            "revoke names the kept log: {}",
            stdout(&revoked)
        );
        assert_driver_log_file(&run, &["the driver says goodbye"]);
        assert!(pod_is_going(&pod).await, "the driver pod {pod} goes");
        let out = child.wait_with_output().expect("the run ends");
        assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    }

    /// A run whose kubesu was killed (SIGKILL: no revocation of its own)
    /// has its driver's log kept by gc before gc deletes the driver pod.
    #[tokio::test]
    async fn gc_keeps_the_driver_log_of_a_killed_run_before_the_driver_pod_goes() {
        let (mut child, run, pod) =
            a_run_with_a_printing_driver("the driver outlived kubesu").await;
        kill(Pid::from_raw(kubesu_pid(&child)), Signal::SIGKILL).expect("kill kubesu");
        let _ = child.wait();
        let gc = output(&mut root_kubesu(&["gc", "--json"]));
        assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
        let report: serde_json::Value = serde_json::from_slice(&gc.stdout)
            .unwrap_or_else(|e| panic!("gc --json: {e}: {}", stdout(&gc)));
        let kept = format!("{DRIVER_LOGS}/{run}.log");
        assert!(
            report["driver_logs_kept"]
                .as_array()
                .is_some_and(|k| k.iter().any(|p| p == &kept)),
            "gc names the kept log: {report}"
        );
        assert_driver_log_file(&run, &["the driver outlived kubesu"]);
        assert!(pod_is_going(&pod).await, "the driver pod {pod} goes");
    }

    /// The end record names the driver's log, kept where the example config
    /// says ([spark] driver_logs): a root-owned file named by the run,
    /// holding what the driver printed (`says`), readable by the end user
    /// (alice) and the platform that called (kubesu-svc), and by no other
    /// user (bob).
    fn assert_driver_log_kept(record: &serde_json::Value, says: &[&str]) {
        let run = record_str(record, "run");
        assert_eq!(
            record["driver_logs"],
            serde_json::json!([format!("{DRIVER_LOGS}/{run}.log")]),
            "the end record lists the kept driver log: {record}"
        );
        assert_driver_log_file(&run, says);
    }

    /// The kept log of `run`'s one driver: root's, holding `says`, read by
    /// alice and the platform's user, not by bob.
    fn assert_driver_log_file(run: &str, says: &[&str]) {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        let expected = format!("{DRIVER_LOGS}/{run}.log");
        let meta = std::fs::symlink_metadata(&expected)
            .unwrap_or_else(|e| panic!("driver log {expected}: {e}"));
        assert!(meta.is_file(), "{expected} is a regular file");
        // Owner and group root; the group bits show the ACL's mask (r--):
        // alice and kubesu-svc read it through ACL entries of their own.
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o640),
            "{expected}: owner, group and mode"
        );
        let text = std::fs::read_to_string(&expected).expect("read the driver log as root");
        for part in says {
            assert!(
                text.contains(part),
                "{expected} has the driver's {part:?}:\n{text}"
            );
        }
        for (user, may) in [("alice", true), (SERVICE_USER, true), ("bob", false)] {
            let (uid, gid) = ids_of(user);
            let read = output(
                std::process::Command::new("/usr/bin/cat")
                    .arg(&expected)
                    .env_clear()
                    .current_dir("/")
                    .uid(uid)
                    // As root, std also drops the supplementary groups.
                    .gid(gid),
            );
            assert_eq!(
                read.status.success(),
                may,
                "{user} reads {expected}: {}",
                stderr(&read)
            );
            if may {
                assert_eq!(stdout(&read), text, "{user} reads the whole log");
            }
        }
    }
}
