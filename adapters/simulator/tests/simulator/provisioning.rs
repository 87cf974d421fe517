//! The carrier's side of provisioning: its rules, its tickets, its memory of idempotency keys,
//! and what it keeps across a restart and loses on a reset.

use std::time::Duration;

use numbers_operator_simulator::proto::{ResetRequest, SetActivationDelayRequest};
use numbers_operator_simulator::{IDEMPOTENCY_KEY_REQUIRED, SimulatorSettings};
use numbers_provider::{
    ActivationMode, AssignmentCategory, AssignmentCheck, ErrorKind, Progress, Provider, TargetKind,
};
use numbers_remote::duration_to_proto;

use crate::helpers::{NUMBER, TestCarrier, provisioning, settings};

fn ticket(progress: Progress) -> (String, Duration) {
    match progress {
        Progress::Pending {
            ticket,
            retry_after,
        } => (ticket, retry_after),
        Progress::Done => panic!("a delayed change completed at once"),
    }
}

#[tokio::test]
async fn the_carrier_describes_itself_and_applies_the_operator_rules() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    assert_eq!(
        provider.descriptor().activation,
        ActivationMode::Asynchronous
    );
    let described = provider.describe().await.unwrap();
    assert_eq!(&described, provider.descriptor());

    let error = provider
        .check_assignment(&AssignmentCheck {
            tenant_id: "tenant".into(),
            phone_number: "+33140000000".into(),
            country: "FR".into(),
            target_kind: TargetKind::User,
            usage_location: "FR".into(),
            category: AssignmentCategory::Primary,
            changes_emergency_location: false,
            has_emergency_location: false,
            location_update_supported: true,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::Refused {
            reason: "COUNTRY_NOT_SERVED".into()
        }
    );
    let error = provider
        .activate(&provisioning(NUMBER, ""))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::Refused {
            reason: IDEMPOTENCY_KEY_REQUIRED.into()
        }
    );
}

#[tokio::test]
async fn repeating_an_activation_with_its_key_provisions_once() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    for _ in 0..3 {
        let progress = provider.activate(&provisioning(NUMBER, "k1")).await;
        assert_eq!(progress.unwrap(), Progress::Done);
    }
    let stats = carrier.stats().await;
    assert_eq!(stats.requests["Activate"], 3);
    assert_eq!(stats.numbers.len(), 1);
    let number = &stats.numbers[0];
    assert_eq!(number.phone_number, NUMBER);
    let activations = number.activations.unwrap();
    assert_eq!((activations.accepted, activations.completed), (1, 1));

    provider
        .activate(&provisioning(NUMBER, "k2"))
        .await
        .unwrap();
    let stats = carrier.stats().await;
    assert_eq!(stats.numbers[0].activations.unwrap().accepted, 2);
}

#[tokio::test]
async fn a_delayed_change_keeps_its_ticket_until_it_completes() {
    let carrier = TestCarrier::start(Duration::from_secs(1)).await;
    let provider = carrier.provider();
    let change = provisioning(NUMBER, "k1");
    let (first, retry_after) = ticket(provider.activate(&change).await.unwrap());
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    let (again, _) = ticket(provider.activate(&change).await.unwrap());
    assert_eq!(first, again, "the same key, the same ticket");
    let (polled, _) = ticket(provider.poll(&first).await.unwrap());
    assert_eq!(polled, first);
    let activations = carrier.stats().await.numbers[0].activations.unwrap();
    assert_eq!((activations.accepted, activations.completed), (1, 0));

    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(provider.poll(&first).await.unwrap(), Progress::Done);
    assert_eq!(provider.activate(&change).await.unwrap(), Progress::Done);
    let activations = carrier.stats().await.numbers[0].activations.unwrap();
    assert_eq!((activations.accepted, activations.completed), (1, 1));

    // A delay changed at run time applies to the changes accepted afterwards.
    carrier
        .control
        .clone()
        .set_activation_delay(SetActivationDelayRequest {
            activation_delay: Some(duration_to_proto(Duration::ZERO)),
        })
        .await
        .unwrap();
    let progress = provider.deactivate(&change).await.unwrap();
    assert_eq!(progress, Progress::Done);
}

fn with_state_file(path: &std::path::Path) -> SimulatorSettings {
    SimulatorSettings {
        state_file: Some(path.to_owned()),
        ..settings(Duration::from_secs(60))
    }
}

#[tokio::test]
async fn the_state_file_survives_a_restart_and_a_reset_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("simulator.json");
    let change = provisioning(NUMBER, "k1");

    let carrier = TestCarrier::start_with(with_state_file(&path)).await;
    let (issued, _) = ticket(carrier.provider().activate(&change).await.unwrap());
    carrier.simulator.stop().await.unwrap();

    // Killed and restarted with its file: the carrier remembers the change and its key.
    let carrier = TestCarrier::start_with(with_state_file(&path)).await;
    let provider = carrier.provider();
    let (polled, _) = ticket(provider.poll(&issued).await.unwrap());
    assert_eq!(polled, issued);
    let (again, _) = ticket(provider.activate(&change).await.unwrap());
    assert_eq!(again, issued);
    assert_eq!(
        carrier.stats().await.numbers[0]
            .activations
            .unwrap()
            .accepted,
        1
    );

    // Started without the file, it knows nothing.
    let forgetful = TestCarrier::start(Duration::from_secs(60)).await;
    let error = forgetful.provider().poll(&issued).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound);

    // A reset loses the state, in memory and on disk.
    carrier
        .control
        .clone()
        .reset(ResetRequest {})
        .await
        .unwrap();
    assert_eq!(
        provider.poll(&issued).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert!(carrier.stats().await.numbers.is_empty());
    carrier.simulator.stop().await.unwrap();
    let restarted = TestCarrier::start_with(with_state_file(&path)).await;
    assert_eq!(
        restarted.provider().poll(&issued).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}
