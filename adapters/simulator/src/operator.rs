//! The simulated operator: an Operator Connect carrier that provisions numbers with a delay,
//! as a real one does, and remembers what it was asked.
//!
//! Its rules are the in-process operator adapter's, by delegation, so a remote operator and an
//! in-process one refuse the same things. Its provisioning is its own: each change is accepted
//! with a ticket and completes `activation_delay` later; the same idempotency key (for the same
//! kind of change and number) always finds the same change, so a repeated request never
//! provisions twice. Besides the changes, it keeps what it holds: per number, the tenant, whether
//! it routes the number's calls, to whom and with which emergency location, as the latest change
//! left it (or as tampering behind the service's back left it), which is what it lists. The
//! changes and the numbers are its state, kept in memory and, when a state file is given,
//! written to it after every change and read back at start.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::{
    ActivationMode, AssignmentCheck, CarrierNumber, CarrierPage, CarrierState, Descriptor,
    ErrorKind, LocationCheck, Progress, Provider, ProviderError, ProviderResult, Provisioning,
};
use serde::{Deserialize, Serialize};

/// The most numbers one page of the carrier's listing holds.
pub(crate) const MAX_PAGE: usize = 500;

/// The reason given for a provisioning request without an idempotency key.
pub const IDEMPOTENCY_KEY_REQUIRED: &str = "IDEMPOTENCY_KEY_REQUIRED";

/// The kinds of provisioning change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Kind {
    Activation,
    Deactivation,
    LocationUpdate,
}

impl Kind {
    const fn prefix(self) -> &'static str {
        match self {
            Kind::Activation => "act",
            Kind::Deactivation => "deact",
            Kind::LocationUpdate => "loc",
        }
    }
}

/// One change the carrier accepted. Times are milliseconds since the Unix epoch, so they mean
/// the same after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    ticket: String,
    kind: Kind,
    phone_number: String,
    idempotency_key: String,
    tenant_id: String,
    target_id: String,
    emergency_location_id: Option<String>,
    accepted_at_ms: u64,
    completes_at_ms: u64,
}

impl Change {
    fn progress(&self, now_ms: u64) -> Progress {
        if now_ms >= self.completes_at_ms {
            Progress::Done
        } else {
            Progress::Pending {
                ticket: self.ticket.clone(),
                retry_after: Duration::from_millis(self.completes_at_ms - now_ms),
            }
        }
    }
}

/// A number as the carrier holds it: what the latest change (or tampering) left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    tenant_id: String,
    /// Whether calls are routed once the latest change completes.
    active: bool,
    target_id: Option<String>,
    emergency_location_id: Option<String>,
    /// When the latest change completes; listed as pending until then.
    settles_at_ms: u64,
}

impl Held {
    fn listed(&self, phone_number: &str, now_ms: u64) -> CarrierNumber {
        let state = if now_ms < self.settles_at_ms {
            CarrierState::Pending
        } else if self.active {
            CarrierState::Active
        } else {
            CarrierState::Inactive
        };
        CarrierNumber {
            phone_number: phone_number.to_owned(),
            state,
            target_id: self.target_id.clone(),
            emergency_location_id: self.emergency_location_id.clone(),
        }
    }
}

/// What the carrier's state becomes behind the service's back: one number, one change, done at
/// once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tampering {
    /// The carrier no longer holds the number.
    Drop,
    /// The carrier stops routing the number's calls and forgets its target.
    Deactivate,
    /// The carrier routes the number's calls to this target.
    EnableFor(String),
    /// The carrier has this emergency location registered for the number.
    RegisterLocation(String),
    /// The carrier holds a number the service never provisioned: for a tenant, routed to a
    /// target.
    Add {
        tenant_id: String,
        target_id: String,
        emergency_location_id: Option<String>,
    },
}

/// Why tampering could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TamperError {
    /// The carrier does not hold the number.
    #[error("the carrier holds no number {0}")]
    NotHeld(String),
    /// Adding a number the carrier already holds.
    #[error("the carrier already holds {0}")]
    AlreadyHeld(String),
    /// The state file could not be written; nothing changed.
    #[error("could not record the change: {0}")]
    Save(#[from] std::io::Error),
}

/// The carrier's state: every change it accepted, by ticket, and every number it holds, by
/// number, as the state file holds them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    changes: BTreeMap<String, Change>,
    /// Absent from state files written before the carrier listed its numbers.
    #[serde(default)]
    numbers: BTreeMap<String, Held>,
    /// (kind, number, idempotency key) -> ticket; rebuilt at load.
    #[serde(skip)]
    keys: HashMap<(Kind, String, String), String>,
}

impl Ledger {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut ledger: Ledger = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a simulator state file", path.display()))?;
        ledger.keys = ledger
            .changes
            .values()
            .map(|c| {
                (
                    key_of(c.kind, &c.phone_number, &c.idempotency_key),
                    c.ticket.clone(),
                )
            })
            .collect();
        Ok(ledger)
    }

    /// Writes the ledger to `path` whole, through a temporary file, so that a crash never
    /// leaves half a file.
    fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, path)
    }

    fn insert(&mut self, change: Change) {
        self.keys.insert(
            key_of(change.kind, &change.phone_number, &change.idempotency_key),
            change.ticket.clone(),
        );
        self.changes.insert(change.ticket.clone(), change);
    }

    fn remove(&mut self, ticket: &str) {
        if let Some(change) = self.changes.remove(ticket) {
            self.keys.remove(&key_of(
                change.kind,
                &change.phone_number,
                &change.idempotency_key,
            ));
        }
    }

    fn find(&self, kind: Kind, phone_number: &str, key: &str) -> Option<&Change> {
        self.keys
            .get(&key_of(kind, phone_number, key))
            .and_then(|ticket| self.changes.get(ticket))
    }
}

/// What the carrier holds once `change` completes, from what it held before.
fn apply(change: &Change, before: Option<&Held>) -> Held {
    let (active, target_id) = match change.kind {
        Kind::Activation => (true, Some(change.target_id.clone())),
        Kind::Deactivation => (false, None),
        Kind::LocationUpdate => before.map_or((false, None), |h| (h.active, h.target_id.clone())),
    };
    Held {
        tenant_id: change.tenant_id.clone(),
        active,
        target_id: target_id.filter(|t| !t.is_empty()),
        emergency_location_id: change.emergency_location_id.clone(),
        settles_at_ms: change.completes_at_ms,
    }
}

fn key_of(kind: Kind, phone_number: &str, key: &str) -> (Kind, String, String) {
    (kind, phone_number.to_owned(), key.to_owned())
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// Accepted and completed changes of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) accepted: u64,
    pub(crate) completed: u64,
}

/// The provisioning of one number, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NumberCounts {
    pub(crate) activations: Counts,
    pub(crate) deactivations: Counts,
    pub(crate) location_updates: Counts,
}

/// The simulated operator, shared by the adapter and control services.
#[derive(Debug)]
pub(crate) struct SimulatedOperator {
    descriptor: Descriptor,
    /// The in-process operator adapter, whose rules this operator applies.
    rules: OperatorConnect,
    state_file: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    activation_delay: Duration,
    ledger: Ledger,
}

impl SimulatedOperator {
    /// The operator `settings` declares, with the state `state_file` holds (none when it does
    /// not exist yet).
    pub(crate) fn open(
        settings: OperatorSettings,
        activation_delay: Duration,
        state_file: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let ledger = match &state_file {
            Some(path) => Ledger::load(path)?,
            None => Ledger::default(),
        };
        let rules = OperatorConnect::new(settings);
        let descriptor = Descriptor {
            activation: ActivationMode::Asynchronous,
            lists_numbers: true,
            ..rules.descriptor().clone()
        };
        Ok(Self {
            descriptor,
            rules,
            state_file,
            state: Mutex::new(State {
                activation_delay,
                ledger,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the delay of the changes accepted from now on.
    pub(crate) fn set_activation_delay(&self, delay: Duration) {
        self.state().activation_delay = delay;
    }

    /// Forgets every change and every number it holds, in memory and in the state file.
    pub(crate) fn reset(&self) -> std::io::Result<()> {
        let mut state = self.state();
        state.ledger = Ledger::default();
        self.save(&state.ledger)
    }

    /// Accepted and completed changes per number, by number.
    pub(crate) fn counts(&self) -> BTreeMap<String, NumberCounts> {
        let now = now_ms();
        let mut counts = BTreeMap::<String, NumberCounts>::new();
        for change in self.state().ledger.changes.values() {
            let number = counts.entry(change.phone_number.clone()).or_default();
            let of_kind = match change.kind {
                Kind::Activation => &mut number.activations,
                Kind::Deactivation => &mut number.deactivations,
                Kind::LocationUpdate => &mut number.location_updates,
            };
            of_kind.accepted += 1;
            if now >= change.completes_at_ms {
                of_kind.completed += 1;
            }
        }
        counts
    }

    /// Changes what the carrier holds for `phone_number` behind the service's back, at once and
    /// durably; the changes it accepted stay as they were.
    pub(crate) fn tamper(
        &self,
        phone_number: &str,
        tampering: Tampering,
    ) -> Result<(), TamperError> {
        let mut state = self.state();
        let before = state.ledger.numbers.get(phone_number).cloned();
        let now = now_ms();
        let after = match (tampering, &before) {
            (Tampering::Add { .. }, Some(_)) => {
                return Err(TamperError::AlreadyHeld(phone_number.to_owned()));
            }
            (
                Tampering::Add {
                    tenant_id,
                    target_id,
                    emergency_location_id,
                },
                None,
            ) => Some(Held {
                tenant_id,
                active: true,
                target_id: Some(target_id),
                emergency_location_id,
                settles_at_ms: now,
            }),
            (_, None) => return Err(TamperError::NotHeld(phone_number.to_owned())),
            (Tampering::Drop, Some(_)) => None,
            (Tampering::Deactivate, Some(held)) => Some(Held {
                active: false,
                target_id: None,
                settles_at_ms: now,
                ..held.clone()
            }),
            (Tampering::EnableFor(target_id), Some(held)) => Some(Held {
                active: true,
                target_id: Some(target_id),
                settles_at_ms: now,
                ..held.clone()
            }),
            (Tampering::RegisterLocation(location_id), Some(held)) => Some(Held {
                emergency_location_id: Some(location_id),
                settles_at_ms: now,
                ..held.clone()
            }),
        };
        let restore = |numbers: &mut BTreeMap<String, Held>, held: Option<Held>| match held {
            Some(held) => numbers.insert(phone_number.to_owned(), held),
            None => numbers.remove(phone_number),
        };
        restore(&mut state.ledger.numbers, after);
        if let Err(error) = self.save(&state.ledger) {
            restore(&mut state.ledger.numbers, before);
            return Err(error.into());
        }
        Ok(())
    }

    fn save(&self, ledger: &Ledger) -> std::io::Result<()> {
        match &self.state_file {
            Some(path) => ledger.save(path),
            None => Ok(()),
        }
    }

    /// Accepts a change, or finds the one its idempotency key already names.
    fn provision(&self, kind: Kind, request: &Provisioning) -> ProviderResult<Progress> {
        if request.idempotency_key.is_empty() {
            return Err(ProviderError::refused(
                self.descriptor.id.clone(),
                IDEMPOTENCY_KEY_REQUIRED,
                "provisioning requests need an idempotency key",
            ));
        }
        let now = now_ms();
        let mut state = self.state();
        if let Some(change) =
            state
                .ledger
                .find(kind, &request.phone_number, &request.idempotency_key)
        {
            return Ok(change.progress(now));
        }
        let delay = u64::try_from(state.activation_delay.as_millis()).unwrap_or(u64::MAX);
        let change = Change {
            ticket: format!("{}-{:016x}", kind.prefix(), rand::random::<u64>()),
            kind,
            phone_number: request.phone_number.clone(),
            idempotency_key: request.idempotency_key.clone(),
            tenant_id: request.tenant_id.clone(),
            target_id: request.target_id.clone(),
            emergency_location_id: request
                .emergency_address
                .as_ref()
                .map(|a| a.location_id.clone()),
            accepted_at_ms: now,
            completes_at_ms: now.saturating_add(delay),
        };
        let progress = change.progress(now);
        let ticket = change.ticket.clone();
        let before = state.ledger.numbers.get(&change.phone_number).cloned();
        let held = apply(&change, before.as_ref());
        state
            .ledger
            .numbers
            .insert(change.phone_number.clone(), held);
        state.ledger.insert(change);
        if let Err(error) = self.save(&state.ledger) {
            // A carrier that cannot record a change does not accept it.
            state.ledger.remove(&ticket);
            match before {
                Some(held) => state
                    .ledger
                    .numbers
                    .insert(request.phone_number.clone(), held),
                None => state.ledger.numbers.remove(&request.phone_number),
            };
            return Err(ProviderError::new(
                self.descriptor.id.clone(),
                ErrorKind::Unavailable { retry_after: None },
                format!("could not record the change: {error}"),
            ));
        }
        tracing::info!(
            ?kind,
            phone_number = %request.phone_number,
            %ticket,
            delay_ms = delay,
            "change accepted"
        );
        Ok(progress)
    }
}

#[async_trait]
impl Provider for SimulatedOperator {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn check_assignment(&self, check: &AssignmentCheck) -> ProviderResult<()> {
        self.rules.check_assignment(check).await
    }

    async fn check_location_update(&self, check: &LocationCheck) -> ProviderResult<()> {
        self.rules.check_location_update(check).await
    }

    async fn activate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.provision(Kind::Activation, change)
    }

    async fn deactivate(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.provision(Kind::Deactivation, change)
    }

    async fn update_location(&self, change: &Provisioning) -> ProviderResult<Progress> {
        self.provision(Kind::LocationUpdate, change)
    }

    async fn poll(&self, ticket: &str) -> ProviderResult<Progress> {
        let now = now_ms();
        match self.state().ledger.changes.get(ticket) {
            Some(change) => Ok(change.progress(now)),
            None => Err(ProviderError::new(
                self.descriptor.id.clone(),
                ErrorKind::NotFound,
                format!("{} knows no change {ticket}", self.descriptor.display_name),
            )),
        }
    }

    /// Pages of at most [`MAX_PAGE`] numbers however many are asked for, and of one when asked
    /// for none.
    async fn list_numbers(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ProviderResult<CarrierPage> {
        use std::ops::Bound;
        let limit = limit.clamp(1, MAX_PAGE);
        let now = now_ms();
        let state = self.state();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut held = state
            .ledger
            .numbers
            .range::<str, _>((start, Bound::Unbounded))
            .filter(|(_, held)| held.tenant_id == tenant_id);
        let numbers: Vec<CarrierNumber> = held
            .by_ref()
            .take(limit)
            .map(|(number, held)| held.listed(number, now))
            .collect();
        let more = held.next().is_some();
        Ok(CarrierPage {
            next_after: more
                .then(|| numbers.last().map(|n| n.phone_number.clone()))
                .flatten(),
            numbers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(delay: Duration, state_file: Option<PathBuf>) -> SimulatedOperator {
        SimulatedOperator::open(
            OperatorSettings {
                id: "sim".into(),
                display_name: "Sim".into(),
                countries: vec!["US".into()],
                tenant_location_update_allowed: false,
            },
            delay,
            state_file,
        )
        .unwrap()
    }

    fn change(key: &str) -> Provisioning {
        Provisioning {
            tenant_id: "t".into(),
            phone_number: "+14255550100".into(),
            target_id: "u".into(),
            emergency_address: None,
            idempotency_key: key.into(),
        }
    }

    #[tokio::test]
    async fn the_same_key_finds_the_same_change() {
        let operator = operator(Duration::from_secs(60), None);
        let first = operator.activate(&change("k")).await.unwrap();
        let again = operator.activate(&change("k")).await.unwrap();
        let (Progress::Pending { ticket: a, .. }, Progress::Pending { ticket: b, .. }) =
            (first, again)
        else {
            panic!("a delayed change completed at once");
        };
        assert_eq!(a, b);
        // The same key for another kind of change is another change.
        let other = operator.deactivate(&change("k")).await.unwrap();
        assert!(matches!(other, Progress::Pending { ticket, .. } if ticket != a));
        let counts = operator.counts()["+14255550100"];
        assert_eq!(counts.activations.accepted, 1);
        assert_eq!(counts.activations.completed, 0);
        assert_eq!(counts.deactivations.accepted, 1);
    }

    #[tokio::test]
    async fn the_state_file_is_read_back_and_reset_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = operator(Duration::ZERO, Some(path.clone()));
        assert_eq!(first.activate(&change("k")).await.unwrap(), Progress::Done);
        let reopened = operator(Duration::ZERO, Some(path.clone()));
        assert_eq!(reopened.counts()["+14255550100"].activations.accepted, 1);
        reopened.reset().unwrap();
        assert!(operator(Duration::ZERO, Some(path)).counts().is_empty());
    }

    #[tokio::test]
    async fn a_change_or_tampering_that_cannot_be_recorded_leaves_the_numbers_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        // A state file in a directory that does not exist: loads as empty, never saves.
        let path = dir.path().join("missing").join("state.json");
        let operator = operator(Duration::ZERO, Some(path));
        let error = operator.activate(&change("k")).await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
        let add = Tampering::Add {
            tenant_id: "t".into(),
            target_id: "u".into(),
            emergency_location_id: None,
        };
        let error = operator.tamper("+14255550101", add).unwrap_err();
        assert!(matches!(error, TamperError::Save(_)), "{error}");
        let page = operator.list_numbers("t", None, 10).await.unwrap();
        assert_eq!(page, CarrierPage::default());
    }

    #[tokio::test]
    async fn a_location_update_of_a_number_never_activated_holds_it_inactive() {
        let operator = operator(Duration::ZERO, None);
        let update = Provisioning {
            emergency_address: Some(numbers_provider::EmergencyAddress {
                location_id: "loc".into(),
                country: "US".into(),
                formatted: "1 Main St".into(),
            }),
            ..change("k")
        };
        assert_eq!(
            operator.update_location(&update).await.unwrap(),
            Progress::Done
        );
        // A limit of 0 still answers a page, of one.
        let page = operator.list_numbers("t", None, 0).await.unwrap();
        assert_eq!(
            page.numbers,
            [CarrierNumber {
                phone_number: "+14255550100".into(),
                state: CarrierState::Inactive,
                target_id: None,
                emergency_location_id: Some("loc".into()),
            }]
        );
        assert_eq!(page.next_after, None);
    }

    #[test]
    fn a_corrupt_state_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "not json").unwrap();
        let settings = OperatorSettings {
            id: "sim".into(),
            display_name: "Sim".into(),
            countries: vec![],
            tenant_location_update_allowed: false,
        };
        assert!(SimulatedOperator::open(settings, Duration::ZERO, Some(path)).is_err());
    }
}
