//! The config file: the shipped example, and the errors a broken file
//! gets from `check-config`.

use std::path::Path;
use std::process::Command;

use iotsecure_forwarder::config;

const EXAMPLE: &str = include_str!("../config/iotsecure-forwarder.toml");

#[test]
fn example_config_is_valid() {
    let settings = config::parse(Path::new("config/iotsecure-forwarder.toml"), EXAMPLE)
        .expect("the example config validates");
    assert_eq!(settings.outputs.len(), 1);
    assert_eq!(settings.quota.daily_limit, 5_000);
    assert_eq!(settings.alerts.min_poll_interval.as_secs(), 10);
}

#[test]
fn sync_interval_follows_licence_unless_set() {
    let output = "[[output]]\nname = \"siem\"\naddress = \"127.0.0.1:514\"\nprotocol = \"tcp\"\n";
    let path = Path::new("/etc/iotsecure-forwarder/x.toml");
    let quota = config::parse(path, output).expect("validates").quota;
    let hours = |allowed: i64| quota.sync_every(allowed).as_secs_f64() / 3600.0;
    assert_eq!(hours(5_000), 6.0);
    assert!((hours(50) - 9.6).abs() < 1e-9, "{}", hours(50));
    assert_eq!(hours(5), 96.0);

    let set = format!("[quota]\nsync_interval = \"1h\"\n\n{output}");
    let quota = config::parse(path, &set).expect("validates").quota;
    assert_eq!(quota.sync_every(5).as_secs(), 3_600);
}

#[test]
fn example_config_sets_every_default() {
    // Parsing an empty file plus one output must give what the example
    // spells out, so the example documents the real defaults.
    let minimal = "[[output]]\nname = \"siem\"\naddress = \"127.0.0.1:514\"\nprotocol = \"tcp\"\n";
    let path = Path::new("/etc/iotsecure-forwarder/x.toml");
    let defaults = config::parse(path, minimal).expect("minimal config validates");
    let example = config::parse(path, EXAMPLE).expect("example validates");
    assert_eq!(
        format!("{:?}", defaults.alerts),
        format!("{:?}", example.alerts)
    );
    assert_eq!(
        format!("{:?}", defaults.quota),
        format!("{:?}", example.quota)
    );
    assert_eq!(
        format!("{:?}", defaults.outputs),
        format!("{:?}", example.outputs)
    );
    assert_eq!(
        format!("{:?}", defaults.format),
        format!("{:?}", example.format)
    );
    assert_eq!(defaults.timeline, example.timeline);
    assert_eq!(defaults.service, example.service);
    assert_eq!(
        format!("{:?}", defaults.devices),
        format!("{:?}", example.devices)
    );
    assert_eq!(
        format!("{:?}", defaults.enrichment),
        format!("{:?}", example.enrichment)
    );
    assert_eq!(defaults.state.path, example.state.path);
    assert_eq!(defaults.api.url, example.api.url);
}

fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env("IOTSECURE_API_KEY", "test-key")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

const OUTPUT: &str = "[[output]]\nname = \"a\"\naddress = \"127.0.0.1:514\"\nprotocol = \"tcp\"\n";

#[test]
fn unknown_key_names_file_line_and_key() {
    let text =
        format!("[alerts]\nmin_poll_interval = \"30s\"\nmin_poll_intervall = \"5s\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:3:1"), "{stderr}");
    assert!(stderr.contains("alerts.min_poll_intervall"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn wrong_type_names_file_line_and_key() {
    let text = format!("{OUTPUT}max_message_bytes = \"big\"\n");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:5:"), "{stderr}");
    assert!(stderr.contains("output[0].max_message_bytes"), "{stderr}");
}

#[test]
fn invalid_value_names_file_line_and_key() {
    let text = format!("[format]\nsyslog = \"rfc9999\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:2:1"), "{stderr}");
    assert!(stderr.contains("format.syslog"), "{stderr}");
    assert!(stderr.contains("rfc5424"), "{stderr}");
}

#[test]
fn invalid_duration_names_the_key() {
    let text = format!("[alerts]\nstart_from = \"yesterday\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
    assert!(stderr.contains("alerts.start_from"), "{stderr}");
}

#[test]
fn short_enrichment_ttl_names_file_line_and_key() {
    let text = format!("[enrichment]\nttl = \"5s\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:2:1"), "{stderr}");
    assert!(stderr.contains("enrichment.ttl"), "{stderr}");
    assert!(stderr.contains("at least 1m"), "{stderr}");
}

#[test]
fn blank_device_filter_names_the_key() {
    let text = format!("[devices]\ncategory = \"  \"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:2:1"), "{stderr}");
    assert!(stderr.contains("devices.category"), "{stderr}");
}

#[test]
fn device_filters_reach_settings() {
    let text = format!(
        "[devices]\ncategory = \" Medical Device \"\ntype = \"ECG\"\nthreat = true\n{OUTPUT}"
    );
    let settings = config::parse(Path::new("x.toml"), &text).expect("validates");
    let filter = &settings.devices.filter;
    assert_eq!(filter.category.as_deref(), Some("Medical Device"));
    assert_eq!(filter.device_type.as_deref(), Some("ECG"));
    assert_eq!(filter.threat, Some(true));
}

#[test]
fn missing_output_is_rejected() {
    let (code, stderr) = check_config("[alerts]\nenabled = true\n");
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("[[output]]"), "{stderr}");
}

#[test]
fn valid_config_passes() {
    let (code, stderr) = check_config(OUTPUT);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn missing_required_key_names_the_output() {
    let text = "[[output]]\nname = \"a\"\nprotocol = \"tcp\"\n";
    let (code, stderr) = check_config(text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("output[0].address"), "{stderr}");
    assert!(stderr.contains("add it"), "{stderr}");
}

#[test]
fn invalid_host_is_rejected() {
    for address in ["300.1.1.1:514", "exa mple:514", "host:0", "[::1:514"] {
        let text = format!("[[output]]\nname = \"a\"\naddress = \"{address}\"\n");
        let (code, stderr) = check_config(&text);
        assert_eq!(code, 78, "{address}: {stderr}");
        assert!(stderr.contains("output[0].address"), "{address}: {stderr}");
    }
}

#[test]
fn valid_hosts_pass() {
    for address in ["[::1]:514", "siem.example.org:6514", "10.0.0.1:601"] {
        let text = format!("[[output]]\nname = \"a\"\naddress = \"{address}\"\n");
        let (code, stderr) = check_config(&text);
        assert_eq!(code, 0, "{address}: {stderr}");
    }
}

#[test]
fn missing_key_file_names_its_line() {
    let text = format!("[api]\n\napi_key_file = \"nowhere\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("bad.toml:3:1"), "{stderr}");
    assert!(stderr.contains("api.api_key_file"), "{stderr}");
}

#[test]
fn unknown_facility_lists_the_names() {
    let text = format!("[format]\nfacility = \"local9\"\n{OUTPUT}");
    let (code, stderr) = check_config(&text);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("\"local9\""), "{stderr}");
    assert!(!stderr.contains("Name("), "{stderr}");
}

const MINIMAL_OUTPUT: &str =
    "[[output]]\nname = \"siem\"\naddress = \"127.0.0.1:514\"\nprotocol = \"tcp\"\n";

fn parse_timeline(table: &str) -> Result<config::Settings, config::ConfigError> {
    let text = format!("[timeline]\n{table}\n{MINIMAL_OUTPUT}");
    config::parse(Path::new("/etc/iotsecure-forwarder/t.toml"), &text)
}

#[test]
fn timeline_defaults() {
    let settings = parse_timeline("").expect("validates");
    let timeline = settings.timeline;
    assert!(timeline.enabled);
    assert_eq!(timeline.policy, config::TimelinePolicy::Alerted);
    assert_eq!(timeline.alerted_days, 7);
    assert_eq!(timeline.min_interval.as_secs(), 3600);
    assert_eq!(timeline.max_hours, 24);
}

#[test]
fn timeline_list_normalizes_macs() {
    let table = "policy = \"list\"\ndevices = [\"00-40-17-6c-00-00\", \" 00:40:17:6C:00:01\", \"00:40:17:6C:00:00\"]";
    let settings = parse_timeline(table).expect("validates");
    assert_eq!(
        settings.timeline.policy,
        config::TimelinePolicy::List(vec![
            "00:40:17:6C:00:00".to_owned(),
            "00:40:17:6C:00:01".to_owned()
        ])
    );
}

#[test]
fn timeline_invalid_mac_is_named() {
    let table = "policy = \"list\"\ndevices = [\"00:40:17:6C:00\"]";
    let error = parse_timeline(table).expect_err("rejected").to_string();
    assert!(
        error.contains("t.toml:3:1: key timeline.devices"),
        "{error}"
    );
    assert!(error.contains("\"00:40:17:6C:00\""), "{error}");
}

#[test]
fn timeline_rejects_bad_values() {
    let cases = [
        ("policy = \"some\"", "timeline.policy"),
        ("policy = \"list\"", "timeline.devices"),
        ("devices = [\"00:40:17:6C:00:00\"]", "timeline.devices"),
        ("alerted_days = 0", "timeline.alerted_days"),
        ("min_interval = \"10s\"", "timeline.min_interval"),
        ("max_hours = 0", "timeline.max_hours"),
        ("share = 0.5", "share"),
    ];
    for (table, key) in cases {
        let error = parse_timeline(table).expect_err(table).to_string();
        assert!(error.contains(key), "{table}: {error}");
    }
}

/// Runs `check-config` on `text` in a fresh folder with the API key
/// sources that `setup` creates there: files, and variables to set.
/// Every key source the test does not set is removed.
fn check_key(text: &str, setup: impl Fn(&Path) -> Vec<(&'static str, String)>) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("forwarder.toml");
    std::fs::write(&path, text).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"));
    command
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("IOTSECURE_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY");
    for (name, value) in setup(dir.path()) {
        command.env(name, value);
    }
    let output = command.output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

const KEY: &str = "k3y-7d1e0b";

fn write_key(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

const READABLE_WARNING: &str = "can be read by group or others";

#[test]
fn key_file_is_read() {
    let text = format!("[api]\napi_key_file = \"api-key\"\n{OUTPUT}");
    let (code, stderr) = check_key(&text, |dir| {
        write_key(&dir.join("api-key"), &format!("{KEY}\n"), 0o600);
        vec![]
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(READABLE_WARNING), "{stderr}");
}

#[test]
fn key_file_readable_by_others_warns() {
    let text = format!("[api]\napi_key_file = \"api-key\"\n{OUTPUT}");
    for mode in [0o640, 0o604] {
        let (code, stderr) = check_key(&text, |dir| {
            write_key(&dir.join("api-key"), KEY, mode);
            vec![]
        });
        assert_eq!(code, 0, "{mode:o}: {stderr}");
        assert!(stderr.contains("WARN"), "{mode:o}: {stderr}");
        assert!(stderr.contains(READABLE_WARNING), "{mode:o}: {stderr}");
        assert!(stderr.contains("chmod 600"), "{mode:o}: {stderr}");
        assert!(!stderr.contains(KEY), "{mode:o}: {stderr}");
    }
}

#[test]
fn empty_key_file_is_rejected() {
    let text = format!("[api]\napi_key_file = \"api-key\"\n{OUTPUT}");
    let (code, stderr) = check_key(&text, |dir| {
        write_key(&dir.join("api-key"), " \n", 0o600);
        vec![]
    });
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("forwarder.toml:2:1"), "{stderr}");
    assert!(stderr.contains("api-key is empty"), "{stderr}");
}

#[test]
fn key_file_with_two_lines_is_rejected() {
    let text = format!("[api]\napi_key_file = \"api-key\"\n{OUTPUT}");
    let (code, stderr) = check_key(&text, |dir| {
        write_key(&dir.join("api-key"), &format!("{KEY}\n{KEY}\n"), 0o600);
        vec![]
    });
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("the key alone on one line"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[test]
fn key_comes_from_systemd_credential() {
    let (code, stderr) = check_key(OUTPUT, |dir| {
        let credentials = dir.join("credentials");
        std::fs::create_dir(&credentials).expect("credentials folder");
        write_key(&credentials.join("api-key"), KEY, 0o400);
        let variable = ("CREDENTIALS_DIRECTORY", credentials.display().to_string());
        vec![variable]
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(READABLE_WARNING), "{stderr}");
}

#[test]
fn credential_goes_before_environment() {
    // The credential is empty, so its error shows that it was read even
    // though the environment variable contains a key.
    let (code, stderr) = check_key(OUTPUT, |dir| {
        let credentials = dir.join("credentials");
        std::fs::create_dir(&credentials).expect("credentials folder");
        write_key(&credentials.join("api-key"), "", 0o400);
        vec![
            ("CREDENTIALS_DIRECTORY", credentials.display().to_string()),
            ("IOTSECURE_API_KEY", KEY.to_owned()),
        ]
    });
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("credentials/api-key is empty"), "{stderr}");
}

#[test]
fn key_comes_from_named_environment_variable() {
    let text = format!("[api]\napi_key_env = \"ACME_IOT_KEY\"\n{OUTPUT}");
    let (code, stderr) = check_key(&text, |_| vec![("ACME_IOT_KEY", KEY.to_owned())]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = check_key(&text, |_| vec![("IOTSECURE_API_KEY", KEY.to_owned())]);
    assert_eq!(code, 78, "the default variable is not read: {stderr}");
    assert!(stderr.contains("ACME_IOT_KEY"), "{stderr}");
}

#[test]
fn empty_environment_key_is_rejected() {
    let (code, stderr) = check_key(OUTPUT, |_| vec![("IOTSECURE_API_KEY", "  ".to_owned())]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("environment variable IOTSECURE_API_KEY is empty"),
        "{stderr}"
    );
}

#[test]
fn environment_key_with_space_is_rejected() {
    let value = format!("{KEY} {KEY}");
    let (code, stderr) = check_key(OUTPUT, |_| vec![("IOTSECURE_API_KEY", value.clone())]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("must contain the key alone"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[test]
fn missing_key_names_every_source() {
    let (code, stderr) = check_key(OUTPUT, |_| vec![]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("no API key"), "{stderr}");
    assert!(stderr.contains("api.api_key_file"), "{stderr}");
    assert!(stderr.contains("LoadCredential=api-key:"), "{stderr}");
    assert!(stderr.contains("IOTSECURE_API_KEY"), "{stderr}");
}

#[test]
fn key_is_not_accepted_as_an_argument() {
    for flag in ["--api-key", "--apikey", "--key"] {
        let output = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
            .args(["run", "--config", "/nonexistent.toml", flag, KEY])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains("unexpected argument"), "{flag}: {stderr}");
    }
}
