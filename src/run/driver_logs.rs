//! Revocation's first step for a spark-submit: read each cluster-mode
//! driver's status and keep its log before its pod is deleted ([spark]
//! driver_logs), and `gc`'s removal of kept logs past [spark]
//! driver_log_retention.
//!
//! The log is the user's own output, so the threat is the file, not its
//! text. Root writes it into a directory only root writes (created 0711 if
//! absent, so users reach their file by name without listing others'),
//! creating it exclusively with O_NOFOLLOW (a name already there, a link
//! included, is refused, never followed or overwritten), at most
//! [spark] driver_log_max bytes per log and MAX_DRIVERS logs per run (the
//! user may label pods of their own as drivers). Root owns it, mode 0600,
//! plus read-only ACL entries for the end user and the service user that
//! called: nobody else reads it, and neither of them can change it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::unistd::Uid;

use crate::cluster::lease::Holder;
use crate::cluster::{Cluster, leftovers};
use crate::failure::{Code, Context, Failure, Result};
use crate::policy::config::Config;
use crate::policy::identity::{RunId, RunIdentity};
use crate::sys::account;
use crate::sys::fs::{self, RootDir};

/// The directory of kept logs: users may search it to open their own log
/// by name, not list it.
const DIRECTORY: RootDir<'static> = RootDir {
    what: "driver log directory ([spark] driver_logs)",
    mode: 0o711,
};
/// Root's alone; readers come from ACL entries.
const FILE_MODE: u32 = 0o600;
/// A cluster-mode run has one driver pod. More are pods the user labelled
/// so: each costs up to driver_log_max of disk, so only this many are kept.
pub const MAX_DRIVERS: usize = 4;
/// Longest pod name in a file name `<run>-<pod>.log` (NAME_MAX is 255).
const MAX_POD_NAME: usize = 200;
const SUFFIX: &str = ".log";

/// What to keep, where, and for whom.
pub struct Keeping<'a> {
    /// None: no log is kept ([spark] driver_logs unset), only the drivers'
    /// status read.
    pub dir: Option<&'a Path>,
    /// Per log ([spark] driver_log_max).
    pub max_bytes: u64,
    pub identity: &'a RunIdentity,
    /// Who may read the logs besides root: the end user and the caller.
    pub readers: Vec<Uid>,
    /// The most all of it may take: revocation waits for it.
    pub limit: Duration,
}

impl<'a> Keeping<'a> {
    /// For the run's own revocation: the logs where [spark] driver_logs
    /// says (or only the drivers' status), within half the revocation
    /// deadline so that deleting has the rest.
    pub fn of(config: &'a Config, identity: &'a RunIdentity, readers: Vec<Uid>) -> Keeping<'a> {
        Keeping {
            dir: config.spark.driver_logs.as_deref(),
            max_bytes: config.spark.driver_log_max,
            identity,
            readers,
            limit: config.cluster.revoke_timeout / 2,
        }
    }

    /// For a revocation from outside the run (`kubesu revoke`, gc): the
    /// logs alone (the status has nobody to go to), read by the lease's
    /// user and caller as this host names them. None without [spark]
    /// driver_logs.
    pub fn after_the_fact(
        config: &'a Config,
        identity: &'a RunIdentity,
        holder: &Holder,
    ) -> Option<Keeping<'a>> {
        config.spark.driver_logs.as_ref()?;
        let mut readers: Vec<Uid> = [&holder.user, &holder.caller]
            .into_iter()
            .filter_map(|name| account::user_id(name))
            .filter(|uid| !uid.is_root())
            .collect();
        readers.dedup();
        Some(Keeping::of(config, identity, readers))
    }
}

/// The logs kept, and why some were not, for the run's end record.
#[derive(Debug, Default)]
pub struct Kept {
    pub paths: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// A driver container that ended with a non-zero status, and that
    /// status: spark-submit (3.5, 4.3) exits 0 in cluster mode even then.
    pub failed_driver: Option<(String, i32)>,
}

/// Keep the logs of the run's driver pods. Never fails: every problem is a
/// warning, and revocation goes on.
pub async fn keep(cluster: &Cluster, keeping: &Keeping<'_>) -> Kept {
    let mut kept = Kept::default();
    let all = keep_all(cluster, keeping, &mut kept);
    if tokio::time::timeout(keeping.limit, all).await.is_err() {
        kept.warnings.push(format!(
            "keeping the driver logs of run {} took longer than {}s (half of [cluster] \
             revoke_timeout): the last one is cut short or missing",
            keeping.identity.run,
            keeping.limit.as_secs()
        ));
    }
    kept
}

async fn keep_all(cluster: &Cluster, keeping: &Keeping<'_>, kept: &mut Kept) {
    let id = keeping.identity;
    let mut pods = match leftovers::drivers(cluster, &id.namespace, id.run.as_str()).await {
        Ok(pods) => pods,
        Err(e) => {
            kept.warnings.push(format!(
                "the driver logs of run {} are not kept: {e}",
                id.run
            ));
            return;
        }
    };
    if pods.is_empty() {
        return;
    }
    kept.failed_driver = pods.iter().find_map(failed_driver);
    let Some(path) = keeping.dir else {
        return;
    };
    if pods.len() > MAX_DRIVERS {
        kept.warnings.push(format!(
            "run {} has {} pods labelled as its driver: only the logs of the first \
             {MAX_DRIVERS} by name are kept",
            id.run,
            pods.len()
        ));
    }
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.truncate(MAX_DRIVERS);
    let dir = match open_dir(path) {
        Ok(fd) => (path, fd),
        Err(e) => {
            kept.warnings.push(format!(
                "the driver logs of run {} are not kept: {e}",
                id.run
            ));
            return;
        }
    };
    let several = pods.len() > 1;
    for pod in &pods {
        if let Err(e) = keep_one(cluster, keeping, (dir.0, &dir.1), pod, several, kept).await {
            kept.warnings.push(e.message);
        }
    }
}

/// The pod's name and its driver container's exit status, if that
/// container ended with a non-zero one.
fn failed_driver(pod: &Pod) -> Option<(String, i32)> {
    let name = pod.metadata.name.clone()?;
    let wanted = leftovers::driver_container(pod);
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let driver = match &wanted {
        Some(container) => statuses.iter().find(|s| &s.name == container)?,
        None => statuses.first()?,
    };
    let code = driver.state.as_ref()?.terminated.as_ref()?.exit_code;
    (code != 0).then_some((name, code))
}

/// The directory, created if absent and checked, with every directory
/// above it root-owned, not writable by others and searchable by all: a
/// log users could not reach, or in a path someone else could redirect,
/// is not written.
fn open_dir(path: &Path) -> Result<OwnedFd> {
    check_parents(path)?;
    DIRECTORY.ensure(path)
}

/// For `kubesu check`: the directory as `open_dir` would find it, without
/// creating it, and whether its file system takes the ACL entries the
/// logs get.
pub fn check_dir(path: &Path) -> Result<String> {
    check_parents(path)?;
    let Some(dir) = DIRECTORY.open_if_present(path)? else {
        return Ok(format!(
            "{} does not exist yet: the first kept log creates it (root-owned, mode 0711)",
            path.display()
        ));
    };
    match fs::takes_acls(&dir) {
        Some(false) => Err(Failure::config(format!(
            "{} ({}) is on a file system without POSIX ACLs: users and callers could not \
             read their logs",
            path.display(),
            DIRECTORY.what
        ))),
        _ => Ok(format!("{}: root-owned, mode 0711", path.display())),
    }
}

/// Every directory above the log directory root's, searchable by all and
/// writable by nobody else.
fn check_parents(path: &Path) -> Result<()> {
    DIRECTORY.require_absolute(path)?;
    for above in path.ancestors().skip(1) {
        let meta = std::fs::symlink_metadata(above).or_fail(Code::Config, || {
            format!(
                "cannot inspect {} above {}",
                above.display(),
                DIRECTORY.what
            )
        })?;
        use std::os::unix::fs::MetadataExt;
        let bits = meta.mode() & 0o7777;
        if !meta.is_dir() || meta.uid() != 0 || bits & 0o002 != 0 || bits & 0o001 == 0 {
            return Err(Failure::config(format!(
                "{} above {} {} must be a directory owned by root, searchable by all and not \
                 writable by others (it is uid {}, mode {bits:04o}{}): fix it or configure \
                 another directory",
                above.display(),
                DIRECTORY.what,
                path.display(),
                meta.uid(),
                if meta.is_symlink() { ", a symlink" } else { "" }
            )));
        }
    }
    Ok(())
}

/// `<run>.log`, or `<run>-<pod>.log` when the run had several drivers.
fn file_name(run: &RunId, pod: &str, several: bool) -> Result<String> {
    if !several {
        return Ok(format!("{run}{SUFFIX}"));
    }
    // The API server allows only DNS subdomain names; checked again here,
    // as the name becomes part of a path root writes.
    let plain = pod
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if pod.is_empty() || pod.len() > MAX_POD_NAME || !plain || pod.starts_with('.') {
        return Err(Failure::data(format!(
            "the log of driver pod {pod:?} of run {run} is not kept: its name cannot be part \
             of a file name"
        )));
    }
    Ok(format!("{run}-{pod}{SUFFIX}"))
}

async fn keep_one(
    cluster: &Cluster,
    keeping: &Keeping<'_>,
    (dir_path, dir): (&Path, &OwnedFd),
    pod: &Pod,
    several: bool,
    kept: &mut Kept,
) -> Result<()> {
    let id = keeping.identity;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let file_name = file_name(&id.run, name, several)?;
    let container = leftovers::driver_container(pod);
    let log = leftovers::log_start(cluster, &id.namespace, name, container, keeping.max_bytes)
        .await
        .map_err(|e| {
            Failure::new(
                e.code,
                format!(
                    "the log of driver pod {name} of run {} is not kept: {e}",
                    id.run
                ),
            )
        })?;
    let path = dir_path.join(&file_name);
    let failed = |e: &dyn std::fmt::Display| {
        Failure::new(
            Code::IoErr,
            format!(
                "the log of driver pod {name} of run {} is not kept in {}: {e}",
                id.run,
                path.display()
            ),
        )
    };
    let file = fs::create_new_at(dir, file_name.as_str(), FILE_MODE).map_err(|e| failed(&e))?;
    kept.paths.push(path.clone());
    if let Err(e) = fs::grant_read(&file, &keeping.readers) {
        kept.warnings.push(format!(
            "driver log {} is readable by root only: granting read access to the user and \
             the caller failed ({e}); mount its file system with ACL support",
            path.display()
        ));
    }
    copy(log, &file).await.map(drop).map_err(|e| {
        Failure::new(
            Code::IoErr,
            format!("driver log {} is incomplete: {e}", path.display()),
        )
    })
}

async fn copy(log: impl futures::AsyncRead, file: &File) -> std::io::Result<u64> {
    let mut sink = futures::io::AllowStdIo::new(file);
    futures::io::copy(log, &mut sink).await
}

/// A kept log `gc` removes.
#[derive(Debug)]
pub struct Expired {
    pub run: RunId,
    pub name: OsString,
}

/// The kept logs in `dir` last changed longer than `retention` ago, by
/// name order. A missing directory has none; names that are not kubesu's
/// (`<run>.log`, `<run>-<pod>.log`) and anything but regular files are
/// left alone.
pub fn expired(dir: &Path, retention: Duration) -> Result<Vec<Expired>> {
    let Some(fd) = DIRECTORY.open_if_present(dir)? else {
        return Ok(Vec::new());
    };
    let names = fs::entry_names(&fd).or_fail(Code::Software, || {
        format!("cannot list {} {}", DIRECTORY.what, dir.display())
    })?;
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut found = Vec::new();
    for name in names {
        let Some(run) = name.to_str().and_then(run_of) else {
            continue;
        };
        let Ok(stat) = fstatat(&fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let regular = !fs::is_dir(&stat) && stat.st_mode & 0o170000 == 0o100000;
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(stat.st_mtime).unwrap_or_default(),
                u32::try_from(stat.st_mtime_nsec).unwrap_or_default(),
            );
        if regular && changed < cutoff {
            found.push(Expired { run, name });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The run a kept log's name belongs to.
fn run_of(name: &str) -> Option<RunId> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (run, rest) = stem.split_at_checked(crate::policy::identity::RUN_ID_CHARS)?;
    (rest.is_empty() || rest.starts_with('-'))
        .then(|| RunId::parse(run).ok())
        .flatten()
}

/// Remove a kept log (the entry itself, never what a link names).
pub fn remove(dir: &Path, name: &OsStr) -> Result<()> {
    let fd = DIRECTORY.open(dir)?;
    fs::remove_file_at(&fd, name).map_err(|e| {
        Failure::new(
            Code::IoErr,
            format!("cannot remove driver log {}: {e}", dir.join(name).display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunId {
        RunId::parse("abcdefgh234567ab").expect("run id")
    }

    #[test]
    fn logs_are_named_by_their_run_and_pod_names_never_make_a_path() {
        assert_eq!(
            file_name(&run(), "spark-pi-driver", false).expect("one"),
            "abcdefgh234567ab.log"
        );
        assert_eq!(
            file_name(&run(), "spark-pi-driver", true).expect("several"),
            "abcdefgh234567ab-spark-pi-driver.log"
        );
        let long = "a".repeat(MAX_POD_NAME + 1);
        for bad in ["", "../x", "a/b", ".hidden", "A", "a b", long.as_str()] {
            assert!(file_name(&run(), bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gc_knows_kept_logs_by_name_and_nothing_else() {
        assert_eq!(run_of("abcdefgh234567ab.log"), Some(run()));
        assert_eq!(run_of("abcdefgh234567ab-spark-pi-driver.log"), Some(run()));
        for other in [
            "abcdefgh234567ab",
            "abcdefgh234567ab.txt",
            "abcdefgh234567abx.log",
            "ABCDEFGH234567AB.log",
            "notes.log",
            ".log",
        ] {
            assert_eq!(run_of(other), None, "{other}");
        }
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn a_kept_log_is_roots_readable_through_acl_entries_only() {
        use std::os::unix::fs::MetadataExt;
        crate::sys::require_root();
        // Below /tmp (world-writable), so through the RootDir alone.
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let dir = tmp.path().join("drivers");
        let fd = DIRECTORY.ensure(&dir).expect("directory");
        let meta = std::fs::metadata(&dir).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
        let file = fs::create_new_at(&fd, "abcdefgh234567ab.log", FILE_MODE).expect("create");
        fs::grant_read(
            &file,
            &[
                Uid::from_raw(1234),
                Uid::from_raw(1235),
                Uid::from_raw(1234),
            ],
        )
        .expect("ACL");
        std::io::Write::write_all(&mut &file, b"driver said\n").expect("write");
        let log = dir.join("abcdefgh234567ab.log");
        let meta = std::fs::metadata(&log).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o640));
        // The named readers read it; another user does not, even in the
        // owning group.
        for (uid, gid, may) in [(1234, 1234, true), (1235, 0, true), (1236, 0, false)] {
            let read = std::process::Command::new("setpriv")
                .args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                    "cat",
                ])
                .arg(&log)
                .output()
                .expect("setpriv");
            assert_eq!(read.status.success(), may, "uid {uid}: {read:?}");
            assert_eq!(read.stdout, if may { &b"driver said\n"[..] } else { b"" });
        }
        // A second log of the same name is refused, not overwritten; a
        // planted link is refused, not followed.
        assert!(fs::create_new_at(&fd, "abcdefgh234567ab.log", FILE_MODE).is_err());
        let target = tmp.path().join("target");
        std::fs::write(&target, "root's").expect("target");
        std::os::unix::fs::symlink(&target, dir.join("bbbbbbbbbbbbbbbb.log")).expect("link");
        assert!(fs::create_new_at(&fd, "bbbbbbbbbbbbbbbb.log", FILE_MODE).is_err());
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "root's");
        // gc lists and removes regular files only: the link stays.
        assert!(
            expired(&dir, Duration::from_secs(3600))
                .expect("list")
                .is_empty()
        );
        let all = expired(&dir, Duration::ZERO).expect("list");
        assert_eq!(all.len(), 1);
        remove(&dir, &all[0].name).expect("remove");
        assert!(expired(&dir, Duration::ZERO).expect("list").is_empty());
    }
}
