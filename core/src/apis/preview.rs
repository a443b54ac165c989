//! Previews: a provider opens a **draft** API to developers (all of them, or chosen
//! accounts) before its backend exists. A previewed draft shows in their catalog, marked as
//! a preview, and its published plans take subscriptions; the gateway answers its calls from
//! mocks only, since agents never route a draft to an upstream. Publishing ends the preview:
//! the API is then listed for everyone and the same applications and keys keep working.
//!
//! Who may see and subscribe is one SQL function, `api_open_to(api, state, account)`, used
//! by the catalog, the API page, the plan choices and the subscription itself.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::types::{ApiId, ApiState};
use crate::accounts::AccountId;
use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

/// Who sees a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every developer, and visitors of the catalog.
    Everyone,
    /// Members of these accounts only (at least one).
    Accounts(Vec<AccountId>),
}

/// An open preview.
#[derive(Debug, Clone)]
pub struct Preview {
    pub audience: Audience,
    /// The chosen accounts' names, by id, for the admin's view.
    pub account_names: Vec<(AccountId, String)>,
    pub opened_at: OffsetDateTime,
}

/// The API's open preview, if any; an unknown API is `NotFound`.
pub async fn get(pool: &PgPool, api: ApiId) -> Result<Option<Preview>> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, api).await
}

async fn get_in(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<Option<Preview>> {
    sqlx::query_scalar!("SELECT id FROM api_products WHERE id = $1", api.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    let Some(row) = sqlx::query!("SELECT everyone, opened_at FROM api_previews WHERE api_id = $1", api.0)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let account_names: Vec<(AccountId, String)> = sqlx::query!(
        "SELECT a.id, a.name FROM api_preview_accounts pa JOIN accounts a ON a.id = pa.account_id
         WHERE pa.api_id = $1 ORDER BY a.name, a.id",
        api.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (AccountId(r.id), r.name))
    .collect();
    let audience = if row.everyone {
        Audience::Everyone
    } else {
        Audience::Accounts(account_names.iter().map(|(id, _)| *id).collect())
    };
    Ok(Some(Preview { audience, account_names, opened_at: row.opened_at }))
}

/// Opens the draft's preview to `audience`, or changes the audience of an open one. The API
/// must be a draft with at least one operation in mock mode: a preview answers from mocks.
pub async fn open(pool: &PgPool, api: ApiId, audience: &Audience, actor: &Actor) -> Result<Preview> {
    let accounts: Vec<Uuid> = match audience {
        Audience::Everyone => Vec::new(),
        Audience::Accounts(ids) if ids.is_empty() => {
            return Err(Error::invalid("account_ids", "choose at least one account, or open the preview to everyone"));
        }
        Audience::Accounts(ids) => {
            let mut ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
    };
    let mut tx = pool.begin().await?;
    let state =
        sqlx::query_scalar!(r#"SELECT state AS "state: ApiState" FROM api_products WHERE id = $1 FOR UPDATE"#, api.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
    if state != ApiState::Draft {
        return Err(Error::Conflict(format!(
            "only a draft can be previewed; this API is {state}, so developers see it in the catalog as it is"
        )));
    }
    if !has_mocks(&mut tx, api).await? {
        return Err(Error::Conflict(
            "a preview answers from mocks only: put the API or some of its operations in mock mode first".into(),
        ));
    }
    let known = sqlx::query_scalar!("SELECT id FROM accounts WHERE id = ANY($1) AND kind = 'developer'", &accounts)
        .fetch_all(&mut *tx)
        .await?;
    if let Some(unknown) = accounts.iter().find(|id| !known.contains(id)) {
        return Err(Error::invalid("account_ids", format!("{unknown} is not a developer account")));
    }
    let before = get_in(&mut tx, api).await?;
    sqlx::query!(
        "INSERT INTO api_previews (api_id, everyone) VALUES ($1, $2)
         ON CONFLICT (api_id) DO UPDATE SET everyone = EXCLUDED.everyone",
        api.0,
        accounts.is_empty()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM api_preview_accounts WHERE api_id = $1", api.0).execute(&mut *tx).await?;
    sqlx::query!(
        "INSERT INTO api_preview_accounts (api_id, account_id) SELECT $1, unnest($2::uuid[])",
        api.0,
        &accounts
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "api.preview_open",
            entity: "api",
            entity_id: Some(api.0),
            before: before.as_ref().map(audit_value),
            after: Some(json!({"everyone": accounts.is_empty(), "accounts": accounts})),
        },
    )
    .await?;
    let opened =
        get_in(&mut tx, api).await?.ok_or_else(|| Error::Internal("the preview just opened is gone".into()))?;
    tx.commit().await?;
    Ok(opened)
}

/// Closes the preview: the draft leaves the catalog and takes no new subscriptions. The
/// applications made during the preview stay, with their keys, for the API's publication
/// (suspend them to stop their calls to the mocks).
pub async fn close(pool: &PgPool, api: ApiId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let before = get_in(&mut tx, api).await?;
    let Some(before) = before else { return Ok(()) };
    sqlx::query!("DELETE FROM api_previews WHERE api_id = $1", api.0).execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "api.preview_close",
            entity: "api",
            entity_id: Some(api.0),
            before: Some(audit_value(&before)),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn audit_value(preview: &Preview) -> serde_json::Value {
    match &preview.audience {
        Audience::Everyone => json!({"everyone": true}),
        Audience::Accounts(ids) => {
            json!({"everyone": false, "accounts": ids.iter().map(|id| id.0).collect::<Vec<_>>()})
        }
    }
}

async fn has_mocks(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM api_mocks WHERE api_id = $1)
               OR EXISTS (SELECT 1 FROM operation_mocks WHERE api_id = $1) AS "used!""#,
        api.0
    )
    .fetch_one(conn)
    .await?)
}

/// Refuses a mock change that leaves a previewed draft with no operation in mock mode: its
/// developers would lose every answer. Called inside the change's transaction.
pub(crate) async fn check_still_mocked(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<()> {
    let previewed = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM api_previews v JOIN api_products p ON p.id = v.api_id
                          WHERE v.api_id = $1 AND p.state = 'draft') AS "previewed!""#,
        api.0
    )
    .fetch_one(&mut *conn)
    .await?;
    if previewed && !has_mocks(conn, api).await? {
        return Err(Error::Conflict(
            "the draft is previewed to developers and answers from mocks only: close its preview before taking it out of mock mode".into(),
        ));
    }
    Ok(())
}

/// Ends the preview of an API that is being published (inside the publication's
/// transaction): it is listed for everyone from now on.
pub(crate) async fn end_on_publication(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<()> {
    sqlx::query!("DELETE FROM api_previews WHERE api_id = $1", api.0).execute(conn).await?;
    Ok(())
}
