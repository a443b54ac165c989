//! Developer accounts as provider admins see them.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::flows::MailRequest;
use super::teams::{MemberRole, send_invitation};
use super::users::organisation_problem;
use super::{AccountId, Email};
use crate::audit::{self, Actor, Entry};
use crate::name_search::{NameColumn, NameSearch, name_search};
use crate::stored::stored_enum;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

stored_enum! {
    /// A suspended account's applications are refused at every agent.
    pub enum AccountState as "account_state" {
        Active = "active",
        Suspended = "suspended",
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountView {
    pub id: AccountId,
    pub name: String,
    pub state: AccountState,
    pub members: i64,
    pub applications: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Developer accounts whose name contains `q`, newest first, with the total. With `after_id`
/// (the last id of a page; keyset paging) only the accounts after that one: read from the
/// index at any depth, where an offset walks past every skipped row. An id that is not a
/// developer account leaves the page empty.
pub async fn list(
    pool: &PgPool,
    q: Option<&str>,
    after_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AccountView>, i64)> {
    let search = match q {
        Some(q) => Some(name_search(pool, NameColumn::Accounts, q).await?),
        None => None,
    };
    let accounts = load(pool, search.as_ref(), None, after_id, limit, offset).await?;
    // Counted apart from the page and only up to the limit, so a page never touches every row;
    // a count at the limit is reused for a few seconds (`count_up_to_limit`).
    let count = async {
        Ok::<i64, sqlx::Error>(match &search {
        None => {
            sqlx::query_scalar!(
                r#"SELECT count(*) AS "total!" FROM (SELECT 1 FROM accounts a WHERE a.kind = 'developer' LIMIT $1) AS matching"#,
                crate::db::COUNT_LIMIT + 1
            )
            .fetch_one(pool)
            .await?
        }
        Some(search) if search.common => {
            // Many names match: the statistics tell the planner so, and it reads the accounts in
            // order until the limit, instead of the trigram index's list of every row. Planned
            // for this pattern each time (not kept), as a cached generic plan would not know.
            sqlx::query_scalar!(
                r#"SELECT count(*) AS "total!" FROM (
                     SELECT 1 FROM accounts a WHERE a.kind = 'developer' AND a.name ILIKE $1 LIMIT $2
                   ) AS matching"#,
                search.pattern,
                crate::db::COUNT_LIMIT + 1
            )
            .persistent(false)
            .fetch_one(pool)
            .await?
        }
        Some(search) => {
            sqlx::query_scalar!(
                r#"SELECT count(*) AS "total!" FROM (
                     SELECT 1 FROM accounts a
                     WHERE a.kind = 'developer' AND a.name ILIKE $1 AND lower(a.name) LIKE lower($3) LIMIT $2
                   ) AS matching"#,
                search.index_pattern,
                crate::db::COUNT_LIMIT + 1,
                search.pattern
            )
            .fetch_one(pool)
            .await?
        }
    })
    };
    let total = crate::db::count_up_to_limit(pool, format!("accounts {q:?}"), count).await?;
    Ok((accounts, total))
}

/// [`list`] without the total, for a page that does not show it (a search's count is a
/// second trigram search).
pub async fn list_page(pool: &PgPool, q: Option<&str>, limit: i64) -> Result<Vec<AccountView>> {
    let search = match q {
        Some(q) => Some(name_search(pool, NameColumn::Accounts, q).await?),
        None => None,
    };
    load(pool, search.as_ref(), None, None, limit, 0).await
}

pub async fn get(pool: &PgPool, id: AccountId) -> Result<AccountView> {
    let mut found = load(pool, None, Some(id), None, 1, 0).await?;
    found.pop().ok_or(Error::NotFound)
}

/// A new account's name and its first owner's address as an admin sent them, checked whole:
/// every refused field at once (`name`, `owner_email`), each bounded as sent too.
pub fn check_new_account(name: &str, owner_email: &str) -> Result<Email> {
    let mut problems = FieldProblems::default();
    if name.chars().count() > 200 {
        problems.add("name", "use at most 200 characters");
    } else if let Some(problem) = organisation_problem(name.trim()) {
        problems.add("name", problem);
    }
    let owner = if owner_email.chars().count() > 254 {
        problems.add("owner_email", "use at most 254 characters");
        None
    } else {
        match Email::parse(owner_email) {
            Ok(email) => Some(email),
            Err(Error::Invalid { message, .. }) => {
                problems.add("owner_email", message);
                None
            }
            Err(other) => return Err(other),
        }
    };
    problems.into_result()?;
    owner.ok_or_else(|| Error::invalid("owner_email", "enter an email address"))
}

/// A provider admin creates a developer account with no members yet and
/// invites its first owner by the teams' invitation mail; the owner joins
/// by accepting it. Nothing is stored when the invitation cannot be sent.
pub async fn create(
    pool: &PgPool,
    request: &MailRequest<'_>,
    name: &str,
    owner: &Email,
    admin: &Actor,
    base_url: &str,
) -> Result<AccountId> {
    let name = name.trim();
    if let Some(problem) = organisation_problem(name) {
        return Err(Error::invalid("name", problem));
    }
    let id = AccountId(Uuid::now_v7());
    let mut tx = pool.begin().await?;
    sqlx::query!("INSERT INTO accounts (id, kind, name) VALUES ($1, 'developer', $2)", id.0, name)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        admin,
        Entry {
            action: "account.create",
            entity: "account",
            entity_id: Some(id.0),
            before: None,
            after: Some(json!({"name": name, "owner": owner.as_str()})),
        },
    )
    .await?;
    send_invitation(&mut tx, pool, request, id, admin, owner, MemberRole::Owner, base_url).await.map_err(
        |e| match e {
            Error::Invalid { field, message } if field == "email" => {
                Error::Invalid { field: "owner_email".into(), message }
            }
            other => other,
        },
    )?;
    tx.commit().await?;
    Ok(id)
}

/// The queries behind `list` and `get`. A search is a statement of its own: behind
/// `$n IS NULL OR name ILIKE $n` a cached generic plan cannot use the trigram index and
/// reads every account (1.4 s a page under 50 clients at 100,000 accounts).
async fn load(
    pool: &PgPool,
    search: Option<&NameSearch>,
    only: Option<AccountId>,
    after_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AccountView>> {
    let rows = match search {
        None => {
            sqlx::query_as!(
                AccountRow,
                r#"SELECT a.id, a.name, a.state AS "state: AccountState", a.created_at,
                          (SELECT count(*) FROM memberships m WHERE m.account_id = a.id) AS "members!",
                          (SELECT count(*) FROM applications ap WHERE ap.account_id = a.id) AS "applications!"
                   FROM (
                     -- The page is cut first, so the counts below run for its rows only.
                     SELECT * FROM accounts a
                     WHERE a.kind = 'developer' AND ($3::uuid IS NULL OR a.id = $3)
                       -- Newest first: later rows are older, or as old with a greater id.
                       AND ($4::uuid IS NULL OR a.created_at <= (SELECT c.created_at FROM accounts c WHERE c.id = $4 AND c.kind = 'developer'))
                       AND ($4::uuid IS NULL OR a.created_at < (SELECT c.created_at FROM accounts c WHERE c.id = $4) OR a.id > $4)
                     ORDER BY a.created_at DESC, a.id LIMIT $1 OFFSET $2
                   ) a
                   ORDER BY a.created_at DESC, a.id"#,
                limit,
                offset,
                only.map(|id| id.0),
                after_id
            )
            .fetch_all(pool)
            .await?
        }
        Some(search) if search.common => {
            // Many names match: the statistics tell the planner so, and it walks the list's index.
            // Planned for this pattern each time (not kept): a cached generic plan, blind to
            // how common the pattern is, read the trigram index's list of every row (60 ms).
            let page = sqlx::query_scalar!(
                r#"SELECT a.id FROM accounts a
                   WHERE a.kind = 'developer' AND a.name ILIKE $4 AND ($3::uuid IS NULL OR a.id = $3)
                     AND ($5::uuid IS NULL OR a.created_at <= (SELECT c.created_at FROM accounts c WHERE c.id = $5 AND c.kind = 'developer'))
                     AND ($5::uuid IS NULL OR a.created_at < (SELECT c.created_at FROM accounts c WHERE c.id = $5) OR a.id > $5)
                   ORDER BY a.created_at DESC, a.id LIMIT $1 OFFSET $2"#,
                limit,
                offset,
                only.map(|id| id.0),
                search.pattern,
                after_id
            )
            .persistent(false)
            .fetch_all(pool)
            .await?;
            sqlx::query_as!(
                AccountRow,
                r#"SELECT a.id, a.name, a.state AS "state: AccountState", a.created_at,
                          (SELECT count(*) FROM memberships m WHERE m.account_id = a.id) AS "members!",
                          (SELECT count(*) FROM applications ap WHERE ap.account_id = a.id) AS "applications!"
                   FROM accounts a WHERE a.id = ANY($1)
                   ORDER BY a.created_at DESC, a.id"#,
                &page
            )
            .fetch_all(pool)
            .await?
        }
        Some(search) => {
            sqlx::query_as!(
                AccountRow,
                r#"SELECT a.id, a.name, a.state AS "state: AccountState", a.created_at,
                          (SELECT count(*) FROM memberships m WHERE m.account_id = a.id) AS "members!",
                          (SELECT count(*) FROM applications ap WHERE ap.account_id = a.id) AS "applications!"
                   FROM (
                     SELECT * FROM accounts a
                     WHERE a.kind = 'developer' AND a.name ILIKE $4 AND lower(a.name) LIKE lower($6) AND ($3::uuid IS NULL OR a.id = $3)
                       AND ($5::uuid IS NULL OR a.created_at <= (SELECT c.created_at FROM accounts c WHERE c.id = $5 AND c.kind = 'developer'))
                       AND ($5::uuid IS NULL OR a.created_at < (SELECT c.created_at FROM accounts c WHERE c.id = $5) OR a.id > $5)
                     ORDER BY a.created_at DESC, a.id LIMIT $1 OFFSET $2
                   ) a
                   ORDER BY a.created_at DESC, a.id"#,
                limit,
                offset,
                only.map(|id| id.0),
                search.index_pattern,
                after_id,
                search.pattern
            )
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| AccountView {
            id: AccountId(r.id),
            name: r.name,
            state: r.state,
            members: r.members,
            applications: r.applications,
            created_at: r.created_at,
        })
        .collect())
}

/// One row of [`load`], either statement.
struct AccountRow {
    id: Uuid,
    name: String,
    state: AccountState,
    created_at: OffsetDateTime,
    members: i64,
    applications: i64,
}

/// Suspends or reactivates an account; its applications' keys stop (or
/// resume) working at every agent.
pub async fn set_state(pool: &PgPool, id: AccountId, state: AccountState, actor: &Actor) -> Result<()> {
    let before = get(pool, id).await?;
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE accounts SET state = $2, updated_at = now() WHERE id = $1", id.0, state as AccountState)
        .execute(&mut *tx)
        .await?;
    let apps =
        sqlx::query_scalar!("SELECT id FROM applications WHERE account_id = $1", id.0).fetch_all(&mut *tx).await?;
    for app in apps {
        record_change(&mut tx, Entity::Application, app, false, None).await?;
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "account.state",
            entity: "account",
            entity_id: Some(id.0),
            before: Some(json!({"state": before.state})),
            after: Some(json!({"state": state})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
