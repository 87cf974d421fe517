//! Who is calling: bearer tokens, the key that signs them, and the caller they name.
//!
//! Tokens are JWTs signed with HMAC-SHA256 by a key the service keeps in its data directory
//! (generated on first start) or in a file the configuration names, shared by every replica. A
//! token names the tenant and the caller's role; the tenant is never taken from anything else,
//! so a caller cannot reach another tenant's records by naming them.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Reason};

/// The issuer and audience of every token.
const ISSUER: &str = "numbers";
/// Length of a generated signing key.
const KEY_BYTES: usize = 32;

numbers_provider::spelled_enum! {
    /// What a caller may do.
    Role, "role" {
        /// Read and change the tenant's records.
        Admin = "ADMIN",
        /// Read the tenant's records.
        Reader = "READER",
        /// An Operator Connect operator: upload numbers into tenants that enabled it.
        Operator = "OPERATOR",
    }
}

impl Role {
    /// Reads a tenant role as typed on the command line: `admin`, `reader`.
    pub fn from_cli(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().parse() {
            Ok(role @ (Role::Admin | Role::Reader)) => Ok(role),
            _ => Err(format!(
                "unknown role {text:?}: use admin or reader (operators use --operator)"
            )),
        }
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

/// An authenticated Operator Connect operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCaller {
    /// The operator's id, as configured.
    pub operator_id: String,
    /// Who at the operator is calling, for the audit trail.
    pub subject: String,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose records the caller works with.
    pub tenant_id: String,
    /// Who the caller is, for the audit trail.
    pub subject: String,
    /// What the caller may do.
    pub role: Role,
}

impl Caller {
    /// Refuses callers that may not change records.
    pub fn require_admin(&self) -> Result<(), Error> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Reader | Role::Operator => Err(Error::new(
                Reason::PermissionDenied,
                format!(
                    "{} has the {} role, which may read but not change records",
                    self.subject,
                    self.role.as_str().to_ascii_lowercase()
                ),
            )
            .with("role", self.role)),
        }
    }
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

    /// Mints a token for `subject` in `tenant` with `role` (admin or reader), valid for `ttl`.
    pub fn mint(
        &self,
        tenant: &str,
        subject: &str,
        role: Role,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            role != Role::Operator,
            "operator tokens name an operator, not a tenant"
        );
        self.sign(subject, Some(tenant), None, role, ttl)
    }

    /// Mints a token for `subject` at the operator `operator_id`, valid for `ttl`.
    pub fn mint_operator(
        &self,
        operator_id: &str,
        subject: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.sign(subject, None, Some(operator_id), Role::Operator, ttl)
    }

    fn sign(
        &self,
        subject: &str,
        tenant: Option<&str>,
        operator: Option<&str>,
        role: Role,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
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
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
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
        let valid_id = |id: &Option<String>| {
            id.as_ref()
                .is_some_and(|id| !id.is_empty() && id.len() <= 128)
        };
        let principal = match claims.role {
            Role::Admin | Role::Reader if valid_id(&claims.tenant) && claims.operator.is_none() => {
                Principal::Tenant(Caller {
                    tenant_id: claims.tenant.unwrap_or_default(),
                    subject: claims.sub,
                    role: claims.role,
                })
            }
            Role::Operator if valid_id(&claims.operator) && claims.tenant.is_none() => {
                Principal::Operator(OperatorCaller {
                    operator_id: claims.operator.unwrap_or_default(),
                    subject: claims.sub,
                })
            }
            Role::Admin | Role::Reader => {
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
        assert_eq!(
            caller.require_admin().unwrap_err().reason(),
            Reason::PermissionDenied
        );
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
            )
            .unwrap();
        assert_eq!(
            key().verify(&both, SystemTime::now()).unwrap_err().reason(),
            Reason::Unauthenticated
        );
        let no_tenant = key()
            .sign("x", None, None, Role::Admin, Duration::from_secs(60))
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
