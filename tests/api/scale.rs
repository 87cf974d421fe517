//! Scale-out: several replicas on one PostgreSQL race single and bulk calls for the same numbers
//! and end with one holder per number and an inventory that replaying the audit trail gives
//! exactly; and a PostgreSQL restart under load costs only UNAVAILABLE answers while it is down,
//! and no acknowledged write.
//!
//! CI runs them small. `NUMBERS_SCALE_OPERATIONS` sets how many operations the racing run makes
//! (default 3,000; docs/performance.md quotes a run of 100,000).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use number_management::domain::NumberType;
use number_management::proto::v1 as pb;
use pb::operation::State;
use prost_types::value::Kind;
use tonic::Code;

use crate::helpers::{Backend, Client, TestApp, TestConfig, TestDatabase, free_address, number};

const TENANT: &str = "contoso";
const USERS: usize = 40;
const NUMBERS: usize = 30;
const REPLICAS: usize = 3;
const IN_FLIGHT: usize = 24;

fn upn(i: usize) -> String {
    format!("racer{i}@contoso.com")
}

fn phone(i: usize) -> String {
    format!("+1425555{i:04}")
}

fn assign(user: usize, number: usize) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        identity: upn(user),
        phone_number: phone(number),
        notify_user: Some(false),
        ..Default::default()
    }
}

fn remove_all(user: usize) -> pb::RemovePhoneNumberRequest {
    pb::RemovePhoneNumberRequest {
        identity: upn(user),
        remove_all: true,
        notify_user: Some(false),
        ..Default::default()
    }
}

/// One operation of a racer, on a replica: a single call, or a bulk call of ten items. Answers
/// how many operations it made, and the bulk operation's id.
async fn race_once(client: &mut Client) -> (usize, Option<String>) {
    let user = rand::random_range(0..USERS);
    let number = rand::random_range(0..NUMBERS);
    match rand::random_range(0..100) {
        0..45 => {
            let _ = client.assign_phone_number(assign(user, number)).await;
            (1, None)
        }
        45..70 => {
            let _ = client.remove_phone_number(remove_all(user)).await;
            (1, None)
        }
        70..95 => {
            let change = pb::ChangePhoneNumberRequest {
                identity: upn(user),
                phone_number: phone(number),
                notify_user: Some(false),
                ..Default::default()
            };
            let _ = client.change_phone_number(change).await;
            (1, None)
        }
        95..98 => {
            let items: Vec<_> = (0..10)
                .map(|_| assign(rand::random_range(0..USERS), rand::random_range(0..NUMBERS)))
                .collect();
            let message = pb::BulkAssignPhoneNumbersRequest {
                items,
                ..Default::default()
            };
            let accepted = client
                .bulk_assign_phone_numbers(futures::stream::iter([message]))
                .await
                .expect("a bulk call is accepted");
            (10, Some(accepted.into_inner().id))
        }
        _ => {
            let items: Vec<_> = (0..10)
                .map(|_| remove_all(rand::random_range(0..USERS)))
                .collect();
            let message = pb::BulkRemovePhoneNumbersRequest {
                items,
                ..Default::default()
            };
            let accepted = client
                .bulk_remove_phone_numbers(futures::stream::iter([message]))
                .await
                .expect("a bulk call is accepted");
            (10, Some(accepted.into_inner().id))
        }
    }
}

async fn wait_for(client: &mut Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let operation = client
            .get_operation(pb::GetOperationRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .expect("GetOperation")
            .into_inner();
        if matches!(operation.state(), State::Succeeded | State::Failed) {
            return;
        }
        assert!(Instant::now() < deadline, "bulk operation {id} never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who holds a number, as the inventory or a replayed audit trail says: the holder's id and
/// the assignment category; empty when nobody does.
type Holding = (String, String);

async fn inventory(client: &mut Client) -> BTreeMap<String, Holding> {
    let numbers = client
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListPhoneNumbers")
        .into_inner()
        .phone_numbers;
    numbers
        .into_iter()
        .map(|n| {
            let category = if n.assigned_to.is_empty() {
                String::new()
            } else {
                n.assignment_category().as_str_name().to_owned()
            };
            (n.phone_number, (n.assigned_to, category))
        })
        .collect()
}

/// Every audit event, oldest first. Events of one number are written under its row lock, so
/// their time-ordered ids follow the order of the changes.
async fn audit_trail(client: &mut Client) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("ListAuditEvents")
            .into_inner();
        events.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    events.sort_by(|a, b| a.id.cmp(&b.id));
    events
}

fn text(record: &prost_types::Struct, field: &str) -> String {
    match record.fields.get(field).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(text)) => text.clone(),
        _ => String::new(),
    }
}

/// Who holds each number once every event's `after` is applied in order.
fn replay(events: &[pb::AuditEvent]) -> BTreeMap<String, Holding> {
    let mut holdings = BTreeMap::new();
    for event in events {
        if let (false, Some(after)) = (event.phone_number.is_empty(), &event.after) {
            let holder = text(after, "assignedTo");
            let category = if holder.is_empty() {
                String::new()
            } else {
                text(after, "assignmentCategory")
            };
            holdings.insert(event.phone_number.clone(), (holder, category));
        }
    }
    holdings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_single_and_bulk_calls_agree_with_the_audit_trail() {
    let operations: usize = std::env::var("NUMBERS_SCALE_OPERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    // The racers' calls, not the tenant's request rate, are what is tested.
    let config = || TestConfig {
        tenant_requests_per_second: 0,
        ..TestConfig::default()
    };
    let first = TestApp::start(Backend::Postgres, config()).await;
    let mut replicas = vec![];
    for _ in 1..REPLICAS {
        replicas.push(first.replica(config()).await);
    }
    for i in 0..USERS {
        first
            .user(TENANT, &upn(i), &format!("Racer {i}"), "US")
            .await;
    }
    let numbers: Vec<_> = (0..NUMBERS)
        .map(|i| number(&phone(i), NumberType::DirectRouting))
        .collect();
    first.seed_numbers(TENANT, &numbers).await;

    let clients: Vec<Client> = std::iter::once(&first)
        .chain(&replicas)
        .map(|app| app.admin(TENANT))
        .collect();
    let made = Arc::new(AtomicUsize::new(0));
    let racers = (0..IN_FLIGHT).map(|racer| {
        let mut client = clients[racer % REPLICAS].clone();
        let made = made.clone();
        tokio::spawn(async move {
            let mut bulk = vec![];
            while made.load(Ordering::Relaxed) < operations {
                let (count, operation) = race_once(&mut client).await;
                made.fetch_add(count, Ordering::Relaxed);
                bulk.extend(operation);
            }
            bulk
        })
    });
    let bulk: Vec<String> = futures::future::join_all(racers)
        .await
        .into_iter()
        .flat_map(|racer| racer.expect("a racer"))
        .collect();
    let mut client = clients[0].clone();
    for id in &bulk {
        wait_for(&mut client, id).await;
    }

    let inventory = inventory(&mut client).await;
    assert_eq!(inventory.len(), NUMBERS);
    // One holder per number, and every user holds what the inventory says, one primary at
    // most.
    let users = client
        .list_users(pb::ListUsersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListUsers")
        .into_inner()
        .users;
    let mut held = 0;
    for user in &users {
        let theirs: BTreeSet<&String> = inventory
            .iter()
            .filter(|(_, (holder, _))| *holder == user.id)
            .map(|(number, _)| number)
            .collect();
        let listed: BTreeSet<&String> = user.phone_numbers.iter().collect();
        assert_eq!(theirs, listed, "{}", user.user_principal_name);
        let primaries = inventory
            .values()
            .filter(|(holder, category)| *holder == user.id && category == "PRIMARY")
            .count();
        assert!(
            primaries <= 1,
            "{} holds {primaries} primary numbers",
            user.user_principal_name
        );
        held += theirs.len();
    }
    assert_eq!(
        held,
        inventory
            .values()
            .filter(|(holder, _)| !holder.is_empty())
            .count(),
        "a number is held by someone who is not a user"
    );

    // The audit trail, replayed, gives the inventory exactly.
    let events = audit_trail(&mut client).await;
    let replayed = replay(&events);
    let untouched = (String::new(), String::new());
    for (number, holding) in &inventory {
        assert_eq!(
            replayed.get(number).unwrap_or(&untouched),
            holding,
            "{number}: the audit trail says otherwise"
        );
    }
    let changes = events.iter().filter(|e| !e.phone_number.is_empty()).count();
    assert!(
        changes >= operations / 10,
        "too few changes succeeded to tell anything: {changes} of {operations} operations"
    );
    eprintln!(
        "{} operations ({} bulk calls of 10 items) on {REPLICAS} replicas: {changes} numbers \
         changed, as the audit trail replayed says; {held} of {NUMBERS} numbers held at the end",
        made.load(Ordering::Relaxed),
        bulk.len()
    );
    drop(replicas);
}

// ---- a PostgreSQL of the test's own, to restart ------------------------------------------------

/// A PostgreSQL server of the test's own, in a temporary directory, on a free port: the shared
/// server of the other tests is not restarted. As root, it runs as the `postgres` user.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        if is_root() {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path()));
        }
        let port = free_address().port();
        let server = Self { dir, port };
        let data = server.data();
        run(server
            .tool("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data));
        server.up();
        server
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A PostgreSQL program, run as the `postgres` user when the test runs as root.
    fn tool(&self, name: &str) -> Command {
        let bin = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into());
        let program = format!("{bin}/{name}");
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            Command::new(program)
        }
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .tool("pg_ctl")
            .args(["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data()));
    }

    /// Stops the server as an administrator's restart does (a fast shutdown: every session is
    /// ended, transactions in flight are rolled back).
    fn down(&self) {
        run(self
            .tool("pg_ctl")
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(self.data()));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL program");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One write of the load: when it was sent and answered, and how.
struct Write {
    upn: String,
    request: pb::UpsertUserRequest,
    sent: Instant,
    answered: Instant,
    answer: Result<String, Code>,
}

fn user_request(upn: &str) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: upn.into(),
            display_name: upn.into(),
            usage_location: "US".into(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() {
    let postgres = PrivatePostgres::start();
    let url = postgres.url();
    let app = TestApp::start_on(TestDatabase::at(&url), &url, TestConfig::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let mut client = app.admin(TENANT);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut writes = vec![];
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let upn = format!("w{writer}-{i}@contoso.com");
                    let request = user_request(&upn);
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(
                        Duration::from_secs(20),
                        client.upsert_user(request.clone()),
                    )
                    .await
                    .expect("a write answered within 20 s");
                    writes.push(Write {
                        upn,
                        request,
                        sent,
                        answered: Instant::now(),
                        answer: answer.map(|a| a.into_inner().id).map_err(|s| s.code()),
                    });
                    // Not too fast: a few thousand writes make the point.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                writes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.down();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.up();
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.store(true, Ordering::Relaxed);
    let writes: Vec<Write> = futures::future::join_all(writers)
        .await
        .into_iter()
        .flat_map(|w| w.expect("a writer"))
        .collect();

    // Refusals only while the database was away, and only UNAVAILABLE.
    for write in &writes {
        if let Err(code) = write.answer {
            assert_eq!(code, Code::Unavailable, "{}", write.upn);
        }
    }
    let refused = writes.iter().filter(|w| w.answer.is_err()).count();
    assert!(
        refused > 0,
        "the restart went unnoticed: no write was refused"
    );
    assert!(
        writes
            .iter()
            .filter(|w| w.answer.is_ok())
            .any(|w| w.answered < down),
        "no write succeeded before the restart"
    );
    // Back within 5 s of the database.
    let recovered = writes
        .iter()
        .filter(|w| w.answer.is_ok() && w.sent >= back)
        .map(|w| w.answered)
        .min()
        .expect("writes succeed again after the restart");
    assert!(
        recovered - back < Duration::from_secs(5),
        "the first write after the restart succeeded {:?} after the database was back",
        recovered - back
    );
    let late = writes
        .iter()
        .filter(|w| w.answer.is_err() && w.sent >= back + Duration::from_secs(5))
        .count();
    assert_eq!(
        late, 0,
        "writes refused more than 5 s after the database was back"
    );

    // Every acknowledged write is there, with its request id: sent again, it answers the same
    // user rather than making another.
    let mut client = app.admin(TENANT);
    for write in writes.iter().filter(|w| w.answer.is_ok()) {
        let again = client
            .upsert_user(write.request.clone())
            .await
            .unwrap_or_else(|s| panic!("{} sent again: {s:?}", write.upn))
            .into_inner();
        assert_eq!(Ok(again.id), write.answer, "{} was lost", write.upn);
    }
    drop(app);
}
