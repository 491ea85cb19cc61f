//! A private containerd for black-box tests: its own root, state, sockets and config under a temporary directory,
//! the CRI plugin disabled, started as a child process and killed (by PID) when dropped. `ctr` commands made by
//! [`Containerd::ctr`] talk to it and to nothing else.
//!
//! ```no_run
//! let containerd = berth_testkit::containerd::Containerd::start().unwrap();
//! let out = berth_testkit::tools::stdout(containerd.ctr().unwrap().args(["images", "ls"])).unwrap();
//! println!("{out}");
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::require;

/// A running containerd with private state; stopped when dropped.
#[derive(Debug)]
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Writes a config, starts `containerd --config CFG`, and waits (up to 30 s) until its socket answers.
    pub fn start() -> Result<Self> {
        let exe = require("containerd")?;
        require("ctr")?;
        // Socket paths must stay short (sun_path is 108 bytes): keep the directory directly under /tmp.
        let dir = tempfile::Builder::new().prefix("berth-ctrd-").tempdir_in("/tmp")?;
        let config = dir.path().join("config.toml");
        fs::write(&config, config_toml(dir.path()))?;
        let log = fs::File::create(dir.path().join("containerd.log"))?;
        let child = Command::new(&exe)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let mut c = Containerd { child, dir };
        c.wait_ready()?;
        Ok(c)
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// What containerd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A `ctr --address SOCKET` command.
    pub fn ctr(&self) -> Result<Command> {
        let mut c = Command::new(require("ctr")?);
        c.arg("--address").arg(self.socket());
        Ok(c)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "containerd exited with {status}\n--- containerd log ---\n{}",
                    self.log()
                );
            }
            if self.socket().exists() {
                let ok = self.ctr()?.arg("version").output().is_ok_and(|o| o.status.success());
                if ok {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within 30 s\n--- log ---\n{}",
                    self.socket().display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// containerd 1.x configuration (version 2) keeping everything under `dir`.
fn config_toml(dir: &Path) -> String {
    let p = |rel: &str| toml_string(&dir.join(rel));
    format!(
        "version = 2\nroot = {root}\nstate = {state}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
         [grpc]\n  address = {grpc}\n\n[ttrpc]\n  address = {ttrpc}\n\n[debug]\n  address = {debug}\n\n\
         [plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = {opt}\n",
        root = p("root"),
        state = p("state"),
        grpc = p("containerd.sock"),
        ttrpc = p("containerd.sock.ttrpc"),
        debug = p("debug.sock"),
        opt = p("opt"),
    )
}

/// A TOML basic string for a path (JSON escaping is a subset TOML accepts).
fn toml_string(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).expect("strings serialize")
}
