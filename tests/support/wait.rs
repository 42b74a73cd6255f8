//! Bounded polling: the lab never sleeps and assumes, it asks until it sees.

use std::thread;
use std::time::{Duration, Instant};

/// How often polls ask again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Some`, for at most `timeout`.
pub fn try_poll_until<T>(timeout: Duration, probe: impl FnMut() -> Option<T>) -> Option<T> {
    try_poll_every(POLL_INTERVAL, timeout, probe)
}

/// Calls `probe` every `interval` until it returns `Some`, for at most `timeout`. The probe
/// is called at least once, and once more after the deadline if the previous call started
/// before it.
pub fn try_poll_every<T>(
    interval: Duration,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let started = Instant::now();
        if let Some(value) = probe() {
            return Some(value);
        }
        if started >= deadline {
            return None;
        }
        thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Like [`try_poll_until`], but panics with `what` on timeout.
pub fn poll_until<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    try_poll_until(timeout, probe)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A tokio runtime for a test's async part (two workers: the machine has two cores). Create
/// and drop labs on the test's own thread, outside it (see [`super::Lab`]).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime")
}
