//! The run's control group (cgroup v2): where the command's whole tree
//! lives, whatever sessions, process groups or parents its processes take.
//! kubesu creates it beside its own cgroup, root-owned, and the command's
//! process moves itself in before it drops privileges; every process it
//! starts is born there and cannot leave (moving out takes write access to
//! root's cgroup files). Ending the tree is then one write to `cgroup.kill`,
//! and "the tree is gone" is the kernel's `populated 0`: zombies nobody
//! reaps do not count.
//!
//! The supervising kubesu holds an exclusive lock on the cgroup's
//! `cgroup.kill` (root's, mode 0200: nobody else can open it to take the
//! lock) for as long as it lives. The kernel drops the lock when kubesu
//! dies, however it dies: that is how `kubesu gc` knows a run's cgroup,
//! and what its command left in it, is abandoned.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;

/// A run's cgroup is `kubesu-<run>`.
const PREFIX: &str = "kubesu-";
/// How deep `abandoned` looks below the mount: kubesu's own cgroup is a
/// service's, a session's or a container's, never this deep.
const MAX_DEPTH: usize = 16;
/// A run's cgroup younger than this is never taken for abandoned: its
/// kubesu locks it a moment after making it.
const ABANDONED_AFTER: Duration = Duration::from_secs(10);
/// How long `end_abandoned` waits for KILLed processes to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub struct Cgroup {
    /// Where the cgroup v2 file system is mounted.
    mount: PathBuf,
    /// The cgroup's path inside it, as /proc/PID/cgroup shows it.
    path: String,
    /// `cgroup.procs`, opened before the fork: the child writes "0" to it.
    procs: File,
    /// `cgroup.kill`, locked for kubesu's life (Linux 5.14; None before).
    kill: Option<Flock<File>>,
}

impl Cgroup {
    /// A new cgroup for run `run`, as a child of kubesu's own. `Ok(None)`
    /// when the host has no cgroup v2 hierarchy (the tree is then tracked
    /// by its process group alone: see `sys::tree`).
    pub fn create(run: &str) -> io::Result<Option<Cgroup>> {
        let Some(mount) = cgroup2_mount()? else {
            return Ok(None);
        };
        let own = own_cgroup()?;
        let path = format!("{}/{PREFIX}{run}", own.trim_end_matches('/'));
        let dir = mount.join(path.trim_start_matches('/'));
        std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .and_then(|procs| Ok((procs, supervise(&dir)?)));
        match opened {
            Ok((procs, kill)) => Ok(Some(Cgroup {
                mount,
                path,
                procs,
                kill,
            })),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// `cgroup.procs` for the child (close-on-exec, as std opens files):
    /// writing "0" there moves the writer in.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    /// Whether a live process is left in it.
    pub fn populated(&self) -> bool {
        populated(&self.dir())
    }

    /// The pids in it now.
    pub fn members(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir().join("cgroup.procs"))
            .map(|procs| procs.lines().filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Whether process `pid` is in this cgroup (read after pinning it).
    pub fn holds(&self, pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.lines().any(|l| l.strip_prefix("0::") == Some(&self.path)))
    }

    /// Signal every process in it. Each pid is pinned with a pidfd and
    /// checked to be still in the cgroup first: one that exited and was
    /// reused outside is never signalled.
    pub fn signal(&self, signal: Signal) {
        for pid in self.members() {
            let _ = super::process::signal_pinned(pid, || self.holds(pid), signal);
        }
    }

    /// KILL everything in it at once (`cgroup.kill`, Linux 5.14); before
    /// that, member by member.
    pub fn kill(&self) {
        let killed = match &self.kill {
            Some(kill) => (&**kill).write_all(b"1"),
            None => Err(io::ErrorKind::Unsupported.into()),
        };
        if killed.is_err() {
            self.signal(Signal::SIGKILL);
        }
    }

    /// Remove it; it must be empty. Dropping does the same, silently.
    pub fn remove(self) -> io::Result<()> {
        std::fs::remove_dir(self.dir())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.dir());
    }
}

/// Lock the new cgroup's `cgroup.kill` for the supervisor's life; None
/// where the kernel has none (before 5.14: gc then never takes the cgroup
/// for abandoned). Waits only while a gc holds it for a moment.
fn supervise(dir: &Path) -> io::Result<Option<Flock<File>>> {
    let kill = match std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
    {
        Ok(kill) => kill,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Flock::lock(kill, FlockArg::LockExclusive)
        .map(Some)
        .map_err(|(_, e)| e.into())
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|events| events.lines().any(|l| l == "populated 1"))
        // Unreadable: assume the worst, the caller's wait is bounded.
        .unwrap_or(true)
}

/// A run's cgroup whose kubesu is gone (killed, or crashed), with whatever
/// the command's tree left in it.
#[derive(Debug)]
pub struct Abandoned {
    pub run: String,
    pub dir: PathBuf,
}

/// Every run cgroup on this host that no kubesu supervises and that is
/// older than `ABANDONED_AFTER`, wherever the kubesu that made it ran:
/// beside its own cgroup.
pub fn abandoned() -> io::Result<Vec<Abandoned>> {
    let Some(mount) = cgroup2_mount()? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    let mut below = vec![(mount, 0)];
    while let Some((dir, depth)) = below.pop() {
        // A cgroup removed meanwhile has nothing below it.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            match entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
            {
                Some(run) if unsupervised(&path) => found.push(Abandoned {
                    run: run.to_string(),
                    dir: path,
                }),
                Some(_) => {}
                None if depth < MAX_DEPTH => below.push((path, depth + 1)),
                None => {}
            }
        }
    }
    Ok(found)
}

fn unsupervised(dir: &Path) -> bool {
    let old_enough = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|made| made.elapsed().is_ok_and(|age| age >= ABANDONED_AFTER));
    old_enough
        && std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.kill"))
            .is_ok_and(|kill| Flock::lock(kill, FlockArg::LockExclusiveNonblock).is_ok())
}

/// End what is left in an abandoned run cgroup (`cgroup.kill`, under the
/// lock, so never a cgroup a kubesu supervises) and remove it.
pub fn end_abandoned(dir: &Path) -> io::Result<()> {
    let kill = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))?;
    let kill = Flock::lock(kill, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("a kubesu supervises it again ({e})"),
        )
    })?;
    (&*kill).write_all(b"1")?;
    let started = Instant::now();
    while populated(dir) && started.elapsed() < KILL_WAIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir(dir)
}

/// The mount point of the cgroup v2 hierarchy: /sys/fs/cgroup on current
/// systems, /sys/fs/cgroup/unified on hybrid ones.
fn cgroup2_mount() -> io::Result<Option<PathBuf>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo.lines().find_map(|line| {
        let (fields, tail) = line.split_once(" - ")?;
        if tail.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        fields.split_whitespace().nth(4).map(unescape_mount_path)
    }))
}

/// kubesu's own cgroup v2 path ("0::PATH" in /proc/self/cgroup).
fn own_cgroup() -> io::Result<String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")?;
    cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 entry"))
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], escaped) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// In the child, between fork and exec: move this process into the cgroup
/// whose `cgroup.procs` is `procs`. One write system call, nothing else.
pub fn join(procs: RawFd) -> nix::Result<()> {
    // SAFETY: the descriptor was opened before the fork and is still open.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(procs) };
    nix::unistd::write(fd, b"0").map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/sys/fs/cgroup/my\040dir\134x"),
            Path::new("/sys/fs/cgroup/my dir\\x")
        );
        assert_eq!(unescape_mount_path(r"/a\0"), Path::new(r"/a\0"));
        assert_eq!(unescape_mount_path("/"), Path::new("/"));
    }
}
