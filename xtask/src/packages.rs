//! The Debian packages Berth's tests use, and installing the missing ones with apt.
//!
//! The tests run the real peers (buildah, skopeo, containerd's `ctr`, runc, crun, umoci, a registry) and build
//! base images from `busybox-static`, so a fresh Debian machine needs these before `cargo test` means anything.

use std::process::Command;

use anyhow::{Context, bail};

/// Every package the test suite and the benchmarks expect.
pub const TEST_PACKAGES: &[&str] = &[
    "buildah",
    "podman",
    "skopeo",
    "containerd",
    "runc",
    "crun",
    "umoci",
    "docker-registry",
    "busybox-static",
    "oci-image-tool",
    "libseccomp-dev",
    "nasm",
    "make",
    "isal",
    "pigz",
    "zstd",
    "apache2-utils",
    "uidmap",
    "util-linux",
    "curl",
    "libcap2-bin",
    "debootstrap",
    "binutils",
];

/// What building the Berth crates needs besides Rust: libseccomp's static library (berth-run's seccomp filters), and
/// `make` and `nasm` to build ISA-L from its vendored source (the crates that write gzip layers). Both are linked
/// statically: the binaries need nothing of these at run time.
pub const BUILD_PACKAGES: &[&str] = &["libseccomp-dev", "nasm", "make"];

/// The packages of `packages` that are not installed.
pub fn missing<'a>(packages: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
    let mut out = Vec::new();
    for &package in packages {
        if !is_installed(package)? {
            out.push(package);
        }
    }
    Ok(out)
}

/// Checks every package with `dpkg-query` and installs the missing ones with `apt-get` (through `sudo` unless
/// already root). Prints what it checks and every command it runs.
pub fn ensure_installed(packages: &[&str]) -> anyhow::Result<()> {
    let missing = missing(packages)?;
    if missing.is_empty() {
        println!("all {} packages installed: {}", packages.len(), packages.join(" "));
        return Ok(());
    }
    println!("missing packages: {}", missing.join(" "));

    let sudo = !is_root();
    run_apt(sudo, &["apt-get", "update"])?;
    let mut install = vec![
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
    ];
    install.extend_from_slice(&missing);
    run_apt(sudo, &install)?;

    let still_missing: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !is_installed(p).unwrap_or(false))
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "apt-get finished but these packages are still not installed: {}",
            still_missing.join(" ")
        );
    }
    println!("installed: {}", missing.join(" "));
    Ok(())
}

/// `dpkg-query -W -f='${Status}' PKG` prints `install ok installed` for an installed package; anything else
/// (unknown package, removed with config files left, half-installed) counts as missing.
fn is_installed(package: &str) -> anyhow::Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .context(
            "could not run dpkg-query; this step needs a Debian system (use `cargo xtask ci --no-install` to skip it)",
        )?;
    if !output.status.success() {
        return Ok(false);
    }
    let status = String::from_utf8_lossy(&output.stdout);
    Ok(status.split_whitespace().nth(2) == Some("installed"))
}

fn run_apt(sudo: bool, argv: &[&str]) -> anyhow::Result<()> {
    let mut full: Vec<&str> = Vec::with_capacity(argv.len() + 1);
    if sudo {
        full.push("sudo");
    }
    full.extend_from_slice(argv);
    println!("$ {}", full.join(" "));
    let status = Command::new(full[0])
        .args(&full[1..])
        .status()
        .with_context(|| format!("could not start `{}`", full[0]))?;
    if !status.success() {
        bail!("`{}` failed ({status})", full.join(" "));
    }
    Ok(())
}

/// Whether we run as root, from the effective uid in `/proc/self/status` (`Uid: real effective saved fs`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
