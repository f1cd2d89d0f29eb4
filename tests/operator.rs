//! The operator commands against the simulator over HTTP:
//! `check-config --online` and `api ACTION [name=value ...]`. Each
//! request they send is counted in the state database's ledger.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use iotsecure_forwarder::api::License;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{Model, SimSettings, Since};

/// A config for the simulator at `api` with `extra` appended, in a
/// fresh folder.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(api: std::net::SocketAddr, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    // No command here connects to the output.
    let siem = std::net::SocketAddr::from(([127, 0, 0, 1], 514));
    let outputs = common::output("siem", siem, "tcp", "lf");
    common::settings(
        dir.path(),
        &format!("http://{api}/"),
        &format!("{extra}\n{outputs}"),
    );
    let config = dir.path().join("forwarder.toml");
    Setup { dir, config }
}

fn forwarder(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("command runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Requests the ledger counted today, read with `status --json`.
fn ledger_used(config: &Path) -> i64 {
    let output = forwarder(config, &["status", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    status["used"].as_i64().expect("used")
}

async fn simulator() -> (
    Model,
    std::net::SocketAddr,
    tokio_util::sync::CancellationToken,
) {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, stop) = common::serve(&model).await;
    (model, api, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_reports_key_and_counts() {
    let (model, api, _sim) = simulator().await;
    let setup = setup(api, "");

    let output = forwarder(&setup.config, &["check-config", "--online"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("daily limit          5000"), "{stdout}");
    assert!(stdout.contains("requests today, ours 1"), "{stdout}");
    assert_eq!(model.requests_today(), 1, "one getAPIKey");
    assert_eq!(ledger_used(&setup.config), 1, "counted in the ledger");
    assert!(!stdout.contains(common::KEY), "key printed: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_invalid_key_exits_77() {
    let (_model, api, _sim) = simulator().await;
    let setup = setup(api, "");
    std::fs::write(setup.dir.path().join("api-key"), "wrong-key-0000").expect("write key");

    let output = forwarder(&setup.config, &["check-config", "--online"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("invalid"), "{stderr}");
    assert!(
        stderr.contains("api.api_key_file"),
        "says what to fix: {stderr}"
    );
    assert!(!stderr.contains("wrong-key-0000"), "key printed: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_unreachable_api_exits_69() {
    let (_model, api, sim) = simulator().await;
    let setup = setup(api, "");
    sim.cancel();
    // Let the listener close before the command connects.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let output = forwarder(&setup.config, &["check-config", "--online"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("api.url"), "says what to check: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_prints_reply_and_counts() {
    let (model, api, _sim) = simulator().await;
    let setup = setup(api, "");

    let output = forwarder(&setup.config, &["api", "getAPIKey"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(reply["request_limit"].is_number(), "{reply}");

    let output = forwarder(
        &setup.config,
        &["api", "listDevices", "type=Logic Controller"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let queries = model.raw_queries();
    let last = queries.last().expect("a query");
    assert!(last.contains("type=Logic%20Controller"), "{last}");

    assert_eq!(ledger_used(&setup.config), 2, "both counted in the ledger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_masks_listed_keys() {
    let (_model, api, _sim) = simulator().await;
    let setup = setup(api, "");

    let output = forwarder(&setup.config, &["api", "listAPIKeys"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!stdout.contains(common::KEY), "key printed: {stdout}");
    assert!(stdout.contains("***"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rejects_call_when_budget_spent() {
    let (model, api, _sim) = simulator().await;
    let setup = setup(api, "[quota]\ndaily_limit = 1\nsync = false\n");

    let first = forwarder(&setup.config, &["api", "countAlerts"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = forwarder(&setup.config, &["api", "countAlerts"]);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("budget is spent"), "{stderr}");
    assert_eq!(model.requests_today(), 1, "the second call was not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_unknown_action_exits_64() {
    let (model, api, _sim) = simulator().await;
    let setup = setup(api, "");

    let output = forwarder(&setup.config, &["api", "listAlert"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("listAlerts"), "lists the actions: {stderr}");
    assert_eq!(model.requests_today(), 0, "nothing sent");
}

/// The server reports a daily limit no larger than `quota.reserve`: the
/// next call is refused with an error that names the setting and the
/// fix, and exits 78 like any other config error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_above_limit_names_setting() {
    let mut settings = SimSettings::new(Clock::system());
    settings.api_keys = vec![common::KEY.to_owned()];
    settings.license = License::Developer;
    let model = Model::new(settings);
    let (api, _sim) = common::serve(&model).await;
    // Valid against the configured Enterprise limit of 5,000.
    let setup = setup(api, "[quota]\nlicense = \"enterprise\"\nreserve = 100\n");

    // The check itself reports it, from the limit getAPIKey returns.
    let check = forwarder(&setup.config, &["check-config", "--online"]);
    let stderr = text(&check.stderr);
    assert_eq!(check.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("set quota.reserve below 50"), "{stderr}");
    let refused = forwarder(&setup.config, &["api", "countAlerts"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("quota.reserve (100)"), "{stderr}");
    assert!(stderr.contains("daily limit (50)"), "{stderr}");
    assert!(stderr.contains("set quota.reserve below 50"), "{stderr}");
    assert_eq!(model.requests_today(), 1, "only the getAPIKey was sent");
}

/// After the API reported the organization's limit reached, the next
/// call is not sent and its error gives the reopening time, and `status`
/// shows nothing left until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_day_shows_in_api_and_status() {
    let (model, api, _sim) = simulator().await;
    let setup = setup(api, "[quota]\nsync = false\n");
    // Another tool spends the organization's requests.
    model.spend(model.daily_limit());

    let refused = forwarder(&setup.config, &["api", "countAlerts"]);
    assert_eq!(refused.status.code(), Some(75), "{}", text(&refused.stderr));
    let after = forwarder(&setup.config, &["api", "countAlerts"]);
    let stderr = text(&after.stderr);
    assert_eq!(after.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("day is closed until"), "{stderr}");
    assert_eq!(model.limit_replies(), 1, "the second call was not sent");

    let output = forwarder(&setup.config, &["status", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(status["remaining"], 0, "{status:#}");
    assert_eq!(
        status["next_request_after"], status["closed_until"],
        "{status:#}"
    );
}
