//! A remote carrier passes the same conformance kit as the in-process adapters, whether it
//! answers "done" at once or completes its changes later.

use std::time::Duration;

use numbers_provider::testkit::{Fixture, run};

use crate::helpers::{NUMBER, TestCarrier, settings};

#[tokio::test]
async fn a_carrier_that_completes_at_once_conforms() {
    let carrier = TestCarrier::start(Duration::ZERO).await;
    let provider = carrier.provider();
    run(&Fixture::new(&provider, NUMBER, "US")).await;
}

#[tokio::test]
async fn a_carrier_that_completes_later_conforms() {
    let carrier = TestCarrier::start(Duration::from_millis(200)).await;
    let provider = carrier.provider();
    let fixture = Fixture {
        max_polls: 100,
        ..Fixture::new(&provider, NUMBER, "US")
    };
    run(&fixture).await;
}

#[tokio::test]
async fn a_carrier_that_lets_tenants_change_locations_conforms() {
    let mut settings = settings(Duration::from_millis(50));
    settings.operator.tenant_location_update_allowed = true;
    let carrier = TestCarrier::start_with(settings).await;
    let provider = carrier.provider();
    run(&Fixture::new(&provider, "+16045550102", "CA")).await;
}
