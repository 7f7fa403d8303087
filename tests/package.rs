//! The Debian package, installed: with KUBESU_TEST_INSTALLED=1 (tests/run.sh
//! sets it after `dpkg -i` of packaging/build-deb.sh's .deb) the end-to-end
//! tests run against the packaged /usr/sbin/kubesu; this checks that it is
//! the packaged one and that the package put the rest where an administrator
//! looks for it. Without KUBESU_TEST_INSTALLED=1 (a bare `cargo test
//! --features root-tests`, which installs the cargo-built binary) there is
//! no package to check.

use std::process::Command;

fn installed_mode() -> bool {
    std::env::var("KUBESU_TEST_INSTALLED").is_ok_and(|v| v == "1")
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_installed_kubesu_is_the_package() {
    if !installed_mode() {
        eprintln!("not KUBESU_TEST_INSTALLED=1: no package to check (tests/run.sh installs one)");
        return;
    }
    assert_eq!(
        run("dpkg", &["-S", "/usr/sbin/kubesu"]),
        "kubesu: /usr/sbin/kubesu",
        "/usr/sbin/kubesu must come from the kubesu package"
    );
    // Installed files still as the package shipped them (the conffile is
    // the tests' own config by now, so only the binary is compared).
    let verify = Command::new("dpkg")
        .args(["--verify", "kubesu"])
        .output()
        .expect("dpkg --verify");
    let changed = String::from_utf8_lossy(&verify.stdout);
    assert!(
        !changed.contains("/usr/sbin/kubesu"),
        "the packaged /usr/sbin/kubesu was replaced: {changed}"
    );
    assert_eq!(
        run("/usr/sbin/kubesu", &["--version"]),
        concat!("kubesu ", env!("CARGO_PKG_VERSION")),
        "the package is not this version of kubesu: rebuild it with packaging/build-deb.sh"
    );
}

#[test]
fn the_package_installs_the_manual_completions_and_examples() {
    if !installed_mode() {
        return;
    }
    let dpkg_excludes = "(if missing: is /usr/share/man excluded in /etc/dpkg/dpkg.cfg.d/?)";
    let page = run("man", &["-w", "kubesu"]);
    assert_eq!(
        page, "/usr/share/man/man8/kubesu.8.gz",
        "man -w kubesu {dpkg_excludes}"
    );
    let page = run("man", &["-w", "5", "kubesu.toml"]);
    assert_eq!(
        page, "/usr/share/man/man5/kubesu.toml.5.gz",
        "man -w 5 kubesu.toml {dpkg_excludes}"
    );
    let conffiles = run("dpkg-query", &["-W", "-f", "${Conffiles}", "kubesu"]);
    for conffile in [
        "/etc/kubesu/config.toml",
        "/etc/kubesu/spark-driver-template.yaml",
        "/etc/kubesu/spark-executor-template.yaml",
    ] {
        assert!(
            conffiles.contains(conffile),
            "{conffile} is not a conffile: {conffiles}"
        );
    }
    let files = run("dpkg", &["-L", "kubesu"]);
    for path in [
        "/usr/share/bash-completion/completions/kubesu",
        "/usr/share/zsh/vendor-completions/_kubesu",
        "/usr/share/fish/vendor_completions.d/kubesu.fish",
        "/usr/share/doc/kubesu/examples/sudoers.d/kubesu",
        "/usr/share/doc/kubesu/examples/kubesu-gc.cron",
        "/usr/share/doc/kubesu/examples/spark-clusterrole.yaml",
        "/usr/lib/systemd/system/kubesu-gc.service",
        "/usr/lib/systemd/system/kubesu-gc.timer",
    ] {
        assert!(files.lines().any(|l| l == path), "the package lacks {path}");
    }
    // The sudoers example stays inactive until the administrator enables it.
    assert!(
        !files.lines().any(|l| l.starts_with("/etc/sudoers.d")),
        "the package must not activate a sudoers drop-in"
    );
}
