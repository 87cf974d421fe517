//! Delivering the emails that `notify_user` queues: over SMTP when a server is configured, to
//! the log otherwise.
//!
//! Emails are queued in the transaction of the change they tell about, so an email is sent for
//! every change that happened and for no change that did not. The mail worker claims due emails
//! with leases (as the provisioning worker claims jobs), sends them, and retries transient
//! failures with backoff; a permanent refusal (a 5xx reply, an address that cannot be parsed)
//! ends the email's attempts.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use serde::Deserialize;

use super::provisioning::WorkerSettings;
use super::{Actor, Claimed, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{AuditAction, Notification, NotificationSettings, backoff};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, Delivered, Delivery, Queue};

/// How long the mail worker, once woken, waits for more emails to send in the same batch.
const EMAIL_GATHERING: Duration = Duration::from_millis(100);

/// How to reach the SMTP server. Its `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The server's host name or address.
    pub host: String,
    /// The server's port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The sender, such as `Contoso Phone System <phone@contoso.com>`.
    pub from: String,
    /// The user to log in as, if the server needs it.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (prefer NUMBERS_SMTP_PASSWORD in the environment).
    #[serde(default)]
    pub password: Option<String>,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn default_port() -> u16 {
    587
}

/// Transport security of the SMTP connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network).
    None,
    /// Upgrade with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where emails go.
#[derive(Clone, Debug)]
pub enum Mailer {
    /// Written to the log: no SMTP server is configured.
    Log,
    /// Sent to an SMTP server.
    Smtp {
        /// The connection pool to the server.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender.
        from: Mailbox,
    },
}

/// Why an email was not sent.
#[derive(Debug)]
struct SendError {
    message: String,
    permanent: bool,
}

impl Mailer {
    /// The mailer `settings` describe; the log when there are none.
    pub fn new(settings: Option<&SmtpSettings>) -> anyhow::Result<Self> {
        let Some(settings) = settings else {
            return Ok(Mailer::Log);
        };
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from {:?} is not an address: {e}", settings.from))?;
        let builder = match settings.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(30)));
        let password = std::env::var("NUMBERS_SMTP_PASSWORD")
            .ok()
            .or_else(|| settings.password.clone());
        if let (Some(user), Some(password)) = (&settings.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer::Smtp {
            transport: builder.build(),
            from,
        })
    }

    async fn send(&self, notification: &Notification) -> std::result::Result<(), SendError> {
        match self {
            Mailer::Log => {
                // Never the subject or the body: they are the user's mail, not the log's.
                tracing::info!(
                    to = %notification.recipient,
                    number = %notification.phone_number,
                    "email not sent: no SMTP server is configured"
                );
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = notification.recipient.parse().map_err(|e| SendError {
                    message: format!("{:?} is not an email address: {e}", notification.recipient),
                    permanent: true,
                })?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(notification.subject.clone())
                    .body(notification.body.clone())
                    .map_err(|e| SendError {
                        message: e.to_string(),
                        permanent: true,
                    })?;
                transport.send(message).await.map_err(|e| SendError {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                })?;
                tracing::info!(to = %notification.recipient, number = %notification.phone_number, "email sent");
                Ok(())
            }
        }
    }
}

impl Service {
    /// Runs the mail worker as `owner` until `shutdown` completes.
    pub async fn run_notifications(
        &self,
        owner: &str,
        mailer: &Mailer,
        settings: &WorkerSettings,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let handled = match self.deliver_due(owner, mailer, settings).await {
                Ok(handled) => handled,
                Err(error) => {
                    tracing::warn!(%error, "mail worker could not claim emails");
                    0
                }
            };
            if handled > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.store.work_written(Queue::Emails) => {
                    // Emails are not urgent: gather the ones written meanwhile and send them
                    // as a batch, rather than a claim and a record per change.
                    tokio::time::sleep(EMAIL_GATHERING).await;
                }
                () = tokio::time::sleep(settings.idle_poll) => {}
            }
        }
        tracing::info!(%owner, "mail worker stopped");
    }

    /// Claims the due emails (up to a batch) and sends them; answers how many were handled.
    /// An email to an address outside its tenant's verified domains is skipped, and one over
    /// its tenant's sending rate waits its turn.
    pub async fn deliver_due(
        &self,
        owner: &str,
        mailer: &Mailer,
        settings: &WorkerSettings,
    ) -> Result<usize> {
        let deliveries = {
            let mut tx = self.store.write().await?;
            let claimed = tx
                .claim_notifications(owner, self.now(), settings.lease, settings.batch)
                .await?;
            tx.commit().await?;
            claimed
        };
        let mut tenants: HashMap<&str, NotificationSettings> = HashMap::new();
        if !deliveries.is_empty() {
            let mut read = self.read().await?;
            for delivery in &deliveries {
                if !tenants.contains_key(delivery.tenant_id.as_str()) {
                    let declared = read.notification_settings(&delivery.tenant_id).await?;
                    tenants.insert(&delivery.tenant_id, declared);
                }
            }
        }
        let mut attempts = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            let email = &delivery.notification;
            let attempt = if let Some(reason) =
                tenants[delivery.tenant_id.as_str()].refusal(&email.recipient)
            {
                tracing::info!(to = %email.recipient, number = %email.phone_number, %reason, "email skipped");
                crate::metrics::notification("skipped");
                Attempt::Skipped(reason)
            } else if let Err(wait) = self.email_rate.check(&delivery.tenant_id) {
                Attempt::Postponed(self.now() + wait)
            } else {
                Attempt::Tried(mailer.send(email).await)
            };
            attempts.push(attempt);
        }
        // The batch's outcomes are recorded together. An email sent just before a crash is sent
        // again once its lease ends: delivery is at least once.
        let mut tx = self.store.write().await?;
        for (delivery, attempt) in deliveries.iter().zip(&attempts) {
            let delivered = match attempt {
                Attempt::Skipped(reason) => Delivered::Skipped(reason),
                Attempt::Postponed(at) => Delivered::Postponed(*at),
                Attempt::Tried(result) => self.outcome(settings, delivery, result),
            };
            tx.finish_delivery(delivery, owner, &delivered).await?;
        }
        tx.commit().await?;
        Ok(deliveries.len())
    }

    /// How a delivery attempt went, as recorded: sent, or failed with the time of the next
    /// attempt (for good when the failure is permanent or attempts are used up).
    fn outcome<'a>(
        &self,
        settings: &WorkerSettings,
        delivery: &Delivery,
        result: &'a std::result::Result<(), SendError>,
    ) -> Delivered<'a> {
        let Err(error) = result else {
            crate::metrics::notification("sent");
            return Delivered::Sent;
        };
        crate::metrics::notification("failed");
        let attempts = delivery.attempts + 1;
        let retry_at = (!error.permanent && attempts < settings.max_failures).then(|| {
            self.now()
                + backoff(
                    attempts,
                    settings.backoff_base,
                    settings.backoff_max,
                    rand::random(),
                )
        });
        tracing::warn!(to = %delivery.notification.recipient, error = %error.message, attempts, retry = retry_at.is_some(), "email not sent");
        match retry_at {
            Some(at) => Delivered::Retry(&error.message, at),
            None => Delivered::Failed(&error.message),
        }
    }

    /// The tenant's notification settings.
    pub async fn notification_settings(&self, caller: &Caller) -> Result<NotificationSettings> {
        let mut tx = self.read().await?;
        Ok(tx.notification_settings(&caller.tenant_id).await?)
    }

    /// Replaces the tenant's verified email domains.
    pub async fn update_notification_settings(
        &self,
        caller: &Caller,
        domains: &[String],
        options: &RequestOptions,
    ) -> Result<NotificationSettings> {
        let actor = Actor::tenant(caller);
        let declared = NotificationSettings::declare(domains, self.now()).map_err(|(i, why)| {
            Error::invalid_field(
                Reason::InvalidArgument,
                format!("verified_email_domains[{i}]"),
                why,
            )
        })?;
        let mut tx = match self
            .begin(&actor, "UpdateNotificationSettings", options)
            .await?
        {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let before = tx.notification_settings(&actor.tenant_id).await?;
        tx.put_notification_settings(&actor.tenant_id, &declared)
            .await?;
        let snapshot =
            |s: &NotificationSettings| json!({"verified_email_domains": s.verified_email_domains});
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::UpdateNotificationSettings,
                None,
                None,
                before.update_time.map(|_| snapshot(&before)),
                Some(snapshot(&declared)),
            )],
            ..Changes::default()
        };
        self.finish(tx, &actor, options, changes, declared).await
    }
}

/// What became of one claimed email.
enum Attempt {
    /// Not to be sent (the reason).
    Skipped(String),
    /// Over the tenant's rate: to be tried at this time.
    Postponed(SystemTime),
    /// Sent, or not.
    Tried(std::result::Result<(), SendError>),
}

/// Tenants tracked before the buckets of those that sent nothing lately are dropped.
const TRACKED_TENANTS: usize = 10_000;

/// Limits how many emails each tenant's users are sent an hour; an hour's worth may go at once.
/// Each replica counts its own sending.
#[derive(Clone, Debug)]
pub(super) struct EmailRate(Option<Arc<DefaultKeyedRateLimiter<String>>>);

impl EmailRate {
    /// `per_hour` emails an hour for each tenant; 0 for no limit.
    pub(super) fn per_hour(per_hour: u32) -> Self {
        Self(
            NonZeroU32::new(per_hour)
                .map(|rate| Arc::new(RateLimiter::keyed(Quota::per_hour(rate)))),
        )
    }

    /// Counts an email of `tenant`; when over the rate, how long until the next may go.
    fn check(&self, tenant: &str) -> std::result::Result<(), Duration> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        if limiter.len() > TRACKED_TENANTS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&tenant.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_password_stays_out_of_debug() {
        let settings = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::default(),
            from: "phone@example.com".into(),
            username: Some("mailer".into()),
            password: Some("hunter2".into()),
        };
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("mailer") && debug.contains("<redacted>"),
            "{debug}"
        );
    }
}
