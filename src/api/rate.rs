//! Per-tenant rates: each tenant, and each operator, gets its own token bucket of requests, so
//! one caller's flood cannot take the service from the others. A call over its caller's rate
//! answers RESOURCE_EXHAUSTED (`RATE_LIMITED`) with a RetryInfo saying when to try again.
//!
//! The check runs after authentication (it keys on who the token names) and before anything
//! reads the request.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::{Caller, OperatorCaller};
use crate::error::{Error, Reason};

/// Callers tracked before the buckets of those that have not called lately are dropped.
const TRACKED_CALLERS: usize = 10_000;

/// Limits each caller's requests per second; a second's worth may come at once.
#[derive(Clone, Debug)]
pub struct TenantRate {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    per_second: u32,
}

impl TenantRate {
    /// `per_second` requests a second for each tenant and each operator; 0 for no limit.
    pub fn per_second(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second)
            .map(|rate| Arc::new(RateLimiter::keyed(Quota::per_second(rate))));
        Self {
            limiter,
            per_second,
        }
    }
}

impl Interceptor for TenantRate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(limiter) = &self.limiter else {
            return Ok(request);
        };
        let extensions = request.extensions();
        let key = match (
            extensions.get::<Caller>(),
            extensions.get::<OperatorCaller>(),
        ) {
            (Some(caller), _) => format!("tenant:{}", caller.tenant_id),
            (None, Some(operator)) => format!("operator:{}", operator.operator_id),
            (None, None) => return Ok(request),
        };
        if limiter.len() > TRACKED_CALLERS {
            limiter.retain_recent();
        }
        match limiter.check_key(&key) {
            Ok(()) => Ok(request),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Error::new(
                    Reason::RateLimited,
                    format!(
                        "more than {} requests a second; retry in {} ms",
                        self.per_second,
                        wait.as_millis().max(1)
                    ),
                )
                .with("limit", self.per_second)
                .with_retry_after(wait)
                .into())
            }
        }
    }
}
