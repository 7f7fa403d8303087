//! A fault-injecting proxy in front of the test bed's API server, for the
//! crash-safety tests. It terminates TLS (with the API server's own
//! certificate, so kubesu trusts it) and speaks to the API server as the
//! bed's admin, so it sees each HTTP request and can delay it, refuse
//! connections, or cut one mid-run.

use std::sync::Arc;
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

pub struct FaultProxy {
    pub port: u16,
    fault: watch::Sender<Fault>,
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
                    let (acceptor, connector, faults, control) = (
                        acceptor.clone(),
                        connector.clone(),
                        faults.clone(),
                        control.clone(),
                    );
                    tokio::spawn(async move {
                        let _ = relay(client, acceptor, connector, upstream_port, faults, control)
                            .await;
                    });
                }
            });
        });
        FaultProxy { port, fault }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
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

async fn relay(
    client: TcpStream,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    upstream_port: u16,
    mut faults: watch::Receiver<Fault>,
    control: watch::Sender<Fault>,
) -> std::io::Result<()> {
    let client = acceptor.accept(client).await?;
    let upstream = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
    let name = ServerName::try_from("127.0.0.1").expect("ip name");
    let upstream = connector.connect(name, upstream).await?;
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut request = vec![0u8; 64 * 1024];
    let mut response = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client_read.read(&mut request) => {
                let n = read?;
                if n == 0 { return Ok(()); }
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
