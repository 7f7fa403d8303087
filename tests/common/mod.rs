//! Shared by the integration tests: the test bed's admin client and helpers
//! to act as a minted token. Tests that cannot reach the bed fail: they never
//! skip.
#![allow(dead_code)] // each test binary uses a different subset

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
