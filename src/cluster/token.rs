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
    /// Its `jti` claim, on clusters that put one there (1.29 and later):
    /// the cluster's audit log names it (`authentication.kubernetes.io/
    /// credential-id: JTI=...`), so kubesu's record joins every API call the
    /// run made.
    pub id: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The `jti` claim of a JWT, read without verifying it: the API server just
/// made it, and only its id is taken, for the record.
pub fn jti(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let id = claims.get("jti")?.as_str()?;
    // An id is a UUID; anything long or odd is not recorded as one.
    (id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then(|| id.to_string())
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
        id: jti(&status.token),
        secret: status.token,
        expires: status.expiration_timestamp.0.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: &str) -> String {
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", encode(r#"{"alg":"RS256"}"#), encode(claims))
    }

    #[test]
    fn the_token_id_is_its_jti_claim() {
        let id = "0c2b7d3e-5c8f-4a8e-9d7b-1f2e3a4b5c6d";
        assert_eq!(
            jti(&jwt(&format!(r#"{{"jti":"{id}","sub":"x"}}"#))).as_deref(),
            Some(id)
        );
        assert_eq!(
            jti(&jwt(r#"{"sub":"x"}"#)),
            None,
            "1.20-era tokens have none"
        );
        assert_eq!(
            jti(&jwt(r#"{"jti":"a\nb"}"#)),
            None,
            "nothing odd is recorded"
        );
        assert_eq!(jti("not a jwt"), None);
        assert_eq!(jti("a.!!!.c"), None);
    }
}
