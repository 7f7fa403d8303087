//! What kubesu's identity may do, asked of the API server (for `kubesu
//! check`): access reviews, the Spark ClusterRole, kubesu's admission
//! policies, the server's version.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::Api;
use kube::api::PostParams;

use super::{Cluster, api_failure, status_of};
use crate::failure::{Failure, Result};
use crate::policy::permissions::{Names, Permission};

/// The API server's version.
pub async fn version(cluster: &Cluster) -> Result<Info> {
    cluster
        .call(
            "reading the API server's version",
            cluster.client.apiserver_version(),
        )
        .await
}

/// The review for one verb on one resource, as kubesu's identity.
pub fn review(p: &Permission, resource: &str, verb: &str, role: &str) -> SelfSubjectAccessReview {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(p.group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                name: (p.names == Names::ClusterRole).then(|| role.to_string()),
                // Cluster-wide: kubesu works in any namespace it names.
                namespace: None,
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub async fn allowed(
    cluster: &Cluster,
    p: &Permission,
    resource: &str,
    verb: &str,
    role: &str,
) -> Result<bool> {
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let what = format!("asking the API server whether kubesu may {verb} {resource}");
    let answer = cluster
        .call(
            &what,
            api.create(&PostParams::default(), &review(p, resource, verb, role)),
        )
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The ClusterRole `role`, if it exists. kubesu's identity may read only
/// that one: a refusal says which permission is missing.
pub async fn cluster_role(cluster: &Cluster, role: &str) -> Result<Option<ClusterRole>> {
    let api: Api<ClusterRole> = Api::all(cluster.client.clone());
    let what = format!("reading ClusterRole {role}");
    match cluster.deadline(&what, api.get_opt(role)).await? {
        Ok(found) => Ok(found),
        Err(e) if status_of(&e) == Some(403) => Err(Failure::config(format!(
            "kubesu's identity may not read ClusterRole {role}: it needs get on clusterroles/{role}"
        ))),
        Err(e) => Err(api_failure(&what, e)),
    }
}

/// Whether the API server serves ValidatingAdmissionPolicies (1.30 and
/// later), from discovery, which every authenticated user may read.
pub async fn admission_policies_served(cluster: &Cluster) -> Result<bool> {
    let what = "reading the API server's admissionregistration.k8s.io/v1 resources";
    match cluster
        .deadline(
            what,
            cluster
                .client
                .list_api_group_resources("admissionregistration.k8s.io/v1"),
        )
        .await?
    {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.name == "validatingadmissionpolicies")),
        Err(e) if status_of(&e) == Some(404) => Ok(false),
        Err(e) => Err(api_failure(what, e)),
    }
}

/// The admission policy `name` and its binding of the same name, each if it
/// exists.
pub async fn admission_policy(
    cluster: &Cluster,
    name: &str,
) -> Result<(
    Option<ValidatingAdmissionPolicy>,
    Option<ValidatingAdmissionPolicyBinding>,
)> {
    let refused = |kind: &str| {
        Failure::config(format!(
            "kubesu's identity may not read {kind} {name}: it needs get on {kind}"
        ))
    };
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(cluster.client.clone());
    let what = format!("reading ValidatingAdmissionPolicy {name}");
    let policy = match cluster.deadline(&what, policies.get_opt(name)).await? {
        Ok(found) => found,
        Err(e) if status_of(&e) == Some(403) => return Err(refused("validatingadmissionpolicies")),
        Err(e) => return Err(api_failure(&what, e)),
    };
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(cluster.client.clone());
    let what = format!("reading ValidatingAdmissionPolicyBinding {name}");
    let binding = match cluster.deadline(&what, bindings.get_opt(name)).await? {
        Ok(found) => found,
        Err(e) if status_of(&e) == Some(403) => {
            return Err(refused("validatingadmissionpolicybindings"));
        }
        Err(e) => return Err(api_failure(&what, e)),
    };
    Ok((policy, binding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::permissions::KUBESU_PERMISSIONS;

    #[test]
    fn reviews_are_cluster_wide_and_name_the_cluster_role() {
        let bind = KUBESU_PERMISSIONS
            .iter()
            .find(|p| p.names == Names::ClusterRole)
            .unwrap();
        let r = review(bind, "clusterroles", "bind", "spark");
        let a = r.spec.resource_attributes.unwrap();
        assert_eq!(a.group.as_deref(), Some("rbac.authorization.k8s.io"));
        assert_eq!(a.name.as_deref(), Some("spark"));
        assert_eq!(a.namespace, None);
        let token = KUBESU_PERMISSIONS
            .iter()
            .find(|p| p.resources == ["serviceaccounts/token"])
            .unwrap();
        let a = review(token, "serviceaccounts/token", "create", "spark")
            .spec
            .resource_attributes
            .unwrap();
        assert_eq!(a.resource.as_deref(), Some("serviceaccounts"));
        assert_eq!(a.subresource.as_deref(), Some("token"));
        assert_eq!(a.name, None);
    }
}
