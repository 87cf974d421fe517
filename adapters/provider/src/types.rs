//! The small vocabulary shared by the service and its providers.
//!
//! Each enum has one canonical UPPER_SNAKE spelling (the one the API uses), used for storage and
//! configuration too, so a value reads the same in a log line, a database row and a grpcurl call.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A string that names no value of the enum it was parsed as.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseEnumError {
    kind: &'static str,
    value: String,
}

impl ParseEnumError {
    /// `value` is not a spelling of any `kind`.
    pub fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}

/// Declares a fieldless enum with its canonical spellings, `as_str`, `Display`, `FromStr` and
/// serde support (as that same spelling). Exported so the service spells its own enums the same
/// way.
#[macro_export]
macro_rules! spelled_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The canonical UPPER_SNAKE spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::ParseEnumError::new($kind, s)),
                }
            }
        }

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as $crate::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as $crate::serde::de::Error>::custom)
            }
        }
    };
}

spelled_enum! {
    /// The kind of number, which decides the provider that manages it.
    NumberType, "number type" {
        /// A number from the Calling Plan catalogue (the platform is the carrier).
        CallingPlan = "CALLING_PLAN",
        /// A number uploaded by an Operator Connect operator.
        OperatorConnect = "OPERATOR_CONNECT",
        /// A number of the customer's own carrier, routed through its SBC.
        DirectRouting = "DIRECT_ROUTING",
    }
}

spelled_enum! {
    /// What a number may be assigned to.
    Capability, "capability" {
        /// A user (a person).
        UserAssignment = "USER_ASSIGNMENT",
        /// A resource account (auto attendant, call queue).
        VoiceApplicationAssignment = "VOICE_APPLICATION_ASSIGNMENT",
        /// An audio conferencing bridge.
        ConferenceAssignment = "CONFERENCE_ASSIGNMENT",
    }
}

spelled_enum! {
    /// The kind of PSTN target a number is assigned to.
    TargetKind, "target kind" {
        /// A person.
        User = "USER",
        /// A resource account of a voice application.
        ResourceAccount = "RESOURCE_ACCOUNT",
    }
}

spelled_enum! {
    /// The role of a number for its target.
    AssignmentCategory, "assignment category" {
        /// The target's main number; at most one per target.
        Primary = "PRIMARY",
        /// An incoming-only number.
        Private = "PRIVATE",
        /// An alternate number.
        Alternate = "ALTERNATE",
    }
}

spelled_enum! {
    /// Whether a provider finishes provisioning at once.
    ActivationMode, "activation mode" {
        /// Every provisioning call answers `Done` or fails.
        Synchronous = "SYNCHRONOUS",
        /// Provisioning calls may answer `Pending`; the service polls.
        Asynchronous = "ASYNCHRONOUS",
    }
}

impl Capability {
    const fn bit(self) -> u8 {
        match self {
            Capability::UserAssignment => 1,
            Capability::VoiceApplicationAssignment => 2,
            Capability::ConferenceAssignment => 4,
        }
    }

    /// The capability a number needs to be assigned to a target of `kind`.
    pub const fn required_for(kind: TargetKind) -> Capability {
        match kind {
            TargetKind::User => Capability::UserAssignment,
            TargetKind::ResourceAccount => Capability::VoiceApplicationAssignment,
        }
    }
}

/// A set of [`Capability`] values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every capability.
    pub const fn all() -> Self {
        Self(7)
    }

    /// Whether `capability` is in the set.
    pub const fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether every capability of `other` is in the set.
    pub const fn contains_all(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds `capability`.
    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capabilities in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .iter()
            .copied()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Capabilities::empty();
        for capability in iter {
            set.insert(capability);
        }
        set
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Capability>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for t in NumberType::ALL {
            assert_eq!(t.as_str().parse::<NumberType>().unwrap(), *t);
        }
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().unwrap(), *c);
        }
        assert!("calling_plan".parse::<NumberType>().is_err());
    }

    #[test]
    fn capability_sets_keep_their_members() {
        let set: Capabilities = [Capability::UserAssignment, Capability::ConferenceAssignment]
            .into_iter()
            .collect();
        assert!(set.contains(Capability::UserAssignment));
        assert!(!set.contains(Capability::VoiceApplicationAssignment));
        assert_eq!(set.iter().collect::<Capabilities>(), set);
        assert!(Capabilities::all().contains_all(set));
        assert!(!set.contains_all(Capabilities::all()));
    }
}
