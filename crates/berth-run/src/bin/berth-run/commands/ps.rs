//! `berth-run ps`: the containers as a table, ids or JSON.

use std::io::Write;

use anyhow::bail;
use berth_run::state::{ContainerRecord, Status};
use clap::Args;

use super::Outcome;
use crate::Cli;

#[derive(Args)]
pub(crate) struct PsArgs {
    /// Show every container, not only running ones.
    #[arg(short = 'a', long = "all")]
    pub(crate) all: bool,
    /// Print only ids.
    #[arg(short = 'q', long = "quiet")]
    pub(crate) quiet: bool,
    /// Full ids and commands.
    #[arg(long = "no-trunc")]
    pub(crate) no_trunc: bool,
    /// table or json.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
}

pub(crate) fn ps(cli: &Cli, args: &PsArgs) -> Outcome {
    let state = cli.state()?;
    let records: Vec<_> = state
        .list()?
        .into_iter()
        .filter(|r| args.all || r.live_status() == Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in &records {
            writeln!(out, "{}", if args.no_trunc { &r.id } else { r.short_id() })?;
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => {
            let list: Vec<serde_json::Value> = records.iter().map(ps_json).collect();
            serde_json::to_writer_pretty(&mut out, &list)?;
            writeln!(out)?;
        }
        "table" => {
            let now = berth_run::state::now();
            let rows: Vec<[String; 6]> = records
                .iter()
                .map(|r| {
                    let command = r.command.join(" ");
                    [
                        if args.no_trunc {
                            r.id.clone()
                        } else {
                            r.short_id().to_owned()
                        },
                        r.image.clone(),
                        if args.no_trunc { command } else { truncate(&command, 24) },
                        format!("{} ago", ago(now.saturating_sub(r.created))),
                        status_text(r, now),
                        r.name.clone(),
                    ]
                })
                .collect();
            let header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let mut s = String::new();
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    if i + 1 == cells.len() {
                        s.push_str(cell);
                    } else {
                        s.push_str(&format!("{cell:<w$}  "));
                    }
                }
                s
            };
            writeln!(out, "{}", line(header.to_vec()))?;
            for row in &rows {
                writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
            }
        }
        other => bail!("--format {other}: use table or json"),
    }
    Ok(0)
}

fn ps_json(r: &ContainerRecord) -> serde_json::Value {
    let status = r.live_status();
    serde_json::json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": r.image,
        "ImageDigest": r.image_digest,
        "Command": r.command,
        "Created": r.created,
        "StartedAt": r.started,
        "ExitedAt": r.finished,
        "State": format!("{status:?}").to_lowercase(),
        "Exited": status == Status::Exited,
        // As podman: 0 until the container has exited; null only when its exit code is unknown.
        "ExitCode": if status == Status::Exited { r.exit_code } else { Some(0) },
        "Pid": if status == Status::Running { r.pid } else { None },
        "AutoRemove": r.auto_remove,
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

fn ago(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "1 minute".into(),
        120..=3599 => format!("{} minutes", secs / 60),
        3600..=7199 => "1 hour".into(),
        7200..=172_799 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn status_text(r: &ContainerRecord, now: u64) -> String {
    match r.live_status() {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(now.saturating_sub(r.started.unwrap_or(r.created)))),
        Status::Exited => match (r.exit_code, r.finished) {
            (Some(code), Some(t)) => format!("Exited ({code}) {} ago", ago(now.saturating_sub(t))),
            _ => "Exited (unknown)".into(),
        },
    }
}
