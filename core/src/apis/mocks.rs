//! Mock mode: which operations of an API the gateway answers from the API's description
//! instead of its upstream, and the answers themselves, made when a snapshot or delta is
//! built (from the current version: the newest published, else the newest).
//!
//! The whole API (`api_mocks`) or single operations (`operation_mocks`, by method metric)
//! can be in mock mode. A change is its own feed entity (`mocks`), so only APIs that use
//! mocks make agents of protocol version 1 refuse a config.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use sqlx::PgPool;
use tollgate_openapi::{MockSource, OperationMock};
use tollgate_protocol::mock::MAX_MOCK_BODY;
use tollgate_protocol::{ApiMocks, MockContent, MockExample, MockOperation, MockResponse};
use uuid::Uuid;

use super::types::ApiId;
use crate::audit::{self, Actor, Entry};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// Where an operation's default mock answer comes from, as the admin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleSource {
    /// An example written in the description.
    Example,
    /// No example: a value made from the response's schema.
    Generated,
    /// No example and no schema: an empty body.
    Empty,
}

impl From<MockSource> for ExampleSource {
    fn from(source: MockSource) -> ExampleSource {
        match source {
            MockSource::Example => ExampleSource::Example,
            MockSource::Generated => ExampleSource::Generated,
            MockSource::Empty => ExampleSource::Empty,
        }
    }
}

/// One imported operation and its mock mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperationMode {
    /// The operation's method metric.
    pub metric_id: Uuid,
    pub system_name: String,
    pub method: String,
    pub path: String,
    /// In mock mode, by itself or with the whole API.
    pub mocked: bool,
    pub source: ExampleSource,
}

/// An API's mock mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MockMode {
    /// Every operation is answered by mocks.
    pub whole_api: bool,
    /// The imported operations of the current version, in document order.
    pub operations: Vec<OperationMode>,
}

/// What an admin changes: the whole API, and single operations by metric id.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MockChanges {
    pub whole_api: Option<bool>,
    /// Operations put in (`true`) or out of (`false`) mock mode by themselves.
    #[serde(default)]
    pub operations: HashMap<Uuid, bool>,
}

/// An imported operation of the API: its metric, method and path template.
struct Imported {
    metric: Uuid,
    system_name: String,
    method: String,
    path: String,
}

async fn current_spec(conn: &mut sqlx::PgConnection, api: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT spec_source FROM api_versions WHERE api_id = $1
         ORDER BY (published_at IS NOT NULL) DESC, number DESC LIMIT 1",
        api
    )
    .fetch_optional(conn)
    .await?)
}

async fn imported(conn: &mut sqlx::PgConnection, api: Uuid) -> Result<Vec<Imported>> {
    let rows = sqlx::query!(
        "SELECT r.metric_id, m.system_name, r.http_method, r.pattern FROM mapping_rules r
         JOIN metrics m ON m.id = r.metric_id
         WHERE r.api_id = $1 AND r.imported ORDER BY r.position, r.created_at, r.id",
        api
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Imported {
            metric: r.metric_id,
            system_name: r.system_name,
            method: r.http_method,
            // Imported patterns are the document's path, anchored.
            path: r.pattern.strip_suffix('$').unwrap_or(&r.pattern).to_owned(),
        })
        .collect())
}

fn mocks_by_operation(source: Option<&str>) -> HashMap<(String, String), OperationMock> {
    let mocks = source.and_then(|s| tollgate_openapi::mock_operations(s).ok()).unwrap_or_default();
    mocks.into_iter().map(|m| ((m.method.clone(), m.path.clone()), m)).collect()
}

/// The API's mock mode, with where each operation's answer would come from.
pub async fn get(pool: &PgPool, api: ApiId) -> Result<MockMode> {
    let mut conn = pool.acquire().await?;
    sqlx::query_scalar!("SELECT id FROM api_products WHERE id = $1", api.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    let whole_api = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM api_mocks WHERE api_id = $1) AS "e!""#, api.0)
        .fetch_one(&mut *conn)
        .await?;
    let single: HashSet<Uuid> = sqlx::query_scalar!("SELECT metric_id FROM operation_mocks WHERE api_id = $1", api.0)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let source = current_spec(&mut conn, api.0).await?;
    let imported = imported(&mut conn, api.0).await?;
    // Parsing a large description takes a while: off the async workers.
    let mocks = tokio::task::spawn_blocking(move || mocks_by_operation(source.as_deref()))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let operations = imported
        .into_iter()
        .map(|op| {
            let source = mocks
                .get(&(op.method.clone(), op.path.clone()))
                .map_or(ExampleSource::Empty, |m| m.default_source().into());
            OperationMode {
                mocked: whole_api || single.contains(&op.metric),
                metric_id: op.metric,
                system_name: op.system_name,
                method: op.method,
                path: op.path,
                source,
            }
        })
        .collect();
    Ok(MockMode { whole_api, operations })
}

/// Changes the API's mock mode; agents learn of it at once.
pub async fn set(pool: &PgPool, api: ApiId, changes: &MockChanges, actor: &Actor) -> Result<MockMode> {
    let mut tx = pool.begin().await?;
    set_in(&mut tx, api, changes, actor).await?;
    tx.commit().await?;
    get(pool, api).await
}

/// [`set`] on the caller's transaction (configuration apply).
pub async fn set_in(tx: &mut sqlx::PgConnection, api: ApiId, changes: &MockChanges, actor: &Actor) -> Result<()> {
    sqlx::query!("SELECT id FROM api_products WHERE id = $1 FOR UPDATE", api.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    let whole_before =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM api_mocks WHERE api_id = $1) AS "e!""#, api.0)
            .fetch_one(&mut *tx)
            .await?;
    let single: HashSet<Uuid> = sqlx::query_scalar!("SELECT metric_id FROM operation_mocks WHERE api_id = $1", api.0)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let imported = imported(&mut *tx, api.0).await?;
    let known: HashSet<Uuid> = imported.iter().map(|o| o.metric).collect();
    for metric in changes.operations.keys() {
        if !known.contains(metric) {
            return Err(Error::invalid("operations", format!("{metric} is not an imported operation of this API")));
        }
    }
    let mocked_before: Vec<Uuid> =
        imported.iter().filter(|o| whole_before || single.contains(&o.metric)).map(|o| o.metric).collect();
    match changes.whole_api {
        Some(true) => {
            sqlx::query!("INSERT INTO api_mocks (api_id) VALUES ($1) ON CONFLICT DO NOTHING", api.0)
                .execute(&mut *tx)
                .await?;
        }
        Some(false) => {
            sqlx::query!("DELETE FROM api_mocks WHERE api_id = $1", api.0).execute(&mut *tx).await?;
        }
        None => {}
    }
    for (&metric, &on) in &changes.operations {
        if on {
            sqlx::query!(
                "INSERT INTO operation_mocks (api_id, metric_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                api.0,
                metric
            )
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query!("DELETE FROM operation_mocks WHERE api_id = $1 AND metric_id = $2", api.0, metric)
                .execute(&mut *tx)
                .await?;
        }
    }
    if is_stranded(&mut *tx, api).await? {
        return Err(Error::Conflict(
            "the API is published and has no upstream: add an upstream before taking it out of mock mode".into(),
        ));
    }
    super::preview::check_still_mocked(&mut *tx, api).await?;
    record_change(&mut *tx, Entity::Mocks, api.0, false, None).await?;
    audit::record(
        &mut *tx,
        actor,
        Entry {
            action: "api.mocks",
            entity: "api",
            entity_id: Some(api.0),
            before: Some(json!({"whole_api": whole_before, "mocked": mocked_before})),
            after: Some(json!({"whole_api": changes.whole_api, "operations": changes.operations})),
        },
    )
    .await
}

/// Records a mocks change for an API whose answers may have changed (a new version was
/// published), if it has any operation in mock mode.
pub(crate) async fn touch(conn: &mut sqlx::PgConnection, api: Uuid) -> Result<()> {
    let used = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM api_mocks WHERE api_id = $1)
               OR EXISTS (SELECT 1 FROM operation_mocks WHERE api_id = $1) AS "used!""#,
        api
    )
    .fetch_one(&mut *conn)
    .await?;
    if used {
        record_change(conn, Entity::Mocks, api, false, None).await?;
    }
    Ok(())
}

/// The mocks agents are sent: of every API with an operation in mock mode, or of `only`.
pub(crate) async fn load(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<ApiMocks>> {
    let apis = sqlx::query!(
        r#"SELECT api_id AS "api_id!", bool_or(whole) AS "whole!" FROM (
               SELECT api_id, true AS whole FROM api_mocks
               UNION ALL SELECT api_id, false FROM operation_mocks) m
           WHERE $1::uuid IS NULL OR api_id = $1 GROUP BY api_id ORDER BY api_id"#,
        only
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(apis.len());
    for api in apis {
        let single: HashSet<Uuid> =
            sqlx::query_scalar!("SELECT metric_id FROM operation_mocks WHERE api_id = $1", api.api_id)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let source = current_spec(conn, api.api_id).await?;
        let imported = imported(conn, api.api_id).await?;
        let mut mocks = mocks_by_operation(source.as_deref());
        let operations: Vec<MockOperation> = imported
            .into_iter()
            .filter(|op| api.whole || single.contains(&op.metric))
            .filter_map(|op| Some(wire(op.metric, mocks.remove(&(op.method, op.path))?)))
            .collect();
        if !operations.is_empty() {
            out.push(ApiMocks { api_id: api.api_id, operations });
        }
    }
    Ok(out)
}

fn wire(metric: Uuid, mock: OperationMock) -> MockOperation {
    MockOperation {
        metric,
        responses: mock
            .responses
            .into_iter()
            .map(|response| MockResponse {
                status: response.status,
                content: response
                    .content
                    .into_iter()
                    .filter_map(|content| {
                        let examples: Vec<MockExample> = content
                            .examples
                            .into_iter()
                            .filter(|(_, body)| body.len() <= MAX_MOCK_BODY)
                            .map(|(name, body)| MockExample { name, body })
                            .collect();
                        // A media type the agent could not send as a header is left out.
                        let sendable = content.media_type.contains('/')
                            && content.media_type.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
                        (sendable && !examples.is_empty())
                            .then_some(MockContent { media_type: content.media_type, examples })
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Whether the API serves traffic with neither an upstream nor a mocked operation agents
/// are sent. Gateways refuse a config that holds one, and with it every later change of
/// every API (a revoked key would keep working), so no change may leave an API so.
pub(crate) async fn is_stranded(tx: &mut sqlx::PgConnection, api: ApiId) -> Result<bool> {
    let no_upstream = sqlx::query_scalar!(
        r#"SELECT p.state IN ('published', 'deprecated')
               AND NOT EXISTS (SELECT 1 FROM api_upstreams u WHERE u.api_id = p.id) AS "no_upstream!"
           FROM api_products p WHERE p.id = $1"#,
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    // A mocked operation counts only as agents get it: while its imported rule and an
    // answer for it exist (a new version or a deleted rule can take both away).
    Ok(no_upstream && load(tx, Some(api.0)).await?.is_empty())
}

/// [`is_stranded`] as the refusal of a change that would leave the API so (`what` says
/// which change).
pub(crate) async fn refuse_stranded(tx: &mut sqlx::PgConnection, api: ApiId, what: &str) -> Result<()> {
    if is_stranded(tx, api).await? {
        return Err(Error::Conflict(format!(
            "{what} would leave the API serving traffic with no upstream and no mocked operation: \
             add an upstream (upstream_urls) first"
        )));
    }
    Ok(())
}
