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

/// The slowest download accepted: a body must bring at least this many bytes per second,
/// averaged over each `--timeout` of waiting for it (or the rest of the body, when less is left).
pub(crate) const MIN_RATE: u64 = 1024;

/// [`MIN_RATE`] as messages show it.
pub(crate) const MIN_RATE_SHOWN: &str = "1 KiB/s";

/// A body stream that fails (`TimedOut`, so the read is retried) when the registry sends
/// nothing for `idle` while we wait for it, or sends so little that each `idle` of waiting
/// brings fewer than [`MIN_RATE`] × `idle` bytes (a trickle never silent long enough to trip the
/// silence rule). Only waiting counts: a consumer that takes long to come back for the next
/// chunk (a slow disk) does not make the registry late.
pub(super) struct IdleLimited<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When the current wait began (set when a poll finds nothing ready; cleared when the
    /// window closes mid-wait, to count the rest of the wait in the next one).
    waiting_since: Option<tokio::time::Instant>,
    /// When the current wait turns into silence (`idle` after it began).
    silent_at: Option<tokio::time::Instant>,
    /// Time spent waiting, and bytes received, in the current rate window.
    window_waited: Duration,
    window_bytes: u64,
    /// Bytes still to come (from `Content-Length`), when known.
    remaining: Option<u64>,
    silent: String,
    slow: String,
    done: bool,
}

impl<S> IdleLimited<S> {
    /// `silent` is the error for a body that stops, `slow` for one below [`MIN_RATE`];
    /// `length` is the body's announced length, when known.
    pub fn new(
        inner: S,
        idle: Duration,
        silent: String,
        slow: String,
        length: Option<u64>,
    ) -> Self {
        IdleLimited {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting_since: None,
            silent_at: None,
            window_waited: Duration::ZERO,
            window_bytes: 0,
            remaining: length,
            silent,
            slow,
            done: false,
        }
    }

    /// Bytes the current window must bring: [`MIN_RATE`] per second of `idle`, or what was
    /// left of the body when the window began.
    fn window_need(&self) -> u64 {
        let rate = (MIN_RATE as f64 * self.idle.as_secs_f64()) as u64;
        match self.remaining {
            Some(left) => rate.min(left.saturating_add(self.window_bytes)),
            None => rate,
        }
    }

    /// A full window closes: `Err` when it brought too little.
    fn close_window(&mut self) -> Result<(), std::io::Error> {
        let ok = self.window_bytes >= self.window_need();
        let silent = self.window_bytes == 0;
        self.window_waited = Duration::ZERO;
        self.window_bytes = 0;
        if ok {
            return Ok(());
        }
        self.done = true;
        let message = if silent { &self.silent } else { &self.slow };
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            message.clone(),
        ))
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
            if let Some(since) = this.waiting_since.take() {
                this.window_waited += since.elapsed();
            }
            this.silent_at = None;
            match &item {
                Some(Ok(chunk)) => {
                    let n = chunk.len() as u64;
                    this.window_bytes = this.window_bytes.saturating_add(n);
                    this.remaining = this.remaining.map(|r| r.saturating_sub(n));
                }
                _ => this.done = true,
            }
            if !this.done && this.window_waited >= this.idle {
                if let Err(e) = this.close_window() {
                    return Poll::Ready(Some(Err(e)));
                }
            }
            return Poll::Ready(item);
        }
        loop {
            let now = tokio::time::Instant::now();
            if this.waiting_since.is_none() {
                this.waiting_since = Some(now);
                if this.silent_at.is_none() {
                    this.silent_at = Some(now + this.idle);
                }
                // The window fills up while we wait: it closes then, at the latest.
                let left = this.idle.saturating_sub(this.window_waited);
                let silent_at = this.silent_at.unwrap_or(now + this.idle);
                this.timer.as_mut().reset(silent_at.min(now + left));
            }
            match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    if let Some(since) = this.waiting_since.take() {
                        this.window_waited += since.elapsed();
                    }
                    if this
                        .silent_at
                        .is_some_and(|at| at <= tokio::time::Instant::now())
                    {
                        this.done = true;
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            this.silent.clone(),
                        ))));
                    }
                    if this.window_waited >= this.idle {
                        if let Err(e) = this.close_window() {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    // Enough came in the window: a new one starts, the silence rule goes on.
                }
                Poll::Pending => return Poll::Pending,
            }
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
/// source turns out shorter or longer than it said. A body may be one chunk of a blob: the
/// hasher then goes on from the chunks before (`base` bytes), and `size` is the chunk's.
pub(super) struct Hashing {
    inner: ReaderStream<BoxReader>,
    state: Arc<Mutex<UploadState>>,
    base: u64,
    size: u64,
    done: bool,
}

impl Hashing {
    /// A body of `size` bytes, hashed after what `hasher` took already.
    pub fn new(reader: BoxReader, size: u64, hasher: Hasher) -> Self {
        Hashing {
            inner: ReaderStream::with_capacity(reader, UPLOAD_CHUNK),
            base: hasher.len(),
            state: Arc::new(Mutex::new(UploadState {
                hasher,
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
            base: self.base,
            size: self.size,
        }
    }
}

/// See [`Hashing::watch`].
pub(super) struct Watch {
    state: Arc<Mutex<UploadState>>,
    base: u64,
    size: u64,
}

impl Watch {
    pub fn get(&self) -> UploadState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Bytes of this body sent so far.
    pub fn sent(st: &UploadState, base: u64) -> u64 {
        st.hasher.len().saturating_sub(base)
    }

    /// Where this body starts in the blob.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Returns when the body has not moved for `idle` (the registry stopped taking data), or,
    /// once the whole body is sent, when no answer came within `answer` of the last byte.
    pub async fn stalled(&self, idle: Duration, answer: Duration) -> Stall {
        let tick = (idle / 4).min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let st = self.get();
            if st.eof || Self::sent(&st, self.base) >= self.size {
                if st.moved_at.elapsed() >= answer {
                    return Stall::Unanswered;
                }
                continue;
            }
            if st.moved_at.elapsed() >= idle {
                return Stall::Sending;
            }
        }
    }
}

/// See [`Watch::stalled`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stall {
    /// The registry stopped taking the body.
    Sending,
    /// The body is all sent and no answer came.
    Unanswered,
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
                if Watch::sent(&st, this.base) > this.size {
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
                if Watch::sent(&st, this.base) != this.size {
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "source ended after {} of its declared {} bytes",
                        st.hasher.len(),
                        this.base + this.size
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
        let mut body = IdleLimited::new(rx, idle, "quiet".into(), "slow".into(), None);
        tx.unbounded_send(Ok(Bytes::from_static(b"one"))).unwrap();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"one");
        // A slow consumer: three idle periods pass before it asks again.
        tokio::time::sleep(idle * 3).await;
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.unbounded_send(Ok(Bytes::from(vec![b'2'; 4096])))
                .unwrap();
        });
        assert_eq!(body.next().await.unwrap().unwrap().len(), 4096);
        // Then the registry goes quiet.
        let started = std::time::Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "quiet");
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        assert!(body.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_that_is_never_silent_fails_at_the_minimum_rate() {
        let idle = Duration::from_millis(200);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        let mut body = IdleLimited::new(rx, idle, "quiet".into(), "slow".into(), Some(1 << 20));
        tokio::spawn(async move {
            // One byte every idle/4: never silent for `idle`, far below the rate.
            while tx.unbounded_send(Ok(Bytes::from_static(b"x"))).is_ok() {
                tokio::time::sleep(idle / 4).await;
            }
        });
        let started = std::time::Instant::now();
        let err = loop {
            match body.next().await.unwrap() {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "slow");
        assert!(started.elapsed() < idle * 3, "{:?}", started.elapsed());
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn a_body_above_the_rate_with_pauses_passes() {
        let idle = Duration::from_millis(100);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        // 200 bytes every 3/4 idle (about 2.6 KiB/s), then a 20-byte tail: a window owes only
        // what is left of the body.
        let mut body = IdleLimited::new(rx, idle, "quiet".into(), "slow".into(), Some(420));
        tokio::spawn(async move {
            for n in [200, 200, 20] {
                tokio::time::sleep(idle * 3 / 4).await;
                tx.unbounded_send(Ok(Bytes::from(vec![0u8; n]))).unwrap();
            }
        });
        let mut got = 0;
        while let Some(chunk) = body.next().await {
            got += chunk.unwrap().len();
        }
        assert_eq!(got, 420);
    }
}
