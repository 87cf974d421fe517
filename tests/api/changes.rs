//! WatchChanges over the socket, on the Contoso demo tenant: changes arrive as they commit,
//! in commit order, each once; a stream resumed from any token it sent loses and repeats
//! nothing; writers racing on the same records are seen in the order they committed; another
//! tenant's changes are never seen.

use std::time::Duration;

use number_management::proto::v1 as pb;
use tonic::{Code, Streaming};

use crate::calls::{assign, assign_request, remove, remove_request};
use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";
const CP_0101: &str = "+14255550101";
const CP_0103: &str = "+14255550103";
const CP_0104: &str = "+14255550104";

/// Opens a stream from `resume_token`; answers it with the token its first message names.
async fn watch(
    client: &mut Client,
    resume_token: &str,
) -> (Streaming<pb::WatchChangesResponse>, String) {
    let mut stream = client
        .watch_changes(pb::WatchChangesRequest {
            resume_token: resume_token.into(),
        })
        .await
        .expect("WatchChanges")
        .into_inner();
    let first = next(&mut stream).await;
    assert!(first.changes.is_empty(), "{first:?}");
    (stream, first.resume_token)
}

async fn next(stream: &mut Streaming<pb::WatchChangesResponse>) -> pb::WatchChangesResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("a message")
        .expect("the stream goes on")
}

/// The next `count` changes of a stream, whatever the messages they come in.
async fn changes(
    stream: &mut Streaming<pb::WatchChangesResponse>,
    count: usize,
) -> Vec<pb::Change> {
    let mut changes = Vec::new();
    while changes.len() < count {
        let message = next(stream).await;
        assert_eq!(
            message.resume_token,
            message.changes.last().expect("changes").resume_token
        );
        changes.extend(message.changes);
    }
    assert_eq!(changes.len(), count, "more changes than made: {changes:#?}");
    changes
}

fn actions(changes: &[pb::Change]) -> Vec<pb::AuditAction> {
    changes
        .iter()
        .map(|c| c.event.as_ref().expect("event").action())
        .collect()
}

async fn changes_arrive_in_commit_order_and_resume_exactly(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut reader = app.reader(TENANT);
    let mut admin = app.admin(TENANT);
    let (mut stream, start) = watch(&mut reader, "").await;

    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign");
    admin
        .add_phone_number_tags(pb::AddPhoneNumberTagsRequest {
            phone_numbers: vec![CP_0103.into()],
            tags: vec!["Spare".into()],
            ..Default::default()
        })
        .await
        .expect("tag");
    // Another tenant's change is not this tenant's.
    app.admin("fabrikam")
        .upload_direct_routing_numbers(pb::UploadDirectRoutingNumbersRequest {
            numbers: vec![pb::DirectRoutingNumber {
                phone_number: "+14255388900".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("fabrikam's upload");
    remove(&mut admin, remove_request(JOHN, CP_0101))
        .await
        .expect("remove");

    let seen = changes(&mut stream, 3).await;
    assert_eq!(
        actions(&seen),
        [
            pb::AuditAction::AssignPhoneNumber,
            pb::AuditAction::UpdatePhoneNumberTags,
            pb::AuditAction::RemovePhoneNumber
        ]
    );
    for change in &seen {
        assert_eq!(change.event.as_ref().expect("event").tenant_id, TENANT);
    }
    drop(stream);

    // Resumed after the first change: the two after it, nothing before, nothing twice.
    let (mut resumed, from) = watch(&mut reader, &seen[0].resume_token).await;
    assert_eq!(from, seen[0].resume_token);
    let again = changes(&mut resumed, 2).await;
    assert_eq!(again, seen[1..]);
    // From the start of the first stream: all three.
    let (mut whole, _) = watch(&mut reader, &start).await;
    assert_eq!(changes(&mut whole, 3).await, seen);
    // And what commits next comes next.
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign again");
    let later = changes(&mut whole, 1).await;
    assert_eq!(actions(&later), [pb::AuditAction::AssignPhoneNumber]);
    assert_eq!(changes(&mut resumed, 1).await, later);

    let status = reader
        .watch_changes(pb::WatchChangesRequest {
            resume_token: "yesterday".into(),
        })
        .await;
    assert_eq!(
        violated_fields(&assert_error(
            status,
            Code::InvalidArgument,
            "INVALID_ARGUMENT"
        )),
        ["resume_token"]
    );
}

/// Writers racing on the same numbers: every change arrives once, and each number's changes
/// arrive in the order they committed (its versions only grow).
async fn racing_writers_are_seen_in_commit_order(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let (mut stream, _) = watch(&mut app.reader(TENANT), "").await;
    let writers = (0..16).map(|i| {
        let mut admin = app.admin(TENANT);
        let number = [CP_0103, CP_0104][i % 2];
        async move {
            admin
                .add_phone_number_tags(pb::AddPhoneNumberTagsRequest {
                    phone_numbers: vec![number.into()],
                    tags: vec![format!("tag {i:02}")],
                    ..Default::default()
                })
                .await
                .expect("tag")
        }
    });
    futures::future::join_all(writers).await;
    let seen = changes(&mut stream, 16).await;
    for number in [CP_0103, CP_0104] {
        let counts: Vec<usize> = seen
            .iter()
            .filter_map(|c| c.event.as_ref())
            .filter(|e| e.phone_number == number)
            .map(|e| tags_in(e.after.as_ref()))
            .collect();
        assert_eq!(counts, (1..=8).collect::<Vec<_>>(), "{number}: {seen:#?}");
    }
}

/// How many tags an audit snapshot lists.
fn tags_in(snapshot: Option<&prost_types::Struct>) -> usize {
    match snapshot
        .and_then(|s| s.fields.get("tags"))
        .and_then(|v| v.kind.as_ref())
    {
        Some(prost_types::value::Kind::ListValue(list)) => list.values.len(),
        other => panic!("no tags in the snapshot: {other:?}"),
    }
}

on_both_stores!(
    changes_arrive_in_commit_order_and_resume_exactly,
    racing_writers_are_seen_in_commit_order,
);
