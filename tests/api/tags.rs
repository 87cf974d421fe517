//! AddPhoneNumberTags, RemovePhoneNumberTags and ListTags over the socket, on the Contoso demo
//! tenant, and the listing filters that came with them (tag, role, city, digits): tags
//! case-insensitive and kept as first written, on many numbers at once, all or none, counted,
//! paged, kept through assignments and gone with a released number; every refusal with its
//! reason and the data left as it was; request ids and `validate_only`.

use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::assignment::{State, events_of, get_number};
use crate::calls::{all_phone_numbers, assign, assign_request};
use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const JOHN: &str = "john@contoso.com";

/// Calling Plan, Redmond, emergency location `redmond-hq`.
const CP_0101: &str = "+14255550101";
/// Calling Plan, Redmond.
const CP_0103: &str = "+14255550103";
/// Calling Plan, Redmond.
const CP_0104: &str = "+14255550104";
/// Calling Plan, Paris.
const FR_NUMBER: &str = "+33140000001";

const TAGS_EVENT: i32 = pb::AuditAction::UpdatePhoneNumberTags as i32;
const ALTERNATE: i32 = pb::AssignmentCategory::Alternate as i32;
const PRIMARY: i32 = pb::AssignmentCategory::Primary as i32;

fn tagging(numbers: &[&str], tags: &[&str]) -> pb::AddPhoneNumberTagsRequest {
    pb::AddPhoneNumberTagsRequest {
        phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

async fn add(
    client: &mut Client,
    request: pb::AddPhoneNumberTagsRequest,
) -> Result<Vec<pb::PhoneNumber>, Status> {
    client
        .add_phone_number_tags(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

async fn untag(
    client: &mut Client,
    numbers: &[&str],
    tags: &[&str],
) -> Result<Vec<pb::PhoneNumber>, Status> {
    client
        .remove_phone_number_tags(pb::RemovePhoneNumberTagsRequest {
            phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().phone_numbers)
}

/// Every tag in use with its count, following the page tokens.
async fn all_tags(client: &mut Client, page_size: i32) -> Vec<(String, i64)> {
    let mut tags = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_tags(pb::ListTagsRequest {
                page_size,
                page_token,
            })
            .await
            .expect("ListTags")
            .into_inner();
        tags.extend(
            page.tags
                .into_iter()
                .map(|t| (t.name, t.phone_number_count)),
        );
        if page.next_page_token.is_empty() {
            return tags;
        }
        page_token = page.next_page_token;
    }
}

/// The numbers a listing with `request`'s filters finds.
async fn listed(client: &mut Client, request: pb::ListPhoneNumbersRequest) -> Vec<String> {
    all_phone_numbers(client, request)
        .await
        .into_iter()
        .map(|n| n.phone_number)
        .collect()
}

async fn with_tag(client: &mut Client, tag: &str) -> Vec<String> {
    listed(
        client,
        pb::ListPhoneNumbersRequest {
            tag: tag.into(),
            ..Default::default()
        },
    )
    .await
}

/// Runs a call that must be refused with `code` and `reason`, and checks that the tenant's data
/// (tags included) is exactly as before. Answers the status.
async fn refused<T: std::fmt::Debug>(
    app: &TestApp,
    call: impl std::future::Future<Output = Result<T, Status>>,
    code: Code,
    reason: &str,
) -> Status {
    let before = State::read(app).await;
    let tags = all_tags(&mut app.admin(TENANT), 1000).await;
    let status = assert_error(call.await, code, reason);
    before.assert_unchanged(app).await;
    assert_eq!(all_tags(&mut app.admin(TENANT), 1000).await, tags);
    status
}

fn names(numbers: &[pb::PhoneNumber]) -> Vec<(&str, Vec<&str>)> {
    numbers
        .iter()
        .map(|n| {
            (
                n.phone_number.as_str(),
                n.tags.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

async fn tags_are_added_counted_filtered_and_removed(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = get_number(&mut admin, CP_0101).await;

    let tagged = add(
        &mut admin,
        tagging(&[CP_0103, CP_0101], &["Lobby", " Floor 3 ", "lobby"]),
    )
    .await
    .expect("tag two numbers");
    assert_eq!(
        names(&tagged),
        [
            (CP_0101, vec!["Floor 3", "Lobby"]),
            (CP_0103, vec!["Floor 3", "Lobby"])
        ]
    );
    assert_ne!(tagged[0].etag, before.etag);
    assert_eq!(get_number(&mut admin, CP_0101).await, tagged[0]);

    // The spelling first written stays; a tag a number has is left as it is.
    let tagged = add(
        &mut admin,
        tagging(&[CP_0104, CP_0101], &["FLOOR 3", "Sales"]),
    )
    .await
    .expect("tag again");
    assert_eq!(
        names(&tagged),
        [
            (CP_0101, vec!["Floor 3", "Lobby", "Sales"]),
            (CP_0104, vec!["Floor 3", "Sales"])
        ]
    );
    let unchanged = get_number(&mut admin, CP_0103).await;
    let again = add(&mut admin, tagging(&[CP_0103], &["lobby"]))
        .await
        .expect("a tag it has");
    assert_eq!(again, [unchanged]);

    assert_eq!(
        all_tags(&mut app.reader(TENANT), 0).await,
        [
            ("Floor 3".to_owned(), 3),
            ("Lobby".to_owned(), 2),
            ("Sales".to_owned(), 2)
        ]
    );
    assert_eq!(
        with_tag(&mut admin, "floor 3").await,
        [CP_0101, CP_0103, CP_0104]
    );
    assert_eq!(with_tag(&mut admin, "SALES").await, [CP_0101, CP_0104]);
    assert!(with_tag(&mut admin, "nothing").await.is_empty());
    // With another filter too.
    assert_eq!(
        listed(
            &mut admin,
            pb::ListPhoneNumbersRequest {
                tag: "lobby".into(),
                number_prefix: "+1425555010".into(),
                page_size: 1,
                ..Default::default()
            }
        )
        .await,
        [CP_0101, CP_0103]
    );

    // Tags stay with a number through an assignment.
    let assigned = assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("assign")
        .phone_number
        .expect("the number");
    assert_eq!(assigned.tags, ["Floor 3", "Lobby", "Sales"]);

    let untagged = untag(&mut admin, &[CP_0101, CP_0104], &["LOBBY", "sales"])
        .await
        .expect("untag");
    assert_eq!(
        names(&untagged),
        [(CP_0101, vec!["Floor 3"]), (CP_0104, vec!["Floor 3"])]
    );
    assert_eq!(
        all_tags(&mut admin, 0).await,
        [("Floor 3".to_owned(), 3), ("Lobby".to_owned(), 1)]
    );
    assert!(with_tag(&mut admin, "sales").await.is_empty());

    // One event for each number whose tags changed.
    let events = events_of(&mut admin, TAGS_EVENT).await;
    assert_eq!(events.len(), 6, "{events:#?}");
    assert!(events.iter().all(|e| !e.phone_number.is_empty()));
}

async fn a_released_number_takes_its_tags_with_it(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    add(&mut admin, tagging(&[CP_0103, CP_0104], &["Spare"]))
        .await
        .expect("tag");
    admin
        .release_phone_numbers(pb::ReleasePhoneNumbersRequest {
            phone_numbers: vec![CP_0103.into()],
            ..Default::default()
        })
        .await
        .expect("release");
    assert_eq!(all_tags(&mut admin, 0).await, [("Spare".to_owned(), 1)]);
    assert_eq!(with_tag(&mut admin, "spare").await, [CP_0104]);
}

async fn tag_refusals_leave_everything_as_it_was(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let fifty: Vec<String> = (0..50).map(|i| format!("tag {i:02}")).collect();
    let fifty: Vec<&str> = fifty.iter().map(String::as_str).collect();
    add(&mut admin, tagging(&[CP_0103], &fifty))
        .await
        .expect("fifty tags");

    let status = refused(
        &app,
        add(&mut admin, tagging(&[CP_0104, CP_0103], &["one more"])),
        Code::FailedPrecondition,
        "TOO_MANY_TAGS",
    )
    .await;
    assert!(status.message().contains(CP_0103), "{status:?}");
    refused(
        &app,
        add(&mut admin, tagging(&[CP_0104, "+14255550199"], &["x"])),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    )
    .await;
    refused(
        &app,
        untag(&mut admin, &[CP_0103, "+14255550199"], &["tag 01"]),
        Code::NotFound,
        "NUMBER_NOT_FOUND",
    )
    .await;

    let too_long = "x".repeat(51);
    let fifty_one: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    let fifty_one: Vec<&str> = fifty_one.iter().map(String::as_str).collect();
    for (request, field, reason) in [
        (tagging(&[CP_0104], &[" "]), "tags[0]", "INVALID_ARGUMENT"),
        (
            tagging(&[CP_0104], &["a", "b\nc"]),
            "tags[1]",
            "INVALID_ARGUMENT",
        ),
        (
            tagging(&[CP_0104], &[&too_long]),
            "tags[0]",
            "INVALID_ARGUMENT",
        ),
        (tagging(&[CP_0104], &fifty_one), "tags", "INVALID_ARGUMENT"),
        (tagging(&[CP_0104], &[]), "tags", "INVALID_ARGUMENT"),
        (tagging(&[], &["x"]), "phone_numbers", "INVALID_ARGUMENT"),
        (
            tagging(&[CP_0104, "555"], &["x"]),
            "phone_numbers[1]",
            "INVALID_PHONE_NUMBER",
        ),
    ] {
        let status = refused(
            &app,
            add(&mut admin, request.clone()),
            Code::InvalidArgument,
            reason,
        )
        .await;
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
    refused(
        &app,
        add(&mut app.reader(TENANT), tagging(&[CP_0104], &["x"])),
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    )
    .await;
    let status = admin
        .list_tags(pb::ListTagsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    assert_error(status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    let status = admin
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            tag: "\u{7}".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_error(
            status,
            Code::InvalidArgument,
            "INVALID_ARGUMENT"
        )),
        ["tag"]
    );
}

async fn tag_calls_replay_and_validate(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let before = State::read(&app).await;
    let rehearsed = add(
        &mut admin,
        pb::AddPhoneNumberTagsRequest {
            validate_only: true,
            ..tagging(&[CP_0104], &["Plan"])
        },
    )
    .await
    .expect("validate");
    assert_eq!(rehearsed[0].tags, ["Plan"]);
    before.assert_unchanged(&app).await;
    assert!(all_tags(&mut admin, 0).await.is_empty());

    let request = pb::AddPhoneNumberTagsRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..tagging(&[CP_0104], &["Plan"])
    };
    let first = add(&mut admin, request.clone()).await.expect("tag");
    untag(&mut admin, &[CP_0104], &["plan"])
        .await
        .expect("untag");
    // The retry answers the first answer and tags nothing again.
    assert_eq!(add(&mut admin, request).await.expect("retry"), first);
    assert!(get_number(&mut admin, CP_0104).await.tags.is_empty());
}

async fn many_tags_page_in_order(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    let mut expected = Vec::new();
    for chunk in 0..3 {
        let tags: Vec<String> = (0..40).map(|i| format!("T{:03}", chunk * 40 + i)).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let number = [CP_0101, CP_0103, CP_0104][chunk];
        add(&mut admin, tagging(&[number], &tags))
            .await
            .expect("tag");
        expected.extend(tags.iter().map(|t| ((*t).to_owned(), 1)));
    }
    assert_eq!(all_tags(&mut admin, 50).await, expected);
}

/// The filters that came with tags: the number's role, its city, and digits anywhere in it.
async fn numbers_filter_by_role_city_and_digits(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(TENANT);
    assign(&mut admin, assign_request(JOHN, CP_0101))
        .await
        .expect("primary");
    assign(
        &mut admin,
        pb::AssignPhoneNumberRequest {
            assignment_category: ALTERNATE,
            emergency_location_id: "redmond-hq".into(),
            ..assign_request(JOHN, CP_0104)
        },
    )
    .await
    .expect("alternate");
    let by = |request: pb::ListPhoneNumbersRequest| request;
    assert_eq!(
        listed(
            &mut admin,
            by(pb::ListPhoneNumbersRequest {
                assignment_category: ALTERNATE,
                ..Default::default()
            })
        )
        .await,
        [CP_0104]
    );
    assert_eq!(
        listed(
            &mut admin,
            by(pb::ListPhoneNumbersRequest {
                assignment_category: PRIMARY,
                ..Default::default()
            })
        )
        .await,
        [CP_0101]
    );
    assert_eq!(
        listed(
            &mut admin,
            by(pb::ListPhoneNumbersRequest {
                city: "PARIS".into(),
                ..Default::default()
            })
        )
        .await,
        [FR_NUMBER]
    );
    let redmond = listed(
        &mut admin,
        by(pb::ListPhoneNumbersRequest {
            city: "redmond".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(redmond.contains(&CP_0103.to_owned()), "{redmond:?}");
    assert!(!redmond.contains(&FR_NUMBER.to_owned()), "{redmond:?}");
    assert_eq!(
        listed(
            &mut admin,
            by(pb::ListPhoneNumbersRequest {
                number_contains: "5550103".into(),
                ..Default::default()
            })
        )
        .await,
        [CP_0103]
    );
    let status = admin
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            number_contains: "55x".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_error(
            status,
            Code::InvalidArgument,
            "INVALID_ARGUMENT"
        )),
        ["number_contains"]
    );
}

on_both_stores!(
    tags_are_added_counted_filtered_and_removed,
    a_released_number_takes_its_tags_with_it,
    tag_refusals_leave_everything_as_it_was,
    tag_calls_replay_and_validate,
    many_tags_page_in_order,
    numbers_filter_by_role_city_and_digits,
);
