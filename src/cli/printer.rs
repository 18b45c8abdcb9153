//! Owns stdout and stderr: results as text or one JSON document, notes on stderr, progress
//! bars on stderr only when it is a terminal (never in JSON mode or with --quiet). Text
//! reaches a terminal only through [`escape_lines`]: the typed results wrap every
//! registry-controlled field in `Untrusted` (newlines included), and this last pass escapes any
//! control, bidi or zero-width character a field may still carry.

use super::args::{GlobalOpts, OutputFormat};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_model::progress::{Reporter, SharedReporter};
use oci_model::untrusted::{escape_lines, Untrusted};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Printer {
    pub format: OutputFormat,
    bars: bool,
    /// A result document went to stdout (JSON mode prints exactly one document).
    printed: Arc<AtomicBool>,
}

impl Printer {
    pub fn new(global: &GlobalOpts) -> Self {
        let bars =
            !global.quiet && global.output == OutputFormat::Text && std::io::stderr().is_terminal();
        Printer {
            format: global.output,
            bars,
            printed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// The command's result: its `Display` in text mode, its JSON (pretty) in JSON mode, which
    /// always starts with `ok` (true unless the result says otherwise, e.g. a failed report).
    pub fn result(&self, result: &(impl Serialize + fmt::Display)) {
        self.printed.store(true, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        if self.json() {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&with_ok(result)).unwrap_or_default()
            );
        } else {
            let text = result.to_string();
            if !text.is_empty() {
                let text = escape_lines(&text);
                let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
            }
        }
    }

    /// A command's error, on stderr (escaped, on one line); in JSON mode also one document on stdout, unless the
    /// command printed its result (e.g. a failed verification report), which said everything.
    pub fn error(&self, message: &str, code: u8) {
        if self.json() && !self.printed.load(Ordering::SeqCst) {
            let value = serde_json::json!({"ok": false, "exitCode": code, "error": message});
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        // One line: an error quotes registry answers and names, and joins its causes with ": ".
        eprintln!("error: {}", Untrusted(message));
    }

    /// A note for a person, on stderr (not shown in JSON mode).
    pub fn note(&self, msg: &str) {
        if !self.json() {
            eprintln!("{}", escape_lines(msg));
        }
    }

    /// A progress reporter: bars on a terminal, nothing otherwise.
    pub fn reporter(&self) -> SharedReporter {
        if self.bars {
            Arc::new(Bars::new())
        } else {
            oci_model::progress::silent()
        }
    }
}

/// A result document with `ok` first: the result's own, else `true`.
fn with_ok(result: &impl Serialize) -> serde_json::Value {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(fields)) => {
            let ok = fields.get("ok").cloned().unwrap_or(true.into());
            let mut doc = serde_json::Map::new();
            doc.insert("ok".into(), ok);
            doc.extend(fields.into_iter().filter(|(k, _)| k != "ok"));
            serde_json::Value::Object(doc)
        }
        Ok(other) => other,
        Err(e) => {
            serde_json::json!({"ok": false, "error": format!("cannot serialize the result: {e}")})
        }
    }
}

/// A library result that renders its own text (`to_text`): that text, or its JSON.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Rendered<'a, T: Serialize> {
    value: &'a T,
    #[serde(skip)]
    text: String,
}

impl<'a, T: Serialize> Rendered<'a, T> {
    pub fn new(value: &'a T, text: String) -> Self {
        Rendered { value, text }
    }
}

impl<T: Serialize> fmt::Display for Rendered<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Bars {
    multi: MultiProgress,
    next: AtomicU64,
    bars: Mutex<HashMap<u64, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            next: AtomicU64::new(1),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn start(&self, name: &str, total: u64) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(Untrusted(name).to_string());
        self.bars.lock().expect("lock").insert(id, bar);
        id
    }
    fn advance(&self, id: u64, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("lock").get(&id) {
            bar.inc(bytes);
        }
    }
    fn finish(&self, id: u64, skipped: bool) {
        if let Some(bar) = self.bars.lock().expect("lock").remove(&id) {
            if skipped {
                bar.set_position(bar.length().unwrap_or(0));
                bar.finish_with_message(format!("{} (exists)", bar.message()));
            } else {
                bar.finish();
            }
        }
    }
}
