//! Reloading the config file while the service runs (SIGHUP).
//!
//! The file is read and validated again. A file that does not validate
//! changes nothing. A valid one applies at once: outputs, the `[format]`
//! table, the `[quota]` limits, the `[alerts]` intervals and the outbox
//! bound. The API client and the state database were built at start, so
//! changes to `[api]`, `state.path` and `quota.burst` are logged and
//! wait for a restart.
//!
//! NOTE: the poll loop reads the new `[alerts]` and `[quota]` values at
//! its next step, so a shorter `min_poll_interval` takes effect only
//! after the wait that loop had already started.

use super::Forwarder;
use super::outputs::Outputs;
use crate::api::Transport;
use crate::config::{self, Settings};

impl<T: Transport> Forwarder<T> {
    /// Re-reads the config file and applies it, or logs why it cannot.
    pub(super) async fn reload(&self, outputs: &mut Outputs) {
        let current = self.settings();
        tracing::info!(config = %current.path.display(), "reloading the config");
        let loaded = match config::load(&current.path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "config reload failed; the running config stays in force");
                return;
            }
        };
        for key in restart_only_changes(&current, &loaded) {
            tracing::warn!(
                key,
                "changed in the config file, but applies only after a restart"
            );
        }
        let applied = keep_restart_only(&current, loaded);
        self.budget.set_quota(applied.quota.clone());
        let outputs_count = applied.outputs.len();
        let applied_outputs = applied.clone();
        self.replace_settings(applied);
        if let Err(error) = outputs.apply(&applied_outputs).await {
            tracing::error!(%error, "cannot delete the positions of removed outputs");
        }
        // Idle delivery tasks wake and read the new settings at once.
        self.wake.notify_waiters();
        tracing::info!(outputs = outputs_count, "config reloaded");
    }
}

/// Returns the keys that differ between `current` and `loaded` but take
/// effect only after a restart.
pub(super) fn restart_only_changes(current: &Settings, loaded: &Settings) -> Vec<&'static str> {
    let (old, new) = (&current.api, &loaded.api);
    let checks = [
        ("api.url", old.url != new.url),
        ("api.api_key_file", old.api_key_file != new.api_key_file),
        ("api.api_key_env", old.api_key_env != new.api_key_env),
        ("api.timeout", old.timeout != new.timeout),
        (
            "api.connect_timeout",
            old.connect_timeout != new.connect_timeout,
        ),
        (
            "api.max_response_bytes",
            old.max_response_bytes != new.max_response_bytes,
        ),
        ("state.path", current.state.path != loaded.state.path),
        (
            "quota.burst",
            current.quota.burst_window != loaded.quota.burst_window,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

/// Returns `loaded` with the values that need a restart taken from
/// `current`, so the settings in force describe what actually runs.
fn keep_restart_only(current: &Settings, mut loaded: Settings) -> Settings {
    loaded.api = current.api.clone();
    loaded.state.path = current.state.path.clone();
    loaded.quota.burst_window = current.quota.burst_window;
    loaded
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "[api]\nurl = \"http://127.0.0.1:9/\"\n\n\
        [[output]]\nname = \"siem\"\naddress = \"127.0.0.1:514\"\n";

    fn parse(text: &str) -> Settings {
        config::parse(Path::new("/tmp/forwarder.toml"), text).expect("test config validates")
    }

    #[test]
    fn unchanged_file_needs_no_restart() {
        let current = parse(BASE);
        assert!(restart_only_changes(&current, &parse(BASE)).is_empty());
    }

    #[test]
    fn api_url_and_state_path_need_restart() {
        let current = parse(BASE);
        let text = BASE.replace("127.0.0.1:9", "127.0.0.1:10")
            + "\n[state]\npath = \"other.db\"\n\n[quota]\nburst = \"2h\"\n";
        let loaded = parse(&text);
        let changed = restart_only_changes(&current, &loaded);
        assert_eq!(changed, ["api.url", "state.path", "quota.burst"]);
        let applied = keep_restart_only(&current, loaded);
        assert_eq!(applied.api, current.api);
        assert_eq!(applied.state.path, current.state.path);
        assert_eq!(applied.quota.burst_window, current.quota.burst_window);
    }

    #[test]
    fn outputs_and_intervals_apply_live() {
        let current = parse(BASE);
        let text = format!(
            "{BASE}\n[[output]]\nname = \"second\"\naddress = \"127.0.0.1:601\"\n\n\
             [alerts]\nmin_poll_interval = \"1m\"\n\n[quota]\nreserve = 100\n"
        );
        let loaded = parse(&text);
        assert!(restart_only_changes(&current, &loaded).is_empty());
        let applied = keep_restart_only(&current, loaded);
        assert_eq!(applied.outputs.len(), 2);
        assert_eq!(applied.alerts.min_poll_interval.as_secs(), 60);
        assert_eq!(applied.quota.reserve, 100);
    }
}
