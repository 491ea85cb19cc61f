//! `exec`: the process to start in a running container, from its runtime spec and the user's options.

use berth_sandbox::rootfs::RootFs;
use berth_spec::runtime_config::{UserSpec, resolve_user};
use oci_spec::runtime::{Process, Spec, UserBuilder};

use crate::RunError;
use crate::state::ContainerRecord;

/// What `exec` runs, on top of the container's own process settings.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and arguments.
    pub command: Vec<String>,
    /// `-e KEY=VALUE` (or `KEY`, from this environment).
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `--privileged`: every capability.
    pub privileged: bool,
}

/// The process spec for `exec`: the container's process with the command, env, user, working directory and
/// terminal replaced as asked.
pub fn exec_process(record: &ContainerRecord, request: &ExecRequest) -> Result<Process, RunError> {
    if request.command.is_empty() {
        return Err(RunError::option(
            "exec",
            "give the command to run after the container's name",
        ));
    }
    let config_path = record.bundle.join("config.json");
    let spec = Spec::load(&config_path)
        .map_err(|e| RunError::container(&record.name, format!("{}: {e}", config_path.display())))?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| "rootfs".into());
    let rootfs = RootFs::open(&record.bundle.join(root), &record.image)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(request.command.clone()));
    process.set_terminal(Some(request.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    for item in &request.env {
        let entry = match item.split_once('=') {
            Some(_) => item.clone(),
            None => match std::env::var(item) {
                Ok(v) => format!("{item}={v}"),
                Err(_) => continue,
            },
        };
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    }
    if request.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(dir) = &request.workdir {
        if !dir.starts_with('/') {
            return Err(RunError::option(
                format!("-w {dir}"),
                "the working directory must be absolute",
            ));
        }
        process.set_cwd(dir.into());
    }
    if let Some(user) = &request.user {
        let spec_user =
            UserSpec::parse(user).map_err(|e| RunError::option(format!("-u {user}"), berth_spec::error_chain(&e)))?;
        let (passwd, group) = rootfs.account_files()?;
        let resolved = resolve_user(&spec_user, &passwd, &group)
            .map_err(|e| RunError::option(format!("-u {user}"), berth_spec::error_chain(&e)))?;
        // The container's umask (0022) stays: a new user must not reset it to berth-run's own.
        let umask = process.user().umask();
        let mut builder = UserBuilder::default().uid(resolved.uid).gid(resolved.gid);
        if let Some(umask) = umask {
            builder = builder.umask(umask);
        }
        if !resolved.additional_gids.is_empty() {
            builder = builder.additional_gids(resolved.additional_gids);
        }
        process.set_user(builder.build().expect("a user with ids builds"));
        // HOME that Berth set for the container's user (not the image's nor the user's): this user's instead.
        let computed = spec
            .annotations()
            .as_ref()
            .is_some_and(|a| a.contains_key(berth_sandbox::HOME_COMPUTED_ANNOTATION));
        let given = request.env.iter().any(|e| e == "HOME" || e.starts_with("HOME="));
        if computed && !given {
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("HOME="));
            env.push(format!(
                "HOME={}",
                berth_spec::runtime_config::home_of(&passwd, &spec_user.user)
            ));
            process.set_env(Some(env));
        }
    }
    // A command that cannot run is refused here, naming it (exit 127), rather than by the runtime.
    // Content under any mount (binds, tmpfs) is not the image's: commands there are not checked.
    let binds: Vec<String> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    let binds: Vec<&str> = binds.iter().map(String::as_str).collect();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let under_mount = binds
        .iter()
        .any(|m| cwd == *m || cwd.strip_prefix(m).is_some_and(|rest| rest.starts_with('/')));
    if request.workdir.is_some() && !under_mount && rootfs.open_dir(&cwd)?.is_none() {
        return Err(RunError::option(
            format!("-w {cwd}"),
            "no such directory in the container",
        ));
    }
    berth_sandbox::check_args(
        &rootfs,
        &request.command[0],
        &cwd,
        process.env().as_deref().unwrap_or_default(),
        &binds,
    )?;
    if request.privileged {
        let all = berth_sandbox::caps::host_bounding_set();
        process.set_capabilities(Some(berth_sandbox::caps::linux_capabilities(&all)));
    }
    Ok(process)
}
