//! Paginated lists (tags, referrers): one loop that follows `Link: <…>; rel="next"` until the
//! last page, each URL once, every page read capped and retried like any other read, at most
//! [`limits::MAX_PAGES`] pages and [`limits::MAX_LIST_ENTRIES`] entries. A next page on another
//! origin than the registry's is refused (the spec's next link is the same endpoint).

use super::transport::resolve_location;
use super::RegistryStore;
use crate::media_types as mt;
use crate::store::auth::Access;
use crate::store::error::shown;
use crate::store::limits;
use crate::store::{Result, Store, StoreError};
use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, LINK};
use reqwest::{Method, StatusCode};
use url::Url;

impl RegistryStore {
    /// GET `first` and each page after it, handing every body to `page`, which answers how
    /// many entries it kept (`None`: stop here). A page answered with a status `absent`
    /// accepts ends the list: `Ok(false)`. Past the caps: [`StoreError::OverLimit`].
    pub(super) async fn pages(
        &self,
        first: Url,
        what: &str,
        accept: Option<&str>,
        absent: fn(StatusCode) -> bool,
        mut page: impl FnMut(&Bytes) -> Result<Option<u64>>,
    ) -> Result<bool> {
        let t = &self.transport;
        let scope = self.scope(Access::Pull);
        let scope = scope.as_deref();
        let mut seen = std::collections::HashSet::new();
        let (mut pages, mut entries) = (0u64, 0u64);
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                break;
            }
            pages += 1;
            if pages > limits::MAX_PAGES {
                return Err(StoreError::OverLimit {
                    what: format!("{what} (from {})", self.location()),
                    limit: format!("{} pages", limits::MAX_PAGES),
                });
            }
            let u = &url;
            let got = t
                .retry
                .run(&format!("read {what}"), move || async move {
                    let resp = t
                        .send(scope, || {
                            let get = t.http().get(u.clone());
                            match accept {
                                Some(a) => get.header(ACCEPT, a),
                                None => get,
                            }
                        })
                        .await?;
                    let status = resp.status();
                    if status.is_success() {
                        let headers = resp.headers().clone();
                        let bytes = t.read_capped(resp, mt::MAX_MANIFEST_SIZE, what).await?;
                        return Ok(Some((headers, bytes)));
                    }
                    if absent(status) {
                        return Ok(None);
                    }
                    Err(t.status_error(&Method::GET, u, resp, what).await)
                })
                .await?;
            let Some((headers, bytes)) = got else {
                return Ok(false);
            };
            let Some(kept) = page(&bytes)? else {
                break;
            };
            entries = entries.saturating_add(kept);
            if entries > limits::MAX_LIST_ENTRIES {
                return Err(StoreError::OverLimit {
                    what: format!("{what} (from {})", self.location()),
                    limit: format!("{} entries", limits::MAX_LIST_ENTRIES),
                });
            }
            next = match next_link(&headers) {
                Some(l) => {
                    let n = resolve_location(&url, &l)?;
                    if n.origin() != url.origin() {
                        return Err(StoreError::invalid(
                            format!("next page of {what}"),
                            format!(
                                "the registry's Link header points to {}, another origin than \
                                 {}; refused",
                                shown(&n),
                                url.origin().ascii_serialization()
                            ),
                        ));
                    }
                    Some(n)
                }
                None => None,
            };
        }
        Ok(true)
    }

    /// Every tag of the repository (an unknown repository has none).
    pub(super) async fn tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tag list of {}", self.location());
        let mut tags = Vec::new();
        self.pages(
            self.url("tags/list")?,
            &what,
            None,
            |s| s == StatusCode::NOT_FOUND,
            |bytes| {
                let list: TagList = serde_json::from_slice(bytes)
                    .map_err(|e| StoreError::invalid(&what, e.to_string()))?;
                let page = list.tags.unwrap_or_default();
                let kept = page.len() as u64;
                tags.extend(page);
                Ok(Some(kept))
            },
        )
        .await?;
        Ok(tags)
    }
}

/// The `rel="next"` target of a `Link` header (untrusted: the caller resolves it and checks its
/// origin).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let value = value.to_str().ok()?;
        for part in value.split(',') {
            let (target, params) = match part.split_once(';') {
                Some(x) => x,
                None => continue,
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let t = target.trim();
                if let Some(inner) = t.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                    return Some(inner.to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn finds_the_next_link() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/m/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/m/tags/list?n=2&last=b"));
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("<https://x/prev>; rel=\"prev\", <https://x/next>; rel=next"),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/next"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
