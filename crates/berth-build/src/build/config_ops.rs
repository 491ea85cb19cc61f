//! What HEALTHCHECK's options and WORKDIR's directories need.

use std::path::Path;

use serde_json::{Value, json};

use crate::containerfile::Instruction;
use berth_spec::io_context::IoContext;

use crate::error::BuildError;

use super::*;

impl Builder<'_> {
    pub(super) fn healthcheck(&self, inst: &Instruction) -> Result<Value, BuildError> {
        let text = inst.text();
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("NONE") {
            return Ok(json!({"Test": ["NONE"]}));
        }
        let rest = trimmed
            .strip_prefix("CMD")
            .or_else(|| trimmed.strip_prefix("cmd"))
            .ok_or_else(|| self.err(inst.pos, "HEALTHCHECK takes [OPTIONS] CMD command, or NONE"))?
            .trim();
        let test = match serde_json::from_str::<Vec<String>>(rest) {
            Ok(words) if rest.starts_with('[') => {
                let mut t = vec!["CMD".to_owned()];
                t.extend(words);
                t
            }
            _ => vec!["CMD-SHELL".to_owned(), rest.to_owned()],
        };
        let mut hc = json!({"Test": test});
        for f in &inst.flags {
            let v = f.value.clone().unwrap_or_default();
            let key = match f.name.as_str() {
                "interval" => "Interval",
                "timeout" => "Timeout",
                "start-period" => "StartPeriod",
                "start-interval" => "StartInterval",
                "retries" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| self.err(inst.pos, format!("--retries={v}: not a number")))?;
                    hc["Retries"] = json!(n);
                    continue;
                }
                other => return Err(self.err(inst.pos, format!("HEALTHCHECK does not take --{other}"))),
            };
            let ns = parse_duration(&v)
                .ok_or_else(|| self.err(inst.pos, format!("--{}={v}: not a duration (e.g. 30s, 1m30s)", f.name)))?;
            hc[key] = json!(ns);
        }
        Ok(hc)
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub(super) fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += (n * unit) as u64;
        rest = &rest[u_end..];
    }
    Some(total)
}

/// Creates the working directory (`mkdir -p`), owned by the stage's user when it creates it.
pub(super) fn make_workdir(dir: &str, user: &str, rootfs: &Path) -> Result<(), BuildError> {
    let fs = berth_sandbox::rootfs::RootFs::open(rootfs, "the build stage").map_err(|e| BuildError::Work {
        what: "open the stage's root filesystem",
        source: Box::new(e),
    })?;
    // The missing directories on the way are created for the user too (mkdir -p as that user).
    let mut missing = Vec::new();
    let mut p = dir.trim_end_matches('/').to_owned();
    while !p.is_empty() && !matches!(fs.open_dir(&p), Ok(Some(_))) {
        missing.push(p.clone());
        p = p.rsplit_once('/').map_or(String::new(), |(a, _)| a.to_owned());
    }
    fs.ensure_dir(dir).map_err(|e| BuildError::Work {
        what: "create the working directory",
        source: Box::new(e),
    })?;
    if user.is_empty() {
        return Ok(());
    }
    let (uid, gid) = resolve_chown(user, rootfs)?;
    for dir in missing {
        let fd = fs
            .open_in_root(&dir, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY)
            .at("open", rootfs.join(dir.trim_start_matches('/')))?;
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .at("chown", rootfs.join(dir.trim_start_matches('/')))?;
    }
    Ok(())
}
