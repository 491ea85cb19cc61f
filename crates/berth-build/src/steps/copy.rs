//! `COPY` and `ADD` of local files: sources from the build context (or another stage's root filesystem),
//! written into the step's root filesystem without a container.
//!
//! Docker's rules: a directory source copies its contents; several sources (or a glob matching several) need a
//! destination ending in `/`; a relative destination is under the working directory; missing destination
//! directories are created; without `--chown` files from the context are owned by 0:0 (from another stage they keep
//! their owners); `--chmod` sets the mode of everything copied. Sources are resolved inside their root (a symlink
//! or `..` never leads out of the context), and symlinks inside a copied directory are copied as symlinks.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_sandbox::rootfs::RootFs;
use berth_sandbox::tree_copy;
use rustix::fs::{AtFlags, Gid, OFlags, Uid};

use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::pattern::{self, IgnoreRules};

/// Where sources are read from.
#[derive(Debug, Clone, Copy)]
pub enum SourceRoot<'a> {
    /// The build context, with its ignore rules.
    Context {
        /// The context directory.
        root: &'a Path,
        /// `.dockerignore` / `.containerignore`.
        ignore: &'a IgnoreRules,
    },
    /// Another stage's (or image's) root filesystem.
    Rootfs(&'a Path),
}

/// One COPY or ADD of local files.
#[derive(Debug, Clone)]
pub struct CopyRequest<'a> {
    /// The sources, expanded (heredocs as `<<NAME`).
    pub sources: Vec<String>,
    /// The destination, expanded.
    pub dest: String,
    /// The stage's working directory.
    pub workdir: String,
    /// Where sources come from.
    pub from: SourceRoot<'a>,
    /// `--chown`, resolved to ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// Heredoc bodies by name (already expanded when their delimiter was not quoted).
    pub heredocs: Vec<(String, String)>,
    /// `--parents`: each source keeps its path (from the context root) under the destination.
    pub parents: bool,
    /// `ADD`: local tar archives (plain, gzip or zstd, recognised by their content) are extracted into the
    /// destination directory instead of copied.
    pub extract_archives: bool,
    /// When given, regular files from the build context are copied as empty placeholders and listed here: their
    /// content is read from the context when the layer is written (see [`Deferred`]).
    pub defer: Option<&'a std::sync::Mutex<Vec<Deferred>>>,
}

/// A file copied as an empty placeholder.
#[derive(Debug, Clone)]
pub struct Deferred {
    /// The placeholder, by its path under the step's root filesystem as mounted.
    pub copy: PathBuf,
    /// The placeholder's inode number as the mount shows it.
    pub ino: u64,
    /// The file it stands for.
    pub source: berth_layer::create::Elsewhere,
}

/// Why a COPY cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source that does not exist (or is excluded).
    #[error("{source_path}: {reason}")]
    Source {
        /// The source as written.
        source_path: String,
        /// Why.
        reason: String,
    },
    /// The destination cannot take the sources.
    #[error("{0}")]
    Destination(String),
}

/// One source found: its host path, and the name it gets when copied into a directory.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    /// The path as matched (before symlinks were resolved), relative to the source root.
    given: String,
    /// Path relative to the context, for ignore rules inside directories.
    rel: String,
    name: String,
    is_dir: bool,
}

fn fail(source: &str, reason: impl Into<String>) -> BuildError {
    BuildError::Work {
        what: "copy",
        source: Box::new(CopyError::Source {
            source_path: source.to_owned(),
            reason: reason.into(),
        }),
    }
}

/// Finds the sources of `req` (globs expanded, symlinks resolved inside their root).
fn find_sources(req: &CopyRequest<'_>) -> Result<Vec<Found>, BuildError> {
    let root = match req.from {
        SourceRoot::Context { root, .. } | SourceRoot::Rootfs(root) => root,
    };
    let ignore = match req.from {
        SourceRoot::Context { ignore, .. } => Some(ignore),
        SourceRoot::Rootfs(_) => None,
    };
    let fs = RootFs::open(root, "the build context").map_err(|e| BuildError::Work {
        what: "open the copy source",
        source: Box::new(e),
    })?;
    let mut found = Vec::new();
    for src in &req.sources {
        let rel = pattern::clean(src);
        if rel == ".." || rel.starts_with("../") {
            return Err(fail(src, "is outside the build context; sources are paths inside it"));
        }
        let candidates: Vec<String> = if pattern::is_pattern(&rel) {
            let mut all = Vec::new();
            walk_names(root, "", &mut all);
            let matched: Vec<String> = all
                .into_iter()
                .filter(|p| pattern::matches(&rel, p).unwrap_or(false))
                .collect();
            if let Err(e) = pattern::matches(&rel, "") {
                return Err(fail(src, e.to_string()));
            }
            matched
        } else {
            vec![rel.clone()]
        };
        let mut any = false;
        for cand in candidates {
            // An excluded directory is still walked when an exception may re-include something in it.
            let keep_walking = |i: &IgnoreRules| root.join(&cand).is_dir() && i.may_include_below(&cand);
            if ignore.is_some_and(|i| !cand.is_empty() && i.excluded(&cand) && !keep_walking(i)) {
                continue;
            }
            // Resolved inside the root: a symlink or `..` cannot lead out of it.
            let resolved = match fs.resolve(&format!("/{cand}")) {
                Ok(r) => r,
                Err(_) => continue,
            };
            let path = root.join(resolved.trim_start_matches('/'));
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let name = cand.rsplit('/').next().unwrap_or_default().to_owned();
            found.push(Found {
                path,
                given: cand.clone(),
                rel: resolved.trim_start_matches('/').to_owned(),
                name,
                is_dir: meta.is_dir(),
            });
            any = true;
        }
        if !any {
            let why = if ignore.is_some_and(|i| i.excluded(&rel)) {
                "is excluded by .dockerignore (or .containerignore)"
            } else {
                "no such file or directory in the build context"
            };
            return Err(fail(src, why));
        }
    }
    Ok(found)
}

/// Every path below `dir` (relative, `/`-separated), for glob matching.
fn walk_names(root: &Path, rel: &str, out: &mut Vec<String>) {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let p = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let is_dir = std::fs::symlink_metadata(root.join(&p)).is_ok_and(|m| m.is_dir());
        out.push(p.clone());
        if is_dir {
            walk_names(root, &p, out);
        }
    }
}

/// Copies per `req` into the mounted root filesystem `rootfs`, straight from the sources (one pass: no staging
/// copy). `scratch` is an empty directory for heredoc bodies and decompressed archives.
pub fn copy(req: &CopyRequest<'_>, rootfs: &Path, scratch: &Path) -> Result<(), BuildError> {
    let heredoc_names: Vec<&str> = req.sources.iter().filter_map(|s| s.strip_prefix("<<")).collect();
    let file_sources: Vec<String> = req.sources.iter().filter(|s| !s.starts_with("<<")).cloned().collect();
    let mut found = find_sources(&CopyRequest {
        sources: file_sources,
        ..req.clone()
    })?;
    let mut archives = Vec::new();
    if req.extract_archives {
        let mut rest = Vec::new();
        for f in found {
            if !f.is_dir && is_archive(&f.path)? {
                archives.push(f);
            } else {
                rest.push(f);
            }
        }
        found = rest;
    }
    let count = found.len() + heredoc_names.len() + archives.len();
    let dest_abs = if req.dest.starts_with('/') {
        req.dest.clone()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest)
    };
    let dest_clean = format!("/{}", pattern::clean(&dest_abs));
    let fs = RootFs::open(rootfs, "the build stage").map_err(|e| BuildError::Work {
        what: "open the stage's root filesystem",
        source: Box::new(e),
    })?;
    let dest_is_existing_dir = matches!(fs.open_dir(&dest_clean), Ok(Some(_)));
    let explicit_dir = req.dest.ends_with('/') || req.dest == "." || req.dest.ends_with("/.");
    if count > 1 && !explicit_dir && !dest_is_existing_dir {
        return Err(BuildError::Work {
            what: "copy",
            source: Box::new(CopyError::Destination(format!(
                "{} sources need a destination directory ending with '/': write {}/",
                count, req.dest
            ))),
        });
    }
    let into_dir = explicit_dir
        || dest_is_existing_dir
        || count > 1
        || found.iter().any(|f| f.is_dir)
        || !archives.is_empty()
        || req.parents;
    let (target, file_name) = if into_dir || dest_clean == "/" {
        (dest_clean.clone(), None)
    } else {
        let (parent, name) = dest_clean.rsplit_once('/').expect("an absolute path");
        (
            if parent.is_empty() {
                "/".to_owned()
            } else {
                parent.to_owned()
            },
            Some(name.to_owned()),
        )
    };

    let existed = matches!(fs.open_dir(&target), Ok(Some(_)));
    let open_dest = |dir: &str| -> Result<OwnedFd, BuildError> {
        fs.ensure_dir(dir).map_err(|e| BuildError::Work {
            what: "create the destination directory",
            source: Box::new(e),
        })?;
        fs.open_in_root(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
            .at("open", rootfs.join(dir.trim_start_matches('/')))
            .map_err(Into::into)
    };
    let dst = open_dest(&target)?;
    if !existed && let Some((uid, gid)) = req.chown {
        rustix::fs::fchown(&dst, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .at("chown", rootfs.join(target.trim_start_matches('/')))?;
    }
    let rules = Rules {
        req,
        ignore: match req.from {
            SourceRoot::Context { ignore, .. } => Some(ignore),
            SourceRoot::Rootfs(_) => None,
        },
    };
    let copy_failed = |e: berth_sandbox::SandboxError| BuildError::Work {
        what: "copy into the stage's root filesystem",
        source: Box::new(e),
    };
    for f in &found {
        if req.parents || f.is_dir {
            // A directory's contents go into the destination (under its own path with --parents), whose metadata
            // stays as it is.
            let into = if req.parents && !f.is_dir {
                match f.given.rsplit_once('/') {
                    Some((parent, _)) => format!("{}/{parent}", target.trim_end_matches('/')),
                    None => target.clone(),
                }
            } else if req.parents {
                format!("{}/{}", target.trim_end_matches('/'), f.given)
            } else {
                target.clone()
            };
            let into_fd = if into == target { None } else { Some(open_dest(&into)?) };
            let into_fd = into_fd.as_ref().unwrap_or(&dst);
            if f.is_dir {
                let src = open_dir(&f.path)?;
                tree_copy::copy_dir_contents(src.as_fd(), into_fd.as_fd(), root_of(req), Path::new(&f.rel), &rules)
                    .map_err(copy_failed)?;
            } else {
                let (src_parent, src_name) = split_source(&f.path)?;
                tree_copy::copy_entry(
                    src_parent.as_fd(),
                    &src_name,
                    into_fd.as_fd(),
                    &src_name,
                    root_of(req),
                    Path::new(&f.rel),
                    &rules,
                )
                .map_err(copy_failed)?;
            }
        } else {
            // A file in its parent directory, copied by name.
            let (src_parent, src_name) = split_source(&f.path)?;
            let name = file_name.clone().unwrap_or_else(|| f.name.clone());
            let dst_name = c_name(&name)?;
            tree_copy::copy_entry(
                src_parent.as_fd(),
                &src_name,
                dst.as_fd(),
                &dst_name,
                root_of(req),
                Path::new(&f.rel),
                &rules,
            )
            .map_err(copy_failed)?;
        }
    }
    if !heredoc_names.is_empty() {
        // Written to the scratch directory with their mode and owner, then copied like files.
        std::fs::create_dir_all(scratch).at("create", scratch)?;
        let scratch_fd = open_dir(scratch)?;
        for name in heredoc_names {
            let Some((_, body)) = req.heredocs.iter().find(|(n, _)| n == name) else {
                return Err(fail(
                    &format!("<<{name}"),
                    "no heredoc of that name follows the instruction",
                ));
            };
            let file = scratch.join("heredoc");
            let _ = std::fs::remove_file(&file);
            std::fs::write(&file, body).at("write", &file)?;
            let mode = req.chmod.unwrap_or(0o644);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).at("chmod", &file)?;
            let (uid, gid) = req.chown.unwrap_or((0, 0));
            lchown(&file, uid, gid)?;
            let dst_name = c_name(&file_name.clone().unwrap_or_else(|| name.to_owned()))?;
            tree_copy::copy_entry(
                scratch_fd.as_fd(),
                c"heredoc",
                dst.as_fd(),
                &dst_name,
                scratch,
                Path::new(name),
                &tree_copy::AsTheyAre,
            )
            .map_err(copy_failed)?;
        }
    }
    if !archives.is_empty() {
        // Extracted by the layer codec, rooted at the destination: nothing in an archive can land outside it.
        let real = fs.resolve(&target).map_err(|e| BuildError::Work {
            what: "resolve the destination directory",
            source: Box::new(e),
        })?;
        let dir = rootfs.join(real.trim_start_matches('/'));
        std::fs::create_dir_all(scratch).at("create", scratch)?;
        for a in &archives {
            let file = open_archive(&a.path, scratch)?;
            berth_layer::apply::apply_layer(file, &dir, &berth_layer::apply::ApplyOptions::default()).map_err(|e| {
                BuildError::Work {
                    what: "extract the archive",
                    source: Box::new(CopyError::Source {
                        source_path: a.rel.clone(),
                        reason: berth_spec::error_chain(&e),
                    }),
                }
            })?;
        }
    }
    Ok(())
}

fn root_of<'a>(req: &CopyRequest<'a>) -> &'a Path {
    match req.from {
        SourceRoot::Context { root, .. } | SourceRoot::Rootfs(root) => root,
    }
}

fn c_name(name: &str) -> Result<std::ffi::CString, BuildError> {
    std::ffi::CString::new(name).map_err(|_| fail(name, "a name with a NUL byte"))
}

fn open_dir(path: &Path) -> Result<OwnedFd, BuildError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .at("open", path)
    .map_err(Into::into)
}

/// The open parent directory of a (resolved) source and its name in it.
fn split_source(path: &Path) -> Result<(OwnedFd, std::ffi::CString), BuildError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or(b".");
    let name = std::ffi::CString::new(name).map_err(|_| fail(&path.display().to_string(), "a name with a NUL byte"))?;
    Ok((open_dir(parent)?, name))
}

/// The COPY rules over a copy's walk: ignore rules and `--exclude` decide what is taken, `--chown` (or 0:0 from
/// the context) the owners, `--chmod` the modes; devices and FIFOs are not copied.
struct Rules<'a, 'b> {
    req: &'a CopyRequest<'b>,
    ignore: Option<&'a IgnoreRules>,
}

impl tree_copy::CopyRules for Rules<'_, '_> {
    fn admit(&self, rel: &Path, is_dir: bool) -> bool {
        let rel = rel.to_string_lossy();
        !(excluded(self.req, self.ignore, &rel) && !(is_dir && self.ignore.is_some_and(|i| i.may_include_below(&rel))))
    }

    fn owner(&self, st: &rustix::fs::Stat) -> (u32, u32) {
        match (self.req.chown, self.req.from) {
            (Some(ids), _) => ids,
            (None, SourceRoot::Context { .. }) => (0, 0),
            (None, SourceRoot::Rootfs(_)) => (st.st_uid, st.st_gid),
        }
    }

    fn mode(&self, st: &rustix::fs::Stat) -> u32 {
        self.req.chmod.unwrap_or(st.st_mode & 0o7777)
    }

    fn specials(&self) -> bool {
        false
    }

    fn defer_data(&self, src: BorrowedFd<'_>, copy: BorrowedFd<'_>, _st: &rustix::fs::Stat) -> bool {
        let (Some(list), SourceRoot::Context { .. }) = (self.req.defer, self.req.from) else {
            return false;
        };
        let path = |fd: BorrowedFd<'_>| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .ok()
                .filter(|p| p.is_absolute())
        };
        let (Some(source), Some(copy_path), Ok(s), Ok(c)) =
            (path(src), path(copy), rustix::fs::fstat(src), rustix::fs::fstat(copy))
        else {
            return false;
        };
        list.lock().expect("not poisoned").push(Deferred {
            copy: copy_path,
            ino: c.st_ino,
            source: berth_layer::create::Elsewhere {
                path: source,
                dev: s.st_dev,
                ino: s.st_ino,
                size: u64::try_from(s.st_size).unwrap_or(0),
                mtime: s.st_mtime,
                mtime_nsec: s.st_mtime_nsec as i64,
            },
        });
        true
    }
}

/// Whether `rel` is left out by the ignore rules or `--exclude`.
fn excluded(req: &CopyRequest<'_>, ignore: Option<&IgnoreRules>, rel: &str) -> bool {
    if ignore.is_some_and(|i| i.excluded(rel)) {
        return true;
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    req.excludes.iter().any(|p| {
        pattern::matches_glob(&pattern::clean(p), rel).unwrap_or(false) || pattern::matches(p, name).unwrap_or(false)
    })
}

/// The compressions ADD recognises, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    /// Plain tar, gzip or zstd (the layer codec reads them).
    Layer,
    Bzip2,
    Xz,
}

fn archive_kind(head: &[u8]) -> ArchiveKind {
    if head.starts_with(b"BZh") {
        ArchiveKind::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArchiveKind::Xz
    } else {
        ArchiveKind::Layer
    }
}

/// The first bytes of `head` decompressed (as far as they go).
fn decompressed_head(head: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match archive_kind(head) {
        ArchiveKind::Bzip2 => {
            let _ = bzip2::read::BzDecoder::new(head).take(512).read_to_end(&mut out);
        }
        ArchiveKind::Xz => {
            // A truncated stream is an error at its end; what was decoded before is kept.
            let _ = lzma_rs::xz_decompress(&mut std::io::BufReader::new(head), &mut out);
        }
        ArchiveKind::Layer => {
            let compression = berth_spec::media_type::Compression::sniff(head);
            if let Ok(d) = berth_spec::diff_id::decoder(head, compression) {
                let _ = d.take(512).read_to_end(&mut out);
            }
        }
    }
    out
}

/// Whether `path` is a tar archive (plain, gzip, zstd, bzip2 or xz), by its content.
fn is_archive(path: &Path) -> Result<bool, BuildError> {
    use std::io::Read;
    // Only regular files: opening a FIFO would block the build.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .at("open", path)?
        .take(1 << 16)
        .read_to_end(&mut head)
        .at("read", path)?;
    let tar_head = decompressed_head(&head);
    Ok(tar_head.len() >= 512 && tar_checksum_ok(&tar_head[..512]))
}

/// The archive as a stream the layer codec reads: bzip2 decompressed on the fly, xz decompressed into a scratch
/// file first (its decoder writes, it does not read), the rest as they are.
fn open_archive(path: &Path, scratch: &Path) -> Result<Box<dyn std::io::Read + Send>, BuildError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).at("open", path)?;
    let mut head = [0u8; 6];
    let n = file.read(&mut head).at("read", path)?;
    drop(file);
    let file = std::fs::File::open(path).at("open", path)?;
    Ok(match archive_kind(&head[..n]) {
        ArchiveKind::Layer => Box::new(file),
        ArchiveKind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file))),
        ArchiveKind::Xz => {
            let out_path = scratch.join(format!("xz-{}", std::process::id()));
            let mut out = std::fs::File::create(&out_path).at("create", &out_path)?;
            lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut out)
                .map_err(|e| fail(&path.display().to_string(), format!("is not a valid xz stream: {e}")))?;
            drop(out);
            Box::new(std::fs::File::open(&out_path).at("open", &out_path)?)
        }
    })
}

/// Whether a 512-byte block is a tar header with a valid checksum.
fn tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored && block[0] != 0
}

/// The hashing walk of [`content_digest`].
struct Hashing<'a, 'b> {
    req: &'a CopyRequest<'b>,
    ignore: Option<&'a IgnoreRules>,
}

impl Hashing<'_, '_> {
    /// Feeds one entry (recursively) into `h`, as [`content_digest`] says, with the same exclusions as the copy.
    fn hash_entry(
        &self,
        from: &Path,
        rel: &str,
        name: &str,
        h: &mut berth_spec::Hasher,
        stat: &mut crate::statcache::StatCache,
    ) -> Result<(), BuildError> {
        let meta = std::fs::symlink_metadata(from).at("stat", from)?;
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if ft.is_symlink() {
            let target = std::fs::read_link(from).at("read the symlink", from)?;
            h.update(format!("l {name}\0{}\0", target.display()).as_bytes());
        } else if ft.is_dir() {
            h.update(format!("d {name}\0{mode:o}\0").as_bytes());
            let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(from)
                .at("read", from)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .at("read", from)?;
            names.sort();
            for child in names {
                let child_rel = if rel.is_empty() {
                    child.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", child.to_string_lossy())
                };
                let is_dir = std::fs::symlink_metadata(from.join(&child)).is_ok_and(|m| m.is_dir());
                if excluded(self.req, self.ignore, &child_rel)
                    && !(is_dir && self.ignore.is_some_and(|i| i.may_include_below(&child_rel)))
                {
                    continue;
                }
                let child_name = format!("{name}/{}", child.to_string_lossy());
                self.hash_entry(&from.join(&child), &child_rel, &child_name, h, stat)?;
            }
        } else if ft.is_file() {
            let digest = stat.digest(from, &meta).at("read", from)?;
            h.update(format!("f {name}\0{mode:o}\0{}\0{digest}\0", meta.len()).as_bytes());
        }
        // Sockets, FIFOs and devices are not copied, so they do not count.
        Ok(())
    }
}

fn lchown(path: &Path, uid: u32, gid: u32) -> Result<(), BuildError> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .at("chown", path)
    .map_err(Into::into)
}

/// A digest of everything a COPY/ADD of local files would take from its sources: names, types, modes, link
/// targets and contents (after the ignore rules and `--exclude`), never times or inode numbers — so a copied or
/// re-checked-out context with the same bytes gives the same digest. The step cache keys on it.
pub fn content_digest(
    req: &CopyRequest<'_>,
    stat: &mut crate::statcache::StatCache,
) -> Result<berth_spec::Digest, BuildError> {
    let file_sources: Vec<String> = req.sources.iter().filter(|s| !s.starts_with("<<")).cloned().collect();
    let found = find_sources(&CopyRequest {
        sources: file_sources,
        ..req.clone()
    })?;
    let mut h = berth_spec::Hasher::new(berth_spec::Algorithm::Sha256);
    let ignore = match req.from {
        SourceRoot::Context { ignore, .. } => Some(ignore),
        SourceRoot::Rootfs(_) => None,
    };
    let stager = Hashing { req, ignore };
    for f in &found {
        h.update(format!("source {}\0{}\0", f.given, f.rel).as_bytes());
        stager.hash_entry(&f.path, &f.rel, "", &mut h, stat)?;
    }
    Ok(h.finish())
}
