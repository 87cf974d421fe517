//! The tenant's phone number inventory.

use super::directory::user_not_found;
use super::{Page, PageRequest, Service};
use crate::auth::Caller;
use crate::domain::{E164, Identity, NumberFilter, Operation, PhoneNumber};
use crate::error::{Error, Reason, Result};

impl Service {
    /// Finds a number of the tenant's inventory.
    pub async fn get_number(&self, caller: &Caller, number: &E164) -> Result<PhoneNumber> {
        let mut tx = self.read().await?;
        tx.get_number(&caller.tenant_id, &number.canonical())
            .await?
            .ok_or_else(|| number_not_found(number))
    }

    /// Lists the tenant's numbers, ordered by number. `assigned_to` names a user, who must
    /// exist.
    pub async fn list_numbers(
        &self,
        caller: &Caller,
        assigned_to: Option<&Identity>,
        mut filter: NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<PhoneNumber>> {
        let mut tx = self.read().await?;
        if let Some(identity) = assigned_to {
            let user = tx
                .find_user(&caller.tenant_id, identity)
                .await?
                .ok_or_else(|| user_not_found(identity))?;
            filter.assigned_to = Some(user.id);
        }
        let numbers = tx
            .list_numbers(
                &caller.tenant_id,
                &filter,
                page.after.as_deref(),
                page.size + 1,
            )
            .await?;
        Ok(Page::from_overfetch(numbers, page.size, |n| {
            n.number.canonical()
        }))
    }
}

/// The error for a number that is not in the caller's tenant.
pub(crate) fn number_not_found(number: &E164) -> Error {
    Error::new(
        Reason::NumberNotFound,
        format!("phone number {number} is not in this tenant's inventory"),
    )
    .with("phoneNumber", number)
}

/// A number the tenant lacks and another tenant holds; which tenant is not said.
pub(crate) fn number_in_another_tenant(number: &E164) -> Error {
    Error::new(
        Reason::NumberAlreadyInInventory,
        format!(
            "phone number {number} is in another tenant's inventory; it can come into this \
             tenant once released there"
        ),
    )
    .with("phoneNumber", number)
}

impl Service {
    /// An operation of the tenant.
    pub async fn get_operation(&self, caller: &Caller, id: &str) -> Result<Operation> {
        let mut tx = self.read().await?;
        tx.get_operation(&caller.tenant_id, id)
            .await?
            .ok_or_else(|| {
                Error::new(
                    Reason::OperationNotFound,
                    format!("no operation {id} in this tenant"),
                )
                .with("operationId", id)
            })
    }
}
