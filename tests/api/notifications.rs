//! Emails about number changes (`notify_user`) are delivered over SMTP, to a real SMTP server
//! on loopback (Python's aiosmtpd, writing a maildir), and retried while the server is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use number_management::service::{SmtpSettings, SmtpTls, WorkerSettings};

use tonic::Code;

use crate::helpers::{Backend, TestApp, TestConfig, assert_error, violated_fields};
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
    // The server has the message a moment before the worker records it sent.
    app.until_no_email_pending("contoso").await;
}

async fn without_a_server_emails_go_to_the_log(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    app.until_no_email_pending("contoso").await;
}

async fn emails_go_only_to_the_tenants_verified_domains(backend: Backend) {
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
    // The demo tenant verified contoso.com; an admin types an address elsewhere.
    app.user("contoso", "eve@contoso.com.phish.example", "Eve", "US")
        .await;
    assign(&app, "eve@contoso.com.phish.example", "+14255550102", None).await;
    app.until_no_email_pending("contoso").await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(header(&messages[0], "X-RcptTo"), Some("john@contoso.com"));
    let mut read = app.store.read().await.unwrap();
    let queued = read.notifications("contoso", false).await.unwrap();
    assert!(
        queued
            .iter()
            .any(|n| n.recipient == "eve@contoso.com.phish.example"),
        "the skipped email is recorded"
    );

    // With no verified domain, nothing is sent.
    let mut admin = app.admin("contoso");
    admin
        .update_notification_settings(pb::UpdateNotificationSettingsRequest::default())
        .await
        .unwrap();
    assign(&app, "jack@contoso.com", "+14255550105", None).await;
    app.until_no_email_pending("contoso").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "an email left without a verified domain"
    );
}

async fn verified_domains_are_checked_replaced_and_audited(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin("contoso");
    let declared = admin
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declared.verified_email_domains, ["contoso.com"]);
    let update = |domains: &[&str], validate_only: bool| pb::UpdateNotificationSettingsRequest {
        verified_email_domains: domains.iter().map(|d| d.to_string()).collect(),
        validate_only,
        ..Default::default()
    };

    // Bad domains are refused by index, and change nothing.
    for (bad, index) in [
        ("contoso", 1),
        ("john@contoso.com", 1),
        ("", 1),
        ("-x.com", 1),
    ] {
        let status = assert_error(
            admin
                .update_notification_settings(update(&["fabrikam.com", bad], false))
                .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(
            violated_fields(&status),
            [format!("verified_email_domains[{index}]")],
            "{bad:?}"
        );
    }
    let many: Vec<String> = (0..=50).map(|i| format!("d{i}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_error(
        admin
            .update_notification_settings(update(&many, false))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    // validate_only checks and changes nothing.
    let rehearsed = admin
        .update_notification_settings(update(&["fabrikam.com"], true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rehearsed.verified_email_domains, ["fabrikam.com"]);
    let unchanged = admin
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged, declared);

    let replaced = admin
        .update_notification_settings(update(
            &["Fabrikam.COM", "contoso.com", "fabrikam.com"],
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replaced.verified_email_domains,
        ["contoso.com", "fabrikam.com"]
    );
    assert!(replaced.update_time.is_some());
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let event = events
        .iter()
        .find(|e| e.action == pb::AuditAction::UpdateNotificationSettings as i32)
        .expect("an audit event of the update");
    assert!(
        format!("{:?}", event.after).contains("fabrikam.com"),
        "{event:?}"
    );

    // A reader sees the settings and may not change them.
    let mut reader = app.reader("contoso");
    let seen = reader
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen, replaced);
    assert_error(
        reader
            .update_notification_settings(update(&["contoso.com"], false))
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
}

async fn a_tenant_over_its_sending_rate_waits(backend: Backend) {
    let mut smtp = SmtpServer::reserve();
    smtp.start();
    let app = TestApp::start_demo(
        backend,
        TestConfig {
            smtp: Some(smtp.settings()),
            emails_per_tenant_per_hour: 1,
            ..TestConfig::default()
        },
    )
    .await;
    assign(&app, "john@contoso.com", "+14255550101", None).await;
    assign(&app, "jack@contoso.com", "+14255550102", None).await;
    smtp.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "the second email went over the rate"
    );
    let mut read = app.store.read().await.unwrap();
    let waiting = read.notifications("contoso", true).await.unwrap();
    assert_eq!(waiting.len(), 1, "the second email waits its turn");
}

async fn what_the_admin_typed_stays_on_its_line(backend: Backend) {
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
    app.user(
        "contoso",
        "eve@contoso.com",
        "Eve\u{2028}\u{2028}\u{202E}Your password expired: sign in at evil.example",
        "US",
    )
    .await;
    assign(&app, "eve@contoso.com", "+14255550101", None).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1);
    let greeting = messages[0]
        .lines()
        .find(|line| line.starts_with("Hello "))
        .unwrap_or_else(|| panic!("no greeting in {}", messages[0]));
    assert!(
        greeting.contains("Hello Eve   Your password expired: sign in at evil.example,"),
        "the display name is on the greeting's line: {greeting:?}"
    );
}

on_both_stores!(
    emails_go_only_to_the_tenants_verified_domains,
    verified_domains_are_checked_replaced_and_audited,
    a_tenant_over_its_sending_rate_waits,
    what_the_admin_typed_stays_on_its_line,
    an_assignment_emails_the_user_over_smtp,
    emails_wait_for_a_server_that_is_down,
    without_a_server_emails_go_to_the_log,
);
