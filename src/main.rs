//! The `iotsecure-forwarder` command: parses the arguments, sets up
//! logging, loads the config, and hands over to the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::{ApiError, ErrorKind};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config::{self, ConfigError, Settings};
use iotsecure_forwarder::logging;
use iotsecure_forwarder::service::operator::{self, Operator, RequestError};
use iotsecure_forwarder::service::{self, Forwarder};
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::{listen, sim};

/// Exit codes from sysexits.h. EX_CONFIG also stops the unit file's
/// restarts.
const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;
const EX_NOPERM: u8 = 77;
const EX_CONFIG: u8 = 78;

/// How long the runtime waits for blocking tasks after the command
/// ended, so a stuck DNS lookup cannot hold up the exit.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

#[derive(Parser)]
#[command(
    version,
    about = "Forwards IoT Secure alerts to SIEMs as CEF over syslog"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the API and deliver to every output until SIGTERM or SIGINT.
    Run(ConfigArg),
    /// Run one poll cycle, deliver everything, and exit.
    Once(ConfigArg),
    /// Validate the config file and exit: 0 when valid, 78 when not.
    /// With --online, also call getAPIKey once (counted in the ledger):
    /// 69 when the API cannot be reached, 75 when today's budget is
    /// spent, 77 when the key is invalid.
    CheckConfig(CheckConfigArgs),
    /// Print today's request ledger, pacing, cursors, pending ids and
    /// outbox depth; works while the daemon runs.
    Status(StatusArgs),
    /// Call one API action through the request ledger and print the JSON
    /// reply, such as `api listAlerts modified=1700000000`.
    Api(ApiArgs),
    /// Print each syslog message received on a TCP or UDP address.
    Listen(ListenArgs),
    /// Serve the IoT Secure API simulator.
    Sim(sim::SimArgs),
    /// Run the simulator, the forwarder and a receiver on loopback, and
    /// print what the receiver gets.
    Demo,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Path of the TOML config file.
    #[arg(
        long,
        short,
        default_value = "/etc/iotsecure-forwarder/iotsecure-forwarder.toml"
    )]
    config: PathBuf,
}

#[derive(clap::Args)]
struct CheckConfigArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Also call getAPIKey once and print the licence, limit and usage.
    #[arg(long)]
    online: bool,
}

#[derive(clap::Args)]
struct ApiArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Module of the action: Account, IoTSecurity or LogManagement.
    /// Inferred from the action when not given.
    #[arg(long)]
    module: Option<String>,
    /// Action name, such as getAPIKey, listAlerts or getDevice.
    action: String,
    /// Filters as name=value, such as device_id=00:40:17:6C:00:00.
    /// Spaces in values are sent as %20.
    filters: Vec<String>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ListenArgs {
    /// Accept TCP connections on this address (both RFC 6587 framings).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Receive UDP datagrams on this address.
    #[arg(long)]
    udp: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.command);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Maps an error to its sysexits.h code, so scripts and the unit file
/// can tell a broken config from an API that cannot be reached.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<ConfigError>().is_some() {
        return EX_CONFIG;
    }
    if error.downcast_ref::<RequestError>().is_some() {
        return EX_USAGE;
    }
    if let Some(ApiError::ReserveTakesAll { .. }) = error.downcast_ref::<ApiError>() {
        return EX_CONFIG;
    }
    match error.downcast_ref::<ApiError>().map(ApiError::kind) {
        Some(ErrorKind::InvalidKey) => EX_NOPERM,
        Some(ErrorKind::DayClosed) => EX_TEMPFAIL,
        Some(ErrorKind::Transient | ErrorKind::Permanent) => EX_UNAVAILABLE,
        None => 1,
    }
}

fn init_tracing(format: LogFormat, command: &Command) {
    // The demo's standard output is the received messages; keep its log
    // to warnings unless RUST_LOG requests more.
    let default = if matches!(command, Command::Demo) {
        "warn"
    } else {
        "info"
    };
    let format = match format {
        LogFormat::Text => logging::LogFormat::Text,
        LogFormat::Json => logging::LogFormat::Json,
    };
    logging::init(format, default);
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(&args.config).await,
        Command::Once(args) => once(&args.config).await,
        Command::CheckConfig(args) if args.online => check_online(&args.config.config).await,
        Command::CheckConfig(args) => check_config(&args.config.config).map(|_| ()),
        Command::Api(args) => api_call(args).await,
        Command::Status(args) => status(&args.config.config, args.json),
        Command::Listen(args) => listen_cmd(args).await,
        Command::Sim(args) => sim::run_cli(args).await,
        Command::Demo => service::demo::run(shutdown_on_signal()).await,
    }
}

fn load(path: &Path) -> Result<Settings, ConfigError> {
    config::load(path)
}

async fn open(path: &Path) -> anyhow::Result<Forwarder<iotsecure_forwarder::api::HttpTransport>> {
    let settings = load(path)?;
    let key = config::load_api_key(&settings)?;
    let transport = service::http_transport(&settings, key)?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %path.display(),
        outputs = settings.outputs.len(), "starting");
    let forwarder = Forwarder::open(settings, transport, Clock::system())
        .context("cannot open the state database")?;
    Ok(forwarder)
}

async fn run(path: &Path) -> anyhow::Result<()> {
    // Handlers first: SIGHUP's default action would end the process.
    let shutdown = shutdown_on_signal();
    let reload = reload_on_sighup()?;
    let forwarder = open(path).await?;
    forwarder.run_with_reload(shutdown, reload).await?;
    Ok(())
}

async fn once(path: &Path) -> anyhow::Result<()> {
    let forwarder = open(path).await?;
    forwarder.once().await?;
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<Settings> {
    let settings = load(path)?;
    config::load_api_key(&settings)?;
    print_out(&format!(
        "{}: valid; {} output(s), daily limit {} with {} reserved",
        path.display(),
        settings.outputs.len(),
        settings.quota.daily_limit,
        settings.quota.reserve
    ))?;
    Ok(settings)
}

async fn check_online(path: &Path) -> anyhow::Result<()> {
    let settings = check_config(path)?;
    let operator = open_operator(&settings)?;
    let report = operator.check_key().await.map_err(|error| {
        // The invalid-key error already names the setting to fix.
        let context = match error.kind() {
            ErrorKind::InvalidKey => "the API check failed",
            ErrorKind::DayClosed if matches!(error, ApiError::ReserveTakesAll { .. }) => {
                "the API check failed"
            }
            ErrorKind::DayClosed if matches!(error, ApiError::LimitReached { .. }) => {
                "the API check failed; the organization's requests, other tools' included, are spent: wait for 00:00 UTC"
            }
            ErrorKind::DayClosed => {
                "the API check failed; wait for 00:00 UTC or raise quota.daily_limit"
            }
            ErrorKind::Transient | ErrorKind::Permanent => {
                "the API check failed; check api.url, the network path and any proxy"
            }
        };
        anyhow::Error::new(error).context(context)
    })?;
    print_out(&report.to_text())?;
    Ok(())
}

async fn api_call(args: ApiArgs) -> anyhow::Result<()> {
    let call = operator::build_call(&args.action, args.module.as_deref(), &args.filters)?;
    let settings = load(&args.config.config)?;
    let operator = open_operator(&settings)?;
    let reply = operator.call(&call).await?;
    print_out(&serde_json::to_string_pretty(&reply)?)?;
    Ok(())
}

fn open_operator(
    settings: &Settings,
) -> anyhow::Result<Operator<iotsecure_forwarder::api::HttpTransport>> {
    let key = config::load_api_key(settings)?;
    let transport = service::http_transport(settings, key)?;
    Operator::open(settings, transport, Clock::system()).with_context(|| {
        format!(
            "cannot open the state database {} for its request ledger",
            settings.state.path.display()
        )
    })
}

fn status(path: &Path, json: bool) -> anyhow::Result<()> {
    let settings = load(path)?;
    if !settings.state.path.exists() {
        anyhow::bail!(
            "no state database at {}: has the forwarder run with this config yet?",
            settings.state.path.display()
        );
    }
    let status = service::status::read(&settings, &Clock::system()).with_context(|| {
        format!(
            "cannot read the state database {}",
            settings.state.path.display()
        )
    })?;
    if json {
        print_out(&serde_json::to_string_pretty(&status)?)?;
    } else {
        print_out(&status.to_text())?;
    }
    Ok(())
}

/// Writes `text` and a newline to standard output. A reader that went
/// away early, as `status | head` does, is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;

    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

async fn listen_cmd(args: ListenArgs) -> anyhow::Result<()> {
    let (protocol, addr) = match (args.tcp, args.udp) {
        (Some(addr), _) => (Protocol::Tcp, addr),
        (None, Some(addr)) => (Protocol::Udp, addr),
        (None, None) => anyhow::bail!("give --tcp ADDR or --udp ADDR"),
    };
    let cancel = shutdown_on_signal();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let bound = listen::spawn(protocol, addr, tx, cancel.clone())
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("listening on {protocol:?} {bound}");
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(message) => {
                    // A closed pipe (listen | head) ends the command.
                    let line = listen::render(&message.raw);
                    if writeln!(stdout, "{line}").is_err() {
                        break;
                    }
                }
                None => break,
            },
            () = cancel.cancelled() => break,
        }
    }
    Ok(())
}

/// Returns a token that the first SIGTERM or SIGINT cancels. A second
/// signal exits at once.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "stop requested");
        trigger.cancel();
        let again = wait_for_signal().await;
        tracing::warn!(signal = again, "second signal; exiting at once");
        std::process::exit(130);
    });
    token
}

/// Returns a channel that receives one message per SIGHUP. Signals
/// that arrive while a reload is waiting merge into it.
fn reload_on_sighup() -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let (requests, reload) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reload requested");
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = requests.try_send(()) {
                return;
            }
        }
    });
    Ok(reload)
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default
        // action of each signal.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
