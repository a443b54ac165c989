//! Alert levels a developer mutes for one application: warnings below 100 %
//! only, so violations always reach the account.

use sqlx::PgPool;

use crate::accounts::AccountId;
use crate::applications::ApplicationId;
use crate::{Error, Result};

/// The warning levels a developer may mute.
pub const MUTABLE_LEVELS: [i16; 3] = [50, 80, 90];

/// The levels muted for an application of `account` (404 for another account's).
pub async fn muted_levels(pool: &PgPool, account: AccountId, app: ApplicationId) -> Result<Vec<i16>> {
    sqlx::query_scalar!("SELECT muted_alert_levels FROM applications WHERE id = $1 AND account_id = $2", app.0, account.0)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)
}

/// Replaces the muted levels; a level of 100 % or more, or not a level, is refused naming `levels`.
pub async fn set_muted_levels(pool: &PgPool, account: AccountId, app: ApplicationId, levels: &[i16]) -> Result<()> {
    if let Some(bad) = levels.iter().find(|l| !MUTABLE_LEVELS.contains(l)) {
        return Err(Error::invalid(
            "levels",
            format!("{bad}% cannot be muted; only the warnings at 50, 80 and 90% can (violations always alert)"),
        ));
    }
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let done = sqlx::query!(
        "UPDATE applications SET muted_alert_levels = $3 WHERE id = $1 AND account_id = $2",
        app.0,
        account.0,
        &levels
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
