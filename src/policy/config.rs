//! The configuration file: who may call, for whom, which commands, which
//! namespace, and where kubesu's own credentials are. It decides what a sudo
//! caller may do, so it is read only from a root-owned file that nobody else
//! can write, through a path nobody else can redirect.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::failure::{Code, Context, Failure, Result};
use crate::policy::naming::Policy;
use crate::policy::tenancy::{self, Limits, Objects, PodSecurity, Resources};
use crate::policy::{environment, spark};
use crate::sys::fs::{self, check_root_owned, check_trusted_path};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub callers: Callers,
    pub users: Users,
    pub cluster: Cluster,
    pub namespace: Namespace,
    #[serde(rename = "command", default)]
    pub commands: Vec<Command>,
    #[serde(default)]
    pub spark: Spark,
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub privileges: Privileges,
    #[serde(default)]
    pub audit: Audit,
    #[serde(default)]
    pub objects: Objects,
}

/// The service users allowed to call kubesu through sudo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callers {
    pub users: Vec<String>,
}

/// The end users kubesu may act for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// A user must belong to at least one of these groups.
    pub allowed_groups: Vec<String>,
    #[serde(default = "default_min_uid")]
    pub min_uid: u32,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// kubesu's own kubeconfig: powerful, root-only, never handed over.
    pub kubeconfig: PathBuf,
    /// The ClusterRole each run's ServiceAccount is bound to in its namespace.
    pub cluster_role: String,
    /// The API server URL written into the user's kubeconfig, when it differs
    /// from the one in kubesu's kubeconfig.
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default = "default_token_ttl", deserialize_with = "duration")]
    pub token_ttl: Duration,
    #[serde(default = "default_max_token_ttl", deserialize_with = "duration")]
    pub max_token_ttl: Duration,
    /// While the command runs, kubesu renews the token this long before it
    /// expires (default: a third of its lifetime), rewriting the run's
    /// kubeconfig, which Spark and kubectl re-read.
    #[serde(default, deserialize_with = "optional_duration")]
    pub renew_before: Option<Duration>,
    /// Deadline of every single API call.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// How long revocation keeps retrying before it leaves the run to `gc`.
    #[serde(default = "default_revoke_timeout", deserialize_with = "duration")]
    pub revoke_timeout: Duration,
    /// The longest a run may last: then kubesu stops renewing, ends the
    /// command and revokes. None: as long as the command runs.
    #[serde(default, deserialize_with = "optional_duration")]
    pub max_run_time: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub policy: PolicyName,
    pub template: String,
    /// Namespaces kubesu did not create but may use (e.g. a shared one).
    #[serde(default)]
    pub adopt: Vec<String>,
    /// The groups `--team` may name: exact names, or prefixes ending in `*`
    /// ("team-*"). Any other group is refused, the user's private group and
    /// the allowed-users groups included: a team is one the administrator
    /// made.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Labels and annotations for namespaces kubesu creates.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Enforced on kubesu's namespaces (labels, re-applied at each run).
    #[serde(default)]
    pub pod_security: PodSecurity,
    /// A NetworkPolicy that lets into the namespace's pods only traffic from
    /// pods of the same namespace.
    #[serde(default)]
    pub isolate: bool,
    /// ResourceQuota `hard` limits of each namespace.
    #[serde(default)]
    pub quota: Option<Resources>,
    /// LimitRange defaults and maximum per container.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Apply all of the above to adopted namespaces too; by default kubesu
    /// never changes a namespace it did not create.
    #[serde(default)]
    pub manage_adopted: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    PerUser,
    PerTeam,
    Fixed,
    PerRun,
}

impl From<PolicyName> for Policy {
    fn from(p: PolicyName) -> Self {
        match p {
            PolicyName::PerUser => Policy::PerUser,
            PolicyName::PerTeam => Policy::PerTeam,
            PolicyName::Fixed => Policy::Fixed,
            PolicyName::PerRun => Policy::PerRun,
        }
    }
}

/// A command the caller may run. Matched by absolute path after resolution.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub path: PathBuf,
    /// A spark-submit: kubesu forces its master, namespace and credentials.
    #[serde(default)]
    pub spark_submit: bool,
    /// Extra variables for this command only (e.g. SPARK_HOME).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spark {
    /// Extra Spark settings users may not set; "prefix.*" for a prefix.
    #[serde(default)]
    pub deny_conf: Vec<String>,
    /// Settings passed on every spark-submit, after kubesu's own, which
    /// users may not set. Absent: spark.authenticate = "true"; present:
    /// exactly what it says.
    #[serde(default = "default_forced_spark", deserialize_with = "forced_spark")]
    pub force: BTreeMap<String, String>,
    /// Pod templates for every driver and executor: absolute paths of
    /// root-owned files (checked by `load`).
    #[serde(default, deserialize_with = "pod_template")]
    pub driver_pod_template: Option<PathBuf>,
    #[serde(default, deserialize_with = "pod_template")]
    pub executor_pod_template: Option<PathBuf>,
    /// Where revocation keeps the log of each of the run's driver pods
    /// before deleting them: a root-owned directory, created if absent.
    /// None: logs go with their pods.
    #[serde(default, deserialize_with = "driver_log_dir")]
    pub driver_logs: Option<PathBuf>,
    /// The most of each driver's log kept, in bytes (its start).
    #[serde(default = "default_driver_log_max", deserialize_with = "size")]
    pub driver_log_max: u64,
    /// How long `gc` leaves a kept log, counted from its last change.
    #[serde(
        default = "default_driver_log_retention",
        deserialize_with = "duration"
    )]
    pub driver_log_retention: Duration,
}

impl Default for Spark {
    fn default() -> Self {
        Self {
            deny_conf: Vec::new(),
            force: default_forced_spark(),
            driver_pod_template: None,
            executor_pod_template: None,
            driver_logs: None,
            driver_log_max: default_driver_log_max(),
            driver_log_retention: default_driver_log_retention(),
        }
    }
}

impl Spark {
    /// What the administrator forces on every spark-submit: [spark] force,
    /// then the pod templates.
    pub fn forced_settings(&self) -> Vec<spark::AdminSetting> {
        let force = self.force.iter().map(|(key, value)| spark::AdminSetting {
            key: key.clone(),
            value: value.into(),
            source: "[spark] force",
        });
        let templates = [
            (
                spark::DRIVER_POD_TEMPLATE,
                &self.driver_pod_template,
                "[spark] driver_pod_template",
            ),
            (
                spark::EXECUTOR_POD_TEMPLATE,
                &self.executor_pod_template,
                "[spark] executor_pod_template",
            ),
        ]
        .into_iter()
        .filter_map(|(key, path, source)| {
            path.as_ref().map(|path| spark::AdminSetting {
                key: key.into(),
                value: path.into(),
                source,
            })
        });
        force.chain(templates).collect()
    }

    /// The pod templates are read by spark-submit as the user and shape
    /// every pod: root-owned regular files, in directories only root can
    /// write, that users can read.
    fn check_pod_templates(&self, origin: &Path) -> Result<()> {
        let templates = [
            ("driver_pod_template", &self.driver_pod_template),
            ("executor_pod_template", &self.executor_pod_template),
        ];
        for (field, path) in templates {
            let Some(path) = path else { continue };
            let in_config = |e: Failure| {
                Failure::config(format!(
                    "config file {}: [spark] {field}: {}",
                    origin.display(),
                    e.message
                ))
            };
            let mode = fs::root_file(path, "Spark pod template").map_err(in_config)?;
            if mode & 0o004 == 0 {
                return Err(in_config(Failure::config(format!(
                    "Spark pod template {} is not readable by others (mode {mode:04o}), and \
                     spark-submit reads it as the end user: `chmod a+r {}`",
                    path.display(),
                    path.display()
                ))));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    #[serde(default = "default_runtime_dir")]
    pub dir: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            dir: default_runtime_dir(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// PATH for the command; the caller's is never used.
    #[serde(default = "default_secure_path")]
    pub path: String,
    /// Caller variables passed through unchanged, by exact name.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Variables set for every command.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

impl Default for Environment {
    fn default() -> Self {
        Self {
            path: default_secure_path(),
            keep: Vec::new(),
            set: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privileges {
    #[serde(default = "yes")]
    pub no_new_privs: bool,
}

impl Default for Privileges {
    fn default() -> Self {
        Self { no_new_privs: true }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// A JSON line per event to syslog, facility authpriv, as sudo does.
    #[serde(default = "yes")]
    pub syslog: bool,
    /// And/or appended to this root-owned file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A run whose start record no destination took does not start.
    #[serde(default = "yes")]
    pub required: bool,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            syslog: true,
            file: None,
            required: true,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_min_uid() -> u32 {
    1000
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_token_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_revoke_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_runtime_dir() -> PathBuf {
    PathBuf::from("/run/kubesu")
}
fn default_driver_log_max() -> u64 {
    10 * MIB
}
fn default_driver_log_retention() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_secure_path() -> String {
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
}

fn default_forced_spark() -> BTreeMap<String, String> {
    BTreeMap::from([("spark.authenticate".into(), "true".into())])
}

/// [spark] force, refusing at once (so the error has a line and column) a
/// setting kubesu must own.
fn forced_spark<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let force = BTreeMap::<String, String>::deserialize(d)?;
    for (key, value) in &force {
        if let Some(why) = spark::refuse_forced(key, value) {
            return Err(serde::de::Error::custom(why));
        }
    }
    Ok(force)
}

fn pod_template<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<PathBuf>, D::Error> {
    absolute_path(
        d,
        "Spark pod template",
        "/etc/kubesu/spark-driver-template.yaml",
    )
}

fn driver_log_dir<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<PathBuf>, D::Error> {
    absolute_path(d, "driver log directory", "/var/log/kubesu-drivers")
}

/// A path that must be absolute; `what` and `example` make the message.
fn absolute_path<'de, D: serde::Deserializer<'de>>(
    d: D,
    what: &str,
    example: &str,
) -> std::result::Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if !path.is_absolute() {
        return Err(serde::de::Error::custom(format!(
            "{what} {} is not an absolute path; write its full path, such as \"{example}\"",
            path.display()
        )));
    }
    Ok(Some(path))
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_size(&text).map_err(serde::de::Error::custom)
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The largest [spark] driver_log_max: each run may keep a few such logs,
/// and one that large is better read from the cluster's own log store.
pub const MAX_DRIVER_LOG: u64 = GIB;

/// "10MiB", "512KiB", "1GiB" or plain bytes, more than 0 and at most
/// MAX_DRIVER_LOG: exactly what kubesu.toml(5) documents. Binary units
/// only, spelled out: "10M" or "10MB" could mean either.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("size {text:?} is not a number of bytes, optionally followed by KiB, MiB or GiB")
    })?;
    let scale = match unit {
        "" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        _ => {
            return Err(format!(
                "size {text:?} has unknown unit {unit:?}: use KiB, MiB or GiB, or none for bytes"
            ));
        }
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!(
            "size {text:?} is 0: leave out driver_logs to keep no log"
        )),
        Some(bytes) if bytes <= MAX_DRIVER_LOG => Ok(bytes),
        _ => Err(format!(
            "size {text:?} is more than the most kubesu keeps, 1GiB"
        )),
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// "90s", "30m", "2h", "1d", or plain seconds: exactly what kubesu.toml(5)
/// documents. Kept by hand: `humantime` would also accept months, years and
/// nanoseconds, and refuse plain seconds, changing what a config means.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} is not a number followed by s, m, h or d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "duration {text:?} has unknown unit {unit:?}: use s, m, h or d"
            ));
        }
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

impl Config {
    /// Parse and check the file's content (not its ownership).
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            Failure::config(format!(
                "config file {} is invalid: {}fix the file and run `kubesu check`",
                origin.display(),
                e
            ))
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |what: String| {
            Err(Failure::config(format!(
                "config file {}: {what}",
                origin.display()
            )))
        };
        if self.callers.users.is_empty() {
            return bad(
                "[callers] users is empty: name the service users that may call kubesu".into(),
            );
        }
        if self.users.allowed_groups.is_empty() {
            return bad(
                "[users] allowed_groups is empty: name the groups whose members kubesu may act for"
                    .into(),
            );
        }
        if self.users.min_uid == 0 {
            return bad("[users] min_uid is 0: kubesu never acts for root; use 1000 or the first regular uid".into());
        }
        for c in &self.commands {
            if !c.path.is_absolute() {
                return bad(format!(
                    "[[command]] path {:?} is not absolute: commands are matched by absolute path",
                    c.path
                ));
            }
        }
        if !self.cluster.kubeconfig.is_absolute() {
            return bad("[cluster] kubeconfig must be an absolute path".into());
        }
        if !self.runtime.dir.is_absolute() {
            return bad("[runtime] dir must be an absolute path".into());
        }
        if self.cluster.token_ttl < MIN_TOKEN_TTL
            || self.cluster.max_token_ttl < self.cluster.token_ttl
        {
            return bad(format!(
                "[cluster] token_ttl must be at least {}s (the API server's minimum) and at most max_token_ttl",
                MIN_TOKEN_TTL.as_secs()
            ));
        }
        if self
            .cluster
            .renew_before
            .is_some_and(|r| r.is_zero() || r >= self.cluster.token_ttl)
        {
            return bad(
                "[cluster] renew_before must be shorter than token_ttl and more than 0".into(),
            );
        }
        if self.audit.required && !self.audit.syslog && self.audit.file.is_none() {
            return bad(
                "[audit] required is true but there is no destination: set syslog = true or \
                 a file (or required = false to run unaudited)"
                    .into(),
            );
        }
        for team in &self.namespace.teams {
            let name = team.strip_suffix('*').unwrap_or(team);
            if name.is_empty()
                || name.contains('*')
                || crate::policy::naming::check_account_name("team", name).is_err()
            {
                return bad(format!(
                    "[namespace] teams entry {team:?} is neither a group name nor a prefix ending in '*' \
                     (such as \"team-*\")"
                ));
            }
        }
        tenancy::check_label_keys("[namespace] labels", self.namespace.labels.keys())
            .and_then(|()| {
                tenancy::check_label_keys("[objects] labels", self.objects.labels.keys())
            })
            .or_else(bad)?;
        if self.spark.driver_log_retention.is_zero() {
            return bad("[spark] driver_log_retention is 0: gc would remove each log as soon as it is kept; \
                        write a duration such as \"7d\"".into());
        }
        if self.cluster.max_run_time.is_some_and(|t| t.is_zero()) {
            return bad("[cluster] max_run_time is 0: leave it out for no limit, or write a duration such as \"12h\"".into());
        }
        self.check_environment(origin)?;
        crate::policy::naming::namespace(
            self.namespace.policy.into(),
            &self.namespace.template,
            "check",
            Some("check"),
            &crate::policy::identity::RunId::parse("aaaaaaaaaaaaaaaa")?,
        )
        .map_err(|e| Failure::config(format!("config file {}: {e}", origin.display())))?;
        Ok(())
    }

    /// Everything the administrator forces on a spark-submit: [spark]'s
    /// settings and templates, and the [objects] labels and annotations on
    /// the driver and executor pods (so users cannot change a cost centre).
    pub fn spark_forced(&self) -> Vec<spark::AdminSetting> {
        let mut forced = self.spark.forced_settings();
        let tables = [
            ("label", &self.objects.labels, "[objects] labels"),
            (
                "annotation",
                &self.objects.annotations,
                "[objects] annotations",
            ),
        ];
        for (kind, table, source) in tables {
            for role in ["driver", "executor"] {
                forced.extend(table.iter().map(|(key, value)| spark::AdminSetting {
                    key: format!("spark.kubernetes.{role}.{kind}.{key}"),
                    value: value.into(),
                    source,
                }));
            }
        }
        forced
    }

    /// Whether `group` is a team by `[namespace] teams`.
    pub fn is_team(&self, group: &str) -> bool {
        self.namespace
            .teams
            .iter()
            .any(|t| match t.strip_suffix('*') {
                Some(prefix) => group.starts_with(prefix),
                None => group == t,
            })
    }

    /// Refuse keep or set lists that name a variable no command may get
    /// from the config (see `environment::is_forbidden`).
    fn check_environment(&self, origin: &Path) -> Result<()> {
        let env = &self.environment;
        let names = env
            .keep
            .iter()
            .chain(env.set.keys())
            .chain(self.commands.iter().flat_map(|c| c.env.keys()));
        for name in names {
            if environment::is_forbidden(name) {
                return Err(Failure::config(format!(
                    "config file {}: [environment] may not keep or set {name}: it would let a caller \
                     change what the command loads or which cluster it uses; remove it",
                    origin.display()
                )));
            }
        }
        Ok(())
    }

    /// The environment rules for `command`: its own variables win over
    /// [environment] set.
    pub fn environment_rules<'a>(&'a self, command: &'a Command) -> environment::Rules<'a> {
        let env = &self.environment;
        let set = env.set.iter().chain(command.env.iter());
        environment::Rules {
            path: &env.path,
            keep: &env.keep,
            set: set.map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        }
    }

    /// The rule for a command, by its resolved absolute path.
    pub fn command(&self, path: &Path) -> Option<&Command> {
        self.commands.iter().find(|c| c.path == path)
    }
}

/// TokenRequest refuses shorter lifetimes.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(600);

/// The config file kubesu reads unless a root shell passes --config.
pub const DEFAULT_CONFIG: &str = "/etc/kubesu/config.toml";

/// Which config file applies: --config only for a root shell, never through
/// sudo.
pub fn chosen(asked: Option<&Path>, came_through_sudo: bool) -> Result<&Path> {
    match asked {
        Some(path) if came_through_sudo => Err(Failure::denied(format!(
            "--config {} is refused: through sudo kubesu always reads {DEFAULT_CONFIG}, so a caller cannot pick its own policy",
            path.display()
        ))),
        Some(path) => Ok(path),
        None => Ok(Path::new(DEFAULT_CONFIG)),
    }
}

/// Read the config file, refusing one that anybody but root could have
/// written or redirected.
pub fn load(path: &Path) -> Result<Config> {
    check_trusted_path(path, "config file")?;
    let mut file = fs::open_no_follow(path).or_fail(Code::Config, || {
        format!(
            "cannot open config file {}; install one (see `man kubesu`) or pass --config as root",
            path.display()
        )
    })?;
    let meta = file.metadata().or_fail(Code::Config, || {
        format!("cannot stat config file {}", path.display())
    })?;
    check_root_owned(path, &meta, "config file")?;
    let mut text = String::new();
    file.read_to_string(&mut text).or_fail(Code::Config, || {
        format!("cannot read config file {}", path.display())
    })?;
    let config = Config::parse(&text, path)?;
    config.spark.check_pod_templates(path)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../examples/config.toml");

    fn with_teams(teams: &str) -> Result<Config> {
        let text = EXAMPLE.replace("teams = [\"team-*\"]", &format!("teams = {teams}"));
        Config::parse(&text, Path::new("example.toml"))
    }

    #[test]
    fn teams_are_names_or_prefixes_and_nothing_else() {
        let c = with_teams(r#"["team-*", "analysts"]"#).expect("valid teams");
        assert!(c.is_team("team-red") && c.is_team("analysts"));
        assert!(!c.is_team("analysts2") && !c.is_team("alice") && !c.is_team("kubesu-users"));
        assert!(!with_teams("[]").expect("no teams").is_team("team-red"));
        for bad in [
            r#"["*"]"#,
            r#"["a*b"]"#,
            r#"["team-**"]"#,
            r#"["Team Red"]"#,
            r#"[""]"#,
        ] {
            let err = with_teams(bad).unwrap_err();
            assert_eq!(err.code, crate::failure::Code::Config, "{bad}");
            assert!(
                err.message.contains("[namespace] teams"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn the_shipped_example_parses() {
        let c = Config::parse(EXAMPLE, Path::new("example.toml")).expect("example config is valid");
        assert!(!c.callers.users.is_empty());
        assert!(c.commands.iter().any(|c| c.spark_submit));
        assert!(c.privileges.no_new_privs);
    }

    #[test]
    fn unknown_keys_are_reported_with_line_and_column() {
        let text = EXAMPLE.replacen("[callers]", "[callers]\nuserz = [\"x\"]", 1);
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert_eq!(err.code, Code::Config);
        assert!(err.message.contains("line"), "{}", err.message);
        assert!(err.message.contains("column"), "{}", err.message);
        assert!(err.message.contains("userz"), "{}", err.message);
    }

    #[test]
    fn relative_command_paths_are_refused() {
        let text = format!("{EXAMPLE}\n[[command]]\npath = \"bin/true\"\n");
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(err.message.contains("not absolute"), "{}", err.message);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in ["", "h", "1w", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_may_not_keep_or_set_loader_variables() {
        let keep = EXAMPLE.replacen(
            "keep = [\"JAVA_HOME\"",
            "keep = [\"LD_PRELOAD\", \"JAVA_HOME\"",
            1,
        );
        let set = format!(
            "{EXAMPLE}\n[[command]]\npath = \"/bin/true\"\nenv = {{ KUBECONFIG = \"/x\" }}\n"
        );
        for text in [keep, set] {
            let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
            assert_eq!(err.code, Code::Config);
            assert!(
                err.message.contains("may not keep or set"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn too_short_token_ttl_is_refused() {
        let text = EXAMPLE.replace("token_ttl = \"1h\"", "token_ttl = \"5m\"");
        assert!(Config::parse(&text, Path::new("c.toml")).is_err());
    }

    /// The example with its [spark] settings other than deny_conf replaced.
    fn with_spark(lines: &str) -> Result<Config> {
        let replaced = [
            "force =",
            "driver_pod_template =",
            "executor_pod_template =",
            "driver_logs =",
            "driver_log_max =",
            "driver_log_retention =",
        ];
        let text: String = EXAMPLE
            .lines()
            .filter(|l| !replaced.iter().any(|key| l.starts_with(key)))
            .map(|l| match l {
                "[spark]" => format!("{l}\n{lines}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        Config::parse(&text, Path::new("c.toml"))
    }

    #[test]
    fn forced_spark_settings_default_to_authentication_and_are_otherwise_as_written() {
        let absent = with_spark("").expect("valid");
        assert_eq!(
            absent.spark.force,
            BTreeMap::from([("spark.authenticate".to_string(), "true".to_string())])
        );
        let written = with_spark(
            "force = { \"spark.io.encryption.enabled\" = \"true\" }\n\
             driver_pod_template = \"/etc/kubesu/d.yaml\"",
        )
        .expect("valid");
        assert_eq!(
            written.spark.force,
            BTreeMap::from([(
                "spark.io.encryption.enabled".to_string(),
                "true".to_string()
            )])
        );
        let keys: Vec<String> = written
            .spark
            .forced_settings()
            .into_iter()
            .map(|s| s.key)
            .collect();
        assert_eq!(
            keys,
            ["spark.io.encryption.enabled", spark::DRIVER_POD_TEMPLATE]
        );
    }

    #[test]
    fn object_labels_are_forced_on_sparks_pods_and_users_cannot_change_them() {
        let c = Config::parse(EXAMPLE, Path::new("example.toml")).expect("example");
        let forced = c.spark_forced();
        for role in ["driver", "executor"] {
            let key = format!("spark.kubernetes.{role}.label.example.com/cost-center");
            assert!(
                forced
                    .iter()
                    .any(|s| s.key == key && s.value == "data-platform"),
                "{key} in {forced:?}"
            );
            let user = [
                std::ffi::OsString::from("--conf"),
                format!("{key}=someone-else").into(),
            ];
            let rules = spark::Rules {
                forced: &forced,
                denied: &[],
            };
            let refused = spark::refuse_overrides(&user, &rules).unwrap_err();
            assert!(
                refused.message.contains("[objects] labels"),
                "{}",
                refused.message
            );
        }
    }

    #[test]
    fn forcing_what_kubesu_sets_is_refused_with_line_column_and_what_to_write() {
        for (force, says) in [
            (
                "force = { \"spark.master\" = \"local\" }",
                "remove it from [spark] force",
            ),
            (
                "force = { \"spark.kubernetes.driver.label.kubesu.io/run\" = \"x\" }",
                "label domain",
            ),
            (
                "force = { \"spark.kubernetes.driver.podTemplateFile\" = \"/t.yaml\" }",
                "set [spark] driver_pod_template = ",
            ),
            (
                "driver_pod_template = \"templates/driver.yaml\"",
                "not an absolute path",
            ),
        ] {
            let err = with_spark(force).unwrap_err();
            assert_eq!(err.code, Code::Config, "{force}");
            for part in ["config file c.toml", "line", "column", says] {
                assert!(
                    err.message.contains(part),
                    "{force}: {part}: {}",
                    err.message
                );
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size(" 10MiB "), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(MAX_DRIVER_LOG));
        for bad in [
            "",
            "0",
            "0MiB",
            "MiB",
            "10M",
            "10MB",
            "10 MiB",
            "10mib",
            "1.5MiB",
            "-1",
            "2GiB",
            "1025MiB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn driver_logs_are_kept_only_when_configured_with_a_cap_and_a_retention() {
        let absent = with_spark("").expect("valid");
        assert_eq!(absent.spark.driver_logs, None);
        assert_eq!(absent.spark.driver_log_max, 10 * 1024 * 1024);
        assert_eq!(
            absent.spark.driver_log_retention,
            Duration::from_secs(7 * 86400)
        );
        let written = with_spark(
            "driver_logs = \"/var/log/kubesu-drivers\"\n\
             driver_log_max = \"64KiB\"\n\
             driver_log_retention = \"36h\"",
        )
        .expect("valid");
        assert_eq!(
            written.spark.driver_logs.as_deref(),
            Some(Path::new("/var/log/kubesu-drivers"))
        );
        assert_eq!(written.spark.driver_log_max, 64 * 1024);
        assert_eq!(
            written.spark.driver_log_retention,
            Duration::from_secs(36 * 3600)
        );
        let shipped = Config::parse(EXAMPLE, Path::new("example.toml")).expect("example");
        assert!(shipped.spark.driver_logs.is_some());
    }

    #[test]
    fn bad_driver_log_settings_are_refused_with_line_column_and_what_to_write() {
        for (line, says) in [
            ("driver_logs = \"logs/drivers\"", "not an absolute path"),
            ("driver_log_max = \"10MB\"", "use KiB, MiB or GiB"),
            ("driver_log_max = \"0\"", "is 0"),
            (
                "driver_log_max = \"4GiB\"",
                "more than the most kubesu keeps",
            ),
            ("driver_log_max = 1024", "invalid type"),
            ("driver_log_retention = \"1w\"", "use s, m, h or d"),
        ] {
            let err = with_spark(line).unwrap_err();
            assert_eq!(err.code, Code::Config, "{line}");
            for part in ["config file c.toml", "line", "column", says] {
                assert!(
                    err.message.contains(part),
                    "{line}: {part}: {}",
                    err.message
                );
            }
        }
        let zero = with_spark("driver_log_retention = \"0\"").unwrap_err();
        assert!(
            zero.message.contains("[spark] driver_log_retention is 0"),
            "{}",
            zero.message
        );
    }

    #[test]
    fn pod_templates_that_others_could_change_are_refused() {
        // Below /tmp, which anyone can write; and a missing file.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("driver.yaml");
        std::fs::write(&file, "kind: Pod\n").expect("write");
        for path in [file, PathBuf::from("/nonexistent/kubesu/driver.yaml")] {
            let spark = Spark {
                driver_pod_template: Some(path.clone()),
                ..Spark::default()
            };
            let err = spark.check_pod_templates(Path::new("c.toml")).unwrap_err();
            assert_eq!(err.code, Code::Config);
            assert!(
                err.message
                    .starts_with("config file c.toml: [spark] driver_pod_template: "),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn a_world_writable_directory_above_is_refused() {
        // /tmp is world-writable (sticky): a config below it is never trusted.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, EXAMPLE).expect("write");
        let err = load(&file).unwrap_err();
        assert_eq!(err.code, Code::Config);
    }
}
