//! Property tests (issue 6; cargo-fuzz needs nightly): the spark-submit
//! argument policy, the config parser and the naming functions on many
//! generated inputs. A small deterministic generator keeps every run the same
//! and needs no crate; KUBESU_PROPERTY_CASES scales the number of cases
//! (e.g. 1000000 for a long local run), KUBESU_PROPERTY_SEED changes the seed.
//! No root, no cluster: these run anywhere in a few seconds.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use kubesu::failure::Code;
use kubesu::policy::config::Config;
use kubesu::policy::identity::RunId;
use kubesu::policy::naming::{self, Policy};
use kubesu::policy::spark;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Self {
        let seed = std::env::var("KUBESU_PROPERTY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
        Rng((seed ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn cases(default: usize) -> usize {
    std::env::var("KUBESU_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
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

/// Options that set a forbidden key by themselves.
const FORBIDDEN_OPTIONS: &[&str] = &[
    "--master",
    "--proxy-user",
    "--properties-file",
    "--kill",
    "--status",
];

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
fn harmless_option(rng: &mut Rng) -> Vec<String> {
    match rng.below(9) {
        0 => vec!["--conf".into(), (*rng.pick(HARMLESS_CONFS)).into()],
        1 => vec![format!("--conf={}", rng.pick(HARMLESS_CONFS))],
        2 => vec!["-c".into(), (*rng.pick(HARMLESS_CONFS)).into()],
        3 => vec![(*rng.pick(&["-v", "--verbose", "--supervise"])).into()],
        4 => vec![
            "--deploy-mode".into(),
            (*rng.pick(&["cluster", "client"])).into(),
        ],
        5 => vec!["--name".into(), random_text(rng, 12)],
        6 => vec![format!("--executor-memory={}g", rng.below(64))],
        7 => vec!["--class".into(), "com.example.Main".into()],
        _ => vec!["--jars".into(), "a.jar,b.jar".into()],
    }
}

/// Java's String.trim and Unicode whitespace, which kubesu also trims.
const PADDING: &[&str] = &["", "", "", " ", "\t", "  ", "\u{a0}", "\u{2003}", "\n"];

/// A forbidden setting in one of the syntaxes Spark reads, as arguments.
fn forbidden_setting(rng: &mut Rng) -> Vec<String> {
    let key = format!(
        "{}{}{}",
        rng.pick(PADDING),
        rng.pick(FORBIDDEN_KEYS),
        rng.pick(PADDING)
    );
    let key = if key.contains("kubesu.io") || key.contains("KUBESU") || key.contains("Kubesu") {
        key
    } else if rng.chance(20) && key.trim().ends_with("authenticate") {
        format!("{key}.{}", random_text(rng, 8).replace(['=', ' '], ""))
    } else {
        key
    };
    let value = random_text(rng, 10).replace('\0', "");
    let pair = format!("{key}={value}");
    let java_key = *rng.pick(&[
        "spark.driver.extraJavaOptions",
        "spark.executor.extraJavaOptions",
        "spark.driver.defaultJavaOptions",
        "spark.kubernetes.driverEnv.JAVA_TOOL_OPTIONS",
        "spark.executorEnv._JAVA_OPTIONS",
    ]);
    let flag = format!(
        "-Xmx1g -D{}={}",
        key.trim(),
        value.replace(char::is_whitespace, "")
    );
    match rng.below(8) {
        0 => vec!["--conf".into(), pair],
        1 => vec![format!("--conf={pair}")],
        2 => vec!["-c".into(), pair],
        3 => {
            let option = *rng.pick(FORBIDDEN_OPTIONS);
            if rng.chance(50) {
                vec![option.into(), value]
            } else {
                vec![format!("{option}={value}")]
            }
        }
        4 => vec!["--driver-java-options".into(), flag],
        5 => vec![format!("--driver-java-options={flag}")],
        6 => vec!["--conf".into(), format!("{java_key}={flag}")],
        _ => vec!["-c".into(), format!("{java_key}='{flag}'")],
    }
}

/// Anything, including control characters, non-ASCII and quotes.
fn random_text(rng: &mut Rng, max: usize) -> String {
    const CHARS: &[char] = &[
        'a', 'z', 'A', '0', '9', '.', '-', '_', '=', ' ', '\t', '\n', '"', '\'', '\\', '/', '@',
        '*', '$', 'é', '\u{202e}', '\u{feff}', '\u{fffd}', '\u{1b}', '\u{0}', '-', '-', 'D',
    ];
    let len = rng.below(max + 1);
    (0..len).map(|_| *rng.pick(CHARS)).collect()
}

/// Arbitrary bytes (NUL-free: argv cannot carry NUL), often not UTF-8.
fn random_bytes(rng: &mut Rng, max: usize) -> OsString {
    let len = rng.below(max + 1);
    OsString::from_vec((0..len).map(|_| (rng.below(255) + 1) as u8).collect())
}

/// An argument from spark-submit's vocabulary, or noise.
fn any_argument(rng: &mut Rng) -> OsString {
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
    match rng.below(4) {
        0 => random_bytes(rng, 24),
        1 => OsString::from(random_text(rng, 24)),
        _ => {
            let word = *rng.pick(WORDS);
            if rng.chance(20) {
                OsString::from(format!("{word}{}", random_text(rng, 6)))
            } else {
                OsString::from(word)
            }
        }
    }
}

fn os(args: &[String]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn spark_check_never_panics_and_only_refuses_as_data_errors() {
    let mut rng = Rng::new(1);
    let denied = vec![
        "spark.kubernetes.driver.podTemplateFile".to_string(),
        "spark.kubernetes.executor.volumes.".into(),
        "spark.jars*".into(),
    ];
    for _ in 0..cases(20_000) {
        let len = rng.below(12);
        let args: Vec<OsString> = (0..len).map(|_| any_argument(&mut rng)).collect();
        let result = std::panic::catch_unwind(|| spark::check(&args, &denied));
        match result {
            Err(_) => panic!("spark::check panicked on {args:?}"),
            Ok(Ok(())) => {}
            Ok(Err(failure)) => {
                assert_eq!(failure.code, Code::DataErr, "{args:?}: {}", failure.message);
                assert!(
                    failure.message.starts_with("spark-submit argument \""),
                    "{}",
                    failure.message
                );
                assert!(
                    !failure.message.contains('\n') && !failure.message.contains('\u{1b}'),
                    "the message carries raw control characters: {:?}",
                    failure.message
                );
                assert!(
                    failure.message.chars().count() < 1000,
                    "{}",
                    failure.message
                );
            }
        }
    }
}

/// Found by the property tests below: `--name=x` took the argument after it
/// as its value too, so that argument was never checked and
/// `--name=x --master k8s://evil app.py` passed (src/spark.rs `check` calls
/// `args.next()` even when the value is inline).
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
                spark::check(&os(&args), &[]).is_err(),
                "{args:?} was allowed: the argument after {inline} was not checked"
            );
        }
    }
}

#[test]
fn forbidden_settings_are_refused_in_every_syntax_and_position() {
    let mut rng = Rng::new(2);
    for _ in 0..cases(20_000) {
        let mut before: Vec<String> = Vec::new();
        for _ in 0..rng.below(5) {
            before.extend(harmless_option(&mut rng));
        }
        // With a class of Spark's own, options keep being parsed after the
        // application: put the forbidden one after it.
        let mixed = rng.chance(20);
        if mixed {
            before.extend(["--class".into(), "org.apache.spark.repl.Main".into()]);
            before.push(random_text(&mut rng, 6).replace('-', "x") + "x");
        }
        let sanity = {
            let mut args = before.clone();
            if !mixed {
                args.push("app.py".into());
            }
            args
        };
        assert!(
            spark::check(&os(&sanity), &[]).is_ok(),
            "the generator made a refused prefix: {sanity:?}"
        );
        let forbidden = forbidden_setting(&mut rng);
        let mut args = before;
        args.extend(forbidden.iter().cloned());
        if rng.chance(50) {
            args.push("app.py".into());
            args.push(random_text(&mut rng, 8));
        }
        match spark::check(&os(&args), &[]) {
            Ok(()) => panic!("{forbidden:?} was allowed in {args:?}"),
            Err(failure) => assert_eq!(failure.code, Code::DataErr, "{}", failure.message),
        }
    }
}

#[test]
fn denied_keys_from_the_config_are_refused_like_built_in_ones() {
    let mut rng = Rng::new(3);
    let keys = [
        "spark.kubernetes.driver.podTemplateFile",
        "spark.kubernetes.executor.volumes.hostPath.x.mount.path",
        "spark.jars",
    ];
    let denied = vec![
        "spark.kubernetes.driver.podTemplateFile".to_string(),
        "spark.kubernetes.executor.volumes.".into(),
        "spark.jars*".into(),
    ];
    for _ in 0..cases(5_000) {
        let key = *rng.pick(&keys);
        let pair = format!("{}{key}{}=v", rng.pick(PADDING), rng.pick(PADDING));
        let args = match rng.below(4) {
            0 => vec!["--conf".to_string(), pair],
            1 => vec![format!("--conf={pair}")],
            2 => vec!["-c".into(), pair],
            _ => vec!["--driver-java-options".into(), format!("-D{key}=v")],
        };
        assert!(
            spark::check(&os(&args), &denied).is_err(),
            "{args:?} was allowed"
        );
    }
}

#[test]
fn everything_after_the_application_file_belongs_to_the_application() {
    let mut rng = Rng::new(4);
    for _ in 0..cases(10_000) {
        let mut args: Vec<OsString> = Vec::new();
        for _ in 0..rng.below(4) {
            args.extend(os(&harmless_option(&mut rng)));
        }
        // A class outside Spark's own package keeps the usual rule.
        args.extend(os(&["--class".into(), "com.example.Main".into()]));
        args.push("app.jar".into());
        for _ in 0..rng.below(10) {
            args.push(any_argument(&mut rng));
        }
        if let Err(failure) = spark::check(&args, &[]) {
            panic!("{args:?} was refused: {}", failure.message);
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

fn parse(text: &str) -> Option<Config> {
    let result = std::panic::catch_unwind(|| Config::parse(text, Path::new("generated.toml")));
    match result {
        Err(_) => panic!("Config::parse panicked on:\n{text}"),
        Ok(Ok(config)) => {
            assert_sane(&config, text);
            Some(config)
        }
        Ok(Err(failure)) => {
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

/// The example with a few lines changed, dropped, duplicated or broken.
fn mutate(rng: &mut Rng) -> String {
    let mut lines: Vec<String> = EXAMPLE.lines().map(String::from).collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            2 | 3 => {
                if let Some((key, _)) = lines[i].split_once(" = ") {
                    lines[i] = format!("{key} = {}", rng.pick(VALUES));
                }
            }
            4 => {
                let cut = rng.below(lines[i].len() + 1);
                if lines[i].is_char_boundary(cut) {
                    lines[i].truncate(cut);
                }
            }
            5 => lines.insert(i, random_text(rng, 30).replace('\0', "")),
            _ => {
                let extra = [
                    "[environment]\nkeep = [\"LD_PRELOAD\"]",
                    "[[command]]\npath = \"bin/sh\"",
                    "[[command]]\npath = \"/usr/bin/env\"\nenv = { KUBECONFIG = \"/tmp/x\" }",
                    "[users]\nmin_uid = 0",
                    "[unknown]\nx = 1",
                    "[runtime]\ndir = \"run/kubesu\"",
                ];
                lines.push((*rng.pick(&extra)).into());
            }
        }
    }
    lines.join("\n")
}

#[test]
fn the_config_parser_never_panics_and_what_it_accepts_is_sane() {
    let mut rng = Rng::new(5);
    let mut accepted = 0;
    let total = cases(3_000);
    for _ in 0..total {
        if parse(&mutate(&mut rng)).is_some() {
            accepted += 1;
        }
    }
    // Plain garbage, too.
    for _ in 0..total {
        let bytes = random_bytes(&mut rng, 200).into_vec();
        parse(&String::from_utf8_lossy(&bytes));
        parse(&random_text(&mut rng, 200));
    }
    assert!(
        accepted > 0 && accepted < total,
        "{accepted} of {total} accepted"
    );
}

#[test]
fn forbidden_environment_names_are_refused_in_every_config_list() {
    let mut rng = Rng::new(6);
    let names = [
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
    for _ in 0..cases(2_000) {
        let name = *rng.pick(&names);
        let text = match rng.below(3) {
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
        assert_ne!(text, EXAMPLE, "the example changed: update this test");
        let err = Config::parse(&text, Path::new("c.toml")).expect_err(name);
        assert_eq!(err.code, Code::Config, "{}", err.message);
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

#[test]
fn dns_labels_are_always_valid_and_injective_on_the_sample() {
    let mut rng = Rng::new(7);
    let mut seen: HashMap<String, String> = HashMap::new();
    for _ in 0..cases(30_000) {
        let raw = match rng.below(4) {
            0 => random_text(&mut rng, 90),
            1 => String::from_utf8_lossy(&random_bytes(&mut rng, 90).into_vec()).into_owned(),
            // Near-collisions: valid names with one change.
            2 => {
                let mut name: String = (0..1 + rng.below(70))
                    .map(|_| *rng.pick(&['a', 'b', '-', '0']))
                    .collect();
                if rng.chance(50) {
                    name.push(*rng.pick(&['_', '.', 'A', '-', 'é']));
                }
                name
            }
            _ => format!("kubesu-{}", random_text(&mut rng, 60)),
        };
        let label = naming::dns_label(&raw);
        assert!(is_dns_label(&label), "{raw:?} -> {label:?}");
        if let Some(other) = seen.insert(label.clone(), raw.clone()) {
            assert_eq!(other, raw, "both map to {label:?}");
        }
    }
}

/// Names check_account_name accepts follow ^[a-z_][a-z0-9_-]{0,31}$.
#[test]
fn account_names_are_accepted_only_in_the_conservative_pattern() {
    let mut rng = Rng::new(8);
    const CHARS: &[char] = &[
        'a', 'z', '_', '-', '0', '9', 'A', '.', '#', ' ', 'é', '$', '/',
    ];
    for _ in 0..cases(30_000) {
        let name: String = (0..rng.below(40)).map(|_| *rng.pick(CHARS)).collect();
        let accepted = naming::check_account_name("user", &name).is_ok();
        let bytes = name.as_bytes();
        let pattern = !bytes.is_empty()
            && bytes.len() <= 32
            && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        assert_eq!(accepted, pattern, "{name:?}");
        if accepted {
            assert!(!name.bytes().all(|b| b.is_ascii_digit()), "{name:?}");
        }
    }
}

#[test]
fn namespaces_and_service_accounts_are_labels_and_users_never_share_one() {
    let mut rng = Rng::new(9);
    let run = RunId::parse("abcdefgh234567ab").expect("run id");
    let templates = [
        "kubesu-{user}",
        "{user}",
        "spark-{user}-ns",
        "u.{user}",
        "{user}-{user}",
    ];
    const CHARS: &[char] = &['a', 'b', '_', '-', '0'];
    for template in templates {
        let mut seen: HashMap<String, String> = HashMap::new();
        for _ in 0..cases(5_000) {
            let mut user = String::from(*rng.pick(&["a", "b", "_"]));
            for _ in 0..rng.below(32) {
                user.push(*rng.pick(CHARS));
            }
            let Ok(namespace) = naming::namespace(Policy::PerUser, template, &user, None, &run)
            else {
                assert!(naming::check_account_name("user", &user).is_err(), "{user}");
                continue;
            };
            assert!(
                is_dns_label(&namespace),
                "{template} {user:?} -> {namespace:?}"
            );
            if let Some(other) = seen.insert(namespace.clone(), user.clone()) {
                assert_eq!(other, user, "{template}: both get {namespace:?}");
            }
            let account = naming::service_account(&user, &run);
            assert!(is_dns_label(&account), "{user:?} -> {account:?}");
            assert!(account.ends_with(run.as_str()), "{account}");
        }
    }
}
