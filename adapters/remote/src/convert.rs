//! The conversions between the provider trait's types and the protocol's messages, both ways,
//! kept in one place so that the client and the server agree by construction.
//!
//! Towards the protocol nothing can fail. From the protocol, a message may be malformed (a
//! missing field, an enum value that is unset or unknown): the conversion says which field,
//! and each side decides what that means (INVALID_ARGUMENT for the server, a failed call for
//! the client).

use std::time::Duration;

use numbers_provider::{
    ActivationMode, AssignmentCategory, AssignmentCheck, Capabilities, Capability, CarrierNumber,
    CarrierPage, CarrierState, Descriptor, EmergencyAddress, LocationCheck, NumberQuery,
    NumberType, OfferedNumber, Progress, Provisioning, TargetKind,
};

use crate::proto;

/// A message of the protocol that does not say what the trait needs: the error of the
/// conversions from the protocol to the trait's types.
#[derive(Debug, thiserror::Error)]
#[error("malformed {message}: {problem}")]
pub struct Malformed {
    message: &'static str,
    problem: String,
}

impl Malformed {
    fn new(message: &'static str, problem: impl Into<String>) -> Self {
        Self {
            message,
            problem: problem.into(),
        }
    }
}

type Result<T> = std::result::Result<T, Malformed>;

/// The field `name` of `message`, which the protocol requires.
pub(crate) fn required<T>(field: Option<T>, message: &'static str, name: &str) -> Result<T> {
    field.ok_or_else(|| Malformed::new(message, format!("{name} is missing")))
}

/// Declares both conversions of a fieldless enum; the protocol's `*_UNSPECIFIED` and unknown
/// values are malformed.
macro_rules! enum_conversions {
    ($domain:ident <=> $proto:ident, $to_domain:ident, $what:literal { $($variant:ident,)+ }) => {
        impl From<$domain> for proto::$proto {
            fn from(value: $domain) -> Self {
                match value {
                    $($domain::$variant => proto::$proto::$variant,)+
                }
            }
        }

        fn $to_domain(value: i32, message: &'static str) -> Result<$domain> {
            match proto::$proto::try_from(value) {
                $(Ok(proto::$proto::$variant) => Ok($domain::$variant),)+
                _ => Err(Malformed::new(message, format!("{} {value} is not valid", $what))),
            }
        }
    };
}

enum_conversions!(NumberType <=> NumberType, number_type, "number type" {
    CallingPlan, OperatorConnect, DirectRouting,
});
enum_conversions!(ActivationMode <=> ActivationMode, activation_mode, "activation mode" {
    Synchronous, Asynchronous,
});
enum_conversions!(TargetKind <=> TargetKind, target_kind, "target kind" {
    User, ResourceAccount,
});
enum_conversions!(AssignmentCategory <=> AssignmentCategory, category, "assignment category" {
    Primary, Private, Alternate,
});
enum_conversions!(Capability <=> Capability, capability, "capability" {
    UserAssignment, VoiceApplicationAssignment, ConferenceAssignment,
});
enum_conversions!(CarrierState <=> CarrierState, carrier_state, "carrier state" {
    Active, Pending, Inactive,
});

impl From<&Descriptor> for proto::Descriptor {
    fn from(d: &Descriptor) -> Self {
        Self {
            id: d.id.clone(),
            display_name: d.display_name.clone(),
            number_type: proto::NumberType::from(d.number_type).into(),
            countries: d.countries.clone(),
            tenant_location_update_allowed: d.tenant_location_update_allowed,
            activation: proto::ActivationMode::from(d.activation).into(),
            base_and_extensions_exclusive: d.base_and_extensions_exclusive,
            catalogue: d.catalogue,
            lists_numbers: d.lists_numbers,
        }
    }
}

impl TryFrom<proto::Descriptor> for Descriptor {
    type Error = Malformed;

    fn try_from(d: proto::Descriptor) -> Result<Self> {
        Ok(Self {
            number_type: number_type(d.number_type, "Descriptor")?,
            activation: activation_mode(d.activation, "Descriptor")?,
            id: d.id,
            display_name: d.display_name,
            countries: d.countries,
            tenant_location_update_allowed: d.tenant_location_update_allowed,
            base_and_extensions_exclusive: d.base_and_extensions_exclusive,
            catalogue: d.catalogue,
            lists_numbers: d.lists_numbers,
        })
    }
}

impl From<&AssignmentCheck> for proto::AssignmentCheck {
    fn from(c: &AssignmentCheck) -> Self {
        Self {
            tenant_id: c.tenant_id.clone(),
            phone_number: c.phone_number.clone(),
            country: c.country.clone(),
            target_kind: proto::TargetKind::from(c.target_kind).into(),
            usage_location: c.usage_location.clone(),
            category: proto::AssignmentCategory::from(c.category).into(),
            changes_emergency_location: c.changes_emergency_location,
            has_emergency_location: c.has_emergency_location,
            location_update_supported: c.location_update_supported,
        }
    }
}

impl TryFrom<proto::AssignmentCheck> for AssignmentCheck {
    type Error = Malformed;

    fn try_from(c: proto::AssignmentCheck) -> Result<Self> {
        Ok(Self {
            target_kind: target_kind(c.target_kind, "AssignmentCheck")?,
            category: category(c.category, "AssignmentCheck")?,
            tenant_id: c.tenant_id,
            phone_number: c.phone_number,
            country: c.country,
            usage_location: c.usage_location,
            changes_emergency_location: c.changes_emergency_location,
            has_emergency_location: c.has_emergency_location,
            location_update_supported: c.location_update_supported,
        })
    }
}

impl From<&LocationCheck> for proto::LocationCheck {
    fn from(c: &LocationCheck) -> Self {
        Self {
            tenant_id: c.tenant_id.clone(),
            phone_number: c.phone_number.clone(),
            country: c.country.clone(),
            assigned_to: c.assigned_to.map(|k| proto::TargetKind::from(k).into()),
            clears: c.clears,
            location_update_supported: c.location_update_supported,
        }
    }
}

impl TryFrom<proto::LocationCheck> for LocationCheck {
    type Error = Malformed;

    fn try_from(c: proto::LocationCheck) -> Result<Self> {
        Ok(Self {
            assigned_to: c
                .assigned_to
                .map(|k| target_kind(k, "LocationCheck"))
                .transpose()?,
            tenant_id: c.tenant_id,
            phone_number: c.phone_number,
            country: c.country,
            clears: c.clears,
            location_update_supported: c.location_update_supported,
        })
    }
}

impl From<&Provisioning> for proto::Provisioning {
    fn from(p: &Provisioning) -> Self {
        Self {
            tenant_id: p.tenant_id.clone(),
            phone_number: p.phone_number.clone(),
            target_id: p.target_id.clone(),
            emergency_address: p
                .emergency_address
                .as_ref()
                .map(|a| proto::EmergencyAddress {
                    location_id: a.location_id.clone(),
                    country: a.country.clone(),
                    formatted: a.formatted.clone(),
                }),
            idempotency_key: p.idempotency_key.clone(),
        }
    }
}

impl From<proto::Provisioning> for Provisioning {
    fn from(p: proto::Provisioning) -> Self {
        Self {
            tenant_id: p.tenant_id,
            phone_number: p.phone_number,
            target_id: p.target_id,
            emergency_address: p.emergency_address.map(|a| EmergencyAddress {
                location_id: a.location_id,
                country: a.country,
                formatted: a.formatted,
            }),
            idempotency_key: p.idempotency_key,
        }
    }
}

impl From<Progress> for proto::Progress {
    fn from(progress: Progress) -> Self {
        let state = match progress {
            Progress::Done => proto::progress::State::Done(proto::Done {}),
            Progress::Pending {
                ticket,
                retry_after,
            } => proto::progress::State::Pending(proto::Pending {
                ticket,
                retry_after: Some(duration_to_proto(retry_after)),
            }),
        };
        Self { state: Some(state) }
    }
}

impl TryFrom<proto::Progress> for Progress {
    type Error = Malformed;

    fn try_from(progress: proto::Progress) -> Result<Self> {
        match required(progress.state, "Progress", "state")? {
            proto::progress::State::Done(_) => Ok(Progress::Done),
            proto::progress::State::Pending(pending) => {
                if pending.ticket.is_empty() {
                    return Err(Malformed::new("Pending", "ticket is empty"));
                }
                Ok(Progress::Pending {
                    ticket: pending.ticket,
                    retry_after: pending
                        .retry_after
                        .map(duration_from_proto)
                        .unwrap_or_default(),
                })
            }
        }
    }
}

impl From<&NumberQuery> for proto::NumberQuery {
    fn from(q: &NumberQuery) -> Self {
        Self {
            country: q.country.clone(),
            area_code: q.area_code.clone(),
            city: q.city.clone(),
            prefix: q.prefix.clone(),
            capability: q.capability.map(|c| proto::Capability::from(c).into()),
        }
    }
}

impl TryFrom<proto::NumberQuery> for NumberQuery {
    type Error = Malformed;

    fn try_from(q: proto::NumberQuery) -> Result<Self> {
        Ok(Self {
            capability: q
                .capability
                .map(|c| capability(c, "NumberQuery"))
                .transpose()?,
            country: q.country,
            area_code: q.area_code,
            city: q.city,
            prefix: q.prefix,
        })
    }
}

impl From<OfferedNumber> for proto::OfferedNumber {
    fn from(n: OfferedNumber) -> Self {
        Self {
            capabilities: n
                .capabilities
                .iter()
                .map(|c| proto::Capability::from(c).into())
                .collect(),
            phone_number: n.phone_number,
            country: n.country,
            city: n.city,
        }
    }
}

impl TryFrom<proto::OfferedNumber> for OfferedNumber {
    type Error = Malformed;

    fn try_from(n: proto::OfferedNumber) -> Result<Self> {
        Ok(Self {
            capabilities: n
                .capabilities
                .iter()
                .map(|c| capability(*c, "OfferedNumber"))
                .collect::<Result<Capabilities>>()?,
            phone_number: n.phone_number,
            country: n.country,
            city: n.city,
        })
    }
}

impl From<CarrierNumber> for proto::CarrierNumber {
    fn from(n: CarrierNumber) -> Self {
        Self {
            state: proto::CarrierState::from(n.state).into(),
            phone_number: n.phone_number,
            target_id: n.target_id.unwrap_or_default(),
            emergency_location_id: n.emergency_location_id.unwrap_or_default(),
        }
    }
}

/// The protocol's empty string for "none".
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl TryFrom<proto::CarrierNumber> for CarrierNumber {
    type Error = Malformed;

    fn try_from(n: proto::CarrierNumber) -> Result<Self> {
        if n.phone_number.is_empty() {
            return Err(Malformed::new("CarrierNumber", "phone_number is empty"));
        }
        Ok(Self {
            state: carrier_state(n.state, "CarrierNumber")?,
            phone_number: n.phone_number,
            target_id: non_empty(n.target_id),
            emergency_location_id: non_empty(n.emergency_location_id),
        })
    }
}

impl From<CarrierPage> for proto::ListNumbersResponse {
    fn from(page: CarrierPage) -> Self {
        Self {
            numbers: page.numbers.into_iter().map(Into::into).collect(),
            next_after: page.next_after.unwrap_or_default(),
        }
    }
}

/// The page a ListNumbers answered to a request for `page_size` numbers after `after`.
///
/// Besides well-formed numbers, the page must keep the listing's promises, since the caller
/// walks pages until `next_after` is empty: numbers in strictly increasing order after `after`,
/// no more than asked, and a `next_after` that moves forward past them. An answer that breaks
/// them would make the caller skip numbers, see one twice or loop forever, so it is malformed.
pub(crate) fn carrier_page(
    response: proto::ListNumbersResponse,
    after: Option<&str>,
    page_size: u32,
) -> Result<CarrierPage> {
    let numbers = response
        .numbers
        .into_iter()
        .map(CarrierNumber::try_from)
        .collect::<Result<Vec<_>>>()?;
    if page_size > 0 && numbers.len() > usize::try_from(page_size).unwrap_or(usize::MAX) {
        return Err(Malformed::new(
            "ListNumbersResponse",
            format!("{} numbers for a page of {page_size}", numbers.len()),
        ));
    }
    let mut previous = after;
    for number in &numbers {
        if previous.is_some_and(|p| number.phone_number.as_str() <= p) {
            return Err(Malformed::new(
                "ListNumbersResponse",
                format!(
                    "{} is not after {}",
                    number.phone_number,
                    previous.unwrap_or_default()
                ),
            ));
        }
        previous = Some(&number.phone_number);
    }
    let next_after = non_empty(response.next_after);
    if let Some(next) = &next_after {
        let behind = match (after, numbers.last()) {
            (_, Some(last)) => next.as_str() < last.phone_number.as_str(),
            (Some(after), None) => next.as_str() <= after,
            (None, None) => false,
        };
        if behind {
            return Err(Malformed::new(
                "ListNumbersResponse",
                format!("next_after {next} does not move past the page"),
            ));
        }
    }
    Ok(CarrierPage {
        numbers,
        next_after,
    })
}

/// A duration of the protocol; negative ones (which no carrier should send) count as zero.
pub fn duration_from_proto(duration: prost_types::Duration) -> Duration {
    Duration::try_from(duration).unwrap_or_default()
}

/// A duration for the protocol; saturates rather than fail on durations beyond its range.
pub fn duration_to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_survive_the_round_trip() {
        let check = AssignmentCheck {
            tenant_id: "t".into(),
            phone_number: "+14255550100".into(),
            country: "US".into(),
            target_kind: TargetKind::ResourceAccount,
            usage_location: "US".into(),
            category: AssignmentCategory::Alternate,
            changes_emergency_location: true,
            has_emergency_location: false,
            location_update_supported: true,
        };
        let sent = proto::AssignmentCheck::from(&check);
        assert_eq!(AssignmentCheck::try_from(sent).unwrap(), check);

        let check = LocationCheck {
            tenant_id: "t".into(),
            phone_number: "+14255550100".into(),
            country: "US".into(),
            assigned_to: None,
            clears: true,
            location_update_supported: false,
        };
        let sent = proto::LocationCheck::from(&check);
        assert_eq!(LocationCheck::try_from(sent).unwrap(), check);
    }

    #[test]
    fn progress_survives_the_round_trip() {
        for progress in [
            Progress::Done,
            Progress::Pending {
                ticket: "t-1".into(),
                retry_after: Duration::from_millis(1500),
            },
        ] {
            let sent = proto::Progress::from(progress.clone());
            assert_eq!(Progress::try_from(sent).unwrap(), progress);
        }
    }

    #[test]
    fn unset_enums_and_missing_fields_are_malformed() {
        let mut descriptor = proto::Descriptor::from(&Descriptor {
            id: "x".into(),
            display_name: "X".into(),
            number_type: NumberType::OperatorConnect,
            countries: vec!["US".into()],
            tenant_location_update_allowed: false,
            activation: ActivationMode::Asynchronous,
            base_and_extensions_exclusive: false,
            catalogue: false,
            lists_numbers: false,
        });
        descriptor.number_type = 0;
        let error = Descriptor::try_from(descriptor).unwrap_err();
        assert!(error.to_string().contains("number type 0"), "{error}");
        assert!(Progress::try_from(proto::Progress { state: None }).is_err());
        assert_eq!(
            duration_from_proto(prost_types::Duration {
                seconds: -1,
                nanos: 0
            }),
            Duration::ZERO
        );
    }

    fn listed(phone_number: &str) -> proto::CarrierNumber {
        proto::CarrierNumber {
            phone_number: phone_number.into(),
            state: proto::CarrierState::Active.into(),
            target_id: "u".into(),
            emergency_location_id: String::new(),
        }
    }

    fn page(numbers: &[&str], next_after: &str) -> proto::ListNumbersResponse {
        proto::ListNumbersResponse {
            numbers: numbers.iter().map(|n| listed(n)).collect(),
            next_after: next_after.into(),
        }
    }

    #[test]
    fn carrier_pages_survive_the_round_trip() {
        let sent = CarrierPage {
            numbers: vec![
                CarrierNumber {
                    phone_number: "+14255550100".into(),
                    state: CarrierState::Pending,
                    target_id: Some("u".into()),
                    emergency_location_id: Some("loc".into()),
                },
                CarrierNumber {
                    phone_number: "+14255550101".into(),
                    state: CarrierState::Inactive,
                    target_id: None,
                    emergency_location_id: None,
                },
            ],
            next_after: Some("+14255550101".into()),
        };
        let response = proto::ListNumbersResponse::from(sent.clone());
        assert_eq!(carrier_page(response, None, 2).unwrap(), sent);
        let last = CarrierPage::default();
        let response = proto::ListNumbersResponse::from(last.clone());
        assert_eq!(carrier_page(response, Some("+1"), 0).unwrap(), last);
    }

    #[test]
    fn pages_that_break_the_listing_are_malformed() {
        let malformed =
            |response, after, size| carrier_page(response, after, size).unwrap_err().to_string();
        // Out of order, repeated, or not after `after`.
        assert!(malformed(page(&["+2", "+1"], ""), None, 0).contains("+1 is not after +2"));
        assert!(malformed(page(&["+1", "+1"], ""), None, 0).contains("not after"));
        assert!(malformed(page(&["+1"], ""), Some("+1"), 0).contains("not after"));
        // More than asked.
        assert!(malformed(page(&["+1", "+2"], "+2"), None, 1).contains("2 numbers"));
        // A next page that does not move on would loop forever.
        assert!(malformed(page(&[], "+1"), Some("+1"), 0).contains("does not move"));
        assert!(malformed(page(&["+2"], "+1"), None, 0).contains("does not move"));
        // Unset state, no number.
        let mut unset = page(&["+1"], "");
        unset.numbers[0].state = 0;
        assert!(malformed(unset, None, 0).contains("carrier state 0"));
        assert!(malformed(page(&[""], ""), None, 0).contains("phone_number is empty"));
        // Fewer than asked, even none, is allowed while next_after moves on.
        let page = carrier_page(page(&[], "+5"), Some("+1"), 3).unwrap();
        assert_eq!(page.next_after.as_deref(), Some("+5"));
    }
}
