//! The simulated operator: an Operator Connect carrier that provisions numbers with a delay,
//! as a real one does, and remembers what it was asked.
//!
//! Its rules are the in-process operator adapter's, by delegation, so a remote operator and an
//! in-process one refuse the same things. Its provisioning is its own: each change is accepted
//! with a ticket and completes `activation_delay` later; the same idempotency key (for the same
//! kind of change and number) always finds the same change, so a repeated request never
//! provisions twice. The changes it knows are its state, kept in memory and, when a state file
//! is given, written to it after every change and read back at start.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use numbers_operator_connect::{OperatorConnect, OperatorSettings};
use numbers_provider::{
    ActivationMode, AssignmentCheck, Descriptor, ErrorKind, LocationCheck, Progress, Provider,
    ProviderError, ProviderResult, Provisioning,
};
use serde::{Deserialize, Serialize};

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

/// The carrier's state: every change it accepted, by ticket, as the state file holds it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    changes: BTreeMap<String, Change>,
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

    /// Forgets every change, in memory and in the state file.
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
        state.ledger.insert(change);
        if let Err(error) = self.save(&state.ledger) {
            // A carrier that cannot record a change does not accept it.
            state.ledger.remove(&ticket);
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
