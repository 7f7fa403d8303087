//! spark-submit's options, as its own parser (`SparkSubmitOptionParser`)
//! knows them, and how kubesu treats each.

/// How spark-submit treats one of its options.
#[derive(Clone, Copy)]
pub enum OptionKind {
    /// `--conf key=value` and its alias `-c`.
    Conf,
    /// An option with a value that is shorthand for a configuration key, so
    /// the same rules apply as to `--conf key=value`.
    Sets(&'static str),
    /// `--class`: some classes make spark-submit keep parsing its own options
    /// after the application.
    Class,
    /// `--properties-file`: kubesu reads the file as the user, checks each
    /// setting in it and passes a checked copy instead.
    PropertiesFile,
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
const OPTIONS: &[(&str, OptionKind)] = &[
    ("--conf", OptionKind::Conf),
    ("-c", OptionKind::Conf),
    ("--class", OptionKind::Class),
    ("--master", OptionKind::Sets("spark.master")),
    ("--remote", OptionKind::Sets("spark.remote")),
    ("--deploy-mode", OptionKind::Sets("spark.submit.deployMode")),
    ("--name", OptionKind::Sets("spark.app.name")),
    ("--jars", OptionKind::Sets("spark.jars")),
    ("--packages", OptionKind::Sets("spark.jars.packages")),
    (
        "--exclude-packages",
        OptionKind::Sets("spark.jars.excludes"),
    ),
    (
        "--repositories",
        OptionKind::Sets("spark.jars.repositories"),
    ),
    ("--py-files", OptionKind::Sets("spark.submit.pyFiles")),
    ("--files", OptionKind::Sets("spark.files")),
    ("--archives", OptionKind::Sets("spark.archives")),
    ("--driver-memory", OptionKind::Sets("spark.driver.memory")),
    (
        "--driver-java-options",
        OptionKind::Sets("spark.driver.extraJavaOptions"),
    ),
    (
        "--driver-library-path",
        OptionKind::Sets("spark.driver.extraLibraryPath"),
    ),
    (
        "--driver-class-path",
        OptionKind::Sets("spark.driver.extraClassPath"),
    ),
    ("--driver-cores", OptionKind::Sets("spark.driver.cores")),
    (
        "--executor-memory",
        OptionKind::Sets("spark.executor.memory"),
    ),
    ("--executor-cores", OptionKind::Sets("spark.executor.cores")),
    (
        "--total-executor-cores",
        OptionKind::Sets("spark.cores.max"),
    ),
    (
        "--num-executors",
        OptionKind::Sets("spark.executor.instances"),
    ),
    ("--queue", OptionKind::Sets("spark.yarn.queue")),
    ("--principal", OptionKind::Sets("spark.kerberos.principal")),
    ("--keytab", OptionKind::Sets("spark.kerberos.keytab")),
    (
        "--proxy-user",
        OptionKind::Refused {
            why: "the run already belongs to you and may not impersonate another user",
            todo: "remove it",
        },
    ),
    (
        "--kill",
        OptionKind::Refused {
            why: "it acts on another submission by id, outside this run",
            todo: "remove it, and manage earlier runs with kubectl in your namespace",
        },
    ),
    (
        "--status",
        OptionKind::Refused {
            why: "it acts on another submission by id, outside this run",
            todo: "remove it, and inspect earlier runs with kubectl in your namespace",
        },
    ),
    ("--properties-file", OptionKind::PropertiesFile),
    ("--help", OptionKind::Switch),
    ("-h", OptionKind::Switch),
    ("--verbose", OptionKind::Switch),
    ("-v", OptionKind::Switch),
    ("--version", OptionKind::Switch),
    ("--supervise", OptionKind::Switch),
    ("--usage-error", OptionKind::Switch),
    ("--load-spark-defaults", OptionKind::Switch),
];

/// Split `--name=value` as spark-submit does (only long options, at the first
/// '='). Unlike spark-submit, an empty value still counts as one, so that
/// `--master=` is refused rather than passed on for Spark to judge.
pub fn split_inline(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((name, value)) if name.len() > 2 && name.starts_with("--") => (name, Some(value)),
        _ => (arg, None),
    }
}

pub fn option_kind(name: &str) -> Option<OptionKind> {
    OPTIONS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, kind)| kind)
}
