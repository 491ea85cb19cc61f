//! One module per verb: its options (clap) and a short function over the library.

pub(crate) mod bundle;
pub(crate) mod exec;
pub(crate) mod gc;
pub(crate) mod inspect;
pub(crate) mod kill;
pub(crate) mod logs;
pub(crate) mod monitor;
pub(crate) mod ps;
pub(crate) mod pull;
pub(crate) mod rm;
pub(crate) mod run;
pub(crate) mod stop;
pub(crate) mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_run::RunError;
use berth_run::pull::{PullPolicy, PullRequest};
use berth_run::state::{ContainerRecord, StateDir};
use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef};
use berth_transfer::{Progress, Silent};
use clap::Args;

use crate::Cli;

/// What `main` exits with: a container's exit code, or Berth's own failure.
pub(crate) type Outcome = Result<u8>;

pub(crate) fn parse_platform(text: Option<&str>) -> Result<Platform> {
    Ok(match text {
        Some(p) => Platform::parse(p).with_context(|| format!("--platform {p}"))?,
        None => Platform::host(),
    })
}

/// When and how `docker://` images are pulled into the store.
#[derive(Args, Clone)]
pub(crate) struct PullArgs {
    /// Pull a docker:// image: missing (when not in the store), always, or never.
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub(crate) pull: String,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// How to reach registries.
#[derive(Args, Clone)]
pub(crate) struct RegistryArgs {
    #[command(flatten)]
    pub(crate) flags: berth_cli::args::RegistryFlags,
    /// No pull or unpacking progress on stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
}

impl PullArgs {
    /// The image to open: a `docker://` image is pulled into the store first (as `policy` says) and then named
    /// from there.
    pub(crate) fn resolve(&self, store: &Path, image: ImageRef, platform: &Platform) -> Result<ImageRef> {
        let ImageRef::Docker(reference) = image else {
            return Ok(image);
        };
        let policy: PullPolicy = self
            .pull
            .parse()
            .map_err(|e: String| RunError::option(format!("--pull {}", self.pull), e))?;
        let name = berth_run::pull::pull(&self.registry.request(&reference, store, platform, policy)?)?;
        Ok(ImageRef::Store(name))
    }
}

impl RegistryArgs {
    /// Progress on stderr (pulls, unpacking), or none with `--quiet`.
    pub(crate) fn progress(&self) -> Arc<dyn Progress> {
        if self.quiet {
            Arc::new(Silent)
        } else {
            Arc::new(berth_cli::progress::Bars::new(false))
        }
    }

    pub(crate) fn request<'a>(
        &self,
        reference: &'a DockerReference,
        store: &'a Path,
        platform: &'a Platform,
        policy: PullPolicy,
    ) -> Result<PullRequest<'a>> {
        let progress = self.progress();
        Ok(PullRequest {
            reference,
            store,
            platform,
            policy,
            user_agent: format!("berth-run/{}", env!("CARGO_PKG_VERSION")),
            access: self.flags.access()?,
            progress,
        })
    }
}

#[derive(Args)]
pub(crate) struct ContainersArgs {
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// Applies `action` to each named container, printing each name that succeeded (as Docker does); the first
/// failure is reported after the others were tried.
pub(crate) fn each(
    cli: &Cli,
    names: &[String],
    action: impl Fn(&StateDir, &ContainerRecord) -> Result<(), RunError>,
) -> Outcome {
    let state = cli.state()?;
    let mut failures = Vec::new();
    for name in names {
        match state.find(name).and_then(|r| action(&state, &r)) {
            Ok(()) => println!("{name}"),
            Err(e) => failures.push(e),
        }
    }
    let count = failures.len();
    match failures.into_iter().next() {
        None => Ok(0),
        Some(first) if count == 1 => Err(first.into()),
        Some(first) => Err(anyhow::Error::from(first).context(format!("{count} containers failed; the first"))),
    }
}

impl Cli {
    pub(crate) fn store(&self) -> Result<PathBuf> {
        match &self.store {
            Some(path) => Ok(path.clone()),
            None => Ok(berth_spec::store::trusted_default_store_path()?),
        }
    }

    pub(crate) fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(berth_run::layers::default_cache_path)
    }

    pub(crate) fn state(&self) -> Result<StateDir> {
        let root = self.state.clone().unwrap_or_else(berth_run::state::default_state_path);
        Ok(StateDir::open(&root)?)
    }
}
