//! Upgrades lose nothing: a database the previous release wrote (migrations 0001-0004, in
//! portable types: microsecond times, 0/1 flags, comma-separated lists, a capability bit mask,
//! JSON and UUIDs in text) is upgraded in place when the new code opens it, and every record
//! then reads back through the API exactly as it was written, to the microsecond.
//!
//! Each test runs in four steps: [`PreviousRelease::install`] builds the
//! previous release's schema with sqlx's own migrator, so the upgrade is a real one (0005 runs
//! and sqlx validates the checksums of 0001-0004); [`PreviousRelease::write_records`] writes
//! records in that schema with raw SQL; [`TestApp::start_on`] opens the database, which
//! migrates it; and the remaining functions read every record back, filter on the converted
//! columns, and change migrated records.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use number_management::clock::ManualClock;
use number_management::domain::Notification;
use number_management::proto::v1 as pb;
use number_management::service::WorkerSettings;
use prost::Message as _;
use prost_types::Timestamp;
use prost_types::value::Kind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};
use tonic::Code;

use crate::calls::{
    all_audit_events, all_phone_numbers, assign, assign_request, get_phone_number, remove,
    remove_request,
};
use crate::helpers::{Backend, Client, TestApp, TestConfig, TestDatabase, assert_error};
use crate::on_both_stores;

on_both_stores!(an_upgrade_keeps_every_record);

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 4;

const TENANT: &str = "contoso";

// The demo tenant's users (src/demo.rs).
const JOHN: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JACK: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000002";
const SAM: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000004";
const LEE: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000005";
const RECEPTION: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000006";

/// The Direct Routing number with an extension (its base number is +14255388701).
const EXTENSION: &str = "+14255388701;ext=1001";

/// The operation of the pending assignment: a UUIDv7, in text before the upgrade.
const OPERATION: &str = "019ab3c4-2000-7a00-8b00-00000000a001";

/// The request id of Sam's UpsertUser, whose answer the previous release stored.
const SAM_REQUEST: &str = "0b9f7a3c-6c1e-4f7e-9a61-3d2f0c4b5e10";

// Times in microseconds since the Unix epoch, as the previous release kept them. Each record's
// are written out in the SQL below and in the expectations (`at(...)`); every one has a
// fraction of a second, so a conversion that shifts or rounds a time shows.

/// The service's clock when it starts on the upgraded database: after every record was written.
const NOW: i64 = 1_764_000_000_000_000; // 2025-11-24T16:00:00Z
/// When +14255550103's block ends: 30 days after `NOW`.
const BLOCKED_UNTIL: i64 = 1_766_592_000_123_456;
/// When the pending provisioning job and the pending email are next tried: an hour after `NOW`.
const NEXT_ATTEMPT: i64 = 1_764_003_600_000_000;
/// Where the test moves the clock to once everything was read: past `NEXT_ATTEMPT`.
const LATER: i64 = NEXT_ATTEMPT + 3_600_000_000;

// ---- step 1: the previous release's database --------------------------------------------------

/// A database as the previous release had it, on its own database's driver.
enum PreviousRelease {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl PreviousRelease {
    /// Connects to the (empty) database at `url`.
    async fn connect(backend: Backend, url: &str) -> Self {
        match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .expect("a SQLite URL")
                    .create_if_missing(true)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .expect("open the SQLite file");
                Self::Sqlite(pool)
            }
            Backend::Postgres => Self::Postgres(
                PgPool::connect(url)
                    .await
                    .expect("connect to the PostgreSQL database"),
            ),
        }
    }

    /// Creates the previous release's schema the way it did: sqlx's migrator, from the same
    /// files, stopping after 0004. `_sqlx_migrations` then records 0001-0004 with their
    /// checksums, so the new code's migrator takes 0005 on as an upgrade.
    async fn install(backend: Backend, url: &str) -> Self {
        let database = Self::connect(backend, url).await;
        let migrator = migrator(backend).await;
        match &database {
            Self::Sqlite(pool) => migrator.run_to(PREVIOUS_RELEASE, pool).await,
            Self::Postgres(pool) => migrator.run_to(PREVIOUS_RELEASE, pool).await,
        }
        .expect("apply the previous release's migrations");
        assert_eq!(database.applied_versions().await, [1, 2, 3, 4]);
        database
    }

    /// The migrations recorded as applied, in order.
    async fn applied_versions(&self) -> Vec<i64> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await,
        }
        .expect("read _sqlx_migrations")
    }

    /// Runs statements written in the previous release's schema.
    async fn execute(&self, sql: &str) {
        let statements = || sqlx::raw_sql(AssertSqlSafe(sql.to_owned()));
        match self {
            Self::Sqlite(pool) => statements().execute(pool).await.map(drop),
            Self::Postgres(pool) => statements().execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    /// Writes the tenant's records as the previous release stored them (step 2).
    async fn write_records(&self) {
        // In the order of the foreign keys.
        for sql in [
            USERS,
            EMERGENCY_LOCATIONS,
            PHONE_NUMBERS,
            OPERATOR_CONSENTS,
            &audit_events(),
            OPERATIONS,
            PROVISIONING_JOBS,
            NOTIFICATIONS,
        ] {
            self.execute(sql).await;
        }
        // The fingerprint is bytes: a bound parameter, where literals would differ (BYTEA on
        // PostgreSQL, BLOB on SQLite).
        let fingerprint = sam_fingerprint();
        match self {
            Self::Sqlite(pool) => sqlx::query(REQUEST_IDS)
                .bind(fingerprint)
                .execute(pool)
                .await
                .map(drop),
            Self::Postgres(pool) => sqlx::query(REQUEST_IDS)
                .bind(fingerprint)
                .execute(pool)
                .await
                .map(drop),
        }
        .expect("insert the request id");
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// The migrator over the store's migrations, read from the files the store embeds.
async fn migrator(backend: Backend) -> Migrator {
    let directory = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(directory);
    Migrator::new(path).await.expect("read the migrations")
}

// ---- step 2: records in the previous release's format ---------------------------------------

// The same SQL runs on both databases: the previous release's schema was portable. Flags are
// 0/1, lists comma-separated, capabilities a bit mask (1 user, 2 voice application,
// 4 conference), times microseconds.

/// John: Phone System and Calling Plan, enterprise voice on, holding a Calling Plan number
/// (primary) and a Direct Routing extension (private). Jack: waiting for an Operator Connect
/// number. Sam: no licence (""). Lee: an on-premises line. Reception: a resource account.
const USERS: &str = "\
INSERT INTO users (tenant_id, id, user_principal_name, upn_key, sip_address, sip_key,
    display_name, display_name_key, usage_location, kind, licenses, enterprise_voice_enabled,
    on_premises_line_uri, version, create_time, update_time) VALUES
('contoso', '7c0e2a51-0d1b-4c3e-9f00-000000000001', 'john@contoso.com', 'john@contoso.com',
    'sip:john@contoso.com', 'sip:john@contoso.com', 'John Smith', 'john smith', 'US', 'USER',
    'PHONE_SYSTEM,CALLING_PLAN', 1, NULL, 3, 1763990001123456, 1763998001654321),
('contoso', '7c0e2a51-0d1b-4c3e-9f00-000000000002', 'jack@contoso.com', 'jack@contoso.com',
    'sip:jack@contoso.com', 'sip:jack@contoso.com', 'Jack Brown', 'jack brown', 'US', 'USER',
    'PHONE_SYSTEM,CALLING_PLAN', 0, NULL, 2, 1763990002123456, 1763998002654321),
('contoso', '7c0e2a51-0d1b-4c3e-9f00-000000000004', 'sam@contoso.com', 'sam@contoso.com',
    'sip:sam@contoso.com', 'sip:sam@contoso.com', 'Sam Taylor', 'sam taylor', 'US', 'USER',
    '', 0, NULL, 2, 1763990003123456, 1763998003654321),
('contoso', '7c0e2a51-0d1b-4c3e-9f00-000000000005', 'lee@contoso.com', 'lee@contoso.com',
    'sip:lee@contoso.com', 'sip:lee@contoso.com', 'Lee Chen', 'lee chen', 'US', 'USER',
    'PHONE_SYSTEM,CALLING_PLAN', 0, 'tel:+14255550199', 1, 1763990004123456, 1763990004123456),
('contoso', '7c0e2a51-0d1b-4c3e-9f00-000000000006', 'reception@contoso.com',
    'reception@contoso.com', 'sip:reception@contoso.com', 'sip:reception@contoso.com',
    'Contoso Reception', 'contoso reception', 'US', 'RESOURCE_ACCOUNT',
    'PHONE_SYSTEM_VIRTUAL_USER', 1, NULL, 2, 1763990005123456, 1763998005654321)";

/// Created in an order that is not the ids' order, so a listing oldest first shows that the
/// creation times kept their order.
const EMERGENCY_LOCATIONS: &str = "\
INSERT INTO emergency_locations (tenant_id, id, company_name, house_number,
    house_number_suffix, pre_directional, street_name, street_suffix, post_directional, city,
    city_key, state_or_province, postal_code, country, description, validation_status,
    create_time) VALUES
('contoso', 'redmond-hq', 'Contoso', '1', '', '', 'Microsoft Way', '', '', 'Redmond', 'redmond',
    'WA', '98052', 'US', 'Headquarters', 'VALIDATED', 1763980001234567),
('contoso', 'seattle-unvalidated', 'Contoso', '500', '', '', 'Pine', 'St', '', 'Seattle',
    'seattle', 'WA', '98101', 'US', 'Seattle store (not validated)', 'NOT_VALIDATED',
    1763980002345678),
('contoso', 'paris-office', 'Contoso France', '39', '', '', 'Quai du Président Roosevelt', '',
    '', 'Issy-les-Moulineaux', 'issy-les-moulineaux', '', '92130', 'FR', 'Paris office',
    'VALIDATED', 1763980003456789)";

/// Every capability bit is set on some number (1, 3 and 6), every assignment status and both
/// kinds of block occur, and one assignment waits for its provider.
const PHONE_NUMBERS: &str = "\
INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, operator_id,
    country, city, capabilities, assigned_to, assignment_category, activation_state,
    emergency_location_id, location_update_supported, blocked_until, blocked_forever, version,
    create_time, update_time, operation_id) VALUES
('contoso', '+14255550101', '+14255550101', 'CALLING_PLAN', NULL, 'US', 'Redmond', 1,
    '7c0e2a51-0d1b-4c3e-9f00-000000000001', 'PRIMARY', 'ACTIVATED', 'redmond-hq', 1, NULL, 0, 2,
    1763970001111111, 1763998101222222, NULL),
('contoso', '+14255550102', '+14255550102', 'OPERATOR_CONNECT', 'fabrikam-telecom', 'US',
    'Redmond', 3, NULL, NULL, 'ACTIVATED', 'redmond-hq', 0, NULL, 0, 1,
    1763970002111111, 1763970002111111, NULL),
('contoso', '+14255550103', '+14255550103', 'CALLING_PLAN', NULL, 'US', 'Redmond', 1, NULL,
    NULL, 'ACTIVATED', NULL, 1, 1766592000123456, 0, 4, 1763970003111111, 1763998103222222,
    NULL),
('contoso', '+14255550104', '+14255550104', 'CALLING_PLAN', NULL, 'US', 'Redmond', 1, NULL,
    NULL, 'ACTIVATED', NULL, 1, NULL, 1, 3, 1763970004111111, 1763998104222222, NULL),
('contoso', '+14255550105', '+14255550105', 'OPERATOR_CONNECT', 'northwind-voice', 'US',
    'Redmond', 1, '7c0e2a51-0d1b-4c3e-9f00-000000000002', 'PRIMARY', 'ASSIGNMENT_PENDING',
    'redmond-hq', 1, NULL, 0, 2, 1763970005111111, 1763998105222222,
    '019ab3c4-2000-7a00-8b00-00000000a001'),
('contoso', '+14255388701;ext=1001', '+14255388701', 'DIRECT_ROUTING', NULL, 'US', '', 1,
    '7c0e2a51-0d1b-4c3e-9f00-000000000001', 'PRIVATE', 'ACTIVATED', NULL, 1, NULL, 0, 1,
    1763970006111111, 1763970006111111, NULL),
('contoso', '+18005550100', '+18005550100', 'CALLING_PLAN', NULL, 'US', '', 6,
    '7c0e2a51-0d1b-4c3e-9f00-000000000006', 'PRIMARY', 'ACTIVATED', NULL, 1, NULL, 0, 2,
    1763970007111111, 1763998107222222, NULL)";

/// A list of two countries and a list of one.
const OPERATOR_CONSENTS: &str = "\
INSERT INTO operator_consents (tenant_id, operator_id, countries, create_time) VALUES
('contoso', 'fabrikam-telecom', 'US,CA', 1763960001333333),
('contoso', 'northwind-voice', 'US', 1763960002333333)";

// The audit snapshots as the previous release wrote them (serde_json's compact text), with a
// creation (no before), a change (before and after), nulls, lists and a non-ASCII letter.
const PARIS_CREATED: &str = r#"{"address":"39 Quai du Président Roosevelt, 92130 Issy-les-Moulineaux, FR","description":"Paris office","id":"paris-office","validationStatus":"VALIDATED"}"#;
const SAM_FED: &str = r#"{"displayName":"Sam Taylor","enterpriseVoiceEnabled":false,"id":"7c0e2a51-0d1b-4c3e-9f00-000000000004","kind":"USER","licenses":[],"onPremisesLineUri":null,"sipAddress":"sip:sam@contoso.com","usageLocation":"US","userPrincipalName":"sam@contoso.com"}"#;
const NUMBER_BEFORE: &str = r#"{"activationState":"ACTIVATED","assignedTo":null,"assignedToUserPrincipalName":null,"assignmentBlocked":"NOT_BLOCKED","assignmentCategory":null,"capabilities":["USER_ASSIGNMENT"],"emergencyLocationId":"redmond-hq","locationUpdateSupported":true,"numberType":"CALLING_PLAN","operationId":null,"operatorId":null,"phoneNumber":"+14255550101"}"#;
const NUMBER_AFTER: &str = r#"{"activationState":"ACTIVATED","assignedTo":"7c0e2a51-0d1b-4c3e-9f00-000000000001","assignedToUserPrincipalName":"john@contoso.com","assignmentBlocked":"NOT_BLOCKED","assignmentCategory":"PRIMARY","capabilities":["USER_ASSIGNMENT"],"emergencyLocationId":"redmond-hq","locationUpdateSupported":true,"numberType":"CALLING_PLAN","operationId":null,"operatorId":null,"phoneNumber":"+14255550101"}"#;

/// Three events, their UUIDv7 ids in the order of their times, with the snapshots above.
fn audit_events() -> String {
    format!(
        "\
INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, user_id,
    request_id, before, after) VALUES
('contoso', '019ab3c4-1000-7c00-8d00-00000000c001', 1763980003456789, 'admin@contoso.com',
    'CREATE_EMERGENCY_LOCATION', NULL, NULL, NULL, NULL, '{PARIS_CREATED}'),
('contoso', '019ab3c4-1000-7c00-8d00-00000000c002', 1763990003123456, 'directory-sync',
    'UPSERT_USER', NULL, '7c0e2a51-0d1b-4c3e-9f00-000000000004',
    '0b9f7a3c-6c1e-4f7e-9a61-3d2f0c4b5e10', NULL, '{SAM_FED}'),
('contoso', '019ab3c4-1000-7c00-8d00-00000000c003', 1763998101222222, 'admin@contoso.com',
    'ASSIGN_PHONE_NUMBER', '+14255550101', '7c0e2a51-0d1b-4c3e-9f00-000000000001',
    '5e8f0a2b-7c1d-4e3f-8a9b-0c1d2e3f4a5b', '{NUMBER_BEFORE}', '{NUMBER_AFTER}')"
    )
}

/// Jack's assignment of +14255550105: its one job failed once to reach the provider and is due
/// again an hour after `NOW`. The replica that tried it left an expired lease behind.
const OPERATIONS: &str = "\
INSERT INTO operations (tenant_id, id, kind, state, error, request_id, actor, create_time,
    update_time) VALUES
('contoso', '019ab3c4-2000-7a00-8b00-00000000a001', 'ASSIGN_PHONE_NUMBER', 'RUNNING', NULL,
    '4d2b6f1e-8a3c-4e5f-9b7d-1c2e3f4a5b6c', 'admin@contoso.com', 1763998105222222,
    1763998205444444)";

const PROVISIONING_JOBS: &str = "\
INSERT INTO provisioning_jobs (id, tenant_id, operation_id, phone_number, action, provider_id,
    target_id, emergency_location_id, previous_location_id, state, ticket, reason, attempts,
    failures, next_attempt_time, lease_owner, lease_expires, completed_by, create_time,
    update_time) VALUES
('019ab3c4-2000-7a00-8b00-00000000b001', 'contoso', '019ab3c4-2000-7a00-8b00-00000000a001',
    '+14255550105', 'ACTIVATE', 'northwind-voice', '7c0e2a51-0d1b-4c3e-9f00-000000000002',
    'redmond-hq', NULL, 'RUNNING', NULL, 'northwind-voice: connection refused', 1, 1,
    1764003600000000, 'replica-a', 1763998235444444, NULL, 1763998105222222, 1763998205444444)";

/// One email sent, one waiting for its retry.
const NOTIFICATIONS: &str = "\
INSERT INTO notifications (tenant_id, id, recipient, subject, body, phone_number, create_time,
    state, attempts, next_attempt_time, last_error, lease_owner, lease_expires) VALUES
('contoso', '019ab3c4-3000-7e00-8f00-00000000d001', 'john@contoso.com',
    'Your phone number is +14255550101', 'John Smith, +14255550101 is now your phone number.',
    '+14255550101', 1763998101222222, 'SENT', 1, 1763998101222222, NULL, NULL, NULL),
('contoso', '019ab3c4-3000-7e00-8f00-00000000d002', 'jack@contoso.com',
    'Your phone number is +14255550105', 'Jack Brown, +14255550105 is now your phone number.',
    '+14255550105', 1763998105222222, 'PENDING', 1, 1764003600000000,
    '421 4.3.0 try again later', NULL, NULL)";

/// Sam's UpsertUser, retried with its request id: the first answer is kept (Sam was at
/// version 1 then), with the request's fingerprint ($1).
const REQUEST_IDS: &str = concat!(
    "INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, response, ",
    "create_time) VALUES ('contoso', '0b9f7a3c-6c1e-4f7e-9a61-3d2f0c4b5e10', 'UpsertUser', $1, '",
    r#"{"id":"7c0e2a51-0d1b-4c3e-9f00-000000000004","user_principal_name":"sam@contoso.com","sip_address":"sip:sam@contoso.com","display_name":"Sam Taylor","usage_location":"US","kind":"USER","licenses":[],"enterprise_voice_enabled":false,"on_premises_line_uri":null,"phone_numbers":[],"version":1,"create_time":{"secs_since_epoch":1763990003,"nanos_since_epoch":123456000},"update_time":{"secs_since_epoch":1763990003,"nanos_since_epoch":123456000}}"#,
    "', 1763990003123456)"
);

/// Sam's UpsertUser as the directory sent it.
fn sam_upsert() -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            user_principal_name: "sam@contoso.com".into(),
            display_name: "Sam Taylor".into(),
            usage_location: "US".into(),
            ..Default::default()
        }),
        request_id: SAM_REQUEST.into(),
        validate_only: false,
    }
}

/// The fingerprint the previous release stored with Sam's request: the request without its
/// request id, encoded, then a zero byte and the caller's name (src/api/mutation.rs and
/// `Actor::fingerprint`). The caller is the subject of the test helpers' tokens.
fn sam_fingerprint() -> Vec<u8> {
    let mut request = sam_upsert();
    request.request_id.clear();
    let mut fingerprint = request.encode_to_vec();
    fingerprint.push(0);
    fingerprint.extend_from_slice(b"test");
    fingerprint
}

// ---- step 3: the upgrade, and every record read back -----------------------------------------

async fn an_upgrade_keeps_every_record(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let url = database.url.clone();
    let previous = PreviousRelease::install(backend, &url).await;
    previous.write_records().await;
    previous.close().await;

    let app = TestApp::start_on(database, &url, upgraded_config()).await;
    let every_version: Vec<i64> = migrator(backend).await.iter().map(|m| m.version).collect();
    let upgraded = PreviousRelease::connect(backend, &url).await;
    assert_eq!(
        upgraded.applied_versions().await,
        every_version,
        "opening the database applies every later migration"
    );
    upgraded.close().await;

    users_read_back(&app).await;
    numbers_read_back(&app).await;
    listings_filter_on_converted_columns(&app).await;
    locations_read_back(&app).await;
    consents_read_back(&app).await;
    audit_trail_reads_back(&app).await;
    pending_operation_reads_back(&app).await;
    notifications_read_back(&app).await;
    stored_answers_answer_retries(&app).await;
    migrated_records_take_changes(&app).await;
    pending_work_resumes(&app).await;
}

/// The service's clock stands at `NOW` until the test moves it, so blocks and due times read
/// the same on every run; request ids are kept for 24 hours, as in production.
fn upgraded_config() -> TestConfig {
    let defaults = TestConfig::default();
    TestConfig {
        clock: Some(Arc::new(ManualClock::at(system_time(NOW)))),
        worker: WorkerSettings {
            request_id_retention: Duration::from_secs(24 * 3600),
            ..defaults.worker
        },
        ..defaults
    }
}

async fn get_user(client: &mut Client, identity: &str) -> pb::User {
    client
        .get_user(pb::GetUserRequest {
            identity: identity.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("GetUser {identity}: {e:?}"))
        .into_inner()
}

/// Licences (split from the comma-separated text), flags, lines, the numbers held (primary
/// first, though the extension sorts before it) and times.
async fn users_read_back(app: &TestApp) {
    let mut client = app.reader(TENANT);
    let phone_system = pb::user::License::PhoneSystem as i32;
    let calling_plan = pb::user::License::CallingPlan as i32;
    let user = |id: &str, upn: &str, display_name: &str| pb::User {
        id: id.into(),
        user_principal_name: upn.into(),
        sip_address: format!("sip:{upn}"),
        display_name: display_name.into(),
        usage_location: "US".into(),
        kind: pb::user::Kind::User as i32,
        ..Default::default()
    };
    assert_eq!(
        get_user(&mut client, "john@contoso.com").await,
        pb::User {
            licenses: vec![phone_system, calling_plan],
            enterprise_voice_enabled: true,
            phone_numbers: vec!["+14255550101".into(), EXTENSION.into()],
            etag: "3".into(),
            create_time: at(1_763_990_001_123_456),
            update_time: at(1_763_998_001_654_321),
            ..user(JOHN, "john@contoso.com", "John Smith")
        }
    );
    assert_eq!(
        get_user(&mut client, JACK).await,
        pb::User {
            licenses: vec![phone_system, calling_plan],
            enterprise_voice_enabled: false,
            phone_numbers: vec!["+14255550105".into()],
            etag: "2".into(),
            create_time: at(1_763_990_002_123_456),
            update_time: at(1_763_998_002_654_321),
            ..user(JACK, "jack@contoso.com", "Jack Brown")
        }
    );
    assert_eq!(
        get_user(&mut client, "sip:sam@contoso.com").await,
        pb::User {
            licenses: vec![],
            etag: "2".into(),
            create_time: at(1_763_990_003_123_456),
            update_time: at(1_763_998_003_654_321),
            ..user(SAM, "sam@contoso.com", "Sam Taylor")
        }
    );
    assert_eq!(
        get_user(&mut client, "lee@contoso.com").await,
        pb::User {
            licenses: vec![phone_system, calling_plan],
            on_premises_line_uri: "tel:+14255550199".into(),
            etag: "1".into(),
            create_time: at(1_763_990_004_123_456),
            update_time: at(1_763_990_004_123_456),
            ..user(LEE, "lee@contoso.com", "Lee Chen")
        }
    );
    assert_eq!(
        get_user(&mut client, "reception@contoso.com").await,
        pb::User {
            kind: pb::user::Kind::ResourceAccount as i32,
            licenses: vec![pb::user::License::PhoneSystemVirtualUser as i32],
            enterprise_voice_enabled: true,
            phone_numbers: vec!["+18005550100".into()],
            etag: "2".into(),
            create_time: at(1_763_990_005_123_456),
            update_time: at(1_763_998_005_654_321),
            ..user(RECEPTION, "reception@contoso.com", "Contoso Reception")
        }
    );
}

/// The numbers as GetPhoneNumber answers after the upgrade, in number order.
fn migrated_numbers() -> Vec<pb::PhoneNumber> {
    let user = pb::Capability::UserAssignment as i32;
    let voice_application = pb::Capability::VoiceApplicationAssignment as i32;
    let conference = pb::Capability::ConferenceAssignment as i32;
    let number = |phone_number: &str, number_type: pb::NumberType| pb::PhoneNumber {
        phone_number: phone_number.into(),
        number_type: number_type as i32,
        country: "US".into(),
        city: "Redmond".into(),
        capabilities: vec![user],
        assignment_status: pb::AssignmentStatus::Unassigned as i32,
        activation_state: pb::ActivationState::Activated as i32,
        location_update_supported: true,
        assignment_blocked_state: pb::AssignmentBlockedState::NotBlocked as i32,
        ..Default::default()
    };
    let assigned =
        |number: pb::PhoneNumber, to: &str, upn: &str, category: pb::AssignmentCategory| {
            pb::PhoneNumber {
                assignment_status: pb::AssignmentStatus::UserAssigned as i32,
                assigned_to: to.into(),
                assigned_to_user_principal_name: upn.into(),
                assignment_category: category as i32,
                ..number
            }
        };
    let primary = pb::AssignmentCategory::Primary;
    vec![
        pb::PhoneNumber {
            city: String::new(),
            etag: "1".into(),
            create_time: at(1_763_970_006_111_111),
            update_time: at(1_763_970_006_111_111),
            ..assigned(
                number(EXTENSION, pb::NumberType::DirectRouting),
                JOHN,
                "john@contoso.com",
                pb::AssignmentCategory::Private,
            )
        },
        pb::PhoneNumber {
            emergency_location_id: "redmond-hq".into(),
            etag: "2".into(),
            create_time: at(1_763_970_001_111_111),
            update_time: at(1_763_998_101_222_222),
            ..assigned(
                number("+14255550101", pb::NumberType::CallingPlan),
                JOHN,
                "john@contoso.com",
                primary,
            )
        },
        pb::PhoneNumber {
            operator_id: "fabrikam-telecom".into(),
            capabilities: vec![user, voice_application],
            emergency_location_id: "redmond-hq".into(),
            location_update_supported: false,
            etag: "1".into(),
            create_time: at(1_763_970_002_111_111),
            update_time: at(1_763_970_002_111_111),
            ..number("+14255550102", pb::NumberType::OperatorConnect)
        },
        pb::PhoneNumber {
            assignment_blocked_state: pb::AssignmentBlockedState::BlockedUntil as i32,
            assignment_blocked_until: at(BLOCKED_UNTIL),
            etag: "4".into(),
            create_time: at(1_763_970_003_111_111),
            update_time: at(1_763_998_103_222_222),
            ..number("+14255550103", pb::NumberType::CallingPlan)
        },
        pb::PhoneNumber {
            assignment_blocked_state: pb::AssignmentBlockedState::BlockedForever as i32,
            etag: "3".into(),
            create_time: at(1_763_970_004_111_111),
            update_time: at(1_763_998_104_222_222),
            ..number("+14255550104", pb::NumberType::CallingPlan)
        },
        pb::PhoneNumber {
            operator_id: "northwind-voice".into(),
            activation_state: pb::ActivationState::AssignmentPending as i32,
            emergency_location_id: "redmond-hq".into(),
            operation_id: OPERATION.into(),
            etag: "2".into(),
            create_time: at(1_763_970_005_111_111),
            update_time: at(1_763_998_105_222_222),
            ..assigned(
                number("+14255550105", pb::NumberType::OperatorConnect),
                JACK,
                "jack@contoso.com",
                primary,
            )
        },
        pb::PhoneNumber {
            city: String::new(),
            capabilities: vec![voice_application, conference],
            assignment_status: pb::AssignmentStatus::VoiceApplicationAssigned as i32,
            etag: "2".into(),
            create_time: at(1_763_970_007_111_111),
            update_time: at(1_763_998_107_222_222),
            ..assigned(
                number("+18005550100", pb::NumberType::CallingPlan),
                RECEPTION,
                "reception@contoso.com",
                primary,
            )
        },
    ]
}

/// Every field of every number: type, operator, capabilities (from the bit mask), assignment,
/// activation, location, flags, blocks, etag, operation and times.
async fn numbers_read_back(app: &TestApp) {
    let mut client = app.reader(TENANT);
    for expected in migrated_numbers() {
        let found = get_phone_number(&mut client, &expected.phone_number)
            .await
            .unwrap_or_else(|e| panic!("GetPhoneNumber {}: {e:?}", expected.phone_number));
        assert_eq!(found, expected);
    }
    let all = all_phone_numbers(&mut client, pb::ListPhoneNumbersRequest::default()).await;
    assert_eq!(all, migrated_numbers(), "the inventory, in number order");
}

/// The numbers a listing finds.
async fn listed(client: &mut Client, request: pb::ListPhoneNumbersRequest) -> Vec<String> {
    all_phone_numbers(client, request)
        .await
        .into_iter()
        .map(|n| n.phone_number)
        .collect()
}

/// The filters that read columns 0005 wrote: the assignment status (derived from each holder's
/// kind) and the capabilities (converted from the bit mask), besides the activation state and
/// the holder.
async fn listings_filter_on_converted_columns(app: &TestApp) {
    use pb::Capability::{ConferenceAssignment, UserAssignment, VoiceApplicationAssignment};
    let mut client = app.reader(TENANT);
    let by_status = |status: pb::AssignmentStatus| pb::ListPhoneNumbersRequest {
        assignment_status: status as i32,
        ..Default::default()
    };
    assert_eq!(
        listed(&mut client, by_status(pb::AssignmentStatus::UserAssigned)).await,
        [EXTENSION, "+14255550101", "+14255550105"]
    );
    assert_eq!(
        listed(
            &mut client,
            by_status(pb::AssignmentStatus::VoiceApplicationAssigned)
        )
        .await,
        ["+18005550100"]
    );
    assert_eq!(
        listed(&mut client, by_status(pb::AssignmentStatus::Unassigned)).await,
        ["+14255550102", "+14255550103", "+14255550104"]
    );

    let with = |capabilities: &[pb::Capability]| pb::ListPhoneNumbersRequest {
        capabilities: capabilities.iter().map(|c| *c as i32).collect(),
        ..Default::default()
    };
    assert_eq!(
        listed(&mut client, with(&[UserAssignment])).await,
        [
            EXTENSION,
            "+14255550101",
            "+14255550102",
            "+14255550103",
            "+14255550104",
            "+14255550105"
        ]
    );
    assert_eq!(
        listed(&mut client, with(&[VoiceApplicationAssignment])).await,
        ["+14255550102", "+18005550100"]
    );
    assert_eq!(
        listed(&mut client, with(&[ConferenceAssignment])).await,
        ["+18005550100"]
    );
    assert_eq!(
        listed(
            &mut client,
            with(&[UserAssignment, VoiceApplicationAssignment])
        )
        .await,
        ["+14255550102"]
    );

    let in_state = |state: pb::ActivationState| pb::ListPhoneNumbersRequest {
        activation_state: state as i32,
        ..Default::default()
    };
    assert_eq!(
        listed(
            &mut client,
            in_state(pb::ActivationState::AssignmentPending)
        )
        .await,
        ["+14255550105"]
    );
    assert_eq!(
        listed(&mut client, in_state(pb::ActivationState::Activated)).await,
        [
            EXTENSION,
            "+14255550101",
            "+14255550102",
            "+14255550103",
            "+14255550104",
            "+18005550100"
        ]
    );
    assert_eq!(
        listed(
            &mut client,
            pb::ListPhoneNumbersRequest {
                assigned_to: "john@contoso.com".into(),
                ..Default::default()
            }
        )
        .await,
        [EXTENSION, "+14255550101"]
    );
    assert_eq!(
        listed(
            &mut client,
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::UserAssigned as i32,
                capabilities: vec![UserAssignment as i32],
                activation_state: pb::ActivationState::Activated as i32,
                ..Default::default()
            }
        )
        .await,
        [EXTENSION, "+14255550101"]
    );
}

/// Addresses, validation and creation times; listed oldest first, one per page, so the page
/// tokens (which carry the creation time) work on converted times too.
async fn locations_read_back(app: &TestApp) {
    let mut client = app.reader(TENANT);
    let address = |house_number: &str, street_name: &str, street_suffix: &str| pb::CivicAddress {
        company_name: "Contoso".into(),
        house_number: house_number.into(),
        street_name: street_name.into(),
        street_suffix: street_suffix.into(),
        state_or_province: "WA".into(),
        country: "US".into(),
        ..Default::default()
    };
    let expected = vec![
        pb::EmergencyLocation {
            id: "redmond-hq".into(),
            address: Some(pb::CivicAddress {
                city: "Redmond".into(),
                postal_code: "98052".into(),
                ..address("1", "Microsoft Way", "")
            }),
            description: "Headquarters".into(),
            validation_status: pb::ValidationStatus::Validated as i32,
            create_time: at(1_763_980_001_234_567),
            // Every location of the previous release is a location of its own, at version 1.
            etag: "1".into(),
            ..Default::default()
        },
        pb::EmergencyLocation {
            id: "seattle-unvalidated".into(),
            address: Some(pb::CivicAddress {
                city: "Seattle".into(),
                postal_code: "98101".into(),
                ..address("500", "Pine", "St")
            }),
            description: "Seattle store (not validated)".into(),
            validation_status: pb::ValidationStatus::NotValidated as i32,
            create_time: at(1_763_980_002_345_678),
            // Every location of the previous release is a location of its own, at version 1.
            etag: "1".into(),
            ..Default::default()
        },
        pb::EmergencyLocation {
            id: "paris-office".into(),
            address: Some(pb::CivicAddress {
                company_name: "Contoso France".into(),
                house_number: "39".into(),
                street_name: "Quai du Président Roosevelt".into(),
                city: "Issy-les-Moulineaux".into(),
                postal_code: "92130".into(),
                country: "FR".into(),
                ..Default::default()
            }),
            description: "Paris office".into(),
            validation_status: pb::ValidationStatus::Validated as i32,
            create_time: at(1_763_980_003_456_789),
            // Every location of the previous release is a location of its own, at version 1.
            etag: "1".into(),
            ..Default::default()
        },
    ];
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_emergency_locations(pb::ListEmergencyLocationsRequest {
                page_size: 1,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list emergency locations")
            .into_inner();
        listed.extend(page.emergency_locations);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(listed, expected);

    let in_redmond = client
        .list_emergency_locations(pb::ListEmergencyLocationsRequest {
            city: "REDMOND".into(),
            country: "US".into(),
            ..Default::default()
        })
        .await
        .expect("list emergency locations in Redmond")
        .into_inner()
        .emergency_locations;
    assert_eq!(in_redmond, expected[..1]);
    let paris = client
        .get_emergency_location(pb::GetEmergencyLocationRequest {
            id: "paris-office".into(),
        })
        .await
        .expect("get the Paris office")
        .into_inner();
    assert_eq!(paris, expected[2]);
}

/// The countries of each consent, split from the comma-separated text.
async fn consents_read_back(app: &TestApp) {
    let operators = app
        .reader(TENANT)
        .list_operators(pb::ListOperatorsRequest::default())
        .await
        .expect("list operators")
        .into_inner()
        .operators;
    let enabled: Vec<(&str, &[String])> = operators
        .iter()
        .map(|o| {
            assert!(o.enabled, "{} is enabled", o.id);
            (o.id.as_str(), o.enabled_countries.as_slice())
        })
        .collect();
    assert_eq!(
        enabled,
        [
            ("fabrikam-telecom", &["US".to_owned(), "CA".to_owned()][..]),
            ("northwind-voice", &["US".to_owned()][..]),
        ]
    );
}

/// Every event with its actor, action, subjects, request id and time, and the snapshots
/// before and after as the same JSON (key order and spacing aside).
async fn audit_trail_reads_back(app: &TestApp) {
    let events = all_audit_events(app, TENANT).await;
    let fields: Vec<_> = events
        .iter()
        .map(|e| pb::AuditEvent {
            before: None,
            after: None,
            ..e.clone()
        })
        .collect();
    let event = |id: &str, micros: i64, actor: &str, action: pb::AuditAction| pb::AuditEvent {
        id: id.into(),
        time: at(micros),
        actor: actor.into(),
        action: action as i32,
        tenant_id: TENANT.into(),
        ..Default::default()
    };
    assert_eq!(
        fields,
        [
            pb::AuditEvent {
                phone_number: "+14255550101".into(),
                user_id: JOHN.into(),
                request_id: "5e8f0a2b-7c1d-4e3f-8a9b-0c1d2e3f4a5b".into(),
                ..event(
                    "019ab3c4-1000-7c00-8d00-00000000c003",
                    1_763_998_101_222_222,
                    "admin@contoso.com",
                    pb::AuditAction::AssignPhoneNumber
                )
            },
            pb::AuditEvent {
                user_id: SAM.into(),
                request_id: SAM_REQUEST.into(),
                ..event(
                    "019ab3c4-1000-7c00-8d00-00000000c002",
                    1_763_990_003_123_456,
                    "directory-sync",
                    pb::AuditAction::UpsertUser
                )
            },
            event(
                "019ab3c4-1000-7c00-8d00-00000000c001",
                1_763_980_003_456_789,
                "admin@contoso.com",
                pb::AuditAction::CreateEmergencyLocation
            ),
        ],
        "newest first"
    );
    let snapshots: Vec<_> = events
        .iter()
        .map(|e| (e.before.as_ref().map(json), e.after.as_ref().map(json)))
        .collect();
    let parsed = |text: &str| Some(serde_json::from_str::<serde_json::Value>(text).unwrap());
    assert_eq!(
        snapshots,
        [
            (parsed(NUMBER_BEFORE), parsed(NUMBER_AFTER)),
            (None, parsed(SAM_FED)),
            (None, parsed(PARIS_CREATED)),
        ]
    );
}

async fn get_operation(client: &mut Client) -> pb::Operation {
    client
        .get_operation(pb::GetOperationRequest {
            id: OPERATION.into(),
            ..Default::default()
        })
        .await
        .expect("get the operation")
        .into_inner()
}

/// The operation of the pending assignment, with its step, as the previous release left it.
async fn pending_operation_reads_back(app: &TestApp) {
    assert_eq!(
        get_operation(&mut app.reader(TENANT)).await,
        pb::Operation {
            id: OPERATION.into(),
            kind: pb::AuditAction::AssignPhoneNumber as i32,
            state: pb::operation::State::Running as i32,
            steps: vec![pb::operation::Step {
                phone_number: "+14255550105".into(),
                action: pb::ProvisioningAction::Activate as i32,
                provider_id: "northwind-voice".into(),
                state: pb::operation::State::Running as i32,
                reason: "northwind-voice: connection refused".into(),
                attempts: 1,
            }],
            error: String::new(),
            create_time: at(1_763_998_105_222_222),
            update_time: at(1_763_998_205_444_444),
            ..Default::default()
        }
    );
}

/// The emails, sent and waiting (the API has no call for them: the store's own read).
async fn notifications_read_back(app: &TestApp) {
    let email = |id: &str, to: &str, name: &str, number: &str, micros: i64| Notification {
        id: id.into(),
        recipient: to.into(),
        subject: format!("Your phone number is {number}"),
        body: format!("{name}, {number} is now your phone number."),
        phone_number: number.into(),
        create_time: system_time(micros),
    };
    let sent = email(
        "019ab3c4-3000-7e00-8f00-00000000d001",
        "john@contoso.com",
        "John Smith",
        "+14255550101",
        1_763_998_101_222_222,
    );
    let waiting = email(
        "019ab3c4-3000-7e00-8f00-00000000d002",
        "jack@contoso.com",
        "Jack Brown",
        "+14255550105",
        1_763_998_105_222_222,
    );
    assert_eq!(notifications(app, false).await, [sent, waiting.clone()]);
    assert_eq!(notifications(app, true).await, [waiting]);
}

async fn notifications(app: &TestApp, pending_only: bool) -> Vec<Notification> {
    app.store
        .read()
        .await
        .expect("read")
        .notifications(TENANT, pending_only)
        .await
        .expect("list notifications")
}

/// The answer stored under a request id (JSON text before, jsonb on PostgreSQL after) answers a
/// retry, and the fingerprint still tells another request apart.
async fn stored_answers_answer_retries(app: &TestApp) {
    let mut client = app.admin(TENANT);
    let replayed = client
        .upsert_user(sam_upsert())
        .await
        .expect("a retry of Sam's upsert")
        .into_inner();
    assert_eq!(
        replayed,
        pb::User {
            id: SAM.into(),
            user_principal_name: "sam@contoso.com".into(),
            sip_address: "sip:sam@contoso.com".into(),
            display_name: "Sam Taylor".into(),
            usage_location: "US".into(),
            kind: pb::user::Kind::User as i32,
            etag: "1".into(),
            create_time: at(1_763_990_003_123_456),
            update_time: at(1_763_990_003_123_456),
            ..Default::default()
        },
        "the first answer, not Sam as he is now"
    );
    let mut other = sam_upsert();
    if let Some(user) = other.user.as_mut() {
        user.display_name = "Samuel Taylor".into();
    }
    assert_error(
        client.upsert_user(other).await,
        Code::FailedPrecondition,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(
        get_user(&mut client, SAM).await.etag,
        "2",
        "nothing changed"
    );
}

// ---- step 4: migrated records take changes ---------------------------------------------------

/// A removal writes migrated rows (the number's assignment status, the user's version); the
/// rules read the converted blocks.
async fn migrated_records_take_changes(app: &TestApp) {
    let mut client = app.admin(TENANT);
    let removed = remove(&mut client, remove_request("john@contoso.com", EXTENSION))
        .await
        .expect("remove the extension from John");
    let [number] = removed.phone_numbers.as_slice() else {
        panic!("one number removed: {removed:?}");
    };
    // The removal is the number's last change: it names the removal's operation.
    assert!(!number.operation_id.is_empty());
    assert_eq!(
        *number,
        pb::PhoneNumber {
            assignment_status: pb::AssignmentStatus::Unassigned as i32,
            assigned_to: String::new(),
            assigned_to_user_principal_name: String::new(),
            assignment_category: pb::AssignmentCategory::Unspecified as i32,
            etag: "2".into(),
            update_time: at(NOW),
            operation_id: number.operation_id.clone(),
            ..migrated_numbers().remove(0)
        }
    );
    let john = removed.user.expect("John as he is now");
    assert_eq!(john.phone_numbers, ["+14255550101"]);
    assert!(
        john.enterprise_voice_enabled,
        "John keeps his primary number"
    );
    assert_eq!(
        listed(
            &mut client,
            pb::ListPhoneNumbersRequest {
                assignment_status: pb::AssignmentStatus::Unassigned as i32,
                ..Default::default()
            }
        )
        .await,
        [EXTENSION, "+14255550102", "+14255550103", "+14255550104"]
    );

    for blocked in ["+14255550103", "+14255550104"] {
        assert_error(
            assign(&mut client, assign_request("john@contoso.com", blocked)).await,
            Code::FailedPrecondition,
            "NUMBER_BLOCKED",
        );
    }
}

/// Once due, the migrated provisioning job is claimed despite the old replica's lease, the
/// provider is called, and the number, the user and the operation settle; the waiting email
/// goes out.
async fn pending_work_resumes(app: &TestApp) {
    app.advance(system_time(LATER).duration_since(system_time(NOW)).unwrap());
    let mut client = app.reader(TENANT);
    let deadline = Instant::now() + Duration::from_secs(10);
    let operation = loop {
        let operation = get_operation(&mut client).await;
        if operation.state == pb::operation::State::Succeeded as i32 {
            break operation;
        }
        assert!(
            Instant::now() < deadline,
            "the migrated job did not finish: {operation:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        operation.steps,
        [pb::operation::Step {
            phone_number: "+14255550105".into(),
            action: pb::ProvisioningAction::Activate as i32,
            provider_id: "northwind-voice".into(),
            state: pb::operation::State::Succeeded as i32,
            reason: String::new(),
            attempts: 2,
        }]
    );
    assert_eq!(operation.update_time, at(LATER));
    let number = get_phone_number(&mut client, "+14255550105")
        .await
        .expect("the activated number");
    assert_eq!(
        (
            number.activation_state,
            number.etag.as_str(),
            number.update_time
        ),
        (pb::ActivationState::Activated as i32, "3", at(LATER))
    );
    let jack = get_user(&mut client, "jack@contoso.com").await;
    assert!(jack.enterprise_voice_enabled, "Jack's number is in service");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !notifications(app, true).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the waiting emails were not sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- helpers of this module --------------------------------------------------------------------

/// A time kept as microseconds since the Unix epoch.
fn system_time(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).expect("a time after 1970"))
}

/// The API's form of a time kept as microseconds since the Unix epoch.
fn at(micros: i64) -> Option<Timestamp> {
    Some(Timestamp::from(system_time(micros)))
}

/// A `google.protobuf.Struct` as JSON.
fn json(object: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        object
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), json_value(value)))
            .collect(),
    )
}

fn json_value(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::NumberValue(n)) => (*n).into(),
        Some(Kind::StringValue(s)) => s.as_str().into(),
        Some(Kind::ListValue(list)) => list.values.iter().map(json_value).collect(),
        Some(Kind::StructValue(object)) => json(object),
    }
}
