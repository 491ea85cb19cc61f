//! Errors: every one names the registry, the repository and the manifest or blob involved, and says what to do.

use std::fmt;
use std::path::PathBuf;

use berth_spec::Digest;

/// What a request was about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// The `/v2/` API check every client makes first.
    ApiCheck,
    /// A manifest, by tag or digest.
    Manifest(String),
    /// A blob.
    Blob(Digest),
    /// An upload of a blob (including cross-repository mounts).
    Upload(Digest),
    /// The tag list.
    Tags,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::ApiCheck => f.write_str("API check (GET /v2/)"),
            Subject::Manifest(r) => write!(f, "manifest {r}"),
            Subject::Blob(d) => write!(f, "blob {d}"),
            Subject::Upload(d) => write!(f, "upload of blob {d}"),
            Subject::Tags => f.write_str("tag list"),
        }
    }
}

/// Where a failed request went: registry host, repository and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The registry host as configured, e.g. `localhost:5000` or `docker.io`.
    pub host: String,
    /// The repository path (empty for registry-wide requests).
    pub repo: String,
    /// What was asked for.
    pub subject: Subject,
}

impl Target {
    pub(crate) fn new(host: &str, repo: &str, subject: Subject) -> Box<Self> {
        Box::new(Target {
            host: host.to_owned(),
            repo: repo.to_owned(),
            subject,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repo.is_empty() {
            write!(f, "{}: {}", self.host, self.subject)
        } else {
            write!(f, "{}/{}: {}", self.host, self.repo, self.subject)
        }
    }
}

/// An error code from a distribution error body (`{"errors":[{"code":"MANIFEST_INVALID",…}]}`): the codes the
/// distribution spec defines, the few more CNCF distribution sends, and any other as [`ErrorCode::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: the blob is not in the repository.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload session is in an invalid state.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: the upload session does not exist (any more).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: content does not match the digest given.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: the manifest references a blob the repository lacks.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: the manifest is malformed or of a kind the registry refuses.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no such manifest.
    ManifestUnknown,
    /// `NAME_INVALID`: the repository name is refused.
    NameInvalid,
    /// `NAME_UNKNOWN`: no such repository.
    NameUnknown,
    /// `SIZE_INVALID`: the content length does not match.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: access denied.
    Denied,
    /// `UNSUPPORTED`: the operation (or the manifest's format) is unsupported.
    Unsupported,
    /// `TOOMANYREQUESTS`: rate limited.
    TooManyRequests,
    /// `RANGE_INVALID` (CNCF distribution): a `Content-Range` that does not continue the upload.
    RangeInvalid,
    /// `UNKNOWN` (CNCF distribution): an unclassified server error.
    Unknown,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    const NAMES: [(&'static str, ErrorCode); 16] = [
        ("BLOB_UNKNOWN", ErrorCode::BlobUnknown),
        ("BLOB_UPLOAD_INVALID", ErrorCode::BlobUploadInvalid),
        ("BLOB_UPLOAD_UNKNOWN", ErrorCode::BlobUploadUnknown),
        ("DIGEST_INVALID", ErrorCode::DigestInvalid),
        ("MANIFEST_BLOB_UNKNOWN", ErrorCode::ManifestBlobUnknown),
        ("MANIFEST_INVALID", ErrorCode::ManifestInvalid),
        ("MANIFEST_UNKNOWN", ErrorCode::ManifestUnknown),
        ("NAME_INVALID", ErrorCode::NameInvalid),
        ("NAME_UNKNOWN", ErrorCode::NameUnknown),
        ("SIZE_INVALID", ErrorCode::SizeInvalid),
        ("UNAUTHORIZED", ErrorCode::Unauthorized),
        ("DENIED", ErrorCode::Denied),
        ("UNSUPPORTED", ErrorCode::Unsupported),
        ("TOOMANYREQUESTS", ErrorCode::TooManyRequests),
        ("RANGE_INVALID", ErrorCode::RangeInvalid),
        ("UNKNOWN", ErrorCode::Unknown),
    ];

    /// The code for `name` as a registry spells it (exactly; codes are upper case).
    pub fn parse(name: &str) -> ErrorCode {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| ErrorCode::Other(name.to_owned()), |(_, c)| c.clone())
    }

    /// The code as registries spell it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Other(s) => s,
            known => Self::NAMES
                .iter()
                .find(|(_, c)| c == known)
                .map(|(n, _)| *n)
                .expect("every named code is in the table"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry host is not a valid `HOST[:PORT]`.
    #[error("invalid registry host {host:?}: {reason}; write it as HOST[:PORT], e.g. localhost:5000 or quay.io")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A repository name that the distribution grammar refuses.
    #[error(
        "invalid repository name {repo:?} for registry {host}: use lowercase path components such as library/alpine"
    )]
    InvalidRepository {
        /// The registry host.
        host: String,
        /// The repository as given.
        repo: String,
    },
    /// A manifest reference that is neither a tag nor a digest.
    #[error("invalid manifest reference {reference:?} for {host}/{repo}: expected a tag or a digest (sha256:...)")]
    InvalidReference {
        /// The registry host.
        host: String,
        /// The repository.
        repo: String,
        /// The reference as given.
        reference: String,
    },
    /// `USER:PASSWORD` could not be parsed.
    #[error("invalid credentials: {reason}; write them as USER:PASSWORD")]
    InvalidCredentials {
        /// What is wrong.
        reason: String,
    },
    /// The registry could not be reached, or the connection failed, after all retries.
    #[error("{target}: {detail}; check the host name, the network, and --tls-verify")]
    Transport {
        /// The request.
        target: Box<Target>,
        /// The error chain.
        detail: String,
    },
    /// 401 after authenticating (or with no credentials to offer).
    #[error("{target}: 401 Unauthorized{detail}; check --creds / the authfile (or log in to the registry)")]
    Unauthorized {
        /// The request.
        target: Box<Target>,
        /// The registry's message, prefixed with ": " when present.
        detail: String,
    },
    /// 403: authenticated, but not allowed.
    #[error("{target}: 403 Forbidden{detail}; the account has no permission for this repository (not retried)")]
    Denied {
        /// The request.
        target: Box<Target>,
        /// The registry's message, prefixed with ": " when present.
        detail: String,
    },
    /// 404 with `BLOB_UNKNOWN`, or 404 for a blob request.
    #[error("{target}: 404 blob unknown to the registry; check the digest, or push the blob first")]
    BlobUnknown {
        /// The request.
        target: Box<Target>,
    },
    /// 404 with `MANIFEST_UNKNOWN`, or 404 for a manifest request.
    #[error("{target}: 404 manifest unknown; check the tag or digest (list tags with list-tags)")]
    ManifestUnknown {
        /// The request.
        target: Box<Target>,
    },
    /// 404 with `NAME_UNKNOWN`.
    #[error("{target}: 404 repository unknown; check the repository name")]
    RepositoryUnknown {
        /// The request.
        target: Box<Target>,
    },
    /// Any other status the operation cannot continue from (including 429 and 5xx once retries ran out).
    #[error("{target}: unexpected HTTP {status}{detail}")]
    Status {
        /// The request.
        target: Box<Target>,
        /// The HTTP status code.
        status: u16,
        /// The first error code of the registry's error body, if it sent one.
        code: Option<ErrorCode>,
        /// The registry's message and advice, prefixed with ": " when present.
        detail: String,
    },
    /// Content received does not hash to the digest it was requested by.
    #[error(
        "{target}: received content with digest {found}, expected {expected}; the registry or a proxy corrupted it"
    )]
    DigestMismatch {
        /// The request.
        target: Box<Target>,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes received.
        found: Digest,
    },
    /// A body longer or shorter than the descriptor says.
    #[error("{target}: the registry sent {found} bytes (or announced them), the descriptor says {expected}")]
    SizeMismatch {
        /// The request.
        target: Box<Target>,
        /// The size from the descriptor.
        expected: u64,
        /// The size received or announced.
        found: u64,
    },
    /// A document (manifest, tag list, token) larger than Berth accepts.
    #[error("{target}: response larger than the {limit}-byte limit; refusing to read it")]
    TooLarge {
        /// The request.
        target: Box<Target>,
        /// The limit in bytes.
        limit: u64,
    },
    /// A 206 whose `Content-Range` does not match the request.
    #[error("{target}: asked for bytes {offset}- but Content-Range is {value:?}; cannot resume safely")]
    BadContentRange {
        /// The request.
        target: Box<Target>,
        /// The offset asked for.
        offset: u64,
        /// The header received.
        value: String,
    },
    /// An upload response without the `Location` the protocol requires.
    #[error("{target}: HTTP {status} without a Location header; the registry does not follow the distribution spec")]
    MissingLocation {
        /// The request.
        target: Box<Target>,
        /// The status received.
        status: u16,
    },
    /// A malformed header or body.
    #[error("{target}: malformed response: {reason}")]
    BadResponse {
        /// The request.
        target: Box<Target>,
        /// What is wrong.
        reason: String,
    },
    /// A redirect Berth refuses to follow (loop, too many hops, https to http).
    #[error("{target}: {reason}")]
    Redirect {
        /// The request.
        target: Box<Target>,
        /// What is wrong.
        reason: String,
    },
    /// The token server (bearer auth) failed or answered something unusable.
    #[error("registry {host}: token request to {realm} failed: {reason}")]
    Token {
        /// The registry host.
        host: String,
        /// The realm URL from `WWW-Authenticate`.
        realm: String,
        /// The token server's HTTP status, when it answered with an error.
        status: Option<u16>,
        /// What went wrong, with advice.
        reason: String,
    },
    /// An auth file could not be read or parsed.
    #[error("auth file {}: {reason}", path.display())]
    Authfile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} for {host}: {reason}")]
    CredentialHelper {
        /// The helper name (after `docker-credential-`).
        helper: String,
        /// The registry host asked about.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing a downloaded blob to the caller's sink failed.
    #[error("{target}: writing the downloaded data failed")]
    Sink {
        /// The request.
        target: Box<Target>,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the local content of an upload failed, or it is not what the caller said it is.
    #[error("{target}: the local content to upload {reason}")]
    Source {
        /// The request.
        target: Box<Target>,
        /// What is wrong (an I/O error, or a size or digest that differs from what was promised).
        reason: String,
    },
    /// An HTTP client could not be built (TLS setup).
    #[error("registry {host}: cannot set up the HTTP client: {detail}")]
    Client {
        /// The registry host.
        host: String,
        /// The error chain.
        detail: String,
    },
}

impl RegistryError {
    /// Whether the registry refused a manifest as such (400 or 415 with an "invalid" or "unsupported" code, or
    /// none): a registry that does not take the manifest's format, for instance.
    pub fn is_manifest_refusal(&self) -> bool {
        matches!(self, RegistryError::Status { status: 400 | 415, code, target, .. }
            if matches!(target.subject, Subject::Manifest(_))
                && matches!(code, None | Some(ErrorCode::ManifestInvalid | ErrorCode::Unsupported)))
    }

    /// Whether authentication failed: the registry answered 401 even after the credentials (or the token they
    /// bought) were offered, or had none to offer, or its token server refused the credentials (401/403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { .. }
                | RegistryError::Token {
                    status: Some(401 | 403),
                    ..
                }
        )
    }

    /// The registry's error code, for the errors that carry one ([`Status`](Self::Status)).
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            RegistryError::Status { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// Whether trying the whole operation again could help (network trouble, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The HTTP status involved, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Unauthorized { .. } => Some(401),
            RegistryError::Denied { .. } => Some(403),
            RegistryError::BlobUnknown { .. }
            | RegistryError::ManifestUnknown { .. }
            | RegistryError::RepositoryUnknown { .. } => Some(404),
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An error's message with its sources, `a: b: c`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    berth_spec::error_chain(error)
}
