//! `RUN --mount=...`: what BuildKit offers a RUN step besides its root filesystem, none of which ends up in the
//! step's layer.
//!
//! - `type=bind` (the default): a path of the context (or of another stage or image with `from=`), read-only
//!   unless `rw` (then writes go to a throw-away copy).
//! - `type=cache`: a directory kept between builds under the builder's working directory, keyed by `id` (default:
//!   the target), created with `mode`/`uid`/`gid`, and locked while a step uses it, so concurrent builds take
//!   turns.
//! - `type=tmpfs`: an empty tmpfs (`size=`).
//! - `type=secret`: a secret given to the build with `--secret id=ID,src=FILE|env=VAR`, as a read-only file at
//!   `target` (default `/run/secrets/ID`); a missing secret fails only with `required`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_sandbox::MountRequest;

use berth_spec::io_context::IoContext;

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// `bind`, `cache`, `tmpfs` or `secret`.
    pub kind: String,
    /// The options other than `type`, as given.
    pub options: BTreeMap<String, String>,
}

impl MountSpec {
    /// Parses `type=cache,target=/root/.cache,id=pip`.
    pub fn parse(text: &str) -> Result<MountSpec, String> {
        let mut options = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            let k = match k.to_ascii_lowercase().as_str() {
                "dst" | "destination" => "target".to_owned(),
                "src" => "source".to_owned(),
                "ro" | "readonly" => "readonly".to_owned(),
                "rw" | "readwrite" => "rw".to_owned(),
                other => other.to_owned(),
            };
            options.insert(k, v.to_owned());
        }
        let kind = options.remove("type").unwrap_or_else(|| "bind".to_owned());
        if !matches!(kind.as_str(), "bind" | "cache" | "tmpfs" | "secret") {
            return Err(format!(
                "--mount type={kind}: use bind, cache, tmpfs or secret (ssh is not supported)"
            ));
        }
        let known: &[&str] = match kind.as_str() {
            "bind" => &["target", "source", "from", "readonly", "rw"],
            "cache" => &[
                "target", "id", "sharing", "mode", "uid", "gid", "from", "source", "readonly", "rw",
            ],
            "tmpfs" => &["target", "size"],
            _ => &["target", "id", "required", "mode", "uid", "gid", "env"],
        };
        if let Some(k) = options.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "--mount type={kind} does not take {k}= (it takes {})",
                known.join(", ")
            ));
        }
        if kind != "secret" && !options.contains_key("target") {
            return Err(format!("--mount type={kind} needs target=PATH"));
        }
        Ok(MountSpec { kind, options })
    }

    /// The mount's path in the container.
    pub fn target(&self) -> String {
        match self.options.get("target") {
            Some(t) => t.clone(),
            None => format!("/run/secrets/{}", self.options.get("id").cloned().unwrap_or_default()),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.options.get(name).is_some_and(|v| v != "false")
    }

    fn octal(&self, name: &str, default: u32) -> Result<u32, String> {
        match self.options.get(name) {
            None => Ok(default),
            Some(v) => u32::from_str_radix(v, 8).map_err(|_| format!("--mount {name}={v}: give an octal mode")),
        }
    }

    fn id(&self, name: &str) -> Result<Option<u32>, String> {
        self.options
            .get(name)
            .map(|v| v.parse().map_err(|_| format!("--mount {name}={v}: give a number")))
            .transpose()
    }
}

/// A secret given to the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// A file on the host.
    File(PathBuf),
    /// The value of an environment variable of the build.
    Value(Vec<u8>),
}

/// Parses `--secret id=ID,src=FILE` or `--secret id=ID,env=VAR` (a bare `id=ID` reads the variable `ID`).
pub fn parse_secret(text: &str) -> Result<(String, Secret), String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in text.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_owned()),
            Some(("type", "file" | "env")) => {}
            _ => return Err(format!("--secret {text}: write id=ID,src=FILE or id=ID,env=VAR")),
        }
    }
    let id = id.ok_or_else(|| format!("--secret {text}: id=ID is missing"))?;
    let secret = match (src, env) {
        (Some(p), None) => Secret::File(p),
        (None, var) => {
            let var = var.unwrap_or_else(|| id.clone());
            let value = std::env::var_os(&var).ok_or_else(|| format!("--secret {text}: ${var} is not set"))?;
            Secret::Value(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec())
        }
        (Some(_), Some(_)) => return Err(format!("--secret {text}: give src= or env=, not both")),
    };
    Ok((id, secret))
}

/// Where the sources of mounts are, for one RUN.
#[derive(Debug)]
pub struct MountContext<'a> {
    /// The build context.
    pub context: &'a Path,
    /// Root filesystems of `from=` stages or images, by the name given.
    pub from: &'a BTreeMap<String, PathBuf>,
    /// Where cache mounts live.
    pub caches: &'a Path,
    /// The build's secrets.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// The step's scratch directory (secret files, rw bind copies).
    pub scratch: &'a Path,
}

/// What the mounts of one RUN need held while it runs (cache locks).
#[derive(Debug, Default)]
pub struct Held {
    _locks: Vec<std::fs::File>,
}

fn in_root(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let fs = berth_sandbox::rootfs::RootFs::open(root, "the mount source").map_err(|e| e.to_string())?;
    let resolved = fs
        .resolve(&format!("/{}", rel.trim_start_matches('/')))
        .map_err(|e| format!("source={rel}: {}", berth_spec::error_chain(&e)))?;
    let path = root.join(resolved.trim_start_matches('/'));
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(format!("source={rel}: no such file or directory"));
    }
    Ok(path)
}

/// Turns the `--mount`s of a RUN into the sandbox's mounts; returns them and what must stay held while it runs.
pub fn prepare(specs: &[MountSpec], ctx: &MountContext<'_>) -> Result<(Vec<MountRequest>, Held), String> {
    let mut mounts = Vec::new();
    let mut held = Held::default();
    for (i, m) in specs.iter().enumerate() {
        let target = m.target();
        if !target.starts_with('/') {
            return Err(format!("--mount target={target}: give an absolute path"));
        }
        match m.kind.as_str() {
            "bind" => {
                let root = match m.options.get("from") {
                    None => ctx.context.to_owned(),
                    Some(f) => ctx
                        .from
                        .get(f)
                        .cloned()
                        .ok_or_else(|| format!("--mount from={f}: not available"))?,
                };
                let source = in_root(&root, m.options.get("source").map_or("/", String::as_str))?;
                let rw = m.flag("rw");
                let source = if rw {
                    // Writes go to a copy that is thrown away with the step.
                    let copy = ctx.scratch.join(format!("bind-{i}"));
                    let meta = std::fs::metadata(&source).map_err(|e| e.to_string())?;
                    if meta.is_dir() {
                        std::fs::create_dir_all(&copy).map_err(|e| e.to_string())?;
                        berth_sandbox::tree_copy::copy_tree(&source, &copy).map_err(|e| e.to_string())?;
                    } else {
                        std::fs::copy(&source, &copy).map_err(|e| e.to_string())?;
                    }
                    copy
                } else {
                    source
                };
                mounts.push(MountRequest::Bind {
                    source,
                    destination: target,
                    read_only: !rw,
                });
            }
            "cache" => {
                let id = m.options.get("id").cloned().unwrap_or_else(|| target.clone());
                let name: String = id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let dir = ctx.caches.join(format!("{name}-{:016x}", fnv(&id)));
                let fresh = !dir.exists();
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                if fresh {
                    let mode = m.octal("mode", 0o755)?;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
                    let (uid, gid) = (m.id("uid")?.unwrap_or(0), m.id("gid")?.unwrap_or(0));
                    rustix::fs::chown(
                        &dir,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .map_err(|e| e.to_string())?;
                }
                // Concurrent builds take turns with one cache.
                let lock_path = ctx.caches.join(format!("{name}-{:016x}.lock", fnv(&id)));
                let lock = std::fs::File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| format!("{}: {e}", lock_path.display()))?;
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| e.to_string())?;
                held._locks.push(lock);
                mounts.push(MountRequest::Bind {
                    source: dir,
                    destination: target,
                    read_only: m.flag("readonly"),
                });
            }
            "tmpfs" => {
                let size = m
                    .options
                    .get("size")
                    .map(|s| berth_sandbox::options::parse_size("--mount size", s).map_err(|e| e.to_string()))
                    .transpose()?;
                mounts.push(MountRequest::Tmpfs {
                    destination: target,
                    size,
                    mode: None,
                    read_only: false,
                });
            }
            _ => {
                let id = m
                    .options
                    .get("id")
                    .cloned()
                    .unwrap_or_else(|| target.rsplit('/').next().unwrap_or_default().to_owned());
                let Some(secret) = ctx.secrets.get(&id) else {
                    if m.flag("required") {
                        return Err(format!(
                            "--mount type=secret,id={id}: no such secret; give it with --secret id={id},src=FILE"
                        ));
                    }
                    continue;
                };
                let bytes = match secret {
                    Secret::File(p) => {
                        std::fs::read(p).map_err(|e| format!("--secret id={id}: {}: {e}", p.display()))?
                    }
                    Secret::Value(v) => v.clone(),
                };
                let file = ctx.scratch.join(format!("secret-{i}"));
                std::fs::write(&file, bytes)
                    .at("write", &file)
                    .map_err(|e| e.to_string())?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m.octal("mode", 0o400)?))
                    .map_err(|e| e.to_string())?;
                let (uid, gid) = (m.id("uid")?.unwrap_or(0), m.id("gid")?.unwrap_or(0));
                rustix::fs::chown(
                    &file,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| e.to_string())?;
                mounts.push(MountRequest::Bind {
                    source: file,
                    destination: target,
                    read_only: true,
                });
            }
        }
    }
    Ok((mounts, held))
}

/// A stable 64-bit hash of a cache id (FNV-1a), so ids that sanitize alike get different directories.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = MountSpec::parse("type=cache,dst=/root/.cache,id=pip,sharing=locked").unwrap();
        assert_eq!(m.kind, "cache");
        assert_eq!(m.target(), "/root/.cache");
        let b = MountSpec::parse("target=/src,rw").unwrap();
        assert_eq!(b.kind, "bind");
        assert!(b.flag("rw"));
        let s = MountSpec::parse("type=secret,id=token").unwrap();
        assert_eq!(s.target(), "/run/secrets/token");
        assert!(
            MountSpec::parse("type=ssh")
                .unwrap_err()
                .contains("ssh is not supported")
        );
        assert!(MountSpec::parse("type=bind").unwrap_err().contains("needs target"));
        assert!(
            MountSpec::parse("type=tmpfs,target=/t,bogus=1")
                .unwrap_err()
                .contains("bogus")
        );
    }

    #[test]
    fn secrets() {
        let (id, s) = parse_secret("id=a,src=/tmp/x").unwrap();
        assert_eq!((id.as_str(), s), ("a", Secret::File("/tmp/x".into())));
        assert!(parse_secret("src=/x").is_err());
        assert!(parse_secret("id=nope_not_set_anywhere_xyz").is_err());
    }
}
