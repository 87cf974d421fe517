//! The directory through the API: UpsertUser, GetUser and ListUsers, with their validation,
//! request ids, `validate_only` and permissions.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use number_management::service::WorkerSettings;
use tonic::{Code, Status};

use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error, violated_fields};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const PHONE_SYSTEM: i32 = pb::user::License::PhoneSystem as i32;
const CALLING_PLAN: i32 = pb::user::License::CallingPlan as i32;
const VIRTUAL_USER: i32 = pb::user::License::PhoneSystemVirtualUser as i32;
const KIND_USER: i32 = pb::user::Kind::User as i32;
const KIND_RESOURCE_ACCOUNT: i32 = pb::user::Kind::ResourceAccount as i32;

/// A user as the directory feed would send it.
fn feed_user(upn: &str, display_name: &str) -> pb::User {
    pb::User {
        user_principal_name: upn.into(),
        display_name: display_name.into(),
        usage_location: "US".into(),
        licenses: vec![PHONE_SYSTEM, CALLING_PLAN],
        ..Default::default()
    }
}

fn upsert_request(user: pb::User) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(user),
        ..Default::default()
    }
}

async fn upsert(client: &mut Client, request: pb::UpsertUserRequest) -> Result<pb::User, Status> {
    client.upsert_user(request).await.map(|r| r.into_inner())
}

async fn get(client: &mut Client, identity: &str) -> Result<pb::User, Status> {
    client
        .get_user(pb::GetUserRequest {
            identity: identity.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn list(
    client: &mut Client,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Status> {
    client.list_users(request).await.map(|r| r.into_inner())
}

/// The user principal names of one listing (first page of 1000), in order.
async fn listed_names(client: &mut Client, search: &str) -> Vec<String> {
    let response = list(
        client,
        pb::ListUsersRequest {
            search: search.into(),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .expect("list users");
    assert_eq!(response.next_page_token, "", "one page holds every user");
    response
        .users
        .into_iter()
        .map(|u| u.user_principal_name)
        .collect()
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---- UpsertUser ------------------------------------------------------------------------------

async fn upsert_creates_user_keyed_by_user_principal_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let created = upsert(
        &mut admin,
        upsert_request(pb::User {
            user_principal_name: "John.Smith@Contoso.com".into(),
            display_name: "John Smith".into(),
            usage_location: "us".into(),
            // Out of order and repeated: the service keeps each licence once, in declaration order.
            licenses: vec![CALLING_PLAN, PHONE_SYSTEM, CALLING_PLAN],
            ..Default::default()
        }),
    )
    .await
    .expect("create the user");

    assert!(
        uuid::Uuid::try_parse(&created.id).is_ok(),
        "the service generates a UUID id, got {:?}",
        created.id
    );
    assert_eq!(created.user_principal_name, "John.Smith@Contoso.com");
    assert_eq!(created.sip_address, "sip:John.Smith@Contoso.com");
    assert_eq!(created.display_name, "John Smith");
    assert_eq!(created.usage_location, "US");
    assert_eq!(created.kind, KIND_USER);
    assert_eq!(created.licenses, vec![PHONE_SYSTEM, CALLING_PLAN]);
    assert!(!created.enterprise_voice_enabled);
    assert_eq!(created.on_premises_line_uri, "");
    assert!(created.phone_numbers.is_empty());
    assert_eq!(created.etag, "1");
    let create_time = created.create_time.expect("create_time is set");
    assert_eq!(created.update_time, Some(create_time));

    // What was stored is what was answered.
    let read = get(&mut admin, &created.id).await.expect("get the user");
    assert_eq!(read, created);
}

async fn upsert_keeps_given_sip_address_kind_and_line_uri(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let created = upsert(
        &mut admin,
        upsert_request(pb::User {
            id: "aad-object-0001".into(),
            user_principal_name: "reception@contoso.com".into(),
            sip_address: "sip:front-desk@contoso.com".into(),
            // No display name: the user principal name stands in.
            display_name: String::new(),
            usage_location: "gb".into(),
            kind: KIND_RESOURCE_ACCOUNT,
            licenses: vec![VIRTUAL_USER],
            on_premises_line_uri: "tel:+14255550199".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("create the resource account");

    assert_eq!(created.id, "aad-object-0001", "a feed-given id is kept");
    assert_eq!(created.sip_address, "sip:front-desk@contoso.com");
    assert_eq!(created.display_name, "reception@contoso.com");
    assert_eq!(created.usage_location, "GB");
    assert_eq!(created.kind, KIND_RESOURCE_ACCOUNT);
    assert_eq!(created.licenses, vec![VIRTUAL_USER]);
    assert_eq!(created.on_premises_line_uri, "tel:+14255550199");
    assert_eq!(created.etag, "1");

    let by_sip = get(&mut admin, "sip:front-desk@contoso.com")
        .await
        .expect("get by sip");
    assert_eq!(by_sip, created);
}

async fn upsert_same_user_principal_name_in_another_case_updates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let first = upsert(
        &mut admin,
        upsert_request(feed_user("john@contoso.com", "John")),
    )
    .await
    .expect("create");
    assert_eq!(first.etag, "1");

    let second = upsert(
        &mut admin,
        upsert_request(pb::User {
            usage_location: "CA".into(),
            licenses: vec![PHONE_SYSTEM],
            ..feed_user("JOHN@Contoso.COM", "John Smith")
        }),
    )
    .await
    .expect("update");

    assert_eq!(second.id, first.id, "the same user");
    assert_eq!(second.etag, "2");
    assert_eq!(
        second.user_principal_name, "JOHN@Contoso.COM",
        "the spelling as last fed"
    );
    assert_eq!(second.sip_address, "sip:JOHN@Contoso.COM");
    assert_eq!(second.display_name, "John Smith");
    assert_eq!(second.usage_location, "CA");
    assert_eq!(second.licenses, vec![PHONE_SYSTEM]);
    assert_eq!(second.create_time, first.create_time, "created once");
    let micros = |t: Option<prost_types::Timestamp>| {
        let t = t.expect("a timestamp");
        i128::from(t.seconds) * 1_000_000 + i128::from(t.nanos / 1000)
    };
    assert!(
        micros(second.update_time) >= micros(first.update_time),
        "update_time moves forward"
    );

    assert_eq!(get(&mut admin, &first.id).await.expect("get"), second);
    assert_eq!(
        listed_names(&mut admin, "").await,
        ["JOHN@Contoso.COM"],
        "still one user"
    );
}

async fn upsert_keyed_by_id_renames_user_principal_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let created = upsert(
        &mut admin,
        upsert_request(feed_user("john@contoso.com", "John")),
    )
    .await
    .expect("create");

    let renamed = upsert(
        &mut admin,
        upsert_request(pb::User {
            id: created.id.clone(),
            ..feed_user("johnny@contoso.com", "Johnny")
        }),
    )
    .await
    .expect("rename");

    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.user_principal_name, "johnny@contoso.com");
    assert_eq!(renamed.sip_address, "sip:johnny@contoso.com");
    assert_eq!(renamed.display_name, "Johnny");
    assert_eq!(renamed.etag, "2");

    assert_eq!(
        get(&mut admin, "JOHNNY@contoso.com")
            .await
            .expect("new name"),
        renamed
    );
    assert_eq!(
        get(&mut admin, "sip:johnny@contoso.com")
            .await
            .expect("new sip"),
        renamed
    );
    assert_error(
        get(&mut admin, "john@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_error(
        get(&mut admin, "sip:john@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_eq!(listed_names(&mut admin, "").await, ["johnny@contoso.com"]);
}

async fn upsert_refuses_user_principal_name_of_another_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let alice = upsert(
        &mut admin,
        upsert_request(feed_user("alice@contoso.com", "Alice")),
    )
    .await
    .expect("create alice");
    let bob = upsert(
        &mut admin,
        upsert_request(feed_user("bob@contoso.com", "Bob")),
    )
    .await
    .expect("create bob");

    // Bob, keyed by id, may not take Alice's name, whatever its case.
    assert_error(
        upsert(
            &mut admin,
            upsert_request(pb::User {
                id: bob.id.clone(),
                ..feed_user("ALICE@contoso.com", "Bob renamed")
            }),
        )
        .await,
        Code::AlreadyExists,
        "USER_PRINCIPAL_NAME_TAKEN",
    );
    // Nor may a new user with a feed-given id.
    assert_error(
        upsert(
            &mut admin,
            upsert_request(pb::User {
                id: "aad-new-user".into(),
                ..feed_user("alice@CONTOSO.com", "Impostor")
            }),
        )
        .await,
        Code::AlreadyExists,
        "USER_PRINCIPAL_NAME_TAKEN",
    );

    assert_eq!(
        get(&mut admin, &bob.id).await.expect("bob"),
        bob,
        "bob unchanged"
    );
    assert_eq!(
        get(&mut admin, &alice.id).await.expect("alice"),
        alice,
        "alice unchanged"
    );
    assert_error(
        get(&mut admin, "aad-new-user").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_eq!(
        listed_names(&mut admin, "").await,
        ["alice@contoso.com", "bob@contoso.com"]
    );

    // The name is only taken within the tenant.
    let elsewhere = upsert(
        &mut app.admin(OTHER_TENANT),
        upsert_request(pb::User {
            id: bob.id.clone(),
            ..feed_user("alice@contoso.com", "Alice elsewhere")
        }),
    )
    .await
    .expect("another tenant may use the same name");
    assert_eq!(elsewhere.etag, "1");
    assert_eq!(
        get(&mut admin, &bob.id).await.expect("bob"),
        bob,
        "bob still unchanged"
    );
}

async fn upsert_rejects_invalid_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let valid = || pb::User {
        sip_address: "sip:valid@contoso.com".into(),
        ..feed_user("valid@contoso.com", "Valid")
    };

    let cases: Vec<(&str, Option<pb::User>, Vec<&str>)> = vec![
        ("missing user", None, vec!["user"]),
        (
            "malformed user principal name",
            Some(pb::User {
                user_principal_name: "not-an-upn".into(),
                ..valid()
            }),
            vec!["user.user_principal_name"],
        ),
        (
            "empty user principal name",
            Some(pb::User {
                user_principal_name: "  ".into(),
                ..valid()
            }),
            vec!["user.user_principal_name"],
        ),
        (
            "malformed user principal name, so the default sip address is bad too",
            Some(pb::User {
                user_principal_name: "john@localhost".into(),
                sip_address: String::new(),
                ..valid()
            }),
            vec!["user.user_principal_name", "user.sip_address"],
        ),
        (
            "sip address without sip:",
            Some(pb::User {
                sip_address: "valid@contoso.com".into(),
                ..valid()
            }),
            vec!["user.sip_address"],
        ),
        (
            "unknown usage location",
            Some(pb::User {
                usage_location: "ZZ".into(),
                ..valid()
            }),
            vec!["user.usage_location"],
        ),
        (
            "usage location that is not a code",
            Some(pb::User {
                usage_location: "USA".into(),
                ..valid()
            }),
            vec!["user.usage_location"],
        ),
        (
            "unknown licence number",
            Some(pb::User {
                licenses: vec![99],
                ..valid()
            }),
            vec!["user.licenses[0]"],
        ),
        (
            "unspecified licence among known ones",
            Some(pb::User {
                licenses: vec![PHONE_SYSTEM, 0, CALLING_PLAN, 42],
                ..valid()
            }),
            vec!["user.licenses[1]", "user.licenses[3]"],
        ),
        (
            "unknown kind",
            Some(pb::User { kind: 7, ..valid() }),
            vec!["user.kind"],
        ),
        (
            "id with a space",
            Some(pb::User {
                id: "has space".into(),
                ..valid()
            }),
            vec!["user.id"],
        ),
        (
            "display name with a control character",
            Some(pb::User {
                display_name: "Bell\u{7}".into(),
                ..valid()
            }),
            vec!["user.display_name"],
        ),
        (
            "every bad field at once",
            Some(pb::User {
                user_principal_name: "nobody".into(),
                sip_address: "tel:+14255550100".into(),
                usage_location: "XX".into(),
                ..valid()
            }),
            vec![
                "user.user_principal_name",
                "user.sip_address",
                "user.usage_location",
            ],
        ),
    ];

    for (case, user, fields) in cases {
        let status = assert_error(
            upsert(
                &mut admin,
                pb::UpsertUserRequest {
                    user,
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), fields, "{case}: {status:?}");
    }

    assert_eq!(
        listed_names(&mut admin, "").await,
        Vec::<String>::new(),
        "nothing was created"
    );
    assert_error(
        get(&mut admin, "valid@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
}

async fn rejected_update_leaves_the_user_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let created = upsert(
        &mut admin,
        upsert_request(feed_user("john@contoso.com", "John")),
    )
    .await
    .expect("create");

    let status = assert_error(
        upsert(
            &mut admin,
            upsert_request(pb::User {
                licenses: vec![PHONE_SYSTEM, 99],
                ..feed_user("john@contoso.com", "John Changed")
            }),
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["user.licenses[1]"]);

    let status = assert_error(
        upsert(
            &mut admin,
            upsert_request(pb::User {
                usage_location: "Narnia".into(),
                ..feed_user("john@contoso.com", "John Changed")
            }),
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["user.usage_location"]);

    let read = get(&mut admin, &created.id).await.expect("get");
    assert_eq!(read, created);
    assert_eq!(read.display_name, "John");
    assert_eq!(read.etag, "1");
}

// ---- GetUser ---------------------------------------------------------------------------------

async fn get_user_by_id_user_principal_name_and_sip_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let john = app
        .user(TENANT, "John@Contoso.com", "John Smith", "US")
        .await;
    let jack = app
        .user(TENANT, "jack@contoso.com", "Jack Brown", "US")
        .await;

    for identity in [
        john.id.as_str(),
        "John@Contoso.com",
        "john@contoso.com",
        "JOHN@CONTOSO.COM",
        "  john@contoso.com  ",
        "sip:John@Contoso.com",
        "SIP:john@CONTOSO.com",
    ] {
        let found = get(&mut admin, identity)
            .await
            .unwrap_or_else(|e| panic!("{identity:?}: {e:?}"));
        assert_eq!(found, john, "{identity:?}");
    }
    assert_eq!(
        get(&mut admin, "sip:jack@contoso.com").await.expect("jack"),
        jack
    );

    // A reader may read too.
    assert_eq!(
        get(&mut app.reader(TENANT), &john.id)
            .await
            .expect("reader"),
        john
    );
}

async fn get_unknown_user_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let john = app
        .user(TENANT, "john@contoso.com", "John Smith", "US")
        .await;

    for identity in [
        "nobody@contoso.com",
        "sip:nobody@contoso.com",
        "0b7c1d2e-0000-4000-8000-000000000000",
        // The display name is not an identity.
        "John",
        // Prefixes do not match.
        "john@contoso",
    ] {
        let status = assert_error(
            get(&mut admin, identity).await,
            Code::NotFound,
            "USER_NOT_FOUND",
        );
        assert!(status.message().contains(identity), "{status:?}");
    }

    // Another tenant's user is not visible, by any identity.
    let mut other = app.admin(OTHER_TENANT);
    for identity in [john.id.as_str(), "john@contoso.com", "sip:john@contoso.com"] {
        assert_error(
            get(&mut other, identity).await,
            Code::NotFound,
            "USER_NOT_FOUND",
        );
    }
}

async fn get_user_with_empty_identity_is_invalid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    app.user(TENANT, "john@contoso.com", "John Smith", "US")
        .await;

    for identity in ["", "   "] {
        let status = assert_error(
            get(&mut admin, identity).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["identity"], "{identity:?}");
    }
}

// ---- ListUsers -------------------------------------------------------------------------------

async fn list_users_orders_by_user_principal_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for (upn, name) in [
        ("zoe@contoso.com", "Zoë Adams"),
        ("Adam@contoso.com", "Adam Zed"),
        ("john@contoso.com", "John Smith"),
        ("BOB@contoso.com", "Bob Jones"),
        ("jack@contoso.com", "Jack Brown"),
    ] {
        app.user(TENANT, upn, name, "US").await;
    }
    app.user(OTHER_TENANT, "aaron@fabrikam.com", "Aaron", "US")
        .await;

    let response = list(&mut admin, pb::ListUsersRequest::default())
        .await
        .expect("list");
    let names: Vec<_> = response
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Adam@contoso.com",
            "BOB@contoso.com",
            "jack@contoso.com",
            "john@contoso.com",
            "zoe@contoso.com",
        ],
        "ordered case-insensitively, this tenant only"
    );
    assert_eq!(response.next_page_token, "");
    // Listed users are complete records.
    let john = &response.users[3];
    assert_eq!(john.display_name, "John Smith");
    assert_eq!(john.sip_address, "sip:john@contoso.com");
    assert_eq!(john.usage_location, "US");
    assert_eq!(john.licenses, vec![PHONE_SYSTEM, CALLING_PLAN]);
    assert_eq!(john.etag, "1");

    // A reader sees the same.
    let read = list(&mut app.reader(TENANT), pb::ListUsersRequest::default())
        .await
        .expect("reader lists");
    assert_eq!(read.users, response.users);
}

async fn list_users_searches_display_name_and_user_principal_name_prefixes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for (upn, name) in [
        ("john@contoso.com", "John Smith"),
        ("jack@contoso.com", "Jack Brown"),
        ("smithers@contoso.com", "Waylon Smithers"),
        ("amelie@contoso.com", "Amélie Dubois"),
        ("zoe@contoso.com", "Zoë Adams"),
        ("reception@contoso.com", "Contoso Reception"),
    ] {
        app.user(TENANT, upn, name, "US").await;
    }
    app.user(OTHER_TENANT, "jill@fabrikam.com", "Jill", "US")
        .await;

    let cases: &[(&str, &[&str])] = &[
        ("j", &["jack@contoso.com", "john@contoso.com"]),
        ("J", &["jack@contoso.com", "john@contoso.com"]),
        ("  jack  ", &["jack@contoso.com"]),
        // The user principal name starts with it; John Smith's display name does not.
        ("SMITH", &["smithers@contoso.com"]),
        ("waylon", &["smithers@contoso.com"]),
        ("john s", &["john@contoso.com"]),
        ("JOHN@CONTOSO", &["john@contoso.com"]),
        // Case-insensitive beyond ASCII.
        ("AMÉ", &["amelie@contoso.com"]),
        ("ZOË A", &["zoe@contoso.com"]),
        // The display name alone, or the user principal name alone, is enough.
        ("contoso", &["reception@contoso.com"]),
        ("rec", &["reception@contoso.com"]),
        // Both names of the same user match: listed once.
        ("jack", &["jack@contoso.com"]),
        // Prefixes only.
        ("ohn", &[]),
        ("@contoso.com", &[]),
        ("jill", &[]),
    ];
    for (search, expected) in cases {
        assert_eq!(
            listed_names(&mut admin, search).await,
            *expected,
            "search {search:?}"
        );
    }
}

async fn list_users_search_matches_wildcards_literally(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for (upn, name) in [
        ("j_100%@contoso.com", "Percent"),
        ("jx100@contoso.com", "Jx"),
        ("j100@contoso.com", "J hundred"),
        ("50%off@contoso.com", "Fifty"),
        ("500@contoso.com", "Five hundred"),
        ("back\\slash@contoso.com", "Backslash"),
        ("bad@contoso.com", "Bad"),
    ] {
        app.user(TENANT, upn, name, "US").await;
    }

    let cases: &[(&str, &[&str])] = &[
        ("j_", &["j_100%@contoso.com"]),
        ("J_1", &["j_100%@contoso.com"]),
        ("j_100%", &["j_100%@contoso.com"]),
        ("50%", &["50%off@contoso.com"]),
        ("%", &[]),
        ("_", &[]),
        ("%off", &[]),
        ("back\\", &["back\\slash@contoso.com"]),
        ("b\\", &[]),
    ];
    for (search, expected) in cases {
        assert_eq!(
            listed_names(&mut admin, search).await,
            *expected,
            "search {search:?}"
        );
    }
}

async fn list_users_pages_through_every_user_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    // Created out of order, so the order of the pages is the service's doing.
    for i in 0..25 {
        let n = (i * 7) % 25;
        app.user(
            TENANT,
            &format!("user{n:02}@contoso.com"),
            &format!("User {n}"),
            "US",
        )
        .await;
    }
    let expected: Vec<String> = (0..25).map(|n| format!("user{n:02}@contoso.com")).collect();

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut admin,
            pb::ListUsersRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("list a page");
        page_sizes.push(page.users.len());
        seen.extend(page.users.into_iter().map(|u| u.user_principal_name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "the pages never end");
    }
    assert_eq!(page_sizes, [10, 10, 5]);
    assert_eq!(seen, expected, "every user once, in order");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        25,
        "no duplicates"
    );

    // Paging a search: user10 to user19 (10 users) by 4.
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &mut admin,
            pb::ListUsersRequest {
                search: "USER1".into(),
                page_size: 4,
                page_token: token.clone(),
            },
        )
        .await
        .expect("list a page");
        page_sizes.push(page.users.len());
        seen.extend(page.users.into_iter().map(|u| u.user_principal_name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "the pages never end");
    }
    assert_eq!(page_sizes, [4, 4, 2]);
    assert_eq!(seen, expected[10..20], "user10 to user19, in order");

    // A page exactly as large as what is left has no next page.
    let all = list(
        &mut admin,
        pb::ListUsersRequest {
            page_size: 25,
            ..Default::default()
        },
    )
    .await
    .expect("list all");
    assert_eq!(all.users.len(), 25);
    assert_eq!(all.next_page_token, "");
}

async fn list_users_refuses_a_page_token_of_another_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for n in 0..5 {
        app.user(
            TENANT,
            &format!("user{n}@contoso.com"),
            &format!("User {n}"),
            "US",
        )
        .await;
    }
    let first = list(
        &mut admin,
        pb::ListUsersRequest {
            search: "user".into(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    assert_eq!(first.users.len(), 2);
    assert!(!first.next_page_token.is_empty());

    let status = assert_error(
        list(
            &mut admin,
            pb::ListUsersRequest {
                search: "other".into(),
                page_size: 2,
                page_token: first.next_page_token.clone(),
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_eq!(violated_fields(&status), ["page_token"]);

    for garbage in ["not a token!", "AAAA", "eyJhZnRlciI6InVzZXIxIn0"] {
        let status = assert_error(
            list(
                &mut admin,
                pb::ListUsersRequest {
                    search: "user".into(),
                    page_token: garbage.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert_eq!(violated_fields(&status), ["page_token"], "{garbage:?}");
    }

    let status = assert_error(
        list(
            &mut admin,
            pb::ListUsersRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["page_size"]);

    // The same query may change its page size between pages.
    let rest = list(
        &mut admin,
        pb::ListUsersRequest {
            search: "user".into(),
            page_size: 10,
            page_token: first.next_page_token,
        },
    )
    .await
    .expect("the rest");
    let names: Vec<_> = rest
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "user2@contoso.com",
            "user3@contoso.com",
            "user4@contoso.com"
        ]
    );
    assert_eq!(rest.next_page_token, "");
}

// ---- request_id, validate_only, permissions --------------------------------------------------

async fn upsert_with_request_id_replays_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = new_request_id();
    let request = pb::UpsertUserRequest {
        request_id: request_id.clone(),
        ..upsert_request(feed_user("john@contoso.com", "John"))
    };

    let first = upsert(&mut admin, request.clone()).await.expect("first");
    assert_eq!(first.etag, "1");
    let retry = upsert(&mut admin, request.clone()).await.expect("retry");
    assert_eq!(retry, first, "a retry answers the first answer");
    // The request id is a UUID: its case does not matter.
    let upper = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            request_id: request_id.to_uppercase(),
            ..request.clone()
        },
    )
    .await
    .expect("retry, upper case");
    assert_eq!(upper, first);

    let read = get(&mut admin, &first.id).await.expect("get");
    assert_eq!(read.etag, "1", "retries did not change the user");
    assert_eq!(listed_names(&mut admin, "").await, ["john@contoso.com"]);

    // A new request changes the user; replaying the old one still answers the old answer and
    // changes nothing.
    let changed = upsert(
        &mut admin,
        upsert_request(feed_user("john@contoso.com", "John Smith")),
    )
    .await
    .expect("a new change");
    assert_eq!(changed.etag, "2");
    let late_retry = upsert(&mut admin, request).await.expect("late retry");
    assert_eq!(late_retry, first);
    let read = get(&mut admin, &first.id).await.expect("get");
    assert_eq!(read.etag, "2");
    assert_eq!(read.display_name, "John Smith");
}

async fn concurrent_retries_with_one_request_id_change_the_user_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin(TENANT);
    let request = pb::UpsertUserRequest {
        request_id: new_request_id(),
        ..upsert_request(feed_user("john@contoso.com", "John"))
    };

    let answers = futures::future::join_all((0..8).map(|_| {
        let mut client = admin.clone();
        let request = request.clone();
        async move { upsert(&mut client, request).await }
    }))
    .await;
    let answers: Vec<pb::User> = answers
        .into_iter()
        .map(|a| a.expect("every retry succeeds"))
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    assert_eq!(answers[0].etag, "1");

    let mut admin = admin;
    let read = get(&mut admin, "john@contoso.com").await.expect("get");
    assert_eq!(read, answers[0], "changed once");
    assert_eq!(listed_names(&mut admin, "").await, ["john@contoso.com"]);
}

async fn concurrent_upserts_of_one_new_user_create_it_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin(TENANT);

    let answers = futures::future::join_all((0..8).map(|i| {
        let mut client = admin.clone();
        async move {
            upsert(
                &mut client,
                upsert_request(feed_user("John@contoso.com", &format!("John {i}"))),
            )
            .await
        }
    }))
    .await;
    let answers: Vec<pb::User> = answers
        .into_iter()
        .map(|a| a.expect("every upsert succeeds"))
        .collect();
    assert!(
        answers.iter().all(|a| a.id == answers[0].id),
        "one user: {answers:#?}"
    );
    let mut etags: Vec<i64> = answers
        .iter()
        .map(|a| a.etag.parse().expect("a numeric etag"))
        .collect();
    etags.sort_unstable();
    assert_eq!(
        etags,
        (1..=8).collect::<Vec<i64>>(),
        "each upsert is one version"
    );

    let mut admin = admin;
    let read = get(&mut admin, &answers[0].id).await.expect("get");
    assert_eq!(read.etag, "8");
    assert_eq!(listed_names(&mut admin, "").await, ["John@contoso.com"]);
}

async fn upsert_refuses_a_request_id_reused_for_another_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    let request_id = new_request_id();
    let first = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            request_id: request_id.clone(),
            ..upsert_request(feed_user("john@contoso.com", "John"))
        },
    )
    .await
    .expect("first");

    let status = assert_error(
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                request_id: request_id.clone(),
                ..upsert_request(feed_user("john@contoso.com", "John Smith"))
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert!(status.message().contains(&request_id), "{status:?}");
    // Nor may another user be created with it.
    assert_error(
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                request_id: request_id.clone(),
                ..upsert_request(feed_user("jack@contoso.com", "Jack"))
            },
        )
        .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    // Nor another method.
    assert_error(
        app.admin(TENANT)
            .create_emergency_location(pb::CreateEmergencyLocationRequest {
                emergency_location: Some(pb::EmergencyLocation {
                    address: Some(pb::CivicAddress {
                        company_name: "Contoso".into(),
                        house_number: "1".into(),
                        street_name: "Microsoft Way".into(),
                        city: "Redmond".into(),
                        state_or_province: "WA".into(),
                        postal_code: "98052".into(),
                        country: "US".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                request_id: request_id.clone(),
                validate_only: false,
            })
            .await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );

    let read = get(&mut admin, &first.id).await.expect("get");
    assert_eq!(read, first, "unchanged");
    assert_eq!(read.display_name, "John");
    assert_eq!(read.etag, "1");
    assert_error(
        get(&mut admin, "jack@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    // Request ids belong to a tenant: another tenant may use the same one.
    let mut other = app.admin(OTHER_TENANT);
    let elsewhere = upsert(
        &mut other,
        pb::UpsertUserRequest {
            request_id,
            ..upsert_request(feed_user("john@contoso.com", "John Smith"))
        },
    )
    .await
    .expect("another tenant's request");
    assert_ne!(elsewhere.id, first.id);
    assert_eq!(elsewhere.display_name, "John Smith");
}

async fn request_ids_are_forgotten_after_their_retention(backend: Backend) {
    let defaults = TestConfig::default();
    let retention = Duration::from_secs(2);
    let app = TestApp::start_with_manual_clock(
        backend,
        TestConfig {
            worker: WorkerSettings {
                request_id_retention: retention,
                ..defaults.worker.clone()
            },
            ..defaults
        },
    )
    .await;
    let mut admin = app.admin(TENANT);
    let request_id = new_request_id();
    let with_id = |user| pb::UpsertUserRequest {
        request_id: request_id.clone(),
        ..upsert_request(user)
    };
    upsert(&mut admin, with_id(feed_user("john@contoso.com", "John")))
        .await
        .expect("first");
    // Within the retention the id is remembered: another request with it is refused.
    app.advance(retention / 2);
    assert_error(
        upsert(&mut admin, with_id(feed_user("jack@contoso.com", "Jack"))).await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );

    // Once the retention has passed, the housekeeping task (which looks every half second
    // for a retention of two) forgets it.
    app.advance(retention);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut tx = app.store.read().await.expect("read transaction");
        let remembered = tx
            .find_request(TENANT, &request_id, "UpsertUser", b"any")
            .await
            .expect("find the request id");
        if remembered.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request id is still remembered well after its retention"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Then the id is free: the request runs as a new one.
    let jack = upsert(&mut admin, with_id(feed_user("jack@contoso.com", "Jack")))
        .await
        .expect("the id may be used again after its retention");
    assert_eq!(jack.user_principal_name, "jack@contoso.com");
    get(&mut admin, "jack@contoso.com")
        .await
        .expect("jack was created");
}

async fn upsert_refuses_a_request_id_that_is_not_a_uuid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);
    for request_id in ["retry-1", "12345", "3f2b8e1c-5d4a-4f6e-9b7a"] {
        let status = assert_error(
            upsert(
                &mut admin,
                pb::UpsertUserRequest {
                    request_id: request_id.into(),
                    ..upsert_request(feed_user("john@contoso.com", "John"))
                },
            )
            .await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["request_id"], "{request_id:?}");
    }
    assert_error(
        get(&mut admin, "john@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_eq!(listed_names(&mut admin, "").await, Vec::<String>::new());
}

async fn upsert_validate_only_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin(TENANT);

    let would_be = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            validate_only: true,
            ..upsert_request(pb::User {
                usage_location: "fr".into(),
                ..feed_user("Amelie@contoso.com", "Amélie Dubois")
            })
        },
    )
    .await
    .expect("validate a new user");
    assert!(!would_be.id.is_empty());
    assert_eq!(would_be.user_principal_name, "Amelie@contoso.com");
    assert_eq!(would_be.sip_address, "sip:Amelie@contoso.com");
    assert_eq!(would_be.display_name, "Amélie Dubois");
    assert_eq!(would_be.usage_location, "FR");
    assert_eq!(would_be.licenses, vec![PHONE_SYSTEM, CALLING_PLAN]);
    assert_eq!(would_be.etag, "1");

    assert_error(
        get(&mut admin, "amelie@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_error(
        get(&mut admin, &would_be.id).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_eq!(listed_names(&mut admin, "").await, Vec::<String>::new());

    // On an existing user: the would-be update, and the user as it was.
    let john = app.user(TENANT, "john@contoso.com", "John", "US").await;
    let would_be = upsert(
        &mut admin,
        pb::UpsertUserRequest {
            validate_only: true,
            ..upsert_request(feed_user("john@contoso.com", "John Smith"))
        },
    )
    .await
    .expect("validate an update");
    assert_eq!(would_be.id, john.id);
    assert_eq!(would_be.display_name, "John Smith");
    assert_eq!(would_be.etag, "2");
    assert_eq!(
        get(&mut admin, &john.id).await.expect("get"),
        john,
        "unchanged"
    );

    // validate_only checks everything, the database's rules included.
    let jack = app.user(TENANT, "jack@contoso.com", "Jack", "US").await;
    assert_error(
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                validate_only: true,
                ..upsert_request(pb::User {
                    id: jack.id.clone(),
                    ..feed_user("john@contoso.com", "Jack")
                })
            },
        )
        .await,
        Code::AlreadyExists,
        "USER_PRINCIPAL_NAME_TAKEN",
    );
    let status = assert_error(
        upsert(
            &mut admin,
            pb::UpsertUserRequest {
                validate_only: true,
                ..upsert_request(pb::User {
                    usage_location: "ZZ".into(),
                    ..feed_user("jack@contoso.com", "Jack")
                })
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["user.usage_location"]);
    assert_eq!(get(&mut admin, &jack.id).await.expect("get"), jack);

    // A validate_only request does not use up its request id.
    let request_id = new_request_id();
    let request = pb::UpsertUserRequest {
        request_id: request_id.clone(),
        ..upsert_request(feed_user("sam@contoso.com", "Sam"))
    };
    upsert(
        &mut admin,
        pb::UpsertUserRequest {
            validate_only: true,
            ..request.clone()
        },
    )
    .await
    .expect("rehearse");
    assert_error(
        get(&mut admin, "sam@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let sam = upsert(&mut admin, request).await.expect("then do it");
    assert_eq!(sam.etag, "1");
    assert_eq!(get(&mut admin, "sam@contoso.com").await.expect("get"), sam);
}

async fn reader_may_not_upsert(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut reader = app.reader(TENANT);
    let mut admin = app.admin(TENANT);

    let requests = [
        upsert_request(feed_user("john@contoso.com", "John")),
        pb::UpsertUserRequest {
            validate_only: true,
            ..upsert_request(feed_user("john@contoso.com", "John"))
        },
        // Permission is checked before the body: a reader learns nothing from validation.
        pb::UpsertUserRequest::default(),
        upsert_request(feed_user("not-an-upn", "Bad")),
        pb::UpsertUserRequest {
            request_id: "not-a-uuid".into(),
            ..upsert_request(feed_user("john@contoso.com", "John"))
        },
    ];
    for request in requests {
        let status = assert_error(
            upsert(&mut reader, request).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        );
        assert!(violated_fields(&status).is_empty(), "{status:?}");
    }
    assert_error(
        get(&mut admin, "john@contoso.com").await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_eq!(listed_names(&mut admin, "").await, Vec::<String>::new());

    // Nor change an existing user.
    let john = app.user(TENANT, "john@contoso.com", "John", "US").await;
    assert_error(
        upsert(
            &mut reader,
            upsert_request(feed_user("john@contoso.com", "Hacked")),
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_eq!(get(&mut admin, &john.id).await.expect("get"), john);
}

on_both_stores!(
    upsert_creates_user_keyed_by_user_principal_name,
    upsert_keeps_given_sip_address_kind_and_line_uri,
    upsert_same_user_principal_name_in_another_case_updates,
    upsert_keyed_by_id_renames_user_principal_name,
    upsert_refuses_user_principal_name_of_another_user,
    upsert_rejects_invalid_fields,
    rejected_update_leaves_the_user_unchanged,
    get_user_by_id_user_principal_name_and_sip_address,
    get_unknown_user_is_not_found,
    get_user_with_empty_identity_is_invalid,
    list_users_orders_by_user_principal_name,
    list_users_searches_display_name_and_user_principal_name_prefixes,
    list_users_search_matches_wildcards_literally,
    list_users_pages_through_every_user_once,
    list_users_refuses_a_page_token_of_another_query,
    upsert_with_request_id_replays_the_first_answer,
    concurrent_retries_with_one_request_id_change_the_user_once,
    concurrent_upserts_of_one_new_user_create_it_once,
    upsert_refuses_a_request_id_reused_for_another_request,
    request_ids_are_forgotten_after_their_retention,
    upsert_refuses_a_request_id_that_is_not_a_uuid,
    upsert_validate_only_changes_nothing,
    reader_may_not_upsert,
);
