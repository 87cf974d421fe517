//! Direct Routing numbers loaded ahead of use: the tenant uploads its carrier's numbers into
//! the inventory, unassigned, and takes unassigned ones out. (A Direct Routing number also
//! enters the inventory on its first assignment, as before.)

use super::acquisition::{Numbers, Released, describe_list};
use super::inventory::{number_in_another_tenant, number_not_found};
use super::locations::location_not_found;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, Capabilities, Capability, E164, NumberType, PhoneNumber, check_emergency_location,
    check_not_pending, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, Tx};

/// A Direct Routing number as the tenant uploads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectRoutingUpload {
    /// The number, with its extension if any.
    pub number: E164,
    /// What it may be assigned to.
    pub capabilities: Capabilities,
    /// A location of the tenant to register with it.
    pub emergency_location_id: Option<String>,
}

impl Service {
    /// Uploads Direct Routing numbers into the tenant's inventory, unassigned, all or none; a
    /// Direct Routing number the tenant has already is updated. Answers them in the order
    /// given.
    pub async fn upload_direct_routing(
        &self,
        caller: &Caller,
        uploads: &[DirectRoutingUpload],
        options: &RequestOptions,
    ) -> Result<Numbers> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let mut tx = match self
            .begin(&actor, "UploadDirectRoutingNumbers", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let canonical: Vec<String> = uploads.iter().map(|u| u.number.canonical()).collect();
        let mut existing = tx.lock_numbers(tenant, &canonical).await?;
        let mut changes = Changes::default();
        let mut saved = Vec::with_capacity(uploads.len());
        for upload in uploads {
            let location_id = location_for(&mut tx, tenant, upload).await?;
            let mut current = existing.iter().find(|n| n.number == upload.number).cloned();
            if current.is_none() {
                let mut record = PhoneNumber::from_provider(
                    upload.number.clone(),
                    NumberType::DirectRouting,
                    None,
                    String::new(),
                    upload.capabilities,
                    now,
                );
                record.emergency_location_id = location_id.clone();
                if tx.insert_number(tenant, &record).await? {
                    changes.audit.push(self.audit(
                        &actor,
                        options,
                        AuditAction::UploadDirectRoutingNumber,
                        Some(record.number.canonical()),
                        None,
                        None,
                        Some(number_snapshot(&record)),
                    ));
                    saved.push(record);
                    continue;
                }
                // Taken: by a concurrent first assignment or upload in this tenant (whose
                // insert this one waited for, and which is now visible), or by another tenant.
                current = tx
                    .lock_numbers(tenant, &[upload.number.canonical()])
                    .await?
                    .pop();
                existing.extend(current.clone());
            }
            let current = current.ok_or_else(|| number_in_another_tenant(&upload.number))?;
            let updated = updated(&current, upload, location_id)?;
            if updated == current {
                saved.push(current);
                continue;
            }
            let record = updated.changed(now);
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::UploadDirectRoutingNumber,
                Some(record.number.canonical()),
                record.assignment.as_ref().map(|a| a.target_id.clone()),
                Some(number_snapshot(&current)),
                Some(number_snapshot(&record)),
            ));
            changes.numbers.push(record.clone());
            saved.push(record);
        }
        tracing::info!(%tenant, count = saved.len(), "Direct Routing numbers uploaded");
        self.finish(tx, &actor, options, changes, Numbers(saved))
            .await
    }

    /// Takes unassigned Direct Routing numbers out of the tenant's inventory, all or none.
    pub async fn release_direct_routing(
        &self,
        caller: &Caller,
        numbers: &[E164],
        options: &RequestOptions,
    ) -> Result<Released> {
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let mut tx = match self
            .begin(&actor, "ReleaseDirectRoutingNumbers", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let canonical: Vec<String> = numbers.iter().map(E164::canonical).collect();
        let locked = tx.lock_numbers(tenant, &canonical).await?;
        if let Some(missing) = numbers
            .iter()
            .find(|n| !locked.iter().any(|l| l.number == **n))
        {
            return Err(number_not_found(missing));
        }
        for number in &locked {
            check_direct_routing(number)?;
            check_not_pending(number)?;
        }
        let assigned: Vec<String> = locked
            .iter()
            .filter(|n| n.assignment.is_some())
            .map(|n| n.number.canonical())
            .collect();
        if !assigned.is_empty() {
            return Err(Error::new(
                Reason::NumberAssigned,
                format!(
                    "{} assigned; remove them from their users first. Nothing was released",
                    describe_list(&assigned)
                ),
            )
            .with("phoneNumbers", assigned.join(",")));
        }
        if !options.validate_only {
            tx.delete_numbers(tenant, &canonical).await?;
        }
        let changes = Changes {
            audit: locked
                .iter()
                .map(|number| {
                    self.audit(
                        &actor,
                        options,
                        AuditAction::ReleaseDirectRoutingNumber,
                        Some(number.number.canonical()),
                        None,
                        Some(number_snapshot(number)),
                        None,
                    )
                })
                .collect(),
            ..Changes::default()
        };
        tracing::info!(%tenant, count = locked.len(), "Direct Routing numbers released");
        self.finish(tx, &actor, options, changes, Released(canonical))
            .await
    }
}

/// The location an upload names, which must exist and fit the number.
async fn location_for(
    tx: &mut Tx,
    tenant: &str,
    upload: &DirectRoutingUpload,
) -> Result<Option<String>> {
    let Some(id) = &upload.emergency_location_id else {
        return Ok(None);
    };
    let location = tx
        .get_location(tenant, id)
        .await?
        .ok_or_else(|| location_not_found(id))?;
    check_emergency_location(&location, &upload.number)?;
    Ok(Some(location.id))
}

/// A Direct Routing number of the tenant, as an upload leaves it: its capabilities replaced
/// (its holder's kind keeps the one it needs), and its location when the upload names one.
fn updated(
    current: &PhoneNumber,
    upload: &DirectRoutingUpload,
    location_id: Option<String>,
) -> Result<PhoneNumber> {
    check_direct_routing(current)?;
    check_not_pending(current)?;
    if let Some(holder) = &current.assignment {
        let needed = Capability::required_for(holder.target_kind);
        if !upload.capabilities.contains(needed) {
            return Err(Error::new(
                Reason::CapabilityMismatch,
                format!(
                    "{} is assigned to {}, who needs {needed}; keep that capability or remove \
                     the number first",
                    current.number, holder.target_user_principal_name
                ),
            )
            .with("phoneNumber", &current.number));
        }
    }
    Ok(PhoneNumber {
        capabilities: upload.capabilities,
        emergency_location_id: location_id.or(current.emergency_location_id.clone()),
        ..current.clone()
    })
}

/// The number is a Direct Routing number.
fn check_direct_routing(number: &PhoneNumber) -> Result<()> {
    if number.number_type == NumberType::DirectRouting {
        return Ok(());
    }
    Err(Error::new(
        Reason::NumberTypeMismatch,
        format!(
            "{} is a {} number of this tenant, not a Direct Routing one",
            number.number, number.number_type
        ),
    )
    .with("phoneNumber", &number.number)
    .with("numberType", number.number_type))
}
