//! The rules of assigning, changing and removing a number, as pure functions.
//!
//! [`check_assignment`] applies the rules of the seeds (and DESIGN.md section 2) in their
//! order, each refusing with its own reason and a message that names the number, the user and
//! whatever differs. The provider's own rules (rule 8) are the provider's to check.

use std::time::SystemTime;

use numbers_provider::{AssignmentCategory, Capability, NumberType, TargetKind};

use super::{
    ActivationState, Block, Capabilities, E164, EmergencyLocation, License, PhoneNumber, User,
    ValidationStatus,
};
use crate::error::{Error, Reason, Result};

/// What an assignment is checked against: the user, the number and what the request asks.
#[derive(Debug)]
pub struct AssignmentCandidate<'a> {
    /// The target.
    pub user: &'a User,
    /// The numbers the target holds now.
    pub held: &'a [PhoneNumber],
    /// The number to assign, as in the inventory.
    pub number: &'a PhoneNumber,
    /// The type the request says the number has, if it says.
    pub requested_type: Option<NumberType>,
    /// The number's role for the target.
    pub category: AssignmentCategory,
    /// The emergency location the request registers.
    pub location: LocationChoice<'a>,
    /// For a change: the primary number being replaced.
    pub replacing: Option<&'a PhoneNumber>,
    /// Assigned numbers sharing the number's base, when its provider declares that a base and
    /// its extensions exclude each other.
    pub same_base: &'a [PhoneNumber],
    /// The current time, for blocks.
    pub now: SystemTime,
}

/// The emergency location an assignment registers.
#[derive(Clone, Copy, Debug)]
pub enum LocationChoice<'a> {
    /// The request names none: the number keeps its own.
    Keep,
    /// The request names this one.
    Use(&'a EmergencyLocation),
    /// The request names an id the tenant does not have.
    Unknown(&'a str),
}

/// Checks every rule of an assignment, in order, stopping at the first that refuses.
pub fn check_assignment(c: &AssignmentCandidate<'_>) -> Result<()> {
    check_number_type(c.number, c.requested_type)?;
    check_licences(c.user, c.number)?;
    check_on_premises_line(c.user)?;
    check_capability(c.user, c.number)?;
    check_number_is_free(c.user, c.number, c.same_base)?;
    check_not_blocked(c.number, c.now)?;
    check_not_pending(c.number)?;
    check_one_primary(c.user, c.held, c.category, c.replacing)?;
    check_usage_location(c.user, c.number, c.category)?;
    match c.location {
        LocationChoice::Keep => Ok(()),
        LocationChoice::Use(location) => check_emergency_location(location, &c.number.number),
        LocationChoice::Unknown(id) => Err(Error::new(
            Reason::EmergencyLocationNotFound,
            format!("no emergency location {id} in this tenant"),
        )
        .with("emergencyLocationId", id)),
    }
}

/// A number given with a type must be of that type; the inventory knows the truth.
pub fn check_number_type(number: &PhoneNumber, requested: Option<NumberType>) -> Result<()> {
    match requested {
        Some(requested) if requested != number.number_type => {
            let of_operator = number
                .operator_id
                .as_deref()
                .map(|op| format!(" of operator {op}"))
                .unwrap_or_default();
            Err(Error::new(
                Reason::NumberTypeMismatch,
                format!(
                    "{} is a {}{of_operator} number, not {}",
                    number.number, number.number_type, requested
                ),
            )
            .with("phoneNumber", &number.number)
            .with("numberType", number.number_type)
            .with("requestedNumberType", requested))
        }
        _ => Ok(()),
    }
}

/// The licences a number needs on a target: Teams Phone always (the resource account licence
/// counts for resource accounts), and a Calling Plan for Calling Plan numbers of people.
pub fn required_licences(kind: TargetKind, number_type: NumberType) -> Vec<License> {
    let mut needed = vec![License::PhoneSystem];
    if number_type == NumberType::CallingPlan && kind == TargetKind::User {
        needed.push(License::CallingPlan);
    }
    needed
}

/// The target holds the licences the number needs.
pub(super) fn check_licences(user: &User, number: &PhoneNumber) -> Result<()> {
    let needed = required_licences(user.kind, number.number_type);
    let missing: Vec<License> = needed
        .into_iter()
        .filter(|license| {
            !(user.licenses.contains(*license)
                || (*license == License::PhoneSystem
                    && user.kind == TargetKind::ResourceAccount
                    && user.licenses.contains(License::PhoneSystemVirtualUser)))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let missing_names = missing
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    Err(Error::new(
        Reason::LicenseRequired,
        format!(
            "{} lacks the licences to hold a {} number: assign {missing_names} first",
            user.user_principal_name, number.number_type
        ),
    )
    .with("user", &user.user_principal_name)
    .with("numberType", number.number_type)
    .with("missingLicenses", missing_names))
}

/// No number is synchronised from the on-premises directory for the target.
pub(super) fn check_on_premises_line(user: &User) -> Result<()> {
    match &user.on_premises_line_uri {
        None => Ok(()),
        Some(line) => Err(Error::new(
            Reason::OnPremisesNumberConflict,
            format!(
                "{} has the number {line} set in the on-premises directory and synchronised; \
                 clear it there and let the change synchronise before assigning a number here",
                user.user_principal_name
            ),
        )
        .with("user", &user.user_principal_name)
        .with("onPremisesLineUri", line)),
    }
}

/// The number may be assigned to this kind of target.
pub(super) fn check_capability(user: &User, number: &PhoneNumber) -> Result<()> {
    let needed = Capability::required_for(user.kind);
    if number.capabilities.contains(needed) {
        return Ok(());
    }
    Err(Error::new(
        Reason::CapabilityMismatch,
        format!(
            "{} cannot be assigned to {} ({}): it is for {}",
            number.number,
            user.user_principal_name,
            user.kind,
            describe(number.capabilities)
        ),
    )
    .with("phoneNumber", &number.number)
    .with("requiredCapability", needed))
}

fn describe(capabilities: Capabilities) -> String {
    let names: Vec<&str> = capabilities.iter().map(Capability::as_str).collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// The number is held by nobody, and no number sharing its base is held by someone else where
/// the provider says a base and its extensions exclude each other.
pub(super) fn check_number_is_free(
    user: &User,
    number: &PhoneNumber,
    same_base: &[PhoneNumber],
) -> Result<()> {
    if let Some(holder) = &number.assignment {
        return Err(Error::new(
            Reason::NumberAlreadyAssigned,
            format!(
                "{} is already assigned to {}",
                number.number, holder.target_user_principal_name
            ),
        )
        .with("phoneNumber", &number.number)
        .with("assignedTo", &holder.target_user_principal_name));
    }
    let conflict = same_base.iter().find(|other| {
        other.number != number.number
            && other.number.extension().is_some() != number.number.extension().is_some()
            && other
                .assignment
                .as_ref()
                .is_some_and(|a| a.target_id != user.id)
    });
    if let Some(other) = conflict {
        let holder = other
            .assignment
            .as_ref()
            .map(|a| a.target_user_principal_name.as_str())
            .unwrap_or_default();
        let relation = if number.number.extension().is_some() {
            "its base number"
        } else {
            "its extension"
        };
        return Err(Error::new(
            Reason::NumberAlreadyAssigned,
            format!(
                "{} cannot be assigned: {relation} {} is assigned to {holder}, and a base number \
                 and its extensions must go to the same user",
                number.number, other.number
            ),
        )
        .with("phoneNumber", &number.number)
        .with("conflictingPhoneNumber", &other.number)
        .with("assignedTo", holder));
    }
    Ok(())
}

/// The number is not blocked from assignment.
pub(super) fn check_not_blocked(number: &PhoneNumber, now: SystemTime) -> Result<()> {
    let until = match number.block {
        Block::None => return Ok(()),
        Block::Until(until) if until <= now => return Ok(()),
        Block::Until(until) => format!("until {}", humantime::format_rfc3339_seconds(until)),
        Block::Forever => "until the block is lifted".to_owned(),
    };
    Err(Error::new(
        Reason::NumberBlocked,
        format!("{} is blocked from assignment {until}", number.number),
    )
    .with("phoneNumber", &number.number)
    .with("blocked", until))
}

/// The provider has confirmed the number's last change.
pub fn check_not_pending(number: &PhoneNumber) -> Result<()> {
    match number.activation_state {
        ActivationState::AssignmentPending | ActivationState::UpdatePending => Err(Error::new(
            Reason::ActivationPending,
            format!(
                "{} has a change waiting for its provider ({}); try again when it is done",
                number.number, number.activation_state
            ),
        )
        .with("phoneNumber", &number.number)
        .with("activationState", number.activation_state)),
        _ => Ok(()),
    }
}

/// A target holds at most one primary number; changing one replaces it.
pub(super) fn check_one_primary(
    user: &User,
    held: &[PhoneNumber],
    category: AssignmentCategory,
    replacing: Option<&PhoneNumber>,
) -> Result<()> {
    if category != AssignmentCategory::Primary {
        return Ok(());
    }
    let current = held.iter().find(|n| {
        n.assignment
            .as_ref()
            .is_some_and(|a| a.category == AssignmentCategory::Primary)
            && replacing.is_none_or(|r| r.number != n.number)
    });
    match current {
        None => Ok(()),
        Some(current) => Err(Error::new(
            Reason::UserAlreadyHasPrimaryNumber,
            format!(
                "{} already has the primary number {}; use ChangePhoneNumber to replace it, or \
                 assign this one as PRIVATE or ALTERNATE",
                user.user_principal_name, current.number
            ),
        )
        .with("user", &user.user_principal_name)
        .with("primaryPhoneNumber", &current.number)),
    }
}

/// A primary or private number is of the country where the user uses the service; an
/// alternate number may be of any country.
pub(super) fn check_usage_location(
    user: &User,
    number: &PhoneNumber,
    category: AssignmentCategory,
) -> Result<()> {
    if category == AssignmentCategory::Alternate {
        return Ok(());
    }
    let country = number.country();
    match user.usage_location {
        Some(usage) if usage == country => Ok(()),
        Some(usage) => Err(Error::new(
            Reason::UsageLocationMismatch,
            format!(
                "the country of {}'s usage location ({usage}) and the country of {} ({country}) \
                 do not match",
                user.user_principal_name, number.number
            ),
        )
        .with("user", &user.user_principal_name)
        .with("usageLocation", usage)
        .with("phoneNumber", &number.number)
        .with("numberCountry", country)),
        None => Err(Error::new(
            Reason::UsageLocationMismatch,
            format!(
                "{} has no usage location; set it to {country} to assign {}",
                user.user_principal_name, number.number
            ),
        )
        .with("user", &user.user_principal_name)
        .with("phoneNumber", &number.number)
        .with("numberCountry", country)),
    }
}

/// An emergency location registered with a number is validated and in the number's country.
pub fn check_emergency_location(location: &EmergencyLocation, number: &E164) -> Result<()> {
    if location.validation_status != ValidationStatus::Validated {
        return Err(Error::new(
            Reason::EmergencyLocationNotValidated,
            format!(
                "emergency location {} ({}) is not validated; create a validated location",
                location.id,
                location.formatted()
            ),
        )
        .with("emergencyLocationId", &location.id));
    }
    if location.country != number.country() {
        return Err(Error::new(
            Reason::LocationCountryMismatch,
            format!(
                "emergency location {} is in {} but {number} is a number of {}",
                location.id,
                location.country,
                number.country()
            ),
        )
        .with("emergencyLocationId", &location.id)
        .with("locationCountry", location.country)
        .with("phoneNumber", number)
        .with("numberCountry", number.country()));
    }
    Ok(())
}

/// A number removed from a user is one the user holds.
pub fn check_held_by(user: &User, number: &PhoneNumber) -> Result<()> {
    match &number.assignment {
        Some(a) if a.target_id == user.id => Ok(()),
        Some(a) => Err(Error::new(
            Reason::NumberNotAssignedToUser,
            format!(
                "{} is assigned to {}, not to {}",
                number.number, a.target_user_principal_name, user.user_principal_name
            ),
        )
        .with("phoneNumber", &number.number)
        .with("user", &user.user_principal_name)),
        None => Err(Error::new(
            Reason::NumberNotAssignedToUser,
            format!(
                "{} is not assigned to {}",
                number.number, user.user_principal_name
            ),
        )
        .with("phoneNumber", &number.number)
        .with("user", &user.user_principal_name)),
    }
}

/// The caller's etag, when it sent one, is the number's current version.
pub fn check_etag(number: &PhoneNumber, etag: Option<i64>) -> Result<()> {
    match etag {
        Some(etag) if etag != number.version => Err(Error::new(
            Reason::EtagMismatch,
            format!(
                "{} changed since it was read (etag {etag}, now {}); read it again and retry",
                number.number, number.version
            ),
        )
        .with("phoneNumber", &number.number)
        .with("etag", number.version)),
        _ => Ok(()),
    }
}

/// A block may be set on the number at `now`: nobody holds it, its provider has confirmed its
/// last change, and no block is in effect (one is lifted before another is set, as
/// Set-CsPhoneNumberAssignmentBlock requires).
pub fn check_blockable(number: &PhoneNumber, now: SystemTime) -> Result<()> {
    if let Some(assignment) = &number.assignment {
        return Err(Error::new(
            Reason::NumberAssigned,
            format!(
                "{} is assigned to {}; remove it first (RemovePhoneNumber can block it as it \
                 removes it)",
                number.number, assignment.target_user_principal_name
            ),
        )
        .with("phoneNumber", &number.number)
        .with("assignedTo", &assignment.target_user_principal_name));
    }
    check_not_pending(number)?;
    let blocked = match number.block.at(now) {
        Block::None => return Ok(()),
        Block::Until(until) => format!("until {}", humantime::format_rfc3339_seconds(until)),
        Block::Forever => "until the block is lifted".to_owned(),
    };
    Err(Error::new(
        Reason::NumberBlocked,
        format!(
            "{} is already blocked from assignment {blocked}; lift the block with \
             RemoveAssignmentBlock before setting another",
            number.number
        ),
    )
    .with("phoneNumber", &number.number)
    .with("blocked", blocked))
}

/// The block a removal asks for: `days` (1 to 365) or `forever`, not both.
pub fn block_for(days: i32, forever: bool, now: SystemTime) -> Result<Block> {
    match (days, forever) {
        (0, false) => Ok(Block::None),
        (0, true) => Ok(Block::Forever),
        (_, true) => Err(Error::invalid_field(
            Reason::InvalidArgument,
            "block_days",
            "cannot be combined with block_forever",
        )),
        (1..=365, false) => Ok(Block::Until(
            now + std::time::Duration::from_secs(u64::from(days.unsigned_abs()) * 86_400),
        )),
        _ => Err(Error::invalid_field(
            Reason::InvalidArgument,
            "block_days",
            "must be 1 to 365",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{Assignment, Country, Licenses};

    fn user(kind: TargetKind, licenses: &[License], usage: &str) -> User {
        User {
            id: "u1".into(),
            user_principal_name: "john@contoso.com".into(),
            sip_address: "sip:john@contoso.com".into(),
            display_name: "John".into(),
            usage_location: Country::parse(usage).ok(),
            kind,
            licenses: licenses.iter().copied().collect::<Licenses>(),
            enterprise_voice_enabled: false,
            on_premises_line_uri: None,
            phone_numbers: vec![],
            version: 1,
            create_time: SystemTime::UNIX_EPOCH,
            update_time: SystemTime::UNIX_EPOCH,
        }
    }

    fn john() -> User {
        user(
            TargetKind::User,
            &[License::PhoneSystem, License::CallingPlan],
            "US",
        )
    }

    fn number(text: &str, number_type: NumberType) -> PhoneNumber {
        PhoneNumber {
            number: E164::parse(text).unwrap(),
            number_type,
            operator_id: None,
            city: String::new(),
            capabilities: [Capability::UserAssignment].into_iter().collect(),
            assignment: None,
            activation_state: ActivationState::Activated,
            emergency_location_id: None,
            location_update_supported: true,
            block: Block::None,
            operation_id: None,
            tags: Vec::new(),
            version: 1,
            create_time: SystemTime::UNIX_EPOCH,
            update_time: SystemTime::UNIX_EPOCH,
        }
    }

    fn held_by(mut n: PhoneNumber, id: &str, category: AssignmentCategory) -> PhoneNumber {
        n.assignment = Some(Assignment {
            target_id: id.into(),
            target_user_principal_name: format!("{id}@contoso.com"),
            target_kind: TargetKind::User,
            category,
        });
        n
    }

    fn reason(result: Result<()>) -> Reason {
        result.expect_err("the rule should refuse").reason()
    }

    #[test]
    fn the_inventory_type_wins() {
        let n = number("+14255550101", NumberType::CallingPlan);
        assert!(check_number_type(&n, None).is_ok());
        assert!(check_number_type(&n, Some(NumberType::CallingPlan)).is_ok());
        let error = check_number_type(&n, Some(NumberType::OperatorConnect)).unwrap_err();
        assert_eq!(error.reason(), Reason::NumberTypeMismatch);
        assert!(error.message().contains("is a CALLING_PLAN"), "{error}");
    }

    #[test]
    fn calling_plan_numbers_need_a_calling_plan_licence_for_people() {
        let cp = number("+14255550101", NumberType::CallingPlan);
        let dr = number("+14255550101", NumberType::DirectRouting);
        let phone_system_only = user(TargetKind::User, &[License::PhoneSystem], "US");
        assert_eq!(
            reason(check_licences(&phone_system_only, &cp)),
            Reason::LicenseRequired
        );
        assert!(check_licences(&phone_system_only, &dr).is_ok());
        assert_eq!(
            reason(check_licences(&user(TargetKind::User, &[], "US"), &dr)),
            Reason::LicenseRequired
        );
        let resource_account = user(
            TargetKind::ResourceAccount,
            &[License::PhoneSystemVirtualUser],
            "US",
        );
        assert!(check_licences(&resource_account, &cp).is_ok());
        assert!(check_licences(&john(), &cp).is_ok());
    }

    #[test]
    fn on_premises_numbers_block_cloud_assignment() {
        let mut hybrid = john();
        assert!(check_on_premises_line(&hybrid).is_ok());
        hybrid.on_premises_line_uri = Some("tel:+14255550199".into());
        assert_eq!(
            reason(check_on_premises_line(&hybrid)),
            Reason::OnPremisesNumberConflict
        );
    }

    #[test]
    fn capabilities_fit_the_target_kind() {
        let user_number = number("+14255550101", NumberType::CallingPlan);
        let mut service_number = number("+18005550100", NumberType::CallingPlan);
        service_number.capabilities = [Capability::VoiceApplicationAssignment]
            .into_iter()
            .collect();
        let ra = user(
            TargetKind::ResourceAccount,
            &[License::PhoneSystemVirtualUser],
            "US",
        );
        assert!(check_capability(&john(), &user_number).is_ok());
        assert_eq!(
            reason(check_capability(&john(), &service_number)),
            Reason::CapabilityMismatch
        );
        assert!(check_capability(&ra, &service_number).is_ok());
        assert_eq!(
            reason(check_capability(&ra, &user_number)),
            Reason::CapabilityMismatch
        );
    }

    #[test]
    fn a_number_has_one_holder() {
        let free = number("+14255550101", NumberType::CallingPlan);
        assert!(check_number_is_free(&john(), &free, &[]).is_ok());
        let taken = held_by(free, "u2", AssignmentCategory::Primary);
        let error = check_number_is_free(&john(), &taken, &[]).unwrap_err();
        assert_eq!(error.reason(), Reason::NumberAlreadyAssigned);
        assert!(error.message().contains("u2@contoso.com"), "{error}");
    }

    #[test]
    fn a_base_number_and_its_extensions_go_to_one_user() {
        let base = number("+14255388701", NumberType::DirectRouting);
        let ext = |e: &str| number(&format!("+14255388701;ext={e}"), NumberType::DirectRouting);
        let others_ext = held_by(ext("100"), "u2", AssignmentCategory::Primary);
        assert_eq!(
            reason(check_number_is_free(
                &john(),
                &base,
                std::slice::from_ref(&others_ext)
            )),
            Reason::NumberAlreadyAssigned
        );
        // Extensions of one base are different numbers.
        assert!(check_number_is_free(&john(), &ext("200"), &[others_ext]).is_ok());
        let others_base = held_by(base.clone(), "u2", AssignmentCategory::Primary);
        assert_eq!(
            reason(check_number_is_free(&john(), &ext("200"), &[others_base])),
            Reason::NumberAlreadyAssigned
        );
        // The same user may hold both.
        let own_ext = held_by(ext("100"), "u1", AssignmentCategory::Private);
        assert!(check_number_is_free(&john(), &base, &[own_ext]).is_ok());
    }

    #[test]
    fn blocks_hold_until_they_end() {
        let now = SystemTime::now();
        let mut n = number("+14255550101", NumberType::CallingPlan);
        n.block = Block::Until(now + Duration::from_secs(60));
        assert_eq!(reason(check_not_blocked(&n, now)), Reason::NumberBlocked);
        n.block = Block::Until(now - Duration::from_secs(60));
        assert!(check_not_blocked(&n, now).is_ok());
        n.block = Block::Forever;
        assert_eq!(reason(check_not_blocked(&n, now)), Reason::NumberBlocked);
    }

    #[test]
    fn pending_numbers_wait_for_their_provider() {
        let mut n = number("+14255550101", NumberType::OperatorConnect);
        n.activation_state = ActivationState::AssignmentPending;
        assert_eq!(reason(check_not_pending(&n)), Reason::ActivationPending);
        n.activation_state = ActivationState::AssignmentFailed;
        assert!(check_not_pending(&n).is_ok());
    }

    #[test]
    fn one_primary_number_per_user() {
        let current = held_by(
            number("+14255550101", NumberType::CallingPlan),
            "u1",
            AssignmentCategory::Primary,
        );
        let held = [current.clone()];
        assert_eq!(
            reason(check_one_primary(
                &john(),
                &held,
                AssignmentCategory::Primary,
                None
            )),
            Reason::UserAlreadyHasPrimaryNumber
        );
        assert!(check_one_primary(&john(), &held, AssignmentCategory::Private, None).is_ok());
        assert!(
            check_one_primary(&john(), &held, AssignmentCategory::Primary, Some(&current)).is_ok()
        );
    }

    #[test]
    fn the_number_country_is_the_usage_location() {
        let us = number("+14255550101", NumberType::CallingPlan);
        let fr = number("+33140000001", NumberType::CallingPlan);
        assert!(check_usage_location(&john(), &us, AssignmentCategory::Primary).is_ok());
        let error = check_usage_location(&john(), &fr, AssignmentCategory::Primary).unwrap_err();
        assert_eq!(error.reason(), Reason::UsageLocationMismatch);
        assert!(
            error.message().contains("(US)") && error.message().contains("(FR)"),
            "{error}"
        );
        assert!(check_usage_location(&john(), &fr, AssignmentCategory::Alternate).is_ok());
        let nowhere = user(TargetKind::User, &[License::PhoneSystem], "");
        assert_eq!(
            reason(check_usage_location(
                &nowhere,
                &us,
                AssignmentCategory::Primary
            )),
            Reason::UsageLocationMismatch
        );
    }

    #[test]
    fn emergency_locations_are_validated_and_in_the_numbers_country() {
        let location = |status, country: &str| EmergencyLocation {
            id: "loc".into(),
            address: Default::default(),
            country: Country::parse(country).unwrap(),
            description: String::new(),
            validation_status: status,
            create_time: SystemTime::UNIX_EPOCH,
            parent_id: None,
            version: 1,
        };
        let us = E164::parse("+14255550101").unwrap();
        assert!(
            check_emergency_location(&location(ValidationStatus::Validated, "US"), &us).is_ok()
        );
        assert_eq!(
            reason(check_emergency_location(
                &location(ValidationStatus::NotValidated, "US"),
                &us
            )),
            Reason::EmergencyLocationNotValidated
        );
        assert_eq!(
            reason(check_emergency_location(
                &location(ValidationStatus::Validated, "FR"),
                &us
            )),
            Reason::LocationCountryMismatch
        );
    }

    #[test]
    fn removals_take_numbers_the_user_holds() {
        let n = number("+14255550101", NumberType::CallingPlan);
        assert_eq!(
            reason(check_held_by(&john(), &n)),
            Reason::NumberNotAssignedToUser
        );
        let held = held_by(n.clone(), "u1", AssignmentCategory::Primary);
        assert!(check_held_by(&john(), &held).is_ok());
        let others = held_by(n, "u2", AssignmentCategory::Primary);
        assert_eq!(
            reason(check_held_by(&john(), &others)),
            Reason::NumberNotAssignedToUser
        );
    }

    #[test]
    fn blocks_last_one_to_365_days_or_for_ever() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(block_for(0, false, now).unwrap(), Block::None);
        assert_eq!(block_for(0, true, now).unwrap(), Block::Forever);
        assert_eq!(
            block_for(2, false, now).unwrap(),
            Block::Until(now + Duration::from_secs(2 * 86_400))
        );
        for (days, forever) in [(366, false), (-1, false), (3, true)] {
            assert_eq!(
                block_for(days, forever, now).unwrap_err().reason(),
                Reason::InvalidArgument
            );
        }
    }
}
