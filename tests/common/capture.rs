//! Runtime events (`tracing`) captured as text, for tests that check what the runtime did.

use std::sync::{Arc, Mutex};

/// A `tracing` writer that keeps every line in memory, and the lines it has kept so far.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// A subscriber writing plain lines (with targets) into this buffer, up to `level`.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        use tracing_subscriber::layer::SubscriberExt;
        let sink = self.clone();
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || sink.clone())
                    .with_ansi(false),
            )
            .with(tracing_subscriber::filter::LevelFilter::from_level(level))
    }
}
