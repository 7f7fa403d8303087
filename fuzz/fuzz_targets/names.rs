//! The name mapping on any two names (split at the first NUL): every label
//! is a valid DNS label, two different names never share one, and a user's
//! namespace and ServiceAccount are valid names whenever the user name is
//! accepted.
#![no_main]

use kubesu::policy::identity::RunId;
use kubesu::policy::naming::{self, Policy, is_dns_label};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    let (label_a, label_b) = (naming::dns_label(a), naming::dns_label(b));
    assert!(is_dns_label(&label_a), "{a:?} -> {label_a:?}");
    assert!(is_dns_label(&label_b), "{b:?} -> {label_b:?}");
    if a != b {
        assert_ne!(label_a, label_b, "{a:?} and {b:?}");
    }
    let run = RunId::parse("abcdefgh234567ab").expect("run id");
    if naming::check_account_name("user", a).is_ok() {
        let namespace = naming::namespace(Policy::PerUser, "spark-{user}", a, None, &run)
            .expect("an accepted user has a namespace");
        assert!(is_dns_label(&namespace), "{a:?} -> {namespace:?}");
        let account = naming::service_account(a, &run);
        assert!(is_dns_label(&account), "{a:?} -> {account:?}");
    }
});
