//! The Lamport clock of one chat, with Status's wall-clock hint.
//!
//! Sending: `clock = max(now_ms, last + 1)` (status-go `chat.NextClockAndTimestamp`), so a
//! user who posts before catching up does not appear "in the past". Receiving:
//! `last = max(last, msg.clock)`. A clock more than [`MAX_FUTURE_DRIFT_MS`] ahead of the
//! receiver's time is rejected (status-go `maxWhisperFutureDriftMs`, measured there against
//! the transport timestamp, here against the receiver's clock because a Swarm chunk has no
//! trustworthy timestamp). Without that check one message with clock `u64::MAX - 1` would
//! push every later message of the chat to the end of time.

use serde::{Deserialize, Serialize};

/// Largest accepted lead of a message clock over the receiver's `now`, 120 s.
pub const MAX_FUTURE_DRIFT_MS: u64 = 120_000;

/// Clock errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Clocks start at 1 (status-go rejects 0 too).
    #[error("clock is zero")]
    Zero,
    /// More than 120 s ahead of the receiver.
    #[error("clock {clock} is more than 120 s ahead of now ({now_ms})")]
    TooFarAhead {
        /// The message's clock.
        clock: u64,
        /// The receiver's time, Unix ms.
        now_ms: u64,
    },
}

/// The per-chat Lamport state. Serialisable so the bridge can persist it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LamportClock {
    last: u64,
}

impl LamportClock {
    /// A fresh clock (`last = 0`).
    pub const fn new() -> Self {
        Self { last: 0 }
    }

    /// A clock restored from its last value.
    pub const fn from_last(last: u64) -> Self {
        Self { last }
    }

    /// The largest clock sent or accepted so far.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// The clock for a message sent now: `max(now_ms, last + 1)`. Saturates at
    /// `u64::MAX`, which [`Self::observe`] keeps out of reach of any real `now`.
    pub fn tick(&mut self, now_ms: u64) -> u64 {
        let clock = now_ms.max(self.last.saturating_add(1));
        self.last = clock;
        clock
    }

    /// Checks a received clock against the receiver's time without changing state.
    pub fn check(clock: u64, now_ms: u64) -> Result<(), ClockError> {
        if clock == 0 {
            return Err(ClockError::Zero);
        }
        if clock > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
            return Err(ClockError::TooFarAhead { clock, now_ms });
        }
        Ok(())
    }

    /// Accepts a received clock: checks it, then `last = max(last, clock)`.
    pub fn observe(&mut self, clock: u64, now_ms: u64) -> Result<(), ClockError> {
        Self::check(clock, now_ms)?;
        self.last = self.last.max(clock);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_takes_wall_clock_or_last_plus_one() {
        let mut c = LamportClock::new();
        assert_eq!(c.tick(1_000), 1_000);
        assert_eq!(c.tick(1_000), 1_001);
        assert_eq!(c.tick(500), 1_002);
        assert_eq!(c.tick(5_000), 5_000);
    }

    #[test]
    fn observe_moves_last_forward_only() {
        let mut c = LamportClock::from_last(10_000);
        assert_eq!(c.observe(20_000, 100_000), Ok(()));
        assert_eq!(c.last(), 20_000);
        assert_eq!(c.observe(15_000, 100_000), Ok(()));
        assert_eq!(c.last(), 20_000);
        assert_eq!(c.tick(0), 20_001);
    }

    #[test]
    fn future_and_zero_clocks_are_rejected() {
        let now = 1_600_000_000_000;
        let mut c = LamportClock::new();
        assert_eq!(c.observe(now + MAX_FUTURE_DRIFT_MS, now), Ok(()));
        assert_eq!(
            c.observe(now + MAX_FUTURE_DRIFT_MS + 1, now),
            Err(ClockError::TooFarAhead {
                clock: now + MAX_FUTURE_DRIFT_MS + 1,
                now_ms: now
            })
        );
        assert_eq!(c.last(), now + MAX_FUTURE_DRIFT_MS);
        assert_eq!(c.observe(0, now), Err(ClockError::Zero));
        assert_eq!(LamportClock::check(u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn tick_saturates() {
        let mut c = LamportClock::from_last(u64::MAX);
        assert_eq!(c.tick(0), u64::MAX);
    }
}
