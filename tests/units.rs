//! The shipped systemd units: `systemd-analyze verify` accepts them,
//! `systemd-analyze security --offline=true` rates each at 2.0 or lower,
//! and the template is hardened exactly like the single unit.
//!
//! Without `systemd-analyze` (Debian package `systemd`) the checks that
//! need it print a notice and pass, except under `CI=true`, where they
//! fail.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "iotsecure-forwarder.service";
const TEMPLATE: &str = "iotsecure-forwarder@.service";

/// The path the units run, where the package installs the binary.
const INSTALLED_BINARY: &str = "/usr/bin/iotsecure-forwarder";

/// Highest exposure level accepted, in the unit of `--threshold=`,
/// which is ten times the score printed (2.0).
const MAX_EXPOSURE: u32 = 20;

/// Checks whether systemd-analyze can run here; fails under CI=true
/// when it cannot, so CI never skips these checks silently.
fn analyzer_present() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing under CI=true: install the systemd package"
        );
        eprintln!("systemd-analyze not found; skipping (install the systemd package)");
    }
    found
}

/// Reads a file of the repository.
fn repository_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn shipped(name: &str) -> String {
    repository_file(&format!("systemd/{name}"))
}

/// Copies the unit `name` into `dir` with ExecStart pointing at the
/// binary under test, because verify rejects a command that does not
/// exist. Returns the path to check: for the template, an instance of it.
fn copy_for_analysis(dir: &Path, name: &str) -> PathBuf {
    let text = shipped(name);
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BINARY} run --config ")),
        "{name} runs the installed binary with run --config"
    );
    let binary = env!("CARGO_BIN_EXE_iotsecure-forwarder");
    std::fs::write(dir.join(name), text.replace(INSTALLED_BINARY, binary)).expect("copy unit");
    dir.join(name.replace("@.", "@acme."))
}

#[test]
fn units_pass_verify() {
    if !analyzer_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [UNIT, TEMPLATE] {
        let unit = copy_for_analysis(dir.path(), name);
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        // Unknown keys and bad values are only warnings, so any line
        // about our unit fails the check. Lines about units installed
        // on this machine are not ours to fix.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains(&*dir.path().to_string_lossy()))
            .collect();
        assert!(ours.is_empty(), "{name}: {ours:#?}");
    }
}

#[test]
fn units_rate_at_most_two() {
    if !analyzer_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [UNIT, TEMPLATE] {
        let unit = copy_for_analysis(dir.path(), name);
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={MAX_EXPOSURE}"))
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let overall = stdout
            .lines()
            .find(|line| line.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{name}: no overall level in {stdout}\n{stderr}"));
        eprintln!("{name}: {}", overall.trim());
        assert!(output.status.success(), "{name}: {overall}\n{stderr}");
    }
}

/// Returns the lines of a unit that are neither comments nor blank,
/// without those that differ by design between the unit and the
/// template.
fn hardening(text: &str) -> Vec<&str> {
    const PER_INSTANCE: [&str; 4] = [
        "Description=",
        "ExecStart=",
        "LoadCredential=",
        "StateDirectory=",
    ];
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|line| !PER_INSTANCE.iter().any(|key| line.starts_with(key)))
        .collect()
}

#[test]
fn template_matches_unit_but_instance_paths() {
    let unit = shipped(UNIT);
    let template = shipped(TEMPLATE);
    assert_eq!(hardening(&unit), hardening(&template));
    for line in [
        "ExecStart=/usr/bin/iotsecure-forwarder run --config /etc/iotsecure-forwarder/%i.toml",
        "LoadCredential=api-key:/etc/iotsecure-forwarder/%i.key",
        "StateDirectory=iotsecure-forwarder/%i",
    ] {
        assert!(template.lines().any(|l| l == line), "template has {line}");
    }
    for line in [
        "ExecStart=/usr/bin/iotsecure-forwarder run --config \
         /etc/iotsecure-forwarder/iotsecure-forwarder.toml",
        "LoadCredential=api-key:/etc/iotsecure-forwarder/api-key",
        "StateDirectory=iotsecure-forwarder",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit has {line}");
    }
}

#[test]
fn unit_matches_example_config_paths() {
    // The unit's state directory and credential must be what the example
    // config expects, or the packaged service would not start.
    let example = repository_file("config/iotsecure-forwarder.toml");
    assert!(
        example.contains("path = \"/var/lib/iotsecure-forwarder/state.db\""),
        "example state path is in the unit's StateDirectory"
    );
    let key_file = example
        .lines()
        .find(|line| line.trim_start().starts_with("api_key_file"));
    assert_eq!(
        key_file, None,
        "api_key_file is unset, so the LoadCredential= key is used"
    );
}
