//! Progress reporting: the library calls a [`Reporter`]; the CLI decides how to draw it.

use std::sync::Arc;

/// Receives progress events for long transfers. Implementations must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    /// A transfer of `total` bytes named `name` starts; returns an id for later events.
    fn start(&self, name: &str, total: u64) -> u64;
    /// `bytes` more bytes of transfer `id` moved.
    fn advance(&self, id: u64, bytes: u64);
    /// Transfer `id` ended; `skipped` when the destination already had it.
    fn finish(&self, id: u64, skipped: bool);
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn start(&self, _name: &str, _total: u64) -> u64 {
        0
    }
    fn advance(&self, _id: u64, _bytes: u64) {}
    fn finish(&self, _id: u64, _skipped: bool) {}
}

pub type SharedReporter = Arc<dyn Reporter>;

pub fn silent() -> SharedReporter {
    Arc::new(Silent)
}

/// `1.5 GiB`-style sizes for people (progress, summaries, messages).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
