//! What each tool says about itself beyond `--help`, made from its clap definitions so it cannot drift from them:
//! shell completions (`TOOL completions bash|zsh|fish`), man pages (one for the tool, one per verb) and a Markdown
//! reference page (`docs/cli/TOOL.md`, checked by a test).
//!
//! Every tool adds [`DocsCommand`]'s two verbs: `completions SHELL` (shown) and `generate-docs` (hidden; used by
//! `cargo xtask dist` and the docs test).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Arg, ArgAction, Command};

/// `completions SHELL`: prints a completion script on stdout.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `generate-docs`: writes man pages into a directory, or prints the Markdown reference.
#[derive(Debug, clap::Args)]
pub struct GenerateDocsArgs {
    /// Write man pages (section 1: the tool's and one per verb) into this directory.
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
    /// Print the Markdown reference page on stdout.
    #[arg(long)]
    pub markdown: bool,
}

/// Runs `completions`: the script for `shell`, for the tool whose command is `cmd`.
pub fn completions(mut cmd: Command, args: &CompletionsArgs) -> Result<()> {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

/// Runs `generate-docs`.
pub fn generate(cmd: Command, args: &GenerateDocsArgs) -> Result<()> {
    if let Some(dir) = &args.man {
        man_pages(cmd.clone(), dir)?;
    }
    if args.markdown {
        std::io::stdout().write_all(markdown(&cmd).as_bytes())?;
    }
    Ok(())
}

/// Writes `TOOL.1` and `TOOL-VERB.1` for every visible verb into `dir`.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let tool = cmd.get_name().to_owned();
    let write = |name: &str, page: Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))
    };
    write(&tool, cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| shown(s)) {
        let name = format!("{tool}-{}", sub.get_name());
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        write(&name, sub.clone().name(leaked))?;
    }
    Ok(())
}

/// The Markdown reference of a tool: its about text, global options, then each visible verb with its usage,
/// arguments, options and examples.
pub fn markdown(cmd: &Command) -> String {
    let mut cmd = cmd.clone();
    cmd.build();
    let tool = cmd.get_name().to_owned();
    let mut md = format!("# {tool}\n\n");
    md.push_str(&format!(
        "<!-- Generated from {tool}'s command-line definitions by `{tool} generate-docs --markdown`; \
         `cargo xtask docs` rewrites it and a test checks it is current. -->\n\n"
    ));
    if let Some(about) = cmd.get_about() {
        md.push_str(&format!("{about}\n\n"));
    }
    md.push_str(&format!("```\n{}\n```\n\n", usage(&mut cmd)));
    let globals: Vec<&Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    if !globals.is_empty() {
        md.push_str("Options of every verb:\n\n");
        args_table(&mut md, &globals);
    }
    md.push_str("## Verbs\n\n");
    for sub in cmd.get_subcommands().filter(|s| shown(s)) {
        md.push_str(&format!(
            "- [`{}`](#{tool}-{}): {}\n",
            sub.get_name(),
            sub.get_name(),
            sub.get_about().map(|a| a.to_string()).unwrap_or_default()
        ));
    }
    md.push('\n');
    let subs: Vec<Command> = cmd.get_subcommands().filter(|s| shown(s)).cloned().collect();
    for mut sub in subs {
        md.push_str(&format!("## {tool} {}\n\n", sub.get_name()));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            md.push_str(&format!("{about}\n\n"));
        }
        let aliases: Vec<&str> = sub.get_visible_aliases().collect();
        if !aliases.is_empty() {
            md.push_str(&format!("Also: `{}`.\n\n", aliases.join("`, `")));
        }
        md.push_str(&format!("```\n{}\n```\n\n", usage(&mut sub)));
        let positionals: Vec<&Arg> = sub.get_positionals().filter(|a| !a.is_hide_set()).collect();
        if !positionals.is_empty() {
            md.push_str("Arguments:\n\n");
            args_table(&mut md, &positionals);
        }
        let options: Vec<&Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set() && !a.is_global_set())
            .collect();
        if !options.is_empty() {
            md.push_str("Options:\n\n");
            args_table(&mut md, &options);
        }
        if let Some(after) = sub.get_after_help() {
            md.push_str(&format!("```\n{}\n```\n\n", after.to_string().trim_end()));
        }
    }
    md
}

/// A verb the docs describe: not hidden, not clap's `help`.
fn shown(cmd: &Command) -> bool {
    !cmd.is_hide_set() && cmd.get_name() != "help"
}

fn usage(cmd: &mut Command) -> String {
    cmd.render_usage().to_string().trim_start_matches("Usage: ").to_owned()
}

fn args_table(md: &mut String, args: &[&Arg]) {
    for a in args {
        let mut names = Vec::new();
        if let Some(s) = a.get_short() {
            names.push(format!("-{s}"));
        }
        if let Some(l) = a.get_long() {
            names.push(format!("--{l}"));
        }
        let takes_value = matches!(a.get_action(), ArgAction::Set | ArgAction::Append);
        let value = if takes_value {
            a.get_value_names()
                .map(|v| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| a.get_id().to_string().to_uppercase())
        } else {
            String::new()
        };
        let spelled = if names.is_empty() {
            let id = a.get_id().to_string().to_uppercase();
            format!("`{}`", if value.is_empty() { id } else { value })
        } else if value.is_empty() {
            format!("`{}`", names.join(", "))
        } else {
            format!("`{} {value}`", names.join(", "))
        };
        let help = a
            .get_long_help()
            .or(a.get_help())
            .map(|h| h.to_string().replace('\n', " "))
            .unwrap_or_default();
        let env = a
            .get_env()
            .map(|e| format!(" (env `{}`)", e.to_string_lossy()))
            .unwrap_or_default();
        md.push_str(&format!("- {spelled}: {help}{env}\n"));
    }
    md.push('\n');
}

/// The examples of a tool's `completions` verb.
pub fn completions_examples(tool: &str) -> String {
    format!(
        "Examples:\n  {tool} completions bash > /etc/bash_completion.d/{tool}\n  \
         {tool} completions zsh > /usr/local/share/zsh/site-functions/_{tool}\n  \
         {tool} completions fish > ~/.config/fish/completions/{tool}.fish"
    )
}

/// For a test: whether `doc` (a tool's `docs/cli/TOOL.md`) is what `bin generate-docs --markdown` prints now, and
/// every verb's help has examples.
/// With `BERTH_UPDATE_DOCS=1` in the environment the file is rewritten instead (`cargo xtask docs` does that).
pub fn check_reference(bin: &Path, doc: &Path) -> Result<(), String> {
    let out = std::process::Command::new(bin)
        .args(["generate-docs", "--markdown"])
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} generate-docs failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let now = String::from_utf8_lossy(&out.stdout).into_owned();
    // Every verb's help ends with examples.
    let bare: Vec<&str> = now
        .split("\n## ")
        .skip(1)
        .filter(|section| !section.starts_with("Verbs"))
        .filter(|section| !section.contains("Examples:"))
        .filter_map(|section| section.lines().next())
        .collect();
    if !bare.is_empty() {
        return Err(format!("no examples in the help of: {}", bare.join(", ")));
    }
    if std::env::var_os("BERTH_UPDATE_DOCS").is_some() {
        return std::fs::write(doc, &now).map_err(|e| format!("writing {}: {e}", doc.display()));
    }
    let written = std::fs::read_to_string(doc).unwrap_or_default();
    if written == now {
        Ok(())
    } else {
        Err(format!(
            "{} is not the reference the command line gives now: run `cargo xtask docs` and commit it",
            doc.display()
        ))
    }
}
