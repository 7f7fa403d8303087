//! Token renewal while the command runs. Tokens are short-lived; a run may
//! not be. Before the token expires the supervising parent mints a new one
//! for the same ServiceAccount, moves the lease's expiry, and rewrites the
//! run's token and kubeconfig, which kubectl and Spark's client (fabric8,
//! on a 401) read again. Revocation still ends every token of the run.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use nix::unistd::Uid;

use crate::cluster::{Cluster, lease, token};
use crate::policy::identity::RunIdentity;
use crate::run::handover::{self, Credentials};
use crate::run::supervise::Chore;

/// A failed renewal is tried again this much later, while the old token lasts.
const RETRY: Duration = Duration::from_secs(30);

pub struct Renewal<'a> {
    of: RenewalParts<'a>,
    /// How long before expiry to renew.
    before: Duration,
    /// The current token's expiry.
    expires: Timestamp,
    pub renewed: u32,
    /// The `jti` of each renewed token, for the record.
    pub ids: Vec<String>,
    next: Instant,
}

impl<'a> Renewal<'a> {
    /// `before` defaults to a third of the lifetime; `None` when the expiry
    /// the API server gave cannot be read.
    pub fn new(of: RenewalParts<'a>, expires: &str) -> Option<Renewal<'a>> {
        let before = of.before.unwrap_or(of.ttl / 3);
        let mut renewal = Renewal {
            of,
            before,
            expires: expires.parse().ok()?,
            renewed: 0,
            ids: Vec::new(),
            next: Instant::now(),
        };
        renewal.next = renewal.due_from_expiry();
        Some(renewal)
    }

    fn due_from_expiry(&self) -> Instant {
        let left = Timestamp::now().duration_until(self.expires);
        let left = Duration::try_from(left).unwrap_or_default();
        Instant::now() + left.saturating_sub(self.before)
    }

    fn renew_now(&mut self) -> crate::failure::Result<()> {
        let of = &self.of;
        let id = of.identity;
        let minted = of.runtime.block_on(token::mint(
            of.cluster,
            &id.namespace,
            &id.service_account,
            of.ttl,
        ))?;
        of.runtime.block_on(lease::extend(
            of.cluster,
            &id.namespace,
            &id.service_account,
            &minted.expires,
        ))?;
        let credentials = Credentials {
            server: &of.cluster.server,
            ca_pem: &of.cluster.ca_pem,
            token: &minted.secret,
            identity: id,
        };
        handover::refresh(of.runtime_dir, of.uid, &credentials)?;
        self.expires = minted.expires.parse().unwrap_or(self.expires);
        self.renewed += 1;
        self.ids.extend(minted.id);
        Ok(())
    }
}

/// What a renewal is built from.
pub struct RenewalParts<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub cluster: &'a Cluster,
    pub runtime_dir: &'a Path,
    pub identity: &'a RunIdentity,
    pub uid: Uid,
    pub ttl: Duration,
    pub before: Option<Duration>,
}

impl Chore for Renewal<'_> {
    fn due(&self) -> Instant {
        self.next
    }

    fn run(&mut self) {
        match self.renew_now() {
            Ok(()) => self.next = self.due_from_expiry(),
            Err(e) => {
                err!(
                    "kubesu: warning: renewing the token of run {}: {e}",
                    self.of.identity.run
                );
                self.next = Instant::now() + RETRY;
            }
        }
    }
}
