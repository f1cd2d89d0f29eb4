//! The poll loop: picks the next request by priority and sends it when
//! the pacer allows.
//!
//! Priorities, highest first: a sync that is due, at start and every
//! `sync_interval` (so the day's plan counts what other tools spent),
//! listing alerts when a list is due, then alert details. After a list,
//! a detail goes first when today's budget cannot carry the pending
//! alerts, so a tiny budget alternates the two.
//!
//! A list is due when the list interval has passed since the last one.
//! The interval is what is left of the day divided by the requests left
//! for listing, shortened while changes are arriving and lengthened in
//! quiet spells. `plan` computes both from today's remaining budget, the
//! pending details, the details expected for the rest of the day and
//! the syncs. Details go at once when the pacer has a token or the day's
//! remaining budget can spare one beyond the plan
//! (`Pacer::check_borrowing`). List calls use up the plan's tokens, so
//! without borrowing a burst of changes would wait at the plan's pace,
//! one detail per period.
//!
//! Pending alerts are fetched in the order they were listed, ids that
//! failed going last. When today's budget cannot carry the backlog, a
//! WARN says how large it is, and the rest carries over to the next day.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Forwarder;
use super::background::{self, Background, BackgroundJob};
use super::plan::{self, Activity, Demand, HourTally, Profile};
use crate::api::{ErrorKind, Transport};
use crate::budget::{
    ListHold, Pacer, Permit, SourceKind, TAIL_MS, can_spare, day_start_ms, next_day_start_ms,
    reserved_for_background, tail_share,
};
use crate::logging::{Repeats, Verdict};
use crate::source::alerts::SOURCE;
use crate::source::{CycleReport, SourceError};

/// Wait before a failed sync is tried again.
const SYNC_RETRY_MS: i64 = 15 * 60_000;

/// The same request failure is logged once in this window.
const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// How often a background source held back by its share looks again.
const BACKGROUND_RECHECK_MS: i64 = 60_000;

/// Maximum sleep between two reads of the state.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Job {
    List,
    Detail,
    /// `getDevice` for the device an alert is held for.
    Enrich,
    Background(BackgroundJob),
    Sync,
}

impl Job {
    /// Returns the source whose share the request counts against. A sync
    /// serves every source, so it counts against none.
    fn source(&self) -> Option<SourceKind> {
        match self {
            Job::List | Job::Detail => Some(SourceKind::Alerts),
            // A device record is paid from the device share, whether the
            // inventory or an alert needs it.
            Job::Enrich => Some(SourceKind::Devices),
            Job::Background(job) => Some(job.source()),
            Job::Sync => None,
        }
    }
}

pub struct Scheduler<'a, T> {
    forwarder: &'a Forwarder<T>,
    pacer: Pacer,
    background: Background<'a, T>,
    started_ms: i64,
    /// Alert changes listed since the process started. The first list
    /// call is excluded because it reaches back over an unknown span.
    listed: u64,
    first_list_done: bool,
    /// 00:00 UTC of the current day and the changes listed since.
    today: (i64, u64),
    /// Changes listed in the current hour, for the profile.
    tally: HourTally,
    /// Changes listed per hour of day on past days.
    profile: Profile,
    activity: Activity,
    /// When a failed sync may be tried again.
    sync_retry_at: Option<i64>,
    last_job: Option<Job>,
    /// Events stored since the last list call, for the cycle's log line.
    stored_since_list: usize,
    failures: u32,
    /// Rate limit for the log lines of request failures.
    repeats: Repeats,
    warned_backlog: Option<String>,
    warned_spent: Option<String>,
    /// When the list plan was computed, the pending count then, and the
    /// list interval.
    list_plan: Option<(i64, i64, Duration)>,
}

impl<'a, T: Transport> Scheduler<'a, T> {
    pub fn new(forwarder: &'a Forwarder<T>) -> Self {
        let settings = forwarder.settings();
        let quota = &settings.quota;
        Scheduler {
            forwarder,
            pacer: Pacer::new(forwarder.clock.clone(), quota.burst_window),
            background: Background::new(forwarder),
            started_ms: forwarder.clock.now_ms(),
            listed: 0,
            first_list_done: false,
            today: (0, 0),
            tally: HourTally::default(),
            profile: Profile::load(&forwarder.store).unwrap_or_else(|error| {
                tracing::warn!(%error, "failed to read the hourly alert profile, starting without it");
                Profile::default()
            }),
            activity: Activity::default(),
            sync_retry_at: None,
            last_job: None,
            stored_since_list: 0,
            failures: 0,
            repeats: Repeats::new(REPEAT_WINDOW),
            warned_backlog: None,
            warned_spent: None,
            list_plan: None,
        }
    }

    pub async fn run(&mut self, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            let wait = match self.step().await {
                // The plan changes at each UTC hour and day turn: a wait
                // planned from the end of a spent day must not run past
                // it. A backoff after a failure keeps its length.
                Ok(wait) => wait.min(self.until_next_hour()),
                Err(error) => self.after_failure(&error),
            };
            let wait = wait.min(MAX_SLEEP);
            self.forwarder.heartbeat.beat(wait);
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Time until just after the next full hour on the server's clock,
    /// when the pacer replans and, at 00:00, the day's budget renews.
    fn until_next_hour(&self) -> Duration {
        const HOUR_MS: i64 = 3_600_000;
        let now = self.forwarder.budget.server_now_ms();
        let left = HOUR_MS - now.rem_euclid(HOUR_MS) + 1_000;
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }

    /// Sends at most one request; returns how long to wait before the
    /// next step.
    async fn step(&mut self) -> Result<Duration, SourceError> {
        let forwarder = self.forwarder;
        let settings = forwarder.settings();
        if self.outbox_full()? {
            return Ok(settings.alerts.min_poll_interval);
        }
        let (job, wait) = self.next_job()?;
        let Some(job) = job else {
            return Ok(wait);
        };
        let permit = match job {
            Job::Detail | Job::Enrich => self.pacer.check_borrowing(&forwarder.budget)?,
            Job::List | Job::Sync | Job::Background(_) => self.pacer.check(&forwarder.budget)?,
        };
        if let Permit::Wait(wait) = permit {
            self.warn_if_spent()?;
            return Ok(wait);
        }
        if let Some(source) = job.source() {
            background::record_spent(forwarder, source, 1)?;
        }
        let mut report = CycleReport::default();
        let source = forwarder.alert_source();
        match &job {
            Job::Sync => {
                self.list_plan = None;
                self.sync().await?;
            }
            Job::Enrich => {
                self.background.devices.fetch_held(&mut report).await?;
                self.stored(crate::source::devices::SOURCE, &report);
            }
            Job::Background(background) => {
                self.background.run(background, &mut report).await?;
                let source = background.source().name();
                forwarder.metrics.polled(source, forwarder.clock.now_ms());
                self.stored(source, &report);
            }
            Job::List => {
                self.list_plan = None;
                source.list(&mut report).await?;
                forwarder.metrics.polled(SOURCE, forwarder.clock.now_ms());
                self.note_listed(report.listed)?;
                self.log_cycle(&report);
            }
            Job::Detail => {
                source.fetch_pending(1, &mut report).await?;
                self.stored_since_list += report.stored;
                self.stored(SOURCE, &report);
            }
        }
        // Only a request that went through ends a run of failures; a
        // pacer wait does not, or the backoff would never grow.
        if self.failures > 0 {
            self.log_unlogged_repeats();
        }
        self.failures = 0;
        self.last_job = Some(job);
        Ok(Duration::ZERO)
    }

    /// Checks whether today's remaining budget exceeds what alerts could spend
    /// listing at `min_poll_interval` until 00:00 UTC and fetching the
    /// `pending` details, with the last hour's share on top.
    fn more_than_alerts_can_use(
        &self,
        pending: i64,
        min_poll_interval: Duration,
    ) -> Result<bool, SourceError> {
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        let allowed = budget.allowed(&day);
        let remaining = (allowed - day.effective_used()) as f64;
        let now = budget.server_now_ms();
        let left_ms = (next_day_start_ms(now) - now).max(0) as f64;
        let lists = left_ms / (min_poll_interval.as_millis().max(1) as f64);
        let tail = allowed as f64 / 24.0;
        Ok(remaining > lists + pending as f64 + tail)
    }

    /// Counts what a request stored, the held alerts it released
    /// under the alert source, and wakes the outputs.
    fn stored(&self, source: &'static str, report: &CycleReport) {
        let metrics = &self.forwarder.metrics;
        metrics.events_stored(source, report.stored);
        metrics.events_stored(SOURCE, report.released);
        if report.stored + report.released > 0 {
            self.forwarder.wake.notify_waiters();
        }
    }

    /// Returns the job that is due now, or how long until one is.
    fn next_job(&mut self) -> Result<(Option<Job>, Duration), SourceError> {
        let forwarder = self.forwarder;
        // An overdue sync goes first: other tools may have spent the
        // quota, and the plan must know before it spends more. A restart
        // soon after a sync does not sync again, since the ledger records
        // when the last one was.
        if self.sync_due()? {
            return Ok((Some(Job::Sync), Duration::ZERO));
        }
        let now = forwarder.clock.now_ms();
        let settings = forwarder.settings();
        // Alerts held longer than the enrichment wait go out without
        // their device; this sends no request.
        if self.background.devices.release_expired()? > 0 {
            forwarder.wake.notify_waiters();
        }
        let mut wake_at = now.saturating_add(millis_of(MAX_SLEEP));
        // Whether the alert source could use more requests than its plan
        // gives it; when it cannot, a background source may go past its
        // share.
        let mut alerts_saturated = true;
        if settings.alerts.enabled {
            let (pending, interval) = self.plan_lists(now)?;
            let listed = forwarder.store.listed_ms(SOURCE)?;
            let due_at = listed.map_or(now, |at| at + millis_of(interval));
            if now >= due_at && !self.detail_before_list(pending)? {
                return Ok((Some(Job::List), Duration::ZERO));
            }
            if forwarder.store.has_pending(SOURCE)? {
                self.warn_if_backlog(pending)?;
                if self.pacer.leaves_lists_their_hold(&forwarder.budget)? {
                    return Ok((Some(Job::Detail), Duration::ZERO));
                }
            }
            wake_at = wake_at.min(due_at);
            alerts_saturated = interval <= settings.alerts.min_poll_interval
                && self.more_than_alerts_can_use(pending, settings.alerts.min_poll_interval)?;
        }
        // Past their share, background sources take only what the alert
        // plan cannot use and the day can spare: never the last hour's
        // share, which keeps alerts listed until 00:00 UTC.
        let flow = alerts_saturated && can_spare(&forwarder.budget)?;
        if self.background.devices.held_count()? > 0 {
            // Held alerts come first within the device share. When it has
            // no room they go out now: waiting for the share to grow would
            // delay alerts for the sake of background work.
            if self.background.enrichment_has_room(flow)? {
                return Ok((Some(Job::Enrich), Duration::ZERO));
            }
            if self.background.devices.release_unaffordable()? > 0 {
                forwarder.wake.notify_waiters();
            }
        }
        if let Some(release) = self.background.devices.next_release_ms()? {
            wake_at = wake_at.min(release);
        }
        let pick = self.background.next(flow)?;
        if let Some(job) = pick.job {
            return Ok((Some(Job::Background(job)), Duration::ZERO));
        }
        if let Some(due) = pick.next_due_ms {
            wake_at = wake_at.min(due);
        }
        if pick.held_by_share {
            // Its share grows with the day: look again in a while.
            wake_at = wake_at.min(now + BACKGROUND_RECHECK_MS);
        }
        Ok((None, Duration::from_millis((wake_at - now).max(0) as u64)))
    }

    /// Whether a detail should go before a due list: after a list, when
    /// today's budget cannot carry the pending alerts, so that a budget
    /// of one or two requests a day alternates lists and details instead
    /// of listing only.
    fn detail_before_list(&self, pending: i64) -> Result<bool, SourceError> {
        if pending == 0
            || self.last_job != Some(Job::List)
            || !self.pacer.leaves_lists_their_hold(&self.forwarder.budget)?
        {
            return Ok(false);
        }
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        Ok(budget.allowed(&day) - day.effective_used() <= pending)
    }

    /// The pending count and the list interval, recomputed at most once
    /// a minute: counting a large backlog on every request would cost
    /// more than the request.
    fn plan_lists(&mut self, now: i64) -> Result<(i64, Duration), SourceError> {
        if let Some((at, pending, interval)) = self.list_plan
            && now - at < 60_000
        {
            return Ok((pending, interval));
        }
        let pending = self.forwarder.store.pending_count(SOURCE)?;
        let (interval, hold) = self.list_interval(pending)?;
        self.pacer.hold_for_lists(hold);
        self.list_plan = Some((now, pending, interval));
        Ok((pending, interval))
    }

    /// Time between list calls that today's remaining budget affords,
    /// scaled by recent activity. When the pending and expected details
    /// take every request but the lists' floor, also what the pacer
    /// keeps for those lists and the syncs.
    fn list_interval(&self, pending: i64) -> Result<(Duration, Option<ListHold>), SourceError> {
        let forwarder = self.forwarder;
        let budget = &forwarder.budget;
        let day = budget.ledger()?;
        let remaining = (budget.allowed(&day) - day.effective_used()).max(0) as f64;
        let now = budget.server_now_ms();
        let left_ms = (next_day_start_ms(now) - now).max(1) as f64;
        let local_now = forwarder.clock.now_ms();
        let rate = plan::rate_since_start(
            self.listed as f64,
            (local_now - self.started_ms) as f64,
            self.profile.is_known(),
        );
        let day_start = day_start_ms(now);
        let today = if self.today.0 == day_start {
            self.today.1
        } else {
            0
        };
        // A one-hour dip is mostly listing that fell behind (see
        // `Profile::without_dips`).
        let profile = self.profile.without_dips();
        let expected =
            plan::expected_details(rate, left_ms, &profile, now - day_start, today as f64);
        let settings = forwarder.settings();
        let quota = &settings.quota;
        let syncs = if quota.sync {
            left_ms / quota.sync_every(budget.allowed(&day)).as_millis() as f64
        } else {
            0.0
        };
        // The background sources' shares, or what they expect to need
        // when that is less, are not the alert source's to plan with.
        let background = self
            .background
            .demand(left_ms)
            .map(|demand| reserved_for_background(&quota.shares, remaining, &demand))?;
        // The pacer reserves one hour's share for the day's last hour.
        // What that hour's details and syncs leave of it is for its lists.
        let last_hour_details =
            expected * plan::last_hour_share(&profile, now - day_start, left_ms);
        let last_hour_syncs = syncs * (TAIL_MS as f64 / left_ms).min(1.0);
        let tail_only =
            (tail_share(budget.allowed(&day)) as f64 - last_hour_details - last_hour_syncs)
                .max(0.0);
        let (lists, floor) = plan::lists_affordable(&Demand {
            allowed: budget.allowed(&day) as f64,
            remaining: (remaining - background).max(0.0),
            pending: pending as f64,
            expected_details: expected,
            syncs,
            left_ms,
            profile_known: self.profile.is_known(),
            tail_only,
        });
        // When a backlog takes the rest and the floor lists at least
        // hourly, the pacer keeps the lists' requests from the details
        // (see `ListHold`). On a small licence the usual floors are a
        // request or two, and a hold would stop a budget of one request
        // a day from alternating lists and details.
        let hold = floor && lists * plan::HOUR_MS as f64 >= left_ms;
        let mut factor = plan::activity_factor(self.activity.rate(local_now), expected / left_ms);
        if hold {
            // The lists are at a floor that bounds their gaps: activity
            // may not space them wider.
            factor = 1.0;
        } else if floor {
            // A backlog already takes the rest: activity may slow the
            // lists but never spend more on them.
            factor = factor.min(1.0);
        }
        let mut interval_ms = left_ms / lists / factor;
        if left_ms <= TAIL_MS as f64 {
            // However quiet the spell or large the backlog, the last
            // hour's list goes before 00:00 UTC, when unspent requests
            // are lost.
            interval_ms = interval_ms.min(left_ms);
        }
        let interval = Duration::from_millis(interval_ms as u64);
        let hold = hold.then(|| ListHold {
            last_hour: (lists * (TAIL_MS as f64 / left_ms).min(1.0) + last_hour_syncs).ceil()
                as i64,
            // One more than the count: a detail must not take the
            // request of a list already due, which the count over the
            // time left, a fraction, can round away.
            rest_of_day: (lists + syncs).ceil() as i64 + 1,
        });
        Ok((interval.max(settings.alerts.min_poll_interval), hold))
    }

    /// Counts the changes a list call returned, for the rate estimate,
    /// the recent activity and the hourly profile.
    fn note_listed(&mut self, listed: usize) -> Result<(), SourceError> {
        if !std::mem::replace(&mut self.first_list_done, true) {
            return Ok(());
        }
        self.listed += listed as u64;
        self.activity.note(self.forwarder.clock.now_ms(), listed);
        let now = self.forwarder.budget.server_now_ms();
        let day_start = day_start_ms(now);
        if self.today.0 != day_start {
            self.today = (day_start, 0);
        }
        self.today.1 += listed as u64;
        for (hour, count) in self.tally.note(now, listed) {
            self.profile.fold(hour, count);
            self.profile.store_hour(&self.forwarder.store, hour)?;
        }
        Ok(())
    }

    fn sync_due(&self) -> Result<bool, SourceError> {
        let settings = self.forwarder.settings();
        let quota = &settings.quota;
        if !quota.sync {
            return Ok(false);
        }
        let now = self.forwarder.clock.now_ms();
        if self.sync_retry_at.is_some_and(|at| now < at) {
            return Ok(false);
        }
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        let now = self.forwarder.clock.now_ms();
        let interval = quota.sync_every(budget.allowed(&day));
        Ok(day
            .synced_ms
            .is_none_or(|at| now - at >= millis_of(interval)))
    }

    async fn sync(&mut self) -> Result<(), SourceError> {
        let forwarder = self.forwarder;
        // A failed sync is retried after a while, so it cannot take every
        // request while the API refuses it.
        self.sync_retry_at = Some(forwarder.clock.now_ms() + SYNC_RETRY_MS);
        let info = forwarder.client.get_api_key().await?;
        self.sync_retry_at = None;
        forwarder.budget.record_sync(&info)?;
        let day = forwarder.budget.ledger()?;
        tracing::info!(
            account = info.account_name.as_deref().unwrap_or("-"),
            limit = info.request_limit,
            organization_requests = info.requests,
            ours = day.used,
            allowed = forwarder.budget.allowed(&day),
            "quota synced"
        );
        Ok(())
    }

    fn outbox_full(&self) -> Result<bool, SourceError> {
        let forwarder = self.forwarder;
        let len = forwarder.store.outbox_len()?;
        let full = len as u64 >= forwarder.settings().state.outbox_max_events;
        if full {
            tracing::warn!(
                outbox = len,
                "outbox full; polling paused until outputs catch up"
            );
        }
        Ok(full)
    }

    fn warn_if_backlog(&mut self, pending: i64) -> Result<(), SourceError> {
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        let remaining = budget.allowed(&day) - day.effective_used();
        if pending > remaining && self.warned_backlog.as_deref() != Some(day.day.as_str()) {
            tracing::warn!(
                pending,
                remaining_today = remaining,
                "backlog larger than today's request budget; the rest carries over to tomorrow"
            );
            self.warned_backlog = Some(day.day);
        }
        Ok(())
    }

    fn warn_if_spent(&mut self) -> Result<(), SourceError> {
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        let allowed = budget.allowed(&day);
        let spent = day.effective_used() >= allowed;
        if spent && self.warned_spent.as_deref() != Some(day.day.as_str()) {
            let (limit, reserve) = (budget.limit(&day), self.forwarder.settings().quota.reserve);
            if limit <= reserve {
                tracing::error!(
                    limit,
                    reserve,
                    "quota.reserve leaves nothing of the organization's daily limit; set it below the limit, then reload or restart"
                );
                self.warned_spent = Some(day.day);
                return Ok(());
            }
            tracing::warn!(
                used = day.effective_used(),
                allowed,
                "today's request budget is spent; polling resumes after 00:00 UTC"
            );
            self.warned_spent = Some(day.day);
        }
        Ok(())
    }

    /// Logs one line per poll cycle, a cycle being a list call and the
    /// details fetched since the previous one.
    fn log_cycle(&mut self, report: &CycleReport) {
        let used = self
            .forwarder
            .budget
            .ledger()
            .map(|day| day.used)
            .unwrap_or(-1);
        let pending = self.forwarder.store.pending_count(SOURCE).unwrap_or(-1);
        tracing::info!(
            listed = report.listed,
            pending,
            stored = std::mem::take(&mut self.stored_since_list),
            requests_today = used,
            period_s = self.pacer.period().map(|p| p.as_secs()),
            "alerts listed"
        );
    }

    fn after_failure(&mut self, error: &SourceError) -> Duration {
        // Anything stored before the failure can go out now.
        self.forwarder.wake.notify_waiters();
        let kind = match error {
            SourceError::Api(error) => error.kind(),
            SourceError::State(_) => ErrorKind::Transient,
        };
        self.failures += 1;
        match kind {
            ErrorKind::DayClosed => {
                tracing::debug!(%error, "request rejected by the budget");
                Duration::from_secs(60)
            }
            ErrorKind::InvalidKey => {
                let wait = backoff(self.failures, 60, 3600);
                if self.should_log(&error.to_string()) {
                    tracing::error!(%error, retry_in_s = wait.as_secs(),
                        "API key rejected; fix the key file and the forwarder picks it up on restart");
                }
                wait
            }
            ErrorKind::Transient | ErrorKind::Permanent => {
                let wait = backoff(self.failures, 5, 300);
                if self.should_log(&error.to_string()) {
                    tracing::warn!(%error, retry_in_s = wait.as_secs(), "request failed; retrying");
                }
                wait
            }
        }
    }

    /// Checks whether a failure with this text is due for a log line,
    /// and first logs how often it repeated unlogged.
    fn should_log(&mut self, error: &str) -> bool {
        match self.repeats.check(error) {
            Verdict::Log => true,
            Verdict::Suppress => false,
            Verdict::LogAfterRepeats(repeated) => {
                log_repeats(error, repeated, self.repeats.window());
                true
            }
        }
    }

    fn log_unlogged_repeats(&mut self) {
        let window = self.repeats.window();
        for (error, repeated) in self.repeats.clear() {
            log_repeats(&error, repeated, window);
        }
    }
}

fn log_repeats(error: &str, repeated: u64, window: Duration) {
    tracing::warn!(
        error,
        repeated,
        window_s = window.as_secs(),
        "request failure repeated without a log line within the window"
    );
}

/// Doubling delay from `initial_s` up to `max_s`, less up to a quarter
/// at random so forwarders restarted together spread out.
fn backoff(attempt: u32, initial_s: u64, max_s: u64) -> Duration {
    let factor = 2u64.saturating_pow(attempt.saturating_sub(1).min(20));
    let base = Duration::from_secs(initial_s.saturating_mul(factor).min(max_s));
    base.mul_f64(rand::random_range(0.75..=1.0))
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
