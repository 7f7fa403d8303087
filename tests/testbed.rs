//! The test bed is a real control plane: RBAC, TokenRequest and the
//! ServiceAccount token lifecycle behave as they will on a cluster.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};

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
