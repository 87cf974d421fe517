//! Operator Connect operators, as the tenant sees them.

use serde::{Deserialize, Serialize};

use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{AuditAction, Country, Operator, OperatorConsent, consent_snapshot};
use crate::error::{Error, Reason, Result};
use crate::store::Changes;

/// An operator and the tenant's consent to it, if given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl Service {
    /// The configured operator with this id.
    fn configured_operator(&self, operator_id: &str) -> Result<&Operator> {
        self.operators
            .iter()
            .find(|op| op.id == operator_id)
            .ok_or_else(|| {
                Error::new(
                    Reason::OperatorNotFound,
                    format!("no operator {operator_id} is configured on this service"),
                )
                .with("operatorId", operator_id)
            })
    }

    /// Enables (consents to) an operator for some of the countries it serves; none means all.
    pub async fn enable_operator(
        &self,
        caller: &Caller,
        operator_id: &str,
        countries: &[Country],
        options: &RequestOptions,
    ) -> Result<TenantOperator> {
        let actor = Actor::tenant(caller);
        let operator = self.configured_operator(operator_id)?.clone();
        if let Some(unserved) = countries.iter().find(|c| !operator.countries.contains(c)) {
            return Err(Error::new(
                Reason::CountryNotServed,
                format!(
                    "{} does not serve {unserved}; it serves {}",
                    operator.display_name,
                    operator
                        .countries
                        .iter()
                        .map(Country::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with("operatorId", &operator.id)
            .with("country", unserved));
        }
        let mut tx = match self.begin(&actor, "EnableOperator", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let before = tx
            .consents(&actor.tenant_id)
            .await?
            .into_iter()
            .find(|c| c.operator_id == operator.id);
        let mut enabled: Vec<Country> = if countries.is_empty() {
            operator.countries.clone()
        } else {
            countries.to_vec()
        };
        enabled.sort();
        enabled.dedup();
        let consent = OperatorConsent {
            operator_id: operator.id.clone(),
            countries: enabled,
        };
        tx.put_consent(&actor.tenant_id, &consent, self.now())
            .await?;
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::EnableOperator,
                None,
                None,
                before.as_ref().map(consent_snapshot),
                Some(consent_snapshot(&consent)),
            )],
            ..Changes::default()
        };
        let listed = TenantOperator {
            operator,
            consent: Some(consent),
        };
        self.finish(tx, &actor, options, changes, listed).await
    }

    /// Withdraws the tenant's consent to an operator, unless users hold its numbers.
    pub async fn disable_operator(
        &self,
        caller: &Caller,
        operator_id: &str,
        options: &RequestOptions,
    ) -> Result<TenantOperator> {
        let actor = Actor::tenant(caller);
        let operator = self.configured_operator(operator_id)?.clone();
        let mut tx = match self.begin(&actor, "DisableOperator", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let assigned = tx
            .assigned_numbers_of_operator(&actor.tenant_id, &operator.id)
            .await?;
        if assigned > 0 {
            return Err(Error::new(
                Reason::OperatorNumbersAssigned,
                format!(
                    "users of this tenant hold {assigned} numbers of {}; remove them from their \
                     users first",
                    operator.display_name
                ),
            )
            .with("operatorId", &operator.id)
            .with("assignedNumbers", assigned));
        }
        let before = tx
            .consents(&actor.tenant_id)
            .await?
            .into_iter()
            .find(|c| c.operator_id == operator.id);
        let mut changes = Changes::default();
        if let Some(before) = &before {
            tx.delete_consent(&actor.tenant_id, &operator.id).await?;
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::DisableOperator,
                None,
                None,
                Some(consent_snapshot(before)),
                None,
            ));
        }
        let listed = TenantOperator {
            operator,
            consent: None,
        };
        self.finish(tx, &actor, options, changes, listed).await
    }
}
