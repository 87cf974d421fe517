//! Logging: `tracing` to standard error, human-readable or JSON, filtered by `RUST_LOG`
//! (default `info`).
//!
//! Lines are written by a background thread, so a request never waits for a write to the
//! terminal or the log file. The thread writes whatever lines have queued up in one go, and
//! flushes as soon as the queue is empty: under load lines leave in large writes rather than a
//! system call each, and when idle at once. None is dropped: when the queue is full, logging
//! waits.

use std::io::{BufWriter, IsTerminal as _};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, answering the guard of its writer thread: keep it until the
/// process ends, when dropping it writes out the last lines. Calling it again (as tests do)
/// changes nothing and answers `None`.
pub fn init(format: LogFormat) -> Option<WorkerGuard> {
    // 16,384 lines waiting for the writer thread rather than the default 128,000: the queue's
    // slots are allocated up front (4 MB at the default).
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(16_384)
        .lossy(false)
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.is_ok().then_some(guard)
}
