//! Importing one image of a docker-archive into an OCI image layout, as an OCI image.

use std::io::{self, Read, Write};
use std::path::Path;

use berth_layer::compress::LayerWriter;
use berth_spec::layout::{BlobWriter, Layout, LayoutWriter};
use berth_spec::media_type::{self, Compression, Format};
use berth_spec::{Algorithm, Digest, Hasher};
use oci_spec::image::{Descriptor, ImageConfiguration, Platform};
use serde_json::json;

use crate::docker_reader::{DockerArchiveImage, DockerArchiveReader};
use crate::error::{ArchiveError, LayoutContext, Result};

/// Which side of a copy failed.
enum Pump {
    Read(io::Error),
    Write(io::Error),
}

fn pump(src: &mut dyn Read, dst: &mut dyn Write) -> Result<(), Pump> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Pump::Read(e)),
        };
        dst.write_all(&buf[..n]).map_err(Pump::Write)?;
    }
}

/// Copies what is read through it into a blob, keeping the blob's write error apart from read errors.
struct Tee<'b, 'w, R> {
    inner: R,
    blob: &'b mut BlobWriter<'w>,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.blob.write_all(&buf[..n]) {
            self.write_error = Some(e);
            return Err(io::Error::other("writing the blob failed"));
        }
        Ok(n)
    }
}

/// What importing one layer needs to name in errors.
struct Ctx<'a> {
    archive: &'a Path,
    image: String,
    member: &'a str,
    blob_dir: &'a Path,
}

impl Ctx<'_> {
    fn layer_error(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Layer {
            archive: self.archive.to_owned(),
            image: self.image.clone(),
            member: self.member.to_owned(),
            source,
        }
    }
    fn write_error(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Io(berth_spec::io_context::PathError::new(
            "write layer blob",
            self.blob_dir.to_owned(),
            source,
        ))
    }
    fn pump_error(&self, e: Pump) -> ArchiveError {
        match e {
            Pump::Read(e) => self.layer_error(e),
            Pump::Write(e) => self.write_error(e),
        }
    }
    fn check(&self, expected: &Digest, found: Digest) -> Result<()> {
        if &found != expected {
            return Err(ArchiveError::DiffIdMismatch {
                archive: self.archive.to_owned(),
                layer: format!("image {}: layer {:?}", self.image, self.member),
                expected: expected.clone(),
                found,
            });
        }
        Ok(())
    }
}

/// Stores a layer whose bytes already have the wanted compression, verbatim, checking its diffID on the way.
fn store_verbatim(
    ctx: &Ctx<'_>,
    w: &LayoutWriter,
    layer: impl Read + Send,
    stored: Compression,
    diff_id: &Digest,
) -> Result<(Digest, u64)> {
    let mut blob = w.blob_writer(Algorithm::Sha256).in_archive(ctx.archive)?;
    let mut tee = Tee {
        inner: layer,
        blob: &mut blob,
        write_error: None,
    };
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let result = berth_spec::diff_id::decoder(&mut tee, stored)
        .map_err(Pump::Read)
        .and_then(|mut decoded| pump(&mut decoded, &mut hasher))
        // Whatever follows the compressed stream is part of the blob too.
        .and_then(|()| pump(&mut tee, &mut io::sink()));
    if let Some(e) = tee.write_error.take() {
        return Err(ctx.write_error(e));
    }
    result.map_err(|e| ctx.pump_error(e))?;
    ctx.check(diff_id, hasher.finish())?;
    blob.commit().in_archive(ctx.archive)
}

/// Decompresses a layer and compresses it as wanted, checking its diffID on the way.
fn store_transcoded(
    ctx: &Ctx<'_>,
    w: &LayoutWriter,
    layer: impl Read + Send,
    stored: Compression,
    wanted: Compression,
    diff_id: &Digest,
) -> Result<(Digest, u64)> {
    let blob = w.blob_writer(Algorithm::Sha256).in_archive(ctx.archive)?;
    let mut out = LayerWriter::new(blob, wanted, None, 0).map_err(|e| ctx.write_error(e))?;
    let mut decoded = berth_spec::diff_id::decoder(layer, stored).map_err(|e| ctx.layer_error(e))?;
    pump(&mut decoded, &mut out).map_err(|e| ctx.pump_error(e))?;
    let (digests, blob) = out.finish_into_inner().map_err(|e| ctx.write_error(e))?;
    ctx.check(diff_id, digests.diff_id)?;
    blob.commit().in_archive(ctx.archive)
}

/// The platform of a config, for the manifest's entry in index.json.
fn platform_of(config: &ImageConfiguration) -> Option<Platform> {
    let mut p = json!({"architecture": config.architecture().to_string(), "os": config.os().to_string()});
    if let Some(v) = config.variant() {
        p["variant"] = json!(v);
    }
    serde_json::from_value(p).ok()
}

/// Imports `image` of a docker-archive into `layout` as an OCI image and returns its manifest's descriptor.
///
/// The config is stored byte for byte (its digest is the one `docker save` named it by). Each layer is stored with
/// `compression` — kept verbatim when the archive already holds it compressed that way, otherwise decompressed and
/// recompressed (`Compression::None` stores plain `application/vnd.oci.image.layer.v1.tar` layers) — and its
/// diffID, computed on the way, must equal the config's diff_id, or nothing is stored for the image's manifest.
/// The image is named `name` in index.json when given; otherwise it is added as an unnamed entry.
pub fn import_docker_archive(
    reader: &DockerArchiveReader,
    image: &DockerArchiveImage,
    layout: &Layout,
    name: Option<&str>,
    compression: Compression,
) -> Result<Descriptor> {
    let archive = reader.path();
    let config = reader.config(image)?;
    let label = reader.label(image);
    let w = layout.writer().in_archive(archive)?;
    let blob_dir = layout.root().join("blobs");
    let media_type = media_type::layer_media_type(Format::Oci, compression).expect("OCI has every compression");
    let mut layers = Vec::new();
    for (i, (member, diff_id)) in image.layers.iter().zip(config.parsed().rootfs().diff_ids()).enumerate() {
        let diff_id = Digest::parse(diff_id).expect("parse_config validated the diff_ids");
        let ctx = Ctx {
            archive,
            image: label.clone(),
            member,
            blob_dir: &blob_dir,
        };
        let stored = reader.layer_compression(image, i)?;
        let layer = reader.open_layer(image, i)?;
        let size = layer.remaining();
        let (digest, size) = if stored == Compression::None
            && compression == Compression::None
            && layout.verify_blob(&diff_id, size).is_ok()
        {
            (diff_id.clone(), size)
        } else if stored == compression {
            store_verbatim(&ctx, &w, layer, stored, &diff_id)?
        } else {
            store_transcoded(&ctx, &w, layer, stored, compression, &diff_id)?
        };
        tracing::debug!(image = label, layer = member, %digest, %stored, %compression, "layer imported");
        layers.push(json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}));
    }
    let config_digest = w.put_bytes(config.bytes(), Algorithm::Sha256).in_archive(archive)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.size()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("a JSON value serializes");
    let digest = w.put_bytes(&bytes, Algorithm::Sha256).in_archive(archive)?;
    let mut desc = Descriptor::new(media_type::OCI_MANIFEST.into(), bytes.len() as u64, digest.to_oci());
    desc.set_platform(platform_of(config.parsed()));
    match name {
        Some(n) => w.set_ref(n, &desc).in_archive(archive)?,
        None => w.add_entry(&desc).in_archive(archive)?,
    }
    Ok(desc)
}
