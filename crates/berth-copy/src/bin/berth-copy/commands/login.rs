//! `berth-copy login` / `logout`: credentials written to (and removed from) the auth file every tool reads, as
//! skopeo and podman do it.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_registry::{ClientOptions, Credentials, Registry};
use clap::Args;

#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The registry: HOST[:PORT] (docker:// and a repository path are accepted and ignored).
    pub(crate) registry: String,
    /// The user name.
    #[arg(short, long)]
    pub(crate) username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long)]
    pub(crate) password: Option<String>,
    /// Read the password from standard input (one line).
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// The auth file to write (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
    /// /run/containers/UID/auth.json; skopeo's and podman's choice).
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub(crate) authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates (default: automatic; plain HTTP only for localhost).
    #[arg(long)]
    pub(crate) tls_verify: Option<bool>,
    /// Store the credentials without checking them with the registry.
    #[arg(long)]
    pub(crate) no_check: bool,
}

#[derive(Args)]
pub(crate) struct LogoutArgs {
    /// The registry: HOST[:PORT].
    #[arg(required_unless_present = "all")]
    pub(crate) registry: Option<String>,
    /// Remove the credentials of every registry from the auth file.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// The auth file to edit (default as for login).
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub(crate) authfile: Option<PathBuf>,
}

/// `docker://localhost:5000/x` or `localhost:5000` → `localhost:5000`.
fn host_of(registry: &str) -> Result<String> {
    let bare = registry
        .trim_start_matches("docker://")
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or_default();
    if host.is_empty() {
        bail!("{registry:?}: give a registry host, such as localhost:5000 or registry.example.com");
    }
    Ok(host.to_owned())
}

pub(crate) async fn login(a: LoginArgs) -> Result<()> {
    let host = host_of(&a.registry)?;
    let Some(username) = a.username.clone() else {
        bail!("login needs --username (and --password-stdin, or --password)");
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("give --password or --password-stdin, not both"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => bail!("login needs the password: --password-stdin (recommended) or --password"),
    };
    let file = berth_registry::login_authfile(a.authfile.as_deref());
    if !a.no_check {
        let opts = ClientOptions {
            tls_verify: a.tls_verify,
            credentials: Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            ..ClientOptions::default()
        };
        let registry = Registry::new(&host, &opts)?;
        registry
            .check_login()
            .await
            .with_context(|| format!("logging in to {host} as {username}"))?;
    }
    berth_registry::store_credentials(&file, &host, &username, &password)?;
    eprintln!("Login Succeeded! (credentials for {host} in {})", file.display());
    Ok(())
}

pub(crate) fn logout(a: LogoutArgs) -> Result<()> {
    let file = berth_registry::login_authfile(a.authfile.as_deref());
    if a.all {
        berth_registry::remove_credentials(&file, None)?;
        eprintln!("Removed the credentials of every registry from {}", file.display());
        return Ok(());
    }
    let host = host_of(a.registry.as_deref().unwrap_or_default())?;
    if !berth_registry::remove_credentials(&file, Some(&host))? {
        bail!(
            "not logged in to {host}: {} holds no credentials for it",
            file.display()
        );
    }
    eprintln!("Removed the credentials for {host} from {}", file.display());
    Ok(())
}
