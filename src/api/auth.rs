//! The guard in front of every call of the public services: it reads
//! `authorization: Bearer <token>`, has the [`Authenticator`] verify the token, asks the role
//! matrix ([`super::access`]) whether the caller's role may call the method, and only then
//! puts the caller in the request's extensions, where the handlers take it from, and lets the
//! request through.
//!
//! It is a tower service wrapped around each generated server rather than a tonic interceptor:
//! verifying a provider's token may need its keys fetched over the network, and interceptors
//! cannot wait. Health and reflection are not wrapped: they need no token.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Status};

use super::rate::TenantRate;
use super::{access, limits};
use crate::auth::{Authenticator, Caller, OperatorCaller, Principal};
use crate::error::{Error, Reason};

/// A public service behind authentication and the role matrix.
#[derive(Clone, Debug)]
pub struct Guarded<S> {
    inner: S,
    authenticator: Authenticator,
    rate: TenantRate,
}

impl<S> Guarded<S> {
    /// `inner`, answering only callers `authenticator` knows and the role matrix allows, within
    /// their `rate`.
    pub fn new(inner: S, authenticator: Authenticator, rate: TenantRate) -> Self {
        Self {
            inner,
            authenticator,
            rate,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The service made ready is the one to call; a clone takes its place for the next call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let authenticator = self.authenticator.clone();
        let rate = self.rate.clone();
        // The token and the method are read first: the request's body cannot be held across
        // the wait for verification (it is not Sync).
        let token = bearer(request.headers()).map(str::to_owned);
        let method = request.uri().path().to_owned();
        Box::pin(async move {
            let admitted = admit(&authenticator, token, &method)
                .await
                .and_then(|principal| rate.check(&principal).map(|()| principal));
            match admitted {
                Ok(Principal::Tenant(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(Principal::Operator(operator)) => {
                    request.extensions_mut().insert(operator);
                }
                Err(error) => return Ok(Status::from(error).into_http()),
            }
            inner.call(request).await
        })
    }
}

/// Who sends `token`, once verified, if its role may call `method`.
async fn admit(
    authenticator: &Authenticator,
    token: Result<String, Error>,
    method: &str,
) -> Result<Principal, Error> {
    let principal = authenticator.principal(&token?).await?;
    access::authorize(&principal, method)?;
    Ok(principal)
}

/// The token of `authorization: Bearer <token>`.
fn bearer(headers: &http::HeaderMap) -> Result<&str, Error> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthenticated("missing authorization metadata: send authorization: Bearer <token>")
        })?
        .to_str()
        .map_err(|_| unauthenticated("the authorization metadata is not text"))?;
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| unauthenticated("the authorization metadata must be Bearer <token>"))
}

fn unauthenticated(message: &str) -> Error {
    Error::new(Reason::Unauthenticated, message)
}

/// The authenticated tenant caller of a request, once its fields are within their limits.
pub(crate) fn caller<T: prost::Name>(request: &Request<T>) -> Result<Caller, Status> {
    limits::check(request.get_ref())?;
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| unauthenticated("the request was not authenticated").into())
}

/// The authenticated operator of a request, once its fields are within their limits.
pub(crate) fn operator<T: prost::Name>(request: &Request<T>) -> Result<OperatorCaller, Status> {
    limits::check(request.get_ref())?;
    request
        .extensions()
        .get::<OperatorCaller>()
        .cloned()
        .ok_or_else(|| unauthenticated("the request was not authenticated").into())
}
