//! Running the peer tools (skopeo, umoci, buildah, …) from tests, with private state.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Result, bail};

/// The path of an installed peer tool, or an error saying how to install it.
pub fn require(tool: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("peer tool `{tool}` is not installed: run `cargo xtask ci`, which installs the Debian packages the tests use")
}

/// Runs a command and fails with its stderr when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs a command and returns its stdout as text.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8(run(cmd)?.stdout)?)
}

/// A `skopeo` command that never consults the host's registries or credentials.
pub fn skopeo() -> Result<Command> {
    let mut c = Command::new(require("skopeo")?);
    c.args(["--insecure-policy"]);
    Ok(c)
}

/// `umoci`.
pub fn umoci() -> Result<Command> {
    Ok(Command::new(require("umoci")?))
}

/// buildah with its own storage under a private directory (runc runtime; the vfs driver, or overlay for
/// benchmarks, where buildah's default driver is what users run).
#[derive(Debug)]
pub struct Buildah {
    root: PathBuf,
    driver: &'static str,
}

impl Buildah {
    /// Buildah state under `dir`, with the vfs storage driver (plain directories, nothing mounted).
    pub fn new(dir: &Path) -> Self {
        Buildah {
            root: dir.to_owned(),
            driver: "vfs",
        }
    }

    /// Buildah state under `dir`, with the overlay storage driver (buildah's default on a host with overlayfs).
    pub fn overlay(dir: &Path) -> Self {
        Buildah {
            root: dir.to_owned(),
            driver: "overlay",
        }
    }

    /// A buildah command with private storage.
    pub fn cmd(&self) -> Result<Command> {
        let mut c = Command::new(require("buildah")?);
        c.arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("runroot"))
            .args(["--storage-driver", self.driver])
            .env("BUILDAH_RUNTIME", "runc")
            .env("TMPDIR", &self.root);
        Ok(c)
    }

    /// Removes buildah's containers and storage, and unmounts whatever of its storage is still mounted.
    pub fn cleanup(&self) {
        if let Ok(mut c) = self.cmd() {
            let _ = c.args(["rm", "--all"]).output();
        }
        if let Ok(mut c) = self.cmd() {
            let _ = c.args(["rmi", "--all", "--force"]).output();
        }
        let mut mounted: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|m| m.starts_with(&self.root))
            .collect();
        mounted.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounted {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        self.cleanup();
    }
}
