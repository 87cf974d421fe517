//! The one way tests start the service: [`TestApp::spawn`] runs the real server on
//! `127.0.0.1:0` against a fresh database (a temporary SQLite file, or a new PostgreSQL
//! database), and hands out generated clients that talk to it over the socket.
//!
//! PostgreSQL tests use the server at `NUMBERS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail loudly when it cannot be reached:
//! they never skip.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use number_management::app::Application;
use number_management::auth::oidc::OidcSettings;
use number_management::auth::{Role, SigningKey};
use number_management::clock::{Clock, ManualClock, SystemClock};
use number_management::config::{
    DEFAULT_CALLING_PLAN_QUOTA, DEFAULT_EMAILS_PER_TENANT_PER_HOUR, DEFAULT_POOL_SIZE,
    DEFAULT_TENANT_REQUESTS_PER_SECOND, LogFormat, Settings,
};
use number_management::demo;
use number_management::domain::{
    ActivationState, Assignment, AssignmentCategory, Block, Capabilities, Capability, E164,
    NumberType, Operator, PhoneNumber, TargetKind,
};
use number_management::proto::v1 as pb;
use number_management::proto::v1::number_management_client::NumberManagementClient;
use number_management::proto::v1::operator_connect_client::OperatorConnectClient;
use number_management::server::HealthSettings;
use number_management::service::{SmtpSettings, WorkerSettings};
use number_management::store::{self, Store};
use number_management::tls::TlsSettings;
use numbers_remote::RemoteSettings;
use sqlx::Connection as _;
use tokio::sync::watch;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

/// The databases a test can run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per store for each named `async fn name(backend: Backend)`:
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}

/// A fresh, empty database that disappears with the test.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    PostgresDatabase {
        admin_url: String,
        name: String,
    },
    /// Another's database (a replica's, or a server the test runs): nothing to clean up.
    None,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("numbers.db").display());
                Self {
                    url,
                    cleanup: Cleanup::Directory(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "the PostgreSQL tests need a server at {admin_url} ({e}); start it with \
                         `pg_ctlcluster 15 main start` or set NUMBERS_TEST_POSTGRES_URL"
                    )
                });
                let name = format!("numbers_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                let _ = admin.close().await;
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("NUMBERS_TEST_POSTGRES_URL must end with /database"),
                };
                Self {
                    url,
                    cleanup: Cleanup::PostgresDatabase { admin_url, name },
                }
            }
        }
    }

    /// A database at `url` that the test keeps (and removes) itself.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            cleanup: Cleanup::None,
        }
    }

    /// Opens the store, applying the migrations.
    pub async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url, DEFAULT_POOL_SIZE)
            .await
            .expect("open the test store")
            .into()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::PostgresDatabase { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async code; a short-lived runtime on its own thread does the
            // asynchronous work.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("NUMBERS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A generated client of the tenant-facing API.
pub type Client = NumberManagementClient<InterceptedService<Channel, Bearer>>;

/// A generated client of the operator-facing API.
pub type OperatorClient = OperatorConnectClient<InterceptedService<Channel, Bearer>>;

/// How a test's service is set up.
#[derive(Clone, Debug)]
pub struct TestConfig {
    /// The Operator Connect operators.
    pub operators: Vec<Operator>,
    /// How the background workers pace themselves: quickly, by default.
    pub worker: WorkerSettings,
    /// The SMTP server emails go to; none writes them to the log.
    pub smtp: Option<SmtpSettings>,
    /// How out-of-process adapters are called: with short deadlines, by default.
    pub remote: RemoteSettings,
    /// How health checks follow the database.
    pub health: HealthSettings,
    /// A clock the test moves by hand; the system's clock when none.
    pub clock: Option<Arc<ManualClock>>,
    /// TLS of the server; plaintext when none.
    pub tls: Option<TlsSettings>,
    /// Requests a second per tenant and operator, 0 for no limit: the service's default.
    pub tenant_requests_per_second: u32,
    pub emails_per_tenant_per_hour: u32,
    /// The most Calling Plan numbers a tenant may hold: the service's default.
    pub calling_plan_quota: usize,
    /// An OpenID Connect identity provider whose tokens the service accepts too.
    pub oidc: Option<OidcSettings>,
    /// Where the service serves Prometheus metrics: nowhere, by default. The recorder is the
    /// process's, so one server of a test process may serve them.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl TestConfig {
    /// The same configuration with the demo's simulated operator (Litware Mobile) reached at
    /// `endpoint`.
    pub fn with_simulated_operator(mut self, endpoint: &str) -> Self {
        self.operators.push(demo::simulated_operator(endpoint));
        self
    }
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            operators: demo::operators(),
            worker: WorkerSettings {
                lease: Duration::from_secs(5),
                idle_poll: Duration::from_millis(50),
                batch: 16,
                backoff_base: Duration::from_millis(50),
                backoff_max: Duration::from_millis(500),
                max_failures: 5,
                max_pending: Duration::from_secs(60),
                request_id_retention: Duration::from_secs(3600),
                ..WorkerSettings::default()
            },
            smtp: None,
            remote: RemoteSettings {
                timeout: Duration::from_millis(500),
                retries: 1,
                breaker_threshold: 0,
                ..RemoteSettings::default()
            },
            health: HealthSettings::default(),
            clock: None,
            tls: None,
            tenant_requests_per_second: DEFAULT_TENANT_REQUESTS_PER_SECOND,
            emails_per_tenant_per_hour: DEFAULT_EMAILS_PER_TENANT_PER_HOUR,
            calling_plan_quota: DEFAULT_CALLING_PLAN_QUOTA,
            oidc: None,
            metrics_listen: None,
        }
    }
}

/// The running service of one test.
pub struct TestApp {
    pub store: Arc<dyn Store>,
    pub key: SigningKey,
    /// The clock the service tells the time by, when the test moves it by hand.
    pub clock: Option<Arc<ManualClock>>,
    /// Where the server listens.
    pub address: std::net::SocketAddr,
    channel: Channel,
    shutdown: Option<watch::Sender<()>>,
    _data_dir: tempfile::TempDir,
    // Dropped last: the database outlives the server using it.
    _database: TestDatabase,
}

impl TestApp {
    /// Starts the service with the demo operators configured and no data.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, demo::operators()).await
    }

    /// Starts the service with these operators and no data.
    pub async fn spawn_with(backend: Backend, operators: Vec<Operator>) -> Self {
        Self::start(
            backend,
            TestConfig {
                operators,
                ..TestConfig::default()
            },
        )
        .await
    }

    /// Starts the service as `config` says, with no data. Set TEST_LOG=1 to see its logs.
    pub async fn start(backend: Backend, config: TestConfig) -> Self {
        let database = TestDatabase::create(backend).await;
        let url = database.url.clone();
        Self::start_on(database, &url, config).await
    }

    /// Starts the service as `config` says on `database`, reached at `url` (its own URL, or
    /// one leading to it another way, such as through a proxy).
    pub async fn start_on(database: TestDatabase, url: &str, config: TestConfig) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            // The writer lives as long as the test process.
            std::mem::forget(number_management::telemetry::init(LogFormat::Human));
        }
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: config.metrics_listen,
            data_dir: data_dir.path().to_owned(),
            database_url: url.to_owned(),
            database_pool_size: DEFAULT_POOL_SIZE,
            tenant_requests_per_second: config.tenant_requests_per_second,
            emails_per_tenant_per_hour: config.emails_per_tenant_per_hour,
            calling_plan_quota: config.calling_plan_quota,
            tls: config.tls.clone(),
            log_format: LogFormat::Human,
            token_key_file: data_dir.path().join("token.key"),
            generate_token_key: true,
            local_tokens: true,
            oidc: config.oidc,
            operators: config.operators,
            calling_plan_catalogue: None,
            worker: config.worker,
            smtp: config.smtp,
            remote: config.remote,
            health: config.health,
            demo: false,
        };
        let clock = config.clock.clone().map_or_else(
            || Arc::new(SystemClock) as Arc<dyn Clock>,
            |c| c as Arc<dyn Clock>,
        );
        let application = Application::build(settings, clock)
            .await
            .expect("build the application");
        let address = application.address().expect("a bound address");
        let store = application.store().clone();
        let key = application.key().clone();
        let (shutdown, mut stopped) = watch::channel(());
        tokio::spawn(application.run(async move {
            let _ = stopped.changed().await;
        }));
        let endpoint = Channel::from_shared(format!("http://{address}")).unwrap();
        // A TLS server is called by channels the test sets up with the trust it needs.
        let channel = if config.tls.is_some() {
            endpoint.connect_lazy()
        } else {
            endpoint
                .connect()
                .await
                .expect("connect to the test server")
        };
        Self {
            store,
            key,
            clock: config.clock,
            address,
            channel,
            shutdown: Some(shutdown),
            _data_dir: data_dir,
            _database: database,
        }
    }

    /// Another replica of this service: a server with its own workers (and its own token key)
    /// on the same database. Drop it before this one, which removes the database.
    pub async fn replica(&self, config: TestConfig) -> TestApp {
        let url = self._database.url.clone();
        Self::start_on(TestDatabase::at(&url), &url, config).await
    }

    /// Starts the service as `config` says, telling the time by a clock the test moves with
    /// [`TestApp::advance`].
    pub async fn start_with_manual_clock(backend: Backend, config: TestConfig) -> Self {
        Self::start(
            backend,
            TestConfig {
                clock: Some(Arc::new(ManualClock::new())),
                ..config
            },
        )
        .await
    }

    /// Moves the service's clock forward: the app must run on a manual clock.
    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("the app runs on the system clock: start it with a manual one")
            .advance(by);
    }

    /// The service's current time.
    pub fn now(&self) -> SystemTime {
        match &self.clock {
            Some(clock) => clock.now(),
            None => SystemClock.now(),
        }
    }

    /// Starts the service and loads the Contoso demo tenant.
    pub async fn spawn_demo(backend: Backend) -> Self {
        Self::start_demo(backend, TestConfig::default()).await
    }

    /// Starts the service as `config` says and loads the Contoso demo tenant (and the numbers
    /// of the simulated operator, when `config` has it).
    pub async fn start_demo(backend: Backend, config: TestConfig) -> Self {
        let simulated = config
            .operators
            .iter()
            .any(|o| o.id == demo::SIMULATED_OPERATOR);
        let app = Self::start(backend, config).await;
        demo::load(app.store.as_ref())
            .await
            .expect("load the demo tenant");
        if simulated {
            demo::load_simulated(app.store.as_ref())
                .await
                .expect("load the simulated operator's numbers");
        }
        app
    }

    /// A token for `tenant` with `role`, valid for ten minutes by the service's clock.
    pub fn token(&self, tenant: &str, role: Role) -> String {
        self.key
            .mint_at(tenant, "test", role, Duration::from_secs(600), self.now())
            .expect("mint a token")
    }

    /// A client that calls as an admin of `tenant`.
    pub fn admin(&self, tenant: &str) -> Client {
        self.client_with_token(Some(&self.token(tenant, Role::Admin)))
    }

    /// A client that calls as a reader of `tenant`.
    pub fn reader(&self, tenant: &str) -> Client {
        self.client_with_token(Some(&self.token(tenant, Role::Reader)))
    }

    /// A client that sends `token` (or no authorization at all).
    pub fn client_with_token(&self, token: Option<&str>) -> Client {
        let header = token.map(|t| format!("Bearer {t}").parse().expect("ascii token"));
        NumberManagementClient::with_interceptor(self.channel.clone(), Bearer(header))
    }

    /// A client of the OperatorConnect service that calls as operator `operator_id`.
    pub fn operator(&self, operator_id: &str) -> OperatorClient {
        let token = self
            .key
            .mint_operator(operator_id, "test", Duration::from_secs(600))
            .expect("mint an operator token");
        let header = format!("Bearer {token}").parse().expect("ascii token");
        OperatorConnectClient::with_interceptor(self.channel.clone(), Bearer(Some(header)))
    }

    /// A plain channel to the server, for health and reflection clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Adds numbers straight to the inventory (there is no RPC for it in this API version).
    pub async fn seed_numbers(&self, tenant: &str, numbers: &[PhoneNumber]) {
        let mut tx = self.store.write().await.expect("write transaction");
        for number in numbers {
            assert!(
                tx.insert_number(tenant, number)
                    .await
                    .expect("insert number"),
                "{} was in the inventory already",
                number.number
            );
        }
        tx.commit().await.expect("commit");
    }

    /// Waits (at most 10 s) until the mail worker has handled every email of `tenant`.
    pub async fn until_no_email_pending(&self, tenant: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut read = self.store.read().await.expect("read");
            if read
                .notifications(tenant, true)
                .await
                .expect("notifications")
                .is_empty()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "an email was never handled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a user through the API and returns it.
    pub async fn user(
        &self,
        tenant: &str,
        upn: &str,
        display_name: &str,
        usage_location: &str,
    ) -> pb::User {
        self.admin(tenant)
            .upsert_user(pb::UpsertUserRequest {
                user: Some(pb::User {
                    user_principal_name: upn.into(),
                    display_name: display_name.into(),
                    usage_location: usage_location.into(),
                    licenses: vec![
                        pb::user::License::PhoneSystem as i32,
                        pb::user::License::CallingPlan as i32,
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("upsert user")
            .into_inner()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

// ---- the binary, run as a process -------------------------------------------------------------

/// The `numbers` binary, with no configuration leaking in from the environment.
pub fn numbers_command<I, S>(args: I) -> std::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_numbers"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NUMBERS_") {
            command.env_remove(key);
        }
    }
    command
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    command
}

/// A local address nothing listens on (bound, then released).
pub fn free_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a bound address")
}

/// A channel to a server at `address`.
pub async fn channel_to(address: std::net::SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{address}"))
        .expect("a socket address is a valid URI")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

/// The interceptor that sends `token`.
pub fn bearer(token: &str) -> Bearer {
    Bearer(Some(
        format!("Bearer {token}").parse().expect("an ASCII token"),
    ))
}

/// A tenant-facing client of the server at `address`, sending `token`.
pub async fn client_at(address: std::net::SocketAddr, token: &str) -> Client {
    NumberManagementClient::with_interceptor(
        channel_to(address).await.expect("connect"),
        bearer(token),
    )
}

/// An operator-facing client of the server at `address`, sending `token`.
pub async fn operator_client_at(address: std::net::SocketAddr, token: &str) -> OperatorClient {
    OperatorConnectClient::with_interceptor(
        channel_to(address).await.expect("connect"),
        bearer(token),
    )
}

/// An unassigned, activated inventory record for `number`.
pub fn number(number: &str, number_type: NumberType) -> PhoneNumber {
    let now = SystemTime::now();
    PhoneNumber {
        number: E164::parse(number).expect("a valid test number"),
        number_type,
        operator_id: (number_type == NumberType::OperatorConnect)
            .then(|| "fabrikam-telecom".to_owned()),
        city: String::new(),
        capabilities: [Capability::UserAssignment]
            .into_iter()
            .collect::<Capabilities>(),
        assignment: None,
        activation_state: ActivationState::Activated,
        emergency_location_id: None,
        location_update_supported: true,
        block: Block::None,
        operation_id: None,
        tags: Vec::new(),
        version: 1,
        create_time: now,
        update_time: now,
    }
}

/// The same record, assigned to `user_id` as `category`.
pub fn assigned(
    mut record: PhoneNumber,
    user_id: &str,
    category: AssignmentCategory,
) -> PhoneNumber {
    record.assignment = Some(Assignment {
        target_id: user_id.to_owned(),
        target_user_principal_name: String::new(),
        target_kind: TargetKind::User,
        category,
    });
    record
}

/// Asserts that `result` failed with `code` and `ErrorInfo.reason` `reason` (domain
/// `numbers.v1`), and returns the status for further checks.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("the call should have failed");
    assert_eq!(status.code(), code, "wrong code: {status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "wrong reason: {status:?}");
    assert_eq!(info.domain, "numbers.v1");
    status
}

/// The fields named by the `BadRequest` details of `status`.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}
