//! What the carrier holds, as it tells it over ListNumbers: the numbers it was asked to
//! provision, in number order and paged, what tampering behind the service's back makes of
//! them, and what survives a restart or a reset.

use std::sync::Arc;
use std::time::Duration;

use numbers_operator_connect::OperatorConnect;
use numbers_operator_simulator::OperatorSettings;
use numbers_operator_simulator::proto::tamper_request::Change;
use numbers_operator_simulator::proto::{
    AdapterRpc, AddNumber, DeactivateNumber, DropNumber, EnableNumber, RegisterLocation,
    ResetRequest, TamperRequest,
};
use numbers_provider::{
    AssignmentCheck, CarrierNumber, CarrierPage, CarrierState, Descriptor, EmergencyAddress,
    ErrorKind, LocationCheck, Progress, Provider, ProviderResult, Provisioning,
};
use numbers_remote::{AdapterService, RemoteProvider, RemoteSettings};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::helpers::{TestCarrier, settings};

const TENANT: &str = "tenant";

/// An activation of `number` for `tenant`, to `target`, with the emergency location `location`.
fn activation(tenant: &str, number: &str, target: &str, location: Option<&str>) -> Provisioning {
    Provisioning {
        tenant_id: tenant.into(),
        phone_number: number.into(),
        target_id: target.into(),
        emergency_address: location.map(|id| EmergencyAddress {
            location_id: id.into(),
            country: "US".into(),
            formatted: "1 Main St, Redmond".into(),
        }),
        idempotency_key: format!("act-{number}-{target}"),
    }
}

fn listed(
    number: &str,
    state: CarrierState,
    target: Option<&str>,
    location: Option<&str>,
) -> CarrierNumber {
    CarrierNumber {
        phone_number: number.into(),
        state,
        target_id: target.map(Into::into),
        emergency_location_id: location.map(Into::into),
    }
}

/// Every number the carrier lists for `tenant`, in one page.
async fn list(provider: &RemoteProvider, tenant: &str) -> Vec<CarrierNumber> {
    let page = provider.list_numbers(tenant, None, 100).await.unwrap();
    assert_eq!(page.next_after, None, "more than one page");
    page.numbers
}

async fn activate(provider: &RemoteProvider, tenant: &str, number: &str, target: &str) {
    let change = activation(tenant, number, target, Some("loc-1"));
    assert_eq!(provider.activate(&change).await.unwrap(), Progress::Done);
}

async fn tamper(carrier: &TestCarrier, number: &str, change: Change) -> Result<(), tonic::Status> {
    carrier
        .control
        .clone()
        .tamper(TamperRequest {
            phone_number: number.into(),
            change: Some(change),
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn the_carrier_lists_what_it_provisioned_for_each_tenant_in_number_order() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    assert!(provider.describe().await.unwrap().lists_numbers);
    assert!(list(&provider, TENANT).await.is_empty());

    activate(&provider, TENANT, "+14255550103", "user-3").await;
    activate(&provider, TENANT, "+14255550101", "user-1").await;
    activate(&provider, "other", "+14255550102", "user-2").await;
    let moved = Provisioning {
        emergency_address: None,
        idempotency_key: "loc-none".into(),
        ..activation(TENANT, "+14255550101", "user-1", None)
    };
    assert_eq!(
        provider.update_location(&moved).await.unwrap(),
        Progress::Done
    );

    assert_eq!(
        list(&provider, TENANT).await,
        [
            listed("+14255550101", CarrierState::Active, Some("user-1"), None),
            listed(
                "+14255550103",
                CarrierState::Active,
                Some("user-3"),
                Some("loc-1")
            ),
        ]
    );
    assert_eq!(
        list(&provider, "other").await,
        [listed(
            "+14255550102",
            CarrierState::Active,
            Some("user-2"),
            Some("loc-1")
        )]
    );

    let deactivation = Provisioning {
        idempotency_key: "deact".into(),
        ..activation(TENANT, "+14255550103", "user-3", None)
    };
    assert_eq!(
        provider.deactivate(&deactivation).await.unwrap(),
        Progress::Done
    );
    assert_eq!(
        list(&provider, TENANT).await[1],
        listed("+14255550103", CarrierState::Inactive, None, None)
    );
}

#[tokio::test]
async fn a_change_not_finished_is_listed_pending_until_it_completes() {
    let carrier = TestCarrier::start(Duration::from_millis(300)).await;
    let provider = carrier.provider();
    let change = activation(TENANT, "+14255550101", "user-1", Some("loc-1"));
    let Progress::Pending { retry_after, .. } = provider.activate(&change).await.unwrap() else {
        panic!("a delayed activation completed at once");
    };
    let pending = listed(
        "+14255550101",
        CarrierState::Pending,
        Some("user-1"),
        Some("loc-1"),
    );
    assert_eq!(list(&provider, TENANT).await, [pending]);
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(
        list(&provider, TENANT).await,
        [listed(
            "+14255550101",
            CarrierState::Active,
            Some("user-1"),
            Some("loc-1")
        )]
    );
}

#[tokio::test]
async fn pages_walk_every_number_once_after_the_one_given() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    let numbers: Vec<String> = (0..5).map(|i| format!("+1425555010{i}")).collect();
    for number in numbers.iter().rev() {
        activate(&provider, TENANT, number, "user").await;
    }
    activate(&provider, "other", "+14255550109", "user").await;

    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let page = provider
            .list_numbers(TENANT, after.as_deref(), 2)
            .await
            .unwrap();
        sizes.push(page.numbers.len());
        walked.extend(page.numbers.into_iter().map(|n| n.phone_number));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, numbers);
    assert_eq!(sizes, [2, 2, 1]);

    // `after` need not be a number the carrier holds.
    let page = provider
        .list_numbers(TENANT, Some("+142555501025"), 10)
        .await
        .unwrap();
    let rest: Vec<_> = page
        .numbers
        .iter()
        .map(|n| n.phone_number.as_str())
        .collect();
    assert_eq!(rest, ["+14255550103", "+14255550104"]);
    assert_eq!(page.next_after, None);
    // Past the last number, an empty last page.
    let page = provider
        .list_numbers(TENANT, Some("+14255550104"), 10)
        .await
        .unwrap();
    assert!(page.numbers.is_empty() && page.next_after.is_none());
}

#[tokio::test]
async fn tampering_changes_what_the_carrier_lists_behind_the_service_s_back() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    for number in [
        "+14255550101",
        "+14255550102",
        "+14255550103",
        "+14255550104",
    ] {
        activate(&provider, TENANT, number, "user").await;
    }
    let stats_before = carrier.stats().await.numbers;

    tamper(&carrier, "+14255550101", Change::Drop(DropNumber {}))
        .await
        .unwrap();
    tamper(
        &carrier,
        "+14255550102",
        Change::Deactivate(DeactivateNumber {}),
    )
    .await
    .unwrap();
    let enable = EnableNumber {
        target_id: "intruder".into(),
    };
    tamper(&carrier, "+14255550103", Change::Enable(enable))
        .await
        .unwrap();
    let register = RegisterLocation {
        location_id: "loc-elsewhere".into(),
    };
    tamper(&carrier, "+14255550104", Change::RegisterLocation(register))
        .await
        .unwrap();
    let add = AddNumber {
        tenant_id: TENANT.into(),
        target_id: "stranger".into(),
        emergency_location_id: String::new(),
    };
    tamper(&carrier, "+14255550105", Change::Add(add.clone()))
        .await
        .unwrap();

    assert_eq!(
        list(&provider, TENANT).await,
        [
            listed("+14255550102", CarrierState::Inactive, None, Some("loc-1")),
            listed(
                "+14255550103",
                CarrierState::Active,
                Some("intruder"),
                Some("loc-1")
            ),
            listed(
                "+14255550104",
                CarrierState::Active,
                Some("user"),
                Some("loc-elsewhere")
            ),
            listed("+14255550105", CarrierState::Active, Some("stranger"), None),
        ]
    );
    // The provisioning the carrier was asked for is unchanged: tampering is not provisioning.
    assert_eq!(carrier.stats().await.numbers, stats_before);

    // What cannot be tampered with is refused.
    let dropped = tamper(&carrier, "+14255550101", Change::Drop(DropNumber {})).await;
    assert_eq!(dropped.unwrap_err().code(), Code::NotFound);
    let again = tamper(&carrier, "+14255550105", Change::Add(add)).await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);
    let nameless = EnableNumber {
        target_id: String::new(),
    };
    let error = tamper(&carrier, "+14255550103", Change::Enable(nameless)).await;
    assert_eq!(error.unwrap_err().code(), Code::InvalidArgument);
    let error = carrier
        .control
        .clone()
        .tamper(TamperRequest {
            phone_number: "+14255550103".into(),
            change: None,
        })
        .await;
    assert_eq!(error.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn what_the_carrier_holds_survives_a_restart_and_a_reset_forgets_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("simulator.json");
    let with_file = || numbers_operator_simulator::SimulatorSettings {
        state_file: Some(path.clone()),
        ..settings(Duration::ZERO)
    };

    let carrier = TestCarrier::start_with(with_file()).await;
    activate(&carrier.provider(), TENANT, "+14255550101", "user").await;
    activate(&carrier.provider(), TENANT, "+14255550102", "user").await;
    let enable = EnableNumber {
        target_id: "intruder".into(),
    };
    tamper(&carrier, "+14255550102", Change::Enable(enable))
        .await
        .unwrap();
    let held = list(&carrier.provider(), TENANT).await;
    assert_eq!(held.len(), 2);
    carrier.simulator.stop().await.unwrap();

    // Restarted with its file: the same numbers, tampering included.
    let carrier = TestCarrier::start_with(with_file()).await;
    let provider = carrier.provider();
    assert_eq!(list(&provider, TENANT).await, held);
    assert_eq!(held[1].target_id.as_deref(), Some("intruder"));

    // Started without it, it holds nothing.
    let forgetful = TestCarrier::start(Duration::ZERO).await;
    assert!(list(&forgetful.provider(), TENANT).await.is_empty());

    // A reset forgets the numbers, in memory and on disk.
    carrier
        .control
        .clone()
        .reset(ResetRequest {})
        .await
        .unwrap();
    assert!(list(&provider, TENANT).await.is_empty());
    carrier.simulator.stop().await.unwrap();
    let restarted = TestCarrier::start_with(with_file()).await;
    assert!(list(&restarted.provider(), TENANT).await.is_empty());
}

#[tokio::test]
async fn listing_goes_through_the_faults_and_the_retries_like_any_call() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    activate(&provider, TENANT, "+14255550101", "user").await;
    let fail = |count| numbers_operator_simulator::proto::InjectFailuresRequest {
        rpc: Some(AdapterRpc::ListNumbers.into()),
        code: numbers_operator_simulator::proto::FailureCode::Unavailable.into(),
        count,
        ..Default::default()
    };
    // Within the retries: invisible.
    carrier.inject(fail(1)).await;
    assert_eq!(list(&provider, TENANT).await.len(), 1);
    // Beyond them: unavailable, retryable.
    carrier.inject(fail(0)).await;
    let error = provider.list_numbers(TENANT, None, 10).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(carrier.requests("ListNumbers").await, 2 + 3);
}

/// Serves `provider` over the adapter protocol on a free port; returns a client of it
/// configured with the provider's own descriptor, and the server's task.
async fn serve<P: Provider + 'static>(
    provider: P,
) -> (RemoteProvider, tokio::task::JoinHandle<()>) {
    let descriptor = provider.descriptor().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(AdapterService::new(Arc::new(provider)).into_server())
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let settings = RemoteSettings {
        backoff: Duration::from_millis(10),
        ..RemoteSettings::new(format!("http://{address}"))
    };
    (RemoteProvider::new(descriptor, settings).unwrap(), server)
}

/// The in-process operator adapter, but listing its numbers backwards, as a careless carrier's
/// adapter might.
#[derive(Debug)]
struct Backwards {
    rules: OperatorConnect,
    descriptor: Descriptor,
}

#[async_trait::async_trait]
impl Provider for Backwards {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        self.rules.check_assignment(check).await
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        self.rules.check_location_update(check).await
    }

    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.rules.activate(change).await
    }

    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.rules.deactivate(change).await
    }

    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.rules.update_location(change).await
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        self.rules.poll(ticket).await
    }

    async fn list_numbers(
        &self,
        _tenant_id: &str,
        _after: Option<&str>,
        _limit: usize,
    ) -> ProviderResult<CarrierPage> {
        Ok(CarrierPage {
            numbers: vec![
                listed("+14255550102", CarrierState::Active, Some("u"), None),
                listed("+14255550101", CarrierState::Active, Some("u"), None),
            ],
            next_after: None,
        })
    }
}

#[tokio::test]
async fn a_page_out_of_order_fails_the_call_and_is_not_retried() {
    let rules = OperatorConnect::new(OperatorSettings {
        id: "careless-operator".into(),
        display_name: "Careless Operator".into(),
        countries: vec!["US".into()],
        tenant_location_update_allowed: false,
    });
    let descriptor = Descriptor {
        lists_numbers: true,
        ..rules.descriptor().clone()
    };
    let (provider, server) = serve(Backwards { rules, descriptor }).await;
    let error = provider.list_numbers(TENANT, None, 10).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Failed, "{error}");
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("answered ListNumbers with a malformed"),
        "{error}"
    );
    server.abort();
}

#[tokio::test]
async fn a_carrier_that_cannot_list_answers_unsupported_over_the_protocol() {
    // The in-process operator adapter, which does not list, served as a remote carrier.
    let operator = OperatorConnect::new(OperatorSettings {
        id: "plain-operator".into(),
        display_name: "Plain Operator".into(),
        countries: vec!["US".into()],
        tenant_location_update_allowed: false,
    });
    let (provider, server) = serve(operator).await;
    assert!(!provider.describe().await.unwrap().lists_numbers);
    let error = provider.list_numbers(TENANT, None, 10).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unsupported, "{error}");
    assert_eq!(error.provider, "plain-operator");
    server.abort();
}
