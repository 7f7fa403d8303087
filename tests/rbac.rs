//! `kubesu rbac` grants kubesu's identity exactly what kubesu calls: every
//! API request of real runs (per-user and per-run namespaces, a token
//! renewal, a spark-submit's cleanup), of `gc` removing a dead run's
//! leftovers, of `list` and of `check` is recorded by a proxy in front of the
//! test bed, turned into the RBAC (verb, group, resource) it needs, and
//! compared both ways with the ClusterRole `kubesu rbac` prints.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::proxy::{FaultProxy, Request, api_port};
use common::*;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServicePort, ServiceSpec};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};

/// What RBAC checks for one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    verb: String,
    group: String,
    /// "resource" or "resource/subresource".
    resource: String,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group.as_str() {
            "" => write!(f, "{} {}", self.verb, self.resource),
            group => write!(f, "{} {}.{group}", self.verb, self.resource),
        }
    }
}

/// The access a request needs, and the object's name when it names one;
/// None for non-resource URLs (/version), which every client may read.
fn access_of(request: &Request) -> Option<(Access, Option<String>)> {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        // A group version's resource list (discovery): readable by every
        // authenticated client, like /version.
        ["api", _version] | ["apis", _, _version] => return None,
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    // namespaces/NS/RESOURCE...: namespaced; namespaces[/NAME]: the
    // cluster-scoped namespaces themselves.
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource] => (*resource, Some(*name), Some(*subresource)),
        _ => panic!("unexpected API path {}", request.target),
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (request.method.as_str(), name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        (method, _) => panic!("unexpected method {method} {}", request.target),
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let access = Access {
        verb: verb.into(),
        group: group.into(),
        resource,
    };
    Some((access, name.map(str::to_string)))
}

/// The rules of the ClusterRole `kubesu` that `kubesu rbac` prints (its
/// first document): each access, with the names it is restricted to.
fn printed_rules() -> BTreeMap<Access, BTreeSet<String>> {
    let out = output(&mut root_kubesu(&["rbac"]));
    assert_eq!(out.status.code(), Some(0), "kubesu rbac: {}", stderr(&out));
    let text = stdout(&out);
    let role = text.split("\n---\n").next().expect("a first document");
    // The values are flow sequences of JSON strings (see admin/rbac.rs).
    let list = |line: &str, key: &str| -> Option<Vec<String>> {
        let value = line.trim_start_matches(['-', ' ']).strip_prefix(key)?;
        Some(serde_json::from_str(value.trim()).expect("a JSON list"))
    };
    let mut rules = BTreeMap::new();
    let (mut groups, mut resources, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for line in role.lines() {
        if let Some(v) = list(line, "apiGroups:") {
            (groups, resources, names) = (v, Vec::new(), Vec::new());
        } else if let Some(v) = list(line, "resources:") {
            resources = v;
        } else if let Some(v) = list(line, "resourceNames:") {
            names = v;
        } else if let Some(verbs) = list(line, "verbs:") {
            for group in &groups {
                for resource in &resources {
                    for verb in &verbs {
                        let access = Access {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                        };
                        rules.insert(access, names.iter().cloned().collect());
                    }
                }
            }
        }
    }
    assert!(!rules.is_empty(), "no rules in:\n{role}");
    rules
}

/// A Service left by a dead run, for `gc` to delete.
async fn leftover_service(namespace: &str, run: &str) {
    let service = Service {
        metadata: ObjectMeta {
            name: Some(format!("spark-{run}-driver-svc")),
            labels: Some(BTreeMap::from([(
                "kubesu.io/run".to_string(),
                run.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 7078,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Service>::namespaced(admin_client().await, namespace)
        .create(&PostParams::default(), &service)
        .await
        .expect("create leftover Service");
}

/// A spark-submit (by the config) that prints its run id and waits: the
/// test makes the run's driver pod meanwhile.
const FAKE_SPARK_SUBMIT: &str = "/etc/kubesu/test-fake-spark-submit";

/// A run of FAKE_SPARK_SUBMIT for alice with a pod labelled as its driver
/// (as Spark labels one): revocation reads its log before deleting it. The
/// pod never starts (its image is absent), so the read fails; it is the
/// request that counts here.
async fn run_with_a_driver_pod(config: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        FAKE_SPARK_SUBMIT,
        "#!/bin/sh\necho \"$KUBESU_RUN_ID\"\nexec /usr/bin/sleep 4\n",
    )
    .expect("write the fake spark-submit");
    std::fs::set_permissions(FAKE_SPARK_SUBMIT, std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let (child, run) = start_and_read_first_line(&mut root_kubesu(&[
        "run",
        "--config",
        config,
        "--user",
        "alice",
        "--",
        FAKE_SPARK_SUBMIT,
    ]));
    let run = run.as_str();
    // Within Pod Security "restricted", which the example config enforces.
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("spark-{run}-driver"),
            "labels": {"kubesu.io/run": run, "spark-role": "driver"},
        },
        "spec": {
            "serviceAccountName": format!("kubesu-alice-{run}"),
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "spark-kubernetes-driver",
                "image": "kubesu.test/absent:0",
                "imagePullPolicy": "Never",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .expect("pod manifest");
    Api::<Pod>::namespaced(admin_client().await, "kubesu-alice")
        .create(&PostParams::default(), &pod)
        .await
        .expect("create the driver pod");
    let out = child.wait_with_output().expect("wait for the run");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn ok(command: &mut std::process::Command) {
    let out = output(command);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{command:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn kubesu_rbac_grants_exactly_what_kubesu_calls() {
    let proxy = FaultProxy::start(api_port());
    // /usr/bin/true as a spark-submit: the forced settings are ignored and
    // revocation cleans up Spark's leftovers. A token renewal a second
    // after the start (the shortest lifetime, renewed 599 s before it ends).
    let spark = (
        "path = \"/usr/bin/true\"",
        "path = \"/usr/bin/true\"\nspark_submit = true",
    );
    let renew = (
        "token_ttl = \"1h\"",
        "token_ttl = \"10m\"\nrenew_before = \"599\"",
    );
    let driver = (
        "[[command]]\npath = \"/usr/bin/id\"",
        &*format!(
            "[[command]]\npath = \"{FAKE_SPARK_SUBMIT}\"\nspark_submit = true\n\n[[command]]\npath = \"/usr/bin/id\""
        ),
    );
    let per_user = proxy.config_variant("rbac-per-user", &[spark, renew, driver]);
    let per_run = proxy.config_variant(
        "rbac-per-run",
        &[
            spark,
            ("policy = \"per-user\"", "policy = \"per-run\""),
            (
                "template = \"kubesu-{user}\"",
                "template = \"kubesu-run-{run}\"",
            ),
        ],
    );
    let run = |config: &str, command: &[&str]| {
        let mut args = vec!["run", "--config", config, "--user", "alice", "--"];
        args.extend_from_slice(command);
        ok(&mut root_kubesu(&args));
    };
    // Twice per user: the namespace is created, then found; then found with
    // a label someone removed, which kubesu puts back.
    run(&per_user, &["/usr/bin/true"]);
    run(&per_user, &["/usr/bin/sleep", "3"]);
    let relax = serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce-version": null}}});
    Api::<Namespace>::all(admin_client().await)
        .patch(
            "kubesu-alice",
            &PatchParams::default(),
            &Patch::Merge(&relax),
        )
        .await
        .expect("remove a label of kubesu's namespace");
    run(&per_user, &["/usr/bin/true"]);
    run(&per_run, &["/usr/bin/true"]);
    // A run whose "driver" pod is there at revocation: its log is kept.
    run_with_a_driver_pod(&per_user).await;

    let dead_run = "zzzzzzzzzzzzzzzz";
    leftover_service("kubesu-alice", dead_run).await;
    ok(&mut root_kubesu(&["gc", "--config", &per_user]));
    ok(&mut root_kubesu(&["list", "--config", &per_user]));
    // Its verdict is tests/check.rs's business; here only its requests count.
    let check = output(&mut root_kubesu(&["check", "--config", &per_user]));

    let mut called: BTreeMap<Access, BTreeSet<String>> = BTreeMap::new();
    for request in proxy.requests() {
        if let Some((access, name)) = access_of(&request) {
            called.entry(access).or_default().extend(name);
        }
    }
    // Creating a RoleBinding to a ClusterRole is checked as `bind` on that
    // ClusterRole, a request of its own kubesu never sends.
    // A server-side apply (a PATCH with force) that creates its object is
    // authorized as a create too.
    let applies: Vec<(Access, BTreeSet<String>)> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.target.contains("force=true"))
        .filter_map(access_of)
        .map(|(access, name)| {
            (
                Access {
                    verb: "create".into(),
                    ..access
                },
                name.into_iter().collect(),
            )
        })
        .collect();
    for (access, names) in applies {
        called.entry(access).or_default().extend(names);
    }
    let binds = Access {
        verb: "create".into(),
        group: "rbac.authorization.k8s.io".into(),
        resource: "rolebindings".into(),
    };
    if called.contains_key(&binds) {
        let bind = Access {
            verb: "bind".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
        };
        called
            .entry(bind)
            .or_default()
            .insert("kubesu-spark".into());
    }

    let granted = printed_rules();
    let mut problems = Vec::new();
    for (access, names) in &called {
        match granted.get(access) {
            None => problems.push(format!("called but not granted: {access}")),
            Some(allowed) if !allowed.is_empty() && !names.is_subset(allowed) => problems.push(
                format!("called on {names:?}, granted only on {allowed:?}: {access}"),
            ),
            Some(_) => {}
        }
    }
    for access in granted.keys().filter(|a| !called.contains_key(a)) {
        problems.push(format!("granted but never called: {access}"));
    }
    assert!(
        problems.is_empty(),
        "`kubesu rbac` and what kubesu calls differ:\n  {}\ncalled: {:#?}\nkubesu check said:\n{}",
        problems.join("\n  "),
        called.keys().map(ToString::to_string).collect::<Vec<_>>(),
        stdout(&check)
    );
}

#[test]
fn requests_map_to_the_access_rbac_checks() {
    let access = |method: &str, target: &str| {
        access_of(&Request {
            method: method.into(),
            target: target.into(),
        })
        .map(|(a, name)| (a.to_string(), name))
    };
    assert_eq!(access("GET", "/version"), None);
    assert_eq!(access("GET", "/apis/admissionregistration.k8s.io/v1"), None);
    assert_eq!(access("GET", "/api/v1"), None);
    assert_eq!(
        access("GET", "/api/v1/namespaces/kubesu-alice"),
        Some(("get namespaces".into(), Some("kubesu-alice".into())))
    );
    assert_eq!(
        access("GET", "/api/v1/serviceaccounts?labelSelector=x"),
        Some(("list serviceaccounts".into(), None))
    );
    assert_eq!(
        access("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token"),
        Some(("create serviceaccounts/token".into(), Some("sa".into())))
    );
    assert_eq!(
        access(
            "DELETE",
            "/api/v1/namespaces/ns/pods?labelSelector=kubesu.io%2Frun%3Dx"
        ),
        Some(("deletecollection pods".into(), None))
    );
    assert_eq!(
        access("PATCH", "/api/v1/namespaces/ns/serviceaccounts/sa"),
        Some(("patch serviceaccounts".into(), Some("sa".into())))
    );
    assert_eq!(
        access(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        ),
        Some((
            "create selfsubjectaccessreviews.authorization.k8s.io".into(),
            None
        ))
    );
    assert_eq!(
        access(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/kubesu-spark"
        ),
        Some((
            "get clusterroles.rbac.authorization.k8s.io".into(),
            Some("kubesu-spark".into())
        ))
    );
}
