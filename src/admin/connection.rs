//! Where the command line finds the server and how it proves who it is: flags, then
//! `NUMBERS_*` variables, then the file `numbers login` keeps, then the local service.
//!
//! The kept file holds a bearer token, so it is written readable by its owner only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto::v1::number_management_client::NumberManagementClient;

/// The server the command line talks to when nothing says otherwise: `numbers serve`'s default.
pub(super) const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// How long a call may take; a bulk call's stream and `operation wait` set their own.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The flags every command that calls the server takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConnectionArgs {
    /// The server: host:port, or a URL (https:// for TLS) [default: what `numbers login` kept,
    /// else http://127.0.0.1:50051].
    #[arg(long, env = "NUMBERS_SERVER", value_name = "ADDR", global = true)]
    pub server: Option<String>,
    /// The bearer token (as `numbers token` mints, or your identity provider issues)
    /// [default: what `numbers login` kept].
    #[arg(
        long,
        env = "NUMBERS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (TLS); the system's roots
    /// otherwise.
    #[arg(long, env = "NUMBERS_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM certificate for mutual TLS, with --client-key.
    #[arg(
        long,
        env = "NUMBERS_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "NUMBERS_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate is checked against [default: the server's host].
    #[arg(long, env = "NUMBERS_TLS_DOMAIN", value_name = "NAME", global = true)]
    pub tls_domain: Option<String>,
}

/// What `numbers login` keeps: the same settings as the flags.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Saved {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_domain: Option<String>,
}

impl Saved {
    /// The file `numbers login` writes: `NUMBERS_CLI_CONFIG`, else `cli.toml` in the per-user
    /// configuration directory (such as ~/.config/numbers/cli.toml).
    pub(super) fn path() -> anyhow::Result<PathBuf> {
        if let Some(path) = std::env::var_os("NUMBERS_CLI_CONFIG") {
            return Ok(PathBuf::from(path));
        }
        let dirs = directories::ProjectDirs::from("", "", "numbers")
            .context("no home directory to keep the login in: set NUMBERS_CLI_CONFIG")?;
        Ok(dirs.config_dir().join("cli.toml"))
    }

    /// The kept settings; none when nothing was kept.
    pub(super) fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("cannot read {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the settings, readable by their owner only.
    pub(super) fn store(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string(self)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

impl ConnectionArgs {
    /// These flags, with what `numbers login` kept filling the ones not given.
    pub(super) fn resolved(&self) -> anyhow::Result<Saved> {
        let saved = Saved::load()?;
        Ok(Saved {
            server: self.server.clone().or(saved.server),
            token: self.token.clone().or(saved.token),
            ca_cert: self.ca_cert.clone().or(saved.ca_cert),
            client_cert: self.client_cert.clone().or(saved.client_cert),
            client_key: self.client_key.clone().or(saved.client_key),
            tls_domain: self.tls_domain.clone().or(saved.tls_domain),
        })
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub(super) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client of the NumberManagement service.
pub(super) type Client = NumberManagementClient<InterceptedService<Channel, Bearer>>;

/// The server's address as a URI: `host:port` means plain HTTP/2.
fn uri(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The endpoint `settings` describe, with TLS when the address is https:// or a CA or client
/// certificate is given.
fn endpoint(settings: &Saved) -> anyhow::Result<Endpoint> {
    let server = settings.server.as_deref().unwrap_or(DEFAULT_SERVER);
    let mut uri = uri(server);
    let tls_wanted =
        uri.starts_with("https://") || settings.ca_cert.is_some() || settings.client_cert.is_some();
    if tls_wanted && let Some(rest) = uri.strip_prefix("http://") {
        uri = format!("https://{rest}");
    }
    let mut endpoint = Endpoint::from_shared(uri)
        .with_context(|| format!("{server:?} is not a server address"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT);
    if tls_wanted {
        let mut tls = ClientTlsConfig::new();
        tls = match &settings.ca_cert {
            Some(path) => tls.ca_certificate(Certificate::from_pem(read(path)?)),
            None => tls.with_enabled_roots(),
        };
        if let (Some(cert), Some(key)) = (&settings.client_cert, &settings.client_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(domain) = &settings.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint = endpoint
            .tls_config(tls)
            .context("cannot set up TLS for the server")?;
    }
    Ok(endpoint)
}

/// A client of the server `settings` describe. The connection is made on the first call, so a
/// server that does not answer is reported as that call's UNAVAILABLE.
pub(super) fn client(settings: &Saved) -> anyhow::Result<Client> {
    let bearer = match &settings.token {
        Some(token) => Some(
            format!("Bearer {}", token.trim())
                .parse()
                .context("the token is not printable ASCII")?,
        ),
        None => None,
    };
    let channel = endpoint(settings)?.connect_lazy();
    Ok(
        NumberManagementClient::with_interceptor(channel, Bearer(bearer))
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}
