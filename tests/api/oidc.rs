//! Tokens of an OpenID Connect identity provider. The test plays the provider: it serves the
//! discovery document and the key set over real HTTP on a loopback port, signs tokens with RSA
//! and P-256 keys of its own, and starts the service configured with that issuer.
//!
//! Verification happens before any request reaches the store, so these tests run on SQLite
//! only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use number_management::auth::Role;
use number_management::auth::oidc::OidcSettings;
use number_management::demo;
use number_management::proto::v1 as pb;
use p256::elliptic_curve::rand_core::OsRng;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tonic::Code;

use crate::calls::all_audit_events;
use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error, free_address};

const TENANT: &str = "contoso";
const AUDIENCE: &str = "api://numbers";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
/// The subject of the provider's tokens: Entra ID's are opaque, per application.
const SUBJECT: &str = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";

/// A signing key of the provider: its key id, algorithm, private key and public JWK.
struct Signer {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: Vec<u8>,
}

impl Signer {
    /// An RSA key (RS256) from a fixture: generating RSA keys takes seconds in an unoptimised
    /// build, so the tests' RSA keys are fixed. They sign nothing but these tests' tokens.
    fn rsa(kid: &str, pem: &str) -> Self {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("an RSA key");
        let public_pem = rsa::pkcs8::EncodePublicKey::to_public_key_pem(
            &private.to_public_key(),
            rsa::pkcs8::LineEnding::LF,
        )
        .expect("a public key")
        .into_bytes();
        Self {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(
                rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&private)
                    .expect("a PKCS#1 key")
                    .as_bytes(),
            ),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            }),
            public_pem,
        }
    }

    /// A new P-256 key (ES256).
    fn ec(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut OsRng);
        let der = secret.to_pkcs8_der().expect("a PKCS#8 key");
        let point = secret.public_key().to_encoded_point(false);
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "use": "sig", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            }),
            public_pem: Vec::new(),
        }
    }

    /// A token of `claims`, signed with this key and naming it.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a token")
    }
}

fn first_rsa() -> Signer {
    Signer::rsa("rsa-1", include_str!("keys/rsa-1.pem"))
}

fn second_rsa() -> Signer {
    Signer::rsa("rsa-2", include_str!("keys/rsa-2.pem"))
}

/// The identity provider: a discovery document and a key set, served over HTTP/1.1 on a
/// loopback port, counting what is fetched.
struct Provider {
    issuer: String,
    jwks_url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    discovery_fetches: Arc<AtomicUsize>,
    jwks_fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// Serves `signers`' public keys.
    async fn start(signers: &[&Signer]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let issuer = format!("{base}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0");
        let jwks_url = format!("{base}/discovery/v2.0/keys");
        let keys = Arc::new(Mutex::new(
            signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>(),
        ));
        let discovery_fetches = Arc::new(AtomicUsize::new(0));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string();
        let server = tokio::spawn({
            let (keys, discovery_fetches, jwks_fetches) = (
                keys.clone(),
                discovery_fetches.clone(),
                jwks_fetches.clone(),
            );
            let discovery_path = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_start_matches(&base)
            );
            let jwks_path = jwks_url.trim_start_matches(&base).to_owned();
            async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let path = line.split(' ').nth(1).unwrap_or_default();
                    let (status, body) = if path == discovery_path {
                        discovery_fetches.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", discovery.clone())
                    } else if path == jwks_path {
                        jwks_fetches.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.lock().unwrap().clone();
                        ("200 OK", json!({ "keys": keys }).to_string())
                    } else {
                        ("404 Not Found", "{}".to_owned())
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                }
            }
        });
        Self {
            issuer,
            jwks_url,
            keys,
            discovery_fetches,
            jwks_fetches,
            server,
        }
    }

    /// Publishes `signers`' keys instead of the ones published so far.
    fn publish(&self, signers: &[&Signer]) {
        *self.keys.lock().unwrap() = signers.iter().map(|s| s.jwk.clone()).collect();
    }

    fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The service's settings for this provider, refetching keys at most every `refetch`.
    fn settings(&self, refetch: Duration) -> OidcSettings {
        OidcSettings {
            refetch_interval: refetch,
            ..OidcSettings::new(&self.issuer, AUDIENCE)
        }
    }

    /// Claims of a valid token for `tenant` with `roles`, as Entra ID writes them.
    fn claims(&self, tenant: &str, roles: Value) -> Value {
        let now = unix_now();
        json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": SUBJECT,
            "tid": tenant, "roles": roles, "iat": now, "nbf": now, "exp": now + 3600,
            "name": "Alice", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        })
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The demo tenant, served by a service that trusts `settings`' provider.
async fn app_trusting(settings: OidcSettings) -> TestApp {
    let app = TestApp::start(
        Backend::Sqlite,
        TestConfig {
            oidc: Some(settings),
            ..TestConfig::default()
        },
    )
    .await;
    demo::load(app.store.as_ref()).await.expect("the demo");
    app
}

async fn get_john(client: &mut Client) -> Result<pb::User, tonic::Status> {
    client
        .get_user(pb::GetUserRequest {
            identity: "john@contoso.com".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn new_user(upn: &str) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: upn.into(),
            display_name: "Eve".into(),
            usage_location: "US".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_tokens_name_the_tenant_and_the_role() {
    let rsa = first_rsa();
    let ec = Signer::ec("ec-1");
    let provider = Provider::start(&[&rsa, &ec]).await;
    let app = app_trusting(provider.settings(Duration::from_secs(3600))).await;
    assert_eq!(
        provider.discovery_fetches.load(Ordering::SeqCst),
        1,
        "the keys are found through the discovery document"
    );

    // RS256, an admin: reads and writes in the tenant its tid names.
    let mut admin =
        app.client_with_token(Some(&rsa.sign(&provider.claims(TENANT, json!(["admin"])))));
    assert_eq!(
        get_john(&mut admin).await.expect("an admin reads").id,
        JOHN_ID
    );
    admin
        .upsert_user(new_user("eve@contoso.com"))
        .await
        .expect("an admin writes the directory");

    // ES256, a reader, its role spelled as it pleases the provider.
    for roles in [
        json!(["Reader"]),
        json!("READER"),
        json!(["reader", "Viewer"]),
    ] {
        let token = ec.sign(&provider.claims(TENANT, roles.clone()));
        let mut reader = app.client_with_token(Some(&token));
        assert_eq!(
            get_john(&mut reader).await.expect("a reader reads").id,
            JOHN_ID,
            "{roles}"
        );
        let status = assert_error(
            reader.upsert_user(new_user("mallory@contoso.com")).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(status.message().contains("reader role"), "{status:?}");
    }

    // Several roles: the strongest counts.
    let mut helpdesk = app.client_with_token(Some(
        &ec.sign(&provider.claims(TENANT, json!(["reader", "HelpDesk"]))),
    ));
    let status = assert_error(
        helpdesk.upsert_user(new_user("mallory@contoso.com")).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert!(status.message().contains("helpdesk role"), "{status:?}");

    // Another tenant's token sees none of contoso's records.
    let mut other = app.client_with_token(Some(
        &rsa.sign(&provider.claims("fabrikam-corp", json!(["admin"]))),
    ));
    assert_error(get_john(&mut other).await, Code::NotFound, "USER_NOT_FOUND");

    // No role this service knows: authenticated, but allowed nothing.
    for roles in [
        json!([]),
        json!(["owner", "operator"]),
        json!(null),
        json!(7),
    ] {
        let token = rsa.sign(&provider.claims(TENANT, roles.clone()));
        let status = assert_error(
            get_john(&mut app.client_with_token(Some(&token))).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(
            status.message().contains("none of the roles"),
            "{roles}: {status:?}"
        );
    }

    // The local key's tokens keep working beside the provider's.
    assert_eq!(
        get_john(&mut app.admin(TENANT))
            .await
            .expect("a local token")
            .id,
        JOHN_ID
    );
    app.admin(TENANT)
        .upsert_user(new_user("frank@contoso.com"))
        .await
        .expect("a local admin writes");

    // The audit trail names each principal with its issuer, and the tenant.
    let events = all_audit_events(&app, TENANT).await;
    let actor_of = |upn: &str| {
        let event = events
            .iter()
            .find(|e| {
                e.after
                    .as_ref()
                    .and_then(|a| a.fields.get("userPrincipalName"))
                    .and_then(|v| v.kind.as_ref())
                    == Some(&prost_types::value::Kind::StringValue(upn.into()))
            })
            .unwrap_or_else(|| panic!("no event about {upn}: {events:#?}"));
        assert_eq!(event.tenant_id, TENANT);
        event.actor.clone()
    };
    assert_eq!(
        actor_of("eve@contoso.com"),
        format!("{}#{SUBJECT}", provider.issuer)
    );
    assert_eq!(actor_of("frank@contoso.com"), "test");
    assert_eq!(provider.jwks_fetches(), 1, "the keys were fetched once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_tokens_that_do_not_verify_are_unauthenticated() {
    let rsa = first_rsa();
    let ec = Signer::ec("ec-1");
    let stranger = second_rsa();
    let provider = Provider::start(&[&rsa, &ec]).await;
    let app = app_trusting(provider.settings(Duration::ZERO)).await;
    let now = unix_now();
    let valid = provider.claims(TENANT, json!(["admin"]));
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (name, value) in changes.as_object().expect("an object") {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };

    // Within the minute of clock skew allowed, tokens still work.
    for claims in [
        with(json!({"exp": now - 30})),
        with(json!({"nbf": now + 30})),
    ] {
        let token = rsa.sign(&claims);
        get_john(&mut app.client_with_token(Some(&token)))
            .await
            .unwrap_or_else(|s| panic!("{claims}: {s:?}"));
    }

    let tampered = {
        let token = rsa.sign(&valid);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
    };
    let swapped_claims = {
        let token = rsa.sign(&valid);
        let parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(with(json!({"tid": "fabrikam-corp"})).to_string());
        format!("{}.{other}.{}", parts[0], parts[2])
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).to_string()),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    // The classic confusion: the RSA public key, as published, used as an HMAC secret.
    let hmac_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &valid, &EncodingKey::from_secret(&rsa.public_pem)).unwrap()
    };
    let es256_header_on_rsa_key = {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, &valid, &ec.encoding).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another audience",
            rsa.sign(&with(json!({"aud": "api://payroll"}))),
            "audience",
        ),
        (
            "another issuer",
            rsa.sign(&with(json!({"iss": "https://login.example.com/v2.0"}))),
            "issuer",
        ),
        ("no audience", rsa.sign(&with(json!({"aud": null}))), "aud"),
        ("no subject", rsa.sign(&with(json!({"sub": null}))), "sub"),
        ("no expiry", rsa.sign(&with(json!({"exp": null}))), "exp"),
        (
            "expired",
            rsa.sign(&with(json!({"exp": now - 120}))),
            "expired",
        ),
        (
            "not valid yet",
            rsa.sign(&with(json!({"nbf": now + 300}))),
            "not valid yet",
        ),
        ("no tenant", rsa.sign(&with(json!({"tid": null}))), "tid"),
        (
            "an empty tenant",
            rsa.sign(&with(json!({"tid": ""}))),
            "tid",
        ),
        ("an unpublished key", stranger.sign(&valid), "rsa-2"),
        ("a tampered signature", tampered, "signature"),
        ("swapped claims", swapped_claims, "signature"),
        ("alg none", unsigned, "malformed"),
        (
            "HS256 with the public key",
            hmac_with_public_key,
            "RS256 or ES256",
        ),
        ("ES256 on an RSA key", es256_header_on_rsa_key, "rsa-1"),
        (
            "a key signing for another key id",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("ec-1".into());
                jsonwebtoken::encode(&header, &valid, &rsa.encoding).unwrap()
            },
            "ec-1",
        ),
    ];
    for (what, token, explained) in cases {
        let fetches = provider.jwks_fetches();
        let status = assert_error(
            get_john(&mut app.client_with_token(Some(&token))).await,
            Code::Unauthenticated,
            "UNAUTHENTICATED",
        );
        assert!(status.message().contains(explained), "{what}: {status:?}");
        if what == "an unpublished key" {
            assert_eq!(
                provider.jwks_fetches(),
                fetches + 1,
                "an unknown key id is looked for in a fresh key set before it is refused"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotated_keys_are_picked_up() {
    let old = first_rsa();
    let new = second_rsa();
    let provider = Provider::start(&[&old]).await;
    let app = app_trusting(provider.settings(Duration::ZERO)).await;
    let token = new.sign(&provider.claims(TENANT, json!(["admin"])));
    assert_error(
        get_john(&mut app.client_with_token(Some(&token))).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );

    // The provider publishes the new key beside the old one, then signs with it.
    provider.publish(&[&old, &new]);
    let fetches = provider.jwks_fetches();
    let john = get_john(&mut app.client_with_token(Some(&token)))
        .await
        .expect("the new key is fetched when a token names it");
    assert_eq!(john.id, JOHN_ID);
    assert_eq!(provider.jwks_fetches(), fetches + 1);
    // The old key still verifies until it is withdrawn.
    let old_token = old.sign(&provider.claims(TENANT, json!(["reader"])));
    get_john(&mut app.client_with_token(Some(&old_token)))
        .await
        .expect("the old key still works");
    assert_eq!(
        provider.jwks_fetches(),
        fetches + 1,
        "known keys need no fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_key_ids_do_not_hammer_the_provider() {
    let rsa = first_rsa();
    let provider = Provider::start(&[&rsa]).await;
    let app = app_trusting(provider.settings(Duration::from_secs(3600))).await;
    assert_eq!(provider.jwks_fetches(), 1, "fetched at start-up");
    for n in 0..20 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("made-up-{n}"));
        let token = jsonwebtoken::encode(
            &header,
            &provider.claims(TENANT, json!(["admin"])),
            &rsa.encoding,
        )
        .unwrap();
        assert_error(
            get_john(&mut app.client_with_token(Some(&token))).await,
            Code::Unauthenticated,
            "UNAUTHENTICATED",
        );
    }
    assert_eq!(
        provider.jwks_fetches(),
        1,
        "no fetch within the refetch interval"
    );
    // Known keys are unaffected.
    get_john(
        &mut app.client_with_token(Some(&rsa.sign(&provider.claims(TENANT, json!(["admin"]))))),
    )
    .await
    .expect("a token of a known key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_names_and_the_key_set_are_configurable() {
    let ec = Signer::ec("ec-1");
    let provider = Provider::start(&[&ec]).await;
    let settings = OidcSettings {
        jwks_url: Some(provider.jwks_url.clone()),
        tenant_claim: "org".into(),
        roles_claim: "groups".into(),
        ..provider.settings(Duration::ZERO)
    };
    let app = app_trusting(settings).await;
    let mut claims = provider.claims("someone-else", json!(["reader"]));
    claims["org"] = json!(TENANT);
    claims["groups"] = json!(["Admin"]);
    let mut admin = app.client_with_token(Some(&ec.sign(&claims)));
    assert_eq!(
        get_john(&mut admin).await.expect("org and groups").id,
        JOHN_ID
    );
    admin
        .upsert_user(new_user("eve@contoso.com"))
        .await
        .expect("the role came from groups");
    assert_eq!(
        provider.discovery_fetches.load(Ordering::SeqCst),
        0,
        "a configured key set needs no discovery"
    );

    // tid and roles mean nothing now.
    let status = assert_error(
        get_john(
            &mut app.client_with_token(Some(&ec.sign(&provider.claims(TENANT, json!(["admin"]))))),
        )
        .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert!(status.message().contains("org"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_out_of_reach_is_unavailable_and_local_tokens_still_work() {
    let rsa = first_rsa();
    let issuer = format!("http://{}/v2.0", free_address());
    let app = app_trusting(OidcSettings {
        refetch_interval: Duration::ZERO,
        ..OidcSettings::new(&issuer, AUDIENCE)
    })
    .await;
    let now = unix_now();
    let token = rsa.sign(&json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "alice", "tid": TENANT, "roles": ["admin"],
        "iat": now, "exp": now + 600,
    }));
    let status = assert_error(
        get_john(&mut app.client_with_token(Some(&token))).await,
        Code::Unavailable,
        "IDENTITY_PROVIDER_UNAVAILABLE",
    );
    assert!(status.message().contains("retry later"), "{status:?}");
    assert_eq!(
        get_john(&mut app.client_with_token(Some(&app.token(TENANT, Role::Admin))))
            .await
            .expect("a local token")
            .id,
        JOHN_ID
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withdrawn_keys_stop_verifying_once_the_keys_are_fetched_again() {
    let old = first_rsa();
    let new = second_rsa();
    let provider = Provider::start(&[&old, &new]).await;
    // Keys are old at once: every token has them fetched again.
    let app = app_trusting(OidcSettings {
        keys_max_age: Duration::ZERO,
        ..provider.settings(Duration::ZERO)
    })
    .await;
    let token = |signer: &Signer, role: &str| {
        let claims = provider.claims(TENANT, json!([role]));
        app.client_with_token(Some(&signer.sign(&claims)))
    };
    get_john(&mut token(&old, "admin"))
        .await
        .expect("the old key, still published");
    provider.publish(&[&new]);
    let status = assert_error(
        get_john(&mut token(&old, "reader")).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert!(status.message().contains("rsa-1"), "{status:?}");
    get_john(&mut token(&new, "reader"))
        .await
        .expect("the new key");

    // A provider that stops answering leaves the keys it published last in use.
    let mut client = token(&new, "helpdesk");
    drop(provider);
    get_john(&mut client)
        .await
        .expect("the last keys, the provider gone");
}
