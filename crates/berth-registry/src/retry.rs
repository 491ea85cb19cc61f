//! Bounded retries: exponential backoff, `Retry-After`, and which failures are worth another try.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::redirect::SendError;

/// First backoff delay.
const BASE_DELAY: Duration = Duration::from_millis(200);
/// Longest backoff delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait a `Retry-After` header can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub times: u32,
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): 200 ms × 2^attempt, at most 10 s.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        BASE_DELAY.saturating_mul(1u32 << attempt.min(16)).min(MAX_BACKOFF)
    }

    /// The delay before retrying after a response: `Retry-After` when present and sane (at most 60 s),
    /// otherwise the backoff.
    pub(crate) fn delay_after(&self, attempt: u32, headers: &HeaderMap) -> Duration {
        retry_after(headers).unwrap_or_else(|| self.backoff(attempt))
    }
}

/// The wait a `Retry-After` header asks for, when present and parseable, at most 60 s.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// Runs `attempt` until it gives a response that is not 429 or 5xx, or retries run out (then the last response
/// is returned for the caller to turn into an error). Transport errors are retried only when `retry_transport`
/// (the request may be repeated safely); other errors never are.
pub(crate) async fn with_retries(
    policy: &RetryPolicy,
    retry_transport: bool,
    mut attempt: impl AsyncFnMut() -> Result<Response, SendError>,
) -> Result<Response, SendError> {
    let mut n = 0;
    loop {
        let delay = match attempt().await {
            Ok(resp) if is_retryable_status(resp.status()) && n < policy.times => {
                let delay = policy.delay_after(n, resp.headers());
                tracing::warn!(status = %resp.status(), url = %resp.url().path(), ?delay, "retrying");
                delay
            }
            Err(SendError::Transport(e)) if retry_transport && is_retryable_error(&e) && n < policy.times => {
                let delay = policy.backoff(n);
                tracing::warn!(error = %crate::error::chain(&e), ?delay, "retrying");
                delay
            }
            other => return other,
        };
        tokio::time::sleep(delay).await;
        n += 1;
    }
}

/// Whether a status means "try again later": 429 and 5xx. Other 4xx (401, 403, 404, …) never are.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Whether a transport error is worth retrying: connection failures, resets and timeouts are; errors in building
/// the request or in redirect handling are not.
pub(crate) fn is_retryable_error(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_decode())
}

/// Parses `Retry-After`: delta seconds or an HTTP date (a date in the past means "now").
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert!(parse_retry_after("99999999999999999999999", now).is_some());
    }

    #[test]
    fn retry_after_is_capped_and_backoff_grows() {
        let p = RetryPolicy { times: 3 };
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(p.delay_after(0, &h), MAX_RETRY_AFTER);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(p.delay_after(0, &h), Duration::from_secs(2));
        let none = HeaderMap::new();
        assert_eq!(p.delay_after(0, &none), Duration::from_millis(200));
        assert_eq!(p.backoff(1), Duration::from_millis(400));
        assert_eq!(p.backoff(3), Duration::from_millis(1600));
        assert_eq!(p.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        for s in [400, 401, 403, 404, 405, 416] {
            assert!(!is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
