//! The `sim` subcommand: run the simulator on a TCP port until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::{DeviceRates, Model, SimSettings, Since, TimelineShape, serve};
use crate::api::License;
use crate::clock::Clock;

/// The key the simulator accepts when no `--api-key` is given.
pub const DEFAULT_API_KEY: &str = "sim-key";

/// Options of the `sim` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// API licence, which sets the daily request limit: demo (5),
    /// developer (50) or enterprise (5000).
    #[arg(long, default_value = "enterprise")]
    pub license: License,

    /// Daily request limit, overriding the licence's.
    #[arg(long, value_name = "N")]
    pub daily_limit: Option<i64>,

    /// API key to accept; repeat for several keys of the organization.
    #[arg(long = "api-key", value_name = "KEY", default_value = DEFAULT_API_KEY)]
    pub api_keys: Vec<String>,

    /// Whether the created and modified filters select records after
    /// the given time or at or after it.
    #[arg(long, value_enum, default_value = "after")]
    pub since: Since,

    /// Seconds the simulator's clock runs ahead of the system clock;
    /// negative runs behind.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub clock_offset: i64,

    /// Devices in the fleet: the API document's five, then generated
    /// ones up to N.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 55,
        value_parser = parse_fleet_size
    )]
    pub devices: usize,

    /// New alerts per hour from the generator; 0 turns it off.
    #[arg(
        long = "alert-rate",
        value_name = "PER_HOUR",
        default_value_t = 60.0,
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub alert_rate_per_hour: f64,

    /// Device up/down events per hour across the fleet [default: the
    /// alert rate].
    #[arg(
        long = "status-rate",
        value_name = "PER_HOUR",
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub status_rate: Option<f64>,

    /// Hostname changes per hour across the fleet [default: the alert
    /// rate / 120].
    #[arg(
        long = "hostname-rate",
        value_name = "PER_HOUR",
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub hostname_rate: Option<f64>,

    /// New devices per hour [default: the alert rate / 240].
    #[arg(
        long = "new-device-rate",
        value_name = "PER_HOUR",
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub new_device_rate: Option<f64>,

    /// Threat flag changes per hour across the fleet [default: the alert
    /// rate / 60].
    #[arg(
        long = "threat-rate",
        value_name = "PER_HOUR",
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub threat_rate: Option<f64>,

    /// Shape of getDeviceTimeline replies.
    #[arg(long, value_enum, default_value = "object")]
    pub timeline_shape: TimelineShape,

    /// Seed of the generator; the same seed gives the same data.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

impl SimArgs {
    /// Builds the model settings these options describe.
    pub fn settings(&self) -> SimSettings {
        let clock = Clock::system().with_offset_ms(self.clock_offset.saturating_mul(1_000));
        let defaults = SimSettings::new(clock);
        SimSettings {
            license: self.license,
            api_keys: self.api_keys.clone(),
            since: self.since,
            fleet_size: Some(self.devices),
            alert_rate_per_hour: self.alert_rate_per_hour,
            device_rates: Some(self.device_rates()),
            timeline_shape: self.timeline_shape,
            seed: self.seed,
            daily_limit: self.daily_limit,
            ..defaults
        }
    }

    /// Returns the rates given, with the defaults scaled to the alert
    /// rate for the others.
    fn device_rates(&self) -> DeviceRates {
        let scaled = DeviceRates::scaled_to(self.alert_rate_per_hour);
        DeviceRates {
            status_changes_per_hour: self.status_rate.unwrap_or(scaled.status_changes_per_hour),
            hostname_changes_per_hour: self
                .hostname_rate
                .unwrap_or(scaled.hostname_changes_per_hour),
            new_devices_per_hour: self.new_device_rate.unwrap_or(scaled.new_devices_per_hour),
            threat_changes_per_hour: self.threat_rate.unwrap_or(scaled.threat_changes_per_hour),
        }
    }
}

/// The document's five devices are always there, so a fleet is at least
/// five devices.
const MIN_FLEET_SIZE: usize = 5;

fn parse_fleet_size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(size) if size >= MIN_FLEET_SIZE => Ok(size),
        _ => Err(format!(
            "invalid fleet size {text:?}: expected a whole number of devices, \
             {MIN_FLEET_SIZE} or more (the API document's devices are always present)"
        )),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "invalid rate {text:?}: expected a number of changes per hour, 0 or more"
        )),
    }
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let settings = args.settings();
    let limit = settings
        .daily_limit
        .unwrap_or_else(|| settings.license.daily_limit());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    let license = license_name(args.license);
    println!(
        "simulator listening on http://{address}/ with the {license} licence \
         ({limit} requests/day)"
    );
    tracing::info!(%address, license, limit, "simulator started");
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    serve(Model::new(settings), listener, cancel).await?;
    tracing::info!("simulator stopped");
    Ok(())
}

/// Returns the licence name as `--license` spells it.
fn license_name(license: License) -> &'static str {
    match license {
        License::Demo => "demo",
        License::Developer => "developer",
        License::Enterprise => "enterprise",
    }
}

async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot watch sigterm, stopping on ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        }
    };
    let signal_name = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(signal = signal_name, "simulator stopping");
    cancel.cancel();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> SimArgs {
        let argv = std::iter::once("sim").chain(args.iter().copied());
        Command::try_parse_from(argv).expect("arguments parse").sim
    }

    #[test]
    fn defaults_match_documentation() {
        let args = parse(&[]);
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(args.license, License::Enterprise);
        assert_eq!(args.api_keys, [DEFAULT_API_KEY]);
        assert_eq!(args.since, Since::After);
        assert_eq!(args.devices, 55);
        assert_eq!(args.daily_limit, None);
        assert_eq!(args.timeline_shape, TimelineShape::Object);
        let settings = args.settings();
        assert_eq!(settings.fleet_size, Some(55));
        assert_eq!(settings.device_rates, Some(DeviceRates::scaled_to(60.0)));
    }

    #[test]
    fn device_options_set_fleet_rates_and_shape() {
        let args = parse(&[
            "--devices",
            "5000",
            "--threat-rate",
            "0",
            "--new-device-rate",
            "2.5",
            "--timeline-shape",
            "wrapped-events",
        ]);
        let settings = args.settings();
        let rates = settings.device_rates.expect("rates");
        assert_eq!(settings.fleet_size, Some(5_000));
        assert_eq!(rates.threat_changes_per_hour, 0.0);
        assert_eq!(rates.new_devices_per_hour, 2.5);
        assert_eq!(rates.status_changes_per_hour, 60.0);
        assert_eq!(settings.timeline_shape, TimelineShape::WrappedEvents);
    }

    #[test]
    fn bad_fleet_size_and_rate_are_rejected() {
        let cases: [&[&str]; 4] = [
            &["--devices", "4"],
            &["--devices", "many"],
            &["--hostname-rate", "-1"],
            &["--alert-rate", "NaN"],
        ];
        for args in cases {
            let argv = std::iter::once("sim").chain(args.iter().copied());
            let error = match Command::try_parse_from(argv) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(error) => error.to_string(),
            };
            assert!(error.contains("invalid"), "{args:?}: {error}");
        }
    }

    #[test]
    fn options_parse_negative_offset_and_repeated_keys() {
        let args = parse(&[
            "--clock-offset",
            "-300",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--license",
            "demo",
            "--since",
            "at-or-after",
            "--daily-limit",
            "3",
        ]);
        assert_eq!(args.clock_offset, -300);
        assert_eq!(args.api_keys, ["a", "b"]);
        assert_eq!(args.license, License::Demo);
        assert_eq!(args.since, Since::AtOrAfter);
        assert_eq!(args.settings().daily_limit, Some(3));
    }
}
