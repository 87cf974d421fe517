//! Phone numbers: the E.164 value, parsed with libphonenumber, and the inventory record.

use std::fmt;
use std::time::SystemTime;

use numbers_provider::{AssignmentCategory, Capabilities, NumberType, TargetKind, spelled_enum};
use serde::{Deserialize, Serialize};

use super::Country;

/// Most digits an E.164 number has (ITU-T E.164, section 6).
const MAX_E164_DIGITS: usize = 15;
/// Most digits of a Direct Routing extension.
const MAX_EXTENSION_DIGITS: usize = 10;

/// A valid telephone number in E.164, with the country it belongs to, and for Direct Routing
/// an optional extension (`+14255388701;ext=1001`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct E164 {
    base: String,
    extension: Option<String>,
    country: Country,
}

impl E164 {
    /// Parses a number given with or without `+` (`+14255550101`, `14255550101`,
    /// `+1 (425) 555-0101`), with an optional `;ext=` suffix. The country code is required;
    /// the `tel:` prefix, letters and national formats are refused with a reason.
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is required: give the number in E.164, like +14255550101".into());
        }
        if input.len() > 64 {
            return Err("is too long to be a phone number".into());
        }
        if input.to_ascii_lowercase().starts_with("tel:") {
            return Err(format!(
                "{input:?} has a tel: prefix; give the number without it, like +14255550101"
            ));
        }

        let (base, extension) = split_extension(input)?;
        if let Some(bad) = base
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.')))
        {
            return Err(format!(
                "{input:?} contains {bad:?}; a phone number has only digits, an optional leading + \
                 and an optional ;ext= suffix"
            ));
        }
        if base.rfind('+').is_some_and(|at| at > 0) {
            return Err(format!("{input:?} has a + that is not at the start"));
        }
        let digits: String = base.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(format!("{input:?} has no digits"));
        }
        if digits.len() > MAX_E164_DIGITS {
            return Err(format!(
                "{input:?} has {} digits; E.164 numbers have at most {MAX_E164_DIGITS}",
                digits.len()
            ));
        }

        let e164 = format!("+{digits}");
        let parsed = phonenumber::parse(None, &e164).map_err(|_| {
            format!("{input:?} does not start with a valid country code, like +1 or +44")
        })?;
        let region = parsed.country().id();
        if !parsed.is_valid() {
            return Err(match region {
                Some(region) => {
                    format!("{input:?} is not a valid number for {}", region.as_ref())
                }
                None => format!(
                    "{input:?} is not a valid phone number; include the country code, \
                     like +14255550101"
                ),
            });
        }
        let Some(region) = region else {
            return Err(format!(
                "{input:?} belongs to no country (a global service number)"
            ));
        };

        Ok(Self {
            base: parsed.format().mode(phonenumber::Mode::E164).to_string(),
            extension,
            country: Country::from_region(region),
        })
    }

    /// Rebuilds a number from its parts without consulting libphonenumber again: the
    /// parts were checked when the number was first parsed.
    pub(crate) fn from_parts(
        canonical: &str,
        base: &str,
        country: Country,
    ) -> Result<Self, String> {
        let extension = match canonical.strip_prefix(base) {
            Some("") => None,
            Some(rest) => match rest.strip_prefix(";ext=") {
                Some(ext) if !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(ext.to_owned())
                }
                _ => return Err(format!("{canonical:?} has a malformed extension")),
            },
            None => return Err(format!("{canonical:?} does not start with {base:?}")),
        };
        if !base.starts_with('+') || !base[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{base:?} is not an E.164 number"));
        }
        Ok(Self {
            base: base.to_owned(),
            extension,
            country,
        })
    }

    /// The number without extension, such as `+14255388701`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The Direct Routing extension, such as `1001`.
    pub fn extension(&self) -> Option<&str> {
        self.extension.as_deref()
    }

    /// The country the number belongs to.
    pub fn country(&self) -> Country {
        self.country
    }

    /// The full canonical form: E.164 with `+`, then `;ext=` and the extension if any.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)?;
        if let Some(extension) = &self.extension {
            write!(f, ";ext={extension}")?;
        }
        Ok(())
    }
}

/// Splits `+14255388701;ext=1001` into the base and the extension digits.
fn split_extension(input: &str) -> Result<(&str, Option<String>), String> {
    let Some(at) = input.find(';') else {
        return Ok((input, None));
    };
    let (base, rest) = input.split_at(at);
    let Some(extension) = rest
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case(";ext="))
        .map(|_| &rest[5..])
    else {
        return Err(format!(
            "{input:?} has an unsupported parameter; only ;ext= is allowed"
        ));
    };
    if extension.is_empty()
        || extension.len() > MAX_EXTENSION_DIGITS
        || !extension.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{input:?} has a bad extension; ;ext= takes 1 to {MAX_EXTENSION_DIGITS} digits"
        ));
    }
    Ok((base.trim_end(), Some(extension.to_owned())))
}

spelled_enum! {
    /// Whether the provider has put a number's last change into effect.
    ActivationState, "activation state" {
        /// The provider confirmed the number's current state.
        Activated = "ACTIVATED",
        /// An assignment waits for the provider.
        AssignmentPending = "ASSIGNMENT_PENDING",
        /// The provider refused or failed an assignment.
        AssignmentFailed = "ASSIGNMENT_FAILED",
        /// An update waits for the provider.
        UpdatePending = "UPDATE_PENDING",
        /// The provider refused or failed an update.
        UpdateFailed = "UPDATE_FAILED",
    }
}

spelled_enum! {
    /// Whom a number is assigned to.
    AssignmentStatus, "assignment status" {
        /// Nobody.
        Unassigned = "UNASSIGNED",
        /// A user.
        UserAssigned = "USER_ASSIGNED",
        /// A resource account.
        VoiceApplicationAssigned = "VOICE_APPLICATION_ASSIGNED",
    }
}

impl ActivationState {
    /// Whether a number in this state is in service for its holder: activated, or activated
    /// and waiting for (or refused) an update since.
    pub fn in_service(self) -> bool {
        matches!(
            self,
            ActivationState::Activated
                | ActivationState::UpdatePending
                | ActivationState::UpdateFailed
        )
    }
}

impl AssignmentStatus {
    /// The status of a number held by a target of `kind`.
    pub fn of(kind: TargetKind) -> Self {
        match kind {
            TargetKind::User => AssignmentStatus::UserAssigned,
            TargetKind::ResourceAccount => AssignmentStatus::VoiceApplicationAssigned,
        }
    }
}

/// Who holds a number, and in what role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The holder's user id.
    pub target_id: String,
    /// The holder's user principal name.
    pub target_user_principal_name: String,
    /// Whether the holder is a person or a resource account.
    pub target_kind: TargetKind,
    /// The number's role for the holder.
    pub category: AssignmentCategory,
}

/// Whether a number refuses assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// The number may be assigned.
    None,
    /// The number refuses assignment until then.
    Until(SystemTime),
    /// The number refuses assignment until the block is lifted.
    Forever,
}

impl Block {
    /// The block as it stands at `now`: a block whose days have passed is none.
    pub fn at(self, now: SystemTime) -> Block {
        match self {
            Block::Until(until) if until <= now => Block::None,
            block => block,
        }
    }
}

/// The block states a listing can ask for; a block is judged as it stands at the listing's
/// time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Numbers that may be assigned.
    NotBlocked,
    /// Numbers blocked for some days.
    BlockedUntil,
    /// Numbers blocked until the block is lifted.
    BlockedForever,
}

/// A number in a tenant's inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// The number.
    pub number: E164,
    /// The kind of number.
    pub number_type: NumberType,
    /// The Operator Connect operator, for operator numbers.
    pub operator_id: Option<String>,
    /// The city of the number, when known.
    pub city: String,
    /// What the number may be assigned to.
    pub capabilities: Capabilities,
    /// Its holder, if any.
    pub assignment: Option<Assignment>,
    /// Whether the provider has put the last change into effect.
    pub activation_state: ActivationState,
    /// The registered emergency location, if any.
    pub emergency_location_id: Option<String>,
    /// Whether the tenant may change the emergency location.
    pub location_update_supported: bool,
    /// Whether the number refuses assignment.
    pub block: Block,
    /// The operation of the number's last change, if any.
    pub operation_id: Option<String>,
    /// Its tags, each as first written in the tenant, ordered by key.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Increases with every change; the etag.
    pub version: i64,
    /// When the number entered the inventory.
    pub create_time: SystemTime,
    /// When the number last changed.
    pub update_time: SystemTime,
}

impl PhoneNumber {
    /// A Direct Routing number entering the inventory on its first assignment: any use is
    /// allowed (the customer's carrier decides), and the tenant manages its location.
    pub fn direct_routing(number: E164, now: SystemTime) -> Self {
        Self {
            number,
            number_type: NumberType::DirectRouting,
            operator_id: None,
            city: String::new(),
            capabilities: Capabilities::all(),
            assignment: None,
            activation_state: ActivationState::Activated,
            emergency_location_id: None,
            location_update_supported: true,
            block: Block::None,
            operation_id: None,
            tags: Vec::new(),
            version: 1,
            create_time: now,
            update_time: now,
        }
    }

    /// A number entering the inventory from a provider: unassigned and activated.
    pub fn from_provider(
        number: E164,
        number_type: NumberType,
        operator_id: Option<String>,
        city: String,
        capabilities: Capabilities,
        now: SystemTime,
    ) -> Self {
        Self {
            number_type,
            operator_id,
            city,
            capabilities,
            ..Self::direct_routing(number, now)
        }
    }

    /// The record as it will be once changed at `now`: its next version.
    pub fn changed(mut self, now: SystemTime) -> Self {
        self.version += 1;
        self.update_time = now;
        self
    }

    /// Whether the number is assigned to the user `user_id`.
    pub fn is_held_by(&self, user_id: &str) -> bool {
        self.assignment
            .as_ref()
            .is_some_and(|a| a.target_id == user_id)
    }

    /// Whether the number is its holder's primary number.
    pub fn is_primary(&self) -> bool {
        self.assignment
            .as_ref()
            .is_some_and(|a| a.category == AssignmentCategory::Primary)
    }

    /// The number's country, derived from the number.
    pub fn country(&self) -> Country {
        self.number.country()
    }

    /// Why the number is not ready for an emergency call, if it is not: an assigned number
    /// needs a location, and its last location update must not have failed.
    pub fn readiness_problem(&self) -> Option<ReadinessProblem> {
        if self.activation_state == ActivationState::UpdateFailed {
            return Some(ReadinessProblem::UpdateFailed);
        }
        match (&self.assignment, &self.emergency_location_id) {
            (Some(_), None) if self.location_update_supported => {
                Some(ReadinessProblem::WithoutLocation)
            }
            (Some(_), None) => Some(ReadinessProblem::LockedByOperator),
            _ => None,
        }
    }

    /// Whom the number is assigned to.
    pub fn assignment_status(&self) -> AssignmentStatus {
        match &self.assignment {
            None => AssignmentStatus::Unassigned,
            Some(assignment) => AssignmentStatus::of(assignment.target_kind),
        }
    }
}

/// Filters of a phone number listing; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberFilter {
    /// Only numbers held by this user id.
    pub assigned_to: Option<String>,
    /// Only numbers of this type.
    pub number_type: Option<NumberType>,
    /// Only numbers in this assignment status.
    pub assignment_status: Option<AssignmentStatus>,
    /// Only numbers in this activation state.
    pub activation_state: Option<ActivationState>,
    /// Only numbers of this country.
    pub country: Option<Country>,
    /// Only numbers of this operator.
    pub operator_id: Option<String>,
    /// Only numbers having all these capabilities.
    pub capabilities: Capabilities,
    /// Only numbers starting with this `+digits` prefix.
    pub number_prefix: Option<String>,
    /// Only numbers registered with this emergency location.
    pub emergency_location_id: Option<String>,
    /// Only numbers in this block state at the given time.
    pub block_state: Option<(BlockState, SystemTime)>,
    /// Only numbers with the tag of this key.
    pub tag: Option<String>,
    /// Only numbers held in this role.
    pub category: Option<AssignmentCategory>,
    /// Only numbers of the city of this key (lower case).
    pub city: Option<String>,
    /// Only numbers whose digits contain these.
    pub number_contains: Option<String>,
    /// Only numbers not ready for an emergency call ([`PhoneNumber::readiness_problem`]).
    pub unready: bool,
}

/// Why a number is not ready for an emergency call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadinessProblem {
    /// Assigned, without an emergency location the tenant can set.
    WithoutLocation,
    /// Assigned, without an emergency location only its operator can set.
    LockedByOperator,
    /// Its last location update failed at the provider.
    UpdateFailed,
}

/// The emergency readiness of one country's numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountryReadiness {
    /// The country, as its code.
    pub country: String,
    /// Assigned numbers.
    pub assigned: i64,
    /// Assigned numbers without a location the tenant can set.
    pub without_location: i64,
    /// Assigned numbers without a location only their operator can set.
    pub locked_by_operator: i64,
    /// Numbers whose last location update failed.
    pub update_failed: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> E164 {
        E164::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    #[test]
    fn normalises_to_e164_with_plus() {
        for input in [
            "+14255550101",
            "14255550101",
            " +1 (425) 555-0101 ",
            "1.425.555.0101",
        ] {
            let number = ok(input);
            assert_eq!(number.to_string(), "+14255550101", "{input:?}");
            assert_eq!(number.country().as_str(), "US");
        }
        assert_eq!(ok("+442079460000").country().as_str(), "GB");
        assert_eq!(ok("+16045550100").country().as_str(), "CA");
    }

    #[test]
    fn keeps_direct_routing_extensions() {
        let number = ok("+14255388701;ext=1001");
        assert_eq!(number.base(), "+14255388701");
        assert_eq!(number.extension(), Some("1001"));
        assert_eq!(number.to_string(), "+14255388701;ext=1001");
        assert_eq!(ok("14255388701;EXT=7").to_string(), "+14255388701;ext=7");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in [
            "",
            "   ",
            "tel:+14255550101",
            "TEL:+14255550101",
            "+1 425 555 FLOW",
            "abc",
            "+1425555010199999",
            "4255550101",
            "+",
            "1+4255550101",
            "+14255550101;ext=",
            "+14255550101;ext=12ab",
            "+14255550101;ext=12345678901",
            "+14255550101;foo=1",
            "+999123",
            "+80012345678",
            "+1425555\u{0}0101",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(E164::parse(&"9".repeat(10_000)).is_err());
    }

    #[test]
    fn explains_the_tel_prefix() {
        let error = E164::parse("tel:+14255550101").unwrap_err();
        assert!(error.contains("tel:"), "{error}");
    }
}
