//! Request and response bodies: a response body that fails when the registry stops sending,
//! and an upload body hashed as it streams that fails as soon as the source turns out shorter
//! or longer than it said.

use crate::digest::Hasher;
use crate::store::BoxReader;
use bytes::Bytes;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::io::ReaderStream;

const UPLOAD_CHUNK: usize = 256 * 1024;

/// A body stream that fails (`TimedOut`, so the read is retried) when the registry sends
/// nothing for `idle` while we wait for it. Only waiting counts: a consumer that takes long to
/// come back for the next chunk (a slow disk) does not make the registry late.
pub(super) struct IdleLimited<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The timer runs for the current wait (armed when a poll finds nothing ready).
    waiting: bool,
    message: String,
    done: bool,
}

impl<S> IdleLimited<S> {
    pub fn new(inner: S, idle: Duration, message: String) -> Self {
        IdleLimited {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            message,
            done: false,
        }
    }
}

impl<S> futures::Stream for IdleLimited<S>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            this.waiting = false;
            this.done = item.is_none();
            return Poll::Ready(item);
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.done = true;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    this.message.clone(),
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What an upload body has seen so far.
#[derive(Clone)]
pub(super) struct UploadState {
    pub hasher: Hasher,
    pub eof: bool,
    pub too_long: bool,
    pub source_error: Option<(std::io::ErrorKind, String)>,
    /// When the body last moved (or the upload started).
    moved_at: Instant,
}

/// The source's bytes as a body stream, hashed as they pass; fails the request as soon as the
/// source turns out shorter or longer than it said.
pub(super) struct Hashing {
    inner: ReaderStream<BoxReader>,
    state: Arc<Mutex<UploadState>>,
    size: u64,
    done: bool,
}

impl Hashing {
    pub fn new(reader: BoxReader, size: u64) -> Self {
        Hashing {
            inner: ReaderStream::with_capacity(reader, UPLOAD_CHUNK),
            state: Arc::new(Mutex::new(UploadState {
                hasher: Hasher::new(),
                eof: false,
                too_long: false,
                source_error: None,
                moved_at: Instant::now(),
            })),
            size,
            done: false,
        }
    }

    /// A handle on what the body has seen (it stays readable after the body is sent).
    pub fn watch(&self) -> Watch {
        Watch {
            state: self.state.clone(),
            size: self.size,
        }
    }
}

/// See [`Hashing::watch`].
pub(super) struct Watch {
    state: Arc<Mutex<UploadState>>,
    size: u64,
}

impl Watch {
    pub fn get(&self) -> UploadState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Returns when the body has not moved for `idle` (the registry stopped taking data).
    /// Once the whole body is sent it never returns: a registry may take long to answer then.
    pub async fn stalled(&self, idle: Duration) {
        let tick = (idle / 4).min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let st = self.get();
            if st.eof || st.hasher.len() >= self.size {
                return futures::future::pending().await;
            }
            if st.moved_at.elapsed() >= idle {
                return;
            }
        }
    }
}

impl Stream for Hashing {
    type Item = std::io::Result<Bytes>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        let mut st = this.state.lock().unwrap_or_else(|p| p.into_inner());
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                st.hasher.update(&chunk);
                st.moved_at = Instant::now();
                if st.hasher.len() > this.size {
                    st.too_long = true;
                    this.done = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "source is longer than its declared {} bytes",
                        this.size
                    )))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                st.source_error = Some((e.kind(), e.to_string()));
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                st.eof = true;
                this.done = true;
                if st.hasher.len() != this.size {
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "source ended after {} of its declared {} bytes",
                        st.hasher.len(),
                        this.size
                    )))));
                }
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_body_times_out_only_while_we_wait_for_it() {
        let idle = Duration::from_millis(50);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        let mut body = IdleLimited::new(rx, idle, "quiet".into());
        tx.unbounded_send(Ok(Bytes::from_static(b"one"))).unwrap();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"one");
        // A slow consumer: three idle periods pass before it asks again.
        tokio::time::sleep(idle * 3).await;
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.unbounded_send(Ok(Bytes::from_static(b"two"))).unwrap();
        });
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"two");
        // Then the registry goes quiet.
        let started = std::time::Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "quiet");
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        assert!(body.next().await.is_none());
        drop(tx);
    }
}
