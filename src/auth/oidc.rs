//! Tokens of an OpenID Connect provider (Microsoft Entra ID, Keycloak, Auth0...), verified with
//! the signing keys the provider publishes.
//!
//! The keys come from the provider's JWKS, found through its discovery document
//! (`<issuer>/.well-known/openid-configuration`) unless configured directly. They are cached by
//! key id; a token signed with a key id not in the cache makes the service fetch the keys again
//! (providers rotate keys by publishing the new one first), but at most once per
//! [`OidcSettings::refetch_interval`], so a flood of made-up key ids cannot make the service
//! hammer the provider. Keys older than [`KEYS_MAX_AGE`] are fetched again on the next use, so a
//! key the provider withdrew stops being trusted.
//!
//! Only RS256 and ES256 are accepted: a token claiming `none` or an HMAC algorithm (which would
//! verify with the public key as the secret) is refused before any key is looked at. The
//! issuer, audience, expiry and not-before are checked, the last two with [`LEEWAY`] of clock
//! skew; the tenant and the roles come from configurable claims.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{Caller, Principal, Role};
use crate::error::{Error, Reason};

/// The claim naming the tenant unless configured: Entra ID's tenant id.
pub const DEFAULT_TENANT_CLAIM: &str = "tid";
/// The claim listing the caller's roles unless configured: Entra ID's app roles.
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// How long fetched keys are used before they are fetched again, unless configured.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Least time between two fetches of the keys, unless configured.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long one request to the provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Which provider to trust, and where its tokens keep the tenant and the roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// The provider's issuer, exactly as tokens carry it in `iss`, such as
    /// `https://login.microsoftonline.com/<tenant id>/v2.0`.
    pub issuer: String,
    /// What tokens for this service carry in `aud`, such as `api://numbers`.
    pub audience: String,
    /// The provider's JWKS; found through the discovery document when none.
    pub jwks_url: Option<String>,
    /// The claim naming the tenant.
    pub tenant_claim: String,
    /// The claim listing the roles (an array of strings, or one string).
    pub roles_claim: String,
    /// Least time between two fetches of the keys caused by unknown key ids.
    pub refetch_interval: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub keys_max_age: Duration,
}

impl OidcSettings {
    /// Settings for `issuer` and `audience`, with Entra ID's claims.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            tenant_claim: DEFAULT_TENANT_CLAIM.to_owned(),
            roles_claim: DEFAULT_ROLES_CLAIM.to_owned(),
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            keys_max_age: KEYS_MAX_AGE,
        }
    }
}

/// Checks that `url` may be fetched for keys: HTTPS, or plain HTTP to this machine only
/// (a provider on loopback, as in tests), since the keys decide who may do what.
pub fn check_url(what: &str, url: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("{what} {url:?} is not a URL"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => anyhow::bail!("{what} {url:?} must be an https:// URL"),
    }
}

/// A key of the provider, with the one algorithm it verifies.
#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    algorithm: Algorithm,
}

/// The keys last fetched, by key id.
#[derive(Default)]
struct Keys {
    by_id: HashMap<String, Key>,
    fetched: Option<Instant>,
}

/// The last fetch, for pacing fetches.
#[derive(Default)]
struct Fetches {
    last: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

/// A trusted OpenID Connect provider: its settings and the keys fetched from it.
pub struct Issuer {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: RwLock<Arc<Keys>>,
    fetches: tokio::sync::Mutex<Fetches>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The part of a discovery document the service reads.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// A key set, each key read on its own so one key of a kind unknown here spoils nothing.
#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Value>,
}

impl Issuer {
    /// A provider as `settings` describe it; no key is fetched yet.
    pub fn new(settings: OidcSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client for the identity provider")?;
        Ok(Self {
            settings,
            http,
            keys: RwLock::default(),
            fetches: tokio::sync::Mutex::default(),
        })
    }

    /// The issuer its tokens carry.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Fetches the keys now, as at start-up; a failure is reported, and the keys are fetched
    /// again when a token needs them.
    pub async fn prefetch(&self) -> anyhow::Result<usize> {
        let mut fetches = self.fetches.lock().await;
        self.fetch_into(&mut fetches).await
    }

    /// Verifies `token` as issued by this provider, at `now`: whom it names, and until when
    /// it is valid.
    pub async fn verify(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<(Principal, SystemTime), Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(unauthenticated(format!(
                "tokens of {} must be signed with RS256 or ES256, not {:?}",
                self.settings.issuer, header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthenticated("the token names no signing key (kid)"))?;
        let key = self.key(&kid).await?;
        if key.algorithm != header.alg {
            return Err(unauthenticated(format!(
                "the token says {:?}, but key {kid} is a {:?} key",
                header.alg, key.algorithm
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is checked below, against the service's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => unauthenticated(format!(
                "the token's signature does not verify with key {kid}"
            )),
            ErrorKind::InvalidAudience => unauthenticated(format!(
                "the token is for another audience; this service is {}",
                self.settings.audience
            )),
            ErrorKind::InvalidIssuer => unauthenticated("the token's issuer is not trusted"),
            ErrorKind::MissingRequiredClaim(claim) => {
                unauthenticated(format!("the token has no {claim} claim"))
            }
            _ => malformed(),
        })?
        .claims;
        let expires = time_claim(&claims, "exp")
            .ok_or_else(|| unauthenticated("the token's exp claim is not a time"))?
            + LEEWAY;
        if expires <= now {
            return Err(unauthenticated(
                "the token has expired; get a new one from the identity provider",
            ));
        }
        if claims.contains_key("nbf") {
            let valid_from = time_claim(&claims, "nbf")
                .ok_or_else(|| unauthenticated("the token's nbf claim is not a time"))?;
            if valid_from > now + LEEWAY {
                return Err(unauthenticated("the token is not valid yet"));
            }
        }
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(unauthenticated("the token's sub claim is not a name")),
        };
        let tenant_claim = &self.settings.tenant_claim;
        let tenant_id = match claims.get(tenant_claim) {
            Some(Value::String(id)) if crate::domain::is_tenant_id(id) => id.clone(),
            _ => {
                return Err(unauthenticated(format!(
                    "the token names no tenant in its {tenant_claim} claim"
                )));
            }
        };
        let granted: Vec<&str> = match claims.get(&self.settings.roles_claim) {
            Some(Value::String(role)) => vec![role.as_str()],
            Some(Value::Array(roles)) => roles.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let role = Role::strongest(granted.iter().filter_map(|r| Role::tenant_role(r)))
            .ok_or_else(|| {
                Error::new(
                    Reason::PermissionDenied,
                    format!(
                        "{subject} holds none of the roles admin, reader or helpdesk in the \
                         token's {} claim; ask an administrator of the identity provider to \
                         assign one",
                        self.settings.roles_claim
                    ),
                )
                .with("roles", granted.join(","))
            })?;
        let caller = Caller {
            tenant_id,
            subject,
            issuer: self.settings.issuer.clone(),
            role,
        };
        Ok((Principal::Tenant(caller), expires))
    }

    /// The key `kid`: cached, or fetched again when unknown, at most once per refetch interval.
    /// Keys older than [`OidcSettings::keys_max_age`] are fetched again by one request while the others go on
    /// with them, and kept when the provider does not answer: the provider being down must not
    /// lock everyone out.
    async fn key(&self, kid: &str) -> Result<Key, Error> {
        match self.cached(kid) {
            (Some(key), false) => Ok(key),
            (Some(key), true) => {
                let Ok(mut fetches) = self.fetches.try_lock() else {
                    return Ok(key);
                };
                if self.paced(&fetches) || self.fetch_into(&mut fetches).await.is_err() {
                    return Ok(key);
                }
                // Fresh keys: one the provider withdrew verifies no more.
                self.cached(kid).0.ok_or_else(|| self.unpublished(kid))
            }
            (None, _) => {
                let mut fetches = self.fetches.lock().await;
                // Another request may have fetched the keys while this one waited.
                if let (Some(key), _) = self.cached(kid) {
                    return Ok(key);
                }
                if !self.paced(&fetches) {
                    let _ = self.fetch_into(&mut fetches).await;
                }
                if let (Some(key), _) = self.cached(kid) {
                    return Ok(key);
                }
                match &fetches.failure {
                    Some(failure) => Err(Error::new(
                        Reason::IdentityProviderUnavailable,
                        format!(
                            "the signing keys of {} cannot be fetched ({failure}); retry later",
                            self.settings.issuer
                        ),
                    )),
                    None => Err(self.unpublished(kid)),
                }
            }
        }
    }

    /// Whether the last fetch was too recent for another.
    fn paced(&self, fetches: &Fetches) -> bool {
        fetches
            .last
            .is_some_and(|last| last.elapsed() < self.settings.refetch_interval)
    }

    /// The refusal of a token signed with a key the provider does not publish.
    fn unpublished(&self, kid: &str) -> Error {
        unauthenticated(format!(
            "the token was signed with key {kid}, which {} does not publish",
            self.settings.issuer
        ))
    }

    /// The cached key `kid`, if any, and whether the cache is older than
    /// [`OidcSettings::keys_max_age`].
    fn cached(&self, kid: &str) -> (Option<Key>, bool) {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let stale = keys
            .fetched
            .is_none_or(|fetched| fetched.elapsed() >= self.settings.keys_max_age);
        (keys.by_id.get(kid).cloned(), stale)
    }

    /// Fetches the keys into the cache, recording the attempt in `fetches`; answers how many
    /// usable keys the provider publishes.
    async fn fetch_into(&self, fetches: &mut Fetches) -> anyhow::Result<usize> {
        fetches.last = Some(Instant::now());
        match self.fetch().await {
            Ok(by_id) => {
                let count = by_id.len();
                tracing::info!(issuer = %self.settings.issuer, keys = count, "fetched signing keys");
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Keys {
                    by_id,
                    fetched: Some(Instant::now()),
                });
                fetches.failure = None;
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    error = format!("{error:#}"),
                    "cannot fetch the identity provider's keys"
                );
                fetches.failure = Some(format!("{error:#}"));
                Err(error)
            }
        }
    }

    /// Fetches the provider's usable keys: RSA keys for RS256 and P-256 keys for ES256, meant
    /// for signatures, with a key id.
    async fn fetch(&self) -> anyhow::Result<HashMap<String, Key>> {
        let jwks_url = match &self.settings.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let discovery: Discovery = self.get_json(&url).await?;
                // OpenID Connect Discovery 1.0, section 4.3: the document must name the
                // issuer it was fetched for.
                anyhow::ensure!(
                    discovery.issuer == self.settings.issuer,
                    "{url} names the issuer {:?}, not {:?}",
                    discovery.issuer,
                    self.settings.issuer
                );
                check_url("the discovery document's jwks_uri", &discovery.jwks_uri)?;
                discovery.jwks_uri
            }
        };
        let set: KeySet = self.get_json(&jwks_url).await?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter_map(usable_key)
            .collect())
    }

    /// GETs `url` and reads its JSON body, of at most [`MAX_DOCUMENT_BYTES`].
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("cannot fetch {url}"))?
            .error_for_status()
            .with_context(|| format!("cannot fetch {url}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("cannot read {url}"))?
        {
            anyhow::ensure!(
                body.len() + chunk.len() <= MAX_DOCUMENT_BYTES,
                "{url} answers more than {MAX_DOCUMENT_BYTES} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{url} does not answer the JSON expected"))
    }
}

/// The key id and key of `jwk`, if the service can use it to verify signatures.
fn usable_key(jwk: Jwk) -> Option<(String, Key)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(&jwk).ok()?;
    Some((
        kid,
        Key {
            decoding,
            algorithm,
        },
    ))
}

/// The time in the NumericDate claim `name` (seconds since the epoch, maybe with a fraction).
fn time_claim(claims: &serde_json::Map<String, Value>, name: &str) -> Option<SystemTime> {
    let seconds = claims.get(name)?.as_f64()?;
    (seconds.is_finite() && (0.0..1e11).contains(&seconds))
        .then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(Reason::Unauthenticated, message)
}

fn malformed() -> Error {
    unauthenticated("the token is malformed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fetched_over_https_or_from_this_machine_only() {
        for good in [
            "https://login.microsoftonline.com/x/v2.0",
            "http://127.0.0.1:8080/issuer",
            "http://localhost:1/",
            "http://[::1]:2/",
        ] {
            assert!(check_url("issuer", good).is_ok(), "{good}");
        }
        for bad in [
            "http://login.example.com/",
            "ftp://127.0.0.1/",
            "not a url",
            "http://10.0.0.1/",
        ] {
            assert!(check_url("issuer", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_numeric_dates() {
        let claims: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "exp": 1_700_000_000, "nbf": 1_700_000_000.5, "iat": "yesterday", "big": 1e300,
        }))
        .unwrap();
        assert_eq!(
            time_claim(&claims, "exp"),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert!(time_claim(&claims, "nbf").is_some());
        assert_eq!(time_claim(&claims, "iat"), None);
        assert_eq!(time_claim(&claims, "big"), None);
        assert_eq!(time_claim(&claims, "missing"), None);
    }
}
