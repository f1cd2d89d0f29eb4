//! Quota benchmark: simulated days in virtual time, comparing this
//! crate's forwarder with a fixed-interval poller on the same alert
//! changes, and printing Markdown tables.
//!
//! Per scenario and poller: requests per UTC day, the simulator's
//! "limit reached" replies, the delay from an alert's modification to
//! its storage in the outbox, and the longest time without a request.
//! `docs/benchmarks.md` explains the method and records results.
//!
//! Run with `cargo bench --bench quota`; add a scenario name, or part
//! of one, to run only matching scenarios. With `QUOTA_HOURLY` set in
//! the environment, the forwarder's requests per hour and action, and
//! its mean delay per hour in which the changes were made, go to
//! stderr. `QUOTA_SEED` draws the changes from another seed.

// A crate root looks for modules next to itself, so name the folder.
#[path = "quota/fixed.rs"]
mod fixed;
#[path = "quota/forwarder.rs"]
mod forwarder;
#[path = "quota/load.rs"]
mod load;
#[path = "quota/stats.rs"]
mod stats;

use std::path::Path;

use iotsecure_forwarder::api::License;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config::{self, Settings};
use iotsecure_forwarder::sim::{Model, SimSettings, Since};

use load::{Burst, Scenario};
use stats::Figures;

const API_KEY: &str = "bench-key-7d41e0";

/// Seed of every scenario's change schedule, unless `QUOTA_SEED` sets
/// another.
const SEED: u64 = 7;

/// 40 % of each day's changes within 14:00-15:00 UTC.
const BURST: Burst = Burst {
    share: 0.4,
    extra: 0,
    hour: 14,
    from_day: 0,
};

/// 500 changes added to each day within 14:00-15:00 UTC, a tenth of
/// the Enterprise quota: an incident hour that the fixed poller's
/// interval, set for the usual day, does not foresee.
const SURGE: Burst = Burst {
    share: 0.0,
    extra: 500,
    hour: 14,
    from_day: 0,
};

/// The surge on the third day of a run only.
const SURGE_DAY3: Burst = Burst {
    from_day: 2,
    ..SURGE
};

fn scenarios() -> Vec<Scenario> {
    let enterprise = |name, changes_per_day, burst| Scenario {
        name,
        license: License::Enterprise,
        changes_per_day,
        burst,
        days: 2,
        warmup_days: 0,
        fleet: 5,
    };
    // Three days, of which only the third is counted.
    let third_day = |name, changes_per_day, burst| Scenario {
        name,
        days: 3,
        warmup_days: 2,
        ..enterprise(name, changes_per_day, Some(burst))
    };
    vec![
        enterprise("enterprise-500", 500, None),
        enterprise("enterprise-500-burst", 500, Some(BURST)),
        enterprise("enterprise-2000", 2_000, None),
        enterprise("enterprise-2000-burst", 2_000, Some(BURST)),
        enterprise("enterprise-4000", 4_000, None),
        enterprise("enterprise-4000-burst", 4_000, Some(BURST)),
        enterprise("enterprise-500-surge", 500, Some(SURGE)),
        enterprise("enterprise-2000-surge", 2_000, Some(SURGE)),
        enterprise("enterprise-4000-surge", 4_000, Some(SURGE)),
        // The same load after two days the forwarder has seen, so its
        // hourly profile contains the burst hour.
        third_day("enterprise-4000-burst-day3", 4_000, BURST),
        // A surge after two usual days: the forwarder's profile and the
        // fixed poller's interval both know the usual day.
        third_day("enterprise-500-surge-day3", 500, SURGE_DAY3),
        third_day("enterprise-2000-surge-day3", 2_000, SURGE_DAY3),
        third_day("enterprise-4000-surge-day3", 4_000, SURGE_DAY3),
        Scenario {
            name: "developer-20",
            license: License::Developer,
            changes_per_day: 20,
            burst: None,
            days: 3,
            warmup_days: 0,
            fleet: 5,
        },
        Scenario {
            name: "demo-2",
            license: License::Demo,
            changes_per_day: 2,
            burst: None,
            days: 4,
            warmup_days: 0,
            fleet: 5,
        },
        // The device sources on a large fleet: the timeline coverage and
        // the alert delay beside them.
        Scenario {
            name: "enterprise-500-fleet-5000",
            fleet: 5_000,
            ..enterprise("", 500, None)
        },
    ]
}

/// A simulator with no generated and no built-in alerts, so every
/// change is one the scenario injected. The document's sample alerts
/// would otherwise be listed at the first start, which reaches back a
/// day, and cost a Demo licence more than a day of requests.
fn model(clock: Clock, license: License, fleet: usize) -> Model {
    let mut settings = SimSettings::new(clock);
    settings.api_keys = vec![API_KEY.to_owned()];
    settings.license = license;
    settings.since = Since::After;
    settings.devices = 5;
    settings.fleet_size = Some(fleet);
    settings.alert_rate_per_hour = 0.0;
    let model = Model::new(settings);
    for id in model.alert_ids() {
        model.remove_alert(&id);
    }
    model
}

/// Builds the forwarder's settings: defaults except the licence, alerts only
/// on the document's five devices, and the device sources with the
/// timeline of every device on a larger fleet. The output is never
/// opened, because the benchmark polls without delivering.
fn settings(dir: &Path, license: License, fleet: usize) -> Settings {
    std::fs::write(dir.join("api-key"), API_KEY).expect("write key file");
    let name = format!("{license:?}").to_lowercase();
    // Like the fixed-interval poller, the forwarder polls alerts only,
    // except on the large fleet, which measures the device sources.
    let timeline = if fleet > 5 {
        "[timeline]\npolicy = \"all\"\n\n"
    } else {
        "[devices]\nenabled = false\n\n[timeline]\nenabled = false\n\n\
         [enrichment]\nenabled = false\n\n"
    };
    let text = format!(
        "[api]\nurl = \"http://127.0.0.1:9/\"\napi_key_file = \"api-key\"\n\n\
         [state]\npath = \"state.db\"\n\n[quota]\nlicense = \"{name}\"\n\n{timeline}\
         [[output]]\nname = \"none\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n"
    );
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, &text).expect("write config");
    config::parse(&path, &text).expect("bench config validates")
}

/// A state folder on tmpfs where there is one: a run commits tens of
/// thousands of transactions, and fsync on a disk would dominate.
fn state_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let seed = match std::env::var("QUOTA_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("QUOTA_SEED={text:?} is not a whole number")),
        Err(_) => SEED,
    };
    let hourly = std::env::var_os("QUOTA_HOURLY").is_some();
    for scenario in scenarios() {
        if !filter.is_empty() && !filter.iter().any(|f| scenario.name.contains(f.as_str())) {
            continue;
        }
        let changes = load::schedule(&scenario, seed);
        let run = forwarder::run(&scenario, &changes);
        let ours = stats::figures(&scenario, &changes, &run);
        let baseline = stats::figures(&scenario, &changes, &fixed::run(&scenario, &changes));
        if hourly {
            print_delay_by_hour(&ours);
        }
        print_scenario(&scenario, &ours, &baseline);
        if scenario.fleet > 5 {
            print_coverage(&scenario, &run);
        }
    }
}

/// Prints when the forwarder's longest gap began, and its mean delay per
/// hour of the run in which the changes were made, with that hour's part
/// of the summed delay.
fn print_delay_by_hour(figures: &Figures) {
    let from_s = figures.blind_from_ms / 1_000;
    eprintln!(
        "longest gap: {:.0} s from day {} {:02}:{:02}:{:02}",
        figures.blind_s,
        from_s / 86_400,
        from_s / 3_600 % 24,
        from_s / 60 % 60,
        from_s % 60,
    );
    let total: f64 = figures.by_hour.values().map(|(_, sum)| sum).sum();
    for (hour, (count, sum)) in &figures.by_hour {
        eprintln!(
            "day {} hour {:02}: {count} changes, mean delay {:.0} s, {:.1} % of the summed delay",
            hour / 24,
            hour % 24,
            sum / *count as f64,
            100.0 * sum / total.max(1e-9),
        );
    }
}

/// Prints the forwarder's device timeline coverage: `getDeviceTimeline`
/// requests one device, so its requests per day are devices polled.
fn print_coverage(scenario: &Scenario, run: &stats::Run) {
    let per_day: Vec<String> = run
        .timeline_per_day
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "- timeline coverage, devices polled per day (of {}): {}\n",
        scenario.fleet,
        per_day.join(" / ")
    );
}

fn print_scenario(scenario: &Scenario, ours: &Figures, baseline: &Figures) {
    let burst = scenario.burst.map_or("none".to_owned(), |burst| {
        let hour = format!("{:02}:00-{:02}:00 UTC", burst.hour, burst.hour + 1);
        if burst.extra > 0 {
            format!("{} extra changes within {hour}", burst.extra)
        } else {
            format!("{:.0} % within {hour}", burst.share * 100.0)
        }
    });
    println!("### {}\n", scenario.name);
    let warmup = match scenario.warmup_days {
        0 => String::new(),
        days => format!(", changes of the first {days} days not counted"),
    };
    println!(
        "{:?}, {} requests/day, {} changes/day, burst: {burst}, {} days + 1 quiet day{warmup}. \
         List budget B = {}, fixed interval I = {:.1} s, bound = {:.1} s.\n",
        scenario.license,
        scenario.allowed(),
        scenario.changes_per_day,
        scenario.days,
        scenario.list_budget(),
        scenario.fixed_interval_ms() as f64 / 1e3,
        scenario.bound_ms() / 1e3,
    );
    println!(
        "| poller | requests per day | limit hits | counted (superseded, undelivered) \
         | p50 s | p95 s | max s | mean s | mean / bound | blind s | wall s |"
    );
    println!("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    print_row("forwarder", scenario, ours);
    print_row("fixed interval", scenario, baseline);
    println!();
    print_checks(scenario, ours, baseline);
}

fn print_row(name: &str, scenario: &Scenario, figures: &Figures) {
    let per_day: Vec<String> = figures.per_day.iter().map(usize::to_string).collect();
    println!(
        "| {name} | {} | {} | {} ({}, {}) | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} |",
        per_day.join(" / "),
        figures.limit_hits,
        figures.counted,
        figures.superseded,
        figures.undelivered,
        figures.p50_s,
        figures.p95_s,
        figures.max_s,
        figures.mean_s,
        figures.mean_s * 1e3 / scenario.bound_ms(),
        figures.blind_s,
        figures.wall_s,
    );
}

fn print_checks(scenario: &Scenario, ours: &Figures, baseline: &Figures) {
    let verdict = |held: bool| if held { "holds" } else { "MISSED" };
    println!("- zero limit hits: {}", verdict(ours.limit_hits == 0));
    let ratio = ours.mean_s * 1e3 / scenario.bound_ms();
    println!(
        "- mean within 1.25 x bound: {} ({ratio:.2})",
        verdict(ratio <= 1.25)
    );
    if scenario.burst.is_some() {
        let p95 = baseline.p95_s / ours.p95_s.max(1e-3);
        let blind = baseline.blind_s / ours.blind_s.max(1e-3);
        println!(
            "- p95 at least 2x better than fixed: {} ({p95:.2}x)",
            verdict(p95 >= 2.0)
        );
        println!(
            "- blind time at least 2x better than fixed: {} ({blind:.2}x)",
            verdict(blind >= 2.0)
        );
    }
    println!();
}
