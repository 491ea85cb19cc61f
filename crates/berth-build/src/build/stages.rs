//! Which stages a build needs, and what a stage name or index refers to.

use crate::containerfile::Containerfile;

use crate::error::BuildError;

/// The index of the stage `--target` names (the last one without it).
pub(super) fn target_stage(file: &Containerfile, target: Option<&str>) -> Result<usize, BuildError> {
    match target {
        None => Ok(file.stages.len() - 1),
        Some(t) => file
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
            .ok_or_else(|| {
                let names: Vec<&str> = file.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                BuildError::Option {
                    option: format!("--target {t}"),
                    reason: format!(
                        "no stage of {} is named so (named stages: {})",
                        file.file,
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                }
            }),
    }
}

/// The stage a name (or index) refers to, among those before `before`.
pub(super) fn stage_ref(file: &Containerfile, name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = file.stages[..before]
        .iter()
        .position(|s| s.name.as_deref() == Some(&lower))
    {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < before)
}

/// The stages the target needs (through FROM and COPY --from), in order. An unused stage is not built, so its
/// failures do not fail the build.
pub(super) fn needed_stages(file: &Containerfile, target: usize) -> Vec<usize> {
    let mut need = vec![false; file.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if need[i] {
            continue;
        }
        need[i] = true;
        let stage = &file.stages[i];
        let mut refs = vec![stage.base.clone()];
        for inst in &stage.instructions {
            if let Some(from) = inst.flag("from").and_then(|f| f.value.clone()) {
                refs.push(from);
            }
            for m in inst.flags.iter().filter(|f| f.name == "mount") {
                if let Some(from) = m.value.as_deref().and_then(mount_from) {
                    refs.push(from);
                }
            }
        }
        for r in refs {
            if let Some(j) = stage_ref(file, &r, i) {
                todo.push(j);
            }
        }
    }
    (0..file.stages.len()).filter(|i| need[*i]).collect()
}

pub(super) fn mount_from(value: &str) -> Option<String> {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix("from="))
        .map(str::to_owned)
}
