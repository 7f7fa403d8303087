//! The runtime directory (e.g. /run/kubesu) that holds every run's
//! directory: root-owned, mode 0711, so end users can reach their own run
//! directory by name but neither list nor create anything beside it.

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::failure::{Code, Context, Result};
use crate::policy::identity::RunId;
use crate::sys::fs::{RootDir, entry_names};

/// Users may traverse the runtime directory to reach their own run directory,
/// but not list it or create anything in it.
const RUNTIME: RootDir<'static> = RootDir {
    what: "runtime directory",
    mode: 0o711,
};

/// The runtime directory (e.g. /run/kubesu): create it root-owned mode 0711
/// if missing (missing parents root-owned 0755), and refuse
/// (`Failure::config`) a relative path, a symlink, a non-directory, or a
/// directory not owned by root, writable by group or others, or not
/// searchable by others.
pub fn ensure_runtime_dir(path: &Path) -> Result<()> {
    RUNTIME.ensure(path).map(drop)
}

/// `kubesu check`: would `ensure_runtime_dir` accept the runtime directory?
/// Creates nothing. `Ok(false)` when it does not exist yet (the first run
/// creates it); the same refusals as `ensure_runtime_dir` otherwise.
pub fn check_runtime_dir(path: &Path) -> Result<bool> {
    open_if_present(path).map(|fd| fd.is_some())
}

/// Open the runtime directory as a base for its run directories, and check
/// it (see `ensure_runtime_dir`).
pub fn open(path: &Path) -> Result<OwnedFd> {
    RUNTIME.open(path)
}

/// `open`, but a missing runtime directory is `None`: it holds no run.
pub fn open_if_present(path: &Path) -> Result<Option<OwnedFd>> {
    RUNTIME.open_if_present(path)
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
    RUNTIME.require_absolute(path)
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
