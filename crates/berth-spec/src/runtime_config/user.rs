//! `Config.User`: parsing `USER[:GROUP]` and resolving it against the image's `/etc/passwd` and `/etc/group`.

use std::fmt;
use std::str::FromStr;

use super::ConversionError;

/// Largest uid/gid accepted. 4294967295 is `(uid_t)-1`, which `setuid`/`chown` treat as "leave unchanged".
pub const MAX_ID: u32 = u32::MAX - 1;

/// One side of `USER[:GROUP]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserPart {
    /// A numeric uid or gid, copied verbatim into the runtime config.
    Id(u32),
    /// A name to look up in the image's `/etc/passwd` or `/etc/group`.
    Name(String),
}

impl fmt::Display for UserPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserPart::Id(id) => write!(f, "{id}"),
            UserPart::Name(name) => f.write_str(name),
        }
    }
}

/// A parsed `Config.User` (or `--user`): `user`, `uid`, `user:group`, `uid:gid`, `uid:group` or `user:gid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserSpec {
    /// The user.
    pub user: UserPart,
    /// The group, when one was given; otherwise the user's primary group from `/etc/passwd` is used.
    pub group: Option<UserPart>,
}

impl UserSpec {
    /// Root with its `/etc/passwd` group (gid 0 when root has no entry): what an empty `User` means.
    pub fn root() -> Self {
        UserSpec {
            user: UserPart::Id(0),
            group: None,
        }
    }

    /// Parses `USER[:GROUP]`; the empty string means [`UserSpec::root`].
    ///
    /// Numeric parts must be plain decimal digits with a value in `0..=4294967294`: `-1`, `4294967295` and
    /// `4294967296` are refused rather than wrapped (containerd CVE-2024-40635). Names must be non-empty and free of
    /// `:`, `/` and control characters (including NUL).
    pub fn parse(input: &str) -> Result<Self, ConversionError> {
        if input.is_empty() {
            return Ok(UserSpec::root());
        }
        let invalid = |reason| ConversionError::InvalidUser {
            input: input.to_owned(),
            reason,
        };
        if input.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        let (user, group) = match input.split_once(':') {
            Some((_, group)) if group.contains(':') => return Err(invalid("it has more than one ':'")),
            Some(("", _)) => return Err(invalid("the user before ':' is empty")),
            Some((_, "")) => return Err(invalid("the group after ':' is empty")),
            Some((user, group)) => (user, Some(group)),
            None => (input, None),
        };
        Ok(UserSpec {
            user: parse_part(input, user)?,
            group: group.map(|g| parse_part(input, g)).transpose()?,
        })
    }
}

impl FromStr for UserSpec {
    type Err = ConversionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserSpec::parse(s)
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => write!(f, "{}", self.user),
        }
    }
}

/// Parses a decimal id in `0..=MAX_ID`. `None` when `text` is not all ASCII digits; `Some(None)` when it is, but
/// out of range.
fn parse_id(text: &str) -> Option<Option<u32>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = text.trim_start_matches('0');
    if significant.len() > 10 {
        return Some(None);
    }
    // At most ten digits always fit in a u64; only the empty (all-zero) case needs care.
    let value = if significant.is_empty() {
        0
    } else {
        significant.parse::<u64>().unwrap_or(u64::MAX)
    };
    Some(u32::try_from(value).ok().filter(|&v| v <= MAX_ID))
}

fn parse_part(input: &str, part: &str) -> Result<UserPart, ConversionError> {
    let out_of_range = || ConversionError::IdOutOfRange {
        input: input.to_owned(),
        id: part.to_owned(),
    };
    if let Some(id) = parse_id(part) {
        return id.map(UserPart::Id).ok_or_else(out_of_range);
    }
    if let Some(unsigned) = part.strip_prefix(['-', '+'])
        && parse_id(unsigned).is_some()
    {
        return Err(out_of_range());
    }
    let invalid = |reason| ConversionError::InvalidUser {
        input: input.to_owned(),
        reason,
    };
    if part.contains('/') {
        return Err(invalid("a user or group name cannot contain '/'"));
    }
    if part.chars().any(char::is_control) {
        return Err(invalid("a user or group name cannot contain control characters"));
    }
    Ok(UserPart::Name(part.to_owned()))
}

/// The numeric identity the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    /// `process.user.uid`.
    pub uid: u32,
    /// `process.user.gid`.
    pub gid: u32,
    /// `process.user.additionalGids`: sorted, without duplicates, without `gid`.
    pub additional_gids: Vec<u32>,
}

/// One usable line of `/etc/passwd`.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

/// One usable line of `/etc/group`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

impl GroupEntry<'_> {
    fn has_member(&self, user: &str) -> bool {
        self.members.split(',').any(|m| m.trim() == user)
    }
}

/// Lines worth parsing: not blank, not comments, not NIS `+`/`-` compat entries.
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|line| {
        let start = line.trim_start();
        !(start.is_empty() || start.starts_with('#') || start.starts_with('+') || start.starts_with('-'))
    })
}

/// `name:password:uid:gid[:gecos:home:shell]`; malformed lines are skipped.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    data_lines(text).filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next().filter(|n| !n.is_empty())?;
        let _password = fields.next()?;
        let uid = parse_id(fields.next()?)??;
        let gid = parse_id(fields.next()?)??;
        Some(PasswdEntry { name, uid, gid })
    })
}

/// The home directory `/etc/passwd` (its contents, `text`) gives `user` (looked up by name when named, by uid
/// otherwise), or `/` when it has no entry for it or the entry names none: what runc and Docker set `HOME` to when
/// the image does not.
pub fn home_of(text: &str, user: &UserPart) -> String {
    data_lines(text)
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let name = fields.first().filter(|n| !n.is_empty())?;
            let matches = match user {
                UserPart::Name(wanted) => name == wanted,
                UserPart::Id(uid) => parse_id(fields.get(2)?)?? == *uid,
            };
            matches.then(|| fields.get(5).copied().unwrap_or_default())
        })
        .filter(|home| home.starts_with('/'))
        .unwrap_or("/")
        .to_owned()
}

/// `name:password:gid[:member,member…]`; malformed lines are skipped.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    data_lines(text).filter_map(|line| {
        let mut fields = line.splitn(4, ':');
        let name = fields.next().filter(|n| !n.is_empty())?;
        let _password = fields.next()?;
        let gid = parse_id(fields.next()?)??;
        let members = fields.next().unwrap_or("");
        Some(GroupEntry { name, gid, members })
    })
}

/// Resolves `spec` against the *contents* of the image's `/etc/passwd` and `/etc/group` (the caller reads them
/// in-root; pass `""` for a file the image lacks).
///
/// - A user name must have a passwd entry; it gives the uid and the primary gid.
/// - A numeric uid is used verbatim; its passwd entry, if any, gives the primary gid, else the gid is 0.
/// - A numeric group is used verbatim; a group name must have an `/etc/group` entry.
/// - Without a group, the supplementary groups are every `/etc/group` entry listing the user's name as a member
///   (other than the primary gid). This is what Docker and runc do, and what image-spec `config.md` describes for
///   `user`/`uid`; `conversion.md` suggests leaving them alone for a numeric uid, but following it would make
///   `USER 1000` behave differently here than under Docker, so the Docker behavior wins.
/// - With a group (numeric or named), no supplementary groups are added, as in both specs and in runc.
///
/// Blank lines, comments and malformed lines are skipped; both files are scanned once, in linear time.
pub fn resolve_user(spec: &UserSpec, passwd: &str, group: &str) -> Result<ResolvedUser, ConversionError> {
    let (uid, primary_gid, member_name) = match &spec.user {
        UserPart::Name(name) => {
            let entry = passwd_entries(passwd)
                .find(|e| e.name == name)
                .ok_or_else(|| ConversionError::UnknownUser { name: name.clone() })?;
            (entry.uid, entry.gid, Some(entry.name))
        }
        UserPart::Id(uid) => match passwd_entries(passwd).find(|e| e.uid == *uid) {
            Some(entry) => (*uid, entry.gid, Some(entry.name)),
            None => (*uid, 0, None),
        },
    };
    match &spec.group {
        Some(UserPart::Id(gid)) => Ok(ResolvedUser {
            uid,
            gid: *gid,
            additional_gids: Vec::new(),
        }),
        Some(UserPart::Name(name)) => {
            let entry = group_entries(group)
                .find(|e| e.name == name)
                .ok_or_else(|| ConversionError::UnknownGroup { name: name.clone() })?;
            Ok(ResolvedUser {
                uid,
                gid: entry.gid,
                additional_gids: Vec::new(),
            })
        }
        None => {
            let mut additional_gids: Vec<u32> = match member_name {
                Some(user) => group_entries(group)
                    .filter(|e| e.gid != primary_gid && e.has_member(user))
                    .map(|e| e.gid)
                    .collect(),
                None => Vec::new(),
            };
            additional_gids.sort_unstable();
            additional_gids.dedup();
            Ok(ResolvedUser {
                uid,
                gid: primary_gid,
                additional_gids,
            })
        }
    }
}

#[cfg(test)]
mod tests;
