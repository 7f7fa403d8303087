//! The per-run credential directory `<runtime>/<run id>/`: a kubeconfig, the
//! token and the CA, readable only by the end user; and for a spark-submit
//! given a properties file, kubesu's checked copy of it.
//!
//! The runtime directory is on a file system the whole host shares (/run),
//! so the run directory and every file in it stay root's, mode 0700 and
//! 0600, and the end user reads them through a POSIX ACL entry (shown as
//! 0750 and 0640): the user's command can neither create, grow, rename,
//! delete nor chmod anything there, so it cannot fill /run nor swap a file.
//! Directories of older versions were the user's; everything below the
//! runtime directory is still reached through directory descriptors with
//! O_NOFOLLOW: root never follows a link it did not create and never
//! writes or deletes outside the run directory.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{fchmod, fstat, mkdirat};
use nix::unistd::{Uid, UnlinkatFlags, unlinkat};
use serde::Serialize;
use serde_json::json;

use crate::failure::{Code, Context, Failure, Result};
use crate::policy::identity::{RunId, RunIdentity};
use crate::run::runtime_dir;
use crate::sys::fs::{create_new_at, grant_read, is_dir, mode, open_dir_at, remove_tree_at};

const KUBECONFIG_FILE: &str = "kubeconfig";
const TOKEN_FILE: &str = "token";
const CA_FILE: &str = "ca.crt";
const SPARK_PROPERTIES_FILE: &str = "spark.properties";
/// Name of the cluster and the context in the kubeconfig.
const KUBECONFIG_NAME: &str = "kubesu";

/// Root's; the user's ACL entry lets them list and enter it (0750 shown).
const RUN_DIR_MODE: u32 = 0o700;
/// Root's; the user's ACL entry lets them read it (0640 shown).
const FILE_MODE: u32 = 0o600;

/// What the user gets: the API server, its CA, the run's token, and who the
/// run is (its namespace, its ServiceAccount; its id names the directory).
pub struct Credentials<'a> {
    pub server: &'a str,
    pub ca_pem: &'a [u8],
    pub token: &'a str,
    pub identity: &'a RunIdentity,
}

/// Paths of the handed-over files (all inside `dir`).
#[derive(Debug, Clone, Serialize)]
pub struct Handover {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub token: PathBuf,
    pub ca: PathBuf,
    /// The checked copy of a spark-submit's properties file, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spark_properties: Option<PathBuf>,
}

/// Where a run's files will be, before anything exists (for the plan and
/// the forced Spark arguments).
pub fn planned(runtime: &Path, run: &RunId, spark_properties: bool) -> Handover {
    let dir = runtime.join(run.as_str());
    Handover {
        kubeconfig: dir.join(KUBECONFIG_FILE),
        token: dir.join(TOKEN_FILE),
        ca: dir.join(CA_FILE),
        spark_properties: spark_properties.then(|| dir.join(SPARK_PROPERTIES_FILE)),
        dir,
    }
}

/// Create `<runtime>/<run id>` and the three files for the user, and the
/// checked copy of a spark-submit's properties file if there is one.
///
/// The directory and files are created by root with exclusive creation and
/// stay root's; `uid` gets read access through an ACL entry on each (see
/// `sys::fs::grant_read`). An existing run directory is refused, never
/// reused. A file system without POSIX ACLs is `Failure::config`. On
/// failure, whatever this call created is removed again.
pub fn hand_over(
    runtime: &Path,
    uid: Uid,
    creds: &Credentials,
    spark_properties: Option<&[u8]>,
) -> Result<Handover> {
    let run = &creds.identity.run;
    runtime_dir::require_absolute(runtime)?;
    let handover = planned(runtime, run, spark_properties.is_some());
    check_token(creds.token, uid)?;
    let kubeconfig = kubeconfig(&handover, creds)?;

    let runtime_fd = runtime_dir::open(runtime)?;
    mkdirat(&runtime_fd, run.as_str(), mode(RUN_DIR_MODE)).map_err(|e| {
        let why = if e == Errno::EEXIST {
            "it already exists, and kubesu never reuses a run directory; \
             run `kubesu gc` or remove it, then retry"
                .to_owned()
        } else {
            format!("{e}; check that root can write to {}", runtime.display())
        };
        Failure::software(format!(
            "cannot create run directory {} for uid {uid}: {why}",
            handover.dir.display()
        ))
    })?;

    let mut files: Vec<(&str, &Path, &[u8])> = vec![
        (CA_FILE, &handover.ca, creds.ca_pem),
        // Spark sends the token verbatim as an HTTP header: no newline.
        (TOKEN_FILE, &handover.token, creds.token.as_bytes()),
        (KUBECONFIG_FILE, &handover.kubeconfig, &kubeconfig),
    ];
    if let (Some(path), Some(contents)) = (&handover.spark_properties, spark_properties) {
        files.push((SPARK_PROPERTIES_FILE, path, contents));
    }
    match fill(&runtime_fd, run, &handover.dir, &files, uid) {
        Ok(()) => Ok(handover),
        Err(mut failure) => {
            // The directory is ours (mkdirat succeeded): undo it all.
            if let Err(e) = remove_at(runtime_fd.as_fd(), run, &handover.dir) {
                failure
                    .message
                    .push_str(&format!("; removing it again also failed: {e}"));
            }
            Err(failure)
        }
    }
}

/// Replace the token and the kubeconfig of a handed-over run with renewed
/// ones. Each file is written under a fresh name with exclusive creation,
/// made readable by `uid` like the first, and renamed over the old one
/// through the directory's descriptor: readers see the old file or the new
/// one, never half, and nothing at the old name is ever followed.
pub fn refresh(runtime: &Path, uid: Uid, creds: &Credentials) -> Result<()> {
    let run = &creds.identity.run;
    let handover = planned(runtime, run, false);
    check_token(creds.token, uid)?;
    let kubeconfig = kubeconfig(&handover, creds)?;
    let failure = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Failure::software(format!(
            "cannot {what} {} to renew the token of uid {uid}: {e}; the run keeps its current \
             token until it expires",
            path.display()
        ))
    };
    let runtime_fd = runtime_dir::open(runtime)?;
    let dir_fd =
        open_dir_at(&runtime_fd, run.as_str()).map_err(|e| failure("open", &handover.dir, &e))?;
    let stat = fstat(&dir_fd).map_err(|e| failure("inspect", &handover.dir, &e))?;
    if !is_dir(&stat) || stat.st_uid != 0 {
        return Err(failure(
            "use",
            &handover.dir,
            &"it is not the root-owned run directory kubesu handed over",
        ));
    }
    let files: [(&str, &Path, &[u8]); 2] = [
        (TOKEN_FILE, &handover.token, creds.token.as_bytes()),
        (KUBECONFIG_FILE, &handover.kubeconfig, &kubeconfig),
    ];
    for (name, path, contents) in files {
        let fresh = format!(".{name}.{}", std::process::id());
        let mut file = create_new_at(&dir_fd, fresh.as_str(), FILE_MODE)
            .map_err(|e| failure("create a new", path, &e))?;
        let written = fchmod(&file, mode(FILE_MODE))
            .map_err(|e| e.to_string())
            .and_then(|()| file.write_all(contents).map_err(|e| e.to_string()))
            .and_then(|()| grant_read(&file, &[uid]).map_err(|e| e.to_string()))
            .and_then(|()| {
                nix::fcntl::renameat(&dir_fd, fresh.as_str(), &dir_fd, name)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            let _ = unlinkat(&dir_fd, fresh.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(failure("replace", path, &e));
        }
    }
    Ok(())
}

/// Remove `<runtime>/<run id>` and what is in it, never following a symlink.
///
/// Links are removed themselves; real subdirectories are entered through
/// descriptors, each first made root-owned 0700 so the user can no longer add
/// or move entries in it while it is emptied. A missing directory is Ok.
pub fn remove(runtime: &Path, run: &RunId) -> Result<()> {
    let Some(runtime_fd) = runtime_dir::open_if_present(runtime)? else {
        return Ok(());
    };
    remove_at(runtime_fd.as_fd(), run, &runtime.join(run.as_str()))
}

/// The token goes verbatim into files and HTTP headers: refuse anything a
/// header cannot carry rather than hand over a broken credential.
fn check_token(token: &str, uid: Uid) -> Result<()> {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Failure::software(format!(
            "the token minted for uid {uid} is empty or contains spaces or control \
             characters, so it cannot be handed over; check the TokenRequest response \
             of the Kubernetes API server"
        )))
    }
}

/// A kubeconfig as JSON (valid YAML, read by kubectl and fabric8): the CA by
/// path, the token inline.
fn kubeconfig(handover: &Handover, creds: &Credentials) -> Result<Vec<u8>> {
    let ca = handover.ca.to_str().ok_or_else(|| {
        Failure::config(format!(
            "runtime directory path {} is not valid UTF-8, so it cannot go into a \
             kubeconfig; configure an ASCII runtime directory",
            handover.dir.display()
        ))
    })?;
    let user = creds.identity.service_account.clone();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": KUBECONFIG_NAME,
            "cluster": { "server": creds.server, "certificate-authority": ca },
        }],
        "users": [{ "name": user, "user": { "token": creds.token } }],
        "contexts": [{
            "name": KUBECONFIG_NAME,
            "context": {
                "cluster": KUBECONFIG_NAME,
                "user": user,
                "namespace": creds.identity.namespace,
            },
        }],
        "current-context": KUBECONFIG_NAME,
    });
    let mut bytes = serde_json::to_vec_pretty(&config).or_fail(Code::Software, || {
        format!(
            "cannot encode the kubeconfig for {}",
            handover.kubeconfig.display()
        )
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Let the user read the freshly made run directory, then write the files
/// into it, each readable by the user: all stays root's.
fn fill(
    runtime_fd: &OwnedFd,
    run: &RunId,
    dir: &Path,
    files: &[(&str, &Path, &[u8])],
    uid: Uid,
) -> Result<()> {
    let failure = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Failure::software(format!(
            "cannot {what} {} for uid {uid}: {e}; check the runtime directory (free \
             space, who else writes to it), then retry",
            path.display()
        ))
    };
    let dir_fd = open_dir_at(runtime_fd, run.as_str())
        .map_err(|e| failure("open run directory", dir, &e))?;
    let stat = fstat(&dir_fd).map_err(|e| failure("inspect run directory", dir, &e))?;
    if !is_dir(&stat) || stat.st_uid != 0 {
        return Err(failure(
            "use run directory",
            dir,
            &"it is not the root-owned directory kubesu just created",
        ));
    }
    fchmod(&dir_fd, mode(RUN_DIR_MODE)).map_err(|e| failure("set mode of", dir, &e))?;
    grant_read(&dir_fd, &[uid]).map_err(|e| no_acl(dir, uid, e))?;
    for &(name, path, contents) in files {
        let mut file =
            create_new_at(&dir_fd, name, FILE_MODE).map_err(|e| failure("create", path, &e))?;
        fchmod(&file, mode(FILE_MODE)).map_err(|e| failure("set mode of", path, &e))?;
        grant_read(&file, &[uid]).map_err(|e| no_acl(path, uid, e))?;
        file.write_all(contents)
            .map_err(|e| failure("write", path, &e))?;
    }
    Ok(())
}

/// Granting `uid` read access to `path` failed: without ACLs the user could
/// only read their files if they owned them (or the directory), and then
/// fill the runtime directory's file system.
fn no_acl(path: &Path, uid: Uid, e: Errno) -> Failure {
    if e == Errno::EOPNOTSUPP {
        Failure::config(format!(
            "cannot let uid {uid} read {}: the runtime directory's file system does not \
             support POSIX ACLs, which kubesu needs so that the user can read the run's \
             files while root keeps them; put the runtime directory on a file system with \
             POSIX ACLs (tmpfs and ext4 have them; check its mount options) or configure \
             another runtime directory",
            path.display()
        ))
    } else {
        Failure::software(format!(
            "cannot let uid {uid} read {} through a POSIX ACL entry: {e}; check the runtime \
             directory's file system, then retry",
            path.display()
        ))
    }
}

/// Remove the run directory below the opened runtime directory (see
/// `sys::fs::remove_tree_at`).
fn remove_at(runtime_fd: BorrowedFd<'_>, run: &RunId, path: &Path) -> Result<()> {
    remove_tree_at(runtime_fd, OsStr::new(run.as_str())).map_err(|why| {
        Failure::software(format!(
            "cannot remove run directory {}: {why}; remove it by hand (rm -rf as root) \
             and check who is writing to it",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::MAX_DEPTH;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::sync::LazyLock;

    const USER: u32 = 1234;
    const GROUP: u32 = 2345;

    fn run() -> RunId {
        RunId::parse("abcdefgh234567ab").unwrap()
    }

    /// A root-owned 0711 runtime directory in a temp dir others may enter.
    fn runtime() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let rt = tmp.path().join("rt");
        fs::create_dir(&rt).unwrap();
        fs::set_permissions(&rt, fs::Permissions::from_mode(0o711)).unwrap();
        (tmp, rt)
    }

    static IDENTITY: LazyLock<RunIdentity> = LazyLock::new(|| RunIdentity {
        run: run(),
        namespace: "spark-alice".into(),
        service_account: "alice-abcdefgh234567ab".into(),
    });

    fn creds() -> Credentials<'static> {
        Credentials {
            server: "https://k8s.example:6443",
            ca_pem: b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            token: "eyJhbGciOi.abc.def",
            identity: &IDENTITY,
        }
    }

    fn give(rt: &Path) -> Result<Handover> {
        hand_over(rt, Uid::from_raw(USER), &creds(), None)
    }

    /// Root's, with the mode the user's ACL entry shows (its mask).
    fn assert_roots(path: &Path, perms: u32) {
        let meta = fs::symlink_metadata(path).unwrap();
        assert_eq!(meta.mode() & 0o7777, perms, "{}", path.display());
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
    }

    /// `sh -c script` as USER:GROUP (not in root's group); its success.
    fn as_user(script: &str) -> bool {
        std::process::Command::new("setpriv")
            .args([
                &format!("--reuid={USER}"),
                &format!("--regid={GROUP}"),
                "--clear-groups",
                "sh",
                "-c",
                script,
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// The user reads every file and lists the directory, and can change
    /// nothing in it.
    fn assert_readable_not_writable(h: &Handover) {
        let dir = h.dir.display();
        for file in [&h.kubeconfig, &h.token, &h.ca] {
            assert!(as_user(&format!("cat {} >/dev/null", file.display())));
            assert!(!as_user(&format!("echo x >>{}", file.display())));
            assert!(!as_user(&format!("chmod 0666 {}", file.display())));
        }
        assert!(as_user(&format!("ls {dir} >/dev/null")));
        for change in [
            "touch {dir}/x",
            "rm -f {dir}/token",
            "mv {dir}/token {dir}/t",
        ] {
            let change = change.replace("{dir}", &dir.to_string());
            assert!(!as_user(&change), "{change} worked");
        }
        assert!(fs::symlink_metadata(h.dir.join("x")).is_err());
        assert!(h.token.exists());
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn hands_over_roots_files_the_user_can_read_but_not_change() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        let h = give(&rt).unwrap();
        assert_eq!(h.dir, rt.join(run().as_str()));
        assert!(fs::symlink_metadata(&h.dir).unwrap().is_dir());
        assert_roots(&h.dir, 0o750);
        for file in [&h.kubeconfig, &h.token, &h.ca] {
            assert!(file.starts_with(&h.dir));
            assert!(fs::symlink_metadata(file).unwrap().is_file());
            assert_roots(file, 0o640);
        }
        assert_readable_not_writable(&h);
        assert_eq!(fs::read(&h.token).unwrap(), creds().token.as_bytes());
        assert_eq!(fs::read(&h.ca).unwrap(), creds().ca_pem);

        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(&h.kubeconfig).unwrap()).unwrap();
        assert_eq!(config["current-context"], "kubesu");
        let cluster = &config["clusters"][0];
        assert_eq!(cluster["name"], "kubesu");
        assert_eq!(cluster["cluster"]["server"], creds().server);
        assert_eq!(
            cluster["cluster"]["certificate-authority"],
            h.ca.to_str().unwrap()
        );
        assert!(cluster["cluster"]["certificate-authority-data"].is_null());
        let user = &config["users"][0];
        assert_eq!(user["name"], "alice-abcdefgh234567ab");
        assert_eq!(user["user"]["token"], creds().token);
        let context = &config["contexts"][0];
        assert_eq!(context["name"], "kubesu");
        assert_eq!(context["context"]["cluster"], "kubesu");
        assert_eq!(context["context"]["user"], user["name"]);
        assert_eq!(context["context"]["namespace"], "spark-alice");
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn hands_over_spark_properties_the_user_can_read_but_not_change() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        let copy = b"spark.app.name=x\n";
        let h = hand_over(&rt, Uid::from_raw(USER), &creds(), Some(copy)).unwrap();
        let path = h.spark_properties.expect("a properties copy");
        assert_eq!(path, planned(&rt, &run(), true).spark_properties.unwrap());
        assert_eq!(fs::read(&path).unwrap(), copy);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o640)
        );
        assert!(as_user(&format!("cat {} >/dev/null", path.display())));
        assert!(!as_user(&format!("echo x >>{}", path.display())));
        assert!(give(&rt).is_err(), "the run directory is not reused");
        remove(&rt, &run()).unwrap();
        assert!(fs::symlink_metadata(&h.dir).is_err());
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn refresh_replaces_the_files_and_keeps_them_roots() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        let h = give(&rt).unwrap();
        let mut renewed = creds();
        renewed.token = "eyJhbGciOi.new.token";
        refresh(&rt, Uid::from_raw(USER), &renewed).unwrap();
        assert_eq!(fs::read(&h.token).unwrap(), b"eyJhbGciOi.new.token");
        let config = fs::read_to_string(&h.kubeconfig).unwrap();
        assert!(config.contains("eyJhbGciOi.new.token"), "{config}");
        assert_roots(&h.dir, 0o750);
        for file in [&h.kubeconfig, &h.token, &h.ca] {
            assert_roots(file, 0o640);
        }
        assert_readable_not_writable(&h);
        // The three files, no fresh name left over.
        assert_eq!(fs::read_dir(&h.dir).unwrap().count(), 3);

        // A run directory someone else owns is not written to.
        std::os::unix::fs::chown(&h.dir, Some(USER), None).unwrap();
        let err = refresh(&rt, Uid::from_raw(USER), &creds()).unwrap_err();
        assert!(err.message.contains("root-owned"), "{}", err.message);
        assert_eq!(fs::read(&h.token).unwrap(), b"eyJhbGciOi.new.token");
    }

    #[test]
    fn a_file_system_without_acls_is_a_configuration_error() {
        let path = Path::new("/run/kubesu/abcdefgh234567ab");
        let err = no_acl(path, Uid::from_raw(USER), Errno::EOPNOTSUPP);
        assert_eq!(err.code, Code::Config);
        assert!(err.message.contains("POSIX ACLs"), "{}", err.message);
        assert!(err.message.contains("tmpfs and ext4"), "{}", err.message);
        assert_eq!(
            no_acl(path, Uid::from_raw(USER), Errno::EIO).code,
            Code::Software
        );
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn refuses_an_existing_run_directory() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        let h = give(&rt).unwrap();
        let err = give(&rt).unwrap_err();
        assert_eq!(err.code, Code::Software);
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert!(err.message.contains("uid 1234"), "{}", err.message);
        // The first run's files are left alone.
        assert_eq!(fs::read(&h.token).unwrap(), creds().token.as_bytes());
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn refuses_a_planted_symlink() {
        crate::sys::require_root();
        let (tmp, rt) = runtime();
        let target = tmp.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        symlink(&target, rt.join(run().as_str())).unwrap();
        give(&rt).unwrap_err();
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        let meta = fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
    }

    #[test]
    fn refuses_a_bad_token_and_leaves_nothing() {
        let (_tmp, rt) = runtime();
        let mut bad = creds();
        bad.token = "abc\n";
        let err = hand_over(&rt, Uid::from_raw(USER), &bad, None).unwrap_err();
        assert_eq!(err.code, Code::Software);
        assert_eq!(fs::read_dir(&rt).unwrap().count(), 0);
    }

    #[test]
    fn hand_over_checks_the_runtime_directory() {
        let (_tmp, rt) = runtime();
        fs::set_permissions(&rt, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(give(&rt).unwrap_err().code, Code::Config);
        assert_eq!(fs::read_dir(&rt).unwrap().count(), 0);
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn remove_deletes_links_not_their_targets() {
        crate::sys::require_root();
        let (tmp, rt) = runtime();
        let outside = tmp.path().join("precious");
        fs::write(&outside, "keep").unwrap();
        let outside_dir = tmp.path().join("precious-dir");
        fs::create_dir(&outside_dir).unwrap();
        fs::write(outside_dir.join("f"), "keep").unwrap();

        let h = give(&rt).unwrap();
        // What a hostile user could do inside their own directory.
        fs::remove_file(&h.token).unwrap();
        symlink(&outside, &h.token).unwrap();
        symlink(&outside_dir, h.dir.join("dirlink")).unwrap();
        fs::create_dir_all(h.dir.join("sub/deeper")).unwrap();
        symlink(&outside, h.dir.join("sub/deeper/link")).unwrap();
        fs::write(h.dir.join("sub/file"), "x").unwrap();

        remove(&rt, &run()).unwrap();
        assert!(fs::symlink_metadata(&h.dir).is_err());
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert_eq!(fs::read(outside_dir.join("f")).unwrap(), b"keep");
        // A missing directory is fine, and so is a missing runtime directory.
        remove(&rt, &run()).unwrap();
        remove(&tmp.path().join("none"), &run()).unwrap();
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn remove_deletes_a_planted_link_itself() {
        crate::sys::require_root();
        let (tmp, rt) = runtime();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("f"), "keep").unwrap();
        symlink(&target, rt.join(run().as_str())).unwrap();
        remove(&rt, &run()).unwrap();
        assert!(fs::symlink_metadata(rt.join(run().as_str())).is_err());
        assert_eq!(fs::read(target.join("f")).unwrap(), b"keep");
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn remove_refuses_too_deep_nesting() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        let h = give(&rt).unwrap();
        let mut deep = h.dir.clone();
        for _ in 0..MAX_DEPTH + 1 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        let err = remove(&rt, &run()).unwrap_err();
        assert!(err.message.contains("deeper than"), "{}", err.message);
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn lists_only_run_ids() {
        crate::sys::require_root();
        let (_tmp, rt) = runtime();
        give(&rt).unwrap();
        let other = RunId::parse("zzzzzzzzzzzzzzzz").unwrap();
        fs::create_dir(rt.join(other.as_str())).unwrap();
        for junk in ["lost+found", "ABCDEFGH234567AB", "abcdefgh234567a"] {
            fs::create_dir(rt.join(junk)).unwrap();
        }
        fs::write(rt.join("notes"), "").unwrap();
        assert_eq!(runtime_dir::list_run_dirs(&rt).unwrap(), vec![run(), other]);
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            runtime_dir::list_run_dirs(&tmp.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }
}
