//! The tenant's phone number inventory.

use futures::SinkExt as _;
use futures::channel::mpsc;

use super::directory::user_not_found;
use super::{Page, PageRequest, Service};
use crate::auth::Caller;
use crate::domain::{Country, CountryReadiness, E164, Identity, NumberFilter, PhoneNumber};
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

impl Service {
    /// The emergency readiness of the tenant's numbers per country (or of `country`'s), with
    /// a page of the numbers not ready, in number order.
    pub async fn emergency_readiness(
        &self,
        caller: &Caller,
        country: Option<Country>,
        page: &PageRequest,
    ) -> Result<(Vec<CountryReadiness>, Page<PhoneNumber>)> {
        let mut tx = self.read().await?;
        let countries = tx.emergency_readiness(&caller.tenant_id, country).await?;
        let filter = NumberFilter {
            country,
            unready: true,
            ..NumberFilter::default()
        };
        let numbers = tx
            .list_numbers(
                &caller.tenant_id,
                &filter,
                page.after.as_deref(),
                page.size + 1,
            )
            .await?;
        Ok((
            countries,
            Page::from_overfetch(numbers, page.size, |n| n.number.canonical()),
        ))
    }
}

/// Numbers an export reads, and sends, at a time.
pub const EXPORT_CHUNK: usize = 1000;

impl Service {
    /// Exports the tenant's numbers matching `filter` (and held by `assigned_to`, who must
    /// exist), in number order, as they stood when the export began: chunks of up to
    /// [`EXPORT_CHUNK`] arrive on the returned channel as they are read, an error ends it, and
    /// reading stops when the receiver is dropped.
    pub async fn export_numbers(
        &self,
        caller: &Caller,
        assigned_to: Option<&Identity>,
        mut filter: NumberFilter,
    ) -> Result<mpsc::Receiver<Result<Vec<PhoneNumber>>>> {
        // One snapshot for the whole export: keyset pages of one read-only transaction.
        let mut tx = self.store.snapshot().await?;
        if let Some(identity) = assigned_to {
            let user = tx
                .find_user(&caller.tenant_id, identity)
                .await?
                .ok_or_else(|| user_not_found(identity))?;
            filter.assigned_to = Some(user.id);
        }
        let (mut chunks, received) = mpsc::channel(1);
        let tenant = caller.tenant_id.clone();
        tokio::spawn(async move {
            let mut after: Option<String> = None;
            loop {
                let chunk = tx
                    .list_numbers(&tenant, &filter, after.as_deref(), EXPORT_CHUNK)
                    .await
                    .map_err(Error::from);
                let (last, more) = match &chunk {
                    Ok(numbers) => (
                        numbers.last().map(|n| n.number.canonical()),
                        numbers.len() == EXPORT_CHUNK,
                    ),
                    Err(_) => (None, false),
                };
                if matches!(&chunk, Ok(numbers) if numbers.is_empty()) {
                    break;
                }
                if chunks.send(chunk).await.is_err() || !more {
                    break;
                }
                after = last;
            }
            // Read-only: ending it is all that is left.
            drop(tx);
        });
        Ok(received)
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
