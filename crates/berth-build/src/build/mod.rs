//! The build: stages in order (only those the target needs), each instruction applied to the stage's image, the
//! target committed to the output layout.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use berth_layer::apply::OverlayCache;
use berth_layer::create::CreateOptions;
use berth_sandbox::NetMode;
use berth_sandbox::runtime::Runtime;
use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_spec::platform::Platform;
use berth_transfer::{Progress, RegistryAccess};
use oci_spec::image::Descriptor;
use serde_json::{Map, Value, json};

use crate::base::{BaseResolver, PullPolicy};
use crate::containerfile::expand::{self, Vars};
use crate::containerfile::{Args as Form, Containerfile, Instruction, Keyword, Pos, Stage};

use crate::error::BuildError;
use crate::image::ImageState;
use crate::pattern::IgnoreRules;
use crate::steps::mounts::Secret;
use crate::vars::{Args, platform_args};
use crate::workspace::StepRoot;

mod config_ops;
mod copy_step;
mod layer_step;
mod run_step;
mod stages;

use layer_step::StepKey;

use copy_step::resolve_chown;
use run_step::shell_form;
use stages::{needed_stages, stage_ref, target_stage};

static STEP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The history entry of the layer a stage's last WORKDIR makes when no later step did.
const WORKDIR_ONLY: &str = "/bin/sh -c #(nop) WORKDIR (created)";

/// What to build and how.
#[derive(Clone)]
pub struct BuildOptions {
    /// The parsed Containerfile.
    pub containerfile: Containerfile,
    /// The build context directory.
    pub context: PathBuf,
    /// The context's ignore rules.
    pub ignore: IgnoreRules,
    /// The store: bases are found and pulled there, and the image is written there.
    pub store: PathBuf,
    /// The builder's private working directory (layer cache, step scratch, container state).
    pub work_dir: PathBuf,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--label`s, added to the image's labels.
    pub labels: Vec<(String, String)>,
    /// `--annotation`s, set on the image's manifest.
    pub annotations: Vec<(String, String)>,
    /// Recompress base layers to [`compression`](Self::compression) too (`--force-compression`).
    pub force_compression: bool,
    /// Squash the image's layers (the base's too) into one (`--squash`).
    pub squash: bool,
    /// Run every step, whatever the step cache holds (`--no-cache`); results are still recorded.
    pub no_cache: bool,
    /// `--network`.
    pub network: NetMode,
    /// The platform (the host's).
    pub platform: Platform,
    /// Compression of the layers written.
    pub compression: Compression,
    /// The manifest format: OCI, or Docker schema 2 (`--format docker`).
    pub format: berth_spec::media_type::Format,
    /// `SOURCE_DATE_EPOCH` / `--timestamp`: the image's created time and a clamp for file times.
    pub timestamp: Option<i64>,
    /// When to pull bases.
    pub pull: PullPolicy,
    /// `--build-context`s: names that `FROM` and `COPY --from` (and `RUN --mount from=`) resolve first.
    pub build_contexts: BTreeMap<String, NamedContext>,
    /// Secrets for `RUN --mount=type=secret`, by id.
    pub secrets: BTreeMap<String, Secret>,
    /// Registry access for bases.
    pub registry: RegistryAccess,
    /// Pull progress.
    pub progress: Arc<dyn Progress>,
    /// Step lines (`STEP 2/5: RUN make`), for stderr.
    pub report: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions")
            .field("file", &self.containerfile.file)
            .field("context", &self.context)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// What a `--build-context NAME=...` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory: a second build context (no ignore file applies).
    Dir(PathBuf),
    /// An image reference (`docker://...`, `oci:...`, a store name).
    Image(String),
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image's manifest, in the store.
    pub manifest: Descriptor,
    /// The image id: the digest of its config.
    pub image_id: Digest,
}

struct Builder<'a> {
    opts: &'a BuildOptions,
    store: Layout,
    cache: OverlayCache,
    runtime: Runtime,
    step_cache: crate::stepcache::StepCache,
    stat_cache: crate::statcache::StatCache,
    resolver: BaseResolver<'a>,
    global: Args,
    create: CreateOptions,
    created: String,
    /// Final images of the stages built so far, by index.
    done: HashMap<usize, ImageState>,
    step: usize,
    steps: usize,
    /// The next layer step's upper directory goes in memory (see [`StepRoot::mount_with`]).
    upper_in_memory: bool,
}

/// Builds the image and writes it (unnamed) into the store. The caller names it.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let file = &opts.containerfile;
    let store = Layout::create(&opts.store)?;
    berth_spec::private_dir::ensure_private_dir(&opts.work_dir)?;
    let mut cache = OverlayCache::open(&opts.work_dir, false)?;
    // A base image's layers are unpacked when a step first mounts them: shown like pulls.
    cache.report_extraction(std::sync::Arc::new(berth_cli::progress::Unpacking(
        opts.progress.clone(),
    )));
    let runtime = Runtime::new(&opts.work_dir.join("runtime"))
        .map_err(|e| BuildError::Work {
            what: "open the container state directory",
            source: Box::new(e),
        })?
        .with_seccomp_cache(opts.work_dir.join("seccomp"));
    let hold = cache.hold()?;
    clean_stale_containers(&runtime);
    crate::workspace::clean_stale_steps(&opts.work_dir.join("steps"));
    let target = target_stage(file, opts.target.as_deref())?;
    let needed = needed_stages(file, target);
    let steps = needed.iter().map(|i| 1 + file.stages[*i].instructions.len()).sum();
    let created_secs = opts.timestamp.unwrap_or_else(berth_spec::time::now);
    let mut b = Builder {
        opts,
        store: store.clone(),
        cache,
        runtime,
        step_cache: crate::stepcache::StepCache::open(&opts.work_dir)?,
        stat_cache: crate::statcache::StatCache::load(&opts.work_dir.join("context-stat.json")),
        resolver: BaseResolver {
            store: &store,
            platform: &opts.platform,
            pull: opts.pull,
            registry: &opts.registry,
            progress: opts.progress.clone(),
        },
        global: Args::default(),
        create: CreateOptions {
            compression: opts.compression,
            source_date_epoch: opts.timestamp,
            ..CreateOptions::default()
        },
        created: berth_spec::time::rfc3339(created_secs),
        done: HashMap::new(),
        step: 0,
        steps,
        upper_in_memory: false,
    };
    b.global_args()?;
    for i in needed {
        let state = b.stage(i)?;
        b.done.insert(i, state);
    }
    let mut state = b.done.remove(&target).expect("the target was built");
    for (k, v) in &opts.labels {
        labels(&mut state).insert(k.clone(), Value::String(v.clone()));
    }
    if opts.squash && !state.layers.is_empty() {
        let dir = opts
            .work_dir
            .join("steps")
            .join(format!("{}-squash", std::process::id()));
        let root = StepRoot::mount(&mut state, &b.cache, &dir)?;
        let layer = root.squash(&b.store, &b.create)?;
        // Every earlier history entry now describes no layer of its own; one entry stands for the squashed layer.
        if let Some(history) = state.config.get_mut("history").and_then(Value::as_array_mut) {
            for h in history.iter_mut() {
                h["empty_layer"] = Value::Bool(true);
            }
        }
        state.layers = vec![layer];
        state.layer_dirs = None;
        let created = b.created.clone();
        state.add_history("berth-build --squash", &created, false);
    }
    tracing::info!(
        hashed = b.stat_cache.hashed,
        reused = b.stat_cache.reused,
        "context files: {} read and hashed, {} known unchanged",
        b.stat_cache.hashed,
        b.stat_cache.reused
    );
    if let Err(e) = b.stat_cache.save() {
        tracing::warn!("the context's stat cache is not saved: {e}");
    }
    (opts.report)("COMMIT");
    let created = b.created.clone();
    let recompress = opts.force_compression.then_some(opts.compression);
    let (manifest, image_id) = state.commit(&b.store, &created, &opts.annotations, recompress, opts.format)?;
    drop(hold);
    Ok(BuildReport { manifest, image_id })
}

/// Kills and deletes the RUN containers of builds that are gone (`berth-build-PID-N`, PID dead).
fn clean_stale_containers(runtime: &Runtime) {
    let Ok(entries) = std::fs::read_dir(runtime.root()) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = id
            .strip_prefix("berth-build-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !crate::workspace::build_alive(pid, &e.path())
            && let Err(e) = runtime.delete(&id, true)
        {
            tracing::warn!(container = %id, "could not delete a container of an interrupted build: {e}");
        }
    }
}

fn labels(state: &mut ImageState) -> &mut Map<String, Value> {
    let c = state.run_config();
    if !c.get("Labels").is_some_and(Value::is_object) {
        c.insert("Labels".into(), json!({}));
    }
    c.get_mut("Labels").and_then(Value::as_object_mut).expect("an object")
}

impl Builder<'_> {
    fn file(&self) -> &Containerfile {
        &self.opts.containerfile
    }

    fn err(&self, pos: Pos, message: impl Into<String>) -> BuildError {
        BuildError::Instruction {
            file: self.file().file.clone(),
            pos,
            message: message.into(),
        }
    }

    /// The image a `--from=NAME` names: a `--build-context` image, an earlier stage, or an image reference.
    fn state_named(&self, name: &str, stage: usize, pos: Pos) -> Result<ImageState, BuildError> {
        if let Some(NamedContext::Image(image)) = self.opts.build_contexts.get(name) {
            return self.resolver.resolve(image);
        }
        match stage_ref(self.file(), name, stage) {
            Some(j) => self
                .done
                .get(&j)
                .cloned()
                .ok_or_else(|| self.err(pos, format!("stage {name} was not built"))),
            // Not a stage: an image (Docker's rule), which may be a misspelt stage.
            None => self.resolver.resolve(name).map_err(|e| {
                let stages: Vec<&str> = self.file().stages[..stage]
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect();
                if stages.is_empty() {
                    return self.err(
                        pos,
                        format!(
                            "--from={name}: no earlier stage, and no such image: {}",
                            berth_spec::error_chain(&e)
                        ),
                    );
                }
                let hint = crate::naming::closest(&name.to_ascii_lowercase(), &stages)
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                self.err(
                    pos,
                    format!(
                        "--from={name}: no earlier stage has that name ({hint}stages: {}), and as an image: {}",
                        stages.join(", "),
                        berth_spec::error_chain(&e)
                    ),
                )
            }),
        }
    }

    fn global_args(&mut self) -> Result<(), BuildError> {
        let file = self.opts.containerfile.clone();
        let platform = platform_args(&self.opts.platform);
        for inst in &file.global_args {
            let visible = self.global.visible(&[]);
            let outer = |n: &str| platform.get(n).cloned();
            self.global
                .declare(&inst.text(), &visible, file.escape, &self.opts.build_args, &outer)
                .map_err(|m| self.err(inst.pos, m))?;
        }
        Ok(())
    }

    fn announce(&mut self, inst: &Instruction, text: &str) {
        self.step += 1;
        // As written: flags first, the exec form as JSON.
        let flags: String = inst
            .flags
            .iter()
            .map(|f| match &f.value {
                Some(v) => format!("--{}={v} ", f.name),
                None => format!("--{} ", f.name),
            })
            .collect();
        let args = match &inst.args {
            Form::Json(words) => serde_json::to_string(words).expect("JSON"),
            Form::Text(_) => text.trim().to_owned(),
        };
        (self.opts.report)(&format!(
            "STEP {}/{}: {} {flags}{args}",
            self.step, self.steps, inst.keyword
        ));
    }

    fn stage(&mut self, index: usize) -> Result<ImageState, BuildError> {
        let file = self.opts.containerfile.clone();
        let stage: &Stage = &file.stages[index];
        let escape = file.escape;
        // FROM sees only the global ARGs.
        // FROM sees the global ARGs and, undeclared, the platform ones (`FROM --platform=$BUILDPLATFORM …`).
        let mut from_vars: Vars = platform_args(&self.opts.platform).into_iter().collect();
        from_vars.extend(self.global.visible(&[]));
        let base_text = expand::expand_word(&stage.base, &from_vars, escape)
            .map_err(|e| self.err(stage.from.pos, e.to_string()))?;
        self.announce(
            &stage.from,
            &format!(
                "{base_text}{}",
                stage.name.as_ref().map(|n| format!(" AS {n}")).unwrap_or_default()
            ),
        );
        if let Some(p) = stage.from.flag("platform").and_then(|f| f.value.clone()) {
            let p = expand::expand_word(&p, &from_vars, escape).map_err(|e| self.err(stage.from.pos, e.to_string()))?;
            let wanted = Platform::parse(&p).map_err(|e| self.err(stage.from.pos, format!("--platform {p}: {e}")))?;
            if !wanted.matches(&self.opts.platform) {
                return Err(self.err(
                    stage.from.pos,
                    format!(
                        "--platform {p}: berth-build builds for this host's platform ({}) only",
                        self.opts.platform
                    ),
                ));
            }
        }
        let mut state = if let Some(named) = self.opts.build_contexts.get(&base_text) {
            match named {
                NamedContext::Image(image) => self.resolver.resolve(image)?,
                NamedContext::Dir(dir) => {
                    return Err(self.err(
                        stage.from.pos,
                        format!(
                            "FROM {base_text}: the build context {base_text} is a directory ({}), not an image",
                            dir.display()
                        ),
                    ));
                }
            }
        } else if base_text.eq_ignore_ascii_case("scratch") {
            ImageState::scratch(&self.opts.platform)
        } else if let Some(j) = stage_ref(&file, &base_text, index) {
            self.done
                .get(&j)
                .cloned()
                .ok_or_else(|| self.err(stage.from.pos, format!("stage {base_text} was not built")))?
        } else {
            self.resolver.resolve(&base_text)?
        };
        let mut ctx = StageCtx {
            args: Args::default(),
            pending_workdir: Vec::new(),
            cmd_set: false,
            last_mount: false,
        };
        // ONBUILD triggers of the base run first, then are dropped from the new image.
        let triggers: Vec<String> = state
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if !triggers.is_empty() {
            state.run_config().remove("OnBuild");
            for t in triggers {
                let parsed = crate::containerfile::parse(
                    &format!("{} (ONBUILD of {base_text})", file.file),
                    &format!("FROM scratch\n{t}\n"),
                )?;
                for inst in &parsed.stages[0].instructions {
                    self.instruction(&mut state, &mut ctx, inst, index)?;
                }
            }
        }
        // After the last instruction that mounts the stage's root, no step of this stage reads the files a step
        // writes: a COPY there may write its layer straight from its sources.
        let last_mount = stage.instructions.iter().rposition(|i| {
            matches!(
                i.keyword,
                Keyword::Run | Keyword::Copy | Keyword::Add | Keyword::Workdir
            )
        });
        for (n, inst) in stage.instructions.iter().enumerate() {
            ctx.last_mount = Some(n) == last_mount && !self.opts.squash;
            self.instruction(&mut state, &mut ctx, inst, index)?;
        }
        ctx.last_mount = false;
        if !ctx.pending_workdir.is_empty() {
            let key = crate::stepcache::next_key(&state.key, &["WORKDIR (created)"]);
            self.layer_step(
                &mut state,
                &mut ctx,
                WORKDIR_ONLY,
                StepKey::Known(Some(key)),
                |_, _, _| Ok(()),
            )?;
        }
        Ok(state)
    }

    fn instruction(
        &mut self,
        state: &mut ImageState,
        ctx: &mut StageCtx,
        inst: &Instruction,
        stage: usize,
    ) -> Result<(), BuildError> {
        let escape = self.file().escape;
        let env = state.env();
        let vars = ctx.args.visible(&env);
        let text = inst.text();
        let shown = if inst.keyword.expands() {
            self.expand(inst, &text, &vars)?
        } else {
            text.clone()
        };
        self.announce(inst, &shown);
        let created_by = format!("/bin/sh -c #(nop) {} {}", inst.keyword, text.trim());
        let created = self.created.clone();
        match inst.keyword {
            Keyword::From => unreachable!("FROM starts a stage"),
            Keyword::Arg => {
                let platform = platform_args(&self.opts.platform);
                let global = self.global.clone();
                let outer = move |n: &str| global.get(n).or_else(|| platform.get(n).cloned());
                ctx.args
                    .declare(&text, &vars, escape, &self.opts.build_args, &outer)
                    .map_err(|m| self.err(inst.pos, m))?;
            }
            Keyword::Env => {
                let pairs = expand::key_values(&text, &vars, escape, true).map_err(|m| self.err(inst.pos, m))?;
                for (k, v) in pairs {
                    state.set_env(&k, &v);
                }
                state.add_history(&created_by, &created, true);
            }
            Keyword::Label => {
                let pairs = expand::key_values(&text, &vars, escape, true).map_err(|m| self.err(inst.pos, m))?;
                for (k, v) in pairs {
                    labels(state).insert(k, Value::String(v));
                }
                state.add_history(&created_by, &created, true);
            }
            Keyword::Maintainer => {
                state.config["author"] = Value::String(shown.trim().to_owned());
                state.add_history(&created_by, &created, true);
            }
            Keyword::Workdir => {
                let dir = shown.trim();
                if dir.is_empty() {
                    return Err(self.err(inst.pos, "WORKDIR needs a path"));
                }
                let joined = if dir.starts_with('/') {
                    dir.to_owned()
                } else {
                    format!("{}/{dir}", state.workdir().trim_end_matches('/'))
                };
                let clean = format!("/{}", crate::pattern::clean(&joined));
                state.run_config().insert("WorkingDir".into(), Value::String(clean));
                // Created (by the user of this moment) in the next step's layer.
                let user = state.user();
                ctx.pending_workdir.push((state.workdir(), user));
                state.add_history(&created_by, &created, true);
            }
            Keyword::User => {
                let user = shown.trim();
                if user.is_empty() {
                    return Err(self.err(inst.pos, "USER needs a user: USER NAME[:GROUP] or UID[:GID]"));
                }
                state.run_config().insert("User".into(), Value::String(user.to_owned()));
                state.add_history(&created_by, &created, true);
            }
            Keyword::Cmd | Keyword::Entrypoint => {
                let argv = match &inst.args {
                    Form::Json(words) => words.clone(),
                    Form::Text(t) => shell_form(state, t),
                };
                let key = if inst.keyword == Keyword::Cmd {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                state.run_config().insert(key.into(), json!(argv));
                if inst.keyword == Keyword::Cmd {
                    ctx.cmd_set = true;
                } else if !ctx.cmd_set {
                    // An ENTRYPOINT resets a CMD inherited from the base image.
                    state.run_config().remove("Cmd");
                }
                state.add_history(&created_by, &created, true);
            }
            Keyword::Expose => {
                let words =
                    expand::expand_words(&text, &vars, escape).map_err(|e| self.err(inst.pos, e.to_string()))?;
                let c = state.run_config();
                if !c.get("ExposedPorts").is_some_and(Value::is_object) {
                    c.insert("ExposedPorts".into(), json!({}));
                }
                let ports = c
                    .get_mut("ExposedPorts")
                    .and_then(Value::as_object_mut)
                    .expect("an object");
                for w in words {
                    let (port, proto) = w.split_once('/').unwrap_or((&w, "tcp"));
                    let valid = !port.is_empty()
                        && port.split('-').all(|p| p.parse::<u16>().is_ok())
                        && matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp");
                    if !valid {
                        return Err(self.err(inst.pos, format!("invalid port {w:?}: write PORT[/tcp|udp|sctp]")));
                    }
                    ports.insert(format!("{port}/{}", proto.to_ascii_lowercase()), json!({}));
                }
                state.add_history(&created_by, &created, true);
            }
            Keyword::Volume => {
                let list = match &inst.args {
                    Form::Json(words) => words
                        .iter()
                        .map(|w| expand::expand_word(w, &vars, escape))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| self.err(inst.pos, e.to_string()))?,
                    Form::Text(t) => {
                        expand::expand_words(t, &vars, escape).map_err(|e| self.err(inst.pos, e.to_string()))?
                    }
                };
                if list.is_empty() || list.iter().any(String::is_empty) {
                    return Err(self.err(inst.pos, "VOLUME needs paths"));
                }
                let c = state.run_config();
                if !c.get("Volumes").is_some_and(Value::is_object) {
                    c.insert("Volumes".into(), json!({}));
                }
                let vols = c.get_mut("Volumes").and_then(Value::as_object_mut).expect("an object");
                for v in list {
                    vols.insert(v, json!({}));
                }
                state.add_history(&created_by, &created, true);
            }
            Keyword::Stopsignal => {
                state
                    .run_config()
                    .insert("StopSignal".into(), Value::String(shown.trim().to_owned()));
                state.add_history(&created_by, &created, true);
            }
            Keyword::Shell => {
                let Form::Json(words) = &inst.args else {
                    return Err(self.err(inst.pos, "SHELL takes a JSON array: SHELL [\"/bin/bash\", \"-c\"]"));
                };
                if words.is_empty() {
                    return Err(self.err(inst.pos, "SHELL needs at least the shell program"));
                }
                state.run_config().insert("Shell".into(), json!(words));
                state.add_history(&created_by, &created, true);
            }
            Keyword::Healthcheck => {
                let hc = self.healthcheck(inst)?;
                state.run_config().insert("Healthcheck".into(), hc);
                state.add_history(&created_by, &created, true);
            }
            Keyword::Onbuild => {
                let inner = inst.onbuild.as_ref().expect("ONBUILD has its instruction");
                let mut line = inner.keyword.to_string();
                for f in &inner.flags {
                    line.push_str(&match &f.value {
                        Some(v) => format!(" --{}={v}", f.name),
                        None => format!(" --{}", f.name),
                    });
                }
                line.push(' ');
                line.push_str(&match &inner.args {
                    Form::Json(w) => serde_json::to_string(w).expect("JSON"),
                    Form::Text(t) => t.clone(),
                });
                let c = state.run_config();
                if !c.get("OnBuild").is_some_and(Value::is_array) {
                    c.insert("OnBuild".into(), json!([]));
                }
                c.get_mut("OnBuild")
                    .and_then(Value::as_array_mut)
                    .expect("an array")
                    .push(Value::String(line));
                state.add_history(&created_by, &created, true);
            }
            Keyword::Run => self.run(state, ctx, inst, &env, stage)?,
            Keyword::Copy | Keyword::Add => self.copy(state, ctx, inst, &vars, stage)?,
        }
        if !matches!(inst.keyword, Keyword::Run | Keyword::Copy | Keyword::Add) {
            // Config instructions chain into the key: a later step's result depends on them (ENV, USER, WORKDIR, …).
            // An ARG counts by name; its value counts where a RUN sees it.
            let said = if inst.keyword == Keyword::Arg {
                text.clone()
            } else {
                shown.clone()
            };
            state.key = crate::stepcache::next_key(&state.key, &[&inst.keyword.to_string(), &said]);
        }
        Ok(())
    }

    fn expand(&self, inst: &Instruction, text: &str, vars: &Vars) -> Result<String, BuildError> {
        expand::expand_word(text, vars, self.file().escape).map_err(|e| self.err(inst.pos, e.to_string()))
    }
}

/// Per-stage state beside the image.
struct StageCtx {
    args: Args,
    /// WORKDIRs to create in the next step that writes a layer: (directory, user at the time).
    pending_workdir: Vec<(String, String)>,
    cmd_set: bool,
    /// The instruction being run is the stage's last that mounts its root filesystem.
    last_mount: bool,
}

#[cfg(test)]
mod tests {
    use super::config_ops::parse_duration;
    use super::copy_step::expand_heredoc;
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn unused_stages_are_not_needed() {
        let f = crate::containerfile::parse(
            "Containerfile",
            "FROM scratch AS a\nFROM scratch AS broken\nRUN false\nFROM a AS b\nCOPY --from=0 /x /y\nFROM scratch\nCOPY --from=b /y /z\n",
        )
        .unwrap();
        assert_eq!(needed_stages(&f, 3), vec![0, 2, 3]);
        assert_eq!(needed_stages(&f, 1), vec![1]);
        assert_eq!(target_stage(&f, Some("B")).unwrap(), 2);
        assert!(
            target_stage(&f, Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("named stages: a, broken, b")
        );
    }

    #[test]
    fn heredoc_bodies_expand_variables_only() {
        let vars: Vars = [("v".to_owned(), "1".to_owned())].into();
        assert_eq!(
            expand_heredoc("a=$v \"q\" ${v}x\n$ end\n", &vars, '\\'),
            "a=1 \"q\" 1x\n$ end\n"
        );
    }
}
