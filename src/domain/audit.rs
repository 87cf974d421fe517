//! The audit trail: who changed what and when, with the record before and after.

use std::time::SystemTime;

use numbers_provider::spelled_enum;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Block, EmergencyLocation, OperatorConsent, PhoneNumber, User};

spelled_enum! {
    /// What an audit event records.
    AuditAction, "audit action" {
        /// A user was created or updated.
        UpsertUser = "UPSERT_USER",
        /// An emergency location was created.
        CreateEmergencyLocation = "CREATE_EMERGENCY_LOCATION",
        /// A number was assigned.
        AssignPhoneNumber = "ASSIGN_PHONE_NUMBER",
        /// A user's primary number was changed (one event per number).
        ChangePhoneNumber = "CHANGE_PHONE_NUMBER",
        /// A number was removed from a user.
        RemovePhoneNumber = "REMOVE_PHONE_NUMBER",
        /// A number's emergency location changed.
        UpdateEmergencyLocation = "UPDATE_EMERGENCY_LOCATION",
        /// A number was acquired from the Calling Plan catalogue.
        AcquirePhoneNumber = "ACQUIRE_PHONE_NUMBER",
        /// A number was released to the Calling Plan catalogue.
        ReleasePhoneNumber = "RELEASE_PHONE_NUMBER",
        /// An operator was enabled.
        EnableOperator = "ENABLE_OPERATOR",
        /// An operator was disabled.
        DisableOperator = "DISABLE_OPERATOR",
        /// An operator uploaded or updated a number.
        UploadPhoneNumber = "UPLOAD_PHONE_NUMBER",
        /// An operator took a number back.
        OperatorReleasePhoneNumber = "OPERATOR_RELEASE_PHONE_NUMBER",
        /// A provider confirmed a change it had left pending.
        ProvisioningSucceeded = "PROVISIONING_SUCCEEDED",
        /// A provider refused or failed a change for good.
        ProvisioningFailed = "PROVISIONING_FAILED",
        /// The tenant's verified email domains were replaced.
        UpdateNotificationSettings = "UPDATE_NOTIFICATION_SETTINGS",
        /// A bulk call of users was accepted (each item records its own event).
        BulkUpsertUsers = "BULK_UPSERT_USERS",
        /// A bulk call of assignments was accepted.
        BulkAssignPhoneNumbers = "BULK_ASSIGN_PHONE_NUMBERS",
        /// A bulk call of removals was accepted.
        BulkRemovePhoneNumbers = "BULK_REMOVE_PHONE_NUMBERS",
        /// A bulk call of emergency location updates was accepted.
        BulkUpdateEmergencyLocations = "BULK_UPDATE_EMERGENCY_LOCATIONS",
        /// A number was blocked from assignment.
        SetAssignmentBlock = "SET_ASSIGNMENT_BLOCK",
        /// A number's block from assignment was lifted.
        RemoveAssignmentBlock = "REMOVE_ASSIGNMENT_BLOCK",
        /// A number moved from one holder to another (one event for each).
        TransferPhoneNumber = "TRANSFER_PHONE_NUMBER",
        /// The tenant's configuration was updated.
        UpdateTenantConfiguration = "UPDATE_TENANT_CONFIGURATION",
        /// A number's tags changed.
        UpdatePhoneNumberTags = "UPDATE_PHONE_NUMBER_TAGS",
        /// A place was created inside an emergency location.
        CreateEmergencyPlace = "CREATE_EMERGENCY_PLACE",
        /// The description of an emergency location or place changed.
        UpdateEmergencyLocationDetails = "UPDATE_EMERGENCY_LOCATION_DETAILS",
        /// An emergency location or place was deleted.
        DeleteEmergencyLocation = "DELETE_EMERGENCY_LOCATION",
        /// The tenant uploaded or updated a Direct Routing number.
        UploadDirectRoutingNumber = "UPLOAD_DIRECT_ROUTING_NUMBER",
        /// The tenant took a Direct Routing number out of its inventory.
        ReleaseDirectRoutingNumber = "RELEASE_DIRECT_ROUTING_NUMBER",
        /// A failed operation's steps were tried again (one event per number).
        RetryOperation = "RETRY_OPERATION",
        /// An operation was cancelled, its numbers returned (one event per number).
        CancelOperation = "CANCEL_OPERATION",
    }
}

/// One change, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Time-ordered id.
    pub id: String,
    /// When the change was made.
    pub time: SystemTime,
    /// Who made it.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// The number concerned.
    pub phone_number: Option<String>,
    /// The id of the user concerned.
    pub user_id: Option<String>,
    /// The client's request id.
    pub request_id: Option<String>,
    /// The record before; `None` for a creation.
    pub before: Option<Value>,
    /// The record after; `None` for a deletion.
    pub after: Option<Value>,
}

/// Filters of an audit listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this number.
    pub phone_number: Option<String>,
    /// Only events about this user id.
    pub user_id: Option<String>,
    /// Only events at or after this time.
    pub start: Option<SystemTime>,
    /// Only events before this time.
    pub end: Option<SystemTime>,
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// A number as the audit trail shows it.
pub fn number_snapshot(n: &PhoneNumber) -> Value {
    let assignment = n.assignment.as_ref();
    json!({
        "phoneNumber": n.number.canonical(),
        "numberType": n.number_type,
        "operatorId": n.operator_id,
        "capabilities": n.capabilities,
        "assignedTo": assignment.map(|a| &a.target_id),
        "assignedToUserPrincipalName": assignment.map(|a| &a.target_user_principal_name),
        "assignmentCategory": assignment.map(|a| a.category),
        "activationState": n.activation_state,
        "emergencyLocationId": n.emergency_location_id,
        "locationUpdateSupported": n.location_update_supported,
        "operationId": n.operation_id,
        "tags": n.tags,
        "assignmentBlocked": match n.block {
            Block::None => "NOT_BLOCKED".to_owned(),
            Block::Until(until) => format!("BLOCKED_UNTIL {}", time(until)),
            Block::Forever => "BLOCKED_FOREVER".to_owned(),
        },
    })
}

/// A user as the audit trail shows it.
pub fn user_snapshot(u: &User) -> Value {
    json!({
        "id": u.id,
        "userPrincipalName": u.user_principal_name,
        "sipAddress": u.sip_address,
        "displayName": u.display_name,
        "usageLocation": u.usage_location,
        "kind": u.kind,
        "licenses": u.licenses.iter().collect::<Vec<_>>(),
        "enterpriseVoiceEnabled": u.enterprise_voice_enabled,
        "onPremisesLineUri": u.on_premises_line_uri,
    })
}

/// An emergency location as the audit trail shows it.
pub fn location_snapshot(l: &EmergencyLocation) -> Value {
    json!({
        "id": l.id,
        "address": l.formatted(),
        "description": l.description,
        "validationStatus": l.validation_status,
        "parentLocationId": l.parent_id,
    })
}

/// A consent as the audit trail shows it.
pub fn consent_snapshot(c: &OperatorConsent) -> Value {
    json!({
        "operatorId": c.operator_id,
        "countries": c.countries,
    })
}
