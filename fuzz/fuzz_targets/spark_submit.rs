//! The spark-submit argument policy on any argument vector (NUL separates
//! the arguments, as in /proc/PID/cmdline): it never panics, refuses only as
//! a data error with a one-line message, and never lets a user argument set
//! the master, which kubesu forces.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use kubesu::failure::Code;
use kubesu::policy::spark;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    let denied = ["spark.kubernetes.driver.podTemplateFile".to_string()];
    match spark::refuse_overrides(&args, &spark::Rules::denying(&denied)) {
        Ok(_) => {
            // The first argument is an option spark-submit reads: it must
            // not be one that sets the master.
            if let Some(first) = args.first().and_then(|a| a.to_str()) {
                assert!(
                    first != "--master" && !first.starts_with("--master="),
                    "{args:?}"
                );
            }
        }
        Err(failure) => {
            assert_eq!(failure.code, Code::DataErr, "{}", failure.message);
            assert!(!failure.message.contains('\n'), "{:?}", failure.message);
        }
    }
});
