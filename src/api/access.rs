//! The role matrix: which role may call which method, in one table, consulted for every call
//! before its handler runs (and before its request is validated, AIP-193: a caller learns
//! nothing from the validation errors of a method it may not call).
//!
//! A method not in the table is open to nobody, so a new RPC is refused until a row says who
//! may call it (and the role matrix test, which walks every RPC of the service descriptors,
//! fails until it has one). Which records a caller reaches is decided elsewhere: the tenant
//! comes from the token, and an operator acts only on its own numbers in tenants that enabled
//! it (the service's rules).

use crate::auth::Principal;
use crate::auth::Role::{self, Admin, Helpdesk, Operator, Reader};
use crate::error::{Error, Reason};

/// Tenant roles that may read.
const READERS: &[Role] = &[Admin, Helpdesk, Reader];
/// Tenant roles that may assign, change and remove numbers and update their locations.
const SERVICE_DESK: &[Role] = &[Admin, Helpdesk];
/// Tenant roles that may buy and release numbers, enable operators and write the directory.
const ADMINS: &[Role] = &[Admin];
/// Operators, on the operator-facing service.
const OPERATORS: &[Role] = &[Operator];

/// Every method of the public services, by its gRPC path, with the roles that may call it.
#[rustfmt::skip]
pub const ROLE_MATRIX: &[(&str, &[Role])] = &[
    ("/numbers.v1.NumberManagement/GetUser",                 READERS),
    ("/numbers.v1.NumberManagement/ListUsers",               READERS),
    ("/numbers.v1.NumberManagement/GetEmergencyLocation",    READERS),
    ("/numbers.v1.NumberManagement/ListEmergencyLocations",  READERS),
    ("/numbers.v1.NumberManagement/GetPhoneNumber",          READERS),
    ("/numbers.v1.NumberManagement/ListPhoneNumbers",        READERS),
    ("/numbers.v1.NumberManagement/ExportPhoneNumbers",      READERS),
    ("/numbers.v1.NumberManagement/ListOperators",           READERS),
    ("/numbers.v1.NumberManagement/ListAuditEvents",         READERS),
    ("/numbers.v1.NumberManagement/GetOperation",            READERS),
    ("/numbers.v1.NumberManagement/GetNotificationSettings", READERS),
    ("/numbers.v1.NumberManagement/GetTenantConfiguration",  READERS),
    ("/numbers.v1.NumberManagement/ListTags",                READERS),
    ("/numbers.v1.NumberManagement/GetEmergencyReadiness",   READERS),
    ("/numbers.v1.NumberManagement/ListOperations",          READERS),
    ("/numbers.v1.NumberManagement/WatchChanges",            READERS),
    ("/numbers.v1.NumberManagement/ValidateEmergencyAddress", READERS),
    ("/numbers.v1.NumberManagement/AssignPhoneNumber",       SERVICE_DESK),
    ("/numbers.v1.NumberManagement/ChangePhoneNumber",       SERVICE_DESK),
    ("/numbers.v1.NumberManagement/RemovePhoneNumber",       SERVICE_DESK),
    ("/numbers.v1.NumberManagement/UpdateEmergencyLocation", SERVICE_DESK),
    ("/numbers.v1.NumberManagement/SetAssignmentBlock",      SERVICE_DESK),
    ("/numbers.v1.NumberManagement/RemoveAssignmentBlock",   SERVICE_DESK),
    ("/numbers.v1.NumberManagement/TransferPhoneNumber",     SERVICE_DESK),
    ("/numbers.v1.NumberManagement/AddPhoneNumberTags",      SERVICE_DESK),
    ("/numbers.v1.NumberManagement/RemovePhoneNumberTags",   SERVICE_DESK),
    ("/numbers.v1.NumberManagement/RetryOperation",          SERVICE_DESK),
    ("/numbers.v1.NumberManagement/CancelOperation",         SERVICE_DESK),
    ("/numbers.v1.NumberManagement/UpsertUser",              ADMINS),
    ("/numbers.v1.NumberManagement/CreateEmergencyLocation", ADMINS),
    ("/numbers.v1.NumberManagement/CreateEmergencyPlace",    ADMINS),
    ("/numbers.v1.NumberManagement/UpdateEmergencyLocationDetails", ADMINS),
    ("/numbers.v1.NumberManagement/DeleteEmergencyLocation", ADMINS),
    ("/numbers.v1.NumberManagement/AcquirePhoneNumbers",     ADMINS),
    ("/numbers.v1.NumberManagement/ReleasePhoneNumbers",     ADMINS),
    ("/numbers.v1.NumberManagement/UploadDirectRoutingNumbers", ADMINS),
    ("/numbers.v1.NumberManagement/ReleaseDirectRoutingNumbers", ADMINS),
    ("/numbers.v1.NumberManagement/EnableOperator",          ADMINS),
    ("/numbers.v1.NumberManagement/DisableOperator",         ADMINS),
    ("/numbers.v1.NumberManagement/UpdateNotificationSettings", ADMINS),
    ("/numbers.v1.NumberManagement/UpdateTenantConfiguration", ADMINS),
    ("/numbers.v1.NumberManagement/BulkUpsertUsers",         ADMINS),
    ("/numbers.v1.NumberManagement/BulkAssignPhoneNumbers",  ADMINS),
    ("/numbers.v1.NumberManagement/BulkRemovePhoneNumbers",  ADMINS),
    ("/numbers.v1.NumberManagement/BulkUpdateEmergencyLocations", ADMINS),
    ("/numbers.v1.OperatorConnect/UploadNumbers",            OPERATORS),
    ("/numbers.v1.OperatorConnect/ReleaseNumbers",           OPERATORS),
];

/// The roles that may call `method` (a gRPC path); none for a method not in the table.
pub fn allowed_roles(method: &str) -> &'static [Role] {
    ROLE_MATRIX
        .iter()
        .find(|(path, _)| *path == method)
        .map_or(&[], |(_, roles)| roles)
}

/// Refuses `principal` the call of `method` unless the role matrix allows its role.
pub(crate) fn authorize(principal: &Principal, method: &str) -> Result<(), Error> {
    let role = principal.role();
    let allowed = allowed_roles(method);
    if allowed.contains(&role) {
        return Ok(());
    }
    let (service, name) = method
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", method));
    let service = service.rsplit('.').next().unwrap_or(service);
    let message = match principal {
        _ if allowed.is_empty() => format!("{method} is not a method anyone may call"),
        Principal::Operator(operator) if !allowed.contains(&Operator) => format!(
            "operator {} credentials cannot call {service}; use a tenant admin, helpdesk or \
             reader token",
            operator.operator_id
        ),
        Principal::Tenant(caller) if allowed == OPERATORS => format!(
            "tenant {} credentials cannot call {service}; use an operator token",
            caller.tenant_id
        ),
        _ => format!(
            "{} has the {} role, which may not call {name}",
            principal.subject(),
            role.as_str().to_ascii_lowercase()
        ),
    };
    Err(Error::new(Reason::PermissionDenied, message)
        .with("role", role)
        .with("method", method))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::auth::Caller;

    fn caller(role: Role) -> Principal {
        Principal::Tenant(Caller {
            tenant_id: "contoso".into(),
            subject: "alice".into(),
            issuer: "numbers".into(),
            role,
        })
    }

    #[test]
    fn the_matrix_has_one_row_per_method_of_the_descriptors() {
        let files = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set");
        let mut methods: Vec<String> = files
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect();
        methods.sort();
        let mut rows: Vec<String> = ROLE_MATRIX.iter().map(|(m, _)| (*m).to_owned()).collect();
        rows.sort();
        assert_eq!(rows, methods);
    }

    #[test]
    fn refusals_say_why_with_the_role() {
        let refused = authorize(
            &caller(Reader),
            "/numbers.v1.NumberManagement/AssignPhoneNumber",
        )
        .unwrap_err();
        assert_eq!(refused.reason(), Reason::PermissionDenied);
        assert_eq!(
            refused.message(),
            "alice has the reader role, which may not call AssignPhoneNumber"
        );
        assert!(
            authorize(
                &caller(Helpdesk),
                "/numbers.v1.NumberManagement/AssignPhoneNumber"
            )
            .is_ok()
        );
        let unknown =
            authorize(&caller(Admin), "/numbers.v1.NumberManagement/DropTables").unwrap_err();
        assert_eq!(unknown.reason(), Reason::PermissionDenied);
    }
}
