//! How answers are shown: tables for people, the API's own JSON (as grpcurl prints it) for
//! scripts.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use prost_reflect::{DynamicMessage, SerializeOptions};

use crate::proto::v1 as pb;

/// The form of what a command prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and sentences.
    #[default]
    Table,
    /// The answer as the API's JSON, one document per answer.
    Json,
}

/// The flag that picks the [`Format`].
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct OutputArgs {
    /// How to print the answer.
    #[arg(long, short = 'o', value_enum, default_value_t, global = true)]
    pub output: Format,
}

/// `message` as the API's canonical JSON (field names in lowerCamelCase, enums by name,
/// timestamps in RFC 3339), as grpcurl prints it.
pub(super) fn json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let descriptor = crate::proto::descriptors()
        .get_message_by_name(&M::full_name())
        .expect("every API message has a descriptor");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    let options = SerializeOptions::new().skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a message serializes to JSON")
}

/// Prints `value` as indented JSON.
pub(super) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values print")
    );
}

/// A table with these column names.
pub(super) fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// An enum value's name without its type's prefix, in lower case: `ASSIGNMENT_PENDING` as
/// `assignment-pending`; empty when unset.
pub(super) fn name(proto_name: &str) -> String {
    if proto_name.ends_with("_UNSPECIFIED") {
        return String::new();
    }
    proto_name.to_ascii_lowercase().replace('_', "-")
}

/// A timestamp as RFC 3339, to the second; empty when unset.
pub(super) fn time(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The numbers as a table.
pub(super) fn numbers_table(numbers: &[pb::PhoneNumber]) -> Table {
    let mut table = table([
        "number",
        "type",
        "status",
        "assigned to",
        "role",
        "activation",
        "location",
        "blocked",
        "tags",
    ]);
    for n in numbers {
        let blocked = match n.assignment_blocked_state() {
            pb::AssignmentBlockedState::BlockedUntil => {
                format!("until {}", time(n.assignment_blocked_until.as_ref()))
            }
            pb::AssignmentBlockedState::BlockedForever => "forever".to_owned(),
            _ => String::new(),
        };
        let holder = if n.assigned_to_user_principal_name.is_empty() {
            n.assigned_to.clone()
        } else {
            n.assigned_to_user_principal_name.clone()
        };
        table.add_row([
            n.phone_number.clone(),
            name(n.number_type().as_str_name()),
            name(n.assignment_status().as_str_name()),
            holder,
            name(n.assignment_category().as_str_name()),
            name(n.activation_state().as_str_name()),
            n.emergency_location_id.clone(),
            blocked,
            n.tags.join(", "),
        ]);
    }
    table
}

/// The users as a table.
pub(super) fn users_table(users: &[pb::User]) -> Table {
    let mut table = table([
        "user principal name",
        "display name",
        "usage location",
        "kind",
        "voice",
        "numbers",
        "id",
    ]);
    for u in users {
        table.add_row([
            u.user_principal_name.clone(),
            u.display_name.clone(),
            u.usage_location.clone(),
            name(u.kind().as_str_name()),
            if u.enterprise_voice_enabled {
                "enabled"
            } else {
                ""
            }
            .to_owned(),
            u.phone_numbers.join(", "),
            u.id.clone(),
        ]);
    }
    table
}

/// An address on one line, its parts in the order a letter has them.
pub(super) fn address(address: Option<&pb::CivicAddress>) -> String {
    let Some(a) = address else {
        return String::new();
    };
    let street = [
        a.house_number.as_str(),
        a.house_number_suffix.as_str(),
        a.pre_directional.as_str(),
        a.street_name.as_str(),
        a.street_suffix.as_str(),
        a.post_directional.as_str(),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    [
        a.company_name.as_str(),
        street.as_str(),
        a.city.as_str(),
        a.state_or_province.as_str(),
        a.postal_code.as_str(),
        a.country.as_str(),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join(", ")
}

/// The emergency locations, each followed by its places, as a table.
pub(super) fn locations_table(locations: &[pb::EmergencyLocation]) -> Table {
    let mut table = table(["id", "description", "address", "validation", "places"]);
    for l in locations {
        table.add_row([
            l.id.clone(),
            l.description.clone(),
            address(l.address.as_ref()),
            name(l.validation_status().as_str_name()),
            l.places
                .iter()
                .map(|p| format!("{} ({})", p.description, p.id))
                .collect::<Vec<_>>()
                .join("; "),
        ]);
    }
    table
}

/// The audit events as a table.
pub(super) fn audit_table(events: &[pb::AuditEvent]) -> Table {
    let mut table = table(["time", "actor", "action", "number", "user", "request id"]);
    for e in events {
        table.add_row([
            time(e.time.as_ref()),
            e.actor.clone(),
            name(e.action().as_str_name()),
            e.phone_number.clone(),
            e.user_id.clone(),
            e.request_id.clone(),
        ]);
    }
    table
}

/// An operation in a few lines: its state, progress, and each provider step.
pub(super) fn operation_text(operation: &pb::Operation) -> String {
    let mut lines = vec![format!(
        "operation {}: {} {}",
        operation.id,
        name(operation.kind().as_str_name()),
        name(operation.state().as_str_name())
    )];
    if let Some(p) = &operation.progress {
        lines.push(format!(
            "  {} of {} done: {} succeeded, {} failed{}",
            p.done,
            p.total,
            p.succeeded,
            p.failed,
            if p.validate_only {
                " (a plan: nothing changed)"
            } else {
                ""
            }
        ));
    }
    for step in &operation.steps {
        let reason = if step.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", step.reason)
        };
        lines.push(format!(
            "  {} {} at {}: {}{reason}",
            name(step.action().as_str_name()),
            step.phone_number,
            step.provider_id,
            name(step.state().as_str_name()),
        ));
    }
    if !operation.error.is_empty() {
        lines.push(format!("  error: {}", operation.error));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_lose_their_shouting() {
        assert_eq!(name("ASSIGNMENT_PENDING"), "assignment-pending");
        assert_eq!(name("NUMBER_TYPE_UNSPECIFIED"), "");
    }

    #[test]
    fn json_is_the_apis_canonical_form() {
        let number = pb::PhoneNumber {
            phone_number: "+14255550101".into(),
            number_type: pb::NumberType::CallingPlan.into(),
            ..Default::default()
        };
        assert_eq!(
            json(&number),
            serde_json::json!({"phoneNumber": "+14255550101", "numberType": "CALLING_PLAN"})
        );
    }

    #[test]
    fn an_address_reads_as_on_a_letter() {
        let a = pb::CivicAddress {
            house_number: "1".into(),
            street_name: "Microsoft Way".into(),
            city: "Redmond".into(),
            state_or_province: "WA".into(),
            postal_code: "98052".into(),
            country: "US".into(),
            ..Default::default()
        };
        assert_eq!(address(Some(&a)), "1 Microsoft Way, Redmond, WA, 98052, US");
    }
}
