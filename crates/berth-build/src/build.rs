//! The build: stages in order (only those the target needs), each instruction applied to the stage's image, the
//! target committed to the output layout.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_layer::apply::OverlayCache;
use berth_layer::create::CreateOptions;
use berth_sandbox::NetMode;
use berth_sandbox::runtime::Runtime;
use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_spec::platform::Platform;
use berth_spec::runtime_config::{UserSpec, resolve_user};
use berth_transfer::{Progress, RegistryAccess};
use oci_spec::image::Descriptor;
use serde_json::{Map, Value, json};

use crate::base::{BaseResolver, PullPolicy};
use crate::containerfile::expand::{self, Vars};
use crate::containerfile::{Args as Form, Containerfile, Instruction, Keyword, Pos, Stage};
use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::image::ImageState;
use crate::pattern::IgnoreRules;
use crate::steps::copy::{CopyRequest, SourceRoot};
use crate::steps::mounts::{MountContext, MountSpec, Secret};
use crate::steps::run::RunProcess;
use crate::vars::{Args, platform_args};
use crate::workspace::StepRoot;

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
}

/// Builds the image and writes it (unnamed) into the store. The caller names it.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let file = &opts.containerfile;
    let store = Layout::create(&opts.store)?;
    berth_spec::private_dir::ensure_private_dir(&opts.work_dir)?;
    let cache = OverlayCache::open(&opts.work_dir, false)?;
    let runtime = Runtime::new(&opts.work_dir.join("runtime")).map_err(|e| BuildError::Work {
        what: "open the container state directory",
        source: Box::new(e),
    })?;
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
        let alive = rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if !alive && let Err(e) = runtime.delete(&id, true) {
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

/// The index of the stage `--target` names (the last one without it).
fn target_stage(file: &Containerfile, target: Option<&str>) -> Result<usize, BuildError> {
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
fn stage_ref(file: &Containerfile, name: &str, before: usize) -> Option<usize> {
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
fn needed_stages(file: &Containerfile, target: usize) -> Vec<usize> {
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

fn mount_from(value: &str) -> Option<String> {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix("from="))
        .map(str::to_owned)
}

/// The shell form of a command: the stage's shell with the text.
fn shell_form(state: &ImageState, text: &str) -> Vec<String> {
    let mut argv: Vec<String> = state
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
    argv.push(text.to_owned());
    argv
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
        for inst in &stage.instructions {
            self.instruction(&mut state, &mut ctx, inst, index)?;
        }
        if !ctx.pending_workdir.is_empty() {
            let key = crate::stepcache::next_key(&state.key, &["WORKDIR (created)"]);
            self.layer_step(&mut state, &mut ctx, WORKDIR_ONLY, Some(key), |_, _, _| Ok(()))?;
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

    fn healthcheck(&self, inst: &Instruction) -> Result<Value, BuildError> {
        let text = inst.text();
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("NONE") {
            return Ok(json!({"Test": ["NONE"]}));
        }
        let rest = trimmed
            .strip_prefix("CMD")
            .or_else(|| trimmed.strip_prefix("cmd"))
            .ok_or_else(|| self.err(inst.pos, "HEALTHCHECK takes [OPTIONS] CMD command, or NONE"))?
            .trim();
        let test = match serde_json::from_str::<Vec<String>>(rest) {
            Ok(words) if rest.starts_with('[') => {
                let mut t = vec!["CMD".to_owned()];
                t.extend(words);
                t
            }
            _ => vec!["CMD-SHELL".to_owned(), rest.to_owned()],
        };
        let mut hc = json!({"Test": test});
        for f in &inst.flags {
            let v = f.value.clone().unwrap_or_default();
            let key = match f.name.as_str() {
                "interval" => "Interval",
                "timeout" => "Timeout",
                "start-period" => "StartPeriod",
                "start-interval" => "StartInterval",
                "retries" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| self.err(inst.pos, format!("--retries={v}: not a number")))?;
                    hc["Retries"] = json!(n);
                    continue;
                }
                other => return Err(self.err(inst.pos, format!("HEALTHCHECK does not take --{other}"))),
            };
            let ns = parse_duration(&v)
                .ok_or_else(|| self.err(inst.pos, format!("--{}={v}: not a duration (e.g. 30s, 1m30s)", f.name)))?;
            hc[key] = json!(ns);
        }
        Ok(hc)
    }

    /// A step that changes the file system: mounts the stage's root, applies a pending WORKDIR, runs `f`, and
    /// commits the changes as a layer.
    fn layer_step(
        &mut self,
        state: &mut ImageState,
        ctx: &mut StageCtx,
        created_by: &str,
        key: Option<String>,
        f: impl FnOnce(&mut Self, &ImageState, &StepRoot) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        if let Some(k) = &key
            && !self.opts.no_cache
            && let Some(layer) = self.step_cache.get(k)
        {
            self.step_cache.remember(&state.key, created_by, k);
            (self.opts.report)(&format!("--> Using cache {}", &k[..12]));
            ctx.pending_workdir.clear();
            state.push_cached_layer(layer);
            let created = self.created.clone();
            state.add_history(created_by, &created, false);
            state.key = k.clone();
            return Ok(());
        }
        if key.is_some() && !self.opts.no_cache {
            tracing::info!(
                step = created_by,
                "not in the step cache: {}",
                self.step_cache.why_missed(&state.key, created_by)
            );
        }
        let parent_key = state.key.clone();
        let n = STEP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .opts
            .work_dir
            .join("steps")
            .join(format!("{}-{n}", std::process::id()));
        let root = StepRoot::mount(state, &self.cache, &dir)?;
        for (dir, user) in std::mem::take(&mut ctx.pending_workdir) {
            make_workdir(&dir, &user, &root.rootfs())?;
        }
        f(self, state, &root)?;
        if created_by == WORKDIR_ONLY && root.unchanged() {
            // The working directory was there already: no layer.
            return Ok(());
        }
        let (layer, layer_dir) = root.commit(&self.store, &self.cache, &self.create)?;
        if let Some(k) = &key {
            if let Err(e) = self.step_cache.put(k, &layer) {
                tracing::warn!("the step is not cached: {}", berth_spec::error_chain(&e));
            }
            self.step_cache.remember(&parent_key, created_by, k);
            state.key = k.clone();
        }
        state.push_layer(layer, layer_dir);
        let created = self.created.clone();
        state.add_history(created_by, &created, false);
        Ok(())
    }

    fn run(
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
                other => {
                    return Err(self.err(inst.pos, format!("RUN --{other} is not supported by berth-build")));
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
                let state = match stage_ref(self.file(), name, stage) {
                    Some(j) => self
                        .done
                        .get(&j)
                        .cloned()
                        .ok_or_else(|| self.err(inst.pos, format!("stage {name} was not built")))?,
                    None => self.resolver.resolve(name)?,
                };
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
        self.layer_step(state, ctx, &created_by, key, |b, state, root| {
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

    fn copy(
        &mut self,
        state: &mut ImageState,
        ctx: &mut StageCtx,
        inst: &Instruction,
        vars: &Vars,
        stage: usize,
    ) -> Result<(), BuildError> {
        let escape = self.file().escape;
        let mut excludes = Vec::new();
        let (mut from, mut chown, mut chmod) = (None, None, None);
        let mut checksum: Option<Digest> = None;
        let mut parents = false;
        for f in &inst.flags {
            let v = f.value.clone().unwrap_or_default();
            match f.name.as_str() {
                "from" => from = Some(self.expand(inst, &v, vars)?),
                "chown" => chown = Some(self.expand(inst, &v, vars)?),
                "chmod" => chmod = Some(self.expand(inst, &v, vars)?),
                "link" => {}
                "parents" => parents = f.value.as_deref() != Some("false"),
                "checksum" if inst.keyword == Keyword::Add => {
                    let v = self.expand(inst, &v, vars)?;
                    checksum = Some(Digest::parse(&v).map_err(|e| self.err(inst.pos, format!("--checksum={v}: {e}")))?);
                }
                "exclude" => excludes.push(self.expand(inst, &v, vars)?),
                other => {
                    return Err(self.err(
                        inst.pos,
                        format!("{} --{other} is not supported yet by berth-build", inst.keyword),
                    ));
                }
            }
        }
        let mut words = match &inst.args {
            Form::Json(w) => w
                .iter()
                .map(|x| expand::expand_word(x, vars, escape))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(inst.pos, e.to_string()))?,
            Form::Text(t) => expand::expand_words(t, vars, escape).map_err(|e| self.err(inst.pos, e.to_string()))?,
        };
        if words.len() < 2 {
            return Err(self.err(inst.pos, format!("{} needs a source and a destination", inst.keyword)));
        }
        let dest = words.pop().expect("two words");
        let urls = inst.keyword == Keyword::Add && words.iter().any(|w| w.contains("://"));
        if urls && (words.iter().any(|w| !w.contains("://")) || from.is_some()) {
            return Err(self.err(
                inst.pos,
                "ADD takes either URLs or local sources in one instruction, not both",
            ));
        }
        if checksum.is_some() && !(urls && words.len() == 1) {
            return Err(self.err(inst.pos, "ADD --checksum applies to one URL source"));
        }
        let chmod = chmod
            .map(|m| {
                u32::from_str_radix(&m, 8)
                    .map_err(|_| self.err(inst.pos, format!("--chmod={m}: give an octal mode such as 0755")))
            })
            .transpose()?;
        let heredocs: Vec<(String, String)> = inst
            .heredocs
            .iter()
            .map(|h| {
                let body = if h.expand {
                    expand_heredoc(&h.body, vars, escape)
                } else {
                    h.body.clone()
                };
                (h.name.clone(), body)
            })
            .collect();
        // Sources from another stage or image: its root filesystem, mounted read-only for the copy.
        let named_dir = match from.as_ref().and_then(|n| self.opts.build_contexts.get(n)) {
            Some(NamedContext::Dir(d)) => Some(d.clone()),
            _ => None,
        };
        let mut source_state = match &from {
            None => None,
            Some(_) if named_dir.is_some() => None,
            Some(name) if let Some(NamedContext::Image(image)) = self.opts.build_contexts.get(name) => {
                Some(self.resolver.resolve(image)?)
            }
            Some(name) => Some(match stage_ref(self.file(), name, stage) {
                Some(j) => self
                    .done
                    .get(&j)
                    .cloned()
                    .ok_or_else(|| self.err(inst.pos, format!("stage {name} was not built")))?,
                None => self.resolver.resolve(name)?,
            }),
        };
        let ignore = if named_dir.is_some() {
            IgnoreRules::default()
        } else {
            self.opts.ignore.clone()
        };
        let context = named_dir.unwrap_or_else(|| self.opts.context.clone());
        let workdir = state.workdir();
        let created_by = format!("/bin/sh -c #(nop) {} {}", inst.keyword, inst.text().trim());
        let file = self.file().file.clone();
        let (pos, step) = (inst.pos, format!("{} {}", inst.keyword, inst.text().trim()));
        let keyword = inst.keyword;
        // What decides the step's result: the instruction as expanded, the working directory, and what it reads —
        // the content of its local sources, or the key of the stage or image it copies from. Downloads are not
        // cached.
        let key = if urls {
            None
        } else {
            let input = match &source_state {
                Some(s) => s.key.clone(),
                None => {
                    let req = CopyRequest {
                        sources: words.clone(),
                        dest: dest.clone(),
                        workdir: workdir.clone(),
                        from: SourceRoot::Context {
                            root: &context,
                            ignore: &ignore,
                        },
                        chown: None,
                        chmod,
                        excludes: excludes.clone(),
                        heredocs: heredocs.clone(),
                        parents,
                        extract_archives: keyword == Keyword::Add,
                    };
                    crate::steps::copy::content_digest(&req, &mut self.stat_cache)
                        .map_err(|e| BuildError::Step {
                            file: file.clone(),
                            pos,
                            step: step.clone(),
                            source: Box::new(e),
                        })?
                        .to_string()
                }
            };
            let bodies: Vec<String> = heredocs.iter().map(|(n, b)| format!("{n}\n{b}")).collect();
            Some(crate::stepcache::next_key(
                &state.key,
                &[
                    &keyword.to_string(),
                    &format!("{:?} {:?} {:?} {parents}", chown, chmod, excludes),
                    &serde_json::to_string(&words).expect("JSON"),
                    &dest,
                    &workdir,
                    &bodies.join("\n"),
                    &input,
                ],
            ))
        };
        self.layer_step(state, ctx, &created_by, key, |b, _, root| {
            let ids = match &chown {
                None => None,
                Some(spec) => Some(resolve_chown(spec, &root.rootfs())?),
            };
            // Another stage's or image's root filesystem, mounted for the copy (its own upper directory is thrown
            // away with it).
            let from_mount = match source_state.as_mut() {
                None => None,
                Some(s) => Some(StepRoot::mount(s, &b.cache, &root.dir().join("from"))?),
            };
            let mut from_path = from_mount.as_ref().map(StepRoot::rootfs);
            let mut sources = words.clone();
            if urls {
                // Downloaded into the step's scratch directory, then copied like files of another root.
                let dir = root.dir().join("downloads");
                let into_dir = dest.ends_with('/') || words.len() > 1;
                sources.clear();
                for url in &words {
                    let name = if into_dir {
                        crate::steps::download::file_name(url)
                    } else {
                        dest.rsplit('/')
                            .next()
                            .filter(|n| !n.is_empty())
                            .unwrap_or("download")
                            .to_owned()
                    };
                    crate::steps::download::download(url, &dir, &name, checksum.as_ref()).map_err(|e| {
                        BuildError::Work {
                            what: "download",
                            source: Box::new(e),
                        }
                    })?;
                    sources.push(name);
                }
                from_path = Some(dir);
            }
            let src = match &from_path {
                None => SourceRoot::Context {
                    root: &context,
                    ignore: &ignore,
                },
                Some(p) => SourceRoot::Rootfs(p),
            };
            let req = CopyRequest {
                sources,
                dest: dest.clone(),
                workdir: workdir.clone(),
                from: src,
                chown: ids,
                chmod,
                excludes: excludes.clone(),
                heredocs: heredocs.clone(),
                extract_archives: keyword == Keyword::Add && !urls,
                parents,
            };
            let staging = root.dir().join("staging");
            crate::steps::copy::copy(&req, &root.rootfs(), &staging)?;
            drop(from_mount);
            Ok(())
        })
        .map_err(|e| BuildError::Step {
            file,
            pos,
            step,
            source: Box::new(e),
        })
    }
}

/// A heredoc body with `$variables` expanded (quotes in it are kept: it is file content, not shell words).
fn expand_heredoc(body: &str, vars: &Vars, escape: char) -> String {
    body.split_inclusive('\n')
        .map(|line| {
            let (text, nl) = match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            };
            let mut out = String::new();
            let mut rest = text;
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                let tail = &rest[i..];
                let end = if tail.starts_with("${") {
                    tail.find('}').map_or(tail.len(), |e| e + 1)
                } else {
                    1 + tail[1..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(tail.len() - 1)
                };
                let word = &tail[..end];
                out.push_str(&expand::expand_word(word, vars, escape).unwrap_or_else(|_| word.to_owned()));
                rest = &tail[end..];
            }
            out.push_str(rest);
            out.push_str(nl);
            out
        })
        .collect()
}

/// `--chown=USER[:GROUP]` resolved with the stage's own `/etc/passwd` and `/etc/group` (a missing name fails).
fn resolve_chown(spec: &str, rootfs: &Path) -> Result<(u32, u32), BuildError> {
    let fail = |e: &dyn std::fmt::Display| BuildError::Option {
        option: format!("--chown={spec}"),
        reason: e.to_string(),
    };
    let fs = berth_sandbox::rootfs::RootFs::open(rootfs, "the build stage").map_err(|e| fail(&e))?;
    let (passwd, group) = fs.account_files().map_err(|e| fail(&e))?;
    let user = UserSpec::parse(spec).map_err(|e| fail(&e))?;
    // A numeric user without a group keeps gid = uid (Docker's rule for --chown).
    let resolved = resolve_user(&user, &passwd, &group).map_err(|e| fail(&e))?;
    let gid = match (&user.group, &user.user) {
        (None, berth_spec::runtime_config::UserPart::Id(uid))
            if !passwd.lines().any(|l| l.split(':').nth(2) == Some(&uid.to_string())) =>
        {
            *uid
        }
        _ => resolved.gid,
    };
    Ok((resolved.uid, gid))
}

/// Creates the working directory (`mkdir -p`), owned by the stage's user when it creates it.
fn make_workdir(dir: &str, user: &str, rootfs: &Path) -> Result<(), BuildError> {
    let fs = berth_sandbox::rootfs::RootFs::open(rootfs, "the build stage").map_err(|e| BuildError::Work {
        what: "open the stage's root filesystem",
        source: Box::new(e),
    })?;
    // The missing directories on the way are created for the user too (mkdir -p as that user).
    let mut missing = Vec::new();
    let mut p = dir.trim_end_matches('/').to_owned();
    while !p.is_empty() && !matches!(fs.open_dir(&p), Ok(Some(_))) {
        missing.push(p.clone());
        p = p.rsplit_once('/').map_or(String::new(), |(a, _)| a.to_owned());
    }
    fs.ensure_dir(dir).map_err(|e| BuildError::Work {
        what: "create the working directory",
        source: Box::new(e),
    })?;
    if user.is_empty() {
        return Ok(());
    }
    let (uid, gid) = resolve_chown(user, rootfs)?;
    for dir in missing {
        let fd = fs
            .open_in_root(&dir, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY)
            .at("open", rootfs.join(dir.trim_start_matches('/')))?;
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .at("chown", rootfs.join(dir.trim_start_matches('/')))?;
    }
    Ok(())
}

/// Per-stage state beside the image.
struct StageCtx {
    args: Args,
    /// WORKDIRs to create in the next step that writes a layer: (directory, user at the time).
    pending_workdir: Vec<(String, String)>,
    cmd_set: bool,
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += (n * unit) as u64;
        rest = &rest[u_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
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
