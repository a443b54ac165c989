//! A developer deleting their own account (their user): the sign-in,
//! sessions, links, invitations to the address and team places go; the
//! organisations and their invoices stay.
//!
//! The current password is asked for, as for a change of address. An
//! organisation is never left without an owner while others depend on it:
//! the last owner of an organisation with other members, or with pending
//! invitations, hands ownership on first (or withdraws them), and the last
//! owner of one with applications deletes them first, so keys stop working
//! because someone chose it. An organisation the user alone belonged to
//! stays, memberless, with its invoices for the provider, whose admins are
//! told when it has any billing history. The audit log keeps who did what,
//! under the address they had.

use serde_json::json;
use sqlx::PgPool;

use super::users::confirm_password;
use super::{ClientAddress, PasswordHasher, UserId};
use crate::audit::{self, Actor, Entry};
use crate::mail::{enqueue, messages};
use crate::{Error, Result};

/// Why a user cannot be deleted yet: something they must do first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// Provider admins run the platform; they are not removed from the portal.
    Administrator,
    /// The user is the last owner of an organisation that has other members.
    LastOwner { organisation: String, members: i64 },
    /// The user is the last owner of an organisation with live invitations: whoever accepts
    /// would join an organisation with no owner.
    Invitations { organisation: String, invitations: i64 },
    /// The user is the last owner of an organisation that still has applications (a rejected
    /// one never had working keys, and does not count).
    Applications { organisation: String, applications: i64 },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::Administrator => {
                f.write_str("you are an administrator of this Tollgate, and an administrator’s account is not deleted from the portal")
            }
            Blocker::LastOwner { organisation, members } => write!(
                f,
                "you are the last owner of {organisation}, which has {} other {}; make one of them an owner on its \
                 Team page first",
                members,
                if *members == 1 { "member" } else { "members" }
            ),
            Blocker::Invitations { organisation, invitations } => write!(
                f,
                "{organisation} has {} pending {}; withdraw {} on its Team page, or wait until {} accepted and make \
                 the new member an owner",
                invitations,
                if *invitations == 1 { "invitation" } else { "invitations" },
                if *invitations == 1 { "it" } else { "them" },
                if *invitations == 1 { "it is" } else { "one is" },
            ),
            Blocker::Applications { organisation, applications } => write!(
                f,
                "{organisation} still has {} {}; delete {} first, so that {} keys stop working because you chose it",
                applications,
                if *applications == 1 { "application" } else { "applications" },
                if *applications == 1 { "it" } else { "them" },
                if *applications == 1 { "its" } else { "their" },
            ),
        }
    }
}

/// What a deletion did, for the page that says so.
#[derive(Debug)]
pub struct Deleted {
    pub email: String,
}

/// What stands in the way of deleting `user`, in the order to deal with it;
/// empty when nothing does.
pub async fn blockers(pool: &PgPool, user: UserId) -> Result<Vec<Blocker>> {
    let mut conn = pool.acquire().await?;
    blockers_on(&mut conn, user).await
}

async fn blockers_on(conn: &mut sqlx::PgConnection, user: UserId) -> Result<Vec<Blocker>> {
    let is_admin = sqlx::query_scalar!("SELECT is_admin FROM users WHERE id = $1", user.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    let mut blockers = Vec::new();
    if is_admin {
        blockers.push(Blocker::Administrator);
    }
    // Organisations the user is the only owner of, with what still depends on them.
    let sole = sqlx::query!(
        r#"SELECT a.name,
                  (SELECT count(*) FROM memberships o WHERE o.account_id = a.id AND o.user_id <> $1) AS "members!",
                  (SELECT count(*) FROM invitations i
                   WHERE i.account_id = a.id AND i.accepted_at IS NULL AND i.expires_at > now()) AS "invitations!",
                  (SELECT count(*) FROM applications p
                   WHERE p.account_id = a.id AND p.state <> 'rejected') AS "applications!"
           FROM memberships m JOIN accounts a ON a.id = m.account_id
           WHERE m.user_id = $1 AND m.role = 'owner'
             AND NOT EXISTS (SELECT 1 FROM memberships o
                             WHERE o.account_id = a.id AND o.role = 'owner' AND o.user_id <> $1)
           ORDER BY a.name, a.id"#,
        user.0
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in sole {
        if row.members > 0 {
            blockers.push(Blocker::LastOwner { organisation: row.name.clone(), members: row.members });
        }
        if row.invitations > 0 {
            blockers.push(Blocker::Invitations { organisation: row.name.clone(), invitations: row.invitations });
        }
        if row.applications > 0 {
            blockers.push(Blocker::Applications { organisation: row.name, applications: row.applications });
        }
    }
    Ok(blockers)
}

/// Deletes `user` once the password is right and nothing blocks it, and
/// mails the address to say so. Blockers come back as a `Conflict` naming
/// each of them.
pub async fn delete(
    pool: &PgPool,
    hasher: &PasswordHasher,
    user: UserId,
    current_password: &str,
    client: &ClientAddress,
    base_url: &str,
) -> Result<Deleted> {
    let email = confirm_password(pool, hasher, user, current_password, client).await?;

    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user.0).fetch_optional(&mut *tx).await?;
    // The user's organisations, locked in one order: an application registered, an
    // invitation accepted or a member added elsewhere waits until this is decided.
    let organisations = sqlx::query!(
        r#"SELECT a.id, a.name,
                  NOT EXISTS (SELECT 1 FROM memberships o WHERE o.account_id = a.id AND o.user_id <> $1) AS "alone!",
                  (EXISTS (SELECT 1 FROM invoices v WHERE v.account_id = a.id)
                   OR EXISTS (SELECT 1 FROM subscription_segments s WHERE s.account_id = a.id)) AS "billed!"
           FROM accounts a
           WHERE a.id IN (SELECT account_id FROM memberships WHERE user_id = $1)
           ORDER BY a.id
           FOR UPDATE OF a"#,
        user.0
    )
    .fetch_all(&mut *tx)
    .await?;
    let blockers = blockers_on(&mut tx, user).await?;
    if !blockers.is_empty() {
        let list: Vec<String> = blockers.iter().map(ToString::to_string).collect();
        return Err(Error::Conflict(format!("your account cannot be deleted yet: {}", list.join("; "))));
    }
    // Invitation links mailed to the address end with it.
    sqlx::query!("DELETE FROM invitations WHERE email = $1::citext AND accepted_at IS NULL", email.as_str() as _)
        .execute(&mut *tx)
        .await?;
    // An organisation left with no one in it gets its invoices mailed to no one: its
    // provider is told, when it has anything billed or to bill.
    for organisation in organisations.iter().filter(|o| o.alone && o.billed) {
        let body = format!(
            "The last member of {} deleted their account. Its invoices, and any still to come, now go to no one.",
            organisation.name
        );
        let link = "/admin/accounts";
        for (admin, admin_email) in crate::notifications::admins(&mut tx).await? {
            let mail =
                messages::organisation_left_empty(&admin_email, &organisation.name, &format!("{base_url}{link}"));
            crate::notifications::tell(&mut tx, admin, &mail, "organisation_empty", &body, link).await?;
        }
    }

    audit::record(
        &mut tx,
        &Actor::user(user, &email),
        Entry {
            action: "user.deleted",
            entity: "user",
            entity_id: Some(user.0),
            before: Some(json!({
                "email": email,
                "organisations": organisations.iter().map(|o| json!({"id": o.id, "name": o.name})).collect::<Vec<_>>(),
            })),
            after: None,
        },
    )
    .await?;
    enqueue(&mut tx, &messages::user_deleted(&email, base_url)).await?;
    // Sessions, links, memberships and sign-in links go with the row; the
    // audit log and invitations keep it as a null.
    sqlx::query!("DELETE FROM users WHERE id = $1", user.0).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Deleted { email })
}
