//! Limits on every field of every request, checked before anything else reads it: a string of
//! at most [`MAX_CHARS`] characters and a list of at most [`MAX_ITEMS`] items unless
//! [`max_chars`] or [`max_items`] says otherwise. The fields are found in the API's own
//! descriptors, so a field added to the API has a limit without anyone writing one.
//!
//! A request over a limit answers INVALID_ARGUMENT with a violation for each field over its
//! limit, and the reason the first such field's own checks give ([`reason`]); a message over
//! [`MAX_MESSAGE_BYTES`] is refused by the server before it is decoded.

use prost_reflect::{DynamicMessage, Value};

use super::pagination::MAX_TOKEN_CHARS;
use crate::domain::{MAX_TAG_CHARS, MAX_TAGS_PER_NUMBER};
use crate::error::{Error, FieldViolation, Reason};
use crate::service::MAX_NUMBERS_PER_REQUEST;

/// The largest request message, encoded. The largest legitimate one, an upload of
/// [`MAX_NUMBERS_PER_REQUEST`] numbers, is about 60 KiB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The longest string field, unless [`max_chars`] says otherwise.
pub const MAX_CHARS: usize = 256;
/// The longest list, unless [`max_items`] says otherwise.
pub const MAX_ITEMS: usize = MAX_NUMBERS_PER_REQUEST;

/// The longest value of the string fields named `field`, in any message.
fn max_chars(field: &str) -> usize {
    match field {
        "page_token" => MAX_TOKEN_CHARS,
        "tags" | "tag" => MAX_TAG_CHARS,
        _ => MAX_CHARS,
    }
}

/// The most items of the list fields named `field`, in any message.
fn max_items(field: &str) -> usize {
    match field {
        // Three licences and three capabilities exist; a few repeats are harmless.
        "licenses" | "capabilities" => 8,
        // ISO 3166 has 249 countries.
        "countries" => 250,
        "tags" => MAX_TAGS_PER_NUMBER,
        _ => MAX_ITEMS,
    }
}

/// The reason a value of a field named `field` over its limit answers: the one its own checks
/// give. Too many items is always INVALID_ARGUMENT.
fn reason(field: &str) -> Reason {
    match field {
        "page_token" => Reason::InvalidPageToken,
        "phone_number" | "phone_numbers" => Reason::InvalidPhoneNumber,
        _ => Reason::InvalidArgument,
    }
}

/// Refuses `request` if a field is over its limit.
pub(crate) fn check<T: prost::Name>(request: &T) -> Result<(), Error> {
    let Some(descriptor) = crate::proto::descriptors().get_message_by_name(&T::full_name()) else {
        return Err(Error::internal(anyhow::anyhow!(
            "no descriptor for {}",
            T::full_name()
        )));
    };
    let dynamic = DynamicMessage::decode(descriptor, request.encode_to_vec().as_slice())
        .map_err(|e| Error::internal(anyhow::anyhow!("re-reading {}: {e}", T::full_name())))?;
    let mut violations = Vec::new();
    walk(&dynamic, "", &mut violations);
    match violations.first() {
        None => Ok(()),
        Some((reason, _)) => Err(Error::invalid_fields(
            *reason,
            violations
                .into_iter()
                .map(|(_, violation)| violation)
                .collect(),
        )),
    }
}

/// A field over its limit, with the reason it answers.
type Violations = Vec<(Reason, FieldViolation)>;

/// Adds a violation for each field of `message` (whose path is `prefix`) over its limit.
fn walk(message: &DynamicMessage, prefix: &str, violations: &mut Violations) {
    for (field, value) in message.fields() {
        let name = field.name();
        // The path is spelled out only for a violation or a nested message: most fields are
        // within their limits, and every call is checked.
        let path = || {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        match value {
            Value::List(items) => {
                let max = max_items(name);
                if items.len() > max {
                    violations.push((
                        Reason::InvalidArgument,
                        FieldViolation::new(
                            path(),
                            format!("has {} items; at most {max}", items.len()),
                        ),
                    ));
                    continue;
                }
                for (index, item) in items.iter().enumerate() {
                    check_value(item, name, &|| format!("{}[{index}]", path()), violations);
                }
            }
            value => check_value(value, name, &path, violations),
        }
    }
}

/// Checks one value of the field `name`, found at `path()`.
fn check_value(value: &Value, name: &str, path: &dyn Fn() -> String, violations: &mut Violations) {
    match value {
        Value::String(text) => {
            let max = max_chars(name);
            // Counting characters only when the bytes could be too many.
            if text.len() > max && text.chars().count() > max {
                violations.push((
                    reason(name),
                    FieldViolation::new(path(), format!("must be at most {max} characters")),
                ));
            }
        }
        Value::Bytes(bytes) if bytes.len() > max_chars(name) => {
            violations.push((
                reason(name),
                FieldViolation::new(path(), format!("must be at most {} bytes", max_chars(name))),
            ));
        }
        Value::Message(message) => walk(message, &path(), violations),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;

    fn violations<T: prost::Name>(request: &T) -> Vec<String> {
        match check(request) {
            Ok(()) => vec![],
            Err(error) => error.violations().iter().map(|v| v.field.clone()).collect(),
        }
    }

    #[test]
    fn strings_lists_and_nested_fields_have_limits() {
        let ok = pb::UpsertUserRequest {
            user: Some(pb::User {
                display_name: "x".repeat(MAX_CHARS),
                licenses: vec![1; 8],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(violations(&ok).is_empty());
        let over = pb::UpsertUserRequest {
            user: Some(pb::User {
                display_name: "é".repeat(MAX_CHARS + 1),
                licenses: vec![1; 200_000],
                ..Default::default()
            }),
            request_id: "r".repeat(MAX_CHARS + 1),
            ..Default::default()
        };
        assert_eq!(
            violations(&over),
            ["user.display_name", "user.licenses", "request_id"]
        );
        assert_eq!(check(&over).unwrap_err().reason(), Reason::InvalidArgument);
    }

    #[test]
    fn items_of_lists_are_checked_one_by_one() {
        let request = pb::ReleasePhoneNumbersRequest {
            phone_numbers: vec!["+14255550100".into(), "1".repeat(MAX_CHARS + 1)],
            ..Default::default()
        };
        assert_eq!(violations(&request), ["phone_numbers[1]"]);
        assert_eq!(
            check(&request).unwrap_err().reason(),
            Reason::InvalidPhoneNumber
        );
        let search = pb::ListUsersRequest {
            search: "s".repeat(3 * 1024 * 1024),
            page_token: "t".repeat(1024),
            ..Default::default()
        };
        assert_eq!(violations(&search), ["search"]);
    }
}
