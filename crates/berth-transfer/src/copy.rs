//! The copy engine: resolve the source, select platforms, move blobs in parallel, rewrite documents only when
//! asked to change something, write children before parents, and name the result last — so an interrupted copy
//! never leaves a name pointing at something incomplete, and a rerun finishes the job.

use std::sync::Arc;

use berth_spec::Digest;
use berth_spec::document::{self, Expect, ManifestOrIndex};
use berth_spec::media_type::{Compression, Format};
use berth_spec::platform::{self, Platform};
use berth_spec::reference::ImageRef;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_spec::image::Descriptor;
use serde_json::Value;

use crate::endpoint::{Dest, Endpoints, Source};
use crate::error::CopyError;
use crate::plan::{self, Selection, digest_of};
use crate::progress::{Outcome, Progress};
use crate::{blob as transfer, convert};

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Which images of an index.
    pub selection: Selection,
    /// Refuse any change that would alter a digest.
    pub preserve_digests: bool,
    /// Recompress layers to this.
    pub compression: Option<Compression>,
    /// Compression level.
    pub compression_level: Option<i32>,
    /// Write manifests in this format.
    pub format: Option<Format>,
    /// Blobs transferred at once.
    pub parallel: usize,
    /// Refuse an image whose config is not a valid image config, before it is named (a runner or builder is
    /// about to use it; a copier moves artifacts too).
    pub require_image_config: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            selection: Selection::Host,
            preserve_digests: false,
            compression: None,
            compression_level: None,
            format: None,
            parallel: 4,
            require_image_config: false,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Digest of the top-level manifest or index written.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Blobs whose bytes moved.
    pub copied: usize,
    /// Blobs already present (or mounted).
    pub skipped: usize,
}

struct Ctx {
    src: Arc<Source>,
    dst: Arc<Dest>,
    opts: CopyOptions,
    progress: Arc<dyn Progress>,
    counts: std::sync::Mutex<(usize, usize)>,
}

/// Copies one image (or index) from `src` to `dst`.
///
/// A destination registry that refuses the manifest as such (see [`refused_manifest`]) gets the image again as
/// Docker schema 2, as skopeo does, unless a format was asked for or digests must be kept; the blobs are there
/// already. If that fails too, the first refusal is the error: it is what the user needs to see.
pub async fn copy(
    endpoints: &Endpoints,
    src: &ImageRef,
    dst: &ImageRef,
    opts: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport, CopyError> {
    let first = copy_between(
        endpoints.open_source(src)?,
        endpoints.open_dest(dst)?,
        opts,
        progress.clone(),
    )
    .await;
    match first {
        Err(first) if refused_manifest(&first, dst) && opts.format.is_none() && !opts.preserve_digests => {
            progress.message("The registry refused the manifest; trying again as Docker schema 2");
            let v2 = CopyOptions {
                format: Some(Format::DockerV2S2),
                ..opts.clone()
            };
            match copy_between(endpoints.open_source(src)?, endpoints.open_dest(dst)?, &v2, progress).await {
                Ok(report) => Ok(report),
                Err(second) => {
                    tracing::debug!("as Docker schema 2: {second}");
                    Err(first)
                }
            }
        }
        other => other,
    }
}

/// Whether a copy failed because the destination registry refused a manifest as such: a 400 or 415 about a
/// manifest of the destination's repository whose code says the manifest is invalid or unsupported (or none).
pub fn refused_manifest(e: &CopyError, dest: &ImageRef) -> bool {
    let ImageRef::Docker(d) = dest else {
        return false;
    };
    matches!(e, CopyError::Registry(r)
        if r.is_manifest_refusal()
            && matches!(r, berth_registry::RegistryError::Status { target, .. }
                if target.repo == d.repository() && target.host == d.registry_host()))
}

/// Copies between already opened endpoints.
pub async fn copy_between(
    source: Source,
    dest: Dest,
    opts: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<CopyReport, CopyError> {
    // Writers of a layout hold its ingest lock for the whole copy, so gc never removes what is not named yet.
    let _ingest = match &dest {
        Dest::Layout { layout, .. } => Some(layout.writer()?),
        Dest::Registry { .. } => None,
    };
    let ctx = Ctx {
        src: Arc::new(source),
        dst: Arc::new(dest),
        opts: opts.clone(),
        progress,
        counts: std::sync::Mutex::new((0, 0)),
    };
    if ctx.opts.preserve_digests && (ctx.opts.format.is_some() || ctx.opts.compression.is_some()) {
        // Checked again per document: only an actual change is refused.
    }
    let (bytes, media_type, digest) = ctx.src.top().await?;
    let label = ctx.src.label().to_owned();
    let ex = Expect::from_source(&label).with_descriptor(&digest, Some(&media_type));
    let top = document::parse_manifest_or_index(bytes, ex)?;
    let (desc, bytes) = match top {
        ManifestOrIndex::Manifest(m) => copy_manifest(&ctx, m.bytes().to_vec(), m.media_type().to_owned()).await?,
        ManifestOrIndex::Index(idx) => {
            let idx_bytes = idx.bytes().to_vec();
            match ctx.opts.selection.clone() {
                Selection::Host | Selection::One(_) => {
                    let want = match &ctx.opts.selection {
                        Selection::One(p) => p.clone(),
                        _ => Platform::host(),
                    };
                    let child = platform::select(idx.parsed(), &want, &label)?.clone();
                    let (b, mt) = fetch_manifest(&ctx, &child).await?;
                    copy_manifest(&ctx, b, mt).await?
                }
                Selection::All => copy_index(&ctx, idx_bytes, idx.media_type().to_owned(), None, 0).await?,
                Selection::Platforms(list) => {
                    copy_index(&ctx, idx_bytes, idx.media_type().to_owned(), Some(&list), 0).await?
                }
            }
        }
    };
    ctx.progress
        .message(&format!("Writing manifest to {}", ctx.dst.label()));
    transfer::commit(&ctx.dst, &desc, &bytes).await?;
    let (copied, skipped) = *ctx.counts.lock().expect("counts");
    Ok(CopyReport {
        digest: digest_of(&desc)?,
        media_type: desc.media_type().to_string(),
        copied,
        skipped,
    })
}

impl Ctx {
    /// Counts a blob in the report (the config as well as the layers).
    fn count(&self, outcome: Outcome) {
        let mut c = self.counts.lock().expect("counts");
        if outcome == Outcome::Copied { c.0 += 1 } else { c.1 += 1 }
    }
}

async fn fetch_manifest(ctx: &Ctx, desc: &Descriptor) -> Result<(Vec<u8>, String), CopyError> {
    let bytes = ctx.src.document(desc).await?;
    Ok((bytes, desc.media_type().to_string()))
}

fn refuse_change(ctx: &Ctx, what: &str) -> Result<(), CopyError> {
    if ctx.opts.preserve_digests {
        return Err(CopyError::usage(format!(
            "{}: --preserve-digests is set, but {what} would change the digest; drop one of the two options",
            ctx.src.label()
        )));
    }
    Ok(())
}

/// Copies an index: its (selected) children, then itself — rewritten only if something changed.
fn copy_index<'a>(
    ctx: &'a Ctx,
    bytes: Vec<u8>,
    media_type: String,
    subset: Option<&'a [Platform]>,
    depth: usize,
) -> futures_util::future::LocalBoxFuture<'a, Result<(Descriptor, Vec<u8>), CopyError>> {
    Box::pin(async move {
        if depth > berth_spec::layout::MAX_INDEX_DEPTH {
            return Err(CopyError::usage(format!("{}: indexes nest too deep", ctx.src.label())));
        }
        let label = ctx.src.label().to_owned();
        let idx = document::parse_index(
            bytes.clone(),
            Expect::from_source(&label).with_descriptor(&Digest::sha256(&bytes), Some(&media_type)),
        )?;
        let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| CopyError::usage(format!("{label}: {e}")))?;
        let entries = value["manifests"].as_array().cloned().unwrap_or_default();
        let mut changed = false;
        let mut out = Vec::new();
        // A child listed more than once (hostile, or just repeated) is copied once.
        let mut copied: std::collections::HashMap<(String, String), Descriptor> = std::collections::HashMap::new();
        for (entry, desc) in entries.iter().zip(idx.parsed().manifests()) {
            if let Some(list) = subset {
                let keep = Platform::of_descriptor(desc).is_some_and(|p| list.iter().any(|w| w.matches(&p)));
                if !keep {
                    changed = true;
                    continue;
                }
            }
            let mt = desc.media_type().to_string();
            let key = (desc.digest().to_string(), mt.clone());
            let new_desc = match copied.get(&key) {
                Some(done) => done.clone(),
                None => {
                    let child_bytes = ctx.src.document(desc).await?;
                    let (new_desc, _) = if berth_spec::media_type::is_index(&mt) {
                        copy_index(ctx, child_bytes, mt.clone(), subset, depth + 1).await?
                    } else if berth_spec::media_type::is_manifest(&mt) {
                        copy_manifest(ctx, child_bytes, mt.clone()).await?
                    } else {
                        // Not an image (an artifact or attestation): copy the blob as it is.
                        transfer::blob(&ctx.src, &ctx.dst, desc, &ctx.progress).await?;
                        (desc.clone(), Vec::new())
                    };
                    copied.insert(key, new_desc.clone());
                    new_desc
                }
            };
            if new_desc.digest() != desc.digest() || new_desc.media_type() != desc.media_type() {
                changed = true;
            }
            out.push(plan::rewrite_descriptor(
                entry,
                &digest_of(&new_desc)?,
                new_desc.size(),
                new_desc.media_type().as_ref(),
            ));
        }
        if let Some(list) = subset
            && out.is_empty()
        {
            let join = |v: Vec<String>| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
            let wanted = join(list.iter().map(ToString::to_string).collect());
            let present = join(
                idx.parsed()
                    .manifests()
                    .iter()
                    .filter_map(Platform::of_descriptor)
                    .map(|p| p.to_string())
                    .collect(),
            );
            return Err(CopyError::usage(format!(
                "{label}: none of the requested platforms ({wanted}) is in the index (it has: {present})"
            )));
        }
        let target_mt = plan::convert_media_type(&media_type, ctx.opts.format, &label)?;
        if target_mt != media_type {
            changed = true;
        }
        if !changed {
            return Ok((transfer::document(&ctx.dst, &bytes, &media_type).await?, bytes));
        }
        refuse_change(ctx, "selecting a subset of platforms or converting the index")?;
        value["manifests"] = Value::Array(out);
        if value.get("mediaType").is_some() || target_mt != media_type {
            value["mediaType"] = Value::String(target_mt.clone());
        }
        plan::fit_to_format(&mut value, &target_mt);
        let new_bytes = plan::to_bytes(&value);
        Ok((transfer::document(&ctx.dst, &new_bytes, &target_mt).await?, new_bytes))
    })
}

/// Copies one image manifest: its layers and config (in parallel), then itself.
async fn copy_manifest(ctx: &Ctx, bytes: Vec<u8>, media_type: String) -> Result<(Descriptor, Vec<u8>), CopyError> {
    let label = ctx.src.label().to_owned();
    let digest = Digest::sha256(&bytes);
    let m = document::parse_manifest(
        bytes.clone(),
        Expect::from_source(&label).with_descriptor(&digest, Some(&media_type)),
    )?;
    let format = ctx
        .opts
        .format
        .or_else(|| plan::format_of(&media_type))
        .unwrap_or(Format::Oci);
    let config_desc = m.parsed().config().clone();
    // diffIDs are needed to verify recompressed layers.
    let config = if ctx.opts.compression.is_some() || ctx.opts.require_image_config {
        let cfg = ctx.src.document(&config_desc).await?;
        let config_digest = digest_of(&config_desc)?;
        let ex = Expect::from_source(&label).with_descriptor(&config_digest, None);
        Some(document::parse_config(cfg, ex)?)
    } else {
        None
    };
    let diff_ids: Vec<Digest> = if let Some(c) = config.as_ref().filter(|_| ctx.opts.compression.is_some()) {
        document::check_diff_id_count(m.parsed(), c.parsed(), &label)?;
        c.parsed()
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<_, _>>()
            .map_err(|error| {
                CopyError::Document(document::DocumentError::BadDigest {
                    source_name: label.clone(),
                    error,
                })
            })?
    } else {
        Vec::new()
    };
    let layers: Vec<(usize, Descriptor)> = m.parsed().layers().iter().cloned().enumerate().collect();
    let label_ref = &label;
    let results: Vec<(usize, Descriptor)> = stream::iter(layers)
        .map(|(i, layer)| {
            let diff_id = diff_ids.get(i).cloned();
            let label = label_ref;
            async move {
                let mt = layer.media_type().to_string();
                let foreign = layer.urls().as_ref().is_some_and(|u| !u.is_empty());
                let want = ctx.opts.compression;
                let current = berth_spec::media_type::layer_compression(&mt);
                let new = match (want, current, diff_id) {
                    (Some(c), Some(cur), Some(d)) if c != cur && !foreign => {
                        refuse_change(ctx, "recompressing layers")?;
                        let new = convert::recompress(
                            &ctx.src,
                            &ctx.dst,
                            &layer,
                            &d,
                            c,
                            ctx.opts.compression_level,
                            format,
                            &ctx.progress,
                        )
                        .await?;
                        ctx.count(Outcome::Copied);
                        new
                    }
                    _ => {
                        let layer_digest = digest_of(&layer)?;
                        if foreign && ctx.src.layout().is_some_and(|l| !l.has_blob(&layer_digest)) {
                            // A non-distributable layer the source does not have: keep the reference only.
                        } else {
                            let o = transfer::blob(&ctx.src, &ctx.dst, &layer, &ctx.progress).await?;
                            ctx.count(o);
                        }
                        let new_mt = plan::convert_media_type(&mt, ctx.opts.format, &format!("{label}: layer"))?;
                        Descriptor::new(new_mt.as_str().into(), layer.size(), layer.digest().clone())
                    }
                };
                Ok::<_, CopyError>((i, new))
            }
        })
        .buffer_unordered(ctx.opts.parallel.max(1))
        .try_collect()
        .await?;
    let mut new_layers = results;
    new_layers.sort_by_key(|(i, _)| *i);
    let o = transfer::blob(&ctx.src, &ctx.dst, &config_desc, &ctx.progress).await?;
    ctx.count(o);
    let config_mt = plan::convert_media_type(config_desc.media_type().as_ref(), ctx.opts.format, &label)?;
    let target_mt = plan::convert_media_type(&media_type, ctx.opts.format, &label)?;
    let unchanged = target_mt == media_type
        && config_mt == config_desc.media_type().to_string()
        && new_layers
            .iter()
            .zip(m.parsed().layers())
            .all(|((_, n), o)| n.digest() == o.digest() && n.media_type() == o.media_type());
    if unchanged {
        return Ok((transfer::document(&ctx.dst, &bytes, &media_type).await?, bytes));
    }
    refuse_change(ctx, "converting the manifest")?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| CopyError::usage(format!("{label}: {e}")))?;
    value["mediaType"] = Value::String(target_mt.clone());
    value["config"]["mediaType"] = Value::String(config_mt);
    let originals = value["layers"].as_array().cloned().unwrap_or_default();
    value["layers"] = Value::Array(
        originals
            .iter()
            .zip(&new_layers)
            .map(|(o, (_, n))| {
                Ok(plan::rewrite_descriptor(
                    o,
                    &digest_of(n)?,
                    n.size(),
                    n.media_type().as_ref(),
                ))
            })
            .collect::<Result<_, CopyError>>()?,
    );
    plan::fit_to_format(&mut value, &target_mt);
    let new_bytes = plan::to_bytes(&value);
    Ok((transfer::document(&ctx.dst, &new_bytes, &target_mt).await?, new_bytes))
}
