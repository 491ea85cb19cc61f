//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`: written per container and bind-mounted over the image's.

use std::path::Path;

use oci_spec::runtime::Mount;

use crate::SandboxError;
use crate::mounts::mount;
use crate::options::NetMode;
use berth_spec::io_context::IoContext;

/// Nameservers used when the host's are all loopback addresses, which a container with its own network namespace
/// cannot reach (Docker's fallback).
pub const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Largest host file copied.
const MAX_HOST_FILE: u64 = 1 << 20;

/// Checks a hostname: 1 to 64 letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn validate_hostname(name: &str) -> Result<(), SandboxError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::option(
            format!("--hostname {name:?}"),
            "a hostname is 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

/// The host's own name.
pub fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `/etc/hosts` for a container with its own network namespace.
pub fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n\
         ::1\t{hostname}\n"
    )
}

/// Whether a nameserver address is a loopback one (`127.0.0.0/8`, `::1`).
fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host's `resolv.conf` as a container with its own network namespace sees it: loopback nameservers dropped
/// (they would be the container's own), Docker's fallback nameservers added when none is left.
pub fn private_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut nameservers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            match words.next() {
                Some(addr) if is_loopback(addr) => continue,
                Some(_) => nameservers += 1,
                None => continue,
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if nameservers == 0 {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

fn read_host(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(MAX_HOST_FILE).read_to_string(&mut text);
    }
    text
}

/// Writes `hosts`, `resolv.conf` and `hostname` into `dir` and returns the bind mounts that show them at
/// `/etc/...`. With `--net host` the host's own `hosts` and `resolv.conf` are copied unchanged.
pub fn write(dir: &Path, hostname: &str, net: NetMode) -> Result<Vec<Mount>, SandboxError> {
    let (hosts_text, resolv_text) = match net {
        NetMode::Host => (read_host("/etc/hosts"), read_host("/etc/resolv.conf")),
        NetMode::Private | NetMode::None => (hosts(hostname), private_resolv_conf(&read_host("/etc/resolv.conf"))),
    };
    let files = [
        ("hosts", hosts_text),
        ("resolv.conf", resolv_text),
        ("hostname", format!("{hostname}\n")),
    ];
    let mut mounts = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())?;
        mounts.push(mount(&format!("/etc/{name}"), "bind", &path, &["rbind", "rprivate"]));
    }
    Ok(mounts)
}

/// Writes a file through a temp file and a rename, world-readable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, bytes).at("write", &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).at("set permissions of", &tmp)?;
    std::fs::rename(&tmp, path)
        .at("rename into place", path)
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_replaced() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nsearch example.com\noptions edns0\n";
        assert_eq!(
            private_resolv_conf(host),
            "# generated\nsearch example.com\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let host = "nameserver 127.0.0.1\nnameserver 10.0.0.2\n";
        assert_eq!(private_resolv_conf(host), "nameserver 10.0.0.2\n");
    }

    #[test]
    fn hosts_names_the_container() {
        let h = hosts("box");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost"), "{h}");
        assert!(h.contains("127.0.0.1\tbox\n"), "{h}");
    }

    #[test]
    fn hostnames() {
        for ok in ["a", "web-1", "x.example", &"a".repeat(64)] {
            validate_hostname(ok).unwrap();
        }
        for bad in ["", "-a", "a b", "a/b", &"a".repeat(65), "a\0"] {
            assert!(validate_hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_written_and_mounted() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = write(dir.path(), "box", NetMode::None).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("hostname")).unwrap(), "box\n");
        let dests: Vec<_> = mounts.iter().map(|m| m.destination().display().to_string()).collect();
        assert_eq!(dests, ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]);
        assert_eq!(mounts[0].source().as_deref(), Some(dir.path().join("hosts").as_path()));
    }
}
