//! Moving an API product along its lifecycle (`ApiState::can_become`
//! says which moves are allowed). A move is one transaction with its mail,
//! audit record and config change, so agents learn of it at once.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::types::{ApiId, ApiState};
use crate::audit::{self, Actor, Entry};
use crate::mail::{enqueue, messages};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// Moves an API to `state`. Deprecation needs a sunset date in the future
/// and emails the owners of every subscribed account, with links to
/// `base_url`.
pub async fn set_state(
    pool: &PgPool,
    id: ApiId,
    state: ApiState,
    sunset_at: Option<OffsetDateTime>,
    actor: &Actor,
    base_url: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    set_state_in(&mut tx, id, state, sunset_at, SunsetRule::Ahead, actor, base_url).await?;
    // Checked here, not in `set_state_in`: a configuration file publishes before it sets
    // the mocks, and checks the result itself.
    if super::mocks::is_stranded(&mut tx, id).await? {
        return Err(Error::Conflict(format!(
            "the API has no upstream: add one (upstream_urls) or mock its operations before it is {state}"
        )));
    }
    tx.commit().await?;
    Ok(())
}

/// [`set_state`] inside the caller's transaction.
/// Whether a deprecation's sunset date must still be ahead: it must for an admin deprecating
/// an API; a configuration file recreating an API deprecated elsewhere records it as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SunsetRule {
    Ahead,
    AsRecorded,
}

pub async fn set_state_in(
    tx: &mut sqlx::PgConnection,
    id: ApiId,
    state: ApiState,
    sunset_at: Option<OffsetDateTime>,
    sunset_rule: SunsetRule,
    actor: &Actor,
    base_url: &str,
) -> Result<()> {
    let before = sqlx::query!(
        r#"SELECT state AS "state: ApiState", name, slug FROM api_products WHERE id = $1 FOR UPDATE"#,
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if !before.state.can_become(state) {
        return Err(Error::Conflict(format!("an API cannot go from {} to {state}", before.state)));
    }
    let sunset_at = match (state, sunset_at) {
        (ApiState::Deprecated, Some(at)) if sunset_rule == SunsetRule::AsRecorded || at > OffsetDateTime::now_utc() => {
            Some(at)
        }
        (ApiState::Deprecated, _) => {
            return Err(Error::invalid("sunset_at", "deprecating an API needs a sunset date in the future"));
        }
        _ => None,
    };
    sqlx::query!(
        "UPDATE api_products SET state = $2, sunset_at = $3, updated_at = now(),
                deprecated_at = CASE WHEN $2 = 'deprecated'::api_state THEN now() END
         WHERE id = $1",
        id.0,
        state as ApiState,
        sunset_at
    )
    .execute(&mut *tx)
    .await?;
    if state == ApiState::Published {
        sqlx::query!(
            "UPDATE api_versions SET published_at = coalesce(published_at, now()) WHERE api_id = $1 AND number = 1",
            id.0
        )
        .execute(&mut *tx)
        .await?;
        // A previewed draft is listed for everyone now; its applications carry on.
        super::preview::end_on_publication(tx, id).await?;
    }
    if state == ApiState::Retired {
        // Retired APIs serve nothing, so their plans bill nothing from now on; the trigger
        // on applications opens no new segment for them.
        sqlx::query!(
            "UPDATE subscription_segments s SET ended_at = now()
             FROM applications a WHERE s.application_id = a.id AND a.api_id = $1 AND s.ended_at IS NULL",
            id.0
        )
        .execute(&mut *tx)
        .await?;
        let owners = sqlx::query_scalar!(
            r#"SELECT DISTINCT u.email::text AS "email!" FROM applications ap
               JOIN memberships m ON m.account_id = ap.account_id AND m.role = 'owner'
               JOIN users u ON u.id = m.user_id WHERE ap.api_id = $1 AND ap.state IN ('live', 'suspended')"#,
            id.0
        )
        .fetch_all(&mut *tx)
        .await?;
        for email in owners {
            enqueue(tx, &messages::api_retired(&email, &before.name, base_url)).await?;
        }
    }
    if let Some(sunset) = sunset_at {
        let owners = sqlx::query_scalar!(
            r#"SELECT DISTINCT u.email::text AS "email!" FROM applications ap
               JOIN memberships m ON m.account_id = ap.account_id AND m.role = 'owner'
               JOIN users u ON u.id = m.user_id WHERE ap.api_id = $1"#,
            id.0
        )
        .fetch_all(&mut *tx)
        .await?;
        for email in owners {
            let mail =
                messages::api_deprecated(&email, &before.name, &sunset.date().to_string(), base_url, &before.slug);
            enqueue(tx, &mail).await?;
        }
    }
    record_change(tx, Entity::Api, id.0, false, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "api.lifecycle",
            entity: "api",
            entity_id: Some(id.0),
            before: Some(json!({"state": before.state})),
            after: Some(json!({"state": state, "sunset_at": sunset_at.map(|s| s.unix_timestamp())})),
        },
    )
    .await?;
    Ok(())
}

/// Publishes a draft API (as seeding does). Publishing sends no mail, so it
/// needs no base URL for links.
pub async fn publish(pool: &PgPool, id: ApiId, actor: &Actor) -> Result<()> {
    set_state(pool, id, ApiState::Published, None, actor, "").await
}
