//! The interceptor that authenticates every call of the public services: it reads
//! `authorization: Bearer <token>`, verifies the token, checks it is the kind of credential
//! the service takes (tenant callers for NumberManagement, operators for OperatorConnect) and
//! puts the caller in the request's extensions, where the handlers take it from.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::limits;
use crate::auth::{Caller, OperatorCaller, Principal, SigningKey};
use crate::clock::Clock;
use crate::error::{Error, Reason};

/// Which callers a service takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Tenants,
    Operators,
}

/// Authenticates requests with the service's signing key, telling expired tokens by `clock`.
///
/// Clients send the same token with call after call; checking its signature each time would
/// cost more than many a read. A token verified once is remembered with whom it names and
/// until when it is valid (at most [`VERIFIED_TOKENS`] tokens), and is only checked against
/// the clock on later calls.
#[derive(Clone, Debug)]
pub struct Authenticate {
    key: SigningKey,
    clock: Arc<dyn Clock>,
    audience: Audience,
    verified: Arc<quick_cache::sync::Cache<String, (Principal, SystemTime)>>,
}

/// How many verified tokens are remembered.
const VERIFIED_TOKENS: usize = 10_000;

impl Authenticate {
    /// For the tenant-facing service: admin and reader tokens.
    pub fn tenants(key: SigningKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            clock,
            audience: Audience::Tenants,
            verified: Arc::new(quick_cache::sync::Cache::new(VERIFIED_TOKENS)),
        }
    }

    /// For the operator-facing service: operator tokens.
    pub fn operators(key: SigningKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            clock,
            audience: Audience::Operators,
            verified: Arc::new(quick_cache::sync::Cache::new(VERIFIED_TOKENS)),
        }
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                unauthenticated(
                    "missing authorization metadata: send authorization: Bearer <token>",
                )
            })?
            .to_str()
            .map_err(|_| unauthenticated("the authorization metadata is not text"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| unauthenticated("the authorization metadata must be Bearer <token>"))?;
        match (self.principal(token)?, self.audience) {
            (Principal::Tenant(caller), Audience::Tenants) => {
                request.extensions_mut().insert(caller);
            }
            (Principal::Operator(operator), Audience::Operators) => {
                request.extensions_mut().insert(operator);
            }
            (Principal::Operator(operator), Audience::Tenants) => {
                return Err(Error::new(
                    Reason::PermissionDenied,
                    format!(
                        "operator {} credentials cannot call NumberManagement; use a tenant \
                         admin or reader token",
                        operator.operator_id
                    ),
                )
                .into());
            }
            (Principal::Tenant(caller), Audience::Operators) => {
                return Err(Error::new(
                    Reason::PermissionDenied,
                    format!(
                        "tenant {} credentials cannot call OperatorConnect; use an operator \
                         token",
                        caller.tenant_id
                    ),
                )
                .into());
            }
        }
        Ok(request)
    }
}

impl Authenticate {
    /// Whom a token names: remembered, or verified now.
    fn principal(&self, token: &str) -> Result<Principal, Error> {
        let now = self.clock.now();
        if let Some((principal, expires)) = self.verified.get(token)
            && now < expires
        {
            return Ok(principal);
        }
        let (principal, expires) = self.key.verify_until(token, now)?;
        self.verified
            .insert(token.to_owned(), (principal.clone(), expires));
        Ok(principal)
    }
}

fn unauthenticated(message: &str) -> Status {
    Error::new(Reason::Unauthenticated, message).into()
}

/// The authenticated tenant caller of a request, once its fields are within their limits.
pub(crate) fn caller<T: prost::Name>(request: &Request<T>) -> Result<Caller, Status> {
    limits::check(request.get_ref())?;
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| unauthenticated("the request was not authenticated"))
}

/// The authenticated operator of a request, once its fields are within their limits.
pub(crate) fn operator<T: prost::Name>(request: &Request<T>) -> Result<OperatorCaller, Status> {
    limits::check(request.get_ref())?;
    request
        .extensions()
        .get::<OperatorCaller>()
        .cloned()
        .ok_or_else(|| unauthenticated("the request was not authenticated"))
}
