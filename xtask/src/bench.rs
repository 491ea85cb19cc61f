//! `cargo xtask bench [NAME]`: side-by-side benchmarks.
//!
//! Every benchmark measures Berth and its peer in the same run, on the same input, and prints the ratio between
//! them, so a number never stands alone against a figure from another day or machine. Benchmarks register by name
//! in [`BENCHES`]; each tool's change adds its own (`layer`, `copy`, `run`).
//!
//! `floors` (the default) measures this machine's physical floors — sha256, gzip and zstd throughput through the
//! standard CLIs and in-process through the crates Berth uses — next to Berth's own hashing throughput.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sha2::Digest as _;

/// A named benchmark.
struct Bench {
    name: &'static str,
    about: &'static str,
    run: fn(&Options) -> anyhow::Result<()>,
}

/// The registry; the first entry is the default.
const BENCHES: &[Bench] = &[
    Bench {
        name: "floors",
        about: "this machine's sha256/gzip/zstd throughput (CLI and in-process) next to Berth's hashing",
        run: floors,
    },
    Bench {
        name: "copy",
        about: "berth-copy vs skopeo copy: push, cold push of one large layer, mount, re-push, pull, layout and \
                archive copies, with curl/cp floors (--only cold-push: that workload alone)",
        run: copy,
    },
    Bench {
        name: "run",
        about: "berth-run warm start and first run vs runc run and ctr run (containerd started by the bench)",
        run: run_bench,
    },
    Bench {
        name: "runtime",
        about: "berth-runtime vs runc: create+start+delete of /bin/true, and ctr run --rm with each, with an \
                unshare+chroot floor",
        run: runtime_bench,
    },
    Bench {
        name: "build",
        about: "berth-build vs buildah bud --layers: COPY-heavy, RUN-heavy multi-stage, no-op and one-file rebuilds",
        run: build_bench,
    },
    Bench {
        name: "layer",
        about: "layer creation and extraction vs umoci repack/unpack, with pigz/gzip/zstd as the floor",
        run: layer,
    },
];

/// The benchmarks' names, the default first.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BENCHES.iter().map(|b| b.name)
}

fn copy(options: &Options) -> anyhow::Result<()> {
    crate::bench_copy::run(
        options.json,
        if options.mib == 256 { 500 } else { options.mib },
        options.only.as_deref(),
    )
}

fn run_bench(options: &Options) -> anyhow::Result<()> {
    ensure!(
        options.only.is_none(),
        "bench run: --only applies to the copy benchmark"
    );
    crate::bench_run::run(options.json)
}

fn runtime_bench(options: &Options) -> anyhow::Result<()> {
    ensure!(
        options.only.is_none(),
        "bench runtime: --only applies to the copy benchmark"
    );
    crate::bench_runtime::run(options.json)
}

fn build_bench(options: &Options) -> anyhow::Result<()> {
    ensure!(
        options.only.is_none(),
        "bench build: --only applies to the copy benchmark"
    );
    crate::bench_build::run(options.json)
}

fn layer(options: &Options) -> anyhow::Result<()> {
    ensure!(
        options.only.is_none(),
        "bench layer: --only applies to the copy benchmark"
    );
    crate::bench_layer::run(options.json)
}

#[derive(Debug)]
struct Options {
    /// JSON on stdout; the human table goes to stderr.
    json: bool,
    /// Input size in MiB.
    mib: u64,
    /// One workload of the copy benchmark instead of all (`cargo xtask bench copy --only cold-push`).
    only: Option<String>,
}

/// Repetitions per measurement; the best (fastest) counts.
const RUNS: usize = 3;
/// Read size for in-process streaming.
const CHUNK: usize = 1 << 20;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut options = Options {
        json: false,
        mib: 256,
        only: None,
    };
    let mut name = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--mib" => {
                let value = args.next().context("--mib needs a number of MiB")?;
                options.mib = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("--mib wants a positive whole number of MiB, not `{value}`"))?;
            }
            "--only" => {
                let value = args.next().context("--only needs a workload name (copy: cold-push)")?;
                options.only = Some(value.clone());
            }
            "-h" | "--help" => {
                println!("usage: cargo xtask bench [NAME] [--json] [--mib N] [--only WORKLOAD]\n\nbenchmarks:");
                for bench in BENCHES {
                    println!("  {:<10} {}", bench.name, bench.about);
                }
                return Ok(());
            }
            flag if flag.starts_with('-') => bail!("bench: unknown option `{flag}` (see `cargo xtask bench --help`)"),
            other if name.is_none() => name = Some(other),
            other => bail!("bench: one benchmark at a time; `{other}` is extra"),
        }
    }
    let bench = match name {
        None => &BENCHES[0],
        Some(name) => BENCHES.iter().find(|b| b.name == name).with_context(|| {
            let known: Vec<&str> = names().collect();
            format!("bench: no benchmark named `{name}`; known: {}", known.join(", "))
        })?,
    };
    (bench.run)(&options)
}

/// One line of the result table.
#[derive(Debug)]
struct Row {
    workload: &'static str,
    implementation: String,
    /// `None` when the implementation is not available here (a CLI that is not installed).
    mb_per_s: Option<f64>,
    /// What the ratio compares against: (name, its MB/s).
    baseline: Option<(String, Option<f64>)>,
}

impl Row {
    /// This row's MB/s over its baseline's: above 1 means faster than the baseline.
    fn ratio(&self) -> Option<f64> {
        let (_, baseline) = self.baseline.as_ref()?;
        Some(self.mb_per_s? / (*baseline)?)
    }
}

fn floors(options: &Options) -> anyhow::Result<()> {
    let bytes = options.mib * 1024 * 1024;
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let plain = dir.path().join("input");
    let gz = dir.path().join("input.gz");
    let zst = dir.path().join("input.zst");

    eprintln!(
        "bench floors: writing {} MiB of input to {}",
        options.mib,
        dir.path().display()
    );
    write_input(&plain, bytes).with_context(|| format!("writing {}", plain.display()))?;
    let gz_size = compress_to(&plain, &gz, |mut input, output| {
        let mut encoder = flate2::write::GzEncoder::new(output, gzip_level());
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()
    })?;
    let zst_size = compress_to(&plain, &zst, |mut input, output| {
        let mut encoder = zstd::Encoder::new(output, 3)?;
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()
    })?;

    let mut rows = Vec::new();
    // Each workload: the CLI, then the in-process implementation with the CLI as its baseline.
    let mut pair = |cli: Row, in_process: Row| {
        let baseline = (cli.implementation.clone(), cli.mb_per_s);
        rows.push(cli);
        rows.push(Row {
            baseline: Some(baseline),
            ..in_process
        });
    };

    let mut digests = Vec::new();
    pair(
        cli_row("sha256", "sha256sum", &["sha256sum"], &plain, bytes)?,
        lib_row("sha256", "sha2 crate", bytes, || {
            let mut hasher = sha2::Sha256::new();
            stream(&plain, |chunk| {
                hasher.update(chunk);
                Ok(())
            })?;
            digests.push(hex(&hasher.finalize()));
            Ok(())
        })?,
    );
    pair(
        cli_row("gzip -6 compress", "gzip CLI", &["gzip", "-6", "-c"], &plain, bytes)?,
        lib_row("gzip -6 compress", "flate2 (zlib-rs)", bytes, || {
            let mut encoder = flate2::write::GzEncoder::new(io::sink(), gzip_level());
            stream(&plain, |chunk| encoder.write_all(chunk))?;
            encoder.finish()?;
            Ok(())
        })?,
    );
    pair(
        cli_row("gzip decompress", "gzip CLI", &["gzip", "-d", "-c"], &gz, bytes)?,
        lib_row("gzip decompress", "flate2 (zlib-rs)", bytes, || {
            drain_exact(flate2::read::GzDecoder::new(File::open(&gz)?), bytes)
        })?,
    );
    let libzstd = format!("zstd crate (libzstd {})", zstd::zstd_safe::version_string());
    pair(
        cli_row(
            "zstd -3 compress",
            "zstd CLI",
            &["zstd", "-3", "-T1", "-q", "-c"],
            &plain,
            bytes,
        )?,
        lib_row("zstd -3 compress", &libzstd, bytes, || {
            let mut encoder = zstd::Encoder::new(io::sink(), 3)?;
            stream(&plain, |chunk| encoder.write_all(chunk))?;
            encoder.finish()?;
            Ok(())
        })?,
    );
    pair(
        cli_row("zstd decompress", "zstd CLI", &["zstd", "-d", "-q", "-c"], &zst, bytes)?,
        lib_row("zstd decompress", &libzstd, bytes, || {
            drain_exact(zstd::Decoder::new(File::open(&zst)?)?, bytes)
        })?,
    );

    // The sha256 floor is the faster of the two sha256 rows above.
    let floor = rows[..2]
        .iter()
        .filter_map(|r| Some((r.mb_per_s?, r.implementation.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .context("neither sha256 implementation ran")?;
    let mut berth = lib_row("berth hashing", "berth_spec::Hasher sha256", bytes, || {
        let mut hasher = berth_spec::Hasher::new(berth_spec::Algorithm::Sha256);
        stream(&plain, |chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        digests.push(hasher.finish().hex().to_owned());
        Ok(())
    })?;
    berth.baseline = Some((format!("sha256 floor ({})", floor.1), Some(floor.0)));
    rows.push(berth);
    ensure!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "sha2 and berth_spec::Hasher disagree on the input's digest"
    );

    let machine = Machine::probe();
    let header = format!(
        "bench floors: this machine's physical floors, and Berth's own hashing\n\
         cpu:    {} ({} logical CPUs, {} available to this process)\n\
         input:  {} MiB, deterministic text mixed with random bytes; gzip -6 -> {:.1} MB ({:.2}x), zstd -3 -> {:.1} MB ({:.2}x)\n\
         method: best of {RUNS}, single-threaded, input in the page cache, output discarded; MB/s = 10^6 input bytes per second\n\
         tools:  {}\n\
         build:  xtask {} build (third-party crates at opt-level 2)\n",
        machine.cpu,
        machine.logical_cpus,
        machine.available,
        options.mib,
        gz_size as f64 / 1e6,
        bytes as f64 / gz_size as f64,
        zst_size as f64 / 1e6,
        bytes as f64 / zst_size as f64,
        machine.tools.join("; "),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
    let table = format!("{header}\n{}", render_table(&rows));
    if options.json {
        eprint!("{table}");
        print!("{}", render_json(options, &machine, gz_size, zst_size, &rows));
    } else {
        print!("{table}");
    }
    Ok(())
}

fn gzip_level() -> flate2::Compression {
    flate2::Compression::new(6)
}

/// Times `argv` with `input` on stdin and stdout discarded; `None` MB/s if the program is not installed.
fn cli_row(workload: &'static str, name: &str, argv: &[&str], input: &Path, bytes: u64) -> anyhow::Result<Row> {
    let available = Command::new(argv[0])
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let mb_per_s = if available {
        Some(measure(workload, name, bytes, || {
            let status = Command::new(argv[0])
                .args(&argv[1..])
                .stdin(File::open(input)?)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("running `{}`", argv.join(" ")))?;
            ensure!(status.success(), "`{}` failed ({status})", argv.join(" "));
            Ok(())
        })?)
    } else {
        eprintln!("  {workload:<18} {name:<32}      n/a (`{}` not installed)", argv[0]);
        None
    };
    Ok(Row {
        workload,
        implementation: name.to_owned(),
        mb_per_s,
        baseline: None,
    })
}

fn lib_row(
    workload: &'static str,
    name: &str,
    bytes: u64,
    f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let mb_per_s = measure(workload, name, bytes, f)?;
    Ok(Row {
        workload,
        implementation: name.to_owned(),
        mb_per_s: Some(mb_per_s),
        baseline: None,
    })
}

/// Best of [`RUNS`], as MB/s of `bytes`; prints progress to stderr.
fn measure(workload: &str, name: &str, bytes: u64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        f().with_context(|| format!("{workload}: {name}"))?;
        best = best.min(started.elapsed());
    }
    let mb_per_s = bytes as f64 / 1e6 / best.as_secs_f64();
    eprintln!("  {workload:<18} {name:<32} {mb_per_s:8.1} MB/s");
    Ok(mb_per_s)
}

/// Feeds the file to `f` in [`CHUNK`]-sized reads.
fn stream(path: &Path, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0; CHUNK];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(()),
            n => f(&buf[..n])?,
        }
    }
}

/// Reads a decoder to its end and checks it produced exactly `bytes`.
fn drain_exact(mut reader: impl Read, bytes: u64) -> anyhow::Result<()> {
    let mut buf = vec![0; CHUNK];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    ensure!(total == bytes, "decompressed {total} bytes, expected {bytes}");
    Ok(())
}

/// Compresses `from` into `to` once (the input of the decompression rows); returns the compressed size.
fn compress_to(from: &Path, to: &Path, compress: impl FnOnce(File, File) -> io::Result<()>) -> anyhow::Result<u64> {
    compress(File::open(from)?, File::create(to)?).with_context(|| format!("compressing into {}", to.display()))?;
    Ok(std::fs::metadata(to)?.len())
}

/// Writes `bytes` of deterministic, compressible-but-not-trivial data: lines of words from a small vocabulary
/// (paths, code, JSON) with one in sixteen lines replaced by a run of random bytes, as in a typical layer.
fn write_input(path: &Path, bytes: u64) -> io::Result<()> {
    const WORDS: &[&[u8]] = &[
        b"usr/",
        b"lib/",
        b"bin/",
        b"share/",
        b"etc/",
        b"x86_64-linux-gnu/",
        b"libc.so.6",
        b"python3/",
        b"doc/",
        b"#include <stdio.h>",
        b"static int ",
        b"return 0;",
        b"if (err) ",
        b"{",
        b"}",
        b"fn ",
        b"let mut ",
        b"self.",
        b"\"mediaType\": ",
        b"\"application/vnd.oci.image.layer.v1.tar+gzip\"",
        b"\"size\": ",
        b"\"digest\": ",
        b"\"sha256:",
        b"0644 ",
        b"0755 ",
        b"root ",
        b"the ",
        b"of ",
        b"and ",
        b"config",
        b"layer",
        b"manifest",
        b", ",
        b" ",
        b" ",
        b"  ",
        b"=",
        b"; ",
        b"(",
        b")",
    ];
    let mut rng = SplitMix64(0x5eed_b127);
    let mut out = BufWriter::with_capacity(CHUNK, File::create(path)?);
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let mut left = bytes;
    while left > 0 {
        while buf.len() < CHUNK {
            let r = rng.next();
            if r.is_multiple_of(16) {
                for _ in 0..4 + (r >> 8) % 28 {
                    buf.extend_from_slice(&rng.next().to_le_bytes());
                }
            } else {
                for _ in 0..4 + (r >> 8) % 12 {
                    buf.extend_from_slice(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
                }
                buf.extend_from_slice(format!(" {}\n", (r >> 32) % 100_000).as_bytes());
            }
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        out.write_all(&buf[..n])?;
        left -= n as u64;
        buf.clear();
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()
}

/// A small deterministic generator (SplitMix64); the input must be the same on every run and machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What the numbers were measured on.
#[derive(Debug)]
struct Machine {
    cpu: String,
    logical_cpus: usize,
    available: usize,
    tools: Vec<String>,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let cpu = field("model name")
            .or_else(|| field("Hardware"))
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let logical_cpus = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
            .count();
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        let tools = ["sha256sum", "gzip", "zstd"]
            .iter()
            .map(|tool| {
                let output = Command::new(tool)
                    .arg("--version")
                    .output()
                    .ok()
                    .filter(|o| o.status.success());
                let first = output.and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned));
                first.map_or_else(
                    || format!("{tool} not installed"),
                    |l| l.trim_matches(['*', ' ']).to_owned(),
                )
            })
            .collect();
        Machine {
            cpu,
            logical_cpus,
            available,
            tools,
        }
    }
}

fn render_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<32} {:>9}  {:>7}  ratio = this MB/s / baseline MB/s (higher is better)",
        "workload", "implementation", "MB/s", "ratio"
    );
    for row in rows {
        let mb_per_s = row.mb_per_s.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
        let (ratio, baseline) = match &row.baseline {
            None => (String::new(), String::new()),
            Some((name, _)) => (
                row.ratio().map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x")),
                format!("vs {name}"),
            ),
        };
        let line = format!(
            "{:<18} {:<32} {mb_per_s:>9}  {ratio:>7}  {baseline}",
            row.workload, row.implementation
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render_json(options: &Options, machine: &Machine, gz_size: u64, zst_size: u64, rows: &[Row]) -> String {
    let number = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"));
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\n  \"bench\": \"floors\",\n  \"cpu\": {},\n  \"logical_cpus\": {},\n  \"available_cpus\": {},\n  \
         \"tools\": [{}],\n  \"input_bytes\": {},\n  \"gzip_bytes\": {gz_size},\n  \"zstd_bytes\": {zst_size},\n  \
         \"runs\": {RUNS},\n  \"unit\": \"MB/s (10^6 input bytes per second, best of runs)\",\n  \
         \"ratio\": \"mb_per_s / baseline's mb_per_s; higher is better\",\n  \"results\": [\n",
        json_string(&machine.cpu),
        machine.logical_cpus,
        machine.available,
        machine
            .tools
            .iter()
            .map(|t| json_string(t))
            .collect::<Vec<_>>()
            .join(", "),
        options.mib * 1024 * 1024,
    );
    for (i, row) in rows.iter().enumerate() {
        let baseline = row
            .baseline
            .as_ref()
            .map_or_else(|| "null".to_owned(), |(name, _)| json_string(name));
        let _ = writeln!(
            out,
            "    {{\"workload\": {}, \"implementation\": {}, \"mb_per_s\": {}, \"baseline\": {baseline}, \"ratio\": {}}}{}",
            json_string(row.workload),
            json_string(&row.implementation),
            number(row.mb_per_s),
            number(row.ratio()),
            if i + 1 < rows.len() { "," } else { "" },
        );
    }
    out.push_str("  ]\n}\n");
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
