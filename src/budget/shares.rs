//! How the day's requests are divided between the sources.
//!
//! The alert source comes first: its list and detail requests take any
//! token the pacer grants while it has work. The device inventory and
//! the timeline run in the gaps, each held to its share of the day so
//! far, and the alert source plans its list interval without the
//! requests the others are entitled to and expect to use.
//!
//! A share a source leaves unused flows to the others. The alert plan
//! reserves for a background source only what that source expects to
//! spend, and a background source may go past its share when no other
//! source can use the token.

use serde::Serialize;

/// The sources that spend requests, in priority order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Alerts,
    Devices,
    Timeline,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [
        SourceKind::Alerts,
        SourceKind::Devices,
        SourceKind::Timeline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Alerts => "alerts",
            SourceKind::Devices => "devices",
            SourceKind::Timeline => "timeline",
        }
    }
}

/// Each source's fraction of the day's requests; they add up to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shares {
    alerts: f64,
    devices: f64,
    timeline: f64,
}

impl Shares {
    /// Builds shares from weights in any unit (percent in the config).
    /// Returns `None` when the weights are negative, not finite, or all
    /// zero.
    pub fn from_weights(alerts: f64, devices: f64, timeline: f64) -> Option<Shares> {
        let weights = [alerts, devices, timeline];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return None;
        }
        let total: f64 = weights.iter().sum();
        (total > 0.0).then(|| Shares {
            alerts: alerts / total,
            devices: devices / total,
            timeline: timeline / total,
        })
    }

    pub fn of(&self, source: SourceKind) -> f64 {
        match source {
            SourceKind::Alerts => self.alerts,
            SourceKind::Devices => self.devices,
            SourceKind::Timeline => self.timeline,
        }
    }
}

impl Default for Shares {
    /// Alerts 94 %, devices 4 % (the inventory and the devices of held
    /// alerts), timeline 2 %. A background source costs the alert list
    /// plan at most its share, so small shares keep alert delay within a
    /// tenth of what it is without them.
    fn default() -> Self {
        Shares {
            alerts: 0.94,
            devices: 0.04,
            timeline: 0.02,
        }
    }
}

/// Requests out of `remaining` that the alert plan leaves to the
/// background sources: for each, its share of `remaining`, or what it
/// expects to spend for the rest of the day when that is less.
/// `demand` gives the expected requests per background source; a
/// disabled source expects none.
pub fn reserved_for_background(
    shares: &Shares,
    remaining: f64,
    demand: &[(SourceKind, f64)],
) -> f64 {
    demand
        .iter()
        .filter(|(source, _)| *source != SourceKind::Alerts)
        .map(|(source, wanted)| (shares.of(*source) * remaining).min(wanted.max(0.0)))
        .sum()
}

/// Checks whether a background source that spent `used` requests today is
/// still within its share at `day_fraction` (0 at 00:00 UTC, 1 at the
/// end of the day) of a day with `allowed` requests. It may run one
/// hour's worth of its share ahead of the even pace. On a small licence
/// a small share can stay below one request all day: the Demo licence's
/// five requests go to alerts.
pub fn within_share(
    shares: &Shares,
    source: SourceKind,
    used: i64,
    allowed: i64,
    day_fraction: f64,
) -> bool {
    let share = shares.of(source);
    if share <= 0.0 {
        return false;
    }
    let ahead = 1.0 / 24.0;
    let entitled = share * allowed as f64 * (day_fraction.clamp(0.0, 1.0) + ahead).min(1.0);
    (used as f64) + 1.0 <= entitled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalized() {
        let shares = Shares::from_weights(80.0, 5.0, 15.0).expect("valid");
        assert!((shares.of(SourceKind::Alerts) - 0.8).abs() < 1e-9);
        assert!((shares.of(SourceKind::Timeline) - 0.15).abs() < 1e-9);
        assert!(Shares::from_weights(0.0, 0.0, 0.0).is_none());
        assert!(Shares::from_weights(-1.0, 5.0, 5.0).is_none());
        assert!(Shares::from_weights(f64::NAN, 5.0, 5.0).is_none());
    }

    #[test]
    fn reserve_is_share_or_demand_whichever_is_less() {
        let shares = Shares::from_weights(80.0, 5.0, 15.0).expect("valid");
        let demand = [
            (SourceKind::Devices, 10.0),
            (SourceKind::Timeline, 10_000.0),
        ];
        // Devices want 10 of their 50; the timeline is capped at 150.
        let reserved = reserved_for_background(&shares, 1000.0, &demand);
        assert!((reserved - 160.0).abs() < 1e-9, "{reserved}");
        assert_eq!(reserved_for_background(&shares, 1000.0, &[]), 0.0);
    }

    #[test]
    fn background_share_follows_the_day() {
        let shares = Shares::from_weights(90.0, 0.0, 10.0).expect("valid");
        // 10 % of 4,800 is 480 a day, 20 an hour: at noon 240 + 20.
        assert!(within_share(&shares, SourceKind::Timeline, 259, 4_800, 0.5));
        assert!(!within_share(
            &shares,
            SourceKind::Timeline,
            260,
            4_800,
            0.5
        ));
        // 10 % of five requests never adds up to one.
        assert!(!within_share(&shares, SourceKind::Timeline, 0, 5, 0.99));
        assert!(!within_share(&shares, SourceKind::Devices, 0, 4_800, 0.5));
    }
}
