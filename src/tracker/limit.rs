//! The per-user request budget: a token bucket per user, so that one member's client
//! (or script) cannot make the tracker work for everyone else's share.
//!
//! Each bucket is the generic cell rate algorithm's single number, the "theoretical
//! arrival time": when the user's budget would be full again if they stopped now. A
//! request is admitted while that time is at most `burst - 1` request intervals ahead
//! of now, and moves it one interval on. One `u64` per user who made a request
//! recently, and nothing for anyone else: requests are counted only after their passkey
//! was found among the enabled users, so unknown passkeys never make state grow.
//! Time comes in as an argument (microseconds on any monotonic clock).

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::hash::{HashMap, RandomState};
use super::types::UserId;

const SHARDS: usize = 16;

/// The budget of every user.
pub struct RequestLimiter {
    /// Microseconds one request uses up (0: no limit).
    interval: u64,
    /// How far ahead of now a user's arrival time may be and still be admitted.
    tolerance: u64,
    shards: [Mutex<HashMap<UserId, u64>>; SHARDS],
    hasher: RandomState,
}

/// A refused request: how long until the next one would be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    pub micros: u64,
}

impl RequestLimiter {
    /// `per_second` requests a second sustained and `burst` at once; either 0 turns
    /// the limit off.
    pub fn new(per_second: u32, burst: u32) -> RequestLimiter {
        let (interval, tolerance) = if per_second == 0 || burst == 0 {
            (0, 0)
        } else {
            let interval = (1_000_000 / u64::from(per_second)).max(1);
            (interval, interval * u64::from(burst - 1))
        };
        RequestLimiter {
            interval,
            tolerance,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
            hasher: RandomState::default(),
        }
    }

    fn shard(&self, user: UserId) -> MutexGuard<'_, HashMap<UserId, u64>> {
        // The top bits: the map inside uses the low ones.
        let index = (self.hasher.hash_one(user) >> 60) as usize % SHARDS;
        // A poisoned shard holds whole numbers; keep using it.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one request from `user`'s budget at `now`, or says when to come back.
    pub fn admit(&self, user: UserId, now: u64) -> Result<(), RetryAfter> {
        if self.interval == 0 {
            return Ok(());
        }
        let mut shard = self.shard(user);
        let arrival = shard.entry(user).or_insert(now);
        let due = (*arrival).max(now);
        let ahead = due - now;
        if ahead > self.tolerance {
            return Err(RetryAfter {
                micros: ahead - self.tolerance,
            });
        }
        *arrival = due.saturating_add(self.interval);
        Ok(())
    }

    /// Forgets users whose budget is full again at `now` (they would start afresh
    /// anyway), so the table holds only users active within the last burst's worth of
    /// time. Called from the periodic purge.
    pub fn forget_idle(&self, now: u64) -> usize {
        let mut forgotten = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, arrival| *arrival > now);
            forgotten += before - shard.len();
        }
        forgotten
    }

    /// Users with a budget in use.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RequestLimiter::new(2, 3);
        let user = UserId(7);
        let t = 10 * SECOND;
        for _ in 0..3 {
            assert_eq!(limiter.admit(user, t), Ok(()));
        }
        // Three used at once; the next is half a second away (2 a second).
        assert_eq!(
            limiter.admit(user, t),
            Err(RetryAfter { micros: SECOND / 2 })
        );
        assert_eq!(
            limiter.admit(user, t + SECOND / 4),
            Err(RetryAfter { micros: SECOND / 4 })
        );
        assert_eq!(limiter.admit(user, t + SECOND / 2), Ok(()));
        assert!(limiter.admit(user, t + SECOND / 2).is_err());
        // Refusals cost nothing: after a quiet spell the whole burst is back.
        let later = t + 10 * SECOND;
        for _ in 0..3 {
            assert_eq!(limiter.admit(user, later), Ok(()));
        }
        assert!(limiter.admit(user, later).is_err());
    }

    #[test]
    fn users_have_budgets_of_their_own() {
        let limiter = RequestLimiter::new(1, 1);
        assert_eq!(limiter.admit(UserId(1), 0), Ok(()));
        assert!(limiter.admit(UserId(1), 0).is_err());
        assert_eq!(limiter.admit(UserId(2), 0), Ok(()));
    }

    #[test]
    fn zero_turns_it_off() {
        for limiter in [RequestLimiter::new(0, 10), RequestLimiter::new(10, 0)] {
            for _ in 0..1000 {
                assert_eq!(limiter.admit(UserId(1), 5), Ok(()));
            }
            assert_eq!(limiter.tracked(), 0);
        }
    }

    #[test]
    fn idle_users_are_forgotten() {
        let limiter = RequestLimiter::new(10, 5);
        limiter.admit(UserId(1), 0).unwrap();
        limiter.admit(UserId(2), SECOND).unwrap();
        assert_eq!(limiter.tracked(), 2);
        // User 1's budget is full again 0.1 s after its request, user 2's at 1.1 s.
        assert_eq!(limiter.forget_idle(SECOND / 2), 1);
        assert_eq!(limiter.tracked(), 1);
        assert_eq!(limiter.forget_idle(2 * SECOND), 1);
        assert_eq!(limiter.tracked(), 0);
    }
}
