//! The runtime directory (e.g. /run/kubesu) that holds every run's
//! directory: root-owned, mode 0711, so end users can reach their own run
//! directory by name but neither list nor create anything beside it.

use std::fs::DirBuilder;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{fchmod, fstat};

use crate::failure::{Code, Context, Failure, Result};
use crate::policy::identity::RunId;
use crate::sys::fs::{entry_names, mode, open_dir};

/// Users may traverse the runtime directory to reach their own run directory,
/// but not list it or create anything in it.
const RUNTIME_MODE: u32 = 0o711;
/// Missing parents of the runtime directory, as /run itself.
const PARENT_MODE: u32 = 0o755;
/// Group and other write bits: either lets someone else swap entries.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// Other search bit: without it end users cannot reach their files.
const OTHER_SEARCH: u32 = 0o001;

/// The runtime directory (e.g. /run/kubesu): create it root-owned mode 0711
/// if missing (missing parents root-owned 0755), and refuse
/// (`Failure::config`) a relative path, a symlink, a non-directory, or a
/// directory not owned by root, writable by group or others, or not
/// searchable by others.
pub fn ensure_runtime_dir(path: &Path) -> Result<()> {
    require_absolute(path)?;
    let fd = match open_dir(path) {
        Err(Errno::ENOENT) => {
            create_dirs(path)?;
            open_dir(path).map_err(|e| runtime_open_failure(path, e))?
        }
        opened => opened.map_err(|e| runtime_open_failure(path, e))?,
    };
    check_runtime(path, &fd)
}

/// `kubesu check`: would `ensure_runtime_dir` accept the runtime directory?
/// Creates nothing. `Ok(false)` when it does not exist yet (the first run
/// creates it); the same refusals as `ensure_runtime_dir` otherwise.
pub fn check_runtime_dir(path: &Path) -> Result<bool> {
    require_absolute(path)?;
    open_if_present(path).map(|fd| fd.is_some())
}

/// Open the runtime directory as a base for its run directories, and check
/// it (see `ensure_runtime_dir`).
pub fn open(path: &Path) -> Result<OwnedFd> {
    let fd = open_dir(path).map_err(|e| runtime_open_failure(path, e))?;
    check_runtime(path, &fd)?;
    Ok(fd)
}

/// `open`, but a missing runtime directory is `None`: it holds no run.
pub fn open_if_present(path: &Path) -> Result<Option<OwnedFd>> {
    match open_dir(path) {
        Err(Errno::ENOENT) => Ok(None),
        opened => {
            let fd = opened.map_err(|e| runtime_open_failure(path, e))?;
            check_runtime(path, &fd)?;
            Ok(Some(fd))
        }
    }
}

/// Run directories present under the runtime dir (names that parse as
/// RunId), sorted, for gc. A missing runtime directory has none.
pub fn list_run_dirs(runtime: &Path) -> Result<Vec<RunId>> {
    let Some(runtime_fd) = open_if_present(runtime)? else {
        return Ok(Vec::new());
    };
    let names = entry_names(&runtime_fd).or_fail(Code::Software, || {
        format!("cannot list runtime directory {}", runtime.display())
    })?;
    let mut runs: Vec<RunId> = names
        .iter()
        .filter_map(|name| name.to_str().and_then(|name| RunId::parse(name).ok()))
        .collect();
    runs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(runs)
}

/// The kubeconfig points at files by absolute path, so the user's working
/// directory does not matter.
pub(super) fn require_absolute(path: &Path) -> Result<()> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Failure::config(format!(
            "runtime directory {} is not an absolute path; set an absolute runtime \
             directory such as /run/kubesu in kubesu's config file",
            path.display()
        )))
    }
}

fn unsafe_runtime(path: &Path, why: &str) -> Failure {
    Failure::config(format!(
        "runtime directory {} {why}; kubesu needs a real directory owned by root with \
         mode 0711: fix it (chown root:root, chmod 0711) or remove it, or configure \
         another runtime directory",
        path.display()
    ))
}

fn runtime_open_failure(path: &Path, e: Errno) -> Failure {
    match e {
        // O_NOFOLLOW|O_DIRECTORY gives ELOOP or ENOTDIR for a symlink;
        // lstat only picks the message.
        Errno::ELOOP | Errno::ENOTDIR if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) => {
            unsafe_runtime(path, "is a symbolic link")
        }
        Errno::ELOOP | Errno::ENOTDIR => unsafe_runtime(path, "is not a directory"),
        e => Failure::config(format!(
            "cannot open runtime directory {}: {e}; check the runtime directory in \
             kubesu's config file",
            path.display()
        )),
    }
}

/// Check the opened runtime directory itself (not its path, which could
/// have changed since).
fn check_runtime(path: &Path, fd: &OwnedFd) -> Result<()> {
    let stat = fstat(fd).or_fail(Code::Software, || {
        format!("cannot inspect runtime directory {}", path.display())
    })?;
    let perms = stat.st_mode & 0o7777;
    if stat.st_uid != 0 {
        Err(unsafe_runtime(
            path,
            &format!("is owned by uid {}, not root", stat.st_uid),
        ))
    } else if perms & GROUP_OTHER_WRITE != 0 {
        Err(unsafe_runtime(
            path,
            &format!("is writable by group or others (mode {perms:04o})"),
        ))
    } else if perms & OTHER_SEARCH == 0 {
        Err(unsafe_runtime(
            path,
            &format!("cannot be entered by end users (mode {perms:04o})"),
        ))
    } else {
        Ok(())
    }
}

/// Create the missing directories down to `path`: parents 0755, `path`
/// itself 0711, all root-owned since root creates them.
fn create_dirs(path: &Path) -> Result<()> {
    let mut missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| matches!(p.symlink_metadata(), Err(e) if e.kind() == ErrorKind::NotFound))
        .collect();
    missing.reverse();
    for dir in missing {
        let bits = if dir == path {
            RUNTIME_MODE
        } else {
            PARENT_MODE
        };
        let failure = |e: &dyn std::fmt::Display| {
            Failure::config(format!(
                "cannot create runtime directory {}: {e}; create it as root with mode \
                 {bits:04o}, or configure another runtime directory",
                dir.display()
            ))
        };
        match DirBuilder::new().mode(bits).create(dir) {
            Ok(()) => {
                // The umask may have narrowed the mode; users need the search bit.
                let fd = open_dir(dir).map_err(|e| failure(&e))?;
                fchmod(&fd, mode(bits)).map_err(|e| failure(&e))?;
            }
            // Another kubesu run created it at the same moment.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failure(&e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    const USER: u32 = 1234;

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn ensure_creates_a_missing_runtime_directory() {
        crate::sys::require_root();
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("a/b/kubesu");
        ensure_runtime_dir(&rt).unwrap();
        let meta = fs::symlink_metadata(&rt).unwrap();
        assert!(meta.is_dir());
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
        for parent in [tmp.path().join("a"), tmp.path().join("a/b")] {
            let meta = fs::symlink_metadata(&parent).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
        }
        // Idempotent.
        ensure_runtime_dir(&rt).unwrap();
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn ensure_refuses_unsafe_runtime_directories() {
        crate::sys::require_root();
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o711)).unwrap();
        ensure_runtime_dir(&real).unwrap();

        let link = tmp.path().join("link");
        symlink(&real, &link).unwrap();
        let dangling = tmp.path().join("dangling");
        symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        let foreign = tmp.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::set_permissions(&foreign, fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::chown(&foreign, Some(USER), None).unwrap();
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();

        for (path, says) in [
            (&link, "symbolic link"),
            (&dangling, "symbolic link"),
            (&file, "not a directory"),
            (&foreign, "owned by uid 1234"),
            (&open, "writable by group or others"),
        ] {
            let err = ensure_runtime_dir(path).unwrap_err();
            assert_eq!(err.code, Code::Config, "{}", path.display());
            assert!(err.message.contains(says), "{}", err.message);
            assert!(
                err.message.starts_with("runtime directory "),
                "{}",
                err.message
            );
        }
        assert!(!tmp.path().join("nowhere").exists());
        assert_eq!(
            ensure_runtime_dir(Path::new("relative/kubesu"))
                .unwrap_err()
                .code,
            Code::Config
        );
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn check_runtime_dir_creates_nothing() {
        crate::sys::require_root();
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("a/kubesu");
        assert!(!check_runtime_dir(&rt).unwrap());
        assert!(!tmp.path().join("a").exists());
        fs::create_dir_all(&rt).unwrap();
        fs::set_permissions(&rt, fs::Permissions::from_mode(0o711)).unwrap();
        assert!(check_runtime_dir(&rt).unwrap());
        fs::set_permissions(&rt, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_runtime_dir(&rt).unwrap_err();
        assert_eq!(err.code, Code::Config);
        assert!(
            err.message.contains("writable by group or others"),
            "{}",
            err.message
        );
    }
}
