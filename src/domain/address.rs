//! Address validation that helps: besides refusing an address, the offline rules answer a
//! corrected one when the input is recognisably fixable, with each change, so an admin can
//! accept it.
//!
//! Two kinds of change: a fix (a state or province written out in full, a US ZIP+4 code
//! without its dash), without which the address is refused; and a standardisation (casing of
//! codes, a street suffix spelled out or abbreviated another way, a postal code's space),
//! which the address is stored with and which refuses nothing.

use super::CivicAddress;
use super::emergency_location::{parts, trimmed, validate};
use crate::error::FieldViolation;

/// What the rules say of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressVerdict {
    /// Valid as given (perhaps standardised).
    Valid,
    /// Refused as given; the corrected address would be accepted.
    Corrected,
    /// Refused, even with what could be corrected.
    Invalid,
}

/// One change to one part of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressCorrection {
    /// The part, as named in `CivicAddress` (`state_or_province`).
    pub field: &'static str,
    /// As given (trimmed).
    pub given: String,
    /// As corrected.
    pub corrected: String,
    /// Whether the address is refused without it (a fix, not a standardisation).
    pub required: bool,
}

/// The rules' answer about an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressCheck {
    /// The verdict.
    pub verdict: AddressVerdict,
    /// The address as it would be stored: standardised, and corrected when it could be.
    pub address: CivicAddress,
    /// What was changed.
    pub corrections: Vec<AddressCorrection>,
    /// What is wrong with the address as given (empty when valid), with its field path under
    /// `address`.
    pub violations: Vec<FieldViolation>,
}

/// Checks an address by the offline rules.
pub fn check_address(given: &CivicAddress) -> AddressCheck {
    let given = trimmed(given);
    let fixed = fix(&given);
    let standard = standardise(&fixed);
    let violations = match validate(&given, "") {
        Ok(_) => Vec::new(),
        Err(error) => error.violations().to_vec(),
    };
    let (verdict, address) = match validate(&standard, "") {
        Ok(valid) if violations.is_empty() => (AddressVerdict::Valid, valid.address),
        Ok(valid) => (AddressVerdict::Corrected, valid.address),
        Err(_) => (AddressVerdict::Invalid, standard),
    };
    let corrections = parts(&given)
        .into_iter()
        .zip(parts(&address))
        .zip(parts(&fixed))
        .filter(|(((_, before), (_, after)), _)| before != after)
        .map(
            |(((field, before), (_, after)), (_, fixed))| AddressCorrection {
                field,
                given: before.to_owned(),
                corrected: after.to_owned(),
                required: fixed != before,
            },
        )
        .collect();
    AddressCheck {
        verdict,
        address,
        corrections,
        violations,
    }
}

/// The fixes: a state or province written out, a ZIP+4 code without its dash.
fn fix(address: &CivicAddress) -> CivicAddress {
    let mut fixed = address.clone();
    let country = address.country.to_ascii_uppercase();
    if let Some(code) = state_code(&country, &address.state_or_province) {
        fixed.state_or_province = code.to_owned();
    }
    if country == "US" {
        let digits: String = address
            .postal_code
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
            fixed.postal_code = format!("{}-{}", &digits[..5], &digits[5..]);
        }
    }
    fixed
}

/// The standardisations: a street suffix in its postal abbreviation (United States and
/// Canada), a postal code with its space (Canada, the United Kingdom); the casing of codes is
/// the validation's own.
fn standardise(address: &CivicAddress) -> CivicAddress {
    let mut standard = address.clone();
    let country = address.country.to_ascii_uppercase();
    if matches!(country.as_str(), "US" | "CA")
        && let Some(suffix) = street_suffix(&address.street_suffix)
    {
        standard.street_suffix = suffix.to_owned();
    }
    let postal = address.postal_code.to_ascii_uppercase();
    let compact: String = postal.chars().filter(|c| !c.is_whitespace()).collect();
    let spaced = |at: usize| format!("{} {}", &compact[..at], &compact[at..]);
    match country.as_str() {
        "CA" if compact.len() == 6 => standard.postal_code = spaced(3),
        "GB" if (5..=7).contains(&compact.len()) => {
            standard.postal_code = spaced(compact.len() - 3)
        }
        _ => {}
    }
    standard
}

/// The code of a state or province written out in full (case-insensitive).
fn state_code(country: &str, written: &str) -> Option<&'static str> {
    let names: &[(&str, &str)] = match country {
        "US" => US_STATE_NAMES,
        "CA" => CA_PROVINCE_NAMES,
        "AU" => AU_STATE_NAMES,
        _ => return None,
    };
    let written = written.trim().trim_end_matches('.');
    names
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(written))
        .map(|(_, code)| *code)
}

/// The postal abbreviation of a street suffix, spelled out or abbreviated (USPS Publication 28,
/// the common ones), such as `Avenue`, `AVE.` or `Av` for `Ave`.
fn street_suffix(written: &str) -> Option<&'static str> {
    let written = written.trim().trim_end_matches('.').to_ascii_lowercase();
    if written.is_empty() {
        return None;
    }
    STREET_SUFFIXES
        .iter()
        .find(|(standard, spellings)| {
            standard.eq_ignore_ascii_case(&written) || spellings.contains(&written.as_str())
        })
        .map(|(standard, _)| *standard)
}

const STREET_SUFFIXES: &[(&str, &[&str])] = &[
    ("Aly", &["alley", "ally"]),
    ("Ave", &["avenue", "av", "aven", "avenu", "avn", "avnue"]),
    ("Blvd", &["boulevard", "boul", "boulv"]),
    ("Cir", &["circle", "circ", "circl", "crcl", "crcle"]),
    ("Ct", &["court", "crt"]),
    ("Dr", &["drive", "driv", "drv"]),
    ("Expy", &["expressway", "exp", "expr", "express", "expw"]),
    ("Fwy", &["freeway", "frway", "frwy"]),
    ("Hwy", &["highway", "highwy", "hiway", "hiwy", "hway"]),
    ("Ln", &["lane"]),
    ("Loop", &["loops"]),
    ("Pkwy", &["parkway", "parkwy", "pkway", "pky"]),
    ("Pl", &["place"]),
    ("Plz", &["plaza", "plza"]),
    ("Rd", &["road"]),
    ("Sq", &["square", "sqr", "sqre", "squ"]),
    ("St", &["street", "strt", "str"]),
    ("Ter", &["terrace", "terr"]),
    ("Trl", &["trail", "trails", "trls"]),
    ("Way", &["wy"]),
];

const US_STATE_NAMES: &[(&str, &str)] = &[
    ("Alabama", "AL"),
    ("Alaska", "AK"),
    ("Arizona", "AZ"),
    ("Arkansas", "AR"),
    ("California", "CA"),
    ("Colorado", "CO"),
    ("Connecticut", "CT"),
    ("Delaware", "DE"),
    ("District of Columbia", "DC"),
    ("Florida", "FL"),
    ("Georgia", "GA"),
    ("Hawaii", "HI"),
    ("Idaho", "ID"),
    ("Illinois", "IL"),
    ("Indiana", "IN"),
    ("Iowa", "IA"),
    ("Kansas", "KS"),
    ("Kentucky", "KY"),
    ("Louisiana", "LA"),
    ("Maine", "ME"),
    ("Maryland", "MD"),
    ("Massachusetts", "MA"),
    ("Michigan", "MI"),
    ("Minnesota", "MN"),
    ("Mississippi", "MS"),
    ("Missouri", "MO"),
    ("Montana", "MT"),
    ("Nebraska", "NE"),
    ("Nevada", "NV"),
    ("New Hampshire", "NH"),
    ("New Jersey", "NJ"),
    ("New Mexico", "NM"),
    ("New York", "NY"),
    ("North Carolina", "NC"),
    ("North Dakota", "ND"),
    ("Ohio", "OH"),
    ("Oklahoma", "OK"),
    ("Oregon", "OR"),
    ("Pennsylvania", "PA"),
    ("Rhode Island", "RI"),
    ("South Carolina", "SC"),
    ("South Dakota", "SD"),
    ("Tennessee", "TN"),
    ("Texas", "TX"),
    ("Utah", "UT"),
    ("Vermont", "VT"),
    ("Virginia", "VA"),
    ("Washington", "WA"),
    ("West Virginia", "WV"),
    ("Wisconsin", "WI"),
    ("Wyoming", "WY"),
    ("American Samoa", "AS"),
    ("Guam", "GU"),
    ("Northern Mariana Islands", "MP"),
    ("Puerto Rico", "PR"),
    ("U.S. Virgin Islands", "VI"),
];

const CA_PROVINCE_NAMES: &[(&str, &str)] = &[
    ("Alberta", "AB"),
    ("British Columbia", "BC"),
    ("Manitoba", "MB"),
    ("New Brunswick", "NB"),
    ("Newfoundland and Labrador", "NL"),
    ("Nova Scotia", "NS"),
    ("Northwest Territories", "NT"),
    ("Nunavut", "NU"),
    ("Ontario", "ON"),
    ("Prince Edward Island", "PE"),
    ("Quebec", "QC"),
    ("Québec", "QC"),
    ("Saskatchewan", "SK"),
    ("Yukon", "YT"),
];

const AU_STATE_NAMES: &[(&str, &str)] = &[
    ("Australian Capital Territory", "ACT"),
    ("New South Wales", "NSW"),
    ("Northern Territory", "NT"),
    ("Queensland", "QLD"),
    ("South Australia", "SA"),
    ("Tasmania", "TAS"),
    ("Victoria", "VIC"),
    ("Western Australia", "WA"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn redmond() -> CivicAddress {
        CivicAddress {
            company_name: "Contoso".into(),
            house_number: "1".into(),
            street_name: "Microsoft".into(),
            street_suffix: "Way".into(),
            city: "Redmond".into(),
            state_or_province: "WA".into(),
            postal_code: "98052".into(),
            country: "US".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_address_is_valid_as_it_is() {
        let check = check_address(&redmond());
        assert_eq!(check.verdict, AddressVerdict::Valid);
        assert!(check.corrections.is_empty(), "{check:?}");
        assert_eq!(check.address, redmond());
    }

    #[test]
    fn a_state_written_out_and_a_zip_without_its_dash_are_corrected() {
        let given = CivicAddress {
            state_or_province: "washington".into(),
            postal_code: "980526399".into(),
            street_suffix: "WAY.".into(),
            ..redmond()
        };
        let check = check_address(&given);
        assert_eq!(check.verdict, AddressVerdict::Corrected);
        assert_eq!(check.address.state_or_province, "WA");
        assert_eq!(check.address.postal_code, "98052-6399");
        assert_eq!(check.address.street_suffix, "Way");
        let changed: Vec<(&str, &str, bool)> = check
            .corrections
            .iter()
            .map(|c| (c.field, c.corrected.as_str(), c.required))
            .collect();
        assert_eq!(
            changed,
            [
                ("street_suffix", "Way", false),
                ("state_or_province", "WA", true),
                ("postal_code", "98052-6399", true)
            ]
        );
        let fields: Vec<&str> = check.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["address.state_or_province", "address.postal_code"]);
    }

    #[test]
    fn standardisations_alone_leave_an_address_valid() {
        let given = CivicAddress {
            street_suffix: "avenue".into(),
            state_or_province: "wa".into(),
            ..redmond()
        };
        let check = check_address(&given);
        assert_eq!(check.verdict, AddressVerdict::Valid);
        assert_eq!(check.address.street_suffix, "Ave");
        assert!(check.corrections.iter().all(|c| !c.required), "{check:?}");
        let toronto = CivicAddress {
            state_or_province: "Ontario".into(),
            postal_code: "m5v3l9".into(),
            city: "Toronto".into(),
            country: "ca".into(),
            ..redmond()
        };
        let check = check_address(&toronto);
        assert_eq!(check.verdict, AddressVerdict::Corrected);
        assert_eq!(check.address.state_or_province, "ON");
        assert_eq!(check.address.postal_code, "M5V 3L9");
        assert_eq!(check.address.country, "CA");
    }

    #[test]
    fn what_cannot_be_corrected_stays_invalid() {
        let given = CivicAddress {
            state_or_province: "Narnia".into(),
            postal_code: "980526399".into(),
            ..redmond()
        };
        let check = check_address(&given);
        assert_eq!(check.verdict, AddressVerdict::Invalid);
        assert!(
            check
                .corrections
                .iter()
                .any(|c| c.field == "postal_code" && c.required),
            "{check:?}"
        );
    }
}
