//! A recording, fault-injecting proxy in front of the test bed's API server,
//! for the crash-safety tests and the RBAC test. It terminates TLS (with the
//! API server's own certificate, so kubesu trusts it) and speaks to the API
//! server as the bed's admin, so it sees each HTTP request: it records the
//! request line, and can delay it, refuse connections, or cut one mid-run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Hold every request this long before passing it on.
    Delay(Duration),
    /// Close every connection, open ones included: the server is "down".
    Refuse,
    /// Cut the connection carrying the first request whose head contains
    /// this text (e.g. "/rolebindings"), before it reaches the server; then
    /// pass everything again.
    CutOnce(&'static str),
}

/// One HTTP request kubesu made, as its request line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// With the query, as sent.
    pub target: String,
}

pub struct FaultProxy {
    pub port: u16,
    fault: watch::Sender<Fault>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FaultProxy {
    /// Runs on a thread of its own (with its own event loop), so sync and
    /// async tests alike can use it; it lives until the test process ends.
    pub fn start(upstream_port: u16) -> FaultProxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = format!("{}/pki", super::bed_dir());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (fault, faults) = watch::channel(Fault::None);
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&pki)));
        let connector = TlsConnector::from(Arc::new(client_config(&pki)));
        let control = fault.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if *faults.borrow() == Fault::Refuse {
                        drop(client);
                        continue;
                    }
                    let (acceptor, connector, faults, control, recorded) = (
                        acceptor.clone(),
                        connector.clone(),
                        faults.clone(),
                        control.clone(),
                        recorded.clone(),
                    );
                    tokio::spawn(async move {
                        let ends = Ends {
                            acceptor,
                            connector,
                            upstream_port,
                        };
                        let _ = relay(client, ends, faults, control, recorded).await;
                    });
                }
            });
        });
        FaultProxy {
            port,
            fault,
            requests,
        }
    }

    /// The requests relayed so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// A root-owned config (see `config_variant`) with `edits`, whose kubesu
    /// talks to the cluster through this proxy; users still get the real
    /// server.
    pub fn config_variant(&self, name: &str, edits: &[(&str, &str)]) -> String {
        super::install();
        let kubeconfig =
            std::fs::read_to_string("/etc/kubesu/kubeconfig").expect("kubesu's kubeconfig");
        let server = format!("https://127.0.0.1:{}", api_port());
        let kubeconfig_path = format!("/etc/kubesu/test-{name}.kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig.replace(&server, &self.url()))
            .expect("write kubeconfig");
        std::fs::set_permissions(
            &kubeconfig_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        let through_proxy = format!("kubeconfig = \"{kubeconfig_path}\"\nserver = \"{server}\"");
        let mut all = vec![(
            "kubeconfig = \"/etc/kubesu/kubeconfig\"",
            through_proxy.as_str(),
        )];
        all.extend_from_slice(edits);
        super::config_variant(name, &all)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// The bed's API server port.
pub fn api_port() -> u16 {
    std::env::var("KUBESU_TESTBED_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(16443)
}

fn server_config(pki: &str) -> ServerConfig {
    let certs = CertificateDer::pem_file_iter(format!("{pki}/apiserver.crt"))
        .expect("apiserver.crt")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(format!("{pki}/apiserver.key")).expect("apiserver.key");
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

fn client_config(pki: &str) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(format!("{pki}/ca.crt")).expect("ca.crt") {
        roots.add(cert.expect("ca")).expect("add ca");
    }
    let certs = CertificateDer::pem_file_iter(format!("{pki}/admin.crt"))
        .expect("admin.crt")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(format!("{pki}/admin.key")).expect("admin.key");
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Both ends of a relayed connection.
struct Ends {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    upstream_port: u16,
}

async fn relay(
    client: TcpStream,
    ends: Ends,
    mut faults: watch::Receiver<Fault>,
    control: watch::Sender<Fault>,
    recorded: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let client = ends.acceptor.accept(client).await?;
    let upstream = TcpStream::connect(("127.0.0.1", ends.upstream_port)).await?;
    let name = ServerName::try_from("127.0.0.1").expect("ip name");
    let upstream = ends.connector.connect(name, upstream).await?;
    let mut lines = RequestLines::default();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut request = vec![0u8; 64 * 1024];
    let mut response = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client_read.read(&mut request) => {
                let n = read?;
                if n == 0 { return Ok(()); }
                recorded.lock().expect("requests").extend(lines.feed(&request[..n]));
                let fault = faults.borrow().clone();
                match fault {
                    Fault::Refuse => return Ok(()),
                    Fault::CutOnce(text) if contains(&request[..n], text.as_bytes()) => {
                        control.send_replace(Fault::None);
                        return Ok(());
                    }
                    Fault::Delay(pause) => tokio::time::sleep(pause).await,
                    _ => {}
                }
                upstream_write.write_all(&request[..n]).await?;
            }
            read = upstream_read.read(&mut response) => {
                let n = read?;
                if n == 0 { return Ok(()); }
                client_write.write_all(&response[..n]).await?;
            }
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow() == Fault::Refuse {
                    return Ok(());
                }
            }
        }
    }
}

/// The request lines in an HTTP/1.1 client stream, however it is cut into
/// reads. Bodies are JSON, which escapes line breaks, so a line ending in
/// " HTTP/1.1" is always a request line.
#[derive(Default)]
struct RequestLines {
    pending: Vec<u8>,
}

impl RequestLines {
    /// Longest request line kept while waiting for its end.
    const MAX_LINE: usize = 16 * 1024;

    fn feed(&mut self, bytes: &[u8]) -> Vec<Request> {
        const END: &[u8] = b" HTTP/1.1\r\n";
        self.pending.extend_from_slice(bytes);
        let mut found = Vec::new();
        while let Some(at) = self.pending.windows(END.len()).position(|w| w == END) {
            let start = self.pending[..at]
                .windows(2)
                .rposition(|w| w == b"\r\n")
                .map_or(0, |i| i + 2);
            let line = String::from_utf8_lossy(&self.pending[start..at]).into_owned();
            // A body sent without a final line break runs into the next
            // request line: the method is the upper-case word just before
            // the target (which has no spaces).
            if let Some((before, target)) = line.rsplit_once(' ') {
                let method_at = before
                    .rfind(|c: char| !c.is_ascii_uppercase())
                    .map_or(0, |i| i + 1);
                found.push(Request {
                    method: before[method_at..].to_string(),
                    target: target.to_string(),
                });
            }
            self.pending.drain(..at + END.len());
        }
        let keep = self.pending.len().saturating_sub(Self::MAX_LINE);
        self.pending.drain(..keep);
        found
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
