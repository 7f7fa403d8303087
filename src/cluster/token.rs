//! The run's token, from the TokenRequest API: bound to the run's
//! ServiceAccount, so deleting the account kills it.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;

use super::Cluster;
use crate::failure::{Failure, Result};

/// A minted token and when the server says it expires.
pub struct Token {
    pub secret: String,
    /// RFC 3339, as the server set it (it may shorten what was asked).
    pub expires: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

pub async fn mint(
    cluster: &Cluster,
    namespace: &str,
    account: &str,
    ttl: Duration,
) -> Result<Token> {
    let api: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(ttl.as_secs().try_into().unwrap_or(i64::MAX)),
            ..Default::default()
        },
        ..Default::default()
    };
    let what = format!("requesting a token for ServiceAccount {namespace}/{account}");
    let response = cluster
        .call(
            &what,
            api.create_token_request(account, &PostParams::default(), &request),
        )
        .await?;
    let status = response
        .status
        .filter(|s| !s.token.is_empty())
        .ok_or_else(|| Failure::software(format!("{what}: the API server returned no token")))?;
    Ok(Token {
        secret: status.token,
        expires: status.expiration_timestamp.0.to_string(),
    })
}
