//! Command-line flags every tool spells the same way (skopeo's and podman's spelling).

use std::path::PathBuf;

use berth_registry::Credentials;
use berth_transfer::RegistryAccess;
use clap::Args;

/// How to reach registries: `--tls-verify`, `--creds`, `--authfile`, `--retry-times`.
#[derive(Args, Clone, Debug, Default)]
pub struct RegistryFlags {
    /// Require HTTPS with verified certificates (default: plain HTTP only for localhost and 127.0.0.0/8).
    #[arg(long, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Registry credentials, USER[:PASSWORD].
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// A containers-auth.json or docker config.json with registry credentials.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Retries of failed registry requests.
    #[arg(long, value_name = "N")]
    pub retry_times: Option<u32>,
}

impl RegistryFlags {
    /// The transfer engine's registry access these flags ask for.
    pub fn access(&self) -> anyhow::Result<RegistryAccess> {
        Ok(RegistryAccess {
            creds: self.creds.as_deref().map(Credentials::parse).transpose()?,
            authfile: self.authfile.clone(),
            tls_verify: self.tls_verify,
            retry_times: self.retry_times,
        })
    }
}
