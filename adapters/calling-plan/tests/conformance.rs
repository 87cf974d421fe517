//! The Calling Plan adapter passes the provider conformance kit.

use numbers_calling_plan::CallingPlan;
use numbers_provider::testkit::{Fixture, run};

#[tokio::test]
async fn the_calling_plan_conforms() {
    let provider = CallingPlan::with_default_catalogue();
    run(&Fixture::new(&provider, "+14255550150", "US")).await;
}
