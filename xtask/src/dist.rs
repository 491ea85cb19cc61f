//! `cargo xtask dist [--check]`: the release archive, `target/dist/berth-VERSION-x86_64-linux.tar.gz`, holding the
//! four binaries (release builds; libseccomp and ISA-L linked statically, so they need only the C library), their
//! man pages (`share/man/man1`) and shell completions (bash, zsh, fish under `share/`).
//!
//! Before packing, every binary's dynamic dependencies are checked against the C library's own. `--check` then
//! proves the archive works on a machine with nothing installed: it unpacks it into a copy of a `debootstrap
//! --variant=minbase` root filesystem (with any libseccomp and libisal removed from it) and, with that as the root
//! of a private mount namespace, runs
//! each tool's `--version`, a real copy with berth-copy, a build with berth-build, a container with berth-run and
//! one with berth-runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::measure::sh;
use crate::workspace_root;

/// The binaries shipped.
pub const TOOLS: [&str; 4] = ["berth-build", "berth-copy", "berth-run", "berth-runtime"];

/// Shared objects a binary may need: the C library's own.
const ALLOWED: [&str; 5] = [
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "libdl.so.2",
];

pub fn run(args: &[String]) -> Result<()> {
    let mut check = false;
    for a in args {
        match a.as_str() {
            "--check" => check = true,
            other => bail!("dist: unknown argument `{other}` (usage: cargo xtask dist [--check])"),
        }
    }
    let archive = build_archive()?;
    println!("wrote {}", archive.display());
    if check {
        check_on_minbase(&archive)?;
        println!("the archive works on a debootstrap minbase root with no libseccomp or libisal");
    }
    Ok(())
}

/// Builds the binaries, writes the staging tree and packs it; returns the archive's path.
pub fn build_archive() -> Result<PathBuf> {
    let root = workspace_root();
    let missing = crate::packages::missing(crate::packages::BUILD_PACKAGES)?;
    ensure!(
        missing.is_empty(),
        "building the release needs {}: `sudo apt-get install {}` (or `cargo xtask ci`)",
        missing.join(" "),
        missing.join(" ")
    );
    let bins = crate::cargo_build(&root, true, &TOOLS)?;
    for tool in TOOLS {
        let needed = needed_libraries(&bins.join(tool))?;
        let extra: Vec<&String> = needed.iter().filter(|l| !ALLOWED.contains(&l.as_str())).collect();
        ensure!(
            extra.is_empty(),
            "{tool} needs shared libraries beyond the C library: {extra:?} (they must be linked statically)"
        );
    }
    let version = version(&bins.join("berth-copy"))?;
    let name = format!("berth-{version}-x86_64-linux");
    let dist = crate::fuzz::target_dir(&root)?.join("dist");
    let stage = dist.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    let (bin, man) = (stage.join("bin"), stage.join("share/man/man1"));
    let completions = [
        ("bash", stage.join("share/bash-completion/completions"), ""),
        ("zsh", stage.join("share/zsh/site-functions"), "_"),
        ("fish", stage.join("share/fish/vendor_completions.d"), ""),
    ];
    std::fs::create_dir_all(&bin)?;
    for (_, dir, _) in &completions {
        std::fs::create_dir_all(dir)?;
    }
    for tool in TOOLS {
        std::fs::copy(bins.join(tool), bin.join(tool)).with_context(|| format!("copying {tool}"))?;
        sh(Command::new(bin.join(tool)).args(["generate-docs", "--man"]).arg(&man))?;
        for (shell, dir, prefix) in &completions {
            let out = Command::new(bin.join(tool)).args(["completions", shell]).output()?;
            ensure!(out.status.success(), "{tool} completions {shell} failed");
            let file = match *shell {
                "fish" => dir.join(format!("{tool}.fish")),
                _ => dir.join(format!("{prefix}{tool}")),
            };
            std::fs::write(file, out.stdout)?;
        }
    }
    for doc in ["README.md", "LICENSE"] {
        if root.join(doc).is_file() {
            std::fs::copy(root.join(doc), stage.join(doc))?;
        }
    }
    let archive = dist.join(format!("{name}.tar.gz"));
    sh(Command::new("tar")
        .arg("-C")
        .arg(&dist)
        .args(["--owner=0", "--group=0", "-czf"])
        .arg(&archive)
        .arg(&name))?;
    Ok(archive)
}

/// The `NEEDED` entries of an ELF file's dynamic section (`readelf -d`).
fn needed_libraries(bin: &Path) -> Result<Vec<String>> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(bin)
        .output()
        .context("running readelf")?;
    ensure!(out.status.success(), "readelf -d {} failed", bin.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_owned))
        .collect())
}

/// `berth-copy --version` says `berth-copy X.Y.Z`.
fn version(bin: &Path) -> Result<String> {
    let out = Command::new(bin).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("{} --version said {text:?}", bin.display()))
}

/// Unpacks `archive` into a copy of the minbase root filesystem and uses every tool there, as the root of a
/// private mount namespace.
pub fn check_on_minbase(archive: &Path) -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "dist --check chroots into a root filesystem and runs containers: it needs root"
    );
    let root = workspace_root();
    let minbase = crate::bench_layer::ensure_rootfs(&root.join("target/bench"))?;
    let work = tempfile::Builder::new()
        .prefix("berth-dist-check-")
        .tempdir_in("/var/tmp")?;
    let rootfs = work.path().join("rootfs");
    sh(Command::new("cp").arg("-a").arg(&minbase).arg(&rootfs))?;
    // Whatever the distribution left of the two libraries the binaries once needed goes.
    let libdir = rootfs.join("usr/lib/x86_64-linux-gnu");
    for e in std::fs::read_dir(&libdir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("libseccomp") || name.starts_with("libisal") {
            std::fs::remove_file(e.path())?;
        }
    }
    sh(Command::new("tar")
        .arg("-C")
        .arg(rootfs.join("opt"))
        .arg("-xzf")
        .arg(archive))?;
    let unpacked = std::fs::read_dir(rootfs.join("opt"))?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("berth-"))
        .context("the archive holds no berth-VERSION directory")?
        .file_name();
    // An image to work on, written where the chroot sees it.
    let layout = berth_spec::layout::Layout::create(rootfs.join("srv/images"))?;
    berth_testkit::busybox::write_image(&layout, "busybox:1")?;
    std::fs::create_dir_all(rootfs.join("srv/ctx"))?;
    std::fs::write(rootfs.join("srv/ctx/hello.txt"), "hello from the minbase root\n")?;
    std::fs::write(
        rootfs.join("srv/ctx/Containerfile"),
        "FROM busybox:1\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    )?;
    let script = format!(
        r#"set -eu
export PATH=/opt/{dir}/bin:/usr/sbin:/usr/bin:/sbin:/bin
for t in berth-build berth-copy berth-run berth-runtime; do $t --version; done
ldconfig
if ldconfig -p | grep -E 'libseccomp|libisal'; then echo 'the root still has libseccomp or libisal' >&2; exit 1; fi
berth-copy copy oci:/srv/images:busybox:1 oci:/srv/store:busybox:1
berth-build --store /srv/store --cache /var/tmp/build-cache build -q -t hello:1 /srv/ctx
berth-run --store /srv/store --cache /var/tmp/run-cache --state /var/tmp/run-state run --rm hello:1 > /srv/out-run
berth-run --store /srv/store --cache /var/tmp/run-cache bundle hello:1 /srv/bundle
berth-runtime --root /var/tmp/rt run --bundle /srv/bundle hello-rt > /srv/out-runtime
"#,
        dir = unpacked.to_string_lossy()
    );
    std::fs::write(rootfs.join("srv/check.sh"), script)?;
    let r = rootfs.display().to_string();
    // The root becomes the namespace's root by pivot_root, not chroot: a container runtime pivots too, and cannot
    // from inside a chroot.
    let outer = format!(
        "set -e; mount --bind '{r}' '{r}'; mount --rbind /proc '{r}/proc'; mount --rbind /sys '{r}/sys'; \
         mount --rbind /dev '{r}/dev'; mount -t tmpfs tmpfs '{r}/run'; mkdir -p '{r}/.oldroot'; cd '{r}'; \
         pivot_root . .oldroot; exec /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot && exec /bin/sh /srv/check.sh'"
    );
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--fork", "sh", "-c"])
        .arg(&outer)
        .status()?;
    ensure!(
        status.success(),
        "using the tools inside the minbase root failed ({status})"
    );
    for out in ["out-run", "out-runtime"] {
        let text = std::fs::read_to_string(rootfs.join("srv").join(out))?;
        ensure!(
            text == "hello from the minbase root\n",
            "{out}: the container printed {text:?}"
        );
    }
    Ok(())
}

/// `cargo xtask docs`: rewrites `docs/cli/TOOL.md` from each tool's command line (a test checks they are current).
pub fn write_docs(args: &[String]) -> Result<()> {
    ensure!(args.is_empty(), "docs takes no arguments");
    let root = workspace_root();
    let bins = crate::cargo_build(&root, false, &TOOLS)?;
    let dir = root.join("docs/cli");
    std::fs::create_dir_all(&dir)?;
    for tool in TOOLS {
        let out = Command::new(bins.join(tool))
            .args(["generate-docs", "--markdown"])
            .output()?;
        ensure!(out.status.success(), "{tool} generate-docs failed");
        let path = dir.join(format!("{tool}.md"));
        std::fs::write(&path, out.stdout)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// One voice: the tools that reach registries spell the shared ideas alike (skopeo's, buildah's and podman's
    /// spelling), as their generated references (docs/cli, checked against the binaries by each tool's tests) show.
    #[test]
    fn the_tools_spell_shared_options_alike() {
        let root = crate::workspace_root();
        let read = |tool: &str| std::fs::read_to_string(root.join(format!("docs/cli/{tool}.md"))).unwrap();
        for tool in ["berth-build", "berth-copy", "berth-run"] {
            let doc = read(tool);
            for flag in [
                "--store",
                "--tls-verify",
                "--authfile",
                "--creds",
                "--retry-times",
                "--platform",
                "--verbose",
            ] {
                assert!(
                    doc.contains(&format!("`{flag} "))
                        || doc.contains(&format!(", {flag}"))
                        || doc.contains(&format!("`{flag}`")),
                    "{tool} has no {flag}"
                );
            }
            // -q is --quiet wherever there is one.
            for line in doc.lines().filter(|l| l.starts_with("- `-q")) {
                assert!(line.starts_with("- `-q, --quiet`"), "{tool}: {line}");
            }
            // Machine-readable output is --format json (never --json).
            assert!(!doc.contains("`--json"), "{tool} spells JSON output --json");
        }
        for tool in ["berth-copy", "berth-run", "berth-runtime"] {
            assert!(read(tool).contains("--format"), "{tool} has no --format");
        }
    }
}
