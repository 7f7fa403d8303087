//! The spark-submit policy on the arguments users actually write, on the
//! tricks that would smuggle a setting past it, and on the forced settings.

use super::*;
use crate::failure::Code;
use crate::policy::labels::app_id;
use std::os::unix::ffi::OsStringExt;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn refused_with(args: &[OsString], denied: &[&str]) -> String {
    let denied: Vec<String> = denied.iter().map(|d| d.to_string()).collect();
    refused_by(args, &Rules::denying(&denied))
}

fn refused_by(args: &[OsString], rules: &Rules<'_>) -> String {
    match refuse_overrides(args, rules) {
        Ok(_) => panic!("{args:?} was allowed"),
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
    if let Err(failure) = refuse_overrides(&os(args), &Rules::denying(&denied)) {
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
        admin: admin(),
    }
}

/// What an administrator might force: the default, and a pod template.
fn admin() -> Vec<AdminSetting> {
    vec![
        AdminSetting {
            key: "spark.authenticate".into(),
            value: "true".into(),
            source: "[spark] force",
        },
        AdminSetting {
            key: DRIVER_POD_TEMPLATE.into(),
            value: "/etc/kubesu/spark-driver-template.yaml".into(),
            source: "[spark] driver_pod_template",
        },
    ]
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
    "spark.kubernetes.driver.service.label.kubesu.io/run",
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
    let forced = forced();
    let rules = Rules {
        forced: &forced.admin,
        denied: &[],
    };
    let forced_args = forced_args(&forced);
    for pair in forced_args.iter().skip(3).step_by(2) {
        let pair = pair.to_string_lossy();
        let message = refused_by(&os(&["--conf", &pair]), &rules);
        assert!(message.contains(pair.as_ref()), "{message}");
    }
}

#[test]
fn refuses_what_the_administrator_forces_in_every_way_a_key_is_set() {
    let admin = admin();
    let rules = Rules {
        forced: &admin,
        denied: &[],
    };
    for args in [
        vec!["--conf", "spark.authenticate=false"],
        vec!["--conf= spark.authenticate =false"],
        vec![
            "-c",
            "spark.kubernetes.driver.podTemplateFile=/tmp/mine.yaml",
        ],
        vec!["--driver-java-options", "-Dspark.authenticate=false"],
        vec![
            "--conf",
            "spark.executor.extraJavaOptions=-Dspark.kubernetes.driver.podTemplateFile=x",
        ],
    ] {
        let message = refused_by(&os(&args), &rules);
        assert!(
            message.contains("the administrator forces it for every run"),
            "{message}"
        );
        assert!(message.contains("[spark] "), "{message}");
    }
    // Without the administrator's rules, the same settings pass.
    allowed(&["--conf", "spark.authenticate=false"]);
    // A key beside a forced one is not forced.
    refuse_overrides(&os(&["--conf", "spark.authenticate.secret=s"]), &rules)
        .expect("only the forced key is refused");
}

#[test]
fn the_administrator_may_not_force_what_kubesu_sets() {
    for (key, value) in [
        ("spark.master", "local"),
        ("spark.kubernetes.namespace", "x"),
        ("spark.kubernetes.context", "x"),
        (
            "spark.kubernetes.authenticate.driver.serviceAccountName",
            "x",
        ),
        ("spark.app.id", "x"),
        ("spark.kubernetes.driver.label.kubesu.io/run", "x"),
        (" spark.master ", "x"),
        ("spark.kubernetes.submission.waitAppCompletion", "false"),
        (
            "spark.driver.extraJavaOptions",
            "-Dspark.kubernetes.namespace=x",
        ),
    ] {
        let why = refuse_forced(key, value).unwrap_or_else(|| panic!("{key} may be forced"));
        assert!(why.starts_with("[spark] force may not set"), "{why}");
        assert!(why.contains("remove it from [spark] force"), "{why}");
    }
    for (key, field) in [
        (DRIVER_POD_TEMPLATE, "driver_pod_template"),
        (EXECUTOR_POD_TEMPLATE, "executor_pod_template"),
    ] {
        let why = refuse_forced(key, "/etc/kubesu/t.yaml").expect("a template key is refused");
        assert!(why.contains(&format!("set [spark] {field} = ")), "{why}");
    }
    for (key, value) in [
        ("spark.authenticate", "true"),
        ("spark.io.encryption.enabled", "true"),
        ("spark.kubernetes.driver.label.team", "data"),
    ] {
        assert_eq!(refuse_forced(key, value), None, "{key}");
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
        refused(&["-c", "spark.kubernetes.authenticate.oauthToken=t"]).contains(CREDENTIALS_REASON)
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
fn refuses_proxy_user_kill_and_status() {
    for (args, shown) in [
        (vec!["--proxy-user", "root"], "--proxy-user root"),
        (vec!["--proxy-user=root"], "--proxy-user=root"),
        (vec!["--proxy-user="], "--proxy-user="),
        (vec!["--kill", "ns:driver-1"], "--kill ns:driver-1"),
        (vec!["--kill=ns:driver-1"], "--kill=ns:driver-1"),
        (vec!["--status", "ns:driver-1"], "--status ns:driver-1"),
        (vec!["--status=x"], "--status=x"),
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
    assert!(refuse_overrides(&fine, &Rules::default()).is_ok());
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
        "--conf",
        "spark.kubernetes.driver.service.label.kubesu.io/run=abc123",
        "--conf",
        "spark.kubernetes.driver.pod.excludedFeatureSteps=\
         org.apache.spark.deploy.k8s.features.NetworkPolicyFeatureStep",
    ]);
    let mut expected = expected;
    expected.extend(os(&[
        "--conf",
        "spark.authenticate=true",
        "--conf",
        "spark.kubernetes.driver.podTemplateFile=/etc/kubesu/spark-driver-template.yaml",
    ]));
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

fn properties_file(args: &[&str]) -> PropertiesFile {
    refuse_overrides(&os(args), &Rules::default())
        .unwrap_or_else(|f| panic!("{args:?}: {}", f.message))
        .unwrap_or_else(|| panic!("{args:?} names no properties file"))
}

#[test]
fn finds_the_properties_file_in_either_syntax_and_replaces_it_with_the_copy() {
    let copy = std::path::Path::new("/run/kubesu/abc/spark.properties");
    for (args, expected) in [
        (
            vec!["--properties-file", "my.conf", "app.py", "x"],
            vec![
                "--properties-file",
                "/run/kubesu/abc/spark.properties",
                "app.py",
                "x",
            ],
        ),
        (
            vec!["-v", "--properties-file=my.conf", "app.py"],
            vec![
                "-v",
                "--properties-file=/run/kubesu/abc/spark.properties",
                "app.py",
            ],
        ),
    ] {
        let file = properties_file(&args);
        assert_eq!(file.path, "my.conf");
        assert_eq!(with_properties_copy(&os(&args), &file, copy), os(&expected));
    }
    // After the application it is the application's.
    assert_eq!(
        refuse_overrides(
            &os(&["app.py", "--properties-file", "x"]),
            &Rules::default()
        )
        .expect("allowed"),
        None
    );
}

#[test]
fn a_properties_file_must_be_named_once() {
    for args in [
        vec!["--properties-file="],
        vec!["--properties-file", ""],
        vec!["--properties-file"],
        vec!["--properties-file", "a", "--properties-file=b"],
    ] {
        refused(&args);
    }
}

fn check_file(text: &str, rules: &Rules<'_>) -> Result<CheckedProperties> {
    check_properties(
        &properties_file(&["--properties-file", "my.conf"]),
        text.as_bytes(),
        rules,
    )
}

#[test]
fn a_properties_file_with_a_refused_setting_is_refused_whole_naming_file_key_and_line() {
    let admin = admin();
    let denied = vec!["spark.jars".to_string()];
    let rules = Rules {
        forced: &admin,
        denied: &denied,
    };
    for (text, key, line) in [
        ("spark.app.name=x\nspark.master=local\n", "spark.master", 2),
        (
            "# c\n\nspark.kubernetes.names\\\n  pace=x",
            "spark.kubernetes.namespace",
            3,
        ),
        (
            "spark.kubernetes.n\\u0061mespace x",
            "spark.kubernetes.namespace",
            1,
        ),
        ("a=1\r\nspark.authenticate : false", "spark.authenticate", 2),
        ("spark.jars=evil.jar", "spark.jars", 1),
        (
            "spark.kubernetes.submission.waitAppCompletion=false",
            "waitAppCompletion",
            1,
        ),
        (
            "spark.driver.extraJavaOptions=-Dspark.master=local",
            "spark.driver.extraJavaOptions",
            1,
        ),
        (
            "spark.driver.extraJavaOptions=@/tmp/opts",
            "spark.driver.extraJavaOptions",
            1,
        ),
    ] {
        let failure = check_file(text, &rules).expect_err(text);
        assert_eq!(failure.code, Code::DataErr, "{}", failure.message);
        let message = failure.message;
        assert!(
            message.starts_with("spark-submit properties file \"my.conf\" is refused: "),
            "{message}"
        );
        assert!(
            message.contains(&format!("line {line} sets \"")),
            "{message}"
        );
        assert!(message.contains(key), "{message}");
        assert!(
            message.contains("kubesu refuses the whole file"),
            "{message}"
        );
    }
    let failure = check_file("a=\\u00", &rules).expect_err("malformed");
    assert!(
        failure.message.contains("line 1: malformed"),
        "{}",
        failure.message
    );
}

#[test]
fn the_checked_copy_holds_exactly_the_settings_java_reads_from_the_file() {
    let text = "spark.app.name = my\\u0041pp\nspark.executor.extraJavaOptions=-Da=b \\\n   -Dc=d\n\
                spark.app.name=second\n! comment\nspark.k\\ ey\\=x\\:y=1\n";
    let checked = check_file(text, &Rules::default()).expect("allowed");
    let copy = properties::parse(&checked.copy).expect("the copy parses");
    let pairs: Vec<(&str, &str)> = copy
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("spark.app.name", "second"),
            ("spark.executor.extraJavaOptions", "-Da=b -Dc=d"),
            ("spark.k ey=x:y", "1"),
        ]
    );
    assert!(checked.copy.is_ascii());
    assert!(
        checked
            .copy
            .starts_with(b"# The settings of my.conf, checked by kubesu")
    );
}
