//! ListOperators: the configured Operator Connect operators, with the tenant's consent to each.

use number_management::domain::{ActivationMode, Country, Operator};
use number_management::proto::v1 as pb;
use tonic::{Code, Status};

use crate::helpers::{Backend, Client, TestApp, assert_error, violated_fields};
use crate::on_both_stores;

/// The demo tenant, which consented to both demo operators for the US.
const DEMO_TENANT: &str = "contoso";
const OTHER_TENANT: &str = "fabrikam";

const SYNCHRONOUS: i32 = pb::ActivationMode::Synchronous as i32;
const ASYNCHRONOUS: i32 = pb::ActivationMode::Asynchronous as i32;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The demo operators as a tenant sees them, with `enabled_countries` when it consented.
fn fabrikam(enabled_countries: Option<&[&str]>) -> pb::Operator {
    pb::Operator {
        id: "fabrikam-telecom".into(),
        display_name: "Fabrikam Telecom".into(),
        countries: strings(&["US", "CA"]),
        tenant_location_update_allowed: false,
        activation_mode: SYNCHRONOUS,
        enabled: enabled_countries.is_some(),
        enabled_countries: strings(enabled_countries.unwrap_or_default()),
    }
}

fn northwind(enabled_countries: Option<&[&str]>) -> pb::Operator {
    pb::Operator {
        id: "northwind-voice".into(),
        display_name: "Northwind Voice".into(),
        countries: strings(&["US", "GB"]),
        tenant_location_update_allowed: true,
        activation_mode: SYNCHRONOUS,
        enabled: enabled_countries.is_some(),
        enabled_countries: strings(enabled_countries.unwrap_or_default()),
    }
}

async fn list(
    client: &mut Client,
    request: pb::ListOperatorsRequest,
) -> Result<pb::ListOperatorsResponse, Status> {
    client.list_operators(request).await.map(|r| r.into_inner())
}

/// Follows the page tokens with `page_size`, returning every operator and each page's size.
async fn list_paged(client: &mut Client, page_size: i32) -> (Vec<pb::Operator>, Vec<usize>) {
    let mut operators = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            client,
            pb::ListOperatorsRequest {
                page_size,
                page_token: token.clone(),
            },
        )
        .await
        .expect("list a page of operators");
        sizes.push(page.operators.len());
        operators.extend(page.operators);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "the pages never end");
    }
    (operators, sizes)
}

async fn lists_configured_operators_not_enabled_without_consent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = list(
        &mut app.admin(DEMO_TENANT),
        pb::ListOperatorsRequest::default(),
    )
    .await
    .expect("list operators");
    assert_eq!(response.operators, vec![fabrikam(None), northwind(None)]);
    assert_eq!(response.next_page_token, "");
}

async fn lists_the_tenants_consents(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let response = list(
        &mut app.admin(DEMO_TENANT),
        pb::ListOperatorsRequest::default(),
    )
    .await
    .expect("list operators");
    assert_eq!(
        response.operators,
        vec![fabrikam(Some(&["US"])), northwind(Some(&["US"]))]
    );
    assert_eq!(response.next_page_token, "");

    // Consent is per tenant: another tenant has enabled nothing.
    let other = list(
        &mut app.admin(OTHER_TENANT),
        pb::ListOperatorsRequest::default(),
    )
    .await
    .expect("list operators");
    assert_eq!(other.operators, vec![fabrikam(None), northwind(None)]);
}

async fn pages_through_operators(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut admin = app.admin(DEMO_TENANT);

    let first = list(
        &mut admin,
        pb::ListOperatorsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    assert_eq!(first.operators, vec![fabrikam(Some(&["US"]))]);
    assert!(!first.next_page_token.is_empty());
    let second = list(
        &mut admin,
        pb::ListOperatorsRequest {
            page_size: 1,
            page_token: first.next_page_token,
        },
    )
    .await
    .expect("second page");
    assert_eq!(second.operators, vec![northwind(Some(&["US"]))]);
    assert_eq!(second.next_page_token, "", "the last page");

    // A page exactly as large as the list has no next page.
    let exact = list(
        &mut admin,
        pb::ListOperatorsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .expect("one page of two");
    assert_eq!(exact.operators.len(), 2);
    assert_eq!(exact.next_page_token, "");

    let status = assert_error(
        list(
            &mut admin,
            pb::ListOperatorsRequest {
                page_token: "not a token!".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
    let status = assert_error(
        list(
            &mut admin,
            pb::ListOperatorsRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["page_size"]);
}

async fn a_reader_may_list_operators(backend: Backend) {
    let app = TestApp::spawn_demo(backend).await;
    let mut reader = app.reader(DEMO_TENANT);
    let response = list(&mut reader, pb::ListOperatorsRequest::default())
        .await
        .expect("a reader lists operators");
    assert_eq!(
        response.operators,
        vec![fabrikam(Some(&["US"])), northwind(Some(&["US"]))]
    );
    let (paged, sizes) = list_paged(&mut reader, 1).await;
    assert_eq!(sizes, [1, 1]);
    assert_eq!(paged, response.operators);
}

async fn lists_other_configurations_ordered_by_id(backend: Backend) {
    let country = |code: &str| Country::parse(code).expect("a country");
    let operator = |id: &str, countries: &[&str], mode: ActivationMode| Operator {
        id: id.into(),
        display_name: format!("Operator {id}"),
        countries: countries.iter().map(|c| country(c)).collect(),
        tenant_location_update_allowed: id.starts_with('m'),
        activation_mode: mode,
        // Asynchronous operators run out of process; this test never calls them.
        endpoint: (mode == ActivationMode::Asynchronous).then(|| "http://127.0.0.1:1".to_owned()),
    };
    // Configured out of order.
    let app = TestApp::spawn_with(
        backend,
        vec![
            operator("zeta-telecom", &["DE"], ActivationMode::Asynchronous),
            operator("alpha-voice", &["FR", "BE"], ActivationMode::Synchronous),
            operator("mid-carrier", &["JP"], ActivationMode::Asynchronous),
        ],
    )
    .await;
    let mut admin = app.admin(DEMO_TENANT);

    let (operators, sizes) = list_paged(&mut admin, 2).await;
    assert_eq!(sizes, [2, 1]);
    assert_eq!(
        operators,
        vec![
            pb::Operator {
                id: "alpha-voice".into(),
                display_name: "Operator alpha-voice".into(),
                countries: strings(&["FR", "BE"]),
                tenant_location_update_allowed: false,
                activation_mode: SYNCHRONOUS,
                enabled: false,
                enabled_countries: vec![],
            },
            pb::Operator {
                id: "mid-carrier".into(),
                display_name: "Operator mid-carrier".into(),
                countries: strings(&["JP"]),
                tenant_location_update_allowed: true,
                activation_mode: ASYNCHRONOUS,
                enabled: false,
                enabled_countries: vec![],
            },
            pb::Operator {
                id: "zeta-telecom".into(),
                display_name: "Operator zeta-telecom".into(),
                countries: strings(&["DE"]),
                tenant_location_update_allowed: false,
                activation_mode: ASYNCHRONOUS,
                enabled: false,
                enabled_countries: vec![],
            },
        ]
    );
    let (one_by_one, sizes) = list_paged(&mut admin, 1).await;
    assert_eq!(sizes, [1, 1, 1]);
    assert_eq!(one_by_one, operators);

    // No operators configured: an empty list.
    let empty = TestApp::spawn_with(backend, vec![]).await;
    let response = list(
        &mut empty.admin(DEMO_TENANT),
        pb::ListOperatorsRequest::default(),
    )
    .await
    .expect("list no operators");
    assert_eq!(response.operators, vec![]);
    assert_eq!(response.next_page_token, "");
}

on_both_stores!(
    lists_configured_operators_not_enabled_without_consent,
    lists_the_tenants_consents,
    pages_through_operators,
    a_reader_may_list_operators,
    lists_other_configurations_ordered_by_id,
);
