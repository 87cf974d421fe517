//! Tags on numbers (Set-CsPhoneNumberTag): added to and removed from many numbers at once, all
//! or none, and listed with how many numbers have each.

use std::collections::{BTreeSet, HashMap};

use super::inventory::number_not_found;
use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{
    AuditAction, E164, MAX_TAGS_PER_NUMBER, PhoneNumber, Tag, TagCount, number_snapshot,
};
use crate::error::{Error, Reason, Result};
use crate::store::{Changes, TagChange};

/// Whether a tag call adds its tags or removes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagEdit {
    /// AddPhoneNumberTags.
    Add,
    /// RemovePhoneNumberTags.
    Remove,
}

impl Service {
    /// Adds `tags` to `numbers`, or removes them, all or none; answers the numbers in number
    /// order.
    pub async fn edit_tags(
        &self,
        caller: &Caller,
        edit: TagEdit,
        numbers: &[E164],
        tags: &[Tag],
        options: &RequestOptions,
    ) -> Result<Vec<PhoneNumber>> {
        let method = match edit {
            TagEdit::Add => "AddPhoneNumberTags",
            TagEdit::Remove => "RemovePhoneNumberTags",
        };
        let actor = Actor::tenant(caller);
        let tenant = actor.tenant_id.as_str();
        let now = self.now();
        let mut tx = match self.begin(&actor, method, options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(first) => return Ok(first),
        };
        let wanted: BTreeSet<String> = numbers.iter().map(E164::canonical).collect();
        let wanted: Vec<String> = wanted.into_iter().collect();
        let locked = tx.lock_numbers(tenant, &wanted).await?;
        if let Some(missing) = numbers
            .iter()
            .find(|n| !locked.iter().any(|l| l.number == **n))
        {
            return Err(number_not_found(missing));
        }
        // A tag the tenant has keeps the spelling it was first written with.
        let keys: Vec<String> = tags.iter().map(|t| t.key.clone()).collect();
        let known = tx.tag_names(tenant, &keys).await?;
        let tags: Vec<Tag> = tags
            .iter()
            .map(|t| match known.get(&t.key) {
                Some(name) => Tag::named(name),
                None => t.clone(),
            })
            .collect();

        let mut changes = Changes::default();
        let mut written = Vec::new();
        let mut answer = Vec::with_capacity(locked.len());
        for number in locked {
            let mut held: HashMap<String, String> = number
                .tags
                .iter()
                .map(|name| (name.to_lowercase(), name.clone()))
                .collect();
            let (added, removed): (Vec<Tag>, Vec<String>) = match edit {
                TagEdit::Add => (
                    tags.iter()
                        .filter(|t| held.insert(t.key.clone(), t.name.clone()).is_none())
                        .cloned()
                        .collect(),
                    Vec::new(),
                ),
                TagEdit::Remove => (
                    Vec::new(),
                    tags.iter()
                        .filter(|t| held.remove(&t.key).is_some())
                        .map(|t| t.key.clone())
                        .collect(),
                ),
            };
            if held.len() > MAX_TAGS_PER_NUMBER {
                return Err(Error::new(
                    Reason::TooManyTags,
                    format!(
                        "{} would have {} tags; a number has at most {MAX_TAGS_PER_NUMBER}. \
                         Nothing was changed",
                        number.number,
                        held.len()
                    ),
                )
                .with("phoneNumber", &number.number)
                .with("tags", held.len()));
            }
            if added.is_empty() && removed.is_empty() {
                answer.push(number);
                continue;
            }
            let mut listed: Vec<(String, String)> = held.into_iter().collect();
            listed.sort();
            let updated = PhoneNumber {
                tags: listed.into_iter().map(|(_, name)| name).collect(),
                ..number.clone()
            }
            .changed(now);
            changes.audit.push(self.audit(
                &actor,
                options,
                AuditAction::UpdatePhoneNumberTags,
                Some(updated.number.canonical()),
                updated.assignment.as_ref().map(|a| a.target_id.clone()),
                Some(number_snapshot(&number)),
                Some(number_snapshot(&updated)),
            ));
            written.push(TagChange {
                phone_number: updated.number.canonical(),
                tags: updated.tags.clone(),
                added,
                removed,
            });
            changes.numbers.push(updated.clone());
            answer.push(updated);
        }
        if !written.is_empty() && !options.validate_only {
            tx.write_tags(tenant, &written, now).await?;
        }
        tracing::info!(%tenant, numbers = answer.len(), changed = written.len(), ?edit, "tags edited");
        self.finish(tx, &actor, options, changes, answer).await
    }

    /// Lists the tenant's tags in use, with how many numbers have each.
    pub async fn list_tags(&self, caller: &Caller, page: &PageRequest) -> Result<Page<TagCount>> {
        let mut tx = self.read().await?;
        let tags = tx
            .list_tags(&caller.tenant_id, page.after.as_deref(), page.size + 1)
            .await?;
        Ok(Page::from_overfetch(tags, page.size, |t| t.key.clone()))
    }
}
