//! The Direct Routing adapter passes the provider conformance kit, for plain numbers and for
//! extensions.

use numbers_direct_routing::DirectRouting;
use numbers_provider::testkit::{Fixture, run};

#[tokio::test]
async fn direct_routing_conforms() {
    let provider = DirectRouting::default();
    run(&Fixture::new(&provider, "+14255388701", "US")).await;
    run(&Fixture::new(&provider, "+14255388701;ext=1001", "US")).await;
}
