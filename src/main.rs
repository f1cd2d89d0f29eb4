//! The `iotsecure-forwarder` command: parses the arguments, sets up
//! logging, loads the config, and hands over to the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config::{self, ConfigError, Settings};
use iotsecure_forwarder::service::{self, Forwarder};
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::{listen, sim};

/// sysexits.h EX_CONFIG: the unit file stops restarting on it.
const EX_CONFIG: u8 = 78;

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
    /// Validate the config file and exit.
    CheckConfig(ConfigArg),
    /// Print today's request ledger, pacing, cursors, pending ids and
    /// outbox depth; works while the daemon runs.
    Status(StatusArgs),
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(config_error) = error.downcast_ref::<ConfigError>() {
                eprintln!("error: {config_error}");
                return ExitCode::from(EX_CONFIG);
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat, command: &Command) {
    use tracing_subscriber::EnvFilter;
    // The demo's standard output is the received messages; keep its log
    // to warnings unless RUST_LOG requests more.
    let default = if matches!(command, Command::Demo) {
        "warn"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only on a terminal, never in a file or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(&args.config).await,
        Command::Once(args) => once(&args.config).await,
        Command::CheckConfig(args) => check_config(&args.config),
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
    let forwarder = open(path).await?;
    forwarder.run(shutdown_on_signal()).await?;
    Ok(())
}

async fn once(path: &Path) -> anyhow::Result<()> {
    let forwarder = open(path).await?;
    forwarder.once().await?;
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let settings = load(path)?;
    config::load_api_key(&settings)?;
    println!(
        "{}: valid; {} output(s), daily limit {} with {} reserved",
        path.display(),
        settings.outputs.len(),
        settings.quota.daily_limit,
        settings.quota.reserve
    );
    Ok(())
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
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!("{}", status.to_text());
    }
    Ok(())
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
