//! Operator Connect adapters pass the provider conformance kit, whether or not the operator
//! lets tenants change emergency locations.

use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::testkit::{Fixture, run};

fn operator(tenant_location_update_allowed: bool) -> OperatorConnect {
    OperatorConnect::new(OperatorSettings {
        id: "fabrikam-telecom".into(),
        display_name: "Fabrikam Telecom".into(),
        countries: vec!["US".into(), "CA".into()],
        tenant_location_update_allowed,
    })
}

#[tokio::test]
async fn an_operator_that_locks_locations_conforms() {
    let provider = operator(false);
    run(&Fixture::new(&provider, "+14255550102", "US")).await;
}

#[tokio::test]
async fn an_operator_that_allows_location_changes_conforms() {
    let provider = operator(true);
    run(&Fixture::new(&provider, "+16045550102", "CA")).await;
}
