//! The `sim` subcommand: run the simulator on a TCP port until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::{Model, SimSettings, Since, TimelineShape, serve};
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

    /// Generated devices on top of the API document's five.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub devices: usize,

    /// New alerts per hour from the generator; 0 turns it off.
    #[arg(long = "alert-rate", value_name = "PER_HOUR", default_value_t = 60.0)]
    pub alert_rate_per_hour: f64,

    /// Seed of the generator; the same seed gives the same data.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Layout of getDeviceTimeline replies: object (one member per
    /// event), array, wrapped-event, wrapped-events, wrapped-timeline,
    /// sample (the API document's key) or unknown (a bare string).
    #[arg(long, value_enum, default_value = "object")]
    pub timeline_shape: TimelineShape,
}

impl SimArgs {
    /// Builds the model settings these options describe.
    pub fn settings(&self) -> SimSettings {
        let clock = Clock::system().with_offset_ms(self.clock_offset.saturating_mul(1_000));
        SimSettings {
            license: self.license,
            api_keys: self.api_keys.clone(),
            since: self.since,
            clock,
            devices: self.devices,
            alert_rate_per_hour: self.alert_rate_per_hour,
            seed: self.seed,
            daily_limit: self.daily_limit,
            timeline_shape: self.timeline_shape,
        }
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
        assert_eq!(args.devices, 50);
        assert_eq!(args.daily_limit, None);
        assert_eq!(args.timeline_shape, TimelineShape::Object);
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
            "--timeline-shape",
            "wrapped-events",
        ]);
        assert_eq!(args.clock_offset, -300);
        assert_eq!(args.api_keys, ["a", "b"]);
        assert_eq!(args.license, License::Demo);
        assert_eq!(args.since, Since::AtOrAfter);
        assert_eq!(args.settings().daily_limit, Some(3));
        assert_eq!(args.timeline_shape, TimelineShape::WrappedEvents);
    }
}
