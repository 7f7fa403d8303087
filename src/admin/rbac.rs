//! `kubesu rbac`: the RBAC manifests an administrator applies once, with
//! `kubesu rbac | kubectl apply -f -`:
//!
//! 1. the ClusterRole `kubesu` for kubesu's own identity: exactly the API
//!    calls kubesu makes, nothing more;
//! 2. the ClusterRoleBinding `kubesu` that gives it to kubesu's identity;
//! 3. the Spark ClusterRole (`[cluster] cluster_role`) each run's
//!    ServiceAccount gets in its namespace.
//!
//! With `--admission`, the ValidatingAdmissionPolicies of
//! deploy/admission-policy.yaml instead, with kubesu's identity and the
//! Spark ClusterRole written in (docs/admission.md).
//!
//! The permissions are data (`policy::permissions`): the manifests are
//! printed from them and `kubesu check` verifies them, so
//! what is granted and what is checked cannot drift apart. The committed
//! deploy/spark-clusterrole.yaml is this module's output (a test keeps it so).

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::RbacArgs;
use crate::failure::{Failure, Result};
use crate::policy::config;
use crate::policy::permissions::{KUBESU_PERMISSIONS, Names, Permission, SPARK_PERMISSIONS};
use crate::sys::Invoker;

/// The name of kubesu's own ClusterRole and ClusterRoleBinding.
pub const KUBESU_ROLE: &str = "kubesu";
/// The identity `kubesu rbac` binds when given neither --user nor
/// --service-account.
pub const DEFAULT_USER: &str = "kubesu";

/// Whom the ClusterRoleBinding names: the identity in kubesu's kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    ServiceAccount { namespace: String, name: String },
}

impl Subject {
    /// The user name the API server sees for this identity, as admission
    /// policies compare it.
    pub fn username(&self) -> String {
        match self {
            Subject::User(user) => user.clone(),
            Subject::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }

    pub fn from_args(args: &RbacArgs) -> Result<Subject> {
        match (&args.user, &args.service_account) {
            (Some(_), Some(_)) => Err(Failure::usage(
                "give either --user or --service-account, not both",
            )),
            (Some(user), None) => {
                if user.is_empty() || user.chars().any(char::is_control) {
                    return Err(Failure::usage(format!(
                        "--user {user:?} is not a Kubernetes user name"
                    )));
                }
                Ok(Subject::User(user.clone()))
            }
            (None, Some(account)) => {
                let bad = || {
                    Failure::usage(format!(
                        "--service-account {account:?} is not NAMESPACE/NAME (lowercase letters, digits, '-' and '.')"
                    ))
                };
                let (namespace, name) = account.split_once('/').ok_or_else(bad)?;
                let valid = |s: &str| {
                    !s.is_empty()
                        && s.len() <= 253
                        && s.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                        })
                        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
                };
                if !valid(namespace) || !valid(name) || namespace.contains('.') {
                    return Err(bad());
                }
                Ok(Subject::ServiceAccount {
                    namespace: namespace.into(),
                    name: name.into(),
                })
            }
            (None, None) => Ok(Subject::User(DEFAULT_USER.into())),
        }
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
///
/// The manifests are printed by hand, not with a YAML serializer: each rule
/// carries a comment saying why kubesu needs it, which serializers do not
/// write, and serde_yaml is no longer maintained. Every value from the
/// config goes through this quoting, so none can inject YAML.
fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn flow(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `# ...` comment lines for `text`, wrapped at about 76 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 76 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

fn cluster_role(out: &mut String, name: &str, rules: &[Permission], cluster_role_name: &str) {
    let _ = write!(
        out,
        "apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRole\n\
         metadata:\n  name: {}\n  labels:\n    app.kubernetes.io/managed-by: kubesu\n\
         rules:\n",
        quote(name)
    );
    for rule in rules {
        comment(out, rule.why);
        let _ = writeln!(out, "- apiGroups: {}", flow(&[rule.group]));
        let _ = writeln!(out, "  resources: {}", flow(rule.resources));
        if rule.names == Names::ClusterRole {
            let _ = writeln!(out, "  resourceNames: {}", flow(&[cluster_role_name]));
        }
        let _ = writeln!(out, "  verbs: {}", flow(rule.verbs));
    }
}

/// The Spark ClusterRole alone, as committed in deploy/spark-clusterrole.yaml.
pub fn spark_manifest(cluster_role_name: &str) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "The ClusterRole kubesu binds, in the run's namespace only, to each run's \
         ServiceAccount: what a Spark driver needs to run executors (pods, services, \
         configmaps, persistentvolumeclaims), and nothing else. Generated by \
         `kubesu rbac`; [cluster] cluster_role in the config names it.",
    );
    cluster_role(
        &mut out,
        cluster_role_name,
        SPARK_PERMISSIONS,
        cluster_role_name,
    );
    out
}

/// All three manifests, as one multi-document YAML stream.
pub fn manifests(cluster_role_name: &str, subject: &Subject) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "kubesu's RBAC, generated by `kubesu rbac`. Apply once as a cluster \
         administrator: kubesu rbac | kubectl apply -f -",
    );
    out.push_str("#\n");
    comment(
        &mut out,
        "kubesu's own identity: exactly the API calls kubesu makes. `kubesu check` \
         verifies each rule with a SelfSubjectAccessReview.",
    );
    cluster_role(&mut out, KUBESU_ROLE, KUBESU_PERMISSIONS, cluster_role_name);
    out.push_str("---\n");
    comment(
        &mut out,
        "Gives it to the identity in kubesu's kubeconfig ([cluster] kubeconfig).",
    );
    let _ = write!(
        out,
        "apiVersion: rbac.authorization.k8s.io/v1\n\
         kind: ClusterRoleBinding\n\
         metadata:\n  name: {name}\n  labels:\n    app.kubernetes.io/managed-by: kubesu\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {name}\n\
         subjects:\n",
        name = quote(KUBESU_ROLE)
    );
    match subject {
        Subject::User(user) => {
            let _ = write!(
                out,
                "- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: {}\n",
                quote(user)
            );
        }
        Subject::ServiceAccount { namespace, name } => {
            let _ = write!(
                out,
                "- kind: ServiceAccount\n  namespace: {}\n  name: {}\n",
                quote(namespace),
                quote(name)
            );
        }
    }
    out.push_str("---\n");
    out.push_str(&spark_manifest(cluster_role_name));
    out
}

/// The policies of deploy/admission-policy.yaml, each with a binding of the
/// same name: `kubesu check` looks for these.
pub const ADMISSION_POLICY_NAMES: [&str; 3] = [
    "kubesu-run-confinement",
    "kubesu-namespace-ownership",
    "kubesu-identity-confinement",
];

/// The admission policies as committed: kubesu's identity and the Spark
/// ClusterRole are the CEL string literals below, replaced whole.
const ADMISSION_POLICIES: &str = include_str!("../../deploy/admission-policy.yaml");
const IDENTITY_PLACEHOLDER: &str = "'KUBESU_IDENTITY'";
const CLUSTER_ROLE_PLACEHOLDER: &str = "'KUBESU_CLUSTER_ROLE'";

/// A CEL single-quoted string literal. The file puts every placeholder in a
/// YAML literal block, where no YAML escaping applies.
fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// deploy/admission-policy.yaml for `subject` and the Spark ClusterRole.
pub fn admission_policies(cluster_role_name: &str, subject: &Subject) -> String {
    ADMISSION_POLICIES
        .replace(IDENTITY_PLACEHOLDER, &cel_string(&subject.username()))
        .replace(CLUSTER_ROLE_PLACEHOLDER, &cel_string(cluster_role_name))
}

/// `kubesu rbac`: print the manifests. Needs only a readable config (for
/// the Spark ClusterRole's name), not root.
pub fn rbac(config_path: Option<&Path>, args: &RbacArgs) -> Result<i32> {
    let subject = Subject::from_args(args)?;
    let invoker = Invoker::current();
    let chosen = config::chosen(config_path, invoker.came_through_sudo());
    let config = chosen.and_then(config::load).map_err(|mut failure| {
        if !invoker.effective_uid.is_root() {
            failure.message.push_str(
                "; `kubesu rbac` reads the config for [cluster] cluster_role: run it as root \
                 (sudo kubesu rbac) or make the config readable",
            );
        }
        failure
    })?;
    let role = &config.cluster.cluster_role;
    if args.admission {
        out_raw!("{}", admission_policies(role, &subject));
    } else {
        out_raw!("{}", manifests(role, &subject));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::Config;

    const EXAMPLE: &str = include_str!("../../examples/config.toml");
    const DEPLOYED: &str = include_str!("../../deploy/spark-clusterrole.yaml");

    fn example_role() -> String {
        Config::parse(EXAMPLE, Path::new("example.toml"))
            .expect("example config")
            .cluster
            .cluster_role
    }

    fn args(user: Option<&str>, account: Option<&str>) -> RbacArgs {
        RbacArgs {
            user: user.map(Into::into),
            service_account: account.map(Into::into),
            admission: false,
        }
    }

    #[test]
    fn admission_policies_name_the_identity_and_the_role_and_nothing_is_left_to_fill() {
        let sa = Subject::ServiceAccount {
            namespace: "kubesu-system".into(),
            name: "kubesu".into(),
        };
        let yaml = admission_policies("spark-role", &sa);
        assert!(!yaml.contains(IDENTITY_PLACEHOLDER) && !yaml.contains(CLUSTER_ROLE_PLACEHOLDER));
        assert!(
            yaml.contains(
                "request.userInfo.username == 'system:serviceaccount:kubesu-system:kubesu'"
            )
        );
        assert!(yaml.contains("object.roleRef.name == 'spark-role'"));
        assert_eq!(
            yaml.matches("kind: ValidatingAdmissionPolicy\n").count(),
            yaml.matches("kind: ValidatingAdmissionPolicyBinding\n")
                .count()
        );
    }

    #[test]
    fn check_looks_for_every_policy_and_binding_the_file_holds() {
        let names = |kind: &str| -> Vec<&str> {
            ADMISSION_POLICIES
                .split("\n---\n")
                .filter(|doc| doc.contains(&format!("\nkind: {kind}\n")))
                .filter_map(|doc| doc.split("\n  name: ").nth(1))
                .filter_map(|rest| rest.lines().next())
                .collect()
        };
        assert_eq!(names("ValidatingAdmissionPolicy"), ADMISSION_POLICY_NAMES);
        assert_eq!(
            names("ValidatingAdmissionPolicyBinding"),
            ADMISSION_POLICY_NAMES
        );
    }

    #[test]
    fn admission_takes_the_same_identity_options_as_the_rbac() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args);
        for ok in [
            &["kubesu", "rbac", "--admission", "--user", "kubesu"][..],
            &[
                "kubesu",
                "rbac",
                "--admission",
                "--service-account",
                "ns/kubesu",
            ],
            &["kubesu", "rbac", "--admission"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        assert!(parse(&["kubesu", "rbac", "--user", "a", "--service-account", "ns/b"]).is_err());
    }

    #[test]
    fn a_quote_in_a_name_cannot_end_the_cel_string() {
        let yaml = admission_policies(
            r"a\' || true || '",
            &Subject::User("x' || true || '".into()),
        );
        assert!(yaml.contains(r"== 'x\' || true || \''"));
        assert!(yaml.contains(r"'a\\\' || true || \''"));
    }

    /// Regenerate with `KUBESU_REGENERATE=1 cargo test --lib rbac`.
    #[test]
    fn the_committed_spark_clusterrole_is_what_rbac_prints() {
        let generated = spark_manifest(&example_role());
        if std::env::var_os("KUBESU_REGENERATE").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/spark-clusterrole.yaml");
            std::fs::write(path, &generated).expect("write deploy/spark-clusterrole.yaml");
            return;
        }
        assert_eq!(
            DEPLOYED, generated,
            "deploy/spark-clusterrole.yaml is stale: regenerate it with \
             `KUBESU_REGENERATE=1 cargo test --lib rbac`"
        );
        assert!(manifests(&example_role(), &Subject::User("kubesu".into())).ends_with(DEPLOYED));
    }

    #[test]
    fn the_manifests_are_three_documents() {
        let yaml = manifests("spark-role", &Subject::User("kubesu".into()));
        let docs: Vec<&str> = yaml.split("\n---\n").collect();
        assert_eq!(docs.len(), 3, "{yaml}");
        assert!(docs[0].contains("kind: ClusterRole\nmetadata:\n  name: \"kubesu\"\n"));
        assert!(docs[0].contains(
            "- apiGroups: [\"rbac.authorization.k8s.io\"]\n  resources: [\"clusterroles\"]\n  \
             resourceNames: [\"spark-role\"]\n  verbs: [\"get\", \"bind\"]\n"
        ));
        assert!(docs[0].contains(
            "- apiGroups: [\"\"]\n  resources: [\"serviceaccounts/token\"]\n  verbs: [\"create\"]\n"
        ));
        assert_eq!(
            docs[0].matches("\n- apiGroups:").count(),
            KUBESU_PERMISSIONS.len()
        );
        assert!(docs[1].contains("kind: ClusterRoleBinding\n"));
        assert!(docs[1].contains("roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: \"kubesu\"\n"));
        assert!(docs[1].contains(
            "subjects:\n- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: \"kubesu\""
        ));
        assert!(docs[2].contains("kind: ClusterRole\nmetadata:\n  name: \"spark-role\"\n"));
        assert_eq!(
            docs[2].matches("\n- apiGroups:").count(),
            SPARK_PERMISSIONS.len()
        );
        // Every comment line is a comment, every line fits a terminal.
        for line in yaml.lines() {
            assert!(line.len() <= 100, "{line}");
            assert!(!line.contains('\t'), "{line}");
        }
    }

    #[test]
    fn names_are_quoted_so_the_config_cannot_inject_yaml() {
        let yaml = manifests(
            "evil\"\n  verbs: [\"*\"]",
            &Subject::User("u: x\n- kind: Group".into()),
        );
        assert!(!yaml.contains("\n  verbs: [\"*\"]"));
        assert!(!yaml.contains("\n- kind: Group"));
        assert!(yaml.contains(r#"name: "evil\"\n  verbs: [\"*\"]""#));
    }

    /// kubesu-run-confinement reads a run's id from the end of the
    /// requester's ServiceAccount name: the way naming makes that name.
    #[test]
    fn the_run_policy_reads_the_run_id_where_kubesu_puts_it() {
        use crate::policy::identity::{RUN_ID_CHARS, RunId};
        use crate::policy::naming;
        let shape = format!(
            "variables.account.startsWith('kubesu-') && \
             variables.account.matches('-[a-z2-7]{{{RUN_ID_CHARS}}}$')"
        );
        assert!(ADMISSION_POLICIES.contains(&shape), "{shape}");
        let id = format!("substring(size(variables.account) - {RUN_ID_CHARS})");
        assert!(ADMISSION_POLICIES.contains(&id), "{id}");
        for user in ["alice", &"a".repeat(32), "_svc"] {
            let run = RunId::generate().unwrap();
            let account = naming::service_account(user, &run);
            assert!(account.starts_with("kubesu-"), "{account}");
            let (head, tail) = account.split_at(account.len() - RUN_ID_CHARS);
            assert!(head.ends_with('-'), "{account}");
            assert_eq!(tail, run.as_str());
            let base32 = |b: u8| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b);
            assert!(tail.bytes().all(base32), "{account}");
        }
    }

    #[test]
    fn identities() {
        assert_eq!(
            Subject::from_args(&args(None, None)).unwrap(),
            Subject::User("kubesu".into())
        );
        assert_eq!(
            Subject::from_args(&args(Some("ops-kubesu"), None)).unwrap(),
            Subject::User("ops-kubesu".into())
        );
        let sa = Subject::from_args(&args(None, Some("kube-system/kubesu"))).unwrap();
        assert_eq!(
            sa,
            Subject::ServiceAccount {
                namespace: "kube-system".into(),
                name: "kubesu".into()
            }
        );
        let yaml = manifests("r", &sa);
        assert!(yaml.contains(
            "subjects:\n- kind: ServiceAccount\n  namespace: \"kube-system\"\n  name: \"kubesu\"\n"
        ));
        for bad in [
            "kubesu", "/kubesu", "ns/", "a/b/c", "NS/x", "ns/-x", "a.b/x",
        ] {
            let err = Subject::from_args(&args(None, Some(bad))).unwrap_err();
            assert_eq!(err.code, crate::failure::Code::Usage, "{bad}");
        }
        assert!(Subject::from_args(&args(Some(""), None)).is_err());
        assert!(Subject::from_args(&args(Some("a"), Some("b/c"))).is_err());
    }
}
