//! Plan changes a developer asks for (issue 12). A move to a plan without
//! approval happens at once: the subscription trigger prorates the month and a
//! config change tells the agents the new limits. A move to a plan that needs
//! approval waits in `applications.requested_plan_id` until a provider admin
//! approves or rejects it; until then the application keeps its plan, limits
//! and fees.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{ApplicationId, ApplicationState};
use crate::accounts::AccountId;
use crate::audit::{self, Actor, Entry};
use crate::mail::messages;
use crate::notifications::{self, NewNotification, Recipient};
use crate::plans::{Charges, PlanId};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// A plan an application may move to: another published plan of its API.
#[derive(Debug, Clone)]
pub struct PlanChoice {
    pub plan_id: PlanId,
    pub name: String,
    pub description: String,
    pub charges: Charges,
    pub approval_required: bool,
}

/// The other plans the account's application may move to, cheapest first.
pub async fn choices(pool: &PgPool, account: AccountId, app: ApplicationId) -> Result<Vec<PlanChoice>> {
    let rows = sqlx::query!(
        r#"SELECT p.id, p.name, p.description, p.setup_fee, p.monthly_fee, p.trial_days, p.currency,
                  p.approval_required,
                  EXISTS (SELECT 1 FROM pricing_rules r WHERE r.plan_id = p.id AND r.price_per_unit > 0)
                      AS "usage_priced!"
         FROM applications ap
         JOIN api_products a ON a.id = ap.api_id AND api_open_to(a.id, a.state, ap.account_id)
         JOIN plans now ON now.id = ap.plan_id
         JOIN plans p ON p.api_id = ap.api_id AND p.published AND p.id <> ap.plan_id AND p.time_zone = now.time_zone
         WHERE ap.id = $1 AND ap.account_id = $2
         ORDER BY p.monthly_fee, p.position, p.name"#,
        app.0,
        account.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanChoice {
            plan_id: PlanId(r.id),
            name: r.name,
            description: r.description,
            charges: Charges {
                setup_fee: r.setup_fee,
                monthly_fee: r.monthly_fee,
                trial_days: r.trial_days,
                currency: r.currency,
                usage_priced: r.usage_priced,
            },
            approval_required: r.approval_required,
        })
        .collect())
}

/// What a developer's plan change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChangeOutcome {
    /// The application is on the new plan now.
    Changed,
    /// The new plan needs approval: the request waits for an admin.
    Requested,
}

/// Moves the account's application to another published plan of its API, or
/// asks for the move when that plan needs approval; then every admin is mailed
/// and notified, with a link to the application under `base_url`. Only a live or
/// suspended application changes plan (a pending one is still waiting for its first).
pub async fn request(
    pool: &PgPool,
    account: AccountId,
    app: ApplicationId,
    plan: PlanId,
    actor: &Actor,
    base_url: &str,
) -> Result<PlanChangeOutcome> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        r#"SELECT ap.api_id, ap.plan_id, ap.requested_plan_id, ap.state AS "state: ApplicationState", ap.name,
                  ac.name AS account_name, a.name AS api_name, p.name AS plan_name
           FROM applications ap JOIN accounts ac ON ac.id = ap.account_id
           JOIN api_products a ON a.id = ap.api_id JOIN plans p ON p.id = ap.plan_id
           WHERE ap.id = $1 AND ap.account_id = $2 FOR UPDATE OF ap"#,
        app.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    may_move(current.state, current.plan_id, plan)?;
    let target = sqlx::query!(
        "SELECT p.approval_required, p.name FROM plans p JOIN api_products a ON a.id = p.api_id
         WHERE p.id = $1 AND p.api_id = $2 AND p.published AND api_open_to(a.id, a.state, $3)",
        plan.0,
        current.api_id,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::invalid("plan_id", "choose a published plan of the application's API"))?;
    same_time_zone(&mut tx, app.0, plan.0).await?;
    let outcome = if target.approval_required {
        sqlx::query!(
            "UPDATE applications SET requested_plan_id = $2, plan_requested_at = now(), updated_at = now() WHERE id = $1",
            app.0,
            plan.0
        )
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor,
            Entry {
                action: "application.request_plan",
                entity: "application",
                entity_id: Some(app.0),
                before: Some(json!({"plan_id": current.plan_id, "requested_plan_id": current.requested_plan_id})),
                after: Some(json!({"plan_id": current.plan_id, "requested_plan_id": plan.0})),
            },
        )
        .await?;
        let request = messages::PlanChangeRequest {
            app_name: &current.name,
            account_name: &current.account_name,
            api_name: &current.api_name,
            from_plan: &current.plan_name,
            to_plan: &target.name,
            link: &format!("{base_url}{}", admin_link(app)),
        };
        tell_admins(&mut tx, app, &request).await?;
        PlanChangeOutcome::Requested
    } else {
        change_to(&mut tx, app, current.plan_id, plan, actor).await?;
        PlanChangeOutcome::Changed
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Where admins decide an application's plan change: its row in the admin list.
pub fn admin_link(app: ApplicationId) -> String {
    format!("/admin/applications?id={}", app.0)
}

/// Mail and a notification to every admin, in the request's transaction.
async fn tell_admins(
    tx: &mut sqlx::PgConnection,
    app: ApplicationId,
    request: &messages::PlanChangeRequest<'_>,
) -> Result<()> {
    let link = admin_link(app);
    let body = format!(
        "{} asks to move {} from the {} plan to the {} plan of {}.",
        request.account_name, request.app_name, request.from_plan, request.to_plan, request.api_name
    );
    for (user, email) in notifications::admins(&mut *tx).await? {
        let mail = messages::plan_change_requested(&email, request);
        notifications::tell(&mut *tx, user, &mail, "plan_change_requested", &body, &link).await?;
    }
    Ok(())
}

/// Whether an application in `state` on `current` may move to `plan`, by its developer or an
/// admin: a pending one is decided on the plan it asked for, a rejected one has none, and
/// the plan it is on is no move.
fn may_move(state: ApplicationState, current: Uuid, plan: PlanId) -> Result<()> {
    if !matches!(state, ApplicationState::Live | ApplicationState::Suspended) {
        return Err(Error::Conflict(format!("a {state} application cannot change plan")));
    }
    if current == plan.0 {
        return Err(Error::invalid("plan_id", "the application is on this plan already"));
    }
    Ok(())
}

/// An admin moves an application to another plan of the same API, approval or not;
/// a plan change the developer asked for is settled by this move.
pub async fn change_by_admin(pool: &PgPool, id: ApplicationId, plan: PlanId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        r#"SELECT api_id, plan_id, state AS "state: ApplicationState" FROM applications WHERE id = $1 FOR UPDATE"#,
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    may_move(current.state, current.plan_id, plan)?;
    let same_api = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM plans WHERE id = $1 AND api_id = $2) AS "ok!""#,
        plan.0,
        current.api_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !same_api {
        return Err(Error::invalid("plan_id", "choose a plan of the application's API"));
    }
    change_to(&mut tx, id, current.plan_id, plan, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// Moves the application from plan `from` to `to` at once, audited.
async fn change_to(
    tx: &mut sqlx::PgConnection,
    app: ApplicationId,
    from: Uuid,
    to: PlanId,
    actor: &Actor,
) -> Result<()> {
    move_to(&mut *tx, app.0, to.0).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "application.change_plan",
            entity: "application",
            entity_id: Some(app.0),
            before: Some(json!({"plan_id": from})),
            after: Some(json!({"plan_id": to.0})),
        },
    )
    .await
}

/// Withdraws the account's waiting plan change request, if any.
pub async fn withdraw(pool: &PgPool, account: AccountId, app: ApplicationId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let requested = sqlx::query_scalar!(
        "SELECT requested_plan_id FROM applications WHERE id = $1 AND account_id = $2 FOR UPDATE",
        app.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let Some(requested) = requested else { return Ok(()) };
    clear_request(&mut tx, app.0).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "application.withdraw_plan",
            entity: "application",
            entity_id: Some(app.0),
            before: Some(json!({"requested_plan_id": requested})),
            after: Some(json!({"requested_plan_id": null})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A provider admin's answer to a plan change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// Approves (the application moves to the requested plan now) or rejects (it
/// stays) a waiting request, tells the account in the portal, and audits it.
/// Without a waiting request it is a conflict (409).
pub async fn decide(pool: &PgPool, app: ApplicationId, decision: Decision, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        r#"SELECT ap.account_id, ap.name, ap.plan_id, ap.requested_plan_id, p.name AS "requested_name?"
           FROM applications ap LEFT JOIN plans p ON p.id = ap.requested_plan_id
           WHERE ap.id = $1 FOR UPDATE OF ap"#,
        app.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let (Some(requested), Some(requested_name)) = (current.requested_plan_id, current.requested_name) else {
        return Err(Error::Conflict("no plan change is waiting for a decision on this application".into()));
    };
    let (action, after, title, body) = match decision {
        Decision::Approve => {
            move_to(&mut tx, app.0, requested).await?;
            (
                "application.approve_plan",
                json!({"plan_id": requested}),
                format!("{} moved to the {requested_name} plan", current.name),
                format!(
                    "The provider approved your plan change: {} is on the {requested_name} plan now, with its limits and prices.",
                    current.name
                ),
            )
        }
        Decision::Reject => {
            clear_request(&mut tx, app.0).await?;
            (
                "application.reject_plan",
                json!({"plan_id": current.plan_id}),
                format!("Plan change for {} declined", current.name),
                format!(
                    "The provider declined moving {} to the {requested_name} plan; it stays on its current plan.",
                    current.name
                ),
            )
        }
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action,
            entity: "application",
            entity_id: Some(app.0),
            before: Some(json!({"plan_id": current.plan_id, "requested_plan_id": requested})),
            after: Some(after),
        },
    )
    .await?;
    let link = format!("/apps/{}", app.0);
    notifications::insert(
        &mut tx,
        &NewNotification {
            to: Recipient::Account(current.account_id),
            kind: "plan_change",
            title: &title,
            body: &body,
            link: Some(&link),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Puts the application on `plan` (the trigger on `applications` closes and opens its
/// subscription segments, so billing prorates) and tells the agents its new limits.
async fn move_to(tx: &mut sqlx::PgConnection, app: Uuid, plan: Uuid) -> Result<()> {
    same_time_zone(&mut *tx, app, plan).await?;
    sqlx::query!(
        "UPDATE applications SET plan_id = $2, requested_plan_id = NULL, plan_requested_at = NULL, updated_at = now()
         WHERE id = $1",
        app,
        plan
    )
    .execute(&mut *tx)
    .await?;
    record_change(tx, Entity::Application, app, false, None).await?;
    Ok(())
}

/// An application moves only between plans that count months in one time zone: its usage is
/// filed in month buckets of its plan's zone as it arrives, and a month's invoice reads the
/// buckets of one zone, so a move across zones would leave part of a month unbilled.
async fn same_time_zone(tx: &mut sqlx::PgConnection, app: Uuid, plan: Uuid) -> Result<()> {
    let zones = sqlx::query!(
        r#"SELECT now.time_zone AS current, p.time_zone AS target
           FROM applications a JOIN plans now ON now.id = a.plan_id JOIN plans p ON p.id = $2
           WHERE a.id = $1"#,
        app,
        plan
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if zones.current != zones.target {
        return Err(Error::invalid(
            "plan_id",
            format!(
                "this plan counts its months in {}, the application's in {}: an application moves only between plans of one time zone",
                zones.target, zones.current
            ),
        ));
    }
    Ok(())
}

async fn clear_request(tx: &mut sqlx::PgConnection, app: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE applications SET requested_plan_id = NULL, plan_requested_at = NULL, updated_at = now() WHERE id = $1",
        app
    )
    .execute(tx)
    .await?;
    Ok(())
}
