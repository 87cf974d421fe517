//! The emails that tell users about their numbers ("Email user with telephone number
//! information"), written in the same transaction as the change and delivered later, and the
//! tenant's settings that say where they may go.
//!
//! Emails go only to user principal names in the tenant's verified email domains, so an admin
//! cannot make the service mail anyone they type in; and what the admin typed (the display
//! name) reaches the body only as one line of plain text.

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
                plain_text(&user.display_name)
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
                plain_text(&user.display_name)
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
                plain_text(&user.display_name)
            ),
            now,
        )
    }
}

/// `text`, typed by an admin, as it may appear in an email: every control or formatting
/// character (line breaks, tabs, bidirectional overrides, zero-width characters) becomes a
/// space, so the text stays on its line, reads as it is, and cannot add lines of its own.
pub fn plain_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            let invisible = matches!(c,
                '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}');
            if c.is_control() || invisible { ' ' } else { c }
        })
        .collect()
}

/// The most verified email domains a tenant may declare.
pub const MAX_EMAIL_DOMAINS: usize = 50;

/// Where a tenant's emails may go.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotificationSettings {
    /// The tenant's verified email domains, lower-case, sorted, without duplicates. Empty: no
    /// email is sent.
    pub verified_email_domains: Vec<String>,
    /// When they were last set; `None` if never.
    pub update_time: Option<SystemTime>,
}

impl NotificationSettings {
    /// The settings declaring `domains`, each checked and lower-cased; the error names the
    /// index of the first that is not a domain name, and why.
    pub fn declare(domains: &[String], now: SystemTime) -> Result<Self, (usize, String)> {
        if domains.len() > MAX_EMAIL_DOMAINS {
            return Err((
                MAX_EMAIL_DOMAINS,
                format!("at most {MAX_EMAIL_DOMAINS} domains may be declared"),
            ));
        }
        let mut verified = domains
            .iter()
            .enumerate()
            .map(|(i, domain)| email_domain(domain).map_err(|why| (i, why)))
            .collect::<Result<Vec<_>, _>>()?;
        verified.sort();
        verified.dedup();
        Ok(Self {
            verified_email_domains: verified,
            update_time: Some(now),
        })
    }

    /// Why an email to `recipient` may not be sent, if it may not: its domain is not one of
    /// the verified ones (compared whole: a subdomain must be declared itself).
    pub fn refusal(&self, recipient: &str) -> Option<String> {
        let domain = recipient
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_ascii_lowercase());
        match domain {
            Some(domain) if self.verified_email_domains.contains(&domain) => None,
            _ if self.verified_email_domains.is_empty() => {
                Some("skipped: the tenant has declared no verified email domains".to_owned())
            }
            _ => Some(
                "skipped: the recipient is not in one of the tenant's verified email domains"
                    .to_owned(),
            ),
        }
    }
}

/// `domain` lower-cased, if it is a domain name: two or more labels of letters, digits and
/// inner hyphens, 1 to 63 characters each, 253 in all, the last not all digits.
fn email_domain(domain: &str) -> Result<String, String> {
    let domain = domain.trim().to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.is_empty() {
        return Err("is empty".into());
    }
    if domain.len() > 253
        || labels.len() < 2
        || !labels.iter().all(label_ok)
        || labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{domain:?} is not a domain name such as contoso.com (letters, digits and hyphens, \
             labels joined by dots)"
        ));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_stays_on_its_line() {
        assert_eq!(
            plain_text("John\r\n\r\nReset your password at evil.example"),
            "John    Reset your password at evil.example"
        );
        assert_eq!(plain_text("Jo\u{202E}nhoJ\u{200B}"), "Jo nhoJ ");
        assert_eq!(plain_text("Zoë Åström-Ng"), "Zoë Åström-Ng");
    }

    #[test]
    fn domains_are_checked_lower_cased_and_compared_whole() {
        let now = SystemTime::UNIX_EPOCH;
        let settings = NotificationSettings::declare(
            &[
                " Contoso.COM".into(),
                "contoso.com".into(),
                "mail.fabrikam.co.uk".into(),
            ],
            now,
        )
        .unwrap();
        assert_eq!(
            settings.verified_email_domains,
            ["contoso.com", "mail.fabrikam.co.uk"]
        );
        assert_eq!(settings.refusal("John@CONTOSO.com"), None);
        assert!(settings.refusal("john@sales.contoso.com").is_some());
        assert!(settings.refusal("john@contoso.com.evil.example").is_some());
        assert!(settings.refusal("no-at-sign").is_some());
        assert!(
            NotificationSettings::default()
                .refusal("john@contoso.com")
                .is_some()
        );
        for bad in [
            "",
            "contoso",
            "-contoso.com",
            "contoso..com",
            "john@contoso.com",
            "1.2.3.4",
        ] {
            let error = NotificationSettings::declare(&["ok.com".into(), bad.into()], now);
            assert_eq!(error.unwrap_err().0, 1, "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_EMAIL_DOMAINS)
            .map(|i| format!("d{i}.com"))
            .collect();
        assert!(NotificationSettings::declare(&many, now).is_err());
    }
}
