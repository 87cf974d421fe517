//! Asynchronous provisioning over the socket, against the operator simulator: Litware Mobile
//! (`litware-mobile`), whose adapter runs behind a real socket and answers "pending" before it
//! activates a number. Each test drives a change through the service's worker, waits for its
//! operation by polling GetOperation (with a deadline), and then checks that the number
//! (GetPhoneNumber), its holder's enterprise voice (GetUser), the operation (GetOperation) and
//! the audit trail (ListAuditEvents) agree, and that the carrier was asked to provision each
//! change exactly once (the simulator's GetStats count distinct idempotency keys).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use number_management::proto::v1 as pb;
use numbers_operator_simulator::proto as sim;
use numbers_operator_simulator::{
    ControlClient, OperatorSettings, RunningSimulator, SimulatorSettings,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;
use tonic::{Code, Status};

use crate::calls::{assign, assign_request, change, change_request, remove, remove_request};
use crate::helpers::{Backend, Client, TestApp, TestConfig, assert_error};
use crate::on_both_stores;

const TENANT: &str = "contoso";
const LITWARE: &str = "litware-mobile";

const JOHN: &str = "john@contoso.com";
const JOHN_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000001";
const JACK: &str = "jack@contoso.com";
const JACK_ID: &str = "7c0e2a51-0d1b-4c3e-9f00-000000000002";

/// Litware Mobile numbers of the demo tenant, unassigned, registered at `redmond-hq`, whose
/// location the tenant may change.
const SIM_0301: &str = "+14255550301";
const SIM_0302: &str = "+14255550302";
const SIM_0303: &str = "+14255550303";
/// Calling Plan (synchronous), registered at `redmond-hq`.
const CP_0101: &str = "+14255550101";

const REDMOND_HQ: &str = "redmond-hq";
const BUILDING_92: &str = "redmond-building-92";

const ACTIVATED: i32 = pb::ActivationState::Activated as i32;
const ASSIGNMENT_PENDING: i32 = pb::ActivationState::AssignmentPending as i32;
const ASSIGNMENT_FAILED: i32 = pb::ActivationState::AssignmentFailed as i32;
const UPDATE_PENDING: i32 = pb::ActivationState::UpdatePending as i32;
const UPDATE_FAILED: i32 = pb::ActivationState::UpdateFailed as i32;

const PENDING: i32 = pb::operation::State::Pending as i32;
const RUNNING: i32 = pb::operation::State::Running as i32;
const SUCCEEDED: i32 = pb::operation::State::Succeeded as i32;
const FAILED: i32 = pb::operation::State::Failed as i32;

const ACTIVATE: i32 = pb::ProvisioningAction::Activate as i32;
const DEACTIVATE: i32 = pb::ProvisioningAction::Deactivate as i32;
const UPDATE_LOCATION: i32 = pb::ProvisioningAction::UpdateLocation as i32;

const ASSIGN_EVENT: i32 = pb::AuditAction::AssignPhoneNumber as i32;
const CHANGE_EVENT: i32 = pb::AuditAction::ChangePhoneNumber as i32;
const REMOVE_EVENT: i32 = pb::AuditAction::RemovePhoneNumber as i32;
const LOCATION_EVENT: i32 = pb::AuditAction::UpdateEmergencyLocation as i32;
const RETRY_EVENT: i32 = pb::AuditAction::RetryOperation as i32;
const CANCEL_EVENT: i32 = pb::AuditAction::CancelOperation as i32;
const TRANSFER_EVENT: i32 = pb::AuditAction::TransferPhoneNumber as i32;
const UPLOAD_EVENT: i32 = pb::AuditAction::UploadPhoneNumber as i32;
const PROVISIONED_EVENT: i32 = pb::AuditAction::ProvisioningSucceeded as i32;
const PROVISIONING_FAILED_EVENT: i32 = pb::AuditAction::ProvisioningFailed as i32;

const PRIMARY: i32 = pb::AssignmentCategory::Primary as i32;
const USER_ASSIGNMENT: i32 = pb::Capability::UserAssignment as i32;

/// The longest any wait of this module may take: far more than any change needs.
const DEADLINE: Duration = Duration::from_secs(20);
/// How often GetOperation is asked while waiting.
const POLL_EVERY: Duration = Duration::from_millis(20);

// ---- the simulator ---------------------------------------------------------------------------

/// Litware Mobile as the demo configures it (`demo::simulated_operator`).
fn litware_settings(activation_delay: Duration, state_file: Option<PathBuf>) -> SimulatorSettings {
    SimulatorSettings {
        operator: OperatorSettings {
            id: LITWARE.into(),
            display_name: "Litware Mobile".into(),
            countries: vec!["US".into()],
            tenant_location_update_allowed: true,
        },
        activation_delay,
        latency: Duration::ZERO,
        failures: None,
        state_file,
    }
}

/// Starts Litware Mobile, then the service with the demo tenant and Litware's numbers.
async fn start(backend: Backend, settings: SimulatorSettings) -> (TestApp, RunningSimulator) {
    let simulator = RunningSimulator::start(settings)
        .await
        .expect("start the operator simulator");
    let config = TestConfig::default().with_simulated_operator(&simulator.endpoint());
    let app = TestApp::start_demo(backend, config).await;
    (app, simulator)
}

/// Starts Litware Mobile (activating after `activation_delay`) and the service.
async fn start_with_delay(
    backend: Backend,
    activation_delay: Duration,
) -> (TestApp, RunningSimulator) {
    start(backend, litware_settings(activation_delay, None)).await
}

/// A control client of the simulator at `address`.
fn control_at(address: SocketAddr) -> ControlClient {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("a socket address is a URI")
        .connect_lazy();
    ControlClient::new(channel)
}

/// A simulator started by hand with [`numbers_operator_simulator::run`] on a given address.
struct Restarted {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Restarted {
    /// Starts the simulator `settings` describe on `address` (the port of a stopped one).
    async fn on(address: SocketAddr, settings: SimulatorSettings) -> Self {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("bind the stopped simulator's address {address}: {e}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(numbers_operator_simulator::run(listener, settings, stopped));
        Self {
            address,
            stop,
            task,
        }
    }

    fn control(&self) -> ControlClient {
        control_at(self.address)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(2), self.task).await {
            Ok(result) => result
                .expect("the restarted simulator panicked")
                .expect("the restarted simulator failed"),
            Err(_) => panic!("the restarted simulator did not stop"),
        }
    }
}

fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).expect("a short duration")
}

async fn set_latency(control: &mut ControlClient, latency: Duration) {
    control
        .set_latency(sim::SetLatencyRequest {
            latency: Some(proto_duration(latency)),
        })
        .await
        .expect("SetLatency");
}

/// Makes the simulator fail `rpc` with `code` (and `reason`), `count` times (0: always).
async fn inject(
    control: &mut ControlClient,
    rpc: sim::AdapterRpc,
    code: sim::FailureCode,
    reason: &str,
    count: u64,
) {
    control
        .inject_failures(sim::InjectFailuresRequest {
            rpc: Some(rpc as i32),
            code: code as i32,
            reason: reason.into(),
            count,
            ..Default::default()
        })
        .await
        .expect("InjectFailures");
}

async fn stats(control: &mut ControlClient) -> sim::Stats {
    control
        .get_stats(sim::GetStatsRequest {})
        .await
        .expect("GetStats")
        .into_inner()
}

/// The distinct provisioning changes (idempotency keys) the carrier accepted for a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Provisioned {
    activations: u64,
    deactivations: u64,
    location_updates: u64,
}

const NOTHING: Provisioned = Provisioned {
    activations: 0,
    deactivations: 0,
    location_updates: 0,
};

fn provisioned_in(stats: &sim::Stats, phone_number: &str) -> Provisioned {
    let accepted = |s: Option<sim::ProvisioningStats>| s.map_or(0, |s| s.accepted);
    stats
        .numbers
        .iter()
        .find(|n| n.phone_number == phone_number)
        .map(|n| Provisioned {
            activations: accepted(n.activations),
            deactivations: accepted(n.deactivations),
            location_updates: accepted(n.location_updates),
        })
        .unwrap_or_default()
}

async fn provisioned(control: &mut ControlClient, phone_number: &str) -> Provisioned {
    provisioned_in(&stats(control).await, phone_number)
}

fn count_of(counts: &HashMap<String, u64>, rpc: &str) -> u64 {
    counts.get(rpc).copied().unwrap_or(0)
}

/// The changes a simulator state file holds, as (kind, number, idempotency key).
fn changes_in(state_file: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(state_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", state_file.display()));
    let state: serde_json::Value = serde_json::from_str(&text).expect("a JSON state file");
    let field = |change: &serde_json::Value, name: &str| {
        change[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {change}"))
            .to_owned()
    };
    state["changes"]
        .as_object()
        .unwrap_or_else(|| panic!("no changes in {state}"))
        .values()
        .map(|c| {
            (
                field(c, "kind"),
                field(c, "phone_number"),
                field(c, "idempotency_key"),
            )
        })
        .collect()
}

// ---- the service -----------------------------------------------------------------------------

fn location_request(phone_number: &str, location: &str) -> pb::UpdateEmergencyLocationRequest {
    pb::UpdateEmergencyLocationRequest {
        phone_number: phone_number.into(),
        emergency_location_id: location.into(),
        ..Default::default()
    }
}

async fn update_location(
    client: &mut Client,
    request: pb::UpdateEmergencyLocationRequest,
) -> Result<pb::PhoneNumber, Status> {
    client
        .update_emergency_location(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn get_number(client: &mut Client, phone_number: &str) -> pb::PhoneNumber {
    client
        .get_phone_number(pb::GetPhoneNumberRequest {
            phone_number: phone_number.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("GetPhoneNumber {phone_number}: {status:?}"))
        .into_inner()
}

async fn get_user(client: &mut Client, identity: &str) -> pb::User {
    client
        .get_user(pb::GetUserRequest {
            identity: identity.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("GetUser {identity}: {status:?}"))
        .into_inner()
}

async fn get_operation(client: &mut Client, id: &str) -> pb::Operation {
    client
        .get_operation(pb::GetOperationRequest {
            id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("GetOperation {id}: {status:?}"))
        .into_inner()
}

/// The numbers a user holds, as ListPhoneNumbers filters them.
async fn numbers_of(client: &mut Client, identity: &str) -> Vec<pb::PhoneNumber> {
    client
        .list_phone_numbers(pb::ListPhoneNumbersRequest {
            assigned_to: identity.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListPhoneNumbers")
        .into_inner()
        .phone_numbers
}

/// The audit events about a number, oldest first.
async fn audit_of(client: &mut Client, phone_number: &str) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                phone_number: phone_number.into(),
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("ListAuditEvents")
            .into_inner();
        events.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    events.reverse();
    events
}

/// A string field of an audit snapshot.
fn snapshot_field(snapshot: Option<&prost_types::Struct>, name: &str) -> String {
    use prost_types::value::Kind;
    match snapshot
        .and_then(|s| s.fields.get(name))
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(value)) => value.clone(),
        _ => String::new(),
    }
}

fn state_name(state: i32) -> String {
    pb::operation::State::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| state.to_string())
}

fn is_final(operation: &pb::Operation) -> bool {
    operation.state == SUCCEEDED || operation.state == FAILED
}

/// Polls GetOperation until `done` holds, failing after [`DEADLINE`] with the last answer.
async fn wait_for(
    client: &mut Client,
    id: &str,
    what: &str,
    done: impl Fn(&pb::Operation) -> bool,
) -> pb::Operation {
    let start = Instant::now();
    loop {
        let operation = get_operation(client, id).await;
        if done(&operation) {
            return operation;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "waited {DEADLINE:?} for {what}; the operation is {operation:#?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Waits until the operation has ended, and answers it.
async fn wait_until_ended(client: &mut Client, id: &str) -> pb::Operation {
    wait_for(client, id, "the operation to end", is_final).await
}

/// The operation's step for a number.
fn step<'a>(operation: &'a pb::Operation, phone_number: &str) -> &'a pb::operation::Step {
    operation
        .steps
        .iter()
        .find(|s| s.phone_number == phone_number)
        .unwrap_or_else(|| panic!("no step for {phone_number} in {operation:#?}"))
}

/// Checks an operation that the service just answered: of `kind`, not ended, with exactly the
/// steps `steps` (number, action) of Litware Mobile, none ended.
#[track_caller]
fn assert_just_opened(operation: &pb::Operation, kind: i32, steps: &[(&str, i32)]) {
    assert!(!operation.id.is_empty(), "{operation:#?}");
    assert_eq!(operation.kind, kind, "{operation:#?}");
    assert!(
        operation.state == PENDING || operation.state == RUNNING,
        "a change left to the worker is PENDING or RUNNING, not {}: {operation:#?}",
        state_name(operation.state)
    );
    assert!(operation.error.is_empty(), "{operation:#?}");
    let got: Vec<(&str, i32)> = operation
        .steps
        .iter()
        .map(|s| (s.phone_number.as_str(), s.action))
        .collect();
    assert_eq!(got, steps, "the steps of {operation:#?}");
    for step in &operation.steps {
        assert_eq!(step.provider_id, LITWARE, "{operation:#?}");
        assert!(
            step.state == PENDING || step.state == RUNNING,
            "{operation:#?}"
        );
    }
}

/// Checks an operation that ended well: SUCCEEDED, no error, every step SUCCEEDED after at
/// least one call, with no reason left.
#[track_caller]
fn assert_succeeded(operation: &pb::Operation) {
    assert_eq!(
        state_name(operation.state),
        "SUCCEEDED",
        "the operation: {operation:#?}"
    );
    assert!(operation.error.is_empty(), "{operation:#?}");
    for step in &operation.steps {
        assert_eq!(step.state, SUCCEEDED, "{operation:#?}");
        assert!(step.attempts >= 1, "{operation:#?}");
        assert!(step.reason.is_empty(), "{operation:#?}");
    }
}

/// Checks that a user's enterprise voice flag agrees with the numbers it holds: on exactly
/// while it holds a number its provider has put into service (ACTIVATED, or an update pending
/// or failed on it). Answers the flag.
async fn assert_voice_agrees(client: &mut Client, identity: &str) -> bool {
    let user = get_user(client, identity).await;
    let held = numbers_of(client, identity).await;
    let in_service = held
        .iter()
        .any(|n| [ACTIVATED, UPDATE_PENDING, UPDATE_FAILED].contains(&n.activation_state));
    assert_eq!(
        user.enterprise_voice_enabled, in_service,
        "{identity}'s enterprise voice disagrees with the numbers it holds: {user:#?} {held:#?}"
    );
    let mut listed: Vec<&str> = held.iter().map(|n| n.phone_number.as_str()).collect();
    listed.sort_unstable();
    let mut on_user: Vec<&str> = user.phone_numbers.iter().map(String::as_str).collect();
    on_user.sort_unstable();
    assert_eq!(on_user, listed, "GetUser and ListPhoneNumbers disagree");
    user.enterprise_voice_enabled
}

/// Checks the audit trail of a number: exactly these actions, oldest first; the provider's
/// outcomes are recorded by `provider:litware-mobile` with the number's state after them.
async fn assert_audit(client: &mut Client, phone_number: &str, expected: &[i32]) {
    let events = audit_of(client, phone_number).await;
    let actions: Vec<i32> = events.iter().map(|e| e.action).collect();
    let names = |actions: &[i32]| -> Vec<String> {
        actions
            .iter()
            .map(|a| {
                pb::AuditAction::try_from(*a)
                    .map(|a| a.as_str_name().to_owned())
                    .unwrap_or_else(|_| a.to_string())
            })
            .collect()
    };
    assert_eq!(
        names(&actions),
        names(expected),
        "the audit trail of {phone_number}: {events:#?}"
    );
    for event in &events {
        if event.action == PROVISIONED_EVENT || event.action == PROVISIONING_FAILED_EVENT {
            assert_eq!(event.actor, format!("provider:{LITWARE}"), "{event:#?}");
            let after = snapshot_field(event.after.as_ref(), "activationState");
            if event.action == PROVISIONED_EVENT {
                assert_eq!(after, "ACTIVATED", "{event:#?}");
            } else {
                assert!(after.ends_with("_FAILED"), "{event:#?}");
            }
        }
    }
}

/// The last audit event of an action about a number.
async fn last_event(client: &mut Client, phone_number: &str, action: i32) -> pb::AuditEvent {
    audit_of(client, phone_number)
        .await
        .into_iter()
        .rev()
        .find(|e| e.action == action)
        .unwrap_or_else(|| panic!("no event {action} about {phone_number}"))
}

/// What a refused request must leave as it was: the numbers and users involved, as GetPhoneNumber
/// and GetUser show them, and the tenant's whole audit trail.
#[derive(Debug, PartialEq)]
struct Snapshot {
    numbers: Vec<pb::PhoneNumber>,
    users: Vec<pb::User>,
    audit_events: usize,
}

impl Snapshot {
    async fn read(client: &mut Client, numbers: &[&str], users: &[&str]) -> Self {
        let mut snapshot = Self {
            numbers: Vec::new(),
            users: Vec::new(),
            audit_events: 0,
        };
        for number in numbers {
            snapshot.numbers.push(get_number(client, number).await);
        }
        for user in users {
            snapshot.users.push(get_user(client, user).await);
        }
        snapshot.audit_events = client
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListAuditEvents")
            .into_inner()
            .audit_events
            .len();
        snapshot
    }
}

// ---- 1. a pending assignment becomes activated -----------------------------------------------

async fn a_pending_assignment_becomes_activated(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(500)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    assert!(!get_user(&mut admin, JOHN).await.enterprise_voice_enabled);

    let response = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let number = response.phone_number.expect("the number");
    let user = response.user.expect("the user");
    let operation = response.operation.expect("the operation");
    assert_eq!(number.activation_state, ASSIGNMENT_PENDING, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.operator_id, LITWARE);
    assert_eq!(number.operation_id, operation.id);
    assert!(
        !user.enterprise_voice_enabled,
        "enterprise voice waits for the operator: {user:#?}"
    );
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);

    // The service says the same while the operator works.
    let pending = get_number(&mut admin, SIM_0301).await;
    assert_eq!(pending.activation_state, ASSIGNMENT_PENDING);
    assert_eq!(pending.operation_id, operation.id);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    assert_eq!(done.id, operation.id);
    assert_eq!(done.kind, ASSIGN_EVENT);
    assert_eq!(done.steps.len(), 1);
    assert_eq!(step(&done, SIM_0301).action, ACTIVATE);

    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.operation_id, operation.id);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(&mut admin, SIM_0301, &[ASSIGN_EVENT, PROVISIONED_EVENT]).await;
    let confirmed = last_event(&mut admin, SIM_0301, PROVISIONED_EVENT).await;
    assert_eq!(confirmed.user_id, JOHN_ID);
    assert_eq!(
        snapshot_field(confirmed.before.as_ref(), "activationState"),
        "ASSIGNMENT_PENDING"
    );
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            activations: 1,
            ..NOTHING
        }
    );
}

// ---- 2. a pending number refuses every mutation ----------------------------------------------

async fn a_pending_number_refuses_changes_until_its_operator_confirms(backend: Backend) {
    // Long enough for the refusals below to run while the change is pending.
    let delay = Duration::from_millis(1500);
    let (app, simulator) = start_with_delay(backend, delay).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    // Jack holds a primary number (Calling Plan: synchronous, activated at once), so that he
    // can ask to change it.
    let jacks = assign(&mut admin, assign_request(JACK, CP_0101))
        .await
        .expect("assign +14255550101 to jack");
    let jacks_number = jacks.phone_number.expect("the number");
    assert_eq!(jacks_number.activation_state, ACTIVATED);
    assert_eq!(jacks_number.assigned_to, JACK_ID);
    assert_eq!(jacks.operation.unwrap().state, SUCCEEDED);

    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let operation = assigned.operation.expect("the operation");
    assert_eq!(
        assigned.phone_number.unwrap().activation_state,
        ASSIGNMENT_PENDING
    );

    // While the assignment is pending, John's number refuses every change.
    let involved = [SIM_0301, SIM_0302, CP_0101];
    let before = Snapshot::read(&mut admin, &involved, &[JOHN, JACK]).await;
    let pending = "ACTIVATION_PENDING";
    let status = assert_error(
        remove(&mut admin, remove_request(JOHN, SIM_0301)).await,
        Code::FailedPrecondition,
        pending,
    );
    assert!(status.message().contains(SIM_0301), "{status:?}");
    assert!(
        status.message().contains("ASSIGNMENT_PENDING"),
        "{status:?}"
    );
    assert_error(
        update_location(&mut admin, location_request(SIM_0301, BUILDING_92)).await,
        Code::FailedPrecondition,
        pending,
    );
    // John cannot change his pending number for another one either.
    assert_error(
        change(&mut admin, change_request(JOHN, SIM_0302)).await,
        Code::FailedPrecondition,
        pending,
    );
    // Another user cannot take it: the documented order of the rules (number_management.proto,
    // docs/architecture.md) checks that the number is free before that it is not pending, so a
    // pending number that is held answers NUMBER_ALREADY_ASSIGNED; the unheld pending number
    // below answers ACTIVATION_PENDING.
    assert_error(
        change(&mut admin, change_request(JACK, SIM_0301)).await,
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    assert_error(
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                assignment_category: pb::AssignmentCategory::Alternate as i32,
                ..assign_request(JACK, SIM_0301)
            },
        )
        .await,
        Code::FailedPrecondition,
        "NUMBER_ALREADY_ASSIGNED",
    );
    let after = Snapshot::read(&mut admin, &involved, &[JOHN, JACK]).await;
    assert_eq!(after, before, "a refused request changed something");
    let still = get_operation(&mut admin, &operation.id).await;
    assert!(
        !is_final(&still),
        "the activation ended before the refusals were all checked ({delay:?} was too short \
         for this machine): {still:#?}"
    );

    let activated = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&activated);
    assert_eq!(
        get_number(&mut admin, SIM_0301).await.activation_state,
        ACTIVATED
    );
    assert!(assert_voice_agrees(&mut admin, JOHN).await);

    // Activated, the same removal goes through; the operator deactivates the number later,
    // but John's enterprise voice goes at once.
    let removed = remove(&mut admin, remove_request(JOHN, SIM_0301))
        .await
        .expect("remove +14255550301 from john once activated");
    let removal = removed.operation.expect("the removal's operation");
    assert_just_opened(&removal, REMOVE_EVENT, &[(SIM_0301, DEACTIVATE)]);
    assert_eq!(removed.phone_numbers.len(), 1);
    let freed = &removed.phone_numbers[0];
    assert_eq!(freed.activation_state, UPDATE_PENDING, "{freed:#?}");
    assert!(freed.assigned_to.is_empty(), "{freed:#?}");
    assert_eq!(freed.operation_id, removal.id);
    assert!(!removed.user.expect("the user").enterprise_voice_enabled);
    assert!(!get_user(&mut admin, JOHN).await.enterprise_voice_enabled);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);

    // Unheld but pending, the number refuses to be taken or changed, with ACTIVATION_PENDING.
    let before = Snapshot::read(&mut admin, &involved, &[JOHN, JACK]).await;
    assert_error(
        assign(
            &mut admin,
            pb::AssignPhoneNumberRequest {
                assignment_category: pb::AssignmentCategory::Alternate as i32,
                ..assign_request(JACK, SIM_0301)
            },
        )
        .await,
        Code::FailedPrecondition,
        pending,
    );
    assert_error(
        change(&mut admin, change_request(JACK, SIM_0301)).await,
        Code::FailedPrecondition,
        pending,
    );
    let status = assert_error(
        update_location(&mut admin, location_request(SIM_0301, BUILDING_92)).await,
        Code::FailedPrecondition,
        pending,
    );
    assert!(status.message().contains("UPDATE_PENDING"), "{status:?}");
    let after = Snapshot::read(&mut admin, &involved, &[JOHN, JACK]).await;
    assert_eq!(after, before, "a refused request changed something");
    let still = get_operation(&mut admin, &removal.id).await;
    assert!(
        !is_final(&still),
        "the deactivation ended before the refusals were all checked ({delay:?} was too short \
         for this machine): {still:#?}"
    );

    let deactivated = wait_until_ended(&mut admin, &removal.id).await;
    assert_succeeded(&deactivated);
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert!(number.assigned_to.is_empty(), "{number:#?}");
    assert_eq!(number.operation_id, removal.id);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert!(assert_voice_agrees(&mut admin, JACK).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[
            ASSIGN_EVENT,
            PROVISIONED_EVENT,
            REMOVE_EVENT,
            PROVISIONED_EVENT,
        ],
    )
    .await;
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            activations: 1,
            deactivations: 1,
            ..NOTHING
        }
    );
    // Nothing was asked of the operator for the numbers the refused requests named.
    assert_eq!(provisioned(&mut control, SIM_0302).await, NOTHING);
}

// ---- 3. the operator times out ---------------------------------------------------------------

async fn an_operator_that_times_out_is_retried_until_it_answers(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    // 1.5 s is longer than the service's 500 ms deadline of each call to the operator.
    let slow = Duration::from_millis(1500);

    // While the operator is that slow, an assignment cannot even ask the operator's rules
    // (CheckAssignment, in the request): it is refused as unavailable, and nothing changes.
    set_latency(&mut control, slow).await;
    let before = Snapshot::read(&mut admin, &[SIM_0301], &[JOHN]).await;
    assert_error(
        assign(&mut admin, assign_request(JOHN, SIM_0301)).await,
        Code::Unavailable,
        "PROVIDER_UNAVAILABLE",
    );
    assert_eq!(
        Snapshot::read(&mut admin, &[SIM_0301], &[JOHN]).await,
        before
    );
    set_latency(&mut control, Duration::ZERO).await;

    // Accepted, then the operator slows down: the worker's calls (Activate, or the polls of the
    // pending activation) time out and are retried.
    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    set_latency(&mut control, slow).await;
    let operation = assigned.operation.expect("the operation");
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);

    let timed_out = |op: &pb::Operation| {
        op.steps
            .first()
            .is_some_and(|s| s.reason.contains("did not answer") && s.reason.contains("500 ms"))
    };
    let first = wait_for(&mut admin, &operation.id, "a call to time out", timed_out).await;
    let attempts = step(&first, SIM_0301).attempts;
    assert_eq!(first.state, RUNNING, "{first:#?}");
    assert!(attempts >= 1, "{first:#?}");
    let later = wait_for(
        &mut admin,
        &operation.id,
        "another call to time out",
        |op| timed_out(op) && op.steps[0].attempts > attempts,
    )
    .await;
    assert_eq!(later.state, RUNNING, "the worker keeps trying: {later:#?}");
    assert_eq!(step(&later, SIM_0301).state, RUNNING, "{later:#?}");
    assert!(later.error.is_empty(), "{later:#?}");
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ASSIGNMENT_PENDING, "{number:#?}");
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);

    // The operator answers again.
    set_latency(&mut control, Duration::ZERO).await;
    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    assert!(
        step(&done, SIM_0301).attempts > step(&later, SIM_0301).attempts,
        "{done:#?}"
    );
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(&mut admin, SIM_0301, &[ASSIGN_EVENT, PROVISIONED_EVENT]).await;
    // However many calls timed out, the operator provisioned the number once.
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            activations: 1,
            ..NOTHING
        }
    );
}

// ---- 4. transient failures, then success -----------------------------------------------------

async fn transient_failures_are_retried_with_backoff(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    // Three failures: more than one call and its one retry, so the worker itself retries.
    inject(
        &mut control,
        sim::AdapterRpc::Activate,
        sim::FailureCode::Unavailable,
        "",
        3,
    )
    .await;

    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let operation = assigned.operation.expect("the operation");
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    assert!(
        step(&done, SIM_0301).attempts > 1,
        "the worker called again after a transient failure: {done:#?}"
    );
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(&mut admin, SIM_0301, &[ASSIGN_EVENT, PROVISIONED_EVENT]).await;

    let seen = stats(&mut control).await;
    assert_eq!(
        count_of(&seen.failures_injected, "Activate"),
        3,
        "{seen:#?}"
    );
    assert!(count_of(&seen.requests, "Activate") >= 4, "{seen:#?}");
    assert_eq!(
        provisioned_in(&seen, SIM_0301),
        Provisioned {
            activations: 1,
            ..NOTHING
        }
    );
}

// ---- 5. a permanent refusal ------------------------------------------------------------------

async fn an_operator_refusal_fails_the_assignment_for_good(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    inject(
        &mut control,
        sim::AdapterRpc::Activate,
        sim::FailureCode::FailedPrecondition,
        "NUMBER_NOT_PROVISIONED",
        1,
    )
    .await;

    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let operation = assigned.operation.expect("the operation");
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);

    let failed = wait_until_ended(&mut admin, &operation.id).await;
    assert_eq!(state_name(failed.state), "FAILED", "{failed:#?}");
    let failed_step = step(&failed, SIM_0301);
    assert_eq!(failed_step.state, FAILED, "{failed:#?}");
    assert_eq!(
        failed_step.attempts, 1,
        "a refusal is not retried: {failed:#?}"
    );
    assert!(!failed_step.reason.is_empty(), "{failed:#?}");
    assert!(failed.error.contains(SIM_0301), "{failed:#?}");

    // The number stays John's, failed; John has no telephony.
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ASSIGNMENT_FAILED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.operation_id, operation.id);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[ASSIGN_EVENT, PROVISIONING_FAILED_EVENT],
    )
    .await;
    let seen = stats(&mut control).await;
    assert_eq!(count_of(&seen.requests, "Activate"), 1, "{seen:#?}");
    assert_eq!(provisioned_in(&seen, SIM_0301), NOTHING);

    // A failed number is not pending: it can be removed.
    let removed = remove(&mut admin, remove_request(JOHN, SIM_0301))
        .await
        .expect("remove the failed number");
    let removal = removed.operation.expect("the removal's operation");
    assert_just_opened(&removal, REMOVE_EVENT, &[(SIM_0301, DEACTIVATE)]);
    let done = wait_until_ended(&mut admin, &removal.id).await;
    assert_succeeded(&done);
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert!(number.assigned_to.is_empty(), "{number:#?}");
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[
            ASSIGN_EVENT,
            PROVISIONING_FAILED_EVENT,
            REMOVE_EVENT,
            PROVISIONED_EVENT,
        ],
    )
    .await;
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            deactivations: 1,
            ..NOTHING
        }
    );

    // The operation tells the administrator why: the operator's reason.
    assert!(
        failed.error.contains("NUMBER_NOT_PROVISIONED")
            && step(&failed, SIM_0301)
                .reason
                .contains("NUMBER_NOT_PROVISIONED"),
        "the failed operation does not name the operator's reason NUMBER_NOT_PROVISIONED: \
         error {:?}, step reason {:?}",
        failed.error,
        step(&failed, SIM_0301).reason
    );
}

// ---- 6. too many transient failures ----------------------------------------------------------

async fn too_many_transient_failures_fail_the_assignment(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    // Unavailable for ever: more than the worker's 5 consecutive failures.
    inject(
        &mut control,
        sim::AdapterRpc::Activate,
        sim::FailureCode::Unavailable,
        "",
        0,
    )
    .await;

    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let operation = assigned.operation.expect("the operation");
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);

    let failed = wait_until_ended(&mut admin, &operation.id).await;
    assert_eq!(state_name(failed.state), "FAILED", "{failed:#?}");
    let failed_step = step(&failed, SIM_0301);
    assert_eq!(failed_step.state, FAILED, "{failed:#?}");
    // max_failures is 5 in the test configuration.
    assert_eq!(failed_step.attempts, 5, "{failed:#?}");
    assert!(
        failed_step.reason.to_lowercase().contains("unavailable"),
        "{failed:#?}"
    );
    assert!(failed.error.contains(SIM_0301), "{failed:#?}");

    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ASSIGNMENT_FAILED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.operation_id, operation.id);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[ASSIGN_EVENT, PROVISIONING_FAILED_EVENT],
    )
    .await;

    // The job is over: no more calls.
    let seen = stats(&mut control).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = stats(&mut control).await;
    assert_eq!(
        count_of(&later.requests, "Activate"),
        count_of(&seen.requests, "Activate"),
        "the worker still calls after the job failed"
    );
    assert_eq!(
        count_of(&seen.requests, "Activate"),
        count_of(&seen.failures_injected, "Activate"),
        "{seen:#?}"
    );
    assert_eq!(provisioned_in(&seen, SIM_0301), NOTHING);
}

// ---- 7. the operator killed mid-activation and restarted -------------------------------------

async fn restart_mid_activation(backend: Backend, keeps_state: bool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first_state = dir.path().join("litware.json");
    let (app, simulator) = start(
        backend,
        litware_settings(Duration::from_secs(1), Some(first_state.clone())),
    )
    .await;
    let address = simulator.address();
    let mut admin = app.admin(TENANT);

    let assigned = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john");
    let operation = assigned.operation.expect("the operation");
    assert_just_opened(&operation, ASSIGN_EVENT, &[(SIM_0301, ACTIVATE)]);
    // The operator accepted the change (the worker holds its ticket) and is working on it.
    let accepted = wait_for(&mut admin, &operation.id, "the operator to accept", |op| {
        op.steps[0].attempts >= 1 && op.steps[0].reason.is_empty()
    })
    .await;
    assert_eq!(accepted.state, RUNNING, "{accepted:#?}");
    let before_kill = changes_in(&first_state);
    assert_eq!(before_kill.len(), 1, "{before_kill:?}");
    let (kind, number, key) = before_kill[0].clone();
    assert_eq!((kind.as_str(), number.as_str()), ("ACTIVATION", SIM_0301));

    // Killed while pending: the worker's polls fail, and it keeps trying.
    simulator.stop().await.expect("stop the simulator");
    let failing = wait_for(
        &mut admin,
        &operation.id,
        "a poll to fail while the operator is down",
        |op| op.steps[0].reason.to_lowercase().contains("unavailable"),
    )
    .await;
    assert_eq!(failing.state, RUNNING, "{failing:#?}");
    assert_eq!(step(&failing, SIM_0301).state, RUNNING, "{failing:#?}");
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ASSIGNMENT_PENDING, "{number:#?}");
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);

    // Back on the same port: with its state, or having lost it (a new, empty state file).
    let second_state = dir.path().join("litware-after-loss.json");
    let state_file = if keeps_state {
        first_state.clone()
    } else {
        second_state.clone()
    };
    let restarted = Restarted::on(
        address,
        litware_settings(Duration::from_millis(300), Some(state_file.clone())),
    )
    .await;

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert_eq!(number.operation_id, operation.id);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(&mut admin, SIM_0301, &[ASSIGN_EVENT, PROVISIONED_EVENT]).await;

    // Provisioned once: the restarted operator knows one change, asked with the same
    // idempotency key as before the crash.
    let mut control = restarted.control();
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            activations: 1,
            ..NOTHING
        }
    );
    let after = changes_in(&state_file);
    assert_eq!(
        after,
        vec![("ACTIVATION".to_owned(), SIM_0301.to_owned(), key)],
        "the operator's changes after the restart"
    );
    if !keeps_state {
        // The lost state was not written back to the old file: the worker asked again.
        assert_eq!(changes_in(&first_state), before_kill);
    }
    restarted.stop().await;
}

async fn an_operator_restarted_with_its_state_completes_the_activation(backend: Backend) {
    restart_mid_activation(backend, true).await;
}

async fn an_operator_that_lost_its_state_is_asked_again_with_the_same_key(backend: Backend) {
    restart_mid_activation(backend, false).await;
}

// ---- 8. emergency location updates -----------------------------------------------------------

async fn a_location_update_waits_for_the_operator(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    assert_eq!(
        get_number(&mut admin, SIM_0302).await.emergency_location_id,
        REDMOND_HQ
    );

    let updated = update_location(&mut admin, location_request(SIM_0302, BUILDING_92))
        .await
        .expect("move +14255550302 to building 92");
    assert_eq!(updated.activation_state, UPDATE_PENDING, "{updated:#?}");
    assert_eq!(updated.emergency_location_id, BUILDING_92);
    assert!(updated.assigned_to.is_empty());
    let operation = get_operation(&mut admin, &updated.operation_id).await;
    assert_just_opened(&operation, LOCATION_EVENT, &[(SIM_0302, UPDATE_LOCATION)]);

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    let number = get_number(&mut admin, SIM_0302).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.emergency_location_id, BUILDING_92);
    assert!(number.assigned_to.is_empty());
    assert_eq!(number.operation_id, operation.id);
    assert_audit(&mut admin, SIM_0302, &[LOCATION_EVENT, PROVISIONED_EVENT]).await;
    assert_eq!(
        provisioned(&mut control, SIM_0302).await,
        Provisioned {
            location_updates: 1,
            ..NOTHING
        }
    );

    // The operator refuses the next one: the number is back at its previous location.
    inject(
        &mut control,
        sim::AdapterRpc::UpdateLocation,
        sim::FailureCode::FailedPrecondition,
        "",
        1,
    )
    .await;
    let updated = update_location(&mut admin, location_request(SIM_0303, BUILDING_92))
        .await
        .expect("move +14255550303 to building 92");
    assert_eq!(updated.activation_state, UPDATE_PENDING, "{updated:#?}");
    assert_eq!(updated.emergency_location_id, BUILDING_92);
    let failed = wait_until_ended(&mut admin, &updated.operation_id).await;
    assert_eq!(state_name(failed.state), "FAILED", "{failed:#?}");
    assert_eq!(step(&failed, SIM_0303).state, FAILED);
    assert_eq!(step(&failed, SIM_0303).action, UPDATE_LOCATION);
    assert!(failed.error.contains(SIM_0303), "{failed:#?}");
    let number = get_number(&mut admin, SIM_0303).await;
    assert_eq!(number.activation_state, UPDATE_FAILED, "{number:#?}");
    assert_eq!(
        number.emergency_location_id, REDMOND_HQ,
        "a refused update restores the previous location: {number:#?}"
    );
    assert_audit(
        &mut admin,
        SIM_0303,
        &[LOCATION_EVENT, PROVISIONING_FAILED_EVENT],
    )
    .await;
    let refused = last_event(&mut admin, SIM_0303, PROVISIONING_FAILED_EVENT).await;
    assert_eq!(
        snapshot_field(refused.after.as_ref(), "emergencyLocationId"),
        REDMOND_HQ
    );
    assert_eq!(provisioned(&mut control, SIM_0303).await, NOTHING);
    // The first number was not touched again.
    assert_eq!(
        get_number(&mut admin, SIM_0302).await.emergency_location_id,
        BUILDING_92
    );
}

// ---- 9. changing a user's number -------------------------------------------------------------

async fn a_change_deactivates_the_old_number_and_activates_the_new(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    let first = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign +14255550301 to john")
        .operation
        .expect("the operation");
    assert_succeeded(&wait_until_ended(&mut admin, &first.id).await);

    let changed = change(&mut admin, change_request(JOHN, SIM_0302))
        .await
        .expect("change john's number to +14255550302");
    // Right after the answer, John holds exactly one primary number: the new one.
    let held = numbers_of(&mut admin, JOHN).await;
    let held_numbers: Vec<(&str, i32)> = held
        .iter()
        .map(|n| (n.phone_number.as_str(), n.assignment_category))
        .collect();
    assert_eq!(held_numbers, [(SIM_0302, PRIMARY)], "{held:#?}");

    let operation = changed.operation.expect("the operation");
    assert_just_opened(
        &operation,
        CHANGE_EVENT,
        &[(SIM_0301, DEACTIVATE), (SIM_0302, ACTIVATE)],
    );
    let previous = changed.previous_phone_number.expect("the previous number");
    assert_eq!(previous.phone_number, SIM_0301);
    assert_eq!(previous.activation_state, UPDATE_PENDING, "{previous:#?}");
    assert!(previous.assigned_to.is_empty());
    assert_eq!(previous.operation_id, operation.id);
    let new = changed.phone_number.expect("the new number");
    assert_eq!(new.phone_number, SIM_0302);
    assert_eq!(new.activation_state, ASSIGNMENT_PENDING, "{new:#?}");
    assert_eq!(new.assigned_to, JOHN_ID);
    assert_eq!(new.operation_id, operation.id);
    // A change keeps John's telephony on while the new number is pending: he is never left
    // without service in between.
    let john = changed.user.expect("the user");
    assert!(john.enterprise_voice_enabled, "{john:#?}");
    assert_eq!(john.phone_numbers, [SIM_0302]);
    assert!(get_user(&mut admin, JOHN).await.enterprise_voice_enabled);

    // Throughout, John holds one primary number.
    let start = Instant::now();
    let done = loop {
        let now = get_operation(&mut admin, &operation.id).await;
        let held = numbers_of(&mut admin, JOHN).await;
        assert_eq!(
            held.iter()
                .map(|n| (n.phone_number.as_str(), n.assignment_category))
                .collect::<Vec<_>>(),
            [(SIM_0302, PRIMARY)],
            "{held:#?}"
        );
        if is_final(&now) {
            break now;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "waited {DEADLINE:?} for the change: {now:#?}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    };
    assert_succeeded(&done);
    assert_eq!(done.steps.len(), 2);
    assert_eq!(step(&done, SIM_0301).action, DEACTIVATE);
    assert_eq!(step(&done, SIM_0302).action, ACTIVATE);

    let old = get_number(&mut admin, SIM_0301).await;
    assert_eq!(old.activation_state, ACTIVATED, "{old:#?}");
    assert!(old.assigned_to.is_empty(), "{old:#?}");
    assert_eq!(old.operation_id, operation.id);
    let new = get_number(&mut admin, SIM_0302).await;
    assert_eq!(new.activation_state, ACTIVATED, "{new:#?}");
    assert_eq!(new.assigned_to, JOHN_ID);
    assert_eq!(new.assignment_category, PRIMARY);
    assert_eq!(new.operation_id, operation.id);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_eq!(get_user(&mut admin, JOHN).await.phone_numbers, [SIM_0302]);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[
            ASSIGN_EVENT,
            PROVISIONED_EVENT,
            CHANGE_EVENT,
            PROVISIONED_EVENT,
        ],
    )
    .await;
    assert_audit(&mut admin, SIM_0302, &[CHANGE_EVENT, PROVISIONED_EVENT]).await;
    let seen = stats(&mut control).await;
    assert_eq!(
        provisioned_in(&seen, SIM_0301),
        Provisioned {
            activations: 1,
            deactivations: 1,
            ..NOTHING
        }
    );
    assert_eq!(
        provisioned_in(&seen, SIM_0302),
        Provisioned {
            activations: 1,
            ..NOTHING
        }
    );
}

// ---- 10. concurrent assignments --------------------------------------------------------------

async fn concurrent_assignments_are_each_provisioned_once(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(300)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    let numbers: Vec<String> = (1..=8).map(|i| format!("+1425555040{i}")).collect();
    let uploaded = app
        .operator(LITWARE)
        .upload_numbers(pb::UploadNumbersRequest {
            tenant_id: TENANT.into(),
            numbers: numbers
                .iter()
                .map(|n| pb::UploadedNumber {
                    phone_number: n.clone(),
                    capabilities: vec![USER_ASSIGNMENT],
                    emergency_location_id: REDMOND_HQ.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await
        .expect("Litware uploads 8 numbers")
        .into_inner();
    assert_eq!(uploaded.phone_numbers.len(), 8);

    let mut users = vec![JOHN.to_owned(), JACK.to_owned()];
    for i in 1..=6 {
        let upn = format!("agent{i}@contoso.com");
        app.user(TENANT, &upn, &format!("Agent {i}"), "US").await;
        users.push(upn);
    }

    let answers = futures::future::join_all(users.iter().zip(&numbers).map(|(user, number)| {
        let mut client = app.admin(TENANT);
        let request = assign_request(user, number);
        async move { assign(&mut client, request).await }
    }))
    .await;
    let mut operations = Vec::new();
    for ((user, number), answer) in users.iter().zip(&numbers).zip(answers) {
        let answer = answer.unwrap_or_else(|s| panic!("assign {number} to {user}: {s:?}"));
        let operation = answer.operation.expect("the operation");
        assert_just_opened(&operation, ASSIGN_EVENT, &[(number.as_str(), ACTIVATE)]);
        operations.push(operation.id);
    }

    for id in &operations {
        assert_succeeded(&wait_until_ended(&mut admin, id).await);
    }
    let seen = stats(&mut control).await;
    for ((user, number), id) in users.iter().zip(&numbers).zip(&operations) {
        let record = get_number(&mut admin, number).await;
        assert_eq!(record.activation_state, ACTIVATED, "{record:#?}");
        assert_eq!(record.assigned_to_user_principal_name, *user);
        assert_eq!(record.operation_id, *id);
        assert!(assert_voice_agrees(&mut admin, user).await);
        assert_audit(
            &mut admin,
            number,
            &[UPLOAD_EVENT, ASSIGN_EVENT, PROVISIONED_EVENT],
        )
        .await;
        assert_eq!(
            provisioned_in(&seen, number),
            Provisioned {
                activations: 1,
                ..NOTHING
            },
            "{number}"
        );
    }
}

// ---- a transfer waits for the operator with its new holder ------------------------------------

/// A Litware Mobile number moved from John to Jack: answered ASSIGNMENT_PENDING with Jack
/// holding it (John at once without it: never free, never with both), activated for Jack by
/// one more activation, and refused to move again while pending.
async fn a_transfer_waits_for_the_operator_with_its_new_holder(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(800)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    let first = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign to john")
        .operation
        .expect("the operation");
    assert_succeeded(&wait_until_ended(&mut admin, &first.id).await);

    let moved = admin
        .transfer_phone_number(pb::TransferPhoneNumberRequest {
            phone_number: SIM_0301.into(),
            from_identity: JOHN.into(),
            to_identity: JACK.into(),
            ..Default::default()
        })
        .await
        .expect("transfer to jack")
        .into_inner();
    let number = moved.phone_number.expect("the number");
    let operation = moved.operation.expect("the operation");
    assert_eq!(number.assigned_to, JACK_ID);
    assert_eq!(number.activation_state, ASSIGNMENT_PENDING, "{number:#?}");
    assert_eq!(number.assignment_category, PRIMARY);
    assert_eq!(number.emergency_location_id, REDMOND_HQ);
    assert_just_opened(&operation, TRANSFER_EVENT, &[(SIM_0301, ACTIVATE)]);
    let john = moved.previous_user.expect("john");
    assert!(john.phone_numbers.is_empty(), "{john:#?}");
    assert!(!john.enterprise_voice_enabled, "{john:#?}");
    assert!(numbers_of(&mut admin, JOHN).await.is_empty());
    assert_eq!(
        numbers_of(&mut admin, JACK)
            .await
            .iter()
            .map(|n| n.phone_number.as_str())
            .collect::<Vec<_>>(),
        [SIM_0301]
    );
    assert!(!assert_voice_agrees(&mut admin, JACK).await);

    // Pending: it does not move again until the operator has answered.
    let refused = admin
        .transfer_phone_number(pb::TransferPhoneNumberRequest {
            phone_number: SIM_0301.into(),
            from_identity: JACK.into(),
            to_identity: JOHN.into(),
            ..Default::default()
        })
        .await;
    assert_error(refused, Code::FailedPrecondition, "ACTIVATION_PENDING");

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JACK_ID);
    assert!(assert_voice_agrees(&mut admin, JACK).await);
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[
            ASSIGN_EVENT,
            PROVISIONED_EVENT,
            TRANSFER_EVENT,
            TRANSFER_EVENT,
            PROVISIONED_EVENT,
        ],
    )
    .await;
    assert_eq!(
        provisioned(&mut control, SIM_0301).await,
        Provisioned {
            activations: 2,
            ..NOTHING
        }
    );
}

// ---- operations that can be managed -----------------------------------------------------------

async fn list_operations(
    client: &mut Client,
    request: pb::ListOperationsRequest,
) -> Vec<pb::Operation> {
    client
        .list_operations(request)
        .await
        .expect("ListOperations")
        .into_inner()
        .operations
}

/// A refused activation fails its operation; RetryOperation tries it again, the number waits
/// again, and the operation ends well; an operation that has not failed is not retried.
async fn a_failed_operation_is_retried(backend: Backend) {
    let (app, simulator) = start_with_delay(backend, Duration::from_millis(200)).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    inject(
        &mut control,
        sim::AdapterRpc::Activate,
        sim::FailureCode::FailedPrecondition,
        "NUMBER_NOT_PROVISIONED",
        1,
    )
    .await;
    let operation = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign")
        .operation
        .expect("the operation");
    let failed = wait_until_ended(&mut admin, &operation.id).await;
    assert_eq!(state_name(failed.state), "FAILED", "{failed:#?}");

    for request in [
        pb::ListOperationsRequest {
            state: FAILED,
            ..Default::default()
        },
        pb::ListOperationsRequest {
            phone_number: SIM_0301.into(),
            ..Default::default()
        },
        pb::ListOperationsRequest {
            kind: ASSIGN_EVENT,
            ..Default::default()
        },
    ] {
        let listed = list_operations(&mut admin, request.clone()).await;
        assert_eq!(listed.len(), 1, "{request:?}: {listed:#?}");
        assert_eq!(listed[0], failed);
    }
    assert!(
        list_operations(
            &mut admin,
            pb::ListOperationsRequest {
                state: SUCCEEDED,
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );

    let retried = admin
        .retry_operation(pb::RetryOperationRequest {
            id: operation.id.clone(),
            ..Default::default()
        })
        .await
        .expect("retry")
        .into_inner();
    assert!(
        retried.state == PENDING || retried.state == RUNNING,
        "{retried:#?}"
    );
    assert!(retried.error.is_empty(), "{retried:#?}");
    assert_eq!(
        step(&retried, SIM_0301).attempts,
        1,
        "the first attempt still counts"
    );
    let waiting = get_number(&mut admin, SIM_0301).await;
    assert_eq!(waiting.activation_state, ASSIGNMENT_PENDING, "{waiting:#?}");

    let done = wait_until_ended(&mut admin, &operation.id).await;
    assert_succeeded(&done);
    let number = get_number(&mut admin, SIM_0301).await;
    assert_eq!(number.activation_state, ACTIVATED, "{number:#?}");
    assert_eq!(number.assigned_to, JOHN_ID);
    assert!(assert_voice_agrees(&mut admin, JOHN).await);
    assert_audit(
        &mut admin,
        SIM_0301,
        &[
            ASSIGN_EVENT,
            PROVISIONING_FAILED_EVENT,
            RETRY_EVENT,
            PROVISIONED_EVENT,
        ],
    )
    .await;

    let again = admin
        .retry_operation(pb::RetryOperationRequest {
            id: operation.id.clone(),
            ..Default::default()
        })
        .await;
    assert_error(again, Code::FailedPrecondition, "OPERATION_NOT_RETRYABLE");
    let missing = admin
        .retry_operation(pb::RetryOperationRequest {
            id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await;
    assert_error(missing, Code::NotFound, "OPERATION_NOT_FOUND");
}

/// An activation its operator keeps failing (unavailable) is cancelled: the number is free
/// again, John without it, audited; an operation the operator is working on is not cancelled.
async fn a_stuck_operation_is_cancelled(backend: Backend) {
    let simulator = RunningSimulator::start(litware_settings(Duration::from_millis(500), None))
        .await
        .expect("start the operator simulator");
    let mut config = TestConfig::default().with_simulated_operator(&simulator.endpoint());
    config.worker.max_failures = 1_000;
    let app = TestApp::start_demo(backend, config).await;
    let mut control = simulator.control();
    let mut admin = app.admin(TENANT);
    inject(
        &mut control,
        sim::AdapterRpc::Activate,
        sim::FailureCode::Unavailable,
        "",
        0,
    )
    .await;
    let operation = assign(&mut admin, assign_request(JOHN, SIM_0301))
        .await
        .expect("assign")
        .operation
        .expect("the operation");

    // A worker may be calling the operator at the moment: then the answer says to try again.
    let deadline = Instant::now() + DEADLINE;
    let cancelled = loop {
        match admin
            .cancel_operation(pb::CancelOperationRequest {
                id: operation.id.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(cancelled) => break cancelled.into_inner(),
            Err(status) => {
                assert_error::<()>(
                    Err(status),
                    Code::FailedPrecondition,
                    "OPERATION_NOT_CANCELLABLE",
                );
                assert!(Instant::now() < deadline, "never cancellable");
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    };
    assert_eq!(state_name(cancelled.state), "FAILED", "{cancelled:#?}");
    assert!(cancelled.error.contains("cancelled by"), "{cancelled:#?}");
    let number = get_number(&mut admin, SIM_0301).await;
    assert!(number.assigned_to.is_empty(), "free again: {number:#?}");
    assert_eq!(number.activation_state, ACTIVATED);
    assert!(numbers_of(&mut admin, JOHN).await.is_empty());
    assert!(!assert_voice_agrees(&mut admin, JOHN).await);
    assert_eq!(
        last_event(&mut admin, SIM_0301, CANCEL_EVENT).await.user_id,
        JOHN_ID
    );
    assert_eq!(get_operation(&mut admin, &operation.id).await, cancelled);
    let again = admin
        .cancel_operation(pb::CancelOperationRequest {
            id: operation.id.clone(),
            ..Default::default()
        })
        .await;
    assert_error(again, Code::FailedPrecondition, "OPERATION_NOT_CANCELLABLE");
    // Its number changed since: nothing to retry.
    let retried = admin
        .retry_operation(pb::RetryOperationRequest {
            id: operation.id.clone(),
            ..Default::default()
        })
        .await;
    assert_error(retried, Code::FailedPrecondition, "OPERATION_NOT_RETRYABLE");

    // The operator answers again: an assignment it has taken up (a ticket) is not cancelled.
    control
        .clear_failures(sim::ClearFailuresRequest {})
        .await
        .expect("ClearFailures");
    let taken_up = assign(&mut admin, assign_request(JOHN, SIM_0302))
        .await
        .expect("assign another")
        .operation
        .expect("the operation");
    wait_for(
        &mut admin,
        &taken_up.id,
        "the operator to take it up",
        |o| o.steps.iter().all(|s| s.attempts >= 1),
    )
    .await;
    let refused = admin
        .cancel_operation(pb::CancelOperationRequest {
            id: taken_up.id.clone(),
            ..Default::default()
        })
        .await;
    assert_error(
        refused,
        Code::FailedPrecondition,
        "OPERATION_NOT_CANCELLABLE",
    );
    assert_succeeded(&wait_until_ended(&mut admin, &taken_up.id).await);
}

on_both_stores!(
    a_pending_assignment_becomes_activated,
    a_pending_number_refuses_changes_until_its_operator_confirms,
    an_operator_that_times_out_is_retried_until_it_answers,
    transient_failures_are_retried_with_backoff,
    an_operator_refusal_fails_the_assignment_for_good,
    too_many_transient_failures_fail_the_assignment,
    an_operator_restarted_with_its_state_completes_the_activation,
    an_operator_that_lost_its_state_is_asked_again_with_the_same_key,
    a_location_update_waits_for_the_operator,
    a_change_deactivates_the_old_number_and_activates_the_new,
    concurrent_assignments_are_each_provisioned_once,
    a_transfer_waits_for_the_operator_with_its_new_holder,
    a_failed_operation_is_retried,
    a_stuck_operation_is_cancelled,
);
