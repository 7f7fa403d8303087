//! The adversarial suite (issue 6): every attack on kubesu as a root helper,
//! each as a test, through real sudo where a platform would go through sudo.
//! docs/security.md maps each attack to what kubesu does and to its test.
//!
//! Runs that must be refused act for `frank`, whom no test ever lets run: so
//! "nothing left behind" is simply "no object and no file of frank's exists",
//! which holds even while other tests run concurrently. Tests that need the
//! command to run use `alice`.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::ListParams;

const SH: &str = "/usr/bin/sh";
const SPARK_SUBMIT: &str = "/var/cache/kubesu-testbed/pyspark-3.5/bin/spark-submit";
/// Only ever refused (tests/testbed/users.sh).
const FRANK: &str = "frank";
const RUNTIME: &str = "/run/kubesu";

// --- helpers ---------------------------------------------------------------

fn sudo(args: &[&str]) -> Output {
    output(&mut sudo_kubesu(args))
}

fn root(args: &[&str]) -> Output {
    output(&mut root_kubesu(args))
}

/// `kubesu run --user USER -- COMMAND...` through sudo.
fn sudo_run(user: &str, command: &[&str]) -> Output {
    let mut args = vec!["run", "--json", "--user", user, "--"];
    args.extend_from_slice(command);
    sudo(&args)
}

/// Refused with `code`, saying `says`, without running anything or panicking.
fn assert_refused(out: &Output, code: i32, says: &str, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert!(err.contains(says), "{what}: expected {says:?} in: {err}");
    assert!(!err.contains("panicked"), "{what}: kubesu panicked: {err}");
    assert!(
        out.stdout.is_empty(),
        "{what}: something ran: {}",
        stdout(out)
    );
}

/// No ServiceAccount, RoleBinding or namespace of `user` in the cluster and
/// no run directory of theirs under /run/kubesu.
async fn assert_nothing_left(user: &str) {
    let admin = admin_client().await;
    let selector = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by=kubesu,kubesu.io/user={}",
        kubesu::policy::naming::user_label(user)
    ));
    let accounts = Api::<ServiceAccount>::all(admin.clone())
        .list(&selector)
        .await
        .expect("list service accounts");
    assert!(
        accounts.items.is_empty(),
        "ServiceAccounts of {user} exist: {:?}",
        accounts
            .items
            .iter()
            .map(|a| &a.metadata.name)
            .collect::<Vec<_>>()
    );
    let bindings = Api::<RoleBinding>::all(admin.clone())
        .list(&selector)
        .await
        .expect("list role bindings");
    assert!(bindings.items.is_empty(), "RoleBindings of {user} exist");
    let namespace = kubesu::policy::naming::dns_label(&format!("kubesu-{user}"));
    assert!(
        Api::<Namespace>::all(admin)
            .get_opt(&namespace)
            .await
            .expect("get namespace")
            .is_none(),
        "namespace {namespace} was created"
    );
    if let Some(account) = nix::unistd::User::from_name(user).ok().flatten()
        && let Ok(entries) = std::fs::read_dir(RUNTIME)
    {
        // Run directories are root's: whom one is for, its ACL says.
        for entry in entries.flatten() {
            assert!(
                !acl_users(&entry.path()).contains(&account.uid.as_raw()),
                "{} is for {user}",
                entry.path().display()
            );
        }
    }
}

/// The uids a POSIX ACL (xattr system.posix_acl_access) names: a version
/// word, then 8-byte entries (tag, permissions, id); tag 2 is a named user.
fn acl_users(path: &Path) -> Vec<u32> {
    let name = c"system.posix_acl_access";
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut buf = [0u8; 1024];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        nix::libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new(); // no ACL (or gone meanwhile)
    };
    buf[4.min(n)..n]
        .chunks_exact(8)
        .filter(|e| u16::from_le_bytes([e[0], e[1]]) == 2)
        .map(|e| u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
        .collect()
}

/// Removes what a test planted, even when the test fails: links and files
/// themselves, directories with their content (never following a link).
struct Planted(Vec<PathBuf>);

impl Planted {
    fn new() -> Self {
        Planted(Vec::new())
    }

    fn add(&mut self, path: impl Into<PathBuf>) -> PathBuf {
        let path = path.into();
        remove(&path);
        self.0.push(path.clone());
        path
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            remove(path);
        }
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn tag(name: &str) -> String {
    format!("kubesu-security-{}-{name}", std::process::id())
}

/// The example config with `edit` applied.
fn config_text(edit: impl Fn(String) -> String) -> String {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .expect("example config");
    edit(example)
}

fn write_file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn make_dir(path: &Path, mode: u32, uid: u32) {
    std::fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
}

/// A root-owned config variant in /etc/kubesu, for a root shell's --config.
fn config_variant(planted: &mut Planted, name: &str, edit: impl Fn(String) -> String) -> String {
    install();
    let path = planted.add(format!("/etc/kubesu/test-{}.toml", tag(name)));
    write_file(&path, &config_text(edit), 0o644);
    path.to_string_lossy().into_owned()
}

fn with_runtime_dir(dir: &str) -> impl Fn(String) -> String {
    let dir = dir.to_string();
    move |text| text.replace("dir = \"/run/kubesu\"", &format!("dir = \"{dir}\""))
}

fn frank_uid() -> u32 {
    ids_of(FRANK).0
}

/// Run `program args` as `user` (no sudo, no setuid: just the user).
fn as_user(user: &str, program: &str, args: &[&str]) -> Output {
    install();
    let (uid, gid) = ids_of(user);
    output(
        Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .uid(uid)
            .gid(gid),
    )
}

// --- who runs kubesu -------------------------------------------------------

#[tokio::test]
async fn a_user_running_kubesu_directly_without_root_is_refused() {
    install();
    for user in [FRANK, SERVICE_USER] {
        let out = as_user(user, KUBESU, &["run", "--user", FRANK, "--", "id"]);
        assert_refused(&out, 77, "must run as root", user);
        for mode in [&["gc"][..], &["list"], &["revoke", "--user", FRANK]] {
            let out = as_user(user, KUBESU, mode);
            assert_refused(&out, 77, "must run as root", &format!("{user} {mode:?}"));
        }
    }
    assert_nothing_left(FRANK).await;
}

#[tokio::test]
async fn kubesu_installed_setuid_refuses_every_mode() {
    install();
    let mut planted = Planted::new();
    let dir = planted.add(format!("/var/tmp/{}", tag("setuid")));
    make_dir(&dir, 0o755, 0);
    let binary = dir.join("kubesu");
    std::fs::copy(KUBESU, &binary).expect("copy kubesu");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let binary = binary.to_str().expect("path");
    let run = as_user(FRANK, binary, &["run", "--user", FRANK, "--", "id"]);
    assert_refused(&run, 77, "setuid", "run");
    // Every mode, not only run: as root for anyone, check and rbac would read
    // any root-only file named by --config and quote it in their errors.
    for args in [
        &["check", "--config", "/etc/shadow"][..],
        &["rbac", "--config", "/etc/shadow"],
        &["check"],
        &["gc", "--dry-run"],
        &["list"],
        &["revoke", "--user", FRANK],
        &["--help"],
    ] {
        let out = as_user(FRANK, binary, args);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains("root:"),
            "{args:?} showed /etc/shadow to a user: {all}"
        );
        assert_refused(&out, 77, "setuid", &format!("{args:?}"));
    }
    assert_nothing_left(FRANK).await;
}

#[test]
fn an_empty_argv_is_a_usage_error_not_a_crash() {
    install();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("argc0.c");
    let program = dir.path().join("argc0");
    std::fs::write(
        &source,
        r#"#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char *none[] = { NULL };
    char *env[] = { "PATH=/usr/bin:/bin", NULL };
    if (argc < 2) return 2;
    execve(argv[1], none, env);
    perror("execve");
    return 127;
}
"#,
    )
    .expect("write C source");
    let cc = Command::new("gcc")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .output()
        .expect("gcc: apt-get install gcc");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    // As root (the kernel turns argc 0 into argv {""} since Linux 5.18) and as
    // a user: usage, exit 64, no panic, nothing run.
    let out = output(Command::new(&program).arg(KUBESU).env_clear());
    assert_refused(&out, 64, "Usage", "argc 0 as root");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = as_user(FRANK, program.to_str().expect("path"), &[KUBESU]);
    assert_refused(&out, 64, "Usage", "argc 0 as frank");
}

// --- the caller and its config ---------------------------------------------

#[tokio::test]
async fn callers_that_are_not_configured_or_are_forged_are_refused() {
    // mallory is not in sudoers: sudo itself refuses.
    let out = as_user(
        "mallory",
        "/usr/bin/sudo",
        &["-n", KUBESU, "run", "--user", FRANK, "--", "id"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    // What sudo would set, forged in a root shell: a name that is not the
    // uid's, a uid without a name.
    for env in [
        &[("SUDO_USER", SERVICE_USER), ("SUDO_UID", "3004")][..],
        &[("SUDO_UID", "2990")],
        &[("SUDO_USER", SERVICE_USER), ("SUDO_UID", "abc")],
    ] {
        let out = output(root_kubesu(&["run", "--user", FRANK, "--", "id"]).envs(env.to_vec()));
        assert_refused(&out, 77, "", &format!("{env:?}"));
    }
    assert_nothing_left(FRANK).await;
}

#[tokio::test]
async fn config_passed_through_sudo_is_refused_in_every_form() {
    for args in [
        &[
            "run",
            "--config=/tmp/mine.toml",
            "--user",
            FRANK,
            "--",
            "id",
        ][..],
        &[
            "run",
            "--user",
            FRANK,
            "--config",
            "/tmp/mine.toml",
            "--",
            "id",
        ],
        // Even the default path: through sudo the file is never chosen.
        &["run", "--user", FRANK, "--config", CONFIG, "--", "id"],
    ] {
        let out = sudo(args);
        assert_refused(&out, 77, "--config", &format!("{args:?}"));
    }
    // Not allowed by sudoers at all: options before `run`, other modes.
    for args in [
        &[
            "--config=/tmp/mine.toml",
            "run",
            "--user",
            FRANK,
            "--",
            "id",
        ][..],
        &["check", "--config", "/etc/shadow"],
        &["gc"],
        &["revoke", "--user", "alice"],
    ] {
        let out = sudo(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_nothing_left(FRANK).await;
}

#[tokio::test]
async fn a_config_anyone_but_root_could_change_is_refused() {
    install();
    let mut planted = Planted::new();
    let text = config_text(|t| t);
    let frank = frank_uid();
    let mut cases: Vec<(String, &str)> = Vec::new();

    let group_writable = planted.add(format!("/etc/kubesu/test-{}.toml", tag("gw")));
    write_file(&group_writable, &text, 0o664);
    cases.push((group_writable.display().to_string(), "writable"));

    let world_writable = planted.add(format!("/etc/kubesu/test-{}.toml", tag("ww")));
    write_file(&world_writable, &text, 0o646);
    cases.push((world_writable.display().to_string(), "writable"));

    let franks = planted.add(format!("/etc/kubesu/test-{}.toml", tag("frank")));
    write_file(&franks, &text, 0o644);
    std::os::unix::fs::chown(&franks, Some(frank), None).expect("chown");
    cases.push((franks.display().to_string(), "owned by uid"));

    let link = planted.add(format!("/etc/kubesu/test-{}.toml", tag("link")));
    symlink(CONFIG, &link).expect("symlink");
    cases.push((link.display().to_string(), "cannot open"));

    for (name, mode, owner, says) in [
        ("gw-dir", 0o775, 0, "writable"),
        ("ww-dir", 0o1777, 0, "writable"),
        ("frank-dir", 0o755, frank, "owned by uid"),
    ] {
        let dir = planted.add(format!("/etc/{}", tag(name)));
        make_dir(&dir, mode, owner);
        write_file(&dir.join("config.toml"), &text, 0o644);
        cases.push((dir.join("config.toml").display().to_string(), says));
    }
    // A root-owned directory below one frank owns: frank could rename it away.
    let deep = planted.add(format!("/etc/{}", tag("deep")));
    make_dir(&deep, 0o755, frank);
    make_dir(&deep.join("sub"), 0o755, 0);
    write_file(&deep.join("sub/config.toml"), &text, 0o644);
    cases.push((
        deep.join("sub/config.toml").display().to_string(),
        "owned by uid",
    ));
    // A symlinked directory above the file.
    let linked_dir = planted.add(format!("/etc/{}", tag("dirlink")));
    symlink("/etc/kubesu", &linked_dir).expect("symlink");
    cases.push((
        linked_dir.join("config.toml").display().to_string(),
        "not a directory",
    ));

    for (path, says) in &cases {
        let out = root(&["run", "--config", path, "--user", FRANK, "--", "id"]);
        assert_refused(&out, 78, says, path);
    }
    assert_nothing_left(FRANK).await;
}

// --- the target user -------------------------------------------------------

#[tokio::test]
async fn target_user_names_that_are_not_plain_login_names_are_refused() {
    let long = "f".repeat(300);
    let cases: Vec<(String, i32, &str)> = vec![
        // uid 0 under another name, in kubesu-users.
        ("toor".into(), 77, "root"),
        // Numeric ids are never names (sudo's -u#-1, CVE-2019-14287).
        ("3008".into(), 65, "refused"),
        ("#3008".into(), 65, "refused"),
        ("#-1".into(), 65, "refused"),
        ("-1".into(), 65, "refused"),
        ("0".into(), 65, "refused"),
        ("4294967295".into(), 65, "refused"),
        ("FRANK".into(), 65, "refused"),
        ("Frank".into(), 65, "refused"),
        ("fr.ank".into(), 65, "refused"),
        ("frank.".into(), 65, "refused"),
        ("-frank".into(), 65, "refused"),
        ("../frank".into(), 65, "refused"),
        ("frank ".into(), 65, "refused"),
        ("frank\n".into(), 65, "refused"),
        ("frank:x".into(), 65, "refused"),
        ("".into(), 65, "refused"),
        (long, 65, "refused"),
        ("fränk".into(), 65, "refused"),
        ("frаnk".into(), 65, "refused"), // Cyrillic а
    ];
    for (user, code, says) in &cases {
        let out = sudo(&["run", &format!("--user={user}"), "--", "id"]);
        assert_refused(&out, *code, says, &format!("--user {user:?}"));
    }
    // -u0, as sudo spells it.
    assert_refused(&sudo(&["run", "-u0", "--", "id"]), 65, "refused", "-u0");
    // Not UTF-8: clap refuses it as a usage error.
    let out = output(
        sudo_kubesu(&["run"])
            .arg(OsStr::from_bytes(b"--user=fr\xffank"))
            .args(["--", "id"]),
    );
    assert_refused(&out, 64, "", "non-UTF-8 user");
    for user in [FRANK, "toor"] {
        assert_nothing_left(user).await;
    }
}

#[tokio::test]
async fn teams_the_user_is_not_in_or_that_are_not_names_are_refused() {
    for (team, code, says) in [
        ("team-red", 77, "not a member"),
        ("root", 77, "not a team"),
        ("no-such-team", 77, "not a team"),
        ("team-none", 77, "not a group"),
        ("1002", 65, "refused"),
        ("0", 65, "refused"),
        ("TEAM-RED", 65, "refused"),
        ("team.red", 65, "refused"),
        ("-team", 65, "refused"),
    ] {
        let out = sudo(&[
            "run",
            "--user",
            FRANK,
            &format!("--team={team}"),
            "--",
            "id",
        ]);
        assert_refused(&out, code, says, &format!("--team {team}"));
    }
    assert_nothing_left(FRANK).await;
}

#[test]
fn names_that_collide_after_mangling_get_different_namespaces() {
    let plan = |user: &str| {
        let out = sudo(&["run", "--dry-run", "--user", user, "--", "id"]);
        assert_eq!(out.status.code(), Some(0), "{user}: {}", stderr(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan");
        (
            plan["namespace"].as_str().expect("namespace").to_string(),
            plan["objects"][1].as_str().expect("sa").to_string(),
        )
    };
    let (underscore, underscore_sa) = plan("a_b");
    let (dash, dash_sa) = plan("a-b");
    assert_eq!(dash, "kubesu-a-b");
    assert!(underscore.starts_with("kubesu-a-b--"), "{underscore}");
    assert_ne!(underscore, dash);
    assert_ne!(underscore_sa, dash_sa);
    for name in [&underscore, &dash, &underscore_sa, &dash_sa] {
        let name = name.rsplit('/').next().expect("name");
        assert!(
            name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name} is not a DNS-1123 label"
        );
    }
}

// --- the environment -------------------------------------------------------

const HOSTILE: &[(&str, &str)] = &[
    ("LD_PRELOAD", "/nonexistent/evil.so"),
    ("LD_LIBRARY_PATH", "/tmp"),
    ("LD_AUDIT", "/nonexistent/audit.so"),
    ("KUBECONFIG", "/tmp/mine"),
    ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
    ("KUBERNETES_SERVICE_PORT", "443"),
    ("SPARK_CONF_DIR", "/tmp/conf"),
    ("SPARK_HOME", "/tmp/spark"),
    ("BASH_FUNC_id%%", "() { echo pwned; }"),
    ("BASH_ENV", "/tmp/evil.sh"),
    ("ENV", "/tmp/evil.sh"),
    ("IFS", "x"),
    ("TZ", "../../../etc/shadow"),
    ("LC_ALL", "../../tmp/evil"),
    ("JAVA_TOOL_OPTIONS", "-javaagent:/tmp/evil.jar"),
    ("KUBESU_NAMESPACE", "kube-system"),
    ("HOME", "/tmp"),
];

fn assert_clean_environment(env: &str, what: &str) {
    for (name, value) in HOSTILE {
        let exact = format!("{name}={value}");
        assert!(
            !env.lines().any(|l| l == exact) && (value.len() <= 4 || !env.contains(value)),
            "{what}: {name}={value} reached the command:\n{env}"
        );
    }
    for name in [
        "LD_",
        "BASH_FUNC",
        "SPARK_CONF_DIR",
        "SPARK_HOME",
        "IFS=",
        "TZ=",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(name)),
            "{what}: {name} reached the command:\n{env}"
        );
    }
    assert!(env.contains("PLATFORM_JOB_ID=job-42"), "{what}: keep list");
}

#[test]
fn a_hostile_environment_through_sudo_does_not_reach_the_command() {
    let out = output(
        sudo_kubesu(&["run", "--user", "alice", "--", "env"])
            .envs(HOSTILE.to_vec())
            .env("PLATFORM_JOB_ID", "job-42"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_clean_environment(&stdout(&out), "through sudo");
    // sudo itself refuses variables on its command line (!setenv).
    let out = output(&mut sudo_kubesu(&[
        "LD_PRELOAD=/nonexistent/evil.so",
        "run",
        "--user",
        FRANK,
        "--",
        "id",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_hostile_environment_from_a_root_shell_does_not_reach_the_command() {
    let out = output(
        root_kubesu(&["run", "--user", "alice", "--", "env"])
            .envs(HOSTILE.to_vec())
            .env("PLATFORM_JOB_ID", "job-42"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_clean_environment(&stdout(&out), "from root");
    // SPARK_HOME reaches spark-submit only as the config sets it.
    let out = output(
        root_kubesu(&[
            "run",
            "--dry-run",
            "--user",
            FRANK,
            "--",
            SPARK_SUBMIT,
            "app.py",
        ])
        .envs(HOSTILE.to_vec()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan");
    let env: Vec<&str> = plan["environment"]
        .as_array()
        .expect("environment")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.iter()
            .any(|v| v.starts_with("SPARK_HOME=/var/cache/kubesu-testbed/")),
        "{env:?}"
    );
    assert!(!env.iter().any(|v| v.contains("/tmp")), "{env:?}");
}

#[tokio::test]
async fn a_path_with_fake_programs_changes_nothing_kubesu_runs() {
    install();
    let mut planted = Planted::new();
    let fake = planted.add(format!("/var/tmp/{}", tag("fakebin")));
    make_dir(&fake, 0o755, 0);
    let marker = planted.add(format!("/var/tmp/{}", tag("fake-ran")));
    for name in ["id", "spark-submit", "kubectl", "env"] {
        write_file(
            &fake.join(name),
            &format!("#!/bin/sh\ntouch {}\necho FAKE\n", marker.display()),
            0o755,
        );
    }
    let path = format!("{}:/usr/bin:/bin", fake.display());
    // A root shell's PATH: the command is looked up in the configured PATH.
    let out = output(root_kubesu(&["run", "--user", "alice", "--", "id"]).env("PATH", &path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("uid=3001(alice)"),
        "{}",
        stdout(&out)
    );
    let out =
        output(root_kubesu(&["run", "--dry-run", "--user", FRANK, "--", "id"]).env("PATH", &path));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan");
    assert_eq!(plan["program"], "/usr/bin/id");
    // A bare spark-submit is not in the secure PATH: refused, the fake not run.
    let out = output(
        root_kubesu(&["run", "--user", FRANK, "--", "spark-submit", "app.py"]).env("PATH", &path),
    );
    assert_refused(&out, 64, "secure PATH", "bare spark-submit");
    // Through sudo the caller's PATH is sudo's secure_path, then kubesu's.
    let out = output(sudo_kubesu(&["run", "--user", "alice", "--", "id"]).env("PATH", &path));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("uid=3001(alice)"),
        "{}",
        stdout(&out)
    );
    // The fake path itself is not a configured command.
    let fake_id = fake.join("id");
    let out = sudo(&[
        "run",
        "--user",
        FRANK,
        "--",
        fake_id.to_str().expect("path"),
    ]);
    assert_refused(&out, 77, "not allowed", "absolute fake path");
    assert!(!marker.exists(), "a fake program ran");
    assert_nothing_left(FRANK).await;
}

// --- arguments -------------------------------------------------------------

#[tokio::test]
async fn forbidden_spark_settings_are_refused_through_sudo() {
    // Every key in every syntax is unit-tested in src/policy/spark/tests.rs and
    // property-tested in tests/properties.rs; these go the whole way.
    for args in [
        &["--conf", " spark.master =local", "app.py"][..],
        &["--conf=spark.kubernetes.namespace=kube-system", "app.py"],
        &["-c", "spark.kubernetes.context=admin", "app.py"],
        &["--master=k8s://https://evil:6443", "app.py"],
        &[
            "--conf",
            "spark.kubernetes.authenticate.submission.oauthTokenFile=/etc/kubesu/kubeconfig",
            "app.py",
        ],
        &[
            "--conf",
            "spark.kubernetes.driver.label.kubesu.io/run=x",
            "app.py",
        ],
        &["--driver-java-options", "-Dspark.master=local", "app.py"],
        &[
            "--conf",
            "spark.driver.extraJavaOptions=-Dspark.kubernetes.namespace=default",
            "app.py",
        ],
        &["--proxy-user=root", "app.py"],
        &[
            "--class",
            "org.apache.spark.repl.Main",
            "x",
            "--master",
            "local",
        ],
        &[
            "--conf",
            "spark.kubernetes.driver.podTemplateFile=/tmp/p.yaml",
            "app.py",
        ],
        &["--unknown-option", "app.py"],
    ] {
        let mut command = vec![SPARK_SUBMIT];
        command.extend_from_slice(args);
        let out = sudo_run(FRANK, &command);
        assert_refused(&out, 65, "spark-submit argument", &format!("{args:?}"));
    }
    assert_nothing_left(FRANK).await;
}

/// A file of `owner` with mode `mode` in a fresh directory anyone can
/// enter (only the file's own mode decides who reads it).
fn properties_file(dir: &Path, name: &str, text: &str, owner: u32, mode: u32) -> String {
    let path = dir.join(name);
    write_file(&path, text, mode);
    std::os::unix::fs::chown(&path, Some(owner), None).expect("chown");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_properties_file_is_read_as_the_user_and_refused_whole_if_one_setting_is() {
    install();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let frank = frank_uid();
    let harmless = "spark.app.name=fine\n";
    // Root could read these; frank cannot, so kubesu does not read them for
    // him: the user's rights decide, never root's.
    let root_only = properties_file(dir.path(), "root-only.conf", harmless, 0, 0o600);
    for path in [root_only.as_str(), "/etc/kubesu/kubeconfig"] {
        let out = sudo_run(FRANK, &[SPARK_SUBMIT, "--properties-file", path, "app.py"]);
        assert_refused(&out, 65, "cannot be read as user frank", path);
        assert!(
            stderr(&out).contains("Permission denied"),
            "{}",
            stderr(&out)
        );
    }
    let out = sudo_run(
        FRANK,
        &[
            SPARK_SUBMIT,
            "--properties-file",
            &dir.path().to_string_lossy(),
            "app.py",
        ],
    );
    assert_refused(&out, 65, "not a regular file", "a directory");

    // One refused setting among harmless ones refuses the whole file,
    // naming the line, in whichever syntax Java would read it.
    for (text, says) in [
        (
            "spark.app.name=x\nspark.kubernetes.namespace=kube-system\n",
            "line 2 sets \"spark.kubernetes.namespace\"",
        ),
        (
            "# hidden?\nspark.mas\\\n   ter : local\n",
            "line 2 sets \"spark.master\"",
        ),
        (
            "spark.app.name=x\r\nspark.authenticate false\r\n",
            "the administrator forces it",
        ),
        (
            "spark.driver.extraJavaOptions=-Dspark.kubernetes.namespace=default",
            "line 1 sets \"spark.driver.extraJavaOptions\"",
        ),
    ] {
        let path = properties_file(dir.path(), "refused.conf", text, frank, 0o600);
        let out = sudo_run(FRANK, &[SPARK_SUBMIT, "--properties-file", &path, "app.py"]);
        assert_refused(&out, 65, says, text);
        assert!(
            stderr(&out).contains(&format!("properties file \"{path}\" is refused")),
            "{}",
            stderr(&out)
        );
        std::fs::remove_file(&path).expect("remove");
    }
    assert_nothing_left(FRANK).await;
}

/// tests/properties.rs found it: an inline `--option=value` made kubesu skip
/// the next argument, so a forbidden setting right after one was passed on,
/// after the forced ones, where spark-submit lets it win.
#[tokio::test]
async fn an_inline_option_value_does_not_hide_a_forbidden_setting() {
    for args in [
        &["--name=x", "--master", "k8s://https://evil:6443", "app.py"][..],
        &[
            "--deploy-mode=cluster",
            "--conf",
            "spark.kubernetes.namespace=kube-system",
            "app.py",
        ],
    ] {
        let mut command = vec!["run", "--dry-run", "--user", FRANK, "--", SPARK_SUBMIT];
        command.extend_from_slice(args);
        let out = sudo(&command);
        assert_refused(&out, 65, "spark-submit argument", &format!("{args:?}"));
    }
    assert_nothing_left(FRANK).await;
}

#[tokio::test]
async fn double_dash_tricks_do_not_change_user_or_command() {
    for (args, code, says) in [
        // The second `--` is the command's name, not a separator.
        (
            &["run", "--user", FRANK, "--", "--", "id"][..],
            64,
            "not found",
        ),
        (&["run", "--", "--user", "root", "id"], 64, "--user"),
        (
            &["run", "--user", FRANK, "--user", "root", "--", "id"],
            64,
            "--user",
        ),
        (
            &["run", "--user", "root", "--user", FRANK, "--", "id"],
            64,
            "--user",
        ),
        (
            &["run", "--user", FRANK, "--", "--user=root"],
            64,
            "not found",
        ),
        (
            &["run", "--user", FRANK, "--", "-u", "root", "id"],
            64,
            "not found",
        ),
        (&["run", "--user", "--", FRANK, "id"], 64, ""),
        (&["run", "--user", FRANK, "id"], 64, ""),
    ] {
        let out = sudo(args);
        assert_refused(&out, code, says, &format!("{args:?}"));
    }
    // `--user=alice` is the same as `--user alice`, and kubesu's options after
    // `--` belong to the command.
    let out = sudo(&[
        "run",
        "--user=alice",
        "--",
        SH,
        "-c",
        "id -un; echo \"$@\"",
        "sh",
        "--user",
        "root",
        "--config",
        "/tmp/mine.toml",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "alice\n--user root --config /tmp/mine.toml --dry-run\n"
    );
    assert_nothing_left(FRANK).await;
}

#[test]
fn arguments_with_newlines_and_binary_bytes_reach_the_command_unchanged() {
    let all_bytes: Vec<u8> = (1..=255u8).collect();
    let args: Vec<&[u8]> = vec![
        b"line one\nline two\n",
        b"\r\n\t\x0b\x0c",
        &all_bytes,
        b"\xff\xfe not UTF-8 \xc3\x28",
        b"$(touch /tmp/pwned) `id` ; id | id && id",
        b"\\",
        b"'\"",
        b"*",
        b"",
        b"--user",
        b"root",
        b"\x1b[31mred\x1b]0;title\x07",
    ];
    let mut command = sudo_kubesu(&[
        "run",
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "for a; do printf '%s' \"$a\"; printf '\\0'; done",
        "sh",
    ]);
    for arg in &args {
        command.arg(OsStr::from_bytes(arg));
    }
    let out = output(&mut command);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected: Vec<u8> = args
        .iter()
        .flat_map(|a| a.iter().chain(b"\0"))
        .copied()
        .collect();
    assert_eq!(out.stdout, expected, "the arguments changed on the way");
    // The audit trail stays one JSON object per line, whatever the arguments.
    let run = run_record(&out)["run"].as_str().expect("run").to_string();
    let records = audit_records(&run);
    assert_eq!(records.len(), 2, "start and end records for {run}");
    assert!(
        records[0]["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .any(|a| a == "line one\nline two\n")
    );
}

#[test]
fn a_mebibyte_of_arguments_is_passed_on() {
    let chunk = "x".repeat(64 * 1024);
    let mut command = sudo_kubesu(&[
        "run",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "echo $#; for a; do printf %s \"$a\"; done | wc -c",
        "sh",
    ]);
    for _ in 0..16 {
        command.arg(&chunk);
    }
    let out = output(&mut command);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "16\n1048576\n");
    // The Spark policy reads every one of them, and still refuses at the end.
    let mut command = sudo_kubesu(&["run", "--user", FRANK, "--", SPARK_SUBMIT]);
    for _ in 0..16 {
        command.args(["--name", &chunk[..64 * 1024 - 16]]);
    }
    command.args(["--master", "local", "app.py"]);
    let out = output(&mut command);
    assert_refused(&out, 65, "--master", "1 MiB then --master");
    assert!(stderr(&out).len() < 2000, "the message quotes too much");
}

// --- the runtime directory -------------------------------------------------

#[tokio::test]
async fn an_unsafe_runtime_directory_is_refused_before_anything_is_created() {
    install();
    let mut planted = Planted::new();
    let frank = frank_uid();
    // A root-owned 0711 directory a link points at: it must stay empty.
    let target = planted.add(format!("/run/{}", tag("target")));
    make_dir(&target, 0o711, 0);
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let link = planted.add(format!("/run/{}", tag("link")));
    symlink(&target, &link).expect("symlink");
    cases.push((link, "symbolic link"));
    let dangling = planted.add(format!("/run/{}", tag("dangling")));
    symlink(format!("/run/{}", tag("nowhere")), &dangling).expect("symlink");
    cases.push((dangling, "symbolic link"));
    for (name, mode, owner, says) in [
        ("franks", 0o711, frank, "owned by uid"),
        ("open", 0o777, 0, "writable"),
        ("sticky", 0o1777, 0, "writable"),
        ("group", 0o731, 0, "writable"),
        ("closed", 0o700, 0, "cannot be entered"),
    ] {
        let dir = planted.add(format!("/run/{}", tag(name)));
        make_dir(&dir, mode, owner);
        cases.push((dir, says));
    }
    let file = planted.add(format!("/run/{}", tag("file")));
    write_file(&file, "", 0o644);
    cases.push((file, "not a directory"));

    for (dir, says) in &cases {
        let dir = dir.to_str().expect("path");
        let config = config_variant(&mut planted, "runtime", with_runtime_dir(dir));
        let out = root(&["run", "--config", &config, "--user", FRANK, "--", "id"]);
        assert_refused(&out, 78, says, dir);
        assert_refused(&out, 78, "runtime directory", dir);
        assert_nothing_left(FRANK).await;
    }
    assert_eq!(
        std::fs::read_dir(&target).expect("target").count(),
        0,
        "kubesu wrote through the link"
    );
    assert!(!Path::new(&format!("/run/{}", tag("nowhere"))).exists());
}

#[test]
fn a_missing_runtime_directory_is_created_root_owned_0711() {
    let mut planted = Planted::new();
    let parent = planted.add(format!("/run/{}", tag("fresh")));
    let dir = parent.join("rt");
    let config = config_variant(
        &mut planted,
        "fresh",
        with_runtime_dir(dir.to_str().expect("path")),
    );
    let out = root(&[
        "run",
        "--config",
        &config,
        "--user",
        "alice",
        "--",
        "/usr/bin/true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (path, mode) in [(&parent, 0o755), (&dir, 0o711)] {
        let meta = std::fs::symlink_metadata(path).expect("created");
        assert!(meta.is_dir());
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, mode), "{path:?}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).expect("rt").count(),
        0,
        "run directory left"
    );
}

#[test]
fn links_planted_in_the_run_directory_are_removed_not_followed() {
    install();
    let mut planted = Planted::new();
    let victim = planted.add(format!("/var/tmp/{}", tag("victim")));
    make_dir(&victim, 0o755, 0);
    write_file(&victim.join("file"), "precious\n", 0o644);
    make_dir(&victim.join("dir"), 0o755, 0);
    write_file(&victim.join("dir/inner"), "precious\n", 0o644);
    // As the user, inside the run: replace the handed-over files with links to
    // root's files, plant links to directories, nest directories. The run
    // directory is root's, so each is refused; the removal through
    // descriptors is what still protects against run directories of older
    // versions, which were the user's (`run/handover.rs
    // remove_deletes_links_not_their_targets` plants them as root).
    let script = format!(
        r#"
        dir=$(dirname "$KUBECONFIG")
        ln -sf {victim}/file "$dir/token" 2>/dev/null && echo planted
        ln -sf {victim}/file "$dir/kubeconfig" 2>/dev/null && echo planted
        ln -s {victim}/dir "$dir/link-to-dir" 2>/dev/null && echo planted
        ln -s {victim} "$dir/link-to-victim" 2>/dev/null && echo planted
        mkdir -p "$dir/a/b/c" 2>/dev/null && echo planted
        mkdir /run/kubesu/planted 2>/dev/null && echo created-in-runtime
        echo "$dir"
        "#,
        victim = victim.display()
    );
    let out = sudo_run("alice", &[SH, "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = stdout(&out).trim().to_string();
    assert!(dir.starts_with("/run/kubesu/"), "{dir}");
    assert!(!Path::new(&dir).exists(), "the run directory is left");
    assert_eq!(
        std::fs::read_to_string(victim.join("file")).expect("victim file"),
        "precious\n"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("dir/inner")).expect("victim dir"),
        "precious\n"
    );
    assert_eq!(run_record(&out)["revoked"], true);
}

/// The run directory is on /run, a tmpfs the whole host shares: the
/// command must not be able to put anything there, nor grow, replace or
/// re-permission what kubesu handed over, while reading it still works.
#[test]
fn the_command_cannot_fill_or_change_its_run_directory() {
    let script = r#"
        dir=$(dirname "$KUBECONFIG")
        try() { name=$1; shift; out=$("$@" 2>&1) && echo "$name: done" || echo "$name: $out"; }
        try create touch "$dir/x"
        try fill dd if=/dev/zero of="$dir/fill" bs=1M count=4
        try grow dd if=/dev/zero of="$dir/token" bs=1M count=4 oflag=append conv=notrunc
        try replace mv "$dir/token" "$dir/old-token"
        try delete rm -f "$dir/ca.crt"
        try open-dir chmod 0777 "$dir"
        try open-file chmod 0666 "$dir/kubeconfig"
        echo "size: $(du -sk "$dir" | cut -f1)"
        head -c 1 "$KUBECONFIG" >/dev/null && echo kubeconfig-read
        ls "$dir" >/dev/null && echo listed
        kubectl get pods >/dev/null && echo kubectl-works
    "#;
    let out = sudo_run("alice", &[SH, "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let said = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    for name in ["create", "fill", "grow", "replace", "delete"] {
        assert!(
            said(name).contains("Permission denied"),
            "{name} was not refused: {text}"
        );
    }
    for name in ["open-dir", "open-file"] {
        assert!(
            said(name).contains("Operation not permitted"),
            "{name} was not refused: {text}"
        );
    }
    let kib: u64 = said("size").parse().expect("du");
    assert!(kib < 64, "the run directory grew to {kib} KiB: {text}");
    for line in ["kubeconfig-read", "listed", "kubectl-works"] {
        assert!(text.lines().any(|l| l.trim() == line), "no {line}: {text}");
    }
    assert_eq!(run_record(&out)["revoked"], true);
}

// --- inside the command ----------------------------------------------------

#[test]
fn the_command_cannot_reach_root_or_its_supervisor() {
    let script = r#"
        cat /etc/kubesu/kubeconfig >/dev/null 2>&1 && echo read-kubeconfig
        sudo -n true >/dev/null 2>&1 && echo sudo-worked
        su -c true root </dev/null >/dev/null 2>&1 && echo su-worked
        grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status && echo no-new-privs
        kill -0 $PPID 2>/dev/null && echo signal-worked
        kill -TERM $PPID 2>/dev/null && echo term-worked
        kill -KILL $PPID 2>/dev/null && echo kill-worked
        cat /proc/$PPID/environ >/dev/null 2>&1 && echo environ-read
        head -c 1 /proc/$PPID/mem >/dev/null 2>&1 && echo mem-read
        ls /proc/$PPID/fd >/dev/null 2>&1 && echo fds-listed
        cat /proc/$PPID/maps >/dev/null 2>&1 && echo maps-read
        ls /run/kubesu >/dev/null 2>&1 && echo runtime-listed
        touch /run/kubesu/x 2>/dev/null && echo runtime-written
        grep '^Uid:' /proc/$PPID/status | tr -s '\t ' ' '
        echo done
    "#;
    let out = sudo_run("alice", &[SH, "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["no-new-privs", "Uid: 0 0 0 0", "done"],
        "the command reached root or its supervisor"
    );
    assert_eq!(run_record(&out)["signals_forwarded"], serde_json::json!([]));
}

#[test]
fn the_token_cannot_leave_its_namespace_or_escalate() {
    let script = r#"
        set -f
        ns=$KUBESU_NAMESPACE
        kubectl auth can-i --list
        echo ===
        kubectl auth can-i --list -n kube-system
        echo ===
        for q in "get secrets" "list secrets" "watch secrets" "get secrets -n kube-system" \
            "create rolebindings" "create roles" "escalate roles" "bind clusterroles" \
            "create clusterrolebindings" "create serviceaccounts" "create serviceaccounts/token" \
            "impersonate users" "impersonate serviceaccounts" "create namespaces" \
            "patch namespaces/$ns" "delete namespaces/$ns" "list pods -n default" \
            "create pods -n default" "create configmaps -n kube-system" "list nodes" \
            "create pods/exec -n kube-system" "create tokenreviews" \
            "create certificatesigningrequests" "update leases -n kube-system" \
            "get pods --all-namespaces" "* *"; do
            # shellcheck disable=SC2086
            echo "$q: $(kubectl auth can-i $q 2>/dev/null)"
        done
        echo ===
        kubectl get secrets 2>&1 | grep -qi forbidden && echo secrets-forbidden
        kubectl get secrets -n kube-system 2>&1 | grep -qi forbidden && echo other-secrets-forbidden
        kubectl create rolebinding pwn --clusterrole=cluster-admin \
            --serviceaccount="$ns:default" 2>&1 | grep -qi forbidden && echo rolebinding-forbidden
        kubectl create namespace "pwn-$KUBESU_RUN_ID" 2>&1 | grep -qi forbidden && echo namespace-forbidden
        kubectl create configmap pwn -n default --from-literal=a=b 2>&1 | grep -qi forbidden \
            && echo other-create-forbidden
        kubectl create token default 2>&1 | grep -qi forbidden && echo token-forbidden
        true
    "#;
    let out = sudo_run("alice", &[SH, "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let parts: Vec<&str> = text.split("===\n").collect();
    assert_eq!(parts.len(), 4, "{text}");
    let own = can_i_rows(parts[0]);
    // What every authenticated user may do, in any namespace: ask what they
    // may do, who they are (`kubectl auth whoami`, from 1.28), and read the
    // cluster's public trust anchors (ClusterTrustBundles, from 1.33).
    let every_user = [
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "clustertrustbundles.certificates.k8s.io",
    ];
    let in_its_namespace = [
        "configmaps",
        "persistentvolumeclaims",
        "pods",
        "services",
        "pods/log",
    ];
    for (resource, verbs) in &own {
        assert!(
            every_user.contains(&resource.as_str())
                || in_its_namespace.contains(&resource.as_str()),
            "the token may use {resource}: {verbs}"
        );
        for bad in ["*", "escalate", "bind", "impersonate"] {
            assert!(
                !verbs.split([' ', '[', ']']).any(|v| v == bad),
                "{resource}: {verbs}"
            );
        }
    }
    assert!(own.iter().any(|(r, _)| r == "pods"), "{text}");
    let elsewhere = can_i_rows(parts[1]);
    assert!(
        elsewhere
            .iter()
            .all(|(r, _)| every_user.contains(&r.as_str())),
        "the token has rights in kube-system: {elsewhere:?}"
    );
    for line in parts[2].lines() {
        assert!(line.ends_with(": no"), "the token may {line}");
    }
    let proven: Vec<&str> = parts[3].lines().collect();
    assert_eq!(
        proven,
        [
            "secrets-forbidden",
            "other-secrets-forbidden",
            "rolebinding-forbidden",
            "namespace-forbidden",
            "other-create-forbidden",
            "token-forbidden",
        ]
    );
}

/// (resource, verbs) of the resource rows of `kubectl auth can-i --list`.
fn can_i_rows(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(' ') && !l.trim().is_empty())
        .map(|l| {
            let resource = l.split_whitespace().next().unwrap_or_default().to_string();
            let verbs = l.rsplit_once("[]").map_or(l, |(_, v)| v).trim().to_string();
            (resource, verbs)
        })
        .collect()
}

// --- the terminal ----------------------------------------------------------

/// A terminal the test owns, standing for an administrator's: kubesu runs
/// with its slave as stdin, stdout, stderr and controlling terminal
/// (`setsid --ctty`); the test types into the master and collects
/// everything that appears on it.
struct RootTerminal {
    master: std::fs::File,
    slave_name: String,
    before: nix::sys::termios::Termios,
    reader: std::thread::JoinHandle<Vec<u8>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

/// `kubesu ARGS` as root, started from a fresh terminal.
fn kubesu_in_a_terminal(args: &[&str]) -> (RootTerminal, std::process::Child) {
    install();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    // Other tests start processes concurrently: they must not inherit these.
    for fd in [&pty.master, &pty.slave] {
        let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
        nix::fcntl::fcntl(fd, cloexec).expect("FD_CLOEXEC");
    }
    let slave_name = nix::unistd::ttyname(&pty.slave)
        .expect("ttyname")
        .display()
        .to_string();
    let before = nix::sys::termios::tcgetattr(&pty.slave).expect("tcgetattr");
    let slave = std::fs::File::from(pty.slave);
    let child = Command::new("setsid")
        .args(["--ctty", "--wait", KUBESU])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm")
        .current_dir("/")
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave)
        .spawn()
        .expect("start kubesu in a terminal");
    // The Command is gone: the test holds no copy of the slave any more, so
    // the master reads EIO once kubesu and whatever it passed the slave to
    // have closed it.
    let master = std::fs::File::from(pty.master);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let mut master = master.try_clone().expect("dup");
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            seen.lock().unwrap().clone()
        })
    };
    let terminal = RootTerminal {
        master,
        slave_name,
        before,
        reader,
        seen,
    };
    (terminal, child)
}

impl RootTerminal {
    /// Waits until `text` has appeared on the terminal.
    fn wait_for(&self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let seen = self.shown();
            if seen.contains(text) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{text:?} never appeared on the terminal; it shows: {seen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What the terminal showed so far.
    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// What root types.
    fn type_in(&self, keys: &[u8]) {
        use std::io::Write;
        (&self.master)
            .write_all(keys)
            .expect("type into the terminal");
    }

    /// Everything that appeared on the terminal, once nothing holds its
    /// slave any more; and whether its mode is what it was before kubesu.
    fn finish(self) -> (Vec<u8>, bool) {
        let after = nix::sys::termios::tcgetattr(&self.master).expect("tcgetattr");
        let b = &self.before;
        let same = (
            b.input_flags,
            b.output_flags,
            b.control_flags,
            b.local_flags,
            b.control_chars,
        ) == (
            after.input_flags,
            after.output_flags,
            after.control_flags,
            after.local_flags,
            after.control_chars,
        );
        (self.reader.join().expect("terminal reader"), same)
    }
}

/// alice's process outside the run: it takes the descriptor its peer sends
/// over a unix socket, and when told on stdin, reads from it what it can.
const FD_COLLECTOR: &str = r#"
import os, select, socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(1)
print("listening", flush=True)
peer, _ = server.accept()
_, fds, _, _ = socket.recv_fds(peer, 16, 1)
print("received", len(fds), flush=True)
sys.stdin.readline()
ready, _, _ = select.select(fds, [], [], 5)
try:
    print("read", os.read(fds[0], 4096) if ready else b"nothing", flush=True)
except OSError as e:
    print("read failed:", e, flush=True)
"#;

/// The command of the run: passes its stdin to the socket `$1`, then exits.
const FD_SENDER: &str = r#"
import socket, sys
peer = socket.socket(socket.AF_UNIX)
peer.connect(sys.argv[1])
socket.send_fds(peer, [b"fd"], [0])
"#;

#[test]
fn a_terminal_passed_out_of_the_run_is_dead_once_kubesu_returns() {
    use std::io::{BufRead, Write};
    install();
    let (uid, gid) = ids_of("alice");
    let dir = tempfile::Builder::new()
        .prefix("kubesu-tty-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
    let socket = dir.path().join("socket").display().to_string();
    let mut collector = Command::new("/usr/bin/python3")
        .args(["-c", FD_COLLECTOR, &socket])
        .env_clear()
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start alice's collector");
    let mut said = std::io::BufReader::new(collector.stdout.take().expect("stdout")).lines();
    let mut next_line = || said.next().and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(next_line(), "listening");

    let (terminal, mut kubesu) = kubesu_in_a_terminal(&[
        "run",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "exec /usr/bin/python3 -c \"$0\" \"$1\"",
        FD_SENDER,
        &socket,
    ]);
    let status = wait_at_most(&mut kubesu, 120, "kubesu");
    if !status.success() {
        let _ = collector.kill();
        panic!("kubesu failed: {status:?}: {}", terminal.shown());
    }
    assert_eq!(next_line(), "received 1");

    // Root, back at the prompt, types a password.
    terminal.type_in(b"root-secret-4711\n");
    let mut told = collector.stdin.take().expect("stdin");
    told.write_all(b"read now\n").expect("tell the collector");
    let read = next_line();
    let _ = wait_at_most(&mut collector, 30, "alice's collector");
    assert!(
        !read.contains("root-secret"),
        "alice read what root typed after the run: {read}"
    );
    assert!(
        read == "read b''" || read.starts_with("read failed"),
        "the passed descriptor should be hung up: {read}"
    );
}

#[test]
fn from_a_terminal_the_command_gets_its_own_and_output_status_and_mode_come_back_whole() {
    let script = r#"
        tty
        awk '{ print ($5 == $8) ? "foreground" : "background" }' /proc/$$/stat
        [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-terminals
        echo ready
        cat
        echo typed-end
        echo begin
        head -c 100000 /dev/zero | tr '\0' x
        echo end
        exit 7
    "#;
    let (terminal, mut kubesu) =
        kubesu_in_a_terminal(&["run", "--user", "alice", "--", SH, "-c", script]);
    terminal.wait_for("ready");
    // A line, then ^D: the command's `cat` ends as on any terminal.
    terminal.type_in(b"typed-line\n\x04");
    let status = wait_at_most(&mut kubesu, 120, "kubesu");
    let slave_name = terminal.slave_name.clone();
    let (shown, mode_restored) = terminal.finish();
    let text = String::from_utf8_lossy(&shown);
    assert_eq!(status.code(), Some(7), "{text}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let tty = lines.iter().find(|l| l.starts_with("/dev/")).copied();
    assert!(
        tty.is_some_and(|t| t != slave_name),
        "the command should have a terminal of its own, not {slave_name}: {text}"
    );
    for expected in ["foreground", "all-terminals", "typed-line", "typed-end"] {
        assert!(lines.contains(&expected), "no {expected:?} in: {text}");
    }
    let relayed = text
        .split_once("begin")
        .and_then(|(_, rest)| rest.split_once("end"))
        .map(|(between, _)| between.trim());
    assert!(
        relayed.is_some_and(|r| r.len() == 100_000 && r.bytes().all(|b| b == b'x')),
        "output was lost or changed: {} bytes shown",
        shown.len()
    );
    assert!(mode_restored, "kubesu left the terminal in another mode");
}

#[test]
fn kubesu_shell_from_a_terminal_is_an_interactive_shell_with_job_control() {
    let (terminal, mut kubesu) = kubesu_in_a_terminal(&["shell", "--user", "alice"]);
    terminal.wait_for("Exit the shell to revoke.");
    terminal.wait_for("$ ");
    terminal.type_in(b"sleep 30 &\njobs\nkill %1\necho answer-$((6*7))\nexit 3\n");
    let status = wait_at_most(&mut kubesu, 120, "kubesu shell");
    let (shown, mode_restored) = terminal.finish();
    let text = String::from_utf8_lossy(&shown);
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(text.contains("answer-42"), "{text}");
    assert!(text.contains("Running"), "no job listed: {text}");
    assert!(!text.contains("no job control"), "{text}");
    assert!(mode_restored, "kubesu left the terminal in another mode");
}

// --- output ----------------------------------------------------------------

/// alice's process outside the run (a daemon of hers, say): it takes the
/// command's stdout and stderr over a unix socket and holds them for 20 s;
/// in "forge" mode it also writes a forged run record to the stderr every
/// 200 ms until that fails.
const OUTPUT_KEEPER: &str = r#"
import os, socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(1)
print("listening", flush=True)
peer, _ = server.accept()
_, fds, _, _ = socket.recv_fds(peer, 16, 2)
deadline = time.time() + 20
while time.time() < deadline:
    if sys.argv[2] == "forge":
        try:
            os.write(fds[1], sys.argv[3].encode() + b"\n")
        except OSError:
            break
    time.sleep(0.2)
"#;

/// The command's side: passes its stdout and stderr to the socket `$1`.
const OUTPUT_SENDER: &str = r#"
import socket, sys
peer = socket.socket(socket.AF_UNIX)
peer.connect(sys.argv[1])
socket.send_fds(peer, [b"fd"], [1, 2])
"#;

/// A run record as kubesu writes it, but forged.
const FORGED_RECORD: &str = r#"{"event":"end","run":"forged","status":0,"user":"alice"}"#;

/// alice's keeper (see `OUTPUT_KEEPER`), listening; killed when dropped.
struct Keeper {
    process: std::process::Child,
    socket: String,
    _dir: tempfile::TempDir,
}

impl Keeper {
    fn start(mode: &str) -> Keeper {
        use std::io::BufRead;
        install();
        let (uid, gid) = ids_of("alice");
        let dir = tempfile::Builder::new()
            .prefix("kubesu-out-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        let socket = dir.path().join("socket").display().to_string();
        let mut process = Command::new("/usr/bin/python3")
            .args(["-c", OUTPUT_KEEPER, &socket, mode, FORGED_RECORD])
            .env_clear()
            .current_dir("/")
            .uid(uid)
            .gid(gid)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start alice's keeper");
        let mut said = String::new();
        std::io::BufReader::new(process.stdout.take().expect("stdout"))
            .read_line(&mut said)
            .expect("the keeper's first line");
        assert_eq!(said.trim(), "listening");
        Keeper {
            process,
            socket,
            _dir: dir,
        }
    }

    /// Shell words that pass the command's stdout and stderr to the keeper.
    fn handing_over(&self) -> String {
        format!("/usr/bin/python3 -c '{OUTPUT_SENDER}' {}", self.socket)
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// With `--json` the platform takes the last line of kubesu's stderr as
/// the run's record. The command writes a forged one, leaves a line
/// unfinished for kubesu's record to complete, and has a process of alice's
/// outside the run write more forged ones later: the last line must still
/// be kubesu's own, whole.
#[test]
fn a_forged_run_record_never_follows_kubesus_own() {
    let keeper = Keeper::start("forge");
    let script = format!(
        "echo \"$KUBESU_RUN_ID\"; printf '%s\\n' '{FORGED_RECORD}' >&2; {}; \
         printf '%s' '{{\"event\":\"end\",\"run\":\"forged\",\"status\":0,\"x\":' >&2; exit 3",
        keeper.handing_over()
    );
    let out = sudo_run("alice", &[SH, "-c", &script]);
    let run = stdout(&out).trim().to_string();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line of stderr is no record ({e}): {err}"));
    assert_eq!(
        record["run"],
        run.as_str(),
        "a forged record came last: {err}"
    );
    assert_eq!(record["event"], "end", "{err}");
    assert_eq!(record["status"], 3, "{err}");
}

/// A platform reads its job's stdout and stderr until end of file. Whatever
/// the command leaves holding them (a detached process, or a process of
/// alice's outside the run it passed them to), the platform reads end of
/// file as soon as kubesu has exited.
#[test]
fn the_platform_reads_end_of_file_when_kubesu_exits_whatever_the_command_left_holding_its_output() {
    use std::io::Read;
    let keeper = Keeper::start("hold");
    let script = format!(
        "setsid nohup sleep 1000 & {}; echo done",
        keeper.handing_over()
    );
    let mut kubesu = sudo_kubesu(&["run", "--user", "alice", "--", SH, "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kubesu");
    let until_eof = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all);
            (std::time::Instant::now(), all)
        })
    };
    let out = until_eof(Box::new(kubesu.stdout.take().expect("stdout")));
    let err = until_eof(Box::new(kubesu.stderr.take().expect("stderr")));
    let status = wait_at_most(&mut kubesu, 120, "kubesu");
    let exited = std::time::Instant::now();
    let (out_eof, out) = out.join().expect("stdout reader");
    let (err_eof, err) = err.join().expect("stderr reader");
    let err = String::from_utf8_lossy(&err);
    assert!(status.success(), "{status:?}: {err}");
    assert_eq!(String::from_utf8_lossy(&out).trim(), "done", "{err}");
    for (stream, eof) in [("stdout", out_eof), ("stderr", err_eof)] {
        let late = eof.saturating_duration_since(exited);
        assert!(
            late < std::time::Duration::from_secs(3),
            "end of file on {stream} came {late:?} after kubesu exited: {err}"
        );
    }
}

// --- namespaces ------------------------------------------------------------

#[tokio::test]
async fn namespaces_kubesu_does_not_own_are_never_used() {
    let mut planted = Planted::new();
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let config = config_variant(&mut planted, namespace, |text| {
            text.replace("policy = \"per-user\"", "policy = \"fixed\"")
                .replace(
                    "template = \"kubesu-{user}\"",
                    &format!("template = \"{namespace}\""),
                )
        });
        let out = root(&["run", "--config", &config, "--user", FRANK, "--", "id"]);
        assert_refused(&out, 77, "not created by kubesu", namespace);
        let admin = admin_client().await;
        let accounts = Api::<ServiceAccount>::namespaced(admin, namespace)
            .list(&ListParams::default().labels("kubesu.io/user=frank"))
            .await
            .expect("list");
        assert!(accounts.items.is_empty(), "{namespace}");
    }
    assert_nothing_left(FRANK).await;
}

/// What holds only where the cluster enforces it: Pod Security admission
/// (on from 1.23, GA in 1.25). Not run on the Kubernetes 1.20 bed.
/// Where no admission policy makes a run label what it makes (Kubernetes
/// before 1.30), a pod made with the run's token carries no run label and
/// outlived the run (issue 13, item 4). Revocation also deletes every pod
/// that runs as the run's ServiceAccount. The pod is made here by the
/// administrator, unlabelled, as a run's token could make it there (the
/// 1.37 bed's policy refuses the run's token such a pod).
#[tokio::test]
async fn a_pod_running_as_the_runs_account_goes_with_the_run_even_unlabelled() {
    let (child, run) = start_and_read_first_line(&mut sudo_kubesu(&[
        "run",
        "--json",
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        "echo \"$KUBESU_RUN_ID\"; exec sleep 60",
    ]));
    let id = kubesu::policy::identity::RunId::parse(&run).expect("a run id");
    let account = kubesu::policy::naming::service_account("alice", &id);
    let name = unique("unlabelled");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": account,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "c", "image": "kubesu.test/absent:0", "imagePullPolicy": "Never",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(admin_client().await, "kubesu-alice");
    pods.create(&Default::default(), &pod)
        .await
        .expect("an unlabelled pod running as the run's ServiceAccount");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(run_record(&out)["revoked"], true, "{}", stderr(&out));
    let left = pods.get_opt(&name).await.expect("get pod");
    assert!(
        left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "pod kubesu-alice/{name}, running as {account}, outlived run {run}"
    );
}

mod on_a_current_cluster {
    use super::*;

    /// The example config enforces Pod Security "restricted" on kubesu's
    /// namespaces (`[namespace] pod_security`). Server-side dry runs go
    /// through admission and leave nothing behind.
    #[test]
    fn a_privileged_pod_created_with_the_runs_token_is_refused_by_pod_security() {
        let script = r#"
            # As the run's own ServiceAccount, with the run's label, as
            # kubesu's admission policy wants of every pod a run makes.
            sa=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
            sa=${sa##*:}
            pod() {
                printf '%s\n' 'apiVersion: v1' 'kind: Pod' \
                    "metadata: {name: $1, labels: {kubesu.io/run: $KUBESU_RUN_ID}}" 'spec:' \
                    "  serviceAccountName: $sa" \
                    '  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}' \
                    '  containers:' '  - name: c' '    image: kubesu.test/absent:0' \
                    "    securityContext: {privileged: $2, allowPrivilegeEscalation: $2," \
                    "      capabilities: {drop: [ALL]}}"
            }
            pod psa-privileged true | kubectl create --dry-run=server -f - 2>&1
            echo ===
            pod psa-restricted false | kubectl create --dry-run=server -f - 2>&1
            true
        "#;
        let out = sudo_run("alice", &[SH, "-c", script]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let (privileged, plain) = text.split_once("===\n").expect("two answers");
        assert!(
            privileged.contains("forbidden")
                && privileged.contains("violates PodSecurity \"restricted:v1.37"),
            "the API server refuses a privileged pod in the run's namespace: {privileged}"
        );
        assert!(
            plain.contains("created (server dry run)"),
            "a pod within restricted is admitted with the same token: {plain}"
        );
    }

    /// Revocation finds what a run made by the run's label: a ConfigMap
    /// made without it, or whose label the user took off, outlived the run
    /// (issue 13, item 4). kubesu-run-confinement refuses both, and what
    /// carries the label goes at revocation, for every run, not only
    /// spark-submit's.
    #[tokio::test]
    async fn nothing_a_run_makes_with_its_token_outlives_the_run() {
        let loose = unique("loose");
        let kept = unique("kept");
        let script = format!(
            r#"
            kubectl create configmap {loose} --from-literal=k=v 2>&1
            echo ===
            kubectl create configmap {kept} --from-literal=k=v --dry-run=client -o yaml |
                kubectl label --local -f - -o yaml "kubesu.io/run=$KUBESU_RUN_ID" |
                kubectl create -f - 2>&1
            echo ===
            kubectl label configmap {kept} kubesu.io/run- 2>&1
            true
        "#
        );
        let out = sudo_run("alice", &[SH, "-c", &script]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let answers: Vec<&str> = text.split("===\n").collect();
        let [unlabelled, labelled, unlabel] = answers[..] else {
            panic!("three answers expected: {text}");
        };
        for (what, answer) in [
            ("an unlabelled ConfigMap", unlabelled),
            ("taking the run's label off", unlabel),
        ] {
            assert!(
                answer.contains("forbidden")
                    && answer.contains("ValidatingAdmissionPolicy 'kubesu-run-confinement'"),
                "{what} is refused with the run's token: {answer}"
            );
        }
        assert!(
            labelled.contains("created"),
            "a ConfigMap with the run's label is made: {labelled}"
        );
        let maps: Api<ConfigMap> = Api::namespaced(admin_client().await, "kubesu-alice");
        for name in [&loose, &kept] {
            let found = maps.get_opt(name).await.expect("get configmap");
            assert!(
                found.is_none(),
                "ConfigMap kubesu-alice/{name} outlived the run that made it"
            );
        }
    }
}

/// A team is one the config names (`[namespace] teams`): not any group the
/// user happens to be in, such as their private group or the group every
/// allowed user shares, which would put them in a namespace with everyone.
#[test]
fn only_teams_the_config_names_are_teams() {
    let config = common::config_variant(
        "teams",
        &[
            ("policy = \"per-user\"", "policy = \"per-team\""),
            (
                "template = \"kubesu-{user}\"",
                "template = \"kubesu-team-{team}\"",
            ),
        ],
    );
    let run = |team: &str| {
        output(&mut root_kubesu(&[
            "run",
            "--config",
            &config,
            "--user",
            "bob",
            "--team",
            team,
            "--",
            SH,
            "-c",
            "echo $KUBESU_NAMESPACE",
        ]))
    };
    for (team, why) in [
        ("bob", "the user's private group"),
        ("kubesu-users", "the group every allowed user is in"),
    ] {
        let out = run(team);
        assert_refused(&out, 77, "not a team", why);
    }
    let out = run("team-blue");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "kubesu-team-team-blue");
}

/// A caller's `ulimit -f` must not silence the audit trail: kubesu lifts its
/// own limits before anything, and the command gets the caller's back.
#[test]
fn a_callers_file_size_limit_neither_stops_the_audit_nor_leaks_past_the_command() {
    // A root caller (sudo 1.9 lifts the file size limit for its command
    // itself, so through sudo the limit never reaches kubesu).
    common::install();
    let mut command = std::process::Command::new("/usr/bin/sh");
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .args([
            "-c",
            "ulimit -S -f 0 && exec /usr/sbin/kubesu run --json --user alice -- \
             /usr/bin/sh -c 'ulimit -S -f'",
        ]);
    let out = output(&mut command);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "0",
        "the command has the caller's limit back"
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let run = run_record(&out)["run"]
        .as_str()
        .expect("run id")
        .to_string();
    let events: Vec<String> = audit_records(&run)
        .iter()
        .map(|r| r["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        events,
        ["start", "end"],
        "both records are in the audit file"
    );
}

/// With `[audit] required` (the default), a run whose start no audit
/// destination recorded does not run.
#[test]
fn a_run_that_cannot_be_audited_does_not_start() {
    let config = common::config_variant(
        "unauditable",
        &[
            ("syslog = true", "syslog = false"),
            (
                "file = \"/var/log/kubesu/audit.jsonl\"",
                "file = \"/proc/kubesu-cannot-be-here/audit.jsonl\"",
            ),
        ],
    );
    let marker = format!("/tmp/kubesu-unaudited-{}", std::process::id());
    let out = output(&mut root_kubesu(&[
        "run",
        "--config",
        &config,
        "--user",
        "alice",
        "--",
        SH,
        "-c",
        &format!("touch {marker}"),
    ]));
    assert_refused(
        &out,
        74,
        "audit",
        "no audit destination took the start record",
    );
    assert!(
        std::fs::metadata(&marker).is_err(),
        "the command ran without an audit record"
    );
}

// --- the command's tree (issue 13, item 3) -----------------------------------

/// A place alice's command and the test both write to.
fn shared_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("kubesu-{name}-"))
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    dir
}

fn wait_for_file(path: &Path, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Root's process, outside any run: takes pid `$1` for a process of bob's in
/// a group of its own (through ns_last_pid), if the pid is free, and when
/// told on stdin, says whether that process is alive.
const PID_TAKER: &str = r#"
import os, signal, sys
want, uid, gid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
victim = None
for _ in range(200):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(want - 1))
    pid = os.fork()
    if pid == 0:
        if os.getpid() == want:
            os.setsid(); os.setgid(gid); os.setuid(uid)
            signal.pause()
        os._exit(0)
    if pid == want:
        victim = pid
        break
    os.waitpid(pid, 0)
print("taken" if victim else "in use", flush=True)
sys.stdin.readline()
if victim:
    done, status = os.waitpid(victim, os.WNOHANG)
    if done:
        print("killed", os.WTERMSIG(status) if os.WIFSIGNALED(status) else status, flush=True)
    else:
        print("alive", flush=True)
        os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
"#;

/// The command's process group is gone once its last member leaves it; its
/// id is then anyone's. Here the command exits, a process it left behind
/// ignores TERM and moves to a session of its own, and bob's new process
/// takes the freed id for its group while kubesu waits for the tree to end:
/// root must not kill bob's process.
#[test]
fn root_never_signals_a_process_group_id_it_no_longer_holds() {
    let dir = shared_dir("pgid");
    let d = dir.path().display();
    let script = format!(
        r#"echo $$
        sh -c 'trap "" TERM
               echo > {d}/ready
               while [ ! -e {d}/go ]; do sleep 0.05; done
               exec setsid sh -c "echo > {d}/left; sleep 20"' &
        # Not before the straggler ignores TERM: kubesu sends it at once.
        while [ ! -e {d}/ready ]; do sleep 0.05; done
        exit 0"#
    );
    let mut command = sudo_kubesu(&["run", "--json", "--user", "alice", "--", SH, "-c", &script]);
    let (mut kubesu, leader) = start_and_read_first_line(&mut command);
    let leader: u32 = leader.parse().expect("the command's pid");
    // The command has exited (and been reaped, before the fix) when the
    // straggler leaves its group.
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(dir.path().join("go"), "").expect("go");
    wait_for_file(&dir.path().join("left"), 10, "the straggler left the group");
    let (bob_uid, bob_gid) = ids_of("bob");
    let mut taker = Command::new("/usr/bin/python3")
        .args(["-c", PID_TAKER])
        .arg(leader.to_string())
        .arg(bob_uid.to_string())
        .arg(bob_gid.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut said = std::io::BufReader::new(taker.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).expect("taker");
    let taken = line.trim() == "taken";
    let status = wait_at_most(&mut kubesu, 60, "kubesu");
    std::io::Write::write_all(taker.stdin.as_mut().expect("stdin"), b"\n").expect("tell");
    line.clear();
    std::io::BufRead::read_line(&mut said, &mut line).expect("taker");
    let _ = taker.wait();
    assert_eq!(status.code(), Some(0), "kubesu's status");
    if taken {
        assert_eq!(
            line.trim(),
            "alive",
            "root killed bob's process that took the command's old group id {leader}"
        );
    }
}

/// alice's process outside the run: traces (PTRACE_SEIZE) pid `$1` of her
/// run, and never waits for it, so that when it dies it stays a zombie in
/// the command's process group for as long as this process lives.
const TRACER: &str = r#"
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:
    print("seize failed", ctypes.get_errno(), flush=True)
    sys.exit(1)
open(sys.argv[2], "w").close()
time.sleep(600)
"#;

/// A zombie of the command's tree that kubesu cannot reap (its tracer, a
/// process of the user outside the run, never waits for it) must not keep
/// kubesu from revoking.
#[test]
fn a_zombie_held_from_outside_the_run_does_not_stop_revocation() {
    let dir = shared_dir("zombie");
    let d = dir.path().display();
    let script = format!(
        r#"echo $$
        sleep 1000 &
        echo $! > {d}/pid.new && mv {d}/pid.new {d}/pid
        while [ ! -e {d}/traced ]; do sleep 0.05; done
        exit 0"#
    );
    let mut command = sudo_kubesu(&["run", "--json", "--user", "alice", "--", SH, "-c", &script]);
    let (mut kubesu, _) = start_and_read_first_line(&mut command);
    let pid_file = dir.path().join("pid");
    wait_for_file(&pid_file, 10, "the command started its sleep");
    let straggler = std::fs::read_to_string(&pid_file).expect("pid");
    let (uid, gid) = ids_of("alice");
    let mut tracer = Command::new("/usr/bin/python3")
        .args(["-c", TRACER, straggler.trim()])
        .arg(dir.path().join("traced"))
        .uid(uid)
        .gid(gid)
        .spawn()
        .expect("python3");
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_at_most(&mut kubesu, 60, "kubesu with a zombie held from outside")
    }));
    let _ = tracer.kill();
    let _ = tracer.wait();
    let status = status.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let out = kubesu.wait_with_output().expect("kubesu's output");
    assert_eq!(status.code(), Some(0), "kubesu's status: {}", stderr(&out));
    let record = run_record(&out);
    assert_eq!(record["revoked"], serde_json::json!(true), "{record}");
    let cgroup_v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .contains(" - cgroup2 ");
    if cgroup_v2 {
        assert_eq!(record["tracked_by"], "cgroup", "{record}");
        let run = record["run"].as_str().expect("run id");
        let left = output(Command::new("find").args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-name",
            &format!("kubesu-{run}"),
        ]));
        assert_eq!(stdout(&left), "", "the run's cgroup is left");
    }
}
