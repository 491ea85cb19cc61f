//! Checking (`fsck`) and garbage-collecting (`gc`) a layout.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs;

use oci_spec::image::Descriptor;

use super::error::{LayoutError, Result};
use super::{Layout, MAX_INDEX_DEPTH, lock};
use crate::digest::Digest;
use crate::document::{self, DEFAULT_MAX_DOCUMENT_SIZE, Expect, ManifestOrIndex};
use crate::io_context::IoContext;
use crate::media_type::{self, Kind};

/// One thing wrong with a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A referenced blob is absent.
    Missing {
        /// The blob.
        digest: String,
        /// What refers to it.
        referenced_by: String,
    },
    /// A blob's content does not match its name or its descriptor.
    Corrupt {
        /// The blob.
        digest: String,
        /// The mismatch.
        error: String,
    },
    /// A blob that must be a manifest, index or config does not parse as one, or is not a regular file.
    Invalid {
        /// The blob.
        digest: String,
        /// Why.
        error: String,
    },
    /// A file in `blobs/` whose name is not a digest.
    Unexpected {
        /// Its path relative to the layout.
        path: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { digest, referenced_by } => {
                write!(f, "missing: {digest} (referenced by {referenced_by})")
            }
            Problem::Corrupt { digest, error } => write!(f, "corrupt: {digest}: {error}"),
            Problem::Invalid { digest, error } => write!(f, "invalid: {digest}: {error}"),
            Problem::Unexpected { path } => write!(f, "unexpected file: {path}"),
        }
    }
}

/// What `fsck` found.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Blobs reachable from index.json.
    pub reachable: usize,
    /// Problems; empty means the layout is valid.
    pub problems: Vec<Problem>,
    /// Intact blobs nothing refers to (what `gc` would delete).
    pub dangling: Vec<Digest>,
    /// Temp files of writers that are gone (what `clean_temp` would delete).
    pub stale_temp_files: usize,
}

impl FsckReport {
    /// True when nothing is missing, corrupt, invalid or unexpected.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What `gc` did.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Stale temp files deleted.
    pub temp_files_removed: usize,
}

struct Walk {
    reachable: BTreeMap<Digest, u64>,
    problems: Vec<Problem>,
    bytes: u64,
}

impl Layout {
    /// Walks everything reachable from index.json. Documents are always verified and parsed; other blobs are
    /// re-hashed only when `verify_leaves` is set (otherwise only their presence is checked).
    fn walk(&self, verify_leaves: bool) -> Result<Walk> {
        let index = self.index()?;
        let mut w = Walk {
            reachable: BTreeMap::new(),
            problems: Vec::new(),
            bytes: 0,
        };
        let mut queue: VecDeque<(Descriptor, usize, String)> = index
            .parsed()
            .manifests()
            .iter()
            .map(|d| (d.clone(), 0, "index.json".to_owned()))
            .collect();
        while let Some((desc, depth, parent)) = queue.pop_front() {
            let digest = match Digest::from_oci(desc.digest()) {
                Ok(d) => d,
                Err(e) => {
                    w.problems.push(Problem::Invalid {
                        digest: desc.digest().to_string(),
                        error: crate::error_chain(&e),
                    });
                    continue;
                }
            };
            if w.reachable.contains_key(&digest) {
                continue;
            }
            w.reachable.insert(digest.clone(), desc.size());
            let kind = media_type::kind_of(desc.media_type().as_ref());
            let is_doc = matches!(kind, Some(Kind::Manifest | Kind::Index | Kind::Config));
            if !is_doc && !verify_leaves {
                match self.open_blob_file(&digest) {
                    Ok(_) => {}
                    Err(LayoutError::BlobMissing { .. }) if desc.urls().as_ref().is_some_and(|u| !u.is_empty()) => {}
                    Err(e) => w.problems.push(problem_of(&digest, &parent, e)),
                }
                continue;
            }
            if !is_doc {
                match self.verify_blob(&digest, desc.size()) {
                    Ok(()) => w.bytes += desc.size(),
                    // A non-distributable layer with URLs may legitimately be absent.
                    Err(LayoutError::BlobMissing { .. }) if desc.urls().as_ref().is_some_and(|u| !u.is_empty()) => {}
                    Err(e) => w.problems.push(problem_of(&digest, &parent, e)),
                }
                continue;
            }
            let bytes = match self.read_blob_capped(&digest, desc.size(), DEFAULT_MAX_DOCUMENT_SIZE) {
                Ok(b) => b,
                Err(e) => {
                    w.problems.push(problem_of(&digest, &parent, e));
                    continue;
                }
            };
            w.bytes += bytes.len() as u64;
            let source = digest.to_string();
            let mt = desc.media_type().to_string();
            let ex = Expect::from_source(&source).with_descriptor(&digest, Some(&mt));
            let invalid = |e: &dyn fmt::Display| Problem::Invalid {
                digest: digest.to_string(),
                error: e.to_string(),
            };
            if kind == Some(Kind::Config) {
                if let Err(e) = document::parse_config(bytes, ex) {
                    w.problems.push(invalid(&e));
                }
                continue;
            }
            match document::parse_manifest_or_index(bytes, ex) {
                Err(e) => w.problems.push(invalid(&e)),
                Ok(ManifestOrIndex::Index(idx)) => {
                    if depth + 1 > MAX_INDEX_DEPTH && !idx.parsed().manifests().is_empty() {
                        w.problems.push(invalid(&format_args!(
                            "indexes nest deeper than {MAX_INDEX_DEPTH} levels"
                        )));
                        continue;
                    }
                    for child in idx.parsed().manifests() {
                        queue.push_back((child.clone(), depth + 1, digest.to_string()));
                    }
                }
                Ok(ManifestOrIndex::Manifest(m)) => {
                    let children = std::iter::once(m.parsed().config()).chain(m.parsed().layers());
                    for child in children {
                        queue.push_back((child.clone(), depth + 1, digest.to_string()));
                    }
                }
            }
        }
        Ok(w)
    }

    /// Re-hashes every blob; reports missing, corrupt, invalid and unexpected content, and dangling blobs.
    pub fn fsck(&self) -> Result<FsckReport> {
        let walk = self.walk(true)?;
        let mut report = FsckReport {
            reachable: walk.reachable.len(),
            blobs_checked: walk.reachable.len(),
            bytes_checked: walk.bytes,
            problems: walk.problems,
            ..Default::default()
        };
        let reported: BTreeSet<String> = report.problems.iter().filter_map(problem_digest).collect();
        for entry in self.blob_files(&mut report.problems)? {
            let (digest, _) = entry;
            if walk.reachable.contains_key(&digest) || reported.contains(&digest.to_string()) {
                continue;
            }
            match self.hash_blob(&digest) {
                Ok((found, size)) if found == digest => {
                    report.blobs_checked += 1;
                    report.bytes_checked += size;
                    report.dangling.push(digest);
                }
                Ok((found, _)) => report.problems.push(Problem::Corrupt {
                    digest: digest.to_string(),
                    error: format!("content hashes to {found}"),
                }),
                Err(e) => report.problems.push(problem_of(&digest, "blobs/", e)),
            }
        }
        report.stale_temp_files = lock::count_stale_temp(&self.root)?;
        Ok(report)
    }

    /// Lists `blobs/ALG/HEX` files; names that are not digests become `Unexpected` problems.
    fn blob_files(&self, problems: &mut Vec<Problem>) -> Result<Vec<(Digest, std::path::PathBuf)>> {
        let blobs = self.root.join("blobs");
        let mut out = Vec::new();
        let algs = match fs::read_dir(&blobs) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("read directory", &blobs).map_err(Into::into),
        };
        for alg in algs {
            let alg = alg.at("read directory", &blobs)?;
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            if !alg.file_type().at("stat", alg.path())?.is_dir() {
                problems.push(Problem::Unexpected {
                    path: format!("blobs/{alg_name}"),
                });
                continue;
            }
            for f in fs::read_dir(alg.path()).at("read directory", alg.path())? {
                let f = f.at("read directory", alg.path())?;
                let name = f.file_name().to_string_lossy().into_owned();
                match Digest::parse(&format!("{alg_name}:{name}")) {
                    Ok(d) => out.push((d, f.path())),
                    Err(_) => problems.push(Problem::Unexpected {
                        path: format!("blobs/{alg_name}/{name}"),
                    }),
                }
            }
        }
        Ok(out)
    }

    /// Deletes blobs unreachable from index.json, and stale temp files. Waits for writers to finish (they hold
    /// the ingest lock), and refuses to run when the reachable graph is damaged, since it could not tell what a
    /// broken manifest refers to.
    pub fn gc(&self) -> Result<GcReport> {
        lock::ensure_private_dirs(&self.root)?;
        let _exclusive = lock::lock(&self.root.join(".berth/gc.lock"), true)?;
        let walk = self.walk(false)?;
        if let Some(p) = walk.problems.first() {
            return Err(LayoutError::NotALayout {
                path: self.root.clone(),
                reason: format!(
                    "gc refused: the layout is damaged ({p}; {} problem(s) in all); run fsck and delete or re-copy \
                     the broken images first",
                    walk.problems.len()
                ),
            });
        }
        let mut report = GcReport::default();
        let mut ignored = Vec::new();
        let mut dirs = BTreeSet::new();
        for (digest, path) in self.blob_files(&mut ignored)? {
            if walk.reachable.contains_key(&digest) {
                continue;
            }
            let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).at("remove unreachable blob", &path)?;
            report.bytes_freed += size;
            report.removed.push(digest);
            dirs.insert(path.parent().expect("blob has a parent").to_owned());
        }
        for d in dirs {
            lock::fsync_dir(&d)?;
        }
        report.temp_files_removed = self.clean_temp()?;
        Ok(report)
    }
}

fn problem_digest(p: &Problem) -> Option<String> {
    match p {
        Problem::Missing { digest, .. } | Problem::Corrupt { digest, .. } | Problem::Invalid { digest, .. } => {
            Some(digest.clone())
        }
        Problem::Unexpected { .. } => None,
    }
}

fn problem_of(digest: &Digest, parent: &str, e: LayoutError) -> Problem {
    match e {
        LayoutError::BlobMissing { .. } => Problem::Missing {
            digest: digest.to_string(),
            referenced_by: parent.to_owned(),
        },
        LayoutError::Corrupt { error, .. } => Problem::Corrupt {
            digest: digest.to_string(),
            error: error.to_string(),
        },
        other => Problem::Invalid {
            digest: digest.to_string(),
            error: other.to_string(),
        },
    }
}
