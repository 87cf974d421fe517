//! The `SimulatorControl` service: how demos and tests steer the simulator while it runs.
//! Handlers convert the request and set the faults or the operator; nothing else.

use std::sync::Arc;

use numbers_remote::duration_from_proto;
use tonic::{Request, Response, Status};

use crate::faults::{FailureCode, FailureRule, Faults, Rpc};
use crate::operator::{Counts, SimulatedOperator, TamperError, Tampering};
use crate::proto;
use crate::proto::simulator_control_server::{SimulatorControl, SimulatorControlServer};

/// The control service of one simulator.
#[derive(Debug)]
pub(crate) struct Control {
    operator: Arc<SimulatedOperator>,
    faults: Arc<Faults>,
}

impl Control {
    pub(crate) fn server(
        operator: Arc<SimulatedOperator>,
        faults: Arc<Faults>,
    ) -> SimulatorControlServer<Self> {
        SimulatorControlServer::new(Self { operator, faults })
    }
}

fn rpc(value: i32) -> Result<Rpc, Status> {
    use proto::AdapterRpc as P;
    Ok(match P::try_from(value) {
        Ok(P::Describe) => Rpc::Describe,
        Ok(P::CheckAssignment) => Rpc::CheckAssignment,
        Ok(P::CheckLocationUpdate) => Rpc::CheckLocationUpdate,
        Ok(P::Activate) => Rpc::Activate,
        Ok(P::Deactivate) => Rpc::Deactivate,
        Ok(P::UpdateLocation) => Rpc::UpdateLocation,
        Ok(P::Poll) => Rpc::Poll,
        Ok(P::Search) => Rpc::Search,
        Ok(P::Acquire) => Rpc::Acquire,
        Ok(P::Release) => Rpc::Release,
        Ok(P::ListNumbers) => Rpc::ListNumbers,
        Ok(P::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "rpc {value} is not an adapter RPC; leave it unset for every RPC"
            )));
        }
    })
}

fn failure_code(value: i32) -> Result<FailureCode, Status> {
    use proto::FailureCode as P;
    Ok(match P::try_from(value) {
        Ok(P::Unspecified | P::Unavailable) => FailureCode::Unavailable,
        Ok(P::FailedPrecondition) => FailureCode::FailedPrecondition,
        Ok(P::DeadlineExceeded) => FailureCode::DeadlineExceeded,
        Ok(P::ResourceExhausted) => FailureCode::ResourceExhausted,
        Ok(P::Aborted) => FailureCode::Aborted,
        Ok(P::NotFound) => FailureCode::NotFound,
        Ok(P::Internal) => FailureCode::Internal,
        Err(_) => return Err(Status::invalid_argument(format!("unknown code {value}"))),
    })
}

/// What a Tamper request asks for; required fields must be set.
fn tampering(change: Option<proto::tamper_request::Change>) -> Result<Tampering, Status> {
    use proto::tamper_request::Change as C;
    let required = |value: String, name: &str| {
        if value.is_empty() {
            Err(Status::invalid_argument(format!("{name} is required")))
        } else {
            Ok(value)
        }
    };
    Ok(match change {
        None => {
            return Err(Status::invalid_argument(
                "say which change: drop, deactivate, enable, register_location or add",
            ));
        }
        Some(C::Drop(_)) => Tampering::Drop,
        Some(C::Deactivate(_)) => Tampering::Deactivate,
        Some(C::Enable(e)) => Tampering::EnableFor(required(e.target_id, "enable.target_id")?),
        Some(C::RegisterLocation(r)) => {
            Tampering::RegisterLocation(required(r.location_id, "register_location.location_id")?)
        }
        Some(C::Add(a)) => Tampering::Add {
            tenant_id: required(a.tenant_id, "add.tenant_id")?,
            target_id: required(a.target_id, "add.target_id")?,
            emergency_location_id: (!a.emergency_location_id.is_empty())
                .then_some(a.emergency_location_id),
        },
    })
}

fn counts(counts: Counts) -> Option<proto::ProvisioningStats> {
    Some(proto::ProvisioningStats {
        accepted: counts.accepted,
        completed: counts.completed,
    })
}

#[tonic::async_trait]
impl SimulatorControl for Control {
    async fn inject_failures(
        &self,
        request: Request<proto::InjectFailuresRequest>,
    ) -> Result<Response<proto::InjectFailuresResponse>, Status> {
        let request = request.into_inner();
        let rate = request.rate.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(Status::invalid_argument("rate must be between 0 and 1"));
        }
        let rule = FailureRule {
            rpc: request.rpc.map(rpc).transpose()?,
            code: failure_code(request.code)?,
            reason: request.reason,
            count: (request.count > 0).then_some(request.count),
            rate,
            retry_after: request.retry_after.map(duration_from_proto),
        };
        tracing::info!(?rule, "injecting failures");
        self.faults.set_rule(Some(rule));
        Ok(Response::new(proto::InjectFailuresResponse {}))
    }

    async fn clear_failures(
        &self,
        _request: Request<proto::ClearFailuresRequest>,
    ) -> Result<Response<proto::ClearFailuresResponse>, Status> {
        tracing::info!("no more failures");
        self.faults.set_rule(None);
        Ok(Response::new(proto::ClearFailuresResponse {}))
    }

    async fn set_latency(
        &self,
        request: Request<proto::SetLatencyRequest>,
    ) -> Result<Response<proto::SetLatencyResponse>, Status> {
        let latency = request
            .into_inner()
            .latency
            .map(duration_from_proto)
            .unwrap_or_default();
        tracing::info!(latency_ms = latency.as_millis(), "latency set");
        self.faults.set_latency(latency);
        Ok(Response::new(proto::SetLatencyResponse {}))
    }

    async fn set_activation_delay(
        &self,
        request: Request<proto::SetActivationDelayRequest>,
    ) -> Result<Response<proto::SetActivationDelayResponse>, Status> {
        let delay = request
            .into_inner()
            .activation_delay
            .map(duration_from_proto)
            .unwrap_or_default();
        tracing::info!(delay_ms = delay.as_millis(), "activation delay set");
        self.operator.set_activation_delay(delay);
        Ok(Response::new(proto::SetActivationDelayResponse {}))
    }

    async fn reset(
        &self,
        _request: Request<proto::ResetRequest>,
    ) -> Result<Response<proto::ResetResponse>, Status> {
        tracing::info!("losing state");
        self.operator
            .reset()
            .map_err(|e| Status::internal(format!("could not empty the state file: {e}")))?;
        Ok(Response::new(proto::ResetResponse {}))
    }

    async fn get_stats(
        &self,
        _request: Request<proto::GetStatsRequest>,
    ) -> Result<Response<proto::Stats>, Status> {
        let requests = self.faults.stats();
        let numbers = self
            .operator
            .counts()
            .into_iter()
            .map(|(phone_number, c)| proto::NumberStats {
                phone_number,
                activations: counts(c.activations),
                deactivations: counts(c.deactivations),
                location_updates: counts(c.location_updates),
            })
            .collect();
        let by_name = |map: std::collections::BTreeMap<&'static str, u64>| {
            map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        Ok(Response::new(proto::Stats {
            numbers,
            requests: by_name(requests.requests),
            failures_injected: by_name(requests.failures_injected),
        }))
    }

    async fn tamper(
        &self,
        request: Request<proto::TamperRequest>,
    ) -> Result<Response<proto::TamperResponse>, Status> {
        let request = request.into_inner();
        if request.phone_number.is_empty() {
            return Err(Status::invalid_argument("phone_number is required"));
        }
        let tampering = tampering(request.change)?;
        tracing::info!(phone_number = %request.phone_number, ?tampering, "tampering");
        self.operator
            .tamper(&request.phone_number, tampering)
            .map_err(|error| match &error {
                TamperError::NotHeld(_) => Status::not_found(error.to_string()),
                TamperError::AlreadyHeld(_) => Status::already_exists(error.to_string()),
                TamperError::Save(_) => Status::internal(error.to_string()),
            })?;
        Ok(Response::new(proto::TamperResponse {}))
    }
}
