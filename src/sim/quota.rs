//! The organization's daily request count, checked against the licence's
//! limit. A day runs from 00:00:00 to 23:59:59 UTC of the simulator's
//! clock, as the API document defines it.
//!
//! What counts: every request with a valid key that is let through,
//! including ones that then fail (unknown action, missing parameter, id
//! not found), because the document limits requests, not successes.
//! Requests with an invalid key count for no organization. Requests
//! rejected for the limit are counted apart ([`Quota::limit_replies`]) and
//! not in the day's total, so the total never exceeds the limit unless
//! another tool spends quota through [`Quota::spend`].

const SECONDS_PER_DAY: i64 = 86_400;

#[derive(Debug)]
pub(crate) struct Quota {
    limit: i64,
    /// Days since the epoch that `used` belongs to.
    day: i64,
    used: i64,
    /// The highest `used` reached on any day.
    peak: i64,
    limit_replies: u64,
}

impl Quota {
    pub(crate) fn new(limit: i64, now_secs: i64) -> Self {
        Quota {
            limit,
            day: now_secs.div_euclid(SECONDS_PER_DAY),
            used: 0,
            peak: 0,
            limit_replies: 0,
        }
    }

    pub(crate) fn limit(&self) -> i64 {
        self.limit
    }

    /// Counts one request if the day has room left. Returns `false`, and
    /// counts a limit reply instead, when the limit is reached.
    pub(crate) fn try_count(&mut self, now_secs: i64) -> bool {
        self.roll_over(now_secs);
        if self.used >= self.limit {
            self.limit_replies += 1;
            return false;
        }
        self.spend(1, now_secs);
        true
    }

    /// Adds `requests` to today's count, as another tool using the same
    /// organization's quota would.
    pub(crate) fn spend(&mut self, requests: i64, now_secs: i64) {
        self.roll_over(now_secs);
        self.used = self.used.saturating_add(requests);
        self.peak = self.peak.max(self.used);
    }

    pub(crate) fn used(&mut self, now_secs: i64) -> i64 {
        self.roll_over(now_secs);
        self.used
    }

    pub(crate) fn peak(&self) -> i64 {
        self.peak
    }

    pub(crate) fn limit_replies(&self) -> u64 {
        self.limit_replies
    }

    /// Starts a new count when the clock has entered another UTC day.
    fn roll_over(&mut self, now_secs: i64) {
        let day = now_secs.div_euclid(SECONDS_PER_DAY);
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_beyond_limit_without_counting() {
        let mut quota = Quota::new(2, 0);
        assert!(quota.try_count(10));
        assert!(quota.try_count(11));
        assert!(!quota.try_count(12));
        assert_eq!(quota.used(13), 2);
        assert_eq!(quota.limit_replies(), 1);
    }

    #[test]
    fn resets_at_midnight_utc() {
        let mut quota = Quota::new(1, 0);
        assert!(quota.try_count(SECONDS_PER_DAY - 1));
        assert!(!quota.try_count(SECONDS_PER_DAY - 1));
        assert!(quota.try_count(SECONDS_PER_DAY));
        assert_eq!(quota.peak(), 1);
    }

    #[test]
    fn spend_counts_toward_the_peak() {
        let mut quota = Quota::new(5, 0);
        quota.spend(7, 0);
        assert_eq!(quota.peak(), 7);
        assert!(!quota.try_count(1));
    }
}
