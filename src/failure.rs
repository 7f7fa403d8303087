//! kubesu's own failures, each with a sysexits(3) code and a message that says
//! what failed, for whom, and what to do. Everything else exits with the
//! command's own status.

use std::fmt;

/// Exit codes from sysexits(3), so a platform can tell kubesu's refusals from
/// the command's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Wrong command line.
    Usage = 64,
    /// Input refused: a name, an argument or a namespace kubesu will not use.
    DataErr = 65,
    /// The Kubernetes API could not be reached or did not answer in time.
    Unavailable = 69,
    /// A bug or an unexpected state of the system.
    Software = 70,
    /// The audit trail could not record the run: it did not start.
    IoErr = 74,
    /// The caller, the user or the command is not permitted.
    NoPerm = 77,
    /// The configuration is missing, malformed or unsafe.
    Config = 78,
}

#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// Exit with this instead of the code, e.g. 128+N when signal N
    /// stopped a run before its command started.
    pub status: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(Code::DataErr, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }
    pub fn software(message: impl Into<String>) -> Self {
        Self::new(Code::Software, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Code::NoPerm, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Code::Config, message)
    }

    pub fn with_status(self, status: i32) -> Self {
        Self {
            status: Some(status),
            ..self
        }
    }

    /// The exit status kubesu ends with for this failure.
    pub fn exit_status(&self) -> i32 {
        self.status.unwrap_or(self.code as i32)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Attach a kubesu exit code and a leading sentence to a lower-level error,
/// keeping its whole cause chain in the message.
pub trait Context<T> {
    fn or_fail(self, code: Code, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn or_fail(self, code: Code, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Failure::new(code, format!("{}: {e}", what())))
    }
}
