//! Names kubesu gives to Kubernetes objects: the namespace a run uses, the
//! run's ServiceAccount and the user label.
//!
//! The namespace mapping must be injective: two different users (or teams)
//! must never share a namespace. Valid names are kept as they are, so admins
//! recognise them; anything else is mangled and tagged with a hash of the
//! original, and the "--" marker keeps both kinds apart.

use std::collections::BTreeSet;

use ring::digest;

use crate::failure::{Failure, Result};
use crate::policy::identity::{RunId, base32};

/// The pattern [`check_account_name`] enforces, quoted in its messages.
const ACCOUNT_NAME_PATTERN: &str = "^[a-z_][a-z0-9_-]{0,31}$";
/// Longest user or group name accepted; longer names break `ps`, `ls` and
/// utmp on many systems.
const ACCOUNT_NAME_MAX: usize = 32;

/// Longest DNS-1123 label (namespaces, label values, our ServiceAccounts).
const LABEL_MAX: usize = 63;
/// Separates a mangled name from its hash; never present in a kept name.
const MANGLE_MARK: &str = "--";
/// Base32 characters of SHA-256 kept in a mangled name (50 bits).
const HASH_CHARS: usize = 10;
/// Stands in for a mangled name with nothing usable left (e.g. "" or "é"),
/// so the label still starts alphanumerically and still carries the mark.
const EMPTY_STEM: &str = "x";

/// Prefix of the run's ServiceAccount, so admins can tell kubesu's accounts.
const SERVICE_ACCOUNT_PREFIX: &str = "kubesu-";

/// Which namespace a run uses (from the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// One namespace per user, from a template with {user}.
    PerUser,
    /// One namespace per team (--team), from a template with {team}.
    PerTeam,
    /// The same namespace for everyone: the template has no placeholder.
    Fixed,
    /// A fresh namespace for each run, from a template with {run}.
    PerRun,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::PerUser => "per-user",
            Policy::PerTeam => "per-team",
            Policy::Fixed => "fixed",
            Policy::PerRun => "per-run",
        }
    }

    /// The placeholder the template must use, and the only one it may use:
    /// another one would give a user or team several namespaces, or let a
    /// per-team namespace depend on who runs.
    fn placeholder(self) -> Option<Placeholder> {
        match self {
            Policy::PerUser => Some(Placeholder::User),
            Policy::PerTeam => Some(Placeholder::Team),
            Policy::Fixed => None,
            Policy::PerRun => Some(Placeholder::Run),
        }
    }
}

/// Validate a POSIX user or group name with a conservative pattern:
/// `^[a-z_][a-z0-9_-]{0,31}$`. This refuses upper case, dots, a leading dash,
/// all-digit names (numeric ids are never accepted where names are expected),
/// names over 32 characters and non-ASCII. `what` is "user", "group" or "team"
/// and names the kind of name in the message.
pub fn check_account_name(what: &str, name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || *first == b'_')
                && rest.len() < ACCOUNT_NAME_MAX
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-'
                })
        }
        None => false,
    };
    if valid {
        return Ok(());
    }
    let advice = if what == "user" {
        "use the account's login name"
    } else {
        "use the group's name, not its number"
    };
    Err(Failure::data(format!(
        "{what} name {name:?} is refused: names must match {ACCOUNT_NAME_PATTERN} \
         (lower case letters, digits, '_' and '-'); {advice}"
    )))
}

/// A placeholder of the namespace template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Placeholder {
    User,
    Team,
    Run,
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Placeholder> {
        match name {
            "user" => Some(Placeholder::User),
            "team" => Some(Placeholder::Team),
            "run" => Some(Placeholder::Run),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Placeholder::User => "{user}",
            Placeholder::Team => "{team}",
            Placeholder::Run => "{run}",
        }
    }
}

/// A piece of a parsed template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Hole(Placeholder),
}

/// Split a template into text and placeholders; a brace outside a known
/// placeholder is a broken config, not literal text.
fn parse_template(template: &str) -> Result<Vec<Piece<'_>>> {
    let broken = |why: String| {
        Failure::config(format!(
            "namespace template {template:?} is refused: {why}; \
             fix the namespace template in kubesu's config file"
        ))
    };
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(broken("it has a '}' without '{'".into()));
        }
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after
            .find(['{', '}'])
            .filter(|&i| after[i..].starts_with('}'))
            .ok_or_else(|| broken("it has a '{' without '}'".into()))?;
        let name = &after[..close];
        let hole = Placeholder::from_name(name).ok_or_else(|| {
            broken(format!(
                "{{{name}}} is not a placeholder (use {{user}}, {{team}} or {{run}})"
            ))
        })?;
        pieces.push(Piece::Hole(hole));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    if pieces.is_empty() {
        return Err(broken("it is empty".into()));
    }
    Ok(pieces)
}

/// Expand the namespace template and make it a DNS-1123 label.
///
/// Placeholders: {user}, {team}, {run}. PerUser needs {user}, PerTeam needs
/// {team}, PerRun needs {run}, and each may use only its own; Fixed must have
/// none (else `Failure::config` naming the template). The raw values are
/// substituted and the whole result goes through [`dns_label`], so different
/// values always give different namespaces. The user and team names are
/// checked with [`check_account_name`] when the template uses them.
/// `team` is None when no --team was given: PerTeam without it is
/// `Failure::usage`.
pub fn namespace(
    policy: Policy,
    template: &str,
    user: &str,
    team: Option<&str>,
    run: &RunId,
) -> Result<String> {
    let pieces = parse_template(template)?;
    let used: BTreeSet<Placeholder> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(*h),
            Piece::Text(_) => None,
        })
        .collect();
    let wanted: BTreeSet<Placeholder> = policy.placeholder().into_iter().collect();
    if used != wanted {
        let need = match policy.placeholder() {
            Some(h) => format!("exactly the placeholder {}", h.text()),
            None => "no placeholder".to_owned(),
        };
        return Err(Failure::config(format!(
            "namespace template {template:?} is refused: the {} policy needs {need}; \
             fix the namespace template in kubesu's config file",
            policy.name()
        )));
    }

    let mut expanded = String::new();
    for piece in &pieces {
        match piece {
            Piece::Text(text) => expanded.push_str(text),
            Piece::Hole(Placeholder::User) => {
                check_account_name("user", user)?;
                expanded.push_str(user);
            }
            Piece::Hole(Placeholder::Team) => {
                let team = team.ok_or_else(|| {
                    Failure::usage("this kubesu is configured per team: pass --team")
                })?;
                check_account_name("team", team)?;
                expanded.push_str(team);
            }
            Piece::Hole(Placeholder::Run) => expanded.push_str(run.as_str()),
        }
    }
    Ok(dns_label(&expanded))
}

/// Whether `s` is a DNS-1123 label: 1-63 of [a-z0-9-], alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= LABEL_MAX
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Make any string a DNS-1123 label (<= 63 chars, [a-z0-9-], starts and ends
/// alphanumeric).
///
/// A string that already is a label and contains no "--" is returned
/// unchanged. Otherwise it is lowercased, every other character becomes '-',
/// runs of '-' collapse, dashes are trimmed from both ends, the stem is cut
/// to fit (or is "x" if nothing is left), and "--" plus 10 characters of
/// lowercase base32 of SHA-256 of the original string are appended.
/// Unchanged outputs never contain "--" and mangled ones always do, so an
/// unchanged name never equals a mangled one; two mangled names collide only
/// if SHA-256 truncated to 50 bits collides.
pub fn dns_label(raw: &str) -> String {
    if is_dns_label(raw) && !raw.contains(MANGLE_MARK) {
        return raw.to_owned();
    }
    let mut stem = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        // Collapse, and drop leading dashes: the label must start alphanumeric.
        if c != '-' || !(stem.is_empty() || stem.ends_with('-')) {
            stem.push(c);
        }
    }
    // The stem is ASCII, so truncating by bytes is safe.
    stem.truncate(LABEL_MAX - MANGLE_MARK.len() - HASH_CHARS);
    let stem = match stem.trim_end_matches('-') {
        "" => EMPTY_STEM,
        s => s,
    };
    let hash = base32(digest::digest(&digest::SHA256, raw.as_bytes()).as_ref());
    format!("{stem}{MANGLE_MARK}{}", &hash[..HASH_CHARS])
}

/// The run's ServiceAccount name: "kubesu-", the user's [`dns_label`] cut to
/// fit, "-" and the run id; at most 63 characters, a valid DNS-1123 label
/// (and subdomain). The run id alone makes it unique; the user part is only
/// for people reading `kubectl get sa`.
pub fn service_account(user: &str, run: &RunId) -> String {
    let room = LABEL_MAX - SERVICE_ACCOUNT_PREFIX.len() - 1 - run.as_str().len();
    let mut user_part = dns_label(user);
    // dns_label is ASCII, so truncating by bytes is safe; it starts
    // alphanumeric, so something is left after trimming.
    user_part.truncate(room);
    let user_part = user_part.trim_end_matches('-');
    format!("{SERVICE_ACCOUNT_PREFIX}{user_part}-{run}")
}

/// A label value for the user (for `kubesu.io/user=`).
///
/// Label values allow [A-Za-z0-9._-], at most 63 characters, alphanumeric at
/// both ends. Names that pass [`check_account_name`] fit except that they may
/// start or end with '_', so this simply uses [`dns_label`]: valid labels
/// stay as they are, the rest get the same injective mangling as namespaces.
pub fn user_label(user: &str) -> String {
    dns_label(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Code;
    use std::collections::HashMap;

    fn run() -> RunId {
        RunId::parse("abcdefgh234567ab").unwrap()
    }

    fn assert_label(s: &str) {
        assert!(is_dns_label(s), "not a DNS-1123 label: {s:?}");
    }

    #[test]
    fn valid_names_are_unchanged() {
        for name in ["alice", "a-b", "svc-1", "0", "spark-alice", &"a".repeat(63)] {
            assert_eq!(dns_label(name), name);
        }
    }

    #[test]
    fn lookalikes_map_differently() {
        let pairs = [
            ("Alice", "alice"),
            ("a.b", "a-b"),
            ("a_b", "a-b"),
            ("a--b", "a-b"),
        ];
        for (a, b) in pairs {
            let (la, lb) = (dns_label(a), dns_label(b));
            assert_ne!(la, lb, "{a:?} and {b:?}");
            assert_label(&la);
            assert_label(&lb);
        }
        assert_ne!(dns_label("a--b"), "a--b");
        assert_ne!(dns_label("a.b"), dns_label("a_b"));
        assert!(dns_label("Alice").starts_with("alice--"));
    }

    #[test]
    fn long_inputs_fit() {
        for raw in [
            "a".repeat(300),
            "A".repeat(300),
            "a.".repeat(150),
            "a".repeat(64),
        ] {
            let label = dns_label(&raw);
            assert!(label.len() <= LABEL_MAX);
            assert_label(&label);
        }
        assert_ne!(dns_label(&"a".repeat(300)), dns_label(&"a".repeat(301)));
    }

    #[test]
    fn non_ascii_and_empty_give_labels() {
        for raw in [
            "", "é", "ééé", "名前", "_", "-", "--", "-a-", "a\u{0}b", "😀x",
        ] {
            let label = dns_label(raw);
            assert_label(&label);
            assert!(label.contains(MANGLE_MARK), "{raw:?} -> {label:?}");
        }
        assert_ne!(dns_label(""), dns_label("é"));
        assert!(dns_label("").starts_with("x--"));
        assert!(dns_label("aé").starts_with("a--"));
    }

    #[test]
    fn generated_strings_give_distinct_labels() {
        const CHARS: &[char] = &['a', 'b', 'Z', '0', '9', '-', '_', '.', ' ', 'é', '/'];
        // A small deterministic generator keeps the test reproducible and
        // free of extra dependencies.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let raw: String = (0..len)
                .map(|_| CHARS[(next() % CHARS.len() as u64) as usize])
                .collect();
            let label = dns_label(&raw);
            assert_label(&label);
            if let Some(other) = seen.insert(label.clone(), raw.clone()) {
                assert_eq!(other, raw, "both map to {label:?}");
            }
        }
    }

    #[test]
    fn account_names() {
        for ok in ["alice", "_svc", "svc-1", "root", "a", &"a".repeat(32)] {
            check_account_name("user", ok).unwrap();
        }
        for bad in [
            "Alice",
            "a.b",
            "-x",
            "123",
            "",
            &"a".repeat(33),
            "é",
            "1abc",
            "a b",
        ] {
            let err = check_account_name("user", bad).unwrap_err();
            assert_eq!(err.code, Code::DataErr);
            assert!(err.message.starts_with("user name "), "{}", err.message);
            assert!(err.message.contains(ACCOUNT_NAME_PATTERN));
        }
        let err = check_account_name("team", "Data").unwrap_err();
        assert!(err.message.starts_with("team name \"Data\" is refused"));
    }

    #[test]
    fn namespace_per_policy() {
        let r = run();
        let ns = |p, t, u, team| namespace(p, t, u, team, &r);
        assert_eq!(
            ns(Policy::PerUser, "spark-{user}", "alice", None).unwrap(),
            "spark-alice"
        );
        let mangled = ns(Policy::PerUser, "spark-{user}", "a_b", None).unwrap();
        assert!(mangled.starts_with("spark-a-b--"));
        assert_label(&mangled);
        assert_ne!(
            mangled,
            ns(Policy::PerUser, "spark-{user}", "a-b", None).unwrap()
        );
        assert_eq!(
            ns(Policy::PerTeam, "team-{team}", "alice", Some("data")).unwrap(),
            "team-data"
        );
        assert_eq!(
            ns(Policy::Fixed, "shared", "alice", None).unwrap(),
            "shared"
        );
        assert_eq!(
            ns(Policy::PerRun, "run-{run}", "alice", None).unwrap(),
            "run-abcdefgh234567ab"
        );
        assert_eq!(
            ns(Policy::PerUser, "{user}-{user}", "bob", None).unwrap(),
            "bob-bob"
        );
    }

    #[test]
    fn namespace_errors() {
        let r = run();
        let code = |p, t, u, team| namespace(p, t, u, team, &r).unwrap_err().code;
        // Template does not fit the policy.
        assert_eq!(code(Policy::PerUser, "spark", "alice", None), Code::Config);
        assert_eq!(
            code(Policy::PerUser, "{team}-{user}", "alice", Some("d")),
            Code::Config
        );
        assert_eq!(
            code(Policy::PerTeam, "{user}", "alice", Some("d")),
            Code::Config
        );
        assert_eq!(code(Policy::PerRun, "{user}", "alice", None), Code::Config);
        assert_eq!(code(Policy::Fixed, "{user}", "alice", None), Code::Config);
        // Broken templates.
        for t in [
            "", "x-{foo}", "x-{user", "x-user}", "{{user}}", "{}", "}{user}",
        ] {
            let err = namespace(Policy::PerUser, t, "alice", None, &r).unwrap_err();
            assert_eq!(err.code, Code::Config, "{t:?}");
            assert!(err.message.contains(&format!("{t:?}")), "{}", err.message);
        }
        // Missing --team, bad names.
        let err = namespace(Policy::PerTeam, "t-{team}", "alice", None, &r).unwrap_err();
        assert_eq!(err.code, Code::Usage);
        assert_eq!(
            err.message,
            "this kubesu is configured per team: pass --team"
        );
        assert_eq!(
            code(Policy::PerTeam, "t-{team}", "alice", Some("Data")),
            Code::DataErr
        );
        assert_eq!(
            code(Policy::PerUser, "u-{user}", "1000", None),
            Code::DataErr
        );
    }

    #[test]
    fn service_account_fits() {
        let r = run();
        let long = "a".repeat(32);
        for user in [
            long.as_str(),
            "alice",
            "_svc",
            "a_b",
            "Alice",
            "",
            &"x-".repeat(40),
        ] {
            let sa = service_account(user, &r);
            assert!(sa.len() <= LABEL_MAX, "{sa:?}");
            assert_label(&sa);
            assert!(sa.starts_with(SERVICE_ACCOUNT_PREFIX));
            assert!(sa.ends_with(&format!("-{r}")));
        }
        assert_eq!(
            service_account("alice", &r),
            "kubesu-alice-abcdefgh234567ab"
        );
        assert_eq!(service_account(&long, &r), format!("kubesu-{long}-{r}"));
    }

    #[test]
    fn user_labels() {
        assert_eq!(user_label("alice"), "alice");
        assert_eq!(user_label(&"a".repeat(32)), "a".repeat(32));
        for user in ["_svc", "svc_", "a_b"] {
            let label = user_label(user);
            assert_label(&label);
            assert_ne!(user_label(user), user_label(&user.replace('_', "-")));
        }
    }
}
