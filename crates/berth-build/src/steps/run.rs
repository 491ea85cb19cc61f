//! `RUN`: a process in a container on the step's root filesystem, through berth-sandbox (the same hardening as
//! berth-run's containers), with the build's network mode. Its output goes to the build's stderr.

use std::os::fd::OwnedFd;
use std::path::Path;

use berth_sandbox::runtime::{Runtime, Stdio, wait_exit};
use berth_sandbox::{ContainerSetup, NetMode, SpecOptions, prepare_container};
use berth_spec::runtime_config::Overrides;
use oci_spec::image::ImageConfiguration;
use serde_json::Value;

use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::image::ImageState;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunProcess {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Build arguments visible to the process (as environment variables, not kept in the image).
    pub build_env: Vec<String>,
    /// Host network, or none.
    pub network: NetMode,
    /// `RUN --mount`s, prepared.
    pub mounts: Vec<berth_sandbox::MountRequest>,
}

/// Why a RUN did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The process ran and failed.
    #[error("the command exited with status {code}")]
    Exit {
        /// Its exit status (128 + signal when killed).
        code: i32,
    },
}

/// Runs `process` in `rootfs` (a mounted step root), as the state's user, in its working directory, with its
/// environment. `scratch` holds the container's bundle and `runtime` libcontainer's state.
pub fn run(
    state: &ImageState,
    rootfs: &Path,
    scratch: &Path,
    runtime: &Runtime,
    id: &str,
    process: &RunProcess,
) -> Result<(), BuildError> {
    // The image config as the step sees it: no volumes are mounted during a build (BuildKit's behaviour), and the
    // entrypoint does not apply.
    let mut config = state.config.clone();
    if let Some(c) = config.get_mut("config").and_then(Value::as_object_mut) {
        c.remove("Volumes");
        c.remove("Entrypoint");
        c.remove("Cmd");
        c.remove("Healthcheck");
    }
    let image: ImageConfiguration = serde_json::from_value(config).map_err(|e| BuildError::Work {
        what: "read the stage's image config",
        source: Box::new(e),
    })?;
    let options = SpecOptions {
        net: process.network,
        mounts: process.mounts.clone(),
        overrides: Overrides {
            entrypoint: Some(Vec::new()),
            cmd: Some(process.argv.clone()),
            env: process.build_env.clone(),
            ..Overrides::default()
        },
        ..SpecOptions::default()
    };
    let bundle = scratch.join("bundle");
    std::fs::create_dir_all(&bundle).at("create", &bundle)?;
    // Before prepare_container: it creates the mount points of the files it bind-mounts.
    let extra: Vec<String> = process.mounts.iter().map(|m| m.destination().to_owned()).collect();
    let stubs = missing_stubs(rootfs, &extra)?;
    let spec = prepare_container(&ContainerSetup {
        image_name: "the build stage",
        image: &image,
        rootfs,
        root_path: rootfs,
        container_dir: &bundle,
        container_id: id,
        options: &options,
    })
    .map_err(|e| BuildError::Work {
        what: "prepare the RUN container",
        source: Box::new(e),
    })?;
    let config_path = bundle.join("config.json");
    spec.save(&config_path).map_err(|e| BuildError::Work {
        what: "write the RUN container's spec",
        source: Box::new(e),
    })?;
    let devnull: OwnedFd = std::fs::File::open("/dev/null").at("open", "/dev/null")?.into();
    // The container's output goes to the build's stderr: stdout is for the image id.
    let stdout = rustix::io::dup(std::io::stderr()).at("duplicate", "stderr")?;
    let stdio = Stdio {
        stdin: Some(devnull),
        stdout: Some(stdout),
        stderr: None,
        console_socket: None,
    };
    let pid = runtime
        .start(id, &bundle, stdio, &mut || Ok(()))
        .map_err(|e| BuildError::Work {
            what: "start the RUN container",
            source: Box::new(e),
        })?;
    let code = wait_exit(pid);
    if let Err(e) = runtime.delete(id, true) {
        tracing::warn!("{e}");
    }
    remove_stubs(rootfs, &stubs);
    let code = code.map_err(|e| BuildError::Work {
        what: "wait for the RUN container",
        source: Box::new(e),
    })?;
    if code != 0 {
        return Err(BuildError::Work {
            what: "complete the RUN step",
            source: Box::new(RunFailure::Exit { code }),
        });
    }
    Ok(())
}

/// Mount points the runtime needs and creates when the image lacks them (its `/proc`, `/sys` and `/dev`, and the
/// files Berth bind-mounts over `/etc`), deepest first. Those a step created are removed again when they are still
/// empty, so they do not end up in the step's layer (as BuildKit and buildah do).
const STUBS: [&str; 7] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
];

/// The mount points (and their parents) that do not exist yet, deepest first: the fixed ones and those of the
/// step's `--mount`s.
fn missing_stubs(rootfs: &Path, mounts: &[String]) -> Result<Vec<String>, BuildError> {
    let fs = berth_sandbox::rootfs::RootFs::open(rootfs, "the build stage").map_err(|e| BuildError::Work {
        what: "open the stage's root filesystem",
        source: Box::new(e),
    })?;
    let mut paths: Vec<String> = Vec::new();
    for m in mounts {
        let mut p = format!("/{}", crate::pattern::clean(m));
        while p != "/" && !p.is_empty() {
            paths.push(p.clone());
            p = p.rsplit_once('/').map_or(String::new(), |(a, _)| a.to_owned());
        }
    }
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    paths.extend(STUBS.iter().map(|s| (*s).to_owned()));
    let mut seen = std::collections::HashSet::new();
    Ok(paths
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .filter(|p| {
            matches!(
                fs.open_in_root(p, rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW),
                Err(rustix::io::Errno::NOENT)
            )
        })
        .collect())
}

fn remove_stubs(rootfs: &Path, stubs: &[String]) {
    use rustix::fs::{AtFlags, FileType, OFlags};
    let Ok(fs) = berth_sandbox::rootfs::RootFs::open(rootfs, "the build stage") else {
        return;
    };
    for path in stubs {
        let (parent, name) = path.rsplit_once('/').expect("absolute");
        let Ok(dir) = fs.open_in_root(
            if parent.is_empty() { "/" } else { parent },
            OFlags::PATH | OFlags::DIRECTORY,
        ) else {
            continue;
        };
        let name = name.to_owned();
        let Ok(st) = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let result = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => rustix::fs::unlinkat(&dir, &name, AtFlags::REMOVEDIR),
            FileType::RegularFile if st.st_size == 0 => rustix::fs::unlinkat(&dir, &name, AtFlags::empty()),
            _ => continue,
        };
        if let Err(e) = result
            && e != rustix::io::Errno::NOTEMPTY
        {
            tracing::debug!(path = %path, "mount point left in place: {e}");
        }
    }
}
