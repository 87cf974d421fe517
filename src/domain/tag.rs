//! Tags on numbers (Set-CsPhoneNumberTag): case-insensitive labels, created on first use.

use serde::{Deserialize, Serialize};

/// The most tags a number holds.
pub const MAX_TAGS_PER_NUMBER: usize = 50;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 50;

/// A tag: its spelling and the key it is compared by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// As written.
    pub name: String,
    /// Lower-cased: two spellings of one tag have the same key.
    pub key: String,
}

impl Tag {
    /// Reads a tag as a request gives it: trimmed, 1 to [`MAX_TAG_CHARS`] characters, none of
    /// them a control character.
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim();
        if name.is_empty() {
            return Err("is empty: a tag has 1 to 50 characters".into());
        }
        if name.chars().count() > MAX_TAG_CHARS {
            return Err(format!("must be at most {MAX_TAG_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("contains a control character".into());
        }
        Ok(Self::named(name))
    }

    /// The tag of a stored spelling.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            key: name.to_lowercase(),
        }
    }
}

/// A tag in use, with how many numbers have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagCount {
    /// The tag as first written.
    pub name: String,
    /// Its key.
    pub key: String,
    /// How many of the tenant's numbers have it.
    pub numbers: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_by_their_lower_case() {
        let tag = Tag::parse("  Floor 3 ").unwrap();
        assert_eq!(tag.name, "Floor 3");
        assert_eq!(tag.key, "floor 3");
        assert_eq!(Tag::parse("FLOOR 3").unwrap().key, tag.key);
        assert_eq!(Tag::parse("Étage").unwrap().key, "étage");
    }

    #[test]
    fn refuses_what_is_not_a_tag() {
        for bad in ["", "   ", "a\nb", "tab\there"] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Tag::parse(&"x".repeat(MAX_TAG_CHARS)).is_ok());
        assert!(Tag::parse(&"é".repeat(MAX_TAG_CHARS + 1)).is_err());
    }
}
