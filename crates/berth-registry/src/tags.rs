//! Tag listing, following `Link: <…>; rel="next"` pagination.

use reqwest::Method;
use reqwest::header::LINK;
use serde::Deserialize;

use crate::auth::Scope;
use crate::client::{Registry, Request};
use crate::endpoint::check_repo;
use crate::error::{RegistryError, Subject};
use crate::response::read_capped;

/// Largest tag-list page read.
const MAX_PAGE_SIZE: u64 = 16 * 1024 * 1024;
/// Most pages followed (a registry that keeps linking on is refused).
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Registry {
    /// All tags of `repo`, in the order the registry lists them, following pagination.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(repo, None).await
    }

    /// [`list_tags`](Self::list_tags) asking for pages of at most `page_size` tags (`?n=`).
    pub async fn list_tags_paged(&self, repo: &str, page_size: Option<u32>) -> Result<Vec<String>, RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let target = inner.target(repo, Subject::Tags);
        let mut url = inner.url(&format!("v2/{repo}/tags/list")).await?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let scope = Scope::pull(repo);
        let mut seen = vec![url.clone()];
        let mut tags = Vec::new();
        loop {
            let req = Request::new(Method::GET, url.clone());
            let resp = inner.send_expect(&req, &scope, &target, &[200]).await?;
            let page_url = resp.url().clone();
            let next = resp
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .map(|l| {
                    page_url.join(&l).map_err(|e| RegistryError::BadResponse {
                        target: target.clone(),
                        reason: format!("invalid Link target {l:?}: {e}"),
                    })
                })
                .transpose()?;
            let body = read_capped(resp, MAX_PAGE_SIZE, inner.stall, &target).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| RegistryError::BadResponse {
                target: target.clone(),
                reason: format!("the tag list is not {{\"name\", \"tags\": [...]}} JSON: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            let Some(next) = next else { return Ok(tags) };
            if seen.contains(&next) || seen.len() >= MAX_PAGES {
                return Err(RegistryError::BadResponse {
                    target,
                    reason: format!("tag list pagination loops or does not end (at {})", next.path()),
                });
            }
            seen.push(next.clone());
            url = next;
        }
    }
}

/// The `rel="next"` target of one `Link` header value (RFC 8288), which may hold several links.
pub(crate) fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find(",").map_or(rest.len(), |i| {
            // A comma inside the parameters ends this link only if another `<` follows.
            rest[close + i..].find('<').map_or(rest.len(), |j| close + i + j)
        });
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            let Some((name, value)) = p.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
    }
    None
}

impl Registry {
    /// `GET /v2/` with this client's credentials, as `login` checks them: the registry must answer 200 once
    /// authenticated (with a registry-wide token where it uses bearer tokens). A refusal is the error.
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        let inner = &self.inner;
        let target = inner.target("", Subject::ApiCheck);
        let url = inner.url("v2/").await?;
        let req = Request::new(Method::GET, url);
        inner.send_expect(&req, &Scope::registry(), &target, &[200]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next?a=1,2>; rel=next"#).as_deref(),
            Some("https://x/next?a=1,2")
        );
        assert_eq!(next_link(r#"<a>; rel="first last""#), None);
        assert_eq!(next_link("<a>; rel=next, <b>; rel=prev").as_deref(), Some("a"));
        assert_eq!(next_link("<a>; rel=prev, <b>; rel=next").as_deref(), Some("b"));
        assert_eq!(next_link(r#"<a>; title="x, y"; rel="next""#).as_deref(), Some("a"));
        for junk in ["", "<", "<unterminated; rel=next", ">;<", "rel=next"] {
            assert_eq!(next_link(junk), None, "{junk:?}");
        }
    }
}
