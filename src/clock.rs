//! The clock seam: every wait in this crate asks a [`Clock`] what time it is
//! and sleeps through it, so that tests can drive time ([`ManualClock`])
//! instead of sleeping.
//!
//! Times are wall-clock [`SystemTime`]s because the roll engine persists them
//! (`t_propagated`, `t_safe`) across runs and processes.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real clock: the system time and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock for tests: time stands still until a test [`advance`](Self::advance)s
/// it or code under test sleeps, which advances it at once. Every sleep is
/// recorded, so tests can check a polling schedule.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: SystemTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            state: Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            }),
        }
    }

    /// Moves time forward without recording a sleep (e.g. time spent in a query).
    pub fn advance(&self, duration: Duration) {
        self.lock().now += duration;
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panicking test thread cannot leave the state half-updated: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    /// Starts at a fixed, recognisable instant (2026-01-01T00:00:00Z).
    fn default() -> Self {
        ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    async fn sleep(&self, duration: Duration) {
        let mut state = self.lock();
        state.now += duration;
        state.sleeps.push(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_advances_on_sleep_and_records_it() {
        let clock = ManualClock::default();
        let start = clock.now();
        clock.sleep(Duration::from_millis(100)).await;
        clock.advance(Duration::from_millis(5));
        clock.sleep(Duration::from_millis(150)).await;
        assert_eq!(
            clock.now().duration_since(start).unwrap(),
            Duration::from_millis(255)
        );
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_millis(100), Duration::from_millis(150)]
        );
    }

    #[tokio::test]
    async fn system_clock_sleeps() {
        let clock = SystemClock;
        let before = std::time::Instant::now();
        clock.sleep(Duration::from_millis(20)).await;
        assert!(before.elapsed() >= Duration::from_millis(20));
    }
}
