//! Rootless entry: for a non-root user, each command runs again inside a user namespace (`berth_run::rootless`).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use berth_run::rootless::{Enter, enter_for, reexec, reexec_with_args};

use crate::{Cli, Command};

/// For a non-root user, runs this command again inside a user namespace and returns its exit code; `None` when
/// this process goes on itself (root, a process already inside, or a command that needs no namespace).
pub(crate) fn rootless_entry(cli: &Cli) -> Result<Option<i32>> {
    // SAFETY: main calls this before it starts any thread (argument parsing, the sealed-binary check and logging
    // set-up start none), and the descriptors named in _BERTH_ROOTLESS_STAGE were passed to this process by the
    // parent's `reexec`; nothing else in it knows of them.
    #[allow(unsafe_code)]
    let entered = unsafe { berth_run::rootless::enter_from_env() }?;
    if entered || rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let state = cli.state.clone().unwrap_or_else(berth_run::state::default_state_path);
    // Absolute: entering a mount namespace moves the working directory to its root.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let env = vec![
        ("BERTH_STORE", absolute(cli.store()?)),
        ("BERTH_CACHE", absolute(cli.cache())),
        ("BERTH_STATE", absolute(state)),
    ];
    let join = |name: &str| -> Result<Enter> { Ok(enter_for(&cli.state()?, name)?) };
    let how = match &cli.command {
        Command::Ps(_)
        | Command::Logs(_)
        | Command::Wait(_)
        | Command::Inspect(_)
        | Command::Monitor { .. }
        | Command::Sweep => {
            return Ok(None);
        }
        Command::Exec(args) => join(&args.container)?,
        Command::Kill(_) | Command::Stop(_) | Command::Rm(_) => {
            // Each container has namespaces of its own: one re-executed process per container, given that one
            // only. The exit code is the last failure's, as when one process acts on all.
            let mut code = 0;
            for (name, args) in per_container(cli) {
                let c = reexec_with_args(join(&name).unwrap_or(Enter::New), &env, args)?;
                if c != 0 {
                    code = c;
                }
            }
            return Ok(Some(code));
        }
        _ => Enter::New,
    };
    Ok(Some(reexec(how, &env)?))
}

/// For `kill`, `stop` and `rm` of several containers: the command line of each one alone.
fn per_container(cli: &Cli) -> Vec<(String, Vec<OsString>)> {
    let verbose = std::iter::repeat_n("--verbose".to_owned(), usize::from(cli.verbose));
    let (verb, flags, names): (&str, Vec<String>, &[String]) = match &cli.command {
        Command::Kill(a) => ("kill", vec!["--signal".into(), a.signal.clone()], &a.containers),
        Command::Stop(a) => ("stop", vec!["--time".into(), a.time.to_string()], &a.containers),
        Command::Rm(a) => (
            "rm",
            if a.force { vec!["--force".into()] } else { vec![] },
            &a.containers,
        ),
        _ => return Vec::new(),
    };
    names
        .iter()
        .map(|name| {
            let args = std::iter::once(verb.to_owned())
                .chain(verbose.clone())
                .chain(flags.iter().cloned())
                .chain(["--".to_owned(), name.clone()])
                .map(OsString::from)
                .collect();
            (name.clone(), args)
        })
        .collect()
}
