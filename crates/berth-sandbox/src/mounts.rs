//! Mounts: Docker's defaults, `-v`/`--mount` parsing, and their runtime-spec form.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use crate::SandboxError;
use crate::options::{MountRequest, container_path, parse_size};

/// A runtime-spec mount.
pub fn mount(destination: &str, typ: &str, source: impl AsRef<Path>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(source.as_ref().to_owned()));
    m.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    m
}

/// The mounts every Docker container gets: `/proc`, `/dev` (tmpfs), `/dev/pts`, `/dev/shm` (64 MiB), `/dev/mqueue`,
/// `/sys` and `/sys/fs/cgroup` (read-only unless privileged).
pub fn default_mounts(privileged: bool) -> Vec<Mount> {
    let mut sys = vec!["nosuid", "noexec", "nodev"];
    let mut cgroup = vec!["nosuid", "noexec", "nodev", "relatime"];
    if !privileged {
        sys.push("ro");
        cgroup.push("ro");
    }
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", &sys),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &cgroup),
    ]
}

/// The runtime-spec form of a user's mount. Bind sources must exist.
pub fn user_mount(request: &MountRequest) -> Result<Mount, SandboxError> {
    match request {
        MountRequest::Bind {
            source,
            destination,
            read_only,
        } => {
            if let Err(e) = std::fs::symlink_metadata(source) {
                return Err(SandboxError::option(
                    format!("bind mount {}:{destination}", source.display()),
                    format!("the host path cannot be used ({e}); create it first"),
                ));
            }
            let mut options = vec!["rbind", "rprivate"];
            if *read_only {
                options.push("ro");
            }
            Ok(mount(destination, "bind", source, &options))
        }
        MountRequest::Tmpfs {
            destination,
            size,
            mode,
            read_only,
        } => Ok(tmpfs(destination, *size, *mode, *read_only)),
    }
}

/// A tmpfs with Docker's `--mount type=tmpfs` options.
pub fn tmpfs(destination: &str, size: Option<u64>, mode: Option<u32>, read_only: bool) -> Mount {
    let mut options: Vec<String> = [
        if read_only { "ro" } else { "rw" },
        "nosuid",
        "nodev",
        "noexec",
        "relatime",
    ]
    .map(String::from)
    .to_vec();
    if let Some(size) = size {
        options.push(format!("size={size}"));
    }
    if let Some(mode) = mode {
        options.push(format!("mode={mode:o}"));
    }
    let mut m = mount(destination, "tmpfs", "tmpfs", &[]);
    m.set_options(Some(options));
    m
}

/// Parses `-v SRC:DST[:OPTIONS]`. SRC is a host path (absolute, or relative to the current directory when it starts
/// with `.`); OPTIONS are `ro`, `rw`, and the SELinux/propagation/copy flags Docker accepts, which are ignored.
pub fn parse_volume(spec: &str) -> Result<MountRequest, SandboxError> {
    let option = format!("-v {spec}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, flags) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, f] => (*s, *d, *f),
        _ => {
            return Err(SandboxError::option(
                option,
                "expected HOST-PATH:CONTAINER-PATH[:ro] (paths containing ':' are not supported)",
            ));
        }
    };
    let mut read_only = false;
    for flag in flags.split(',').filter(|f| !f.is_empty()) {
        match flag {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "nocopy" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            _ => {
                return Err(SandboxError::option(
                    option,
                    format!("unknown volume option {flag:?}; use ro or rw"),
                ));
            }
        }
    }
    Ok(MountRequest::Bind {
        source: host_path(&option, source)?,
        destination: container_path(&option, destination)?,
        read_only,
    })
}

/// Parses `--mount type=bind,source=…,target=…[,readonly]` or `--mount type=tmpfs,target=…[,tmpfs-size=…]
/// [,tmpfs-mode=…]`.
pub fn parse_mount(spec: &str) -> Result<MountRequest, SandboxError> {
    let option = format!("--mount {spec}");
    let bad = |reason: String| SandboxError::option(option.clone(), reason);
    let (mut typ, mut source, mut destination) = (None, None, None);
    let (mut read_only, mut size, mut mode) = (false, None, None);
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (key, value) {
            ("type", Some(v)) => typ = Some(v),
            ("source" | "src", Some(v)) => source = Some(v),
            ("destination" | "dst" | "target", Some(v)) => destination = Some(v),
            ("readonly" | "ro", None | Some("true" | "1")) => read_only = true,
            ("readonly" | "ro", Some("false" | "0")) => read_only = false,
            ("bind-propagation" | "relabel" | "consistency", Some(_)) => {}
            ("tmpfs-size", Some(v)) => size = Some(parse_size("tmpfs-size", v)?),
            ("tmpfs-mode", Some(v)) => {
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| bad(format!("tmpfs-mode {v:?} is not an octal mode such as 1777")))?,
                )
            }
            _ => return Err(bad(format!("unknown or malformed field {field:?}"))),
        }
    }
    let destination = destination.ok_or_else(|| bad("missing target=CONTAINER-PATH".into()))?;
    let destination = container_path(&option, destination)?;
    match typ {
        Some("bind") => {
            let source = source.ok_or_else(|| bad("a bind mount needs source=HOST-PATH".into()))?;
            Ok(MountRequest::Bind {
                source: host_path(&option, source)?,
                destination,
                read_only,
            })
        }
        Some("tmpfs") if source.is_none() => Ok(MountRequest::Tmpfs {
            destination,
            size,
            mode,
            read_only,
        }),
        Some("tmpfs") => Err(bad("a tmpfs mount takes no source".into())),
        Some(other) => Err(bad(format!(
            "type {other:?} is not supported; use type=bind or type=tmpfs"
        ))),
        None => Err(bad("missing type=bind or type=tmpfs".into())),
    }
}

fn host_path(option: &str, source: &str) -> Result<PathBuf, SandboxError> {
    if source.starts_with('/') {
        return Ok(PathBuf::from(source));
    }
    if source.starts_with('.') {
        let cwd = std::env::current_dir().map_err(|e| SandboxError::option(option, e.to_string()))?;
        return Ok(cwd.join(source));
    }
    Err(SandboxError::option(
        option,
        format!("{source:?} is not a host path; named volumes are not supported, give an absolute path or ./PATH"),
    ))
}

/// Orders mounts so that a parent directory is mounted before what is mounted below it (stable otherwise).
pub fn sort_by_depth(mounts: &mut [Mount]) {
    mounts.sort_by_key(|m| m.destination().components().count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/h:/c/../d:ro").unwrap(),
            MountRequest::Bind {
                source: "/h".into(),
                destination: "/d".into(),
                read_only: true
            }
        );
        assert!(
            parse_volume("name:/c")
                .unwrap_err()
                .to_string()
                .contains("named volumes")
        );
        assert!(parse_volume("/h:/c:bogus").is_err());
        assert!(parse_volume("/h").is_err());
        assert!(parse_volume("/h:rel").is_err());
    }

    #[test]
    fn mounts() {
        assert_eq!(
            parse_mount("type=bind,src=/h,target=/c,readonly").unwrap(),
            MountRequest::Bind {
                source: "/h".into(),
                destination: "/c".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap(),
            MountRequest::Tmpfs {
                destination: "/t".into(),
                size: Some(1 << 20),
                mode: Some(0o1777),
                read_only: false,
            }
        );
        let ro = user_mount(&parse_mount("type=tmpfs,dst=/t,readonly").unwrap()).unwrap();
        let options = ro.options().clone().unwrap();
        assert!(
            options.contains(&"ro".to_owned()) && !options.contains(&"rw".to_owned()),
            "{options:?}"
        );
        for bad in [
            "type=volume,src=x,dst=/a",
            "type=bind,dst=/a",
            "src=/a,dst=/b",
            "type=tmpfs,dst=/",
            "type=tmpfs",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
        let m = user_mount(&parse_mount("type=tmpfs,dst=/t,tmpfs-mode=755").unwrap()).unwrap();
        assert!(m.options().as_ref().unwrap().contains(&"mode=755".to_string()));
    }

    #[test]
    fn depth_order() {
        let mut v = vec![mount("/a/b", "bind", "/x", &[]), mount("/a", "bind", "/y", &[])];
        sort_by_depth(&mut v);
        assert_eq!(v[0].destination(), Path::new("/a"));
    }
}
