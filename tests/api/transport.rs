//! The transport: what the socket itself does to a client's latency.

use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;

use crate::calls::{assign, assign_request, remove, remove_request};
use crate::helpers::{Backend, TestApp};
use crate::on_both_stores;

const TENANT: &str = "contoso";

/// Nagle's algorithm on the server's sockets held every unary response's trailers back until
/// the client's delayed ACK, about 40 ms later, so one client could make no more than about 22
/// assignments a second. The quickest of a client's sequential calls shows whether that stall
/// is back: load can slow some calls down, but only the stall slows every one of them.
async fn sequential_calls_are_not_held_back_by_nagle(backend: Backend) {
    const STALL: Duration = Duration::from_millis(40);
    let app = TestApp::spawn(backend).await;
    app.user(TENANT, "pat@contoso.com", "Pat", "US").await;
    let mut admin = app.admin(TENANT);
    let mut quickest = Duration::MAX;
    for i in 0..12 {
        let number = format!("+1425556{i:04}");
        let started = Instant::now();
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                phone_number_type: pb::NumberType::DirectRouting as i32,
                notify_user: Some(false),
                ..assign_request("pat@contoso.com", &number)
            },
        )
        .await
        .expect("assign");
        remove(&mut admin, remove_request("pat@contoso.com", &number))
            .await
            .expect("remove");
        // Two calls per round: both stalled would take at least twice the delayed ACK.
        quickest = quickest.min(started.elapsed() / 2);
    }
    assert!(
        quickest < STALL / 2,
        "the quickest assignment took {quickest:?}: responses wait for the client's delayed ACK"
    );
}

on_both_stores!(sequential_calls_are_not_held_back_by_nagle);
