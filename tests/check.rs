//! `kubesu check` and `kubesu rbac` against the installed kubesu and the real
//! control plane. The installed kubesu's identity is the bed's user `kubesu`,
//! holding exactly what `kubesu rbac` prints (tests/testbed/install-kubesu.sh).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::*;

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
        .expect("example")
}

/// A root-owned copy of the example config as /etc/kubesu/test-NAME.toml,
/// changed by `edit`.
fn config_variant(name: &str, mode: u32, edit: impl FnOnce(String) -> String) -> String {
    install();
    let path = format!("/etc/kubesu/test-{name}.toml");
    std::fs::write(&path, edit(example())).expect("write config variant");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// A root-only kubeconfig /etc/kubesu/test-NAME.kubeconfig, from `text`.
fn kubeconfig_variant(name: &str, text: &str) -> String {
    install();
    let path = format!("/etc/kubesu/test-{name}.kubeconfig");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, "").expect("create kubeconfig variant");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&path, text).expect("write kubeconfig variant");
    path
}

fn with_kubeconfig(config: String, kubeconfig: &str) -> String {
    let old = "kubeconfig = \"/etc/kubesu/kubeconfig\"";
    assert!(config.contains(old));
    config.replace(old, &format!("kubeconfig = \"{kubeconfig}\""))
}

fn check_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = output(&mut root_kubesu(&all));
    let text = stdout(&out);
    let value: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {text}{}", stderr(&out)));
    (out.status.code(), value, stderr(&out))
}

fn rows<'a>(report: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

fn row<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let found = rows(report, name);
    assert_eq!(found.len(), 1, "one row {name} in {report:#}");
    found[0]
}

#[test]
fn check_passes_on_the_installed_setup() {
    let out = output(&mut root_kubesu(&["check"]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.starts_with("CHECK "), "{text}");
    assert!(text.contains("checks passed"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    for name in [
        "config file",
        "config",
        "kubeconfig",
        "runtime directory",
        "driver log directory",
        "process tracking",
        "sudoers",
        "command",
        "cluster",
        "rbac namespaces",
        "rbac serviceaccounts/token",
        "rbac clusterroles/kubesu-spark",
        "spark role kubesu-spark",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "no row {name}: {text}"
        );
    }
    assert!(text.contains("Kubernetes v1."), "{text}");
}

#[test]
fn check_json_is_one_object_with_every_row_ok() {
    let (status, report, err) = check_json(&[]);
    assert_eq!(status, Some(0), "{report:#}{err}");
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.len() > 10, "{report:#}");
    for c in checks {
        let keys: Vec<&String> = c.as_object().expect("row").keys().collect();
        assert_eq!(keys, ["detail", "fix", "name", "ok"], "{c}");
        assert_eq!(c["ok"], true, "{c}");
        assert!(c["fix"].is_null(), "{c}");
    }
    // One row per [[command]] of the installed (example) config.
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.toml"))
            .expect("example config");
    assert_eq!(
        rows(&report, "command").len(),
        example.matches("[[command]]").count()
    );
    assert!(
        row(&report, "cluster")["detail"]
            .as_str()
            .expect("detail")
            .contains("v1.")
    );
}

#[test]
fn an_identity_without_rbac_fails_with_the_missing_permissions() {
    let nobody = std::fs::read_to_string(format!("{}/nobody-kubesu.kubeconfig", bed_dir()))
        .unwrap_or_else(|e| panic!("{e}: re-run `bash tests/testbed/bed.sh up`"));
    let kubeconfig = kubeconfig_variant("check-nobody", &nobody);
    let config = config_variant("check-nobody", 0o644, |c| with_kubeconfig(c, &kubeconfig));
    let (status, report, err) = check_json(&["--config", &config]);
    assert_eq!(status, Some(78), "{report:#}{err}");
    assert_eq!(report["ok"], false);
    // The cluster answers: only the permissions are missing.
    assert_eq!(row(&report, "cluster")["ok"], true, "{report:#}");
    assert_eq!(row(&report, "kubeconfig")["ok"], true, "{report:#}");
    for (name, missing) in [
        (
            "rbac namespaces",
            "missing: get, list, create, patch, delete on namespaces (",
        ),
        (
            "rbac serviceaccounts/token",
            "missing: create on serviceaccounts/token (",
        ),
        (
            "rbac clusterroles/kubesu-spark",
            "missing: get, bind on clusterroles (",
        ),
        ("rbac rolebindings", "create"),
        (
            "rbac pods,configmaps,persistentvolumeclaims",
            "list, deletecollection on pods; list, deletecollection on configmaps;",
        ),
        ("rbac services", "missing: list, delete on services ("),
    ] {
        let r = row(&report, name);
        assert_eq!(r["ok"], false, "{r}");
        let detail = r["detail"].as_str().expect("detail");
        assert!(detail.contains(missing), "{name}: {detail}");
        assert!(
            r["fix"]
                .as_str()
                .expect("fix")
                .contains("kubesu rbac | kubectl apply -f -"),
            "{r}"
        );
    }
    // Every authenticated user may ask about itself (system:basic-user).
    assert_eq!(row(&report, "rbac selfsubjectaccessreviews")["ok"], true);
    let spark = row(&report, "spark role kubesu-spark");
    assert_eq!(spark["ok"], false);
    assert!(
        spark["detail"]
            .as_str()
            .expect("detail")
            .contains("needs get on clusterroles/kubesu-spark"),
        "{spark}"
    );

    // The table says the same, with a fix under each failure.
    let out = output(&mut root_kubesu(&["check", "--config", &config]));
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("rbac namespaces ") && l.contains("FAIL")),
        "{text}"
    );
    assert!(
        text.contains("fix: as a cluster administrator, apply `kubesu rbac | kubectl apply -f -`")
    );
    assert!(text.contains("checks failed"), "{text}");
    assert!(!text.contains("SKIP"), "{text}");
}

#[test]
fn a_typo_in_the_config_is_reported_with_line_and_column() {
    let config = config_variant("check-typo", 0o644, |c| {
        c.replacen("[callers]\n", "[callers]\nuserz = [\"x\"]\n", 1)
    });
    let (status, report, err) = check_json(&["--config", &config]);
    assert_eq!(status, Some(78), "{report:#}{err}");
    let parsed = row(&report, "config");
    assert_eq!(parsed["ok"], false);
    let detail = parsed["detail"].as_str().expect("detail");
    for says in ["line 12", "column 1", "userz"] {
        assert!(detail.contains(says), "{says}: {detail}");
    }
    assert!(
        parsed["fix"]
            .as_str()
            .expect("fix")
            .contains("line and column")
    );
    // The file itself is fine; what needs the config is not checked.
    assert_eq!(row(&report, "config file")["ok"], true);
    assert!(
        row(&report, "cluster")["detail"]
            .as_str()
            .expect("detail")
            .starts_with("not checked")
    );
}

#[test]
fn an_unsafe_config_file_and_kubeconfig_are_reported() {
    let kubeconfig = kubeconfig_variant(
        "check-open",
        &std::fs::read_to_string("/etc/kubesu/kubeconfig").expect("kubeconfig"),
    );
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = config_variant("check-open", 0o666, |c| with_kubeconfig(c, &kubeconfig));
    let (status, report, err) = check_json(&["--config", &config]);
    assert_eq!(status, Some(78), "{report:#}{err}");
    let file = row(&report, "config file");
    assert_eq!(file["ok"], false);
    assert!(
        file["detail"]
            .as_str()
            .expect("detail")
            .contains("writable by group or others")
    );
    let kc = row(&report, "kubeconfig");
    assert_eq!(kc["ok"], false);
    assert!(
        kc["detail"].as_str().expect("detail").contains("mode 0644"),
        "{kc}"
    );
    assert!(
        kc["fix"].as_str().expect("fix").contains("chmod 0600"),
        "{kc}"
    );
}

#[test]
fn an_unreachable_cluster_exits_69() {
    let admin = std::fs::read_to_string("/etc/kubesu/kubeconfig").expect("kubeconfig");
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server line")
        .to_string();
    // A port nothing listens on: refused at once.
    let kubeconfig = kubeconfig_variant(
        "check-unreachable",
        &admin.replace(&server, "https://127.0.0.1:1"),
    );
    let config = config_variant("check-unreachable", 0o644, |c| {
        with_kubeconfig(c, &kubeconfig)
            .replace("request_timeout = \"10s\"", "request_timeout = \"3s\"")
    });
    let (status, report, err) = check_json(&["--config", &config]);
    assert_eq!(status, Some(69), "{report:#}{err}");
    assert_eq!(row(&report, "cluster")["ok"], false);
    assert!(
        row(&report, "rbac")["detail"]
            .as_str()
            .expect("detail")
            .starts_with("not checked")
    );
}

/// `kubesu rbac` as an unprivileged user (not through sudo).
fn rbac_as_service_user(args: &[&str]) -> std::process::Output {
    output(as_service_user(KUBESU).arg("rbac").args(args))
}

#[test]
fn rbac_prints_what_is_applied_and_needs_only_a_readable_config() {
    let out = rbac_as_service_user(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert_eq!(yaml.matches("\nkind: ClusterRole\n").count(), 2, "{yaml}");
    assert_eq!(
        yaml.matches("\nkind: ClusterRoleBinding\n").count(),
        1,
        "{yaml}"
    );
    assert!(yaml.contains("resourceNames: [\"kubesu-spark\"]"), "{yaml}");
    assert!(yaml.ends_with(include_str!("../deploy/spark-clusterrole.yaml")));

    // What the bed has is exactly this (the install applied it).
    let mut apply = Command::new("kubectl");
    apply
        .args(["--kubeconfig", &admin_kubeconfig_path(), "diff", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = apply.spawn().expect("kubectl");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    let diff = child.wait_with_output().expect("kubectl diff");
    assert_eq!(
        diff.status.code(),
        Some(0),
        "the bed's RBAC differs from `kubesu rbac`: {}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );

    let out = rbac_as_service_user(&["--service-account", "kube-system/kubesu"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("- kind: ServiceAccount\n  namespace: \"kube-system\"\n  name: \"kubesu\"\n")
    );
    let out = rbac_as_service_user(&["--service-account", "kubesu"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let out = rbac_as_service_user(&["--user", "a", "--service-account", "b/c"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));

    // A config only root can read: the message says so.
    let private = config_variant("check-private", 0o600, |c| c);
    let out = rbac_as_service_user(&["--config", &private]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("run it as root"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

/// The driver log directory as revocation would find it: below a directory
/// others may write, someone could swap it for a link (a `kubesu check`
/// failure with the fix, before any log is lost).
#[test]
fn a_driver_log_directory_others_could_redirect_is_reported() {
    let config = config_variant("check-driver-logs", 0o644, |c| {
        let old = "driver_logs = \"/var/log/kubesu-drivers\"";
        assert!(c.contains(old));
        c.replace(old, "driver_logs = \"/tmp/kubesu-check-driver-logs\"")
    });
    let (status, report, err) = check_json(&["--config", &config]);
    assert_eq!(status, Some(78), "{report:#}{err}");
    let logs = row(&report, "driver log directory");
    assert_eq!(logs["ok"], false, "{report:#}");
    let detail = logs["detail"].as_str().expect("detail");
    assert!(detail.contains("/tmp above"), "{detail}");
    assert!(
        logs["fix"].as_str().expect("fix").contains("root-owned"),
        "{logs}"
    );
    assert!(!std::path::Path::new("/tmp/kubesu-check-driver-logs").exists());
}

/// A run cgroup a kubesu that died left behind is shown, as gc's work and
/// not as a fault of the setup.
#[test]
fn run_cgroups_a_dead_kubesu_left_are_shown_as_gcs_work() {
    let left = cgroup_of(std::process::id() as i32).join("kubesu-checkleftbehind");
    std::fs::create_dir(&left).expect("a run cgroup");
    // Older than the 10 s a new one gets before it counts as left.
    let made = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let aged = std::fs::File::open(&left).and_then(|d| d.set_modified(made));
    let (status, report, err) = check_json(&[]);
    std::fs::remove_dir(&left).expect("remove the run cgroup");
    aged.expect("age the run cgroup");
    assert_eq!(status, Some(0), "{report:#}{err}");
    let tracking = row(&report, "process tracking");
    assert_eq!(tracking["ok"], true, "{tracking}");
    assert!(
        tracking["detail"]
            .as_str()
            .is_some_and(|d| d.contains("left by a kubesu that died") && d.contains("kubesu gc")),
        "{tracking}"
    );
}
