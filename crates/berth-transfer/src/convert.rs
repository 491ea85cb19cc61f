//! Recompressing a layer on the way (`--dest-compress-format`), with its diffID verified after recompression.

use std::io::Read;
use std::sync::Arc;

use berth_layer::compress::LayerWriter;
use berth_spec::media_type::{self, Compression, Format};
use berth_spec::{Algorithm, Digest};
use oci_spec::image::Descriptor;

use crate::endpoint::{Dest, Source};
use crate::error::CopyError;
use crate::plan::digest_of;
use crate::progress::{Outcome, Progress};

/// Recompresses `desc` (whose uncompressed digest must be `diff_id`) into `target`; returns the new descriptor.
#[allow(clippy::too_many_arguments)]
pub async fn recompress(
    src: &Arc<Source>,
    dst: &Arc<Dest>,
    desc: &Descriptor,
    diff_id: &Digest,
    target: Compression,
    level: Option<i32>,
    format: Format,
    progress: &Arc<dyn Progress>,
) -> Result<Descriptor, CopyError> {
    let digest = digest_of(desc)?;
    let mt = desc.media_type().to_string();
    let from = media_type::layer_compression(&mt)
        .ok_or_else(|| CopyError::usage(format!("layer {digest}: cannot recompress media type {mt:?}")))?;
    let new_mt = media_type::layer_media_type(format, target).map_err(|e| CopyError::usage(e.to_string()))?;
    let (image_label, layer_label) = (src.label().to_owned(), digest.to_string());
    let layer_err = move |reason: String| CopyError::Layer {
        image: image_label.clone(),
        layer: layer_label.clone(),
        reason,
    };

    // A local, verified copy of the source blob to read from.
    let (src_layout, staged) = match &**src {
        Source::Layout { layout, .. } => (Some(layout.clone()), None),
        Source::Registry { registry, repo, .. } => (
            None,
            Some(crate::blob::stage(registry, repo, &digest, desc.size()).await?),
        ),
    };
    let (blob_digest, blob_size) = (digest.clone(), desc.size());
    let open = move || -> Result<Box<dyn Read + Send>, CopyError> {
        match (&src_layout, &staged) {
            (Some(l), _) => Ok(Box::new(l.open_blob(&blob_digest, blob_size)?)),
            (None, Some(p)) => Ok(Box::new(std::fs::File::open(p).map_err(CopyError::io(p.display()))?)),
            _ => unreachable!("one of the two is set"),
        }
    };
    progress.start(&digest, desc.size(), "Recompressing");
    let (dst2, expected) = (dst.clone(), diff_id.clone());
    let writing = format!("{}: writing layer {digest} recompressed", dst.label());
    let out = tokio::task::spawn_blocking(
        move || -> Result<(Digest, u64, Option<tempfile::NamedTempFile>), CopyError> {
            let reader = open()?;
            let mut decoder =
                berth_spec::diff_id::decoder(reader, from).map_err(|e| layer_err(berth_spec::error_chain(&e)))?;
            // Recompresses into `out`; the diffID of what went in must be the config's.
            let mut recompress_into = |out: &mut dyn std::io::Write| -> Result<(Digest, u64), CopyError> {
                let mut lw = LayerWriter::new(out, target, level, 0).map_err(|e| layer_err(e.to_string()))?;
                // Read errors are the source's; write errors (a full disk) the destination's.
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = match std::io::Read::read(&mut decoder, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(layer_err(format!("decompressing: {e}"))),
                    };
                    std::io::Write::write_all(&mut lw, &buf[..n]).map_err(CopyError::io(&writing))?;
                }
                let d = lw.finish().map_err(CopyError::io(&writing))?;
                if d.diff_id != expected {
                    return Err(layer_err(format!(
                        "after recompression the diffID is {}, not {expected}",
                        d.diff_id
                    )));
                }
                Ok((d.digest, d.size))
            };
            match &*dst2 {
                Dest::Layout { layout, .. } => {
                    let w = layout.writer()?;
                    let mut bw = w.blob_writer(Algorithm::Sha256)?;
                    recompress_into(&mut bw)?;
                    let (digest, size) = bw.commit()?;
                    Ok((digest, size, None))
                }
                Dest::Registry { .. } => {
                    let mut tmp = tempfile::NamedTempFile::new().map_err(CopyError::io("temporary file"))?;
                    let (digest, size) = recompress_into(tmp.as_file_mut())?;
                    Ok((digest, size, Some(tmp)))
                }
            }
        },
    )
    .await
    .expect("recompression task does not panic")?;
    let (new_digest, new_size, tmp) = out;
    if let (Dest::Registry { registry, repo, .. }, Some(tmp)) = (&**dst, tmp) {
        let p = tmp.path().to_owned();
        let open = move || -> std::io::Result<Box<dyn Read + Send>> { Ok(Box::new(std::fs::File::open(&p)?)) };
        registry.put_blob(repo, &new_digest, new_size, &open, &|_| {}).await?;
    }
    progress.done(&digest, Outcome::Copied);
    Ok(Descriptor::new(new_mt.into(), new_size, new_digest.to_oci()))
}
