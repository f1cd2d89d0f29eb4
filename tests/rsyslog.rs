//! Interoperability with a real rsyslog: the test starts its own
//! rsyslogd on loopback ports (imtcp, which takes both RFC 6587
//! framings on one port, and imudp), the forwarder delivers to it, and
//! the test reads what rsyslog parsed from the file it writes.
//!
//! Without rsyslogd on the machine the test passes with a note, except
//! under `CI=true`, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::Since;

const RECENT_ALERTS: usize = 7;
const HOSTILE: &str = "x|y\\z=w\r\nnext \u{e9}";

fn find_rsyslogd() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rsyslogd"))
            .find(|path| path.is_file())
    });
    in_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/rsyslogd");
        sbin.is_file().then_some(sbin)
    })
}

struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_rsyslog(binary: &Path, dir: &Path, tcp: u16, udp: u16) -> Rsyslog {
    let out = dir.join("received.log");
    let conf = dir.join("rsyslog.conf");
    let text = format!(
        r#"global(workDirectory="{dir}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="parsed" type="string"
         string="%inputname% %hostname% %app-name% %msg%\n")
action(type="omfile" file="{out}" template="parsed")
"#,
        dir = dir.display(),
        out = out.display()
    );
    std::fs::write(&conf, text).expect("write rsyslog.conf");
    let child = Command::new(binary)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rsyslogd starts");
    Rsyslog { child, out }
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn free_tcp_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until rsyslog writes a UDP probe to its file, so no datagram
/// of the test is sent before imudp listens.
async fn wait_until_ready(rsyslog: &Rsyslog, udp: u16) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lines(&rsyslog.out).iter().any(|l| l.contains("probe")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rsyslogd never became ready"
        );
        let _ = socket.send_to(b"<13>1 - probe-host probe - - - probe", ("127.0.0.1", udp));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<String> = lines(path)
            .into_iter()
            .filter(|line| !line.contains("probe"))
            .collect();
        if got.len() >= count {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} lines: {got:#?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_parses_what_we_send() {
    let Some(binary) = find_rsyslogd() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rsyslogd is not installed; .ci/run installs the rsyslog package"
        );
        eprintln!("note: rsyslogd not found; install the rsyslog package to run this test");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (tcp, udp) = (free_tcp_port(), free_udp_port());
    let rsyslog = start_rsyslog(&binary, dir.path(), tcp, udp);
    wait_until_ready(&rsyslog, udp).await;

    let model = common::quiet_model(Clock::system(), Since::After);
    let now = Clock::system().now_secs();
    model.insert_alert(json!({
        "alert_id": "777002", "category": HOSTILE, "subject": HOSTILE,
        "created": now - 60, "modified": now - 30, "status": "open",
        "priority": "high", "device_id": "00:40:17:6C:00:00"
    }));
    let (api, _sim) = common::serve(&model).await;
    let target = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let outputs = [
        "[devices]\nenabled = false\n".to_owned(),
        common::output("lf", target(tcp), "tcp", "lf"),
        common::output("octet", target(tcp), "tcp", "octet-counting"),
        common::output("udp", target(udp), "udp", "lf"),
    ]
    .join("\n");
    let forwarder = common::over_http(dir.path(), api, &outputs);
    forwarder.once().await.expect("once succeeds");

    let per_output = RECENT_ALERTS + 1;
    let got = wait_for_lines(&rsyslog.out, 3 * per_output).await;
    let count = |input: &str| got.iter().filter(|l| l.starts_with(input)).count();
    assert_eq!(count("imtcp "), 2 * per_output, "{got:#?}");
    assert_eq!(count("imudp "), per_output, "{got:#?}");
    for line in &got {
        let mut parts = line.splitn(4, ' ');
        let (_, host, app, msg) = (parts.next(), parts.next(), parts.next(), parts.next());
        assert_eq!(host, Some("fwd-test"), "{line}");
        assert_eq!(app, Some("iotsecure"), "{line}");
        let msg = msg.expect("message");
        assert!(msg.starts_with("CEF:0|"), "{line}");
        let fields = common::cef_fields(msg);
        let id = &fields["externalId"];
        let record = model.alert(id).expect("known alert");
        assert_eq!(
            fields.get("cat").map(String::as_str),
            record["category"].as_str()
        );
    }
    let hostile = got.iter().filter(|l| l.contains("777002")).count();
    assert_eq!(hostile, 3, "one line per output for the hostile alert");
}
