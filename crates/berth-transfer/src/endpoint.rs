//! Opening the two ends of a copy: layouts (and the store), archives and registries.

use std::path::PathBuf;
use std::sync::Arc;

use berth_registry::{ClientOptions, Credentials, Registry};
use berth_spec::Digest;
use berth_spec::document::DEFAULT_MAX_DOCUMENT_SIZE;
use berth_spec::layout::Layout;
use berth_spec::reference::{DockerArchiveRef, DockerReference, ImageRef};
use oci_spec::image::Descriptor;

use crate::error::CopyError;

/// How one side talks to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// `USER:PASS` given on the command line.
    pub creds: Option<Credentials>,
    /// An auth file (containers-auth.json / docker config format).
    pub authfile: Option<PathBuf>,
    /// `None`: automatic (plain HTTP only for localhost and 127.0.0.0/8).
    pub tls_verify: Option<bool>,
    /// Retries of failed requests.
    pub retry_times: Option<u32>,
}

/// Settings shared by every endpoint of a command.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// The default store (bare names); `None` = berth-spec's default location.
    pub store: Option<PathBuf>,
    /// Source-side registry access.
    pub src: RegistryAccess,
    /// Destination-side registry access.
    pub dest: RegistryAccess,
    /// The blob-location cache used for cross-repository mounts.
    pub blob_cache: Option<PathBuf>,
    /// The `User-Agent` sent to registries (default: the registry client's own).
    pub user_agent: Option<String>,
}

/// Which image of a layout.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The entry with this ref name.
    Name(String),
    /// The only entry.
    Only,
    /// The manifest (or index) with this digest, named or not.
    Digest(Digest),
    /// A store image named `REPOSITORY[:TAG]@DIGEST`: the name must match as well as the digest.
    NamedDigest {
        repository: String,
        tag: Option<String>,
        digest: Digest,
    },
}

/// Where a copy reads from.
#[derive(Debug)]
pub enum Source {
    /// An OCI layout (a directory, the store, or an unpacked archive).
    Layout {
        /// The layout.
        layout: Layout,
        /// Which image.
        selector: Selector,
        /// How the user named it.
        label: String,
        /// Keeps a temporary layout alive (archives).
        staging: Option<Arc<tempfile::TempDir>>,
    },
    /// A repository in a registry.
    Registry {
        /// The registry client.
        registry: Registry,
        /// The repository path.
        repo: String,
        /// Tag or digest.
        reference: String,
        /// How the user named it.
        label: String,
    },
}

/// What happens when a layout destination is committed.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Nothing more: the layout is the destination.
    Layout,
    /// Write the (temporary) layout as an oci-archive.
    OciArchive(PathBuf),
    /// Write the (temporary) layout as a docker-archive, tagging the image; the images the archive already held
    /// (manifest descriptors in the temporary layout, with their tags) are written again before it.
    DockerArchive(PathBuf, Vec<String>, Vec<(Descriptor, Vec<String>)>),
}

/// Where a copy writes to.
#[derive(Debug)]
pub enum Dest {
    /// An OCI layout.
    Layout {
        /// The layout.
        layout: Layout,
        /// The ref name to give the image, if any.
        ref_name: Option<String>,
        /// What to do at the end.
        finish: Finish,
        /// How the user named it.
        label: String,
        /// Keeps a temporary layout alive (archives).
        staging: Option<Arc<tempfile::TempDir>>,
    },
    /// A repository in a registry.
    Registry {
        /// The registry client.
        registry: Registry,
        /// The repository path.
        repo: String,
        /// The tag to set, if any (else the image is pushed by digest).
        tag: Option<String>,
        /// The digest the destination reference names (`REPO@DIGEST`, `REPO:TAG@DIGEST`): the copied manifest must
        /// have it, or nothing is tagged and the copy fails.
        digest: Option<Digest>,
        /// How the user named it.
        label: String,
    },
}

impl Endpoints {
    /// The store's path: the one given, or the default store, refused when another user controls it.
    pub fn store_path(&self) -> Result<PathBuf, CopyError> {
        match &self.store {
            Some(path) => Ok(path.clone()),
            None => Ok(berth_spec::store::trusted_default_store_path()?),
        }
    }

    fn registry(&self, host: &str, access: &RegistryAccess) -> Result<Registry, CopyError> {
        let opts = ClientOptions {
            tls_verify: access.tls_verify,
            credentials: access.creds.clone(),
            authfile: access.authfile.clone(),
            retry_times: access.retry_times.unwrap_or(3),
            user_agent: self.user_agent.clone().unwrap_or_default(),
            blob_cache: self.blob_cache.clone(),
        };
        Ok(Registry::new(host, &opts)?)
    }

    /// Opens an image to read.
    pub fn open_source(&self, image: &ImageRef) -> Result<Source, CopyError> {
        let label = image.to_string();
        match image {
            ImageRef::Oci { path, reference } => Ok(Source::Layout {
                layout: Layout::open(path)?,
                selector: reference.clone().map_or(Selector::Only, Selector::Name),
                label,
                staging: None,
            }),
            ImageRef::Store(s) => {
                let layout = Layout::open(self.store_path()?)?;
                let selector = match (s.ref_name(), s.digest()) {
                    (_, Some(d)) => Selector::NamedDigest {
                        repository: s.repository().to_owned(),
                        tag: s.tag().map(str::to_owned),
                        digest: d.clone(),
                    },
                    (Some(n), None) => Selector::Name(n),
                    (None, None) => Selector::Only,
                };
                Ok(Source::Layout {
                    layout,
                    selector,
                    label,
                    staging: None,
                })
            }
            ImageRef::Docker(r) => {
                let registry = self.registry(r.registry_host(), &self.src)?;
                let reference = r
                    .digest()
                    .map(|d| d.to_string())
                    .or_else(|| r.tag().map(str::to_owned))
                    .unwrap_or("latest".into());
                Ok(Source::Registry {
                    registry,
                    repo: r.repository().to_owned(),
                    reference,
                    label,
                })
            }
            ImageRef::OciArchive { path, reference } => {
                let temp = Arc::new(temp_dir("oci-archive")?);
                let layout = berth_archive::extract_oci_archive(path, &temp.path().join("layout"))?;
                let selector = reference.clone().map_or(Selector::Only, Selector::Name);
                Ok(Source::Layout {
                    layout,
                    selector,
                    label,
                    staging: Some(temp),
                })
            }
            ImageRef::DockerArchive { path, reference } => {
                let temp = Arc::new(temp_dir("docker-archive")?);
                let layout = Layout::create(temp.path().join("layout"))?;
                let reader = berth_archive::DockerArchiveReader::open(path)?;
                // Without a NAME:TAG or @N, the archive must hold one image (as skopeo): never a silent pick.
                let image = match reference {
                    Some(which) => reader.select(which)?,
                    None => reader.only()?,
                };
                let desc = berth_archive::import_docker_archive(
                    &reader,
                    image,
                    &layout,
                    Some("imported"),
                    berth_spec::media_type::Compression::None,
                )?;
                let _ = desc;
                Ok(Source::Layout {
                    layout,
                    selector: Selector::Name("imported".into()),
                    label,
                    staging: Some(temp),
                })
            }
        }
    }

    /// Opens (creating as needed) where an image is written.
    pub fn open_dest(&self, image: &ImageRef) -> Result<Dest, CopyError> {
        let label = image.to_string();
        match image {
            ImageRef::Oci { path, reference } => Ok(Dest::Layout {
                layout: Layout::create(path)?,
                ref_name: reference.clone(),
                finish: Finish::Layout,
                label,
                staging: None,
            }),
            ImageRef::Store(s) => {
                if s.digest().is_some() {
                    return Err(CopyError::usage(format!(
                        "{label}: a store destination is named by NAME[:TAG], not by digest"
                    )));
                }
                Ok(Dest::Layout {
                    layout: Layout::create(self.store_path()?)?,
                    ref_name: s.ref_name(),
                    finish: Finish::Layout,
                    label,
                    staging: None,
                })
            }
            ImageRef::Docker(r) => {
                let registry = self.registry(r.registry_host(), &self.dest)?;
                Ok(Dest::Registry {
                    registry,
                    repo: r.repository().to_owned(),
                    tag: r
                        .tag()
                        .map(str::to_owned)
                        .or_else(|| r.digest().is_none().then(|| "latest".into())),
                    digest: r.digest().cloned(),
                    label,
                })
            }
            ImageRef::OciArchive { path, reference } => {
                let temp = Arc::new(temp_dir("oci-archive")?);
                let dir = temp.path().join("layout");
                // Several images per archive: an existing archive's images are kept.
                let layout = if path.exists() {
                    berth_archive::extract_oci_archive(path, &dir)?
                } else {
                    Layout::create(&dir)?
                };
                Ok(Dest::Layout {
                    layout,
                    ref_name: reference.clone(),
                    finish: Finish::OciArchive(path.clone()),
                    label,
                    staging: Some(temp),
                })
            }
            ImageRef::DockerArchive { path, reference } => {
                let temp = Arc::new(temp_dir("docker-archive")?);
                let layout = Layout::create(temp.path().join("layout"))?;
                let tags = match reference {
                    Some(DockerArchiveRef::Named(r)) => vec![r.familiar()],
                    Some(DockerArchiveRef::Index(_)) => {
                        return Err(CopyError::usage(format!(
                            "{label}: @INDEX selects an image to read; to write, give NAME:TAG or nothing"
                        )));
                    }
                    None => Vec::new(),
                };
                // Several images per archive: an existing archive's images are kept, as for oci-archive (they are
                // re-imported with their configs byte for byte and uncompressed layers, as the archive holds them).
                let mut kept = Vec::new();
                if path.metadata().is_ok_and(|m| m.len() > 0) {
                    let reader = berth_archive::DockerArchiveReader::open(path)?;
                    for (i, image) in reader.images().iter().enumerate() {
                        let desc = berth_archive::import_docker_archive(
                            &reader,
                            image,
                            &layout,
                            Some(&format!("berth-kept-{i}")),
                            berth_spec::media_type::Compression::None,
                        )?;
                        // In the short form the new image's tag has, so that a tag given again moves.
                        let tags = image
                            .repo_tags
                            .iter()
                            .map(|t| DockerReference::parse_normalized(t).map_or_else(|_| t.clone(), |r| r.familiar()))
                            .collect();
                        kept.push((desc, tags));
                    }
                }
                Ok(Dest::Layout {
                    layout,
                    ref_name: Some("berth-export".into()),
                    finish: Finish::DockerArchive(path.clone(), tags, kept),
                    label,
                    staging: Some(temp),
                })
            }
        }
    }
}

fn temp_dir(what: &str) -> Result<tempfile::TempDir, CopyError> {
    tempfile::Builder::new()
        .prefix(&format!("berth-copy-{what}-"))
        .tempdir()
        .map_err(CopyError::io("temporary directory"))
}

impl Source {
    /// How the user named the source.
    pub fn label(&self) -> &str {
        match self {
            Source::Layout { label, .. } | Source::Registry { label, .. } => label,
        }
    }

    /// The top-level manifest or index: (bytes, media type, digest).
    pub async fn top(&self) -> Result<(Vec<u8>, String, Digest), CopyError> {
        match self {
            Source::Layout { layout, selector, .. } => {
                let desc = match selector {
                    Selector::Name(n) => layout.resolve(Some(n))?,
                    Selector::Only => layout.resolve(None)?,
                    Selector::Digest(d) => layout.resolve_digest(d)?,
                    Selector::NamedDigest {
                        repository,
                        tag,
                        digest,
                    } => layout.resolve_named_digest(repository, tag.as_deref(), digest)?,
                };
                let digest = crate::plan::digest_of(&desc)?;
                let bytes = layout.read_blob_capped(&digest, desc.size(), DEFAULT_MAX_DOCUMENT_SIZE)?;
                Ok((bytes, desc.media_type().to_string(), digest))
            }
            Source::Registry {
                registry,
                repo,
                reference,
                ..
            } => {
                let m = registry.get_manifest(repo, reference, crate::plan::ACCEPT).await?;
                Ok((m.bytes, m.media_type, m.digest))
            }
        }
    }

    /// A manifest, index or config by descriptor, verified and capped.
    pub async fn document(&self, desc: &Descriptor) -> Result<Vec<u8>, CopyError> {
        let digest = crate::plan::digest_of(desc)?;
        match self {
            Source::Layout { layout, .. } => {
                Ok(layout.read_blob_capped(&digest, desc.size(), DEFAULT_MAX_DOCUMENT_SIZE)?)
            }
            Source::Registry { registry, repo, .. } => {
                let mt = desc.media_type().to_string();
                if berth_spec::media_type::is_manifest(&mt) || berth_spec::media_type::is_index(&mt) {
                    Ok(registry
                        .get_manifest(repo, &digest.to_string(), &[mt.as_str()])
                        .await?
                        .bytes)
                } else {
                    if desc.size() > DEFAULT_MAX_DOCUMENT_SIZE {
                        return Err(berth_spec::document::DocumentError::TooLarge {
                            source_name: format!("{}: {digest}", self.label()),
                            size: desc.size(),
                            limit: DEFAULT_MAX_DOCUMENT_SIZE,
                        }
                        .into());
                    }
                    let mut buf = Vec::new();
                    registry.get_blob(repo, &digest, desc.size(), &mut buf, &|_| {}).await?;
                    Ok(buf)
                }
            }
        }
    }

    /// The layout holding the blobs, when the source is one.
    pub fn layout(&self) -> Option<&Layout> {
        match self {
            Source::Layout { layout, .. } => Some(layout),
            Source::Registry { .. } => None,
        }
    }
}

impl Dest {
    /// How the user named the destination.
    pub fn label(&self) -> &str {
        match self {
            Dest::Layout { label, .. } | Dest::Registry { label, .. } => label,
        }
    }
}
