//! The tools of the matrix and the shared stages of a cell: the base image, building a case into an OCI layout,
//! copying it to the registry and back, and checking the pulled layout (config, files, validator).
//!
//! Every tool, built in or not, is driven through its adapter program (`conformance/adapters/README.md`): the
//! harness has one path for all of them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::tools::{Buildah, require};

use super::cases::{self, Case};
use super::{Filter, checked};

const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// An adapter's `setup` and `teardown` (a daemon to start, a base image to import).
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// The part a tool plays in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Builder,
    Copier,
    Runner,
}

impl Role {
    pub const ALL: &[Role] = &[Role::Builder, Role::Copier, Role::Runner];

    pub fn name(self) -> &'static str {
        match self {
            Role::Builder => "builder",
            Role::Copier => "copier",
            Role::Runner => "runner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.name() == text)
    }
}

/// A tool of the matrix: a name (its column or row) and the adapter program that drives it
/// (`conformance/adapters/README.md` has the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub role: Role,
    pub name: String,
    pub program: PathBuf,
}

impl Tool {
    /// The adapter's command for `verb`, with the environment the contract promises.
    pub fn cmd(&self, env: &Env<'_>, verb: &str) -> Command {
        let mut c = Command::new(&self.program);
        c.arg(verb)
            .env("CONFORMANCE_REGISTRY", env.registry)
            .env("CONFORMANCE_WORK", env.work);
        if let Some(bin) = env.berth_bin {
            c.env("CONFORMANCE_BERTH_BIN", bin);
        }
        if verb != "version" {
            c.arg(env.state_dir(self));
        }
        c
    }
}

/// The tools of a default run: the adapters in `conformance/adapters/` for buildah, berth-build and podman
/// (builders), skopeo and berth-copy (copiers), ctr, runc, crun (where the host's cgroups allow it), berth-run,
/// ctr with berth-runtime in runc's place, and podman (runners).
pub fn default_tools(root: &Path) -> Vec<Tool> {
    let adapters = root.join("conformance/adapters");
    let crun = crun_accepts_host();
    let mut tools = Vec::new();
    let mut add = |role, names: &[&str]| {
        for name in names {
            tools.push(Tool {
                role,
                name: (*name).to_owned(),
                program: adapters.join(name),
            });
        }
    };
    add(Role::Builder, &["buildah", "berth-build", "podman"]);
    add(Role::Copier, &["skopeo", "berth-copy"]);
    add(Role::Runner, &["ctr", "runc"]);
    if crun {
        add(Role::Runner, &["crun"]);
    }
    add(Role::Runner, &["berth-run", "ctr-berth-runtime", "podman"]);
    tools
}

/// `--tool ROLE=NAME:PROGRAM`: adds a tool (or replaces the one of that role and name). A relative PROGRAM is
/// taken from the workspace root.
pub fn add_tool(tools: &mut Vec<Tool>, spec: &str, root: &Path) -> Result<()> {
    let usage = || format!("--tool {spec}: write ROLE=NAME:PROGRAM, ROLE one of builder, copier, runner");
    let (role, rest) = spec.split_once('=').with_context(usage)?;
    let role = Role::parse(role).with_context(usage)?;
    let (name, program) = rest.split_once(':').with_context(usage)?;
    if name.is_empty() || name.contains(['/', ' ']) {
        bail!("--tool {spec}: NAME must be a plain word (it names the column and the tool's state directory)");
    }
    let program = root.join(program);
    if !program.is_file() {
        bail!("--tool {spec}: no adapter program at {}", program.display());
    }
    tools.retain(|t| !(t.role == role && t.name == name));
    tools.push(Tool {
        role,
        name: name.to_owned(),
        program,
    });
    Ok(())
}

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

/// The host's cgroup setup, for reports.
#[allow(clippy::useless_conversion)]
pub fn cgroup_mode() -> &'static str {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const CGROUP2_MAGIC: i64 = 0x6367_7270;
    let fs_type = |p: &str| rustix::fs::statfs(p).ok().map(|s| i64::from(s.f_type));
    match fs_type("/sys/fs/cgroup") {
        Some(CGROUP2_MAGIC) => "cgroup v2 (unified)",
        Some(TMPFS_MAGIC) if fs_type("/sys/fs/cgroup/unified") == Some(CGROUP2_MAGIC) => {
            "hybrid (cgroup v1 controllers, cgroup2 at /sys/fs/cgroup/unified)"
        }
        Some(TMPFS_MAGIC) => "cgroup v1",
        _ => "unknown",
    }
}

/// One cell: a case built, copied and run by one tool of each role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub builder: String,
    pub copier: String,
    pub runner: String,
    pub case: String,
}

impl Cell {
    /// `builder/copier/runner`.
    pub fn column(&self) -> String {
        format!("{}/{}/{}", self.builder, self.copier, self.runner)
    }

    /// `column case`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.column(), self.case)
    }

    pub fn tool(&self, role: Role) -> &str {
        match role {
            Role::Builder => &self.builder,
            Role::Copier => &self.copier,
            Role::Runner => &self.runner,
        }
    }
}

/// Every cell of the matrix the filter selects, in table order.
pub fn matrix(tools: &[Tool], cases: &[Case], filter: &Filter) -> Vec<Cell> {
    let of = |role| tools.iter().filter(move |t: &&Tool| t.role == role);
    let mut cells = Vec::new();
    for builder in of(Role::Builder) {
        for copier in of(Role::Copier) {
            for runner in of(Role::Runner) {
                for case in cases {
                    let cell = Cell {
                        builder: builder.name.clone(),
                        copier: copier.name.clone(),
                        runner: runner.name.clone(),
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

/// Fails, naming the tool and its Debian package, when a tool the harness itself needs is missing (the base image,
/// the registry, unpacking and validating what the copiers wrote). What an adapter needs is the adapter's business:
/// if it is missing, that adapter's cells fail and say why.
pub fn require_tools() -> Result<()> {
    let needed = [
        ("buildah", "buildah"),
        ("docker-registry", "docker-registry"),
        ("umoci", "umoci"),
        ("skopeo", "skopeo"),
        ("oci-image-tool", "oci-image-tool"),
        ("cp", "coreutils"),
    ];
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

/// Builds the Berth tools in release mode and returns the directory of the binaries (for the Berth adapters).
pub fn build_release(root: &Path) -> Result<PathBuf> {
    println!("==> cargo build --release -p berth-build -p berth-copy -p berth-run -p berth-runtime");
    crate::cargo_build(root, true, &["berth-build", "berth-copy", "berth-run", "berth-runtime"])
}

/// What the stages share.
#[derive(Debug)]
pub struct Env<'a> {
    pub work: &'a Path,
    pub scratch: &'a Path,
    pub registry: &'a str,
    /// The Berth binaries, for the Berth adapters.
    pub berth_bin: Option<&'a Path>,
    /// The base image `localhost/busybox:latest` as an OCI layout, for the builders' `setup`.
    pub base: &'a Path,
}

impl Env<'_> {
    /// A tool's private state directory (kept across its calls in one run).
    pub fn state_dir(&self, tool: &Tool) -> PathBuf {
        self.work
            .join("tools")
            .join(format!("{}-{}", tool.role.name(), tool.name))
    }
}

/// What an adapter call came to.
#[derive(Debug)]
pub enum Verdict {
    Done(super::Ran),
    /// The adapter said the tool cannot take part here (`conformance-not-run: REASON` on stderr, exit 125).
    NotRun(String),
    Failed(String),
}

/// The marker an adapter prints (on stderr, exiting with 125) when its tool cannot do the step here.
pub const NOT_RUN: &str = "conformance-not-run:";

/// Runs an adapter call with a timeout; a non-zero exit is `Failed` (with the command and its stderr) unless
/// `any_code` (a runner's exit code is the container's).
pub fn call(cmd: &mut Command, timeout: Duration, scratch: &Path, any_code: bool) -> Verdict {
    let what = super::describe(cmd);
    let ran = match super::exec(cmd, timeout, scratch) {
        Ok(r) => r,
        Err(e) => return Verdict::Failed(format!("`{what}`: {e:#}")),
    };
    if ran.timed_out {
        return Verdict::Failed(format!("`{what}` timed out after {}s", timeout.as_secs()));
    }
    if ran.code == Some(125)
        && let Some(reason) = ran.stderr.lines().find_map(|l| l.trim().strip_prefix(NOT_RUN))
    {
        return Verdict::NotRun(reason.trim().to_owned());
    }
    match ran.code {
        Some(0) => Verdict::Done(ran),
        Some(_) if any_code => Verdict::Done(ran),
        code => Verdict::Failed(format!("`{what}` failed (exit {code:?}): {}", ran.tail())),
    }
}

/// Runs a tool's `setup` (once, before its cells); `None` when it is ready.
pub fn setup(env: &Env<'_>, tool: &Tool) -> Option<Verdict> {
    let _ = fs::create_dir_all(env.state_dir(tool));
    let mut cmd = tool.cmd(env, "setup");
    cmd.arg(env.base);
    match call(&mut cmd, SETUP_TIMEOUT, env.scratch, false) {
        Verdict::Done(_) => None,
        other => Some(other),
    }
}

/// Runs a tool's `teardown`; failures are printed, not fatal.
pub fn teardown(env: &Env<'_>, tool: &Tool) {
    if let Verdict::Failed(e) | Verdict::NotRun(e) =
        call(&mut tool.cmd(env, "teardown"), SETUP_TIMEOUT, env.scratch, false)
    {
        println!("warning: {} {} teardown: {e}", tool.role.name(), tool.name);
    }
}

/// The tool's version as its adapter's `version` says (one line).
pub fn version(env: &Env<'_>, tool: &Tool) -> String {
    match call(&mut tool.cmd(env, "version"), STEP_TIMEOUT, env.scratch, false) {
        Verdict::Done(r) => r.stdout.lines().next().unwrap_or_default().trim().to_owned(),
        _ => "unknown".into(),
    }
}

/// `localhost/busybox:latest`, made in buildah's private storage and pushed to the OCI layout `layout` (the base
/// every builder's `setup` imports): Debian's static busybox with every applet linked in
/// /bin, /etc/passwd and /etc/group with root and nobody, /root and /tmp.
pub fn make_base_image(buildah: &Buildah, dir: &Path, layout: &Path, scratch: &Path) -> Result<()> {
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
    fs::create_dir_all(layout)?;
    b(&[
        "push",
        "--quiet",
        "localhost/busybox:latest",
        &format!("oci:{}:localhost/busybox:latest", layout.display()),
    ])?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", path.display()))
}

/// Builds `case` with `builder`'s adapter into an OCI layout (the image named `latest`) and returns the layout's
/// directory; for a case with extra platforms, the harness then makes `latest` an index of the built image and one
/// tiny image per platform.
pub fn build(env: &Env<'_>, builder: &Tool, case: &Case) -> Result<Result<PathBuf, String>> {
    // The context: the case directory plus Debian's static busybox as `busybox`.
    let context = env.work.join("contexts").join(&builder.name).join(&case.name);
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
    let layout = env.work.join("built").join(&builder.name).join(&case.name);
    fs::create_dir_all(&layout)?;
    let mut cmd = builder.cmd(env, "build");
    cmd.env("CONFORMANCE_ID", format!("{}-{}", builder.name, case.name))
        .arg(&context)
        .arg(context.join("Containerfile"))
        .arg(format!("oci:{}:latest", layout.display()));
    build_options(&mut cmd, env, case)?;
    match call(&mut cmd, BUILD_TIMEOUT, env.scratch, false) {
        Verdict::Done(_) => {}
        Verdict::NotRun(why) => return Ok(Err(format!("{NOT_RUN} {why}"))),
        Verdict::Failed(why) => return Ok(Err(why)),
    }
    let extra = cases::extra_platforms(case);
    if !extra.is_empty() {
        index_with_platforms(&layout, case, &extra)?;
    }
    Ok(Ok(layout))
}

/// The case's build options as the contract spells them: `--target`, `--build-arg K=V`, `--secret id=ID,src=FILE`
/// (secrets written to files), `--annotation K=V`, `--compress gzip|zstd`.
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
    for (k, v) in cases::build_annotations(case) {
        cmd.arg("--annotation").arg(format!("{k}={v}"));
    }
    if let Some(format) = cases::build_compression(case) {
        cmd.args(["--compress", format]);
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
            id: String::new(),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.error.clone()
    }
}

/// Copies the built layout to the registry and back with `copier`, then checks the pulled image.
pub fn copy_and_check(env: &Env<'_>, builder: &Tool, copier: &Tool, case: &Case, built: &Path) -> Stage {
    let started = Instant::now();
    let id = format!("{}-{}-{}", builder.name, case.name, copier.name);
    let pulled = env.work.join("pulled").join(&id);
    let remote = format!(
        "docker://{}/conformance/{}/{}:{}",
        env.registry, builder.name, case.name, copier.name
    );
    let all = cases::is_index(case);
    let copy = |src: &str, dest: &str| {
        let mut cmd = copier.cmd(env, "copy");
        cmd.env("CONFORMANCE_ID", &id);
        if all {
            cmd.arg("--all");
        }
        call(cmd.arg(src).arg(dest), STEP_TIMEOUT, env.scratch, false)
    };
    let _ = fs::create_dir_all(&pulled);
    for (what, src, dest) in [
        ("push", format!("oci:{}:latest", built.display()), remote.clone()),
        ("pull", remote.clone(), format!("oci:{}:latest", pulled.display())),
    ] {
        let failed = match copy(&src, &dest) {
            Verdict::Done(_) => continue,
            Verdict::NotRun(why) => format!("{NOT_RUN} {why}"),
            Verdict::Failed(why) => format!("copy ({what}) with {}: {why}", copier.name),
        };
        let mut stage = Stage::failed(failed);
        stage.seconds = started.elapsed().as_secs_f64();
        return stage;
    }
    let mut problems = cases::check_image(case, &pulled);
    if copier.name.starts_with("berth-") {
        problems.extend(
            cases::validate(case, &pulled, env.scratch)
                .err()
                .map(|e| format!("oci-image-tool: {e:#}")),
        );
    }
    match super::runners::unpack(env, &pulled, &id) {
        Ok(b) => problems.extend(cases::check_files(case, &b.join("rootfs"))),
        Err(e) => problems.push(format!("files not checked: umoci unpack: {e:#}")),
    }
    Stage {
        seconds: started.elapsed().as_secs_f64(),
        error: None,
        pulled,
        image_problems: problems,
        id,
    }
}
