//! The emails that tell users about their numbers ("Email user with telephone number
//! information"), written in the same transaction as the change and delivered later.

use std::time::SystemTime;

use numbers_provider::TargetKind;

use super::{E164, User};

/// An email to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Time-ordered id.
    pub id: String,
    /// The address to write to: the user's user principal name.
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// The number the email is about.
    pub phone_number: String,
    /// When the change was made.
    pub create_time: SystemTime,
}

impl Notification {
    fn to(
        user: &User,
        number: &E164,
        subject: String,
        body: String,
        now: SystemTime,
    ) -> Option<Self> {
        // Resource accounts have no mailbox to write to.
        (user.kind == TargetKind::User).then(|| Self {
            id: uuid::Uuid::now_v7().to_string(),
            recipient: user.user_principal_name.clone(),
            subject,
            body,
            phone_number: number.canonical(),
            create_time: now,
        })
    }

    /// Tells `user` about the number just assigned.
    pub fn assigned(user: &User, number: &E164, now: SystemTime) -> Option<Self> {
        Self::to(
            user,
            number,
            format!("Your phone number is {number}"),
            format!(
                "Hello {},\n\nThe phone number {number} has been assigned to you. People can \
                 now call you on it, and it is shown when you call.\n",
                user.display_name
            ),
            now,
        )
    }

    /// Tells `user` their number changed from `previous` to `number`.
    pub fn changed(user: &User, previous: &E164, number: &E164, now: SystemTime) -> Option<Self> {
        Self::to(
            user,
            number,
            format!("Your phone number changed to {number}"),
            format!(
                "Hello {},\n\nYour phone number has changed from {previous} to {number}. \
                 {previous} no longer reaches you.\n",
                user.display_name
            ),
            now,
        )
    }

    /// Tells `user` the number was removed.
    pub fn removed(user: &User, number: &E164, now: SystemTime) -> Option<Self> {
        Self::to(
            user,
            number,
            format!("The phone number {number} was removed"),
            format!(
                "Hello {},\n\nThe phone number {number} is no longer assigned to you.\n",
                user.display_name
            ),
            now,
        )
    }
}
