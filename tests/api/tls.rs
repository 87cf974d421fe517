//! TLS, for real: certificates made at test time with rcgen, the server on a socket, clients
//! that trust (or present) what each test says. The server's certificate is replaced while it
//! runs (by polling, and by SIGHUP in a `numbers serve` process); mutual TLS keeps health open
//! to callers without a certificate; bad TLS settings stop `numbers serve` in one line; the
//! remote adapter's client speaks mutual TLS; PostgreSQL connections can require TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use number_management::auth::Role;
use number_management::proto::v1 as pb;
use number_management::proto::v1::number_management_client::NumberManagementClient;
use number_management::tls::TlsSettings;
use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::Provider as _;
use numbers_remote::{AdapterService, ClientTls, RemoteProvider, RemoteSettings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use sqlx::Connection as _;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt as _;

use crate::calls::{assign, assign_request, remove, remove_request};
use crate::helpers::{
    Backend, Client, TestApp, TestConfig, TestDatabase, assert_error, bearer, free_address,
    numbers_command,
};

const TENANT: &str = "contoso";

// ---- certificates ------------------------------------------------------------------------------

/// A certificate authority made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
struct Pair {
    cert: String,
    key: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pair {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A certificate for a server on this machine.
    fn server(&self) -> Pair {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A certificate for a client.
    fn client(&self, name: &str) -> Pair {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The server's TLS files in a temporary directory.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(server: &Pair, client_ca: Option<&TestCa>) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write(server);
        if let Some(ca) = client_ca {
            std::fs::write(files.client_ca(), ca.pem()).unwrap();
        }
        files
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    fn client_ca(&self) -> PathBuf {
        self.dir.path().join("client-ca.pem")
    }

    fn write(&self, pair: &Pair) {
        std::fs::write(self.cert(), &pair.cert).unwrap();
        std::fs::write(self.key(), &pair.key).unwrap();
    }

    fn settings(&self, mutual: bool) -> TlsSettings {
        TlsSettings {
            reload_interval: Duration::from_millis(100),
            ..TlsSettings::new(self.cert(), self.key(), mutual.then(|| self.client_ca()))
        }
    }
}

// ---- clients -----------------------------------------------------------------------------------

/// How a test client sets up its TLS: whom it trusts, and what it presents.
fn client_tls(trusted: &TestCa, identity: Option<&Pair>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trusted.pem()))
        .domain_name("localhost");
    match identity {
        Some(pair) => config.identity(Identity::from_pem(&pair.cert, &pair.key)),
        None => config,
    }
}

/// A channel over a new connection to `address`, or why there is none.
async fn connect(address: SocketAddr, tls: ClientTlsConfig) -> Result<Channel, String> {
    Channel::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| format!("{e:?}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

/// A tenant admin's client on `channel`.
fn admin(app: &TestApp, channel: Channel) -> Client {
    NumberManagementClient::with_interceptor(channel, bearer(&app.token(TENANT, Role::Admin)))
}

/// Lists the tenant's users: the API answers.
async fn list_users(client: &mut Client) -> Result<pb::ListUsersResponse, tonic::Status> {
    client
        .list_users(pb::ListUsersRequest::default())
        .await
        .map(|r| r.into_inner())
}

/// Asks `grpc.health.v1` about the server as a whole.
async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(answer.into_inner().status())
}

/// The services reflection lists.
async fn reflected_services(channel: Channel) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let answer = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner()
        .message()
        .await?;
    match answer.and_then(|a| a.message_response) {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("not a list of services: {other:?}"),
    }
}

/// Starts the service on SQLite with `tls`.
async fn start(tls: TlsSettings) -> TestApp {
    TestApp::start(
        Backend::Sqlite,
        TestConfig {
            tls: Some(tls),
            ..TestConfig::default()
        },
    )
    .await
}

/// Connects again and again for up to ten seconds until a connection trusting `trusted`
/// succeeds (the server presents a certificate `trusted` signed).
async fn wait_until_trusted(address: SocketAddr, trusted: &TestCa) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(address, client_tls(trusted, None)).await {
            Ok(channel) => return channel,
            Err(error) if Instant::now() > deadline => {
                panic!("the server never presented the new certificate: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

// ---- TLS ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_trusting_the_ca_calls_the_api_over_tls() {
    let ca = TestCa::new("test CA");
    let files = Files::new(&ca.server(), None);
    let app = start(files.settings(false)).await;

    let channel = connect(app.address, client_tls(&ca, None))
        .await
        .expect("a TLS connection");
    assert_eq!(
        list_users(&mut admin(&app, channel.clone()))
            .await
            .unwrap()
            .users
            .len(),
        0
    );
    assert_eq!(health(channel).await.unwrap(), ServingStatus::Serving);
    // Tokens are checked as ever.
    let mut anonymous =
        NumberManagementClient::new(connect(app.address, client_tls(&ca, None)).await.unwrap());
    assert_error(
        anonymous.list_users(pb::ListUsersRequest::default()).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plaintext_and_untrusting_clients_cannot_call_a_tls_server() {
    let ca = TestCa::new("test CA");
    let files = Files::new(&ca.server(), None);
    let app = start(files.settings(false)).await;

    let plaintext = Channel::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    // The server's TLS alert reads to an HTTP/2 client as a malformed frame.
    let refused = list_users(&mut admin(&app, plaintext)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");
    assert!(
        refused.message().contains("h2 protocol error"),
        "{refused:?}"
    );

    let stranger = TestCa::new("another CA");
    let error = connect(app.address, client_tls(&stranger, None))
        .await
        .expect_err("a client that does not trust the server's CA");
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The server still serves the clients that trust it.
    let channel = connect(app.address, client_tls(&ca, None)).await.unwrap();
    list_users(&mut admin(&app, channel)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_client_does_not_hold_up_the_handshakes_of_others() {
    let ca = TestCa::new("test CA");
    let files = Files::new(&ca.server(), None);
    let app = start(files.settings(false)).await;
    // Connected, never says hello.
    let _silent: Vec<_> =
        futures::future::join_all((0..4).map(|_| tokio::net::TcpStream::connect(app.address)))
            .await;
    let started = Instant::now();
    let channel = connect(app.address, client_tls(&ca, None)).await.unwrap();
    list_users(&mut admin(&app, channel)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The accepted sockets have Nagle's algorithm off, as without TLS (see transport.rs): else
/// every response's trailers wait for the client's delayed ACK, about 40 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_calls_are_not_held_back_by_nagle() {
    const STALL: Duration = Duration::from_millis(40);
    let ca = TestCa::new("test CA");
    let files = Files::new(&ca.server(), None);
    let app = start(files.settings(false)).await;
    let mut client = admin(
        &app,
        connect(app.address, client_tls(&ca, None)).await.unwrap(),
    );
    client
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                user_principal_name: "pat@contoso.com".into(),
                display_name: "Pat".into(),
                usage_location: "US".into(),
                licenses: vec![pb::user::License::PhoneSystem as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("upsert user");
    let mut quickest = Duration::MAX;
    for i in 0..12 {
        let number = format!("+1425556{i:04}");
        let started = Instant::now();
        let request = pb::AssignPhoneNumberRequest {
            phone_number_type: pb::NumberType::DirectRouting as i32,
            notify_user: Some(false),
            ..assign_request("pat@contoso.com", &number)
        };
        assign(&mut client, request).await.expect("assign");
        remove(&mut client, remove_request("pat@contoso.com", &number))
            .await
            .expect("remove");
        // Two calls per round: both stalled would take at least twice the delayed ACK.
        quickest = quickest.min(started.elapsed() / 2);
    }
    assert!(
        quickest < STALL / 2,
        "the quickest call took {quickest:?}: responses wait for the client's delayed ACK"
    );
}

// ---- mutual TLS --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_mutual_tls_the_api_needs_a_client_certificate_and_health_does_not() {
    let ca = TestCa::new("test CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca.server(), Some(&clients));
    let app = start(files.settings(true)).await;

    // A load balancer without a certificate: health and reflection answer, the API does not.
    let without = connect(app.address, client_tls(&ca, None))
        .await
        .expect("TLS without a client certificate");
    assert_eq!(
        health(without.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    let services = reflected_services(without.clone()).await.unwrap();
    assert!(
        services.iter().any(|s| s == "numbers.v1.NumberManagement"),
        "{services:?}"
    );
    assert_error(
        list_users(&mut admin(&app, without.clone())).await,
        Code::Unauthenticated,
        "CLIENT_CERTIFICATE_REQUIRED",
    );
    let operator_token = app
        .key
        .mint_operator("northwind-voice", "test", Duration::from_secs(600))
        .unwrap();
    let mut operator =
        number_management::proto::v1::operator_connect_client::OperatorConnectClient::with_interceptor(
            without,
            bearer(&operator_token),
        );
    assert_error(
        operator
            .upload_numbers(pb::UploadNumbersRequest::default())
            .await,
        Code::Unauthenticated,
        "CLIENT_CERTIFICATE_REQUIRED",
    );

    // A service with a certificate of the client CA: the API answers, and still wants a token.
    let service = clients.client("billing.internal");
    let with = connect(app.address, client_tls(&ca, Some(&service)))
        .await
        .expect("TLS with a client certificate");
    list_users(&mut admin(&app, with.clone())).await.unwrap();
    assert_error(
        NumberManagementClient::new(with)
            .list_users(pb::ListUsersRequest::default())
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );

    // A certificate of another CA is refused at the handshake.
    let impostor = TestCa::new("impostor CA").client("billing.internal");
    // TLS 1.3: the server's refusal arrives after the client's side of the handshake is done,
    // so it is the first call that fails.
    let impostor = Channel::from_shared(format!("https://{}", app.address))
        .unwrap()
        .tls_config(client_tls(&ca, Some(&impostor)))
        .unwrap()
        .connect_lazy();
    let refused = list_users(&mut admin(&app, impostor)).await.unwrap_err();
    // The client learns it from the connection closing under it, which hyper reports in one of
    // three ways; no service answered.
    assert!(
        matches!(
            refused.code(),
            Code::Unknown | Code::Cancelled | Code::Unavailable
        ),
        "{refused:?}"
    );
    assert!(
        refused.get_error_details().error_info().is_none(),
        "{refused:?}"
    );
}

// ---- reloading ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_connections_see_the_certificate_that_replaced_the_files() {
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let files = Files::new(&old_ca.server(), None);
    let app = start(files.settings(false)).await;
    let old_connection = connect(app.address, client_tls(&old_ca, None))
        .await
        .unwrap();

    // A half-written pair is not served: the old certificate stays.
    std::fs::write(files.cert(), "-----BEGIN CERTIFICATE-----\ntrunc").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let channel = connect(app.address, client_tls(&old_ca, None))
        .await
        .expect("the old certificate, kept after a failed reload");
    list_users(&mut admin(&app, channel)).await.unwrap();

    files.write(&new_ca.server());
    let channel = wait_until_trusted(app.address, &new_ca).await;
    list_users(&mut admin(&app, channel)).await.unwrap();
    assert!(
        connect(app.address, client_tls(&old_ca, None))
            .await
            .is_err(),
        "new connections get the new certificate only"
    );
    // Connections made before go on.
    list_users(&mut admin(&app, old_connection)).await.unwrap();
}

/// A `numbers serve` process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets the modification time of `path` back to `time`.
fn set_modified(path: &Path, time: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_makes_numbers_serve_reload_its_certificate() {
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let files = Files::new(&old_ca.server(), None);
    let data = tempfile::tempdir().unwrap();
    let address = free_address();
    let child = numbers_command([
        "serve".as_ref(),
        "--listen".as_ref(),
        address.to_string().as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
        "--tls-cert".as_ref(),
        files.cert().as_os_str(),
    ])
    .env("NUMBERS_TLS_KEY", files.key())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start numbers serve");
    let process = Process(child);
    let channel = wait_until_trusted(address, &old_ca).await;
    assert_eq!(health(channel).await.unwrap(), ServingStatus::Serving);

    // Replaced with the same modification times: only the signal can tell the server.
    let modified = |path: &Path| std::fs::metadata(path).unwrap().modified().unwrap();
    let (cert_time, key_time) = (modified(&files.cert()), modified(&files.key()));
    files.write(&new_ca.server());
    set_modified(&files.cert(), cert_time);
    set_modified(&files.key(), key_time);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let channel = wait_until_trusted(address, &new_ca).await;
    assert_eq!(health(channel).await.unwrap(), ServingStatus::Serving);
}

// ---- start-up errors ---------------------------------------------------------------------------

/// Runs `numbers serve` with `args` and returns its one line of error.
fn start_up_error(args: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = numbers_command(["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    command
        .arg(data.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Process(command.spawn().expect("start numbers serve"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "numbers serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!child.0.try_wait().unwrap().unwrap().success());
    lines[0].to_owned()
}

#[test]
fn bad_tls_settings_stop_numbers_serve_in_one_line() {
    let ca = TestCa::new("test CA");
    let files = Files::new(&ca.server(), Some(&ca));
    let (cert, key, client_ca) = (
        files.cert().display().to_string(),
        files.key().display().to_string(),
        files.client_ca().display().to_string(),
    );
    let line = start_up_error(&["--tls-cert", &cert]);
    assert!(
        line.contains("--tls-cert and --tls-key go together"),
        "{line}"
    );
    let line = start_up_error(&["--tls-client-ca", &client_ca]);
    assert!(line.contains("--tls-client-ca needs --tls-cert"), "{line}");

    let missing = files.dir.path().join("missing.pem").display().to_string();
    let line = start_up_error(&["--tls-cert", &missing, "--tls-key", &key]);
    assert!(line.contains(&format!("cannot read {missing}")), "{line}");

    let garbage = files.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all").unwrap();
    let garbage = garbage.display().to_string();
    let line = start_up_error(&["--tls-cert", &garbage, "--tls-key", &key]);
    assert!(line.contains(&garbage), "{line}");
    let line = start_up_error(&["--tls-cert", &cert, "--tls-key", &garbage]);
    assert!(
        line.contains(&garbage) && line.contains("private key"),
        "{line}"
    );
    let line = start_up_error(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &garbage,
    ]);
    assert!(line.contains(&garbage), "{line}");

    let other_key = files.dir.path().join("other.key");
    std::fs::write(&other_key, ca.server().key).unwrap();
    let other_key = other_key.display().to_string();
    let line = start_up_error(&["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(
        line.contains(&format!(
            "the key {other_key} does not go with the certificate {cert}"
        )),
        "{line}"
    );
}

// ---- the remote adapter's client ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_remote_adapter_client_speaks_mutual_tls() {
    let ca = TestCa::new("adapter CA");
    let clients = TestCa::new("client CA");
    let server = ca.server();
    let operator = OperatorConnect::new(OperatorSettings {
        id: "litware-mobile".into(),
        display_name: "Litware Mobile".into(),
        countries: vec!["US".into()],
        tenant_location_update_allowed: true,
    });
    let descriptor = operator.descriptor().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let adapter = tokio::spawn(
        Server::builder()
            .tls_config(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(&server.cert, &server.key))
                    .client_ca_root(Certificate::from_pem(clients.pem())),
            )
            .unwrap()
            .add_service(AdapterService::new(Arc::new(operator)).into_server())
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let identity = clients.client("numbers");
    let provider = |tls: ClientTls| {
        RemoteProvider::new(
            descriptor.clone(),
            RemoteSettings {
                endpoint: format!("https://{address}"),
                timeout: Duration::from_secs(2),
                retries: 0,
                breaker_threshold: 0,
                tls,
                ..RemoteSettings::default()
            },
        )
        .expect("a valid endpoint")
    };
    let trusting = ClientTls {
        ca: Some(ca.pem().into_bytes()),
        identity: Some((identity.cert.into_bytes(), identity.key.into_bytes())),
    };
    let described = provider(trusting.clone())
        .describe()
        .await
        .expect("describe over mTLS");
    assert_eq!(described.id, "litware-mobile");

    let anonymous = ClientTls {
        identity: None,
        ..trusting.clone()
    };
    // The adapter refuses the handshake: the connection closes under the call, which hyper
    // reports as a transport error or as the call cancelled.
    let error = provider(anonymous)
        .describe()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("transport error") || error.contains("canceled"),
        "{error}"
    );
    let untrusting = ClientTls {
        ca: Some(TestCa::new("another CA").pem().into_bytes()),
        ..trusting
    };
    let error = provider(untrusting).describe().await.unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    adapter.abort();
}

// ---- PostgreSQL --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_can_require_tls() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let url = format!("{}?sslmode=require", database.url);
    let mut connection = sqlx::PgConnection::connect(&url)
        .await
        .expect("a TLS connection to PostgreSQL: is ssl on in postgresql.conf?");
    let (encrypted,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted, "sslmode=require gave a plaintext connection");
    let _ = connection.close().await;

    let app = TestApp::start_on(database, &url, TestConfig::default()).await;
    app.user(TENANT, "pat@contoso.com", "Pat", "US").await;
    let users = list_users(&mut app.admin(TENANT)).await.unwrap();
    assert_eq!(users.users.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_command_line_speaks_mutual_tls() {
    let ca = TestCa::new("test CA");
    let clients = TestCa::new("client CA");
    let files = Files::new(&ca.server(), Some(&clients));
    let app = start(files.settings(true)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    let admin_pair = clients.client("admin-laptop");
    std::fs::write(path("client.pem"), &admin_pair.cert).unwrap();
    std::fs::write(path("client.key"), &admin_pair.key).unwrap();
    let server = format!("https://localhost:{}", app.address.port());
    let token = app.token(TENANT, Role::Reader);
    let run = |extra: &[&str]| {
        let mut args = vec!["users", "search", "--server", &server, "--token", &token];
        args.extend_from_slice(extra);
        let mut command = numbers_command(&args);
        command.env("NUMBERS_CLI_CONFIG", path("cli.toml"));
        tokio::process::Command::from(command).output()
    };

    let with = run(&[
        "--ca-cert",
        &path("ca.pem"),
        "--client-cert",
        &path("client.pem"),
        "--client-key",
        &path("client.key"),
    ])
    .await
    .unwrap();
    assert!(with.status.success(), "{with:?}");
    assert!(String::from_utf8_lossy(&with.stdout).contains("user principal name"));

    // Without its certificate the API refuses it, and says why (exit 6: not allowed).
    let without = run(&["--ca-cert", &path("ca.pem")]).await.unwrap();
    assert_eq!(without.status.code(), Some(6), "{without:?}");
    assert!(String::from_utf8_lossy(&without.stderr).contains("CLIENT_CERTIFICATE_REQUIRED"));

    // A server it does not trust is not talked to.
    let untrusted = run(&[]).await.unwrap();
    assert_eq!(untrusted.status.code(), Some(5), "{untrusted:?}");
}
