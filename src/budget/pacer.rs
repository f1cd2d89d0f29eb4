//! Pacing: what is left of today's budget is spread evenly over what is
//! left of the UTC day, with a burst allowance.
//!
//! The plan is a `governor` rate limiter whose period is the time left
//! divided by the requests left. One hour's share of the day's requests
//! (at least one) is held back for the day's last hour, so a burst in
//! the morning never leaves the evening unpolled. The plan is rebuilt at
//! each day turn, after each sync, and every hour, so requests a quiet
//! morning did not spend raise the afternoon's rate. A rebuilt limiter
//! gets credit only for the time since the last counted request, read
//! from the ledger, so a restart never grants a fresh burst.
//!
//! governor waits on its own clock, which `tokio::time::pause` does not
//! move, so the limiter reads the project's [`Clock`] and the caller
//! sleeps with tokio.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::{Budget, day_start_ms, next_day_start_ms};
use crate::clock::Clock;
use crate::state::StateError;

/// Time before 00:00 UTC by which the day's last planned request falls.
const END_MARGIN_MS: i64 = 5 * 60_000;

/// The day's last hour, which keeps a share of the requests.
pub const TAIL_MS: i64 = 3_600_000;

/// How often the plan is recomputed from the ledger.
const REPLAN_MS: i64 = 3_600_000;

/// Share of an even spread over the time left that a request beyond the
/// plan must leave unspent, on top of the last hour's share, so the rest
/// of the day can still list.
const BORROW_FLOOR_SHARE: f64 = 0.1;

const DAY_MS: i64 = 86_400_000;

/// The project's clock as governor reads it: time since the epoch,
/// shifted ahead by the part of a token a replaced plan had earned, so
/// replanning never discards progress toward the next request.
#[derive(Clone, Debug)]
struct PacerClock {
    clock: Clock,
    shift_ms: i64,
}

impl GovernorClock for PacerClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let ms = self.clock.now_ms().saturating_add(self.shift_ms);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, PacerClock, NoOpMiddleware<Duration>>;

/// Whether a request may go now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go; a token was taken.
    Go,
    /// Ask again after this long.
    Wait(Duration),
}

struct Plan {
    /// The inputs the plan was computed from: day, allowance, last sync,
    /// hour, requests held for the last hour.
    key: (String, i64, Option<i64>, i64, i64),
    limiter: Limiter,
    period_ms: i64,
    burst: u32,
    clock: PacerClock,
    built_ms: i64,
    /// Tokens available when the plan was built, with the fraction of
    /// the next one already earned.
    credit: f64,
    /// Tokens taken since.
    taken: i64,
}

impl Plan {
    /// Returns the tokens available at `now`, as the limiter counts them.
    fn available(&self, now: i64) -> f64 {
        let earned = (now - self.built_ms).max(0) as f64 / self.period_ms as f64;
        (self.credit + earned - self.taken as f64).clamp(0.0, f64::from(self.burst))
    }
}

pub struct Pacer {
    clock: Clock,
    burst_window: Duration,
    plan: Option<Plan>,
    /// Requests kept for lists while a backlog takes the rest of the
    /// day, in place of the usual floors.
    hold: Option<ListHold>,
}

/// Requests to keep for list calls and syncs while pending details take
/// every other request the rest of the day can spare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListHold {
    /// Those of the day's last hour, held back until it begins.
    pub last_hour: i64,
    /// Those of the rest of the day, which details never take, even
    /// on a token.
    pub rest_of_day: i64,
}

impl Pacer {
    /// Creates a pacer whose burst is the requests of `burst_window`.
    pub fn new(clock: Clock, burst_window: Duration) -> Self {
        Pacer {
            clock,
            burst_window,
            plan: None,
            hold: None,
        }
    }

    /// Sets what to keep for lists while the pending details take every
    /// request the rest of the day can spare, or `None` for the usual
    /// rule: one hour's share ([`tail_share`]) held for the last hour.
    ///
    /// With a backlog that share only moves details later: it goes to
    /// details queued since earlier hours, and that hour's own alerts
    /// wait for the next day either way. Holding only the last hour's
    /// lists fetches the same details sooner. Details beyond the plan
    /// still leave a tenth of an even spread, which keeps room for a
    /// sync to find what other tools spent.
    pub fn hold_for_lists(&mut self, hold: Option<ListHold>) {
        self.hold = hold.map(|hold| ListHold {
            last_hour: hold.last_hour.max(1),
            rest_of_day: hold.rest_of_day.max(1),
        });
    }

    /// Checks whether a detail may go without eating into what
    /// [`Pacer::hold_for_lists`] keeps for lists. A token does not
    /// settle it: tokens are planned hourly from the remaining budget,
    /// and details that went beyond the plan since have spent some of it.
    pub fn leaves_lists_their_hold(&self, budget: &Budget) -> Result<bool, StateError> {
        let Some(hold) = self.hold else {
            return Ok(true);
        };
        let day = budget.ledger()?;
        Ok(budget.allowed(&day) - day.effective_used() > hold.rest_of_day)
    }

    /// Takes a token when a request may go now under today's plan.
    pub fn check(&mut self, budget: &Budget) -> Result<Permit, StateError> {
        let day = budget.ledger()?;
        let now = budget.server_now_ms();
        if let Some(until) = day.closed_until_ms.filter(|until| *until > now) {
            return Ok(Permit::Wait(millis(until - now)));
        }
        let allowed = budget.allowed(&day);
        let remaining = allowed - day.effective_used();
        if remaining <= 0 {
            // Ask again just after the day turns.
            return Ok(Permit::Wait(millis(next_day_start_ms(now) - now + 1_000)));
        }
        let tail = held_for_last_hour(allowed, self.hold);
        let (horizon_end, planned) = horizon(now, remaining, tail);
        if planned <= 0 {
            // Only the last hour's share is left: wait for that hour.
            return Ok(Permit::Wait(millis(horizon_end - now)));
        }

        let key = (
            day.day.clone(),
            allowed,
            day.synced_ms,
            now / REPLAN_MS,
            tail,
        );
        if self.plan.as_ref().is_none_or(|plan| plan.key != key) {
            let since = day.last_request_ms.unwrap_or(0).max(day_start_ms(now));
            let period_ms = ((horizon_end - now) / planned).max(1);
            self.plan = Some(self.build(key, now, period_ms, planned, since));
        }
        let Some(plan) = &self.plan else {
            return Ok(Permit::Wait(Duration::from_secs(1)));
        };
        let checked = plan.limiter.check();
        match checked {
            Ok(()) => {
                if let Some(plan) = &mut self.plan {
                    plan.taken += 1;
                }
                Ok(Permit::Go)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(plan.clock.now());
                Ok(Permit::Wait(wait.max(Duration::from_millis(1))))
            }
        }
    }

    /// Takes a token like [`Pacer::check`], and when the plan has none,
    /// still lets the request go if today's remaining budget stays above
    /// a floor: one hour's share for the last hour, or what
    /// [`Pacer::hold_for_lists`] holds for it, and a tenth of an even
    /// spread over the time left. A burst of alert changes is then
    /// fetched at once from budget the rest of the day can spare,
    /// instead of at the plan's pace, which the regular list calls use
    /// up. Requests that go this way take no token, and the next plan
    /// (hourly, or after a sync) starts from the lower remaining budget.
    pub fn check_borrowing(&mut self, budget: &Budget) -> Result<Permit, StateError> {
        let permit = self.check(budget)?;
        if permit == Permit::Go || !may_borrow(budget, self.hold)? {
            return Ok(permit);
        }
        Ok(Permit::Go)
    }

    /// Time between requests in the current plan.
    pub fn period(&self) -> Option<Duration> {
        self.plan.as_ref().map(|plan| millis(plan.period_ms))
    }

    /// Requests the current plan lets go at once after a quiet spell.
    pub fn burst(&self) -> Option<u32> {
        self.plan.as_ref().map(|plan| plan.burst)
    }

    fn build(
        &self,
        key: (String, i64, Option<i64>, i64, i64),
        now: i64,
        period_ms: i64,
        remaining: i64,
        since: i64,
    ) -> Plan {
        let window = i64::try_from(self.burst_window.as_millis()).unwrap_or(i64::MAX);
        let burst = (window / period_ms).clamp(1, remaining.min(i64::from(u32::MAX)));
        let burst = u32::try_from(burst).unwrap_or(1);
        // Unspent tokens carry over from the previous plan; a new process
        // earns them only for the time since the last counted request.
        let credit = match &self.plan {
            Some(previous) => previous.available(now),
            None => (now - since).max(0) as f64 / period_ms as f64,
        };
        let credit = credit.min(f64::from(burst));
        let whole = credit.floor();
        let clock = PacerClock {
            clock: self.clock.clone(),
            shift_ms: ((credit - whole) * period_ms as f64) as i64,
        };
        let limiter = limiter(period_ms, burst, clock.clone());
        drain(&limiter, burst.saturating_sub(whole as u32));
        tracing::debug!(period_ms, burst, credit, remaining, "pacing planned");
        Plan {
            key,
            limiter,
            period_ms,
            burst,
            clock,
            built_ms: now,
            credit,
            taken: 0,
        }
    }
}

/// Checks whether today's budget can spare requests beyond what the
/// plan keeps for alerts: it is above the floor of
/// [`Pacer::check_borrowing`], and the day's last hour, whose share is
/// held for alert lists, has not begun. A background source past its
/// share may go only then.
pub fn can_spare(budget: &Budget) -> Result<bool, StateError> {
    let now = budget.server_now_ms();
    let in_last_hour = now >= next_day_start_ms(now) - TAIL_MS;
    Ok(!in_last_hour && may_borrow(budget, None)?)
}

/// Checks whether one request beyond the plan leaves today's budget above the
/// floor that [`Pacer::check_borrowing`] describes, with `hold` setting
/// what is held for the last hour.
fn may_borrow(budget: &Budget, hold: Option<ListHold>) -> Result<bool, StateError> {
    let day = budget.ledger()?;
    if budget.is_closed(&day) {
        return Ok(false);
    }
    let now = budget.server_now_ms();
    let allowed = budget.allowed(&day);
    let remaining = allowed - day.effective_used();
    let end = next_day_start_ms(now);
    let spread = allowed as f64 * BORROW_FLOOR_SHARE * (end - now) as f64 / DAY_MS as f64;
    let tail = if now < end - TAIL_MS {
        held_for_last_hour(allowed, hold)
    } else {
        0
    };
    Ok(remaining > spread.ceil() as i64 + tail)
}

/// Returns the requests held back for the last hour until it begins:
/// one hour's share, or the hold's smaller count.
fn held_for_last_hour(allowed: i64, hold: Option<ListHold>) -> i64 {
    let share = tail_share(allowed);
    hold.map_or(share, |hold| hold.last_hour.min(share))
}

/// Requests held back for the day's last hour until it begins: one
/// hour's share of `allowed`, at least one.
pub fn tail_share(allowed: i64) -> i64 {
    ((allowed + 23) / 24).max(1)
}

/// Returns the end of the span the plan spreads requests over, and how
/// many it spreads. Before the day's last hour the span ends where that
/// hour starts, and `tail` requests are held back for it.
fn horizon(now: i64, remaining: i64, tail: i64) -> (i64, i64) {
    let end = next_day_start_ms(now);
    let tail_start = end - TAIL_MS;
    if now < tail_start {
        (tail_start, remaining - tail)
    } else {
        (end - END_MARGIN_MS.min((end - now) / 2), remaining)
    }
}

/// Computes the planned time between requests at `now`, or `None` when
/// nothing is planned before the last hour. `status` shows it.
pub fn planned_period_ms(now: i64, allowed: i64, remaining: i64) -> Option<i64> {
    let (horizon_end, planned) = horizon(now, remaining, tail_share(allowed));
    (planned > 0).then(|| ((horizon_end - now) / planned).max(1))
}

fn limiter(period_ms: i64, burst: u32, clock: PacerClock) -> Limiter {
    let period = millis(period_ms);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, clock)
}

/// Takes `count` tokens from a full limiter, leaving the credit.
fn drain(limiter: &Limiter, count: u32) {
    if let Some(count) = NonZeroU32::new(count) {
        // The bucket is full and `count` is at most its size, so this
        // cannot fail; the result carries nothing else.
        let _ = limiter.check_n(count);
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::License;
    use crate::config::QuotaSettings;
    use crate::state::Store;

    /// 2026-12-04T00:00:00Z.
    const DAY_START: i64 = 1_796_342_400_000;

    fn budget(clock: &Clock, limit: i64) -> (tempfile::TempDir, Budget) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&dir.path().join("s.db")).expect("store"));
        let quota = QuotaSettings {
            license: License::Demo,
            daily_limit: limit,
            reserve: 0,
            sync: false,
            sync_interval: None,
            burst_window: Duration::from_secs(3_600),
            shares: crate::budget::Shares::default(),
        };
        (dir, Budget::new(store, clock.clone(), quota))
    }

    /// Spends every token the pacer grants over one day, stepping the
    /// clock to each wait, and returns the request times.
    fn spend_day(clock: &Clock, budget: &Budget, pacer: &mut Pacer) -> Vec<i64> {
        let mut times = Vec::new();
        let end = DAY_START + 86_400_000;
        while clock.now_ms() < end {
            match pacer.check(budget).expect("check") {
                Permit::Go => {
                    budget.take("test").expect("ledger has room");
                    times.push(clock.now_ms());
                }
                Permit::Wait(wait) => clock.advance_ms(wait.as_millis() as i64),
            }
        }
        times
    }

    #[test]
    fn demo_day_polls_last_hour() {
        let clock = Clock::manual(DAY_START);
        let (_dir, budget) = budget(&clock, 5);
        let mut pacer = Pacer::new(clock.clone(), Duration::from_secs(3_600));
        let times = spend_day(&clock, &budget, &mut pacer);
        assert_eq!(times.len(), 5, "{times:?}");
        let last = times.last().copied().unwrap_or(0);
        let hours: Vec<f64> = times
            .iter()
            .map(|t| (t - DAY_START) as f64 / 3.6e6)
            .collect();
        assert!(
            last >= DAY_START + 23 * 3_600_000,
            "requests at hours {hours:?}"
        );
        assert!(last < DAY_START + 86_400_000);
    }

    #[test]
    fn enterprise_day_spreads_requests_evenly() {
        let clock = Clock::manual(DAY_START);
        let (_dir, budget) = budget(&clock, 5_000);
        let mut pacer = Pacer::new(clock.clone(), Duration::from_secs(3_600));
        let times = spend_day(&clock, &budget, &mut pacer);
        assert_eq!(times.len(), 5_000);
        let by_hour = |hour: i64| {
            let start = DAY_START + hour * 3_600_000;
            times
                .iter()
                .filter(|t| (start..start + 3_600_000).contains(t))
                .count()
        };
        for hour in 0..24 {
            let count = by_hour(hour);
            assert!((150..=260).contains(&count), "hour {hour}: {count}");
        }
    }

    #[test]
    fn list_hold_replaces_the_usual_floors() {
        // 18:00 with 400 requests left.
        let clock = Clock::manual(DAY_START + 18 * 3_600_000);
        let (_dir, budget) = budget(&clock, 5_000);
        for _ in 0..4_600 {
            budget.take("test").expect("room");
        }

        let mut pacer = Pacer::new(clock.clone(), Duration::from_secs(60));
        let borrowed = |pacer: &mut Pacer| {
            let mut count = 0;
            while pacer.check_borrowing(&budget).expect("check") == Permit::Go {
                budget.take("test").expect("room");
                count += 1;
            }
            count
        };

        // The usual floor: 209 for the last hour and a tenth of an even
        // spread over 6 hours, 125.
        assert_eq!(borrowed(&mut pacer), 400 - 209 - 125);
        assert!(pacer.leaves_lists_their_hold(&budget).expect("ledger"));

        pacer.hold_for_lists(Some(ListHold {
            last_hour: 4,
            rest_of_day: 24,
        }));
        // Only the last hour's share is released.
        assert_eq!(borrowed(&mut pacer), 209 - 4);
        assert!(pacer.leaves_lists_their_hold(&budget).expect("ledger"));

        pacer.hold_for_lists(Some(ListHold {
            last_hour: 4,
            rest_of_day: 129,
        }));
        assert!(!pacer.leaves_lists_their_hold(&budget).expect("ledger"));
        // Only the last hour's lists are held back for it.
        assert_eq!(held_for_last_hour(5_000, pacer.hold), 4);
    }

    #[test]
    fn quiet_morning_leaves_a_burst_for_the_afternoon() {
        let clock = Clock::manual(DAY_START + 12 * 3_600_000);
        let (_dir, budget) = budget(&clock, 5_000);
        let mut pacer = Pacer::new(clock.clone(), Duration::from_secs(3_600));
        let mut at_once = 0;
        while pacer.check(&budget).expect("check") == Permit::Go {
            budget.take("test").expect("room");
            at_once += 1;
        }
        let burst = pacer.burst().expect("planned") as usize;
        assert!(at_once >= 100, "burst {at_once}");
        assert_eq!(at_once, burst);
    }

    #[test]
    fn restart_does_not_grant_a_new_burst() {
        let clock = Clock::manual(DAY_START + 12 * 3_600_000);
        let (_dir, budget) = budget(&clock, 5_000);
        let mut first = Pacer::new(clock.clone(), Duration::from_secs(3_600));
        while first.check(&budget).expect("check") == Permit::Go {
            budget.take("test").expect("room");
        }
        let used = budget.ledger().expect("ledger").used;
        for _ in 0..100 {
            let mut restarted = Pacer::new(clock.clone(), Duration::from_secs(3_600));
            if restarted.check(&budget).expect("check") == Permit::Go {
                budget.take("test").expect("room");
            }
        }
        assert_eq!(budget.ledger().expect("ledger").used, used);
    }
}
