//! Reconciliation's one rule: what the carrier should hold for each number of the inventory,
//! and how what it does hold differs (drift).
//!
//! The inventory is the service's truth of what was asked; the carrier's listing is the truth
//! of what routes calls. A number whose change is still with the provider (pending) or was
//! refused (failed) is not compared: the provisioning worker and its operation already own
//! that disagreement.

use std::collections::BTreeMap;
use std::time::SystemTime;

use numbers_provider::{CarrierNumber, CarrierState, spelled_enum};

use super::{ActivationState, PhoneNumber};

spelled_enum! {
    /// How a number of the inventory and the carrier's listing disagree.
    DriftKind, "drift kind" {
        /// The service has the number in service for a holder; the carrier does not hold it.
        MissingAtCarrier = "MISSING_AT_CARRIER",
        /// The carrier holds the number for the tenant; the service's inventory does not.
        UnknownToService = "UNKNOWN_TO_SERVICE",
        /// The carrier routes the number while the service has it unassigned, or does not
        /// route it while the service has it in service.
        ActivationDiffers = "ACTIVATION_DIFFERS",
        /// The carrier has another emergency location registered (or none).
        LocationDiffers = "LOCATION_DIFFERS",
        /// The carrier has the number enabled for another user than its holder.
        TargetDiffers = "TARGET_DIFFERS",
    }
}

spelled_enum! {
    /// Where a reconciliation run stands.
    ReconciliationState, "reconciliation state" {
        /// Asked for; no replica has taken it up yet.
        Pending = "PENDING",
        /// A replica is comparing, under its lease.
        Running = "RUNNING",
        /// Every number was compared; its drift is recorded.
        Succeeded = "SUCCEEDED",
        /// The carrier could not be asked (its error is recorded).
        Failed = "FAILED",
    }
}

spelled_enum! {
    /// Why a reconciliation run was made.
    ReconciliationTrigger, "reconciliation trigger" {
        /// The schedule.
        Schedule = "SCHEDULE",
        /// An administrator's StartReconciliation.
        Request = "REQUEST",
    }
}

/// One comparison of a tenant's inventory with one provider's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// Its id (a UUID).
    pub id: String,
    /// The provider compared with.
    pub provider_id: String,
    /// Why it was made.
    pub trigger: ReconciliationTrigger,
    /// Where it stands.
    pub state: ReconciliationState,
    /// Numbers compared so far, of either side.
    pub checked: i64,
    /// Drift items recorded so far, by kind.
    pub counts: BTreeMap<DriftKind, i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was asked for.
    pub create_time: SystemTime,
    /// When a replica took it up.
    pub start_time: Option<SystemTime>,
    /// When it ended.
    pub end_time: Option<SystemTime>,
}

impl Reconciliation {
    /// A run asked for now, not taken up yet.
    pub fn new(
        id: String,
        provider_id: String,
        trigger: ReconciliationTrigger,
        now: SystemTime,
    ) -> Self {
        Self {
            id,
            provider_id,
            trigger,
            state: ReconciliationState::Pending,
            checked: 0,
            counts: BTreeMap::new(),
            error: None,
            create_time: now,
            start_time: None,
            end_time: None,
        }
    }
}

/// The spelling of a [`CarrierState`] in storage and on the API.
pub fn carrier_state_name(state: CarrierState) -> &'static str {
    match state {
        CarrierState::Active => "ACTIVE",
        CarrierState::Pending => "PENDING",
        CarrierState::Inactive => "INACTIVE",
    }
}

/// The [`CarrierState`] spelled `name`.
pub fn carrier_state_named(name: &str) -> Option<CarrierState> {
    match name {
        "ACTIVE" => Some(CarrierState::Active),
        "PENDING" => Some(CarrierState::Pending),
        "INACTIVE" => Some(CarrierState::Inactive),
        _ => None,
    }
}

/// One disagreement between the inventory and the carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The number, as both sides spell it (E.164 with `+`, and `;ext=` where it has one).
    pub phone_number: String,
    /// How they disagree.
    pub kind: DriftKind,
    /// The carrier's view of the number; `None` when it does not hold it.
    pub carrier: Option<CarrierNumber>,
}

/// What the carrier should hold for `number`: `None` when the service cannot say (a change is
/// with the provider, or was refused), else whether it is in service, for whom, and where.
fn expected(number: &PhoneNumber) -> Option<Expected<'_>> {
    match number.activation_state {
        ActivationState::AssignmentPending
        | ActivationState::UpdatePending
        | ActivationState::AssignmentFailed
        | ActivationState::UpdateFailed => None,
        ActivationState::Activated => Some(match &number.assignment {
            Some(assignment) => Expected::InService {
                target_id: &assignment.target_id,
                emergency_location_id: number.emergency_location_id.as_deref(),
            },
            None => Expected::OutOfService,
        }),
    }
}

/// What the carrier should hold for a number.
enum Expected<'a> {
    /// Active, for this target, with this emergency location.
    InService {
        target_id: &'a str,
        emergency_location_id: Option<&'a str>,
    },
    /// Not routed: absent, or held inactive.
    OutOfService,
}

/// The drift of one number both sides have, or none.
fn differences(number: &PhoneNumber, carrier: &CarrierNumber) -> Vec<DriftKind> {
    let Some(expected) = expected(number) else {
        return Vec::new();
    };
    match (expected, carrier.state) {
        // The carrier is still working on a change the service thinks done: next run.
        (_, CarrierState::Pending) => Vec::new(),
        (Expected::OutOfService, CarrierState::Inactive) => Vec::new(),
        (Expected::OutOfService, CarrierState::Active)
        | (Expected::InService { .. }, CarrierState::Inactive) => {
            vec![DriftKind::ActivationDiffers]
        }
        (
            Expected::InService {
                target_id,
                emergency_location_id,
            },
            CarrierState::Active,
        ) => {
            let mut kinds = Vec::new();
            if carrier.target_id.as_deref() != Some(target_id) {
                kinds.push(DriftKind::TargetDiffers);
            }
            if carrier.emergency_location_id.as_deref() != emergency_location_id {
                kinds.push(DriftKind::LocationDiffers);
            }
            kinds
        }
    }
}

/// Compares numbers of the inventory with the carrier's listing of the same range of numbers,
/// both in number order (as `list_numbers` of store and provider answer them), and answers
/// every disagreement, in number order.
pub fn compare(inventory: &[PhoneNumber], carrier: &[CarrierNumber]) -> Vec<Drift> {
    let mut drift = Vec::new();
    let mut ours = inventory.iter().peekable();
    let mut theirs = carrier.iter().peekable();
    loop {
        let order = match (ours.peek(), theirs.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(number), Some(held)) => number.number.canonical().cmp(&held.phone_number),
        };
        match order {
            std::cmp::Ordering::Less => {
                let number = ours.next().expect("peeked");
                if matches!(expected(number), Some(Expected::InService { .. })) {
                    drift.push(Drift {
                        phone_number: number.number.canonical(),
                        kind: DriftKind::MissingAtCarrier,
                        carrier: None,
                    });
                }
            }
            std::cmp::Ordering::Greater => {
                let held = theirs.next().expect("peeked");
                drift.push(Drift {
                    phone_number: held.phone_number.clone(),
                    kind: DriftKind::UnknownToService,
                    carrier: Some(held.clone()),
                });
            }
            std::cmp::Ordering::Equal => {
                let number = ours.next().expect("peeked");
                let held = theirs.next().expect("peeked");
                drift.extend(differences(number, held).into_iter().map(|kind| Drift {
                    phone_number: held.phone_number.clone(),
                    kind,
                    carrier: Some(held.clone()),
                }));
            }
        }
    }
    drift
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::domain::{Assignment, AssignmentCategory, E164, TargetKind};

    fn number(digits: &str, holder: Option<&str>, location: Option<&str>) -> PhoneNumber {
        let mut number = PhoneNumber::direct_routing(
            E164::parse(digits).expect("a valid number"),
            SystemTime::UNIX_EPOCH,
        );
        number.assignment = holder.map(|target| Assignment {
            target_id: target.into(),
            target_user_principal_name: format!("{target}@contoso.com"),
            target_kind: TargetKind::User,
            category: AssignmentCategory::Primary,
        });
        number.emergency_location_id = location.map(Into::into);
        number
    }

    fn held(
        digits: &str,
        state: CarrierState,
        target: Option<&str>,
        location: Option<&str>,
    ) -> CarrierNumber {
        CarrierNumber {
            phone_number: digits.into(),
            state,
            target_id: target.map(Into::into),
            emergency_location_id: location.map(Into::into),
        }
    }

    #[test]
    fn carrier_states_read_back_as_written() {
        for state in [
            CarrierState::Active,
            CarrierState::Pending,
            CarrierState::Inactive,
        ] {
            assert_eq!(carrier_state_named(carrier_state_name(state)), Some(state));
        }
        assert_eq!(carrier_state_named("GONE"), None);
    }

    fn kinds(drift: &[Drift]) -> Vec<(&str, DriftKind)> {
        drift
            .iter()
            .map(|d| (d.phone_number.as_str(), d.kind))
            .collect()
    }

    #[test]
    fn agreeing_sides_have_no_drift() {
        let inventory = [
            number("+14255550101", Some("john"), Some("hq")),
            number("+14255550102", None, None),
        ];
        let carrier = [
            held(
                "+14255550101",
                CarrierState::Active,
                Some("john"),
                Some("hq"),
            ),
            held("+14255550102", CarrierState::Inactive, None, None),
        ];
        assert!(compare(&inventory, &carrier).is_empty());
        // An unassigned number the carrier never held is no drift either.
        assert!(compare(&inventory[1..], &[]).is_empty());
    }

    #[test]
    fn each_kind_of_drift_is_found() {
        let inventory = [
            number("+14255550101", Some("john"), Some("hq")),
            number("+14255550102", None, None),
            number("+14255550103", Some("jack"), Some("hq")),
            number("+14255550104", Some("lee"), Some("hq")),
            number("+14255550106", Some("sam"), None),
        ];
        let carrier = [
            held("+14255550102", CarrierState::Active, Some("john"), None),
            held(
                "+14255550103",
                CarrierState::Active,
                Some("john"),
                Some("lab"),
            ),
            held("+14255550104", CarrierState::Inactive, None, None),
            held("+14255550105", CarrierState::Active, Some("amelie"), None),
            held(
                "+14255550106",
                CarrierState::Active,
                Some("sam"),
                Some("hq"),
            ),
        ];
        assert_eq!(
            kinds(&compare(&inventory, &carrier)),
            [
                ("+14255550101", DriftKind::MissingAtCarrier),
                ("+14255550102", DriftKind::ActivationDiffers),
                ("+14255550103", DriftKind::TargetDiffers),
                ("+14255550103", DriftKind::LocationDiffers),
                ("+14255550104", DriftKind::ActivationDiffers),
                ("+14255550105", DriftKind::UnknownToService),
                ("+14255550106", DriftKind::LocationDiffers),
            ]
        );
    }

    #[test]
    fn changes_in_flight_are_left_to_their_operation() {
        let mut pending = number("+14255550101", Some("john"), Some("hq"));
        pending.activation_state = ActivationState::AssignmentPending;
        let mut failed = number("+14255550102", Some("jack"), None);
        failed.activation_state = ActivationState::AssignmentFailed;
        let settled = number("+14255550103", Some("lee"), None);
        let carrier = [held("+14255550103", CarrierState::Pending, None, None)];
        assert!(compare(&[pending, failed, settled], &carrier).is_empty());
    }
}
