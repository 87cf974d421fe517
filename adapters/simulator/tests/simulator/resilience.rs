//! What a network adds, and how `RemoteProvider` absorbs it: deadlines, retries of what a retry
//! can fix (and only that), and a circuit breaker that stops calling a carrier that keeps
//! failing.

use std::time::{Duration, Instant};

use numbers_operator_simulator::proto::{
    AdapterRpc, ClearFailuresRequest, FailureCode, InjectFailuresRequest, SetLatencyRequest,
};
use numbers_provider::{
    AssignmentCategory, AssignmentCheck, ErrorKind, Progress, Provider, TargetKind,
};
use numbers_remote::{RemoteProvider, RemoteSettings, duration_to_proto};

use crate::helpers::{NUMBER, TestCarrier, provisioning};

fn assignment() -> AssignmentCheck {
    AssignmentCheck {
        tenant_id: "tenant".into(),
        phone_number: NUMBER.into(),
        country: "US".into(),
        target_kind: TargetKind::User,
        usage_location: "US".into(),
        category: AssignmentCategory::Primary,
        changes_emergency_location: false,
        has_emergency_location: false,
        location_update_supported: true,
    }
}

fn unavailable(rpc: Option<AdapterRpc>, count: u64) -> InjectFailuresRequest {
    InjectFailuresRequest {
        rpc: rpc.map(Into::into),
        code: FailureCode::Unavailable.into(),
        count,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_carrier_slower_than_the_deadline_is_unavailable_and_retryable() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    carrier
        .control
        .clone()
        .set_latency(SetLatencyRequest {
            latency: Some(duration_to_proto(Duration::from_secs(2))),
        })
        .await
        .unwrap();
    let provider = carrier.provider_with(|s| {
        s.timeout = Duration::from_millis(200);
        s.retries = 1;
    });
    let started = Instant::now();
    let error = provider.check_assignment(&assignment()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.kind, ErrorKind::Unavailable { retry_after: None });
    assert!(error.message.contains("did not answer"), "{error}");
    assert_eq!(error.provider, "fabrikam-telecom");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the deadline held"
    );
    assert_eq!(carrier.requests("CheckAssignment").await, 2, "one retry");
}

#[tokio::test]
async fn transient_failures_within_the_retries_are_invisible() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider_with(|s| s.retries = 2);
    carrier
        .inject(unavailable(Some(AdapterRpc::Activate), 2))
        .await;
    let progress = provider
        .activate(&provisioning(NUMBER, "k1"))
        .await
        .expect("two failures are retried away");
    assert_eq!(progress, Progress::Done);
    let stats = carrier.stats().await;
    assert_eq!(stats.requests["Activate"], 3);
    assert_eq!(stats.failures_injected["Activate"], 2);
}

#[tokio::test]
async fn transient_failures_beyond_the_retries_surface_as_unavailable() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider_with(|s| s.retries = 2);
    carrier
        .inject(unavailable(Some(AdapterRpc::Activate), 3))
        .await;
    let error = provider
        .activate(&provisioning(NUMBER, "k1"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(matches!(error.kind, ErrorKind::Unavailable { .. }));
    assert_eq!(carrier.requests("Activate").await, 3, "1 try + 2 retries");
    // The rule used its three failures: the carrier is back.
    assert!(provider.activate(&provisioning(NUMBER, "k1")).await.is_ok());
}

#[tokio::test]
async fn a_retry_hint_longer_than_a_deadline_is_left_to_the_caller() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider_with(|s| s.retries = 2);
    carrier
        .inject(InjectFailuresRequest {
            retry_after: Some(duration_to_proto(Duration::from_secs(30))),
            ..unavailable(None, 1)
        })
        .await;
    let error = provider.poll("any").await.unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::Unavailable {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(carrier.requests("Poll").await, 1);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_keeps_its_reason() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider_with(|s| {
        s.retries = 2;
        s.breaker_threshold = 1;
    });
    carrier
        .inject(InjectFailuresRequest {
            rpc: Some(AdapterRpc::Deactivate.into()),
            code: FailureCode::FailedPrecondition.into(),
            reason: "NUMBER_NOT_PROVISIONED".into(),
            ..Default::default()
        })
        .await;
    let error = provider
        .deactivate(&provisioning(NUMBER, "k1"))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::Refused {
            reason: "NUMBER_NOT_PROVISIONED".into()
        }
    );
    assert!(!error.is_retryable());
    assert_eq!(carrier.requests("Deactivate").await, 1, "never retried");
    assert!(
        !provider.is_circuit_open(),
        "a refusal proves the carrier alive"
    );
}

#[tokio::test]
async fn failures_aimed_at_one_rpc_leave_the_others_alone() {
    let carrier = TestCarrier::start(Duration::from_secs(60)).await;
    let provider = carrier.provider_with(|s| s.retries = 0);
    carrier.inject(unavailable(Some(AdapterRpc::Poll), 0)).await;
    let Progress::Pending { ticket, .. } = provider
        .activate(&provisioning(NUMBER, "k1"))
        .await
        .unwrap()
    else {
        panic!("a change of a minute completed at once");
    };
    assert!(provider.poll(&ticket).await.unwrap_err().is_retryable());
    carrier
        .control
        .clone()
        .clear_failures(ClearFailuresRequest {})
        .await
        .unwrap();
    assert!(matches!(
        provider.poll(&ticket).await.unwrap(),
        Progress::Pending { .. }
    ));
}

#[tokio::test]
async fn the_breaker_opens_after_the_threshold_and_closes_once_the_carrier_heals() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let cooldown = Duration::from_secs(1);
    let provider = carrier.provider_with(|s| {
        s.retries = 0;
        s.breaker_threshold = 3;
        s.breaker_cooldown = cooldown;
    });
    carrier.inject(unavailable(None, 0)).await;
    for _ in 0..3 {
        let error = provider.check_assignment(&assignment()).await.unwrap_err();
        assert!(!error.message.contains("circuit open"), "{error}");
    }
    assert!(provider.is_circuit_open());

    // Open: calls fail at once, retryable, without reaching the carrier.
    let started = Instant::now();
    for _ in 0..5 {
        let error = provider.check_assignment(&assignment()).await.unwrap_err();
        assert!(error.is_retryable());
        assert!(error.message.contains("circuit open"), "{error}");
        assert!(matches!(
            error.kind,
            ErrorKind::Unavailable {
                retry_after: Some(_)
            }
        ));
    }
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(carrier.requests("CheckAssignment").await, 3);

    // After the cool-down one trial goes; the carrier still fails, so it opens again.
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert!(provider.check_assignment(&assignment()).await.is_err());
    assert_eq!(carrier.requests("CheckAssignment").await, 4);
    let error = provider.check_assignment(&assignment()).await.unwrap_err();
    assert!(error.message.contains("circuit open"), "{error}");
    assert_eq!(carrier.requests("CheckAssignment").await, 4);

    // The carrier heals: after the cool-down the trial succeeds and the circuit closes.
    carrier
        .control
        .clone()
        .clear_failures(ClearFailuresRequest {})
        .await
        .unwrap();
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    provider
        .check_assignment(&assignment())
        .await
        .expect("the trial call");
    assert!(!provider.is_circuit_open());
    provider
        .check_assignment(&assignment())
        .await
        .expect("a call after the circuit closed");
    assert_eq!(carrier.requests("CheckAssignment").await, 6);
}

#[tokio::test]
async fn a_dead_carrier_does_not_stop_construction_and_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = RemoteProvider::new(
        carrier.descriptor(),
        RemoteSettings {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..RemoteSettings::new(address.to_string())
        },
    )
    .expect("construction never connects");
    let error = provider.check_assignment(&assignment()).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.provider, "fabrikam-telecom");
}

#[test]
fn an_endpoint_that_is_not_a_uri_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let error = RemoteProvider::new(
        numbers_provider::Descriptor {
            id: "x".into(),
            display_name: "X".into(),
            number_type: numbers_provider::NumberType::OperatorConnect,
            countries: vec![],
            tenant_location_update_allowed: false,
            activation: numbers_provider::ActivationMode::Synchronous,
            base_and_extensions_exclusive: false,
            catalogue: false,
            lists_numbers: false,
        },
        RemoteSettings::new("http://exa mple"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("exa mple"), "{error}");
}
