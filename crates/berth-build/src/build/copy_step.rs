//! `COPY` and `ADD`: flags, sources (context, stage, image, URLs), the cache key, and the step.

use std::path::Path;

use berth_spec::Digest;
use berth_spec::runtime_config::{UserSpec, resolve_user};

use crate::containerfile::expand::{self, Vars};
use crate::containerfile::{Args as Form, Instruction, Keyword};

use crate::error::BuildError;
use crate::image::ImageState;
use crate::pattern::IgnoreRules;
use crate::steps::copy::{CopyRequest, SourceRoot};
use crate::workspace::StepRoot;

use super::*;

impl Builder<'_> {
    pub(super) fn copy(
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
                // Docker's, not Berth's (yet).
                "keep-git-dir" | "unpack" if inst.keyword == Keyword::Add => {
                    return Err(self.err(inst.pos, format!("ADD --{} is not supported by berth-build", f.name)));
                }
                other => {
                    let known: &[&str] = if inst.keyword == Keyword::Add {
                        &["from", "chown", "chmod", "link", "parents", "exclude", "checksum"]
                    } else {
                        &["from", "chown", "chmod", "link", "parents", "exclude"]
                    };
                    let hint = crate::naming::closest(other, known)
                        .map(|k| format!("did you mean --{k}? "))
                        .unwrap_or_default();
                    let list: Vec<String> = known.iter().map(|k| format!("--{k}")).collect();
                    return Err(self.err(
                        inst.pos,
                        format!(
                            "{} has no flag --{other}; {hint}it takes {}",
                            inst.keyword,
                            list.join(", ")
                        ),
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
            Some(name) => Some(self.state_named(name, stage, inst.pos)?),
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
        let bodies: Vec<String> = heredocs.iter().map(|(n, b)| format!("{n}\n{b}")).collect();
        let parent_key = state.key.clone();
        let key_parts = (
            format!("{:?} {:?} {:?} {parents}", chown, chmod, excludes),
            serde_json::to_string(&words).expect("JSON"),
            bodies.join("\n"),
        );
        let make_key = |input: &str| {
            crate::stepcache::next_key(
                &parent_key,
                &[
                    &keyword.to_string(),
                    &key_parts.0,
                    &key_parts.1,
                    &dest,
                    &workdir,
                    &key_parts.2,
                    input,
                ],
            )
        };
        let hash_req = CopyRequest {
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
            defer: None,
        };
        let step_err = |e: BuildError| BuildError::Step {
            file: file.clone(),
            pos,
            step: step.clone(),
            source: Box::new(e),
        };
        // When the step cannot be in the cache (--no-cache, or this instruction never ran after this parent), the
        // context is hashed for the key on another thread while the files are copied.
        let certain_miss = self.opts.no_cache || !self.step_cache.seen(&state.key, &created_by);
        let speculative = !urls && source_state.is_none() && certain_miss;
        let key = if urls || speculative {
            None
        } else {
            let input = match &source_state {
                Some(s) => s.key.clone(),
                None => crate::steps::copy::content_digest(&hash_req, &mut self.stat_cache)
                    .map_err(step_err)?
                    .to_string(),
            };
            Some(make_key(&input))
        };
        // The stage's last step that mounts its root, copying from the context: no later step reads the copied
        // files, so their data is not written into the step's root; the layer reads it from the context.
        // (ADD is left out: the archives it extracts write their data into the step's root.)
        let defer = ctx.last_mount && source_state.is_none() && keyword == Keyword::Copy;
        self.upper_in_memory = defer;
        let deferred = std::sync::Mutex::new(Vec::new());
        // A key that is needed only after the step, of files the layer reads anyway: hashed as the layer reads them.
        let hash_in_layer = speculative && defer;
        let body = |b: &mut Self, _: &ImageState, root: &StepRoot| -> Result<(), BuildError> {
            if hash_in_layer {
                root.hash_deferred_sources();
            }
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
                defer: defer.then_some(&deferred),
            };
            let scratch = root.dir().join("scratch");
            crate::steps::copy::copy(&req, &root.rootfs(), &scratch)?;
            drop(from_mount);
            for d in std::mem::take(&mut *deferred.lock().expect("not poisoned")) {
                root.defer(&d.copy, d.ino, d.source)?;
            }
            Ok(())
        };
        let hash_failed = |e: BuildError| BuildError::Work {
            what: "hash the copy's sources",
            source: berth_spec::error_chain(&e).into(),
        };
        if hash_in_layer {
            // The sources the layer read are in the stat cache once it is written; the key's walk of the context
            // then reads only what the layer did not (heredocs are hashed as they are).
            let stat_cache = std::cell::RefCell::new(self.stat_cache.take());
            let key = StepKey::Later(Box::new(|sources| {
                let mut stat_cache = stat_cache.borrow_mut();
                for s in &sources {
                    stat_cache.record(&s.path, &s.meta, &s.blake3);
                }
                let d = crate::steps::copy::content_digest(&hash_req, &mut stat_cache).map_err(hash_failed)?;
                // The key must describe the bytes the layer holds: a source that changed between the layer's read
                // and the key's walk would cache the layer under the wrong content.
                for s in &sources {
                    let recorded = blake3::Hash::from_bytes(s.blake3).to_hex();
                    if stat_cache
                        .known(&s.path)
                        .is_some_and(|k| !k.ends_with(recorded.as_str()))
                    {
                        return Err(BuildError::Work {
                            what: "record the step",
                            source: format!(
                                "{}: changed while the step was running; build again once nothing modifies the context",
                                s.path.display()
                            )
                            .into(),
                        });
                    }
                }
                tracing::debug!(read_by_the_layer = sources.len(), "key from the sources the layer read");
                Ok(make_key(&d.to_string()))
            }));
            let result = self.layer_step(state, ctx, &created_by, key, body);
            self.stat_cache = stat_cache.into_inner();
            return result.map_err(step_err);
        }
        if speculative {
            let mut stat_cache = self.stat_cache.take();
            let (digest, stat_cache, result) = std::thread::scope(|scope| {
                let hashing = scope.spawn(|| {
                    let d = crate::steps::copy::content_digest(&hash_req, &mut stat_cache);
                    (d, stat_cache)
                });
                let hashing = std::cell::RefCell::new(Some(hashing));
                let hashed = std::cell::RefCell::new(None);
                let join = || {
                    if let Some(h) = hashing.borrow_mut().take() {
                        *hashed.borrow_mut() = Some(h.join().expect("hashing does not panic"));
                    }
                };
                let key = StepKey::Later(Box::new(|_| {
                    join();
                    match hashed.borrow().as_ref().expect("joined") {
                        (Ok(d), _) => Ok(make_key(&d.to_string())),
                        (Err(e), _) => Err(BuildError::Work {
                            what: "hash the copy's sources",
                            source: berth_spec::error_chain(e).into(),
                        }),
                    }
                }));
                let result = self.layer_step(state, ctx, &created_by, key, body);
                join();
                let (d, sc) = hashed.into_inner().expect("joined");
                (d, sc, result)
            });
            self.stat_cache = stat_cache;
            digest.map_err(step_err)?;
            return result.map_err(step_err);
        }
        self.layer_step(state, ctx, &created_by, StepKey::Known(key), body)
            .map_err(step_err)
    }
}

/// A heredoc body with `$variables` expanded (quotes in it are kept: it is file content, not shell words).
pub(super) fn expand_heredoc(body: &str, vars: &Vars, escape: char) -> String {
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
pub(super) fn resolve_chown(spec: &str, rootfs: &Path) -> Result<(u32, u32), BuildError> {
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
