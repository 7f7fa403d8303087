//! Every file access kubesu makes as root where someone else may have a say
//! in the path: its config, its kubeconfig, the audit file, the runtime
//! directory and the run directories in it, which end users read (and,
//! left by older versions, own), the kept driver logs. Opens follow no
//! symbolic link in the last component, directories are reached through
//! descriptors (`*at` calls), and ownership is checked on what was opened,
//! not on a path that may have changed since.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};

use crate::failure::{Code, Context, Failure, Result};

/// Deepest nesting `remove_tree_at` follows; each level holds a descriptor,
/// and a hostile user could otherwise nest directories until root runs out
/// of them.
pub const MAX_DEPTH: usize = 64;
/// What `remove_tree_at` makes each directory before emptying it.
const LOCKED_DIR_MODE: u32 = 0o700;

pub fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits)
}

pub fn is_dir(stat: &FileStat) -> bool {
    stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Open a directory for use as a `*at` base, refusing a symlink in the last
/// component and a non-directory (ELOOP or ENOTDIR).
pub fn open_dir<P: ?Sized + nix::NixPath>(path: &P) -> nix::Result<OwnedFd> {
    open(path, dir_flags(), Mode::empty())
}

/// `open_dir` relative to an opened directory.
pub fn open_dir_at<P: ?Sized + nix::NixPath>(parent: impl AsFd, name: &P) -> nix::Result<OwnedFd> {
    openat(parent, name, dir_flags(), Mode::empty())
}

/// Create `name` in an opened directory for writing: exclusively (an entry
/// already there, a planted link included, is an error), with `bits`.
pub fn create_new_at<P: ?Sized + nix::NixPath>(
    dir: impl AsFd,
    name: &P,
    bits: u32,
) -> nix::Result<File> {
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    openat(dir, name, flags, mode(bits)).map(File::from)
}

/// Open `name` in `parent` for appending, created with `bits` if missing,
/// following no symlink in either of the last two components. O_NONBLOCK
/// keeps a planted FIFO from hanging the open; it does not affect a regular
/// file.
pub fn open_append(parent: &Path, name: &OsStr, bits: u32) -> nix::Result<File> {
    let dir = open_dir(parent)?;
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NONBLOCK;
    openat(&dir, name, flags, mode(bits)).map(File::from)
}

/// Open a file for reading, refusing a symlink in the last component.
pub fn open_no_follow(path: &Path) -> std::io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// The text of a file, refusing a symlink in the last component.
pub fn read_no_follow(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    open_no_follow(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The names in an opened directory (without "." and ".."). nix's readdir
/// wrapper needs a feature kubesu does not build, so this reads the
/// directory through its descriptor's /proc entry, which resolves to that
/// very directory, never to whatever its path names now.
pub fn entry_names(fd: &OwnedFd) -> std::io::Result<Vec<OsString>> {
    std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect()
}

/// Every directory from `/` down to the file's parent must be a real
/// directory owned by root and writable by nobody else: otherwise someone
/// could swap the file.
pub fn check_trusted_path(path: &Path, what: &str) -> Result<()> {
    if !path.is_absolute() {
        return Err(Failure::config(format!(
            "{what} {} is not an absolute path",
            path.display()
        )));
    }
    let mut dir = PathBuf::from("/");
    let parent = path.parent().unwrap_or(Path::new("/"));
    for part in std::iter::once(None).chain(parent.components().skip(1).map(Some)) {
        if let Some(part) = part {
            dir.push(part);
        }
        let meta = std::fs::symlink_metadata(&dir).or_fail(Code::Config, || {
            format!(
                "cannot inspect {} above {what} {}",
                dir.display(),
                path.display()
            )
        })?;
        if !meta.file_type().is_dir() {
            return Err(Failure::config(format!(
                "{} above {what} {} is not a directory (a symlink?): kubesu follows no links to its configuration",
                dir.display(),
                path.display()
            )));
        }
        check_root_owned(&dir, &meta, &format!("directory above {what}"))?;
    }
    Ok(())
}

/// Owned by root, not writable by group or others, and (for files) regular.
pub fn check_root_owned(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if meta.uid() != 0 {
        return Err(Failure::config(format!(
            "{what} {} is owned by uid {}, not root: `chown root {}`",
            path.display(),
            meta.uid(),
            path.display()
        )));
    }
    // The sticky bit does not help here: root could still be raced within
    // a world-writable directory by other users' names.
    if meta.mode() & 0o022 != 0 {
        return Err(Failure::config(format!(
            "{what} {} is writable by group or others (mode {:o}): `chmod go-w {}`",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    if !meta.file_type().is_dir() && !meta.file_type().is_file() {
        return Err(Failure::config(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    Ok(())
}

/// A regular file (no symlink) that root owns and only root can write, in
/// root-owned directories only root can write. Returns its mode.
pub fn root_file(path: &Path, what: &str) -> Result<u32> {
    check_trusted_path(path, what)?;
    let meta = std::fs::symlink_metadata(path).or_fail(Code::Config, || {
        format!("cannot inspect {what} {}", path.display())
    })?;
    if meta.file_type().is_symlink() {
        return Err(Failure::config(format!(
            "{what} {} is a symbolic link: kubesu follows no links to its configuration",
            path.display()
        )));
    }
    check_root_owned(path, &meta, what)?;
    if !meta.is_file() {
        return Err(Failure::config(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    Ok(meta.mode() & 0o7777)
}

/// A directory that root owns and only root writes, which kubesu creates
/// if absent and which end users reach files in by name: the runtime
/// directory, the driver log directory. Checked on the opened directory,
/// not on a path that may have changed since.
#[derive(Debug, Clone, Copy)]
pub struct RootDir<'a> {
    /// Names it in errors: "runtime directory".
    pub what: &'a str,
    /// Its mode when kubesu creates it, and what errors tell to set.
    pub mode: u32,
}

/// Missing parents of a RootDir, as /run and /var/log themselves.
const ROOT_DIR_PARENT_MODE: u32 = 0o755;
/// Group and other write bits: either lets someone else swap entries.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// Other search bit: without it end users cannot reach their files.
const OTHER_SEARCH: u32 = 0o001;

impl RootDir<'_> {
    /// Open the directory, creating it root-owned with `mode` if missing
    /// (missing parents root-owned 0755), and refuse (`Failure::config`) a
    /// relative path, a symlink, a non-directory, or a directory not owned
    /// by root, writable by group or others, or not searchable by others.
    pub fn ensure(&self, path: &Path) -> Result<OwnedFd> {
        self.require_absolute(path)?;
        let fd = match open_dir(path) {
            Err(Errno::ENOENT) => {
                self.create(path)?;
                open_dir(path).map_err(|e| self.open_failure(path, e))?
            }
            opened => opened.map_err(|e| self.open_failure(path, e))?,
        };
        self.check(path, &fd)?;
        Ok(fd)
    }

    /// Open the directory (see `ensure`), which must exist.
    pub fn open(&self, path: &Path) -> Result<OwnedFd> {
        let fd = open_dir(path).map_err(|e| self.open_failure(path, e))?;
        self.check(path, &fd)?;
        Ok(fd)
    }

    /// `open`, but a missing directory is `None`.
    pub fn open_if_present(&self, path: &Path) -> Result<Option<OwnedFd>> {
        self.require_absolute(path)?;
        match open_dir(path) {
            Err(Errno::ENOENT) => Ok(None),
            opened => {
                let fd = opened.map_err(|e| self.open_failure(path, e))?;
                self.check(path, &fd)?;
                Ok(Some(fd))
            }
        }
    }

    pub fn require_absolute(&self, path: &Path) -> Result<()> {
        if path.is_absolute() {
            return Ok(());
        }
        Err(Failure::config(format!(
            "{} {} is not an absolute path; set an absolute {} in kubesu's config file",
            self.what,
            path.display(),
            self.what
        )))
    }

    fn unsafe_dir(&self, path: &Path, why: &str) -> Failure {
        Failure::config(format!(
            "{what} {} {why}; kubesu needs a real directory owned by root with mode {mode:04o}: \
             fix it (chown root:root, chmod {mode:04o}) or remove it, or configure another {what}",
            path.display(),
            what = self.what,
            mode = self.mode,
        ))
    }

    fn open_failure(&self, path: &Path, e: Errno) -> Failure {
        match e {
            // O_NOFOLLOW|O_DIRECTORY gives ELOOP or ENOTDIR for a symlink;
            // lstat only picks the message.
            Errno::ELOOP | Errno::ENOTDIR
                if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) =>
            {
                self.unsafe_dir(path, "is a symbolic link")
            }
            Errno::ELOOP | Errno::ENOTDIR => self.unsafe_dir(path, "is not a directory"),
            e => Failure::config(format!(
                "cannot open {} {}: {e}; check the {} in kubesu's config file",
                self.what,
                path.display(),
                self.what
            )),
        }
    }

    fn check(&self, path: &Path, fd: &OwnedFd) -> Result<()> {
        let stat = fstat(fd).or_fail(Code::Software, || {
            format!("cannot inspect {} {}", self.what, path.display())
        })?;
        let perms = stat.st_mode & 0o7777;
        if stat.st_uid != 0 {
            Err(self.unsafe_dir(path, &format!("is owned by uid {}, not root", stat.st_uid)))
        } else if perms & GROUP_OTHER_WRITE != 0 {
            Err(self.unsafe_dir(
                path,
                &format!("is writable by group or others (mode {perms:04o})"),
            ))
        } else if perms & OTHER_SEARCH == 0 {
            Err(self.unsafe_dir(
                path,
                &format!("cannot be entered by end users (mode {perms:04o})"),
            ))
        } else {
            Ok(())
        }
    }

    /// Create the missing directories down to `path`: parents 0755, `path`
    /// itself `mode`, all root-owned since root creates them.
    fn create(&self, path: &Path) -> Result<()> {
        let mut missing: Vec<&Path> = path
            .ancestors()
            .take_while(
                |p| matches!(p.symlink_metadata(), Err(e) if e.kind() == ErrorKind::NotFound),
            )
            .collect();
        missing.reverse();
        for dir in missing {
            let bits = if dir == path {
                self.mode
            } else {
                ROOT_DIR_PARENT_MODE
            };
            let failure = |e: &dyn std::fmt::Display| {
                Failure::config(format!(
                    "cannot create {} {}: {e}; create it as root with mode {bits:04o}, or \
                     configure another {}",
                    self.what,
                    dir.display(),
                    self.what
                ))
            };
            match DirBuilder::new().mode(bits).create(dir) {
                Ok(()) => {
                    // The umask may have narrowed the mode; users need the
                    // search bit.
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
}

/// Let `readers` read an opened file, or list and enter an opened
/// directory, through POSIX ACL entries (ACL_USER: read, plus search for a
/// directory) on top of its owner's; its owning group and others get
/// nothing, so the mode shows the mask: 0640 for a 0600 file, 0750 for a
/// 0700 directory. Readers can change nothing: neither the file nor the
/// directory's entries. One fstat(2) and one fsetxattr(2) on the
/// descriptor, so there is no path to redirect. Fails with EOPNOTSUPP
/// where the file system has no ACLs.
pub fn grant_read(fd: impl AsFd, readers: &[Uid]) -> nix::Result<()> {
    // The kernel's xattr form of an access ACL (linux/posix_acl_xattr.h):
    // a version, then (tag, permissions, id) entries sorted by tag, then
    // id, each id at most once.
    const VERSION: u32 = 2;
    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    const NO_ID: u32 = u32::MAX;
    const READ: u16 = 4;
    const WRITE: u16 = 2;
    const SEARCH: u16 = 1;
    let fd = fd.as_fd();
    let (owner, read) = if is_dir(&fstat(fd)?) {
        (READ | WRITE | SEARCH, READ | SEARCH)
    } else {
        (READ | WRITE, READ)
    };
    let mut ids: Vec<u32> = readers.iter().map(|u| u.as_raw()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut entries = vec![(USER_OBJ, owner, NO_ID)];
    entries.extend(ids.iter().map(|&id| (USER, read, id)));
    entries.extend([
        (GROUP_OBJ, 0, NO_ID),
        (MASK, read, NO_ID),
        (OTHER, 0, NO_ID),
    ]);
    let mut value = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        value.extend(tag.to_le_bytes());
        value.extend(perm.to_le_bytes());
        value.extend(id.to_le_bytes());
    }
    let name = c"system.posix_acl_access";
    // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of
    // the length passed; the kernel only reads them.
    let done = unsafe {
        nix::libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(done).map(drop)
}

/// Whether files in the opened directory `dir` take the ACL entries
/// `grant_read` writes, tried on an unnamed file (O_TMPFILE) that vanishes
/// with its descriptor: nothing appears in the directory. `None` when the
/// file system cannot make such a file, so the question stays open.
pub fn takes_acls(dir: impl AsFd) -> Option<bool> {
    let flags = OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC;
    let probe = openat(dir, ".", flags, mode(0o600)).ok()?;
    match grant_read(&probe, &[Uid::from_raw(NOBODY)]) {
        Ok(()) => Some(true),
        Err(Errno::EOPNOTSUPP) => Some(false),
        Err(_) => None,
    }
}

/// The overflow uid: an ACL entry for it grants nobody real anything.
const NOBODY: u32 = 65534;

/// Remove the file `name` (never a directory) from an opened directory;
/// a symlink there is removed itself. A missing entry is Ok.
pub fn remove_file_at<P: ?Sized + nix::NixPath>(dir: impl AsFd, name: &P) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::ENOENT) => Ok(()),
        done => done,
    }
}

/// Why `remove_tree_at` stopped.
#[derive(Debug)]
pub enum Removal {
    Sys(Errno),
    List(std::io::Error),
    TooDeep,
}

impl From<Errno> for Removal {
    fn from(e: Errno) -> Self {
        Removal::Sys(e)
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Sys(e) => write!(f, "{e}"),
            Removal::List(e) => write!(f, "cannot list a directory in it through /proc: {e}"),
            Removal::TooDeep => write!(f, "it nests directories deeper than {MAX_DEPTH} levels"),
        }
    }
}

/// Remove `name` in `parent` and everything below it, never following a
/// symlink: links are removed themselves; real subdirectories are entered
/// through descriptors, each first made root-owned 0700 so that their
/// owner can no longer add or move entries in it while it is emptied. A
/// missing entry is Ok.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<(), Removal> {
    remove_entry_at(parent, name, 0)
}

/// Remove `name` in the directory `parent`: a directory after emptying it,
/// anything else (a symlink included) by unlinking the entry itself.
fn remove_entry_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    depth: usize,
) -> std::result::Result<(), Removal> {
    let stat = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(()),
        stat => stat?,
    };
    let flag = if is_dir(&stat) {
        if depth >= MAX_DEPTH {
            return Err(Removal::TooDeep);
        }
        // O_NOFOLLOW|O_DIRECTORY: if the entry was swapped for a link since
        // fstatat, this fails rather than entering the link's target.
        let fd = match open_dir_at(parent, name) {
            Err(Errno::ENOENT) => return Ok(()),
            fd => fd?,
        };
        empty_dir(fd, depth)?;
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match unlinkat(parent, name, flag) {
        Err(Errno::ENOENT) => Ok(()),
        done => Ok(done?),
    }
}

fn empty_dir(fd: OwnedFd, depth: usize) -> std::result::Result<(), Removal> {
    // Root-owned 0700 first: the user can then neither add entries (which
    // could keep this loop busy forever) nor move entries out of it.
    fchown(&fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))?;
    fchmod(&fd, mode(LOCKED_DIR_MODE))?;
    let names = entry_names(&fd).map_err(Removal::List)?;
    for name in &names {
        remove_entry_at(fd.as_fd(), name, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_takes_acls_and_the_probe_leaves_nothing() {
        let dir = tempfile::tempdir_in("/dev/shm").expect("a directory on tmpfs");
        let fd = open_dir(dir.path()).expect("open");
        assert_eq!(takes_acls(&fd), Some(true));
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
