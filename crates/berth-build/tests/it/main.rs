//! Black-box tests of the `berth-build` binary: real builds on a busybox base, the images checked by reading the
//! layouts directly and by running them with runc (through umoci's unpack) or berth's own layer codec.

mod basics;
mod cache;
mod hostile;
mod options;
mod outputs;
mod peers;
mod rules;
mod snapshots;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_spec::layout::Layout;
use serde_json::Value;

/// A private store, builder cache and context for one test.
#[derive(Debug)]
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Layout,
}

/// What a command did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("berth-build-it-").tempdir().unwrap();
        let store = Layout::create(dir.path().join("store")).unwrap();
        berth_testkit::busybox::write_image(&store, "busybox:1").unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        Env { dir, store }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file of the context (parents created).
    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.path("ctx").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// `berth-build ARGS...` with this environment's store and cache.
    pub fn berth_build(&self, args: &[&str]) -> Ran {
        let out = Command::new(env!("CARGO_BIN_EXE_berth-build"))
            .args(args)
            .env("BERTH_STORE", self.store.root())
            .env("BERTH_BUILD_CACHE", self.path("cache"))
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ran(out)
    }

    /// Builds the context with `containerfile`, expecting success; returns the image id.
    pub fn build_ok(&self, containerfile: &str, extra: &[&str]) -> String {
        self.file("Containerfile", containerfile);
        let ctx = self.path("ctx");
        let mut args = vec!["build"];
        args.extend(extra);
        args.push(ctx.to_str().unwrap());
        let r = self.berth_build(&args);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.trim().to_owned()
    }

    /// The image a store name refers to: (manifest, config).
    pub fn image(&self, name: &str) -> (Value, Value) {
        let desc = self.store.resolve(Some(name)).unwrap();
        let img = self
            .store
            .load_image_from(desc, &berth_spec::platform::Platform::host())
            .unwrap();
        let m = serde_json::from_slice(img.manifest.bytes()).unwrap();
        let c = serde_json::from_slice(img.config.bytes()).unwrap();
        (m, c)
    }

    /// Unpacks a store image with umoci into `dir` (a runtime bundle) and returns the rootfs path.
    pub fn unpack(&self, name: &str, dir: &str) -> PathBuf {
        let bundle = self.path(dir);
        let mut cmd = berth_testkit::tools::umoci().unwrap();
        cmd.args(["unpack", "--image"])
            .arg(format!("{}:{name}", self.store.root().display()))
            .arg(&bundle);
        berth_testkit::tools::run(&mut cmd).unwrap();
        bundle.join("rootfs")
    }
}

pub fn ran(out: Output) -> Ran {
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ls -ln`-like facts of a path: (mode, uid, gid).
pub fn meta(p: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// docs/cli/berth-build.md is the reference the command line gives (regenerate it with `cargo xtask docs`).
#[test]
fn the_cli_reference_is_current() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli/berth-build.md");
    if let Err(e) = berth_cli::docs::check_reference(std::path::Path::new(env!("CARGO_BIN_EXE_berth-build")), &doc) {
        panic!("{e}");
    }
}
