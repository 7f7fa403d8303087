//! The host's side of `kubesu check`: the config file, kubesu's
//! kubeconfig, the runtime directory, the run cgroups, the configured commands and the
//! sudoers drop-in, each root-owned and writable by nobody else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::report::Report;
use crate::failure::{Code, Context, Failure, Result};
use crate::policy::config::Config;
use crate::run::runtime_dir;
use crate::sys::cgroup::{self, Cgroup};
use crate::sys::fs;

const VISUDO: &str = "/usr/sbin/visudo";

pub fn config_checks(report: &mut Report, path: &Path) -> Option<Config> {
    let p = path.display();
    report.record(
        "config file",
        fs::root_file(path, "config file").map(|mode| format!("{p}: root-owned, mode {mode:04o}")),
        format!(
            "chown root:root {p} && chmod 0644 {p}, with every directory above it root-owned and not \
             writable by group or others"
        ),
    );
    // Parsed even if the file is not trusted: the administrator wants every
    // error at once, and check acts on nothing it reads.
    let parsed = fs::read_no_follow(path)
        .or_fail(Code::Config, || {
            format!("cannot read config file {}", path.display())
        })
        .and_then(|text| Config::parse(&text, path));
    match parsed {
        Ok(config) => {
            report.pass(
                "config",
                format!(
                    "parses: {} caller(s), {} command(s), namespace policy {:?} with template {:?}, \
                     ClusterRole {}",
                    config.callers.users.len(),
                    config.commands.len(),
                    config.namespace.policy,
                    config.namespace.template,
                    config.cluster.cluster_role
                ),
            );
            Some(config)
        }
        Err(mut failure) => {
            let tail = "fix the file and run `kubesu check`";
            if let Some(stripped) = failure.message.trim_end().strip_suffix(tail) {
                failure.message = stripped.trim_end().to_string();
            }
            report.fail(
                "config",
                failure,
                format!(
                    "edit {p} at the line and column shown (unknown keys are errors; see `man kubesu` and \
                     the example config)"
                ),
            );
            None
        }
    }
}

pub fn kubeconfig_file(path: &Path) -> Result<String> {
    let what = "kubesu's kubeconfig";
    let mode = fs::root_file(path, what)?;
    if mode & 0o077 != 0 {
        return Err(Failure::config(format!(
            "{what} {} is accessible to group or others (mode {mode:04o}): it holds kubesu's own, \
             powerful credentials",
            path.display()
        )));
    }
    Ok(format!("{}: root-owned, mode {mode:04o}", path.display()))
}

pub fn runtime_dir(dir: &Path) -> Result<String> {
    if let Some(fd) = runtime_dir::open_if_present(dir)? {
        if fs::takes_acls(&fd) == Some(false) {
            return Err(Failure::config(format!(
                "{} is on a file system without POSIX ACLs: users could not read their run's \
                 credentials, and every run would fail with exit 78",
                dir.display()
            )));
        }
        let mode = std::fs::symlink_metadata(dir)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or_default();
        Ok(format!("{}: root-owned, mode {mode:04o}", dir.display()))
    } else {
        Ok(format!(
            "{} does not exist yet: the first run creates it (root-owned, mode 0711)",
            dir.display()
        ))
    }
}

/// Whether runs get a cgroup of their own: one is made and removed, as a
/// run would.
pub fn process_tracking() -> Result<String> {
    let probe = format!("check-{}", std::process::id());
    match Cgroup::create(&probe) {
        Ok(Some(cgroup)) => {
            let dir = cgroup.dir();
            cgroup.remove().map_err(|e| {
                Failure::software(format!(
                    "cannot remove the probe cgroup {}: {e}",
                    dir.display()
                ))
            })?;
            let mut detail = format!(
                "each run's processes are held by a cgroup of its own, beside kubesu's ({})",
                dir.parent().unwrap_or(&dir).display()
            );
            // Not a fault of the setup: gc's work, shown so it is seen.
            let abandoned = cgroup::abandoned().map_or(0, |a| a.len());
            if abandoned > 0 {
                detail.push_str(&format!(
                    "; {abandoned} run cgroups were left by a kubesu that died: `kubesu gc` ends \
                     what is in them and removes them"
                ));
            }
            Ok(detail)
        }
        Ok(None) => Ok(
            "no cgroup v2 hierarchy: each run's processes are held by their process \
             group and kubesu's unreaped children"
                .to_string(),
        ),
        Err(e) => Err(Failure::config(format!(
            "cannot create a cgroup for runs ({e}): they would be tracked by their process group only"
        ))),
    }
}

/// A configured command: every entry on the way to it root-owned, the
/// directories not writable by group or others, and the file it resolves to
/// a root-owned executable nobody else can write.
pub fn command_file(path: &Path) -> Result<String> {
    let what = "command";
    if !path.is_absolute() {
        return Err(Failure::config(format!(
            "{what} {} is not an absolute path",
            path.display()
        )));
    }
    // The configured path as written: symlinks on the way must be root's.
    let mut walked = PathBuf::from("/");
    for part in path.components().skip(1) {
        walked.push(part);
        let meta = std::fs::symlink_metadata(&walked).or_fail(Code::Config, || {
            format!(
                "{what} {}: cannot inspect {}",
                path.display(),
                walked.display()
            )
        })?;
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 {
                return Err(Failure::config(format!(
                    "{what} {}: symbolic link {} is owned by uid {}, not root",
                    path.display(),
                    walked.display(),
                    meta.uid()
                )));
            }
        } else {
            fs::check_root_owned(
                &walked,
                &meta,
                &format!("on the way to {what} {},", path.display()),
            )?;
        }
    }
    let real = std::fs::canonicalize(path).or_fail(Code::Config, || {
        format!("{what} {}: cannot resolve it", path.display())
    })?;
    fs::check_trusted_path(&real, what)?;
    let meta = std::fs::metadata(&real).or_fail(Code::Config, || {
        format!("cannot inspect {what} {}", real.display())
    })?;
    fs::check_root_owned(&real, &meta, what)?;
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(Failure::config(format!(
            "{what} {} is not an executable file",
            real.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    Ok(if real == path {
        format!("root-owned, mode {mode:04o}")
    } else {
        format!("-> {}, root-owned, mode {mode:04o}", real.display())
    })
}

pub fn sudoers_check(report: &mut Report, path: &Path) {
    let name = "sudoers";
    let p = path.display();
    let fix = format!(
        "chown root:root {p} && chmod 0440 {p}, then correct it until `visudo -cf {p}` passes \
         (start from the sudoers.d/kubesu example)"
    );
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.pass(
                name,
                format!("{p} is absent: no service user can call kubesu through sudo yet"),
            );
            return;
        }
        Err(e) => {
            report.fail(
                name,
                Failure::config(format!("cannot inspect {p}: {e}")),
                fix,
            );
            return;
        }
        Ok(meta) => {
            let mut problems = Vec::new();
            if !meta.is_file() {
                problems.push("is not a regular file".to_string());
            }
            if meta.uid() != 0 {
                problems.push(format!("is owned by uid {}, not root", meta.uid()));
            }
            let mode = meta.mode() & 0o7777;
            if mode != 0o440 {
                problems.push(format!("has mode {mode:04o}, not 0440"));
            }
            if !problems.is_empty() {
                let failure = Failure::config(format!("{p} {}", problems.join(", ")));
                report.fail(name, failure, fix);
                return;
            }
        }
    }
    let visudo = Command::new(VISUDO)
        .args(["-c", "-f"])
        .arg(path)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output();
    match visudo {
        Ok(out) if out.status.success() => {
            report.pass(
                name,
                format!("{p}: visudo -cf passes; root-owned, mode 0440"),
            );
        }
        Ok(out) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let failure = Failure::config(format!("`visudo -cf {p}` fails: {}", said.trim()));
            report.fail(name, failure, fix);
        }
        Err(e) => {
            let failure = Failure::config(format!("cannot run {VISUDO} to check {p}: {e}"));
            report.fail(name, failure, "install sudo (it provides visudo)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::check::report::exit_status;

    #[test]
    fn sudoers_absent_passes_and_a_bad_mode_fails() {
        let mut report = Report::default();
        sudoers_check(&mut report, Path::new("/nonexistent/kubesu-sudoers"));
        assert!(report.rows[0].ok, "{:?}", report.rows);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubesu");
        std::fs::write(&file, "# nothing\n").unwrap();
        sudoers_check(&mut report, &file);
        assert!(!report.rows[1].ok);
        assert!(
            report.rows[1].detail.contains("not 0440"),
            "{:?}",
            report.rows[1]
        );
        assert_eq!(exit_status(&report.rows), 78);
    }

    #[test]
    fn commands_must_exist_and_be_root_owned() {
        assert!(command_file(Path::new("/nonexistent/kubesu-command")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        // Below the world-writable /tmp: never trusted.
        assert_eq!(command_file(&file).unwrap_err().code, Code::Config);
        let sh = command_file(Path::new("/bin/sh"));
        assert!(sh.is_ok(), "{sh:?}");
    }
}
