//! The one way these tests start a simulator and reach it.

use std::time::Duration;

use numbers_operator_simulator::proto::{GetStatsRequest, InjectFailuresRequest, Stats};
use numbers_operator_simulator::{
    ControlClient, OperatorSettings, RunningSimulator, SimulatorSettings,
};
use numbers_provider::{ActivationMode, Descriptor, NumberType, Provisioning};
use numbers_remote::{RemoteProvider, RemoteSettings};

/// A number of a served country (US).
pub(crate) const NUMBER: &str = "+14255550102";

/// A simulator on a free port, with a client of its control service.
pub(crate) struct TestCarrier {
    pub(crate) simulator: RunningSimulator,
    pub(crate) control: ControlClient,
    pub(crate) operator: OperatorSettings,
}

/// The settings of a simulator that completes changes `activation_delay` after accepting them.
pub(crate) fn settings(activation_delay: Duration) -> SimulatorSettings {
    SimulatorSettings {
        operator: OperatorSettings {
            id: "fabrikam-telecom".into(),
            display_name: "Fabrikam Telecom".into(),
            countries: vec!["US".into(), "CA".into()],
            tenant_location_update_allowed: false,
        },
        activation_delay,
        ..SimulatorSettings::default()
    }
}

impl TestCarrier {
    pub(crate) async fn start(activation_delay: Duration) -> Self {
        Self::start_with(settings(activation_delay)).await
    }

    pub(crate) async fn start_with(settings: SimulatorSettings) -> Self {
        let operator = settings.operator.clone();
        let simulator = RunningSimulator::start(settings)
            .await
            .expect("the simulator starts");
        let control = simulator.control();
        Self {
            simulator,
            control,
            operator,
        }
    }

    /// The descriptor the service would configure for this carrier.
    pub(crate) fn descriptor(&self) -> Descriptor {
        Descriptor {
            id: self.operator.id.clone(),
            display_name: self.operator.display_name.clone(),
            number_type: NumberType::OperatorConnect,
            countries: self.operator.countries.clone(),
            tenant_location_update_allowed: self.operator.tenant_location_update_allowed,
            activation: ActivationMode::Synchronous,
            base_and_extensions_exclusive: false,
            catalogue: false,
            lists_numbers: true,
        }
    }

    /// A client with quick retries and a breaker that stays out of the way, changed by `tune`.
    pub(crate) fn provider_with(&self, tune: impl FnOnce(&mut RemoteSettings)) -> RemoteProvider {
        let mut settings = RemoteSettings {
            timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(10),
            breaker_threshold: 100,
            ..RemoteSettings::new(self.simulator.endpoint())
        };
        tune(&mut settings);
        RemoteProvider::new(self.descriptor(), settings).expect("a valid endpoint")
    }

    pub(crate) fn provider(&self) -> RemoteProvider {
        self.provider_with(|_| {})
    }

    pub(crate) async fn stats(&self) -> Stats {
        self.control
            .clone()
            .get_stats(GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner()
    }

    /// Adapter requests of `rpc` (such as `Activate`) the simulator received.
    pub(crate) async fn requests(&self, rpc: &str) -> u64 {
        self.stats().await.requests.get(rpc).copied().unwrap_or(0)
    }

    pub(crate) async fn inject(&self, request: InjectFailuresRequest) {
        self.control
            .clone()
            .inject_failures(request)
            .await
            .expect("InjectFailures");
    }
}

/// A provisioning request for `number` with `key`.
pub(crate) fn provisioning(number: &str, key: &str) -> Provisioning {
    Provisioning {
        tenant_id: "tenant".into(),
        phone_number: number.into(),
        target_id: "user".into(),
        emergency_address: None,
        idempotency_key: key.into(),
    }
}
