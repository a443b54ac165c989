//! Applications: a developer account's subscription to one API on one plan.
//! Every function taking an `AccountId` is scoped to that account: another
//! account's application is `NotFound`, never forbidden.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::AccountId;
use crate::apis::AuthMode;
use crate::audit::{self, Actor, Entry};
use crate::error::conflict_on_unique;
use crate::mail::{enqueue, messages};
use crate::name_search::{NameColumn, NameSearch, name_search};
use crate::plans::PlanId;
use crate::stored::stored_enum;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

pub mod plan_change;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ApplicationId(pub Uuid);

stored_enum! {
    /// Where an application is: `pending → live ↔ suspended`, or `rejected`.
    pub enum ApplicationState as "application_state" {
        /// Waiting for a provider admin to approve it.
        Pending = "pending",
        Live = "live",
        Suspended = "suspended",
        Rejected = "rejected",
    }
}

#[derive(Debug, Clone)]
pub struct NewApplication {
    pub plan_id: PlanId,
    pub name: String,
    pub description: String,
}

/// An application as its owner sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplicationView {
    pub id: ApplicationId,
    pub account_id: AccountId,
    pub api_id: Uuid,
    pub api_name: String,
    pub api_slug: String,
    pub auth_mode: AuthMode,
    pub plan_id: PlanId,
    pub plan_name: String,
    /// A plan change waiting for an admin's approval: the plan and its name.
    pub requested_plan_id: Option<PlanId>,
    pub requested_plan_name: Option<String>,
    pub name: String,
    pub description: String,
    pub state: ApplicationState,
    /// The public half of app_id + app_key credentials.
    pub app_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An application's name and description as a form sends them: the first problem, named.
pub fn check_details(name: &str, description: &str) -> Result<()> {
    let mut problems = FieldProblems::default();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        problems.add("name", "enter a name of 1 to 200 characters");
    } else if name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        // A name is mailed to admins and shown as one line: a line break would let anyone who
        // registers an application write paragraphs of their own into the platform's mail.
        problems.add("name", "keep the name on one line, without tabs or line breaks");
    }
    if description.chars().count() > 2000 {
        problems.add("description", "use at most 2,000 characters");
    } else if description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        problems.add("description", "remove the control characters");
    }
    problems.into_result()
}

/// Registers an application on a published plan of a published or
/// deprecated API, or of a draft previewed to the account (`apis::preview`). It starts `pending` when the plan requires approval.
pub async fn create(pool: &PgPool, account: AccountId, new: &NewApplication, actor: &Actor) -> Result<ApplicationView> {
    create_telling_admins(pool, account, new, actor, None).await
}

/// [`create`], and when the application waits for approval, every admin is mailed and
/// notified in the same transaction, with a link under `base_url` to where they decide.
pub async fn create_telling_admins(
    pool: &PgPool,
    account: AccountId,
    new: &NewApplication,
    actor: &Actor,
    base_url: Option<&str>,
) -> Result<ApplicationView> {
    check_details(&new.name, &new.description)?;
    let mut tx = pool.begin().await?;
    // Agents refuse a suspended account's applications: one made now would say `live` and not work.
    let suspended = sqlx::query_scalar!(
        r#"SELECT state = 'suspended' AS "suspended!" FROM accounts WHERE id = $1 FOR SHARE"#,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if suspended {
        return Err(Error::Conflict(
            "the account is suspended: it registers no applications until an admin resumes it".into(),
        ));
    }
    let plan = sqlx::query!(
        r#"SELECT p.api_id, p.approval_required, p.trial_days, a.auth_mode AS "auth_mode: AuthMode"
           FROM plans p JOIN api_products a ON a.id = p.api_id
           WHERE p.id = $1 AND p.published AND api_open_to(a.id, a.state, $2)
           FOR SHARE OF p"#,
        new.plan_id.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::invalid("plan_id", "choose a published plan"))?;
    let id = Uuid::now_v7();
    let state = if plan.approval_required { ApplicationState::Pending } else { ApplicationState::Live };
    let app_id =
        (plan.auth_mode == AuthMode::AppIdAppKey).then(|| Uuid::new_v4().simple().to_string()[..16].to_owned());
    let trial_ends_at =
        (plan.trial_days > 0).then(|| OffsetDateTime::now_utc() + time::Duration::days(i64::from(plan.trial_days)));
    sqlx::query!(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, description, state, app_id, trial_ends_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        account.0,
        plan.api_id,
        new.plan_id.0,
        new.name.trim(),
        new.description.trim(),
        state as ApplicationState,
        app_id,
        trial_ends_at
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "you already have an application with this name for this API"))?;
    record_change(&mut tx, Entity::Application, id, false, None).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "application.create",
            entity: "application",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"name": new.name.trim(), "plan_id": new.plan_id.0, "state": state})),
        },
    )
    .await?;
    if let (ApplicationState::Pending, Some(base_url)) = (state, base_url) {
        tell_admins_it_waits(&mut tx, ApplicationId(id), base_url).await?;
    }
    tx.commit().await?;
    get(pool, account, ApplicationId(id)).await
}

/// Mail and a notification to every admin: a new application waits for their approval.
async fn tell_admins_it_waits(tx: &mut sqlx::PgConnection, app: ApplicationId, base_url: &str) -> Result<()> {
    let row = sqlx::query!(
        r#"SELECT ap.name, ac.name AS account_name, a.name AS api_name, p.name AS plan_name
           FROM applications ap JOIN accounts ac ON ac.id = ap.account_id
           JOIN api_products a ON a.id = ap.api_id JOIN plans p ON p.id = ap.plan_id WHERE ap.id = $1"#,
        app.0
    )
    .fetch_one(&mut *tx)
    .await?;
    let link = plan_change::admin_link(app);
    let body =
        format!("{} registered {} on the {} plan of {}.", row.account_name, row.name, row.plan_name, row.api_name);
    for (user, email) in crate::notifications::admins(&mut *tx).await? {
        let mail = messages::application_waits(
            &email,
            &row.name,
            &row.account_name,
            &row.api_name,
            &row.plan_name,
            &format!("{base_url}{link}"),
        );
        crate::notifications::tell(&mut *tx, user, &mail, "application_pending", &body, &link).await?;
    }
    Ok(())
}

/// The account's applications, or just one of them.
async fn load(pool: &PgPool, account: AccountId, only: Option<ApplicationId>) -> Result<Vec<ApplicationView>> {
    let rows = sqlx::query!(
        r#"SELECT ap.id, ap.account_id, ap.api_id, a.name AS api_name, a.slug AS api_slug, a.auth_mode AS "auth_mode: AuthMode",
                  ap.plan_id, p.name AS plan_name, ap.requested_plan_id, rp.name AS "requested_plan_name?",
                  ap.name, ap.description, ap.state AS "state: ApplicationState", ap.app_id, ap.created_at
           FROM applications ap
           JOIN api_products a ON a.id = ap.api_id
           JOIN plans p ON p.id = ap.plan_id
           LEFT JOIN plans rp ON rp.id = ap.requested_plan_id
           WHERE ap.account_id = $1 AND ($2::uuid IS NULL OR ap.id = $2)
           ORDER BY ap.created_at DESC"#,
        account.0,
        only.map(|id| id.0)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApplicationView {
            id: ApplicationId(r.id),
            account_id: AccountId(r.account_id),
            api_id: r.api_id,
            api_name: r.api_name,
            api_slug: r.api_slug,
            auth_mode: r.auth_mode,
            plan_id: PlanId(r.plan_id),
            plan_name: r.plan_name,
            requested_plan_id: r.requested_plan_id.map(PlanId),
            requested_plan_name: r.requested_plan_name,
            name: r.name,
            description: r.description,
            state: r.state,
            app_id: r.app_id,
            created_at: r.created_at,
        })
        .collect())
}

/// One application of the account, or `NotFound`.
pub async fn get(pool: &PgPool, account: AccountId, id: ApplicationId) -> Result<ApplicationView> {
    load(pool, account, Some(id)).await?.pop().ok_or(Error::NotFound)
}

pub async fn list_for_account(pool: &PgPool, account: AccountId) -> Result<Vec<ApplicationView>> {
    load(pool, account, None).await
}

/// What a provider admin can do to an application's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Approve,
    Reject,
    Suspend,
    Resume,
}

impl Transition {
    /// The state this transition leads to from `from`, if it may be made.
    pub fn next_state(self, from: ApplicationState) -> Option<ApplicationState> {
        use ApplicationState::*;
        match (self, from) {
            (Transition::Approve, Pending) => Some(Live),
            (Transition::Reject, Pending) => Some(Rejected),
            (Transition::Suspend, Live) => Some(Suspended),
            (Transition::Resume, Suspended) => Some(Live),
            _ => None,
        }
    }

    /// The verb's past participle, for "cannot be approved".
    pub fn participle(self) -> &'static str {
        match self {
            Transition::Approve => "approved",
            Transition::Reject => "rejected",
            Transition::Suspend => "suspended",
            Transition::Resume => "resumed",
        }
    }
}

/// Moves an application through its lifecycle on an admin's behalf, and
/// emails the account's owners what happened to it (a suspension too: its keys stop working).
/// Returns the new state.
pub async fn transition(
    pool: &PgPool,
    id: ApplicationId,
    to: Transition,
    actor: &Actor,
    base_url: &str,
) -> Result<ApplicationState> {
    let mut tx = pool.begin().await?;
    let from = sqlx::query_scalar!(
        r#"SELECT state AS "state: ApplicationState" FROM applications WHERE id = $1 FOR UPDATE"#,
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let next = to
        .next_state(from)
        .ok_or_else(|| Error::Conflict(format!("a {from} application cannot be {}", to.participle())))?;
    // A trial runs from when the application can first be used: an approval that took three
    // weeks must not have eaten a two-week trial (billing starts at the approval too).
    let first_live = from == ApplicationState::Pending && next == ApplicationState::Live;
    sqlx::query!(
        "UPDATE applications SET state = $2, updated_at = now(),
             trial_ends_at = CASE WHEN $3 THEN (SELECT CASE WHEN p.trial_days > 0
                                                            THEN now() + make_interval(days => p.trial_days) END
                                                 FROM plans p WHERE p.id = applications.plan_id)
                                  ELSE trial_ends_at END
         WHERE id = $1",
        id.0,
        next as ApplicationState,
        first_live
    )
    .execute(&mut *tx)
    .await?;
    record_change(&mut tx, Entity::Application, id.0, false, None).await?;
    {
        let owners = sqlx::query!(
            r#"SELECT u.email::text AS "email!", ap.name, a.name AS api_name FROM applications ap
               JOIN api_products a ON a.id = ap.api_id
               JOIN memberships m ON m.account_id = ap.account_id AND m.role = 'owner'
               JOIN users u ON u.id = m.user_id WHERE ap.id = $1"#,
            id.0
        )
        .fetch_all(&mut *tx)
        .await?;
        for owner in owners {
            let mail = messages::application_decided(&owner.email, &owner.name, &owner.api_name, to, base_url, id.0);
            enqueue(&mut tx, &mail).await?;
        }
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "application.transition",
            entity: "application",
            entity_id: Some(id.0),
            before: Some(json!({"state": from})),
            after: Some(json!({"state": next})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(next)
}

/// Deletes an application of the account; its keys stop working at once.
pub async fn delete(pool: &PgPool, account: AccountId, id: ApplicationId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let name = sqlx::query_scalar!(
        "SELECT name FROM applications WHERE id = $1 AND account_id = $2 FOR UPDATE",
        id.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let hashes = sqlx::query!("SELECT id, key_hash FROM credentials WHERE application_id = $1", id.0)
        .fetch_all(&mut *tx)
        .await?;
    for credential in &hashes {
        record_change(&mut tx, Entity::Credential, credential.id, true, Some(&credential.key_hash)).await?;
    }
    sqlx::query!("DELETE FROM applications WHERE id = $1", id.0).execute(&mut *tx).await?;
    record_change(&mut tx, Entity::Application, id.0, true, None).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "application.delete",
            entity: "application",
            entity_id: Some(id.0),
            before: Some(json!({"name": name})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Renames or re-describes an application of the account.
pub async fn update(
    pool: &PgPool,
    account: AccountId,
    id: ApplicationId,
    name: &str,
    description: &str,
    actor: &Actor,
) -> Result<()> {
    check_details(name, description)?;
    let mut tx = pool.begin().await?;
    let before = sqlx::query!(
        "SELECT name, description FROM applications WHERE id = $1 AND account_id = $2 FOR UPDATE",
        id.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    sqlx::query!(
        "UPDATE applications SET name = $2, description = $3, updated_at = now() WHERE id = $1",
        id.0,
        name.trim(),
        description.trim()
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "you already have an application with this name for this API"))?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "application.update",
            entity: "application",
            entity_id: Some(id.0),
            before: Some(json!({"name": before.name, "description": before.description})),
            after: Some(json!({"name": name.trim(), "description": description.trim()})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An application as provider admins see it, with its account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminApplicationView {
    pub id: ApplicationId,
    pub name: String,
    pub state: ApplicationState,
    pub account_id: AccountId,
    pub account_name: String,
    pub api_id: Uuid,
    pub api_name: String,
    pub plan_id: PlanId,
    pub plan_name: String,
    /// A plan change the developer asked for, waiting for approval.
    pub requested_plan_id: Option<PlanId>,
    pub requested_plan_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ApplicationFilter {
    pub state: Option<ApplicationState>,
    pub api_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    /// Matches the application or account name, case-insensitively.
    pub q: Option<String>,
    /// Only the applications after this one in the list (keyset paging: the last id of the
    /// previous page), which reads from the index at any depth where an offset walks past
    /// every skipped row. An id that is not an application leaves the list empty.
    pub after_id: Option<Uuid>,
}

pub async fn list_all(
    pool: &PgPool,
    filter: &ApplicationFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AdminApplicationView>, i64)> {
    // The same filter's count at the limit is reused for a few seconds (`count_up_to_limit`).
    let what = format!(
        "applications {:?} {:?} {:?} {:?}",
        filter.state.map(|s| s.as_str()),
        filter.api_id,
        filter.account_id,
        filter.q
    );
    let search = match filter.q.as_deref() {
        Some(q) => Some(ApplicationSearch::new(pool, q).await?),
        None => None,
    };
    if let Some(search) = &search
        && !search.common()
        && let Some(found) = search_once(pool, filter, search, &what, limit, offset).await?
    {
        return Ok(found);
    }
    let rows = load_for_admins(pool, filter, search.as_ref(), limit, offset).await?;
    let count = async {
        Ok::<i64, sqlx::Error>(match &search {
            None => {
                sqlx::query_scalar!(
                    // Counted apart from the page and only up to the limit, so a page never touches every row.
                    r#"SELECT count(*) AS "total!" FROM (
                 SELECT 1 FROM applications ap
                 WHERE ($1::application_state IS NULL OR ap.state = $1)
                   AND ($2::uuid IS NULL OR ap.api_id = $2)
                   AND ($3::uuid IS NULL OR ap.account_id = $3)
                 LIMIT $4) AS matching"#,
                    filter.state as Option<ApplicationState>,
                    filter.api_id,
                    filter.account_id,
                    crate::db::COUNT_LIMIT + 1
                )
                .fetch_one(pool)
                .await?
            }
            Some(search) if search.common() => {
                // Many names match: a scan reaches the limit soon. Planned for this pattern
                // each time (not kept), as a cached generic plan would not know that.
                sqlx::query_scalar!(
                    r#"SELECT count(*) AS "total!" FROM (
                 SELECT 1 FROM applications ap
                 WHERE (ap.name ILIKE $4
                        OR ap.account_id IN (SELECT ac.id FROM accounts ac WHERE ac.name ILIKE $6 AND lower(ac.name) LIKE lower($4)))
                   AND ($1::application_state IS NULL OR ap.state = $1)
                   AND ($2::uuid IS NULL OR ap.api_id = $2)
                   AND ($3::uuid IS NULL OR ap.account_id = $3)
                 LIMIT $5) AS matching"#,
                    filter.state as Option<ApplicationState>,
                    filter.api_id,
                    filter.account_id,
                    search.applications.pattern,
                    crate::db::COUNT_LIMIT + 1,
                    search.accounts.index_pattern
                )
                .persistent(false)
                .fetch_one(pool)
                .await?
            }
            Some(search) => {
                sqlx::query_scalar!(
                    r#"SELECT count(*) AS "total!" FROM (
                 SELECT 1 FROM applications ap
                 WHERE ap.id IN (SELECT id FROM applications WHERE name ILIKE $4 AND lower(name) LIKE lower($6)
                                 UNION SELECT m.id FROM accounts ac JOIN applications m ON m.account_id = ac.id
                                       WHERE ac.name ILIKE $7 AND lower(ac.name) LIKE lower($6))
                   AND ($1::application_state IS NULL OR ap.state = $1)
                   AND ($2::uuid IS NULL OR ap.api_id = $2)
                   AND ($3::uuid IS NULL OR ap.account_id = $3)
                 LIMIT $5) AS matching"#,
                    filter.state as Option<ApplicationState>,
                    filter.api_id,
                    filter.account_id,
                    search.applications.index_pattern,
                    crate::db::COUNT_LIMIT + 1,
                    search.applications.pattern,
                    search.accounts.index_pattern
                )
                .fetch_one(pool)
                .await?
            }
        })
    };
    let total = crate::db::count_up_to_limit(pool, what, count).await?;
    Ok((rows, total))
}

/// A name search with one trigram search instead of two (the page's and the count's, about
/// 25 ms each at 1M applications): the matches' ids are read up to the limit, and when they
/// are all there the page is cut from them here. None when that cannot answer: no search, a
/// keyset page, or more matches than the limit (then the page needs the index order).
async fn search_once(
    pool: &PgPool,
    filter: &ApplicationFilter,
    search: &ApplicationSearch,
    what: &str,
    limit: i64,
    offset: i64,
) -> Result<Option<(Vec<AdminApplicationView>, i64)>> {
    let key = crate::db::CountKey::new(pool, what);
    if filter.after_id.is_some() || key.at_limit() {
        return Ok(None);
    }
    let mut matches = sqlx::query!(
        r#"SELECT ap.id, ap.created_at FROM applications ap
           WHERE ap.id IN (SELECT id FROM applications WHERE name ILIKE $4 AND lower(name) LIKE lower($6)
                           UNION SELECT m.id FROM accounts ac JOIN applications m ON m.account_id = ac.id
                                 WHERE ac.name ILIKE $7 AND lower(ac.name) LIKE lower($6))
             AND ($1::application_state IS NULL OR ap.state = $1)
             AND ($2::uuid IS NULL OR ap.api_id = $2)
             AND ($3::uuid IS NULL OR ap.account_id = $3)
           LIMIT $5"#,
        filter.state as Option<ApplicationState>,
        filter.api_id,
        filter.account_id,
        search.applications.index_pattern,
        crate::db::COUNT_LIMIT + 1,
        search.applications.pattern,
        search.accounts.index_pattern
    )
    .fetch_all(pool)
    .await?;
    let counted = i64::try_from(matches.len()).unwrap_or(i64::MAX);
    if counted > crate::db::COUNT_LIMIT {
        key.counted(counted);
        return Ok(None);
    }
    // The list's order: newest first, then by id (uuids compare bytewise in both).
    matches.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(0);
    let page: Vec<Uuid> = matches.into_iter().skip(skip).take(take).map(|m| m.id).collect();
    let rows = rows_by_ids(pool, &page).await?;
    Ok(Some((rows, counted)))
}

/// One application for admins, whatever its account.
pub async fn get_any(pool: &PgPool, id: ApplicationId) -> Result<AdminApplicationView> {
    let mut found = rows_by_ids(pool, &[id.0]).await?;
    found.pop().ok_or(Error::NotFound)
}

async fn load_for_admins(
    pool: &PgPool,
    filter: &ApplicationFilter,
    search: Option<&ApplicationSearch>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdminApplicationView>> {
    // The page's ids first, from the applications alone: without a filter an index-only walk
    // past the offset's rows, and a plan cheap to make (Postgres plans these statements on
    // every call, and planning the page joined to four tables cost more than the walk).
    let page = match search {
        None => {
            sqlx::query_scalar!(
                r#"SELECT ap.id FROM applications ap
                   WHERE ($1::application_state IS NULL OR ap.state = $1)
                     AND ($2::uuid IS NULL OR ap.api_id = $2)
                     AND ($3::uuid IS NULL OR ap.account_id = $3)
                     -- Newest first: later rows are older, or as old with a greater id.
                     AND ($6::uuid IS NULL OR ap.created_at <= (SELECT c.created_at FROM applications c WHERE c.id = $6))
                     AND ($6::uuid IS NULL OR ap.created_at < (SELECT c.created_at FROM applications c WHERE c.id = $6) OR ap.id > $6)
                   ORDER BY ap.created_at DESC, ap.id
                   LIMIT $4 OFFSET $5"#,
                filter.state as Option<ApplicationState>,
                filter.api_id,
                filter.account_id,
                limit,
                offset,
                filter.after_id
            )
            .fetch_all(pool)
            .await?
        }
        Some(search) if search.common() => {
            // Many names match: the list's index in order, each row checked against the query.
            // Planned for this pattern each time (not kept): a cached generic plan, blind to
            // how common the pattern is, read the trigram index's list of every row (60 ms).
            sqlx::query_scalar!(
                r#"SELECT ap.id FROM applications ap
                   WHERE (ap.name ILIKE $7
                          OR ap.account_id IN (SELECT ac.id FROM accounts ac WHERE ac.name ILIKE $8 AND lower(ac.name) LIKE lower($7)))
                     AND ($1::application_state IS NULL OR ap.state = $1)
                     AND ($2::uuid IS NULL OR ap.api_id = $2)
                     AND ($3::uuid IS NULL OR ap.account_id = $3)
                     AND ($6::uuid IS NULL OR ap.created_at <= (SELECT c.created_at FROM applications c WHERE c.id = $6))
                     AND ($6::uuid IS NULL OR ap.created_at < (SELECT c.created_at FROM applications c WHERE c.id = $6) OR ap.id > $6)
                   ORDER BY ap.created_at DESC, ap.id
                   LIMIT $4 OFFSET $5"#,
                filter.state as Option<ApplicationState>,
                filter.api_id,
                filter.account_id,
                limit,
                offset,
                filter.after_id,
                search.applications.pattern,
                search.accounts.index_pattern
            )
            .persistent(false)
            .fetch_all(pool)
            .await?
        }
        Some(search) => {
            // A search is its own statement: behind `$n IS NULL OR …` Postgres cannot turn the
            // name match into a join, and tests every application against it (0.3 s at 1M).
            sqlx::query_scalar!(
                r#"SELECT ap.id FROM applications ap
                   -- Applications whose name or account's name matches (trigram indexes).
                   WHERE ap.id IN (SELECT id FROM applications WHERE name ILIKE $7 AND lower(name) LIKE lower($8)
                                   UNION SELECT m.id FROM accounts ac JOIN applications m ON m.account_id = ac.id
                                         WHERE ac.name ILIKE $9 AND lower(ac.name) LIKE lower($8))
                     AND ($1::application_state IS NULL OR ap.state = $1)
                     AND ($2::uuid IS NULL OR ap.api_id = $2)
                     AND ($3::uuid IS NULL OR ap.account_id = $3)
                     AND ($6::uuid IS NULL OR ap.created_at <= (SELECT c.created_at FROM applications c WHERE c.id = $6))
                     AND ($6::uuid IS NULL OR ap.created_at < (SELECT c.created_at FROM applications c WHERE c.id = $6) OR ap.id > $6)
                   ORDER BY ap.created_at DESC, ap.id
                   LIMIT $4 OFFSET $5"#,
                filter.state as Option<ApplicationState>,
                filter.api_id,
                filter.account_id,
                limit,
                offset,
                filter.after_id,
                search.applications.index_pattern,
                search.applications.pattern,
                search.accounts.index_pattern
            )
            .fetch_all(pool)
            .await?
        }
    };
    rows_by_ids(pool, &page).await
}

/// The applications of a page with their account, API and plan names, in the list's order
/// (newest first, then by id).
async fn rows_by_ids(pool: &PgPool, page: &[Uuid]) -> Result<Vec<AdminApplicationView>> {
    let rows = sqlx::query_as!(
        AdminRow,
        r#"SELECT ap.id, ap.name, ap.state AS "state: ApplicationState", ap.account_id, ac.name AS account_name, ap.api_id, a.name AS api_name,
                  ap.plan_id, p.name AS plan_name, ap.requested_plan_id, rp.name AS "requested_plan_name?", ap.created_at
           FROM applications ap
           JOIN accounts ac ON ac.id = ap.account_id
           JOIN api_products a ON a.id = ap.api_id
           JOIN plans p ON p.id = ap.plan_id
           LEFT JOIN plans rp ON rp.id = ap.requested_plan_id
           WHERE ap.id = ANY($1)
           ORDER BY ap.created_at DESC, ap.id"#,
        page
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AdminApplicationView::from).collect())
}

/// A search of the admin list: applications whose name, or whose account's name, contains
/// the query (each column's index asked for the query's uncommon words there).
struct ApplicationSearch {
    applications: NameSearch,
    accounts: NameSearch,
}

impl ApplicationSearch {
    /// Many application names match. (A query common only among account names stays on the
    /// trigram indexes: walking the applications for it reads every account to build the set.)
    fn common(&self) -> bool {
        self.applications.common
    }

    async fn new(pool: &PgPool, q: &str) -> Result<ApplicationSearch> {
        Ok(ApplicationSearch {
            applications: name_search(pool, NameColumn::Applications, q).await?,
            accounts: name_search(pool, NameColumn::Accounts, q).await?,
        })
    }
}

/// One row of [`rows_by_ids`].
struct AdminRow {
    id: Uuid,
    name: String,
    state: ApplicationState,
    account_id: Uuid,
    account_name: String,
    api_id: Uuid,
    api_name: String,
    plan_id: Uuid,
    plan_name: String,
    requested_plan_id: Option<Uuid>,
    requested_plan_name: Option<String>,
    created_at: OffsetDateTime,
}

impl From<AdminRow> for AdminApplicationView {
    fn from(r: AdminRow) -> Self {
        AdminApplicationView {
            id: ApplicationId(r.id),
            name: r.name,
            state: r.state,
            account_id: AccountId(r.account_id),
            account_name: r.account_name,
            api_id: r.api_id,
            api_name: r.api_name,
            plan_id: PlanId(r.plan_id),
            plan_name: r.plan_name,
            requested_plan_id: r.requested_plan_id.map(PlanId),
            requested_plan_name: r.requested_plan_name,
            created_at: r.created_at,
        }
    }
}
