//! The provider registry: which adapter manages a number, decided from the number's inventory
//! record (its type and operator), never from what a caller claims.

use std::collections::BTreeMap;
use std::sync::Arc;

use numbers_calling_plan::CallingPlan;
use numbers_direct_routing::DirectRouting;
use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::{ErrorKind, Provider, ProviderError};
use numbers_remote::{RemoteProvider, RemoteSettings};

use crate::domain::{NumberType, Operator, PhoneNumber};
use crate::error::{Error, Reason};
use crate::metrics::Metered;

/// Every configured provider.
#[derive(Debug, Clone)]
pub struct Providers {
    calling_plan: Arc<CallingPlan>,
    /// The adapters, each counted and timed ([`Metered`]).
    calling_plan_adapter: Arc<Metered>,
    direct_routing: Arc<Metered>,
    operators: BTreeMap<String, Arc<Metered>>,
    /// Whether some operator's adapter runs in another process.
    remote: bool,
}

impl Providers {
    /// The Calling Plan over `catalogue`, Direct Routing, and an adapter for each configured
    /// operator: in-process, or over the network (`remote`, with the operator's endpoint) for
    /// operators whose adapter runs as its own process. Must run inside the Tokio runtime.
    pub fn new(
        catalogue: CallingPlan,
        operators: &[Operator],
        remote: &RemoteSettings,
    ) -> anyhow::Result<Self> {
        let remote_operators = operators.iter().any(|op| op.endpoint.is_some());
        let operators = operators
            .iter()
            .map(|op| {
                let settings = OperatorSettings {
                    id: op.id.clone(),
                    display_name: op.display_name.clone(),
                    countries: op.countries.iter().map(|c| c.as_str().to_owned()).collect(),
                    tenant_location_update_allowed: op.tenant_location_update_allowed,
                };
                let adapter: Arc<dyn Provider> = match &op.endpoint {
                    None => Arc::new(OperatorConnect::new(settings)),
                    Some(endpoint) => {
                        let descriptor = OperatorConnect::new(settings).descriptor().clone();
                        let remote = RemoteSettings {
                            endpoint: endpoint.clone(),
                            ..remote.clone()
                        };
                        Arc::new(
                            RemoteProvider::new(descriptor, remote)
                                .map_err(|e| anyhow::anyhow!("operator {}: {e}", op.id))?,
                        )
                    }
                };
                Ok((op.id.clone(), Arc::new(Metered::new(adapter))))
            })
            .collect::<anyhow::Result<_>>()?;
        let calling_plan = Arc::new(catalogue);
        Ok(Self {
            calling_plan_adapter: Arc::new(Metered::new(calling_plan.clone())),
            calling_plan,
            direct_routing: Arc::new(Metered::new(Arc::new(DirectRouting::default()))),
            operators,
            remote: remote_operators,
        })
    }

    /// Whether some operator's adapter runs in another process, where asking it takes a
    /// network call.
    pub fn has_remote(&self) -> bool {
        self.remote
    }

    /// The Calling Plan catalogue.
    pub fn calling_plan(&self) -> &CallingPlan {
        &self.calling_plan
    }

    /// The Calling Plan as an adapter, its calls counted.
    pub fn calling_plan_adapter(&self) -> &dyn Provider {
        self.calling_plan_adapter.as_ref()
    }

    /// The adapter of an operator, if configured.
    pub fn operator(&self, id: &str) -> Option<&dyn Provider> {
        self.operators.get(id).map(|p| p.as_ref() as &dyn Provider)
    }

    /// The adapter with this id.
    pub fn by_id(&self, id: &str) -> Option<&dyn Provider> {
        match id {
            numbers_calling_plan::ID => Some(self.calling_plan_adapter.as_ref()),
            numbers_direct_routing::ID => Some(self.direct_routing.as_ref()),
            operator => self.operator(operator),
        }
    }

    /// The adapter that manages `number`.
    pub fn for_number(&self, number: &PhoneNumber) -> Result<&dyn Provider, Error> {
        match (number.number_type, number.operator_id.as_deref()) {
            (NumberType::CallingPlan, _) => Ok(self.calling_plan_adapter.as_ref()),
            (NumberType::DirectRouting, _) => Ok(self.direct_routing.as_ref()),
            (NumberType::OperatorConnect, Some(id)) => self.operator(id).ok_or_else(|| {
                Error::new(
                    Reason::ProviderUnavailable,
                    format!(
                        "{} belongs to operator {id}, which is not configured on this service",
                        number.number
                    ),
                )
                .with("phoneNumber", &number.number)
                .with("operatorId", id)
            }),
            (NumberType::OperatorConnect, None) => Err(Error::internal(anyhow::anyhow!(
                "operator number {} has no operator",
                number.number
            ))),
        }
    }
}

/// A provider's error as the service reports it: refusals keep the provider's reason where the
/// API knows it, and only faults a retry can fix answer UNAVAILABLE.
pub fn provider_error(error: ProviderError) -> Error {
    let reason = match &error.kind {
        ErrorKind::Refused { reason } => match reason.as_str() {
            "EMERGENCY_LOCATION_LOCKED" => Reason::EmergencyLocationLocked,
            "EMERGENCY_LOCATION_REQUIRED" => Reason::EmergencyLocationRequired,
            "COUNTRY_NOT_SERVED" => Reason::CountryNotServed,
            _ => Reason::ProviderRefused,
        },
        ErrorKind::OutOfStock => Reason::OutOfStock,
        ErrorKind::Unavailable { .. } => Reason::ProviderUnavailable,
        ErrorKind::NotFound | ErrorKind::Unsupported | ErrorKind::Failed => Reason::ProviderFailed,
    };
    let mut converted = Error::new(reason, error.message.clone()).with("provider", &error.provider);
    if let ErrorKind::Refused { reason } = &error.kind {
        converted = converted.with("providerReason", reason);
    }
    converted
}
