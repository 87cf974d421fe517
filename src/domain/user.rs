//! Users: the PSTN targets that numbers are assigned to, as fed from the directory.

use std::time::SystemTime;

use numbers_provider::{TargetKind, spelled_enum};
use serde::{Deserialize, Serialize};

use super::{Country, PhoneNumber};
use crate::error::{Error, FieldViolation, Reason};

spelled_enum! {
    /// A licence that enables telephony features.
    License, "licence" {
        /// Teams Phone (Phone System): needed for any number.
        PhoneSystem = "PHONE_SYSTEM",
        /// A Calling Plan: needed for Calling Plan user numbers.
        CallingPlan = "CALLING_PLAN",
        /// The Teams Phone Resource Account licence.
        PhoneSystemVirtualUser = "PHONE_SYSTEM_VIRTUAL_USER",
    }
}

/// The licences a user holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licenses(Vec<License>);

impl Licenses {
    /// Whether `license` is held.
    pub fn contains(&self, license: License) -> bool {
        self.0.contains(&license)
    }

    /// The licences, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = License> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<License> for Licenses {
    fn from_iter<I: IntoIterator<Item = License>>(iter: I) -> Self {
        let mut licenses: Vec<License> = iter.into_iter().collect();
        licenses.sort();
        licenses.dedup();
        Self(licenses)
    }
}

/// A PSTN target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The directory's object id.
    pub id: String,
    /// The user principal name, as fed (case kept).
    pub user_principal_name: String,
    /// The SIP address, `sip:` included.
    pub sip_address: String,
    /// The name people see.
    pub display_name: String,
    /// Where the user uses the service; unset for users not yet licensed for a country.
    pub usage_location: Option<Country>,
    /// A person or a resource account.
    pub kind: TargetKind,
    /// The licences held.
    pub licenses: Licenses,
    /// Whether telephony is enabled (set by assignment, cleared with the last number).
    pub enterprise_voice_enabled: bool,
    /// A line URI synchronised from the on-premises directory, if any.
    pub on_premises_line_uri: Option<String>,
    /// The numbers held, primary first.
    pub phone_numbers: Vec<String>,
    /// Increases with every change; the etag.
    pub version: i64,
    /// When the user was first fed.
    pub create_time: SystemTime,
    /// When the user last changed.
    pub update_time: SystemTime,
}

impl User {
    /// The user once the numbers it holds are those of `numbers` held by it (as they will
    /// be): its list of numbers follows, primary first, and so, when `settle_voice`, does its
    /// enterprise voice flag, which is on while one of them is in service. A changed list or
    /// flag makes a new version of the user at `now`. Answers the user and whether it changed.
    pub fn holding(
        &self,
        numbers: &[PhoneNumber],
        settle_voice: bool,
        now: SystemTime,
    ) -> (User, bool) {
        let mut held: Vec<&PhoneNumber> =
            numbers.iter().filter(|n| n.is_held_by(&self.id)).collect();
        held.sort_by_key(|n| (!n.is_primary(), n.number.canonical()));
        let mut user = User {
            phone_numbers: held.iter().map(|n| n.number.canonical()).collect(),
            ..self.clone()
        };
        if settle_voice {
            user.enterprise_voice_enabled = held.iter().any(|n| n.activation_state.in_service());
        }
        let changed = user.phone_numbers != self.phone_numbers
            || user.enterprise_voice_enabled != self.enterprise_voice_enabled;
        if changed {
            user.version += 1;
            user.update_time = now;
        }
        (user, changed)
    }
}

/// A user as the directory feed sends it; what `UpsertUser` writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpsert {
    /// The directory's object id; `None` to key by user principal name.
    pub id: Option<String>,
    /// The user principal name.
    pub user_principal_name: String,
    /// The SIP address, `sip:` included.
    pub sip_address: String,
    /// The name people see.
    pub display_name: String,
    /// Where the user uses the service.
    pub usage_location: Option<Country>,
    /// A person or a resource account.
    pub kind: TargetKind,
    /// The licences held.
    pub licenses: Licenses,
    /// A line URI synchronised from the on-premises directory.
    pub on_premises_line_uri: Option<String>,
}

impl UserUpsert {
    /// Checks and normalises a user from the feed. Every problem is reported, not just the
    /// first, with the field it concerns.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: &str,
        user_principal_name: &str,
        sip_address: &str,
        display_name: &str,
        usage_location: &str,
        kind: TargetKind,
        licenses: Licenses,
        on_premises_line_uri: &str,
    ) -> Result<Self, Error> {
        let mut violations = Vec::new();
        let id = id.trim();
        if id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            violations.push(FieldViolation::new(
                "id",
                "must be at most 128 characters without spaces",
            ));
        }
        let upn = user_principal_name.trim();
        if let Err(problem) = check_user_principal_name(upn) {
            violations.push(FieldViolation::new("user_principal_name", problem));
        }
        let sip_address = match sip_address.trim() {
            "" => format!("sip:{upn}"),
            given => given.to_owned(),
        };
        if !sip_address.to_ascii_lowercase().starts_with("sip:")
            || check_user_principal_name(&sip_address[4.min(sip_address.len())..]).is_err()
        {
            violations.push(FieldViolation::new(
                "sip_address",
                "must look like sip:name@domain",
            ));
        }
        let display_name = match display_name.trim() {
            "" => upn.to_owned(),
            given => given.to_owned(),
        };
        if display_name.chars().count() > 256 || display_name.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                "display_name",
                "must be at most 256 characters, without control characters",
            ));
        }
        let usage_location = match usage_location.trim() {
            "" => None,
            code => match Country::parse(code) {
                Ok(country) => Some(country),
                Err(problem) => {
                    violations.push(FieldViolation::new("usage_location", problem));
                    None
                }
            },
        };
        let on_premises_line_uri = match on_premises_line_uri.trim() {
            "" => None,
            uri if uri.len() > 256 || uri.chars().any(char::is_control) => {
                violations.push(FieldViolation::new(
                    "on_premises_line_uri",
                    "must be at most 256 characters, without control characters",
                ));
                None
            }
            uri => Some(uri.to_owned()),
        };
        if !violations.is_empty() {
            return Err(Error::invalid_fields(Reason::InvalidArgument, violations));
        }
        Ok(Self {
            id: (!id.is_empty()).then(|| id.to_owned()),
            user_principal_name: upn.to_owned(),
            sip_address,
            display_name,
            usage_location,
            kind,
            licenses,
            on_premises_line_uri,
        })
    }
}

/// Checks the shape `name@domain`: what the directory would accept, loosely.
fn check_user_principal_name(upn: &str) -> Result<(), &'static str> {
    if upn.is_empty() {
        return Err("is required, like john@contoso.com");
    }
    if upn.len() > 256 {
        return Err("must be at most 256 characters");
    }
    let Some((local, domain)) = upn.split_once('@') else {
        return Err("must look like name@domain, like john@contoso.com");
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| !(c.is_whitespace() || c.is_control() || c == '@'));
    if domain_ok && local_ok {
        Ok(())
    } else {
        Err("must look like name@domain, like john@contoso.com")
    }
}

/// How a request names a user: `-Identity` in the cmdlets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Identity {
    /// By the directory's object id.
    Id(String),
    /// By user principal name (compared case-insensitively).
    UserPrincipalName(String),
    /// By SIP address, `sip:` included (compared case-insensitively).
    SipAddress(String),
}

impl Identity {
    /// Reads an identity: `sip:` starts a SIP address, `@` makes a user principal name, and
    /// anything else is an id.
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("is required: a user id, user principal name or sip: address".into());
        }
        if input.len() > 256 || input.chars().any(char::is_control) {
            return Err("is not a user id, user principal name or sip: address".into());
        }
        Ok(if input.to_ascii_lowercase().starts_with("sip:") {
            Identity::SipAddress(input.to_owned())
        } else if input.contains('@') {
            Identity::UserPrincipalName(input.to_owned())
        } else {
            Identity::Id(input.to_owned())
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Id(s) | Identity::UserPrincipalName(s) | Identity::SipAddress(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Filters of a user listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only users whose display name or user principal name starts with this, lower-cased.
    pub search: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(upn: &str, usage_location: &str) -> Result<UserUpsert, Error> {
        UserUpsert::new(
            "",
            upn,
            "",
            "",
            usage_location,
            TargetKind::User,
            Licenses::default(),
            "",
        )
    }

    #[test]
    fn fills_sip_address_and_display_name_from_the_user_principal_name() {
        let user = upsert("John@Contoso.com", "us").unwrap();
        assert_eq!(user.sip_address, "sip:John@Contoso.com");
        assert_eq!(user.display_name, "John@Contoso.com");
        assert_eq!(user.usage_location.unwrap().as_str(), "US");
        assert_eq!(user.id, None);
    }

    #[test]
    fn reports_every_bad_field() {
        let error = upsert("not-an-upn", "XX").unwrap_err();
        assert_eq!(error.reason(), Reason::InvalidArgument);
        let fields: Vec<_> = error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["user_principal_name", "sip_address", "usage_location"]
        );
    }

    #[test]
    fn reads_identities() {
        assert_eq!(
            Identity::parse("sip:john@contoso.com").unwrap(),
            Identity::SipAddress("sip:john@contoso.com".into())
        );
        assert_eq!(
            Identity::parse("john@contoso.com").unwrap(),
            Identity::UserPrincipalName("john@contoso.com".into())
        );
        assert_eq!(
            Identity::parse("0b7c1d2e").unwrap(),
            Identity::Id("0b7c1d2e".into())
        );
        assert!(Identity::parse(" ").is_err());
    }

    #[test]
    fn licences_are_a_set_in_declaration_order() {
        let licenses: Licenses = [
            License::CallingPlan,
            License::PhoneSystem,
            License::CallingPlan,
        ]
        .into_iter()
        .collect();
        assert_eq!(
            licenses.iter().collect::<Vec<_>>(),
            [License::PhoneSystem, License::CallingPlan]
        );
    }
}
