//! Namespaces that are safe to share (issue 12): the quota, the container
//! limits, the network isolation and the Pod Security labels kubesu applies
//! to its namespaces, as the example config sets them, observed on the real
//! node: what the API server admits with a run's token, what a pod in
//! another namespace can reach, and that a deleted policy comes back.
//!
//! `heidi` and `ivan` are this file's own users (tests/testbed/users.sh);
//! `carol` and `bob` are the two tenants of the isolation test.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

const SH: &str = "/usr/bin/sh";
const COST_CENTER: (&str, &str) = ("example.com/cost-center", "data-platform");

fn sudo_run(user: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--user", user, "--"];
    args.extend_from_slice(command);
    output(&mut sudo_kubesu(&args))
}

fn label<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Pod manifests the run's token may create: as the run's own
/// ServiceAccount and with the run's label, which kubesu's admission policy
/// wants of every pod, and within Pod Security "restricted", which the
/// example config enforces.
const POD_FUNCTIONS: &str = r#"
    sa=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
    sa=${sa##*:}
    # pod NAME CONTAINERS RESOURCES: CONTAINERS containers with RESOURCES.
    pod() {
        printf '%s\n' 'apiVersion: v1' 'kind: Pod' \
            "metadata: {name: $1, labels: {kubesu.io/run: $KUBESU_RUN_ID}}" 'spec:' \
            "  serviceAccountName: $sa" \
            '  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}' \
            '  containers:'
        i=0
        while [ $i -lt "$2" ]; do
            printf '%s\n' "  - name: c$i" '    image: kubesu.test/absent:0' "    resources: $3" \
                '    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}'
            i=$((i + 1))
        done
    }
"#;

/// The example config: a quota of 16 requested CPUs and container defaults
/// of 1 CPU, 1Gi limits and 100m, 256Mi requests.
#[test]
fn the_quota_and_the_container_defaults_hold_for_a_runs_pods_and_come_back_when_deleted() {
    let script = format!(
        "{POD_FUNCTIONS}
        # Five containers of 4 CPUs: each within the LimitRange's max, 20
        # together over the quota's 16.
        pod over-quota 5 '{{requests: {{cpu: \"4\", memory: 256Mi}}, limits: {{cpu: \"4\", memory: 256Mi}}}}' \
            | kubectl create --dry-run=server -f - 2>&1
        echo ===
        pod no-limits 1 '{{}}' | kubectl create --dry-run=server -o jsonpath='{{.spec.containers[0].resources}}' -f - 2>&1
        true"
    );
    let out = sudo_run("heidi", &[SH, "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let (over, defaults) = text.split_once("===\n").expect("two answers");
    assert!(
        over.contains("exceeded quota: kubesu-quota"),
        "a pod over the namespace's quota is refused: {over}"
    );
    let resources: serde_json::Value = serde_json::from_str(defaults.trim())
        .unwrap_or_else(|e| panic!("resources of the admitted pod ({e}): {defaults}"));
    assert_eq!(resources["limits"]["cpu"], "1", "{resources}");
    assert_eq!(resources["limits"]["memory"], "1Gi", "{resources}");
    assert_eq!(resources["requests"]["cpu"], "100m", "{resources}");
    assert_eq!(resources["requests"]["memory"], "256Mi", "{resources}");

    // An administrator (or anyone) deletes the quota and relaxes the
    // namespace's labels: the next run puts both back.
    tokio_run(async {
        let admin = admin_client().await;
        let quotas: Api<ResourceQuota> = Api::namespaced(admin.clone(), "kubesu-heidi");
        quotas
            .delete("kubesu-quota", &DeleteParams::default())
            .await
            .expect("delete the quota");
        let namespaces: Api<Namespace> = Api::all(admin.clone());
        let relabel = serde_json::json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": null,
            COST_CENTER.0: "someone-else",
        }}});
        namespaces
            .patch(
                "kubesu-heidi",
                &PatchParams::default(),
                &Patch::Merge(&relabel),
            )
            .await
            .expect("relabel the namespace");
        let before = namespace_policy_check();
        assert!(
            before.contains("kubesu-heidi: ")
                && before.contains("ResourceQuota kubesu-quota is missing")
                && before.contains("label pod-security.kubernetes.io/enforce is missing")
                && before.contains(&format!("label {} is \"someone-else\"", COST_CENTER.0)),
            "kubesu check reports what was changed: {before}"
        );
        let out = sudo_run("heidi", &["/usr/bin/true"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let after = namespace_policy_check();
        assert!(!after.contains("kubesu-heidi: "), "repaired: {after}");
        let quota = quotas.get("kubesu-quota").await.expect("the quota is back");
        let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(
            hard.get("requests.cpu").map(|q| q.0.as_str()),
            Some("16"),
            "{hard:?}"
        );
        let ns = namespaces.get("kubesu-heidi").await.expect("namespace");
        assert_eq!(
            label(&ns.metadata, "pod-security.kubernetes.io/enforce"),
            Some("restricted")
        );
        assert_eq!(
            label(&ns.metadata, "pod-security.kubernetes.io/enforce-version"),
            Some("v1.37")
        );
        assert_eq!(label(&ns.metadata, COST_CENTER.0), Some(COST_CENTER.1));
        let limits: Api<LimitRange> = Api::namespaced(admin.clone(), "kubesu-heidi");
        let isolation: Api<NetworkPolicy> = Api::namespaced(admin, "kubesu-heidi");
        for present in [
            label(
                &limits.get("kubesu-limits").await.expect("limits").metadata,
                COST_CENTER.0,
            ),
            label(
                &isolation
                    .get("kubesu-isolation")
                    .await
                    .expect("isolation")
                    .metadata,
                COST_CENTER.0,
            ),
        ] {
            assert_eq!(
                present,
                Some(COST_CENTER.1),
                "policy objects carry [objects] labels"
            );
        }
    });
}

/// The run's ServiceAccount and RoleBinding carry the administrator's
/// `[objects]` labels too.
#[test]
fn the_runs_objects_carry_the_configured_labels() {
    let (mut child, run) = start_and_read_first_line(&mut sudo_kubesu(&[
        "run",
        "--user",
        "heidi",
        "--",
        SH,
        "-c",
        "echo \"$KUBESU_RUN_ID\"; sleep 30",
    ]));
    tokio_run(async {
        let admin = admin_client().await;
        let selector = ListParams::default().labels(&format!("kubesu.io/run={run}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kubesu-heidi");
        let bindings: Api<RoleBinding> = Api::namespaced(admin, "kubesu-heidi");
        let account = accounts.list(&selector).await.expect("list accounts");
        let binding = bindings.list(&selector).await.expect("list bindings");
        assert_eq!(account.items.len(), 1, "the run's ServiceAccount");
        assert_eq!(binding.items.len(), 1, "the run's RoleBinding");
        for meta in [&account.items[0].metadata, &binding.items[0].metadata] {
            assert_eq!(label(meta, COST_CENTER.0), Some(COST_CENTER.1), "{meta:?}");
        }
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// A tenant's pod cannot reach a pod in another tenant's namespace; pods of
/// the namespace itself can (a driver hears its executors).
#[test]
fn a_pod_in_another_namespace_cannot_reach_a_runs_pods() {
    let image = std::env::var("KUBESU_TESTBED_SPARK_IMAGE_3_5").unwrap_or_else(|_| {
        panic!(
            "KUBESU_TESTBED_SPARK_IMAGE_3_5 is not set: eval \"$(bash tests/testbed/bed.sh env)\""
        )
    });
    // Runs make (and apply the policy to) both namespaces.
    for user in ["carol", "bob"] {
        let out = sudo_run(user, &["/usr/bin/true"]);
        assert_eq!(out.status.code(), Some(0), "{user}: {}", stderr(&out));
    }
    tokio_run(async {
        let admin = admin_client().await;
        let name = unique("isolated");
        let server = pod(
            &name,
            &image,
            &["python3", "-m", "http.server", "8080"],
            "kubesu-carol",
        );
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "kubesu-carol");
        pods.create(&PostParams::default(), &server)
            .await
            .expect("server pod");
        let ip = server_ip(&pods, &name).await;
        // The network policy controller adds a new pod to the policy's
        // address sets a moment after it starts: a client tries for a while.
        let probe = |tries: u32| {
            format!(
                "import socket,sys,time\n\
                 for _ in range({tries}):\n\
                 \x20s=socket.socket(); s.settimeout(2)\n\
                 \x20if s.connect_ex(('{ip}',8080))==0: sys.exit(0)\n\
                 \x20s.close(); time.sleep(1)\n\
                 sys.exit(3)"
            )
        };
        let inside = connects(&admin, "kubesu-carol", &image, &probe(30)).await;
        let outside = connects(&admin, "kubesu-bob", &image, &probe(5)).await;
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        assert!(inside, "a pod of the same namespace reaches {ip}:8080");
        assert!(!outside, "a pod of another namespace reaches {ip}:8080");
    });
}

/// The detail of the "namespace policy" row of `kubesu check --json`.
fn namespace_policy_check() -> String {
    let out = output(&mut root_kubesu(&["check", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kubesu check --json ({e}): {}", stdout(&out)));
    let rows = report["checks"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["name"] == "namespace policy")
        .unwrap_or_else(|| panic!("no namespace policy row: {report}"));
    row["detail"].as_str().unwrap_or_default().to_string()
}

fn pod(name: &str, image: &str, command: &[&str], namespace: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            // Pod Security "restricted" (the example config) holds for
            // everybody's pods, an administrator's too.
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "Never",
                "command": command,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .expect("pod manifest")
}

async fn server_ip(pods: &Api<Pod>, name: &str) -> String {
    for _ in 0..240 {
        if let Ok(p) = pods.get(name).await
            && let Some(status) = p.status
            && status.phase.as_deref() == Some("Running")
            && let Some(ip) = status.pod_ip
        {
            return ip;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("server pod {name} never ran");
}

/// Whether a client pod in `namespace` running `probe` connected.
async fn connects(admin: &Client, namespace: &str, image: &str, probe: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let name = unique("probe");
    pods.create(
        &PostParams::default(),
        &pod(&name, image, &["python3", "-c", probe], namespace),
    )
    .await
    .expect("probe pod");
    let mut exit = None;
    for _ in 0..240 {
        let status = pods.get(&name).await.ok().and_then(|p| p.status);
        exit = status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().next())
            .and_then(|c| c.state)
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code);
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = pods.delete(&name, &DeleteParams::default()).await;
    match exit {
        Some(0) => true,
        Some(3) => false,
        other => panic!("probe pod in {namespace} ended with {other:?}"),
    }
}

fn tokio_run<F: std::future::Future<Output = ()>>(future: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A namespace policy the API server refuses (a default above the maximum:
/// valid quantities, an invalid LimitRange) stops the run before its command
/// starts, with exit 78 and the fix, and the run's lease rolled back.
#[test]
fn a_policy_the_api_server_refuses_stops_the_run_before_the_command() {
    let config = config_variant(
        "invalid-limits",
        &[(
            "default = { cpu = \"1\", memory = \"1Gi\" }",
            "default = { cpu = \"8\", memory = \"1Gi\" }",
        )],
    );
    let out = output(&mut root_kubesu(&[
        "run",
        "--config",
        &config,
        "--user",
        "ivan",
        "--",
        SH,
        "-c",
        "echo the command ran",
    ]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the command ran: {}", stdout(&out));
    assert!(
        stderr(&out).contains("kubesu-limits") && stderr(&out).contains("fix [namespace]"),
        "{}",
        stderr(&out)
    );
    tokio_run(async {
        let accounts: Api<ServiceAccount> = Api::namespaced(admin_client().await, "kubesu-ivan");
        let leases = accounts
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kubesu"))
            .await
            .expect("list accounts");
        assert!(
            leases
                .items
                .iter()
                .all(|a| a.metadata.deletion_timestamp.is_some()),
            "a lease was left: {:?}",
            leases
                .items
                .iter()
                .map(|a| &a.metadata.name)
                .collect::<Vec<_>>()
        );
    });
    // The refused run left ivan's namespace without its LimitRange; the
    // next run under the installed config puts it back (and `kubesu check`
    // in later tests finds every namespace of kubesu's as configured).
    let repaired = output(&mut root_kubesu(&[
        "run",
        "--user",
        "ivan",
        "--",
        "/usr/bin/true",
    ]));
    assert_eq!(repaired.status.code(), Some(0), "{}", stderr(&repaired));
}
