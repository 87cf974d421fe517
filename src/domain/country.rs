//! ISO 3166-1 alpha-2 country codes, checked against libphonenumber's list of regions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A known country (or region with its own numbering), as an upper-case ISO 3166-1 alpha-2 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl Country {
    /// Parses a code such as `US` or `us`.
    pub fn parse(code: &str) -> Result<Self, String> {
        let upper = code.trim().to_ascii_uppercase();
        if upper.len() != 2 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "{code:?} is not an ISO 3166-1 alpha-2 country code such as US"
            ));
        }
        phonenumber::country::Id::from_str(&upper)
            .map_err(|_| format!("{upper:?} is not a known ISO 3166-1 alpha-2 country code"))?;
        let bytes = upper.as_bytes();
        Ok(Self([bytes[0], bytes[1]]))
    }

    /// The country of a libphonenumber region.
    pub(crate) fn from_region(id: phonenumber::country::Id) -> Self {
        let code = id.as_ref().as_bytes();
        Self([code[0], code[1]])
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        // The bytes are two ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Country {
    type Error = String;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Country> for String {
    fn from(country: Country) -> Self {
        country.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_codes_in_any_case() {
        assert_eq!(Country::parse("US").unwrap().as_str(), "US");
        assert_eq!(Country::parse(" gb ").unwrap().as_str(), "GB");
    }

    #[test]
    fn refuses_unknown_or_malformed_codes() {
        for bad in ["", "U", "USA", "ZZ", "1A", "É"] {
            assert!(Country::parse(bad).is_err(), "{bad:?}");
        }
    }
}
