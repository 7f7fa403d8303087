//! Phase 1: who called, for whom, which command, and whether its arguments
//! may pass. Everything here is decided from the config file and the
//! system's user database, never from anything the caller can choose beyond
//! the names it asks for; a properties file the caller names for
//! spark-submit is read with the end user's rights only.

use std::borrow::Cow;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::{Failure, Result};
use crate::policy::config::{self, Config};
use crate::policy::naming::check_account_name;
use crate::policy::spark::{self, CheckedProperties};
use crate::sys::Invoker;
use crate::sys::account::{self, Account};
use crate::sys::privdrop::{self, Reader};

/// How long reading a user's properties file may take (a local file takes
/// milliseconds; a hung file system must not hang the platform).
const PROPERTIES_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Who asked kubesu to act.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Caller {
    pub name: String,
    pub uid: u32,
    /// False for an administrator in a root shell.
    pub via_sudo: bool,
}

/// What the caller asked for, as typed.
pub struct Request<'a> {
    pub user: &'a str,
    pub team: Option<&'a str>,
    pub ttl: Option<&'a str>,
    pub program: Program<'a>,
}

/// What to start.
#[derive(Clone, Copy)]
pub enum Program<'a> {
    /// A command and its arguments (`kubesu run -- ...`).
    Command(&'a [OsString]),
    /// A shell for a person at a terminal (`kubesu shell`): the one given, or
    /// the user's login shell.
    Shell(Option<&'a Path>),
}

/// The run kubesu agreed to do.
#[derive(Debug)]
pub struct Authorized<'c> {
    pub caller: Caller,
    pub user: Account,
    pub team: Option<String>,
    pub ttl: Duration,
    /// The configured absolute path that runs.
    pub program: PathBuf,
    /// Its [[command]] rule; for a root's shell outside the list, an empty one.
    pub rule: Cow<'c, config::Command>,
    pub args: Vec<OsString>,
    /// A spark-submit's properties file, checked, to hand over as a copy.
    pub spark_properties: Option<CheckedProperties>,
    pub interactive: bool,
}

/// kubesu must run as root, with a real uid of root: installed setuid, it
/// would trust an unprivileged caller's environment.
pub fn check_invoker(invoker: &Invoker) -> Result<()> {
    if !invoker.effective_uid.is_root() {
        return Err(Failure::denied(format!(
            "kubesu must run as root (it runs as uid {}); call it through sudo as your platform's service user",
            invoker.effective_uid
        )));
    }
    if !invoker.real_uid.is_root() {
        return Err(Failure::denied(format!(
            "kubesu is running setuid (real uid {}): that is not supported; remove the setuid bit \
             (`chmod u-s`) and allow callers through sudo instead",
            invoker.real_uid
        )));
    }
    Ok(())
}

pub fn authorize<'c>(
    config: &'c Config,
    invoker: &Invoker,
    request: &Request<'_>,
) -> Result<Authorized<'c>> {
    let caller = caller(config, invoker)?;
    let user = target_user(config, request.user)?;
    let team = match request.team {
        Some(team) => Some(check_team(config, &user, team)?),
        None => None,
    };
    let ttl = token_ttl(config, request.ttl)?;
    let (program, rule, args) = match request.program {
        Program::Command(command) => {
            let (program, rule) = resolve_command(config, command, &caller)?;
            (program, Cow::Borrowed(rule), command[1..].to_vec())
        }
        Program::Shell(asked) => {
            let (program, rule) = resolve_shell(config, asked.unwrap_or(&user.shell), &caller)?;
            (program, rule, Vec::new())
        }
    };
    let spark_properties = if rule.spark_submit {
        check_spark_arguments(config, &user, &args)?
    } else {
        None
    };
    Ok(Authorized {
        caller,
        user,
        team,
        ttl,
        program,
        rule,
        args,
        spark_properties,
        interactive: matches!(request.program, Program::Shell(_)),
    })
}

/// Refuse spark-submit arguments that would change what kubesu or the
/// administrator forces, and check the settings of the properties file
/// they name, read as the user: what the user cannot read, kubesu does not
/// read for them.
fn check_spark_arguments(
    config: &Config,
    user: &Account,
    args: &[OsString],
) -> Result<Option<CheckedProperties>> {
    let forced = config.spark_forced();
    let rules = spark::Rules {
        forced: &forced,
        denied: &config.spark.deny_conf,
    };
    let Some(file) = spark::refuse_overrides(args, &rules)? else {
        return Ok(None);
    };
    let reader = Reader {
        uid: user.uid,
        gid: user.gid,
        groups: &user.groups,
        directories: &privdrop::working_directories(&user.home),
    };
    let path = Path::new(&file.path);
    let bytes = privdrop::read_as(
        &reader,
        path,
        spark::MAX_PROPERTIES_BYTES,
        PROPERTIES_READ_TIMEOUT,
    )
    .map_err(|why| {
        Failure::data(format!(
            "spark-submit properties file {} cannot be read as user {} (uid {}): {why}; \
             give a regular file of at most {} bytes that {} can read",
            path.display(),
            user.name,
            user.uid,
            spark::MAX_PROPERTIES_BYTES,
            user.name
        ))
    })?;
    spark::check_properties(&file, &bytes, &rules).map(Some)
}

/// A shell must be a login shell of this host (/etc/shells, as chsh
/// requires); a sudo caller may only start one its [[command]] list holds.
fn resolve_shell<'c>(
    config: &'c Config,
    shell: &Path,
    caller: &Caller,
) -> Result<(PathBuf, Cow<'c, config::Command>)> {
    let listed = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let is_login_shell = listed.lines().map(str::trim).any(|l| Path::new(l) == shell);
    if !shell.is_absolute() || !is_login_shell {
        return Err(Failure::denied(format!(
            "shell {} is not a login shell listed in /etc/shells; pass --shell with one that is",
            shell.display()
        )));
    }
    match config.command(shell) {
        Some(rule) => Ok((rule.path.clone(), Cow::Borrowed(rule))),
        None if !caller.via_sudo => {
            Ok((shell.to_path_buf(), Cow::Owned(config::Command::default())))
        }
        None => Err(Failure::denied(format!(
            "shell {} is not allowed for caller {}: list it under [[command]] in the config",
            shell.display(),
            caller.name
        ))),
    }
}

/// The caller: a listed service user through sudo, or root in a shell.
pub fn caller(config: &Config, invoker: &Invoker) -> Result<Caller> {
    let Some(sudo) = &invoker.sudo else {
        if invoker.came_through_sudo() {
            return Err(Failure::denied(
                "kubesu was started through sudo but SUDO_USER/SUDO_UID are incomplete; call it through sudo as a configured service user",
            ));
        }
        return Ok(Caller {
            name: "root".into(),
            uid: 0,
            via_sudo: false,
        });
    };
    let listed = config.callers.users.contains(&sudo.user);
    // The name must also be the one sudo's uid has: SUDO_USER alone is only
    // a name.
    let real_name = account::user_name(sudo.uid);
    if !listed || real_name.as_deref() != Some(sudo.user.as_str()) {
        return Err(Failure::denied(format!(
            "caller {} (uid {}) may not use kubesu: it is not listed under [callers] users in the config",
            sudo.user, sudo.uid
        )));
    }
    Ok(Caller {
        name: sudo.user.clone(),
        uid: sudo.uid.as_raw(),
        via_sudo: true,
    })
}

fn target_user(config: &Config, name: &str) -> Result<Account> {
    check_account_name("user", name)?;
    let refuse = |why: String| {
        Err(Failure::denied(format!(
            "kubesu may not act for user {name}: {why}"
        )))
    };
    let Some(user) = Account::lookup(name)? else {
        return refuse("no such user on this host; create the account first".into());
    };
    if user.uid.is_root() {
        return refuse("it is root (uid 0); kubesu never runs commands as root".into());
    }
    if user.uid.as_raw() < config.users.min_uid {
        return refuse(format!(
            "uid {} is below the configured minimum {} (system accounts are never used)",
            user.uid, config.users.min_uid
        ));
    }
    if config.users.deny.iter().any(|d| d == name) {
        return refuse("the user is on the deny list ([users] deny)".into());
    }
    let mut allowed = false;
    for group in &config.users.allowed_groups {
        if let Some(gid) = account::group_id(group)? {
            allowed |= user.is_member(gid);
        }
    }
    if !allowed {
        return refuse(format!(
            "not a member of any allowed group ({}); add the user to one",
            config.users.allowed_groups.join(", ")
        ));
    }
    Ok(user)
}

fn check_team(config: &Config, user: &Account, team: &str) -> Result<String> {
    check_account_name("team", team)?;
    if !config.is_team(team) {
        return Err(Failure::denied(if config.namespace.teams.is_empty() {
            format!(
                "{team} is not a team: the config names no teams; an administrator lists them in \
                 [namespace] teams"
            )
        } else {
            format!(
                "{team} is not a team ([namespace] teams: {}); pass one of those",
                config.namespace.teams.join(", ")
            )
        }));
    }
    match account::group_id(team)? {
        Some(gid) if user.is_member(gid) => Ok(team.to_string()),
        Some(_) => Err(Failure::denied(format!(
            "user {} is not a member of team {team}; pass a team (group) the user belongs to",
            user.name
        ))),
        None => Err(Failure::denied(format!(
            "team {team} is not a group on this host"
        ))),
    }
}

fn token_ttl(config: &Config, asked: Option<&str>) -> Result<Duration> {
    let Some(asked) = asked else {
        return Ok(config.cluster.token_ttl);
    };
    let ttl = config::parse_duration(asked).map_err(|e| Failure::usage(format!("--ttl: {e}")))?;
    if ttl < config::MIN_TOKEN_TTL || ttl > config.cluster.max_token_ttl {
        return Err(Failure::usage(format!(
            "--ttl {asked} is out of range: between {}s and the configured maximum {}s",
            config::MIN_TOKEN_TTL.as_secs(),
            config.cluster.max_token_ttl.as_secs()
        )));
    }
    Ok(ttl)
}

/// A bare name is looked up in the configured secure PATH, never the
/// caller's; a path must be absolute and listed. Either way, only a command
/// listed in the config runs, and it runs by its configured path.
fn resolve_command<'c>(
    config: &'c Config,
    command: &[OsString],
    caller: &Caller,
) -> Result<(PathBuf, &'c config::Command)> {
    let Some(first) = command.first() else {
        return Err(Failure::usage("no command given: put it after `--`"));
    };
    let asked = Path::new(first);
    let not_allowed = || {
        Failure::denied(format!(
            "command {} is not allowed for caller {}: only the [[command]] paths in the config run",
            asked.display(),
            caller.name
        ))
    };
    if asked.as_os_str().is_empty() {
        return Err(Failure::usage("the command is an empty string"));
    }
    let found = if asked.is_absolute() {
        // Compared as text: a user-chosen path is never looked at as root.
        return config
            .command(asked)
            .map(|rule| (rule.path.clone(), rule))
            .ok_or_else(not_allowed);
    } else if asked.components().count() > 1 {
        return Err(Failure::usage(format!(
            "command {} is a relative path; give a name to look up in the secure PATH, or an absolute path",
            asked.display()
        )));
    } else {
        std::env::split_paths(&config.environment.path)
            .map(|dir| dir.join(asked))
            .find(|candidate| is_executable_file(candidate))
            .ok_or_else(|| {
                Failure::usage(format!(
                    "command {} not found in the secure PATH {}",
                    asked.display(),
                    config.environment.path
                ))
            })?
    };
    // /bin/sh and /usr/bin/sh are one file on merged-/usr systems: match the
    // configured paths by identity too.
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let wanted = identity(&found);
    config
        .commands
        .iter()
        .find(|rule| rule.path == found || (wanted.is_some() && identity(&rule.path) == wanted))
        .map(|rule| (rule.path.clone(), rule))
        .ok_or_else(not_allowed)
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}
