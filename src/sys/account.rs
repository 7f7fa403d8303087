//! Accounts and groups, from the system's user database.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

use crate::failure::{Code, Context, Failure, Result};

/// An end user, resolved once: every later step uses these ids, never the
/// name again.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Every group the user is in, the primary one included.
    pub groups: Vec<Gid>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

impl Account {
    /// `None` when no such user exists.
    pub fn lookup(name: &str) -> Result<Option<Account>> {
        let user = User::from_name(name).or_fail(Code::Software, || {
            format!("cannot look up user {name:?} in the user database")
        })?;
        let Some(user) = user else { return Ok(None) };
        let cname = CString::new(name)
            .map_err(|_| Failure::data(format!("user name {name:?} contains a NUL byte")))?;
        let groups = getgrouplist(&cname, user.gid).or_fail(Code::Software, || {
            format!("cannot list the groups of user {name:?}")
        })?;
        Ok(Some(Account {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
            shell: user.shell,
        }))
    }

    pub fn is_member(&self, gid: Gid) -> bool {
        self.groups.contains(&gid)
    }
}

/// A group's id by name; `None` when no such group exists.
pub fn group_id(name: &str) -> Result<Option<Gid>> {
    Group::from_name(name)
        .map(|g| g.map(|g| g.gid))
        .or_fail(Code::Software, || {
            format!("cannot look up group {name:?} in the group database")
        })
}

/// A user's id by name, where this host has such a user.
pub fn user_id(name: &str) -> Option<Uid> {
    User::from_name(name).ok().flatten().map(|u| u.uid)
}

/// A user's name by uid (for the caller, as recorded by sudo).
pub fn user_name(uid: Uid) -> Option<String> {
    User::from_uid(uid).ok().flatten().map(|u| u.name)
}
