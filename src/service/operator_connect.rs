//! What Operator Connect operators do: upload numbers into the tenants that enabled them, and
//! take them back.

use super::acquisition::{Numbers, Released, describe_list};
use super::inventory::number_not_found;
use super::locations::location_not_found;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::OperatorCaller;
use crate::domain::{
    AuditAction, Capabilities, Capability, E164, NumberType, Operator, PhoneNumber,
    check_emergency_location, check_not_pending, number_snapshot,
};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::store::Changes;

/// A number as an operator uploads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The number.
    pub number: E164,
    /// What it may be assigned to.
    pub capabilities: Capabilities,
    /// A location of the tenant to register with it.
    pub emergency_location_id: Option<String>,
    /// Whether the tenant may change its location; `None` for the operator's default.
    pub allow_tenant_location_update: Option<bool>,
}

/// A number the operator cannot upload into the tenant: another tenant holds it, or this
/// tenant holds it as another type or from another operator. Which, and whose, is not the
/// operator's to know.
fn not_available(number: &E164) -> Error {
    Error::new(
        Reason::NumberAlreadyInInventory,
        format!("{number} cannot be uploaded: it is not available to this operator"),
    )
    .with("phoneNumber", number)
}

impl OperatorCaller {
    fn actor(&self, tenant: &str) -> Actor {
        Actor {
            tenant_id: tenant.to_owned(),
            name: format!("operator:{}/{}", self.operator_id, self.subject),
        }
    }
}

impl Service {
    /// The configured operator a token names; an unknown one may do nothing.
    fn calling_operator(&self, caller: &OperatorCaller) -> Result<Operator> {
        self.operators
            .iter()
            .find(|op| op.id == caller.operator_id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    Reason::PermissionDenied,
                    format!(
                        "operator {} is not configured on this service",
                        caller.operator_id
                    ),
                )
                .with("operatorId", &caller.operator_id)
            })
    }

    /// Uploads numbers into a tenant that enabled the operator, all or none. A number the
    /// operator uploaded before is updated.
    pub async fn upload_numbers(
        &self,
        caller: &OperatorCaller,
        tenant: &str,
        uploads: &[Upload],
        options: &RequestOptions,
    ) -> Result<Numbers> {
        let operator = self.calling_operator(caller)?;
        let actor = caller.actor(tenant);
        let mut tx = match self.begin(&actor, "UploadNumbers", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let consent = tx
            .consents(tenant)
            .await?
            .into_iter()
            .find(|c| c.operator_id == operator.id)
            .ok_or_else(|| {
                Error::new(
                    Reason::OperatorNotEnabled,
                    format!(
                        "tenant {tenant} has not enabled {}; its administrator enables it first",
                        operator.display_name
                    ),
                )
                .with("tenantId", tenant)
                .with("operatorId", &operator.id)
            })?;

        let canonical: Vec<String> = uploads.iter().map(|u| u.number.canonical()).collect();
        let existing = tx.lock_numbers(tenant, &canonical).await?;
        let now = self.now();
        let mut changes = Changes::default();
        let mut saved = Vec::with_capacity(uploads.len());
        for (i, upload) in uploads.iter().enumerate() {
            let field = |name: &str| format!("numbers[{i}].{name}");
            let country = upload.number.country();
            if !operator.countries.contains(&country) {
                return Err(Error::new(
                    Reason::CountryNotServed,
                    format!(
                        "{} does not serve {country}, the country of {}",
                        operator.display_name, upload.number
                    ),
                )
                .with_violation(FieldViolation::new(
                    field("phone_number"),
                    "country not served",
                ))
                .with("phoneNumber", &upload.number));
            }
            if !consent.countries.contains(&country) {
                return Err(Error::new(
                    Reason::CountryNotEnabled,
                    format!(
                        "tenant {tenant} enabled {} for {} only; {} is a number of {country}",
                        operator.display_name,
                        consent
                            .countries
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        upload.number
                    ),
                )
                .with("phoneNumber", &upload.number)
                .with("country", country));
            }
            let location_id = match &upload.emergency_location_id {
                None => None,
                Some(id) => {
                    let location = tx
                        .get_location(tenant, id)
                        .await?
                        .ok_or_else(|| location_not_found(id))?;
                    check_emergency_location(&location, &upload.number)?;
                    Some(location.id)
                }
            };
            let allow = upload
                .allow_tenant_location_update
                .unwrap_or(operator.tenant_location_update_allowed);
            let mut before = existing.iter().find(|n| n.number == upload.number).cloned();
            if before.is_none() {
                let mut record = PhoneNumber::from_provider(
                    upload.number.clone(),
                    NumberType::OperatorConnect,
                    Some(operator.id.clone()),
                    String::new(),
                    upload.capabilities,
                    now,
                );
                record.emergency_location_id = location_id.clone();
                record.location_update_supported = allow;
                if tx.insert_number(tenant, &record).await? {
                    changes.audit.push(self.audit(
                        &actor,
                        options,
                        AuditAction::UploadPhoneNumber,
                        Some(record.number.canonical()),
                        None,
                        None,
                        Some(number_snapshot(&record)),
                    ));
                    saved.push(record);
                    continue;
                }
                // Taken: by a concurrent upload into this tenant (whose insert this one waited
                // for, and which is now visible), or by another tenant.
                before = tx
                    .lock_numbers(tenant, &[upload.number.canonical()])
                    .await?
                    .pop();
                if before.is_none() {
                    return Err(not_available(&upload.number));
                }
            }
            let Some(current) = before.as_ref() else {
                continue;
            };
            if current.number_type != NumberType::OperatorConnect
                || current.operator_id.as_deref() != Some(operator.id.as_str())
            {
                return Err(not_available(&current.number));
            }
            check_not_pending(current)?;
            if let Some(holder) = &current.assignment {
                let needed = Capability::required_for(holder.target_kind);
                if !upload.capabilities.contains(needed) {
                    return Err(Error::new(
                        Reason::CapabilityMismatch,
                        format!(
                            "{} is assigned in the tenant, and its holder needs {needed}; keep \
                             that capability or ask the tenant to remove the number first",
                            current.number
                        ),
                    )
                    .with("phoneNumber", &current.number));
                }
            }
            let updated = PhoneNumber {
                capabilities: upload.capabilities,
                emergency_location_id: location_id.or(current.emergency_location_id.clone()),
                location_update_supported: allow,
                ..current.clone()
            };
            let record = updated.changed(now);
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::UploadPhoneNumber,
                Some(record.number.canonical()),
                None,
                before.as_ref().map(number_snapshot),
                Some(number_snapshot(&record)),
            ));
            changes.numbers.push(record.clone());
            saved.push(record);
        }
        tracing::info!(%tenant, operator = %operator.id, count = saved.len(), "numbers uploaded");
        self.finish(tx, &actor, options, changes, Numbers(saved))
            .await
    }

    /// Takes the operator's numbers back from a tenant, all or none; assigned numbers refuse.
    pub async fn operator_release_numbers(
        &self,
        caller: &OperatorCaller,
        tenant: &str,
        numbers: &[E164],
        options: &RequestOptions,
    ) -> Result<Released> {
        let operator = self.calling_operator(caller)?;
        let actor = caller.actor(tenant);
        let mut tx = match self.begin(&actor, "ReleaseNumbers", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let canonical: Vec<String> = numbers.iter().map(E164::canonical).collect();
        let locked = tx.lock_numbers(tenant, &canonical).await?;
        // Another operator's number, or another type, is as good as absent to this operator.
        let own = |n: &PhoneNumber| n.operator_id.as_deref() == Some(operator.id.as_str());
        if let Some(missing) = numbers
            .iter()
            .find(|n| !locked.iter().any(|l| l.number == **n && own(l)))
        {
            return Err(number_not_found(missing));
        }
        for number in &locked {
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
                    "{} assigned to users of tenant {tenant}; the tenant must remove them \
                     first. Nothing was released",
                    describe_list(&assigned)
                ),
            )
            .with("phoneNumbers", assigned.join(",")));
        }
        tx.delete_numbers(tenant, &canonical).await?;
        let changes = Changes {
            audit: locked
                .iter()
                .map(|number| {
                    self.audit(
                        &actor,
                        options,
                        AuditAction::OperatorReleasePhoneNumber,
                        Some(number.number.canonical()),
                        None,
                        Some(number_snapshot(number)),
                        None,
                    )
                })
                .collect(),
            ..Changes::default()
        };
        tracing::info!(%tenant, operator = %operator.id, count = locked.len(), "numbers taken back");
        self.finish(tx, &actor, options, changes, Released(canonical))
            .await
    }
}
