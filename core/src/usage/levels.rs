//! Alert levels: the percentages of a limit that can alert, which of them a
//! plan switches on, and which an application mutes.

use std::fmt;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

/// A percentage of a limit that can alert (3scale's levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i64", into = "i16")]
pub struct AlertLevel(i16);

/// Why a list of levels was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("{0} is not an alert level (use 50, 80, 90, 100, 120, 150, 200 or 300)")]
    Unknown(i64),
    /// Violations (100 % and above) always alert; only warnings can be muted.
    #[error("{0} % cannot be muted: only levels below 100 can")]
    NotMutable(AlertLevel),
}

impl LevelError {
    /// The validation error for the input field that held the levels.
    pub fn at(self, field: &'static str) -> Error {
        Error::invalid(field, self.to_string())
    }
}

impl AlertLevel {
    pub const ALL: [AlertLevel; 8] = [
        AlertLevel(50),
        AlertLevel(80),
        AlertLevel(90),
        AlertLevel(100),
        AlertLevel(120),
        AlertLevel(150),
        AlertLevel(200),
        AlertLevel(300),
    ];

    /// A plan's levels when nobody chose: a warning and the violation.
    pub const DEFAULT: [AlertLevel; 2] = [AlertLevel(80), AlertLevel(100)];

    pub fn new(pct: i64) -> std::result::Result<AlertLevel, LevelError> {
        AlertLevel::ALL.into_iter().find(|l| i64::from(l.0) == pct).ok_or(LevelError::Unknown(pct))
    }

    pub const fn pct(self) -> i16 {
        self.0
    }

    /// 100 % and above: the limit is reached or exceeded.
    pub const fn is_violation(self) -> bool {
        self.0 >= 100
    }

    /// Whether `used` of `max` reaches this level. A limit of 0 is reached by
    /// any use and never "crossed" by percentages, so it alerts nothing.
    pub fn crossed(self, used: i64, max: i64) -> bool {
        max > 0 && i128::from(used) * 100 >= i128::from(self.0) * i128::from(max)
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<i64> for AlertLevel {
    type Error = LevelError;
    fn try_from(pct: i64) -> std::result::Result<Self, LevelError> {
        AlertLevel::new(pct)
    }
}

impl From<AlertLevel> for i16 {
    fn from(level: AlertLevel) -> i16 {
        level.0
    }
}

/// Sorted, without duplicates.
pub fn parse_levels(levels: &[i64]) -> std::result::Result<Vec<AlertLevel>, LevelError> {
    let mut parsed = levels.iter().map(|&l| AlertLevel::new(l)).collect::<std::result::Result<Vec<_>, _>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    Ok(parsed)
}

/// Levels as stored (unknown values, which the check constraint forbids, are skipped).
pub(crate) fn from_stored(levels: &[i16]) -> Vec<AlertLevel> {
    let mut parsed: Vec<_> = levels.iter().filter_map(|&l| AlertLevel::new(i64::from(l)).ok()).collect();
    parsed.sort_unstable();
    parsed.dedup();
    parsed
}

fn to_stored(levels: &[AlertLevel]) -> Vec<i16> {
    levels.iter().map(|l| l.0).collect()
}

/// The levels a plan alerts at. `NotFound` for an unknown plan.
pub async fn plan_levels(pool: &PgPool, plan: Uuid) -> Result<Vec<AlertLevel>> {
    let levels = sqlx::query_scalar!("SELECT alert_levels FROM plans WHERE id = $1", plan)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(from_stored(&levels))
}

/// Replaces the levels a plan alerts at, with an audit record. `NotFound`
/// for an unknown plan. Agents do not enforce alerts, so no config change.
pub async fn set_plan_levels(
    pool: &PgPool,
    plan: Uuid,
    levels: &[AlertLevel],
    actor: &Actor,
) -> Result<Vec<AlertLevel>> {
    let mut tx = pool.begin().await?;
    let levels = set_plan_levels_in(&mut tx, plan, levels, actor).await?;
    tx.commit().await?;
    Ok(levels)
}

/// [`set_plan_levels`] inside the caller's transaction.
pub async fn set_plan_levels_in(
    tx: &mut sqlx::PgConnection,
    plan: Uuid,
    levels: &[AlertLevel],
    actor: &Actor,
) -> Result<Vec<AlertLevel>> {
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let before = sqlx::query_scalar!("SELECT alert_levels FROM plans WHERE id = $1 FOR UPDATE", plan)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    sqlx::query!("UPDATE plans SET alert_levels = $2, updated_at = now() WHERE id = $1", plan, &to_stored(&levels))
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        actor,
        Entry {
            action: "plan.alert_levels",
            entity: "plan",
            entity_id: Some(plan),
            before: Some(json!({ "alert_levels": before })),
            after: Some(json!({ "alert_levels": to_stored(&levels) })),
        },
    )
    .await?;
    Ok(levels)
}

/// The levels an application of `account` muted. `NotFound` for an unknown
/// application or one of another account.
pub async fn muted_levels(pool: &PgPool, account: Uuid, application: Uuid) -> Result<Vec<AlertLevel>> {
    let levels = sqlx::query_scalar!(
        "SELECT muted_alert_levels FROM applications WHERE id = $1 AND account_id = $2",
        application,
        account
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(from_stored(&levels))
}

/// Checks that every level may be muted (below 100 %).
pub fn check_mutable(levels: &[AlertLevel]) -> std::result::Result<(), LevelError> {
    match levels.iter().find(|l| l.is_violation()) {
        Some(&level) => Err(LevelError::NotMutable(level)),
        None => Ok(()),
    }
}

/// Replaces the levels an application of `account` mutes. Levels of 100 %
/// and above are refused ([`LevelError::NotMutable`] as `Error::Invalid` on
/// `muted_alert_levels`); `NotFound` for an application of another account.
pub async fn set_muted_levels(
    pool: &PgPool,
    account: Uuid,
    application: Uuid,
    levels: &[AlertLevel],
) -> Result<Vec<AlertLevel>> {
    check_mutable(levels).map_err(|e| e.at("muted_alert_levels"))?;
    let mut levels = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let updated = sqlx::query!(
        "UPDATE applications SET muted_alert_levels = $3, updated_at = now() WHERE id = $1 AND account_id = $2",
        application,
        account,
        &to_stored(&levels)
    )
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_sorted_and_unique() {
        assert_eq!(parse_levels(&[100, 50, 100]).unwrap(), vec![AlertLevel(50), AlertLevel(100)]);
        assert_eq!(parse_levels(&[75]), Err(LevelError::Unknown(75)));
    }

    #[test]
    fn crossing_is_exact_and_zero_limits_never_cross() {
        let eighty = AlertLevel::new(80).unwrap();
        assert!(!eighty.crossed(7, 10));
        assert!(eighty.crossed(8, 10));
        assert!(!eighty.crossed(5, 0));
        assert!(AlertLevel::new(300).unwrap().crossed(i64::MAX, i64::MAX / 3));
    }

    #[test]
    fn only_warnings_can_be_muted() {
        assert!(check_mutable(&parse_levels(&[50, 90]).unwrap()).is_ok());
        assert_eq!(
            check_mutable(&parse_levels(&[80, 100]).unwrap()),
            Err(LevelError::NotMutable(AlertLevel::new(100).unwrap()))
        );
    }
}
