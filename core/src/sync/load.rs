//! Reads the agent-facing view of APIs, plans, applications and credentials.
//! Each loader takes an optional id, so snapshots (all rows) and deltas
//! (one row) share one query and one mapping.

use std::collections::HashMap;

use jiff::Timestamp;
use time::OffsetDateTime;
use tollgate_protocol as wire;
use tollgate_protocol::{
    Api, Application, Credential, KeyHash, Lifecycle, Limit, MappingRule, Metric, NoMatch, Plan, RuleOrigin,
    TimeZoneName, Upstream,
};
use uuid::Uuid;

use crate::apis::{ApiState, AuthMode, KeyLocation};
use crate::applications::ApplicationState;
use crate::credentials::CredentialKind;
use crate::stored::StoredPeriod;
use crate::{Error, Result};

pub(crate) fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::new(t.unix_timestamp(), t.nanosecond() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn key_hash(bytes: &[u8]) -> Result<KeyHash> {
    <[u8; 32]>::try_from(bytes).map(KeyHash).map_err(|_| Error::Internal("a stored key hash is not 32 bytes".into()))
}

fn location(location: KeyLocation, name: String) -> wire::KeyLocation {
    match location {
        KeyLocation::Header => wire::KeyLocation::Header { name },
        KeyLocation::Query => wire::KeyLocation::Query { name },
    }
}

pub(crate) async fn apis(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<Api>> {
    let products = sqlx::query!(
        r#"SELECT id, slug, public_host, base_path, state AS "state: ApiState", sunset_at, deprecated_at, auth_mode AS "auth_mode: AuthMode",
                  key_location AS "key_location: KeyLocation", key_name, unmatched_is_404
           FROM api_products WHERE $1::uuid IS NULL OR id = $1 ORDER BY id"#,
        only
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut upstreams: HashMap<Uuid, Vec<Upstream>> = HashMap::new();
    for u in sqlx::query!(
        "SELECT api_id, url FROM api_upstreams WHERE $1::uuid IS NULL OR api_id = $1 ORDER BY api_id, url",
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        if usable_upstream(&u.url, u.api_id) {
            upstreams.entry(u.api_id).or_default().push(Upstream { url: u.url });
        }
    }
    let mut metrics: HashMap<Uuid, Vec<Metric>> = HashMap::new();
    for m in sqlx::query!(
        "SELECT id, api_id, parent_id, system_name FROM metrics WHERE $1::uuid IS NULL OR api_id = $1 ORDER BY api_id, parent_id NULLS FIRST, id",
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        metrics.entry(m.api_id).or_default().push(Metric { id: m.id, system_name: m.system_name, parent: m.parent_id });
    }
    let mut rules: HashMap<Uuid, Vec<MappingRule>> = HashMap::new();
    for r in sqlx::query!(
        "SELECT api_id, metric_id, http_method, pattern, delta, last, imported FROM mapping_rules
         WHERE $1::uuid IS NULL OR api_id = $1 ORDER BY api_id, position, created_at, id",
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        // Agents refuse a whole config with one rule they cannot read, and then every change
        // after it: such a rule (stored by an import before imports checked their paths) is
        // left out, so that the rest of the config still reaches them.
        if let Err(e) = tollgate_protocol::Pattern::parse(&r.pattern) {
            tracing::warn!(api = %r.api_id, pattern = %r.pattern, error = %e, "mapping rule left out of the agents' config: its pattern does not parse");
            continue;
        }
        let list = rules.entry(r.api_id).or_default();
        // Positions are renumbered densely: agents need a strict order, the
        // database only a sortable one.
        let position = u32::try_from(list.len()).unwrap_or(u32::MAX);
        list.push(MappingRule {
            http_method: r.http_method,
            pattern: r.pattern,
            metric: r.metric_id,
            delta: u32::try_from(r.delta).unwrap_or(1),
            position,
            last: r.last,
            origin: if r.imported { RuleOrigin::Import } else { RuleOrigin::Manual },
        });
    }
    Ok(products
        .into_iter()
        .map(|p| {
            let lifecycle = match p.state {
                ApiState::Draft => Lifecycle::Draft,
                ApiState::Published => Lifecycle::Published,
                ApiState::Deprecated => Lifecycle::Deprecated {
                    sunset: p.sunset_at.and_then(|at| {
                        jiff::civil::Date::new(at.year() as i16, u8::from(at.month()) as i8, at.day() as i8).ok()
                    }),
                    since: p.deprecated_at.map(timestamp),
                },
                ApiState::Retired => Lifecycle::Retired,
            };
            let auth = match p.auth_mode {
                AuthMode::AppIdAppKey => wire::AuthMode::AppIdKey {
                    app_id: location(p.key_location, "app_id".to_owned()),
                    app_key: location(p.key_location, "app_key".to_owned()),
                },
                AuthMode::UserKey => wire::AuthMode::UserKey { location: location(p.key_location, p.key_name) },
            };
            Api {
                id: p.id,
                slug: p.slug,
                // Agents route by host name; a port stored before ports were refused is dropped.
                hosts: p
                    .public_host
                    .map(|host| host.split(':').next().unwrap_or_default().to_owned())
                    .into_iter()
                    .collect(),
                base_path: p.base_path,
                upstreams: upstreams.remove(&p.id).unwrap_or_default(),
                lifecycle,
                auth,
                metrics: metrics.remove(&p.id).unwrap_or_default(),
                mapping_rules: rules.remove(&p.id).unwrap_or_default(),
                on_no_match: if p.unmatched_is_404 { NoMatch::NotFound } else { NoMatch::Pass },
            }
        })
        .collect())
}

pub(crate) async fn plans(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<Plan>> {
    let rows =
        sqlx::query!("SELECT id, api_id, time_zone FROM plans WHERE $1::uuid IS NULL OR id = $1 ORDER BY id", only)
            .fetch_all(&mut *conn)
            .await?;
    let mut limits: HashMap<Uuid, Vec<Limit>> = HashMap::new();
    for l in sqlx::query!(
        r#"SELECT plan_id, metric_id, period AS "period: StoredPeriod", max_value FROM usage_limits
           WHERE $1::uuid IS NULL OR plan_id = $1 ORDER BY plan_id, metric_id, period"#,
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        limits.entry(l.plan_id).or_default().push(Limit {
            metric: l.metric_id,
            period: l.period.0,
            max: u64::try_from(l.max_value).unwrap_or(0),
        });
    }
    rows.into_iter()
        .map(|p| {
            let time_zone = TimeZoneName::new(&p.time_zone).unwrap_or_else(|_| TimeZoneName::utc());
            Ok(Plan { id: p.id, api_id: p.api_id, time_zone, limits: limits.remove(&p.id).unwrap_or_default() })
        })
        .collect()
}

/// Applications agents must know: pending (so they can answer "not live"),
/// live and suspended. Rejected ones are as good as absent.
pub(crate) async fn applications(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<Application>> {
    // A suspended account suspends all its applications.
    let rows = sqlx::query!(
        r#"SELECT ap.id, ap.plan_id, CASE WHEN ac.state = 'suspended' THEN 'suspended' ELSE ap.state END AS "state!: ApplicationState", ap.app_id
           FROM applications ap JOIN accounts ac ON ac.id = ap.account_id
           WHERE ($1::uuid IS NULL OR ap.id = $1) AND ap.state <> 'rejected' ORDER BY ap.id"#,
        only
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|a| {
            let state = match a.state {
                ApplicationState::Pending => wire::ApplicationState::Pending,
                ApplicationState::Live => wire::ApplicationState::Live,
                ApplicationState::Suspended => wire::ApplicationState::Suspended,
                ApplicationState::Rejected => {
                    return Err(Error::Internal(format!("application {} is rejected but was loaded", a.id)));
                }
            };
            Ok(Application { id: a.id, plan_id: a.plan_id, state, app_id: a.app_id })
        })
        .collect()
}

/// Keys that work now or until their rotation overlap ends.
pub(crate) async fn credentials(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<Credential>> {
    let rows = sqlx::query!(
        r#"SELECT c.key_hash, c.kind AS "kind: CredentialKind", c.application_id, c.expires_at
           FROM credentials c JOIN applications a ON a.id = c.application_id
           WHERE ($1::uuid IS NULL OR c.id = $1) AND c.revoked_at IS NULL
             AND (c.expires_at IS NULL OR c.expires_at > now()) AND a.state <> 'rejected'"#,
        only
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|c| {
            Ok(Credential {
                hash: key_hash(&c.key_hash)?,
                kind: c.kind.key_kind(),
                application_id: c.application_id,
                expires_at: c.expires_at.map(timestamp),
            })
        })
        .collect()
}

/// Whether an upstream URL stored before the check it would fail now (`HTTP://…`, a user and
/// password, a name in another script) goes to agents: one they cannot use would make
/// them refuse the whole config, and with it every later change of every API.
pub(crate) fn usable_upstream(url: &str, api: Uuid) -> bool {
    match tollgate_protocol::upstream::check_url(url) {
        Ok(()) => true,
        Err(problem) => {
            tracing::warn!(%api, problem, "an upstream URL agents cannot use is left out of the config");
            false
        }
    }
}
