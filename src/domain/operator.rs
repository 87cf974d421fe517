//! Operator Connect operators, and the consent a tenant gives them.

use numbers_provider::ActivationMode;
use serde::{Deserialize, Serialize};

use super::Country;

/// An Operator Connect operator, as declared in the service's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Stable id, such as `fabrikam-telecom`.
    pub id: String,
    /// The operator's name.
    pub display_name: String,
    /// The countries served.
    pub countries: Vec<Country>,
    /// Whether tenants may change the emergency location of its numbers by default.
    pub tenant_location_update_allowed: bool,
    /// How the operator puts changes into effect.
    pub activation_mode: ActivationMode,
    /// Where its adapter runs as its own process (`numbers.adapter.v1`); `None` for an
    /// operator integrated in-process.
    pub endpoint: Option<String>,
}

/// A tenant's consent to an operator: the operator may upload numbers of these countries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorConsent {
    /// The operator.
    pub operator_id: String,
    /// The countries the tenant enabled the operator for.
    pub countries: Vec<Country>,
}
