//! The test bed is a real control plane: RBAC, TokenRequest and the
//! ServiceAccount token lifecycle behave as they will on a cluster, and its
//! node enforces NetworkPolicies (kube-router's policy controller).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, LogParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;

#[tokio::test]
async fn minted_token_is_scoped_to_its_namespace_and_dies_with_its_service_account() {
    let admin = admin_client().await;
    let ns = unique("bed");
    let other = unique("bed-other");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for name in [&ns, &other] {
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("create namespace");
    }

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("runner".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &sa)
        .await
        .expect("create service account");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("runner-edit".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "runner".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create rolebinding");

    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let minted = accounts
        .create_token_request("runner", &PostParams::default(), &request)
        .await
        .expect("token request");
    let status = minted.status.expect("token request status");
    assert!(!status.token.is_empty());

    let user = token_client(&status.token).await;
    assert_eq!(list_pods_status(&user, &ns).await, 200, "own namespace");
    assert_eq!(
        list_pods_status(&user, &other).await,
        403,
        "another namespace"
    );

    accounts
        .delete("runner", &DeleteParams::default())
        .await
        .expect("delete service account");
    eventually(
        Duration::from_secs(15),
        "token answers 401 after its ServiceAccount is deleted",
        || {
            let user = user.clone();
            let ns = ns.clone();
            async move { list_pods_status(&user, &ns).await == 401 }
        },
    )
    .await;

    for name in [&ns, &other] {
        namespaces
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }
}

// --- NetworkPolicies ---------------------------------------------------------

/// Deletes the namespaces it names when dropped, whether the test passed or
/// panicked (without waiting for them to be gone).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(admin_kubeconfig_path())
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&self.0)
            .output();
    }
}

/// The Spark image is the bed's only image with python3 (`bed.sh env` names it).
fn python_image() -> String {
    std::env::var("KUBESU_TESTBED_SPARK_IMAGE_3_5").unwrap_or_else(|_| {
        panic!(
            "KUBESU_TESTBED_SPARK_IMAGE_3_5 is not set: eval \"$(bash tests/testbed/bed.sh env)\" \
             (tests/run.sh does)"
        )
    })
}

/// Connects to HOST:PORT up to ATTEMPTS times, a second apart, 3 s each:
/// exit 0 once connected, else 10 for the last attempt refused, 11 for it
/// timed out, 12 for any other error.
const CONNECT: &str = r#"
import socket, sys, time
host, port, attempts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
code = 12
for i in range(attempts):
    if i:
        time.sleep(1)
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("connected", flush=True)
        sys.exit(0)
    except ConnectionRefusedError as e:
        code = 10
        print("refused:", e, flush=True)
    except TimeoutError as e:
        code = 11
        print("timed out:", e, flush=True)
    except OSError as e:
        code = 12
        print("error:", e, flush=True)
sys.exit(code)
"#;

fn pod(name: &str, labels: serde_json::Value, container: serde_json::Value) -> Pod {
    let mut container = container;
    container["name"] = json!("main");
    container["image"] = json!(python_image());
    container["imagePullPolicy"] = json!("Never");
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            // python as PID 1 ignores SIGTERM: nothing to wait for.
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [container],
        },
    }))
    .expect("pod")
}

/// A pod that tries to connect to `ip`:8080 and exits with CONNECT's code.
fn client(name: &str, ip: &str, attempts: u32) -> Pod {
    pod(
        name,
        json!({"app": "client"}),
        json!({"command": ["/usr/bin/python3", "-c", CONNECT, ip, "8080", attempts.to_string()]}),
    )
}

/// Runs `pod` in `namespace` to its end: its exit code and its output.
async fn run_pod(client: &Client, namespace: &str, pod: &Pod) -> (i32, String) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = pod.metadata.name.clone().expect("pod name");
    api.create(&PostParams::default(), pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {namespace}/{name}: {e}"));
    let start = Instant::now();
    loop {
        let now = api.get(&name).await.expect("get pod");
        let terminated = now
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        // An image the node lacks is never pulled: no use waiting.
        let waiting = now
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        assert!(
            !matches!(waiting, Some("ErrImageNeverPull" | "CreateContainerError")),
            "pod {namespace}/{name} cannot start: {:?}",
            now.status
        );
        if let Some(code) = terminated {
            let log = api
                .logs(&name, &LogParams::default())
                .await
                .unwrap_or_else(|e| format!("(no log: {e})"));
            return (code, log);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "pod {namespace}/{name} has not ended after 120 s: {:?}",
            now.status
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether kube-router has programmed a policy for `pod`: only a pod that a
/// policy selects gets a REJECT for the traffic no policy lets in.
fn policy_programmed(namespace: &str, pod: &str, policy: &str) -> bool {
    let out = Command::new("iptables-save")
        .args(["-t", "filter"])
        .output()
        .expect("iptables-save (run as root)");
    let rules = String::from_utf8_lossy(&out.stdout);
    rules.contains(&format!(
        "rule to REJECT traffic destined for POD name:{pod} namespace: {namespace}"
    )) && rules.contains(&format!("run through nw policy {policy}"))
}

#[tokio::test]
async fn network_policy_lets_in_its_own_namespace_and_refuses_another() {
    let admin = admin_client().await;
    let (own, other) = (unique("netpol"), unique("netpol-other"));
    let _cleanup = Namespaces(vec![own.clone(), other.clone()]);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for name in [&own, &other] {
        let object: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("create namespace");
        // Pods are refused until the namespace's default ServiceAccount exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), name);
        eventually(
            Duration::from_secs(30),
            "the namespace's default ServiceAccount",
            || {
                let accounts = accounts.clone();
                async move { accounts.get_opt("default").await.ok().flatten().is_some() }
            },
        )
        .await;
    }

    // A TCP server in `own`, ready once it listens.
    let server = pod(
        "server",
        json!({"app": "server"}),
        json!({
            "command": ["/usr/bin/python3", "-m", "http.server", "8080"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        }),
    );
    let servers: Api<Pod> = Api::namespaced(admin.clone(), &own);
    servers
        .create(&PostParams::default(), &server)
        .await
        .expect("create server pod");
    let start = Instant::now();
    let ip = loop {
        let status = servers
            .get("server")
            .await
            .expect("get server pod")
            .status
            .unwrap_or_default();
        let ready = status
            .conditions
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        match status.pod_ip {
            Some(ip) if ready => break ip,
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the server pod is not Ready after 90 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Without a policy, the other namespace gets in: what follows is the
    // policy's doing, not the network's.
    let (code, log) = run_pod(&admin, &other, &client("before", &ip, 10)).await;
    assert_eq!(
        code, 0,
        "no policy yet, yet {other} could not connect: {log}"
    );

    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "same-namespace-only"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }))
    .expect("network policy");
    Api::<NetworkPolicy>::namespaced(admin.clone(), &own)
        .create(&PostParams::default(), &policy)
        .await
        .expect("create network policy");
    eventually(
        Duration::from_secs(60),
        "kube-router programs the policy for the server pod (does the bed run it? \
         see kube-router.log in the bed's log dir)",
        || async { policy_programmed(&own, "server", "same-namespace-only") },
    )
    .await;

    // Programmed: one attempt from the other namespace, refused (REJECT)
    // or timed out, never connected.
    let (code, log) = run_pod(&admin, &other, &client("denied", &ip, 1)).await;
    assert!(
        code == 10 || code == 11,
        "a pod in {other} should be refused by the policy, but exited {code}: {log}"
    );

    // The same namespace gets in; its new pod's address reaches kube-router's
    // ipsets a moment after the pod starts, hence the attempts.
    let (code, log) = run_pod(&admin, &own, &client("allowed", &ip, 30)).await;
    assert_eq!(code, 0, "a pod in {own} should connect: {log}");
}
