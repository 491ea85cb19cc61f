//! `RUN`: its command line (shell or exec form, heredocs), its mounts, its cache key, and the step.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use berth_sandbox::NetMode;
use serde_json::Value;

use crate::containerfile::{Args as Form, Instruction};
use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::image::ImageState;
use crate::pattern::IgnoreRules;
use crate::steps::copy::{CopyRequest, SourceRoot};
use crate::steps::mounts::{MountContext, MountSpec};
use crate::steps::run::RunProcess;
use crate::workspace::StepRoot;

use super::*;

impl Builder<'_> {
    pub(super) fn run(
        &mut self,
        state: &mut ImageState,
        ctx: &mut StageCtx,
        inst: &Instruction,
        env: &[(String, String)],
        stage: usize,
    ) -> Result<(), BuildError> {
        let network = match inst.flag("network").and_then(|f| f.value.as_deref()) {
            None | Some("default") => self.opts.network,
            Some("none") => NetMode::None,
            Some("host") => NetMode::Host,
            Some(other) => return Err(self.err(inst.pos, format!("RUN --network={other}: use default, none or host"))),
        };
        let mut mount_specs = Vec::new();
        for f in &inst.flags {
            match f.name.as_str() {
                "network" => {}
                "mount" => {
                    let vars = ctx.args.visible(env);
                    let text = self.expand(inst, f.value.as_deref().unwrap_or_default(), &vars)?;
                    mount_specs.push(MountSpec::parse(&text).map_err(|m| self.err(inst.pos, m))?);
                }
                "security" | "device" => {
                    return Err(self.err(inst.pos, format!("RUN --{} is not supported by berth-build", f.name)));
                }
                other => {
                    let hint = crate::naming::closest(other, &["mount", "network"])
                        .map(|k| format!("did you mean --{k}? "))
                        .unwrap_or_default();
                    return Err(self.err(
                        inst.pos,
                        format!("RUN has no flag --{other}; {hint}it takes --mount and --network"),
                    ));
                }
            }
        }
        let argv = match (&inst.args, inst.heredocs.as_slice()) {
            (Form::Json(words), []) => words.clone(),
            (Form::Json(_), _) => return Err(self.err(inst.pos, "RUN in exec form cannot take heredocs")),
            (Form::Text(t), []) => shell_form(state, t),
            // `RUN <<EOF` alone: the body is the script.
            (Form::Text(t), [only]) if t.trim().starts_with("<<") && !t.trim().contains(char::is_whitespace) => {
                if only.body.starts_with("#!") {
                    // A script with its own interpreter: run through the shell, which executes it.
                    shell_form(
                        state,
                        &format!(
                            "cat > /tmp/.berth-heredoc <<'BERTH_HEREDOC_END'\n{}BERTH_HEREDOC_END\nchmod +x /tmp/.berth-heredoc && /tmp/.berth-heredoc; s=$?; rm -f /tmp/.berth-heredoc; exit $s",
                            only.body
                        ),
                    )
                } else {
                    shell_form(state, &only.body)
                }
            }
            (Form::Text(t), docs) => {
                // The command line with its heredocs, as one shell script.
                let mut script = t.clone();
                script.push('\n');
                for d in docs {
                    script.push_str(&d.body);
                    script.push_str(&d.name);
                    script.push('\n');
                }
                shell_form(state, &script)
            }
        };
        let mut process = RunProcess {
            argv,
            build_env: ctx.args.run_env(env),
            network,
            mounts: Vec::new(),
        };
        // Stages and images that mounts take files from.
        let mut from_states: BTreeMap<String, ImageState> = BTreeMap::new();
        for m in &mount_specs {
            if let Some(name) = m.options.get("from")
                && !from_states.contains_key(name)
            {
                let state = self.state_named(name, stage, inst.pos)?;
                from_states.insert(name.clone(), state);
            }
        }
        let caches = self.opts.work_dir.join("cache-mounts");
        std::fs::create_dir_all(&caches).at("create", &caches)?;
        let context = self.opts.context.clone();
        let secrets = self.opts.secrets.clone();
        let created_by = format!("/bin/sh -c {}", inst.text().trim());
        let file = self.file().file.clone();
        let (pos, step) = (inst.pos, format!("RUN {}", inst.text().trim()));
        // What decides the step's result: the command, the environment it sees (build arguments included; secrets
        // never), its network, and what its mounts bring in.
        let mut env_seen = process.build_env.clone();
        env_seen.sort();
        let mut parts = vec![
            "RUN".to_owned(),
            serde_json::to_string(&process.argv).expect("JSON"),
            env_seen.join("\n"),
            format!("{:?}", process.network),
        ];
        for m in &mount_specs {
            parts.push(format!("mount {} {:?}", m.kind, m.options));
            if m.kind == "bind" {
                let input = match m.options.get("from") {
                    Some(name) => from_states.get(name).map(|s| s.key.clone()).unwrap_or_default(),
                    None => {
                        let no_rules = IgnoreRules::default();
                        let req = CopyRequest {
                            sources: vec![m.options.get("source").cloned().unwrap_or_else(|| ".".into())],
                            dest: String::new(),
                            workdir: "/".into(),
                            from: SourceRoot::Context {
                                root: &context,
                                ignore: &no_rules,
                            },
                            chown: None,
                            chmod: None,
                            excludes: Vec::new(),
                            heredocs: Vec::new(),
                            parents: false,
                            extract_archives: false,
                            defer: None,
                        };
                        crate::steps::copy::content_digest(&req, &mut self.stat_cache)
                            .map(|d| d.to_string())
                            .unwrap_or_default()
                    }
                };
                parts.push(input);
            }
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = Some(crate::stepcache::next_key(&state.key, &refs));
        self.layer_step(state, ctx, &created_by, StepKey::Known(key), |b, state, root| {
            let id = format!(
                "berth-build-{}-{}",
                std::process::id(),
                STEP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let mut from_roots = Vec::new();
            let mut from_paths = BTreeMap::new();
            for (i, (name, s)) in from_states.iter_mut().enumerate() {
                let mounted = StepRoot::mount(s, &b.cache, &root.dir().join(format!("from-{i}")))?;
                from_paths.insert(name.clone(), mounted.rootfs());
                from_roots.push(mounted);
            }
            let mctx = MountContext {
                context: &context,
                from: &from_paths,
                caches: &caches,
                secrets: &secrets,
                scratch: root.dir(),
            };
            let (mounts, held) = crate::steps::mounts::prepare(&mount_specs, &mctx).map_err(|m| BuildError::Work {
                what: "prepare the RUN mounts",
                source: m.into(),
            })?;
            process.mounts = mounts;
            let result = crate::steps::run::run(state, &root.rootfs(), root.dir(), &b.runtime, &id, &process);
            drop(held);
            drop(from_roots);
            result
        })
        .map_err(|e| BuildError::Step {
            file,
            pos,
            step,
            source: Box::new(e),
        })
    }
}

/// The shell form of a command: the stage's shell with the text.
pub(super) fn shell_form(state: &ImageState, text: &str) -> Vec<String> {
    let mut argv: Vec<String> = state
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    argv.push(text.to_owned());
    argv
}
