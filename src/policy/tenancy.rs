//! What makes a namespace safe to share, as the config states it: Pod
//! Security, a quota, container limits, network isolation, and the labels
//! kubesu puts on everything it creates. Values are checked as the file is
//! read (so a mistake is reported with its line and column, exit 78), never
//! by the API server in the middle of a run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// The Pod Security level and version kubesu labels its namespaces with.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PodSecurity {
    #[serde(default)]
    pub enforce: Level,
    /// Pinned, so that a cluster upgrade does not change what is admitted.
    #[serde(default)]
    pub version: PodSecurityVersion,
}

impl Default for PodSecurity {
    fn default() -> Self {
        PodSecurity {
            enforce: Level::Baseline,
            version: PodSecurityVersion::default(),
        }
    }
}

impl PodSecurity {
    pub const ENFORCE: &'static str = "pod-security.kubernetes.io/enforce";
    pub const ENFORCE_VERSION: &'static str = "pod-security.kubernetes.io/enforce-version";

    pub fn labels(&self) -> [(&'static str, String); 2] {
        [
            (Self::ENFORCE, self.enforce.as_str().into()),
            (Self::ENFORCE_VERSION, self.version.0.clone()),
        ]
    }
}

/// "privileged" is not offered: a token minted in such a namespace could
/// start a privileged pod and own its node (kubesu's admission policy
/// refuses it too).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// "latest" or "v1.N", as Pod Security admission reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurityVersion(String);

impl Default for PodSecurityVersion {
    fn default() -> Self {
        PodSecurityVersion("latest".into())
    }
}

impl<'de> Deserialize<'de> for PodSecurityVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let minor = text.strip_prefix("v1.");
        let valid = text == "latest"
            || minor.is_some_and(|m| {
                !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit())
            });
        if valid {
            Ok(PodSecurityVersion(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "Pod Security version {text:?} is neither \"latest\" nor \"v1.N\"; write for \
                 instance \"v1.37\" (the policy of Kubernetes 1.37)"
            )))
        }
    }
}

/// A Kubernetes quantity ("500m", "2Gi", "1.5", "1e3"), checked with the
/// API server's grammar so that a typo stops the config, not a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Quantity(String);

impl Quantity {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<sign><digits>[.<digits>]<suffix>`, where the suffix is a binary
    /// (Ki..Ei) or decimal (n, u, m, k, M..E) multiplier or an exponent
    /// (e3, E-2). Written out here: it is a dozen lines, and no maintained
    /// crate carries Kubernetes' grammar.
    pub fn parse(text: &str) -> Result<Quantity, String> {
        let bad = || {
            format!(
                "{text:?} is not a Kubernetes quantity; write a number with an optional unit, \
                 such as \"500m\" (CPU), \"4\", \"2Gi\" or \"512Mi\""
            )
        };
        let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
        let number_end = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_end);
        let mut parts = number.split('.');
        let whole = parts.next().unwrap_or_default();
        let fraction = parts.next();
        let number_ok = parts.next().is_none()
            && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
        let suffix_ok = matches!(
            suffix,
            "" | "Ki"
                | "Mi"
                | "Gi"
                | "Ti"
                | "Pi"
                | "Ei"
                | "n"
                | "u"
                | "m"
                | "k"
                | "M"
                | "G"
                | "T"
                | "P"
                | "E"
        ) || is_exponent(suffix);
        if number_ok && suffix_ok && text.len() <= 64 {
            Ok(Quantity(text.to_string()))
        } else {
            Err(bad())
        }
    }
}

/// The amount a valid quantity stands for, for comparing two spellings of
/// it (`kubesu check`); None for what `Quantity::parse` refuses.
pub fn amount(text: &str) -> Option<f64> {
    let quantity = Quantity::parse(text).ok()?;
    let text = quantity.as_str();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent[1..].parse().ok()?),
    };
    Some(number * scale)
}

fn is_exponent(suffix: &str) -> bool {
    suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Quantity::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource name as quotas and limits take it: "cpu", "requests.memory",
/// "count/services", "requests.nvidia.com/gpu".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ResourceName(String);

impl ResourceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ResourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let valid = !text.is_empty()
            && text.len() <= 253
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-./".contains(&b))
            && text.starts_with(|c: char| c.is_ascii_alphanumeric());
        if valid {
            Ok(ResourceName(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "{text:?} is not a resource name; write one such as \"cpu\", \"memory\", \
                 \"requests.cpu\", \"pods\" or \"count/services\""
            )))
        }
    }
}

pub type Resources = BTreeMap<ResourceName, Quantity>;

/// Per-container defaults and ceiling (a LimitRange of type Container): a
/// Spark pod that states no limits is still admitted under a quota.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Limits of a container that sets none.
    #[serde(default)]
    pub default: Resources,
    /// Requests of a container that sets none.
    #[serde(default)]
    pub default_request: Resources,
    #[serde(default)]
    pub max: Resources,
}

/// Labels and annotations for every object kubesu creates, for cost
/// allocation and schedulers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objects {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Label keys kubesu sets itself and a config may not: `what` names the
/// table, for the message.
pub fn check_label_keys<'a>(
    what: &str,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    for key in keys {
        if key.starts_with("pod-security.kubernetes.io/") {
            return Err(format!(
                "{what} sets {key}: Pod Security is set by [namespace] pod_security \
                 (for instance pod_security = {{ enforce = \"restricted\", version = \"v1.37\" }}); \
                 remove the label"
            ));
        }
        if key.starts_with("kubesu.io/") || key == crate::policy::labels::MANAGED_BY.0 {
            return Err(format!(
                "{what} sets {key}, which kubesu sets itself to find and own what it creates; \
                 remove it"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_the_api_servers_grammar() {
        for good in [
            "1", "0", "500m", "2Gi", "512Mi", "1.5", ".5", "1e3", "1E-2", "+4", "100k", "1Ei",
        ] {
            assert!(Quantity::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Gi", "1GB", "1.2.3", "1 Gi", "one", "1e", "-", ".", "2gi", "1Mi ", "1ee3",
        ] {
            let err = Quantity::parse(bad).unwrap_err();
            assert!(err.contains("not a Kubernetes quantity"), "{bad}: {err}");
        }
    }

    #[test]
    fn amounts_compare_spellings() {
        assert_eq!(amount("500m"), amount("0.5"));
        assert_eq!(amount("1Gi"), amount("1024Mi"));
        assert_eq!(amount("1e3"), amount("1k"));
        assert_eq!(amount("2"), Some(2.0));
        assert_eq!(amount("1E-2"), Some(0.01));
        assert_eq!(amount("1GB"), None);
    }

    #[test]
    fn pod_security_versions() {
        let parse = |v: &str| {
            toml::from_str::<PodSecurity>(&format!("version = {v:?}")).map(|p| p.version.0)
        };
        assert_eq!(parse("latest").ok().as_deref(), Some("latest"));
        assert_eq!(parse("v1.37").ok().as_deref(), Some("v1.37"));
        for bad in ["1.37", "v1.", "v2.0", "v1.37.1", "Latest"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let privileged = toml::from_str::<PodSecurity>("enforce = \"privileged\"");
        assert!(privileged.is_err());
    }

    #[test]
    fn kubesus_own_label_keys_are_refused() {
        let keys = |k: &str| vec![k.to_string()];
        for key in [
            "pod-security.kubernetes.io/enforce",
            "kubesu.io/run",
            "app.kubernetes.io/managed-by",
        ] {
            assert!(check_label_keys("[objects] labels", &keys(key)).is_err());
        }
        assert!(check_label_keys("[objects] labels", &keys("cost-center")).is_ok());
    }
}
