//! The runner's state directory: one directory per container with its record, runtime spec, root filesystem and
//! log, and libcontainer's own state beside them.
//!
//! ```text
//! STATE/containers/ID/container.json   the record (replaced atomically)
//!                    /config.json      the runtime spec; the directory is the bundle
//!                    /rootfs           the overlay mount point (or a copied root filesystem)
//!                    /upper /work      the overlay's writable layer
//!                    /ctr.log          output of a detached container
//! STATE/runtime/ID/                    libcontainer's state
//! STATE/names.lock                     held while a name is claimed or a container removed
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_sandbox::runtime::Runtime;
use serde::{Deserialize, Serialize};

use crate::RunError;
use berth_spec::io_context::IoContext;

/// How long the exit code of a container removed with `--rm` is kept for `wait`.
pub const EXIT_KEPT: std::time::Duration = std::time::Duration::from_secs(300);

/// The state directory, from the environment of this process ([`berth_spec::dirs`]: `$BERTH_STATE`;
/// `/var/lib/berth/state` for root; `$XDG_DATA_HOME/berth/state`; `~/.local/share/berth/state`).
pub fn default_state_path() -> PathBuf {
    berth_spec::dirs::default_path(berth_spec::dirs::Place::State)
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Prepared, not started (or being started).
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
}

/// How the container's root filesystem was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsKind {
    /// An overlay of cached layers, mounted at `rootfs/` while the container runs.
    Overlay,
    /// A copy of the layers in `rootfs/`.
    Copy,
    /// A bundle given with `--bundle`, used in place.
    Bundle,
}

/// What Berth remembers of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique among the containers of this state directory.
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's manifest digest (empty for `--bundle`).
    pub image_digest: String,
    /// The process's arguments.
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The recorded status (see [`ContainerRecord::live_status`]).
    pub status: Status,
    /// The container's first process, while it runs.
    pub pid: Option<i32>,
    /// Its start time (clock ticks after boot), so a reused pid is not taken for it.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// The boot the processes were started in (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The process that waits for it and records its exit (a detached container's monitor).
    pub monitor_pid: Option<i32>,
    /// Its start time (clock ticks after boot).
    #[serde(default)]
    pub monitor_start: Option<u64>,
    /// The exit code (128 + N for signal N).
    pub exit_code: Option<i32>,
    /// Seconds since the epoch.
    pub started: Option<u64>,
    /// Seconds since the epoch.
    pub finished: Option<u64>,
    /// How `rootfs/` is made.
    pub rootfs: RootfsKind,
    /// The bundle directory (the container directory, or the `--bundle` directory).
    pub bundle: PathBuf,
    /// diffIDs of the cached layers the overlay stacks (kept from garbage collection while the container exists).
    pub layers: Vec<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// The signal `stop` sends first (the image's StopSignal, or SIGTERM).
    pub stop_signal: i32,
    /// `-t`.
    pub tty: bool,
}

impl ContainerRecord {
    /// A record of a container just created (no process yet), to be completed with struct update syntax.
    pub fn new_created(id: String, name: String, bundle: PathBuf) -> ContainerRecord {
        ContainerRecord {
            id,
            name,
            image: String::new(),
            image_digest: String::new(),
            command: Vec::new(),
            created: now(),
            status: Status::Created,
            pid: None,
            pid_start: None,
            boot_id: None,
            monitor_pid: None,
            monitor_start: None,
            exit_code: None,
            started: None,
            finished: None,
            rootfs: RootfsKind::Overlay,
            bundle,
            layers: Vec::new(),
            auto_remove: false,
            stop_signal: 15,
            tty: false,
        }
    }

    /// The status as it really is: a container recorded as running whose process is gone (its monitor was
    /// killed, or the machine rebooted) has exited.
    pub fn live_status(&self) -> Status {
        match self.status {
            Status::Running if !self.same_process(self.pid, self.pid_start) => Status::Exited,
            s => s,
        }
    }

    /// Whether the monitor (or foreground berth-run) of this container still runs.
    pub fn monitor_alive(&self) -> bool {
        self.same_process(self.monitor_pid, self.monitor_start)
    }

    /// Whether `pid` still names the process recorded with `start` in this boot: a pid reused by another process
    /// after the recorded one ended (or after a reboot) does not count.
    fn same_process(&self, pid: Option<i32>, start: Option<u64>) -> bool {
        let Some(pid) = pid else { return false };
        if self.boot_id.is_some() && self.boot_id != current_boot_id() {
            return false;
        }
        process_alive(pid) && (start.is_none() || process_start_time(pid) == start)
    }

    /// The first 12 digits of the id, as `ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// This boot's id.
pub fn current_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A process's start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command start with the state (field 3).
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with this id exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the parenthesized command, which may itself hold parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// An exclusive lock on the state directory's names; released on drop.
#[derive(Debug)]
pub struct NamesLock {
    _file: File,
}

impl StateDir {
    /// Opens (creating) the state directory at `root`. It is private (`0700`, an older `0755` one is tightened) and
    /// must belong to the user running Berth: container trees in it hold setuid programs and device nodes.
    pub fn open(root: &Path) -> Result<StateDir, RunError> {
        berth_spec::private_dir::ensure_private_dir(root)?;
        let containers = root.join("containers");
        berth_spec::private_dir::ensure_private_dir(&containers)?;
        let root = std::fs::canonicalize(root).at("resolve", root)?;
        Ok(StateDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// libcontainer's state, under `runtime/`.
    pub fn runtime(&self) -> Result<Runtime, RunError> {
        Ok(Runtime::new(&self.root.join("runtime"))?.with_seccomp_cache(self.root.join("seccomp")))
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Where removed containers' directories wait to be deleted ([`Self::discard`]).
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Moves `dir` (a container's directory, its record already removed) into the trash with one rename, so that
    /// it is gone from the state at once; [`Self::sweep_trash`] deletes it. False when it could not be moved
    /// (the caller then deletes it itself).
    pub fn discard(&self, dir: &Path) -> bool {
        let trash = self.trash_dir();
        let Some(name) = dir.file_name() else { return false };
        if std::fs::create_dir_all(&trash).is_err() {
            return false;
        }
        match std::fs::rename(dir, trash.join(name)) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("moving {} to the trash: {e}", dir.display());
                false
            }
        }
    }

    /// Deletes everything in the trash. Safe to run in several processes at once.
    pub fn sweep_trash(&self) {
        let Ok(entries) = std::fs::read_dir(self.trash_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            match berth_layer::apply::remove_dir_all_forcing(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("could not delete {}: {e}", entry.path().display())
                }
                _ => {}
            }
        }
    }

    /// Takes the names lock (blocking).
    pub fn lock_names(&self) -> Result<NamesLock, RunError> {
        let path = self.root.join("names.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open", &path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).at("lock", &path)?;
        Ok(NamesLock { _file: file })
    }

    /// Every container with a readable record, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, RunError> {
        let dir = self.root.join("containers");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).at("read", &dir)? {
            let entry = entry.at("read", &dir)?;
            let id = entry.file_name().to_string_lossy().into_owned();
            match self.load(&id) {
                Ok(r) => out.push(r),
                Err(e) => tracing::debug!("skipping {id}: {e}"),
            }
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// The record of container `id`.
    pub fn load(&self, id: &str) -> Result<ContainerRecord, RunError> {
        let path = self.container_dir(id).join("container.json");
        let bytes = std::fs::read(&path).at("read", &path)?;
        serde_json::from_slice(&bytes).map_err(|e| RunError::container(id, format!("{}: {e}", path.display())))
    }

    /// Keeps the exit code of a container removed as it ended (`--rm`) for [`EXIT_KEPT`], so that a `wait` that
    /// was already waiting for it can still report it (podman keeps them a while too). Older ones are pruned.
    pub fn record_exit(&self, id: &str, code: Option<i32>) -> Result<(), RunError> {
        let dir = self.root.join("exits");
        std::fs::create_dir_all(&dir).at("create", &dir)?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > EXIT_KEPT);
                if old {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let text = code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        berth_sandbox::etc_files::write_atomically(&dir.join(id), text.as_bytes())?;
        Ok(())
    }

    /// The exit code [`record_exit`](Self::record_exit) kept for `id`: `None` when none was kept, `Some(None)`
    /// when it was unknown.
    pub fn recorded_exit(&self, id: &str) -> Option<Option<i32>> {
        let text = std::fs::read_to_string(self.root.join("exits").join(id)).ok()?;
        Some(text.trim().parse().ok())
    }

    /// Writes a record (atomically: a temp file renamed over the old one).
    pub fn save(&self, record: &ContainerRecord) -> Result<(), RunError> {
        let path = self.container_dir(&record.id).join("container.json");
        let json = serde_json::to_vec_pretty(record).expect("a record serializes");
        berth_sandbox::etc_files::write_atomically(&path, &json)?;
        Ok(())
    }

    /// Loads a record, changes it and saves it, under the names lock (so two processes updating one record do
    /// not lose each other's change).
    pub fn update(&self, id: &str, change: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord, RunError> {
        let _lock = self.lock_names()?;
        let mut record = self.load(id)?;
        change(&mut record);
        self.save(&record)?;
        Ok(record)
    }

    /// Records a new container under the names lock: `name`, or a generated one, must be unused. Creates its
    /// directory and saves what `complete` makes of the base record; on failure nothing is left.
    pub fn claim(
        &self,
        id: &str,
        name: Option<&str>,
        complete: impl FnOnce(ContainerRecord) -> ContainerRecord,
    ) -> Result<ContainerRecord, RunError> {
        let _names = self.lock_names()?;
        let all = self.list()?;
        let name = match name {
            Some(n) => n.to_owned(),
            // Generated names can collide: then the id's digits make it unique.
            None => {
                let name = generated_name(id);
                if all.iter().any(|r| r.name == name) {
                    format!("{name}_{}", &id[..12.min(id.len())])
                } else {
                    name
                }
            }
        };
        if let Some(other) = all.iter().find(|r| r.name == name) {
            return Err(RunError::container(
                &name,
                format!(
                    "the name is in use by container {}; remove it (`berth-run rm {name}`) or choose another name",
                    other.short_id()
                ),
            ));
        }
        let dir = self.container_dir(id);
        std::fs::create_dir(&dir).at("create", &dir)?;
        let record = complete(ContainerRecord::new_created(id.to_owned(), name, dir.clone()));
        if let Err(e) = self.save(&record) {
            let _ = berth_layer::apply::remove_dir_all_forcing(&dir);
            return Err(e);
        }
        Ok(record)
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn find(&self, what: &str) -> Result<ContainerRecord, RunError> {
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.name == what || r.id == what) {
            return Ok(r.clone());
        }
        let matches: Vec<&ContainerRecord> = if what.len() >= 3 && what.bytes().all(|b| b.is_ascii_hexdigit()) {
            all.iter().filter(|r| r.id.starts_with(what)).collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(RunError::container(
                what,
                "no such container; `berth-run ps -a` lists them",
            )),
            many => Err(RunError::container(
                what,
                format!(
                    "the id prefix matches {} containers; give more digits or the name",
                    many.len()
                ),
            )),
        }
    }
}

/// A Docker-style name for a container: two words and a number, from the id.
pub fn generated_name(id: &str) -> String {
    const FIRST: [&str; 16] = [
        "brave", "calm", "eager", "fond", "keen", "lucid", "merry", "neat", "proud", "quiet", "sharp", "steady",
        "swift", "tidy", "warm", "wise",
    ];
    const SECOND: [&str; 16] = [
        "anchor", "buoy", "cable", "dock", "ferry", "harbor", "jetty", "keel", "lock", "mast", "pier", "quay",
        "rudder", "sail", "tug", "wharf",
    ];
    let byte = |i: usize| u8::from_str_radix(id.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as usize;
    format!("{}_{}_{}", FIRST[byte(0) % 16], SECOND[byte(2) % 16], byte(4))
}

/// Checks a user-chosen container name: Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<(), RunError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(RunError::option(
            format!("--name {name}"),
            "a name starts with a letter or digit and holds only letters, digits, '_', '.' and '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("web-1.a_b").is_ok());
        for bad in ["", "-x", "a/b", "a b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let n = generated_name("ff00aa");
        assert!(validate_name(&n).is_ok(), "{n}");
    }

    #[test]
    fn liveness() {
        let me = std::process::id() as i32;
        assert!(process_alive(me));
        assert!(!process_alive(i32::MAX));
        let start = process_start_time(me);
        assert!(start.is_some());
        let mut record: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "ab", "name": "n", "image": "i", "image_digest": "", "command": [], "created": 0,
            "status": "running", "pid": me, "monitor_pid": me, "exit_code": null, "started": null,
            "finished": null, "rootfs": "copy", "bundle": "/b", "layers": [], "auto_remove": false,
            "stop_signal": 15, "tty": false
        }))
        .expect("records without start times (older ones) still load");
        assert_eq!(record.live_status(), Status::Running);
        record.pid_start = start.map(|s| s + 1);
        assert_eq!(
            record.live_status(),
            Status::Exited,
            "a reused pid is not the container"
        );
        record.pid_start = start;
        record.boot_id = Some("another-boot".into());
        assert_eq!(record.live_status(), Status::Exited, "nothing survives a reboot");
    }
}
