//! The tools of the matrix and the shared stages of a cell: the base image, building a case into an OCI layout,
//! copying it to the registry and back, and checking the pulled layout (config, files, validator).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::containerd::Containerd;
use berth_testkit::tools::{Buildah, require};

use super::cases::{self, Case};
use super::{Filter, checked};

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

macro_rules! tool_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

tool_enum!(Builder { Buildah => "buildah", BerthBuild => "berth-build" });
tool_enum!(Copier { Skopeo => "skopeo", BerthCopy => "berth-copy" });
tool_enum!(Runner { Ctr => "ctr", Runc => "runc", Crun => "crun", BerthRun => "berth-run" });

/// Whether crun can run containers here: it refuses hybrid cgroup hosts (v1 controllers with a cgroup2 mount at
/// /sys/fs/cgroup/unified), so their matrix has no crun column.
// `f_type`'s integer type differs between architectures.
#[allow(clippy::useless_conversion)]
pub fn crun_accepts_host() -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fs_type = |p: &str| rustix::fs::statfs(p).ok().map(|s| i64::from(s.f_type));
    let hybrid = fs_type("/sys/fs/cgroup") == Some(TMPFS_MAGIC)
        && fs_type("/sys/fs/cgroup/unified").is_some_and(|t| t != TMPFS_MAGIC);
    !hybrid
}

/// One cell: a case built, copied and run by one tool of each kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub builder: Builder,
    pub copier: Copier,
    pub runner: Runner,
    pub case: String,
}

impl Cell {
    /// `builder/copier/runner` (the column of the table).
    pub fn column(&self) -> String {
        format!("{}/{}/{}", self.builder.name(), self.copier.name(), self.runner.name())
    }

    /// `column case`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.column(), self.case)
    }

    /// Why this cell cannot run yet, for a tool that lacks what it needs (none today).
    pub fn not_implemented(&self) -> Option<String> {
        None
    }
}

/// Every cell of the matrix the filter selects, in table order.
pub fn matrix(cases: &[Case], filter: &Filter) -> Vec<Cell> {
    let mut cells = Vec::new();
    let crun = crun_accepts_host();
    if !crun {
        println!("crun: no cells — it refuses this host's hybrid cgroup v1/v2 setup");
    }
    for &builder in Builder::ALL {
        for &copier in Copier::ALL {
            for &runner in Runner::ALL {
                if runner == Runner::Crun && !crun {
                    continue;
                }
                for case in cases {
                    let cell = Cell {
                        builder,
                        copier,
                        runner,
                        case: case.name.clone(),
                    };
                    if filter.matches(&cell) {
                        cells.push(cell);
                    }
                }
            }
        }
    }
    cells
}

/// Fails, naming the tool and its Debian package, when a tool the selected cells need is missing.
pub fn require_tools(cells: &[&Cell]) -> Result<()> {
    let mut needed = vec![
        ("buildah", "buildah"),
        ("docker-registry", "docker-registry"),
        ("umoci", "umoci"),
        ("cp", "coreutils"),
        // A copier, and for umoci the recompression of zstd images to gzip (runners::unpack).
        ("skopeo", "skopeo"),
    ];
    let any = |f: &dyn Fn(&Cell) -> bool| cells.iter().any(|c| f(c));
    if any(&|c| c.copier == Copier::BerthCopy) {
        needed.push(("oci-image-tool", "oci-image-tool"));
    }
    if any(&|c| c.runner == Runner::Ctr) {
        needed.extend([("containerd", "containerd"), ("ctr", "containerd"), ("tar", "tar")]);
    }
    if any(&|c| c.runner == Runner::Crun) {
        needed.push(("crun", "crun"));
    }
    if any(&|c| c.runner == Runner::Runc) {
        needed.push(("runc", "runc"));
    }
    for (tool, package) in needed {
        require(tool).with_context(|| format!("`{tool}` is missing: install the Debian package `{package}`"))?;
    }
    if !Path::new(berth_testkit::busybox::BUSYBOX).is_file() {
        bail!(
            "{} is missing: install the Debian package `busybox-static`",
            berth_testkit::busybox::BUSYBOX
        );
    }
    Ok(())
}

/// Builds berth-copy in release mode and returns the binary.
pub fn build_release(root: &Path, package: &str) -> Result<PathBuf> {
    println!("==> cargo build --release -p {package}");
    let status = Command::new(crate::cargo())
        .args(["build", "--release", "-p", package])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p {package} failed ({status})");
    }
    Ok(crate::fuzz::target_dir(root)?.join("release").join(package))
}

/// What the stages share.
#[derive(Debug)]
pub struct Env<'a> {
    pub work: &'a Path,
    pub scratch: &'a Path,
    pub buildah: &'a Buildah,
    pub registry: &'a str,
    pub berth_copy: Option<&'a Path>,
    pub berth_run: Option<&'a Path>,
    pub berth_build: Option<&'a Path>,
    pub containerd: Option<&'a Containerd>,
}

impl Env<'_> {
    /// berth-build's store: an OCI layout holding the base image (pushed there by buildah).
    pub fn berth_store(&self) -> PathBuf {
        self.work.join("berth-build-store")
    }
}

/// Puts the base image `localhost/busybox:latest` into berth-build's store, with buildah (a peer writes it).
pub fn seed_berth_store(env: &Env<'_>) -> Result<()> {
    let dest = format!("oci:{}:localhost/busybox:latest", env.berth_store().display());
    checked(
        env.buildah
            .cmd()?
            .args(["push", "--quiet", "localhost/busybox:latest"])
            .arg(dest),
        STEP_TIMEOUT,
        env.scratch,
    )?;
    Ok(())
}

/// `localhost/busybox:latest` in buildah's private storage: Debian's static busybox with every applet linked in
/// /bin, /etc/passwd and /etc/group with root and nobody, /root and /tmp.
pub fn make_base_image(buildah: &Buildah, dir: &Path, scratch: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "root", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    set_mode(&rootfs.join("root"), 0o700)?;
    set_mode(&rootfs.join("tmp"), 0o1777)?;
    fs::copy(berth_testkit::busybox::BUSYBOX, rootfs.join("bin/busybox"))?;
    set_mode(&rootfs.join("bin/busybox"), 0o755)?;
    let list = checked(
        Command::new(berth_testkit::busybox::BUSYBOX).arg("--list"),
        STEP_TIMEOUT,
        scratch,
    )?;
    for applet in list
        .stdout
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for f in ["etc/passwd", "etc/group"] {
        set_mode(&rootfs.join(f), 0o644)?;
    }

    let b = |args: &[&str]| -> Result<String> {
        Ok(checked(buildah.cmd()?.args(args), STEP_TIMEOUT, scratch)?
            .stdout
            .trim()
            .to_owned())
    };
    let container = b(&["from", "scratch"])?;
    let source = format!("{}/", rootfs.display());
    b(&["copy", &container, &source, "/"])?;
    b(&[
        "config",
        "--env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--cmd",
        "[\"/bin/sh\"]",
        &container,
    ])?;
    b(&[
        "commit",
        "--quiet",
        "--format",
        "oci",
        &container,
        "localhost/busybox:latest",
    ])?;
    b(&["rm", &container])?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", path.display()))
}

/// Builds `case` with `builder` into an OCI layout (the image named `latest`) and returns the layout's directory.
pub fn build(env: &Env<'_>, builder: Builder, case: &Case) -> Result<PathBuf> {
    // The context: the case directory plus Debian's static busybox as `busybox`.
    let context = env.work.join("contexts").join(builder.name()).join(&case.name);
    fs::create_dir_all(context.parent().expect("has a parent"))?;
    checked(
        Command::new("cp").arg("-a").arg(&case.dir).arg(&context),
        STEP_TIMEOUT,
        env.scratch,
    )?;
    fs::copy(berth_testkit::busybox::BUSYBOX, context.join("busybox"))?;
    set_mode(&context.join("busybox"), 0o755)?;
    for (path, caps) in cases::context_caps(case) {
        checked(
            Command::new(require("setcap")?).arg(&caps).arg(context.join(&path)),
            STEP_TIMEOUT,
            env.scratch,
        )
        .with_context(|| format!("case {}: setcap {caps} {path}", case.name))?;
    }
    for (path, name, value) in cases::context_xattrs(case) {
        rustix::fs::lsetxattr(
            context.join(&path),
            name.as_str(),
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .with_context(|| format!("case {}: setting xattr {name} on {path}", case.name))?;
    }

    if builder == Builder::BerthBuild {
        return build_with_berth(env, case, &context);
    }
    let name = format!("localhost/conformance/{}", case.name);
    let mut bud = env.buildah.cmd()?;
    bud.args(["bud", "--isolation", "chroot", "--layers", "--format", "oci", "-f"])
        .arg(context.join("Containerfile"));
    for (k, v) in cases::build_annotations(case) {
        bud.arg("--annotation").arg(format!("{k}={v}"));
    }
    build_options(&mut bud, env, case)?;
    bud.args(["-t", &name]).arg(&context);
    checked(&mut bud, BUILD_TIMEOUT, env.scratch)?;
    let layout = env.work.join("built").join(builder.name()).join(&case.name);
    fs::create_dir_all(&layout)?;
    let dest = format!("oci:{}:latest", layout.display());
    let extra = cases::extra_platforms(case);
    let mut push = env.buildah.cmd()?;
    if extra.is_empty() {
        push.args(["push", "--quiet"]);
    } else {
        let list = make_index(env, case, &name, &extra, &context)?;
        push.args(["manifest", "push", "--all", "--quiet"]);
        push.arg(list);
    }
    if let Some(format) = cases::build_compression(case) {
        push.args(["--compression-format", format]);
    }
    if extra.is_empty() {
        push.arg(&name);
    }
    checked(push.arg(&dest), STEP_TIMEOUT, env.scratch)?;
    Ok(layout)
}

/// Builds `case` with berth-build straight into an OCI layout (`-t oci:LAYOUT:latest`); for a case with extra
/// platforms, the harness then makes `latest` an index of the built image and one tiny image per platform.
fn build_with_berth(env: &Env<'_>, case: &Case, context: &Path) -> Result<PathBuf> {
    let bin = env.berth_build.context("berth-build was not built")?;
    let layout = env.work.join("built").join(Builder::BerthBuild.name()).join(&case.name);
    fs::create_dir_all(&layout)?;
    let mut cmd = Command::new(bin);
    cmd.arg("--store")
        .arg(env.berth_store())
        .arg("--cache")
        .arg(env.work.join("berth-build-cache"))
        .args(["build", "-q", "-f"])
        .arg(context.join("Containerfile"));
    for (k, v) in cases::build_annotations(case) {
        cmd.arg("--annotation").arg(format!("{k}={v}"));
    }
    if let Some(format) = cases::build_compression(case) {
        cmd.args(["--compress", format, "--force-compression"]);
    }
    build_options(&mut cmd, env, case)?;
    cmd.arg("-t")
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(context);
    checked(&mut cmd, BUILD_TIMEOUT, env.scratch)?;
    let extra = cases::extra_platforms(case);
    if !extra.is_empty() {
        index_with_platforms(&layout, case, &extra)?;
    }
    Ok(layout)
}

/// The options both builders spell alike: `--target`, `--build-arg`, `--secret` (secrets written to files).
fn build_options(cmd: &mut Command, env: &Env<'_>, case: &Case) -> Result<()> {
    if let Some(target) = cases::build_target(case) {
        cmd.args(["--target", target]);
    }
    for (k, v) in cases::build_args(case) {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for (id, content) in cases::build_secrets(case) {
        let dir = env.work.join("secrets").join(&case.name);
        fs::create_dir_all(&dir)?;
        let file = dir.join(&id);
        fs::write(&file, content)?;
        cmd.arg("--secret").arg(format!("id={id},src={}", file.display()));
    }
    Ok(())
}

/// Makes `latest` in `layout` an index of the image it names (for this host) and, per extra platform (`os/arch`), a
/// one-file image whose config names that platform.
fn index_with_platforms(layout: &Path, case: &Case, extra: &[String]) -> Result<()> {
    let layout = berth_spec::layout::Layout::open(layout)?;
    let main = layout.resolve(Some("latest"))?;
    let host = berth_spec::platform::Platform::host();
    let mut entries = vec![serde_json::json!({
        "mediaType": main.media_type().to_string(),
        "digest": main.digest().to_string(),
        "size": main.size(),
        "platform": {"os": host.os, "architecture": host.architecture},
    })];
    for platform in extra {
        let (os, arch) = platform
            .split_once('/')
            .with_context(|| format!("case {}: extra platform `{platform}` is not OS/ARCH", case.name))?;
        let tar = berth_testkit::image::TarBuilder::new()
            .file("platform", 0o644, format!("{platform}\n").as_bytes())
            .finish();
        let spec = berth_testkit::image::ImageSpec {
            layers: vec![tar],
            config: serde_json::json!({}),
            architecture: arch.to_owned(),
        };
        let image = berth_testkit::image::write_image(&layout, None, &spec)?;
        entries.push(serde_json::json!({
            "mediaType": image.manifest.media_type().to_string(),
            "digest": image.manifest.digest().to_string(),
            "size": image.manifest.size(),
            "platform": {"os": os, "architecture": arch},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_spec::media_type::OCI_INDEX,
        "manifests": entries,
    });
    let bytes = serde_json::to_vec(&index)?;
    let w = layout.writer()?;
    let digest = w.put_bytes(&bytes, berth_spec::Algorithm::Sha256)?;
    let desc = oci_spec::image::Descriptor::new(
        berth_spec::media_type::OCI_INDEX.into(),
        bytes.len() as u64,
        digest.to_oci(),
    );
    w.set_ref("latest", &desc)?;
    Ok(())
}

/// A manifest list of the built image `name` and, per extra platform (`os/arch`), a one-file image whose config
/// names that platform (buildah cannot run foreign binaries here, so nothing is built for it); returns its name.
fn make_index(env: &Env<'_>, case: &Case, name: &str, extra: &[String], context: &Path) -> Result<String> {
    let b = |args: &[&str]| -> Result<String> {
        Ok(checked(env.buildah.cmd()?.args(args), STEP_TIMEOUT, env.scratch)?
            .stdout
            .trim()
            .to_owned())
    };
    let list = format!("{name}-index");
    b(&["manifest", "create", &list])?;
    b(&["manifest", "add", &list, name])?;
    for platform in extra {
        let (os, arch) = platform
            .split_once('/')
            .with_context(|| format!("case {}: extra platform `{platform}` is not OS/ARCH", case.name))?;
        let marker = context.join(format!("platform-{os}-{arch}"));
        fs::write(&marker, format!("{platform}\n"))?;
        let container = b(&["from", "scratch"])?;
        b(&["copy", &container, &marker.to_string_lossy(), "/platform"])?;
        b(&["config", "--os", os, "--arch", arch, &container])?;
        let image = format!("{name}-{os}-{arch}");
        b(&["commit", "--quiet", "--format", "oci", &container, &image])?;
        b(&["rm", &container])?;
        b(&["manifest", "add", &list, &image])?;
    }
    Ok(list)
}

/// The pulled image of one (builder, case, copier) and everything checked on it once for all runners.
#[derive(Debug)]
pub struct Stage {
    pub seconds: f64,
    /// A failed copy: every runner cell fails with it.
    error: Option<String>,
    /// The layout copied back from the registry (the image named `latest`).
    pub pulled: PathBuf,
    /// Config, file, annotation and validator mismatches: reported by every runner cell.
    pub image_problems: Vec<String>,
    /// `umoci unpack` of the pulled layout (terminal off), or why it failed.
    pub bundle: Result<PathBuf, String>,
    /// A short unique name (`builder-case-copier`) for images and container ids.
    pub id: String,
}

impl Stage {
    pub fn failed(reason: String) -> Stage {
        Stage {
            seconds: 0.0,
            error: Some(reason),
            pulled: PathBuf::new(),
            image_problems: Vec::new(),
            bundle: Err("no image".into()),
            id: String::new(),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.error.clone()
    }
}

/// Copies the built layout to the registry and back with `copier`, then checks the pulled image.
pub fn copy_and_check(env: &Env<'_>, builder: Builder, copier: Copier, case: &Case, built: &Path) -> Stage {
    let started = Instant::now();
    let id = format!("{}-{}-{}", builder.name(), case.name, copier.name());
    let pulled = env.work.join("pulled").join(&id);
    let remote = format!(
        "docker://{}/conformance/{}/{}:{}",
        env.registry,
        builder.name(),
        case.name,
        copier.name()
    );
    let copied = fs::create_dir_all(&pulled).map_err(anyhow::Error::from).and_then(|()| {
        let all = cases::is_index(case);
        copy(env, copier, all, &format!("oci:{}:latest", built.display()), &remote).context("push")?;
        copy(env, copier, all, &remote, &format!("oci:{}:latest", pulled.display())).context("pull")
    });
    if let Err(e) = copied {
        let mut stage = Stage::failed(format!("copy with {}: {e:#}", copier.name()));
        stage.seconds = started.elapsed().as_secs_f64();
        return stage;
    }
    let mut problems = cases::check_image(case, &pulled);
    if copier == Copier::BerthCopy {
        problems.extend(
            cases::validate(case, &pulled, env.scratch)
                .err()
                .map(|e| format!("oci-image-tool: {e:#}")),
        );
    }
    let bundle = super::runners::unpack(env, &pulled, &id).map_err(|e| format!("umoci unpack: {e:#}"));
    match &bundle {
        Ok(b) => problems.extend(cases::check_files(case, &b.join("rootfs"))),
        Err(e) => problems.push(format!("files not checked: {e}")),
    }
    Stage {
        seconds: started.elapsed().as_secs_f64(),
        error: None,
        pulled,
        image_problems: problems,
        bundle,
        id,
    }
}

/// `all`: copy the whole index (`--all`), not only the host's image.
fn copy(env: &Env<'_>, copier: Copier, all: bool, src: &str, dest: &str) -> Result<()> {
    let mut cmd = match copier {
        Copier::Skopeo => {
            let mut c = Command::new(require("skopeo")?);
            c.args(["--insecure-policy", "copy", "--quiet"]);
            if src.starts_with("docker://") {
                c.arg("--src-tls-verify=false");
            } else {
                c.arg("--dest-tls-verify=false");
            }
            c
        }
        Copier::BerthCopy => {
            let mut c = Command::new(env.berth_copy.context("berth-copy was not built")?);
            c.env("BERTH_STORE", env.work.join("berth-store"))
                .env("BERTH_CACHE", env.work.join("berth-cache"))
                .args(["copy", "--quiet"]);
            c
        }
    };
    if all {
        cmd.arg("--all");
    }
    checked(cmd.arg(src).arg(dest), STEP_TIMEOUT, env.scratch)?;
    Ok(())
}
