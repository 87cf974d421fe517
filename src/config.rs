//! Configuration: command-line flags, `NUMBERS_*` environment variables and an optional TOML
//! file, in that order of precedence, resolved once at start-up into [`Settings`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::auth::oidc::{self, OidcSettings};
use crate::domain::{ActivationMode, Country, Operator};
use crate::server::HealthSettings;
use crate::service::{SmtpSettings, WorkerSettings};
use crate::tls::{self, TlsSettings};
use numbers_remote::{ClientTls, RemoteSettings};

/// Where the service listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The flags that every subcommand shares.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML configuration file (operators, Calling Plan catalogue, and any setting below).
    #[arg(long, env = "NUMBERS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for the SQLite database and the token signing key
    /// [default: the per-user data directory, such as ~/.local/share/numbers].
    #[arg(long, env = "NUMBERS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// File holding the base64 key that signs tokens; share it between replicas
    /// [default: token.key in the data directory, generated on first start].
    #[arg(long, env = "NUMBERS_TOKEN_KEY_FILE", value_name = "FILE")]
    pub token_key_file: Option<PathBuf>,
}

/// The flags of `numbers serve`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "NUMBERS_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Address to serve Prometheus metrics on, at /metrics, e.g. 127.0.0.1:9090
    /// [default: no metrics].
    #[arg(long, env = "NUMBERS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Database URL: postgres://user@host/db, or sqlite://path
    /// [default: numbers.db in the data directory].
    #[arg(long, env = "NUMBERS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Connections each replica keeps to PostgreSQL for requests, or SQLite's reading
    /// connections (1 to 256) [default: 8].
    #[arg(long, env = "NUMBERS_DATABASE_POOL_SIZE", value_name = "N")]
    pub database_pool_size: Option<usize>,

    /// Requests a second each tenant, and each operator, may make; a second's worth may come
    /// at once, more answer RESOURCE_EXHAUSTED with a RetryInfo. 0 for no limit
    /// [default: 1000].
    #[arg(long, env = "NUMBERS_TENANT_REQUESTS_PER_SECOND", value_name = "N")]
    pub tenant_requests_per_second: Option<u32>,

    /// Emails each tenant's users may be sent an hour; an hour's worth may go at once, more
    /// wait their turn. 0 for no limit [default: 1000].
    #[arg(long, env = "NUMBERS_EMAILS_PER_TENANT_PER_HOUR", value_name = "N")]
    pub emails_per_tenant_per_hour: Option<u32>,

    /// PEM certificate chain to serve TLS with (with --tls-key); reloaded when the file
    /// changes or on SIGHUP [default: plaintext].
    #[arg(long, env = "NUMBERS_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "NUMBERS_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// PEM certificates of the CA that signs client certificates: turns on mutual TLS, and the
    /// API then refuses callers without one (health and reflection still answer them).
    #[arg(long, env = "NUMBERS_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// Log format [default: human].
    #[arg(long, env = "NUMBERS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Load the Contoso demo tenant (idempotent) and print a ready-to-paste grpcurl command.
    #[arg(long, env = "NUMBERS_DEMO")]
    pub demo: bool,

    /// Accept tokens of the local development key (`numbers token`) although --listen is
    /// reachable from other machines; without it the service refuses them there.
    #[arg(long, env = "NUMBERS_ALLOW_LOCAL_KEY_ON_NETWORK")]
    pub allow_local_key_on_network: bool,

    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// The flags naming an OpenID Connect identity provider whose tokens the service accepts.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OidcArgs {
    /// The identity provider's issuer, exactly as its tokens carry it in `iss`
    /// (for Entra ID: https://login.microsoftonline.com/<tenant id>/v2.0).
    #[arg(long = "oidc-issuer", env = "NUMBERS_OIDC_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,

    /// What the provider's tokens for this service carry in `aud` (for Entra ID's v2.0 tokens:
    /// the client id of the service's app registration).
    #[arg(
        long = "oidc-audience",
        env = "NUMBERS_OIDC_AUDIENCE",
        value_name = "AUDIENCE"
    )]
    pub audience: Option<String>,

    /// The provider's JWKS, when not found through its discovery document
    /// [default: jwks_uri of <issuer>/.well-known/openid-configuration].
    #[arg(
        long = "oidc-jwks-url",
        env = "NUMBERS_OIDC_JWKS_URL",
        value_name = "URL"
    )]
    pub jwks_url: Option<String>,

    /// The claim naming the caller's tenant [default: tid].
    #[arg(
        long = "oidc-tenant-claim",
        env = "NUMBERS_OIDC_TENANT_CLAIM",
        value_name = "CLAIM"
    )]
    pub tenant_claim: Option<String>,

    /// The claim listing the caller's roles: admin, reader, helpdesk, in any case
    /// [default: roles].
    #[arg(
        long = "oidc-roles-claim",
        env = "NUMBERS_OIDC_ROLES_CLAIM",
        value_name = "CLAIM"
    )]
    pub roles_claim: Option<String>,
}

/// The configuration file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    metrics_listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_pool_size: Option<usize>,
    tenant_requests_per_second: Option<u32>,
    emails_per_tenant_per_hour: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    log_format: Option<LogFormat>,
    token_key_file: Option<PathBuf>,
    allow_local_key_on_network: Option<bool>,
    oidc: Option<OidcConfig>,
    calling_plan: Option<CallingPlanConfig>,
    #[serde(default)]
    operators: Vec<OperatorConfig>,
    worker: Option<WorkerConfig>,
    smtp: Option<SmtpSettings>,
    remote_adapters: Option<RemoteConfig>,
    health: Option<HealthConfig>,
}

/// The `[oidc]` table: the OpenID Connect identity provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcConfig {
    issuer: Option<String>,
    audience: Option<String>,
    jwks_url: Option<String>,
    tenant_claim: Option<String>,
    roles_claim: Option<String>,
}

impl OidcConfig {
    /// The provider flags and environment name, else the file, if any names an issuer.
    fn settings(self, args: &OidcArgs) -> anyhow::Result<Option<OidcSettings>> {
        let issuer = args.issuer.clone().or(self.issuer);
        let audience = args.audience.clone().or(self.audience);
        let jwks_url = args.jwks_url.clone().or(self.jwks_url);
        let tenant_claim = args.tenant_claim.clone().or(self.tenant_claim);
        let roles_claim = args.roles_claim.clone().or(self.roles_claim);
        let Some(issuer) = issuer else {
            anyhow::ensure!(
                audience.is_none()
                    && jwks_url.is_none()
                    && tenant_claim.is_none()
                    && roles_claim.is_none(),
                "the identity provider settings need its issuer: give --oidc-issuer \
                 (NUMBERS_OIDC_ISSUER, oidc.issuer)"
            );
            return Ok(None);
        };
        oidc::check_url("--oidc-issuer", &issuer)?;
        let audience = audience.filter(|a| !a.trim().is_empty()).with_context(|| {
            format!(
                "--oidc-issuer {issuer} needs the audience its tokens carry for this service: \
                 give --oidc-audience (NUMBERS_OIDC_AUDIENCE, oidc.audience)"
            )
        })?;
        if let Some(url) = &jwks_url {
            oidc::check_url("--oidc-jwks-url", url)?;
        }
        let mut settings = OidcSettings::new(issuer, audience);
        settings.jwks_url = jwks_url;
        for (flag, claim, target) in [
            (
                "--oidc-tenant-claim",
                tenant_claim,
                &mut settings.tenant_claim,
            ),
            ("--oidc-roles-claim", roles_claim, &mut settings.roles_claim),
        ] {
            if let Some(claim) = claim {
                anyhow::ensure!(!claim.trim().is_empty(), "{flag} names no claim");
                *target = claim;
            }
        }
        Ok(Some(settings))
    }
}

/// The `[health]` table: how health checks follow the database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthConfig {
    database_check_interval_ms: Option<u64>,
    database_check_timeout_ms: Option<u64>,
}

impl HealthConfig {
    fn settings(self) -> anyhow::Result<HealthSettings> {
        let defaults = HealthSettings::default();
        let settings = HealthSettings {
            interval: self
                .database_check_interval_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.interval),
            timeout: self
                .database_check_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.timeout),
        };
        anyhow::ensure!(
            settings.interval >= Duration::from_millis(100),
            "health.database_check_interval_ms must be at least 100"
        );
        anyhow::ensure!(
            settings.timeout >= Duration::from_millis(100),
            "health.database_check_timeout_ms must be at least 100"
        );
        Ok(settings)
    }
}

/// The `[worker]` table: how background work (provisioning, emails) paces itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerConfig {
    lease_seconds: Option<u64>,
    poll_interval_ms: Option<u64>,
    batch: Option<usize>,
    bulk_concurrency: Option<usize>,
    backoff_base_ms: Option<u64>,
    backoff_max_seconds: Option<u64>,
    max_failures: Option<i64>,
    max_pending_hours: Option<u64>,
    request_id_retention_hours: Option<u64>,
    operation_retention_days: Option<u64>,
    notification_retention_days: Option<u64>,
}

impl WorkerConfig {
    fn settings(self) -> anyhow::Result<WorkerSettings> {
        let defaults = WorkerSettings::default();
        let settings = WorkerSettings {
            lease: self
                .lease_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.lease),
            idle_poll: self
                .poll_interval_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.idle_poll),
            batch: self.batch.unwrap_or(defaults.batch),
            bulk_concurrency: self.bulk_concurrency.unwrap_or(defaults.bulk_concurrency),
            backoff_base: self
                .backoff_base_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.backoff_base),
            backoff_max: self
                .backoff_max_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.backoff_max),
            max_failures: self.max_failures.unwrap_or(defaults.max_failures),
            max_pending: self
                .max_pending_hours
                .map(|h| Duration::from_secs(h.saturating_mul(3600)))
                .unwrap_or(defaults.max_pending),
            request_id_retention: self
                .request_id_retention_hours
                .map(|h| Duration::from_secs(h.saturating_mul(3600)))
                .unwrap_or(defaults.request_id_retention),
            operation_retention: self
                .operation_retention_days
                .map(|d| Duration::from_secs(d.saturating_mul(24 * 3600)))
                .unwrap_or(defaults.operation_retention),
            notification_retention: self
                .notification_retention_days
                .map(|d| Duration::from_secs(d.saturating_mul(24 * 3600)))
                .unwrap_or(defaults.notification_retention),
        };
        for (retention, key) in [
            (settings.operation_retention, "operation_retention_days"),
            (
                settings.notification_retention,
                "notification_retention_days",
            ),
        ] {
            anyhow::ensure!(
                retention >= Duration::from_secs(24 * 3600),
                "worker.{key} must be at least 1"
            );
        }
        anyhow::ensure!(
            settings.lease >= Duration::from_secs(1),
            "worker.lease_seconds must be at least 1"
        );
        anyhow::ensure!(settings.batch >= 1, "worker.batch must be at least 1");
        anyhow::ensure!(
            settings.bulk_concurrency >= 1,
            "worker.bulk_concurrency must be at least 1"
        );
        anyhow::ensure!(
            settings.request_id_retention >= Duration::from_secs(3600),
            "worker.request_id_retention_hours must be at least 1"
        );
        anyhow::ensure!(
            settings.max_failures >= 1,
            "worker.max_failures must be at least 1"
        );
        Ok(settings)
    }
}

/// The `[calling_plan]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallingPlanConfig {
    /// A catalogue file replacing the one the repository ships.
    catalogue: Option<PathBuf>,
    /// The most Calling Plan numbers one tenant may hold.
    quota: Option<usize>,
}

/// An Operator Connect operator in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorConfig {
    id: String,
    display_name: String,
    countries: Vec<String>,
    #[serde(default)]
    tenant_location_update_allowed: bool,
    activation_mode: Option<ActivationMode>,
    endpoint: Option<String>,
}

/// The `[remote_adapters]` table: how out-of-process adapters are called.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteConfig {
    timeout_ms: Option<u64>,
    retries: Option<u32>,
    breaker_threshold: Option<u32>,
    breaker_cooldown_seconds: Option<u64>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl RemoteConfig {
    fn settings(self) -> anyhow::Result<RemoteSettings> {
        let defaults = RemoteSettings::default();
        let ca = self
            .tls_ca
            .map(|path| {
                let pem = tls::read_pem(&path)?;
                tls::parse_certificates(&pem, &path)?;
                anyhow::Ok(pem)
            })
            .transpose()?;
        let identity = match (self.tls_cert, self.tls_key) {
            (None, None) => None,
            (Some(cert_path), Some(key_path)) => {
                let (cert, key) = (tls::read_pem(&cert_path)?, tls::read_pem(&key_path)?);
                tls::parse_certificates(&cert, &cert_path)?;
                tls::parse_private_key(&key, &key_path)?;
                Some((cert, key))
            }
            _ => anyhow::bail!(
                "remote_adapters.tls_cert and remote_adapters.tls_key go together: give both, \
                 or neither"
            ),
        };
        Ok(RemoteSettings {
            endpoint: String::new(),
            timeout: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.timeout),
            retries: self.retries.unwrap_or(defaults.retries),
            backoff: defaults.backoff,
            breaker_threshold: self.breaker_threshold.unwrap_or(defaults.breaker_threshold),
            breaker_cooldown: self
                .breaker_cooldown_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.breaker_cooldown),
            tls: ClientTls { ca, identity },
        })
    }
}

/// Connections a replica keeps to its database for requests, unless configured.
///
/// A few busy connections do more than many: requests beyond them queue in the service, in
/// order, rather than inside PostgreSQL, whose backends then contend for CPU and locks.
/// Measured with `numbers bench --store postgres` on 2 cores at 32 assignments in flight, 8
/// connections took 1.7 ms of PostgreSQL's CPU per assignment where 32 took 2.6 ms, for 30%
/// more assignments a second and a p99 of 70 ms instead of 280 ms (docs/performance.md). A
/// database with more cores may want more.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// The most emails a tenant's users are sent an hour unless configured
/// (`--emails-per-tenant-per-hour`); an hour's worth may go at once.
pub const DEFAULT_EMAILS_PER_TENANT_PER_HOUR: u32 = 1000;

/// The most Calling Plan numbers a tenant may hold unless configured (`[calling_plan] quota`):
/// the shared stock is not one tenant's to empty.
pub const DEFAULT_CALLING_PLAN_QUOTA: usize = 1000;
/// The largest quota that may be configured.
const MAX_CALLING_PLAN_QUOTA: usize = 1_000_000;

/// Requests a second a tenant may make unless configured: far above what an administrator's
/// tools need, well below what would starve the other tenants of one server.
pub const DEFAULT_TENANT_REQUESTS_PER_SECOND: u32 = 1000;

/// The largest pool a replica may ask for.
const MAX_POOL_SIZE: usize = 256;

/// Everything the service needs to start, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to serve Prometheus metrics; none serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// Where local state lives.
    pub data_dir: PathBuf,
    /// The database to use.
    pub database_url: String,
    /// Connections to it for requests (see [`DEFAULT_POOL_SIZE`]).
    pub database_pool_size: usize,
    /// Requests a second per tenant and per operator, 0 for no limit (see
    /// [`DEFAULT_TENANT_REQUESTS_PER_SECOND`]).
    pub tenant_requests_per_second: u32,
    /// Emails a tenant's users may be sent an hour, 0 for no limit (see
    /// [`DEFAULT_EMAILS_PER_TENANT_PER_HOUR`]).
    pub emails_per_tenant_per_hour: u32,
    /// TLS of the server; none serves plaintext.
    pub tls: Option<TlsSettings>,
    /// The log format.
    pub log_format: LogFormat,
    /// The token signing key file.
    pub token_key_file: PathBuf,
    /// Whether the key file is ours to generate (it is the default one in the data directory).
    pub generate_token_key: bool,
    /// Whether tokens of the local key are accepted: on a loopback listener, or when allowed
    /// explicitly.
    pub local_tokens: bool,
    /// The OpenID Connect identity provider whose tokens are accepted too, if any.
    pub oidc: Option<OidcSettings>,
    /// The Operator Connect operators.
    pub operators: Vec<Operator>,
    /// A Calling Plan catalogue file replacing the shipped one.
    pub calling_plan_catalogue: Option<PathBuf>,
    /// The most Calling Plan numbers one tenant may hold (see
    /// [`DEFAULT_CALLING_PLAN_QUOTA`]).
    pub calling_plan_quota: usize,
    /// How background work paces itself.
    pub worker: WorkerSettings,
    /// The SMTP server emails go to; none writes them to the log.
    pub smtp: Option<SmtpSettings>,
    /// How out-of-process adapters are called (the endpoint is each operator's).
    pub remote: RemoteSettings,
    /// How health checks follow the database.
    pub health: HealthSettings,
    /// Whether to load the demo tenant.
    pub demo: bool,
}

impl Settings {
    /// Resolves the settings of `numbers serve`.
    pub fn for_serve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.common.config.as_deref())?;
        let listen_text = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not an address like 127.0.0.1:50051")
        })?;
        let metrics_listen = args
            .metrics_listen
            .clone()
            .or(file.metrics_listen)
            .map(|text| {
                text.parse().with_context(|| {
                    format!("--metrics-listen {text:?} is not an address like 127.0.0.1:9090")
                })
            })
            .transpose()?;
        anyhow::ensure!(
            metrics_listen != Some(listen),
            "--metrics-listen must be another address than --listen ({listen})"
        );
        let data_dir = data_dir(args.common.data_dir.clone().or(file.data_dir))?;
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("numbers.db").display()));
        let database_pool_size = args
            .database_pool_size
            .or(file.database_pool_size)
            .unwrap_or(DEFAULT_POOL_SIZE);
        anyhow::ensure!(
            (1..=MAX_POOL_SIZE).contains(&database_pool_size),
            "the database pool size must be 1 to {MAX_POOL_SIZE}, not {database_pool_size}"
        );
        let (calling_plan_catalogue, calling_plan_quota) = match file.calling_plan {
            Some(table) => (table.catalogue, table.quota),
            None => (None, None),
        };
        let calling_plan_quota = calling_plan_quota.unwrap_or(DEFAULT_CALLING_PLAN_QUOTA);
        anyhow::ensure!(
            (1..=MAX_CALLING_PLAN_QUOTA).contains(&calling_plan_quota),
            "[calling_plan] quota must be 1 to {MAX_CALLING_PLAN_QUOTA}, not {calling_plan_quota}"
        );
        let tenant_requests_per_second = args
            .tenant_requests_per_second
            .or(file.tenant_requests_per_second)
            .unwrap_or(DEFAULT_TENANT_REQUESTS_PER_SECOND);
        let emails_per_tenant_per_hour = args
            .emails_per_tenant_per_hour
            .or(file.emails_per_tenant_per_hour)
            .unwrap_or(DEFAULT_EMAILS_PER_TENANT_PER_HOUR);
        let tls = tls_settings(
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
            args.tls_client_ca.clone().or(file.tls_client_ca),
        )?;
        let (token_key_file, generate_token_key) = token_key_file(
            args.common.token_key_file.clone().or(file.token_key_file),
            &data_dir,
        );
        let oidc = file.oidc.unwrap_or_default().settings(&args.oidc)?;
        let local_tokens = local_tokens(
            listen,
            args.allow_local_key_on_network || file.allow_local_key_on_network == Some(true),
            oidc.is_some(),
        )?;
        anyhow::ensure!(
            local_tokens || !args.demo,
            "--demo prints a token of the local development key, which --listen {listen} \
             does not accept: listen on 127.0.0.1, or pass --allow-local-key-on-network"
        );
        Ok(Self {
            listen,
            metrics_listen,
            database_url,
            database_pool_size,
            tenant_requests_per_second,
            emails_per_tenant_per_hour,
            tls,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            token_key_file,
            generate_token_key,
            local_tokens,
            oidc,
            operators: operators(file.operators)?,
            calling_plan_catalogue,
            calling_plan_quota,
            worker: file.worker.unwrap_or_default().settings()?,
            smtp: file.smtp,
            remote: file.remote_adapters.unwrap_or_default().settings()?,
            health: file.health.unwrap_or_default().settings()?,
            demo: args.demo,
            data_dir,
        })
    }

    /// Resolves the token key file for commands that only mint tokens.
    pub fn token_key_for(args: &CommonArgs) -> anyhow::Result<(PathBuf, bool)> {
        let file = read_file(args.config.as_deref())?;
        let data_dir = data_dir(args.data_dir.clone().or(file.data_dir))?;
        Ok(token_key_file(
            args.token_key_file.clone().or(file.token_key_file),
            &data_dir,
        ))
    }
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the configuration file {} is invalid: {}",
            path.display(),
            e.message()
        )
    })
}

fn data_dir(configured: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match configured {
        Some(dir) => Ok(dir),
        None => directories::ProjectDirs::from("", "", "numbers")
            .map(|dirs| dirs.data_dir().to_path_buf())
            .context("cannot find a per-user data directory: pass --data-dir"),
    }
}

/// The server's TLS from its three settings: a certificate and its key, or neither; a client
/// CA only with them. The files are read when the server starts.
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Option<TlsSettings>> {
    match (cert, key, client_ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), client_ca) => Ok(Some(TlsSettings::new(cert, key, client_ca))),
        (None, None, Some(_)) => anyhow::bail!(
            "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS with client \
             certificates"
        ),
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both, or neither"),
    }
}

/// Whether a service listening on `listen` accepts tokens of the local key: anyone who can read
/// the key file can mint any role in any tenant, so only on loopback, unless `allowed`. A
/// service on the network without them needs an identity provider, or nobody could call it.
fn local_tokens(listen: SocketAddr, allowed: bool, provider: bool) -> anyhow::Result<bool> {
    let accepted = listen.ip().is_loopback() || allowed;
    anyhow::ensure!(
        accepted || provider,
        "--listen {listen} is reachable from other machines, where tokens of the local \
         development key are refused: configure an identity provider (--oidc-issuer and \
         --oidc-audience), or accept the local key there with --allow-local-key-on-network \
         (NUMBERS_ALLOW_LOCAL_KEY_ON_NETWORK, allow_local_key_on_network = true)"
    );
    Ok(accepted)
}

fn token_key_file(configured: Option<PathBuf>, data_dir: &Path) -> (PathBuf, bool) {
    match configured {
        Some(path) => (path, false),
        None => (data_dir.join("token.key"), true),
    }
}

fn operators(configured: Vec<OperatorConfig>) -> anyhow::Result<Vec<Operator>> {
    let mut seen = HashSet::new();
    configured
        .into_iter()
        .map(|op| {
            anyhow::ensure!(
                !op.id.is_empty()
                    && op.id.len() <= 64
                    && op
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "operator id {:?} must be 1 to 64 lower-case letters, digits or dashes",
                op.id
            );
            anyhow::ensure!(
                seen.insert(op.id.clone()),
                "operator {:?} is declared twice",
                op.id
            );
            anyhow::ensure!(
                !op.countries.is_empty(),
                "operator {:?} serves no countries",
                op.id
            );
            let countries = op
                .countries
                .iter()
                .map(|c| {
                    Country::parse(c).map_err(|e| anyhow::anyhow!("operator {:?}: {e}", op.id))
                })
                .collect::<anyhow::Result<_>>()?;
            let activation_mode = match (op.activation_mode, &op.endpoint) {
                (None, None) => ActivationMode::Synchronous,
                (None | Some(ActivationMode::Asynchronous), Some(_)) => {
                    ActivationMode::Asynchronous
                }
                (Some(ActivationMode::Synchronous), None) => ActivationMode::Synchronous,
                (Some(ActivationMode::Synchronous), Some(_)) => anyhow::bail!(
                    "operator {:?} is reached over the network, so its activation is ASYNCHRONOUS",
                    op.id
                ),
                (Some(ActivationMode::Asynchronous), None) => anyhow::bail!(
                    "operator {:?} is ASYNCHRONOUS: give the endpoint of its adapter",
                    op.id
                ),
            };
            Ok(Operator {
                id: op.id,
                display_name: op.display_name,
                countries,
                tenant_location_update_allowed: op.tenant_location_update_allowed,
                activation_mode,
                endpoint: op.endpoint,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_with(config: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numbers.toml");
        std::fs::write(&path, config).unwrap();
        let args = ServeArgs {
            common: CommonArgs {
                config: Some(path),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        };
        Settings::for_serve(&args)
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let settings = serve_with(include_str!("../numbers.example.toml")).unwrap();
        assert!(!settings.operators.is_empty());
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            common: CommonArgs {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        };
        let settings = Settings::for_serve(&args).unwrap();
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert!(settings.database_url.starts_with("sqlite://"));
        assert_eq!(settings.database_pool_size, DEFAULT_POOL_SIZE);
        assert!(settings.generate_token_key);
    }

    #[test]
    fn the_pool_size_is_configurable_within_bounds() {
        let settings = serve_with("database_pool_size = 32").unwrap();
        assert_eq!(settings.database_pool_size, 32);
        for bad in ["database_pool_size = 0", "database_pool_size = 100000"] {
            let refused = serve_with(bad).unwrap_err();
            assert!(
                format!("{refused:#}").contains("pool size must be 1 to 256"),
                "{refused:#}"
            );
        }
    }

    #[test]
    fn tls_is_off_unless_a_certificate_and_its_key_are_given() {
        assert!(serve_with("").unwrap().tls.is_none());
        let settings = serve_with(
            "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\ntls_client_ca = \"ca.pem\"",
        )
        .unwrap();
        let tls = settings.tls.expect("TLS");
        assert_eq!(tls.cert, Path::new("server.pem"));
        assert_eq!(tls.key, Path::new("server.key"));
        assert_eq!(tls.client_ca.as_deref(), Some(Path::new("ca.pem")));
        for (bad, says) in [
            ("tls_cert = \"server.pem\"", "go together"),
            ("tls_key = \"server.key\"", "go together"),
            (
                "tls_client_ca = \"ca.pem\"",
                "--tls-client-ca needs --tls-cert",
            ),
        ] {
            let refused = serve_with(bad).unwrap_err();
            assert!(format!("{refused:#}").contains(says), "{refused:#}");
        }
    }

    #[test]
    fn tls_flags_take_precedence_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numbers.toml");
        std::fs::write(&path, "tls_cert = \"file.pem\"\ntls_key = \"file.key\"").unwrap();
        let args = ServeArgs {
            common: CommonArgs {
                config: Some(path),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            tls_cert: Some("flag.pem".into()),
            ..Default::default()
        };
        let tls = Settings::for_serve(&args).unwrap().tls.expect("TLS");
        assert_eq!(tls.cert, Path::new("flag.pem"));
        assert_eq!(tls.key, Path::new("file.key"));
    }

    #[test]
    fn remote_adapter_tls_files_must_hold_pem() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let refused = serve_with(&format!(
            "[remote_adapters]\ntls_ca = \"{}\"",
            not_pem.display()
        ))
        .unwrap_err();
        let message = format!("{refused:#}");
        assert!(message.contains("no PEM certificate"), "{message}");
        assert!(
            message.contains(&not_pem.display().to_string()),
            "{message}"
        );
        let missing =
            serve_with("[remote_adapters]\ntls_ca = \"/nonexistent/ca.pem\"").unwrap_err();
        assert!(
            format!("{missing:#}").contains("cannot read /nonexistent/ca.pem"),
            "{missing:#}"
        );
        let half = serve_with("[remote_adapters]\ntls_cert = \"client.pem\"").unwrap_err();
        assert!(format!("{half:#}").contains("go together"), "{half:#}");
    }

    #[test]
    fn health_checks_are_configurable_within_bounds() {
        let settings = serve_with(
            "[health]\ndatabase_check_interval_ms = 250\ndatabase_check_timeout_ms = 2000",
        )
        .unwrap();
        assert_eq!(settings.health.interval, Duration::from_millis(250));
        assert_eq!(settings.health.timeout, Duration::from_secs(2));
        let too_often = serve_with("[health]\ndatabase_check_interval_ms = 0").unwrap_err();
        assert!(
            format!("{too_often:#}").contains("database_check_interval_ms"),
            "{too_often:#}"
        );
    }

    #[test]
    fn metrics_are_served_where_the_file_or_the_flag_says() {
        assert_eq!(serve_with("").unwrap().metrics_listen, None);
        let settings = serve_with("metrics_listen = \"127.0.0.1:9090\"").unwrap();
        assert_eq!(
            settings.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        let dir = tempfile::tempdir().unwrap();
        let flag = Settings::for_serve(&ServeArgs {
            common: CommonArgs {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            metrics_listen: Some("0.0.0.0:9100".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flag.metrics_listen, Some("0.0.0.0:9100".parse().unwrap()));
        let bad = serve_with("metrics_listen = \"nine\"").unwrap_err();
        assert!(format!("{bad:#}").contains("--metrics-listen"), "{bad:#}");
        let same = serve_with(&format!("metrics_listen = \"{DEFAULT_LISTEN}\"")).unwrap_err();
        assert!(format!("{same:#}").contains("another address"), "{same:#}");
    }

    fn serve_on(listen: &str, config: &str, oidc: OidcArgs) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numbers.toml");
        std::fs::write(&path, config).unwrap();
        Settings::for_serve(&ServeArgs {
            common: CommonArgs {
                config: Some(path),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            listen: Some(listen.into()),
            oidc,
            ..Default::default()
        })
    }

    #[test]
    fn the_identity_provider_comes_from_flags_or_the_file() {
        let file = "[oidc]\nissuer = \"https://login.microsoftonline.com/t/v2.0\"\n\
                    audience = \"api://numbers\"\nroles_claim = \"groups\"";
        let settings = serve_with(file).unwrap();
        let oidc = settings.oidc.expect("a provider");
        assert_eq!(oidc.issuer, "https://login.microsoftonline.com/t/v2.0");
        assert_eq!(oidc.audience, "api://numbers");
        assert_eq!(oidc.jwks_url, None);
        assert_eq!(oidc.tenant_claim, "tid");
        assert_eq!(oidc.roles_claim, "groups");
        assert!(serve_with("").unwrap().oidc.is_none());

        // Flags (and so the environment) come before the file.
        let flags = OidcArgs {
            audience: Some("client-id".into()),
            tenant_claim: Some("org".into()),
            jwks_url: Some("https://keys.example.com/jwks".into()),
            ..Default::default()
        };
        let oidc = serve_on("127.0.0.1:0", file, flags).unwrap().oidc.unwrap();
        assert_eq!(oidc.audience, "client-id");
        assert_eq!(oidc.tenant_claim, "org");
        assert_eq!(oidc.roles_claim, "groups");
        assert_eq!(
            oidc.jwks_url.as_deref(),
            Some("https://keys.example.com/jwks")
        );

        for (bad, explained) in [
            (
                "[oidc]\nissuer = \"https://idp.example.com\"",
                "--oidc-audience",
            ),
            ("[oidc]\naudience = \"api://numbers\"", "--oidc-issuer"),
            (
                "[oidc]\nissuer = \"http://idp.example.com\"\naudience = \"a\"",
                "https://",
            ),
            (
                "[oidc]\nissuer = \"https://idp.example.com\"\naudience = \"a\"\n\
                 tenant_claim = \"\"",
                "--oidc-tenant-claim",
            ),
            ("[oidc]\nclient_secret = \"x\"", "client_secret"),
        ] {
            let refused = serve_with(bad).unwrap_err();
            assert!(
                format!("{refused:#}").contains(explained),
                "{bad}: {refused:#}"
            );
        }
    }

    #[test]
    fn the_local_key_is_for_loopback_unless_allowed() {
        let local = serve_on("127.0.0.1:0", "", OidcArgs::default()).unwrap();
        assert!(local.local_tokens);
        let refused = serve_on("0.0.0.0:50051", "", OidcArgs::default()).unwrap_err();
        let message = format!("{refused:#}");
        assert!(
            message.contains("--allow-local-key-on-network"),
            "{message}"
        );
        assert!(message.contains("--oidc-issuer"), "{message}");
        assert!(serve_on("[::]:50051", "", OidcArgs::default()).is_err());

        let allowed = serve_on(
            "0.0.0.0:50051",
            "allow_local_key_on_network = true",
            OidcArgs::default(),
        )
        .unwrap();
        assert!(allowed.local_tokens);

        // With a provider, the service starts, refusing the local key's tokens.
        let provider = OidcArgs {
            issuer: Some("https://idp.example.com".into()),
            audience: Some("api://numbers".into()),
            ..Default::default()
        };
        let networked = serve_on("0.0.0.0:50051", "", provider).unwrap();
        assert!(!networked.local_tokens);
        assert!(networked.oidc.is_some());
    }

    #[test]
    fn bad_files_are_explained() {
        let unknown = serve_with("colour = \"blue\"").unwrap_err();
        assert!(format!("{unknown:#}").contains("colour"), "{unknown:#}");
        let bad_country =
            serve_with("[[operators]]\nid = \"x\"\ndisplay_name = \"X\"\ncountries = [\"ZZ\"]")
                .unwrap_err();
        assert!(format!("{bad_country:#}").contains("ZZ"), "{bad_country:#}");
        let twice = serve_with(
            "[[operators]]\nid = \"x\"\ndisplay_name = \"X\"\ncountries = [\"US\"]\n\
             [[operators]]\nid = \"x\"\ndisplay_name = \"X\"\ncountries = [\"US\"]",
        )
        .unwrap_err();
        assert!(format!("{twice:#}").contains("twice"), "{twice:#}");
    }
}
