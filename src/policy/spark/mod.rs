//! spark-submit support: the settings kubesu forces so that a run stays in its
//! namespace with its temporary credentials, and the refusal of any user
//! argument that would change them.
//!
//! The parsing follows spark-submit's own (`SparkSubmitOptionParser` and
//! `SparkSubmitCommandBuilder` in Spark's launcher), because an argument only
//! matters the way Spark reads it. Where kubesu cannot tell how Spark would
//! read an argument, it refuses it.

mod options;

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};

use crate::failure::{Failure, Result};
use crate::policy::labels::RUN_LABEL;
use options::{OptionKind, option_kind, split_inline};

/// What kubesu forces onto every spark-submit. The credentials are not
/// among them: Spark reads them from the run's kubeconfig (KUBECONFIG),
/// the only source fabric8 re-reads when kubesu renews the token (see
/// README, "Spark and token renewal").
pub struct Forced {
    /// The API server, already prefixed with `k8s://`.
    pub master: String,
    pub namespace: String,
    pub service_account: String,
    /// The application id, which Spark puts on what it creates (the
    /// `spark-app-selector` label, also on the executors' ConfigMap, which
    /// carries no pod label): how revocation finds it.
    pub app_id: String,
    /// (label key, run id), e.g. (RUN_LABEL, "abc123").
    pub run_label: (String, String),
}

/// spark-submit's special classes (org.apache.spark.repl.Main, the Thrift
/// server and SQL CLI, the Connect server) let its options follow the
/// application's. Any class in Spark's own package is treated that way, so
/// that a class added by a later Spark cannot smuggle options past the check.
const MIXED_CLASS_PREFIX: &str = "org.apache.spark.";

/// Environment variables whose value the JVM or Spark's scripts read as Java
/// options; Spark sets them in pods from these configuration prefixes.
const JVM_OPTION_ENVS: &[&str] = &[
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "SPARK_SUBMIT_OPTS",
    "SPARK_JAVA_OPTS",
];
const POD_ENV_PREFIXES: &[&str] = &["spark.kubernetes.driverEnv.", "spark.executorEnv."];

/// Spark 4.2+ applies a NetworkPolicy for each cluster-mode driver. A run
/// may not write NetworkPolicies (it could open what the administrator
/// closed), and the namespace's own policy (`[namespace] isolate`) already
/// keeps other namespaces out, so kubesu leaves the step out. Older Sparks
/// ignore the setting.
const EXCLUDED_FEATURE_STEPS: (&str, &str) = (
    "spark.kubernetes.driver.pod.excludedFeatureSteps",
    "org.apache.spark.deploy.k8s.features.NetworkPolicyFeatureStep",
);

const MASTER_REASON: &str = "kubesu sets the Kubernetes API server for this run";
const CREDENTIALS_REASON: &str = "kubesu sets the service account and credentials for this run";

/// Longest argument quoted back in a message, so that a huge argument does not
/// flood the terminal.
const SHOWN_MAX: usize = 200;

/// Refuse, with a clear message naming the offending argument and what to do,
/// any user argument that would change what kubesu forces. `extra_denied`
/// holds config keys from the administrator's deny list: an entry ending in
/// '.' or '*' is a prefix ("spark.kubernetes.driver.podTemplate*"), else exact.
pub fn refuse_overrides(user_args: &[OsString], extra_denied: &[String]) -> Result<()> {
    let mut args = user_args.iter();
    // Once set, spark-submit keeps parsing options after the application.
    let mut mixed = false;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (name, inline) = split_inline(&text);
        match option_kind(name) {
            Some(OptionKind::Switch) => {}
            Some(kind) => {
                // `--name=value` carries its value: the next argument is
                // another option, to be checked in turn.
                let next = if inline.is_none() { args.next() } else { None };
                let (value, shown) = option_value(&text, inline, next)?;
                check_option(kind, &value, &shown, extra_denied)?;
                mixed |= matches!(kind, OptionKind::Class) && value.starts_with(MIXED_CLASS_PREFIX);
            }
            // For the special classes spark-submit passes unknown arguments to
            // the application and keeps parsing.
            None if mixed => {}
            None if text.starts_with('-') => return Err(unknown_option(&text)),
            // The application's file: everything after it is the application's.
            None => return Ok(()),
        }
    }
    Ok(())
}

/// The forced options, in spark-submit syntax, to put right after argv[0].
pub fn forced_args(forced: &Forced) -> Vec<OsString> {
    let mut args = vec![OsString::from("--master"), OsString::from(&forced.master)];
    for (key, value) in forced_confs(forced) {
        args.push(OsString::from("--conf"));
        args.push(conf_pair(&key, value));
    }
    args
}

/// argv[0] (the program path), then forced_args, then the user's arguments unchanged.
///
/// The forced options come first so that spark-submit never reads a user
/// argument as its special first argument (`pyspark-shell-main`, `run-example`).
pub fn command_line(program: OsString, user_args: &[OsString], forced: &Forced) -> Vec<OsString> {
    let mut line = vec![program];
    line.extend(forced_args(forced));
    line.extend(user_args.iter().cloned());
    line
}

/// The configuration kubesu forces.
fn forced_confs(forced: &Forced) -> [(String, &OsStr); 6] {
    let (label_key, run_id) = &forced.run_label;
    [
        (
            "spark.kubernetes.namespace".into(),
            forced.namespace.as_ref(),
        ),
        (
            "spark.kubernetes.authenticate.driver.serviceAccountName".into(),
            forced.service_account.as_ref(),
        ),
        ("spark.app.id".into(), forced.app_id.as_ref()),
        (
            format!("spark.kubernetes.driver.label.{label_key}"),
            run_id.as_ref(),
        ),
        (
            format!("spark.kubernetes.executor.label.{label_key}"),
            run_id.as_ref(),
        ),
        (
            EXCLUDED_FEATURE_STEPS.0.into(),
            EXCLUDED_FEATURE_STEPS.1.as_ref(),
        ),
    ]
}

fn conf_pair(key: &str, value: &OsStr) -> OsString {
    let mut pair = OsString::from(key);
    pair.push("=");
    pair.push(value);
    pair
}

/// The option's value, inline or the next argument, and the argument as shown
/// in messages.
fn option_value<'a>(
    text: &'a str,
    inline: Option<&'a str>,
    next: Option<&'a OsString>,
) -> Result<(Cow<'a, str>, String)> {
    match (inline, next) {
        (Some(value), _) => Ok((Cow::Borrowed(value), show(text))),
        (None, Some(next)) => {
            let value = next.to_string_lossy();
            let shown = show(&format!("{text} {value}"));
            Ok((value, shown))
        }
        (None, None) => Err(refuse(
            &show(text),
            "it needs a value and none follows",
            "add the value or remove the option",
        )),
    }
}

fn check_option(kind: OptionKind, value: &str, shown: &str, extra_denied: &[String]) -> Result<()> {
    match kind {
        OptionKind::Conf => {
            let Some((key, value)) = value.split_once('=') else {
                return Err(refuse(
                    shown,
                    "--conf takes key=value and this has no '='",
                    "write it as --conf key=value",
                ));
            };
            check_setting(key, value, shown, extra_denied)
        }
        OptionKind::Sets(key) => check_setting(key, value, shown, extra_denied),
        OptionKind::Refused { why, todo } => Err(refuse(shown, why, todo)),
        OptionKind::Class | OptionKind::Switch => Ok(()),
    }
}

/// Refuse setting `key` if kubesu controls it, and Java options that would
/// set such a key as a system property.
fn check_setting(key: &str, value: &str, shown: &str, extra_denied: &[String]) -> Result<()> {
    if let Some(why) = refusal_reason(key, extra_denied) {
        return Err(refuse(shown, &why, "remove it"));
    }
    // kubesu revokes the run when spark-submit exits: a submission that does
    // not wait would have its driver deleted at once.
    if spark_trim(key) == "spark.kubernetes.submission.waitAppCompletion"
        && !spark_trim(value).eq_ignore_ascii_case("true")
    {
        return Err(refuse(
            shown,
            "kubesu revokes the run's credentials and deletes its pods when spark-submit exits, \
             so a cluster-mode job must be waited for",
            "remove it (waiting is Spark's default)",
        ));
    }
    if carries_java_options(key) {
        check_java_options(value, shown, extra_denied)?;
    }
    Ok(())
}

/// Why kubesu refuses a user setting of `key`, if it does. Spark compares keys
/// exactly, but a key is also checked trimmed and without the replacement
/// characters of undecodable bytes, in case Spark or the JVM reads it so.
fn refusal_reason(key: &str, extra_denied: &[String]) -> Option<String> {
    let trimmed = spark_trim(key);
    let without_invalid = trimmed.replace('\u{FFFD}', "");
    [trimmed, spark_trim(&without_invalid)]
        .into_iter()
        .find_map(|key| {
            builtin_reason(key)
                .map(str::to_owned)
                .or_else(|| denied_reason(key, extra_denied))
        })
}

/// Trim what Java's `String.trim` trims, and Unicode whitespace too.
fn spark_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ' || c.is_whitespace())
}

fn builtin_reason(key: &str) -> Option<&'static str> {
    match key {
        "spark.master" | "spark.kubernetes.driver.master" => Some(MASTER_REASON),
        "spark.kubernetes.namespace" => Some("kubesu sets the namespace for this run"),
        _ if key == EXCLUDED_FEATURE_STEPS.0 => Some(
            "kubesu leaves out Spark's per-driver NetworkPolicy, which a run may not create \
             (the namespace's own policy isolates it)",
        ),
        "spark.kubernetes.context" => Some(CREDENTIALS_REASON),
        "spark.app.id" => {
            Some("kubesu names the application after the run, to find what it leaves behind")
        }
        _ if key.starts_with("spark.kubernetes.authenticate") => Some(CREDENTIALS_REASON),
        _ if sets_run_label(key) => {
            Some("kubesu sets the labels in its own label domain for this run")
        }
        _ => None,
    }
}

/// Whether `key` sets a driver or executor pod label in kubesu's domain.
/// Kubernetes requires label prefixes in lower case, so case does not matter.
fn sets_run_label(key: &str) -> bool {
    [
        "spark.kubernetes.driver.label.",
        "spark.kubernetes.executor.label.",
    ]
    .iter()
    .filter_map(|prefix| key.strip_prefix(prefix))
    .any(|label| {
        spark_trim(label)
            .to_ascii_lowercase()
            .starts_with(run_label_domain())
    })
}

/// RUN_LABEL's prefix up to and including '/', or all of it if it has none.
fn run_label_domain() -> &'static str {
    match RUN_LABEL.find('/') {
        Some(slash) => &RUN_LABEL[..=slash],
        None => RUN_LABEL,
    }
}

fn denied_reason(key: &str, extra_denied: &[String]) -> Option<String> {
    extra_denied
        .iter()
        .find(|entry| deny_entry_matches(entry, key))
        .map(|entry| {
            format!(
                "the administrator does not allow setting it (deny list entry \"{}\")",
                entry.escape_debug()
            )
        })
}

/// An entry ending in '*' or '.' is a prefix ('*' itself not included).
fn deny_entry_matches(entry: &str, key: &str) -> bool {
    let entry = entry.trim();
    match entry.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None if entry.ends_with('.') => key.starts_with(entry),
        None => key == entry,
    }
}

/// Whether the value of `key` ends up as options of a JVM: the driver and
/// executor Java options, and pod environment variables the JVM reads.
fn carries_java_options(key: &str) -> bool {
    let key = spark_trim(key);
    key.ends_with("JavaOptions")
        || POD_ENV_PREFIXES
            .iter()
            .filter_map(|prefix| key.strip_prefix(prefix))
            .any(|env| JVM_OPTION_ENVS.contains(&env) || env.starts_with("SPARK_JAVA_OPT_"))
}

/// Refuse `-Dkey` for a key kubesu controls, and Java options read from a
/// file. Quotes and backslashes are dropped before looking, since Spark's
/// option splitting removes them, and `-D` is looked for anywhere, not only at
/// the start of a word: that refuses more than needed but never less.
fn check_java_options(value: &str, shown: &str, extra_denied: &[String]) -> Result<()> {
    let flat: String = value
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect();
    if flat.split_whitespace().any(reads_options_file) {
        return Err(refuse(
            shown,
            "it makes Java read options from a file, which kubesu cannot check",
            "put those options in the argument itself",
        ));
    }
    for after in flat.split("-D").skip(1) {
        let key = after
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if let Some(why) = refusal_reason(key, extra_denied) {
            let why = format!(
                "its -D{key} sets a Java system property Spark reads as configuration, and {why}"
            );
            return Err(refuse(shown, &why, "remove it"));
        }
    }
    Ok(())
}

fn reads_options_file(word: &str) -> bool {
    word.starts_with('@') || word.contains("VMOptionsFile") || word.contains("-XX:Flags")
}

fn unknown_option(text: &str) -> Failure {
    refuse(
        &show(text),
        "it is an unknown spark-submit option before the application, and kubesu refuses what it cannot check",
        "fix its spelling, or put it after the application's file if it is meant for the application",
    )
}

fn refuse(shown: &str, why: &str, todo: &str) -> Failure {
    Failure::data(format!(
        "spark-submit argument \"{shown}\" is refused: {why}; {todo}"
    ))
}

/// The argument as quoted in a message: escaped, since it comes from the user
/// and may hold control characters, and cut short if long.
fn show(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(SHOWN_MAX)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().nth(SHOWN_MAX).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests;
