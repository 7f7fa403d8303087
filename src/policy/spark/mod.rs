//! spark-submit support: the settings kubesu forces so that a run stays in its
//! namespace with its temporary credentials, those the administrator forces
//! ([spark] force, the pod templates), and the refusal of any user argument
//! or properties file setting that would change them.
//!
//! The parsing follows spark-submit's own (`SparkSubmitOptionParser` and
//! `SparkSubmitCommandBuilder` in Spark's launcher), because an argument only
//! matters the way Spark reads it. Where kubesu cannot tell how Spark would
//! read an argument, it refuses it.

mod options;
pub mod properties;

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    /// The administrator's, passed after kubesu's own.
    pub admin: Vec<AdminSetting>,
}

/// A setting the administrator forces on every spark-submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSetting {
    pub key: String,
    pub value: OsString,
    /// Where kubesu's config sets it, named when a user's setting is refused.
    pub source: &'static str,
}

/// What users may not set beyond what kubesu sets itself.
#[derive(Debug, Default)]
pub struct Rules<'a> {
    /// The administrator's forced settings.
    pub forced: &'a [AdminSetting],
    /// [spark] deny_conf: exact keys, or prefixes ending in '.' or '*'.
    pub denied: &'a [String],
}

impl<'a> Rules<'a> {
    /// Only a deny list, nothing forced by the administrator.
    pub fn denying(denied: &'a [String]) -> Self {
        Self {
            forced: &[],
            denied,
        }
    }
}

/// Where the user's arguments name a properties file, to put kubesu's
/// checked copy in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesFile {
    /// The user's argument holding the path: `PATH` after
    /// `--properties-file`, or `--properties-file=PATH`.
    index: usize,
    inline: bool,
    pub path: OsString,
}

/// A properties file whose settings passed the checks, and the copy of
/// them that Spark reads instead (see `properties`).
#[derive(Debug)]
pub struct CheckedProperties {
    pub file: PropertiesFile,
    pub copy: Vec<u8>,
}

/// Spark's pod template settings, which kubesu sets from [spark]
/// driver_pod_template and executor_pod_template.
pub const DRIVER_POD_TEMPLATE: &str = "spark.kubernetes.driver.podTemplateFile";
pub const EXECUTOR_POD_TEMPLATE: &str = "spark.kubernetes.executor.podTemplateFile";

/// The largest properties file kubesu reads; real ones are a few KiB.
pub const MAX_PROPERTIES_BYTES: usize = 1 << 20;

const PROPERTIES_OPTION: &str = "--properties-file";

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
/// any user argument that would change what kubesu or the administrator
/// forces, or that `rules` denies. Returns where the arguments name a
/// properties file, whose settings `check_properties` checks in turn.
pub fn refuse_overrides(
    user_args: &[OsString],
    rules: &Rules<'_>,
) -> Result<Option<PropertiesFile>> {
    let mut args = user_args.iter().enumerate();
    // Once set, spark-submit keeps parsing options after the application.
    let mut mixed = false;
    let mut properties = None;
    while let Some((index, arg)) = args.next() {
        let text = arg.to_string_lossy();
        let (name, inline) = split_inline(&text);
        match option_kind(name) {
            Some(OptionKind::Switch) => {}
            Some(kind) => {
                // `--name=value` carries its value: the next argument is
                // another option, to be checked in turn.
                let next = if inline.is_none() { args.next() } else { None };
                let (value, shown) = option_value(&text, inline, next.map(|(_, a)| a))?;
                check_option(kind, &value, &shown, rules)?;
                mixed |= matches!(kind, OptionKind::Class) && value.starts_with(MIXED_CLASS_PREFIX);
                if matches!(kind, OptionKind::PropertiesFile) {
                    if properties.is_some() {
                        return Err(refuse(
                            &shown,
                            "a second properties file; spark-submit would read only the last",
                            "give one --properties-file",
                        ));
                    }
                    properties = Some(match next {
                        Some((index, path)) => PropertiesFile {
                            index,
                            inline: false,
                            path: path.clone(),
                        },
                        // The option's name is ASCII: its bytes are the text's.
                        None => PropertiesFile {
                            index,
                            inline: true,
                            path: OsStr::from_bytes(
                                arg.as_bytes()
                                    .get(PROPERTIES_OPTION.len() + 1..)
                                    .unwrap_or_default(),
                            )
                            .to_owned(),
                        },
                    });
                }
            }
            // For the special classes spark-submit passes unknown arguments to
            // the application and keeps parsing.
            None if mixed => {}
            None if text.starts_with('-') => return Err(unknown_option(&text)),
            // The application's file: everything after it is the application's.
            None => break,
        }
    }
    Ok(properties)
}

/// Check every setting of the properties file the user named (`bytes`,
/// read with the user's rights) as if each came with --conf, and return the
/// copy Spark is to read instead. One refused setting refuses the file.
pub fn check_properties(
    file: &PropertiesFile,
    bytes: &[u8],
    rules: &Rules<'_>,
) -> Result<CheckedProperties> {
    let shown = show(&file.path.to_string_lossy());
    let refused = |why: &str, todo: &str| {
        Failure::data(format!(
            "spark-submit properties file \"{shown}\" is refused: {why}; {todo}"
        ))
    };
    let settings = properties::parse(bytes).map_err(|m| refused(&m.to_string(), "fix the file"))?;
    for setting in &settings {
        if let Some(refusal) = setting_refusal(&setting.key, &setting.value, rules) {
            return Err(refused(
                &format!(
                    "line {} sets \"{}\": {}",
                    setting.line,
                    show(&setting.key),
                    refusal.why
                ),
                &format!("{} (kubesu refuses the whole file)", refusal.todo),
            ));
        }
    }
    let heading =
        format!("The settings of {shown}, checked by kubesu: spark-submit reads this copy.");
    Ok(CheckedProperties {
        file: file.clone(),
        copy: properties::serialize(&heading, properties::as_map(&settings)),
    })
}

/// The user's arguments with the properties file they named replaced by
/// kubesu's checked copy.
pub fn with_properties_copy(
    user_args: &[OsString],
    file: &PropertiesFile,
    copy: &Path,
) -> Vec<OsString> {
    let mut args = user_args.to_vec();
    if let Some(arg) = args.get_mut(file.index) {
        *arg = if file.inline {
            let mut inline = OsString::from(format!("{PROPERTIES_OPTION}="));
            inline.push(copy);
            inline
        } else {
            copy.into()
        };
    }
    args
}

/// Why the administrator may not force `key` ([spark] force), with what to
/// write instead: kubesu sets it itself, or it would undo what kubesu sets.
pub fn refuse_forced(key: &str, value: &str) -> Option<String> {
    let template = [
        (DRIVER_POD_TEMPLATE, "driver_pod_template"),
        (EXECUTOR_POD_TEMPLATE, "executor_pod_template"),
    ]
    .into_iter()
    .find(|(template, _)| spark_trim(key) == *template);
    if let Some((_, field)) = template {
        return Some(format!(
            "[spark] force may not set {key}: set [spark] {field} = \"/etc/kubesu/...yaml\" \
             instead, which kubesu checks is a root-owned file"
        ));
    }
    setting_refusal(key, value, &Rules::default()).map(|refusal| {
        format!(
            "[spark] force may not set {}: {}; remove it from [spark] force",
            key.escape_debug(),
            refusal.why
        )
    })
}

/// The forced options, in spark-submit syntax, to put right after argv[0]:
/// kubesu's, then the administrator's.
pub fn forced_args(forced: &Forced) -> Vec<OsString> {
    let mut args = vec![OsString::from("--master"), OsString::from(&forced.master)];
    for (key, value) in forced_confs(forced) {
        args.push(OsString::from("--conf"));
        args.push(conf_pair(&key, value));
    }
    for setting in &forced.admin {
        args.push(OsString::from("--conf"));
        args.push(conf_pair(&setting.key, &setting.value));
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
fn forced_confs(forced: &Forced) -> [(String, &OsStr); 7] {
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
        // The cluster-mode driver's Service: on 1.30+ kubesu's admission
        // policy refuses a run's Service without the run's label (Spark
        // 3.4 and later honour the key).
        (
            format!("spark.kubernetes.driver.service.label.{label_key}"),
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

fn check_option(kind: OptionKind, value: &str, shown: &str, rules: &Rules<'_>) -> Result<()> {
    match kind {
        OptionKind::Conf => {
            let Some((key, value)) = value.split_once('=') else {
                return Err(refuse(
                    shown,
                    "--conf takes key=value and this has no '='",
                    "write it as --conf key=value",
                ));
            };
            check_setting(key, value, shown, rules)
        }
        OptionKind::Sets(key) => check_setting(key, value, shown, rules),
        OptionKind::Refused { why, todo } => Err(refuse(shown, why, todo)),
        OptionKind::PropertiesFile if value.is_empty() => Err(refuse(
            shown,
            "it names no file",
            "give the properties file's path",
        )),
        OptionKind::PropertiesFile => Ok(()),
        OptionKind::Class | OptionKind::Switch => Ok(()),
    }
}

/// Why a setting is refused, and what to do instead.
struct Refusal {
    why: String,
    todo: &'static str,
}

fn check_setting(key: &str, value: &str, shown: &str, rules: &Rules<'_>) -> Result<()> {
    match setting_refusal(key, value, rules) {
        Some(refusal) => Err(refuse(shown, &refusal.why, refusal.todo)),
        None => Ok(()),
    }
}

/// Refuse setting `key` if kubesu or the administrator controls it, and
/// Java options that would set such a key as a system property.
fn setting_refusal(key: &str, value: &str, rules: &Rules<'_>) -> Option<Refusal> {
    if let Some(why) = refusal_reason(key, rules) {
        return Some(Refusal {
            why,
            todo: "remove it",
        });
    }
    // kubesu revokes the run when spark-submit exits: a submission that does
    // not wait would have its driver deleted at once.
    if spark_trim(key) == "spark.kubernetes.submission.waitAppCompletion"
        && !spark_trim(value).eq_ignore_ascii_case("true")
    {
        return Some(Refusal {
            why: "kubesu revokes the run's credentials and deletes its pods when spark-submit \
                  exits, so a cluster-mode job must be waited for"
                .into(),
            todo: "remove it (waiting is Spark's default)",
        });
    }
    if carries_java_options(key) {
        return java_options_refusal(value, rules);
    }
    None
}

/// Why kubesu refuses a user setting of `key`, if it does. Spark compares keys
/// exactly, but a key is also checked trimmed and without the replacement
/// characters of undecodable bytes, in case Spark or the JVM reads it so.
fn refusal_reason(key: &str, rules: &Rules<'_>) -> Option<String> {
    let trimmed = spark_trim(key);
    let without_invalid = trimmed.replace('\u{FFFD}', "");
    [trimmed, spark_trim(&without_invalid)]
        .into_iter()
        .find_map(|key| {
            builtin_reason(key)
                .map(str::to_owned)
                .or_else(|| forced_reason(key, rules.forced))
                .or_else(|| denied_reason(key, rules.denied))
        })
}

fn forced_reason(key: &str, forced: &[AdminSetting]) -> Option<String> {
    forced
        .iter()
        .find(|setting| setting.key == key)
        .map(|setting| {
            format!(
                "the administrator forces it for every run ({} in kubesu's config)",
                setting.source
            )
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

/// Whether `key` sets a label of the driver's or executors' pods, or of the
/// driver's Service, in kubesu's domain. Kubernetes requires label prefixes
/// in lower case, so case does not matter.
fn sets_run_label(key: &str) -> bool {
    [
        "spark.kubernetes.driver.label.",
        "spark.kubernetes.executor.label.",
        "spark.kubernetes.driver.service.label.",
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
fn java_options_refusal(value: &str, rules: &Rules<'_>) -> Option<Refusal> {
    let flat: String = value
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect();
    if flat.split_whitespace().any(reads_options_file) {
        return Some(Refusal {
            why: "it makes Java read options from a file, which kubesu cannot check".into(),
            todo: "put those options in the argument itself",
        });
    }
    flat.split("-D").skip(1).find_map(|after| {
        let key = after
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        refusal_reason(key, rules).map(|why| Refusal {
            why: format!(
                "its -D{key} sets a Java system property Spark reads as configuration, and {why}"
            ),
            todo: "remove it",
        })
    })
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
