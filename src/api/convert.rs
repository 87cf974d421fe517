//! Conversions between the API's messages and the domain's types, in one place.
//!
//! Inbound conversions validate: they turn each bad field into a field violation with the
//! field's path in the request, so clients learn exactly what to fix.

use std::sync::OnceLock;
use std::time::SystemTime;

use prost_types::Timestamp;

use crate::domain::{
    ActivationMode, ActivationState, AddressCheck, AddressVerdict, AssignmentCategory,
    AssignmentStatus, AuditAction, AuditEvent, Block, BlockState, Capabilities, Capability,
    CivicAddress, Country, CountryReadiness, E164, EmergencyLocation, Identity, ItemOutcome,
    ItemResult, License, Licenses, MAX_BLOCK_DAYS, MAX_TAGS_PER_NUMBER, NotificationSettings,
    NumberFilter, NumberType, Operation, OperationFilter, OperationState, PhoneNumber,
    ProvisioningAction, ReadinessProblem, Tag, TagCount, TargetKind, TenantConfiguration, User,
    UserUpsert, ValidationStatus,
};
use crate::error::{Error, FieldViolation, Reason};
use crate::proto::v1 as pb;
use crate::service::{
    AssignRequest, BlockRequest, ConfigurationUpdate, DirectRoutingUpload, LocationUpdate,
    RemoveRequest, TenantOperator, TransferRequest, Upload,
};

// ---- inbound ---------------------------------------------------------------------------------

/// Reads a phone number field.
pub(crate) fn phone_number(field: &str, input: &str) -> Result<E164, Error> {
    // Parsing with libphonenumber runs its patterns for the country of the number: tens of
    // microseconds, the largest part of a read's work in this process. A number parses the
    // same every time, so valid ones are remembered: the last 16,384 or so, about 3 MB (a
    // bulk call's 100,000 numbers would hold 25 MB for numbers that are each read once).
    static PARSED: OnceLock<quick_cache::sync::Cache<String, E164>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| quick_cache::sync::Cache::new(16_384));
    if let Some(number) = parsed.get(input) {
        return Ok(number);
    }
    let number = E164::parse(input).map_err(|why| {
        Error::invalid_field(Reason::InvalidPhoneNumber, field, why).with("phoneNumber", input)
    })?;
    parsed.insert(input.to_owned(), number.clone());
    Ok(number)
}

/// Reads an identity field: id, user principal name or `sip:` address.
pub(crate) fn identity(field: &str, input: &str) -> Result<Identity, Error> {
    Identity::parse(input).map_err(|why| Error::invalid_field(Reason::InvalidArgument, field, why))
}

/// Reads an optional country filter.
pub(crate) fn country_filter(field: &str, input: &str) -> Result<Option<Country>, Error> {
    match input.trim() {
        "" => Ok(None),
        code => Country::parse(code)
            .map(Some)
            .map_err(|why| Error::invalid_field(Reason::InvalidArgument, field, why)),
    }
}

/// Reads an enum field, where 0 (unspecified) means "not given".
fn optional_enum<P, D>(
    field: &str,
    value: i32,
    convert: impl Fn(P) -> Option<D>,
) -> Result<Option<D>, Error>
where
    P: TryFrom<i32>,
{
    let unknown = || {
        Error::invalid_field(
            Reason::InvalidArgument,
            field,
            format!("{value} is not a known value"),
        )
    };
    if value == 0 {
        return Ok(None);
    }
    let proto = P::try_from(value).map_err(|_| unknown())?;
    convert(proto).map(Some).ok_or_else(unknown)
}

/// Reads a number type field; unspecified means "any".
pub(crate) fn number_type(field: &str, value: i32) -> Result<Option<NumberType>, Error> {
    optional_enum(field, value, |t: pb::NumberType| match t {
        pb::NumberType::Unspecified => None,
        pb::NumberType::CallingPlan => Some(NumberType::CallingPlan),
        pb::NumberType::OperatorConnect => Some(NumberType::OperatorConnect),
        pb::NumberType::DirectRouting => Some(NumberType::DirectRouting),
    })
}

fn capability_in(value: pb::Capability) -> Option<Capability> {
    match value {
        pb::Capability::Unspecified => None,
        pb::Capability::UserAssignment => Some(Capability::UserAssignment),
        pb::Capability::VoiceApplicationAssignment => Some(Capability::VoiceApplicationAssignment),
        pb::Capability::ConferenceAssignment => Some(Capability::ConferenceAssignment),
    }
}

/// Reads a repeated capability field.
pub(crate) fn capabilities(field: &str, values: &[i32]) -> Result<Capabilities, Error> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            optional_enum(&format!("{field}[{i}]"), *value, capability_in)?.ok_or_else(|| {
                Error::invalid_field(
                    Reason::InvalidArgument,
                    format!("{field}[{i}]"),
                    "must be set",
                )
            })
        })
        .collect()
}

/// Reads the user of an upsert, reporting every bad field at once.
pub(crate) fn user_upsert(user: Option<pb::User>) -> Result<UserUpsert, Error> {
    let user =
        user.ok_or_else(|| Error::invalid_field(Reason::InvalidArgument, "user", "is required"))?;
    let mut violations = Vec::new();
    let kind = match pb::user::Kind::try_from(user.kind) {
        Ok(pb::user::Kind::Unspecified | pb::user::Kind::User) => TargetKind::User,
        Ok(pb::user::Kind::ResourceAccount) => TargetKind::ResourceAccount,
        Err(_) => {
            violations.push(FieldViolation::new(
                "user.kind",
                format!("{} is not a known value", user.kind),
            ));
            TargetKind::User
        }
    };
    let licenses: Licenses = user
        .licenses
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            let license = pb::user::License::try_from(*value)
                .ok()
                .and_then(|l| match l {
                    pb::user::License::Unspecified => None,
                    pb::user::License::PhoneSystem => Some(License::PhoneSystem),
                    pb::user::License::CallingPlan => Some(License::CallingPlan),
                    pb::user::License::PhoneSystemVirtualUser => {
                        Some(License::PhoneSystemVirtualUser)
                    }
                });
            if license.is_none() {
                violations.push(FieldViolation::new(
                    format!("user.licenses[{i}]"),
                    format!("{value} is not a known licence"),
                ));
            }
            license
        })
        .collect();
    let upsert = UserUpsert::new(
        &user.id,
        &user.user_principal_name,
        &user.sip_address,
        &user.display_name,
        &user.usage_location,
        kind,
        licenses,
        &user.on_premises_line_uri,
    )
    .map_err(|e| e.under("user"));
    match upsert {
        Ok(upsert) if violations.is_empty() => Ok(upsert),
        Ok(_) => Err(Error::invalid_fields(Reason::InvalidArgument, violations)),
        Err(error) => {
            violations.extend(error.violations().iter().cloned());
            Err(Error::invalid_fields(Reason::InvalidArgument, violations))
        }
    }
}

/// Reads a civic address.
pub(crate) fn civic_address(address: Option<pb::CivicAddress>) -> CivicAddress {
    let a = address.unwrap_or_default();
    CivicAddress {
        company_name: a.company_name,
        house_number: a.house_number,
        house_number_suffix: a.house_number_suffix,
        pre_directional: a.pre_directional,
        street_name: a.street_name,
        street_suffix: a.street_suffix,
        post_directional: a.post_directional,
        city: a.city,
        state_or_province: a.state_or_province,
        postal_code: a.postal_code,
        country: a.country,
    }
}

/// Reads the filters of a phone number listing.
/// The filters of an export, read as ListPhoneNumbers reads its own.
pub(crate) fn export_filter(
    request: pb::ExportPhoneNumbersRequest,
    now: SystemTime,
) -> Result<(Option<Identity>, NumberFilter), Error> {
    number_filter(
        &pb::ListPhoneNumbersRequest {
            assigned_to: request.assigned_to,
            number_type: request.number_type,
            assignment_status: request.assignment_status,
            activation_state: request.activation_state,
            country: request.country,
            operator_id: request.operator_id,
            capabilities: request.capabilities,
            number_prefix: request.number_prefix,
            emergency_location_id: request.emergency_location_id,
            assignment_blocked_state: request.assignment_blocked_state,
            ..Default::default()
        },
        now,
    )
}

/// The filters of a listing, block states judged at `now`.
pub(crate) fn number_filter(
    request: &pb::ListPhoneNumbersRequest,
    now: SystemTime,
) -> Result<(Option<Identity>, NumberFilter), Error> {
    let assigned_to = match request.assigned_to.trim() {
        "" => None,
        text => Some(identity("assigned_to", text)?),
    };
    let number_prefix = number_prefix("number_prefix", &request.number_prefix)?;
    let emergency_location_id = Some(request.emergency_location_id.trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let operator_id = Some(request.operator_id.trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let filter = NumberFilter {
        assigned_to: None,
        number_type: number_type("number_type", request.number_type)?,
        assignment_status: optional_enum(
            "assignment_status",
            request.assignment_status,
            |s: pb::AssignmentStatus| match s {
                pb::AssignmentStatus::Unspecified => None,
                pb::AssignmentStatus::Unassigned => Some(AssignmentStatus::Unassigned),
                pb::AssignmentStatus::UserAssigned => Some(AssignmentStatus::UserAssigned),
                pb::AssignmentStatus::VoiceApplicationAssigned => {
                    Some(AssignmentStatus::VoiceApplicationAssigned)
                }
            },
        )?,
        activation_state: optional_enum(
            "activation_state",
            request.activation_state,
            |s: pb::ActivationState| match s {
                pb::ActivationState::Unspecified => None,
                pb::ActivationState::Activated => Some(ActivationState::Activated),
                pb::ActivationState::AssignmentPending => Some(ActivationState::AssignmentPending),
                pb::ActivationState::AssignmentFailed => Some(ActivationState::AssignmentFailed),
                pb::ActivationState::UpdatePending => Some(ActivationState::UpdatePending),
                pb::ActivationState::UpdateFailed => Some(ActivationState::UpdateFailed),
            },
        )?,
        country: country_filter("country", &request.country)?,
        operator_id,
        capabilities: capabilities("capabilities", &request.capabilities)?,
        number_prefix,
        emergency_location_id,
        block_state: optional_enum(
            "assignment_blocked_state",
            request.assignment_blocked_state,
            |s: pb::AssignmentBlockedState| match s {
                pb::AssignmentBlockedState::Unspecified => None,
                pb::AssignmentBlockedState::NotBlocked => Some(BlockState::NotBlocked),
                pb::AssignmentBlockedState::BlockedUntil => Some(BlockState::BlockedUntil),
                pb::AssignmentBlockedState::BlockedForever => Some(BlockState::BlockedForever),
            },
        )?
        .map(|state| (state, now)),
        tag: match request.tag.trim() {
            "" => None,
            tag => Some(
                Tag::parse(tag)
                    .map_err(|why| Error::invalid_field(Reason::InvalidArgument, "tag", why))?
                    .key,
            ),
        },
        category: optional_category("assignment_category", request.assignment_category)?,
        city: optional_id(&request.city),
        number_contains: digits("number_contains", &request.number_contains, 15)?,
        unready: false,
    };
    Ok((assigned_to, filter))
}

// ---- outbound --------------------------------------------------------------------------------

fn timestamp(time: SystemTime) -> Option<Timestamp> {
    Some(Timestamp::from(time))
}

fn number_type_out(value: NumberType) -> pb::NumberType {
    match value {
        NumberType::CallingPlan => pb::NumberType::CallingPlan,
        NumberType::OperatorConnect => pb::NumberType::OperatorConnect,
        NumberType::DirectRouting => pb::NumberType::DirectRouting,
    }
}

fn capability_out(value: Capability) -> pb::Capability {
    match value {
        Capability::UserAssignment => pb::Capability::UserAssignment,
        Capability::VoiceApplicationAssignment => pb::Capability::VoiceApplicationAssignment,
        Capability::ConferenceAssignment => pb::Capability::ConferenceAssignment,
    }
}

fn category_out(value: AssignmentCategory) -> pb::AssignmentCategory {
    match value {
        AssignmentCategory::Primary => pb::AssignmentCategory::Primary,
        AssignmentCategory::Private => pb::AssignmentCategory::Private,
        AssignmentCategory::Alternate => pb::AssignmentCategory::Alternate,
    }
}

fn status_out(value: AssignmentStatus) -> pb::AssignmentStatus {
    match value {
        AssignmentStatus::Unassigned => pb::AssignmentStatus::Unassigned,
        AssignmentStatus::UserAssigned => pb::AssignmentStatus::UserAssigned,
        AssignmentStatus::VoiceApplicationAssigned => {
            pb::AssignmentStatus::VoiceApplicationAssigned
        }
    }
}

fn activation_out(value: ActivationState) -> pb::ActivationState {
    match value {
        ActivationState::Activated => pb::ActivationState::Activated,
        ActivationState::AssignmentPending => pb::ActivationState::AssignmentPending,
        ActivationState::AssignmentFailed => pb::ActivationState::AssignmentFailed,
        ActivationState::UpdatePending => pb::ActivationState::UpdatePending,
        ActivationState::UpdateFailed => pb::ActivationState::UpdateFailed,
    }
}

/// A user for the API.
pub(crate) fn user(user: User) -> pb::User {
    pb::User {
        id: user.id,
        user_principal_name: user.user_principal_name,
        sip_address: user.sip_address,
        display_name: user.display_name,
        usage_location: user.usage_location.map(String::from).unwrap_or_default(),
        kind: match user.kind {
            TargetKind::User => pb::user::Kind::User,
            TargetKind::ResourceAccount => pb::user::Kind::ResourceAccount,
        } as i32,
        licenses: user
            .licenses
            .iter()
            .map(|l| match l {
                License::PhoneSystem => pb::user::License::PhoneSystem,
                License::CallingPlan => pb::user::License::CallingPlan,
                License::PhoneSystemVirtualUser => pb::user::License::PhoneSystemVirtualUser,
            } as i32)
            .collect(),
        enterprise_voice_enabled: user.enterprise_voice_enabled,
        on_premises_line_uri: user.on_premises_line_uri.unwrap_or_default(),
        phone_numbers: user.phone_numbers,
        etag: user.version.to_string(),
        create_time: timestamp(user.create_time),
        update_time: timestamp(user.update_time),
    }
}

/// An emergency location for the API.
pub(crate) fn location(location: EmergencyLocation) -> pb::EmergencyLocation {
    let country = location.country.as_str().to_owned();
    pb::EmergencyLocation {
        id: location.id,
        address: Some(civic_address_out(location.address, country)),
        description: location.description,
        validation_status: match location.validation_status {
            ValidationStatus::NotValidated => pb::ValidationStatus::NotValidated,
            ValidationStatus::Validated => pb::ValidationStatus::Validated,
        } as i32,
        create_time: timestamp(location.create_time),
        parent_location_id: location.parent_id.unwrap_or_default(),
        places: Vec::new(),
        etag: location.version.to_string(),
    }
}

/// An emergency location with its places, for the API.
pub(crate) fn location_with_places(
    (found, places): (EmergencyLocation, Vec<EmergencyLocation>),
) -> pb::EmergencyLocation {
    pb::EmergencyLocation {
        places: places.into_iter().map(location).collect(),
        ..location(found)
    }
}

/// A civic address for the API, its country as `country`.
fn civic_address_out(a: CivicAddress, country: String) -> pb::CivicAddress {
    pb::CivicAddress {
        company_name: a.company_name,
        house_number: a.house_number,
        house_number_suffix: a.house_number_suffix,
        pre_directional: a.pre_directional,
        street_name: a.street_name,
        street_suffix: a.street_suffix,
        post_directional: a.post_directional,
        city: a.city,
        state_or_province: a.state_or_province,
        postal_code: a.postal_code,
        country,
    }
}

/// The verdict on an address, for the API.
pub(crate) fn address_check(check: AddressCheck) -> pb::ValidateEmergencyAddressResponse {
    let country = check.address.country.clone();
    pb::ValidateEmergencyAddressResponse {
        verdict: match check.verdict {
            AddressVerdict::Valid => pb::AddressVerdict::Valid,
            AddressVerdict::Corrected => pb::AddressVerdict::Corrected,
            AddressVerdict::Invalid => pb::AddressVerdict::Invalid,
        } as i32,
        address: Some(civic_address_out(check.address, country)),
        corrections: check
            .corrections
            .into_iter()
            .map(|c| pb::AddressCorrection {
                field: c.field.to_owned(),
                given: c.given,
                corrected: c.corrected,
                required: c.required,
            })
            .collect(),
        problems: check
            .violations
            .into_iter()
            .map(|v| pb::AddressProblem {
                field: v.field,
                description: v.description,
            })
            .collect(),
    }
}

/// A phone number for the API, with its block as it stands at `now`.
pub(crate) fn phone_number_out(number: PhoneNumber, now: SystemTime) -> pb::PhoneNumber {
    let (blocked_state, blocked_until) = match number.block.at(now) {
        Block::Forever => (pb::AssignmentBlockedState::BlockedForever, None),
        Block::Until(until) => (pb::AssignmentBlockedState::BlockedUntil, timestamp(until)),
        Block::None => (pb::AssignmentBlockedState::NotBlocked, None),
    };
    let status = number.assignment_status();
    let country = number.country().as_str().to_owned();
    let (assigned_to, assigned_upn, category) = match number.assignment {
        Some(a) => (
            a.target_id,
            a.target_user_principal_name,
            category_out(a.category),
        ),
        None => (
            String::new(),
            String::new(),
            pb::AssignmentCategory::Unspecified,
        ),
    };
    pb::PhoneNumber {
        phone_number: number.number.canonical(),
        number_type: number_type_out(number.number_type) as i32,
        operator_id: number.operator_id.unwrap_or_default(),
        country,
        city: number.city,
        capabilities: number
            .capabilities
            .iter()
            .map(|c| capability_out(c) as i32)
            .collect(),
        assignment_status: status_out(status) as i32,
        assigned_to,
        assigned_to_user_principal_name: assigned_upn,
        assignment_category: category as i32,
        activation_state: activation_out(number.activation_state) as i32,
        emergency_location_id: number.emergency_location_id.unwrap_or_default(),
        location_update_supported: number.location_update_supported,
        assignment_blocked_state: blocked_state as i32,
        assignment_blocked_until: blocked_until,
        etag: number.version.to_string(),
        create_time: timestamp(number.create_time),
        update_time: timestamp(number.update_time),
        operation_id: number.operation_id.unwrap_or_default(),
        tags: number.tags,
    }
}

/// An operator, with the tenant's consent, for the API.
pub(crate) fn notification_settings(settings: NotificationSettings) -> pb::NotificationSettings {
    pb::NotificationSettings {
        verified_email_domains: settings.verified_email_domains,
        update_time: settings.update_time.and_then(timestamp),
    }
}

pub(crate) fn operator(listed: TenantOperator) -> pb::Operator {
    let op = listed.operator;
    pb::Operator {
        id: op.id,
        display_name: op.display_name,
        countries: op.countries.iter().map(|c| c.as_str().to_owned()).collect(),
        tenant_location_update_allowed: op.tenant_location_update_allowed,
        activation_mode: match op.activation_mode {
            ActivationMode::Synchronous => pb::ActivationMode::Synchronous,
            ActivationMode::Asynchronous => pb::ActivationMode::Asynchronous,
        } as i32,
        enabled: listed.consent.is_some(),
        enabled_countries: listed
            .consent
            .map(|c| c.countries.iter().map(|c| c.as_str().to_owned()).collect())
            .unwrap_or_default(),
    }
}

// ---- assignment ------------------------------------------------------------------------------

/// Reads an optional id field: empty means not given.
pub(crate) fn optional_id(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Reads an assignment category; unspecified means PRIMARY.
pub(crate) fn category(field: &str, value: i32) -> Result<AssignmentCategory, Error> {
    Ok(optional_category(field, value)?.unwrap_or(AssignmentCategory::Primary))
}

/// Reads an assignment category: `None` when unspecified.
fn optional_category(field: &str, value: i32) -> Result<Option<AssignmentCategory>, Error> {
    optional_enum(field, value, |c: pb::AssignmentCategory| match c {
        pb::AssignmentCategory::Unspecified => None,
        pb::AssignmentCategory::Primary => Some(AssignmentCategory::Primary),
        pb::AssignmentCategory::Private => Some(AssignmentCategory::Private),
        pb::AssignmentCategory::Alternate => Some(AssignmentCategory::Alternate),
    })
}

/// Reads the numbers and the tags of a tag call: 1 to 1,000 numbers ([`phone_numbers`]) and 1
/// to 50 tags, each as [`Tag::parse`] reads it, duplicates (case-insensitive) once.
pub(crate) fn tag_edit(
    phone_numbers: &[String],
    tags: &[String],
) -> Result<(Vec<E164>, Vec<Tag>), Error> {
    let numbers = self::phone_numbers(
        "phone_numbers",
        phone_numbers,
        crate::service::MAX_NUMBERS_PER_REQUEST,
    )?;
    if tags.is_empty() || tags.len() > MAX_TAGS_PER_NUMBER {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "tags",
            format!("must have 1 to {MAX_TAGS_PER_NUMBER} tags"),
        ));
    }
    let mut parsed: Vec<Tag> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = Tag::parse(tag).map_err(|why| {
            Error::invalid_field(Reason::InvalidArgument, format!("tags[{i}]"), why)
        })?;
        if !parsed.iter().any(|t| t.key == tag.key) {
            parsed.push(tag);
        }
    }
    Ok((numbers, parsed))
}

/// The filters of an operation listing.
pub(crate) fn operation_filter(
    request: &pb::ListOperationsRequest,
) -> Result<OperationFilter, Error> {
    let number = match request.phone_number.trim() {
        "" => None,
        text => Some(phone_number("phone_number", text)?.canonical()),
    };
    Ok(OperationFilter {
        state: optional_enum("state", request.state, |s: pb::operation::State| {
            s.as_str_name().parse::<OperationState>().ok()
        })?,
        kind: optional_enum("kind", request.kind, |k: pb::AuditAction| {
            k.as_str_name().parse::<AuditAction>().ok()
        })?,
        phone_number: number,
        start_time: time("start_time", request.start_time)?,
        end_time: time("end_time", request.end_time)?,
    })
}

/// A country's emergency readiness, for the API.
pub(crate) fn country_readiness(readiness: CountryReadiness) -> pb::CountryReadiness {
    pb::CountryReadiness {
        country: readiness.country,
        assigned: readiness.assigned,
        without_location: readiness.without_location,
        locked_by_operator: readiness.locked_by_operator,
        update_failed: readiness.update_failed,
    }
}

/// A number not ready for an emergency call, with why, for the API.
pub(crate) fn unready_number(number: PhoneNumber, now: SystemTime) -> pb::UnreadyNumber {
    let problem = match number.readiness_problem() {
        Some(ReadinessProblem::WithoutLocation) => pb::ReadinessProblem::WithoutLocation,
        Some(ReadinessProblem::LockedByOperator) => pb::ReadinessProblem::LockedByOperator,
        Some(ReadinessProblem::UpdateFailed) => pb::ReadinessProblem::LocationUpdateFailed,
        None => pb::ReadinessProblem::Unspecified,
    };
    pb::UnreadyNumber {
        phone_number: Some(phone_number_out(number, now)),
        problem: problem as i32,
    }
}

/// A tag in use, for the API.
pub(crate) fn tag(tag: TagCount) -> pb::Tag {
    pb::Tag {
        name: tag.name,
        phone_number_count: tag.numbers,
    }
}

/// A tenant's configuration for the API.
pub(crate) fn tenant_configuration(configuration: TenantConfiguration) -> pb::TenantConfiguration {
    pb::TenantConfiguration {
        assignment_email_enabled: configuration.assignment_email_enabled,
        unassignment_email_enabled: configuration.unassignment_email_enabled,
        removal_block_days: i32::from(configuration.removal_block_days),
        removal_block_forever: configuration.removal_block_forever,
        etag: configuration.version.to_string(),
        update_time: configuration.update_time.and_then(timestamp),
    }
}

/// What an UpdateTenantConfiguration asks: the fields its mask names (all when it names none).
pub(crate) fn configuration_update(
    request: &pb::UpdateTenantConfigurationRequest,
) -> Result<ConfigurationUpdate, Error> {
    const FIELDS: [&str; 4] = [
        "assignment_email_enabled",
        "unassignment_email_enabled",
        "removal_block_days",
        "removal_block_forever",
    ];
    let given = request.tenant_configuration.clone().unwrap_or_default();
    let paths: Vec<&str> = match &request.update_mask {
        Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
        _ => FIELDS.to_vec(),
    };
    let mut update = ConfigurationUpdate {
        etag: etag("tenant_configuration.etag", &given.etag)?,
        ..ConfigurationUpdate::default()
    };
    for (i, path) in paths.iter().enumerate() {
        let path = path
            .trim()
            .strip_prefix("tenant_configuration.")
            .unwrap_or(path.trim());
        match path {
            "assignment_email_enabled" => {
                update.assignment_email_enabled = Some(given.assignment_email_enabled);
            }
            "unassignment_email_enabled" => {
                update.unassignment_email_enabled = Some(given.unassignment_email_enabled);
            }
            "removal_block_days" => {
                update.removal_block_days = Some(
                    u16::try_from(given.removal_block_days)
                        .ok()
                        .filter(|days| *days <= MAX_BLOCK_DAYS)
                        .ok_or_else(|| {
                            Error::invalid_field(
                                Reason::InvalidArgument,
                                "tenant_configuration.removal_block_days",
                                format!("must be 0 to {MAX_BLOCK_DAYS}"),
                            )
                        })?,
                );
            }
            "removal_block_forever" => {
                update.removal_block_forever = Some(given.removal_block_forever);
            }
            _ => {
                return Err(Error::invalid_field(
                    Reason::InvalidArgument,
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "is not a field of TenantConfiguration that can be updated; the fields are {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(update)
}

/// What a TransferPhoneNumber asks.
pub(crate) fn transfer_request(
    request: &pb::TransferPhoneNumberRequest,
) -> Result<TransferRequest, Error> {
    Ok(TransferRequest {
        number: phone_number("phone_number", &request.phone_number)?,
        from: identity("from_identity", &request.from_identity)?,
        to: identity("to_identity", &request.to_identity)?,
        category: optional_category("assignment_category", request.assignment_category)?,
        notify_user: request.notify_user,
    })
}

/// Reads an etag: empty means none; otherwise what this service wrote (a version number).
pub(crate) fn etag(field: &str, value: &str) -> Result<Option<i64>, Error> {
    match value.trim().trim_matches('"') {
        "" => Ok(None),
        text => text.parse().map(Some).map_err(|_| {
            Error::invalid_field(
                Reason::InvalidArgument,
                field,
                "is not an etag of this service; send back the etag you read",
            )
        }),
    }
}

/// Reads the capability of an acquisition: unspecified means user numbers.
pub(crate) fn acquired_capability(field: &str, value: i32) -> Result<Capability, Error> {
    Ok(optional_enum(field, value, capability_in)?.unwrap_or(Capability::UserAssignment))
}

/// Reads a list of phone numbers, at most `max`, without duplicates.
pub(crate) fn phone_numbers(
    field: &str,
    values: &[String],
    max: usize,
) -> Result<Vec<E164>, Error> {
    if values.is_empty() {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            "is required",
        ));
    }
    if values.len() > max {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            format!("has {} numbers; at most {max} per request", values.len()),
        ));
    }
    let mut numbers: Vec<E164> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let number = phone_number(&format!("{field}[{i}]"), value)?;
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

/// Reads a digits-only code (area code), empty meaning none.
pub(crate) fn digits(field: &str, value: &str, max: usize) -> Result<Option<String>, Error> {
    match value.trim() {
        "" => Ok(None),
        text if text.len() <= max && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(text.to_owned()))
        }
        _ => Err(Error::invalid_field(
            Reason::InvalidArgument,
            field,
            format!("must be 1 to {max} digits"),
        )),
    }
}

/// Reads a number prefix, with or without `+`, into `+digits`.
pub(crate) fn number_prefix(field: &str, value: &str) -> Result<Option<String>, Error> {
    match value.trim() {
        "" => Ok(None),
        prefix => {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(Error::invalid_field(
                    Reason::InvalidArgument,
                    field,
                    "must be 1 to 15 digits, with or without a leading +, like +1425",
                ));
            }
            Ok(Some(format!("+{digits}")))
        }
    }
}

/// Reads an optional timestamp.
pub(crate) fn time(field: &str, value: Option<Timestamp>) -> Result<Option<SystemTime>, Error> {
    value
        .map(|t| {
            SystemTime::try_from(t).map_err(|_| {
                Error::invalid_field(Reason::InvalidArgument, field, "is not a valid time")
            })
        })
        .transpose()
}

/// Reads the numbers of an upload.
pub(crate) fn uploads(numbers: Vec<pb::UploadedNumber>, max: usize) -> Result<Vec<Upload>, Error> {
    if numbers.is_empty() {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "numbers",
            "is required",
        ));
    }
    if numbers.len() > max {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "numbers",
            format!("has {} numbers; at most {max} per request", numbers.len()),
        ));
    }
    let mut uploads: Vec<Upload> = Vec::with_capacity(numbers.len());
    for (i, uploaded) in numbers.into_iter().enumerate() {
        let field = |name: &str| format!("numbers[{i}].{name}");
        let number = phone_number(&field("phone_number"), &uploaded.phone_number)?;
        if number.extension().is_some() {
            return Err(Error::invalid_field(
                Reason::InvalidPhoneNumber,
                field("phone_number"),
                "Operator Connect numbers have no extension",
            ));
        }
        if uploads.iter().any(|u| u.number == number) {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                field("phone_number"),
                format!("{number} is listed twice"),
            ));
        }
        let capabilities = capabilities(&field("capabilities"), &uploaded.capabilities)?;
        if capabilities.is_empty() {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                field("capabilities"),
                "needs at least one capability",
            ));
        }
        uploads.push(Upload {
            number,
            capabilities,
            emergency_location_id: optional_id(&uploaded.emergency_location_id),
            allow_tenant_location_update: uploaded.allow_tenant_location_update,
        });
    }
    Ok(uploads)
}

/// The numbers of an UploadDirectRoutingNumbers: 1 to `max`, each listed once; no
/// capability means every one.
pub(crate) fn direct_routing_uploads(
    numbers: Vec<pb::DirectRoutingNumber>,
    max: usize,
) -> Result<Vec<DirectRoutingUpload>, Error> {
    if numbers.is_empty() || numbers.len() > max {
        return Err(Error::invalid_field(
            Reason::InvalidArgument,
            "numbers",
            format!("has {} numbers; give 1 to {max}", numbers.len()),
        ));
    }
    let mut uploads: Vec<DirectRoutingUpload> = Vec::with_capacity(numbers.len());
    for (i, uploaded) in numbers.into_iter().enumerate() {
        let field = |name: &str| format!("numbers[{i}].{name}");
        let number = phone_number(&field("phone_number"), &uploaded.phone_number)?;
        if uploads.iter().any(|u| u.number == number) {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                field("phone_number"),
                format!("{number} is listed twice"),
            ));
        }
        let capabilities = match capabilities(&field("capabilities"), &uploaded.capabilities)? {
            none if none.is_empty() => Capabilities::all(),
            some => some,
        };
        uploads.push(DirectRoutingUpload {
            number,
            capabilities,
            emergency_location_id: optional_id(&uploaded.emergency_location_id),
        });
    }
    Ok(uploads)
}

/// An audit event of `tenant_id`, for the API.
pub(crate) fn audit_event(event: AuditEvent, tenant_id: &str) -> pb::AuditEvent {
    pb::AuditEvent {
        tenant_id: tenant_id.to_owned(),
        id: event.id,
        time: timestamp(event.time),
        actor: event.actor,
        action: audit_action(event.action) as i32,
        phone_number: event.phone_number.unwrap_or_default(),
        user_id: event.user_id.unwrap_or_default(),
        request_id: event.request_id.unwrap_or_default(),
        before: event.before.and_then(json_struct),
        after: event.after.and_then(json_struct),
    }
}

fn audit_action(action: AuditAction) -> pb::AuditAction {
    match action {
        AuditAction::UpsertUser => pb::AuditAction::UpsertUser,
        AuditAction::CreateEmergencyLocation => pb::AuditAction::CreateEmergencyLocation,
        AuditAction::AssignPhoneNumber => pb::AuditAction::AssignPhoneNumber,
        AuditAction::ChangePhoneNumber => pb::AuditAction::ChangePhoneNumber,
        AuditAction::RemovePhoneNumber => pb::AuditAction::RemovePhoneNumber,
        AuditAction::UpdateEmergencyLocation => pb::AuditAction::UpdateEmergencyLocation,
        AuditAction::AcquirePhoneNumber => pb::AuditAction::AcquirePhoneNumber,
        AuditAction::ReleasePhoneNumber => pb::AuditAction::ReleasePhoneNumber,
        AuditAction::EnableOperator => pb::AuditAction::EnableOperator,
        AuditAction::DisableOperator => pb::AuditAction::DisableOperator,
        AuditAction::UploadPhoneNumber => pb::AuditAction::UploadPhoneNumber,
        AuditAction::OperatorReleasePhoneNumber => pb::AuditAction::OperatorReleasePhoneNumber,
        AuditAction::ProvisioningSucceeded => pb::AuditAction::ProvisioningSucceeded,
        AuditAction::ProvisioningFailed => pb::AuditAction::ProvisioningFailed,
        AuditAction::UpdateNotificationSettings => pb::AuditAction::UpdateNotificationSettings,
        AuditAction::BulkUpsertUsers => pb::AuditAction::BulkUpsertUsers,
        AuditAction::BulkAssignPhoneNumbers => pb::AuditAction::BulkAssignPhoneNumbers,
        AuditAction::BulkRemovePhoneNumbers => pb::AuditAction::BulkRemovePhoneNumbers,
        AuditAction::BulkUpdateEmergencyLocations => pb::AuditAction::BulkUpdateEmergencyLocations,
        AuditAction::SetAssignmentBlock => pb::AuditAction::SetAssignmentBlock,
        AuditAction::RemoveAssignmentBlock => pb::AuditAction::RemoveAssignmentBlock,
        AuditAction::TransferPhoneNumber => pb::AuditAction::TransferPhoneNumber,
        AuditAction::UpdateTenantConfiguration => pb::AuditAction::UpdateTenantConfiguration,
        AuditAction::UpdatePhoneNumberTags => pb::AuditAction::UpdatePhoneNumberTags,
        AuditAction::CreateEmergencyPlace => pb::AuditAction::CreateEmergencyPlace,
        AuditAction::UpdateEmergencyLocationDetails => {
            pb::AuditAction::UpdateEmergencyLocationDetails
        }
        AuditAction::DeleteEmergencyLocation => pb::AuditAction::DeleteEmergencyLocation,
        AuditAction::UploadDirectRoutingNumber => pb::AuditAction::UploadDirectRoutingNumber,
        AuditAction::ReleaseDirectRoutingNumber => pb::AuditAction::ReleaseDirectRoutingNumber,
        AuditAction::RetryOperation => pb::AuditAction::RetryOperation,
        AuditAction::CancelOperation => pb::AuditAction::CancelOperation,
    }
}

fn operation_state(state: OperationState) -> pb::operation::State {
    match state {
        OperationState::Pending => pb::operation::State::Pending,
        OperationState::Running => pb::operation::State::Running,
        OperationState::Succeeded => pb::operation::State::Succeeded,
        OperationState::Failed => pb::operation::State::Failed,
    }
}

/// An operation for the API.
pub(crate) fn operation(operation: Operation) -> pb::Operation {
    pb::Operation {
        id: operation.id,
        kind: audit_action(operation.kind) as i32,
        state: operation_state(operation.state) as i32,
        steps: operation
            .steps
            .into_iter()
            .map(|step| pb::operation::Step {
                phone_number: step.phone_number,
                action: match step.action {
                    ProvisioningAction::Activate => pb::ProvisioningAction::Activate,
                    ProvisioningAction::Deactivate => pb::ProvisioningAction::Deactivate,
                    ProvisioningAction::UpdateLocation => pb::ProvisioningAction::UpdateLocation,
                } as i32,
                provider_id: step.provider_id,
                state: operation_state(step.state) as i32,
                reason: step.reason.unwrap_or_default(),
                attempts: step.attempts,
            })
            .collect(),
        error: operation.error.unwrap_or_default(),
        create_time: timestamp(operation.create_time),
        update_time: timestamp(operation.update_time),
        progress: None,
        results: Vec::new(),
        next_page_token: String::new(),
    }
}

/// A JSON object as a `google.protobuf.Struct`.
fn json_struct(value: serde_json::Value) -> Option<prost_types::Struct> {
    match json_value(value).kind {
        Some(prost_types::value::Kind::StructValue(object)) => Some(object),
        _ => None,
    }
}

fn json_value(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, json_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// What an AssignPhoneNumber (or an item of a bulk one) asks.
pub(crate) fn assign_request(
    request: &pb::AssignPhoneNumberRequest,
) -> Result<AssignRequest, Error> {
    Ok(AssignRequest {
        identity: identity("identity", &request.identity)?,
        number: phone_number("phone_number", &request.phone_number)?,
        number_type: number_type("phone_number_type", request.phone_number_type)?,
        emergency_location_id: optional_id(&request.emergency_location_id),
        category: category("assignment_category", request.assignment_category)?,
        notify_user: request.notify_user,
    })
}

/// What a RemovePhoneNumber (or an item of a bulk one) asks.
pub(crate) fn remove_request(
    request: &pb::RemovePhoneNumberRequest,
) -> Result<RemoveRequest, Error> {
    let number = match (request.phone_number.trim(), request.remove_all) {
        ("", true) => None,
        ("", false) => {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "phone_number",
                "is required, unless remove_all is set",
            ));
        }
        (_, true) => {
            return Err(Error::invalid_field(
                Reason::InvalidArgument,
                "remove_all",
                "cannot be combined with phone_number",
            ));
        }
        (text, false) => Some(phone_number("phone_number", text)?),
    };
    Ok(RemoveRequest {
        identity: identity("identity", &request.identity)?,
        number,
        number_type: number_type("phone_number_type", request.phone_number_type)?,
        block_days: request.block_days,
        block_forever: request.block_forever,
        notify_user: request.notify_user,
    })
}

/// What an UpdateEmergencyLocation (or an item of a bulk one) asks.
pub(crate) fn location_update(
    request: &pb::UpdateEmergencyLocationRequest,
) -> Result<LocationUpdate, Error> {
    Ok(LocationUpdate {
        number: phone_number("phone_number", &request.phone_number)?,
        emergency_location_id: optional_id(&request.emergency_location_id),
        etag: etag("etag", &request.etag)?,
    })
}

/// What a SetAssignmentBlock asks.
pub(crate) fn block_request(
    request: &pb::SetAssignmentBlockRequest,
) -> Result<BlockRequest, Error> {
    Ok(BlockRequest {
        number: phone_number("phone_number", &request.phone_number)?,
        days: request.block_days,
        forever: request.block_forever,
        etag: etag("etag", &request.etag)?,
    })
}

/// A bulk operation, with a page of its item results, for the API.
pub(crate) fn bulk_operation(
    operation: Operation,
    results: Vec<ItemResult>,
    next_page_token: String,
) -> pb::Operation {
    let progress = operation.progress.clone().map(|p| pb::BulkProgress {
        total: p.total,
        done: p.done(),
        succeeded: p.succeeded,
        failed: p.failed,
        validate_only: p.validate_only,
    });
    pb::Operation {
        progress,
        results: results.into_iter().map(item_result).collect(),
        next_page_token,
        ..self::operation(operation)
    }
}

fn item_result(result: ItemResult) -> pb::ItemResult {
    let (status, operation_id) = match result.outcome {
        ItemOutcome::Succeeded { operation_id } => (
            tonic_types::pb::Status {
                code: tonic::Code::Ok as i32,
                ..Default::default()
            },
            operation_id.unwrap_or_default(),
        ),
        ItemOutcome::Failed(failure) => (super::status::item_status(&failure), String::new()),
    };
    pb::ItemResult {
        index: i32::try_from(result.index).unwrap_or(i32::MAX),
        request_id: result.request_id.unwrap_or_default(),
        status: Some(status),
        operation_id,
    }
}
