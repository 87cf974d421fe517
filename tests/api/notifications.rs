//! Emails about number changes (`notify_user`) are delivered over SMTP, to a real SMTP server
//! on loopback (Python's aiosmtpd, writing a maildir), and retried while the server is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use number_management::service::{SmtpSettings, SmtpTls, WorkerSettings};

use crate::helpers::{Backend, TestApp, TestConfig};
use crate::on_both_stores;

/// An SMTP server for one test: aiosmtpd writing every message it accepts to a maildir.
struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    process: Option<Child>,
}

impl SmtpServer {
    /// A free port, and a maildir, but no server yet.
    fn reserve() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let maildir = tempfile::tempdir().expect("a maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(sub)).expect("a maildir folder");
        }
        Self {
            port,
            maildir,
            process: None,
        }
    }

    /// Starts aiosmtpd on the reserved port and waits until it accepts connections.
    fn start(&mut self) {
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .process
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "aiosmtpd exited ({status}): install it with `python3 -m pip install aiosmtpd`"
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: SmtpTls::None,
            from: "Contoso Phone System <phone@contoso.com>".into(),
            username: None,
            password: None,
        }
    }

    /// The messages received so far.
    fn messages(&self) -> Vec<String> {
        let dir: PathBuf = self.maildir.path().join("new");
        let mut messages: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        messages.sort();
        messages
    }

    /// Waits until `count` messages arrived, answering them.
    async fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
    })
}

async fn assign(app: &TestApp, identity: &str, number: &str, notify: Option<bool>) {
    app.admin("contoso")
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: identity.into(),
            phone_number: number.into(),
            notify_user: notify,
            ..Default::default()
        })
        .await
        .expect("assign");
}

fn maildir_is_empty(path: &Path) -> bool {
    std::fs::read_dir(path.join("new")).map_or(true, |mut d| d.next().is_none())
}

async fn an_assignment_emails_the_user_over_smtp(backend: Backend) {
    let mut smtp = SmtpServer::reserve();
    smtp.start();
    let app = TestApp::start_demo(
        backend,
        TestConfig {
            smtp: Some(smtp.settings()),
            ..TestConfig::default()
        },
    )
    .await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(header(message, "X-RcptTo"), Some("john@contoso.com"));
    let subject = header(message, "Subject").expect("a subject");
    assert!(subject.contains("+14255550101"), "{subject}");
    assert!(
        message.contains("+14255550101 has been assigned to you"),
        "{message}"
    );
    assert!(header(message, "From").is_some_and(|f| f.contains("phone@contoso.com")));

    // notify_user false sends nothing.
    assign(&app, "jack@contoso.com", "+14255550102", Some(false)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "an email was sent although notify_user was false"
    );
    let mut read = app.store.read().await.unwrap();
    assert!(
        read.notifications("contoso", true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn emails_wait_for_a_server_that_is_down(backend: Backend) {
    let mut smtp = SmtpServer::reserve();
    let defaults = TestConfig::default();
    let app = TestApp::start_demo(
        backend,
        TestConfig {
            smtp: Some(smtp.settings()),
            // Keep retrying (every 50 to 500 ms) for the length of the test.
            worker: WorkerSettings {
                max_failures: 1000,
                ..defaults.worker.clone()
            },
            ..defaults
        },
    )
    .await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    // Nothing listens yet: the email stays queued, to be retried.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(maildir_is_empty(smtp.maildir.path()));
    {
        let mut read = app.store.read().await.unwrap();
        let pending = read.notifications("contoso", true).await.unwrap();
        assert_eq!(pending.len(), 1, "the email is still waiting");
        assert_eq!(pending[0].recipient, "john@contoso.com");
    }
    smtp.start();
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        messages.len(),
        1,
        "the email was delivered once the server was up"
    );
    assert_eq!(header(&messages[0], "X-RcptTo"), Some("john@contoso.com"));
    let mut read = app.store.read().await.unwrap();
    assert!(
        read.notifications("contoso", true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn without_a_server_emails_go_to_the_log(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut read = app.store.read().await.unwrap();
        if read
            .notifications("contoso", true)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the email was never handled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_stores!(
    an_assignment_emails_the_user_over_smtp,
    emails_wait_for_a_server_that_is_down,
    without_a_server_emails_go_to_the_log,
);
