//! Operator Connect operators, as the tenant sees them.

use super::{Page, PageRequest, Service};
use crate::auth::Caller;
use crate::domain::{Operator, OperatorConsent};
use crate::error::Result;

/// An operator and the tenant's consent to it, if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantOperator {
    /// The operator.
    pub operator: Operator,
    /// The tenant's consent; `None` when the tenant has not enabled the operator.
    pub consent: Option<OperatorConsent>,
}

impl Service {
    /// Lists the configured operators, ordered by id, with the tenant's consent to each.
    pub async fn list_operators(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<TenantOperator>> {
        let mut tx = self.read().await?;
        let mut consents = tx.consents(&caller.tenant_id).await?;
        let mut operators: Vec<&Operator> = self
            .operators
            .iter()
            .filter(|op| {
                page.after
                    .as_deref()
                    .is_none_or(|after| op.id.as_str() > after)
            })
            .collect();
        operators.sort_by(|a, b| a.id.cmp(&b.id));
        let listed = operators
            .into_iter()
            .take(page.size + 1)
            .map(|operator| TenantOperator {
                consent: consents
                    .iter()
                    .position(|c| c.operator_id == operator.id)
                    .map(|at| consents.swap_remove(at)),
                operator: operator.clone(),
            })
            .collect();
        Ok(Page::from_overfetch(listed, page.size, |o| {
            o.operator.id.clone()
        }))
    }
}
