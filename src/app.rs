//! Start-up: turns resolved [`Settings`] into a running [`Application`], and mints tokens.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use numbers_calling_plan::CallingPlan;
use numbers_operator_simulator::{OperatorSettings, RunningSimulator, SimulatorSettings};

use crate::api::TenantRate;
use crate::auth::oidc::Issuer;
use crate::auth::{Authenticator, Role, SigningKey};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::routing::Providers;
use crate::server::HealthSettings;
use crate::service::{Mailer, Service, WorkerSettings};
use crate::tls::Tls;
use crate::{demo, metrics, server, store};

/// Runs `numbers serve` until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings, Arc::new(SystemClock))
        .await?
        .run(server::shutdown_signal())
        .await
}

/// Everything `numbers serve` runs: the gRPC server on its bound listener and the background
/// workers (provisioning, emails, housekeeping), over one store. `main`, the tests and the
/// benchmark all build the service this one way, so a worker added here runs everywhere.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    tls: Option<Tls>,
    store: Arc<dyn store::Store>,
    service: Service,
    key: SigningKey,
    authenticator: Authenticator,
    mailer: Mailer,
    worker: WorkerSettings,
    health: HealthSettings,
    rate: TenantRate,
    simulator: Option<RunningSimulator>,
    /// Whether metrics are served, and so the gauges sampled from the store.
    metrics: bool,
}

impl Application {
    /// Builds the application `settings` describe, telling the time by `clock`: binds the
    /// listener first (a taken port should fail before anything else happens), reads the TLS
    /// files, opens and migrates the store, loads the demo tenant when asked, and sets up the
    /// providers.
    pub async fn build(mut settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = server::bind(settings.listen).await?;
        // Before the adapters are set up: they take their metric handles as they start.
        if let Some(address) = settings.metrics_listen {
            metrics::install(address)?;
        }
        let tls = settings.tls.clone().map(Tls::load).transpose()?;
        let store: Arc<dyn store::Store> =
            store::open(&settings.database_url, settings.database_pool_size)
                .await?
                .into();
        let key = SigningKey::load(&settings.token_key_file, settings.generate_token_key)?;
        let authenticator = authenticator(&settings, &key, clock.clone()).await?;
        tracing::info!(
            database = store.backend(),
            url = %store::redact(&settings.database_url),
            "store ready"
        );

        let simulator = if settings.demo {
            start_demo(&mut settings, store.as_ref(), &key, &listener).await?
        } else {
            None
        };

        let catalogue = match &settings.calling_plan_catalogue {
            Some(path) => CallingPlan::load(path)?,
            None => CallingPlan::with_default_catalogue(),
        };
        let providers = Providers::new(catalogue, &settings.operators, &settings.remote)?;
        let service = Service::new(store.clone(), settings.operators, providers, clock)
            .with_calling_plan_quota(settings.calling_plan_quota)
            .with_emails_per_tenant_per_hour(settings.emails_per_tenant_per_hour);
        let mailer = Mailer::new(settings.smtp.as_ref())?;
        Ok(Self {
            listener,
            tls,
            store,
            service,
            key,
            authenticator,
            mailer,
            worker: settings.worker,
            health: settings.health,
            rate: TenantRate::per_second(settings.tenant_requests_per_second),
            simulator,
            metrics: settings.metrics_listen.is_some(),
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The store, for loading data before the server runs.
    pub fn store(&self) -> &Arc<dyn store::Store> {
        &self.store
    }

    /// The local key that signs and verifies tokens.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Serves until `shutdown` completes, with the background workers, then lets requests in
    /// flight and work in hand finish, and closes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self {
            listener,
            tls,
            store,
            service,
            key: _,
            authenticator,
            mailer,
            worker,
            health,
            rate,
            simulator,
            metrics,
        } = self;
        // Background workers stop when the server does.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
            }
        };
        let owner = worker_id();
        let provisioning = tokio::spawn({
            let (service, settings, owner, until) = (
                service.clone(),
                worker.clone(),
                owner.clone(),
                until_stopped(),
            );
            async move { service.run_provisioning(&owner, &settings, until).await }
        });
        let bulk = tokio::spawn({
            let (service, settings, owner, until) = (
                service.clone(),
                worker.clone(),
                owner.clone(),
                until_stopped(),
            );
            async move { service.run_bulk(&owner, &settings, until).await }
        });
        let mail = tokio::spawn({
            let (service, settings, until) = (service.clone(), worker.clone(), until_stopped());
            async move {
                service
                    .run_notifications(&owner, &mailer, &settings, until)
                    .await
            }
        });
        let housekeeping = tokio::spawn({
            let (service, settings, until) = (service.clone(), worker, until_stopped());
            async move { service.run_housekeeping(&settings, until).await }
        });
        let sampler =
            metrics.then(|| tokio::spawn(metrics::sample_store(store.clone(), until_stopped())));
        let streams = service.clone();
        let result = server::run(
            listener,
            tls,
            service,
            authenticator,
            health,
            rate,
            async move {
                shutdown.await;
                // Change streams never end by themselves: they end now, for the server to.
                streams.close_streams();
                let _ = stop.send(());
            },
        )
        .await;
        let _ = tokio::join!(provisioning, bulk, mail, housekeeping);
        if let Some(sampler) = sampler {
            let _ = sampler.await;
        }
        if let Some(simulator) = simulator {
            let _ = simulator.stop().await;
        }
        store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// The verifier of the tokens `settings` accept: the local key's where they are accepted, and
/// the identity provider's, whose keys are fetched now (a provider not answering yet is
/// reported, and asked again when a token needs its keys).
async fn authenticator(
    settings: &Settings,
    key: &SigningKey,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Authenticator> {
    let provider = match &settings.oidc {
        Some(oidc) => {
            let provider = Issuer::new(oidc.clone())?;
            // A provider not answering yet is logged, and asked again when a token needs keys.
            if let Ok(keys) = provider.prefetch().await {
                tracing::info!(issuer = %oidc.issuer, keys, "identity provider ready");
            }
            Some(provider)
        }
        None => None,
    };
    if !settings.local_tokens {
        tracing::info!(
            listen = %settings.listen,
            "tokens of the local development key are refused on this listener"
        );
    }
    Ok(Authenticator::new(
        settings.local_tokens.then(|| key.clone()),
        provider,
        clock,
    ))
}

/// Whom `numbers token` mints a token for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenFor {
    /// A caller in a tenant, with a role.
    Tenant {
        /// The tenant.
        tenant: String,
        /// Admin, reader or helpdesk.
        role: Role,
    },
    /// An Operator Connect operator.
    Operator(String),
}

/// Mints a token with the locally configured key (generating it if it is the default one and
/// missing, as `serve` would).
pub fn mint_token(
    key_file: &std::path::Path,
    generate: bool,
    to: &TokenFor,
    subject: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let key = SigningKey::load(key_file, generate)?;
    match to {
        TokenFor::Tenant { tenant, role } => key.mint(tenant, subject, *role, ttl),
        TokenFor::Operator(operator) => key.mint_operator(operator, subject, ttl),
    }
}

/// This process's name as a worker, as leases record it: host, process id and a random part,
/// so a restarted process never mistakes its predecessor's leases for its own.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "numbers".to_owned());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &nonce[..8])
}

/// Loads the demo tenant and prints how to try it. Unless the configuration declares the
/// simulated operator (pointing at a simulator of its own), a simulator runs in this process,
/// behind a real socket, and is answered.
async fn start_demo(
    settings: &mut Settings,
    store: &dyn store::Store,
    key: &SigningKey,
    listener: &tokio::net::TcpListener,
) -> anyhow::Result<Option<RunningSimulator>> {
    let configured = settings
        .operators
        .iter()
        .find(|o| o.id == demo::SIMULATED_OPERATOR)
        .and_then(|o| o.endpoint.clone());
    let (simulator, endpoint) = match configured {
        Some(endpoint) => (None, endpoint),
        None => {
            let simulated = demo::simulated_operator("");
            let simulator = RunningSimulator::start(SimulatorSettings {
                operator: OperatorSettings {
                    id: simulated.id,
                    display_name: simulated.display_name,
                    countries: simulated
                        .countries
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect(),
                    tenant_location_update_allowed: simulated.tenant_location_update_allowed,
                },
                activation_delay: demo::SIMULATED_ACTIVATION_DELAY,
                ..SimulatorSettings::default()
            })
            .await?;
            let endpoint = simulator.endpoint();
            (Some(simulator), endpoint)
        }
    };
    for operator in demo::operators()
        .into_iter()
        .chain([demo::simulated_operator(&endpoint)])
    {
        if !settings.operators.iter().any(|o| o.id == operator.id) {
            settings.operators.push(operator);
        }
    }
    demo::load(store).await?;
    demo::load_simulated(store).await?;
    let token = key.mint(
        demo::TENANT,
        "demo-admin",
        Role::Admin,
        Duration::from_secs(12 * 3600),
    )?;
    let address = listener.local_addr()?;
    // How grpcurl reaches the server: plaintext, or trusting the CA that signed its
    // certificate (and presenting a client certificate under mutual TLS).
    let connect = match &settings.tls {
        None => "--plaintext",
        Some(tls) if tls.client_ca.is_some() => {
            "-cacert <CA of the server> -cert <client cert> -key <client key>"
        }
        Some(_) => "-cacert <CA of the server>",
    };
    println!(
        "\nDemo tenant {tenant:?} is loaded. An admin token, valid 12 hours:\n\n  \
         export TOKEN={token}\n\nTry:\n\n  \
         grpcurl {connect} -H \"authorization: Bearer $TOKEN\" \
         -d '{{\"identity\": \"john@contoso.com\"}}' \
         {address} numbers.v1.NumberManagement/GetUser\n\n\
         Litware Mobile, a simulated operator, answers at {endpoint}.\n",
        tenant = demo::TENANT,
    );
    Ok(simulator)
}
