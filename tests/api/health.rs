//! Health follows the database: when the link to PostgreSQL is cut, grpc.health.v1 turns
//! NOT_SERVING and requests answer UNAVAILABLE; when it comes back, so does SERVING.
//!
//! The database is reached through [`Link`], a TCP proxy on loopback that the test can cut,
//! dropping every open connection and every new one as a dead network would.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use number_management::proto::v1 as pb;
use number_management::server::HealthSettings;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{Backend, TestApp, TestConfig, TestDatabase, assert_error};

/// A TCP proxy to `target` that can be cut and restored.
struct Link {
    address: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    async fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let address = listener.local_addr().unwrap();
        let (up, state) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // dropped: the connection closes at once
                }
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { address, up, task }
    }

    /// Drops every connection through the link, and every new one until [`Link::restore`].
    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits, at most `within`, until the health of `service` reported by `watch` is `wanted`.
async fn wait_for_status(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
    within: Duration,
) {
    let mut updates = health
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("watch health")
        .into_inner();
    let reached = tokio::time::timeout(within, async {
        while let Some(update) = updates.next().await {
            if update.expect("a health update").status == wanted as i32 {
                return;
            }
        }
        panic!("the health stream of {service:?} ended");
    })
    .await;
    assert!(
        reached.is_ok(),
        "health of {service:?} did not turn {wanted:?} within {within:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_the_database() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let url = url::Url::parse(&database.url).expect("the test database URL");
    let target = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    );
    let target = tokio::net::lookup_host(&target)
        .await
        .expect("resolve the database host")
        .next()
        .expect("an address");
    let link = Link::to(target).await;
    let mut through_link = url.clone();
    through_link.set_ip_host(link.address.ip()).unwrap();
    through_link.set_port(Some(link.address.port())).unwrap();
    let app = TestApp::start_on(
        database,
        through_link.as_str(),
        TestConfig {
            health: HealthSettings {
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(1),
            },
            ..TestConfig::default()
        },
    )
    .await;
    let mut health = HealthClient::new(app.channel());
    let mut admin = app.admin("contoso");
    let list_users = pb::ListUsersRequest::default();
    admin
        .list_users(list_users.clone())
        .await
        .expect("list users while the database answers");
    for service in ["", "numbers.v1.NumberManagement"] {
        wait_for_status(
            &mut health,
            service,
            ServingStatus::Serving,
            Duration::from_secs(1),
        )
        .await;
    }

    link.cut();
    for service in [
        "",
        "numbers.v1.NumberManagement",
        "numbers.v1.OperatorConnect",
    ] {
        wait_for_status(
            &mut health,
            service,
            ServingStatus::NotServing,
            Duration::from_secs(10),
        )
        .await;
    }
    assert_error(
        admin.list_users(list_users.clone()).await,
        Code::Unavailable,
        "STORE_UNAVAILABLE",
    );

    link.restore();
    wait_for_status(
        &mut health,
        "",
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    admin
        .list_users(list_users)
        .await
        .expect("list users once the database answers again");
}
