//! The admission policies kubesu ships (deploy/admission-policy.yaml), proved
//! on a real API server (Kubernetes 1.30 or later): what a run's token, a
//! tenant and kubesu's own identity are refused, and what they may still do.
//!
//! Each test applies the policies (server-side apply: idempotent), kubesu's
//! RBAC as `kubesu rbac --user kubesu` prints it, and the Spark ClusterRole,
//! then waits (bounded) until the API server enforces them. Objects that
//! would otherwise linger are tried with server-side dry run, which goes
//! through admission like a real request.
//!
//! The policies are cluster-wide, so these tests run on a bed of their own,
//! never on the main bed by accident (`cargo test` in tests/run.sh exports
//! KUBESU_TESTBED_DIR for the main bed: it is ignored here). The bed is
//! KUBESU_ADMISSION_TESTBED_DIR, by default /var/tmp/kubesu-admission, a
//! control plane without a node:
//!   KUBESU_TESTBED_DIR=/var/tmp/kubesu-admission KUBESU_TESTBED_API_PORT=17443 \
//!   KUBESU_TESTBED_ETCD_PORT=13379 KUBESU_TESTBED_NODE=0 bash tests/testbed/bed.sh up
//!   cargo test --test admission
//! Without that bed they fail, saying how to start it; they never skip.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{eventually, unique};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, PodSpec,
    ServiceAccount,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use kubesu::policy::labels::RUN_LABEL;
use serde_json::json;

const POLICY_FILE: &str = include_str!("../deploy/admission-policy.yaml");
const SPARK_ROLE_FILE: &str = include_str!("../deploy/spark-clusterrole.yaml");
/// The user name of the bed's kubesu.kubeconfig (a client certificate's CN).
const IDENTITY: &str = "kubesu";
/// [cluster] cluster_role in examples/config.toml.
const CLUSTER_ROLE: &str = "kubesu-spark";
/// The tenant: the user name of the bed's nobody-kubesu.kubeconfig.
const TENANT: &str = "nobody-kubesu";

const RUN_POLICY: &str = "kubesu-run-confinement";
const OWNERSHIP_POLICY: &str = "kubesu-namespace-ownership";
const IDENTITY_POLICY: &str = "kubesu-identity-confinement";
/// A new policy, binding or RoleBinding is enforced a moment after it is
/// written (the API server learns it from a watch).
const ENFORCEMENT: Duration = Duration::from_secs(30);
const FIELD_MANAGER: &str = "kubesu-admission-test";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

// --- the substitution contract of deploy/admission-policy.yaml -------------

/// What `kubesu rbac --admission` prints for `identity` (a user name, as the
/// API server sees it) and the Spark ClusterRole.
fn substituted(identity: &str, cluster_role: &str) -> String {
    let subject = kubesu::admin::rbac::Subject::User(identity.into());
    let text = kubesu::admin::rbac::admission_policies(cluster_role, &subject);
    assert!(!text.contains("'KUBESU_IDENTITY'") && !text.contains("'KUBESU_CLUSTER_ROLE'"));
    text
}

// --- applying YAML as `kubectl apply --server-side` does --------------------

/// The documents of a YAML stream that hold an object (not only comments).
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("a document");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
        .collect()
}

fn unquoted(value: &str) -> String {
    value.trim().trim_matches('"').to_string()
}

/// (kind, metadata.name) of one document, read from its top-level lines.
fn kind_and_name(doc: &str) -> (String, String) {
    let kind = doc
        .lines()
        .find_map(|l| l.strip_prefix("kind:"))
        .map(unquoted)
        .unwrap_or_else(|| panic!("no kind in {doc}"));
    let name = doc
        .lines()
        .skip_while(|l| *l != "metadata:")
        .find_map(|l| l.strip_prefix("  name:"))
        .map(unquoted)
        .unwrap_or_else(|| panic!("no metadata.name in {doc}"));
    (kind, name)
}

fn collection(kind: &str) -> &'static str {
    match kind {
        "ClusterRole" => "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding" => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "ValidatingAdmissionPolicy" => {
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
        }
        "ValidatingAdmissionPolicyBinding" => {
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
        }
        other => panic!("this test does not apply {other}"),
    }
}

/// Server-side apply of each document, as YAML: the API server parses it.
async fn apply_yaml(client: &Client, text: &str) {
    for doc in documents(text) {
        let (kind, name) = kind_and_name(&doc);
        let mut request = kube::core::Request::new(collection(&kind))
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(()),
            )
            .expect("apply request");
        *request.body_mut() = doc.clone().into_bytes();
        client
            .request_text(request)
            .await
            .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    }
}

// --- clients -----------------------------------------------------------------

const ADMISSION_BED_HELP: &str = "the admission test bed is not running: start it as root with \
     `KUBESU_TESTBED_DIR=/var/tmp/kubesu-admission KUBESU_TESTBED_API_PORT=17443 \
     KUBESU_TESTBED_ETCD_PORT=13379 KUBESU_TESTBED_NODE=0 bash tests/testbed/bed.sh up` \
     (or point KUBESU_ADMISSION_TESTBED_DIR at another bed of Kubernetes 1.30 or later)";

/// The admission bed's directory: never the main bed's unless asked for.
fn admission_bed_dir() -> String {
    std::env::var("KUBESU_ADMISSION_TESTBED_DIR")
        .unwrap_or_else(|_| "/var/tmp/kubesu-admission".into())
}

async fn kubeconfig(file: &str) -> Config {
    let path = format!("{}/{file}", admission_bed_dir());
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("{ADMISSION_BED_HELP} ({path}: {e})"));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{ADMISSION_BED_HELP} ({path}: {e})"))
}

async fn kubeconfig_client(file: &str) -> Client {
    Client::try_from(kubeconfig(file).await).expect("client")
}

async fn admin_client() -> Client {
    let client = kubeconfig_client("admin.kubeconfig").await;
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("{ADMISSION_BED_HELP} ({e})"));
    client
}

/// A client that authenticates with nothing but a bearer token.
async fn token_client(token: &str) -> Client {
    let mut config = kubeconfig("admin.kubeconfig").await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("token client")
}

struct Bed {
    admin: Client,
    /// kubesu's own identity.
    kubesu: Client,
    /// A tenant RBAC allows to create and patch namespaces.
    tenant: Client,
}

/// kubesu's RBAC exactly as `kubesu rbac --user kubesu` prints it (from the
/// library: the binary would want a config in a safe directory, and the
/// checkout may be anywhere, /tmp included).
fn kubesu_rbac() -> String {
    let subject = kubesu::admin::rbac::Subject::User(IDENTITY.into());
    kubesu::admin::rbac::manifests(CLUSTER_ROLE, &subject)
}

fn tenant_rbac() -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRole\n\
         metadata:\n  name: kubesu-admission-test-tenant\n\
         rules:\n\
         - apiGroups: [\"\"]\n  resources: [\"namespaces\"]\n  verbs: [\"get\", \"create\", \"update\", \"patch\"]\n\
         ---\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRoleBinding\n\
         metadata:\n  name: kubesu-admission-test-tenant\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: kubesu-admission-test-tenant\n\
         subjects:\n- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: {TENANT}\n"
    )
}

/// Apply everything and wait until the API server enforces the policies on
/// kubesu's identity and on the tenant (the run's policy: [`start_run`]).
async fn bed() -> Bed {
    let admin = admin_client().await;
    apply_yaml(&admin, SPARK_ROLE_FILE).await;
    apply_yaml(&admin, &kubesu_rbac()).await;
    apply_yaml(&admin, &tenant_rbac()).await;
    apply_yaml(&admin, &substituted(IDENTITY, CLUSTER_ROLE)).await;
    wait_for_reload(&admin).await;
    let bed = Bed {
        admin,
        kubesu: kubeconfig_client("kubesu.kubeconfig").await,
        tenant: kubeconfig_client("nobody-kubesu.kubeconfig").await,
    };
    let unlabelled = namespace(&unique("kubesu-adm-probe"), &[]);
    let labelled = namespace(&unique("kubesu-adm-probe"), &[(MANAGED_BY, "kubesu")]);
    for (who, client, object, policy) in [
        ("kubesu", &bed.kubesu, &unlabelled, IDENTITY_POLICY),
        ("the tenant", &bed.tenant, &labelled, OWNERSHIP_POLICY),
    ] {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        eventually(
            ENFORCEMENT,
            &format!("{policy} refuses {who} a namespace (dry run)"),
            || {
                let namespaces = namespaces.clone();
                async move {
                    let result = namespaces.create(&dry_run(), object).await;
                    refused_by(&result, policy)
                }
            },
        )
        .await;
    }
    bed
}

/// The API server reloads a changed policy or binding a moment after the
/// write (a watch, then a refresh about every second), so a probe that
/// passes right after an update may have met the old version. Wait until
/// the last write to any of them (by this test or a concurrent one) is a
/// few seconds old; an apply that changes nothing writes nothing.
async fn wait_for_reload(admin: &Client) {
    const SETTLE_SECONDS: i64 = 4;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(admin.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(admin.clone());
    let mut last_write = 0;
    for name in [RUN_POLICY, OWNERSHIP_POLICY, IDENTITY_POLICY] {
        let policy = policies.get(name).await.expect("policy").metadata;
        let binding = bindings.get(name).await.expect("binding").metadata;
        for meta in [policy, binding] {
            let times = meta
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.time)
                .chain(meta.creation_timestamp);
            for time in times {
                last_write = last_write.max(time.0.as_second());
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let age = i64::try_from(now).expect("seconds") - last_write;
    if age < SETTLE_SECONDS {
        let wait = u64::try_from(SETTLE_SECONDS - age).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

// --- objects and outcomes ----------------------------------------------------

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: meta(name, labels),
        ..Default::default()
    }
}

/// Whether `result` is this policy's refusal.
fn refused_by<T>(result: &kube::Result<T>, policy: &str) -> bool {
    matches!(result, Err(kube::Error::Api(s))
        if s.message.contains(&format!("ValidatingAdmissionPolicy '{policy}'")))
}

/// `result` is the policy's refusal: HTTP 403 with its message.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: kube::Result<T>,
    policy: &str,
    says: &str,
) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{what}: {status:?}");
            assert!(
                status
                    .message
                    .contains(&format!("ValidatingAdmissionPolicy '{policy}'"))
                    && status.message.contains(says),
                "{what}: refused, but not by {policy} saying {says:?}: {}",
                status.message
            );
        }
        other => panic!("{what}: expected {policy} to refuse it, got {other:?}"),
    }
}

fn assert_allowed<T>(what: &str, result: kube::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: expected it to be allowed, got {e}"))
}

/// A run as kubesu prepares it, every call made as kubesu's identity: a
/// per-run namespace with kubesu's labels, the run's ServiceAccount, its
/// RoleBinding to the Spark ClusterRole, and a token.
struct Run {
    /// The run id, as kubesu makes it: the policy reads it from the end of
    /// the ServiceAccount's name.
    id: String,
    namespace: String,
    account: String,
    /// As the run's token.
    user: Client,
}

impl Run {
    /// `object` with the run's label, as kubesu's revocation finds it.
    fn mark<K: kube::Resource>(&self, mut object: K) -> K {
        object
            .meta_mut()
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(RUN_LABEL.into(), self.id.clone());
        object
    }
}

async fn start_run(bed: &Bed) -> Run {
    let id = kubesu::policy::identity::RunId::generate().expect("a run id");
    let run = id.to_string();
    let namespace = format!("kubesu-adm-{run}");
    let account = kubesu::policy::naming::service_account("alice", &id);
    let labels = [
        (MANAGED_BY, "kubesu"),
        ("kubesu.io/user", "alice"),
        (RUN_LABEL, run.as_str()),
    ];
    let namespaces: Api<Namespace> = Api::all(bed.kubesu.clone());
    let mut namespace_labels = labels.to_vec();
    namespace_labels.push((ENFORCE, "baseline"));
    assert_allowed(
        "kubesu creates a namespace with its labels",
        namespaces
            .create(
                &PostParams::default(),
                &self::namespace(&namespace, &namespace_labels),
            )
            .await,
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(bed.kubesu.clone(), &namespace);
    let sa = ServiceAccount {
        metadata: meta(&account, &labels),
        ..Default::default()
    };
    assert_allowed(
        "kubesu creates the run's ServiceAccount",
        accounts.create(&PostParams::default(), &sa).await,
    );
    let bindings: Api<RoleBinding> = Api::namespaced(bed.kubesu.clone(), &namespace);
    assert_allowed(
        "kubesu binds the Spark ClusterRole to the run's ServiceAccount",
        bindings
            .create(
                &PostParams::default(),
                &binding(&account, CLUSTER_ROLE, &namespace, &account),
            )
            .await,
    );
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = assert_allowed(
        "kubesu mints the run's token",
        accounts
            .create_token_request(&account, &PostParams::default(), &request)
            .await,
    )
    .status
    .expect("token status")
    .token;
    let user = token_client(&token).await;

    // Enforced once the binding's namespace selector sees the new
    // namespace and RBAC sees the RoleBinding.
    let services: Api<Service> = Api::namespaced(user.clone(), &namespace);
    let probe = service("probe", "ClusterIP", &["192.0.2.1"]);
    eventually(
        ENFORCEMENT,
        &format!("{RUN_POLICY} refuses the run's token externalIPs (dry run)"),
        || {
            let services = services.clone();
            let probe = probe.clone();
            async move { refused_by(&services.create(&dry_run(), &probe).await, RUN_POLICY) }
        },
    )
    .await;
    Run {
        id: run,
        namespace,
        account,
        user,
    }
}

fn binding(name: &str, role: &str, subject_namespace: &str, subject: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, &[(MANAGED_BY, "kubesu")]),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: subject.into(),
            namespace: Some(subject_namespace.into()),
            ..Default::default()
        }]),
    }
}

/// Revocation as kubesu does it, as kubesu's identity: each step allowed.
async fn end_run(bed: &Bed, run: Run) {
    let ns = &run.namespace;
    let configmaps: Api<ConfigMap> = Api::namespaced(bed.kubesu.clone(), ns);
    assert_allowed(
        "kubesu cleans up configmaps (deletecollection) in its namespace",
        configmaps
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await,
    );
    let bindings: Api<RoleBinding> = Api::namespaced(bed.kubesu.clone(), ns);
    assert_allowed(
        "kubesu deletes the run's RoleBinding",
        bindings
            .delete(&run.account, &DeleteParams::default())
            .await,
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(bed.kubesu.clone(), ns);
    assert_allowed(
        "kubesu deletes the run's ServiceAccount",
        accounts
            .delete(&run.account, &DeleteParams::default())
            .await,
    );
    let namespaces: Api<Namespace> = Api::all(bed.kubesu.clone());
    assert_allowed(
        "kubesu deletes its per-run namespace",
        namespaces.delete(ns, &DeleteParams::default()).await,
    );
}

fn service(name: &str, kind: &str, external_ips: &[&str]) -> Service {
    Service {
        metadata: meta(name, &[]),
        spec: Some(ServiceSpec {
            type_: Some(kind.into()),
            external_name: (kind == "ExternalName").then(|| "example.com".into()),
            external_ips: (!external_ips.is_empty())
                .then(|| external_ips.iter().map(|s| s.to_string()).collect()),
            ports: Some(vec![ServicePort {
                port: 7078,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn claim(name: &str, spec: serde_json::Value) -> PersistentVolumeClaim {
    let mut full = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    });
    for (k, v) in spec.as_object().expect("spec fields") {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": full})).expect("claim")
}

fn pod(name: &str, account: Option<&str>) -> Pod {
    Pod {
        metadata: meta(name, &[]),
        spec: Some(PodSpec {
            service_account_name: account.map(Into::into),
            containers: vec![Container {
                name: "c".into(),
                image: Some("spark:none".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

// --- 1. the run's token --------------------------------------------------------

#[tokio::test]
async fn a_runs_token_cannot_make_a_service_that_reaches_outside_its_namespace() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    let services: Api<Service> = Api::namespaced(run.user.clone(), &run.namespace);

    assert_refused(
        "a ClusterIP Service with externalIPs (CVE-2020-8554)",
        services
            .create(
                &PostParams::default(),
                &run.mark(service("ext", "ClusterIP", &["192.0.2.10"])),
            )
            .await,
        RUN_POLICY,
        "CVE-2020-8554",
    );
    for kind in ["NodePort", "LoadBalancer", "ExternalName"] {
        assert_refused(
            &format!("a {kind} Service"),
            services
                .create(
                    &PostParams::default(),
                    &run.mark(service("open", kind, &[])),
                )
                .await,
            RUN_POLICY,
            &format!("not type {kind}"),
        );
    }

    // Spark's driver Service is a headless ClusterIP Service.
    let mut headless = run.mark(service("driver-svc", "ClusterIP", &[]));
    headless.spec.as_mut().expect("spec").cluster_ip = Some("None".into());
    assert_allowed(
        "a headless ClusterIP Service",
        services.create(&dry_run(), &headless).await,
    );
    assert_allowed(
        "a ClusterIP Service",
        services
            .create(
                &PostParams::default(),
                &run.mark(service("plain", "ClusterIP", &[])),
            )
            .await,
    );
    let to_node_port = json!({"spec": {"type": "NodePort"}});
    assert_refused(
        "changing the ClusterIP Service to NodePort",
        services
            .patch(
                "plain",
                &PatchParams::default(),
                &Patch::Merge(&to_node_port),
            )
            .await,
        RUN_POLICY,
        "not type NodePort",
    );
    let add_external = json!({"spec": {"externalIPs": ["192.0.2.11"]}});
    assert_refused(
        "adding externalIPs to the ClusterIP Service",
        services
            .patch(
                "plain",
                &PatchParams::default(),
                &Patch::Merge(&add_external),
            )
            .await,
        RUN_POLICY,
        "CVE-2020-8554",
    );
    end_run(&bed, run).await;
}

#[tokio::test]
async fn a_runs_token_cannot_claim_a_volume_it_did_not_provision() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    // Another team's volume, Available to any claim that names it.
    let theirs = unique("kubesu-adm-theirs");
    let volumes: Api<PersistentVolume> = Api::all(bed.admin.clone());
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": theirs, "labels": {"team": "finance"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "kubesu-adm-theirs",
            "hostPath": {"path": "/var/tmp/kubesu-adm-theirs"},
        },
    }))
    .expect("volume");
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .expect("create another team's PersistentVolume");

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(run.user.clone(), &run.namespace);
    assert_refused(
        "a claim naming another team's volume (volumeName)",
        claims
            .create(
                &PostParams::default(),
                &run.mark(claim("steal", json!({"volumeName": theirs}))),
            )
            .await,
        RUN_POLICY,
        "spec.volumeName",
    );
    assert_refused(
        "a claim picking volumes by label (selector)",
        claims
            .create(
                &PostParams::default(),
                &run.mark(claim(
                    "pick",
                    json!({"selector": {"matchLabels": {"team": "finance"}}}),
                )),
            )
            .await,
        RUN_POLICY,
        "spec.selector",
    );
    assert_allowed(
        "a claim without volumeName (dry run)",
        claims
            .create(&dry_run(), &run.mark(claim("dynamic", json!({}))))
            .await,
    );
    // Kubernetes lets volumeName be set once on an unbound claim.
    assert_allowed(
        "an unbound claim",
        claims
            .create(
                &PostParams::default(),
                &run.mark(claim("later", json!({"storageClassName": "none-such"}))),
            )
            .await,
    );
    let bind_later = json!({"spec": {"volumeName": theirs}});
    assert_refused(
        "setting volumeName on the unbound claim afterwards",
        claims
            .patch("later", &PatchParams::default(), &Patch::Merge(&bind_later))
            .await,
        RUN_POLICY,
        "spec.volumeName",
    );
    // A cross-namespace data source: refused, or (CrossNamespaceVolumeDataSource
    // off, the default) its namespace is dropped by the API server before
    // admission, so the claim can only read from its own namespace.
    let cross = claims
        .create(
            &dry_run(),
            &run.mark(claim(
                "clone",
                json!({"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "other-team"}}),
            )),
        )
        .await;
    if refused_by(&cross, RUN_POLICY) {
        assert_refused(
            "a cross-namespace dataSourceRef",
            cross,
            RUN_POLICY,
            "dataSourceRef",
        );
    } else {
        // Measured on 1.37.2: the whole dataSourceRef is dropped.
        let created = assert_allowed("a dataSourceRef whose namespace is dropped", cross);
        let namespace = created
            .spec
            .and_then(|s| s.data_source_ref)
            .and_then(|r| r.namespace);
        assert_eq!(namespace, None, "the other namespace must not survive");
    }
    volumes
        .delete(&theirs, &DeleteParams::default())
        .await
        .expect("delete the PersistentVolume");
    end_run(&bed, run).await;
}

#[tokio::test]
async fn a_runs_token_may_still_update_a_claim_the_cluster_bound_for_it() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    // A volume of a class the run may use: the PersistentVolume controller
    // binds the claim and sets volumeName, which the policy must accept on
    // later updates. (It also shows what the policy leaves to the
    // administrator: static binding by class and size.)
    let class = unique("kubesu-adm-static");
    let volumes: Api<PersistentVolume> = Api::all(bed.admin.clone());
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": class},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "hostPath": {"path": "/var/tmp/kubesu-adm-static"},
        },
    }))
    .expect("volume");
    volumes
        .create(&PostParams::default(), &volume)
        .await
        .expect("create a PersistentVolume");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(run.user.clone(), &run.namespace);
    assert_allowed(
        "a claim of that class",
        claims
            .create(
                &PostParams::default(),
                &run.mark(claim("data", json!({"storageClassName": class}))),
            )
            .await,
    );
    eventually(
        Duration::from_secs(60),
        "the PersistentVolume controller binds the claim",
        || {
            let claims = claims.clone();
            async move {
                claims.get("data").await.is_ok_and(|c| {
                    c.spec
                        .and_then(|s| s.volume_name)
                        .is_some_and(|v| !v.is_empty())
                })
            }
        },
    )
    .await;
    let relabel = json!({"metadata": {"labels": {"spark-exec-id": "1"}}});
    assert_allowed(
        "the run labelling its bound claim",
        claims
            .patch("data", &PatchParams::default(), &Patch::Merge(&relabel))
            .await,
    );
    end_run(&bed, run).await;
    volumes
        .delete(&class, &DeleteParams::default())
        .await
        .expect("delete the PersistentVolume");
}

#[tokio::test]
async fn pods_made_with_a_runs_token_run_as_the_runs_service_account() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    let pods: Api<Pod> = Api::namespaced(run.user.clone(), &run.namespace);

    assert_refused(
        "a pod running as the namespace's default ServiceAccount",
        pods.create(&dry_run(), &run.mark(pod("as-default", Some("default"))))
            .await,
        RUN_POLICY,
        "not default",
    );
    // The ServiceAccount admission plugin (mutating) sets `default` before
    // validating admission sees the pod.
    assert_refused(
        "a pod naming no ServiceAccount",
        pods.create(&dry_run(), &run.mark(pod("unnamed", None)))
            .await,
        RUN_POLICY,
        "not default",
    );
    assert_allowed(
        "a pod running as the run's ServiceAccount",
        pods.create(&dry_run(), &run.mark(pod("own", Some(&run.account))))
            .await,
    );

    // A client-mode executor as Spark 3.5.9 makes it (measured on this bed
    // with kubesu's forced driver ServiceAccount): both account fields set
    // to the driver's, no owner, Spark's labels and volumes.
    let executor: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "job-py-436e06a22b788352-exec-1",
            "labels": {
                "kubesu.io/run": run.id, "spark-app-name": "job-py",
                "spark-app-selector": "spark-d6689657ef9f440da2b0d34f200b6b79",
                "spark-exec-id": "1", "spark-exec-resourceprofile-id": "0",
                "spark-role": "executor", "spark-version": "3.5.9"
            }
        },
        "spec": {
            "hostname": "job-py-436e06a22b788352-exec-1",
            "restartPolicy": "Never",
            "serviceAccount": run.account,
            "serviceAccountName": run.account,
            "containers": [{
                "name": "spark-kubernetes-executor", "image": "spark:none", "args": ["executor"],
                "env": [{"name": "SPARK_DRIVER_URL", "value": "spark://CoarseGrainedScheduler@127.0.0.1:7078"}],
                "ports": [{"containerPort": 7079, "name": "blockmanager", "protocol": "TCP"}],
                "volumeMounts": [{"name": "spark-local-dir-1", "mountPath": "/var/data/spark-1"}]
            }],
            "volumes": [{"name": "spark-local-dir-1", "emptyDir": {}}]
        }
    }))
    .expect("executor pod");
    assert_allowed(
        "a client-mode Spark executor pod as the run's ServiceAccount",
        pods.create(&dry_run(), &executor).await,
    );
    end_run(&bed, run).await;
}

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, labels),
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

/// `object` owned by a pod of the namespace (a uid that matches none: the
/// tries that use it are dry runs), as Spark owns a cluster-mode driver's
/// ConfigMaps by its pod.
fn owned_by<K: kube::Resource>(kind: &str, mut object: K) -> K {
    object.meta_mut().owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: "job-driver".into(),
            uid: "8f2e4a63-4c1b-4c38-9a3e-2b7d1f0c5e11".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    object
}

/// Revocation and gc find what a run made by the run's label, so an
/// object without it (made so, or whose label the user took off) outlived
/// the run. Every object a run's token writes must carry the label with
/// the run's own id and keep it; what Spark makes and cannot label is the
/// run's another way (issue 13, item 4).
#[tokio::test]
async fn every_object_a_runs_token_writes_carries_the_runs_label_and_keeps_it() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    let maps: Api<ConfigMap> = Api::namespaced(run.user.clone(), &run.namespace);
    let services: Api<Service> = Api::namespaced(run.user.clone(), &run.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(run.user.clone(), &run.namespace);
    let pods: Api<Pod> = Api::namespaced(run.user.clone(), &run.namespace);
    let create = PostParams::default();

    assert_refused(
        "an unlabelled ConfigMap",
        maps.create(&create, &config_map("loose", &[])).await,
        RUN_POLICY,
        RUN_LABEL,
    );
    assert_refused(
        "an unlabelled Service",
        services
            .create(&create, &service("loose", "ClusterIP", &[]))
            .await,
        RUN_POLICY,
        RUN_LABEL,
    );
    assert_refused(
        "an unlabelled claim",
        claims.create(&create, &claim("loose", json!({}))).await,
        RUN_POLICY,
        RUN_LABEL,
    );
    assert_refused(
        "an unlabelled pod as the run's ServiceAccount",
        pods.create(&dry_run(), &pod("loose", Some(&run.account)))
            .await,
        RUN_POLICY,
        RUN_LABEL,
    );
    assert_refused(
        "a ConfigMap labelled with another run's id",
        maps.create(
            &create,
            &config_map("other", &[(RUN_LABEL, "aaaaaaaaaaaaaaaa")]),
        )
        .await,
        RUN_POLICY,
        RUN_LABEL,
    );

    // `kubectl label configmap kept kubesu.io/run-`, or another value.
    assert_allowed(
        "a ConfigMap with the run's label",
        maps.create(&create, &run.mark(config_map("kept", &[])))
            .await,
    );
    let patch = PatchParams::default();
    for (what, value) in [
        ("removing the run's label", serde_json::Value::Null),
        ("changing the run's label", json!("aaaaaaaaaaaaaaaa")),
    ] {
        let change = json!({"metadata": {"labels": {RUN_LABEL: value}}});
        assert_refused(
            what,
            maps.patch("kept", &patch, &Patch::Merge(&change)).await,
            RUN_POLICY,
            RUN_LABEL,
        );
    }
    let more = json!({"metadata": {"labels": {"team": "blue"}}});
    assert_allowed(
        "another label on the run's ConfigMap",
        maps.patch("kept", &patch, &Patch::Merge(&more)).await,
    );

    // An object the run did not make: it may delete it (RBAC), not take it
    // over or change it.
    let admins: Api<ConfigMap> = Api::namespaced(bed.admin.clone(), &run.namespace);
    assert_allowed(
        "an administrator's ConfigMap in the run's namespace",
        admins.create(&create, &config_map("theirs", &[])).await,
    );
    let adopt = json!({"metadata": {"labels": {RUN_LABEL: run.id}}});
    assert_refused(
        "the run labelling another's ConfigMap as its own",
        maps.patch("theirs", &patch, &Patch::Merge(&adopt)).await,
        RUN_POLICY,
        RUN_LABEL,
    );

    // Spark's own objects. A client-mode driver's executor ConfigMap carries
    // only Spark's labels, with the application id kubesu gives the run.
    let app = format!("spark-kubesu-{}", run.id);
    let executors = [
        ("spark-app-selector", app.as_str()),
        ("spark-role", "executor"),
    ];
    assert_allowed(
        "a client-mode executor ConfigMap with the run's application id",
        maps.create(&dry_run(), &config_map("spark-exec-1-conf-map", &executors))
            .await,
    );
    let foreign = [("spark-app-selector", "spark-kubesu-aaaaaaaaaaaaaaaa")];
    assert_refused(
        "an executor ConfigMap with another run's application id",
        maps.create(&dry_run(), &config_map("spark-exec-2-conf-map", &foreign))
            .await,
        RUN_POLICY,
        RUN_LABEL,
    );
    // A cluster-mode driver's ConfigMaps and on-demand claims carry no label
    // of the run's, and are owned by a pod (the driver, which carries it):
    // they go with it.
    assert_allowed(
        "a driver's unlabelled ConfigMap owned by a pod",
        maps.create(
            &dry_run(),
            &owned_by("Pod", config_map("spark-drv-conf-map", &[])),
        )
        .await,
    );
    assert_allowed(
        "an executor's unlabelled claim owned by a pod",
        claims
            .create(
                &dry_run(),
                &owned_by("Pod", claim("spark-pvc-0", json!({}))),
            )
            .await,
    );
    assert_refused(
        "an unlabelled ConfigMap owned by something else than a pod",
        maps.create(
            &dry_run(),
            &owned_by("ConfigMap", config_map("spark-drv-conf-map", &[])),
        )
        .await,
        RUN_POLICY,
        RUN_LABEL,
    );
    assert_refused(
        "an unlabelled Service owned by a pod (kubesu labels Spark's driver Service)",
        services
            .create(
                &dry_run(),
                &owned_by("Pod", service("svc", "ClusterIP", &[])),
            )
            .await,
        RUN_POLICY,
        RUN_LABEL,
    );
    end_run(&bed, run).await;
}

// --- 2. namespace ownership ----------------------------------------------------

#[tokio::test]
async fn a_tenant_cannot_forge_change_or_remove_kubesus_labels_on_namespaces() {
    let bed = bed().await;
    let tenant: Api<Namespace> = Api::all(bed.tenant.clone());
    let admin: Api<Namespace> = Api::all(bed.admin.clone());

    // The pre-created kubesu-<victim> of the issue.
    assert_refused(
        "a tenant creating a namespace labelled as kubesu's",
        tenant
            .create(
                &PostParams::default(),
                &namespace(
                    &unique("kubesu-victim"),
                    &[(MANAGED_BY, "kubesu"), ("kubesu.io/user", "victim")],
                ),
            )
            .await,
        OWNERSHIP_POLICY,
        "app.kubernetes.io/managed-by",
    );
    assert_refused(
        "a tenant creating a namespace with a kubesu.io/ label",
        tenant
            .create(
                &PostParams::default(),
                &namespace(&unique("kubesu-adm-forge"), &[("kubesu.io/run", "x")]),
            )
            .await,
        OWNERSHIP_POLICY,
        "kubesu.io/run",
    );

    let own = unique("kubesu-adm-tenant");
    assert_allowed(
        "a tenant creating a namespace of her own",
        tenant
            .create(&PostParams::default(), &namespace(&own, &[("team", "a")]))
            .await,
    );
    let label = |key: &str, value: Option<&str>| json!({"metadata": {"labels": {key: value}}});
    assert_refused(
        "the tenant labelling her namespace as kubesu's",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label(MANAGED_BY, Some("kubesu"))),
            )
            .await,
        OWNERSHIP_POLICY,
        "app.kubernetes.io/managed-by",
    );
    assert_allowed(
        "the tenant labelling her namespace as another tool's",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label(MANAGED_BY, Some("Helm"))),
            )
            .await,
    );

    // An administrator adopts it for kubesu (cluster-admin holds the verb
    // `own` on namespaces.kubesu.io); from then on it is kubesu's.
    assert_allowed(
        "an administrator adopting the namespace for kubesu",
        admin
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label(MANAGED_BY, Some("kubesu"))),
            )
            .await,
    );
    assert_refused(
        "the tenant removing kubesu's label",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label(MANAGED_BY, None)),
            )
            .await,
        OWNERSHIP_POLICY,
        "app.kubernetes.io/managed-by",
    );
    assert_refused(
        "the tenant adding kubesu.io/run so that gc would delete it",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label("kubesu.io/run", Some("abc"))),
            )
            .await,
        OWNERSHIP_POLICY,
        "kubesu.io/run",
    );
    assert_refused(
        "the tenant relaxing pod security on kubesu's namespace",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label(
                    "pod-security.kubernetes.io/enforce",
                    Some("privileged"),
                )),
            )
            .await,
        OWNERSHIP_POLICY,
        "pod-security.kubernetes.io/enforce",
    );
    let expire =
        json!({"metadata": {"annotations": {"kubesu.io/expires": "2000-01-01T00:00:00Z"}}});
    assert_refused(
        "the tenant moving kubesu's expiry annotation",
        tenant
            .patch(&own, &PatchParams::default(), &Patch::Merge(&expire))
            .await,
        OWNERSHIP_POLICY,
        "kubesu.io/expires",
    );
    assert_allowed(
        "the tenant changing a label that is not kubesu's",
        tenant
            .patch(
                &own,
                &PatchParams::default(),
                &Patch::Merge(label("team", Some("b"))),
            )
            .await,
    );
    admin
        .delete(&own, &DeleteParams::default())
        .await
        .expect("delete the tenant's namespace");
}

#[tokio::test]
async fn kubesus_identity_may_create_label_and_delete_only_its_own_namespaces() {
    let bed = bed().await;
    let namespaces: Api<Namespace> = Api::all(bed.kubesu.clone());
    assert_refused(
        "kubesu creating a namespace without its label",
        namespaces
            .create(&dry_run(), &namespace(&unique("kubesu-adm-bare"), &[]))
            .await,
        IDENTITY_POLICY,
        "create a namespace only with the labels",
    );
    // Without Pod Security, a token kubesu mints there could run a
    // privileged pod.
    for enforce in [None, Some("privileged")] {
        let mut labels = vec![(MANAGED_BY, "kubesu"), ("kubesu.io/user", "alice")];
        labels.extend(enforce.map(|e| (ENFORCE, e)));
        assert_refused(
            &format!("kubesu creating its namespace with Pod Security {enforce:?}"),
            namespaces
                .create(&dry_run(), &namespace(&unique("kubesu-adm-lax"), &labels))
                .await,
            IDENTITY_POLICY,
            "pod-security.kubernetes.io/enforce",
        );
    }
    // A per-user namespace (no kubesu.io/run) is never deleted by kubesu.
    let per_user = unique("kubesu-adm-user");
    assert_allowed(
        "kubesu creating a per-user namespace with its labels",
        namespaces
            .create(
                &PostParams::default(),
                &namespace(
                    &per_user,
                    &[
                        (MANAGED_BY, "kubesu"),
                        ("kubesu.io/user", "alice"),
                        (ENFORCE, "restricted"),
                    ],
                ),
            )
            .await,
    );
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    assert_refused(
        "kubesu deleting a per-user namespace",
        namespaces.delete(&per_user, &dry_delete).await,
        IDENTITY_POLICY,
        "delete only its per-run namespaces",
    );
    // (kube-system, kube-public and default: NamespaceLifecycle refuses
    // their deletion to everyone, before any policy.)
    let team = unique("kubesu-adm-team");
    let admin: Api<Namespace> = Api::all(bed.admin.clone());
    admin
        .create(&PostParams::default(), &namespace(&team, &[("team", "a")]))
        .await
        .expect("an administrator's namespace");
    assert_refused(
        "kubesu deleting a namespace that is not kubesu's",
        namespaces.delete(&team, &dry_delete).await,
        IDENTITY_POLICY,
        "delete only its per-run namespaces",
    );
    for name in [&per_user, &team] {
        admin
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete a test namespace");
    }
    // A whole run: namespace, account, binding, token, cleanup, revocation;
    // the namespace controller still finalizes the namespace (the ownership
    // policy also sees namespaces/finalize and namespaces/status).
    let run = start_run(&bed).await;
    let name = run.namespace.clone();
    end_run(&bed, run).await;
    eventually(
        Duration::from_secs(90),
        "the per-run namespace is finalized and gone",
        || {
            let admin = admin.clone();
            let name = name.clone();
            async move { matches!(admin.get_opt(&name).await, Ok(None)) }
        },
    )
    .await;
}

// --- 3. kubesu's own identity --------------------------------------------------

/// Whether RBAC alone lets kubesu's identity do this (so that a refusal is
/// the policy's doing).
async fn rbac_allows(client: &Client, namespace: &str, resource: &str, sub: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("create".into()),
                resource: Some(resource.into()),
                subresource: (!sub.is_empty()).then(|| sub.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("kubesu's SelfSubjectAccessReview is allowed (kubesu check)")
        .status
        .expect("review status")
        .allowed
}

#[tokio::test]
async fn kubesus_identity_cannot_mint_a_token_or_make_an_account_outside_its_namespaces() {
    let bed = bed().await;
    assert!(
        rbac_allows(&bed.kubesu, "kube-system", "serviceaccounts", "token").await,
        "kubesu's RBAC grants TokenRequest everywhere: the policy is what refuses it"
    );
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let system: Api<ServiceAccount> = Api::namespaced(bed.kubesu.clone(), "kube-system");
    assert_refused(
        "a token for kube-system's namespace-controller",
        system
            .create_token_request("namespace-controller", &PostParams::default(), &request)
            .await,
        IDENTITY_POLICY,
        "namespace kube-system is not one",
    );
    assert_refused(
        "a ServiceAccount in kube-system",
        system
            .create(
                &dry_run(),
                &ServiceAccount {
                    metadata: meta("kubesu-x", &[(MANAGED_BY, "kubesu")]),
                    ..Default::default()
                },
            )
            .await,
        IDENTITY_POLICY,
        "namespace kube-system is not one",
    );

    let run = start_run(&bed).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(bed.kubesu.clone(), &run.namespace);
    assert_refused(
        "a token for the default ServiceAccount of kubesu's own namespace",
        accounts
            .create_token_request("default", &PostParams::default(), &request)
            .await,
        IDENTITY_POLICY,
        "only for its run ServiceAccounts",
    );
    assert_refused(
        "a ServiceAccount without kubesu's label",
        accounts
            .create(
                &dry_run(),
                &ServiceAccount {
                    metadata: meta("kubesu-unlabelled", &[]),
                    ..Default::default()
                },
            )
            .await,
        IDENTITY_POLICY,
        "ServiceAccounts named kubesu-*",
    );
    // An administrator adopts a namespace (kubesu's label, no Pod Security)
    // with a kubesu-* account in it: no token until Pod Security is enforced.
    let adopted = unique("kubesu-adm-adopted");
    let admin: Api<Namespace> = Api::all(bed.admin.clone());
    admin
        .create(
            &PostParams::default(),
            &namespace(&adopted, &[(MANAGED_BY, "kubesu")]),
        )
        .await
        .expect("an adopted namespace");
    Api::<ServiceAccount>::namespaced(bed.admin.clone(), &adopted)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("kubesu-adopted", &[(MANAGED_BY, "kubesu")]),
                ..Default::default()
            },
        )
        .await
        .expect("an account in the adopted namespace");
    let in_adopted: Api<ServiceAccount> = Api::namespaced(bed.kubesu.clone(), &adopted);
    assert_refused(
        "a token in an adopted namespace without Pod Security",
        in_adopted
            .create_token_request("kubesu-adopted", &PostParams::default(), &request)
            .await,
        IDENTITY_POLICY,
        "pod-security.kubernetes.io/enforce",
    );
    let enforce = json!({"metadata": {"labels": {ENFORCE: "baseline"}}});
    admin
        .patch(&adopted, &PatchParams::default(), &Patch::Merge(&enforce))
        .await
        .expect("an administrator enforces Pod Security");
    assert_allowed(
        "a token in the adopted namespace with Pod Security",
        in_adopted
            .create_token_request("kubesu-adopted", &PostParams::default(), &request)
            .await,
    );
    admin
        .delete(&adopted, &DeleteParams::default())
        .await
        .expect("delete the adopted namespace");

    let extend =
        json!({"metadata": {"annotations": {"kubesu.io/expires": "2099-01-01T00:00:00Z"}}});
    assert_allowed(
        "kubesu extending its lease (a patch of the run's ServiceAccount)",
        accounts
            .patch(
                &run.account,
                &PatchParams::default(),
                &Patch::Merge(&extend),
            )
            .await,
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(bed.kubesu.clone(), "default");
    assert_refused(
        "cleaning up configmaps outside kubesu's namespaces",
        configmaps
            .delete_collection(
                &DeleteParams {
                    dry_run: true,
                    ..Default::default()
                },
                &ListParams::default(),
            )
            .await,
        IDENTITY_POLICY,
        "namespace default is not one",
    );
    end_run(&bed, run).await;
}

#[tokio::test]
async fn kubesus_identity_may_bind_only_the_spark_role_to_its_own_accounts() {
    let bed = bed().await;
    let run = start_run(&bed).await;
    let ns = run.namespace.clone();
    let bindings: Api<RoleBinding> = Api::namespaced(bed.kubesu.clone(), &ns);

    // RBAC refuses cluster-admin first: kubesu holds `bind` on its role only.
    let admin_binding = binding("kubesu-escalate", "cluster-admin", &ns, &run.account);
    match bindings.create(&dry_run(), &admin_binding).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("a RoleBinding to cluster-admin was not refused: {other:?}"),
    }
    // Even when an administrator over-grants `bind`, the policy refuses it.
    let overgrant = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRole\n\
         metadata:\n  name: kubesu-admission-test-overgrant\n\
         rules:\n\
         - apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"clusterroles\"]\n  verbs: [\"bind\"]\n  resourceNames: [\"cluster-admin\"]\n\
         ---\n\
         apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRoleBinding\n\
         metadata:\n  name: kubesu-admission-test-overgrant\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: kubesu-admission-test-overgrant\n\
         subjects:\n- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: {IDENTITY}\n"
    );
    apply_yaml(&bed.admin, &overgrant).await;
    eventually(
        ENFORCEMENT,
        "with `bind` on cluster-admin, the refusal comes from the policy",
        || {
            let bindings = bindings.clone();
            let admin_binding = admin_binding.clone();
            async move {
                refused_by(
                    &bindings.create(&dry_run(), &admin_binding).await,
                    IDENTITY_POLICY,
                )
            }
        },
    )
    .await;
    let result = bindings.create(&dry_run(), &admin_binding).await;
    for name in ["kubesu-admission-test-overgrant"] {
        let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(bed.admin.clone())
            .delete(name, &DeleteParams::default())
            .await;
        let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(bed.admin.clone())
            .delete(name, &DeleteParams::default())
            .await;
    }
    assert_refused(
        "a RoleBinding to cluster-admin, with `bind` over-granted",
        result,
        IDENTITY_POLICY,
        "may bind only ClusterRole kubesu-spark",
    );

    assert_refused(
        "the Spark role for a ServiceAccount of another namespace",
        bindings
            .create(
                &dry_run(),
                &binding("kubesu-other", CLUSTER_ROLE, "kube-system", "kubesu-x"),
            )
            .await,
        IDENTITY_POLICY,
        "of the RoleBinding's own namespace",
    );
    assert_refused(
        "the Spark role for the namespace's default ServiceAccount",
        bindings
            .create(
                &dry_run(),
                &binding("kubesu-default", CLUSTER_ROLE, &ns, "default"),
            )
            .await,
        IDENTITY_POLICY,
        "to kubesu-* ServiceAccounts",
    );
    assert_allowed(
        "the Spark role for a kubesu-* ServiceAccount of the namespace",
        bindings
            .create(
                &dry_run(),
                &binding("kubesu-another", CLUSTER_ROLE, &ns, "kubesu-another"),
            )
            .await,
    );
    end_run(&bed, run).await;
}

// --- the policies themselves ----------------------------------------------------

#[tokio::test]
async fn the_policies_type_check_cleanly_on_the_api_server() {
    let bed = bed().await;
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(bed.admin.clone());
    for name in [RUN_POLICY, OWNERSHIP_POLICY, IDENTITY_POLICY] {
        let start = Instant::now();
        loop {
            let policy = policies.get(name).await.expect("policy");
            let generation = policy.metadata.generation;
            let status = policy.status.unwrap_or_default();
            if status.observed_generation == generation {
                let warnings = status
                    .type_checking
                    .and_then(|t| t.expression_warnings)
                    .unwrap_or_default();
                assert!(
                    warnings.is_empty(),
                    "{name} type-checks with warnings: {warnings:?}"
                );
                break;
            }
            assert!(
                start.elapsed() < ENFORCEMENT,
                "{name}: the API server never checked generation {generation:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[test]
fn the_policy_file_names_kubesus_identity_and_role_only_through_its_two_tokens() {
    assert!(POLICY_FILE.matches("'KUBESU_IDENTITY'").count() >= 2);
    assert!(POLICY_FILE.matches("'KUBESU_CLUSTER_ROLE'").count() >= 2);
    let text = substituted(
        "system:serviceaccount:kubesu-system:o'brien",
        "kubesu-spark",
    );
    assert!(text.contains(r"'system:serviceaccount:kubesu-system:o\'brien'"));
    assert!(
        !POLICY_FILE.contains("username == 'kubesu'"),
        "no identity is built in"
    );
    assert_eq!(
        documents(POLICY_FILE).len(),
        6,
        "three policies, three bindings"
    );
}
