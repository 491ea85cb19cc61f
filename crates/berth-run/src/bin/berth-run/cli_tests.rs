//! The command line's shape: clap's own consistency checks and how a few lines parse.

use clap::{CommandFactory, Parser};

use crate::{Cli, Command};

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from(["berth-run", "bundle", "-v", "/a:/b", "img", "dir", "sh", "-c", "exit 7"]).unwrap();
    let Command::Bundle(args) = cli.command else {
        panic!("not bundle")
    };
    assert_eq!(args.flags.volume, ["/a:/b"]);
    assert_eq!((args.image.as_str(), args.command.len()), ("img", 3));
    let cli = Cli::try_parse_from(["berth-run", "run", "--rm", "-it", "-e", "A=1", "img", "sh", "-c", "x"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert!(args.rm && args.interactive && args.flags.tty);
    assert_eq!((args.image.as_deref(), args.command.len()), (Some("img"), 3));
    let cli = Cli::try_parse_from(["berth-run", "run", "--bundle", "/b"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert_eq!(args.bundle.as_deref(), Some(std::path::Path::new("/b")));
    assert!(Cli::try_parse_from(["berth-run", "run"]).is_err());
}
