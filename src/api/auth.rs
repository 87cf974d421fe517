//! The interceptor that authenticates every call of the public services: it reads
//! `authorization: Bearer <token>`, verifies the token and puts the [`Caller`] in the request's
//! extensions, where the handlers take it from.

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::{Caller, SigningKey};
use crate::error::{Error, Reason};

/// Authenticates requests with the service's signing key.
#[derive(Clone, Debug)]
pub struct Authenticate {
    key: SigningKey,
}

impl Authenticate {
    /// An interceptor that accepts tokens signed with `key`.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
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
        let caller = self.key.verify(token)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

fn unauthenticated(message: &str) -> Status {
    Error::new(Reason::Unauthenticated, message).into()
}

/// The authenticated caller of a request.
pub(crate) fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| unauthenticated("the request was not authenticated"))
}
