//! Who is calling: bearer tokens, the keys that sign them, and the caller they name.
//!
//! Two kinds of token are accepted, told apart by their issuer (`iss`):
//! - the local development key's (issuer `numbers`): JWTs signed with HMAC-SHA256 by a key the
//!   service keeps in its data directory (generated on first start) or in a file the
//!   configuration names, shared by every replica, minted by `numbers token` for at most
//!   [`MAX_LOCAL_TOKEN_LIFETIME`]. Anyone holding the key file can mint any role in any tenant,
//!   so the service refuses it on a listener reachable from the network unless told otherwise;
//! - an OpenID Connect provider's ([`oidc`]): RS256 or ES256 JWTs verified with the keys the
//!   provider publishes.
//!
//! A token names the tenant and the caller's role; the tenant is never taken from anything
//! else, so a caller cannot reach another tenant's records by naming them. What each role may
//! call is decided at the gRPC edge (`api::access`), in one table.

pub mod oidc;

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Error, Reason};

/// The issuer and audience of the local key's tokens.
pub const LOCAL_ISSUER: &str = "numbers";
/// The longest lifetime of a token of the local key: `numbers token` mints no longer one, and
/// the service refuses longer ones (a leaked development token should not outlive the day).
pub const MAX_LOCAL_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Length of a generated signing key.
const KEY_BYTES: usize = 32;

numbers_provider::spelled_enum! {
    /// What a caller may do.
    Role, "role" {
        /// Read and change the tenant's records.
        Admin = "ADMIN",
        /// Read the tenant's records.
        Reader = "READER",
        /// Read the tenant's records, and assign, change and remove numbers and update their
        /// emergency locations: a service desk's work, without buying, releasing, operators or
        /// directory writes.
        Helpdesk = "HELPDESK",
        /// An Operator Connect operator: upload numbers into tenants that enabled it.
        Operator = "OPERATOR",
    }
}

impl Role {
    /// Reads a tenant role as typed on the command line: `admin`, `reader`, `helpdesk`.
    pub fn from_cli(text: &str) -> Result<Self, String> {
        Self::tenant_role(text).ok_or_else(|| {
            format!(
                "unknown role {text:?}: use admin, reader or helpdesk (operators use --operator)"
            )
        })
    }

    /// The tenant role `text` names, whatever its case (`admin`, `Reader`, `HELPDESK`), as
    /// identity providers spell them.
    pub fn tenant_role(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().parse() {
            Ok(role @ (Role::Admin | Role::Reader | Role::Helpdesk)) => Some(role),
            _ => None,
        }
    }

    /// How much a tenant role allows: a caller holding several roles acts with the strongest.
    fn rank(self) -> u8 {
        match self {
            Role::Reader => 1,
            Role::Helpdesk => 2,
            Role::Admin => 3,
            Role::Operator => 0,
        }
    }

    /// The strongest of `roles`.
    pub fn strongest(roles: impl IntoIterator<Item = Role>) -> Option<Role> {
        roles.into_iter().max_by_key(|role| role.rank())
    }
}

/// Whom a verified token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A caller in a tenant.
    Tenant(Caller),
    /// An Operator Connect operator.
    Operator(OperatorCaller),
}

impl Principal {
    /// What the principal may do.
    pub fn role(&self) -> Role {
        match self {
            Principal::Tenant(caller) => caller.role,
            Principal::Operator(_) => Role::Operator,
        }
    }

    /// Who the principal is, for messages: its subject.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Tenant(caller) => &caller.subject,
            Principal::Operator(operator) => &operator.subject,
        }
    }
}

/// How the audit trail names `subject` of `issuer`: the bare subject for the local key (as it
/// always has), `<issuer>#<subject>` for an identity provider's. An issuer is a URL without a
/// fragment, so the first `#` splits the two, and the same subject at two issuers never reads
/// as one principal.
pub fn principal_name(issuer: &str, subject: &str) -> String {
    if issuer == LOCAL_ISSUER {
        subject.to_owned()
    } else {
        format!("{issuer}#{subject}")
    }
}

/// An authenticated Operator Connect operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCaller {
    /// The operator's id, as configured.
    pub operator_id: String,
    /// Who at the operator is calling, for the audit trail.
    pub subject: String,
    /// Who vouches for the subject: the token's issuer.
    pub issuer: String,
}

/// The authenticated caller of a request in a tenant. A handler finds one in its request only
/// once the role matrix (`api::access`) allowed the caller's role to call the method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The tenant whose records the caller works with.
    pub tenant_id: String,
    /// Who the caller is, for the audit trail.
    pub subject: String,
    /// Who vouches for the subject: the token's issuer (`numbers` for the local key).
    pub issuer: String,
    /// What the caller may do.
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    /// The tenant, for tenant roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// The operator, for the operator role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
    role: Role,
    /// Required: the service refuses tokens living longer than [`MAX_LOCAL_TOKEN_LIFETIME`].
    iat: u64,
    exp: u64,
}

/// The secret that signs and verifies tokens.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Reads the key in `path` (base64), generating one there first if `create` and the file
    /// does not exist. The generated file is readable by its owner only.
    pub fn load(path: &Path, create: bool) -> anyhow::Result<Self> {
        if create && !path.exists() {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let mut secret = [0u8; KEY_BYTES];
            rand::fill(&mut secret);
            write_private(path, STANDARD.encode(secret).as_bytes())
                .with_context(|| format!("cannot write the token key {}", path.display()))?;
        }
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the token key {}", path.display()))?;
        let secret = STANDARD
            .decode(text.trim())
            .with_context(|| format!("the token key {} is not base64", path.display()))?;
        anyhow::ensure!(
            secret.len() >= KEY_BYTES,
            "the token key {} is shorter than {KEY_BYTES} bytes",
            path.display()
        );
        Ok(Self::from_secret(&secret))
    }

    /// A key from raw secret bytes.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Mints a token for `subject` in `tenant` with `role` (a tenant role), valid for `ttl`
    /// (at most [`MAX_LOCAL_TOKEN_LIFETIME`]).
    pub fn mint(
        &self,
        tenant: &str,
        subject: &str,
        role: Role,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.mint_at(tenant, subject, role, ttl, SystemTime::now())
    }

    /// Mints a token like [`SigningKey::mint`], issued at `now` (the service's clock, in tests
    /// that move it).
    pub fn mint_at(
        &self,
        tenant: &str,
        subject: &str,
        role: Role,
        ttl: Duration,
        now: SystemTime,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            role != Role::Operator,
            "operator tokens name an operator, not a tenant"
        );
        anyhow::ensure!(
            crate::domain::is_tenant_id(tenant),
            "{tenant:?} is not a tenant id: 1 to {} letters, digits, '-', '_' or '.'",
            crate::domain::MAX_TENANT_ID_CHARS
        );
        self.sign(subject, Some(tenant), None, role, ttl, now)
    }

    /// Mints a token for `subject` at the operator `operator_id`, valid for `ttl` (at most
    /// [`MAX_LOCAL_TOKEN_LIFETIME`]).
    pub fn mint_operator(
        &self,
        operator_id: &str,
        subject: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.sign(
            subject,
            None,
            Some(operator_id),
            Role::Operator,
            ttl,
            SystemTime::now(),
        )
    }

    fn sign(
        &self,
        subject: &str,
        tenant: Option<&str>,
        operator: Option<&str>,
        role: Role,
        ttl: Duration,
        now: SystemTime,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            ttl <= MAX_LOCAL_TOKEN_LIFETIME,
            "tokens of the local key live at most {} hours",
            MAX_LOCAL_TOKEN_LIFETIME.as_secs() / 3600
        );
        let now = now.duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            iss: LOCAL_ISSUER.into(),
            aud: LOCAL_ISSUER.into(),
            sub: subject.into(),
            tenant: tenant.map(str::to_owned),
            operator: operator.map(str::to_owned),
            role,
            iat: now,
            exp: now + ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token and returns whom it names, if it has not expired at `now` (allowing
    /// 30 seconds of clock skew).
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, Error> {
        self.verify_until(token, now)
            .map(|(principal, _)| principal)
    }

    /// Verifies a token like [`SigningKey::verify`], answering also until when it is valid.
    pub fn verify_until(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<(Principal, SystemTime), Error> {
        const LEEWAY: Duration = Duration::from_secs(30);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[LOCAL_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = false;
        // Expiry is checked below against the service's clock, not the system's.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::InvalidSignature => "the token was not signed by this service",
                    _ => "the token is malformed",
                };
                Error::new(Reason::Unauthenticated, why)
            })?
            .claims;
        let expires = UNIX_EPOCH + Duration::from_secs(claims.exp) + LEEWAY;
        if expires <= now {
            return Err(Error::new(
                Reason::Unauthenticated,
                "the token has expired; mint a new one",
            ));
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_LOCAL_TOKEN_LIFETIME.as_secs() {
            return Err(Error::new(
                Reason::Unauthenticated,
                format!(
                    "the token lives longer than the {} hours tokens of the local key may; mint \
                     a new one with numbers token",
                    MAX_LOCAL_TOKEN_LIFETIME.as_secs() / 3600
                ),
            ));
        }
        let valid_id = |id: &Option<String>| {
            id.as_ref()
                .is_some_and(|id| !id.is_empty() && id.len() <= 128)
        };
        let principal = match claims.role {
            Role::Admin | Role::Reader | Role::Helpdesk
                if claims
                    .tenant
                    .as_deref()
                    .is_some_and(crate::domain::is_tenant_id)
                    && claims.operator.is_none() =>
            {
                Principal::Tenant(Caller {
                    tenant_id: claims.tenant.unwrap_or_default(),
                    subject: claims.sub,
                    issuer: claims.iss,
                    role: claims.role,
                })
            }
            Role::Operator if valid_id(&claims.operator) && claims.tenant.is_none() => {
                Principal::Operator(OperatorCaller {
                    operator_id: claims.operator.unwrap_or_default(),
                    subject: claims.sub,
                    issuer: claims.iss,
                })
            }
            Role::Admin | Role::Reader | Role::Helpdesk => {
                return Err(Error::new(
                    Reason::Unauthenticated,
                    "the token names no valid tenant",
                ));
            }
            Role::Operator => {
                return Err(Error::new(
                    Reason::Unauthenticated,
                    "the token names no valid operator",
                ));
            }
        };
        Ok((principal, expires))
    }
}

/// Verifies bearer tokens: the local key's and, when one is configured, an OpenID Connect
/// provider's, telling them apart by the token's issuer and telling expiry by the service's
/// clock.
///
/// Clients send the same token with call after call; checking its signature each time would
/// cost more than many a read. A token verified once is remembered with whom it names and
/// until when it is valid (at most [`VERIFIED_TOKENS`] tokens), and is only checked against
/// the clock on later calls.
#[derive(Clone, Debug)]
pub struct Authenticator {
    local: Option<SigningKey>,
    oidc: Option<Arc<oidc::Issuer>>,
    clock: Arc<dyn Clock>,
    verified: Arc<quick_cache::sync::Cache<String, (Principal, SystemTime)>>,
}

/// How many verified tokens are remembered.
const VERIFIED_TOKENS: usize = 10_000;

/// The part of a token's claims that says who issued it, read before any verification to pick
/// the verifier.
#[derive(Deserialize)]
struct Issued {
    #[serde(default)]
    iss: Option<String>,
}

impl Authenticator {
    /// Accepts the tokens of `local` (none: the local key is refused) and of `oidc`.
    pub fn new(
        local: Option<SigningKey>,
        oidc: Option<oidc::Issuer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            local,
            oidc: oidc.map(Arc::new),
            clock,
            verified: Arc::new(quick_cache::sync::Cache::new(VERIFIED_TOKENS)),
        }
    }

    /// Whom `token` names: remembered, or verified now by the verifier of its issuer.
    pub async fn principal(&self, token: &str) -> Result<Principal, Error> {
        let now = self.clock.now();
        if let Some((principal, expires)) = self.verified.get(token)
            && now < expires
        {
            return Ok(principal);
        }
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<Issued>(token)
            .map_err(|_| Error::new(Reason::Unauthenticated, "the token is malformed"))?
            .iss
            .unwrap_or_default();
        let (principal, expires) = match (&self.local, &self.oidc) {
            (Some(key), _) if issuer == LOCAL_ISSUER => key.verify_until(token, now)?,
            (None, _) if issuer == LOCAL_ISSUER => {
                return Err(Error::new(
                    Reason::Unauthenticated,
                    "tokens of the local development key are not accepted on this listener; \
                     use a token of the configured identity provider",
                ));
            }
            (_, Some(provider)) if issuer == provider.issuer() => {
                provider.verify(token, now).await?
            }
            _ => {
                let shown: String = issuer.chars().take(100).collect();
                return Err(Error::new(
                    Reason::Unauthenticated,
                    format!("the token's issuer {shown:?} is not one this service trusts"),
                ));
            }
        };
        self.verified
            .insert(token.to_owned(), (principal.clone(), expires));
        Ok(principal)
    }
}

/// Writes `contents` to `path` as a file only its owner can read, unless the file exists.
///
/// The contents go to a temporary file first, which is then linked into place: a process
/// starting at the same moment (say `numbers token` beside a first `numbers serve`) either
/// wins or finds the other's complete file, never a half-written one.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()));
    let linked = written.and_then(|()| match fs::hard_link(&temporary, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&temporary);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_secret(&[7; 32])
    }

    #[test]
    fn a_minted_token_names_its_caller() {
        let token = key()
            .mint("contoso", "alice", Role::Reader, Duration::from_secs(60))
            .unwrap();
        let Principal::Tenant(caller) = key().verify(&token, SystemTime::now()).unwrap() else {
            panic!("a tenant token named an operator");
        };
        assert_eq!(caller.tenant_id, "contoso");
        assert_eq!(caller.subject, "alice");
        assert_eq!(caller.role, Role::Reader);
        assert_eq!(caller.issuer, LOCAL_ISSUER);
    }

    #[test]
    fn operator_tokens_name_an_operator_and_no_tenant() {
        let token = key()
            .mint_operator("fabrikam-telecom", "provisioning", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            key().verify(&token, SystemTime::now()).unwrap(),
            Principal::Operator(OperatorCaller {
                operator_id: "fabrikam-telecom".into(),
                subject: "provisioning".into(),
                issuer: LOCAL_ISSUER.into(),
            })
        );
        assert!(
            key()
                .mint("contoso", "x", Role::Operator, Duration::from_secs(60))
                .is_err()
        );
        // A token claiming both a tenant and an operator is refused.
        let both = key()
            .sign(
                "x",
                Some("contoso"),
                Some("fabrikam-telecom"),
                Role::Operator,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(
            key().verify(&both, SystemTime::now()).unwrap_err().reason(),
            Reason::Unauthenticated
        );
        let no_tenant = key()
            .sign(
                "x",
                None,
                None,
                Role::Admin,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(
            key()
                .verify(&no_tenant, SystemTime::now())
                .unwrap_err()
                .reason(),
            Reason::Unauthenticated
        );
    }

    #[test]
    fn tokens_from_another_key_or_tampered_are_refused() {
        let token = key()
            .mint("contoso", "alice", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let other = SigningKey::from_secret(&[8; 32]);
        assert_eq!(
            other
                .verify(&token, SystemTime::now())
                .unwrap_err()
                .reason(),
            Reason::Unauthenticated
        );
        let mut tampered = token;
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(
            key()
                .verify(&tampered, SystemTime::now())
                .unwrap_err()
                .reason(),
            Reason::Unauthenticated
        );
        assert_eq!(
            key().verify("", SystemTime::now()).unwrap_err().reason(),
            Reason::Unauthenticated
        );
    }

    #[test]
    fn tokens_expire_after_their_lifetime_and_the_skew_allowance() {
        let token = key()
            .mint("contoso", "alice", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let minted = SystemTime::now();
        assert!(
            key()
                .verify(&token, minted + Duration::from_secs(85))
                .is_ok()
        );
        let error = key()
            .verify(&token, minted + Duration::from_secs(95))
            .unwrap_err();
        assert_eq!(error.reason(), Reason::Unauthenticated);
        assert!(error.message().contains("expired"), "{error}");
    }

    #[test]
    fn local_tokens_live_a_day_at_most() {
        let day = MAX_LOCAL_TOKEN_LIFETIME;
        assert!(
            key()
                .mint(
                    "contoso",
                    "alice",
                    Role::Admin,
                    day + Duration::from_secs(1)
                )
                .is_err()
        );
        let longest = key().mint("contoso", "alice", Role::Admin, day).unwrap();
        assert!(key().verify(&longest, SystemTime::now()).is_ok());
        // A longer-lived token signed with the key, not minted by this service, is refused.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Claims {
            iss: LOCAL_ISSUER.into(),
            aud: LOCAL_ISSUER.into(),
            sub: "alice".into(),
            tenant: Some("contoso".into()),
            operator: None,
            role: Role::Admin,
            iat: now,
            exp: now + day.as_secs() + 1,
        };
        let forged =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key().encoding).unwrap();
        let error = key().verify(&forged, SystemTime::now()).unwrap_err();
        assert_eq!(error.reason(), Reason::Unauthenticated);
        assert!(error.message().contains("24 hours"), "{error}");
    }

    #[test]
    fn roles_read_in_any_case_and_the_strongest_wins() {
        assert_eq!(Role::tenant_role("Admin"), Some(Role::Admin));
        assert_eq!(Role::tenant_role("HELPDESK"), Some(Role::Helpdesk));
        assert_eq!(Role::tenant_role("reader"), Some(Role::Reader));
        assert_eq!(Role::tenant_role("operator"), None);
        assert_eq!(Role::tenant_role("owner"), None);
        assert_eq!(
            Role::strongest([Role::Reader, Role::Admin, Role::Helpdesk]),
            Some(Role::Admin)
        );
        assert_eq!(
            Role::strongest([Role::Reader, Role::Helpdesk]),
            Some(Role::Helpdesk)
        );
        assert_eq!(Role::strongest([]), None);
        assert!(Role::from_cli("helpdesk").is_ok());
        assert!(Role::from_cli("operator").is_err());
    }

    #[test]
    fn processes_generating_a_key_at_once_agree_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let keys: Vec<SigningKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| SigningKey::load(&path, true).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let token = keys[0]
            .mint("t", "s", Role::Admin, Duration::from_secs(60))
            .unwrap();
        for key in &keys {
            assert!(key.verify(&token, SystemTime::now()).is_ok());
        }
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files were left behind");
    }

    #[test]
    fn keys_are_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token.key");
        let first = SigningKey::load(&path, true).unwrap();
        let token = first
            .mint("t", "s", Role::Admin, Duration::from_secs(60))
            .unwrap();
        let again = SigningKey::load(&path, true).unwrap();
        assert!(again.verify(&token, SystemTime::now()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(SigningKey::load(&dir.path().join("missing.key"), false).is_err());
    }
}
