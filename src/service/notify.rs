//! systemd service notifications (sd_notify(3)): `READY=1` once the
//! state is open and the outputs run, `STATUS=` lines while it runs,
//! `WATCHDOG=1` while the poll loop makes progress, and `STOPPING=1` when
//! a stop is requested.
//!
//! Each message is one datagram on the unix socket that `NOTIFY_SOCKET`
//! names: a path, or an abstract name written with a leading `@`.
//! Without `NOTIFY_SOCKET` nothing is sent, so the binary runs the same
//! outside systemd.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Forwarder;
use crate::budget::{Budget, day_start_ms};
use crate::clock::datetime_from_ms;
use crate::source::alerts::SOURCE;
use crate::state::{StateError, Store};

/// Time between two reads of the figures in the `STATUS=` line.
const STATUS_REFRESH: Duration = Duration::from_secs(5);

/// Counters that keep the day's event count across restarts: the start
/// of the UTC day it counts, and the outbox's high-water mark then.
const EVENTS_DAY: &str = "notify_events_day_ms";
const EVENTS_AT_DAY_START: &str = "notify_events_at_day_start";

/// Maximum time a heartbeat may promise until the next one, which
/// keeps the deadline arithmetic far from overflow.
const MAX_BEAT: Duration = Duration::from_secs(86_400);

/// Destination of service notifications: the socket from
/// `NOTIFY_SOCKET`, or none.
#[derive(Debug, Default)]
pub struct Notifier {
    address: Option<SocketAddr>,
    /// Set by the first failed send, so that a vanished socket logs once.
    warned: AtomicBool,
    /// Set once `STOPPING=1` is sent, so that it goes once.
    stopping: AtomicBool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`. An unusable value logs a WARN and turns
    /// notifications off.
    pub fn from_env() -> Self {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        match Notifier::for_socket(&name) {
            Ok(notifier) => notifier,
            Err(error) => {
                tracing::warn!(%error, "systemd notifications disabled");
                Notifier::default()
            }
        }
    }

    /// Returns a notifier for `name`, written as in `NOTIFY_SOCKET`.
    pub fn for_socket(name: &OsStr) -> io::Result<Self> {
        let address = match name.as_bytes() {
            [b'@', abstract_name @ ..] => abstract_address(abstract_name)?,
            [b'/', ..] => SocketAddr::from_pathname(Path::new(name))?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "NOTIFY_SOCKET={:?} is neither an absolute path nor an \
                         abstract socket name starting with @",
                        name.to_string_lossy()
                    ),
                ));
            }
        };
        Ok(Notifier {
            address: Some(address),
            ..Notifier::default()
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.address.is_some()
    }

    /// Sends `state`: `KEY=VALUE` assignments, one per line. A failure
    /// logs a WARN the first time and is otherwise ignored, because the
    /// forwarder's work does not depend on the service manager.
    pub fn notify(&self, state: &str) {
        let Some(address) = &self.address else {
            return;
        };
        if let Err(error) = send(address, state)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%error,
                    "cannot notify systemd; later failures are not logged");
        }
    }

    /// Sends a `STATUS=` line. Line breaks in `text` become spaces, so
    /// the text cannot add assignments of its own.
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={}", text.replace(['\n', '\r'], " ")));
    }

    /// Sends `STOPPING=1` with a status saying so, the first time only.
    pub fn stopping(&self) {
        if !self.stopping.swap(true, Ordering::Relaxed) {
            self.notify("STOPPING=1\nSTATUS=stopping: delivering stored events");
        }
    }
}

fn send(address: &SocketAddr, state: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    // The service manager reads its socket at once. When the queue is
    // full anyway, failing is better than stalling a runtime thread.
    socket.set_nonblocking(true)?;
    socket.send_to_addr(state.as_bytes(), address)?;
    Ok(())
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix socket names exist only on Linux",
    ))
}

/// Returns the time between watchdog pings: half of `WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) advises. `None` when systemd expects no pings
/// from this process: the variable is unset, zero or invalid, or
/// `WATCHDOG_PID` names another process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

fn watchdog_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = std::env::var("WATCHDOG_PID").ok();
    if usec.trim().parse::<u64>().is_err() {
        tracing::warn!(watchdog_usec = %usec,
            "WATCHDOG_USEC is not a number of microseconds; no watchdog pings");
    }
    watchdog_interval(Some(&usec), pid.as_deref(), std::process::id())
}

/// Liveness of the poll loop. Each time round, the loop records how long
/// it will sleep. It is overdue when it has not come round again by the
/// end of that sleep plus `slack`, the maximum time one step may take.
#[derive(Debug)]
pub struct Heartbeat {
    deadline: Mutex<Instant>,
    slack: Duration,
}

impl Heartbeat {
    pub fn new(slack: Duration) -> Self {
        Heartbeat {
            deadline: Mutex::new(Instant::now() + slack.min(MAX_BEAT)),
            slack: slack.min(MAX_BEAT),
        }
    }

    /// Records that the loop is alive and comes round again after
    /// sleeping `sleep` and running one step.
    pub fn beat(&self, sleep: Duration) {
        let deadline = Instant::now() + sleep.min(MAX_BEAT) + self.slack;
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
    }

    /// Checks whether the loop came round within what it promised.
    pub fn is_alive(&self) -> bool {
        Instant::now() <= *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The notification tasks of one run. Dropping it stops them, and sends
/// `STOPPING=1` if a stop was requested but the status task had no
/// chance to send it, as when the run ends within a millisecond.
pub(super) struct Notifications {
    tasks: Vec<JoinHandle<()>>,
    notifier: Arc<Notifier>,
    shutdown: CancellationToken,
}

impl Drop for Notifications {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if self.shutdown.is_cancelled() {
            self.notifier.stopping();
        }
    }
}

/// Sends `READY=1` with a first status, then starts the tasks that
/// refresh the status, ping the watchdog, and send `STOPPING=1` when
/// `shutdown` fires. Starts nothing outside systemd.
pub(super) fn start<T>(forwarder: &Forwarder<T>, shutdown: &CancellationToken) -> Notifications {
    let notifier = Arc::new(Notifier::from_env());
    let mut notifications = Notifications {
        tasks: Vec::new(),
        notifier: notifier.clone(),
        shutdown: shutdown.clone(),
    };
    if !notifier.is_enabled() {
        return notifications;
    }
    let figures = Figures {
        store: forwarder.store.clone(),
        budget: forwarder.budget.clone(),
    };
    let first = figures.render("");
    notifier.notify(&format!("READY=1\nSTATUS={first}"));
    forwarder.heartbeat.beat(Duration::ZERO);
    if let Some(interval) = watchdog_from_env() {
        tracing::debug!(
            interval_ms = interval.as_millis() as u64,
            "watchdog pings on"
        );
        let pinger = ping_watchdog(notifier.clone(), forwarder.heartbeat.clone(), interval);
        notifications.tasks.push(tokio::spawn(pinger));
    }
    let reporter = report_status(notifier, figures, first, shutdown.clone());
    notifications.tasks.push(tokio::spawn(reporter));
    notifications
}

/// Pings the watchdog every `interval` while the poll loop is alive. A
/// stuck loop gets no pings, so systemd kills and restarts the service
/// once `WatchdogSec` has passed.
pub async fn ping_watchdog(notifier: Arc<Notifier>, heartbeat: Arc<Heartbeat>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut overdue = false;
    loop {
        ticks.tick().await;
        if heartbeat.is_alive() {
            if overdue {
                tracing::info!("poll loop progressing again; watchdog pings resumed");
            }
            overdue = false;
            notifier.notify("WATCHDOG=1");
        } else if !overdue {
            overdue = true;
            tracing::error!("poll loop is overdue; watchdog pings withheld");
        }
    }
}

/// Sends a `STATUS=` line whenever the figures change, and
/// `STOPPING=1` as soon as `shutdown` fires.
async fn report_status(
    notifier: Arc<Notifier>,
    figures: Figures,
    mut last: String,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(STATUS_REFRESH) => {}
            () = shutdown.cancelled() => {
                notifier.stopping();
                return;
            }
        }
        let text = figures.render(&last);
        if text != last {
            notifier.status(&text);
            last = text;
        }
    }
}

/// Sources of the figures in the `STATUS=` line.
struct Figures {
    store: Arc<Store>,
    budget: Arc<Budget>,
}

impl Figures {
    /// Renders the status line, or what failed while reading it. The
    /// failure is logged when it differs from the `last` line sent.
    fn render(&self, last: &str) -> String {
        match self.read() {
            Ok(text) => text,
            Err(error) => {
                let text = format!("cannot read the state: {error}");
                if text != last {
                    tracing::warn!(%error, "cannot read the figures for the systemd status");
                }
                text
            }
        }
    }

    fn read(&self) -> Result<String, StateError> {
        let day = self.budget.ledger()?;
        let last_poll = match self.store.listed_ms(SOURCE)? {
            Some(ms) => datetime_from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => "never".to_owned(),
        };
        let today = day_start_ms(self.budget.server_now_ms());
        let events = events_today(&self.store, today)?;
        let undelivered = self.store.outbox_len()?;
        let mut text = format!(
            "last poll {last_poll}; {events} events today; requests today {} of {}; \
             {undelivered} undelivered",
            day.effective_used(),
            self.budget.limit(&day),
        );
        if self.budget.is_closed(&day) {
            text.push_str("; daily limit reached, polling resumes after 00:00 UTC");
        }
        Ok(text)
    }
}

/// Counts the events stored since `day_start_ms`: the outbox's
/// high-water mark less its value at the day's first call, which is
/// kept in the counter table so that a restart keeps the count. Events
/// stored between 00:00 UTC and that first call count for the day
/// before, a gap of at most one status refresh while the service runs.
pub fn events_today(store: &Store, day_start_ms: i64) -> Result<i64, StateError> {
    let total = store.stored_total()?;
    if store.counter(EVENTS_DAY)? != day_start_ms {
        // The baseline goes first: a crash between the two writes leaves
        // the old day, so the next call writes both again.
        store.set_counter(EVENTS_AT_DAY_START, total)?;
        store.set_counter(EVENTS_DAY, day_start_ms)?;
    }
    Ok(total - store.counter(EVENTS_AT_DAY_START)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receives every datagram waiting on `socket`.
    fn drain(socket: &UnixDatagram) -> Vec<String> {
        let mut messages = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(len) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
        }
        messages
    }

    fn bound_socket(dir: &Path) -> (UnixDatagram, Notifier) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let notifier = Notifier::for_socket(path.as_os_str()).expect("notifier");
        (socket, notifier)
    }

    #[test]
    fn notifier_sends_to_a_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (socket, notifier) = bound_socket(dir.path());
        notifier.notify("READY=1");
        notifier.status("a\nREADY=1");
        assert_eq!(drain(&socket), ["READY=1", "STATUS=a READY=1"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notifier_sends_to_an_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("iotsecure-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let socket = UnixDatagram::bind_addr(&address).expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let notifier = Notifier::for_socket(OsStr::new(&format!("@{name}"))).expect("notifier");
        notifier.notify("WATCHDOG=1");
        assert_eq!(drain(&socket), ["WATCHDOG=1"]);
    }

    #[test]
    fn notifier_sends_stopping_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (socket, notifier) = bound_socket(dir.path());
        notifier.stopping();
        notifier.stopping();
        let messages = drain(&socket);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("STOPPING=1\n"), "{messages:?}");
    }

    #[test]
    fn notifier_rejects_a_relative_name() {
        let error = Notifier::for_socket(OsStr::new("notify.sock")).expect_err("rejected");
        assert!(error.to_string().contains("notify.sock"), "{error}");
        assert!(Notifier::for_socket(OsStr::new("")).is_err());
    }

    #[test]
    fn notifier_without_socket_sends_nothing() {
        let notifier = Notifier::default();
        assert!(!notifier.is_enabled());
        notifier.notify("READY=1");
    }

    #[test]
    fn notifier_survives_a_vanished_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (socket, notifier) = bound_socket(dir.path());
        drop(socket);
        notifier.notify("WATCHDOG=1");
        notifier.notify("WATCHDOG=1");
        assert!(notifier.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        let pid = 4321;
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval(Some("30000000"), None, pid), half);
        assert_eq!(watchdog_interval(Some("30000000"), Some("4321"), pid), half);
        assert_eq!(watchdog_interval(Some("30000000"), Some("99"), pid), None);
        assert_eq!(watchdog_interval(Some("0"), None, pid), None);
        assert_eq!(watchdog_interval(Some("soon"), None, pid), None);
        assert_eq!(watchdog_interval(None, Some("4321"), pid), None);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_expires_after_sleep_and_slack() {
        let heartbeat = Heartbeat::new(Duration::from_secs(90));
        heartbeat.beat(Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(3600 + 89)).await;
        assert!(heartbeat.is_alive());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!heartbeat.is_alive());
        heartbeat.beat(Duration::ZERO);
        assert!(heartbeat.is_alive());
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_only_while_loop_beats() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (socket, notifier) = bound_socket(dir.path());
        let heartbeat = Arc::new(Heartbeat::new(Duration::from_millis(450)));
        let interval = Duration::from_millis(100);
        let pinger = tokio::spawn(ping_watchdog(
            Arc::new(notifier),
            heartbeat.clone(),
            interval,
        ));

        // Ticks at 0 to 400 ms fall before the deadline at 450 ms.
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(drain(&socket).len(), 5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(drain(&socket).is_empty(), "no pings while overdue");

        heartbeat.beat(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(drain(&socket), ["WATCHDOG=1", "WATCHDOG=1"]);
        pinger.abort();
    }

    #[test]
    fn events_today_counts_from_day_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.db");
        let store = Store::open(&path).expect("store");
        let (day1, day2) = (86_400_000, 2 * 86_400_000);
        let commit = |store: &Store, id: &str| {
            let event = crate::event::Event::Alert(crate::event::AlertEvent {
                alert: crate::api::Alert {
                    alert_id: id.into(),
                    modified: Some(1),
                    ..crate::api::Alert::default()
                },
                device: None,
            });
            store
                .commit_event("alerts", id, &event, 0, i64::MAX)
                .expect("commit");
        };
        commit(&store, "1");
        assert_eq!(events_today(&store, day1).expect("day 1"), 0);
        commit(&store, "2");
        commit(&store, "3");
        assert_eq!(events_today(&store, day1).expect("day 1"), 2);

        drop(store);
        let store = Store::open(&path).expect("reopened");
        assert_eq!(events_today(&store, day1).expect("after restart"), 2);
        assert_eq!(events_today(&store, day2).expect("day 2"), 0);
        commit(&store, "4");
        assert_eq!(events_today(&store, day2).expect("day 2"), 1);
    }
}
