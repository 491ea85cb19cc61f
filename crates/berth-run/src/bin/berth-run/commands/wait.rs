//! `berth-run wait`: exit codes, once the containers have exited.

use berth_run::lifecycle;

use super::{ContainersArgs, Outcome};
use crate::Cli;

pub(crate) fn wait(cli: &Cli, args: &ContainersArgs) -> Outcome {
    let state = cli.state()?;
    for name in &args.containers {
        let record = state.find(name)?;
        match lifecycle::wait(&state, &record)? {
            Some(code) => println!("{code}"),
            None => println!("-1"),
        }
    }
    Ok(0)
}
