//! The alert list plan: how many of today's remaining requests go to
//! `listAlerts`, and how they spread over the rest of the UTC day.
//!
//! Every alert change a list call returns costs one `getAlert`, so the
//! requests left for listing are the remaining budget less the details
//! still expected. That expectation comes from the rate of changes seen
//! since the process started and an hourly profile of the changes
//! listed on past days, kept in the state's `counter` table (see
//! [`expected_details`]). The profile lets a daily burst at the same
//! hour be planned for before it comes, and lets the evening after it
//! list at the evening's own rate. A share of the spare requests is
//! held back for a burst the estimates did not foresee, and released as
//! the day runs out. Lists before the day's last hour leave alone the
//! requests the pacer reserves for that hour. Within the plan, lists
//! come sooner while changes are arriving and later in quiet spells:
//! with changes at rate `λ(t)`, the mean delay of a fixed number of
//! lists is smallest when their rate is proportional to `√λ(t)`.
//!
//! The functions here are pure apart from [`Profile::load`] and
//! [`Profile::store_hour`], so the scheduler's tests and the quota
//! benchmark exercise the same arithmetic.

use crate::state::{StateError, Store};

pub const HOUR_MS: i64 = 3_600_000;
const DAY_MS: f64 = 86_400_000.0;

/// Share of the remaining requests, and of an even spread of the day's
/// allowance, left for listing, so a large backlog of details never
/// stops new alerts from being seen. On a day that runs short the share
/// of the remaining requests goes no higher than [`short_day_lists`].
/// The pacer keeps the same share of the spread from details that go
/// beyond its plan.
const MIN_LIST_SHARE: f64 = 0.1;

/// Maximum gap between lists that the list floor keeps while pending
/// details take the rest of the budget. Lists then find alerts whose
/// details wait for the next day anyway, so more of them would only
/// move details later. Fewer would leave the backlog's count and the
/// newest alerts unseen for longer.
const BACKLOG_LIST_GAP_MS: f64 = 15.0 * 60_000.0;

/// Share of the spare requests held back at 00:00 UTC for an unforeseen
/// burst, when no profile of past days exists yet. The share shrinks in
/// proportion to the time left, so the reserve is spent by the end of
/// the day. A steady load pays for it with later lists in the morning
/// and earlier ones in the evening.
const MARGIN_WITHOUT_PROFILE: f64 = 0.3;

/// The same share once the profile of past days is known.
const MARGIN_WITH_PROFILE: f64 = 0.1;

/// Weight of the newest day in the hourly profile.
const PROFILE_WEIGHT: f64 = 0.5;

/// Share of the profile's daily total used as a prior when today's
/// changes so far are compared with the profile.
const PROFILE_PRIOR_SHARE: f64 = 0.1;

/// Time constant of the recent change rate that drives list intervals.
pub const ACTIVITY_TAU_MS: f64 = 15.0 * 60_000.0;

/// Bounds of the factor applied to the list rate by recent activity. The
/// floor keeps a quiet spell from leaving more than twice the planned
/// gap between lists. The ceiling limits how fast a burst spends the
/// list budget before the next replan counts it.
const MIN_ACTIVITY_FACTOR: f64 = 0.5;
const MAX_ACTIVITY_FACTOR: f64 = 4.0;

/// Changes the plan must expect within one activity time constant for
/// the recent rate to steer the lists. Below that, one change or a
/// quiet quarter hour is noise. On a Developer licence's 20 changes a
/// day the factor would halve the list rate most of the day, so the
/// spared lists would pile up in the evening.
const MIN_ACTIVITY_CHANGES: f64 = 3.0;

/// Standard deviations of chance variation (about `√n` for a count of
/// `n`) within which a one-hour dip of the profile is taken as real.
const DIP_NOISE_SD: f64 = 2.0;

/// Changes spread evenly over the day that are added to the profile
/// when it shapes the rate since start, so a sparse profile, whose
/// shape is mostly chance, leaves the rate nearly even.
const SHAPE_PRIOR_CHANGES: f64 = 240.0;

/// Counter that stores how many completed hours the profile holds.
const PROFILE_HOURS_KEY: &str = "alerts_profile_hours";

/// Counter names are this prefix and the UTC hour, `00` to `23`. The
/// values are thousandths of a change.
const PROFILE_KEY_PREFIX: &str = "alerts_profile_hour_";

/// Alert changes listed in each UTC hour on past days, as an
/// exponentially weighted mean over days.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    hours: [f64; 24],
    /// Completed hours folded in since the profile was started.
    folded: i64,
}

impl Profile {
    /// Reads the profile from the state's `counter` table. A new state
    /// gives an empty profile.
    pub fn load(store: &Store) -> Result<Profile, StateError> {
        let mut profile = Profile {
            folded: store.counter(PROFILE_HOURS_KEY)?,
            ..Profile::default()
        };
        for (hour, value) in profile.hours.iter_mut().enumerate() {
            *value = store.counter(&hour_key(hour))? as f64 / 1_000.0;
        }
        Ok(profile)
    }

    /// Writes one hour of the profile and the count of folded hours.
    pub fn store_hour(&self, store: &Store, hour: usize) -> Result<(), StateError> {
        let Some(value) = self.hours.get(hour) else {
            return Ok(());
        };
        store.set_counter(&hour_key(hour), (value * 1_000.0).round() as i64)?;
        store.set_counter(PROFILE_HOURS_KEY, self.folded)
    }

    /// Folds the changes listed during one complete hour into the mean
    /// of that hour of the day. The first day sets the value outright.
    pub fn fold(&mut self, hour: usize, listed: f64) {
        let Some(value) = self.hours.get_mut(hour) else {
            return;
        };
        *value = if self.folded < 24 {
            listed
        } else {
            *value + PROFILE_WEIGHT * (listed - *value)
        };
        self.folded += 1;
    }

    /// Checks whether a whole day of hours has been folded in.
    pub fn is_known(&self) -> bool {
        self.folded >= 24
    }

    /// Returns the profile with each hour below both neighbours (23:00
    /// and 00:00 UTC included) raised to the lower one, less chance
    /// variation. Such a dip is mostly listing that fell behind, for
    /// example changes listed after 00:00 UTC because the day's budget
    /// ran out. Expecting too few details costs far more than too many.
    /// A burst of one hour is kept.
    pub fn without_dips(&self) -> Profile {
        let mut hours = self.hours;
        for (hour, value) in hours.iter_mut().enumerate() {
            let before = self.hours[(hour + 23) % 24];
            let after = self.hours[(hour + 1) % 24];
            let lower = before.min(after);
            *value = value.max(lower - DIP_NOISE_SD * lower.sqrt());
        }
        Profile {
            hours,
            folded: self.folded,
        }
    }

    /// Changes the profile expects over a whole day.
    pub fn day_total(&self) -> f64 {
        self.hours.iter().sum()
    }

    /// Changes the profile expects from `ms_into_day` after 00:00 UTC to
    /// the end of the day, counting the current hour's part still to
    /// come.
    pub fn rest_of_day(&self, ms_into_day: i64) -> f64 {
        let ms = ms_into_day.clamp(0, DAY_MS as i64 - 1);
        let current = (ms / HOUR_MS) as usize;
        let left_in_hour = 1.0 - (ms % HOUR_MS) as f64 / HOUR_MS as f64;
        let later: f64 = self.hours.iter().skip(current + 1).sum();
        self.hours.get(current).map_or(0.0, |v| v * left_in_hour) + later
    }
}

fn hour_key(hour: usize) -> String {
    format!("{PROFILE_KEY_PREFIX}{hour:02}")
}

/// Changes listed in the current UTC hour, handed to the profile when
/// the hour ends.
#[derive(Clone, Debug, Default)]
pub struct HourTally {
    /// Hours since the epoch of the hour being counted.
    hour: Option<i64>,
    listed: f64,
    /// Whether the process ran for the whole of that hour.
    whole: bool,
}

impl HourTally {
    /// Counts `listed` changes at `now_ms` and returns the completed
    /// hours to fold, as hour of day and count. The hour the process
    /// started in is incomplete and never returned. Hours without a list
    /// call while the process ran count as zero.
    pub fn note(&mut self, now_ms: i64, listed: usize) -> Vec<(usize, f64)> {
        let hour = now_ms.div_euclid(HOUR_MS);
        let mut completed = Vec::new();
        match self.hour {
            Some(current) if current == hour => {}
            Some(current) => {
                if self.whole {
                    completed.push((hour_of_day(current), self.listed));
                }
                // At most a day of empty hours, since each hour of the
                // day has one slot.
                let empty_from = (current + 1).max(hour - 24);
                completed.extend((empty_from..hour).map(|h| (hour_of_day(h), 0.0)));
                *self = HourTally {
                    hour: Some(hour),
                    listed: 0.0,
                    whole: true,
                };
            }
            None => {
                *self = HourTally {
                    hour: Some(hour),
                    listed: 0.0,
                    whole: false,
                };
            }
        }
        self.listed += listed as f64;
        completed
    }
}

fn hour_of_day(epoch_hour: i64) -> usize {
    epoch_hour.rem_euclid(24) as usize
}

/// Recent rate of alert changes: an exponentially weighted rate with
/// time constant [`ACTIVITY_TAU_MS`], so a burst raises it within
/// minutes and a quiet spell lowers it as fast.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    /// Changes per millisecond at `at_ms`.
    rate: f64,
    at_ms: Option<i64>,
    started_ms: Option<i64>,
}

impl Activity {
    pub fn note(&mut self, now_ms: i64, listed: usize) {
        self.rate = self.rate_at(now_ms) + listed as f64 / ACTIVITY_TAU_MS;
        self.at_ms = Some(now_ms);
        self.started_ms.get_or_insert(now_ms);
    }

    /// Returns the rate in changes per millisecond, or `None` until one
    /// time constant has passed since the first list call: before that
    /// the mean is still building up from zero.
    pub fn rate(&self, now_ms: i64) -> Option<f64> {
        let started = self.started_ms?;
        (now_ms - started >= ACTIVITY_TAU_MS as i64).then(|| self.rate_at(now_ms))
    }

    fn rate_at(&self, now_ms: i64) -> f64 {
        let Some(at) = self.at_ms else {
            return 0.0;
        };
        let elapsed = (now_ms - at).max(0) as f64;
        self.rate * (-elapsed / ACTIVITY_TAU_MS).exp()
    }
}

/// Shortest span over which a rate since start is taken as measured.
const MIN_RATE_SPAN_MS: f64 = 60_000.0;

/// Returns the rate of alert changes since the process started, in
/// changes per millisecond, from `changes` listed over `elapsed_ms`.
///
/// Once the profile of past days is known it steers the plan, and the
/// rate is the plain mean over at least an hour. Without a profile the
/// rate alone sets how many details the rest of the day will take, and
/// an early estimate built on few changes is mostly chance. Planning
/// with one standard deviation above the count (`n + √n + 1`, the count
/// being close to Poisson) then errs toward fewer lists while the count
/// is small, instead of spending the first hour's requests on lists
/// as if no changes were coming. The excess shrinks as `1 / √n`.
pub fn rate_since_start(changes: f64, elapsed_ms: f64, profile_known: bool) -> f64 {
    let changes = changes.max(0.0);
    if profile_known {
        return changes / elapsed_ms.max(HOUR_MS as f64);
    }
    (changes + changes.sqrt() + 1.0) / elapsed_ms.max(MIN_RATE_SPAN_MS)
}

/// Estimates the details still to come today. Without a profile of past
/// days it is the rate seen since the process started, carried over the
/// time left. With one, it is the larger of two estimates:
///
/// - that rate spread over the day as the profile is. The rate covers
///   whole days with their bursts, so carried evenly it would count a
///   burst that is over in the hours after it.
/// - the profile's rest of the day, scaled up when today has brought
///   more changes than the profile expected so far (`today_listed` is
///   the count since 00:00 UTC, or less when the process started
///   later).
///
/// Taking the larger errs toward fewer lists, which costs some delay.
/// Erring the other way leaves changes unfetched until the next day.
pub fn expected_details(
    rate_per_ms: f64,
    left_ms: f64,
    profile: &Profile,
    ms_into_day: i64,
    today_listed: f64,
) -> f64 {
    let rate = rate_per_ms.max(0.0);
    if !profile.is_known() {
        return rate * left_ms;
    }
    let rest = profile.rest_of_day(ms_into_day);
    let total = profile.day_total();
    let so_far = total - rest;
    // A tenth of a day's changes as a prior keeps the first minutes of
    // a day from scaling the whole day by a few changes.
    let prior = total * PROFILE_PRIOR_SHARE;
    let ratio = ((today_listed + prior) / (so_far + prior).max(1.0)).max(1.0);
    let even = SHAPE_PRIOR_CHANGES * left_ms / DAY_MS;
    let share_left = (rest + even) / (total + SHAPE_PRIOR_CHANGES);
    (rate * DAY_MS * share_left).max(rest * ratio)
}

/// Returns the share of the details expected for the rest of the day
/// that falls in the day's last hour: by the profile once it is known,
/// else by time.
pub fn last_hour_share(profile: &Profile, ms_into_day: i64, left_ms: f64) -> f64 {
    let by_time = (HOUR_MS as f64 / left_ms.max(1.0)).min(1.0);
    if !profile.is_known() {
        return by_time;
    }
    let rest = profile.rest_of_day(ms_into_day);
    if rest <= 0.0 {
        return by_time;
    }
    let last = profile.rest_of_day(ms_into_day.max(DAY_MS as i64 - HOUR_MS));
    (last / rest).clamp(0.0, 1.0)
}

/// Today's remaining requests and what they must carry.
#[derive(Clone, Copy, Debug)]
pub struct Demand {
    /// Today's allowance: the limit less the reserve.
    pub allowed: f64,
    pub remaining: f64,
    pub pending: f64,
    pub expected_details: f64,
    pub syncs: f64,
    pub left_ms: f64,
    pub profile_known: bool,
    /// Requests the pacer reserves for the day's last hour beyond the
    /// details and syncs expected in it. Only lists in that hour can
    /// use them.
    pub tail_only: f64,
}

/// Returns the list calls the rest of the day affords, and whether that
/// number is a floor (the backlog takes everything else) rather than
/// what is spare. The spare requests are today's remaining budget less
/// the pending and expected details and the syncs, less the burst
/// margin.
///
/// Once the profile is known, the lists planned before the day's last
/// hour also leave `tail_only` unspent. Before that hour the pacer
/// grants no token from its reserve, and details go beyond the tokens
/// only while the remaining budget stays above it. Lists that spent it
/// would leave the evening's details waiting for 23:00 UTC. Without a
/// profile the flat rate since start already overstates the evening
/// after a burst, so the cap would only cut the evening's lists further.
pub fn lists_affordable(demand: &Demand) -> (f64, bool) {
    let margin = if demand.profile_known {
        MARGIN_WITH_PROFILE
    } else {
        MARGIN_WITHOUT_PROFILE
    };
    let spare = demand.remaining - demand.pending - demand.expected_details - demand.syncs;
    let mut planned = spare * (1.0 - margin * (demand.left_ms / DAY_MS).clamp(0.0, 1.0));
    if demand.profile_known && demand.left_ms > HOUR_MS as f64 {
        let before_last_hour = (demand.left_ms - HOUR_MS as f64) / demand.left_ms;
        planned = planned.min((spare - demand.tail_only) / before_last_hour);
    }
    // However large the backlog: at least a tenth of the remaining
    // budget, and one list a day. When the backlog outruns the budget,
    // the remaining budget shrinks toward zero by 00:00 UTC, so its
    // tenth alone would leave the evening unlisted. The floor is then
    // also a tenth of an even spread of the day's allowance over the
    // time left, at most one list per `BACKLOG_LIST_GAP_MS`.
    let spread = (demand.allowed * MIN_LIST_SHARE * demand.left_ms / DAY_MS)
        .min(demand.left_ms / BACKLOG_LIST_GAP_MS);
    let mut of_remaining = demand.remaining * MIN_LIST_SHARE;
    let shortfall = -spare;
    if shortfall > 0.0 {
        // The day runs short: each list beyond this count costs more
        // than it saves (see `short_day_lists`).
        of_remaining = of_remaining.min(short_day_lists(demand.expected_details, shortfall));
    }
    let floor = of_remaining
        .max(spread)
        .max(demand.left_ms / DAY_MS)
        .min(demand.remaining.max(1.0));
    if planned >= floor {
        (planned, false)
    } else {
        (floor, true)
    }
}

/// Returns the list calls over the rest of the day that keep the summed
/// delay of its `expected` changes smallest, when the details and syncs
/// already need `shortfall` requests more than the day has left.
///
/// Each list then moves one more change to the next day. Pending ids
/// are fetched oldest first, so the changes moved are the day's newest:
/// `k` of them, arriving over the time left `T` at rate `expected / T`,
/// wait on average `k T / (2 expected)` for 00:00 UTC. With `n` lists
/// the others wait `T / (2n)` each for a list. The sum,
/// `expected T / (2n) + (shortfall + n)² T / (2 expected)`, is smallest
/// where `expected² = 2 n² (shortfall + n)`.
pub fn short_day_lists(expected: f64, shortfall: f64) -> f64 {
    if expected <= 0.0 {
        return 0.0;
    }
    let target = expected * expected;
    let excess = |n: f64| 2.0 * n * n * (shortfall.max(0.0) + n) - target;
    // `excess` grows with `n` and is not negative at `high`.
    let (mut low, mut high) = (0.0, (target / 2.0).cbrt());
    for _ in 0..60 {
        let middle = (low + high) / 2.0;
        if excess(middle) < 0.0 {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// Factor for the list rate from recent activity: `√(recent / mean)`,
/// bounded, where `mean` is the rate the plan expects over the rest of
/// the day. Returns 1 when either rate is unknown or zero, or when the
/// mean rate brings fewer than [`MIN_ACTIVITY_CHANGES`] changes per
/// time constant.
pub fn activity_factor(recent: Option<f64>, mean: f64) -> f64 {
    if mean * ACTIVITY_TAU_MS < MIN_ACTIVITY_CHANGES {
        return 1.0;
    }
    match recent {
        Some(recent) if recent.is_finite() => (recent / mean)
            .sqrt()
            .clamp(MIN_ACTIVITY_FACTOR, MAX_ACTIVITY_FACTOR),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known_profile(per_hour: impl Fn(usize) -> f64) -> Profile {
        let mut profile = Profile::default();
        for hour in 0..24 {
            profile.fold(hour, per_hour(hour));
        }
        profile
    }

    #[test]
    fn profile_expects_a_burst_still_to_come() {
        let profile = known_profile(|hour| if hour == 14 { 1_700.0 } else { 100.0 });
        assert!(profile.is_known());
        let at_ten = profile.rest_of_day(10 * HOUR_MS);
        assert!((at_ten - 3_000.0).abs() < 1e-6, "{at_ten}");
        let mid_burst = profile.rest_of_day(14 * HOUR_MS + HOUR_MS / 2);
        assert!((mid_burst - 1_750.0).abs() < 1e-6, "{mid_burst}");
        // By 10:00 the day brought the 1,000 changes the profile
        // expected, at 100 an hour, so the profile's 3,000 stand.
        let rate = 100.0 / HOUR_MS as f64;
        let expected = expected_details(rate, 14.0 * 3.6e6, &profile, 10 * HOUR_MS, 1_000.0);
        assert!((expected - 3_000.0).abs() < 1e-6, "{expected}");
        // A day with twice the changes so far expects more of the rest.
        let busier = expected_details(rate, 14.0 * 3.6e6, &profile, 10 * HOUR_MS, 2_000.0);
        assert!(busier > 4_500.0, "{busier}");
    }

    #[test]
    fn rate_after_burst_follows_profile() {
        let profile = known_profile(|hour| if hour == 14 { 1_700.0 } else { 100.0 });
        // Two days of 4,000 changes: 166.7 an hour since start, burst
        // included.
        let rate = 4_000.0 / DAY_MS;
        let left = 9.0 * HOUR_MS as f64;
        let at_three = 15 * HOUR_MS;
        let expected = expected_details(rate, left, &profile, at_three, 4_000.0 * 15.0 / 24.0);
        // The profile's 900 for the evening, plus the rate's share of
        // the even pseudo-count; not the 1,500 of the rate carried evenly.
        assert!((900.0..1_000.0).contains(&expected), "{expected}");
        // The burst still to come counts in full before it.
        let at_ten = expected_details(rate, 14.0 * 3.6e6, &profile, 10 * HOUR_MS, 1_000.0);
        assert!(at_ten >= 3_000.0, "{at_ten}");
    }

    #[test]
    fn profile_dips_of_one_hour_raised() {
        let mut hours = [100.0; 24];
        hours[14] = 1_700.0;
        hours[23] = 40.0;
        hours[0] = 160.0;
        // A quiet night of three hours.
        hours[3] = 10.0;
        hours[4] = 10.0;
        hours[5] = 10.0;
        let profile = Profile { hours, folded: 48 };
        let smooth = profile.without_dips();
        // Raised to the lower neighbour less two standard deviations.
        assert!(
            (smooth.hours[23] - 80.0).abs() < 1e-9,
            "{}",
            smooth.hours[23]
        );
        assert_eq!(smooth.hours[14], 1_700.0);
        assert_eq!(smooth.hours[13], 100.0);
        assert_eq!(smooth.hours[15], 100.0);
        assert_eq!(&smooth.hours[3..6], &[10.0, 10.0, 10.0]);
        // A dip within chance variation stays.
        let mut hours = [1.0; 24];
        hours[7] = 0.0;
        let sparse = Profile { hours, folded: 48 };
        assert_eq!(sparse.without_dips().hours[7], 0.0);
    }

    #[test]
    fn last_hour_share_follows_profile() {
        let profile = known_profile(|hour| if hour == 23 { 300.0 } else { 100.0 });
        let share = last_hour_share(&profile, 21 * HOUR_MS, 3.0 * 3.6e6);
        assert!((share - 0.6).abs() < 1e-9, "{share}");
        let unknown = last_hour_share(&Profile::default(), 20 * HOUR_MS, 4.0 * 3.6e6);
        assert!((unknown - 0.25).abs() < 1e-9, "{unknown}");
    }

    #[test]
    fn lists_leave_last_hour_reserve() {
        let demand = Demand {
            allowed: 5_000.0,
            remaining: 1_400.0,
            pending: 0.0,
            expected_details: 900.0,
            syncs: 0.0,
            left_ms: 9.0 * HOUR_MS as f64,
            profile_known: true,
            tail_only: 109.0,
        };
        // 500 spare; the 8 hours before the last may list 391, which at
        // an even rate over 9 hours is 440 lists.
        let (lists, floor) = lists_affordable(&demand);
        assert!((lists - 391.0 * 9.0 / 8.0).abs() < 1e-6, "{lists}");
        assert!(!floor);
        // In the last hour the reserve is for its lists.
        let last = Demand {
            left_ms: 0.5 * HOUR_MS as f64,
            remaining: 160.0,
            expected_details: 50.0,
            ..demand
        };
        assert!((lists_affordable(&last).0 - 110.0).abs() < 1.0);
        // Without a profile only the margin applies.
        let unknown = Demand {
            profile_known: false,
            ..demand
        };
        let margin = 500.0 * (1.0 - MARGIN_WITHOUT_PROFILE * 9.0 / 24.0);
        assert!((lists_affordable(&unknown).0 - margin).abs() < 1e-6);
    }

    #[test]
    fn early_rate_errs_high_until_the_count_grows() {
        let minute = 60_000.0;
        // No change yet is not read as no changes coming.
        assert!(rate_since_start(0.0, 10.0 * minute, false) > 0.0);
        // 3 changes in 5 minutes plan as 5.7.
        let early = rate_since_start(3.0, 5.0 * minute, false) * 5.0 * minute;
        assert!((early - (4.0 + 3f64.sqrt())).abs() < 1e-9, "{early}");
        // 2,000 changes in 12 hours plan within 2.5 % of the mean.
        let span = 12.0 * HOUR_MS as f64;
        let late = rate_since_start(2_000.0, span, false) * span;
        assert!((2_000.0..2_050.0).contains(&late), "{late}");
        // With a profile, the plain mean over at least an hour.
        let known = rate_since_start(30.0, 10.0 * minute, true) * HOUR_MS as f64;
        assert!((known - 30.0).abs() < 1e-9, "{known}");
    }

    #[test]
    fn profile_folds_days_into_a_mean() {
        let mut profile = known_profile(|_| 100.0);
        profile.fold(3, 300.0);
        // Hour 3 becomes 200; hours 4 to 23 stay at 100.
        assert!((profile.rest_of_day(3 * HOUR_MS) - 2_200.0).abs() < 1e-6);
    }

    #[test]
    fn unknown_profile_is_not_used() {
        let mut profile = Profile::default();
        profile.fold(14, 5_000.0);
        assert!(!profile.is_known());
        let expected = expected_details(0.0, 10.0 * 3.6e6, &profile, 14 * HOUR_MS, 0.0);
        assert_eq!(expected, 0.0);
    }

    #[test]
    fn tally_skips_first_hour_and_counts_empty_ones() {
        let mut tally = HourTally::default();
        let start = 1_796_601_600_000 + 10 * HOUR_MS + 1_000;
        assert!(tally.note(start, 5).is_empty());
        assert!(tally.note(start + HOUR_MS, 7).is_empty());
        assert!(tally.note(start + HOUR_MS + 60_000, 3).is_empty());
        let completed = tally.note(start + 4 * HOUR_MS, 1);
        assert_eq!(completed, vec![(11, 10.0), (12, 0.0), (13, 0.0)]);
    }

    #[test]
    fn tally_caps_empty_hours_at_a_day() {
        let mut tally = HourTally::default();
        tally.note(0, 0);
        tally.note(HOUR_MS, 0);
        let completed = tally.note(100 * HOUR_MS, 0);
        assert_eq!(completed.len(), 25, "{completed:?}");
    }

    #[test]
    fn activity_rate_follows_a_burst() {
        let mut activity = Activity::default();
        activity.note(0, 0);
        assert_eq!(activity.rate(60_000), None);
        // 28 changes a minute for 20 minutes.
        for minute in 1..=20 {
            activity.note(minute * 60_000, 28);
        }
        let per_minute = activity.rate(20 * 60_000).unwrap_or(0.0) * 60_000.0;
        assert!((20.0..=28.0).contains(&per_minute), "{per_minute}");
        let later = activity.rate(80 * 60_000).unwrap_or(1.0) * 60_000.0;
        assert!(later < 1.0, "{later}");
    }

    #[test]
    fn activity_factor_is_square_root_within_bounds() {
        assert_eq!(activity_factor(None, 1.0), 1.0);
        assert_eq!(activity_factor(Some(4.0), 0.0), 1.0);
        assert!((activity_factor(Some(4.0), 1.0) - 2.0).abs() < 1e-9);
        assert_eq!(activity_factor(Some(0.0), 1.0), MIN_ACTIVITY_FACTOR);
        assert_eq!(activity_factor(Some(100.0), 1.0), MAX_ACTIVITY_FACTOR);
        // Twenty changes a day is under one per time constant.
        let sparse = 20.0 / 86_400_000.0;
        assert_eq!(activity_factor(Some(0.0), sparse), 1.0);
        assert_eq!(activity_factor(Some(sparse * 100.0), sparse), 1.0);
    }

    #[test]
    fn lists_keep_margin_above_floor() {
        let demand = Demand {
            allowed: 5_000.0,
            remaining: 3_000.0,
            pending: 0.0,
            expected_details: 1_000.0,
            syncs: 0.0,
            left_ms: DAY_MS / 2.0,
            profile_known: false,
            tail_only: 0.0,
        };
        // Half the day left: half of the 30 % margin is still held.
        let (lists, floor) = lists_affordable(&demand);
        assert!((lists - 1_700.0).abs() < 1e-6, "{lists}");
        assert!(!floor);
        let known = Demand {
            profile_known: true,
            ..demand
        };
        assert!((lists_affordable(&known).0 - 1_900.0).abs() < 1e-6);
        let backlog = Demand {
            pending: 5_000.0,
            ..demand
        };
        // The backlog takes 3,000 requests more than are left, so a list
        // beyond about 13 costs more than it saves: the floor is the
        // spread's 15-minute gap, 48 lists in 12 hours.
        assert_eq!(lists_affordable(&backlog), (48.0, true));
    }

    #[test]
    fn short_day_lists_weigh_deferral_against_gaps() {
        // expected² = 2 n² (shortfall + n)
        for (expected, shortfall) in [(1_500.0, 10.0), (2_000.0, 300.0), (100.0, 0.0)] {
            let n: f64 = short_day_lists(expected, shortfall);
            let balance = 2.0 * n * n * (shortfall + n) / (expected * expected);
            assert!((balance - 1.0).abs() < 1e-9, "{expected} {shortfall}: {n}");
        }
        // A larger shortfall makes each list dearer.
        assert!(short_day_lists(1_500.0, 300.0) < short_day_lists(1_500.0, 10.0));
        assert_eq!(short_day_lists(0.0, 10.0), 0.0);
    }
}
