//! `--metrics-listen`: after a scenario (an assignment, one refused by a rule, a read), the
//! Prometheus endpoint of a real `numbers serve`, scraped over HTTP, shows the calls by method
//! and status code with their latency histogram, the email the assignment sent, the pools'
//! gauges and the provisioning queue. The binary runs as its own process, so its metrics
//! recorder is its own.

use std::path::Path;
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use tonic::Code;

use crate::cli::Server;
use crate::helpers::{Backend, TestDatabase, assert_error, client_at, free_address};
use crate::on_both_stores;

/// Starts `numbers serve --demo` on `backend` with metrics on `metrics`, answering the server
/// and the demo's token.
pub(crate) async fn start_demo_server(
    dir: &Path,
    database_url: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Server, String) {
    let mut args = vec!["--demo"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    args.extend(extra);
    let mut server = Server::start_with_env(dir, &args, env);
    let printed = server.stdout_until(|line| line.contains("grpcurl"));
    server.wait_until_serving().await;
    let token = printed
        .iter()
        .find_map(|line| line.trim().strip_prefix("export TOKEN="))
        .unwrap_or_else(|| panic!("no token printed: {printed:#?}"))
        .to_owned();
    (server, token)
}

/// The value of the sample named `name` whose labels include every one of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelled, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(key, value)| labelled.contains(&format!("{key}=\"{value}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

async fn scrape(address: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("scrape the metrics endpoint");
    assert!(response.status().is_success(), "{response:?}");
    response.text().await.expect("a text exposition")
}

/// Scrapes until `ready` holds of the scrape (gauges are sampled every few seconds, emails sent
/// by a worker), answering the last scrape.
async fn scrape_until(address: std::net::SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scraped = scrape(address).await;
        if ready(&scraped) || Instant::now() > deadline {
            return scraped;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_scenario_moves_the_counters(backend: Backend) {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create(backend).await),
    };
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_address();
    let metrics_text = metrics.to_string();
    let (server, token) = start_demo_server(
        dir.path(),
        database.as_ref().map(|d| d.url.as_str()),
        &["--metrics-listen", &metrics_text],
        &[],
    )
    .await;
    let mut client = client_at(server.address, &token).await;
    let assign = |identity: &str| pb::AssignPhoneNumberRequest {
        identity: identity.into(),
        phone_number: "+14255550101".into(),
        ..Default::default()
    };
    let assigned = client
        .assign_phone_number(assign("john@contoso.com"))
        .await
        .expect("assign");
    // A call without a request id gets one, answered back.
    let request_id = assigned
        .metadata()
        .get("x-request-id")
        .expect("a request id in the answer");
    assert!(!request_id.is_empty());
    assert_error(
        client.assign_phone_number(assign("jack@contoso.com")).await,
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: "+14255550101".into(),
        })
        .await
        .expect("read the number");

    let calls = |method: &'static str, code: &'static str| {
        move |scraped: &str| {
            sample(
                scraped,
                "numbers_grpc_requests_total",
                &[
                    ("service", "numbers.v1.NumberManagement"),
                    ("method", method),
                    ("code", code),
                ],
            )
        }
    };
    // The email of the assignment goes to the log (no SMTP server): counted as sent.
    let scraped = scrape_until(metrics, |s| {
        sample(s, "numbers_notifications_total", &[("outcome", "sent")]).is_some()
            && sample(s, "numbers_db_pool_connections_max", &[]).is_some()
    })
    .await;
    assert_eq!(
        calls("AssignPhoneNumber", "OK")(&scraped),
        Some(1.0),
        "{scraped}"
    );
    assert_eq!(
        calls("AssignPhoneNumber", "FAILED_PRECONDITION")(&scraped),
        Some(1.0),
        "{scraped}"
    );
    assert_eq!(
        calls("GetPhoneNumber", "OK")(&scraped),
        Some(1.0),
        "{scraped}"
    );
    assert_eq!(
        calls("GetPhoneNumber", "NOT_FOUND")(&scraped),
        None,
        "{scraped}"
    );
    // The latency histogram has the call in its last bucket and its count.
    let histogram = [("method", "GetPhoneNumber"), ("code", "OK"), ("le", "+Inf")];
    assert_eq!(
        sample(
            &scraped,
            "numbers_grpc_request_duration_seconds_bucket",
            &histogram
        ),
        Some(1.0),
        "{scraped}"
    );
    assert_eq!(
        sample(
            &scraped,
            "numbers_grpc_request_duration_seconds_count",
            &[("method", "AssignPhoneNumber"), ("code", "OK")]
        ),
        Some(1.0),
        "{scraped}"
    );
    assert!(
        sample(
            &scraped,
            "numbers_notifications_total",
            &[("outcome", "sent")]
        )
        .is_some_and(|sent| sent >= 1.0),
        "{scraped}"
    );
    // The assignment asked the Calling Plan's adapter.
    assert!(
        sample(
            &scraped,
            "numbers_adapter_calls_total",
            &[("call", "check_assignment"), ("outcome", "ok")]
        )
        .is_some_and(|calls| calls >= 1.0),
        "{scraped}"
    );
    let pool = match backend {
        Backend::Sqlite => "readers",
        Backend::Postgres => "main",
    };
    assert!(
        sample(
            &scraped,
            "numbers_db_pool_connections_max",
            &[("pool", pool)]
        )
        .is_some_and(|max| max >= 1.0),
        "{scraped}"
    );
    assert!(
        sample(
            &scraped,
            "numbers_db_pool_connections_in_use",
            &[("pool", pool)]
        )
        .is_some(),
        "{scraped}"
    );
    assert!(
        sample(&scraped, "numbers_provisioning_jobs_queued", &[]).is_some(),
        "{scraped}"
    );
    assert!(
        scraped.contains("# HELP numbers_grpc_requests_total"),
        "{scraped}"
    );
    drop(server);
    drop(database);
}

on_both_stores!(a_scenario_moves_the_counters);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_port_in_use_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let finished = crate::helpers::numbers_command([
        "serve",
        "--listen",
        &free_address().to_string(),
        "--metrics-listen",
        &address,
        "--data-dir",
        &dir.path().display().to_string(),
    ])
    .output()
    .expect("run numbers serve");
    assert!(!finished.status.success());
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(stderr.contains("cannot serve metrics on"), "{stderr}");
}
