//! `status`: today's request ledger and each source's part of it, the
//! pacing plan, cursors, pending ids, held alerts and outbox depth, read
//! from the state database while the daemon runs. The database is
//! opened read-only; WAL lets it read without blocking the daemon's
//! writes.

use serde::Serialize;

use std::sync::Arc;

use crate::budget::{Budget, SourceKind, day_start_ms, next_day_start_ms, planned_period_ms};
use crate::clock::{Clock, datetime_from_ms};
use crate::config::Settings;
use crate::source::alerts::SOURCE;
use crate::state::{StateError, Store};

#[derive(Debug, Serialize)]
pub struct Status {
    pub day: String,
    /// Requests this forwarder counted today.
    pub used: i64,
    /// The organization's count at the last sync, with the time of it.
    pub organization_used: Option<i64>,
    pub synced_at: Option<String>,
    /// The organization's requests today as best known.
    pub effective_used: i64,
    pub daily_limit: i64,
    pub reserve: i64,
    /// Requests this forwarder may still spend today.
    pub remaining: i64,
    pub closed_until: Option<String>,
    pub next_reset: String,
    pub last_request: Option<String>,
    /// Seconds between requests if the rest of the day is spent evenly.
    pub pace_seconds: Option<f64>,
    /// When the next request may go at that pace.
    pub next_request_after: Option<String>,
    pub cursors: Vec<Cursor>,
    pub pending: Vec<Pending>,
    /// Alerts waiting for their device record.
    pub held_alerts: i64,
    /// Requests each source spent today, with its share of the day.
    pub sources: Vec<SourceSpend>,
    pub outputs: Vec<Output>,
    pub overlap_refetches: i64,
    pub duplicates_dropped: i64,
}

#[derive(Debug, Serialize)]
pub struct Cursor {
    pub source: String,
    /// Epoch seconds, and the same as UTC time.
    pub value: i64,
    pub time: String,
}

#[derive(Debug, Serialize)]
pub struct Pending {
    pub source: String,
    pub ids: i64,
}

#[derive(Debug, Serialize)]
pub struct SourceSpend {
    pub source: String,
    pub requests_today: i64,
    /// Its share of the day's requests, in percent.
    pub share_percent: f64,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub name: String,
    pub address: String,
    /// Events stored but not yet delivered to this output.
    pub depth: i64,
}

/// Reads the status of the forwarder configured by `settings`.
pub fn read(settings: &Settings, clock: &Clock) -> Result<Status, StateError> {
    let store = Arc::new(Store::open_read_only(&settings.state.path)?);
    // The budget reads the same ledger, server clock offset and server
    // limit as the daemon's, so the figures agree with what it does.
    let budget = Budget::new(store.clone(), clock.clone(), settings.quota.clone());
    let now = budget.server_now_ms();
    let day = budget.ledger()?;
    let quota = &settings.quota;
    let limit = budget.limit(&day);
    let allowed = budget.allowed(&day);
    let closed_until = day.closed_until_ms.filter(|until| *until > now);
    // A closed day has nothing left, whatever the ledger counted.
    let remaining = match closed_until {
        Some(_) => 0,
        None => (allowed - day.effective_used()).max(0),
    };
    let next_reset = next_day_start_ms(now);
    let pace_ms = planned_period_ms(now, allowed, remaining);
    let next_request = match closed_until {
        Some(until) => Some(until),
        None => pace_ms.map(|pace| day.last_request_ms.map_or(now, |last| last + pace)),
    };
    let stamp = |ms: i64| datetime_from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut outputs = Vec::new();
    for output in &settings.outputs {
        outputs.push(Output {
            name: output.name.clone(),
            address: output.address.clone(),
            depth: store.outbox_depth(&output.name)?,
        });
    }
    Ok(Status {
        day: day.day.clone(),
        used: day.used,
        organization_used: day.org_used,
        synced_at: day.synced_ms.map(stamp),
        effective_used: day.effective_used(),
        daily_limit: limit,
        reserve: quota.reserve,
        remaining,
        closed_until: closed_until.map(stamp),
        next_reset: stamp(next_reset),
        last_request: day.last_request_ms.map(stamp),
        pace_seconds: pace_ms.map(|pace| pace as f64 / 1000.0),
        next_request_after: next_request.map(|at| stamp(at.max(now))),
        cursors: store
            .cursors()?
            .into_iter()
            .map(|(source, value)| Cursor {
                source,
                value,
                time: stamp(value.saturating_mul(1000)),
            })
            .collect(),
        pending: vec![
            Pending {
                source: SOURCE.to_owned(),
                ids: store.pending_count(SOURCE)?,
            },
            Pending {
                source: crate::source::devices::SOURCE.to_owned(),
                ids: store.pending_count(crate::source::devices::SOURCE)?,
            },
        ],
        held_alerts: store.held_count()?,
        sources: source_spend(&store, &settings.quota, day_start_ms(now))?,
        outputs,
        overlap_refetches: store.counter("overlap_refetches")?,
        duplicates_dropped: store.counter("duplicates_dropped")?,
    })
}

/// Reads the requests each source spent in the UTC day starting at
/// `today`; the scheduler counts them under `spent.<source>`.
fn source_spend(
    store: &Store,
    quota: &crate::config::QuotaSettings,
    today: i64,
) -> Result<Vec<SourceSpend>, StateError> {
    let counted_today = store.counter("spent.day")? == today;
    let mut sources = Vec::new();
    for source in SourceKind::ALL {
        let requests_today = if counted_today {
            store.counter(&format!("spent.{}", source.name()))?
        } else {
            0
        };
        sources.push(SourceSpend {
            source: source.name().to_owned(),
            requests_today,
            share_percent: quota.shares.of(source) * 100.0,
        });
    }
    Ok(sources)
}

impl Status {
    /// Renders the status as aligned lines for a terminal.
    pub fn to_text(&self) -> String {
        let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
        let mut lines = vec![
            format!("day (UTC)            {}", self.day),
            format!("requests, ours       {}", self.used),
            format!(
                "requests, all tools  {} at last sync ({})",
                self.organization_used.map_or("-".into(), |n| n.to_string()),
                or_dash(&self.synced_at)
            ),
            format!(
                "limit                {} with {} reserved; {} left today",
                self.daily_limit, self.reserve, self.remaining
            ),
            format!("closed until         {}", or_dash(&self.closed_until)),
            format!("next reset           {}", self.next_reset),
            format!("last request         {}", or_dash(&self.last_request)),
            format!(
                "pace                 {}; next request after {}",
                self.pace_seconds
                    .map_or("-".into(), |s| format!("one per {s:.0} s")),
                or_dash(&self.next_request_after)
            ),
        ];
        for cursor in &self.cursors {
            lines.push(format!(
                "cursor {:<13} {} ({})",
                cursor.source, cursor.time, cursor.value
            ));
        }
        for pending in &self.pending {
            lines.push(format!("pending {:<12} {}", pending.source, pending.ids));
        }
        lines.push(format!("held for device      {} alerts", self.held_alerts));
        for source in &self.sources {
            lines.push(format!(
                "spent {:<14} {} requests today ({:.0} % share)",
                source.source, source.requests_today, source.share_percent
            ));
        }
        for output in &self.outputs {
            lines.push(format!(
                "outbox {:<13} {} undelivered ({})",
                output.name, output.depth, output.address
            ));
        }
        lines.push(format!(
            "refetched in overlap {}; duplicates dropped {}",
            self.overlap_refetches, self.duplicates_dropped
        ));
        lines.join("\n")
    }
}
