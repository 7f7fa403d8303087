//! spark-submit support: the settings kubesu forces so that a run stays in its
//! namespace with its temporary credentials, and the refusal of any user
//! argument that would change them.
//!
//! The parsing follows spark-submit's own (`SparkSubmitOptionParser` and
//! `SparkSubmitCommandBuilder` in Spark's launcher), because an argument only
//! matters the way Spark reads it. Where kubesu cannot tell how Spark would
//! read an argument, it refuses it.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};

use crate::failure::{Failure, Result};
use crate::policy::labels::RUN_LABEL;

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

/// How spark-submit treats one of its options.
#[derive(Clone, Copy)]
enum Kind {
    /// `--conf key=value` and its alias `-c`.
    Conf,
    /// An option with a value that is shorthand for a configuration key, so
    /// the same rules apply as to `--conf key=value`.
    Sets(&'static str),
    /// `--class`: some classes make spark-submit keep parsing its own options
    /// after the application.
    Class,
    /// An option with a value that kubesu never passes on.
    Refused {
        why: &'static str,
        todo: &'static str,
    },
    /// An option without a value.
    Switch,
}

/// Every option spark-submit knows (Spark 3 and 4); anything else before the
/// application is refused.
const OPTIONS: &[(&str, Kind)] = &[
    ("--conf", Kind::Conf),
    ("-c", Kind::Conf),
    ("--class", Kind::Class),
    ("--master", Kind::Sets("spark.master")),
    ("--remote", Kind::Sets("spark.remote")),
    ("--deploy-mode", Kind::Sets("spark.submit.deployMode")),
    ("--name", Kind::Sets("spark.app.name")),
    ("--jars", Kind::Sets("spark.jars")),
    ("--packages", Kind::Sets("spark.jars.packages")),
    ("--exclude-packages", Kind::Sets("spark.jars.excludes")),
    ("--repositories", Kind::Sets("spark.jars.repositories")),
    ("--py-files", Kind::Sets("spark.submit.pyFiles")),
    ("--files", Kind::Sets("spark.files")),
    ("--archives", Kind::Sets("spark.archives")),
    ("--driver-memory", Kind::Sets("spark.driver.memory")),
    (
        "--driver-java-options",
        Kind::Sets("spark.driver.extraJavaOptions"),
    ),
    (
        "--driver-library-path",
        Kind::Sets("spark.driver.extraLibraryPath"),
    ),
    (
        "--driver-class-path",
        Kind::Sets("spark.driver.extraClassPath"),
    ),
    ("--driver-cores", Kind::Sets("spark.driver.cores")),
    ("--executor-memory", Kind::Sets("spark.executor.memory")),
    ("--executor-cores", Kind::Sets("spark.executor.cores")),
    ("--total-executor-cores", Kind::Sets("spark.cores.max")),
    ("--num-executors", Kind::Sets("spark.executor.instances")),
    ("--queue", Kind::Sets("spark.yarn.queue")),
    ("--principal", Kind::Sets("spark.kerberos.principal")),
    ("--keytab", Kind::Sets("spark.kerberos.keytab")),
    (
        "--proxy-user",
        Kind::Refused {
            why: "the run already belongs to you and may not impersonate another user",
            todo: "remove it",
        },
    ),
    (
        "--kill",
        Kind::Refused {
            why: "it acts on another submission by id, outside this run",
            todo: "remove it, and manage earlier runs with kubectl in your namespace",
        },
    ),
    (
        "--status",
        Kind::Refused {
            why: "it acts on another submission by id, outside this run",
            todo: "remove it, and inspect earlier runs with kubectl in your namespace",
        },
    ),
    (
        "--properties-file",
        Kind::Refused {
            why: "kubesu cannot check settings read from a file",
            todo: "pass each setting with --conf key=value instead",
        },
    ),
    ("--help", Kind::Switch),
    ("-h", Kind::Switch),
    ("--verbose", Kind::Switch),
    ("-v", Kind::Switch),
    ("--version", Kind::Switch),
    ("--supervise", Kind::Switch),
    ("--usage-error", Kind::Switch),
    ("--load-spark-defaults", Kind::Switch),
];

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

const MASTER_REASON: &str = "kubesu sets the Kubernetes API server for this run";
const CREDENTIALS_REASON: &str = "kubesu sets the service account and credentials for this run";

/// Longest argument quoted back in a message, so that a huge argument does not
/// flood the terminal.
const SHOWN_MAX: usize = 200;

/// Refuse, with a clear message naming the offending argument and what to do,
/// any user argument that would change what kubesu forces. `extra_denied`
/// holds config keys from the administrator's deny list: an entry ending in
/// '.' or '*' is a prefix ("spark.kubernetes.driver.podTemplate*"), else exact.
pub fn check(user_args: &[OsString], extra_denied: &[String]) -> Result<()> {
    let mut args = user_args.iter();
    // Once set, spark-submit keeps parsing options after the application.
    let mut mixed = false;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (name, inline) = split_inline(&text);
        match option_kind(name) {
            Some(Kind::Switch) => {}
            Some(kind) => {
                // `--name=value` carries its value: the next argument is
                // another option, to be checked in turn.
                let next = if inline.is_none() { args.next() } else { None };
                let (value, shown) = option_value(&text, inline, next)?;
                check_option(kind, &value, &shown, extra_denied)?;
                mixed |= matches!(kind, Kind::Class) && value.starts_with(MIXED_CLASS_PREFIX);
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
fn forced_confs(forced: &Forced) -> [(String, &OsStr); 5] {
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
    ]
}

fn conf_pair(key: &str, value: &OsStr) -> OsString {
    let mut pair = OsString::from(key);
    pair.push("=");
    pair.push(value);
    pair
}

/// Split `--name=value` as spark-submit does (only long options, at the first
/// '='). Unlike spark-submit, an empty value still counts as one, so that
/// `--master=` is refused rather than passed on for Spark to judge.
fn split_inline(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((name, value)) if name.len() > 2 && name.starts_with("--") => (name, Some(value)),
        _ => (arg, None),
    }
}

fn option_kind(name: &str) -> Option<Kind> {
    OPTIONS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, kind)| kind)
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

fn check_option(kind: Kind, value: &str, shown: &str, extra_denied: &[String]) -> Result<()> {
    match kind {
        Kind::Conf => {
            let Some((key, value)) = value.split_once('=') else {
                return Err(refuse(
                    shown,
                    "--conf takes key=value and this has no '='",
                    "write it as --conf key=value",
                ));
            };
            check_setting(key, value, shown, extra_denied)
        }
        Kind::Sets(key) => check_setting(key, value, shown, extra_denied),
        Kind::Refused { why, todo } => Err(refuse(shown, why, todo)),
        Kind::Class | Kind::Switch => Ok(()),
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
mod tests {
    use super::*;
    use crate::failure::Code;
    use crate::policy::labels::app_id;
    use std::os::unix::ffi::OsStringExt;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn refused_with(args: &[OsString], denied: &[&str]) -> String {
        let denied: Vec<String> = denied.iter().map(|d| d.to_string()).collect();
        match check(args, &denied) {
            Ok(()) => panic!("{args:?} was allowed"),
            Err(failure) => {
                assert_eq!(failure.code, Code::DataErr, "{}", failure.message);
                assert!(
                    failure.message.starts_with("spark-submit argument \""),
                    "{}",
                    failure.message
                );
                assert!(
                    failure.message.contains("is refused: "),
                    "{}",
                    failure.message
                );
                failure.message
            }
        }
    }

    fn refused(args: &[&str]) -> String {
        refused_with(&os(args), &[])
    }

    fn allowed_with(args: &[&str], denied: &[&str]) {
        let denied: Vec<String> = denied.iter().map(|d| d.to_string()).collect();
        if let Err(failure) = check(&os(args), &denied) {
            panic!("{args:?} was refused: {}", failure.message);
        }
    }

    fn allowed(args: &[&str]) {
        allowed_with(args, &[]);
    }

    fn forced() -> Forced {
        Forced {
            master: "k8s://https://127.0.0.1:16443".into(),
            namespace: "team-a".into(),
            service_account: "spark".into(),
            app_id: app_id("abc123"),
            run_label: (RUN_LABEL.into(), "abc123".into()),
        }
    }

    const FORBIDDEN_KEYS: &[&str] = &[
        "spark.master",
        "spark.kubernetes.driver.master",
        "spark.kubernetes.namespace",
        "spark.kubernetes.context",
        "spark.app.id",
        "spark.kubernetes.authenticate.driver.serviceAccountName",
        "spark.kubernetes.authenticate.executor.serviceAccountName",
        "spark.kubernetes.authenticate.oauthTokenFile",
        "spark.kubernetes.authenticate.oauthToken",
        "spark.kubernetes.authenticate.caCertFile",
        "spark.kubernetes.authenticate.clientKeyFile",
        "spark.kubernetes.authenticate.submission.oauthTokenFile",
        "spark.kubernetes.authenticate.submission.caCertFile",
        "spark.kubernetes.authenticate.driver.mounted.oauthTokenFile",
        "spark.kubernetes.driver.label.kubesu.io/run",
        "spark.kubernetes.executor.label.kubesu.io/run",
        "spark.kubernetes.driver.label.kubesu.io/other",
        "spark.kubernetes.executor.label.KUBESU.IO/run",
    ];

    /// The ways spark-submit accepts to set `key=value`, each also after an
    /// ordinary option so that parsing is shown to reach it.
    fn conf_syntaxes(pair: &str) -> Vec<Vec<String>> {
        let forms = vec![
            vec!["--conf".to_string(), pair.to_string()],
            vec![format!("--conf={pair}")],
            vec!["-c".to_string(), pair.to_string()],
        ];
        let mut all = forms.clone();
        for form in forms {
            let mut after = vec![
                "--deploy-mode".to_string(),
                "cluster".to_string(),
                "-v".to_string(),
            ];
            after.extend(form);
            after.push("app.jar".to_string());
            all.push(after);
        }
        all
    }

    fn strs(args: &[String]) -> Vec<&str> {
        args.iter().map(String::as_str).collect()
    }

    #[test]
    fn refuses_every_forbidden_key_in_every_syntax() {
        for key in FORBIDDEN_KEYS {
            for pair in [format!("{key}=x"), format!(" {key} =x"), format!("{key}=")] {
                for args in conf_syntaxes(&pair) {
                    let message = refused(&strs(&args));
                    assert!(message.contains(key.trim()), "{message}");
                    assert!(message.contains("remove it"), "{message}");
                }
            }
        }
    }

    #[test]
    fn refuses_every_forced_key() {
        let forced_args = forced_args(&forced());
        for pair in forced_args.iter().skip(3).step_by(2) {
            let pair = pair.to_string_lossy();
            let message = refused(&["--conf", &pair]);
            assert!(message.contains(pair.as_ref()), "{message}");
        }
    }

    #[test]
    fn names_the_reason() {
        let message = refused(&["--conf", "spark.kubernetes.namespace=other"]);
        assert_eq!(
            message,
            "spark-submit argument \"--conf spark.kubernetes.namespace=other\" is refused: \
             kubesu sets the namespace for this run; remove it"
        );
        assert!(refused(&["--conf", "spark.master=x"]).contains(MASTER_REASON));
        assert!(
            refused(&["-c", "spark.kubernetes.authenticate.oauthToken=t"])
                .contains(CREDENTIALS_REASON)
        );
    }

    #[test]
    fn refuses_master_option() {
        for args in [
            vec!["--master", "local[*]"],
            vec!["--master=k8s://https://evil:6443"],
            vec!["--master="],
            vec!["--name", "x", "--master", "yarn", "app.jar"],
        ] {
            let message = refused(&args);
            assert!(message.contains("--master"), "{message}");
            assert!(message.contains(MASTER_REASON), "{message}");
        }
    }

    #[test]
    fn refuses_proxy_user_kill_status_and_properties_file() {
        for (args, shown) in [
            (vec!["--proxy-user", "root"], "--proxy-user root"),
            (vec!["--proxy-user=root"], "--proxy-user=root"),
            (vec!["--proxy-user="], "--proxy-user="),
            (vec!["--kill", "ns:driver-1"], "--kill ns:driver-1"),
            (vec!["--kill=ns:driver-1"], "--kill=ns:driver-1"),
            (vec!["--status", "ns:driver-1"], "--status ns:driver-1"),
            (vec!["--status=x"], "--status=x"),
            (
                vec!["--properties-file", "my.conf"],
                "--properties-file my.conf",
            ),
            (
                vec!["--properties-file=my.conf"],
                "--properties-file=my.conf",
            ),
        ] {
            let message = refused(&args);
            assert!(message.contains(&format!("\"{shown}\"")), "{message}");
        }
    }

    #[test]
    fn refuses_unknown_options_before_the_application() {
        for arg in [
            "--foo",
            "--foo=bar",
            "-ck=v",
            "-cspark.master=x",
            "-c=spark.master=x",
            "--Conf",
            "--kubernetes-namespace",
            "-x",
            "-",
            "--",
            "--=x",
        ] {
            let message = refused(&[arg, "app.jar"]);
            assert!(message.contains("unknown spark-submit option"), "{message}");
            assert!(message.contains("cannot check"), "{message}");
        }
    }

    #[test]
    fn refuses_option_without_value() {
        for option in [
            "--conf",
            "-c",
            "--master",
            "--name",
            "--class",
            "--proxy-user",
        ] {
            let message = refused(&["--verbose", option]);
            assert!(message.contains(&format!("\"{option}\"")), "{message}");
            assert!(message.contains("needs a value"), "{message}");
        }
    }

    #[test]
    fn refuses_conf_without_equals() {
        for args in [
            vec!["--conf", "spark.app.name"],
            vec!["--conf=spark.app.name"],
            vec!["-c", ""],
            vec!["--conf="],
        ] {
            let message = refused(&args);
            assert!(message.contains("no '='"), "{message}");
            assert!(message.contains(args[0]), "{message}");
        }
    }

    #[test]
    fn refuses_forbidden_system_properties_in_java_options() {
        let values = [
            "-Dspark.master=local",
            "-Xmx1g -Dspark.kubernetes.namespace=other",
            "-Dspark.kubernetes.authenticate.oauthToken=t",
            "\"-Dspark.kubernetes.context\"=c",
            "'-Dspark.kubernetes.namespace=a b'",
            "-Dspark.kube\\rnetes.namespace=x",
            "-Dspark.kubernetes.driver.label.kubesu.io/run=x",
            "-Dspark.master",
            "-XX:+UseG1GC\t-Dspark.master=x",
        ];
        let keys = [
            "spark.driver.extraJavaOptions",
            "spark.driver.defaultJavaOptions",
            "spark.executor.extraJavaOptions",
            "spark.executor.defaultJavaOptions",
            "spark.kubernetes.driverEnv.JAVA_TOOL_OPTIONS",
            "spark.executorEnv.SPARK_JAVA_OPT_9",
        ];
        for value in values {
            refused(&["--driver-java-options", value]);
            refused(&[&format!("--driver-java-options={value}")]);
            for key in keys {
                let message = refused(&["--conf", &format!("{key}={value}")]);
                assert!(message.contains("-Dspark."), "{message}");
            }
        }
    }

    #[test]
    fn refuses_java_options_from_files() {
        for value in [
            "@/tmp/opts",
            "-Xmx1g '@opts'",
            "-XX:VMOptionsFile=/tmp/o",
            "-XX:Flags=.hotspotrc",
        ] {
            let message = refused(&["--driver-java-options", value]);
            assert!(message.contains("from a file"), "{message}");
        }
    }

    #[test]
    fn allows_ordinary_java_options() {
        allowed(&[
            "--driver-java-options",
            "-Xmx2g -Dlog4j.configurationFile=log4j2.xml -Dspark.app.name=x",
            "--conf",
            "spark.executor.extraJavaOptions=-XX:+UseG1GC -Dfoo=bar",
            "--conf",
            "spark.executorEnv.NOT_JAVA=-Dspark.master=x",
            "app.jar",
        ]);
    }

    #[test]
    fn allows_ordinary_arguments() {
        allowed(&[]);
        allowed(&[
            "--deploy-mode",
            "cluster",
            "--deploy-mode=client",
            "--name",
            "etl",
            "--conf",
            "spark.executor.instances=3",
            "--conf=spark.kubernetes.container.image=spark:3.5",
            "-c",
            "spark.kubernetes.driver.label.team=data",
            "-c",
            "spark.kubernetes.executor.label.example.com/run=x",
            "--conf",
            "spark.kubernetes.namespaces=x",
            "--principal",
            "me@EXAMPLE.COM",
            "--keytab=/home/me/me.keytab",
            "--jars",
            "a.jar,b.jar",
            "--packages",
            "org.example:lib:1.0",
            "--driver-memory",
            "2g",
            "--executor-memory=4g",
            "--verbose=x",
            "-v",
            "--supervise",
            "--class",
            "com.example.Main",
            "app.jar",
        ]);
    }

    #[test]
    fn leaves_application_arguments_alone() {
        allowed(&["app.py", "--master", "x", "--conf", "spark.master=y"]);
        allowed(&[
            "--class",
            "com.example.Main",
            "app.jar",
            "--proxy-user",
            "root",
            "--kill",
            "x",
            "--foo",
            "--conf",
        ]);
        allowed(&[
            "--deploy-mode",
            "cluster",
            "local:///opt/app.jar",
            "--properties-file",
            "f",
        ]);
    }

    #[test]
    fn keeps_checking_after_the_application_for_shell_classes() {
        for class in [
            "org.apache.spark.repl.Main",
            "org.apache.spark.sql.hive.thriftserver.SparkSQLCLIDriver",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
        ] {
            let message = refused(&["--class", class, "shell-arg", "--master", "x"]);
            assert!(message.contains("--master x"), "{message}");
            refused(&[
                &format!("--class={class}"),
                "-i",
                "x",
                "-c",
                "spark.master=y",
            ]);
            allowed(&[
                "--class",
                class,
                "-i",
                "init.scala",
                "--conf",
                "spark.app.name=x",
                "arg",
            ]);
        }
    }

    #[test]
    fn extra_denied_exact_and_prefix() {
        let exact = ["spark.kubernetes.driver.podTemplateFile"];
        let message = refused_with(
            &os(&["--conf", "spark.kubernetes.driver.podTemplateFile=t.yaml"]),
            &exact,
        );
        assert!(
            message.contains("spark.kubernetes.driver.podTemplateFile"),
            "{message}"
        );
        assert!(message.contains("deny list"), "{message}");
        allowed_with(
            &["--conf", "spark.kubernetes.driver.podTemplateFileX=t"],
            &exact,
        );
        allowed_with(&["--conf", "spark.kubernetes.driver.podTemplate=t"], &exact);

        let star = ["spark.kubernetes.driver.podTemplate*"];
        for key in ["podTemplateFile", "podTemplateContainerName", "podTemplate"] {
            let args = os(&["-c", &format!("spark.kubernetes.driver.{key}=x")]);
            let message = refused_with(&args, &star);
            assert!(
                message.contains("spark.kubernetes.driver.podTemplate*"),
                "{message}"
            );
        }
        allowed_with(&["-c", "spark.kubernetes.driver.pod.name=x"], &star);

        let dot = ["spark.kubernetes.executor.volumes."];
        refused_with(
            &os(&["--conf=spark.kubernetes.executor.volumes.hostPath.x.mount.path=/"]),
            &dot,
        );
        allowed_with(&["--conf=spark.kubernetes.executor.volumesX=1"], &dot);
    }

    #[test]
    fn extra_denied_applies_to_option_shorthands_and_java_options() {
        refused_with(&os(&["--jars", "evil.jar"]), &["spark.jars"]);
        refused_with(
            &os(&["--driver-class-path=/x"]),
            &["spark.driver.extraClassPath"],
        );
        let message = refused_with(
            &os(&[
                "--driver-java-options",
                "-Dspark.kubernetes.driver.podTemplateFile=t",
            ]),
            &["spark.kubernetes.driver.podTemplate*"],
        );
        assert!(message.contains("deny list"), "{message}");
        allowed_with(&["app.jar", "--jars", "x"], &["spark.jars"]);
    }

    #[test]
    fn handles_non_utf8_without_panicking() {
        let invalid = |prefix: &[u8], suffix: &[u8]| {
            let mut bytes = prefix.to_vec();
            bytes.push(0xff);
            bytes.extend_from_slice(suffix);
            OsString::from_vec(bytes)
        };
        // A key that could read as a forbidden one is refused.
        for arg in [
            invalid(b"spark.master", b"=x"),
            invalid(b"spark.kubernetes.", b"namespace=x"),
            invalid(b"spark.kubernetes.authenticate.", b"=x"),
        ] {
            refused_with(&[OsString::from("--conf"), arg], &[]);
        }
        let message = refused_with(&[invalid(b"--", b"master"), OsString::from("x")], &[]);
        assert!(message.contains('\u{FFFD}'), "{message}");
        // Ordinary values, the application file and its arguments may be anything.
        let fine = [
            OsString::from("--conf"),
            invalid(b"spark.app.name=", b""),
            OsString::from("--name"),
            invalid(b"", b""),
            invalid(b"app", b".jar"),
            invalid(b"--", b"master"),
        ];
        assert!(check(&fine, &[]).is_ok());
    }

    #[test]
    fn escapes_and_shortens_what_it_quotes() {
        let message = refused(&["--conf", "spark.master=\u{1b}[31mred\n"]);
        assert!(
            !message.contains('\u{1b}') && !message.contains('\n'),
            "{message}"
        );
        assert!(message.contains("\\u{1b}[31mred\\n"), "{message}");
        let long = format!("spark.master={}", "x".repeat(1000));
        let message = refused(&["--conf", &long]);
        assert!(message.len() < 500 && message.contains('…'), "{message}");
    }

    #[test]
    fn forced_args_are_exactly_the_forced_settings() {
        let expected = os(&[
            "--master",
            "k8s://https://127.0.0.1:16443",
            "--conf",
            "spark.kubernetes.namespace=team-a",
            "--conf",
            "spark.kubernetes.authenticate.driver.serviceAccountName=spark",
            "--conf",
            "spark.app.id=spark-kubesu-abc123",
            "--conf",
            "spark.kubernetes.driver.label.kubesu.io/run=abc123",
            "--conf",
            "spark.kubernetes.executor.label.kubesu.io/run=abc123",
        ]);
        assert_eq!(forced_args(&forced()), expected);
    }

    #[test]
    fn an_inline_value_does_not_hide_the_next_argument() {
        refused(&["--name=x", "--master", "k8s://https://evil:6443", "app.py"]);
        refused(&[
            "--deploy-mode=client",
            "--conf",
            "spark.kubernetes.namespace=x",
            "app.py",
        ]);
    }

    #[test]
    fn a_cluster_submission_must_wait_for_its_job() {
        for value in ["false", "False", " false ", "no"] {
            let pair = format!("spark.kubernetes.submission.waitAppCompletion={value}");
            let message = refused(&["--conf", &pair, "app.jar"]);
            assert!(message.contains("waited for"), "{message}");
        }
        allowed(&[
            "--conf",
            "spark.kubernetes.submission.waitAppCompletion=true",
            "app.jar",
        ]);
    }

    #[test]
    fn command_line_is_program_forced_then_user() {
        let user = os(&["--name", "x", "app.py", "--master", "y"]);
        let line = command_line("/opt/spark/bin/spark-submit".into(), &user, &forced());
        let forced_len = forced_args(&forced()).len();
        assert_eq!(line[0], "/opt/spark/bin/spark-submit");
        assert_eq!(line[1..=forced_len], forced_args(&forced())[..]);
        assert_eq!(line[forced_len + 1..], user[..]);
        assert_eq!(line.len(), 1 + forced_len + user.len());
    }

    #[test]
    fn run_label_domain_comes_from_the_key() {
        assert_eq!(run_label_domain(), "kubesu.io/");
        assert!(sets_run_label(&format!(
            "spark.kubernetes.driver.label.{RUN_LABEL}"
        )));
        assert!(!sets_run_label(
            "spark.kubernetes.driver.label.kubesu.iox/run"
        ));
    }
}
