//! Email notifications (issue 22): an email endpoint gets one mail per notice through a real
//! SMTP server (Python's aiosmtpd, started here), retried while the server is down and sent
//! once when it is back.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// aiosmtpd on `port`, keeping each message as a file in a maildir; killed (by its PID) on drop.
struct SmtpServer {
    child: Child,
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        let python = format!(
            "{}/bin/python",
            std::env::var("HOOKLINE_PYTHON_TOOLS").unwrap_or_else(|_| "/opt/hookline-venv".into())
        );
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c"])
            .arg("aiosmtpd.handlers.Mailbox")
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (run .ci/python-tools)");
        SmtpServer { child }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The messages in the maildir, as raw text.
fn mails(maildir: &Path) -> Vec<String> {
    let mut found: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(maildir.join(d)).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    found.sort();
    found.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

/// A quoted-printable body as it reads: soft line breaks joined, `=3D` back to `=`.
fn unfolded(mail: &str) -> String {
    mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[tokio::test]
async fn a_failing_endpoint_makes_one_email_when_it_fails_and_one_when_it_recovers() {
    let smtp_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // aiosmtpd makes the maildir (with its tmp, new and cur) only if it does not exist yet.
    let maildir = dir.path().join("mail");
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("email"))
        .set("notifications__smtp_url", &format!("smtp://127.0.0.1:{smtp_port}"))
        .set("notifications__email_from", "Hookline <alerts@hookline.test>")
        .set("notifications__console_url", "https://hooks.example.com")
        .set("health__probe_intervals_s", "[1]");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();

    let (status, refused) = api
        .post(
            "/v1/tenants/m/endpoints",
            json!({"kind": "email", "email": {"to": ["not an address"]}}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = api
        .post(
            "/v1/tenants/m/endpoints",
            json!({"kind": "email", "email": {"to": ["ops@example.com"]}, "headers": {"x-a": "b"}}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["message"].as_str()),
        (400, Some("headers: not for kind email"))
    );
    let mail = api
        .create_endpoint(
            "m",
            json!({"kind": "email", "email": {"to": ["ops@example.com", "Oncall <oncall@example.com>"]},
                   "event_types": ["hookline.endpoint.*"], "retry_schedule_s": vec![1; 30]}),
        )
        .await;
    assert_eq!(mail["url"], "mailto:ops@example.com,Oncall <oncall@example.com>");
    assert_eq!(
        mail["email"],
        json!({"to": ["ops@example.com", "Oncall <oncall@example.com>"]})
    );
    let mail_id = mail["id"].as_str().unwrap().to_string();

    sink.set_switch("flaky", 503);
    let flaky = api
        .create_endpoint(
            "m",
            json!({"url": sink.url("switch/flaky"), "event_types": ["order.*"], "description": "Orders"}),
        )
        .await;
    let flaky_id = flaky["id"].as_str().unwrap().to_string();
    for i in 0..12 {
        api.post_event("m", "order.created", json!({"i": i})).await.unwrap();
    }

    // The SMTP server is down: the email delivery fails and is retried.
    let path = format!("/v1/tenants/m/deliveries?endpoint_id={mail_id}");
    let failing = api
        .get_until(&path, Duration::from_secs(30), |page| {
            page["data"][0]["attempts"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(failing["data"][0]["status"], "failed", "{failing}");
    let delivery = api
        .get(&format!(
            "/v1/tenants/m/deliveries/{}",
            failing["data"][0]["id"].as_str().unwrap()
        ))
        .await
        .1;
    let error = delivery["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("smtp: "), "{error}");

    // It comes up: the next retry sends the mail, once.
    let _smtp = SmtpServer::start(smtp_port, &maildir);
    wait_for(Duration::from_secs(30), "the breaker_opened email", || {
        mails(&maildir).len() == 1
    })
    .await;
    sink.set_switch("flaky", 200);
    wait_for(Duration::from_secs(30), "the recovered email", || {
        mails(&maildir).len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = mails(&maildir);
    assert_eq!(all.len(), 2, "one email per change, each sent once");
    let subjects: Vec<&str> = all.iter().filter_map(|m| header(m, "Subject")).collect();
    assert!(
        subjects.contains(&"[Hookline] Endpoint failing: Orders"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"[Hookline] Endpoint recovered: Orders"),
        "{subjects:?}"
    );
    for m in &all {
        assert_eq!(header(m, "From"), Some("Hookline <alerts@hookline.test>"));
        assert!(header(m, "To").is_some_and(|to| to.contains("ops@example.com") && to.contains("oncall@example.com")));
        assert!(m.contains("Content-Type: text/plain"), "{m}");
        assert!(m.contains("Content-Type: text/html"), "{m}");
        let link = format!("https://hooks.example.com/console/t/m/e/{flaky_id}");
        let text = unfolded(m);
        assert!(
            text.contains(&format!("Open it in the console: {link}")),
            "the text part links: {m}"
        );
        assert!(
            text.contains(&format!("<a href=\"{link}\">Open it in the console</a>")),
            "so does the HTML: {m}"
        );
    }
    let sent = api
        .get_until(&path, Duration::from_secs(10), |page| {
            page["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "delivered"))
        })
        .await;
    let first: &Value = sent["data"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|d| d["attempts"].as_u64())
        .unwrap();
    assert!(
        first["attempts"].as_u64().unwrap() >= 3,
        "failed twice at least, then sent: {first}"
    );
}
