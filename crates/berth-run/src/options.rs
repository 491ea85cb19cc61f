//! The container options of `berth-run`, spelled as podman and Docker spell them, and their translation into
//! [`SpecOptions`].

use std::path::{Path, PathBuf};

use berth_sandbox::mounts::{parse_mount, parse_volume};
use berth_sandbox::options::parse_size;
use berth_sandbox::{SeccompChoice, SpecOptions};
use berth_spec::runtime_config::Overrides;
use clap::Args;

use crate::RunError;

/// Largest `--env-file` read.
const MAX_ENV_FILE: u64 = 1 << 20;

/// Options that shape a container's runtime config.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ContainerFlags {
    /// Set an environment variable: KEY=VALUE, or KEY to take the value from this environment.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file: one KEY=VALUE or KEY per line, '#' comments.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Run as USER or USER:GROUP (names from the image's /etc/passwd and /etc/group, or numeric ids).
    #[arg(short = 'u', long = "user", allow_hyphen_values = true)]
    pub user: Option<String>,
    /// Working directory inside the container (absolute).
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Replace the image's entrypoint: a program, or a JSON array; "" clears it.
    #[arg(long = "entrypoint", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// The container's hostname.
    #[arg(long = "hostname")]
    pub hostname: Option<String>,
    /// Network: host (share the host's), none (only loopback) or private.
    #[arg(long = "net", visible_alias = "network", value_name = "MODE")]
    pub net: Option<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Bind-mount a host path: HOST-PATH:CONTAINER-PATH, or HOST-PATH:CONTAINER-PATH:ro.
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volume: Vec<String>,
    /// Mount: type=bind,source=…,target=… (optionally ,readonly) or type=tmpfs,target=… (optionally
    /// ,tmpfs-size=… and ,tmpfs-mode=…).
    #[arg(long = "mount", value_name = "type=…")]
    pub mount: Vec<String>,
    /// Add a capability (NET_ADMIN, CAP_SYS_PTRACE, ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability and device, no seccomp filter, no masked paths.
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g).
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// CPU limit, in CPUs (1.5 = one and a half).
    #[arg(long = "cpus")]
    pub cpus: Option<String>,
    /// Limit on the number of processes (0 or -1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Give the process a terminal.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Add an annotation to the runtime config: KEY=VALUE. Unlike image labels, these may use the namespaces
    /// runtimes act on (run.oci.*, org.systemd.property.*, …).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
}

impl ContainerFlags {
    /// Translates the flags (and the COMMAND after the image) into spec options.
    pub fn to_spec_options(&self, command: &[String]) -> Result<SpecOptions, RunError> {
        let mut env = Vec::new();
        for file in &self.env_file {
            env.extend(read_env_file(file)?);
        }
        env.extend(self.env.iter().cloned());
        let mut opts = SpecOptions {
            hostname: self.hostname.clone(),
            net: match &self.net {
                Some(net) => net.parse()?,
                None => Default::default(),
            },
            read_only: self.read_only,
            privileged: self.privileged,
            cap_add: self.cap_add.iter().map(|c| c.parse()).collect::<Result<_, _>>()?,
            cap_drop: self.cap_drop.iter().map(|c| c.parse()).collect::<Result<_, _>>()?,
            memory: self.memory.as_deref().map(|m| parse_size("--memory", m)).transpose()?,
            cpus: self.cpus.as_deref().map(parse_cpus).transpose()?,
            pids_limit: self.pids_limit,
            terminal: self.tty,
            overrides: Overrides {
                entrypoint: self.entrypoint.as_deref().map(parse_entrypoint).transpose()?,
                cmd: (!command.is_empty()).then(|| command.to_vec()),
                env,
                workdir: self.workdir.clone(),
                user: self.user.clone(),
            },
            ..SpecOptions::default()
        };
        for v in &self.volume {
            opts.mounts.push(parse_volume(v)?);
        }
        for m in &self.mount {
            opts.mounts.push(parse_mount(m)?);
        }
        for opt in &self.security_opt {
            apply_security_opt(&mut opts, opt)?;
        }
        for a in &self.annotation {
            let (key, value) = a
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| RunError::option(format!("--annotation {a}"), "write KEY=VALUE"))?;
            opts.annotations.insert(key.to_owned(), value.to_owned());
        }
        Ok(opts)
    }
}

fn parse_cpus(text: &str) -> Result<f64, RunError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| RunError::option(format!("--cpus {text}"), "not a number of CPUs; write e.g. 1.5"))
}

/// `--entrypoint`: a JSON array (podman) or a single program (Docker); the empty string clears the entrypoint.
pub fn parse_entrypoint(text: &str) -> Result<Vec<String>, RunError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| {
            RunError::option(
                format!("--entrypoint {text}"),
                format!("not a JSON array of strings ({e}); write '[\"/bin/sh\", \"-c\"]' or a single program"),
            )
        });
    }
    Ok(vec![text.to_owned()])
}

/// Reads an env file: `KEY=VALUE` or `KEY` lines (leading blanks ignored), blank lines and `#` comments skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<String>, RunError> {
    use std::io::Read;
    let option = || format!("--env-file {}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ENV_FILE + 1).read_to_string(&mut text))
        .map_err(|e| RunError::option(option(), format!("cannot read it: {e}")))?;
    if text.len() as u64 > MAX_ENV_FILE {
        return Err(RunError::option(
            option(),
            format!("it is larger than {MAX_ENV_FILE} bytes"),
        ));
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // As Docker: a name with blanks in it (`K = v`, `export K=v`) is a mistake, not a variable.
        let name = line.split('=').next().unwrap_or_default();
        if name.is_empty() {
            return Err(RunError::option(
                format!("{}:{}", option(), n + 1),
                "a line starts with '='; write NAME=VALUE",
            ));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(RunError::option(
                format!("{}:{}", option(), n + 1),
                format!("variable {name:?} has blanks in its name; write NAME=VALUE without spaces around the '='"),
            ));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

/// `--security-opt`: `no-new-privileges[=true|false]`, `seccomp=unconfined`, `seccomp=FILE` (also with `:`);
/// `label=…` and `apparmor=…` are accepted and have no effect (Berth applies neither).
fn apply_security_opt(opts: &mut SpecOptions, opt: &str) -> Result<(), RunError> {
    let (key, value) = match opt.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    match (key, value) {
        ("no-new-privileges", None | Some("true")) => opts.no_new_privileges = true,
        ("no-new-privileges", Some("false")) => opts.no_new_privileges = false,
        ("seccomp", Some("unconfined")) => opts.seccomp = SeccompChoice::Unconfined,
        ("seccomp", Some(path)) if !path.is_empty() => opts.seccomp = SeccompChoice::File(PathBuf::from(path)),
        ("label" | "apparmor", Some(_)) => tracing::info!(opt, "ignored: Berth applies no SELinux or AppArmor"),
        _ => {
            return Err(RunError::option(
                format!("--security-opt {opt}"),
                "unknown; use no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoints() {
        assert_eq!(parse_entrypoint("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_entrypoint("/bin/sh -c").unwrap(), ["/bin/sh -c"]);
        assert_eq!(parse_entrypoint(r#"["/bin/sh","-c"]"#).unwrap(), ["/bin/sh", "-c"]);
        assert!(parse_entrypoint("[1]").is_err());
    }

    #[test]
    fn flags_translate() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("env");
        std::fs::write(&env_file, "# comment\n\n  A=1\nB\n").unwrap();
        let flags = ContainerFlags {
            env: vec!["C=3".into()],
            env_file: vec![env_file],
            security_opt: vec![
                "no-new-privileges".into(),
                "seccomp=/p.json".into(),
                "label=disable".into(),
            ],
            memory: Some("64m".into()),
            cpus: Some("0.5".into()),
            net: Some("none".into()),
            cap_drop: vec!["all".into()],
            volume: vec!["/h:/c:ro".into()],
            mount: vec!["type=tmpfs,dst=/t".into()],
            ..ContainerFlags::default()
        };
        let opts = flags.to_spec_options(&["sh".into()]).unwrap();
        assert_eq!(opts.overrides.env, ["A=1", "B", "C=3"]);
        assert_eq!(opts.overrides.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(opts.no_new_privileges);
        assert_eq!(opts.seccomp, SeccompChoice::File("/p.json".into()));
        assert_eq!(opts.memory, Some(64 << 20));
        assert_eq!(opts.mounts.len(), 2);
        assert_eq!(opts.net, berth_sandbox::NetMode::None);
        for bad in [
            ContainerFlags {
                security_opt: vec!["seccomp".into()],
                ..Default::default()
            },
            ContainerFlags {
                cpus: Some("lots".into()),
                ..Default::default()
            },
            ContainerFlags {
                cap_add: vec!["CAP_NOPE".into()],
                ..Default::default()
            },
            ContainerFlags {
                net: Some("bridge0".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.to_spec_options(&[]).is_err(), "{bad:?}");
        }
        // Blanks in a variable's name are refused, naming the file and line.
        for (n, line) in ["K2 = spaced", "export K4=x"].iter().enumerate() {
            let file = dir.path().join(format!("bad{n}"));
            std::fs::write(&file, format!("# first\nOK=1\n{line}\n")).unwrap();
            let err = read_env_file(&file).unwrap_err().to_string();
            assert!(err.contains(&format!("bad{n}:3")) && err.contains("blanks"), "{err}");
        }
    }
}
