//! The config parser on any text: it never panics, refuses only with
//! `Code::Config`, and what it accepts passes its own validation (absolute
//! paths, a caller, an allowed group).
#![no_main]

use std::path::Path;

use kubesu::failure::Code;
use kubesu::policy::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            assert!(!config.callers.users.is_empty());
            assert!(!config.users.allowed_groups.is_empty());
            assert!(config.users.min_uid > 0);
            assert!(config.cluster.kubeconfig.is_absolute());
            assert!(config.runtime.dir.is_absolute());
            assert!(config.commands.iter().all(|c| c.path.is_absolute()));
        }
        Err(failure) => assert!(
            matches!(failure.code, Code::Config | Code::DataErr),
            "{:?}: {}",
            failure.code,
            failure.message
        ),
    }
});
