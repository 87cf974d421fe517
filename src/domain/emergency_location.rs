//! Emergency locations and the validation of their civic addresses.
//!
//! Validation checks what emergency services of the country need: a known country, the parts of
//! the address that country's addresses have, and postal codes and states in the country's own
//! format. The rules live in [`CountryRules`], one entry per country with specific needs; every
//! other known country gets the general rules.

use std::time::SystemTime;

use numbers_provider::spelled_enum;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Country;
use crate::error::{Error, FieldViolation, Reason};

/// Longest value of any address part.
const MAX_PART_CHARS: usize = 200;

spelled_enum! {
    /// Whether an address was validated.
    ValidationStatus, "validation status" {
        /// Not validated yet; cannot be registered with numbers.
        NotValidated = "NOT_VALIDATED",
        /// Validated; immutable.
        Validated = "VALIDATED",
    }
}

/// A civic address. Empty strings are absent parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CivicAddress {
    /// The organisation at the address.
    pub company_name: String,
    /// The house number.
    pub house_number: String,
    /// A suffix of the house number.
    pub house_number_suffix: String,
    /// A direction before the street name.
    pub pre_directional: String,
    /// The street name.
    pub street_name: String,
    /// The street suffix.
    pub street_suffix: String,
    /// A direction after the street name.
    pub post_directional: String,
    /// The city.
    pub city: String,
    /// The state or province.
    pub state_or_province: String,
    /// The postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country, as given.
    pub country: String,
}

/// A validated location to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEmergencyLocation {
    /// The address, trimmed, with the country and state codes upper-cased.
    pub address: CivicAddress,
    /// The address's country.
    pub country: Country,
    /// A place within the address.
    pub description: String,
    /// For a place: the location it is in, whose address it shares.
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// An emergency location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyLocation {
    /// Server-generated id.
    pub id: String,
    /// The civic address.
    pub address: CivicAddress,
    /// The address's country.
    pub country: Country,
    /// A place within the address.
    pub description: String,
    /// Whether the address was validated.
    pub validation_status: ValidationStatus,
    /// When the location was created.
    pub create_time: SystemTime,
    /// For a place: the location it is in.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Increases with every change of its details; the etag.
    #[serde(default = "first_version")]
    pub version: i64,
}

/// The version of a location as created.
fn first_version() -> i64 {
    1
}

impl EmergencyLocation {
    /// The address on one line, for logs and carriers that take free text.
    pub fn formatted(&self) -> String {
        let a = &self.address;
        let street = [
            a.house_number.as_str(),
            a.house_number_suffix.as_str(),
            a.pre_directional.as_str(),
            a.street_name.as_str(),
            a.street_suffix.as_str(),
            a.post_directional.as_str(),
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
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
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// What a country's addresses need beyond the general rules.
struct CountryRules {
    house_number_required: bool,
    /// The postal code format, and an example for the message; `None` when free-form.
    postal_code: Option<(&'static str, &'static str)>,
    postal_code_required: bool,
    /// The allowed state or province codes; empty when not required.
    states: &'static [&'static str],
}

const GENERAL_RULES: CountryRules = CountryRules {
    house_number_required: false,
    postal_code: None,
    postal_code_required: false,
    states: &[],
};

const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI",
];
const CA_PROVINCES: &[&str] = &[
    "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
];
const AU_STATES: &[&str] = &["ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA"];

fn five_digit_postal_codes(example: &'static str) -> CountryRules {
    CountryRules {
        house_number_required: true,
        postal_code: Some((r"^\d{5}$", example)),
        postal_code_required: true,
        ..GENERAL_RULES
    }
}

fn rules_for(country: Country) -> CountryRules {
    match country.as_str() {
        "US" => CountryRules {
            house_number_required: true,
            postal_code: Some((r"^\d{5}(-\d{4})?$", "98052 or 98052-6399")),
            postal_code_required: true,
            states: US_STATES,
        },
        "CA" => CountryRules {
            house_number_required: true,
            postal_code: Some((r"^[A-Z]\d[A-Z] ?\d[A-Z]\d$", "K1A 0B1")),
            postal_code_required: true,
            states: CA_PROVINCES,
        },
        "AU" => CountryRules {
            house_number_required: true,
            postal_code: Some((r"^\d{4}$", "2000")),
            postal_code_required: true,
            states: AU_STATES,
        },
        "GB" => CountryRules {
            postal_code: Some((r"^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$", "SW1A 1AA")),
            postal_code_required: true,
            ..GENERAL_RULES
        },
        "DE" => five_digit_postal_codes("10117"),
        "FR" => five_digit_postal_codes("75008"),
        "ES" => five_digit_postal_codes("28001"),
        "IT" => five_digit_postal_codes("00184"),
        "NL" => CountryRules {
            house_number_required: true,
            postal_code: Some((r"^\d{4} ?[A-Z]{2}$", "1012 AB")),
            postal_code_required: true,
            ..GENERAL_RULES
        },
        "BE" | "DK" | "NO" | "CH" | "AT" => CountryRules {
            house_number_required: true,
            postal_code: Some((r"^\d{4}$", "1000")),
            postal_code_required: true,
            ..GENERAL_RULES
        },
        "IE" => CountryRules {
            postal_code: Some((r"^[A-Z]\d[\dW] ?[A-Z\d]{4}$", "D02 X285")),
            ..GENERAL_RULES
        },
        "JP" => CountryRules {
            postal_code: Some((r"^\d{3}-?\d{4}$", "100-0001")),
            postal_code_required: true,
            ..GENERAL_RULES
        },
        _ => GENERAL_RULES,
    }
}

/// Validates an address for `description`, returning the normalised location to create, or an
/// INVALID_ADDRESS error with one field violation per problem (field paths relative to the
/// location, such as `address.postal_code` or `description`).
pub fn validate(address: &CivicAddress, description: &str) -> Result<NewEmergencyLocation, Error> {
    let mut a = trimmed(address);
    let mut violations = Vec::new();
    let mut require = |field: &'static str, value: &str, why: &str| {
        if value.is_empty() {
            violations.push(FieldViolation::new(field, format!("is required{why}")));
        }
    };

    require("company_name", &a.company_name, "");
    require("country", &a.country, ", like US");
    let country = if a.country.is_empty() {
        None
    } else {
        match Country::parse(&a.country) {
            Ok(country) => Some(country),
            Err(problem) => {
                violations.push(FieldViolation::new("country", problem));
                None
            }
        }
    };

    if let Some(country) = country {
        a.country = country.as_str().to_owned();
        let rules = rules_for(country);
        let mut require = |field: &'static str, value: &str, why: &str| {
            if value.is_empty() {
                violations.push(FieldViolation::new(field, format!("is required{why}")));
            }
        };
        let in_country = format!(" for an address in {country}");
        require("street_name", &a.street_name, "");
        require("city", &a.city, "");
        if rules.house_number_required {
            require("house_number", &a.house_number, &in_country);
        }
        if rules.postal_code_required {
            require("postal_code", &a.postal_code, &in_country);
        }
        if !rules.states.is_empty() {
            a.state_or_province = a.state_or_province.to_ascii_uppercase();
            if a.state_or_province.is_empty() {
                violations.push(FieldViolation::new(
                    "state_or_province",
                    format!(
                        "is required{in_country}, as a code like {}",
                        rules.states[0]
                    ),
                ));
            } else if !rules.states.contains(&a.state_or_province.as_str()) {
                violations.push(FieldViolation::new(
                    "state_or_province",
                    format!(
                        "{:?} is not a state or province code of {country}, like {}",
                        a.state_or_province, rules.states[0]
                    ),
                ));
            }
        }
        if let Some((pattern, example)) = rules.postal_code
            && !a.postal_code.is_empty()
        {
            a.postal_code = a.postal_code.to_ascii_uppercase();
            // Addresses are created rarely: compiling the pattern each time is cheap enough.
            let format = Regex::new(pattern).expect("postal code patterns are valid");
            if !format.is_match(&a.postal_code) {
                violations.push(FieldViolation::new(
                    "postal_code",
                    format!(
                        "{:?} is not a postal code of {country}, like {example}",
                        a.postal_code
                    ),
                ));
            }
        }
    }

    for (field, value) in parts(&a) {
        if value.chars().count() > MAX_PART_CHARS {
            violations.push(FieldViolation::new(
                field,
                format!("must be at most {MAX_PART_CHARS} characters"),
            ));
        } else if value.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
    }
    // Address problems are reported under `address`; the description is the location's own.
    let mut violations: Vec<FieldViolation> =
        violations.into_iter().map(|v| v.under("address")).collect();
    let description = description.trim();
    if description.chars().count() > MAX_PART_CHARS || description.chars().any(char::is_control) {
        violations.push(FieldViolation::new(
            "description",
            format!("must be at most {MAX_PART_CHARS} characters, without control characters"),
        ));
    }

    match country {
        Some(country) if violations.is_empty() => Ok(NewEmergencyLocation {
            address: a,
            country,
            description: description.to_owned(),
            parent_id: None,
        }),
        _ => Err(Error::invalid_fields(Reason::InvalidAddress, violations)),
    }
}

pub(super) fn trimmed(address: &CivicAddress) -> CivicAddress {
    let t = |s: &str| s.trim().to_owned();
    CivicAddress {
        company_name: t(&address.company_name),
        house_number: t(&address.house_number),
        house_number_suffix: t(&address.house_number_suffix),
        pre_directional: t(&address.pre_directional),
        street_name: t(&address.street_name),
        street_suffix: t(&address.street_suffix),
        post_directional: t(&address.post_directional),
        city: t(&address.city),
        state_or_province: t(&address.state_or_province),
        postal_code: t(&address.postal_code),
        country: t(&address.country),
    }
}

pub(super) fn parts(a: &CivicAddress) -> [(&'static str, &str); 11] {
    [
        ("company_name", &a.company_name),
        ("house_number", &a.house_number),
        ("house_number_suffix", &a.house_number_suffix),
        ("pre_directional", &a.pre_directional),
        ("street_name", &a.street_name),
        ("street_suffix", &a.street_suffix),
        ("post_directional", &a.post_directional),
        ("city", &a.city),
        ("state_or_province", &a.state_or_province),
        ("postal_code", &a.postal_code),
        ("country", &a.country),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redmond() -> CivicAddress {
        CivicAddress {
            company_name: "Contoso".into(),
            house_number: "1".into(),
            street_name: "Microsoft Way".into(),
            city: "Redmond".into(),
            state_or_province: "wa".into(),
            postal_code: "98052".into(),
            country: "us".into(),
            ..Default::default()
        }
    }

    fn fields(error: &Error) -> Vec<&str> {
        error
            .violations()
            .iter()
            .map(|v| v.field.as_str())
            .collect()
    }

    #[test]
    fn accepts_and_normalises_a_complete_us_address() {
        let location = validate(&redmond(), " Building 92 ").unwrap();
        assert_eq!(location.country.as_str(), "US");
        assert_eq!(location.address.state_or_province, "WA");
        assert_eq!(location.description, "Building 92");
    }

    #[test]
    fn us_addresses_need_a_state_and_a_zip_code() {
        let mut address = redmond();
        address.state_or_province = "Washington".into();
        address.postal_code = "9805".into();
        let error = validate(&address, "").unwrap_err();
        assert_eq!(error.reason(), Reason::InvalidAddress);
        assert_eq!(
            fields(&error),
            ["address.state_or_province", "address.postal_code"]
        );
    }

    #[test]
    fn unknown_countries_are_refused() {
        let mut address = redmond();
        address.country = "XX".into();
        assert_eq!(
            fields(&validate(&address, "").unwrap_err()),
            ["address.country"]
        );
    }

    #[test]
    fn an_empty_address_lists_what_is_missing() {
        let error = validate(&CivicAddress::default(), "").unwrap_err();
        assert_eq!(fields(&error), ["address.company_name", "address.country"]);
    }

    #[test]
    fn other_countries_use_their_own_postal_formats() {
        let london = CivicAddress {
            company_name: "Contoso".into(),
            street_name: "Whitehall".into(),
            city: "London".into(),
            postal_code: "sw1a 2aa".into(),
            country: "GB".into(),
            ..Default::default()
        };
        assert_eq!(
            validate(&london, "").unwrap().address.postal_code,
            "SW1A 2AA"
        );
        let bad = CivicAddress {
            postal_code: "12345".into(),
            ..london
        };
        assert_eq!(
            fields(&validate(&bad, "").unwrap_err()),
            ["address.postal_code"]
        );
    }

    #[test]
    fn descriptions_are_checked_as_the_locations_own_field() {
        let long = "x".repeat(MAX_PART_CHARS + 1);
        assert_eq!(
            fields(&validate(&redmond(), &long).unwrap_err()),
            ["description"]
        );
        assert_eq!(
            fields(&validate(&redmond(), "line\u{7}break").unwrap_err()),
            ["description"]
        );
    }
}
