//! The command's environment, built fresh: nothing from the caller passes
//! unless the config keeps it by name, and nothing that changes how programs
//! load, which cluster they talk to, or which Spark config they read passes
//! at all.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// What kubesu itself sets for the run.
pub struct RunVars<'a> {
    pub home: &'a OsStr,
    pub user: &'a str,
    pub shell: &'a OsStr,
    pub kubeconfig: &'a OsStr,
    pub run_id: &'a str,
    pub namespace: &'a str,
}

/// Names never kept or set from the config's keep and set lists, whatever
/// it says: the dynamic loader, shells' function import, cluster selection,
/// Spark and JVM configuration from the caller.
const NEVER: [&str; 9] = [
    "LD_",
    "BASH_FUNC_",
    "KUBERNETES_",
    "KUBECONFIG",
    "KUBESU_",
    "SPARK_CONF_DIR",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

pub fn is_forbidden(name: &str) -> bool {
    NEVER.iter().any(|p| name.starts_with(p))
        || matches!(name, "IFS" | "ENV" | "BASH_ENV" | "PATH" | "HOME")
}

/// What the config says about the environment: the secure PATH, the caller's
/// variables kept by name, and the variables set (for every command, then
/// the command's own, which wins).
pub struct Rules<'a> {
    pub path: &'a str,
    pub keep: &'a [String],
    pub set: Vec<(&'a str, &'a str)>,
}

/// The full environment of the command, sorted by name.
pub fn build(
    caller: impl IntoIterator<Item = (OsString, OsString)>,
    rules: &Rules<'_>,
    run: &RunVars<'_>,
) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    for (name, value) in caller {
        let Some(text) = name.to_str() else { continue };
        let kept = rules.keep.iter().any(|k| k == text) && !is_forbidden(text);
        let safe_locale = is_locale_name(text) && is_plain_value(&value, false);
        let safe_term = text == "TERM" && is_plain_value(&value, false);
        let safe_tz = text == "TZ" && is_plain_value(&value, true);
        if kept || safe_locale || safe_term || safe_tz {
            env.insert(name, value);
        }
    }
    if !env.contains_key(OsStr::new("LANG")) {
        env.insert("LANG".into(), "C.UTF-8".into());
    }
    for &(name, value) in &rules.set {
        env.insert(name.into(), value.into());
    }
    for (name, value) in [
        ("PATH", OsStr::new(rules.path)),
        ("HOME", run.home),
        ("USER", OsStr::new(run.user)),
        ("LOGNAME", OsStr::new(run.user)),
        ("SHELL", run.shell),
        ("KUBECONFIG", run.kubeconfig),
        ("KUBESU_RUN_ID", OsStr::new(run.run_id)),
        ("KUBESU_NAMESPACE", OsStr::new(run.namespace)),
    ] {
        env.insert(name.into(), value.into());
    }
    env.into_iter().collect()
}

fn is_locale_name(name: &str) -> bool {
    name == "LANG"
        || name == "LANGUAGE"
        || (name.starts_with("LC_") && name[3..].bytes().all(|b| b.is_ascii_uppercase()))
}

/// A locale, terminal or time zone name: short, plain characters, never a
/// path that could climb out of the system's data directories (as sudo
/// checks TZ).
fn is_plain_value(value: &OsStr, slash_allowed: bool) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes.first() != Some(&b'/')
        && !bytes.windows(2).any(|w| w == b"..")
        && bytes.iter().all(|&b| {
            b.is_ascii_alphanumeric() || b"_.-@+:,".contains(&b) || (slash_allowed && b == b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunVars<'static> {
        RunVars {
            home: OsStr::new("/home/alice"),
            user: "alice",
            shell: OsStr::new("/bin/bash"),
            kubeconfig: OsStr::new("/run/kubesu/x/kubeconfig"),
            run_id: "abcdefghijklmnop",
            namespace: "kubesu-alice",
        }
    }

    const SECURE_PATH: &str = "/usr/bin:/bin";

    /// The rules of a config that keeps `keep` and whose command sets SPARK_HOME.
    fn rules(keep: &[String]) -> Rules<'_> {
        Rules {
            path: SECURE_PATH,
            keep,
            set: vec![("SPARK_HOME", "/opt/spark")],
        }
    }

    fn caller(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn get<'e>(env: &'e [(OsString, OsString)], name: &str) -> Option<&'e str> {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn hostile_variables_never_pass_even_if_kept() {
        let keep = ["LD_PRELOAD".into(), "JAVA_HOME".into(), "KUBECONFIG".into()];
        let env = build(
            caller(&[
                ("LD_PRELOAD", "/tmp/evil.so"),
                ("LD_LIBRARY_PATH", "/tmp"),
                ("KUBECONFIG", "/tmp/mine"),
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("SPARK_CONF_DIR", "/tmp/conf"),
                ("BASH_FUNC_x%%", "() { evil; }"),
                ("PATH", "/tmp/fake:/usr/bin"),
                ("HOME", "/tmp"),
                ("JAVA_HOME", "/usr/lib/jvm/java"),
                ("RANDOM_THING", "1"),
            ]),
            &rules(&keep),
            &run(),
        );
        assert_eq!(get(&env, "LD_PRELOAD"), None);
        assert_eq!(get(&env, "LD_LIBRARY_PATH"), None);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), None);
        assert_eq!(get(&env, "SPARK_CONF_DIR"), None);
        assert_eq!(get(&env, "BASH_FUNC_x%%"), None);
        assert_eq!(get(&env, "RANDOM_THING"), None);
        assert_eq!(get(&env, "KUBECONFIG"), Some("/run/kubesu/x/kubeconfig"));
        assert_eq!(get(&env, "PATH"), Some(SECURE_PATH));
        assert_eq!(get(&env, "HOME"), Some("/home/alice"));
        assert_eq!(get(&env, "JAVA_HOME"), Some("/usr/lib/jvm/java"));
        assert_eq!(get(&env, "SPARK_HOME"), Some("/opt/spark"));
        assert_eq!(get(&env, "KUBESU_NAMESPACE"), Some("kubesu-alice"));
        assert_eq!(get(&env, "USER"), Some("alice"));
        assert_eq!(get(&env, "LOGNAME"), Some("alice"));
    }

    #[test]
    fn locale_term_and_tz_pass_only_when_plain() {
        let env = build(
            caller(&[
                ("LANG", "de_DE.UTF-8"),
                ("LC_ALL", "../../tmp/x"),
                ("TERM", "xterm-256color"),
                ("TZ", "../../etc/shadow"),
            ]),
            &rules(&[]),
            &run(),
        );
        assert_eq!(get(&env, "LANG"), Some("de_DE.UTF-8"));
        assert_eq!(get(&env, "LC_ALL"), None);
        assert_eq!(get(&env, "TERM"), Some("xterm-256color"));
        assert_eq!(get(&env, "TZ"), None);
        let env = build(caller(&[("TZ", "Europe/Paris")]), &rules(&[]), &run());
        assert_eq!(get(&env, "TZ"), Some("Europe/Paris"));
        assert_eq!(get(&env, "LANG"), Some("C.UTF-8"));
    }
}
