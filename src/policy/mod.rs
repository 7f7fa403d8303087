//! What kubesu allows and how it names things, decided from the config file
//! alone: no cluster here, and no system call but reading that file (through
//! `sys::fs`).

pub mod config;
pub mod environment;
pub mod identity;
pub mod labels;
pub mod naming;
pub mod permissions;
pub mod spark;
pub mod tenancy;
