//! Moving one blob or document from a source to a destination, whatever the two are.

use std::io::Read;
use std::sync::Arc;

use berth_registry::{DigestCheck, PutOutcome, Registry, Subject, Target};
use berth_spec::{Algorithm, Digest, Hasher};
use oci_spec::image::Descriptor;
use tempfile::TempPath;

use crate::endpoint::{Dest, Source};
use crate::error::CopyError;
use crate::plan::digest_of;
use crate::progress::{Outcome, Progress};

/// Copies the blob `desc` from `src` to `dst` unless the destination already has it intact.
pub async fn blob(
    src: &Arc<Source>,
    dst: &Arc<Dest>,
    desc: &Descriptor,
    progress: &Arc<dyn Progress>,
) -> Result<Outcome, CopyError> {
    let digest = digest_of(desc)?;
    let size = desc.size();
    match &**dst {
        Dest::Layout { layout, staging, .. } => {
            let (l, d) = (layout.clone(), digest.clone());
            let present = tokio::task::spawn_blocking(move || l.verify_blob(&d, size).is_ok())
                .await
                .expect("verify task does not panic");
            if present {
                progress.done(&digest, Outcome::Skipped);
                return Ok(Outcome::Skipped);
            }
            // A staging layout (an archive being assembled) takes verified blobs of a source layout by hard link.
            if let (Some(_), Some(src_layout)) = (staging, src.layout()) {
                let (src_layout, layout, d) = (src_layout.clone(), layout.clone(), digest.clone());
                let linked =
                    tokio::task::spawn_blocking(move || layout.writer()?.link_blob_from(&src_layout, &d, size))
                        .await
                        .expect("link task does not panic")?;
                if linked {
                    progress.done(&digest, Outcome::Copied);
                    return Ok(Outcome::Copied);
                }
            }
            progress.start(&digest, size, "Copying");
            if let Some(src_layout) = src.layout() {
                let (src_layout, layout, d, p) = (src_layout.clone(), layout.clone(), digest.clone(), progress.clone());
                tokio::task::spawn_blocking(move || -> Result<(), CopyError> {
                    // The destination writer verifies digest and size before committing: hash once.
                    let mut reader = src_layout.open_blob_unverified(&d)?;
                    let mut counting = Counting {
                        inner: &mut reader,
                        digest: &d,
                        progress: &*p,
                    };
                    layout.writer()?.put_blob(&mut counting, &d, size)?;
                    Ok(())
                })
                .await
                .expect("blob copy task does not panic")?;
            } else if let Source::Registry { registry, repo, .. } = &**src {
                let (layout, d) = (layout.clone(), digest.clone());
                let p = progress.clone();
                let advance = move |n| p.advance(&d, n);
                let d = digest.clone();
                // The blob writer hashes while writing and refuses a mismatch: the download is hashed once.
                download_blocking(registry, repo, &digest, size, &advance, move |next| {
                    let w = layout.writer()?;
                    let mut bw = w.blob_writer_expecting(&d, size)?;
                    while let Some(chunk) = next() {
                        std::io::Write::write_all(&mut bw, &chunk).map_err(CopyError::io(format_args!(
                            "{}: writing blob {d}",
                            layout.root().display()
                        )))?;
                    }
                    bw.commit()?;
                    Ok(())
                })
                .await?;
            }
            progress.done(&digest, Outcome::Copied);
            Ok(Outcome::Copied)
        }
        Dest::Registry { registry, repo, .. } => {
            progress.start(&digest, size, "Copying");
            let p = progress.clone();
            let d = digest.clone();
            let advance = move |n| p.advance(&d, n);
            let outcome = match &**src {
                Source::Layout { layout, .. } => {
                    let (layout, d) = (layout.clone(), digest.clone());
                    let open = move || -> std::io::Result<Box<dyn Read + Send>> {
                        let r = layout.open_blob(&d, size).map_err(std::io::Error::other)?;
                        Ok(Box::new(r))
                    };
                    registry.put_blob(repo, &digest, size, &open, &advance).await?
                }
                Source::Registry {
                    registry: sreg,
                    repo: srepo,
                    ..
                } => {
                    if sreg.host() == registry.host() && registry.mount_blob(repo, &digest, srepo).await? {
                        PutOutcome::Mounted { from: srepo.clone() }
                    } else if registry.blob_exists(repo, &digest).await?.is_some() {
                        PutOutcome::Existed
                    } else {
                        // Stage through a verified temporary file, then upload (retries reopen the file).
                        let staged = stage(sreg, srepo, &digest, size).await?;
                        let path = staged.to_path_buf();
                        let open = move || -> std::io::Result<Box<dyn Read + Send>> {
                            Ok(Box::new(std::fs::File::open(&path)?))
                        };
                        registry.put_blob(repo, &digest, size, &open, &advance).await?
                    }
                }
            };
            let o = match outcome {
                PutOutcome::Existed => Outcome::Skipped,
                PutOutcome::Mounted { .. } => Outcome::Mounted,
                PutOutcome::Uploaded => Outcome::Copied,
            };
            progress.done(&digest, o);
            Ok(o)
        }
    }
}

/// Writes a document (manifest, index, or config bytes) to the destination; returns its descriptor.
pub async fn document(dst: &Dest, bytes: &[u8], media_type: &str) -> Result<Descriptor, CopyError> {
    let digest = Digest::sha256(bytes);
    let desc = Descriptor::new(media_type.into(), bytes.len() as u64, digest.to_oci());
    let is_manifest = berth_spec::media_type::is_manifest(media_type) || berth_spec::media_type::is_index(media_type);
    match dst {
        Dest::Layout { layout, .. } => {
            layout.writer()?.put_bytes(bytes, Algorithm::Sha256)?;
        }
        Dest::Registry { registry, repo, .. } => {
            if is_manifest {
                let got = registry
                    .put_manifest(repo, &digest.to_string(), bytes, media_type)
                    .await?;
                if got != digest {
                    return Err(CopyError::usage(format!(
                        "{}: the registry stored manifest {got}, not {digest}",
                        dst.label()
                    )));
                }
            } else {
                let owned = bytes.to_vec();
                let open = move || -> std::io::Result<Box<dyn Read + Send>> {
                    Ok(Box::new(std::io::Cursor::new(owned.clone())))
                };
                registry
                    .put_blob(repo, &digest, bytes.len() as u64, &open, &|_| {})
                    .await?;
            }
        }
    }
    Ok(desc)
}

/// Names the copied image at the destination (ref name, tag, archive).
pub async fn commit(dst: &Dest, top: &Descriptor, top_bytes: &[u8]) -> Result<(), CopyError> {
    match dst {
        Dest::Layout {
            layout,
            ref_name,
            finish,
            ..
        } => {
            let w = layout.writer()?;
            match ref_name {
                Some(n) => w.set_ref(n, top)?,
                None => w.add_entry(top)?,
            }
            drop(w);
            match finish {
                crate::endpoint::Finish::Layout => {}
                crate::endpoint::Finish::OciArchive(out) => berth_archive::write_oci_archive(layout.root(), out)?,
                crate::endpoint::Finish::DockerArchive(out, tags, kept) => {
                    let mut writer = berth_archive::DockerArchiveWriter::create(out)?;
                    for (desc, old_tags) in kept {
                        // A tag given to the new image moves to it; an image whose every tag moved is dropped.
                        let remaining: Vec<String> = old_tags.iter().filter(|t| !tags.contains(t)).cloned().collect();
                        if remaining.is_empty() && !old_tags.is_empty() {
                            continue;
                        }
                        writer.add_image(layout, desc, &remaining)?;
                    }
                    writer.add_image(layout, top, tags)?;
                    writer.finish()?;
                }
            }
        }
        Dest::Registry {
            registry,
            repo,
            tag,
            digest,
            label,
        } => {
            if let Some(wanted) = digest {
                let made = crate::plan::digest_of(top)?;
                if &made != wanted {
                    return Err(CopyError::Usage(format!(
                        "{label}: the copied manifest is {made}, not the digest the destination names; drop \
                         @DIGEST from the destination, or use --preserve-digests with a source of that digest"
                    )));
                }
            }
            if let Some(tag) = tag {
                registry
                    .put_manifest(repo, tag, top_bytes, top.media_type().as_ref())
                    .await?;
            }
        }
    }
    Ok(())
}

struct Counting<'a, R> {
    inner: R,
    digest: &'a Digest,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.digest, n as u64);
        Ok(n)
    }
}

/// Downloads blob `digest` of `registry` and hands its chunks, as they arrive, to `write` running on a blocking
/// thread (`next()` gives the next chunk, `None` at the end). Disk writes and hashing stay off the async
/// runtime, and a slow disk slows the download through the bounded channel instead of filling memory. The
/// registry does not hash: `write` must verify what it keeps.
pub(crate) async fn download_blocking<T: Send + 'static>(
    registry: &Registry,
    repo: &str,
    digest: &Digest,
    size: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
    write: impl FnOnce(&mut dyn FnMut() -> Option<bytes::Bytes>) -> Result<T, CopyError> + Send + 'static,
) -> Result<T, CopyError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || {
        let result = write(&mut || rx.blocking_recv());
        // Dropping the receiver ends a download the writer gave up on.
        drop(rx);
        result
    });
    let fetched = registry
        .get_blob_to_channel(repo, digest, size, tx, progress, DigestCheck::BySink)
        .await;
    let written = writer.await.expect("blob writer task does not panic");
    // A writer that failed (a full disk) stops the download with a bare "the writer stopped": its own error is
    // the one to report then.
    match (fetched, written) {
        (Err(berth_registry::RegistryError::Sink { .. }), Err(w)) => Err(w),
        (Err(f), _) => Err(f.into()),
        (Ok(()), w) => w,
    }
}

/// Downloads a registry blob into a temporary file, verified against its digest (hashed on the writing thread).
pub(crate) async fn stage(registry: &Registry, repo: &str, digest: &Digest, size: u64) -> Result<TempPath, CopyError> {
    let d = digest.clone();
    let (host, repo_name) = (registry.host().to_owned(), repo.to_owned());
    download_blocking(registry, repo, digest, size, &|_| {}, move |next| {
        let mut file = tempfile::NamedTempFile::new().map_err(CopyError::io("temporary file"))?;
        let mut hasher = Hasher::new(d.algorithm());
        while let Some(chunk) = next() {
            hasher.update(&chunk);
            std::io::Write::write_all(file.as_file_mut(), &chunk).map_err(CopyError::io(file.path().display()))?;
        }
        let found = hasher.finish();
        if found != d {
            return Err(CopyError::Registry(berth_registry::RegistryError::DigestMismatch {
                target: Box::new(Target {
                    host,
                    repo: repo_name,
                    subject: Subject::Blob(d.clone()),
                }),
                expected: d,
                found,
            }));
        }
        Ok(file.into_temp_path())
    })
    .await
}
