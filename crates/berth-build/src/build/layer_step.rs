//! The step that writes a layer: mount the stage's root, run the instruction, commit the changes, record the
//! result in the step cache.

use std::sync::atomic::Ordering;

use crate::error::BuildError;
use crate::image::ImageState;
use crate::workspace::StepRoot;

use super::config_ops::make_workdir;
use super::{Builder, STEP_COUNTER, StageCtx, WORKDIR_ONLY};

impl Builder<'_> {
    /// A step that changes the file system: mounts the stage's root, applies a pending WORKDIR, runs `f`, and
    /// commits the changes as a layer.
    pub(super) fn layer_step(
        &mut self,
        state: &mut ImageState,
        ctx: &mut StageCtx,
        created_by: &str,
        key: StepKey<'_>,
        f: impl FnOnce(&mut Self, &ImageState, &StepRoot) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let (key, later) = match key {
            StepKey::Known(k) => (k, None),
            StepKey::Later(k) => (None, Some(k)),
        };
        let in_memory = std::mem::take(&mut self.upper_in_memory);
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
        if (key.is_some() || later.is_some()) && !self.opts.no_cache {
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
        let started = std::time::Instant::now();
        let root = StepRoot::mount_with(state, &self.cache, &dir, in_memory)?;
        tracing::debug!(elapsed = ?started.elapsed(), in_memory, "step root mounted");
        for (dir, user) in std::mem::take(&mut ctx.pending_workdir) {
            make_workdir(&dir, &user, &root.rootfs())?;
        }
        f(self, state, &root)?;
        tracing::debug!(elapsed = ?started.elapsed(), "step done");
        if created_by == WORKDIR_ONLY && root.unchanged() {
            // The working directory was there already: no layer.
            return Ok(());
        }
        let crate::workspace::Committed {
            layer,
            dir: layer_dir,
            sources,
        } = root.commit(&self.store, &self.cache, &self.create)?;
        tracing::debug!(elapsed = ?started.elapsed(), "layer committed");
        // A key computed meanwhile, or from what the layer read (the step's inputs), is needed only now, to record
        // the step.
        let key = match later {
            Some(k) => Some(k(sources)?),
            None => key,
        };
        if let Some(k) = &key {
            if let Err(e) = self.step_cache.put(k, &layer) {
                tracing::warn!("the step is not cached: {}", berth_spec::error_chain(&e));
            }
            tracing::debug!(elapsed = ?started.elapsed(), "layer kept in the step cache");
            self.step_cache.remember(&parent_key, created_by, k);
            state.key = k.clone();
        }
        state.push_layer(layer, layer_dir);
        let created = self.created.clone();
        state.add_history(created_by, &created, false);
        Ok(())
    }
}

/// A layer step's cache key: known before the step (looked up first), or known only once it ran (a step that
/// cannot be in the cache, whose inputs are hashed meanwhile or while the layer reads them; recorded after). The
/// later key is given the digests of the sources the layer read.
pub(super) enum StepKey<'a> {
    Known(Option<String>),
    Later(LaterKey<'a>),
}

/// A key computed once the step ran, from the sources its layer read (and hashed) and anything else it needs.
pub(super) type LaterKey<'a> =
    Box<dyn FnOnce(Vec<berth_layer::create::SourceDigest>) -> Result<String, BuildError> + 'a>;
