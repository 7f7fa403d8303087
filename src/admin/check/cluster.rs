//! The cluster's side of `kubesu check`: can kubesu reach the API server,
//! does its identity hold every rule of `kubesu rbac` (asked with a
//! SelfSubjectAccessReview each), and does the Spark ClusterRole exist and
//! grant what a driver needs.
//!
//! kubesu's admission policies (`kubesu rbac --admission`) are read where
//! the API server serves them (1.30 and later): each must exist, fail closed
//! and be bound to deny. On older clusters the row says what is not
//! enforced there and passes: nothing can be installed.
//!
//! The Spark ClusterRole's existence is read with `get` on that one
//! ClusterRole (granted by `kubesu rbac` with `resourceNames`): a RoleBinding
//! to a missing ClusterRole is accepted by the API server, and every run's
//! Spark driver would then be refused.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::APPLY_RBAC;
use super::report::{Report, Row};
use crate::admin::rbac::ADMISSION_POLICY_NAMES;
use crate::cluster::{Cluster, access, tenancy};
use crate::failure::Failure;
use crate::policy::config::Config;
use crate::policy::permissions::{KUBESU_PERMISSIONS, Names, Permission, SPARK_PERMISSIONS};

pub async fn cluster_checks(report: &mut Report, config: &Config) {
    let fix_connect =
        "check [cluster] kubeconfig and server in the config; start the API server if it is down";
    let cluster = match Cluster::connect(
        &config.cluster.kubeconfig,
        config.cluster.server.as_deref(),
        config.cluster.request_timeout,
    )
    .await
    {
        Ok(cluster) => cluster,
        Err(failure) => {
            report.fail("cluster", failure, fix_connect);
            report.skip("rbac", "no connection to the cluster");
            return;
        }
    };
    match access::version(&cluster).await {
        Ok(info) => report.pass(
            "cluster",
            format!(
                "reachable; Kubernetes {} (users get {})",
                info.git_version, cluster.server
            ),
        ),
        Err(failure) => {
            report.fail("cluster", failure, fix_connect);
            report.skip("rbac", "the cluster is unreachable");
            return;
        }
    }
    let role = config.cluster.cluster_role.as_str();
    let answers = futures::future::join_all(
        KUBESU_PERMISSIONS
            .iter()
            .map(|p| permission_row(&cluster, p, role)),
    )
    .await;
    report.rows.extend(answers);
    report.rows.push(spark_role_row(&cluster, role).await);
    report.rows.push(admission_row(&cluster).await);
    report
        .rows
        .push(namespace_policy_row(&cluster, config).await);
}

/// Whether kubesu's namespaces carry the config's Pod Security labels,
/// quota, limits and isolation, as the API server holds them now.
async fn namespace_policy_row(cluster: &Cluster, config: &Config) -> Row {
    let name = "namespace policy";
    let fix = "kubesu applies the policy again at the next run in each namespace named; to \
               repair one now, run any allowed command there (e.g. `kubesu run --user USER -- \
               /usr/bin/true`), or delete the namespace if it is no longer used";
    let mut report = Report::default();
    match tenancy::drift(cluster, config).await {
        Ok((count, drifted)) if drifted.is_empty() => report.pass(
            name,
            format!("{count} namespace(s) of kubesu's match [namespace] and [objects]"),
        ),
        Ok((count, drifted)) => {
            let shown: Vec<String> = drifted
                .iter()
                .take(5)
                .map(|(ns, problems)| format!("{ns}: {}", problems.join(", ")))
                .collect();
            let more = drifted.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            let failure = Failure::config(format!(
                "{} of {count} namespace(s) differ from the config: {}{more}",
                drifted.len(),
                shown.join("; ")
            ));
            report.fail(name, failure, fix);
        }
        Err(failure) => report.fail(name, failure, APPLY_RBAC),
    }
    report.rows.remove(0)
}

const APPLY_ADMISSION: &str = "as a cluster administrator, apply `kubesu rbac --admission | kubectl apply -f -` \
     (with the same --user or --service-account as kubesu rbac)";

async fn admission_row(cluster: &Cluster) -> Row {
    let name = "admission policies";
    let mut report = Report::default();
    match admission_problems(cluster).await {
        Ok(None) => report.pass(
            name,
            "not served by this API server (before Kubernetes 1.30): a run's token may create \
             NodePort and externalIPs Services and claims naming any volume, tenants may forge \
             kubesu's namespace labels, and kubesu's identity is confined by RBAC alone \
             (docs/security.md)",
        ),
        Ok(Some(problems)) if problems.is_empty() => report.pass(
            name,
            format!(
                "{} installed, failing closed, bound to deny",
                ADMISSION_POLICY_NAMES.join(", ")
            ),
        ),
        Ok(Some(problems)) => {
            report.fail(name, Failure::config(problems.join("; ")), APPLY_ADMISSION)
        }
        Err(failure) => report.fail(name, failure, APPLY_ADMISSION),
    }
    report.rows.remove(0)
}

/// None where the server has no admission policies; else what is wrong.
async fn admission_problems(cluster: &Cluster) -> crate::failure::Result<Option<Vec<String>>> {
    if !access::admission_policies_served(cluster).await? {
        return Ok(None);
    }
    let found = futures::future::join_all(
        ADMISSION_POLICY_NAMES
            .iter()
            .map(|name| access::admission_policy(cluster, name)),
    )
    .await;
    let mut problems = Vec::new();
    for (name, found) in ADMISSION_POLICY_NAMES.iter().zip(found) {
        let (policy, binding) = found?;
        match policy.and_then(|p| p.spec) {
            None => problems.push(format!("policy {name} is missing")),
            Some(spec) if spec.failure_policy.as_deref() != Some("Fail") => problems.push(format!(
                "policy {name} does not fail closed (failurePolicy Fail)"
            )),
            Some(_) => {}
        }
        match binding.and_then(|b| b.spec) {
            None => problems.push(format!("binding {name} is missing")),
            Some(spec)
                if spec.policy_name.as_deref() != Some(name)
                    || !spec
                        .validation_actions
                        .as_ref()
                        .is_some_and(|a| a.iter().any(|a| a == "Deny")) =>
            {
                problems.push(format!(
                    "binding {name} does not bind policy {name} to Deny"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(Some(problems))
}

/// "rbac namespaces", "rbac clusterroles/kubesu-spark": short, the group is
/// in `kubesu rbac`'s output.
fn row_name(p: &Permission, role: &str) -> String {
    let resources = p.resources.join(",");
    match p.names {
        Names::Any => format!("rbac {resources}"),
        Names::ClusterRole => format!("rbac {resources}/{role}"),
    }
}

/// One row per rule of `kubesu rbac`: every verb on every resource asked
/// with a SelfSubjectAccessReview, cluster-wide (no namespace).
async fn permission_row(cluster: &Cluster, p: &Permission, role: &str) -> Row {
    let name = row_name(p, role);
    let pairs: Vec<_> = p.pairs().collect();
    let answers = futures::future::join_all(
        pairs
            .iter()
            .map(|(r, v)| access::allowed(cluster, p, r, v, role)),
    )
    .await;
    // Per resource, in order: "get, delete on pods".
    let mut missing: Vec<(&str, Vec<&str>)> = Vec::new();
    for ((resource, verb), answer) in pairs.iter().zip(answers) {
        match answer {
            Ok(true) => {}
            Ok(false) => match missing.iter_mut().find(|(r, _)| r == resource) {
                Some((_, verbs)) => verbs.push(verb),
                None => missing.push((resource, vec![verb])),
            },
            Err(failure) => {
                return Row {
                    name,
                    ok: false,
                    detail: failure.message,
                    fix: Some(APPLY_RBAC.into()),
                    code: Some(failure.code),
                    skipped: false,
                };
            }
        }
    }
    let mut report = Report::default();
    if missing.is_empty() {
        report.pass(name, format!("granted: {}", p.verbs.join(", ")));
    } else {
        let missing: Vec<String> = missing
            .iter()
            .map(|(resource, verbs)| format!("{} on {resource}", verbs.join(", ")))
            .collect();
        let failure = Failure::config(format!("missing: {} ({})", missing.join("; "), p.why));
        report.fail(name, failure, APPLY_RBAC);
    }
    report.rows.remove(0)
}

async fn spark_role_row(cluster: &Cluster, role: &str) -> Row {
    let name = format!("spark role {role}");
    let mut report = Report::default();
    let found = match access::cluster_role(cluster, role).await {
        Ok(found) => found,
        Err(failure) => {
            report.fail(name, failure, APPLY_RBAC);
            return report.rows.remove(0);
        }
    };
    match found {
        None => report.fail(
            name,
            Failure::config(format!(
                "ClusterRole {role} ([cluster] cluster_role) does not exist: runs would be bound to \
                 nothing and every Spark driver refused"
            )),
            APPLY_RBAC,
        ),
        Some(found) => {
            let rules = found.rules.unwrap_or_default();
            let missing = uncovered(&rules, SPARK_PERMISSIONS);
            if missing.is_empty() {
                report.pass(name, "exists and grants everything a Spark driver needs");
            } else {
                report.fail(
                    name,
                    Failure::config(format!(
                        "ClusterRole {role} lacks what a Spark driver needs: {}",
                        missing.join(", ")
                    )),
                    APPLY_RBAC,
                );
            }
        }
    }
    report.rows.remove(0)
}

/// The (verb resource) pairs of `wanted` that no rule grants on every
/// object.
pub fn uncovered(rules: &[PolicyRule], wanted: &[Permission]) -> Vec<String> {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    let resource_matches = |list: &Option<Vec<String>>, want: &str| {
        has(list, want)
            || want.split_once('/').is_some_and(|(_, sub)| {
                list.as_ref()
                    .is_some_and(|l| l.iter().any(|x| *x == format!("*/{sub}")))
            })
    };
    let mut missing = Vec::new();
    for p in wanted {
        for (resource, verb) in p.pairs() {
            let granted = rules.iter().any(|r| {
                r.resource_names.as_ref().is_none_or(Vec::is_empty)
                    && has(&r.api_groups, p.group)
                    && resource_matches(&r.resources, resource)
                    && r.verbs.iter().any(|v| v == verb || v == "*")
            });
            if !granted {
                missing.push(format!("{verb} {resource}"));
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: if names.is_empty() { None } else { v(names) },
            non_resource_urls: None,
        }
    }

    #[test]
    fn spark_role_coverage() {
        // What `kubesu rbac` prints covers it.
        let printed: Vec<PolicyRule> = SPARK_PERMISSIONS
            .iter()
            .map(|p| rule(&[p.group], p.resources, p.verbs, &[]))
            .collect();
        assert!(uncovered(&printed, SPARK_PERMISSIONS).is_empty());
        assert!(uncovered(&[rule(&["*"], &["*"], &["*"], &[])], SPARK_PERMISSIONS).is_empty());
        // Restricted by name, or another group, covers nothing.
        let named: Vec<PolicyRule> = SPARK_PERMISSIONS
            .iter()
            .map(|p| rule(&[p.group], p.resources, p.verbs, &["x"]))
            .collect();
        assert_eq!(uncovered(&named, SPARK_PERMISSIONS).len(), 35);
        let missing = uncovered(
            &[
                rule(
                    &[""],
                    &["pods", "services", "configmaps", "persistentvolumeclaims"],
                    &["*"],
                    &[],
                ),
                rule(&["apps"], &["*/log"], &["get", "list", "watch"], &[]),
            ],
            SPARK_PERMISSIONS,
        );
        assert_eq!(missing, ["get pods/log", "list pods/log", "watch pods/log"]);
        let missing = uncovered(
            &[
                rule(
                    &[""],
                    &["pods", "services", "configmaps", "persistentvolumeclaims"],
                    &["*"],
                    &[],
                ),
                rule(&[""], &["*/log"], &["get", "list", "watch"], &[]),
            ],
            SPARK_PERMISSIONS,
        );
        assert!(missing.is_empty(), "{missing:?}");
    }
}
