//! The `numbers` command itself: start-up failures explained in one line, tokens minted on the
//! command line, a real server started, used and stopped with SIGTERM, the demo tenant, and
//! `numbers bench` on a small load.
//!
//! These tests run the built binary; every server they start is killed when the test ends, even
//! when it fails.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use number_management::auth::{Principal, Role, SigningKey};
use number_management::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{
    assert_error, channel_to as channel, client_at, free_address, numbers_command,
};

/// What a finished command printed.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Finished {
    /// The non-empty lines of standard error.
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Asserts a failure explained by exactly one `error: ...` line, and returns that line.
    #[track_caller]
    fn one_error_line(&self) -> &str {
        assert!(
            !self.status.success(),
            "the command should have failed: {self:?}"
        );
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), 1, "one line on standard error: {self:?}");
        assert!(lines[0].starts_with("error: "), "an error: line: {self:?}");
        lines[0]
    }
}

fn drain<R: std::io::Read + Send + 'static>(reader: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(reader).read_to_string(&mut text);
        text
    })
}

/// Runs `command` to the end, killing it if it takes longer than `limit`.
fn run(mut command: Command, limit: Duration) -> Finished {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("start numbers");
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for numbers") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "numbers did not finish within {limit:?}; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed: started.elapsed(),
    }
}

/// A running `numbers serve`, killed on drop unless it already exited.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: SocketAddr,
    stdout_lines: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Starts the server with `env` added to its environment.
    pub(crate) fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let address = free_address();
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            address.to_string(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut child = numbers_command(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start numbers serve");
        let stdout = child.stdout.take().unwrap();
        let (lines, stdout_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Some(drain(child.stderr.take().unwrap()));
        Self {
            child,
            address,
            stdout_lines,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server answers health checks (so it has finished starting).
    pub(crate) async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "numbers serve exited early with {status}: {}",
                    self.take_stderr()
                );
            }
            if std::net::TcpStream::connect_timeout(&self.address, Duration::from_millis(200))
                .is_ok()
                && let Ok(channel) = channel(self.address).await
            {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: "numbers.v1.NumberManagement".into(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "numbers serve never started serving"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The lines printed on standard output until one satisfies `done`.
    pub(crate) fn stdout_until(&self, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    let finished = done(&line);
                    lines.push(line);
                    if finished {
                        return lines;
                    }
                }
                Err(e) => panic!("standard output ended or stalled ({e}) after {lines:?}"),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(mut self) -> (ExitStatus, Duration) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!(
                    "numbers serve did not stop within 10 s of SIGTERM: {}",
                    self.take_stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and answers everything it wrote on standard error.
    pub(crate) fn stop_and_read_log(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(10)
        {
            thread::sleep(Duration::from_millis(20));
        }
        self.take_stderr()
    }

    fn take_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type CliClient = crate::helpers::Client;

/// A generated client that sends `authorization: Bearer <token>`.
async fn client(address: SocketAddr, token: &str) -> CliClient {
    client_at(address, token).await
}

/// Mints a token with `numbers token`, returning the last line of its output.
fn mint(data_dir: &Path, tenant: &str, role: &str) -> String {
    let finished = run(
        numbers_command([
            "token",
            "--data-dir",
            &data_dir.display().to_string(),
            "--tenant",
            tenant,
            "--role",
            role,
        ]),
        Duration::from_secs(20),
    );
    assert!(
        finished.status.success(),
        "numbers token failed: {finished:?}"
    );
    let token = finished
        .stdout
        .lines()
        .last()
        .expect("a line of output")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {finished:?}");
    token
}

fn new_user(upn: &str, display_name: &str) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: upn.into(),
            display_name: display_name.into(),
            usage_location: "US".into(),
            licenses: vec![pb::user::License::PhoneSystem as i32],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every number of the tenant, following the page tokens.
async fn all_numbers(client: &mut CliClient) -> Vec<String> {
    let mut request = pb::ListPhoneNumbersRequest {
        page_size: 2,
        ..Default::default()
    };
    let mut numbers = Vec::new();
    loop {
        let page = client
            .list_phone_numbers(request.clone())
            .await
            .expect("list numbers")
            .into_inner();
        numbers.extend(page.phone_numbers.into_iter().map(|n| n.phone_number));
        if page.next_page_token.is_empty() {
            return numbers;
        }
        request.page_token = page.next_page_token;
    }
}

// ---- start-up failures -------------------------------------------------------------------------

#[test]
fn an_unsupported_database_url_fails_fast_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let finished = run(
        numbers_command([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.path().display().to_string(),
            "--database-url",
            "bogus://x",
        ]),
        Duration::from_secs(20),
    );
    let line = finished.one_error_line();
    assert!(line.contains("bogus://x"), "{line}");
    assert!(line.contains("unsupported database URL"), "{line}");
    assert!(
        finished.elapsed < Duration::from_secs(5),
        "took {:?}",
        finished.elapsed
    );
}

#[test]
fn an_unreachable_postgres_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let finished = run(
        numbers_command([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.path().display().to_string(),
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ]),
        Duration::from_secs(60),
    );
    let line = finished.one_error_line();
    assert!(line.contains("PostgreSQL"), "{line}");
    assert!(line.contains("127.0.0.1:1"), "{line}");
}

#[test]
fn a_missing_configuration_file_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let finished = run(
        numbers_command([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.path().display().to_string(),
            "--config",
            "/nonexistent.toml",
        ]),
        Duration::from_secs(20),
    );
    let line = finished.one_error_line();
    assert!(line.contains("/nonexistent.toml"), "{line}");
}

#[test]
fn an_unknown_configuration_key_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("numbers.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ncolour = \"blue\"\n").unwrap();
    let finished = run(
        numbers_command([
            "serve",
            "--data-dir",
            &dir.path().display().to_string(),
            "--config",
            &config.display().to_string(),
        ]),
        Duration::from_secs(20),
    );
    let line = finished.one_error_line();
    assert!(line.contains("colour"), "{line}");
    assert!(line.contains(&config.display().to_string()), "{line}");
}

#[test]
fn a_port_in_use_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let finished = run(
        numbers_command([
            "serve",
            "--listen",
            &address.to_string(),
            "--data-dir",
            &dir.path().display().to_string(),
        ]),
        Duration::from_secs(20),
    );
    let line = finished.one_error_line();
    assert!(line.contains("in use"), "{line}");
    assert!(line.contains(&address.to_string()), "{line}");
    drop(taken);
}

#[test]
fn the_local_key_on_the_network_fails_in_one_line_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let finished = run(
        numbers_command(["serve", "--listen", "0.0.0.0:0", "--data-dir", &data_dir]),
        Duration::from_secs(20),
    );
    let line = finished.one_error_line();
    assert!(line.contains("0.0.0.0:0"), "{line}");
    assert!(line.contains("--oidc-issuer"), "{line}");
    assert!(line.contains("--allow-local-key-on-network"), "{line}");
    // Allowed through the environment, it gets past the check (and stops at the bad database
    // URL given to end the test there).
    let mut allowed = numbers_command([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        &data_dir,
        "--database-url",
        "bogus://x",
    ]);
    allowed.env("NUMBERS_ALLOW_LOCAL_KEY_ON_NETWORK", "true");
    let line = run(allowed, Duration::from_secs(20))
        .one_error_line()
        .to_owned();
    assert!(line.contains("bogus://x"), "past the check: {line}");
}

// ---- tokens ------------------------------------------------------------------------------------

#[test]
fn the_token_command_prints_a_token_last() {
    let dir = tempfile::tempdir().unwrap();
    let token = mint(dir.path(), "contoso", "reader");
    // The key it signed with now lives in the data directory, and verifies the token.
    let key = SigningKey::load(&dir.path().join("token.key"), false).expect("the generated key");
    let tenant_caller = |token: &str| match key
        .verify(token, std::time::SystemTime::now())
        .expect("a token of this key")
    {
        Principal::Tenant(caller) => caller,
        other => panic!("not a tenant token: {other:?}"),
    };
    let caller = tenant_caller(&token);
    assert_eq!(caller.tenant_id, "contoso");
    assert_eq!(caller.role, Role::Reader);
    // A second token comes from the same key.
    let again = mint(dir.path(), "contoso", "ADMIN");
    assert_eq!(tenant_caller(&again).role, Role::Admin);

    let refused = run(
        numbers_command([
            "token",
            "--data-dir",
            &dir.path().display().to_string(),
            "--tenant",
            "contoso",
            "--role",
            "superuser",
        ]),
        Duration::from_secs(20),
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("superuser"), "{refused:?}");
    assert!(refused.stdout.trim().is_empty(), "no token: {refused:?}");

    let helpdesk = mint(dir.path(), "contoso", "helpdesk");
    assert_eq!(tenant_caller(&helpdesk).role, Role::Helpdesk);

    // Tokens of the local key live a day at most.
    let too_long = run(
        numbers_command([
            "token",
            "--data-dir",
            &dir.path().display().to_string(),
            "--tenant",
            "contoso",
            "--role",
            "admin",
            "--hours",
            "25",
        ]),
        Duration::from_secs(20),
    );
    assert!(!too_long.status.success(), "{too_long:?}");
    assert!(too_long.stderr.contains("25"), "{too_long:?}");
    assert!(too_long.stdout.trim().is_empty(), "no token: {too_long:?}");
}

// ---- a real server -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_instance_accepts_cli_tokens_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    server.wait_until_serving().await;

    let admin_token = mint(dir.path(), "t1", "admin");
    let mut admin = client(server.address, &admin_token).await;
    let created = admin
        .upsert_user(new_user("ada@t1.example", "Ada Lovelace"))
        .await
        .expect("the CLI token is accepted")
        .into_inner();
    assert!(!created.id.is_empty());
    let read = admin
        .get_user(pb::GetUserRequest {
            identity: "ada@t1.example".into(),
        })
        .await
        .expect("get the user")
        .into_inner();
    assert_eq!(read.id, created.id);
    assert_eq!(read.display_name, "Ada Lovelace");

    // A reader token of the CLI reads, and may not change.
    let mut reader = client(server.address, &mint(dir.path(), "t1", "reader")).await;
    reader
        .get_user(pb::GetUserRequest {
            identity: created.id.clone(),
        })
        .await
        .expect("a reader reads");
    assert_error(
        reader.upsert_user(new_user("bob@t1.example", "Bob")).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    // Another tenant's token sees nothing of t1.
    let mut other = client(server.address, &mint(dir.path(), "t2", "admin")).await;
    assert_error(
        other
            .get_user(pb::GetUserRequest {
                identity: "ada@t1.example".into(),
            })
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    // Tokens signed with the server's key but expired 10 minutes ago, or naming no tenant, are
    // refused.
    let encoded = std::fs::read_to_string(dir.path().join("token.key")).expect("the key file");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .expect("a base64 key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap()
    };
    let claims = |tenant: &str, role: &str, iat: i64, exp: i64| {
        serde_json::json!({
            "iss": "numbers", "aud": "numbers", "sub": "test", "tenant": tenant,
            "role": role, "iat": iat, "exp": exp,
        })
    };
    // First, the crafting itself is right: a fresh token made the same way works.
    let mut fresh = client(server.address, &sign(claims("t1", "ADMIN", now, now + 600))).await;
    fresh
        .get_user(pb::GetUserRequest {
            identity: "ada@t1.example".into(),
        })
        .await
        .expect("a crafted, fresh token works");
    let mut expired = client(
        server.address,
        &sign(claims("t1", "ADMIN", now - 1200, now - 600)),
    )
    .await;
    let status = assert_error(
        expired
            .get_user(pb::GetUserRequest {
                identity: "ada@t1.example".into(),
            })
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert!(status.message().contains("expired"), "{status:?}");
    assert_error(
        expired.upsert_user(new_user("eve@t1.example", "Eve")).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    for (what, token) in [
        ("no tenant", sign(claims("", "ADMIN", now, now + 600))),
        (
            "an unknown role",
            sign(claims("t1", "SUPERUSER", now, now + 600)),
        ),
        (
            "another audience",
            sign(serde_json::json!({
                "iss": "numbers", "aud": "elsewhere", "sub": "test", "tenant": "t1",
                "role": "ADMIN", "iat": now, "exp": now + 600,
            })),
        ),
    ] {
        let mut refused = client(server.address, &token).await;
        let result = refused.list_users(pb::ListUsersRequest::default()).await;
        if let Err(status) = &result {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        }
        assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    }

    // SIGTERM stops the server gracefully.
    let (status, took) = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}

/// The log of a whole scenario, at debug level, with and without an SMTP server, holds no
/// token, no SMTP password and no email's subject or body, and no terminal colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn logs_hold_no_tokens_passwords_or_emails() {
    const PASSWORD: &str = "smtp-password-Zq8x";
    const NUMBER: &str = "+14255388123";
    for smtp in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("numbers.toml");
        // Nothing listens on the SMTP port: every delivery fails, and is logged.
        std::fs::write(
            &config,
            format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
                 from = \"Phone <phone@t1.example>\"\nusername = \"mailer\"\n\
                 password = \"{PASSWORD}\"\n",
                free_address().port()
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        let extra: Vec<&str> = if smtp {
            vec!["--config", &config]
        } else {
            vec![]
        };
        let mut server = Server::start_with_env(dir.path(), &extra, &[("RUST_LOG", "debug")]);
        server.wait_until_serving().await;
        let token = mint(dir.path(), "t1", "admin");
        let mut admin = client(server.address, &token).await;
        admin
            .update_notification_settings(pb::UpdateNotificationSettingsRequest {
                verified_email_domains: vec!["t1.example".into()],
                ..Default::default()
            })
            .await
            .expect("verify t1.example");
        admin
            .upsert_user(new_user("ada@t1.example", "Ada Lovelace"))
            .await
            .expect("create Ada");
        admin
            .assign_phone_number(pb::AssignPhoneNumberRequest {
                identity: "ada@t1.example".into(),
                phone_number: NUMBER.into(),
                phone_number_type: pb::NumberType::DirectRouting as i32,
                notify_user: Some(true),
                ..Default::default()
            })
            .await
            .expect("assign with an email");
        // The mail worker is woken by the commit; give it a moment to try.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = server.stop_and_read_log();

        let tried = if smtp {
            "email not sent"
        } else {
            "no SMTP server is configured"
        };
        assert!(
            log.contains(tried),
            "the email was not tried (smtp: {smtp}):\n{log}"
        );
        for secret in [
            token.as_str(),
            PASSWORD,
            "Your phone number is",
            "has been assigned to you",
            "\u{1b}[",
        ] {
            assert!(
                !log.contains(secret),
                "the log (smtp: {smtp}) holds {secret:?}:\n{log}"
            );
        }
    }
}

/// Starts `numbers serve --demo`, reads what it prints, and runs the printed command with the
/// Rust client. Returns the token, the tenant's numbers and the server.
async fn start_demo(data_dir: &Path) -> (Server, String, Vec<String>) {
    let mut server = Server::start(data_dir, &["--demo"]);
    let printed = server.stdout_until(|line| line.contains("grpcurl"));
    server.wait_until_serving().await;

    let token = printed
        .iter()
        .find_map(|line| line.trim().strip_prefix("export TOKEN="))
        .unwrap_or_else(|| panic!("no token printed: {printed:#?}"))
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let command = printed
        .iter()
        .find(|line| line.contains("grpcurl"))
        .unwrap()
        .trim()
        .to_owned();

    // Take the printed grpcurl command apart: -H header, -d body, address and method.
    assert!(command.starts_with("grpcurl "), "{command}");
    assert!(
        command.contains("-H \"authorization: Bearer $TOKEN\""),
        "{command}"
    );
    let body_start = command.find("-d '").expect("a -d body") + 4;
    let body_end = body_start
        + command[body_start..]
            .find('\'')
            .expect("the end of the body");
    let body: serde_json::Value =
        serde_json::from_str(&command[body_start..body_end]).expect("a JSON body");
    let rest: Vec<&str> = command[body_end + 1..].split_whitespace().collect();
    assert_eq!(
        rest.len(),
        2,
        "address and method after the body: {command}"
    );
    let address: SocketAddr = rest[0].parse().expect("the printed address");
    assert_eq!(address, server.address);
    assert_eq!(rest[1], "numbers.v1.NumberManagement/GetUser");
    let identity = body["identity"].as_str().expect("an identity").to_owned();
    assert_eq!(identity, "john@contoso.com");

    // The same call with the Rust client.
    let mut demo = client(address, &token).await;
    let john = demo
        .get_user(pb::GetUserRequest { identity })
        .await
        .expect("the printed command works")
        .into_inner();
    assert_eq!(john.user_principal_name, "john@contoso.com");
    assert_eq!(john.id, "7c0e2a51-0d1b-4c3e-9f00-000000000001");
    let numbers = all_numbers(&mut demo).await;
    (server, token, numbers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_working_command_and_loads_once() {
    let dir = tempfile::tempdir().unwrap();

    let (server, first_token, first_numbers) = start_demo(dir.path()).await;
    assert!(
        first_numbers.contains(&"+14255550101".to_owned()),
        "{first_numbers:?}"
    );
    assert_eq!(
        first_numbers.len(),
        10,
        "the demo and its simulated operator's numbers: {first_numbers:?}"
    );
    let mut demo = client(server.address, &first_token).await;
    let users = demo
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    let locations = demo
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .emergency_locations;
    // A change made between the runs survives the second load.
    let mut rename = new_user("john@contoso.com", "John Renamed");
    rename.user.as_mut().unwrap().id = "7c0e2a51-0d1b-4c3e-9f00-000000000001".into();
    rename.user.as_mut().unwrap().licenses = vec![
        pb::user::License::PhoneSystem as i32,
        pb::user::License::CallingPlan as i32,
    ];
    demo.upsert_user(rename).await.expect("rename john");
    let (status, _) = server.terminate();
    assert!(status.success(), "{status:?}");

    let (server, second_token, second_numbers) = start_demo(dir.path()).await;
    assert_eq!(
        second_numbers, first_numbers,
        "the demo numbers were loaded twice"
    );
    // The first run's token still works: the key was kept.
    let mut old = client(server.address, &first_token).await;
    let again_users = old
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        again_users.len(),
        users.len(),
        "the demo users were loaded twice"
    );
    let again_locations = old
        .list_emergency_locations(pb::ListEmergencyLocationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .emergency_locations;
    assert_eq!(
        again_locations.len(),
        locations.len(),
        "the demo locations were loaded twice"
    );
    let john = old
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        john.display_name, "John Renamed",
        "the second load overwrote a change"
    );
    let mut new = client(server.address, &second_token).await;
    new.get_user(pb::GetUserRequest {
        identity: "jack@contoso.com".into(),
    })
    .await
    .expect("the second token works");
    let (status, _) = server.terminate();
    assert!(status.success(), "{status:?}");
}

// ---- the benchmark -----------------------------------------------------------------------------

/// `numbers bench` on a small load: it starts its own server, runs every phase, and reports one
/// JSON object per phase without a failed call. Timings are not checked.
fn bench_runs_every_phase_cleanly(store: &str) {
    let mut command = numbers_command([
        "bench",
        "--store",
        store,
        "--users",
        "40",
        "--latency-calls",
        "5",
        "--duration",
        "0.5",
        "--concurrency",
        "4",
        "--read-concurrency",
        "2",
        "--connections",
        "1",
        "--format",
        "json",
    ]);
    // numbers_command clears NUMBERS_*; the PostgreSQL tests' server is named explicitly.
    if let Ok(url) = std::env::var("NUMBERS_TEST_POSTGRES_URL") {
        command.args(["--postgres-url", &url]);
    }
    let finished = run(command, Duration::from_secs(120));
    assert!(
        finished.status.success(),
        "numbers bench failed: {finished:?}"
    );
    let phases: Vec<serde_json::Value> = finished
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let names: Vec<_> = phases.iter().map(|p| p["phase"].as_str()).collect();
    assert_eq!(
        names,
        [
            "users",
            "latency",
            "assign",
            "get",
            "list",
            "export",
            "change",
            "remove",
            "bulk-users",
            "bulk-assign",
            "walk"
        ]
        .map(Some),
        "{finished:?}"
    );
    for phase in &phases {
        assert_eq!(phase["store"], store, "{phase}");
        assert!(phase["calls"].as_u64().is_some_and(|c| c > 0), "{phase}");
        assert_eq!(phase["errors"], 0, "{phase}");
    }
    assert!(
        finished.stderr.contains("server peak resident memory"),
        "{finished:?}"
    );
}

#[test]
fn bench_runs_every_phase_cleanly_on_sqlite() {
    bench_runs_every_phase_cleanly("sqlite");
}

#[test]
fn bench_runs_every_phase_cleanly_on_postgres() {
    bench_runs_every_phase_cleanly("postgres");
}
