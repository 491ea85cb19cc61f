//! Which `Authorization` header a request carries: none, Basic, or a bearer token cached per scope.
//!
//! The scheme is learned from the `/v2/` check (and from any later 401). Basic credentials go only to the
//! registry's own origin and only once it asked for Basic; tokens are fetched from the challenge's realm for the
//! scopes a request needs and reused until shortly before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderValue};

use crate::authfile::CredentialSource;
use crate::challenge::{self, AuthScheme};
use crate::client::Inner;
use crate::credentials::Credentials;
use crate::error::RegistryError;
use crate::token::{self, Token};

/// The resource scopes a request needs, e.g. `repository:library/alpine:pull`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    /// No repository: what `GET /v2/` needs (a token for the registry as a whole).
    pub(crate) fn registry() -> Self {
        Scope(Vec::new())
    }

    /// Read access to `repo`.
    pub(crate) fn pull(repo: &str) -> Self {
        Scope(vec![format!("repository:{repo}:pull")])
    }

    /// Read and write access to `repo`.
    pub(crate) fn push(repo: &str) -> Self {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }

    /// Deleting from `repo`.
    pub(crate) fn delete(repo: &str) -> Self {
        Scope(vec![format!("repository:{repo}:delete")])
    }

    /// Pushing to `repo` with a blob mounted from `from`.
    pub(crate) fn mount(repo: &str, from: &str) -> Self {
        Scope(vec![
            format!("repository:{repo}:pull,push"),
            format!("repository:{from}:pull"),
        ])
    }

    /// This scope plus the space-separated scopes a challenge asked for.
    pub(crate) fn with_extra(&self, extra: Option<&str>) -> Self {
        let mut items = self.0.clone();
        for s in extra.unwrap_or_default().split_ascii_whitespace() {
            if !items.iter().any(|i| i == s) {
                items.push(s.to_owned());
            }
        }
        Scope(items)
    }

    /// The individual scope strings (one `scope=` query parameter each).
    pub(crate) fn items(&self) -> &[String] {
        &self.0
    }

    /// The token-cache key.
    fn key(&self) -> String {
        self.0.join(" ")
    }
}

#[derive(Debug, Default)]
struct State {
    scheme: Option<AuthScheme>,
    tokens: HashMap<String, Token>,
}

/// Per-registry authentication state.
#[derive(Debug)]
pub(crate) struct Auth {
    source: CredentialSource,
    /// Looked up (helpers run) the first time the registry asks for authentication.
    credentials: tokio::sync::OnceCell<Option<Credentials>>,
    state: Mutex<State>,
}

impl Auth {
    pub(crate) fn new(source: CredentialSource) -> Self {
        Auth {
            source,
            credentials: tokio::sync::OnceCell::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// The credentials, looked up on first use (a helper that fails is asked again next time).
    pub(crate) async fn credentials(&self) -> Result<Option<&Credentials>, RegistryError> {
        let found = self.credentials.get_or_try_init(|| self.source.resolve()).await?;
        Ok(found.as_ref())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records what the `/v2/` check's 401 asked for.
    pub(crate) fn learn(&self, headers: &HeaderMap) {
        let scheme = challenge::from_headers(headers).map(|s| match s {
            AuthScheme::Bearer(mut b) => {
                b.scope = None;
                AuthScheme::Bearer(b)
            }
            basic => basic,
        });
        tracing::debug!(?scheme, "registry authentication scheme");
        self.state().scheme = scheme;
    }

    /// The `Authorization` value for a request needing `scope`, fetching a token if needed.
    pub(crate) async fn header(&self, inner: &Inner, scope: &Scope) -> Result<Option<HeaderValue>, RegistryError> {
        let (scheme, cached) = {
            let state = self.state();
            let cached = state
                .tokens
                .get(&scope.key())
                .filter(|t| t.fresh_at(Instant::now()))
                .map(|t| t.header.clone());
            (state.scheme.clone(), cached)
        };
        match scheme {
            None => Ok(None),
            Some(AuthScheme::Basic) => Ok(self.credentials().await?.map(Credentials::basic_header)),
            Some(AuthScheme::Bearer(_)) if cached.is_some() => Ok(cached),
            Some(AuthScheme::Bearer(b)) => {
                let token = token::fetch(inner, &b, scope, self.credentials().await?).await?;
                let header = token.header.clone();
                self.state().tokens.insert(scope.key(), token);
                Ok(Some(header))
            }
        }
    }

    /// After a 401: whether re-authenticating per its challenge is worth one more attempt. Bearer challenges get a
    /// fresh token for the request's scope plus any scope the challenge names; Basic is worth it only if it was not
    /// already sent. The caller retries at most once, so a registry that keeps answering 401 cannot loop us.
    pub(crate) async fn on_unauthorized(
        &self,
        inner: &Inner,
        headers: &HeaderMap,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        match challenge::from_headers(headers) {
            Some(AuthScheme::Bearer(b)) => {
                let wanted = scope.with_extra(b.scope.as_deref());
                let token = token::fetch(inner, &b, &wanted, self.credentials().await?).await?;
                let mut state = self.state();
                state.scheme = Some(AuthScheme::Bearer(challenge::BearerChallenge { scope: None, ..b }));
                state.tokens.insert(scope.key(), token);
                Ok(true)
            }
            Some(AuthScheme::Basic) if self.credentials().await?.is_some() => {
                let mut state = self.state();
                let already = matches!(state.scheme, Some(AuthScheme::Basic));
                state.scheme = Some(AuthScheme::Basic);
                Ok(!already)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scope::pull("a/b").items(), ["repository:a/b:pull"]);
        assert_eq!(Scope::push("a").items(), ["repository:a:pull,push"]);
        assert_eq!(
            Scope::mount("a", "b").items(),
            ["repository:a:pull,push", "repository:b:pull"]
        );
        let s = Scope::pull("a").with_extra(Some("repository:a:pull  repository:c:pull"));
        assert_eq!(s.items(), ["repository:a:pull", "repository:c:pull"]);
        assert_eq!(Scope::pull("a").with_extra(None), Scope::pull("a"));
    }
}
