//! Per-tenant rates: each tenant, and each operator, gets its own token bucket of requests, so
//! one caller's flood cannot take the service from the others. A call over its caller's rate
//! answers RESOURCE_EXHAUSTED (`RATE_LIMITED`) with a RetryInfo saying when to try again.
//!
//! The check runs after authentication and the role matrix (it keys on who the token names), in
//! [`super::Guarded`], and before anything reads the request.

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::auth::Principal;
use crate::error::{Error, Reason};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

impl TenantRate {
    /// Counts a request of `principal`; refuses it when over the rate.
    pub(crate) fn check(&self, principal: &Principal) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let key = match principal {
            Principal::Tenant(caller) => format!("tenant:{}", caller.tenant_id),
            Principal::Operator(operator) => format!("operator:{}", operator.operator_id),
        };
        if limiter.len() > TRACKED_CALLERS {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::new(
                Reason::RateLimited,
                format!(
                    "more than {} requests a second; retry in {} ms",
                    self.per_second,
                    wait.as_millis().max(1)
                ),
            )
            .with("limit", self.per_second)
            .with_retry_after(wait)
        })
    }
}
