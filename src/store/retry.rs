//! The one retry policy: how many attempts a transient failure (connection error, silence past
//! the idle timeout, HTTP 5xx or 429) gets, and how long to wait between them. `--retries`
//! sets the attempts ([`super::StoreOptions::max_attempts`]); every retry of the store and of
//! the code above it (registry requests, blob downloads, the referrers fallback index) follows
//! it.

use super::error::StoreError;
use std::future::Future;
use std::time::Duration;

/// Attempts when the options leave it at 0.
pub const DEFAULT_ATTEMPTS: u32 = 4;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
const SPREAD_BASE: Duration = Duration::from_millis(25);
const SPREAD_CAP: Duration = Duration::from_secs(2);
/// Times credentials may be renewed in the middle of one operation.
const RENEWALS: u32 = 3;

/// See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(0)
    }
}

/// Why one attempt failed, as the retry loop needs to know it.
#[derive(Debug)]
pub enum Failed {
    /// Tried again when transient ([`StoreError::is_transient`]), after `wait` when the server
    /// named one (`Retry-After`).
    Error {
        error: StoreError,
        wait: Option<Duration>,
    },
    /// A registry-side race that clears by itself: tried again like a transient failure.
    Race(StoreError),
    /// The credentials were renewed mid-request (a streamed body cannot be resent): the
    /// operation starts again without counting an attempt.
    Renewed(StoreError),
}

impl Failed {
    pub fn into_error(self) -> StoreError {
        match self {
            Failed::Error { error, .. } | Failed::Race(error) | Failed::Renewed(error) => error,
        }
    }
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Error { error, wait: None }
    }
}

impl RetryPolicy {
    /// `attempts` tries in all (0: [`DEFAULT_ATTEMPTS`]).
    pub fn new(attempts: u32) -> Self {
        RetryPolicy {
            attempts: if attempts == 0 {
                DEFAULT_ATTEMPTS
            } else {
                attempts
            },
            base: BACKOFF_BASE,
        }
    }

    /// Shorter waits between attempts (tests).
    pub fn with_backoff_base(self, base: Duration) -> Self {
        RetryPolicy { base, ..self }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// `base · 2^(n-1)`, capped, plus up to 25 % jitter: the wait after attempt `n` failed.
    pub fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(BACKOFF_CAP);
        let jitter = rand::thread_rng().gen_range(0..=exp.as_millis() as u64 / 4);
        exp + Duration::from_millis(jitter)
    }

    /// Full jitter in `[0, 25 ms · 2^n]` (capped at 2 s): the wait between rounds of writers
    /// that contend for one thing (not failures: no attempt is counted), so they spread out.
    pub fn spread(&self, round: u32) -> Duration {
        use rand::Rng;
        let cap = SPREAD_BASE
            .saturating_mul(1u32 << round.min(10))
            .min(SPREAD_CAP);
        Duration::from_millis(rand::thread_rng().gen_range(0..=cap.as_millis() as u64))
    }

    /// Should attempt `attempt`, which failed with `error`, be followed by another? The wait
    /// before it when so.
    pub fn again(&self, attempt: u32, error: &StoreError) -> Option<Duration> {
        (error.is_transient() && attempt < self.attempts).then(|| self.backoff(attempt))
    }

    /// Run `op` until it succeeds, fails for good, or has failed transiently `attempts` times;
    /// the last error then says how many attempts were made.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        let mut attempt = 1;
        let mut renewals = 0;
        loop {
            let (error, wait) = match op().await {
                Ok(v) => return Ok(v),
                Err(Failed::Renewed(_)) if renewals < RENEWALS => {
                    renewals += 1;
                    continue;
                }
                Err(Failed::Renewed(error)) => return Err(error),
                Err(Failed::Race(error)) => (error, None),
                Err(Failed::Error { error, wait }) if error.is_transient() => (error, wait),
                Err(Failed::Error { error, .. }) => return Err(error),
            };
            if attempt >= self.attempts {
                return Err(if attempt > 1 {
                    gave_up(error, attempt)
                } else {
                    error
                });
            }
            let wait = wait.unwrap_or_else(|| self.backoff(attempt));
            tracing::warn!(
                "{what}: attempt {attempt} of {} failed: {error}; retrying in {} ms",
                self.attempts,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The error after the last attempt: the same error, saying how many attempts were made.
fn gave_up(error: StoreError, attempts: u32) -> StoreError {
    let note = format!(" (gave up after {attempts} attempts)");
    match error {
        StoreError::Network { url, reason } => StoreError::Network {
            url,
            reason: reason + &note,
        },
        StoreError::Http {
            method,
            url,
            status,
            body,
        } => StoreError::Http {
            method,
            url,
            status,
            body: body + &note,
        },
        StoreError::Io { what, source } => StoreError::Io {
            what: what + &note,
            source,
        },
        other => StoreError::Other(format!("{other}{note}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable() -> StoreError {
        StoreError::Http {
            method: "PUT".into(),
            url: "http://h/v2/m/manifests/v1".into(),
            status: 503,
            body: ": busy".into(),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(0);
        assert_eq!(p.attempts(), DEFAULT_ATTEMPTS);
        let b1 = p.backoff(1);
        let b3 = p.backoff(3);
        assert!(
            b1 >= Duration::from_millis(200) && b1 <= Duration::from_millis(250),
            "{b1:?}"
        );
        assert!(
            b3 >= Duration::from_millis(800) && b3 <= Duration::from_millis(1000),
            "{b3:?}"
        );
        assert!(p.backoff(40) <= BACKOFF_CAP + BACKOFF_CAP / 4);
        assert!(p.spread(40) <= SPREAD_CAP);
    }

    #[test]
    fn again_only_for_transient_errors_within_the_attempts() {
        let p = RetryPolicy::new(2);
        assert!(p.again(1, &unavailable()).is_some());
        assert!(p.again(2, &unavailable()).is_none());
        assert!(p.again(1, &StoreError::invalid("x", "y")).is_none());
    }

    #[tokio::test]
    async fn gives_up_naming_the_attempts_and_the_cause() {
        let p = RetryPolicy::new(4).with_backoff_base(Duration::from_millis(1));
        let calls = AtomicU32::new(0);
        let err = p
            .run("push", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Failed::from(unavailable()))
            })
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("HTTP 503") && msg.contains("busy") && msg.contains("4 attempts"),
            "{msg}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn races_and_renewals_are_tried_again_permanent_errors_are_not() {
        let p = RetryPolicy::new(3).with_backoff_base(Duration::from_millis(1));
        let calls = AtomicU32::new(0);
        let got = p
            .run("op", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    // Renewals do not count as attempts: three of them, then two races.
                    0..=2 => Err(Failed::Renewed(StoreError::Other("renewed".into()))),
                    3 | 4 => Err(Failed::Race(StoreError::Other("race".into()))),
                    _ => Ok(7),
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 7);
        let calls = AtomicU32::new(0);
        let err = p
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Failed::from(StoreError::invalid("m", "bad")))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
