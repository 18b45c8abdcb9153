//! Every cap on what a registry can make us read, hold or wait for, in one place: the size of
//! the small answers we read whole (token responses, error bodies; manifests and list pages use
//! [`crate::media_types::MAX_MANIFEST_SIZE`]), the number of pages and entries of a paginated
//! list, and the numbers a registry supplies (token lifetimes, `Retry-After`) — clamped so no
//! arithmetic on them can overflow. Also the one capped reader of a response body. Leaf of
//! `store` (uses only [`super::error`]).

use super::error::{error_chain, shown, StoreError};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A token service's answer, read whole.
pub const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;
/// The part of an error body kept for the message (the rest is not read).
pub const MAX_ERROR_BODY: usize = 8 * 1024;
/// Pages of one paginated list (tags, referrers API) followed before giving up.
pub const MAX_PAGES: u64 = 1000;
/// Entries of one paginated list kept in memory.
pub const MAX_LIST_ENTRIES: u64 = 100_000;
/// Referrers of one subject listed without `artifactType` (as `skopeo copy --all` leaves a
/// fallback index) whose manifests are fetched to learn their type; a list with more is refused.
pub const MAX_UNTYPED_REFERRERS: usize = 1000;
/// The longest token lifetime believed (a registry may say `expires_in: 2^64-1`).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// When a token that lives `expires_in` seconds (the registry's number, default 60 s) from
/// `start` should be renewed: a little early, never overflowing.
pub fn token_renewal(start: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in
        .unwrap_or(60)
        .clamp(10, MAX_TOKEN_LIFETIME.as_secs());
    let renew_after = Duration::from_secs(lifetime - lifetime / 10);
    start
        .checked_add(renew_after)
        .unwrap_or_else(|| start + Duration::from_secs(10))
}

/// A `Retry-After` wait, capped.
pub fn retry_after(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

/// Read a whole (small) response body, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then while reading, so an endless body costs at most `limit`).
/// `stalled` is the error when nothing arrives for `idle`.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
    idle: Duration,
    what: &str,
    stalled: impl FnOnce() -> StoreError,
) -> Result<Bytes, StoreError> {
    let url = resp.url().clone();
    let too_large = |size| StoreError::TooLarge {
        what: what.to_string(),
        size,
        limit,
    };
    let declared = resp.content_length();
    if let Some(len) = declared.filter(|len| *len > limit) {
        return Err(too_large(len));
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    loop {
        let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => return Err(stalled()),
            Ok(Err(e)) => {
                return Err(StoreError::Network {
                    url: shown(&url),
                    reason: error_chain(&e),
                })
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        let total = (buf.len() as u64).saturating_add(chunk.len() as u64);
        if total > limit {
            return Err(too_large(total));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The first [`MAX_ERROR_BODY`] bytes of an error answer (best effort: what arrived before it
/// went quiet for `idle`); the rest is never read.
pub async fn read_error_body(mut resp: reqwest::Response, idle: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                let room = MAX_ERROR_BODY - body.len();
                body.extend_from_slice(&c[..c.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_numbers_never_overflow() {
        let now = Instant::now();
        let far = token_renewal(now, Some(u64::MAX));
        assert!(far <= now + MAX_TOKEN_LIFETIME);
        assert!(far > now + Duration::from_secs(3600));
        assert_eq!(token_renewal(now, Some(0)), now + Duration::from_secs(9));
        assert_eq!(token_renewal(now, None), now + Duration::from_secs(54));
        assert_eq!(retry_after(Duration::MAX), MAX_RETRY_AFTER);
    }
}
