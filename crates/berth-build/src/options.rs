//! The rules of `berth-build build`'s options (buildah's spelling) that are more than parsing: what each value
//! means and which combinations are refused. The binary only gathers the strings.

use berth_sandbox::NetMode;
use berth_spec::media_type::{Compression, Format};
use berth_spec::platform::Platform;

use crate::error::BuildError;

fn refused(option: String, reason: impl Into<String>) -> BuildError {
    BuildError::Option {
        option,
        reason: reason.into(),
    }
}

/// `--platform`: only this host's platform can be built (the default).
pub fn platform(text: Option<&str>) -> Result<Platform, BuildError> {
    let host = Platform::host();
    if let Some(p) = text {
        let wanted = Platform::parse(p).map_err(|e| refused(format!("--platform {p}"), e.to_string()))?;
        if !wanted.matches(&host) {
            return Err(refused(
                format!("--platform {p}"),
                format!("berth-build builds for this host's platform ({host}) only"),
            ));
        }
    }
    Ok(host)
}

/// `--network`: `host` (also `default`) or `none`.
pub fn network(text: &str) -> Result<NetMode, BuildError> {
    match text {
        "host" | "default" => Ok(NetMode::Host),
        "none" => Ok(NetMode::None),
        other => Err(refused(format!("--network {other}"), "use host or none")),
    }
}

/// `--compress` and `--format`: the layers' compression and the manifest format (Docker schema 2 has no zstd).
pub fn output(compress: &str, format: &str) -> Result<(Compression, Format), BuildError> {
    let compression = match compress {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => return Err(refused(format!("--compress {other}"), "use gzip or zstd")),
    };
    let format = match format {
        "oci" => Format::Oci,
        "docker" if compression == Compression::Zstd => {
            return Err(refused(
                "--format docker --compress zstd".into(),
                "Docker schema 2 has no zstd layers; use gzip or --format oci",
            ));
        }
        "docker" => Format::DockerV2S2,
        other => return Err(refused(format!("--format {other}"), "use oci or docker")),
    };
    Ok((compression, format))
}

/// `--timestamp`, else `SOURCE_DATE_EPOCH` (empty means unset).
pub fn timestamp(given: Option<i64>) -> Result<Option<i64>, BuildError> {
    if given.is_some() {
        return Ok(given);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| refused(format!("SOURCE_DATE_EPOCH={v}"), "not a number")),
        _ => Ok(None),
    }
}

/// `--label`/`--annotation` values: `NAME=VALUE` each.
pub fn name_values(list: &[String], flag: &str) -> Result<Vec<(String, String)>, BuildError> {
    list.iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| refused(format!("--{flag} {l}"), "write NAME=VALUE"))
        })
        .collect()
}
