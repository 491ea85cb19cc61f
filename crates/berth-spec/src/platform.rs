//! Platforms (`os/arch[/variant]`) and choosing a manifest from an index.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

/// A normalized platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`, …
    pub architecture: String,
    /// `v6`, `v7`, `v8`, … (`None` means "any" when matching).
    pub variant: Option<String>,
}

/// Why a platform was refused or could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], for example linux/amd64 or linux/arm/v7")]
    Invalid(String),
    /// The index has no manifest for the platform.
    #[error("{source_name}: no manifest for platform {wanted}; the index offers: {available}")]
    NoMatch {
        /// The image.
        source_name: String,
        /// The platform asked for.
        wanted: String,
        /// What the index has.
        available: String,
    },
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase).filter(|v| !v.is_empty());
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "i386" | "i486" | "i586" | "i686" | "386" => ("386".into(), None),
        "aarch64" | "arm64" => ("arm64".into(), variant.filter(|v| v != "v8" && v != "8")),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = variant.map(|v| if v.starts_with('v') { v } else { format!("v{v}") });
            ("arm".into(), Some(v.unwrap_or_else(|| "v7".into())))
        }
        _ => (arch, variant),
    }
}

impl Platform {
    /// Builds a normalized platform (aliases like `x86_64`/`aarch64` are mapped to their GOARCH names, and
    /// default variants — arm64's `v8`, amd64's `v1` — are dropped).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform this process runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" => "ppc64le",
            a => a,
        };
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform::new(os, arch, Some(v))),
            _ => Err(PlatformError::Invalid(s.to_owned())),
        }
    }

    /// The platform of an index entry, if it has one.
    pub fn of_descriptor(d: &Descriptor) -> Option<Self> {
        let p = d.platform().as_ref()?;
        Some(Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        ))
    }

    /// How well `candidate` serves a request for `self`: `None` when it cannot, higher is better.
    fn score(&self, candidate: &Platform) -> Option<u8> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        match (&self.variant, &candidate.variant) {
            (Some(w), Some(c)) if w == c => Some(3),
            (Some(_), Some(_)) => None,
            (Some(_), None) => Some(1),
            (None, None) => Some(3),
            // No variant asked: prefer the entry that matches what the architecture defaults to.
            (None, Some(_)) => Some(2),
        }
    }

    /// True when an image built for `candidate` serves a request for `self`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.score(candidate).is_some()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// Chooses the manifest of `index` that best serves `wanted`; the first of equally good entries wins, as in
/// containerd and containers/image.
pub fn select<'i>(index: &'i ImageIndex, wanted: &Platform, source: &str) -> Result<&'i Descriptor, PlatformError> {
    let mut best: Option<(u8, &Descriptor)> = None;
    for d in index.manifests() {
        let Some(p) = Platform::of_descriptor(d) else { continue };
        if let Some(s) = wanted.score(&p)
            && best.is_none_or(|(b, _)| s > b)
        {
            best = Some((s, d));
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(Platform::of_descriptor)
            .map(|p| p.to_string())
            .collect();
        PlatformError::NoMatch {
            source_name: source.to_owned(),
            wanted: wanted.to_string(),
            available: if available.is_empty() {
                "no platform-tagged manifests".into()
            } else {
                available.join(", ")
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, v))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = v {
                    p["variant"] = (*v).into();
                }
                serde_json::json!({
                    "mediaType": crate::media_type::OCI_MANIFEST,
                    "digest": format!("sha256:{}", format!("{i:x}").repeat(64)[..64].to_owned()),
                    "size": 100 + i,
                    "platform": p,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
    }

    #[test]
    fn parse_and_normalize() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap(),
            Platform::new("linux", "x86_64", None)
        );
        assert_eq!(Platform::parse("linux/arm64/v8").unwrap().to_string(), "linux/arm64");
        assert_eq!(Platform::parse("linux/arm").unwrap().to_string(), "linux/arm/v7");
        assert_eq!(Platform::parse("linux/arm/6").unwrap().to_string(), "linux/arm/v6");
        assert_eq!(Platform::parse("linux/aarch64").unwrap().architecture, "arm64");
        for bad in ["", "linux", "linux/", "/amd64", "linux/amd64/v2/x", "linux/../x"] {
            assert_eq!(Platform::parse(bad), Err(PlatformError::Invalid(bad.into())), "{bad}");
        }
    }

    #[test]
    fn host_is_linux_and_known_arch() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(h.architecture, "amd64");
    }

    #[test]
    fn selects_by_os_arch_variant() {
        let idx = index(&[
            ("linux", "arm", Some("v6")),
            ("linux", "amd64", None),
            ("linux", "arm", Some("v7")),
        ]);
        let d = select(&idx, &Platform::parse("linux/amd64").unwrap(), "i").unwrap();
        assert_eq!(d.size(), 101);
        let d = select(&idx, &Platform::parse("linux/arm/v7").unwrap(), "i").unwrap();
        assert_eq!(d.size(), 102);
        let d = select(&idx, &Platform::parse("linux/arm/v6").unwrap(), "i").unwrap();
        assert_eq!(d.size(), 100);
    }

    #[test]
    fn arm64_v8_matches_entry_without_variant() {
        let idx = index(&[("linux", "arm64", None)]);
        assert!(select(&idx, &Platform::parse("linux/arm64/v8").unwrap(), "i").is_ok());
        let idx = index(&[("linux", "arm64", Some("v8"))]);
        assert!(select(&idx, &Platform::parse("linux/arm64").unwrap(), "i").is_ok());
    }

    #[test]
    fn no_match_names_what_is_offered() {
        let idx = index(&[
            ("linux", "arm64", None),
            ("windows", "amd64", None),
            ("unknown", "unknown", None),
        ]);
        let e = select(&idx, &Platform::parse("linux/amd64").unwrap(), "docker://x/y:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "docker://x/y:1: no manifest for platform linux/amd64; the index offers: linux/arm64, windows/amd64, \
             unknown/unknown"
        );
    }
}
