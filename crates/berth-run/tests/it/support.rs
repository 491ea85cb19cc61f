//! Test images, `berth-run bundle`, and `runc run` with a private state directory and guaranteed cleanup.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_spec::layout::Layout;
use berth_testkit::image::{ImageSpec, TarBuilder, write_image};
use serde_json::Value;

/// Longest a test container may run.
const TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private store, cache and runc state directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
}

/// The outcome of a container.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path().join("store")).unwrap();
        Env { dir, layout }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// The busybox image as `busybox:1`.
    pub fn busybox(&self) -> &'static str {
        berth_testkit::busybox::write_image(&self.layout, "busybox:1").unwrap();
        "busybox:1"
    }

    /// An image of the busybox layer plus `extra` layers, with the image config's `config` object `config`.
    pub fn image(&self, name: &str, config: Value, extra: Vec<Vec<u8>>) -> String {
        let mut layers = vec![berth_testkit::busybox::rootfs_tar().unwrap()];
        layers.extend(extra);
        let spec = ImageSpec {
            layers,
            config,
            architecture: berth_spec::platform::Platform::host().architecture,
        };
        write_image(&self.layout, Some(name), &spec).unwrap();
        name.to_owned()
    }

    /// `berth-run bundle FLAGS... IMAGE DIR COMMAND...`, with this environment's store and cache.
    pub fn bundle(&self, flags: &[&str], image: &str, dir: &Path, command: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth-run"))
            .arg("bundle")
            .args(flags)
            .arg(image)
            .arg(dir)
            .args(command)
            .env("BERTH_STORE", self.layout.root())
            .env("BERTH_CACHE", self.cache())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Bundles and expects success; returns the bundle directory.
    pub fn bundle_ok(&self, flags: &[&str], image: &str, command: &[&str]) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self.path(&format!("bundle-{n}"));
        let out = self.bundle(flags, image, &dir, command);
        assert!(
            out.status.success(),
            "berth-run bundle {flags:?} {image} {command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }

    /// Bundles and expects failure; returns stderr (and checks the directory was not left behind).
    pub fn bundle_err(&self, flags: &[&str], image: &str, command: &[&str]) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self.path(&format!("bundle-{n}"));
        let out = self.bundle(flags, image, &dir, command);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected failure, got {:?}: {stderr}",
            out.status
        );
        assert!(!dir.exists(), "a failed bundle must leave nothing behind: {stderr}");
        stderr
    }

    /// Runs a bundle with `runc run` and deletes the container afterwards, whatever happens.
    pub fn runc(&self, bundle: &Path) -> Ran {
        let id = format!(
            "berth-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let guard = Runc {
            root: self.path("runc-state"),
            id,
        };
        let mut cmd = guard.cmd();
        cmd.args(["run", "--bundle"]).arg(bundle).arg(&guard.id);
        capture(&mut cmd, || {
            let _ = guard.cmd().args(["kill", "--all", &guard.id, "KILL"]).status();
            panic!("container {} timed out", guard.id)
        })
    }

    /// Runs the image both ways — `berth-run bundle` then `runc run`, and `berth-run run` through libcontainer —
    /// and checks both give the same exit code and output. Returns libcontainer's outcome.
    pub fn run(&self, flags: &[&str], image: &str, command: &[&str]) -> Ran {
        let bundle = self.bundle_ok(flags, image, command);
        let runc = self.runc(&bundle);
        let berth = self.run_berth(flags, image, command);
        assert_eq!(
            (runc.code, &runc.stdout),
            (berth.code, &berth.stdout),
            "runc and berth-run run differ for {flags:?} {image} {command:?}:\nrunc: {runc:?}\nberth-run: {berth:?}"
        );
        berth
    }

    /// Like [`Env::run`], and expects exit code 0; returns stdout.
    pub fn run_ok(&self, flags: &[&str], image: &str, command: &[&str]) -> String {
        let ran = self.run(flags, image, command);
        assert_eq!(ran.code, 0, "{flags:?} {command:?}: {ran:?}");
        ran.stdout
    }
}

/// A runc container id with a private `--root`; deleted (forcibly) when dropped.
struct Runc {
    root: PathBuf,
    id: String,
}

impl Runc {
    fn cmd(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.root);
        c
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["delete", "-f", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

/// A layer of files: `(path, mode, content)`; parent directories must be listed first.
pub fn layer(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (path, mode, content) in entries {
        if let Some(dir) = path.strip_suffix('/') {
            t.dir(dir, *mode);
        } else if let Some(target) = content.strip_prefix("->") {
            t.symlink(path, target);
        } else {
            t.file(path, *mode, content.as_bytes());
        }
    }
    t.finish()
}

/// The bundle's config.json.
pub fn config(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

impl Env {
    /// `berth-run ARGS...` with this environment's store, cache and state directory.
    pub fn berth(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth-run"));
        c.args(args)
            .env("BERTH_STORE", self.layout.root())
            .env("BERTH_CACHE", self.cache())
            .env("BERTH_STATE", self.path("state"))
            .stdin(Stdio::null());
        c
    }

    /// `berth-run ARGS...` to completion (bounded by the test timeout); stdout and stderr captured.
    pub fn berth_out(&self, args: &[&str]) -> Ran {
        let mut cmd = self.berth(args);
        capture(&mut cmd, || panic!("berth-run {args:?} timed out"))
    }

    /// `berth-run ARGS...`, expected to succeed; returns stdout.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        let ran = self.berth_out(args);
        assert_eq!(ran.code, 0, "berth-run {args:?}: {ran:?}");
        ran.stdout
    }

    /// `berth-run run --rm FLAGS... IMAGE COMMAND...` through libcontainer.
    pub fn run_berth(&self, flags: &[&str], image: &str, command: &[&str]) -> Ran {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.push(image);
        args.extend(command);
        self.berth_out(&args)
    }
}

impl Drop for Env {
    /// Removes whatever containers a test left (killing running ones), so no mount or process outlives it.
    fn drop(&mut self) {
        if !self.path("state").exists() {
            return;
        }
        if let Ok(out) = self.berth(&["ps", "-a", "-q", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]).stdout(Stdio::null()).status();
            }
        }
    }
}

/// Runs `cmd` (stdin from /dev/null) with stdout and stderr captured; past the test timeout the child is killed
/// and `on_timeout` runs.
pub fn capture(cmd: &mut Command, on_timeout: impl Fn()) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            on_timeout();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}
