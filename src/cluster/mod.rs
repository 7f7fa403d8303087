//! kubesu's side of the Kubernetes API: its own client, and the objects a run
//! creates (namespace, lease, token). Every call has a deadline.

pub mod access;
pub mod lease;
pub mod leftovers;
pub mod namespace;
pub mod tenancy;
pub mod token;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::failure::{Code, Failure, Result};

/// kubesu's own connection to the cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// What the user's kubeconfig points at.
    pub server: String,
    pub ca_pem: Vec<u8>,
    pub request_timeout: Duration,
}

impl Cluster {
    /// A single-threaded event loop and kubesu's connection, as every mode
    /// that talks to the cluster starts.
    pub fn open(
        config: &crate::policy::config::Config,
    ) -> Result<(tokio::runtime::Runtime, Cluster)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::software(format!("cannot start kubesu's event loop: {e}")))?;
        let cluster = runtime.block_on(Cluster::connect(
            &config.cluster.kubeconfig,
            config.cluster.server.as_deref(),
            config.cluster.request_timeout,
        ))?;
        Ok((runtime, cluster))
    }

    /// From kubesu's root-only kubeconfig. `server` overrides the URL handed
    /// to users.
    pub async fn connect(
        kubeconfig: &Path,
        server: Option<&str>,
        request_timeout: Duration,
    ) -> Result<Cluster> {
        crate::sys::fs::check_trusted_path(kubeconfig, "kubesu's kubeconfig")?;
        let fix = "check [cluster] kubeconfig in the config file and run `kubesu check`";
        let raw = Kubeconfig::read_from(kubeconfig).map_err(|e| {
            Failure::config(format!(
                "cannot read kubesu's kubeconfig {}: {e}; {fix}",
                kubeconfig.display()
            ))
        })?;
        let mut config = Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default())
            .await
            .map_err(|e| {
                Failure::config(format!(
                    "kubesu's kubeconfig {} is unusable: {e}; {fix}",
                    kubeconfig.display()
                ))
            })?;
        config.connect_timeout = Some(request_timeout);
        config.read_timeout = Some(request_timeout);
        config.write_timeout = Some(request_timeout);
        let ca_pem = config
            .root_cert
            .as_deref()
            .map(pem_certificates)
            .unwrap_or_default();
        let server = server.map_or_else(|| config.cluster_url.to_string(), str::to_string);
        let server = server.trim_end_matches('/').to_string();
        let client = low_latency_client(config).map_err(|e| {
            Failure::config(format!(
                "cannot build a client from {}: {e}; {fix}",
                kubeconfig.display()
            ))
        })?;
        Ok(Cluster {
            client,
            server,
            ca_pem,
            request_timeout,
        })
    }

    /// Run one API call with the request deadline; `what` names it in errors.
    pub async fn call<T, F>(&self, what: &str, call: F) -> Result<T>
    where
        F: Future<Output = kube::Result<T>>,
    {
        self.deadline(what, call)
            .await?
            .map_err(|e| api_failure(what, e))
    }

    /// A delete: an object already gone counts as deleted.
    pub async fn delete<T, F>(&self, what: &str, call: F) -> Result<()>
    where
        F: Future<Output = kube::Result<T>>,
    {
        match self.deadline(what, call).await? {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_failure(what, e)),
        }
    }

    /// Like `call`, but hands back the API's own error for the caller to
    /// inspect (404, 409...); only a missed deadline is a `Failure` here.
    pub async fn deadline<T, F>(&self, what: &str, call: F) -> Result<kube::Result<T>>
    where
        F: Future<Output = kube::Result<T>>,
    {
        tokio::time::timeout(self.request_timeout, call).await.map_err(|_| {
            Failure::unavailable(format!(
                "{what}: no answer from the Kubernetes API within {}s; check that the API server is up, then retry",
                self.request_timeout.as_secs()
            ))
        })
    }
}

/// kube's own client leaves Nagle's algorithm on and speaks only HTTP/1.1.
/// With Nagle, a request written as headers then body waits for the
/// server's delayed ACK, about 40 ms per POST (BENCHMARKS.md: prepare took
/// 52 ms with it, 10 ms without); with HTTP/1.1, the RoleBinding and the
/// TokenRequest that go out together need a second connection and TLS
/// handshake. So kubesu builds the same stack (base URI, auth) over a
/// connector with TCP_NODELAY that offers HTTP/2. Deadlines come from
/// `Cluster::call`, not from connector timeouts.
fn low_latency_client(config: Config) -> kube::Result<Client> {
    use kube::client::ConfigExt;

    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    let tls = match &config.tls_server_name {
        Some(name) => {
            let name = name.clone().try_into().map_err(|_| {
                kube::Error::Service(
                    format!("invalid tls-server-name {name:?} in the kubeconfig").into(),
                )
            })?;
            tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => tls,
    };
    let https = tls.enable_http1().enable_http2().wrap_connector(http);
    let pool: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
}

/// The HTTP status of an API error, if the server answered.
pub fn status_of(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A failed API call as kubesu reports it: what, why, and what to do.
pub fn api_failure(what: &str, e: kube::Error) -> Failure {
    match &e {
        kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
            Failure::config(format!(
                "{what}: kubesu's own identity is not allowed ({e}); grant it the permissions `kubesu check` lists"
            ))
        }
        kube::Error::Api(status) if status.code == 404 => {
            Failure::data(format!("{what}: not found ({e})"))
        }
        kube::Error::Api(status) if status.code == 409 => {
            Failure::data(format!("{what}: conflict ({e})"))
        }
        kube::Error::Api(status) if status.code < 500 && status.code != 429 => Failure::new(
            Code::Software,
            format!("{what}: the API server refused it ({e})"),
        ),
        _ => Failure::unavailable(format!(
            "{what}: the Kubernetes API is unavailable ({e}); check that the API server is up, then retry"
        )),
    }
}

/// Does this failure mean the object is not (or no longer) there?
fn is_not_found(e: &kube::Error) -> bool {
    status_of(e) == Some(404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    status_of(e) == Some(409)
}

/// kube keeps the CA as DER; the user's files want PEM.
fn pem_certificates(ders: &[Vec<u8>]) -> Vec<u8> {
    let mut pem = String::new();
    for der in ders {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_columns() {
        let pem = String::from_utf8(pem_certificates(&[vec![0u8; 100]])).expect("utf8");
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert!(lines[1..lines.len() - 1].iter().all(|l| l.len() <= 64));
        assert_eq!(*lines.last().expect("end"), "-----END CERTIFICATE-----");
    }
}
