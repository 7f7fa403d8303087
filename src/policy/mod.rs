//! What kubesu allows and how it names things, decided from the config file
//! alone: no system calls and no cluster here.

pub mod config;
pub mod environment;
pub mod labels;
pub mod naming;
pub mod spark;
