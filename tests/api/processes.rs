//! The real `numbers` binary in separate processes, as it runs in production: a service killed
//! with SIGKILL in the middle of provisioning (the operator holding its changes pending, or a
//! provider call in flight) resumes its pending work when it comes back; two replicas sharing
//! one PostgreSQL database complete each provisioning job exactly once, and settle an operation
//! of several numbers; and the README's demo shows a pending assignment becoming activated.
//!
//! The operator (Litware Mobile) is the operator simulator, reached over the remote adapter
//! protocol: in the test process (so the test reads its statistics and steers it), except for
//! the demo, which runs its own. Every process a test starts is killed when the test ends, even
//! when it fails; a failing test prints the end of each service's log.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use number_management::domain::E164;
use number_management::proto::v1 as pb;
use numbers_operator_simulator::proto::{GetStatsRequest, SetLatencyRequest};
use numbers_operator_simulator::{OperatorSettings, RunningSimulator, SimulatorSettings};
use sqlx::Connection as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{
    Backend, TestDatabase, channel_to as channel, client_at, free_address, numbers_command,
    operator_client_at,
};
use crate::on_both_stores;

/// The host part of every service's worker id (`<host>-<pid>-<random>`), so a test can tell
/// from `completed_by` which process finished a job.
const HOST: &str = "processes-test";

/// The operator the tests configure out of process.
const OPERATOR: &str = "litware-mobile";

// ---- processes ---------------------------------------------------------------------------------

/// The `numbers` binary, named [`HOST`] so worker ids are predictable.
fn numbers<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = numbers_command(args);
    command.env("HOSTNAME", HOST);
    command
}

/// A running `numbers serve`, its output going to a log file. Killed on drop unless it already
/// exited; when the test is failing, the end of its log is printed.
struct Service {
    label: String,
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Service {
    /// Starts `numbers serve --listen <address> <args>`, logging to `<log_dir>/<label>.log`.
    fn start(label: &str, address: SocketAddr, args: &[String], log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{label}.log"));
        let out = File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let mut all = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            address.to_string(),
        ];
        all.extend(args.iter().cloned());
        let child = numbers(&all)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start numbers serve");
        Self {
            label: label.to_owned(),
            child,
            address,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The prefix of this process's worker id.
    fn worker_prefix(&self) -> String {
        format!("{HOST}-{}-", self.pid())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until the service answers health checks as SERVING.
    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited early with {status}:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if let Ok(channel) = channel(self.address).await {
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
                "{} never started serving:\n{}",
                self.label,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL (`kill -9`: no shutdown code runs, leases stay as they
    /// were) and waits until it is gone.
    fn kill_hard(&mut self) {
        self.child.kill().expect("send SIGKILL");
        let status = self.child.wait().expect("wait for the killed service");
        assert_eq!(
            status.signal(),
            Some(9),
            "{} should have died of SIGKILL: {status:?}",
            self.label
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- end of the log of {} (pid {}) ----\n{}",
                self.label,
                self.child.id(),
                self.log_tail()
            );
        }
    }
}

/// Runs `numbers token <args>` and answers the token it prints last.
fn mint(args: &[&str]) -> String {
    let mut command = numbers(std::iter::once("token").chain(args.iter().copied()));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start numbers token");
    let started = Instant::now();
    while child.try_wait().expect("wait for numbers token").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("numbers token {args:?} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child
        .wait_with_output()
        .expect("the output of numbers token");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "numbers token {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = stdout
        .lines()
        .last()
        .expect("a line of output")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {stdout}");
    token
}

/// Writes a configuration declaring Litware Mobile at the simulator's `endpoint`, and a quick
/// worker with a `lease_seconds` lease.
fn write_config(dir: &Path, endpoint: &str, lease_seconds: u64) -> PathBuf {
    let path = dir.join("numbers.toml");
    let text = format!(
        "[[operators]]\n\
         id = \"{OPERATOR}\"\n\
         display_name = \"Litware Mobile\"\n\
         countries = [\"US\"]\n\
         tenant_location_update_allowed = true\n\
         endpoint = \"{endpoint}\"\n\
         \n\
         [worker]\n\
         lease_seconds = {lease_seconds}\n\
         poll_interval_ms = 100\n\
         backoff_base_ms = 100\n\
         backoff_max_seconds = 1\n\
         \n\
         [remote_adapters]\n\
         timeout_ms = 3000\n\
         retries = 1\n"
    );
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// Starts Litware Mobile's simulator in the test process.
async fn start_simulator(activation_delay: Duration) -> RunningSimulator {
    RunningSimulator::start(SimulatorSettings {
        operator: OperatorSettings {
            id: OPERATOR.into(),
            display_name: "Litware Mobile".into(),
            countries: vec!["US".into()],
            tenant_location_update_allowed: true,
        },
        activation_delay,
        ..SimulatorSettings::default()
    })
    .await
    .expect("start the operator simulator")
}

/// Accepted and completed activations per number, as the simulator counts them (an activation
/// repeated with the same idempotency key counts once).
async fn activations(simulator: &RunningSimulator) -> BTreeMap<String, (u64, u64)> {
    simulator
        .control()
        .get_stats(GetStatsRequest {})
        .await
        .expect("GetStats")
        .into_inner()
        .numbers
        .into_iter()
        .map(|n| {
            let a = n.activations.unwrap_or_default();
            (n.phone_number, (a.accepted, a.completed))
        })
        .collect()
}

// ---- clients -----------------------------------------------------------------------------------

type Tenant = crate::helpers::Client;
type Operator = crate::helpers::OperatorClient;

async fn tenant_client(address: SocketAddr, token: &str) -> Tenant {
    client_at(address, token).await
}

async fn operator_client(address: SocketAddr, token: &str) -> Operator {
    operator_client_at(address, token).await
}

async fn assign_pending(client: &mut Tenant, identity: &str, number: &str) -> String {
    let answer = client
        .assign_phone_number(pb::AssignPhoneNumberRequest {
            identity: identity.into(),
            phone_number: number.into(),
            notify_user: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("assign {number} to {identity}: {e:?}"))
        .into_inner();
    let phone = answer.phone_number.expect("the number");
    assert_eq!(
        phone.activation_state(),
        pb::ActivationState::AssignmentPending,
        "{number} waits for the operator: {phone:?}"
    );
    let user = answer.user.expect("the user");
    assert!(
        !user.enterprise_voice_enabled,
        "enterprise voice waits for the operator: {user:?}"
    );
    let operation = answer.operation.expect("an operation");
    assert!(
        matches!(
            operation.state(),
            pb::operation::State::Pending | pb::operation::State::Running
        ),
        "{operation:?}"
    );
    assert_eq!(phone.operation_id, operation.id);
    operation.id
}

/// Polls GetOperation until every one of `ids` SUCCEEDED, failing on a FAILED one or at
/// `limit`.
async fn wait_until_succeeded(client: &mut Tenant, ids: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut left: BTreeSet<String> = ids.iter().cloned().collect();
    loop {
        let mut states = BTreeMap::new();
        for id in left.clone() {
            let operation = client
                .get_operation(pb::GetOperationRequest {
                    id: id.clone(),
                    ..Default::default()
                })
                .await
                .expect("GetOperation")
                .into_inner();
            match operation.state() {
                pb::operation::State::Succeeded => {
                    left.remove(&id);
                }
                pb::operation::State::Failed => panic!("operation {id} failed: {operation:?}"),
                state => {
                    states.insert(id, (state, operation.steps));
                }
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} operations had not succeeded after {limit:?}: {states:#?}",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many PROVISIONING_SUCCEEDED events the audit trail holds about `number`.
async fn provisioning_succeeded(client: &mut Tenant, number: &str) -> usize {
    let mut request = pb::ListAuditEventsRequest {
        phone_number: number.into(),
        page_size: 1000,
        ..Default::default()
    };
    let mut count = 0;
    loop {
        let page = client
            .list_audit_events(request.clone())
            .await
            .expect("ListAuditEvents")
            .into_inner();
        count += page
            .audit_events
            .iter()
            .filter(|e| e.action() == pb::AuditAction::ProvisioningSucceeded)
            .count();
        if page.next_page_token.is_empty() {
            return count;
        }
        request.page_token = page.next_page_token;
    }
}

/// Checks that `number` is activated and assigned to `upn`, who has enterprise voice.
async fn assert_activated(client: &mut Tenant, number: &str, upn: &str) {
    let phone = client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: number.into(),
        })
        .await
        .expect("GetPhoneNumber")
        .into_inner();
    assert_eq!(
        phone.activation_state(),
        pb::ActivationState::Activated,
        "{phone:?}"
    );
    assert_eq!(
        phone.assignment_status(),
        pb::AssignmentStatus::UserAssigned,
        "{phone:?}"
    );
    assert_eq!(phone.assigned_to_user_principal_name, upn, "{phone:?}");
    let user = client
        .get_user(pb::GetUserRequest {
            identity: upn.into(),
        })
        .await
        .expect("GetUser")
        .into_inner();
    assert!(user.enterprise_voice_enabled, "{user:?}");
    assert!(user.phone_numbers.contains(&number.to_owned()), "{user:?}");
}

// ---- the database, read directly ---------------------------------------------------------------

/// One provisioning job as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobRow {
    phone_number: String,
    state: String,
    completed_by: Option<String>,
    lease_owner: Option<String>,
    ticket: Option<String>,
}

/// Every provisioning job of `tenant`, read straight from the database at `url`.
async fn jobs(url: &str, tenant: &str) -> Vec<JobRow> {
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    const SQL: &str = "SELECT phone_number, state, completed_by, lease_owner, ticket \
         FROM provisioning_jobs WHERE tenant_id = $1 ORDER BY phone_number, id";
    let rows: Vec<Row> = if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        sqlx::query_as(SQL)
            .bind(tenant)
            .fetch_all(&mut conn)
            .await
            .expect("read the provisioning jobs")
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        sqlx::query_as(SQL)
            .bind(tenant)
            .fetch_all(&mut conn)
            .await
            .expect("read the provisioning jobs")
    };
    rows.into_iter()
        .map(
            |(phone_number, state, completed_by, lease_owner, ticket)| JobRow {
                phone_number,
                state,
                completed_by,
                lease_owner,
                ticket,
            },
        )
        .collect()
}

// ---- a killed service ----------------------------------------------------------------------------

/// The demo tenant served with Litware Mobile out of process (a simulator in the test), a
/// quick worker with 2-second leases, and the `numbers serve` arguments to start (and restart)
/// the service with.
struct KillSetup {
    simulator: RunningSimulator,
    args: Vec<String>,
    address: SocketAddr,
    data_dir: PathBuf,
    database_url: String,
    dir: tempfile::TempDir,
    // Dropped last: the database outlives everything using it.
    _database: Option<TestDatabase>,
}

/// The numbers the killed-service tests assign, and to whom.
const ASSIGNMENTS: [(&str, &str); 2] = [
    ("+14255550301", "john@contoso.com"),
    ("+14255550302", "jack@contoso.com"),
];

/// Litware Mobile's activation delay in the killed-service tests.
const ACTIVATION_DELAY: Duration = Duration::from_secs(2);

impl KillSetup {
    async fn new(backend: Backend) -> Self {
        let simulator = start_simulator(ACTIVATION_DELAY).await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let database = match backend {
            Backend::Postgres => Some(TestDatabase::create(Backend::Postgres).await),
            Backend::Sqlite => None,
        };
        let database_url = match &database {
            Some(database) => database.url.clone(),
            None => format!("sqlite://{}", data_dir.join("numbers.db").display()),
        };
        let config = write_config(dir.path(), &simulator.endpoint(), 2);
        let mut args = vec![
            "--demo".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        if let Some(database) = &database {
            args.extend(["--database-url".to_owned(), database.url.clone()]);
        }
        Self {
            simulator,
            args,
            address: free_address(),
            data_dir,
            database_url,
            dir,
            _database: database,
        }
    }

    /// Starts the service (again) with the same command, and waits until it serves.
    async fn start(&self, label: &str) -> Service {
        let mut service = Service::start(label, self.address, &self.args, self.dir.path());
        service.wait_until_serving().await;
        assert!(
            service.log_text().contains(&self.simulator.endpoint()),
            "the demo uses the configured simulator, not one of its own:\n{}",
            service.log_tail()
        );
        service
    }

    /// A contoso admin's token, minted with `numbers token` (once the service made the key).
    fn token(&self) -> String {
        mint(&[
            "--data-dir",
            &self.data_dir.display().to_string(),
            "--tenant",
            "contoso",
            "--role",
            "admin",
        ])
    }

    /// Adapter requests of `rpc` the simulator received.
    async fn requests(&self, rpc: &str) -> u64 {
        self.simulator
            .control()
            .get_stats(GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner()
            .requests
            .get(rpc)
            .copied()
            .unwrap_or(0)
    }

    async fn set_latency(&self, latency: Duration) {
        self.simulator
            .control()
            .set_latency(SetLatencyRequest {
                latency: Some(prost_types::Duration {
                    seconds: i64::try_from(latency.as_secs()).unwrap(),
                    nanos: i32::try_from(latency.subsec_nanos()).unwrap(),
                }),
            })
            .await
            .expect("SetLatency");
    }

    /// After the restart: the operations succeed, the numbers are activated and assigned,
    /// one PROVISIONING_SUCCEEDED event and one accepted activation per number, and one job
    /// per number, completed by the restarted process `second`.
    async fn check_finished_by(&self, second: &Service, token: &str, operations: &[String]) {
        let mut admin = tenant_client(self.address, token).await;
        wait_until_succeeded(&mut admin, operations, Duration::from_secs(30)).await;
        for (number, upn) in ASSIGNMENTS {
            assert_activated(&mut admin, number, upn).await;
            assert_eq!(
                provisioning_succeeded(&mut admin, number).await,
                1,
                "one PROVISIONING_SUCCEEDED event for {number}"
            );
        }
        // The operator accepted one activation per number: the restarted service asked with
        // the jobs' idempotency keys (or polled their tickets), never anew.
        let seen = activations(&self.simulator).await;
        for (number, _) in ASSIGNMENTS {
            assert_eq!(
                seen.get(number),
                Some(&(1, 1)),
                "one activation of {number}, completed: {seen:?}"
            );
        }
        let rows = jobs(&self.database_url, "contoso").await;
        assert_eq!(
            rows.len(),
            ASSIGNMENTS.len(),
            "one job per number: {rows:#?}"
        );
        for (number, _) in ASSIGNMENTS {
            let job = rows
                .iter()
                .find(|j| j.phone_number == number)
                .unwrap_or_else(|| panic!("no job for {number}: {rows:#?}"));
            assert_eq!(job.state, "SUCCEEDED", "{job:?}");
            let by = job.completed_by.as_deref().unwrap_or_default();
            assert!(
                by.starts_with(&second.worker_prefix()),
                "{number} was completed by {by:?}, not by the restarted process {}",
                second.worker_prefix()
            );
        }
    }
}

/// SIGKILL in the middle of provisioning: the operator has accepted both activations and still
/// holds them pending; the restarted service takes the jobs over, asks the operator with the
/// same idempotency keys (or polls the tickets the killed process recorded), and finishes them,
/// so nothing is done twice.
async fn a_killed_service_resumes_its_pending_work(backend: Backend) {
    let setup = KillSetup::new(backend).await;
    let mut first = setup.start("first").await;
    let token = setup.token();
    let mut admin = tenant_client(setup.address, &token).await;
    let started = Instant::now();
    let mut operations = Vec::new();
    for (number, upn) in ASSIGNMENTS {
        operations.push(assign_pending(&mut admin, upn, number).await);
    }

    // Kill the service once the operator has accepted both activations, well before it
    // completes them.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = activations(&setup.simulator).await;
        if ASSIGNMENTS.iter().all(|(number, _)| {
            seen.get(*number)
                .is_some_and(|(accepted, _)| *accepted == 1)
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operator never saw both activations: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill_hard();
    let killed_after = started.elapsed();
    assert!(
        killed_after < ACTIVATION_DELAY,
        "the service was killed {killed_after:?} after the assignments: too late for the \
         test to prove anything (the operator may have completed them already)"
    );
    let seen = activations(&setup.simulator).await;
    for (number, _) in ASSIGNMENTS {
        assert_eq!(seen[number], (1, 0), "{number} is pending at the operator");
    }
    // Nothing was finished by the killed process.
    for job in jobs(&setup.database_url, "contoso").await {
        assert_ne!(job.state, "SUCCEEDED", "{job:?}");
    }
    let activates_before = setup.requests("Activate").await;

    let restarted = Instant::now();
    let second = setup.start("second").await;
    setup.check_finished_by(&second, &token, &operations).await;
    println!(
        "{backend:?}: killed {killed_after:?} after the assignments; the restarted service \
         finished them {:?} after it was started; Activate requests before the kill: \
         {activates_before}, in all: {}; Poll requests: {}",
        restarted.elapsed(),
        setup.requests("Activate").await,
        setup.requests("Poll").await,
    );
}

/// SIGKILL while the worker is inside an Activate call: the killed process still holds that
/// job's lease and recorded no ticket (a job whose call had already been answered has its
/// ticket recorded and no lease). The restarted service waits for the lease to expire (2 s),
/// takes the job over and asks again with the same idempotency key: if the operator went on to
/// accept the killed process's request, it finds that change, and either way each number is
/// activated once.
async fn a_service_killed_during_a_provider_call_takes_its_jobs_over(backend: Backend) {
    let setup = KillSetup::new(backend).await;
    let mut first = setup.start("first").await;
    let token = setup.token();
    // Every adapter call now takes 1.5 s (less than the 3 s remote timeout).
    let latency = Duration::from_millis(1500);
    setup.set_latency(latency).await;
    let assignments = ASSIGNMENTS.iter().map(|(number, upn)| {
        let (address, token) = (setup.address, token.clone());
        async move {
            let mut admin = tenant_client(address, &token).await;
            assign_pending(&mut admin, upn, number).await
        }
    });
    let operations = futures::future::join_all(assignments).await;

    // Kill the service as soon as it called Activate for both numbers: the last call (at least)
    // is waiting on the operator. (The worker finishes a batch of claimed jobs before it claims
    // more, so the two calls may come one after the other.)
    let deadline = Instant::now() + Duration::from_secs(6);
    while setup.requests("Activate").await < 2 {
        assert!(
            Instant::now() < deadline,
            "the worker never called Activate for both numbers"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill_hard();
    let killed = Instant::now();
    setup.set_latency(Duration::ZERO).await;
    let accepted_at_the_kill = activations(&setup.simulator).await;
    let rows = jobs(&setup.database_url, "contoso").await;
    assert_eq!(rows.len(), ASSIGNMENTS.len(), "{rows:#?}");
    let mut in_flight = Vec::new();
    for job in &rows {
        assert_eq!(job.state, "RUNNING", "claimed: {job:?}");
        match (&job.lease_owner, &job.ticket) {
            (Some(owner), None) => {
                assert!(
                    owner.starts_with(&first.worker_prefix()),
                    "the killed process {} holds the lease: {job:?}",
                    first.worker_prefix()
                );
                assert_eq!(
                    accepted_at_the_kill.get(&job.phone_number),
                    None,
                    "the call for {} had not reached the operator yet",
                    job.phone_number
                );
                in_flight.push(job.phone_number.clone());
            }
            (None, Some(_)) => {}
            _ => panic!("neither in flight nor pending at the operator: {job:?}"),
        }
    }
    assert!(
        !in_flight.is_empty(),
        "no call was in flight at the kill: {rows:#?}"
    );
    // Let the killed process's requests reach the operator, if they still do.
    tokio::time::sleep(latency + Duration::from_millis(200)).await;
    let accepted_after_the_kill = activations(&setup.simulator).await;

    let second = setup.start("second").await;
    setup.check_finished_by(&second, &token, &operations).await;
    println!(
        "{backend:?}: in flight at the kill: {in_flight:?}; finished {:?} after the kill; \
         activations the operator had accepted before the restart: \
         {accepted_after_the_kill:?}; Activate requests in all: {}",
        killed.elapsed(),
        setup.requests("Activate").await,
    );
}

on_both_stores!(
    a_killed_service_resumes_its_pending_work,
    a_service_killed_during_a_provider_call_takes_its_jobs_over,
);

// ---- two replicas ------------------------------------------------------------------------------

/// `count` numbers for the two-replica test, the `from`th on from +14255550400: numbers
/// outside the Calling Plan catalogue (which sells +14255550100..299 and ..900..949).
fn replica_numbers(from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| {
            let number = format!("+1425555{:04}", 400 + i);
            let parsed = E164::parse(&number).unwrap_or_else(|e| panic!("{number}: {e}"));
            assert_eq!(parsed.canonical(), number);
            number
        })
        .collect()
}

/// Two replicas of `numbers serve` on one fresh PostgreSQL database, sharing a token key file,
/// with Litware Mobile (a simulator in the test) configured out of process, a worker with
/// 5-second leases polling every 100 ms, and tenant `t1` having enabled Litware Mobile for US.
struct Replicas {
    a: Service,
    b: Service,
    /// A `t1` admin through replica A, and through replica B.
    admins: [Tenant; 2],
    /// Litware Mobile, through replica B.
    operator: Operator,
    simulator: RunningSimulator,
    _dir: tempfile::TempDir,
    // Dropped last: the database outlives the replicas using it.
    database: TestDatabase,
}

impl Replicas {
    async fn start(activation_delay: Duration) -> Self {
        let simulator = start_simulator(activation_delay).await;
        let database = TestDatabase::create(Backend::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("token.key");
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        std::fs::write(
            &key_file,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret),
        )
        .unwrap();
        let config = write_config(dir.path(), &simulator.endpoint(), 5);
        let replica_args = |name: &str| {
            vec![
                "--config".to_owned(),
                config.display().to_string(),
                "--data-dir".to_owned(),
                dir.path().join(name).display().to_string(),
                "--database-url".to_owned(),
                database.url.clone(),
                "--token-key-file".to_owned(),
                key_file.display().to_string(),
            ]
        };
        // Both start at once, and so migrate the empty database at once.
        let mut a = Service::start("replica-a", free_address(), &replica_args("a"), dir.path());
        let mut b = Service::start("replica-b", free_address(), &replica_args("b"), dir.path());
        a.wait_until_serving().await;
        b.wait_until_serving().await;

        let key = key_file.display().to_string();
        let data_dir = dir.path().join("a").display().to_string();
        let admin_token = mint(&[
            "--token-key-file",
            &key,
            "--data-dir",
            &data_dir,
            "--tenant",
            "t1",
            "--role",
            "admin",
        ]);
        let operator_token = mint(&[
            "--token-key-file",
            &key,
            "--data-dir",
            &data_dir,
            "--operator",
            OPERATOR,
        ]);
        let admins = [
            tenant_client(a.address, &admin_token).await,
            tenant_client(b.address, &admin_token).await,
        ];
        admins[0]
            .clone()
            .enable_operator(pb::EnableOperatorRequest {
                operator_id: OPERATOR.into(),
                countries: vec!["US".into()],
                ..Default::default()
            })
            .await
            .expect("EnableOperator");
        let operator = operator_client(b.address, &operator_token).await;
        Self {
            a,
            b,
            admins,
            operator,
            simulator,
            _dir: dir,
            database,
        }
    }

    /// Litware Mobile uploads `numbers` into `t1`, for users.
    async fn upload(&self, numbers: &[String]) {
        let uploaded = self
            .operator
            .clone()
            .upload_numbers(pb::UploadNumbersRequest {
                tenant_id: "t1".into(),
                numbers: numbers
                    .iter()
                    .map(|n| pb::UploadedNumber {
                        phone_number: n.clone(),
                        capabilities: vec![pb::Capability::UserAssignment as i32],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .await
            .expect("UploadNumbers")
            .into_inner();
        assert_eq!(uploaded.phone_numbers.len(), numbers.len());
    }
}

/// Creates user `upn` in `t1` (Teams Phone, in the US).
async fn create_user(admin: &mut Tenant, upn: &str) {
    admin
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                user_principal_name: upn.into(),
                display_name: format!("User {upn}"),
                usage_location: "US".into(),
                licenses: vec![pb::user::License::PhoneSystem as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("UpsertUser");
}

/// Two replicas of the service share one PostgreSQL database and one token key, and both run
/// their provisioning workers. Assignments alternate between them, so each replica's worker is
/// woken for its own jobs, while both poll the shared table for due jobs (every activation is
/// first accepted by the operator, then polled ~300 ms later, by whichever replica claims it).
///
/// What this proves: jobs are claimed with leases (`FOR UPDATE SKIP LOCKED`) so that, with both
/// replicas competing for the same rows, every job ends SUCCEEDED exactly once: one job per
/// number, one PROVISIONING_SUCCEEDED audit event per number, and one activation per number at
/// the operator; and that the work really was shared: both replicas' worker ids appear among
/// `completed_by`. Should one replica happen to do everything (the test would then prove
/// nothing about competition), another, larger batch is assigned and the check repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_complete_each_job_exactly_once() {
    let replicas = Replicas::start(Duration::from_millis(300)).await;
    let (a, b, simulator) = (&replicas.a, &replicas.b, &replicas.simulator);
    let admins = replicas.admins.clone();
    let mut admin = admins[0].clone();
    let database = &replicas.database;

    let started = Instant::now();
    let mut assigned: Vec<String> = Vec::new();
    let mut batch = 40;
    for round in 1..=3 {
        let numbers = replica_numbers(assigned.len(), batch);
        let upn = |number: &str| format!("u{}@t1.example", &number[8..]);
        // Users, through both replicas.
        for (i, number) in numbers.iter().enumerate() {
            create_user(&mut admins[i % 2].clone(), &upn(number)).await;
        }
        replicas.upload(&numbers).await;

        // Every assignment at once, alternating the replicas.
        let assignments = numbers.iter().enumerate().map(|(i, number)| {
            let mut client = admins[i % 2].clone();
            let (number, upn) = (number.clone(), upn(number));
            tokio::spawn(async move { assign_pending(&mut client, &upn, &number).await })
        });
        let operations: Vec<String> = futures::future::join_all(assignments)
            .await
            .into_iter()
            .map(|r| r.expect("an assignment task"))
            .collect();
        wait_until_succeeded(&mut admin, &operations, Duration::from_secs(60)).await;
        assigned.extend(numbers);

        // The database, read directly.
        let rows = jobs(&database.url, "t1").await;
        let mut per_number: BTreeMap<&str, usize> = BTreeMap::new();
        for job in &rows {
            assert_eq!(job.state, "SUCCEEDED", "{job:?}");
            assert!(job.completed_by.is_some(), "{job:?}");
            *per_number.entry(job.phone_number.as_str()).or_default() += 1;
        }
        let expected: BTreeMap<&str, usize> = assigned.iter().map(|n| (n.as_str(), 1)).collect();
        assert_eq!(per_number, expected, "one job per number");
        let mut pg = sqlx::PgConnection::connect(&database.url)
            .await
            .expect("connect to the test database");
        let events: Vec<(String, i64)> = sqlx::query_as(
            "SELECT phone_number, COUNT(*) FROM audit_events WHERE tenant_id = 't1' \
             AND action = 'PROVISIONING_SUCCEEDED' GROUP BY phone_number ORDER BY phone_number",
        )
        .fetch_all(&mut pg)
        .await
        .expect("read the audit events");
        let _ = pg.close().await;
        let events: BTreeMap<&str, usize> = events
            .iter()
            .map(|(n, c)| (n.as_str(), usize::try_from(*c).unwrap()))
            .collect();
        assert_eq!(
            events, expected,
            "one PROVISIONING_SUCCEEDED event per number"
        );

        // The operator accepted each activation once.
        let seen = activations(simulator).await;
        for number in &assigned {
            assert_eq!(
                seen.get(number).map(|(accepted, _)| *accepted),
                Some(1),
                "one activation of {number} accepted: {seen:?}"
            );
        }
        assert_eq!(seen.len(), assigned.len(), "{seen:?}");

        // Who did the work.
        let by = |service: &Service| {
            rows.iter()
                .filter(|j| {
                    j.completed_by
                        .as_deref()
                        .is_some_and(|w| w.starts_with(&service.worker_prefix()))
                })
                .count()
        };
        let (by_a, by_b) = (by(a), by(b));
        println!(
            "round {round}: {} jobs in {:?}; completed by replica A (pid {}): {by_a}, by \
             replica B (pid {}): {by_b}",
            rows.len(),
            started.elapsed(),
            a.pid(),
            b.pid()
        );
        assert_eq!(
            by_a + by_b,
            rows.len(),
            "every job was completed by one of the replicas: {rows:#?}"
        );
        if by_a > 0 && by_b > 0 {
            return;
        }
        // One replica did everything: nothing was shown about competing replicas yet. Try
        // again with a larger batch.
        batch *= 2;
    }
    panic!("one replica completed every job, round after round: the work was never shared");
}

/// An operation of several numbers (RemovePhoneNumber with `remove_all`: one Deactivate job
/// per number) ends SUCCEEDED once every one of its jobs has. The jobs become due together and
/// are finished concurrently (by both replicas, and by each replica for the jobs of a batch);
/// each finishing transaction brings the operation's state in line with its jobs', and none of
/// those updates may be lost. The race is a matter of timing, so the removal is repeated (three
/// rounds of sixteen numbers) to show a lost update reliably.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operation_of_several_numbers_succeeds_with_its_last_job() {
    let replicas = Replicas::start(Duration::from_millis(300)).await;
    let mut admin = replicas.admins[0].clone();
    let numbers = replica_numbers(200, 16);
    replicas.upload(&numbers).await;
    let upn = "many@t1.example";
    create_user(&mut admin, upn).await;
    for round in 1..=3 {
        let mut operations = Vec::new();
        for (i, number) in numbers.iter().enumerate() {
            let category = if i == 0 {
                pb::AssignmentCategory::Primary
            } else {
                pb::AssignmentCategory::Alternate
            };
            let operation = replicas.admins[i % 2]
                .clone()
                .assign_phone_number(pb::AssignPhoneNumberRequest {
                    identity: upn.into(),
                    phone_number: number.clone(),
                    assignment_category: category as i32,
                    notify_user: Some(false),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("assign {number}: {e:?}"))
                .into_inner()
                .operation
                .expect("an operation");
            operations.push(operation.id);
        }
        wait_until_succeeded(&mut admin, &operations, Duration::from_secs(30)).await;

        let removed = replicas.admins[round % 2]
            .clone()
            .remove_phone_number(pb::RemovePhoneNumberRequest {
                identity: upn.into(),
                remove_all: true,
                notify_user: Some(false),
                ..Default::default()
            })
            .await
            .expect("RemovePhoneNumber")
            .into_inner();
        assert_eq!(removed.phone_numbers.len(), numbers.len());
        let operation = removed.operation.expect("an operation");
        assert_eq!(operation.steps.len(), numbers.len(), "{operation:?}");

        // Every job ends; then so must the operation.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut steps_ended_at = None;
        loop {
            let read = admin
                .get_operation(pb::GetOperationRequest {
                    id: operation.id.clone(),
                    ..Default::default()
                })
                .await
                .expect("GetOperation")
                .into_inner();
            if read.state() == pb::operation::State::Succeeded {
                break;
            }
            assert_ne!(read.state(), pb::operation::State::Failed, "{read:?}");
            if read
                .steps
                .iter()
                .all(|s| s.state() == pb::operation::State::Succeeded)
            {
                // The last finishing transaction has committed; allow for slow reads, then
                // the operation's state must show it.
                let since = *steps_ended_at.get_or_insert_with(Instant::now);
                assert!(
                    since.elapsed() < Duration::from_secs(3),
                    "round {round}: every step of the operation SUCCEEDED, yet the operation \
                     stays {:?}: an update of its state was lost: {read:#?}",
                    read.state()
                );
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the deactivations never ended: {read:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for number in &numbers {
            let phone = admin
                .get_phone_number(pb::GetPhoneNumberRequest {
                    phone_number: number.clone(),
                })
                .await
                .expect("GetPhoneNumber")
                .into_inner();
            assert_eq!(
                phone.activation_state(),
                pb::ActivationState::Activated,
                "{phone:?}"
            );
            assert_eq!(
                phone.assignment_status(),
                pb::AssignmentStatus::Unassigned,
                "{phone:?}"
            );
        }
        let user = admin
            .get_user(pb::GetUserRequest {
                identity: upn.into(),
            })
            .await
            .expect("GetUser")
            .into_inner();
        assert!(!user.enterprise_voice_enabled, "{user:?}");
    }
}

// ---- the demo ----------------------------------------------------------------------------------

/// The README's scenario: `numbers serve --demo` with no configuration runs Litware Mobile's
/// simulator itself (activating after 10 s); assigning one of its numbers answers
/// ASSIGNMENT_PENDING, and a while later the number is ACTIVATED and John has enterprise voice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_pending_assignment_becoming_activated() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let address = free_address();
    let mut service = Service::start(
        "demo",
        address,
        &[
            "--demo".to_owned(),
            "--data-dir".to_owned(),
            data_dir.clone(),
        ],
        dir.path(),
    );
    service.wait_until_serving().await;
    let token = mint(&[
        "--data-dir",
        &data_dir,
        "--tenant",
        "contoso",
        "--role",
        "admin",
    ]);
    let mut admin = tenant_client(address, &token).await;

    let started = Instant::now();
    let operation = assign_pending(&mut admin, "john@contoso.com", "+14255550301").await;
    let read = admin
        .get_operation(pb::GetOperationRequest {
            id: operation.clone(),
            ..Default::default()
        })
        .await
        .expect("GetOperation")
        .into_inner();
    assert!(
        matches!(
            read.state(),
            pb::operation::State::Pending | pb::operation::State::Running
        ),
        "{read:?}"
    );
    assert_eq!(read.kind(), pb::AuditAction::AssignPhoneNumber);
    assert_eq!(read.steps.len(), 1, "{read:?}");
    assert_eq!(read.steps[0].phone_number, "+14255550301");
    assert_eq!(read.steps[0].provider_id, OPERATOR);
    let john = admin
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .expect("GetUser")
        .into_inner();
    assert!(!john.enterprise_voice_enabled, "not yet: {john:?}");

    wait_until_succeeded(
        &mut admin,
        std::slice::from_ref(&operation),
        Duration::from_secs(30),
    )
    .await;
    let took = started.elapsed();
    println!("the demo's assignment was activated after {took:?}");
    assert!(
        took >= Duration::from_secs(9),
        "Litware Mobile takes 10 s to activate; done after {took:?}"
    );
    assert_activated(&mut admin, "+14255550301", "john@contoso.com").await;
    assert_eq!(provisioning_succeeded(&mut admin, "+14255550301").await, 1);
}
