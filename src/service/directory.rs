//! The directory: users fed from the organisation's directory.

use super::{Actor, Claimed, Page, PageRequest, RequestOptions, Service};
use crate::auth::Caller;
use crate::domain::{AuditAction, Identity, User, UserFilter, UserUpsert, user_snapshot};
use crate::error::{Error, Reason, Result};
use crate::store::Changes;

impl Service {
    /// Creates or updates a user.
    pub async fn upsert_user(
        &self,
        caller: &Caller,
        user: UserUpsert,
        options: &RequestOptions,
    ) -> Result<User> {
        let actor = Actor::tenant(caller);
        let mut tx = match self.begin(&actor, "UpsertUser", options).await? {
            Claimed::Proceed(tx) => tx,
            Claimed::Replay(user) => return Ok(user),
        };
        let key = match &user.id {
            Some(id) => Identity::Id(id.clone()),
            None => Identity::UserPrincipalName(user.user_principal_name.clone()),
        };
        let before = tx.find_user(&caller.tenant_id, &key).await?;
        let new_id = uuid::Uuid::now_v7().to_string();
        let saved = tx
            .upsert_user(&caller.tenant_id, &user, &new_id, self.now())
            .await
            .map_err(|e| {
                if e.is_constraint("users_upn_unique") {
                    Error::new(
                        Reason::UserPrincipalNameTaken,
                        format!(
                            "user principal name {} belongs to another user",
                            user.user_principal_name
                        ),
                    )
                    .with("userPrincipalName", &user.user_principal_name)
                } else {
                    e.into()
                }
            })?;
        let changes = Changes {
            audit: vec![self.audit(
                &actor,
                options,
                AuditAction::UpsertUser,
                None,
                Some(saved.id.clone()),
                before.as_ref().map(user_snapshot),
                Some(user_snapshot(&saved)),
            )],
            ..Changes::default()
        };
        tracing::info!(tenant = %caller.tenant_id, user = %saved.id, upn = %saved.user_principal_name, "user upserted");
        self.finish(tx, &actor, options, changes, saved).await
    }

    /// Finds a user by id, user principal name or SIP address.
    pub async fn get_user(&self, caller: &Caller, identity: &Identity) -> Result<User> {
        let mut tx = self.read().await?;
        tx.find_user(&caller.tenant_id, identity)
            .await?
            .ok_or_else(|| user_not_found(identity))
    }

    /// Lists users, ordered by user principal name.
    pub async fn list_users(
        &self,
        caller: &Caller,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        let mut tx = self.read().await?;
        let users = tx
            .list_users(
                &caller.tenant_id,
                filter,
                page.after.as_deref(),
                page.size + 1,
            )
            .await?;
        Ok(Page::from_overfetch(users, page.size, |user| {
            user.user_principal_name.to_lowercase()
        }))
    }
}

/// The error for an identity that names nobody in the caller's tenant.
pub(crate) fn user_not_found(identity: &Identity) -> Error {
    Error::new(
        Reason::UserNotFound,
        format!("no user {identity} in this tenant"),
    )
    .with("identity", identity)
}
