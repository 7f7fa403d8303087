//! A run's identity: its id, its namespace and its ServiceAccount, decided
//! once before anything is created and carried as one value through every
//! phase, the lease, the audit record and revocation.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use crate::failure::{Failure, Result};

/// Who a run is in the cluster: its id, the namespace it uses and the
/// ServiceAccount it creates there (its lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunIdentity {
    pub run: RunId,
    pub namespace: String,
    pub service_account: String,
}

/// Lowercase RFC 4648 base32: only letters and 2-7, so any encoding is a
/// valid DNS label and label value.
const BASE32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Random bytes in a run id: 80 bits make guessing another run's id hopeless.
const RUN_ID_BYTES: usize = 10;
/// Base32 characters in a run id (80 bits / 5 bits per character, no padding).
pub const RUN_ID_CHARS: usize = 16;

/// An unguessable run id: 16 characters of lowercase RFC 4648 base32 without
/// padding (80 random bits from the OS), valid as a DNS label and a label value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A new run id from the OS random number generator.
    pub fn generate() -> Result<RunId> {
        let mut bytes = [0u8; RUN_ID_BYTES];
        SystemRandom::new().fill(&mut bytes).map_err(|_| {
            Failure::software(
                "cannot read random bytes from the operating system for the run id; \
                 check that getrandom(2) or /dev/urandom works",
            )
        })?;
        Ok(RunId(base32(&bytes)))
    }

    /// A run id given on the command line (`kubesu revoke RUN_ID`).
    pub fn parse(s: &str) -> Result<RunId> {
        let valid = s.len() == RUN_ID_CHARS && s.bytes().all(|b| BASE32_ALPHABET.contains(&b));
        if valid {
            Ok(RunId(s.to_owned()))
        } else {
            Err(Failure::data(format!(
                "run id {s:?} is refused: run ids are {RUN_ID_CHARS} characters of \
                 lower case letters and digits 2-7; copy the id kubesu printed for the run"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase RFC 4648 base32 without padding. Twenty lines checked against
/// the RFC's test vectors, rather than a crate for one alphabet.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[usize::from((buffer >> bits) & 31)],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Code;
    use std::collections::HashSet;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32(input.as_bytes()), want);
        }
    }

    #[test]
    fn run_ids() {
        let mut ids = HashSet::new();
        for _ in 0..1000 {
            let id = RunId::generate().unwrap();
            assert_eq!(id.as_str().len(), RUN_ID_CHARS);
            assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
            assert_eq!(id.to_string(), id.as_str());
            ids.insert(id);
        }
        assert_eq!(ids.len(), 1000);
        for bad in [
            "ABCDEFGH234567AB",
            "abcdefgh234567a",
            "abcdefgh234567abc",
            "abcdefgh234567a1",
            "abcdefgh234567a8",
            "abcdefgh-34567ab",
            "",
            "abcdefgh234567aé",
        ] {
            assert_eq!(
                RunId::parse(bad).unwrap_err().code,
                Code::DataErr,
                "{bad:?}"
            );
        }
    }
}
