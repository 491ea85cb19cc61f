//! Image config -> OCI runtime process: the image-spec "conversion" rules (`conversion.md`), shared by the runner
//! and the builder's `RUN` step.
//!
//! [`convert`] turns an image's `config` plus the user's [`Overrides`] (Docker/podman semantics) into an
//! [`ImageRuntimeConfig`]: the command line, environment, working directory, parsed user, annotations, volumes and
//! exposed ports, all validated against hostile images. User *names* need the image's `/etc/passwd` and
//! `/etc/group`, which the caller reads safely inside the rootfs and hands to [`resolve_user`] as text. Finally
//! [`ImageRuntimeConfig::process`] builds the `process` object of a runtime spec; capabilities, rlimits and
//! `noNewPrivileges` are left to the caller.
//!
//! ```
//! use berth_spec::runtime_config::{convert, resolve_user, Overrides};
//! use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
//!
//! let config = ImageConfigurationBuilder::default()
//!     .config(
//!         ConfigBuilder::default()
//!             .entrypoint(vec!["/bin/echo".to_string()])
//!             .cmd(vec!["hello".to_string()])
//!             .user("app")
//!             .build()?,
//!     )
//!     .build()?;
//! let overrides = Overrides { cmd: Some(vec!["bye".into()]), ..Overrides::default() };
//! let converted = convert(&config, &overrides)?;
//! assert_eq!(converted.args, ["/bin/echo", "bye"]);
//!
//! let passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
//! let group = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n";
//! let user = resolve_user(&converted.user, passwd, group)?;
//! assert_eq!((user.uid, user.gid, user.additional_gids.clone()), (1000, 1000, vec![10]));
//!
//! let process = converted.process(&user, false);
//! assert_eq!(process.cwd().to_str(), Some("/"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod env;
mod error;
mod path;
mod user;

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Process, Spec};

pub use env::{DEFAULT_PATH, MAX_ARGS_AND_ENV_BYTES};
pub use error::ConversionError;
pub use path::clean_absolute;
pub use user::{MAX_ID, ResolvedUser, UserPart, UserSpec, home_of, resolve_user};

/// Annotation carrying the image's `os`.
pub const ANNOTATION_OS: &str = "org.opencontainers.image.os";
/// Annotation carrying the image's `architecture`.
pub const ANNOTATION_ARCHITECTURE: &str = "org.opencontainers.image.architecture";
/// Annotation carrying the image's `variant`.
pub const ANNOTATION_VARIANT: &str = "org.opencontainers.image.variant";
/// Annotation carrying the image's `os.version`.
pub const ANNOTATION_OS_VERSION: &str = "org.opencontainers.image.os.version";
/// Annotation carrying the image's `os.features`, comma-separated.
pub const ANNOTATION_OS_FEATURES: &str = "org.opencontainers.image.os.features";
/// Annotation carrying the image's `author` (singular, as `conversion.md` spells it).
pub const ANNOTATION_AUTHOR: &str = "org.opencontainers.image.author";
/// Annotation carrying the image's `created` timestamp, verbatim.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation carrying `Config.StopSignal`.
pub const ANNOTATION_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
/// Annotation carrying the sorted `Config.ExposedPorts` keys, comma-separated.
pub const ANNOTATION_EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";

/// What the user asked for on top of the image config, with Docker/podman `run` semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--entrypoint`. `Some(vec![])` clears the image's Entrypoint. A non-empty override also drops the image's
    /// Cmd (Docker's rule); an empty one keeps it, exactly as Docker does for `--entrypoint ""`.
    pub entrypoint: Option<Vec<String>>,
    /// The COMMAND after the image name; replaces the image's Cmd. `None` and `Some(vec![])` both mean "no COMMAND
    /// given" (Docker cannot distinguish them either).
    pub cmd: Option<Vec<String>>,
    /// `-e` entries, applied after the image's Env. `KEY=VALUE` sets or replaces; a bare `KEY` takes the value from
    /// the host (see [`convert_with_host_env`]) and is skipped when the host does not have it.
    pub env: Vec<String>,
    /// `-w`: must be absolute. `None` or `Some("")` keep the image's WorkingDir.
    pub workdir: Option<String>,
    /// `-u`: `USER[:GROUP]`. `None` or `Some("")` keep the image's User.
    pub user: Option<String>,
}

/// The result of [`convert`]: the image config with the overrides applied, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRuntimeConfig {
    /// `process.args`: Entrypoint followed by Cmd. Never empty.
    pub args: Vec<String>,
    /// `process.env`: `KEY=VALUE` entries, unique keys, always including `PATH`.
    pub env: Vec<String>,
    /// `process.cwd`: absolute and lexically normalized.
    pub cwd: String,
    /// The parsed user; resolve it with [`resolve_user`].
    pub user: UserSpec,
    /// The runtime config's `annotations` (see [`convert`] for precedence).
    pub annotations: BTreeMap<String, String>,
    /// `Config.Volumes`: absolute, normalized, never `/`, sorted, unique. Mounting them is the caller's decision.
    pub volumes: Vec<String>,
    /// `Config.ExposedPorts` keys, sorted.
    pub exposed_ports: Vec<String>,
    /// `Config.StopSignal`, verbatim.
    pub stop_signal: Option<String>,
}

/// Converts an image config plus the user's overrides. A bare `KEY` in [`Overrides::env`] is refused
/// ([`ConversionError::EnvNeedsValue`]); use [`convert_with_host_env`] to resolve those.
///
/// The rules, from image-spec `conversion.md` with Docker's choices where it leaves room:
/// - `args` = Entrypoint + Cmd after overrides; both empty is [`ConversionError::NoCommand`].
/// - `env` = image Env then overrides, a later entry for the same key replacing the earlier one in place; `PATH`
///   defaults to [`DEFAULT_PATH`]. Entries without `=` in the image, empty keys and NUL bytes are refused, as are
///   arguments plus environment beyond [`MAX_ARGS_AND_ENV_BYTES`].
/// - `cwd` = WorkingDir (default `/`; relative means relative to `/`), normalized lexically without escaping `/`,
///   and refused under `/proc/<pid>/fd` (runc CVE-2024-21626).
/// - `user` = User parsed by [`UserSpec::parse`] (empty means root).
/// - `annotations`: `org.opencontainers.image.{os, architecture, variant, os.version, os.features, author, created,
///   stopSignal, exposedPorts}` from the image, then `Config.Labels`. Where a label has the same key as one of
///   these implicit annotations, **the label wins**: `conversion.md` says the value in `Config.Labels` MUST take
///   precedence, and that a converter MUST NOT modify annotation values the image specifies.
/// - `volumes` = `Config.Volumes` keys, absolute, normalized (`..` cannot escape, containerd CVE-2022-23648) and
///   not `/`.
pub fn convert(config: &ImageConfiguration, overrides: &Overrides) -> Result<ImageRuntimeConfig, ConversionError> {
    convert_inner(config, overrides, None)
}

/// Like [`convert`], but a bare `KEY` in [`Overrides::env`] takes its value from `host_env(KEY)` and is skipped
/// when that returns `None` (Docker's `-e KEY`). The runner passes a lookup in its own environment; the builder has
/// no reason to.
pub fn convert_with_host_env(
    config: &ImageConfiguration,
    overrides: &Overrides,
    host_env: impl Fn(&str) -> Option<String>,
) -> Result<ImageRuntimeConfig, ConversionError> {
    convert_inner(config, overrides, Some(&host_env))
}

fn convert_inner(
    image: &ImageConfiguration,
    overrides: &Overrides,
    host_env: env::HostEnv<'_>,
) -> Result<ImageRuntimeConfig, ConversionError> {
    let config = image.config().as_ref();
    let field = |get: fn(&oci_spec::image::Config) -> &Option<Vec<String>>| -> &[String] {
        config.and_then(|c| get(c).as_deref()).unwrap_or_default()
    };

    let args = command(field(|c| c.entrypoint()), field(|c| c.cmd()), overrides);
    if args.is_empty() {
        return Err(ConversionError::NoCommand);
    }
    let env = env::merge(field(|c| c.env()), &overrides.env, host_env)?;
    env::check_exec_block(&args, &env)?;

    let cwd = path::working_dir(
        config.and_then(|c| c.working_dir().as_deref()),
        overrides.workdir.as_deref(),
    )?;

    let user = match overrides.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => user,
        None => config.and_then(|c| c.user().as_deref()).unwrap_or(""),
    };
    let user = UserSpec::parse(user)?;

    let volumes = path::volumes(field(|c| c.volumes()))?;
    let mut exposed_ports = field(|c| c.exposed_ports()).to_vec();
    exposed_ports.sort_unstable();
    exposed_ports.dedup();
    let stop_signal = config.and_then(|c| c.stop_signal().clone());

    Ok(ImageRuntimeConfig {
        annotations: annotations(image, stop_signal.as_deref(), &exposed_ports),
        args,
        env,
        cwd,
        user,
        volumes,
        exposed_ports,
        stop_signal,
    })
}

/// Entrypoint + Cmd after overrides, following Docker's `merge` of user and image config: a non-empty entrypoint
/// override drops the image's Cmd; an empty or absent one keeps it unless a COMMAND is given.
fn command(image_entrypoint: &[String], image_cmd: &[String], overrides: &Overrides) -> Vec<String> {
    let user_cmd = overrides.cmd.as_deref().filter(|c| !c.is_empty());
    let (entrypoint, cmd) = match overrides.entrypoint.as_deref() {
        Some(entrypoint) if !entrypoint.is_empty() => (entrypoint, user_cmd.unwrap_or_default()),
        Some(_) => (&[][..], user_cmd.unwrap_or(image_cmd)),
        None => (image_entrypoint, user_cmd.unwrap_or(image_cmd)),
    };
    entrypoint.iter().chain(cmd).cloned().collect()
}

/// Implicit annotations from the image, then `Config.Labels` over them (labels take precedence, per
/// `conversion.md`).
fn annotations(
    image: &ImageConfiguration,
    stop_signal: Option<&str>,
    exposed_ports: &[String],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(key.to_owned(), value);
        }
    };
    set(ANNOTATION_OS, Some(image.os().to_string()));
    set(ANNOTATION_ARCHITECTURE, Some(image.architecture().to_string()));
    set(ANNOTATION_VARIANT, image.variant().clone());
    set(ANNOTATION_OS_VERSION, image.os_version().clone());
    set(
        ANNOTATION_OS_FEATURES,
        image.os_features().as_ref().map(|f| f.join(",")),
    );
    set(ANNOTATION_AUTHOR, image.author().clone());
    set(ANNOTATION_CREATED, image.created().clone());
    set(ANNOTATION_STOP_SIGNAL, stop_signal.map(str::to_owned));
    set(ANNOTATION_EXPOSED_PORTS, Some(exposed_ports.join(",")));
    if let Some(labels) = image.labels_of_config() {
        out.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

impl ImageRuntimeConfig {
    /// The runtime spec's `process`: args, env, cwd, the resolved user and `terminal`.
    ///
    /// Capabilities, rlimits and `noNewPrivileges` are left unset (`None`): the runner or builder decides them.
    pub fn process(&self, resolved: &ResolvedUser, terminal: bool) -> Process {
        let mut process = Process::default();
        process.set_capabilities(None);
        process.set_rlimits(None);
        process.set_no_new_privileges(None);
        self.fill_process(&mut process, resolved, terminal);
        process
    }

    /// Writes the conversion into an existing runtime spec: replaces args, env, cwd, user and terminal of its
    /// `process` (keeping whatever capabilities, rlimits and other settings the caller put there, or creating a
    /// process as [`process`](Self::process) does), and adds the annotations whose keys the spec does not already
    /// have — the caller's own annotations are external inputs and win. Volumes are not mounted here.
    pub fn apply_to_spec(&self, spec: &mut Spec, resolved: &ResolvedUser, terminal: bool) {
        match spec.process_mut() {
            Some(process) => self.fill_process(process, resolved, terminal),
            None => {
                spec.set_process(Some(self.process(resolved, terminal)));
            }
        }
        let annotations = spec.annotations_mut().get_or_insert_with(Default::default);
        for (key, value) in &self.annotations {
            annotations.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }

    fn fill_process(&self, process: &mut Process, resolved: &ResolvedUser, terminal: bool) {
        let user = process.user_mut();
        user.set_uid(resolved.uid);
        user.set_gid(resolved.gid);
        let additional = &resolved.additional_gids;
        user.set_additional_gids((!additional.is_empty()).then(|| additional.clone()));
        process.set_terminal(Some(terminal));
        process.set_args(Some(self.args.clone()));
        process.set_env(Some(self.env.clone()));
        process.set_cwd(self.cwd.clone().into());
    }
}

#[cfg(test)]
mod tests;
