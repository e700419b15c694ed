//! Runtime events (`tracing`) captured as text, for tests that check what the runtime did.
//!
//! tracing caches each callsite's interest for the whole process. While exactly one dispatcher
//! is registered, a callsite first reached by another test's thread (which has no subscriber)
//! is cached as "never" and the capturing test misses the event; with two or more registered,
//! interest is the union over all of them. [`Captured::subscriber`] therefore keeps a second,
//! silent dispatcher registered for the life of the process.

use std::sync::{Arc, Mutex, OnceLock};

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
        static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::new()));
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
