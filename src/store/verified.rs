//! Reads checked for size and digest while they stream: a reader that fails at EOF (or as
//! soon as it sees a byte too many) when the content is not what the descriptor says.

use super::error::StoreError;
use crate::digest::{Digest, Hasher};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Checks a blob chunk by chunk, as it is read or uploaded: fails as soon as it has seen a
/// byte too many, and at the end when the size or the sha256 is not what was expected.
pub struct BlobCheck {
    hasher: Hasher,
    expected_digest: Option<Digest>,
    expected_size: u64,
    what: String,
}

impl BlobCheck {
    pub fn new(expected_digest: Digest, expected_size: u64, what: String) -> Self {
        Self::upload(expected_size, Some(expected_digest), what)
    }

    /// For content whose digest may not be known yet (an upload hashed as it streams).
    pub fn upload(expected_size: u64, expected_digest: Option<Digest>, what: String) -> Self {
        BlobCheck {
            hasher: Hasher::new(),
            expected_digest,
            expected_size,
            what,
        }
    }

    /// Take the next chunk. An error means the blob is longer than expected; the chunk must
    /// then not be used.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let total = self.hasher.len() + chunk.len() as u64;
        if total > self.expected_size {
            return Err(StoreError::SizeMismatch {
                what: self.what.clone(),
                expected: self.expected_size,
                actual: total,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The blob ended: is it all there, with the expected digest? Its digest when so.
    pub fn finish(self) -> Result<Digest, StoreError> {
        let got = self.hasher.len();
        if got != self.expected_size {
            return Err(StoreError::SizeMismatch {
                what: self.what,
                expected: self.expected_size,
                actual: got,
            });
        }
        let actual = self.hasher.finish();
        match self.expected_digest {
            Some(expected) if expected != actual => Err(StoreError::DigestMismatch {
                what: self.what,
                expected,
                actual,
            }),
            _ => Ok(actual),
        }
    }
}

/// A reader that passes the blob through a [`BlobCheck`] and fails instead of returning the
/// end (or a byte too many) when the content is wrong.
pub struct VerifiedReader<R> {
    inner: R,
    check: Option<BlobCheck>,
}

impl<R> VerifiedReader<R> {
    pub fn new(inner: R, expected_digest: Digest, expected_size: u64, what: String) -> Self {
        VerifiedReader {
            inner,
            check: Some(BlobCheck::new(expected_digest, expected_size, what)),
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
        let Some(check) = this.check.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    let check = this.check.take().expect("checked");
                    return Poll::Ready(check.finish().map(drop).map_err(to_io));
                }
                if let Err(e) = check.update(new) {
                    this.check = None;
                    // Hand nothing of the oversized read to the caller.
                    buf.set_filled(before);
                    return Poll::Ready(Err(to_io(e)));
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

    #[test]
    fn blob_check_takes_chunks_and_checks_the_whole() {
        let mut c = BlobCheck::new(Digest::of(b"hello world"), 11, "blob y".into());
        c.update(b"hello").unwrap();
        c.update(b"").unwrap();
        c.update(b" world").unwrap();
        assert_eq!(c.len(), 11);
        c.finish().unwrap();
    }

    #[test]
    fn blob_check_refuses_the_chunk_that_makes_it_too_long() {
        let mut c = BlobCheck::new(Digest::of(b"hello"), 5, "blob y".into());
        c.update(b"hel").unwrap();
        let err = c.update(b"lo!").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SizeMismatch {
                    expected: 5,
                    actual: 6,
                    ..
                }
            ),
            "{err}"
        );
        // The refused chunk was not taken.
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn blob_check_fails_short_or_wrong_content_naming_both_digests() {
        let mut short = BlobCheck::new(Digest::of(b"hello"), 5, "blob y".into());
        short.update(b"hell").unwrap();
        assert!(matches!(
            short.finish(),
            Err(StoreError::SizeMismatch {
                expected: 5,
                actual: 4,
                ..
            })
        ));
        let mut wrong = BlobCheck::new(Digest::of(b"hello"), 5, "blob y".into());
        wrong.update(b"he").unwrap();
        wrong.update(b"llO").unwrap();
        let msg = wrong.finish().unwrap_err().to_string();
        assert!(
            msg.contains("blob y")
                && msg.contains(Digest::of(b"hello").as_str())
                && msg.contains(Digest::of(b"hellO").as_str()),
            "{msg}"
        );
    }
}
