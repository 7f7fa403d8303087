//! Property tests with proptest: the spark-submit argument policy, the
//! config parser and the naming functions on generated inputs, shrunk to a
//! smallest failing case when one fails. Failures are kept in
//! tests/properties.proptest-regressions (commit it: those cases then run
//! first, every time). PROPTEST_CASES sets the number of cases of every
//! test (e.g. 100000 for a long local run). No root, no cluster: these run
//! anywhere in seconds. The fuzz targets in fuzz/ explore the same
//! functions without a generator's idea of what inputs look like.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

use kubesu::failure::Code;
use kubesu::policy::config::Config;
use kubesu::policy::identity::RunId;
use kubesu::policy::naming::{self, Policy};
use kubesu::policy::spark;

/// `cases` cases, unless PROPTEST_CASES says otherwise; failures kept
/// beside this file.
fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

/// Anything, including control characters, non-ASCII and quotes.
fn text(max: usize) -> impl Strategy<Value = String> {
    const CHARS: &[char] = &[
        'a', 'z', 'A', '0', '9', '.', '-', '_', '=', ' ', '\t', '\n', '"', '\'', '\\', '/', '@',
        '*', '$', 'é', '\u{202e}', '\u{feff}', '\u{fffd}', '\u{1b}', '\u{0}', '-', '-', 'D',
    ];
    vec(select(CHARS), 0..=max).prop_map(String::from_iter)
}

/// Arbitrary bytes (NUL-free: argv cannot carry NUL), often not UTF-8.
fn bytes(max: usize) -> impl Strategy<Value = OsString> {
    vec(1u8..=255, 0..=max).prop_map(OsString::from_vec)
}

// --- spark-submit ----------------------------------------------------------

/// Settings kubesu always refuses, in forms Spark would read as them.
const FORBIDDEN_KEYS: &[&str] = &[
    "spark.master",
    "spark.kubernetes.driver.master",
    "spark.kubernetes.namespace",
    "spark.kubernetes.context",
    "spark.kubernetes.authenticate",
    "spark.kubernetes.authenticate.driver.serviceAccountName",
    "spark.kubernetes.authenticate.executor.serviceAccountName",
    "spark.kubernetes.authenticate.oauthToken",
    "spark.kubernetes.authenticate.oauthTokenFile",
    "spark.kubernetes.authenticate.caCertFile",
    "spark.kubernetes.authenticate.clientKeyFile",
    "spark.kubernetes.authenticate.clientCertFile",
    "spark.kubernetes.authenticate.submission.oauthTokenFile",
    "spark.kubernetes.authenticate.submission.caCertFile",
    "spark.kubernetes.authenticate.driver.mounted.oauthTokenFile",
    "spark.kubernetes.driver.label.kubesu.io/run",
    "spark.kubernetes.executor.label.kubesu.io/run",
    "spark.kubernetes.driver.label.kubesu.io/anything",
    "spark.kubernetes.executor.label.KUBESU.IO/run",
    "spark.kubernetes.driver.label.Kubesu.Io/x",
];

/// Options that set a forbidden key by themselves. (`--properties-file` is
/// not one: its settings are checked in turn, see below.)
const FORBIDDEN_OPTIONS: &[&str] = &["--master", "--proxy-user", "--kill", "--status"];

/// Settings users may pass.
const HARMLESS_CONFS: &[&str] = &[
    "spark.app.name=etl",
    "spark.executor.instances=3",
    "spark.kubernetes.container.image=spark:3.5",
    "spark.kubernetes.driver.label.team=data",
    "spark.kubernetes.executor.label.example.com/run=x",
    "spark.kubernetes.namespaces=x",
    "spark.masterx=y",
    "spark.executor.extraJavaOptions=-XX:+UseG1GC -Dfoo=bar",
    "spark.driver.extraJavaOptions=-Dspark.app.name=x",
    "spark.executorEnv.NOT_JAVA=-Dspark.master=x",
];

/// Arguments before the application that are allowed, as whole groups.
fn harmless_option() -> impl Strategy<Value = Vec<String>> {
    let conf = || select(HARMLESS_CONFS);
    prop_oneof![
        conf().prop_map(|c| vec!["--conf".into(), c.into()]),
        conf().prop_map(|c| vec![format!("--conf={c}")]),
        conf().prop_map(|c| vec!["-c".into(), c.into()]),
        select(&["-v", "--verbose", "--supervise"][..]).prop_map(|s| vec![s.into()]),
        select(&["cluster", "client"][..]).prop_map(|m| vec!["--deploy-mode".into(), m.into()]),
        text(12).prop_map(|name| vec!["--name".into(), name]),
        (0..64u32).prop_map(|g| vec![format!("--executor-memory={g}g")]),
        Just(vec!["--class".into(), "com.example.Main".into()]),
        Just(vec!["--jars".into(), "a.jar,b.jar".into()]),
    ]
}

/// Java's String.trim and Unicode whitespace, which kubesu also trims.
const PADDING: &[&str] = &["", "", "", " ", "\t", "  ", "\u{a0}", "\u{2003}", "\n"];

/// The Java options settings Spark passes to a JVM.
const JAVA_KEYS: &[&str] = &[
    "spark.driver.extraJavaOptions",
    "spark.executor.extraJavaOptions",
    "spark.driver.defaultJavaOptions",
    "spark.kubernetes.driverEnv.JAVA_TOOL_OPTIONS",
    "spark.executorEnv._JAVA_OPTIONS",
];

/// A forbidden setting in one of the syntaxes Spark reads, as arguments.
fn forbidden_setting() -> impl Strategy<Value = Vec<String>> {
    (
        (select(PADDING), select(FORBIDDEN_KEYS), select(PADDING)),
        prop::option::weighted(0.2, text(8)),
        text(10),
        select(JAVA_KEYS),
        select(FORBIDDEN_OPTIONS),
        any::<bool>(),
        0..8u8,
    )
        .prop_map(
            |((before, key, after), suffix, value, java_key, option, inline, syntax)| {
                let mut key = format!("{before}{key}{after}");
                // Below the prefix "spark.kubernetes.authenticate", any key.
                if let Some(suffix) = suffix
                    && key.trim().ends_with("authenticate")
                {
                    key = format!("{key}.{}", suffix.replace(['=', ' '], ""));
                }
                let value = value.replace('\0', "");
                let pair = format!("{key}={value}");
                let flag = format!(
                    "-Xmx1g -D{}={}",
                    key.trim(),
                    value.replace(char::is_whitespace, "")
                );
                match syntax {
                    0 => vec!["--conf".into(), pair],
                    1 => vec![format!("--conf={pair}")],
                    2 => vec!["-c".into(), pair],
                    3 if inline => vec![format!("{option}={value}")],
                    3 => vec![option.into(), value],
                    4 => vec!["--driver-java-options".into(), flag],
                    5 => vec![format!("--driver-java-options={flag}")],
                    6 => vec!["--conf".into(), format!("{java_key}={flag}")],
                    _ => vec!["-c".into(), format!("{java_key}='{flag}'")],
                }
            },
        )
}

/// An argument from spark-submit's vocabulary, or noise.
fn any_argument() -> impl Strategy<Value = OsString> {
    const WORDS: &[&str] = &[
        "--conf",
        "-c",
        "--master",
        "--class",
        "--name",
        "--deploy-mode",
        "--proxy-user",
        "--properties-file",
        "--driver-java-options",
        "--jars",
        "-v",
        "--verbose",
        "--help",
        "--",
        "-",
        "app.py",
        "app.jar",
        "org.apache.spark.repl.Main",
        "spark.master=x",
        "spark.kubernetes.namespace=y",
        "--conf=",
        "--master=",
        "=",
        "==",
        "-Dspark.master=x",
        "@file",
        "--kill",
        "--status",
        "--supervise",
        "-c=spark.master=x",
    ];
    prop_oneof![
        1 => bytes(24),
        1 => text(24).prop_map(OsString::from),
        2 => (select(WORDS), prop::option::weighted(0.2, text(6))).prop_map(|(word, tail)| {
            OsString::from(format!("{word}{}", tail.unwrap_or_default()))
        }),
    ]
}

fn os(args: &[String]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Keys the tests' config denies on top of the built-in ones.
fn denied() -> Vec<String> {
    vec![
        "spark.kubernetes.driver.podTemplateFile".to_string(),
        "spark.kubernetes.executor.volumes.".into(),
        "spark.jars*".into(),
    ]
}

proptest! {
    #![proptest_config(cases(5_000))]

    #[test]
    fn spark_check_never_panics_and_only_refuses_as_data_errors(
        args in vec(any_argument(), 0..12)
    ) {
        // A panic fails the test with the shrunk arguments.
        if let Err(failure) = spark::refuse_overrides(&args, &spark::Rules::denying(&denied())) {
            prop_assert_eq!(failure.code, Code::DataErr, "{}", failure.message);
            prop_assert!(
                failure.message.starts_with("spark-submit argument \""),
                "{}",
                failure.message
            );
            prop_assert!(
                !failure.message.contains('\n') && !failure.message.contains('\u{1b}'),
                "the message carries raw control characters: {:?}",
                failure.message
            );
            prop_assert!(failure.message.chars().count() < 1000, "{}", failure.message);
        }
    }

    #[test]
    fn forbidden_settings_are_refused_in_every_syntax_and_position(
        harmless in vec(harmless_option(), 0..5),
        mixed in prop::option::weighted(0.2, text(6)),
        forbidden in forbidden_setting(),
        application in prop::option::of(text(8)),
    ) {
        let mut before: Vec<String> = harmless.concat();
        // With a class of Spark's own, options keep being parsed after the
        // application: put the forbidden one after it.
        if let Some(application) = &mixed {
            before.extend(["--class".into(), "org.apache.spark.repl.Main".into()]);
            before.push(application.replace('-', "x") + "x");
        }
        let mut sane = before.clone();
        if mixed.is_none() {
            sane.push("app.py".into());
        }
        prop_assert!(
            spark::refuse_overrides(&os(&sane), &spark::Rules::default()).is_ok(),
            "the generator made a refused prefix: {:?}",
            sane
        );
        let mut args = before;
        args.extend(forbidden.iter().cloned());
        if let Some(argument) = application {
            args.push("app.py".into());
            args.push(argument);
        }
        match spark::refuse_overrides(&os(&args), &spark::Rules::default()) {
            Ok(_) => prop_assert!(false, "{:?} was allowed in {:?}", forbidden, args),
            Err(failure) => prop_assert_eq!(failure.code, Code::DataErr, "{}", failure.message),
        }
    }

    #[test]
    fn denied_keys_from_the_config_are_refused_like_built_in_ones(
        key in select(&[
            "spark.kubernetes.driver.podTemplateFile",
            "spark.kubernetes.executor.volumes.hostPath.x.mount.path",
            "spark.jars",
        ][..]),
        before in select(PADDING),
        after in select(PADDING),
        syntax in 0..4u8,
    ) {
        let pair = format!("{before}{key}{after}=v");
        let args = match syntax {
            0 => vec!["--conf".to_string(), pair],
            1 => vec![format!("--conf={pair}")],
            2 => vec!["-c".into(), pair],
            _ => vec!["--driver-java-options".into(), format!("-D{key}=v")],
        };
        prop_assert!(spark::refuse_overrides(&os(&args), &spark::Rules::denying(&denied())).is_err(), "{:?} was allowed", args);
    }

    #[test]
    fn everything_after_the_application_file_belongs_to_the_application(
        harmless in vec(harmless_option(), 0..4),
        after in vec(any_argument(), 0..10),
    ) {
        let mut args = os(&harmless.concat());
        // A class outside Spark's own package keeps the usual rule.
        args.extend(os(&["--class".into(), "com.example.Main".into()]));
        args.push("app.jar".into());
        args.extend(after);
        if let Err(failure) = spark::refuse_overrides(&args, &spark::Rules::default()) {
            prop_assert!(false, "{:?} was refused: {}", args, failure.message);
        }
    }
}

/// Found by the property tests below: `--name=x` took the argument after it
/// as its value too, so that argument was never checked and
/// `--name=x --master k8s://evil app.py` passed (the policy called
/// `args.next()` even when the value was inline).
#[test]
fn an_inline_option_value_does_not_hide_the_next_argument() {
    for inline in [
        "--name=x",
        "--deploy-mode=cluster",
        "--conf=spark.app.name=x",
        "--jars=a.jar",
    ] {
        for hidden in [
            &["--master", "k8s://https://evil:6443"][..],
            &["--conf", "spark.kubernetes.namespace=kube-system"],
            &["--proxy-user", "root"],
            &["-c", "spark.kubernetes.authenticate.oauthTokenFile=/tmp/t"],
        ] {
            let mut args = vec![inline.to_string()];
            args.extend(hidden.iter().map(|s| s.to_string()));
            args.push("app.py".into());
            assert!(
                spark::refuse_overrides(&os(&args), &spark::Rules::default()).is_err(),
                "{args:?} was allowed: the argument after {inline} was not checked"
            );
        }
    }
}

// --- spark-submit's properties files ---------------------------------------

/// Text rich in what Java's properties syntax gives meaning to.
fn properties_text(max: usize) -> impl Strategy<Value = String> {
    const CHARS: &[char] = &[
        'a',
        'k',
        'u',
        '0',
        'F',
        '.',
        '=',
        ':',
        ' ',
        '\t',
        '\x0c',
        '\n',
        '\r',
        '\\',
        '#',
        '!',
        'é',
        '\u{1F600}',
        '\u{feff}',
        '\u{0}',
    ];
    vec(select(CHARS), 0..=max).prop_map(String::from_iter)
}

fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        properties_text(max),
        vec(any::<char>(), 0..=max).prop_map(String::from_iter),
    ]
}

fn properties_file_argument() -> spark::PropertiesFile {
    spark::refuse_overrides(
        &[OsString::from("--properties-file"), OsString::from("f")],
        &spark::Rules::default(),
    )
    .ok()
    .flatten()
    .expect("--properties-file f is found")
}

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn the_properties_parser_never_panics(
        text in properties_text(80),
        bytes in vec(any::<u8>(), 0..80),
    ) {
        for input in [text.as_bytes(), &bytes] {
            match spark::properties::parse(input) {
                Ok(settings) => {
                    for setting in settings {
                        prop_assert!(setting.line >= 1);
                    }
                }
                Err(malformed) => prop_assert!(malformed.line >= 1),
            }
        }
    }

    #[test]
    fn a_serialized_properties_file_reads_back_as_the_same_settings(
        settings in prop::collection::btree_map(any_text(12), any_text(16), 0..8)
    ) {
        let bytes = spark::properties::serialize(
            "heading \n# with\r\u{2028} line ends",
            settings.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        prop_assert!(bytes.is_ascii());
        let parsed = spark::properties::parse(&bytes).expect("kubesu's own output parses");
        let back: std::collections::BTreeMap<String, String> =
            parsed.into_iter().map(|p| (p.key, p.value)).collect();
        prop_assert_eq!(back, settings);
    }

    #[test]
    fn a_properties_file_with_a_forbidden_key_is_refused_however_it_is_written(
        before in prop::collection::btree_map("[a-z.]{1,12}", any_text(8), 0..4),
        forbidden in select(FORBIDDEN_KEYS),
        padding in select(PADDING),
        value in any_text(8),
    ) {
        let key = format!("{padding}{forbidden}");
        let bytes = spark::properties::serialize(
            "",
            before
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([(key.as_str(), value.as_str())]),
        );
        match spark::check_properties(&properties_file_argument(), &bytes, &spark::Rules::default()) {
            Ok(_) => prop_assert!(false, "{:?} was allowed", String::from_utf8_lossy(&bytes)),
            Err(failure) => prop_assert_eq!(failure.code, Code::DataErr, "{}", failure.message),
        }
    }

    #[test]
    fn the_checked_copy_holds_what_the_file_holds(text in properties_text(120)) {
        if let Ok(settings) = spark::properties::parse(text.as_bytes())
            && let Ok(checked) = spark::check_properties(
                &properties_file_argument(),
                text.as_bytes(),
                &spark::Rules::default(),
            )
        {
            let copy = spark::properties::parse(&checked.copy).expect("the copy parses");
            prop_assert_eq!(
                spark::properties::as_map(&copy),
                spark::properties::as_map(&settings)
            );
        }
    }
}

// --- the config file -------------------------------------------------------

const EXAMPLE: &str = include_str!("../examples/config.toml");

/// What any config Config::parse accepts must satisfy.
fn assert_sane(config: &Config, text: &str) {
    assert!(!config.callers.users.is_empty(), "{text}");
    assert!(!config.users.allowed_groups.is_empty(), "{text}");
    assert!(config.users.min_uid > 0, "{text}");
    assert!(
        config.commands.iter().all(|c| c.path.is_absolute()),
        "{text}"
    );
    assert!(config.cluster.kubeconfig.is_absolute(), "{text}");
    assert!(config.runtime.dir.is_absolute(), "{text}");
    assert!(config.cluster.token_ttl.as_secs() >= 600, "{text}");
    assert!(
        config.cluster.max_token_ttl >= config.cluster.token_ttl,
        "{text}"
    );
    let names = config
        .environment
        .keep
        .iter()
        .chain(config.environment.set.keys())
        .chain(config.commands.iter().flat_map(|c| c.env.keys()));
    for name in names {
        assert!(
            !kubesu::policy::environment::is_forbidden(name),
            "{name} accepted in {text}"
        );
    }
}

/// Parse, and check that what is accepted is sane and what is refused is
/// refused as a config error (a panic fails the test on its own).
fn parse(text: &str) -> Option<Config> {
    match Config::parse(text, Path::new("generated.toml")) {
        Ok(config) => {
            assert_sane(&config, text);
            Some(config)
        }
        Err(failure) => {
            assert!(
                matches!(failure.code, Code::Config | Code::DataErr | Code::Usage),
                "{:?}: {}",
                failure.code,
                failure.message
            );
            None
        }
    }
}

/// Values a line of the example may be changed to.
const VALUES: &[&str] = &[
    "\"\"",
    "0",
    "-1",
    "1",
    "[]",
    "[\"\"]",
    "{}",
    "true",
    "\"relative/path\"",
    "\"/abs\"",
    "\"5m\"",
    "\"1w\"",
    "\"99999999999999999999d\"",
    "\"{user}\"",
    "\"{team}-{user}\"",
    "\"{run}\"",
    "\"kube-system\"",
    "\"UPPER\"",
    "\"é\"",
    "\"a\\u0000b\"",
    "18446744073709551616",
    "[\"LD_PRELOAD\"]",
    "{ KUBECONFIG = \"/x\" }",
    "{ \"BASH_FUNC_x%%\" = \"y\" }",
    "[\"PATH\"]",
    "\"per-team\"",
    "\"fixed\"",
    "\"per-run\"",
    "\"nope\"",
    "1e400",
    "'''",
];

/// Sections a mutation may add at the end.
const EXTRA_SECTIONS: &[&str] = &[
    "[environment]\nkeep = [\"LD_PRELOAD\"]",
    "[[command]]\npath = \"bin/sh\"",
    "[[command]]\npath = \"/usr/bin/env\"\nenv = { KUBECONFIG = \"/tmp/x\" }",
    "[users]\nmin_uid = 0",
    "[unknown]\nx = 1",
    "[runtime]\ndir = \"run/kubesu\"",
];

/// One change to one line of the example.
#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Duplicate(usize),
    SetValue(usize, &'static str),
    Truncate(usize, usize),
    Insert(usize, String),
    Append(&'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = || 0..EXAMPLE.lines().count();
    prop_oneof![
        1 => line().prop_map(Mutation::Drop),
        1 => line().prop_map(Mutation::Duplicate),
        2 => (line(), select(VALUES)).prop_map(|(i, v)| Mutation::SetValue(i, v)),
        1 => (line(), 0..80usize).prop_map(|(i, at)| Mutation::Truncate(i, at)),
        1 => (line(), text(30)).prop_map(|(i, t)| Mutation::Insert(i, t.replace('\0', ""))),
        1 => select(EXTRA_SECTIONS).prop_map(Mutation::Append),
    ]
}

/// The example with the mutations applied in order.
fn mutated(mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = EXAMPLE.lines().map(String::from).collect();
    for mutation in mutations {
        let last = lines.len().saturating_sub(1);
        match mutation.clone() {
            Mutation::Drop(i) => {
                lines.remove(i.min(last));
            }
            Mutation::Duplicate(i) => {
                let copy = lines[i.min(last)].clone();
                lines.insert(i.min(last), copy);
            }
            Mutation::SetValue(i, value) => {
                let line = &mut lines[i.min(last)];
                if let Some((key, _)) = line.split_once(" = ") {
                    *line = format!("{key} = {value}");
                }
            }
            Mutation::Truncate(i, at) => {
                let line = &mut lines[i.min(last)];
                if at <= line.len() && line.is_char_boundary(at) {
                    line.truncate(at);
                }
            }
            Mutation::Insert(i, text) => lines.insert(i.min(last), text),
            Mutation::Append(section) => lines.push(section.into()),
        }
    }
    lines.join("\n")
}

#[test]
fn the_unmutated_example_is_accepted() {
    assert!(parse(&mutated(&[])).is_some());
}

/// The names kubesu never lets a config keep or set.
const FORBIDDEN_NAMES: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_FUNC_x%%",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBESU_RUN_ID",
    "SPARK_CONF_DIR",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PATH",
    "HOME",
    "IFS",
    "ENV",
    "BASH_ENV",
];

proptest! {
    #![proptest_config(cases(1_000))]

    #[test]
    fn the_config_parser_never_panics_and_what_it_accepts_is_sane(
        mutations in vec(mutation(), 1..=4)
    ) {
        parse(&mutated(&mutations));
    }

    #[test]
    fn the_config_parser_never_panics_on_garbage(garbage in bytes(200), text in text(200)) {
        parse(&String::from_utf8_lossy(&garbage.into_vec()));
        parse(&text);
    }

    #[test]
    fn forbidden_environment_names_are_refused_in_every_config_list(
        name in select(FORBIDDEN_NAMES),
        list in 0..3u8,
    ) {
        let text = match list {
            0 => EXAMPLE.replace(
                "keep = [\"JAVA_HOME\", \"PYSPARK_PYTHON\", \"PLATFORM_JOB_ID\"]",
                &format!("keep = [\"JAVA_HOME\", \"{name}\"]"),
            ),
            1 => EXAMPLE.replace("set = {}", &format!("set = {{ \"{name}\" = \"x\" }}")),
            _ => EXAMPLE.replace(
                "env = { SPARK_HOME",
                &format!("env = {{ \"{name}\" = \"x\", SPARK_HOME"),
            ),
        };
        prop_assert_ne!(text.as_str(), EXAMPLE, "the example changed: update this test");
        let err = Config::parse(&text, Path::new("c.toml")).expect_err(name);
        prop_assert_eq!(err.code, Code::Config, "{}", err.message);
    }
}

// --- names -----------------------------------------------------------------

fn is_dns_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1])
        && s.bytes().all(|b| alnum(b) || b == b'-')
}

/// A name and the same name with one small change: where a mapping that
/// is not injective shows it.
fn near_pair(chars: &'static [char], max: usize) -> impl Strategy<Value = (String, String)> {
    (
        vec(select(chars), 1..=max).prop_map(String::from_iter),
        any::<prop::sample::Index>(),
        select(&['_', '.', 'A', '-', 'é', 'a', '0'][..]),
        0..3u8,
    )
        .prop_map(|(name, at, c, edit)| {
            let mut other: Vec<char> = name.chars().collect();
            let i = at.index(other.len());
            match edit {
                0 => other[i] = c,
                1 => other.insert(i, c),
                _ => {
                    other.remove(i);
                }
            }
            (name, other.into_iter().collect())
        })
}

/// A user name in the conservative pattern's alphabet, often valid.
fn user() -> impl Strategy<Value = String> {
    (
        select(&["a", "b", "_"][..]),
        vec(select(&['a', 'b', '_', '-', '0'][..]), 0..32),
    )
        .prop_map(|(first, rest)| format!("{first}{}", String::from_iter(rest)))
}

proptest! {
    #![proptest_config(cases(5_000))]

    #[test]
    fn dns_labels_are_always_valid(raw in prop_oneof![
        text(90),
        bytes(90).prop_map(|b| String::from_utf8_lossy(&b.into_vec()).into_owned()),
        text(60).prop_map(|t| format!("kubesu-{t}")),
    ]) {
        let label = naming::dns_label(&raw);
        prop_assert!(is_dns_label(&label), "{:?} -> {:?}", raw, label);
    }

    #[test]
    fn near_names_never_share_a_dns_label(
        (a, b) in prop_oneof![near_pair(&['a', 'b', '-', '0'], 70), (text(40), text(40))]
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(naming::dns_label(&a), naming::dns_label(&b), "{:?} and {:?}", a, b);
    }

    /// Names check_account_name accepts follow ^[a-z_][a-z0-9_-]{0,31}$.
    #[test]
    fn account_names_are_accepted_only_in_the_conservative_pattern(
        name in vec(
            select(&['a', 'z', '_', '-', '0', '9', 'A', '.', '#', ' ', 'é', '$', '/'][..]),
            0..40,
        ).prop_map(String::from_iter)
    ) {
        let accepted = naming::check_account_name("user", &name).is_ok();
        let bytes = name.as_bytes();
        let pattern = !bytes.is_empty()
            && bytes.len() <= 32
            && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        prop_assert_eq!(accepted, pattern, "{:?}", name);
        if accepted {
            prop_assert!(!name.bytes().all(|b| b.is_ascii_digit()), "{:?}", name);
        }
    }

    #[test]
    fn namespaces_and_service_accounts_are_labels_and_users_never_share_one(
        template in select(&[
            "kubesu-{user}",
            "{user}",
            "spark-{user}-ns",
            "u.{user}",
            "{user}-{user}",
        ][..]),
        a in user(),
        b in user(),
    ) {
        let run = RunId::parse("abcdefgh234567ab").expect("run id");
        let mut namespaces = Vec::new();
        for user in [&a, &b] {
            let Ok(namespace) = naming::namespace(Policy::PerUser, template, user, None, &run)
            else {
                prop_assert!(naming::check_account_name("user", user).is_err(), "{}", user);
                continue;
            };
            prop_assert!(is_dns_label(&namespace), "{} {:?} -> {:?}", template, user, namespace);
            namespaces.push(namespace);
            let account = naming::service_account(user, &run);
            prop_assert!(is_dns_label(&account), "{:?} -> {:?}", user, account);
            prop_assert!(account.ends_with(run.as_str()), "{}", account);
        }
        if a != b && namespaces.len() == 2 {
            prop_assert_ne!(&namespaces[0], &namespaces[1], "{}: {:?} and {:?}", template, a, b);
        }
    }
}
