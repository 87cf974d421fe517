//! The Contoso demo tenant: the seeds' examples, ready to try with grpcurl.
//!
//! Loading is idempotent: every record is created only if it is missing, so restarting with
//! `--demo` is safe and keeps whatever was changed since.

use std::time::SystemTime;

use anyhow::Context as _;

use crate::domain::{
    ActivationMode, ActivationState, Block, Capabilities, Capability, CivicAddress, Country, E164,
    Identity, License, NotificationSettings, NumberType, Operator, OperatorConsent, PhoneNumber,
    TargetKind, UserUpsert, ValidationStatus, validate_address,
};
use crate::store::Store;

/// The demo tenant's id.
pub const TENANT: &str = "contoso";

/// The demo tenant's verified email domain.
pub const EMAIL_DOMAIN: &str = "contoso.com";

/// The Operator Connect operators the demo uses, added when the configuration lacks them.
pub fn operators() -> Vec<Operator> {
    let us = Country::parse("US").expect("US is a country");
    let ca = Country::parse("CA").expect("CA is a country");
    let gb = Country::parse("GB").expect("GB is a country");
    vec![
        Operator {
            id: "fabrikam-telecom".into(),
            display_name: "Fabrikam Telecom".into(),
            countries: vec![us, ca],
            tenant_location_update_allowed: false,
            activation_mode: ActivationMode::Synchronous,
            endpoint: None,
        },
        Operator {
            id: "northwind-voice".into(),
            display_name: "Northwind Voice".into(),
            countries: vec![us, gb],
            tenant_location_update_allowed: true,
            activation_mode: ActivationMode::Synchronous,
            endpoint: None,
        },
    ]
}

/// The id of the demo's simulated operator, whose adapter runs out of process.
pub const SIMULATED_OPERATOR: &str = "litware-mobile";

/// How long the demo's simulated operator takes to activate a number.
pub const SIMULATED_ACTIVATION_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

/// The demo's simulated operator, Litware Mobile, reached at `endpoint` over the adapter
/// protocol: it takes [`SIMULATED_ACTIVATION_DELAY`] to activate a number, so a newcomer can
/// watch an assignment go from pending to activated.
pub fn simulated_operator(endpoint: &str) -> Operator {
    Operator {
        id: SIMULATED_OPERATOR.into(),
        display_name: "Litware Mobile".into(),
        countries: vec![Country::parse("US").expect("US is a country")],
        tenant_location_update_allowed: true,
        activation_mode: ActivationMode::Asynchronous,
        endpoint: Some(endpoint.to_owned()),
    }
}

/// The numbers Litware Mobile uploaded into the demo tenant.
const SIMULATED_NUMBERS: &[&str] = &["+14255550301", "+14255550302", "+14255550303"];

/// Loads the part of the demo that needs the simulated operator: the tenant's consent to it
/// and its numbers. Idempotent, as [`load`].
pub async fn load_simulated(store: &dyn Store) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let mut tx = store.write().await?;
    if !tx
        .consents(TENANT)
        .await?
        .iter()
        .any(|c| c.operator_id == SIMULATED_OPERATOR)
    {
        let consent = OperatorConsent {
            operator_id: SIMULATED_OPERATOR.into(),
            countries: vec![Country::parse("US").map_err(anyhow::Error::msg)?],
        };
        tx.put_consent(TENANT, &consent, now).await?;
    }
    for number in SIMULATED_NUMBERS {
        let number = E164::parse(number).map_err(anyhow::Error::msg)?;
        if tx.get_number(TENANT, &number.canonical()).await?.is_some() {
            continue;
        }
        let mut record = PhoneNumber::from_provider(
            number,
            NumberType::OperatorConnect,
            Some(SIMULATED_OPERATOR.into()),
            "Redmond".into(),
            USER_NUMBER.iter().copied().collect(),
            now,
        );
        record.emergency_location_id = Some("redmond-hq".into());
        tx.insert_number(TENANT, &record).await?;
    }
    tx.commit().await?;
    Ok(())
}

struct DemoUser {
    id: &'static str,
    upn: &'static str,
    name: &'static str,
    usage_location: &'static str,
    kind: TargetKind,
    licenses: &'static [License],
    on_premises_line_uri: &'static str,
}

const USERS: &[DemoUser] = &[
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000001",
        upn: "john@contoso.com",
        name: "John Smith",
        usage_location: "US",
        kind: TargetKind::User,
        licenses: &[License::PhoneSystem, License::CallingPlan],
        on_premises_line_uri: "",
    },
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000002",
        upn: "jack@contoso.com",
        name: "Jack Brown",
        usage_location: "US",
        kind: TargetKind::User,
        licenses: &[License::PhoneSystem, License::CallingPlan],
        on_premises_line_uri: "",
    },
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000003",
        upn: "amelie@contoso.com",
        name: "Amélie Dubois",
        usage_location: "FR",
        kind: TargetKind::User,
        licenses: &[License::PhoneSystem, License::CallingPlan],
        on_premises_line_uri: "",
    },
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000004",
        upn: "sam@contoso.com",
        name: "Sam Taylor",
        usage_location: "US",
        kind: TargetKind::User,
        licenses: &[],
        on_premises_line_uri: "",
    },
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000005",
        upn: "lee@contoso.com",
        name: "Lee Chen",
        usage_location: "US",
        kind: TargetKind::User,
        licenses: &[License::PhoneSystem, License::CallingPlan],
        on_premises_line_uri: "tel:+14255550199",
    },
    DemoUser {
        id: "7c0e2a51-0d1b-4c3e-9f00-000000000006",
        upn: "reception@contoso.com",
        name: "Contoso Reception",
        usage_location: "US",
        kind: TargetKind::ResourceAccount,
        licenses: &[License::PhoneSystemVirtualUser],
        on_premises_line_uri: "",
    },
];

struct DemoLocation {
    id: &'static str,
    description: &'static str,
    status: ValidationStatus,
    address: fn() -> CivicAddress,
}

fn redmond() -> CivicAddress {
    CivicAddress {
        company_name: "Contoso".into(),
        house_number: "1".into(),
        street_name: "Microsoft Way".into(),
        city: "Redmond".into(),
        state_or_province: "WA".into(),
        postal_code: "98052".into(),
        country: "US".into(),
        ..Default::default()
    }
}

fn paris() -> CivicAddress {
    CivicAddress {
        company_name: "Contoso France".into(),
        house_number: "39".into(),
        street_name: "Quai du Président Roosevelt".into(),
        city: "Issy-les-Moulineaux".into(),
        postal_code: "92130".into(),
        country: "FR".into(),
        ..Default::default()
    }
}

fn seattle() -> CivicAddress {
    CivicAddress {
        company_name: "Contoso".into(),
        house_number: "500".into(),
        street_name: "Pine".into(),
        street_suffix: "St".into(),
        city: "Seattle".into(),
        state_or_province: "WA".into(),
        postal_code: "98101".into(),
        country: "US".into(),
        ..Default::default()
    }
}

const LOCATIONS: &[DemoLocation] = &[
    DemoLocation {
        id: "redmond-hq",
        description: "Headquarters",
        status: ValidationStatus::Validated,
        address: redmond,
    },
    DemoLocation {
        id: "redmond-building-92",
        description: "Building 92, 1st floor",
        status: ValidationStatus::Validated,
        address: redmond,
    },
    DemoLocation {
        id: "paris-office",
        description: "Paris office",
        status: ValidationStatus::Validated,
        address: paris,
    },
    // Imported from an older system and never validated: numbers cannot use it yet.
    DemoLocation {
        id: "seattle-unvalidated",
        description: "Seattle store (not validated)",
        status: ValidationStatus::NotValidated,
        address: seattle,
    },
];

struct DemoNumber {
    number: &'static str,
    number_type: NumberType,
    operator: Option<&'static str>,
    city: &'static str,
    capabilities: &'static [Capability],
    emergency_location: Option<&'static str>,
    location_update_supported: bool,
}

const USER_NUMBER: &[Capability] = &[Capability::UserAssignment];
const SERVICE_NUMBER: &[Capability] = &[
    Capability::VoiceApplicationAssignment,
    Capability::ConferenceAssignment,
];

const NUMBERS: &[DemoNumber] = &[
    // Acquired with the headquarters as its emergency location, as US Calling Plan user
    // numbers need one.
    DemoNumber {
        number: "+14255550101",
        number_type: NumberType::CallingPlan,
        operator: None,
        city: "Redmond",
        capabilities: USER_NUMBER,
        emergency_location: Some("redmond-hq"),
        location_update_supported: true,
    },
    // Uploaded by Fabrikam with its emergency location set; Fabrikam does not let tenants
    // change it.
    DemoNumber {
        number: "+14255550102",
        number_type: NumberType::OperatorConnect,
        operator: Some("fabrikam-telecom"),
        city: "Redmond",
        capabilities: USER_NUMBER,
        emergency_location: Some("redmond-hq"),
        location_update_supported: false,
    },
    DemoNumber {
        number: "+14255550103",
        number_type: NumberType::CallingPlan,
        operator: None,
        city: "Redmond",
        capabilities: USER_NUMBER,
        emergency_location: None,
        location_update_supported: true,
    },
    DemoNumber {
        number: "+14255550104",
        number_type: NumberType::CallingPlan,
        operator: None,
        city: "Redmond",
        capabilities: USER_NUMBER,
        emergency_location: None,
        location_update_supported: true,
    },
    DemoNumber {
        number: "+14255550105",
        number_type: NumberType::OperatorConnect,
        operator: Some("northwind-voice"),
        city: "Redmond",
        capabilities: USER_NUMBER,
        emergency_location: None,
        location_update_supported: true,
    },
    DemoNumber {
        number: "+18005550100",
        number_type: NumberType::CallingPlan,
        operator: None,
        city: "",
        capabilities: SERVICE_NUMBER,
        emergency_location: None,
        location_update_supported: true,
    },
    DemoNumber {
        number: "+33140000001",
        number_type: NumberType::CallingPlan,
        operator: None,
        city: "Paris",
        capabilities: USER_NUMBER,
        emergency_location: None,
        location_update_supported: true,
    },
];

/// Loads the demo tenant into `store`, creating what is missing.
pub async fn load(store: &dyn Store) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let mut tx = store.write().await?;

    for user in USERS {
        if tx
            .find_user(TENANT, &Identity::Id(user.id.into()))
            .await?
            .is_some()
        {
            continue;
        }
        let upsert = UserUpsert::new(
            user.id,
            user.upn,
            "",
            user.name,
            user.usage_location,
            user.kind,
            user.licenses.iter().copied().collect(),
            user.on_premises_line_uri,
        )
        .with_context(|| format!("demo user {}", user.upn))?;
        tx.upsert_user(TENANT, &upsert, user.id, now).await?;
    }

    for location in LOCATIONS {
        if tx.get_location(TENANT, location.id).await?.is_some() {
            continue;
        }
        let valid = validate_address(&(location.address)(), location.description)
            .with_context(|| format!("demo location {}", location.id))?;
        tx.insert_location(TENANT, location.id, &valid, location.status, now)
            .await?;
    }

    // Contoso's users are at contoso.com: emails to them are sent.
    if tx
        .notification_settings(TENANT)
        .await?
        .update_time
        .is_none()
    {
        let verified = NotificationSettings::declare(&[EMAIL_DOMAIN.to_owned()], now)
            .map_err(|(_, why)| anyhow::anyhow!("demo email domain: {why}"))?;
        tx.put_notification_settings(TENANT, &verified).await?;
    }

    let consents = tx.consents(TENANT).await?;
    for operator in operators() {
        if consents.iter().any(|c| c.operator_id == operator.id) {
            continue;
        }
        let consent = OperatorConsent {
            operator_id: operator.id,
            countries: vec![Country::parse("US").map_err(anyhow::Error::msg)?],
        };
        tx.put_consent(TENANT, &consent, now).await?;
    }

    for demo in NUMBERS {
        let number = E164::parse(demo.number)
            .map_err(|e| anyhow::anyhow!("demo number {}: {e}", demo.number))?;
        if tx.get_number(TENANT, &number.canonical()).await?.is_some() {
            continue;
        }
        let record = PhoneNumber {
            number,
            number_type: demo.number_type,
            operator_id: demo.operator.map(str::to_owned),
            city: demo.city.into(),
            capabilities: demo.capabilities.iter().copied().collect::<Capabilities>(),
            assignment: None,
            activation_state: ActivationState::Activated,
            emergency_location_id: demo.emergency_location.map(str::to_owned),
            location_update_supported: demo.location_update_supported,
            block: Block::None,
            tags: Vec::new(),
            operation_id: None,
            version: 1,
            create_time: now,
            update_time: now,
        };
        tx.insert_number(TENANT, &record).await?;
    }

    tx.commit().await?;
    Ok(())
}
