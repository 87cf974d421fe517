//! A load benchmark that prints figures: requests per second and latency percentiles of the
//! main RPCs, over the real gRPC stack on loopback, against SQLite and PostgreSQL, and the
//! process's peak memory.
//!
//! Run: `cargo bench --bench service` (PostgreSQL at NUMBERS_TEST_POSTGRES_URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; set NUMBERS_BENCH_STORES=sqlite to skip it).
//! NUMBERS_BENCH_NUMBERS (default 10000) sets the inventory size, NUMBERS_BENCH_CONCURRENCY
//! (default 32) the requests in flight.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use number_management::auth::{Role, SigningKey};
use number_management::domain::{
    ActivationState, Block, Capabilities, Capability, E164, NumberType, PhoneNumber,
};
use number_management::proto::v1 as pb;
use number_management::proto::v1::number_management_client::NumberManagementClient;
use number_management::routing::Providers;
use number_management::service::{Service, WorkerSettings};
use number_management::{demo, server, store};
use numbers_calling_plan::CallingPlan;
use numbers_remote::RemoteSettings;
use sqlx::Connection as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const TENANT: &str = "bench";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh database for one run, and what to drop afterwards.
async fn database(backend: &str) -> anyhow::Result<(String, Option<tempfile::TempDir>)> {
    if backend == "sqlite" {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        return Ok((url, Some(dir)));
    }
    let admin = std::env::var("NUMBERS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("numbers_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let (server, _) = admin
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("the admin URL must end with /database"))?;
    Ok((format!("{server}/{name}"), None))
}

async fn drop_database(url: &str) {
    if let Some((server, name)) = url.rsplit_once('/')
        && url.starts_with("postgres")
        && let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// Latency figures of one measured run.
struct Figures {
    name: String,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Figures {
    fn print(mut self, backend: &str) {
        self.latencies.sort();
        let at = |q: f64| {
            let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1);
            self.latencies[i].as_secs_f64() * 1000.0
        };
        println!(
            "{backend:<9} {:<34} {:>7} req {:>9.0} req/s   p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            self.name,
            self.requests,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.95),
            at(0.99),
            self.errors,
        );
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = NumberManagementClient<InterceptedService<Channel, Bearer>>;

/// Runs `requests` calls of `call`, `concurrency` at a time, timing each.
async fn measure<F, Fut>(name: &str, requests: usize, concurrency: usize, call: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let began = Instant::now();
                    if !call(i).await {
                        errors += 1;
                    }
                    latencies.push(began.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for worker in workers {
        let (mut l, e) = worker.await.expect("a bench worker");
        latencies.append(&mut l);
        errors += e;
    }
    Figures {
        name: name.to_owned(),
        requests,
        elapsed: start.elapsed(),
        latencies,
        errors,
    }
}

fn number_record(i: usize, now: SystemTime) -> PhoneNumber {
    PhoneNumber {
        number: E164::parse(&format!("+1206{:07}", 2_000_000 + i)).expect("a valid number"),
        number_type: NumberType::DirectRouting,
        operator_id: None,
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
        version: 1,
        create_time: now,
        update_time: now,
    }
}

async fn bench(backend: &str, numbers: usize, concurrency: usize) -> anyhow::Result<()> {
    let (url, _dir) = database(backend).await?;
    let store: Arc<dyn store::Store> = store::open(&url).await?.into();
    let operators = demo::operators();
    let providers = Providers::new(
        CallingPlan::with_default_catalogue(),
        &operators,
        &RemoteSettings::default(),
    )?;
    let service = Service::new(store.clone(), operators, providers);
    let key = SigningKey::from_secret(&[42; 32]);
    let listener = server::bind("127.0.0.1:0".parse()?).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let service = service.clone();
        let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            service
                .run_provisioning("bench", &WorkerSettings::default(), async {
                    let _ = worker_stopped.await;
                })
                .await
        });
        (stop_worker, task)
    };
    let server = tokio::spawn(server::run(
        listener,
        service,
        key.clone(),
        server::HealthSettings::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // Seed: users and numbers in one transaction each.
    let seeded = Instant::now();
    let now = SystemTime::now();
    let mut tx = store.write().await?;
    for i in 0..numbers {
        tx.insert_number(TENANT, &number_record(i, now)).await?;
    }
    tx.commit().await?;
    println!(
        "{backend:<9} seeded {numbers} numbers in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let token: MetadataValue<Ascii> = format!(
        "Bearer {}",
        key.mint(TENANT, "bench", Role::Admin, Duration::from_secs(3600))?
    )
    .parse()?;
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    let client: Client = NumberManagementClient::with_interceptor(channel, Bearer(token));

    let users = concurrency * 4;
    for u in 0..users {
        let mut c = client.clone();
        c.upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                user_principal_name: format!("user{u}@bench.example"),
                usage_location: "US".into(),
                licenses: vec![pb::user::License::PhoneSystem as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    }

    let c = client.clone();
    measure("GetPhoneNumber", 20_000, concurrency, move |i| {
        let mut c = c.clone();
        async move {
            c.get_phone_number(pb::GetPhoneNumberRequest {
                phone_number: format!("+1206{:07}", 2_000_000 + i % numbers),
            })
            .await
            .is_ok()
        }
    })
    .await
    .print(backend);

    let c = client.clone();
    measure(
        "ListPhoneNumbers (page of 100)",
        2_000,
        concurrency,
        move |i| {
            let mut c = c.clone();
            async move {
                c.list_phone_numbers(pb::ListPhoneNumbersRequest {
                    number_prefix: format!("+12062000{}", i % 10),
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .is_ok_and(|r| r.into_inner().phone_numbers.len() == 100)
            }
        },
    )
    .await
    .print(backend);

    // Every user gets and gives back numbers of its own: the mutation path end to end
    // (rules, row locks, audit, email queue, request ids).
    let c = client.clone();
    measure(
        "AssignPhoneNumber + RemovePhoneNumber",
        4_000,
        concurrency,
        move |i| {
            let mut c = c.clone();
            async move {
                let user = format!("user{}@bench.example", i % users);
                let number = format!("+1206{:07}", 2_000_000 + i % numbers);
                let assigned = c
                    .assign_phone_number(pb::AssignPhoneNumberRequest {
                        identity: user.clone(),
                        phone_number: number.clone(),
                        assignment_category: pb::AssignmentCategory::Private as i32,
                        notify_user: Some(false),
                        request_id: uuid::Uuid::new_v4().to_string(),
                        ..Default::default()
                    })
                    .await
                    .is_ok();
                let removed = c
                    .remove_phone_number(pb::RemovePhoneNumberRequest {
                        identity: user,
                        phone_number: number,
                        notify_user: Some(false),
                        ..Default::default()
                    })
                    .await
                    .is_ok();
                assigned && removed
            }
        },
    )
    .await
    .print(backend);

    let _ = stop.send(());
    let _ = worker.0.send(());
    let _ = worker.1.await;
    let _ = server.await;
    store.close().await;
    drop_database(&url).await;
    Ok(())
}

/// Peak resident memory of this process (the benchmark and the server in it), from /proc.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let numbers = env_number("NUMBERS_BENCH_NUMBERS", 10_000);
    let concurrency = env_number("NUMBERS_BENCH_CONCURRENCY", 32);
    let stores = std::env::var("NUMBERS_BENCH_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "numbers service benchmark: {numbers} numbers, {concurrency} requests in flight, \
         gRPC over loopback, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in stores.split(',').map(str::trim) {
        bench(backend, numbers, concurrency).await?;
    }
    println!(
        "peak memory (benchmark client and server together): {}",
        peak_memory()
    );
    Ok(())
}
