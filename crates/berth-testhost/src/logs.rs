//! Log capture for tests: a global `tracing` subscriber that keeps every event at INFO and above,
//! from whatever thread logs it, as `LEVEL field=value ...` lines.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} ", event.metadata().level());
        event.record(&mut Fields(&mut line));
        lines_lock().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn lines_lock() -> std::sync::MutexGuard<'static, Vec<String>> {
    LINES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the capture as the process's subscriber (once per test binary; later calls do
/// nothing). Panics if another global subscriber was installed first.
pub fn capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if tracing::subscriber::set_global_default(Capture).is_err() {
            panic!("another global tracing subscriber is installed: logs cannot be captured");
        }
    });
}

/// Every captured line so far.
pub fn lines() -> Vec<String> {
    lines_lock().clone()
}

/// The captured lines that contain every one of `parts`.
pub fn matching(parts: &[&str]) -> Vec<String> {
    lines_lock()
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .cloned()
        .collect()
}
