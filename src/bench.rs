//! `numbers bench`: a closed-loop load generator that drives the real `numbers serve` process
//! through the public gRPC API and reports, per phase, throughput, latency percentiles and
//! errors by code.
//!
//! It measures what a client sees, with everything a deployment pays for: the server's own
//! process and default logging, request ids, queued notification emails, the audit trail. By
//! default it starts the server itself (this executable, `serve`) on a fresh database and removes
//! everything afterwards; `--server` measures one that is already running.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::ValueEnum as _;
use clap::builder::RangedU64ValueParser;
use futures::StreamExt as _;
use sqlx::Connection as _;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::auth::{Role, SigningKey};
use crate::proto::v1 as pb;
use crate::proto::v1::number_management_client::NumberManagementClient;
use crate::service::MAX_BULK_ITEMS;

/// The tenant of the server the bench starts.
const TENANT: &str = "bench";
/// How many numbers each block of fresh numbers holds (see [`number`]).
const BLOCK: u64 = 1_000_000;
/// How long the started server has to answer health checks.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the started server has to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const AFTER_HELP: &str = "\
Phases, in this order: users (UpsertUser of --users + --latency-calls users, and a tenth of \
--users more for the warm-up), latency (AssignPhoneNumber by one client, one call at a time), \
warmup (a tenth as many assignments as assign, at the same concurrency, to users of their own: \
as pgbench is warmed up before its run), assign (a fresh Direct Routing number for \
each of --users users; also the rate over each quarter of the calls), get (GetPhoneNumber of \
random assigned numbers, for --duration), list (ListPhoneNumbers, pages of 100 under a random \
prefix, for --duration), export (ExportPhoneNumbers of the whole inventory, one at a time, for \
--duration; also the numbers streamed per second), change (ChangePhoneNumber of half the users to a fresh number), remove \
(RemovePhoneNumber with remove_all of every user), bulk-users (BulkUpsertUsers of --users \
users of its own, in calls of up to 100,000 items, each timed until its operation ended; also \
the items per second), bulk-assign (BulkAssignPhoneNumbers of a fresh Direct Routing number to \
each of those users, likewise), walk (every page of 1,000 of ListPhoneNumbers, first to last, \
with no filter and with each of five single filters, and of ListUsers searching the bulk users: \
a page's latency at every depth). A phase that needs an earlier phase's data \
(latency and warmup need users, assign needs warmup; get, list, export, change and remove need \
assign; bulk-assign needs bulk-users, walk needs bulk-assign) runs it first, \
unreported. Failed calls are reported, by gRPC code, and do not fail the command.";

/// The flags of `numbers bench`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// The database of the server it starts: a fresh SQLite file, or a fresh PostgreSQL
    /// database, dropped afterwards [default: sqlite]. With --server, only names it in the
    /// report.
    #[arg(long, value_enum)]
    pub store: Option<StoreKind>,

    /// The PostgreSQL server on which --store postgres creates its database.
    #[arg(
        long,
        env = "NUMBERS_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        value_name = "URL"
    )]
    pub postgres_url: String,

    /// Measure the server already running at ADDR (host:port) instead of starting one.
    #[arg(long, value_name = "ADDR", requires = "token")]
    pub server: Option<String>,

    /// An admin token for --server, of a tenant the bench has not used before (the users and
    /// numbers it creates have fixed names): `numbers token --tenant bench-2 --role admin`.
    #[arg(long, requires = "server")]
    pub token: Option<String>,

    /// Replicas of the server to start, on one PostgreSQL database (--store postgres); the
    /// clients' connections go to them in turn (client-side round robin).
    #[arg(long, default_value_t = 1, value_parser = RangedU64ValueParser::<usize>::new().range(1..=8))]
    pub replicas: usize,

    /// Requests in flight in the write phases.
    #[arg(long, default_value_t = 32, value_parser = at_least_one())]
    pub concurrency: usize,

    /// Requests in flight in the read phases (get, list).
    #[arg(long, default_value_t = 8, value_parser = at_least_one())]
    pub read_concurrency: usize,

    /// HTTP/2 connections to each server the requests in flight are spread over.
    #[arg(long, default_value_t = 4, value_parser = at_least_one())]
    pub connections: usize,

    /// Fresh users (and numbers) of the assign, change and remove phases.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one())]
    pub users: usize,

    /// Calls of the latency phase.
    #[arg(long, default_value_t = 300, value_parser = at_least_one())]
    pub latency_calls: usize,

    /// Seconds each read phase runs (fractions allowed).
    #[arg(long, default_value = "10", value_parser = seconds, value_name = "SECS")]
    pub duration: Duration,

    /// The phases to run, as a comma list.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "users,latency,assign,get,list,export,change,remove,bulk-users,bulk-assign,walk"
    )]
    pub phases: Vec<Phase>,

    /// How results are printed: a table, or one JSON object per phase and line (other notes then
    /// go to standard error).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=BLOCK)
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

/// The database behind the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// One JSON object per phase and line, for scripts.
    Json,
}

/// A phase of the bench, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// UpsertUser of every user the other phases use.
    Users,
    /// AssignPhoneNumber, one call at a time.
    Latency,
    /// AssignPhoneNumber of a tenth as many fresh numbers as assign, to users of their own.
    Warmup,
    /// AssignPhoneNumber of a fresh number to each user.
    Assign,
    /// GetPhoneNumber of random assigned numbers.
    Get,
    /// ListPhoneNumbers under random prefixes.
    List,
    /// ExportPhoneNumbers of the whole inventory, one export at a time.
    Export,
    /// ChangePhoneNumber of half the users.
    Change,
    /// RemovePhoneNumber (remove_all) of every user.
    Remove,
    /// BulkUpsertUsers of users of its own.
    BulkUsers,
    /// BulkAssignPhoneNumbers of a fresh number to each bulk user.
    BulkAssign,
    /// Every page of ListPhoneNumbers and ListUsers, under single filters.
    Walk,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Users => "users",
            Phase::Latency => "latency",
            Phase::Warmup => "warmup",
            Phase::Assign => "assign",
            Phase::Get => "get",
            Phase::List => "list",
            Phase::Change => "change",
            Phase::Export => "export",
            Phase::Remove => "remove",
            Phase::BulkUsers => "bulk-users",
            Phase::BulkAssign => "bulk-assign",
            Phase::Walk => "walk",
        }
    }

    /// The earlier phase whose data this one works on.
    fn needs(self) -> Option<Phase> {
        match self {
            Phase::Users | Phase::BulkUsers => None,
            Phase::BulkAssign => Some(Phase::BulkUsers),
            Phase::Walk => Some(Phase::BulkAssign),
            Phase::Latency | Phase::Warmup => Some(Phase::Users),
            Phase::Assign => Some(Phase::Warmup),
            Phase::Get | Phase::List | Phase::Export | Phase::Change | Phase::Remove => {
                Some(Phase::Assign)
            }
        }
    }
}

/// The phases to run, in order, each with whether it is reported (selected) or only setup.
fn plan(selected: &[Phase]) -> Vec<(Phase, bool)> {
    // A phase only needs earlier ones, so one pass from the last phase back finds them all.
    let mut needed = selected.to_vec();
    for phase in Phase::value_variants().iter().rev() {
        if needed.contains(phase)
            && let Some(earlier) = phase.needs()
        {
            needed.push(earlier);
        }
    }
    Phase::value_variants()
        .iter()
        .filter(|phase| needed.contains(phase))
        .map(|&phase| (phase, selected.contains(&phase)))
        .collect()
}

/// Runs `numbers bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let out = Output(args.format);
    if let (Some(address), Some(token)) = (&args.server, &args.token) {
        let store = args.store.map_or("external", |s| store_name(s));
        return measure(&args, std::slice::from_ref(address), token, store, &[], out).await;
    }

    let store = args.store.unwrap_or(StoreKind::Sqlite);
    anyhow::ensure!(
        args.replicas == 1 || store == StoreKind::Postgres,
        "--replicas needs --store postgres: replicas share one PostgreSQL database"
    );
    let mut server = Server::start(store, &args.postgres_url, args.replicas, out).await?;
    for replica in &server.replicas {
        out.note(format_args!(
            "started numbers serve (pid {}) at {}; its log: {}",
            replica.pid,
            replica.address,
            replica.log.display()
        ));
    }
    let addresses: Vec<String> = server.replicas.iter().map(|r| r.address.clone()).collect();
    let pids: Vec<u32> = server.replicas.iter().map(|r| r.pid).collect();
    let result = tokio::select! {
        result = measure(&args, &addresses, &server.token, store_name(store), &pids, out) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let died = server.exited_early();
    for replica in &server.replicas {
        out.note(format_args!(
            "server peak resident memory (VmHWM): {}",
            memory(replica.pid, "VmHWM").as_deref().unwrap_or("unknown")
        ));
        if let Ok(log) = std::fs::read_to_string(&replica.log) {
            out.note(format_args!(
                "server log: {} lines, {} bytes",
                log.lines().count(),
                log.len()
            ));
        }
    }
    server.stop(out).await;
    match died {
        Some(error) => Err(error),
        None => result,
    }
}

fn store_name(store: StoreKind) -> &'static str {
    match store {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    }
}

/// Where people's notes go: standard output with the table, standard error when standard
/// output is JSON lines.
#[derive(Clone, Copy, Debug)]
struct Output(Format);

impl Output {
    fn note(self, line: impl Display) {
        match self.0 {
            Format::Text => println!("{line}"),
            Format::Json => eprintln!("{line}"),
        }
    }
}

// ---- the phases --------------------------------------------------------------------------------

/// Runs the planned phases against the server at `address` and prints each reported one.
async fn measure(
    args: &BenchArgs,
    addresses: &[String],
    token: &str,
    store: &str,
    servers: &[u32],
    out: Output,
) -> anyhow::Result<()> {
    let plan = plan(&args.phases);
    // The users phase names the users of the single calls' phases, with the latency and
    // warm-up users after them; the bulk phases have users of their own.
    anyhow::ensure!(
        !plan.iter().any(|(phase, _)| *phase == Phase::Users)
            || args.users + args.latency_calls + warmup_calls(args.users) <= BLOCK as usize,
        "--users, a tenth of them again (the warm-up) and --latency-calls together must be at \
         most {BLOCK}"
    );
    let clients = connect(addresses, token, args.connections).await?;
    out.note(format_args!(
        "numbers bench: store {store}, replicas {}, users {}, in flight {} (reads {}), \
         connections {} per replica, cores {}",
        addresses.len(),
        args.users,
        args.concurrency,
        args.read_concurrency,
        args.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    let setup: Vec<_> = plan
        .iter()
        .filter(|(_, reported)| !reported)
        .map(|(phase, _)| phase.name())
        .collect();
    if !setup.is_empty() {
        out.note(format_args!("setup, not reported: {}", setup.join(", ")));
    }
    if args.format == Format::Text {
        println!("{TABLE_HEADER}");
    }
    for (phase, reported) in plan {
        let concurrency = match phase {
            Phase::Latency | Phase::Export | Phase::BulkUsers | Phase::BulkAssign | Phase::Walk => {
                1
            }
            Phase::Get | Phase::List => args.read_concurrency,
            _ => args.concurrency,
        };
        let before = Cpu::now(servers);
        let outcome = run_phase(phase, args, &clients, concurrency).await;
        let cpu = before
            .zip(Cpu::now(servers))
            .map(|(before, after)| after.since(before));
        if reported {
            let report = Report {
                phase,
                store,
                concurrency,
                outcome,
                cpu,
            };
            match args.format {
                Format::Text => println!("{}", report.text()),
                Format::Json => println!("{}", report.json()),
            }
            for pid in servers {
                out.note(format_args!(
                    "server resident memory after {} (VmRSS): {}, of which anonymous \
                     (RssAnon): {}",
                    phase.name(),
                    memory(*pid, "VmRSS").as_deref().unwrap_or("unknown"),
                    memory(*pid, "RssAnon").as_deref().unwrap_or("unknown")
                ));
            }
        }
    }
    Ok(())
}

/// A memory figure of process `pid` from /proc (Linux), such as `VmRSS`.
fn memory(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    Some(line[field.len() + 1..].trim().to_owned())
}

async fn run_phase(
    phase: Phase,
    args: &BenchArgs,
    clients: &[Client],
    concurrency: usize,
) -> Outcome {
    let users = args.users;
    match phase {
        Phase::Users => {
            drive(
                clients,
                concurrency,
                Load::Calls(users + args.latency_calls + warmup_calls(users)),
                |mut client, i| async move {
                    let request = pb::UpsertUserRequest {
                        user: Some(pb::User {
                            user_principal_name: user(i),
                            usage_location: "US".into(),
                            licenses: vec![
                                pb::user::License::PhoneSystem as i32,
                                pb::user::License::CallingPlan as i32,
                            ],
                            ..Default::default()
                        }),
                        request_id: request_id(),
                        ..Default::default()
                    };
                    client.upsert_user(request).await.map(drop)
                },
            )
            .await
        }
        // The latency users follow the assign phase's.
        Phase::Latency => {
            drive(
                &clients[..1],
                1,
                Load::Calls(args.latency_calls),
                move |mut client, i| async move {
                    let request = assign(user(users + i), number(Block::Latency, i));
                    client.assign_phone_number(request).await.map(drop)
                },
            )
            .await
        }
        // The warm-up users follow the latency users.
        Phase::Warmup => {
            let first = users + args.latency_calls;
            drive(
                clients,
                concurrency,
                Load::Calls(warmup_calls(users)),
                move |mut client, i| async move {
                    let request = assign(user(first + i), number(Block::Warmup, i));
                    client.assign_phone_number(request).await.map(drop)
                },
            )
            .await
        }
        Phase::Assign => {
            drive(
                clients,
                concurrency,
                Load::Calls(users),
                |mut client, i| async move {
                    let request = assign(user(i), number(Block::Assign, i));
                    client.assign_phone_number(request).await.map(drop)
                },
            )
            .await
        }
        Phase::Get => {
            drive(
                clients,
                concurrency,
                Load::For(args.duration),
                move |mut client, _| {
                    let phone_number = number(Block::Assign, rand::random_range(0..users));
                    async move {
                        let request = pb::GetPhoneNumberRequest { phone_number };
                        client.get_phone_number(request).await.map(drop)
                    }
                },
            )
            .await
        }
        // The whole inventory, again and again, counting the numbers streamed.
        Phase::Export => {
            let exported = Arc::new(AtomicUsize::new(0));
            let counted = exported.clone();
            let mut outcome = drive(
                clients,
                concurrency,
                Load::For(args.duration),
                move |mut client, _| {
                    let counted = counted.clone();
                    async move {
                        let request = pb::ExportPhoneNumbersRequest::default();
                        let mut stream = client.export_phone_numbers(request).await?.into_inner();
                        while let Some(message) = stream.message().await? {
                            counted.fetch_add(message.phone_numbers.len(), Ordering::Relaxed);
                        }
                        Ok(())
                    }
                },
            )
            .await;
            outcome.items = exported.load(Ordering::Relaxed);
            outcome
        }
        // The numbers that share all but the last three digits of a random assigned one: up to
        // a thousand, so every page is full once there are enough users.
        Phase::List => {
            drive(
                clients,
                concurrency,
                Load::For(args.duration),
                move |mut client, _| {
                    let mut number_prefix = number(Block::Assign, rand::random_range(0..users));
                    number_prefix.truncate(number_prefix.len() - 3);
                    async move {
                        let request = pb::ListPhoneNumbersRequest {
                            number_prefix,
                            page_size: 100,
                            ..Default::default()
                        };
                        client.list_phone_numbers(request).await.map(drop)
                    }
                },
            )
            .await
        }
        Phase::Change => {
            drive(
                clients,
                concurrency,
                Load::Calls(users / 2),
                |mut client, i| async move {
                    let request = pb::ChangePhoneNumberRequest {
                        identity: user(i),
                        phone_number: number(Block::Change, i),
                        phone_number_type: pb::NumberType::DirectRouting as i32,
                        request_id: request_id(),
                        ..Default::default()
                    };
                    client.change_phone_number(request).await.map(drop)
                },
            )
            .await
        }
        Phase::Remove => {
            drive(
                clients,
                concurrency,
                Load::Calls(users),
                |mut client, i| async move {
                    let request = pb::RemovePhoneNumberRequest {
                        identity: user(i),
                        remove_all: true,
                        request_id: request_id(),
                        ..Default::default()
                    };
                    client.remove_phone_number(request).await.map(drop)
                },
            )
            .await
        }
        Phase::Walk => walk(&clients[0]).await,
        Phase::BulkUsers => {
            bulk(clients, users, |mut client, items| async move {
                let messages = messages(items, |i| pb::UpsertUserRequest {
                    user: Some(pb::User {
                        user_principal_name: bulk_user(i),
                        usage_location: "US".into(),
                        licenses: vec![pb::user::License::PhoneSystem as i32],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .map(|items| pb::BulkUpsertUsersRequest {
                    items,
                    ..Default::default()
                });
                client.bulk_upsert_users(messages).await
            })
            .await
        }
        Phase::BulkAssign => {
            bulk(clients, users, |mut client, items| async move {
                let messages = messages(items, |i| pb::AssignPhoneNumberRequest {
                    notify_user: Some(false),
                    ..assign(bulk_user(i), number(Block::Bulk, i))
                })
                .map(|items| pb::BulkAssignPhoneNumbersRequest {
                    items,
                    ..Default::default()
                });
                client.bulk_assign_phone_numbers(messages).await
            })
            .await
        }
    }
}

/// Walks every page of 1,000 of ListPhoneNumbers under each filter, and of ListUsers searching
/// the bulk users, one page at a time: one call per page, the numbers and users as its items.
async fn walk(client: &Client) -> Outcome {
    use pb::ListPhoneNumbersRequest as Numbers;
    let filters = [
        Numbers::default(),
        Numbers {
            number_type: pb::NumberType::DirectRouting as i32,
            ..Default::default()
        },
        Numbers {
            assignment_status: pb::AssignmentStatus::UserAssigned as i32,
            ..Default::default()
        },
        Numbers {
            activation_state: pb::ActivationState::Activated as i32,
            ..Default::default()
        },
        Numbers {
            country: "US".into(),
            ..Default::default()
        },
        Numbers {
            number_prefix: number(Block::Bulk, 0)[..6].to_owned(),
            ..Default::default()
        },
    ];
    let start = Instant::now();
    let mut outcome = Outcome::default();
    for filter in filters {
        pages(&mut outcome, start, |page_token| {
            let request = Numbers {
                page_size: 1000,
                page_token,
                ..filter.clone()
            };
            let mut client = client.clone();
            async move {
                let page = client.list_phone_numbers(request).await?.into_inner();
                Ok((page.phone_numbers.len(), page.next_page_token))
            }
        })
        .await;
    }
    pages(&mut outcome, start, |page_token| {
        let request = pb::ListUsersRequest {
            search: "b".into(),
            page_size: 1000,
            page_token,
        };
        let mut client = client.clone();
        async move {
            let page = client.list_users(request).await?.into_inner();
            Ok((page.users.len(), page.next_page_token))
        }
    })
    .await;
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort_unstable();
    outcome.finished.sort_unstable();
    outcome
}

/// Reads every page of a listing, `page(token)` answering a page's items and the next token,
/// recording each page as a call of `outcome`.
async fn pages<F, Fut>(outcome: &mut Outcome, start: Instant, mut page: F)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(usize, String), Status>>,
{
    let mut token = String::new();
    loop {
        let began = Instant::now();
        let answer = page(token).await;
        let next = match &answer {
            Ok((items, next)) => {
                outcome.items += items;
                next.clone()
            }
            Err(_) => String::new(),
        };
        outcome.record(began.elapsed(), start.elapsed(), answer.map(drop));
        if next.is_empty() {
            return;
        }
        token = next;
    }
}

/// Items in one message of a bulk call, as the API takes at most.
const BULK_MESSAGE: usize = 1000;

/// The items of `range`, made by `item`, in messages of [`BULK_MESSAGE`], made as sent.
fn messages<T>(
    range: std::ops::Range<usize>,
    item: impl Fn(usize) -> T,
) -> impl futures::Stream<Item = Vec<T>> {
    let starts: Vec<usize> = range.clone().step_by(BULK_MESSAGE).collect();
    futures::stream::iter(starts.into_iter().map(move |start| {
        (start..(start + BULK_MESSAGE).min(range.end))
            .map(&item)
            .collect()
    }))
}

/// Runs `users` items as bulk calls of up to [`MAX_BULK_ITEMS`] each, one after another, each
/// until its operation ended: one call of the phase per bulk call, its latency from sending to
/// the end of its operation. A call with failed items counts as failed.
async fn bulk<F, Fut>(clients: &[Client], users: usize, call: F) -> Outcome
where
    F: Fn(Client, std::ops::Range<usize>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<pb::Operation>, Status>> + Send,
{
    let calls = users.div_ceil(MAX_BULK_ITEMS);
    let mut outcome = drive(&clients[..1], 1, Load::Calls(calls), move |client, i| {
        let items = i * MAX_BULK_ITEMS..((i + 1) * MAX_BULK_ITEMS).min(users);
        let started = call(client.clone(), items);
        async move {
            let operation = started.await?.into_inner();
            ended(client, operation.id).await
        }
    })
    .await;
    outcome.items = users;
    outcome
}

/// Waits until the bulk operation `id` ended; an error when one of its items failed.
async fn ended(mut client: Client, id: String) -> Result<(), Status> {
    loop {
        let operation = client
            .get_operation(pb::GetOperationRequest {
                id: id.clone(),
                failed_only: true,
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        match operation.state() {
            pb::operation::State::Succeeded => return Ok(()),
            pb::operation::State::Failed => {
                let first = operation.results.first().and_then(|r| r.status.clone());
                return Err(Status::new(
                    first
                        .as_ref()
                        .map_or(tonic::Code::Unknown, |s| s.code.into()),
                    format!(
                        "{}; the first: {}",
                        operation.error,
                        first.map(|s| s.message).unwrap_or_default()
                    ),
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The `i`th bulk user's principal name.
fn bulk_user(i: usize) -> String {
    format!("b{i:06}@bench.example")
}

/// The `i`th user's principal name.
fn user(i: usize) -> String {
    format!("u{i:06}@bench.example")
}

/// Fresh Direct Routing numbers, a block of [`BLOCK`] valid US numbers per use (a test below
/// checks both ends of each block with libphonenumber).
#[derive(Clone, Copy, Debug)]
enum Block {
    Latency,
    Warmup,
    Assign,
    Change,
    Bulk,
}

/// The assignments that warm the server up before the assign phase: a tenth of its own, as
/// `scripts/bench-ceiling` warms pgbench up.
fn warmup_calls(users: usize) -> usize {
    users / 10
}

/// The `i`th number of `block`, in E.164.
fn number(block: Block, i: usize) -> String {
    let prefix = match block {
        Block::Latency => "+12062",
        Block::Warmup => "+12063",
        Block::Assign => "+14252",
        Block::Change => "+14253",
        Block::Bulk => "+14254",
    };
    format!("{prefix}{i:06}")
}

/// The Direct Routing number (entering the inventory now) for `identity`, every other field at
/// its default, as a client sends it.
fn assign(identity: String, phone_number: String) -> pb::AssignPhoneNumberRequest {
    pb::AssignPhoneNumberRequest {
        identity,
        phone_number,
        phone_number_type: pb::NumberType::DirectRouting as i32,
        request_id: request_id(),
        ..Default::default()
    }
}

/// A fresh request id, as every client sends with a change.
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---- load and measurement ----------------------------------------------------------------------

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = NumberManagementClient<InterceptedService<Channel, Bearer>>;

/// One client per HTTP/2 connection, `connections` to each server, taking the servers in turn:
/// the calls in flight, spread over the clients in order, go round robin to the servers.
async fn connect(
    addresses: &[String],
    token: &str,
    connections: usize,
) -> anyhow::Result<Vec<Client>> {
    let bearer = Bearer(
        format!("Bearer {token}")
            .parse()
            .context("the token is not ASCII")?,
    );
    let mut clients = Vec::with_capacity(connections * addresses.len());
    for i in 0..connections * addresses.len() {
        let address = &addresses[i % addresses.len()];
        let channel = endpoint(address)?
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        clients.push(NumberManagementClient::with_interceptor(
            channel,
            bearer.clone(),
        ));
    }
    Ok(clients)
}

fn endpoint(address: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Ok(Channel::from_shared(uri)
        .with_context(|| format!("{address:?} is not a server address"))?
        .connect_timeout(Duration::from_secs(5)))
}

/// How long a phase runs.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// Until this many calls were made.
    Calls(usize),
    /// Until this much time passed (calls in flight then finish).
    For(Duration),
}

/// What a phase's calls came to.
#[derive(Debug, Default)]
struct Outcome {
    /// The phase's wall time.
    elapsed: Duration,
    /// Each call's latency.
    latencies: Vec<Duration>,
    /// When each call finished, from the phase's start.
    finished: Vec<Duration>,
    /// Failed calls by gRPC code: how many, and the first one's message.
    errors: BTreeMap<String, (usize, String)>,
    /// Items the calls streamed (the export phase's numbers).
    items: usize,
}

impl Outcome {
    fn record(&mut self, latency: Duration, finished: Duration, result: Result<(), Status>) {
        self.latencies.push(latency);
        self.finished.push(finished);
        if let Err(status) = result {
            self.errors
                .entry(crate::proto::code_name(status.code()))
                .or_insert_with(|| (0, status.message().to_owned()))
                .0 += 1;
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.finished.extend(other.finished);
        for (code, (count, message)) in other.errors {
            self.errors.entry(code).or_insert((0, message)).0 += count;
        }
    }
}

/// Runs `call(client, i)` for i = 0, 1, 2... with `concurrency` calls in flight (a closed loop:
/// each worker sends its next call when its last one is answered), spread over `clients`.
async fn drive<F, Fut>(clients: &[Client], concurrency: usize, load: Load, call: F) -> Outcome
where
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, call, next) = (
            clients[worker % clients.len()].clone(),
            call.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let done = match load {
                    Load::Calls(calls) => i >= calls,
                    Load::For(duration) => start.elapsed() >= duration,
                };
                if done {
                    return outcome;
                }
                let began = Instant::now();
                let result = call(client.clone(), i).await;
                outcome.record(began.elapsed(), start.elapsed(), result);
            }
        });
    }
    let mut outcome = Outcome::default();
    while let Some(worker) = workers.join_next().await {
        outcome.merge(worker.expect("a bench worker panicked"));
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort_unstable();
    outcome.finished.sort_unstable();
    outcome
}

// ---- the report --------------------------------------------------------------------------------

const TABLE_HEADER: &str = "phase        calls  errors     secs    calls/s   p50 ms   p95 ms   p99 ms   max ms   \
     cpu µs/call: server  db client";

// ---- where the CPU goes -------------------------------------------------------------------------

/// CPU seconds used so far on this machine by this bench, the servers it measures, and
/// PostgreSQL's processes (zero when PostgreSQL runs elsewhere). Read from `/proc`: on other
/// systems there are no figures.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    client: f64,
    server: f64,
    database: f64,
}

impl Cpu {
    fn now(servers: &[u32]) -> Option<Self> {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let used = |pid: &str| -> Option<(String, f64)> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split(' ').collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((name.to_owned(), (user + system) / ticks))
        };
        let mut cpu = Cpu {
            client: used("self")?.1,
            server: servers
                .iter()
                .filter_map(|pid| used(&pid.to_string()))
                .map(|(_, seconds)| seconds)
                .sum(),
            database: 0.0,
        };
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let pid = entry.file_name();
            let pid = pid.to_string_lossy();
            if pid.bytes().all(|b| b.is_ascii_digit())
                && let Some((name, seconds)) = used(&pid)
                && name == "postgres"
            {
                cpu.database += seconds;
            }
        }
        Some(cpu)
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            client: self.client - before.client,
            server: self.server - before.server,
            database: self.database - before.database,
        }
    }
}

/// One phase's figures.
#[derive(Debug)]
struct Report<'a> {
    phase: Phase,
    store: &'a str,
    concurrency: usize,
    outcome: Outcome,
    /// The CPU the phase used, when known.
    cpu: Option<Cpu>,
}

impl Report<'_> {
    /// CPU microseconds per call of the server, the database and this client.
    fn cpu_per_call(&self) -> Option<(f64, f64, f64)> {
        let cpu = self.cpu?;
        let calls = self.calls().max(1) as f64;
        Some((
            cpu.server * 1e6 / calls,
            cpu.database * 1e6 / calls,
            cpu.client * 1e6 / calls,
        ))
    }

    fn calls(&self) -> usize {
        self.outcome.latencies.len()
    }

    fn errors(&self) -> usize {
        self.outcome.errors.values().map(|(count, _)| count).sum()
    }

    fn rate(&self) -> f64 {
        self.calls() as f64 / self.outcome.elapsed.as_secs_f64()
    }

    /// Items streamed per second of the phase.
    fn items_per_second(&self) -> f64 {
        self.outcome.items as f64 / self.outcome.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at quantile `q` in milliseconds (nearest rank), 0 without calls.
    fn percentile_ms(&self, q: f64) -> f64 {
        let sorted = &self.outcome.latencies;
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
    }

    /// Calls per second over each quarter of the calls, by when they finished: how the rate
    /// changes as the phase goes on (the assign phase's inventory grows).
    fn quarter_rates(&self) -> Vec<f64> {
        let finished = &self.outcome.finished;
        if finished.len() < 4 {
            return Vec::new();
        }
        let mut began = Duration::ZERO;
        (1..=4)
            .map(|quarter| {
                let (first, last) = (
                    (quarter - 1) * finished.len() / 4,
                    quarter * finished.len() / 4,
                );
                let ended = finished[last - 1];
                let rate = (last - first) as f64 / (ended - began).as_secs_f64();
                began = ended;
                rate
            })
            .collect()
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{:<8} {:>9} {:>7} {:>8.2} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.phase.name(),
            self.calls(),
            self.errors(),
            self.outcome.elapsed.as_secs_f64(),
            self.rate(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.95),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0),
        );
        if let Some((server, database, client)) = self.cpu_per_call() {
            text += &format!("  {server:>18.0} {database:>3.0} {client:>6.0}");
        }
        let indent = "\n         ";
        if self.outcome.items > 0 {
            let what = match self.phase {
                Phase::Export => "numbers",
                _ => "items",
            };
            text += &format!("{indent}{what}/s: {:.0}", self.items_per_second());
        }
        if self.phase == Phase::Assign && !self.quarter_rates().is_empty() {
            let rates: Vec<_> = self
                .quarter_rates()
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            text += &format!(
                "{indent}calls/s by quarter of the calls: {}",
                rates.join(", ")
            );
        }
        if !self.outcome.errors.is_empty() {
            let by_code: Vec<_> = self
                .outcome
                .errors
                .iter()
                .map(|(code, (count, _))| format!("{code} {count}"))
                .collect();
            text += &format!("{indent}errors: {} ({})", self.errors(), by_code.join(", "));
            for (code, (_, message)) in &self.outcome.errors {
                text += &format!("{indent}  first {code}: {}", truncated(message));
            }
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        let ms = |q| round(self.percentile_ms(q));
        let mut json = serde_json::json!({
            "phase": self.phase.name(),
            "store": self.store,
            "concurrency": self.concurrency,
            "calls": self.calls(),
            "errors": self.errors(),
            "errors_by_code": self.outcome.errors.iter()
                .map(|(code, (count, _))| (code.clone(), serde_json::json!(count)))
                .collect::<serde_json::Map<_, _>>(),
            "first_errors": self.outcome.errors.iter()
                .map(|(code, (_, message))| (code.clone(), serde_json::json!(truncated(message))))
                .collect::<serde_json::Map<_, _>>(),
            "seconds": round(self.outcome.elapsed.as_secs_f64()),
            "rate": round(self.rate()),
            "p50_ms": ms(0.50),
            "p95_ms": ms(0.95),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
        });
        if self.outcome.items > 0 {
            json["items_per_second"] = round(self.items_per_second()).into();
        }
        if self.phase == Phase::Assign {
            json["rate_by_quarter"] = self.quarter_rates().into_iter().map(round).collect();
        }
        if let Some((server, database, client)) = self.cpu_per_call() {
            json["server_cpu_us"] = round(server).into();
            json["database_cpu_us"] = round(database).into();
            json["client_cpu_us"] = round(client).into();
        }
        json
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn truncated(message: &str) -> String {
    const MAX: usize = 200;
    match message.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &message[..at]),
        None => message.to_owned(),
    }
}

// ---- the server it starts ----------------------------------------------------------------------

/// `numbers serve` child processes (one per replica) on one fresh database, and the temporary
/// directory that holds their data, key and logs. [`Server::stop`] ends them; dropping it kills
/// the processes.
#[derive(Debug)]
struct Server {
    replicas: Vec<Replica>,
    token: String,
    database: Database,
    _dir: tempfile::TempDir,
}

/// One `numbers serve` process of the bench.
#[derive(Debug)]
struct Replica {
    child: tokio::process::Child,
    pid: u32,
    address: String,
    log: PathBuf,
}

impl Server {
    /// Starts `replicas` servers on one fresh database, one after another (the first applies
    /// the migrations), each waited for until it answers health checks with SERVING.
    async fn start(
        store: StoreKind,
        postgres_url: &str,
        replicas: usize,
        out: Output,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("numbers-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let key_file = dir.path().join("token.key");
        let token = SigningKey::load(&key_file, true)?.mint(
            TENANT,
            "bench",
            Role::Admin,
            Duration::from_secs(24 * 3600),
        )?;
        let database = Database::create(store, dir.path(), postgres_url).await?;
        let mut server = Self {
            replicas: Vec::with_capacity(replicas),
            token,
            database,
            _dir: dir,
        };
        for i in 1..=replicas {
            let started = async {
                let address = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|listener| listener.local_addr())
                    .context("cannot find a free port")?
                    .to_string();
                let name = match i {
                    1 => "server.log".to_owned(),
                    i => format!("server-{i}.log"),
                };
                let log = server._dir.path().join(name);
                let child = spawn(
                    &address,
                    server.database.url(),
                    server._dir.path(),
                    &key_file,
                    &log,
                )?;
                let mut replica = Replica {
                    pid: child.id().unwrap_or_default(),
                    child,
                    address,
                    log,
                };
                replica.wait_until_serving().await.map(|()| replica)
            };
            match started.await {
                Ok(replica) => server.replicas.push(replica),
                Err(error) => {
                    server.stop(out).await;
                    return Err(error);
                }
            }
        }
        Ok(server)
    }

    /// The error to report if a server ended before being told to.
    fn exited_early(&mut self) -> Option<anyhow::Error> {
        self.replicas.iter_mut().find_map(|replica| {
            let status = replica.child.try_wait().ok()??;
            Some(anyhow::anyhow!(
                "numbers serve exited during the run with {status}; the end of its log:\n{}",
                log_tail(&replica.log)
            ))
        })
    }

    /// Sends SIGTERM to every server, waits for them to exit (killing those that take too
    /// long), drops the database and removes the temporary directory. Problems are noted, not
    /// returned: the figures are already printed.
    async fn stop(mut self, out: Output) {
        for replica in &mut self.replicas {
            replica.stop(out).await;
        }
        if let Err(error) = self.database.remove().await {
            out.note(format_args!("{error:#}"));
        }
    }
}

impl Replica {
    async fn wait_until_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "numbers serve exited with {status} before serving; the end of its log:\n{}",
                    log_tail(&self.log)
                );
            }
            if serving(&self.address).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill().await;
                anyhow::bail!(
                    "numbers serve did not answer health checks with SERVING within {} s; the \
                     end of its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(&mut self, out: Output) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            out.note(format_args!(
                "numbers serve did not stop within {} s of SIGTERM; killed",
                STOP_TIMEOUT.as_secs()
            ));
            let _ = self.child.kill().await;
        }
    }
}

fn spawn(
    address: &str,
    database_url: &str,
    data_dir: &Path,
    key_file: &Path,
    log: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let log_file = std::fs::File::create(log)
        .with_context(|| format!("cannot create the server log {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the numbers executable")?;
    tokio::process::Command::new(&exe)
        .arg("serve")
        .args(["--listen", address, "--database-url", database_url])
        // The bench measures what the server can do, not the tenants' rate limit.
        .args(["--tenant-requests-per-second", "0"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--token-key-file")
        .arg(key_file)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        // Its own process group: Ctrl-C reaches the bench, which then stops the server.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {} serve", exe.display()))
}

/// Whether the server at `address` answers its health check with SERVING.
async fn serving(address: &str) -> bool {
    let Ok(channel) = endpoint(address) else {
        return false;
    };
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .is_ok_and(|answer| answer.into_inner().status == ServingStatus::Serving as i32)
}

/// The last lines of the server's log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The fresh database of the server the bench starts.
#[derive(Debug)]
enum Database {
    /// A file in the temporary directory, removed with it.
    Sqlite { url: String },
    /// A database created on a PostgreSQL server, dropped at the end.
    Postgres {
        url: String,
        admin_url: String,
        name: String,
    },
}

impl Database {
    async fn create(store: StoreKind, dir: &Path, admin_url: &str) -> anyhow::Result<Self> {
        match store {
            StoreKind::Sqlite => Ok(Database::Sqlite {
                url: format!("sqlite://{}", dir.join("numbers.db").display()),
            }),
            StoreKind::Postgres => {
                let (server, _) = admin_url
                    .rsplit_once('/')
                    .context("--postgres-url must end with /database")?;
                let name = format!("numbers_bench_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .with_context(|| format!("cannot connect to PostgreSQL at {admin_url}"))?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .with_context(|| format!("cannot create the database {name}"))?;
                let _ = admin.close().await;
                Ok(Database::Postgres {
                    url: format!("{server}/{name}"),
                    admin_url: admin_url.to_owned(),
                    name,
                })
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url } | Database::Postgres { url, .. } => url,
        }
    }

    async fn remove(&self) -> anyhow::Result<()> {
        if let Database::Postgres {
            admin_url, name, ..
        } = self
        {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot drop the bench database {name}"))?;
            let _ = admin.close().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::E164;

    #[test]
    fn every_block_holds_valid_us_numbers() {
        for block in [
            Block::Latency,
            Block::Warmup,
            Block::Assign,
            Block::Change,
            Block::Bulk,
        ] {
            for i in [0, BLOCK as usize / 2, BLOCK as usize - 1] {
                let text = number(block, i);
                let parsed = E164::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(parsed.country().as_str(), "US", "{text}");
                assert_eq!(parsed.canonical(), text);
            }
        }
    }

    #[test]
    fn a_phase_brings_the_phases_it_needs_unreported() {
        assert_eq!(
            plan(&[Phase::Remove, Phase::Get]),
            [
                (Phase::Users, false),
                (Phase::Warmup, false),
                (Phase::Assign, false),
                (Phase::Get, true),
                (Phase::Remove, true),
            ]
        );
        assert_eq!(
            plan(&[Phase::Latency]),
            [(Phase::Users, false), (Phase::Latency, true)]
        );
    }

    #[test]
    fn codes_are_spelled_as_in_the_protocol() {
        assert_eq!(
            crate::proto::code_name(tonic::Code::AlreadyExists),
            "ALREADY_EXISTS"
        );
        assert_eq!(crate::proto::code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            crate::proto::code_name(tonic::Code::Unavailable),
            "UNAVAILABLE"
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let report = Report {
            phase: Phase::Get,
            store: "sqlite",
            concurrency: 1,
            outcome: Outcome {
                elapsed: Duration::from_secs(1),
                latencies: (1..=100).map(Duration::from_millis).collect(),
                ..Outcome::default()
            },
            cpu: None,
        };
        assert_eq!(report.percentile_ms(0.50), 50.0);
        assert_eq!(report.percentile_ms(0.99), 99.0);
        assert_eq!(report.percentile_ms(1.0), 100.0);
        assert_eq!(report.rate(), 100.0);
    }
}
