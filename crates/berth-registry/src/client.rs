//! The [`Registry`] handle: construction, the `/v2/` check, and sending a request with authentication, retries
//! and redirects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Auth, Scope};
use crate::authfile::CredentialSource;
use crate::endpoint::{Endpoint, Transport, origin};
use crate::error::{RegistryError, Subject, Target, chain};
use crate::location_cache::LocationCache;
use crate::redirect::{self, OutBody, Outgoing, ScopedAuth, SendError};
use crate::response::status_error;
use crate::retry::{RetryPolicy, is_retryable_status, with_retries};
use crate::{ClientOptions, Timeouts};

/// A client for one registry host. Cloning is cheap and clones share tokens, the `/v2/` check and connections.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.inner.endpoint.host)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub endpoint: Endpoint,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub retry: RetryPolicy,
    pub stall: Duration,
    pub cache: Option<LocationCache>,
    /// `SCHEME://API_HOST/`, settled by the `/v2/` check.
    base: tokio::sync::OnceCell<Url>,
}

/// One request, repeatable: the body is shared bytes.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

impl Request {
    pub(crate) fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

impl Registry {
    /// A client for `host` (as written in image references: `docker.io`, `quay.io`, `localhost:5000`). Reads the
    /// auth files now (small; a malformed one is an error here) but runs no `docker-credential-*` helper: those
    /// run, as async child processes, when the registry first asks for authentication (see
    /// [`lookup_credentials`](crate::lookup_credentials) for the search order). Makes no request until the first
    /// operation. Usable from sync and async code alike.
    pub fn new(host: &str, opts: &ClientOptions) -> Result<Self, RegistryError> {
        Self::with_timeouts(host, opts, Timeouts::default())
    }

    /// [`new`](Self::new) with non-default timeouts.
    pub fn with_timeouts(host: &str, opts: &ClientOptions, timeouts: Timeouts) -> Result<Self, RegistryError> {
        let endpoint = Endpoint::new(host, opts.tls_verify)?;
        let credentials = CredentialSource::from_options(host, opts)?;
        let user_agent = if opts.user_agent.is_empty() {
            concat!("berth-registry/", env!("CARGO_PKG_VERSION")).to_owned()
        } else {
            opts.user_agent.clone()
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.stall)
            .user_agent(user_agent)
            .danger_accept_invalid_certs(endpoint.transport == Transport::Insecure)
            .build()
            .map_err(|e| RegistryError::Client {
                host: host.to_owned(),
                detail: chain(&e),
            })?;
        Ok(Registry {
            inner: Arc::new(Inner {
                endpoint,
                http,
                auth: Auth::new(credentials),
                retry: RetryPolicy {
                    times: opts.retry_times,
                },
                stall: timeouts.stall,
                cache: opts.blob_cache.clone().map(LocationCache::new),
                base: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The registry host as given to [`new`](Self::new).
    pub fn host(&self) -> &str {
        &self.inner.endpoint.host
    }

    /// Whether credentials are known for this registry (explicit, auth file or helper). Runs the credential
    /// helper if that was not done yet; its failure is the error.
    pub async fn has_credentials(&self) -> Result<bool, RegistryError> {
        Ok(self.inner.auth.credentials().await?.is_some())
    }
}

impl Inner {
    pub(crate) fn target(&self, repo: &str, subject: Subject) -> Box<Target> {
        Target::new(&self.endpoint.host, repo, subject)
    }

    /// `BASE/path`, after the `/v2/` check settled the scheme.
    pub(crate) async fn url(&self, path: &str) -> Result<Url, RegistryError> {
        let base = self.base.get_or_try_init(|| self.check_api()).await?;
        Ok(base.join(path).expect("paths are built from validated names"))
    }

    /// `GET /v2/`: settles http vs https (for `tls_verify = false`: https first, then plain http) and learns the
    /// authentication scheme from a 401.
    async fn check_api(&self) -> Result<Url, RegistryError> {
        match self.endpoint.transport {
            Transport::Https => self.check_api_at("https", true).await,
            Transport::Http => self.check_api_at("http", true).await,
            Transport::Insecure => match self.check_api_at("https", false).await {
                Err(RegistryError::Transport { detail, .. }) => {
                    tracing::debug!(host = %self.endpoint.host, %detail, "https failed; trying plain http");
                    self.check_api_at("http", true).await
                }
                other => other,
            },
        }
    }

    async fn check_api_at(&self, scheme: &str, retry: bool) -> Result<Url, RegistryError> {
        let base = self.endpoint.base(scheme);
        let url = base.join("v2/").expect("static path");
        let target = self.target("", Subject::ApiCheck);
        let policy = RetryPolicy {
            times: if retry { self.retry.times } else { 0 },
        };
        let headers = HeaderMap::new();
        let resp = with_retries(&policy, true, async || {
            let out = Outgoing {
                method: Method::GET,
                url: url.clone(),
                headers: &headers,
                body: OutBody::Empty,
            };
            redirect::follow(&self.http, out, None, &target).await
        })
        .await
        .map_err(|e| e.into_error(&target))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            self.auth.learn(resp.headers());
        } else if is_retryable_status(status) {
            return Err(status_error(resp, target, self.stall).await);
        } else if !status.is_success() {
            tracing::warn!(host = %self.endpoint.host, %status, "unexpected answer to GET /v2/; carrying on");
        }
        Ok(base)
    }

    /// Sends `req` with the `Authorization` `scope` needs, retrying 429, 5xx and (unless `req` is a PATCH)
    /// connection errors, and re-authenticating once after a 401. Returns whatever response that ends with, for the
    /// caller to check.
    pub(crate) async fn send(&self, req: &Request, scope: &Scope, target: &Target) -> Result<Response, RegistryError> {
        self.send_with(req, scope, target, self.retry, req.method != Method::PATCH)
            .await
    }

    /// [`send`](Self::send) without retries (still re-authenticating once after a 401 and following redirects),
    /// for requests whose caller is the retry layer: those of an upload session, which [`put_blob`] repeats as a
    /// whole, so that `retry_times` bounds the attempts once and not once per layer.
    ///
    /// [`put_blob`]: Registry::put_blob
    pub(crate) async fn send_once(
        &self,
        req: &Request,
        scope: &Scope,
        target: &Target,
    ) -> Result<Response, RegistryError> {
        self.send_with(req, scope, target, RetryPolicy { times: 0 }, false)
            .await
    }

    /// Sends a request whose body is a stream, once: no retry, no re-authentication (the body is spent), no
    /// redirect that would need the body again. A 401 is returned like any response, for the caller to decide.
    pub(crate) async fn send_stream(
        &self,
        req: &Request,
        body: reqwest::Body,
        scope: &Scope,
        target: &Target,
    ) -> Result<Response, RegistryError> {
        let base = self.base.get_or_try_init(|| self.check_api()).await?;
        let auth = self.auth.header(self, scope).await?;
        let scoped = auth.map(|value| ScopedAuth {
            origin: origin(base),
            value,
        });
        let out = Outgoing {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: &req.headers,
            body: OutBody::Stream(body),
        };
        redirect::follow(&self.http, out, scoped.as_ref(), target)
            .await
            .map_err(|e| e.into_error(target))
    }

    async fn send_with(
        &self,
        req: &Request,
        scope: &Scope,
        target: &Target,
        policy: RetryPolicy,
        retry_transport: bool,
    ) -> Result<Response, RegistryError> {
        let base = self.base.get_or_try_init(|| self.check_api()).await?;
        let registry_origin = origin(base);
        let mut reauthenticated = false;
        loop {
            let resp = with_retries(&policy, retry_transport, async || {
                let auth = self.auth.header(self, scope).await.map_err(SendError::Fatal)?;
                let scoped = auth.map(|value| ScopedAuth {
                    origin: registry_origin.clone(),
                    value,
                });
                let out = Outgoing {
                    method: req.method.clone(),
                    url: req.url.clone(),
                    headers: &req.headers,
                    body: req.body.clone().map_or(OutBody::Empty, OutBody::Bytes),
                };
                redirect::follow(&self.http, out, scoped.as_ref(), target).await
            })
            .await
            .map_err(|e| e.into_error(target))?;
            if resp.status() == StatusCode::UNAUTHORIZED
                && !reauthenticated
                && self.auth.on_unauthorized(self, resp.headers(), scope).await?
            {
                reauthenticated = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// [`send`](Self::send), then an error unless the status is one of `ok`.
    pub(crate) async fn send_expect(
        &self,
        req: &Request,
        scope: &Scope,
        target: &Target,
        ok: &[u16],
    ) -> Result<Response, RegistryError> {
        let resp = self.send(req, scope, target).await?;
        if ok.contains(&resp.status().as_u16()) {
            Ok(resp)
        } else {
            Err(status_error(resp, Box::new(target.clone()), self.stall).await)
        }
    }
}
