//! `docs/benchmarks.md`: the last result of each benchmark (its table, the machine, the date) and one SVG chart per
//! benchmark in `docs/bench/NAME.svg` (per workload, Berth's bar beside its peer's and the floor's). Each
//! benchmark's section is replaced when it runs again; the others stay.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::measure::Measured;

const START: &str = "<!-- bench:";
const HEADER: &str = "# Benchmarks\n\nWritten by `cargo xtask bench NAME`: each section is the last run of that \
benchmark on the machine it names, Berth side by side with its peer in the same run, and the floor (what the \
hardware allows for the same work) where there is one. Ratios are Berth's time over the other's: below 1 is \
faster.\n";

/// This machine, in one line: CPU model and count, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / (1024 * 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model} × {cores}, {mem_gib} GiB, Linux {}", kernel.trim())
}

fn secs(d: Duration, ms: bool) -> String {
    if ms {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The section of one benchmark run.
pub fn section(bench: &str, rows: &[Measured], note: &str, date: &str, machine: &str) -> String {
    let ms = rows.iter().all(|r| r.berth < Duration::from_secs(1));
    let mut s = format!("{START}{bench} -->\n## {bench}\n\n{date}, {machine}. {note}.\n\n");
    s.push_str("| workload | Berth | peer | ÷peer | floor | ÷floor | target |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        let b = r.berth.as_secs_f64();
        let (peer, pr) = r.peer.map_or(("–".to_owned(), "–".to_owned()), |(n, d)| {
            (
                format!("{}: {}", n.replace('|', "\\|"), secs(d, ms)),
                format!("**{:.2}x**", b / d.as_secs_f64()),
            )
        });
        let (floor, fr) = r.floor.map_or(("–".to_owned(), "–".to_owned()), |(n, d)| {
            (
                format!("{}: {}", n.replace('|', "\\|"), secs(d, ms)),
                format!("{:.2}x", b / d.as_secs_f64()),
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {peer} | {pr} | {floor} | {fr} | {} |",
            r.what.replace('|', "\\|"),
            secs(r.berth, ms),
            r.target.replace('|', "\\|")
        );
    }
    let _ = write!(
        s,
        "\n![{bench}: Berth, peer and floor per workload](bench/{bench}.svg)\n<!-- /bench:{bench} -->\n"
    );
    s
}

/// `doc` with `section` in place of `bench`'s old one (or added at the end).
pub fn replace_section(doc: &str, bench: &str, section: &str) -> String {
    let doc = if doc.trim().is_empty() {
        HEADER.to_owned()
    } else {
        doc.to_owned()
    };
    let (open, close) = (format!("{START}{bench} -->"), format!("<!-- /bench:{bench} -->\n"));
    match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + close.len()..]),
        _ => format!("{}\n{section}", doc.trim_end_matches('\n').to_owned() + "\n"),
    }
}

/// An SVG chart: per workload, horizontal bars for Berth, the peer and the floor, scaled to the workload's longest.
pub fn chart(bench: &str, rows: &[Measured]) -> String {
    const BAR: u32 = 16;
    const WIDTH: u32 = 420;
    const LEFT: u32 = 170;
    let ms = rows.iter().all(|r| r.berth < Duration::from_secs(1));
    let escape = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut body = String::new();
    let mut y = 30;
    for r in rows {
        let bars: Vec<(&str, Duration, &str)> = [Some(("Berth", r.berth, "#2b6cb0"))]
            .into_iter()
            .chain([
                r.peer.map(|(n, d)| (n, d, "#a0aec0")),
                r.floor.map(|(n, d)| (n, d, "#68d391")),
            ])
            .flatten()
            .collect();
        let longest = bars
            .iter()
            .map(|b| b.1)
            .max()
            .unwrap_or(Duration::from_millis(1))
            .as_secs_f64()
            .max(1e-9);
        let _ = writeln!(
            body,
            r#"<text x="4" y="{}" font-weight="bold">{}</text>"#,
            y + 12,
            escape(r.what)
        );
        y += 18;
        for (name, d, color) in bars {
            let w = ((d.as_secs_f64() / longest) * f64::from(WIDTH)).round().max(1.0) as u32;
            let _ = writeln!(
                body,
                r#"<text x="12" y="{}">{}</text><rect x="{LEFT}" y="{y}" width="{w}" height="{BAR}" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                y + 12,
                escape(name),
                LEFT + w + 6,
                y + 12,
                secs(d, ms)
            );
            y += BAR + 4;
        }
        y += 10;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">
<text x="4" y="16" font-size="14" font-weight="bold">{} (shorter is faster)</text>
{body}</svg>
"#,
        LEFT + WIDTH + 90,
        y + 4,
        escape(bench)
    )
}

/// Writes `docs/benchmarks.md` (this benchmark's section) and `docs/bench/BENCH.svg` under `root`.
pub fn publish(root: &Path, bench: &str, rows: &[Measured], note: &str) -> Result<()> {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let doc_path = root.join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let updated = replace_section(&doc, bench, &section(bench, rows, note, &date, &machine()));
    std::fs::create_dir_all(root.join("docs/bench"))?;
    std::fs::write(root.join("docs/bench").join(format!("{bench}.svg")), chart(bench, rows))?;
    std::fs::write(&doc_path, updated)?;
    eprintln!("wrote {} and docs/bench/{bench}.svg", doc_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Measured> {
        vec![
            Measured {
                what: "(a) copy",
                berth: Duration::from_millis(1500),
                peer: Some(("buildah bud", Duration::from_secs(6))),
                floor: Some(("tar | igzip", Duration::from_millis(1000))),
                target: "<= 0.5x",
            },
            Measured {
                what: "(c) rebuild",
                berth: Duration::from_millis(50),
                peer: Some(("buildah bud", Duration::from_millis(2500))),
                floor: None,
                target: "<= 0.5x",
            },
        ]
    }

    #[test]
    fn sections_are_replaced_in_place_and_charts_have_a_bar_per_figure() {
        let first = replace_section("", "build", &section("build", &rows(), "note", "2026-12-05", "box"));
        assert!(first.starts_with("# Benchmarks"));
        assert!(
            first.contains("| (a) copy | 1.50 s | buildah bud: 6.00 s | **0.25x** | tar \\| igzip: 1.00 s | 1.50x |")
        );
        let with_copy = replace_section(&first, "copy", &section("copy", &rows(), "n", "2026-12-05", "box"));
        let again = replace_section(
            &with_copy,
            "build",
            &section("build", &rows(), "later", "2026-12-06", "box"),
        );
        assert_eq!(again.matches("<!-- bench:build -->").count(), 1);
        assert!(again.contains("2026-12-06") && !again.contains("2026-12-05, box. note."));
        assert!(
            again.find("<!-- bench:build -->") < again.find("<!-- bench:copy -->"),
            "the order is kept"
        );
        let svg = chart("build", &rows());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 5, "3 bars for (a), 2 for (c)");
        assert!(svg.contains("tar | igzip"));
    }
}
