//! Teams: the users of a developer account, their roles and invitations.
//! Owners invite, remove and promote; an account always keeps an owner.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::flows::MailRequest;
use super::throttle::{self, MailAdmission, MailRequestKind};
use super::{AccountId, Email, Password, PasswordHasher, UserId};
use crate::audit::{self, Actor, Entry};
use crate::error::conflict_on_unique;
use crate::mail::{enqueue, messages};
use crate::secrets::{random_token, token_hash};
use crate::stored::stored_enum;
use crate::{Error, Result};

const INVITATION_LIFETIME: Duration = Duration::days(7);

stored_enum! {
    /// What a user may do in an account: owners manage the team.
    pub enum MemberRole as "member_role" {
        Owner = "owner",
        Member = "member",
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: MemberRole,
    pub joined_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct PendingInvitation {
    pub id: Uuid,
    pub email: String,
    pub role: MemberRole,
    pub expires_at: OffsetDateTime,
}

/// The role of a user in an account, if they belong to it; the membership
/// stays locked until the transaction ends.
async fn role_in(conn: &mut sqlx::PgConnection, account: AccountId, user: UserId) -> Result<Option<MemberRole>> {
    let role = sqlx::query_scalar!(
        r#"SELECT role AS "role: MemberRole" FROM memberships WHERE account_id = $1 AND user_id = $2 FOR UPDATE"#,
        account.0,
        user.0
    )
    .fetch_optional(conn)
    .await?;
    Ok(role)
}

/// Locks the account's row before its owners are counted or changed, as account deletion
/// locks it before it checks who else owns it: an owner leaving while another deletes their
/// own user would otherwise both see the other still there, and leave the members no owner.
async fn lock_account(conn: &mut sqlx::PgConnection, account: AccountId) -> Result<()> {
    sqlx::query_scalar!("SELECT id FROM accounts WHERE id = $1 FOR UPDATE", account.0)
        .fetch_optional(conn)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(())
}

async fn require_owner(conn: &mut sqlx::PgConnection, account: AccountId, user: UserId) -> Result<()> {
    match role_in(conn, account, user).await? {
        Some(MemberRole::Owner) => Ok(()),
        _ => Err(Error::Conflict("only an owner of the account can do this".into())),
    }
}

pub async fn members(pool: &PgPool, account: AccountId) -> Result<Vec<Member>> {
    let rows = sqlx::query!(
        r#"SELECT u.id, u.email::text AS "email!", m.role AS "role: MemberRole", m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.account_id = $1 ORDER BY m.created_at"#,
        account.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Member { user_id: UserId(r.id), email: r.email, role: r.role, joined_at: r.created_at })
        .collect())
}

pub async fn pending_invitations(pool: &PgPool, account: AccountId) -> Result<Vec<PendingInvitation>> {
    let rows = sqlx::query!(
        r#"SELECT id, email::text AS "email!", role AS "role: MemberRole", expires_at FROM invitations
           WHERE account_id = $1 AND accepted_at IS NULL AND expires_at > now() ORDER BY created_at"#,
        account.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PendingInvitation { id: r.id, email: r.email, role: r.role, expires_at: r.expires_at })
        .collect())
}

/// Withdraws a pending invitation of the account; an owner only. Its link then says it was
/// used, withdrawn or has expired. Another account's invitation is not found.
pub async fn withdraw(
    pool: &PgPool,
    account: AccountId,
    actor: UserId,
    actor_email: &str,
    invitation: Uuid,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    require_owner(&mut tx, account, actor).await?;
    let withdrawn = sqlx::query!(
        r#"DELETE FROM invitations WHERE id = $1 AND account_id = $2 AND accepted_at IS NULL
           RETURNING email::text AS "email!", role AS "role: MemberRole""#,
        invitation,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        &Actor::user(actor, actor_email),
        Entry {
            action: "team.invitation_withdrawn",
            entity: "account",
            entity_id: Some(account.0),
            before: Some(json!({"email": withdrawn.email, "role": withdrawn.role})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Invites someone by email; an owner only. The mail throttles apply as
/// to the anonymous flows (the client's budget, the address's cooldown),
/// but the owner is told when the address is cooling down.
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    pool: &PgPool,
    request: &MailRequest<'_>,
    account: AccountId,
    inviter: UserId,
    inviter_email: &str,
    email: &Email,
    role: MemberRole,
    base_url: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    require_owner(&mut tx, account, inviter).await?;
    let actor = Actor::user(inviter, inviter_email);
    send_invitation(&mut tx, pool, request, account, &actor, email, role, base_url).await?;
    tx.commit().await?;
    Ok(())
}

/// A provider admin invites someone to a developer account (no owner
/// needed: the account may have none yet). Same mail and throttles as an
/// owner's invitation.
#[allow(clippy::too_many_arguments)]
pub async fn invite_as_admin(
    pool: &PgPool,
    request: &MailRequest<'_>,
    account: AccountId,
    admin: &Actor,
    email: &Email,
    role: MemberRole,
    base_url: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT id FROM accounts WHERE id = $1 AND kind = 'developer' FOR UPDATE", account.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    send_invitation(&mut tx, pool, request, account, admin, email, role, base_url).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores an invitation and queues its mail in the caller's transaction;
/// `inviter` is named in the mail and the audit trail.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_invitation(
    tx: &mut sqlx::PgConnection,
    pool: &PgPool,
    request: &MailRequest<'_>,
    account: AccountId,
    inviter: &Actor,
    email: &Email,
    role: MemberRole,
    base_url: &str,
) -> Result<()> {
    let already = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.account_id = $1 AND u.email = $2::citext) AS "exists!""#,
        account.0,
        email.as_str() as _
    )
    .fetch_one(&mut *tx)
    .await?;
    if already {
        return Err(Error::invalid("email", "this person is already a member"));
    }
    if throttle::admit_mail(pool, request.limits, MailRequestKind::Invitation, request.client, email).await?
        == MailAdmission::Quiet
    {
        // 429 with Retry-After to an API client; the portal's form says it beside the address.
        return Err(Error::RateLimited { retry_after: request.limits.address_cooldown });
    }
    // A new invitation replaces any still open for the address: one live link each, with
    // the role last chosen, and none left over to rejoin with after leaving or removal.
    withdraw_invitations(&mut *tx, account, email.as_str()).await?;
    let raw = random_token();
    sqlx::query!(
        "INSERT INTO invitations (id, account_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        account.0,
        email.as_str() as _,
        role as MemberRole,
        token_hash(&raw),
        inviter.user_id.map(|u| u.0),
        OffsetDateTime::now_utc() + INVITATION_LIFETIME
    )
    .execute(&mut *tx)
    .await?;
    let link = format!("{base_url}/invitations/accept?token={raw}");
    enqueue(&mut *tx, &messages::invitation(email.as_str(), &inviter.label, role.as_str(), &link)).await?;
    audit::record(
        &mut *tx,
        inviter,
        Entry {
            action: "team.invite",
            entity: "account",
            entity_id: Some(account.0),
            before: None,
            after: Some(json!({"email": email.as_str(), "role": role})),
        },
    )
    .await?;
    Ok(())
}

/// A live invitation, for the accept page.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub organisation: String,
    pub email: String,
    pub role: MemberRole,
    /// Whether a user with this email exists (they sign in) or not (they choose a password).
    pub user_exists: bool,
}

pub async fn invitation(pool: &PgPool, token: &str) -> Result<Option<InvitationView>> {
    let row = sqlx::query!(
        r#"SELECT a.name, i.email::text AS "email!", i.role AS "role: MemberRole",
                  EXISTS (SELECT 1 FROM users u WHERE u.email = i.email) AS "user_exists!"
           FROM invitations i JOIN accounts a ON a.id = i.account_id
           WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > now()"#,
        token_hash(token)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| InvitationView { organisation: r.name, email: r.email, role: r.role, user_exists: r.user_exists }))
}

/// Accepts an invitation. A signed-in user must be the one invited; a new
/// person sets a password and becomes a verified user of the account (the
/// link proved the mailbox). Returns the user who joined.
pub async fn accept(
    pool: &PgPool,
    hasher: &PasswordHasher,
    token: &str,
    signed_in: Option<(UserId, &str)>,
    new_password: Option<&Password>,
) -> Result<UserId> {
    let hash = match (signed_in, new_password) {
        (None, Some(password)) => Some(hasher.hash(password).await?),
        _ => None,
    };
    let mut tx = pool.begin().await?;
    let invitation = sqlx::query!(
        r#"SELECT id, account_id, email::text AS "email!", role AS "role: MemberRole" FROM invitations
           WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now() FOR UPDATE"#,
        token_hash(token)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::Conflict("this invitation was used, withdrawn or has expired; ask for a new one".into()))?;
    let user = match (signed_in, hash) {
        (Some((user, _)), _) => {
            // Compared as the database compares addresses (citext), not by ASCII case alone.
            let invitee = sqlx::query!(
                r#"SELECT is_admin FROM users WHERE id = $1 AND email = $2::citext"#,
                user.0,
                invitation.email.as_str() as _
            )
            .fetch_optional(&mut *tx)
            .await?;
            match invitee {
                None => {
                    return Err(Error::Conflict(format!(
                        "this invitation is for {}; sign in as that user to accept it",
                        invitation.email
                    )));
                }
                // Provider admins belong to the provider, not to developer organisations.
                Some(invitee) if invitee.is_admin => {
                    return Err(Error::Conflict(
                        "a provider admin cannot join a developer organisation; invite another address".into(),
                    ));
                }
                Some(_) => user,
            }
        }
        (None, Some(hash)) => {
            let id = Uuid::now_v7();
            sqlx::query!(
                "INSERT INTO users (id, email, password_hash, email_verified_at) VALUES ($1, $2, $3, now())",
                id,
                invitation.email.as_str() as _,
                hash
            )
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, "an account with this email exists; sign in to accept"))?;
            UserId(id)
        }
        (None, None) => return Err(Error::invalid("password", "choose a password")),
    };
    sqlx::query!(
        "INSERT INTO memberships (account_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        invitation.account_id,
        user.0,
        invitation.role as MemberRole
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE invitations SET accepted_at = now() WHERE id = $1", invitation.id).execute(&mut *tx).await?;
    withdraw_invitations(&mut tx, AccountId(invitation.account_id), &invitation.email).await?;
    // Whoever accepts came to work with this team: it becomes the organisation they act for.
    sqlx::query!(
        "UPDATE users SET current_account_id = $2, updated_at = now() WHERE id = $1",
        user.0,
        invitation.account_id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &Actor::user(user, &invitation.email),
        Entry {
            action: "team.join",
            entity: "account",
            entity_id: Some(invitation.account_id),
            before: None,
            after: Some(json!({"role": invitation.role})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Withdraws the invitations to `email` still open in `account`.
async fn withdraw_invitations(conn: &mut sqlx::PgConnection, account: AccountId, email: &str) -> Result<()> {
    sqlx::query!(
        "DELETE FROM invitations WHERE account_id = $1 AND email = $2::citext AND accepted_at IS NULL",
        account.0,
        email as _
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Counts the owners, locking them, so two owners cannot both leave at once.
async fn owner_count(conn: &mut sqlx::PgConnection, account: AccountId) -> Result<i64> {
    let owners = sqlx::query_scalar!(
        "SELECT user_id FROM memberships WHERE account_id = $1 AND role = 'owner' FOR UPDATE",
        account.0
    )
    .fetch_all(conn)
    .await?;
    Ok(owners.len() as i64)
}

/// The most organisations one user may own: enough for an agency's clients, not a flood.
pub const MAX_OWNED_ORGANISATIONS: i64 = 20;

/// A new developer organisation with `user` as its owner, where they work from now on: for
/// someone who left or was removed from every organisation, or who works for several.
pub async fn create_organisation(pool: &PgPool, user: UserId, email: &str, name: &str) -> Result<AccountId> {
    let name = name.trim();
    if let Some(problem) = super::users::organisation_problem(name) {
        return Err(Error::invalid("name", problem));
    }
    let mut tx = pool.begin().await?;
    // Serialises one user's creations, so two at once cannot both pass the count.
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user.0).fetch_one(&mut *tx).await?;
    let owned = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM memberships WHERE user_id = $1 AND role = 'owner'"#,
        user.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if owned >= MAX_OWNED_ORGANISATIONS {
        return Err(Error::invalid(
            "name",
            format!("you own {owned} organisations, the most one person may; hand one to someone else first"),
        ));
    }
    let id = Uuid::now_v7();
    sqlx::query!("INSERT INTO accounts (id, kind, name) VALUES ($1, 'developer', $2)", id, name)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("INSERT INTO memberships (account_id, user_id, role) VALUES ($1, $2, 'owner')", id, user.0)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE users SET current_account_id = $2, updated_at = now() WHERE id = $1", user.0, id)
        .execute(&mut *tx)
        .await?;
    let after = json!({"name": name, "owner": email});
    audit::record(
        &mut tx,
        &Actor::user(user, email),
        Entry {
            action: "account.create",
            entity: "account",
            entity_id: Some(id),
            before: None,
            after: Some(after.clone()),
        },
    )
    .await?;
    let data = crate::webhooks::queue::data("account", Some(id), email, None, Some(&after));
    crate::webhooks::queue::enqueue(&mut tx, crate::webhooks::EventType::AccountCreated, data).await?;
    tx.commit().await?;
    Ok(AccountId(id))
}

/// Removes a member. Owners remove anyone; anyone may remove themselves
/// (leave). The last owner can do neither to themselves.
pub async fn remove(pool: &PgPool, account: AccountId, actor: UserId, actor_email: &str, member: UserId) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_account(&mut tx, account).await?;
    // Existence first: someone else's user id is "not found" for everyone.
    let role = role_in(&mut tx, account, member).await?.ok_or(Error::NotFound)?;
    if actor != member {
        require_owner(&mut tx, account, actor).await?;
    }
    if role == MemberRole::Owner && owner_count(&mut tx, account).await? <= 1 {
        return Err(Error::Conflict("the last owner cannot leave; make someone else an owner first".into()));
    }
    sqlx::query!("DELETE FROM memberships WHERE account_id = $1 AND user_id = $2", account.0, member.0)
        .execute(&mut *tx)
        .await?;
    // An open invitation to the same address would let the member straight back in.
    let address = sqlx::query_scalar!(r#"SELECT email::text AS "email!" FROM users WHERE id = $1"#, member.0)
        .fetch_one(&mut *tx)
        .await?;
    withdraw_invitations(&mut tx, account, &address).await?;
    audit::record(
        &mut tx,
        &Actor::user(actor, actor_email),
        Entry {
            action: "team.remove",
            entity: "account",
            entity_id: Some(account.0),
            before: Some(json!({"user_id": member.0, "role": role})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Hands ownership to a member: they become owner and the actor a member.
pub async fn transfer_ownership(
    pool: &PgPool,
    account: AccountId,
    actor: UserId,
    actor_email: &str,
    member: UserId,
) -> Result<()> {
    if actor == member {
        return Err(Error::invalid("member", "choose another member"));
    }
    let mut tx = pool.begin().await?;
    lock_account(&mut tx, account).await?;
    // Existence first: someone else's user id is "not found" for everyone.
    if role_in(&mut tx, account, member).await?.is_none() {
        return Err(Error::NotFound);
    }
    require_owner(&mut tx, account, actor).await?;
    sqlx::query!("UPDATE memberships SET role = 'owner' WHERE account_id = $1 AND user_id = $2", account.0, member.0)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE memberships SET role = 'member' WHERE account_id = $1 AND user_id = $2", account.0, actor.0)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &Actor::user(actor, actor_email),
        Entry {
            action: "team.transfer",
            entity: "account",
            entity_id: Some(account.0),
            before: Some(json!({"owner": actor.0})),
            after: Some(json!({"owner": member.0})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
