//! Naming the built image: store names are set in the store (an unnamed image stays there as an entry, like
//! buildah's untagged images); every other destination (`oci:`, `oci-archive:`, `docker-archive:`, `docker://`) is
//! written from the store by the transfer engine.

use std::path::Path;
use std::sync::Arc;

use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::reference::ImageRef;
use berth_transfer::endpoint::{Selector, Source};
use berth_transfer::{CopyOptions, Endpoints, Progress, RegistryAccess};

use crate::BuildReport;
use crate::error::BuildError;

fn tag_err(tag: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BuildError {
    BuildError::Option {
        option: format!("-t {tag}"),
        reason: berth_spec::error_chain(&*e.into()),
    }
}

/// Names `built` (in the store at `store_path`) as each of `tags` says.
pub fn name_image(
    store_path: &Path,
    built: &BuildReport,
    tags: &[String],
    registry: &RegistryAccess,
    progress: Arc<dyn Progress>,
) -> Result<(), BuildError> {
    let store = Layout::open(store_path)?;
    let writer = store.writer()?;
    let mut named = false;
    let mut others = Vec::new();
    for t in tags {
        match ImageRef::parse(t).map_err(|e| tag_err(t, e))? {
            ImageRef::Store(s) => {
                let Some(name) = s.ref_name() else {
                    return Err(tag_err(t, "name the image NAME[:TAG], not by digest"));
                };
                writer.set_ref(&name, &built.manifest)?;
                named = true;
            }
            other => others.push((t, other)),
        }
    }
    if !named {
        writer.add_entry(&built.manifest)?;
    }
    drop(writer);
    if others.is_empty() {
        return Ok(());
    }
    let endpoints = Endpoints {
        store: Some(store_path.to_owned()),
        dest: registry.clone(),
        user_agent: Some(format!("berth-build/{}", env!("CARGO_PKG_VERSION"))),
        ..Endpoints::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| tag_err("…", e))?;
    let digest = Digest::from_oci(built.manifest.digest()).map_err(|e| tag_err("…", e))?;
    for (tag, dest) in others {
        let source = Source::Layout {
            layout: store.clone(),
            selector: Selector::Digest(digest.clone()),
            label: format!("the built image {}", built.image_id),
            staging: None,
        };
        let d = endpoints.open_dest(&dest).map_err(|e| tag_err(tag, e))?;
        runtime
            .block_on(berth_transfer::copy_between(
                source,
                d,
                &CopyOptions::default(),
                progress.clone(),
            ))
            .map_err(|e| tag_err(tag, e))?;
    }
    Ok(())
}

/// The candidate `word` is most likely a typo of (at most two edits away, and fewer than half its letters), for a
/// "did you mean" hint.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|&(d, c)| d > 0 && d <= 2 && d * 2 < c.len().max(word.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance over bytes (the names compared are ASCII), a swap of two neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod suggestion_tests {
    use super::closest;

    #[test]
    fn typos_get_the_name_they_are_closest_to() {
        let names = ["FROM", "COPY", "ENTRYPOINT", "RUN", "ADD"];
        assert_eq!(closest("FORM", &names), Some("FROM"));
        assert_eq!(closest("COYP", &names), Some("COPY"));
        assert_eq!(closest("ENTRYPONT", &names), Some("ENTRYPOINT"));
        assert_eq!(closest("XYZZY", &names), None, "nothing close");
        assert_eq!(closest("FROM", &names), None, "no hint for a name that is right");
        assert_eq!(
            closest("RM", &names),
            None,
            "short words need to be closer than half their letters"
        );
    }
}
