//! Reads checked for size and digest while they stream: a reader that fails at EOF (or as
//! soon as it sees a byte too many) when the content is not what the descriptor says.

use super::StoreError;
use crate::digest::{Digest, Hasher};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

pub struct VerifiedReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected_digest: Digest,
    expected_size: u64,
    what: String,
}

impl<R> VerifiedReader<R> {
    pub fn new(inner: R, expected_digest: Digest, expected_size: u64, what: String) -> Self {
        VerifiedReader {
            inner,
            hasher: Some(Hasher::new()),
            expected_digest,
            expected_size,
            what,
        }
    }
}

fn to_io(e: StoreError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Recover the [`StoreError`] a verified read failed with (or wrap a plain I/O error).
pub fn unwrap_io_error(e: io::Error) -> StoreError {
    if e.get_ref().is_some_and(|inner| inner.is::<StoreError>()) {
        *e.into_inner()
            .expect("checked")
            .downcast::<StoreError>()
            .expect("checked")
    } else {
        StoreError::io("read blob", e)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifiedReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.hasher.is_none() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                let hasher = this.hasher.as_mut().expect("checked");
                if new.is_empty() {
                    let hasher = this.hasher.take().expect("checked");
                    let got = hasher.len();
                    if got != this.expected_size {
                        return Poll::Ready(Err(to_io(StoreError::SizeMismatch {
                            what: this.what.clone(),
                            expected: this.expected_size,
                            actual: got,
                        })));
                    }
                    let actual = hasher.finish();
                    if actual != this.expected_digest {
                        return Poll::Ready(Err(to_io(StoreError::DigestMismatch {
                            what: this.what.clone(),
                            expected: this.expected_digest.clone(),
                            actual,
                        })));
                    }
                    return Poll::Ready(Ok(()));
                }
                hasher.update(new);
                if hasher.len() > this.expected_size {
                    let got = hasher.len();
                    this.hasher = None;
                    // Hand nothing of the oversized read to the caller.
                    buf.set_filled(before);
                    return Poll::Ready(Err(to_io(StoreError::SizeMismatch {
                        what: this.what.clone(),
                        expected: this.expected_size,
                        actual: got,
                    })));
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(
        data: &'static [u8],
        digest: Digest,
        size: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let mut r = VerifiedReader::new(data, digest, size, "blob x".into());
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.map_err(unwrap_io_error)?;
        Ok(out)
    }

    #[tokio::test]
    async fn passes_matching_content() {
        let out = read_all(b"hello", Digest::of(b"hello"), 5).await.unwrap();
        assert_eq!(out, b"hello");
    }

    #[tokio::test]
    async fn fails_on_wrong_digest_naming_both() {
        let err = read_all(b"hellO", Digest::of(b"hello"), 5)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(err.is_integrity());
        assert!(
            msg.contains("blob x")
                && msg.contains(Digest::of(b"hello").as_str())
                && msg.contains(Digest::of(b"hellO").as_str()),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn fails_on_short_and_long_content() {
        assert!(matches!(
            read_all(b"hell", Digest::of(b"hello"), 5).await,
            Err(StoreError::SizeMismatch { .. })
        ));
        assert!(matches!(
            read_all(b"hello!", Digest::of(b"hello"), 5).await,
            Err(StoreError::SizeMismatch { .. })
        ));
    }
}
