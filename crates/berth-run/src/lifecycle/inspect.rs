//! `inspect`: a container's record with the process and mounts of its runtime spec.

use oci_spec::runtime::Spec;

use crate::RunError;
use crate::state::{ContainerRecord, StateDir, Status};

/// What `inspect` shows of a container: its record, and the process and mounts of its runtime spec.
pub fn inspect(state: &StateDir, record: &ContainerRecord) -> Result<serde_json::Value, RunError> {
    let status = record.live_status();
    let config_path = record.bundle.join("config.json");
    let spec = Spec::load(&config_path).ok();
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let mounts: Vec<serde_json::Value> = spec
        .as_ref()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            serde_json::json!({
                "Type": m.typ(),
                "Source": m.source(),
                "Destination": m.destination(),
                "Options": m.options(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "Id": record.id,
        "Name": record.name,
        "Image": record.image,
        "ImageDigest": record.image_digest,
        "Created": crate::logfile::format_time(record.created, 0),
        "State": {
            "Status": format!("{status:?}").to_lowercase(),
            "Running": status == Status::Running,
            "Pid": if status == Status::Running { record.pid } else { None },
            "ExitCode": record.exit_code,
            "StartedAt": record.started.map(|t| crate::logfile::format_time(t, 0)),
            "FinishedAt": record.finished.map(|t| crate::logfile::format_time(t, 0)),
        },
        "Config": {
            "Cmd": process.as_ref().and_then(|p| p.args().clone()),
            "Env": process.as_ref().and_then(|p| p.env().clone()),
            "WorkingDir": process.as_ref().map(|p| p.cwd().clone()),
            "User": process.as_ref().map(|p| serde_json::json!({"uid": p.user().uid(), "gid": p.user().gid()})),
            "Tty": record.tty,
            "StopSignal": crate::signals::signal_name(record.stop_signal),
        },
        "HostConfig": { "AutoRemove": record.auto_remove },
        "Mounts": mounts,
        "Rootfs": format!("{:?}", record.rootfs).to_lowercase(),
        "Bundle": record.bundle,
        "Layers": record.layers,
        "Log": state.container_dir(&record.id).join("ctr.log"),
    }))
}
