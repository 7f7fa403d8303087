//! The audit trail: one JSON object per record, on one line, to syslog (as
//! sudo logs) and/or appended to a root-owned file.
//!
//! Auditing never makes a finished job fail: every problem comes back as a
//! warning for the caller to print. Whether any destination took a record
//! comes back too: with `[audit] required`, a run whose start nobody
//! recorded does not start.

use std::fs::DirBuilder;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use crate::sys::fs::open_append;

/// The local syslog socket, as syslog(3) uses.
const SYSLOG_SOCKET: &str = "/dev/log";
/// Facility authpriv (10) * 8 + severity info (6), as sudo logs.
const SYSLOG_PRIORITY: u8 = 86;
const SYSLOG_TAG: &str = "kubesu";
/// A stalled syslog daemon must not hang kubesu: give up on it after this.
const SYSLOG_TIMEOUT: Duration = Duration::from_secs(2);
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Where audit records go (mirrors the config's [audit] section).
pub struct AuditSink<'a> {
    pub syslog: bool,
    pub file: Option<&'a Path>,
}

/// What became of one record.
pub struct Delivery {
    /// One sentence per destination that failed, for the caller to print.
    pub warnings: Vec<String>,
    /// At least one destination took the record.
    pub taken: bool,
}

/// Write one record (a JSON object) as a single line to syslog and/or the
/// file.
///
/// Syslog gets an RFC 3164 datagram `<86>kubesu[PID]: {json}` on /dev/log,
/// its argv cut to fit with the hash of the whole (`capped`); the file gets
/// the whole record.
/// The file is opened with O_APPEND|O_CREAT|O_NOFOLLOW (mode 0600, its
/// parent created 0700 if missing), must be a root-owned regular file with
/// one link and no group or other write bit, and gets each record in one
/// write(2) so concurrent runs never interleave lines.
pub fn record(sink: &AuditSink, event: &impl serde::Serialize) -> Delivery {
    record_to(sink, event, Path::new(SYSLOG_SOCKET))
}

fn record_to(sink: &AuditSink, event: &impl serde::Serialize, socket: &Path) -> Delivery {
    // Compact JSON escapes every control character, so this is one line.
    // Through a Value, so its keys come sorted as they always have.
    let value = serde_json::to_value(event);
    let line = match value
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_string(v).map_err(|e| e.to_string()))
    {
        Ok(line) => line,
        Err(e) => {
            return Delivery {
                warnings: vec![format!(
                    "cannot encode the audit record: {e}; nothing was logged for this run, \
                     please report this as a kubesu bug"
                )],
                taken: false,
            };
        }
    };
    let syslog = sink.syslog.then(|| {
        let fitting = match &value {
            Ok(value) if line.len() > SYSLOG_MAX_RECORD => capped(value),
            _ => line.clone(),
        };
        send_syslog(socket, &fitting)
    });
    let file = sink.file.map(|file| append(file, &line));
    let results: Vec<_> = [syslog, file].into_iter().flatten().collect();
    Delivery {
        taken: results.iter().any(std::result::Result::is_ok),
        warnings: results
            .into_iter()
            .filter_map(std::result::Result::err)
            .collect(),
    }
}

/// The longest record sent to syslog. A datagram larger than the socket's
/// buffer fails with EMSGSIZE (a caller's 300 KB argv did), and syslog
/// daemons cut long messages anyway (rsyslog at 8 KiB by default).
const SYSLOG_MAX_RECORD: usize = 7 * 1024;

/// The record with its argv cut to fit SYSLOG_MAX_RECORD: as many leading
/// arguments as fit, each at most 256 bytes, then `argv_truncated` and the
/// SHA-256 of the whole argv (as its JSON) so the file's full record can be
/// matched. Everything else (who, for whom, what program, where) is kept.
fn capped(record: &serde_json::Value) -> String {
    const MAX_ARG: usize = 256;
    let mut record = record.clone();
    let Some(fields) = record.as_object_mut() else {
        return record.to_string();
    };
    let Some(argv) = fields.remove("argv") else {
        return record.to_string();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, argv.to_string().as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    fields.insert("argv_sha256".into(), hex.into());
    fields.insert("argv_truncated".into(), true.into());
    fields.insert("argv".into(), serde_json::Value::Array(Vec::new()));
    // Each kept argument adds its JSON and a comma to the empty list.
    let mut room = SYSLOG_MAX_RECORD.saturating_sub(record.to_string().len());
    let mut kept = Vec::new();
    for arg in argv.as_array().into_iter().flatten() {
        let arg = match arg.as_str() {
            Some(text) if text.len() > MAX_ARG => {
                let cut = (0..=MAX_ARG)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                serde_json::Value::from(format!("{}…", &text[..cut]))
            }
            _ => arg.clone(),
        };
        let size = arg.to_string().len() + 1;
        if size > room {
            break;
        }
        room -= size;
        kept.push(arg);
    }
    if let Some(fields) = record.as_object_mut() {
        fields.insert("argv".into(), serde_json::Value::Array(kept));
    }
    record.to_string()
}

/// Written here rather than with the `syslog` crate: kubesu needs exactly
/// one datagram with a send timeout (a stalled daemon must not hang the
/// revoking parent), and the crate's stream fallback and its own header
/// formatting would add ways to block and nothing kubesu uses.
fn send_syslog(socket: &Path, line: &str) -> std::result::Result<(), String> {
    let message = format!(
        "<{SYSLOG_PRIORITY}>{SYSLOG_TAG}[{}]: {line}",
        std::process::id()
    );
    let warning = |e: std::io::Error| {
        format!(
            "cannot send the audit record to syslog through {}: {e}; the record is \
             missing from syslog: check that the syslog daemon (rsyslog or \
             systemd-journald) is running",
            socket.display()
        )
    };
    let sock = UnixDatagram::unbound().map_err(warning)?;
    sock.set_write_timeout(Some(SYSLOG_TIMEOUT))
        .map_err(warning)?;
    sock.send_to(message.as_bytes(), socket).map_err(warning)?;
    Ok(())
}

fn append(path: &Path, line: &str) -> std::result::Result<(), String> {
    let warning = |why: &dyn std::fmt::Display| {
        format!(
            "cannot write the audit record to {}: {why}; the record is missing from that \
             file: fix the file or the audit file setting in kubesu's config file",
            path.display()
        )
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(warning(&"it does not name a file"));
    };
    if !path.is_absolute() {
        return Err(warning(&"it is not an absolute path"));
    }
    match DirBuilder::new().mode(DIR_MODE).create(parent) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            return Err(warning(&format!(
                "cannot create its directory {}: {e}",
                parent.display()
            )));
        }
        _ => {}
    }
    let file = open_append(parent, name, FILE_MODE).map_err(|e| match e {
        Errno::ELOOP => warning(&"it is a symbolic link"),
        Errno::ENOTDIR if parent.symlink_metadata().is_ok_and(|m| m.is_symlink()) => warning(
            &format!("its directory {} is a symbolic link", parent.display()),
        ),
        e => warning(&e),
    })?;
    let meta = file.metadata().map_err(|e| warning(&e))?;
    if !meta.file_type().is_file() {
        return Err(warning(&"it is not a regular file"));
    }
    // A second link could be a hard link to a file the record must not
    // land in; a foreign owner or a write bit lets others forge the trail.
    if meta.nlink() != 1 || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(warning(&format!(
            "it must be a root-owned file with one link and no group or other write \
             permission (it has uid {}, mode {:04o}, {} links)",
            meta.uid(),
            meta.mode() & 0o7777,
            meta.nlink()
        )));
    }
    let mut record = line.to_owned();
    record.push('\n');
    // One write(2): with O_APPEND the kernel puts the whole record at the end
    // of the file at once.
    let written = (&file).write(record.as_bytes()).map_err(|e| warning(&e))?;
    if written != record.len() {
        return Err(warning(&format!(
            "only {written} of {} bytes were written (is the disk full?)",
            record.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    fn file_sink(path: &Path) -> AuditSink<'_> {
        AuditSink {
            syslog: false,
            file: Some(path),
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn audit_path() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.log");
        (tmp, path)
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn appends_one_line_per_record() {
        crate::sys::require_root();
        let (_tmp, path) = audit_path();
        let event = json!({"event": "run", "user": "alice", "note": "a\nb"});
        assert!(record(&file_sink(&path), &event).warnings.is_empty());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        assert_eq!(lines(&path), vec![event.clone()]);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));

        assert!(
            record(&file_sink(&path), &json!({"event": "end"}))
                .warnings
                .is_empty()
        );
        assert_eq!(lines(&path), vec![event, json!({"event": "end"})]);
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn creates_a_missing_parent_0700() {
        crate::sys::require_root();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kubesu/audit.log");
        assert!(
            record(&file_sink(&path), &json!({"a": 1}))
                .warnings
                .is_empty()
        );
        let meta = fs::metadata(tmp.path().join("kubesu")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!(lines(&path).len(), 1);
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn concurrent_records_stay_intact() {
        crate::sys::require_root();
        let (_tmp, path) = audit_path();
        let padding = "x".repeat(3000);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (path, padding) = (&path, &padding);
                s.spawn(move || {
                    for i in 0..50 {
                        let event = json!({"thread": t, "i": i, "pad": padding});
                        assert!(record(&file_sink(path), &event).warnings.is_empty());
                    }
                });
            }
        });
        let records = lines(&path);
        assert_eq!(records.len(), 400);
        for t in 0..8 {
            let mine: Vec<_> = records.iter().filter(|r| r["thread"] == t).collect();
            assert_eq!(mine.len(), 50);
            assert!(mine.iter().all(|r| r["pad"] == padding.as_str()));
        }
    }

    #[test]
    fn refuses_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::write(&target, "keep\n").unwrap();
        let link = tmp.path().join("audit.log");
        symlink(&target, &link).unwrap();
        let warnings = record(&file_sink(&link), &json!({"a": 1})).warnings;
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains(&link.display().to_string()),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("symbolic link"), "{warnings:?}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");

        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let dir_link = tmp.path().join("dirlink");
        symlink(&real, &dir_link).unwrap();
        let warnings = record(&file_sink(&dir_link.join("audit.log")), &json!({"a": 1})).warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("cannot write the audit record to "));
        assert!(warnings[0].contains("is a symbolic link"), "{warnings:?}");
        assert!(!real.join("audit.log").exists());
    }

    #[test]
    fn refuses_unsafe_files() {
        let (tmp, path) = audit_path();
        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            record(&file_sink(&path), &json!({"a": 1})).warnings.len(),
            1
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::hard_link(&path, tmp.path().join("other")).unwrap();
        assert_eq!(
            record(&file_sink(&path), &json!({"a": 1})).warnings.len(),
            1
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            record(&file_sink(&fifo), &json!({"a": 1})).warnings.len(),
            1
        );
        assert_eq!(
            record(&file_sink(Path::new("audit.log")), &json!({}))
                .warnings
                .len(),
            1
        );
    }

    #[test]
    fn a_huge_argv_reaches_syslog_cut_to_size_with_the_hash_of_the_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("log");
        let server = UnixDatagram::bind(&socket).unwrap();
        let argv: Vec<String> = (0..3000)
            .map(|i| format!("--conf=spark.x{i}={}", "y".repeat(90)))
            .collect();
        let event = json!({"event": "start", "user": "alice", "caller": {"name": "svc"},
                           "program": "/usr/bin/spark-submit", "argv": argv});
        let sink = AuditSink {
            syslog: true,
            file: None,
        };
        let delivery = record_to(&sink, &event, &socket);
        assert!(delivery.taken, "{:?}", delivery.warnings);
        let mut buf = vec![0u8; 64 * 1024];
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(text.split_once(": ").unwrap().1).unwrap();
        assert!(text.len() <= SYSLOG_MAX_RECORD + 64, "{}", text.len());
        assert_eq!(json["user"], "alice");
        assert_eq!(json["program"], "/usr/bin/spark-submit");
        assert_eq!(json["argv_truncated"], true);
        let kept = json["argv"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < 3000);
        assert_eq!(kept[0], event["argv"][0]);
        let whole =
            ring::digest::digest(&ring::digest::SHA256, event["argv"].to_string().as_bytes());
        let hex: String = whole.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(json["argv_sha256"], hex.as_str());
    }

    #[test]
    fn one_long_argument_is_cut_on_a_character_boundary() {
        let event = json!({"user": "alice", "argv": ["é".repeat(10_000)]});
        let line = capped(&event);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(line.len() <= SYSLOG_MAX_RECORD);
        assert!(json["argv"][0].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn sends_to_syslog() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("log");
        let server = UnixDatagram::bind(&socket).unwrap();
        let event = json!({"event": "run", "user": "alice"});
        let sink = AuditSink {
            syslog: true,
            file: None,
        };
        let delivery = record_to(&sink, &event, &socket);
        assert!(delivery.taken && delivery.warnings.is_empty());
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let want = format!("<86>kubesu[{}]: {event}", std::process::id());
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn missing_syslog_is_a_warning() {
        crate::sys::require_root();
        let (tmp, path) = audit_path();
        let sink = AuditSink {
            syslog: true,
            file: Some(&path),
        };
        let delivery = record_to(&sink, &json!({"a": 1}), &tmp.path().join("no-socket"));
        assert!(delivery.taken, "the file took it");
        let warnings = delivery.warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("syslog"), "{warnings:?}");
        // The file still gets the record.
        assert_eq!(lines(&path).len(), 1);
    }
}
