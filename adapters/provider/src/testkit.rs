//! The conformance kit: the behaviour every [`Provider`] must show, as checks each adapter runs
//! against itself (`tests/conformance.rs` in each adapter crate).
//!
//! The checks speak only the trait, so they hold for in-process adapters and for adapters in
//! another process alike. Each adapter describes itself with a [`Fixture`]; checks that need a
//! catalogue, or a carrier that lists its numbers, run only when the descriptor declares one,
//! and otherwise check that the adapter says it does not offer them.

use std::time::Duration;

use crate::{
    AssignmentCategory, AssignmentCheck, Capability, CarrierNumber, CarrierState,
    EMERGENCY_LOCATION_LOCKED, EmergencyAddress, ErrorKind, LocationCheck, NumberQuery, Progress,
    Provider, Provisioning, TargetKind,
};

/// What the kit needs to know about the adapter under test.
#[derive(Debug)]
pub struct Fixture<'a> {
    /// The adapter.
    pub provider: &'a dyn Provider,
    /// A number the adapter manages, that a user of `country` may hold.
    pub number: String,
    /// The number's country.
    pub country: String,
    /// Other numbers the adapter manages in the same country, which the listing checks
    /// provision beside `number` so that there is more than one page to walk.
    pub more_numbers: Vec<String>,
    /// How many times to poll a pending change before giving up.
    pub max_polls: usize,
}

impl<'a> Fixture<'a> {
    /// A fixture for `provider` with a number it manages in `country`; its
    /// [`more_numbers`](Fixture::more_numbers) are the numbers that differ from it in the last
    /// digit only (the next two, wrapping past 9), which are in the same range.
    pub fn new(provider: &'a dyn Provider, number: &str, country: &str) -> Self {
        Self {
            provider,
            number: number.to_owned(),
            country: country.to_owned(),
            more_numbers: [1, 2]
                .iter()
                .filter_map(|d| neighbour(number, *d))
                .collect(),
            max_polls: 50,
        }
    }
}

/// `number` with `step` added to its last digit, modulo 10; `None` when it does not end in a
/// digit.
fn neighbour(number: &str, step: u32) -> Option<String> {
    let (head, last) = number.split_at(number.len().checked_sub(1)?);
    let digit = last.chars().next()?.to_digit(10)?;
    let next = char::from_digit((digit + step) % 10, 10)?;
    Some(format!("{head}{next}"))
}

/// Runs every check. Panics, naming the broken rule, when the adapter does not conform.
pub async fn run(fixture: &Fixture<'_>) {
    descriptor_is_well_formed(fixture);
    accepts_a_plain_assignment(fixture).await;
    refuses_location_changes_where_locked(fixture).await;
    provisioning_is_idempotent(fixture).await;
    unknown_tickets_are_not_found(fixture).await;
    if fixture.provider.descriptor().catalogue {
        catalogue_searches_are_stable(fixture).await;
        catalogue_refuses_numbers_it_does_not_sell(fixture).await;
    } else {
        no_catalogue_means_unsupported(fixture).await;
    }
    if fixture.provider.descriptor().lists_numbers {
        listing_shows_what_was_provisioned(fixture).await;
    } else {
        no_listing_means_unsupported(fixture).await;
    }
}

fn assignment(fixture: &Fixture<'_>) -> AssignmentCheck {
    AssignmentCheck {
        tenant_id: "conformance-tenant".into(),
        phone_number: fixture.number.clone(),
        country: fixture.country.clone(),
        target_kind: TargetKind::User,
        usage_location: fixture.country.clone(),
        category: AssignmentCategory::Primary,
        changes_emergency_location: false,
        has_emergency_location: true,
        location_update_supported: true,
    }
}

fn provisioning(fixture: &Fixture<'_>, key: &str) -> Provisioning {
    Provisioning {
        tenant_id: "conformance-tenant".into(),
        phone_number: fixture.number.clone(),
        target_id: "conformance-user".into(),
        emergency_address: None,
        idempotency_key: key.into(),
    }
}

/// The descriptor names the provider and its countries in the canonical forms.
pub fn descriptor_is_well_formed(fixture: &Fixture<'_>) {
    let d = fixture.provider.descriptor();
    assert!(!d.id.is_empty(), "the descriptor has no id");
    assert!(!d.display_name.is_empty(), "{}: no display name", d.id);
    for country in &d.countries {
        assert!(
            country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
            "{}: country {country:?} is not an upper-case ISO 3166-1 alpha-2 code",
            d.id
        );
    }
    assert!(
        d.serves(&fixture.country),
        "{}: the fixture's country {} is not served",
        d.id,
        fixture.country
    );
}

/// A user of the number's country may hold it: no location change, nothing unusual.
pub async fn accepts_a_plain_assignment(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    provider
        .check_assignment(&assignment(fixture))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: refused a plain assignment: {e}",
                provider.descriptor().id
            )
        });
}

/// A number whose inventory record says the tenant may not change its emergency location is
/// refused with EMERGENCY_LOCATION_LOCKED, at assignment and on its own, and errors name the
/// provider.
pub async fn refuses_location_changes_where_locked(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let locked_assignment = AssignmentCheck {
        changes_emergency_location: true,
        location_update_supported: false,
        ..assignment(fixture)
    };
    let error = provider
        .check_assignment(&locked_assignment)
        .await
        .expect_err("a locked location was changed at assignment");
    assert_eq!(
        error.kind,
        ErrorKind::Refused {
            reason: EMERGENCY_LOCATION_LOCKED.into()
        },
        "{id}: {error}"
    );
    assert_eq!(&error.provider, id, "errors must name their provider");
    assert!(!error.is_retryable(), "{id}: a refusal is not retryable");

    let locked_update = LocationCheck {
        tenant_id: "conformance-tenant".into(),
        phone_number: fixture.number.clone(),
        country: fixture.country.clone(),
        assigned_to: None,
        clears: false,
        location_update_supported: false,
    };
    let error = provider
        .check_location_update(&locked_update)
        .await
        .expect_err("a locked location was changed");
    assert_eq!(
        error.kind,
        ErrorKind::Refused {
            reason: EMERGENCY_LOCATION_LOCKED.into()
        },
        "{id}: {error}"
    );
    provider
        .check_location_update(&LocationCheck {
            location_update_supported: true,
            ..locked_update
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: refused an allowed location update: {e}"));
}

/// Drives a change to its end, polling while it is pending.
async fn finish(fixture: &Fixture<'_>, mut progress: Progress) -> Progress {
    for _ in 0..fixture.max_polls {
        match &progress {
            Progress::Done => return progress,
            Progress::Pending {
                ticket,
                retry_after,
            } => {
                tokio::time::sleep((*retry_after).min(Duration::from_millis(200))).await;
                progress = fixture
                    .provider
                    .poll(ticket)
                    .await
                    .unwrap_or_else(|e| panic!("polling {ticket}: {e}"));
            }
        }
    }
    panic!(
        "{}: still pending after {} polls",
        fixture.provider.descriptor().id,
        fixture.max_polls
    )
}

/// Provisioning calls repeated with the same idempotency key succeed again rather than fail or
/// provision twice, and every change ends.
pub async fn provisioning_is_idempotent(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let key = format!("conformance-{}", fixture.number);
    let activation = provisioning(fixture, &format!("{key}-activate"));
    for attempt in 1..=2 {
        let progress = provider
            .activate(&activation)
            .await
            .unwrap_or_else(|e| panic!("{id}: activation attempt {attempt} failed: {e}"));
        assert_eq!(finish(fixture, progress).await, Progress::Done);
    }
    let update = provisioning(fixture, &format!("{key}-location"));
    let progress = provider
        .update_location(&update)
        .await
        .unwrap_or_else(|e| panic!("{id}: location update failed: {e}"));
    assert_eq!(finish(fixture, progress).await, Progress::Done);
    let deactivation = provisioning(fixture, &format!("{key}-deactivate"));
    for attempt in 1..=2 {
        let progress = provider
            .deactivate(&deactivation)
            .await
            .unwrap_or_else(|e| panic!("{id}: deactivation attempt {attempt} failed: {e}"));
        assert_eq!(finish(fixture, progress).await, Progress::Done);
    }
}

/// Polling a ticket the provider never issued answers NotFound.
pub async fn unknown_tickets_are_not_found(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let error = provider
        .poll("no-such-ticket")
        .await
        .expect_err("an unknown ticket was accepted");
    assert_eq!(
        error.kind,
        ErrorKind::NotFound,
        "{}: {error}",
        provider.descriptor().id
    );
}

/// Searching the catalogue pages through one stable list of numbers of the country asked for.
pub async fn catalogue_searches_are_stable(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let query = NumberQuery {
        country: fixture.country.clone(),
        capability: Some(Capability::UserAssignment),
        ..Default::default()
    };
    let first = provider.search(&query, 0, 4).await.expect("search");
    let second = provider.search(&query, 4, 4).await.expect("search");
    let both = provider.search(&query, 0, 8).await.expect("search");
    assert!(!first.is_empty(), "{id}: no numbers in {}", fixture.country);
    let paged: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(paged, both, "{id}: pages are not a stable list");
    for offered in &both {
        assert_eq!(offered.country, fixture.country, "{id}: {offered:?}");
        assert!(offered.capabilities.contains(Capability::UserAssignment));
        assert!(offered.phone_number.starts_with('+'));
    }
    provider
        .acquire("conformance-tenant", &[first[0].phone_number.clone()])
        .await
        .unwrap_or_else(|e| panic!("{id}: could not acquire an offered number: {e}"));
    provider
        .release("conformance-tenant", &[first[0].phone_number.clone()])
        .await
        .unwrap_or_else(|e| panic!("{id}: could not release an acquired number: {e}"));
}

/// Acquiring a number that is not in the catalogue is refused as NotFound.
pub async fn catalogue_refuses_numbers_it_does_not_sell(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let error = provider
        .acquire("conformance-tenant", &["+999".into()])
        .await
        .expect_err("a number outside the catalogue was acquired");
    assert_eq!(
        error.kind,
        ErrorKind::NotFound,
        "{}: {error}",
        provider.descriptor().id
    );
}

/// A provider without a catalogue says so rather than pretending.
pub async fn no_catalogue_means_unsupported(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let query = NumberQuery {
        country: fixture.country.clone(),
        ..Default::default()
    };
    let error = provider
        .search(&query, 0, 1)
        .await
        .expect_err("search without a catalogue");
    assert_eq!(error.kind, ErrorKind::Unsupported);
    let error = provider
        .acquire("conformance-tenant", std::slice::from_ref(&fixture.number))
        .await
        .expect_err("acquire without a catalogue");
    assert_eq!(error.kind, ErrorKind::Unsupported);
}

const LISTING_TENANT: &str = "conformance-listing-tenant";
const LISTING_LOCATION: &str = "conformance-location";

/// Every number the provider lists for `tenant`, walking pages of `limit`; panics when the
/// pages do not end or do not keep their order.
async fn list_all(fixture: &Fixture<'_>, tenant: &str, limit: usize) -> Vec<CarrierNumber> {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let mut numbers: Vec<CarrierNumber> = Vec::new();
    let mut after: Option<String> = None;
    // More pages than numbers could ever need means the listing does not end.
    for _ in 0..1000 {
        let page = provider
            .list_numbers(tenant, after.as_deref(), limit)
            .await
            .unwrap_or_else(|e| panic!("{id}: listing the numbers of {tenant} failed: {e}"));
        assert!(
            page.numbers.len() <= limit,
            "{id}: {} numbers in a page of {limit}",
            page.numbers.len()
        );
        for number in page.numbers {
            if let Some(previous) = numbers
                .last()
                .map(|n| n.phone_number.clone())
                .or(after.clone())
            {
                assert!(
                    number.phone_number > previous,
                    "{id}: {} listed after {previous}: not in number order, or twice",
                    number.phone_number
                );
            }
            numbers.push(number);
        }
        match page.next_after {
            None => return numbers,
            Some(next) => after = Some(next),
        }
    }
    panic!("{id}: the listing of {tenant} did not end after 1000 pages")
}

/// Provisions `number` for the listing tenant (activation or deactivation) and waits until done.
async fn provision_for_listing(fixture: &Fixture<'_>, number: &str, activate: bool) {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let change = Provisioning {
        tenant_id: LISTING_TENANT.into(),
        phone_number: number.to_owned(),
        target_id: "conformance-user".into(),
        emergency_address: Some(EmergencyAddress {
            location_id: LISTING_LOCATION.into(),
            country: fixture.country.clone(),
            formatted: "1 Conformance Way".into(),
        }),
        idempotency_key: format!("conformance-listing-{number}-{activate}"),
    };
    let progress = if activate {
        provider.activate(&change).await
    } else {
        provider.deactivate(&change).await
    }
    .unwrap_or_else(|e| panic!("{id}: provisioning {number} for the listing failed: {e}"));
    assert_eq!(finish(fixture, progress).await, Progress::Done);
}

/// A provider that lists its numbers lists an activated number as active, with its target and
/// emergency location, for its tenant only; pages of one walk every number once, in order; and
/// a deactivated number is listed inactive, or not at all.
pub async fn listing_shows_what_was_provisioned(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let id = &provider.descriptor().id;
    let all: Vec<&String> = std::iter::once(&fixture.number)
        .chain(&fixture.more_numbers)
        .collect();
    assert!(
        all.len() >= 2,
        "{id}: the fixture needs more_numbers to check paging"
    );
    for number in &all {
        provision_for_listing(fixture, number, true).await;
    }

    let listed = list_all(fixture, LISTING_TENANT, 100).await;
    for number in &all {
        let found = listed
            .iter()
            .find(|n| &&n.phone_number == number)
            .unwrap_or_else(|| panic!("{id}: activated {number} is not listed: {listed:?}"));
        assert_eq!(found.state, CarrierState::Active, "{id}: {found:?}");
        assert_eq!(
            found.target_id.as_deref(),
            Some("conformance-user"),
            "{id}: {found:?}"
        );
        assert_eq!(
            found.emergency_location_id.as_deref(),
            Some(LISTING_LOCATION),
            "{id}: {found:?}"
        );
    }
    let paged = list_all(fixture, LISTING_TENANT, 1).await;
    assert_eq!(
        paged, listed,
        "{id}: pages of one do not walk the same numbers as one page"
    );

    let elsewhere = list_all(fixture, "conformance-other-tenant", 100).await;
    assert!(
        elsewhere.iter().all(|n| !all.contains(&&n.phone_number)),
        "{id}: another tenant sees the listing tenant's numbers: {elsewhere:?}"
    );

    provision_for_listing(fixture, &fixture.number, false).await;
    let after = list_all(fixture, LISTING_TENANT, 100).await;
    if let Some(found) = after.iter().find(|n| n.phone_number == fixture.number) {
        assert_eq!(
            found.state,
            CarrierState::Inactive,
            "{id}: a deactivated number is listed {found:?}"
        );
    }
    for number in &fixture.more_numbers {
        provision_for_listing(fixture, number, false).await;
    }
}

/// A provider that does not list its numbers says so rather than pretending it holds none.
pub async fn no_listing_means_unsupported(fixture: &Fixture<'_>) {
    let provider = fixture.provider;
    let error = provider
        .list_numbers("conformance-tenant", None, 10)
        .await
        .expect_err("listing numbers without lists_numbers");
    assert_eq!(
        error.kind,
        ErrorKind::Unsupported,
        "{}: {error}",
        provider.descriptor().id
    );
}
