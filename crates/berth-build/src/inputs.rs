//! What a build reads besides the context's files: the Containerfile, the ignore rules and the build arguments —
//! read inside the context where they come from it (so a symlink cannot lead the build out of it) and capped.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::pattern::IgnoreRules;

type Result<T, E = BuildError> = std::result::Result<T, E>;

fn input(what: String) -> BuildError {
    BuildError::Input { what, source: None }
}

/// Attaches what was being read to an error.
trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| BuildError::Input {
            what: what(),
            source: Some(Box::new(e)),
        })
    }
}

/// Largest Containerfile read (a bigger one is refused, not read into memory).
pub const MAX_CONTAINERFILE: u64 = 16 << 20;
/// Largest ignore file read.
pub const MAX_IGNORE_FILE: u64 = 4 << 20;

/// Reads `rel` inside the context: symlinks and `..` resolve in the context, so a Containerfile or ignore file that
/// is a symlink cannot make the build read a file outside it (buildah CVE-2022-4122). `None` when absent.
pub fn read_in_context(context: &Path, rel: &str, limit: u64) -> Result<Option<String>> {
    if !context.is_dir() {
        let what = if context.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(input(format!(
            "{}: the build context {what}; give the directory holding the Containerfile and the files it copies",
            context.display()
        )));
    }
    let root = berth_sandbox::rootfs::RootFs::open(context, "the build context")
        .ctx(|| format!("{}: cannot open the build context", context.display()))?;
    let Some(bytes) = root
        .read_file(rel, limit)
        .ctx(|| format!("{}: cannot read {rel} in the build context", context.display()))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).ctx(|| format!("{}/{rel}: not UTF-8 text", context.display()))?;
    Ok(Some(text))
}

fn read_capped(path: &Path, limit: u64) -> Result<String> {
    let mut text = String::new();
    let n = std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
        .ctx(|| format!("{}: cannot read it", path.display()))?;
    if n as u64 > limit {
        return Err(input(format!(
            "{}: larger than {limit} bytes; refusing to read it",
            path.display()
        )));
    }
    Ok(text)
}

/// The Containerfile: `file` (`-` for stdin) or, without one, `Containerfile` else `Dockerfile` read inside the
/// context. Returns its name for messages, its text, and its path when it has one.
pub fn containerfile(context: &Path, file: Option<&str>) -> Result<(String, String, Option<PathBuf>)> {
    match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_CONTAINERFILE + 1)
                .read_to_string(&mut text)
                .ctx(|| "reading the Containerfile from stdin".into())?;
            if text.len() as u64 > MAX_CONTAINERFILE {
                return Err(input(format!(
                    "the Containerfile on stdin is larger than {MAX_CONTAINERFILE} bytes"
                )));
            }
            Ok(("<stdin>".into(), text, None))
        }
        Some(path) => {
            let text = read_capped(Path::new(path), MAX_CONTAINERFILE)?;
            Ok((path.to_owned(), text, Some(PathBuf::from(path))))
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                if let Some(text) = read_in_context(context, name, MAX_CONTAINERFILE)? {
                    let p = context.join(name);
                    return Ok((p.display().to_string(), text, Some(p)));
                }
            }
            Err(input(format!(
                "{}: no Containerfile or Dockerfile in the context; give one with -f FILE",
                context.display()
            )))
        }
    }
}

/// The ignore rules: `ignorefile`, else `FILE.dockerignore` beside the Containerfile, else the context's
/// `.containerignore` or `.dockerignore` (read inside the context).
pub fn ignore_rules(context: &Path, ignorefile: Option<&Path>, file: Option<&Path>) -> Result<IgnoreRules> {
    let parse = |text: &str, name: &dyn std::fmt::Display| IgnoreRules::parse(text).ctx(|| format!("{name}"));
    if let Some(p) = ignorefile {
        return parse(&read_capped(p, MAX_IGNORE_FILE)?, &p.display());
    }
    if let Some(f) = file {
        let beside = PathBuf::from(format!("{}.dockerignore", f.display()));
        if beside.exists() {
            return parse(&read_capped(&beside, MAX_IGNORE_FILE)?, &beside.display());
        }
    }
    for name in [".containerignore", ".dockerignore"] {
        if let Some(text) = read_in_context(context, name, MAX_IGNORE_FILE)? {
            return parse(&text, &context.join(name).display());
        }
    }
    Ok(IgnoreRules::default())
}

/// The build arguments: lines of `files` first, then `args` (`NAME=VALUE`, or `NAME` for this environment's value).
pub fn build_args(files: &[PathBuf], args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut add = |entry: &str, origin: &str| -> Result<()> {
        match entry.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                // NAME alone: the value from this environment, when it has one.
                if let Ok(v) = std::env::var(entry) {
                    out.insert(entry.to_owned(), v);
                }
            }
        }
        if entry.is_empty() || entry.starts_with('=') {
            return Err(input(format!("{origin}: {entry:?} is not NAME[=VALUE]")));
        }
        Ok(())
    };
    for f in files {
        let text = std::fs::read_to_string(f).ctx(|| format!("{}: cannot read it", f.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            add(line, &format!("--build-arg-file {}", f.display()))?;
        }
    }
    for a in args {
        add(a, "--build-arg")?;
    }
    Ok(out)
}

/// `NAME=VALUE` of `--build-context`.
/// `NAME=VALUE` of `--build-context`: a directory, `docker-image://REF`, `oci-layout://DIR[:REF]`, or
/// `docker://…`/`oci:…`.
pub fn named_context(text: &str) -> Result<(String, crate::NamedContext)> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(input(format!(
            "--build-context {text}: write NAME=DIR or NAME=docker-image://REF"
        )));
    };
    let context = if let Some(r) = value.strip_prefix("docker-image://") {
        crate::NamedContext::Image(format!("docker://{r}"))
    } else if let Some(p) = value.strip_prefix("oci-layout://") {
        crate::NamedContext::Image(format!("oci:{p}"))
    } else if value.starts_with("docker://") || value.starts_with("oci:") {
        crate::NamedContext::Image(value.to_owned())
    } else {
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(input(format!(
                "--build-context {text}: {value} is not a directory (images are written docker-image://REF)"
            )));
        }
        crate::NamedContext::Dir(dir)
    };
    Ok((name.to_owned(), context))
}
