//! A draft API's preview in the admin API: opened to every developer or to chosen accounts,
//! it lists the draft in their catalog and takes subscriptions to its published plans, while
//! the gateway answers from mocks only. See docs/MOCKS.md.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::accounts::AccountId;
use tollgate_core::apis::ApiId;
use tollgate_core::apis::preview::{self, Audience, Preview};
use tollgate_core::db::PgPool;
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::{parse_json, rfc3339};

/// Who sees a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudienceOut {
    /// Every developer, and visitors of the catalog.
    Everyone,
    /// Members of the listed accounts only.
    Accounts,
}

/// An account a preview is open to.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewAccountOut {
    pub id: Uuid,
    pub name: String,
}

/// A draft API's preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Developers see the draft in their catalog and can subscribe to its published plans.
    pub open: bool,
    /// Absent when closed.
    pub audience: Option<AudienceOut>,
    /// The accounts it is open to (audience `accounts`).
    pub accounts: Vec<PreviewAccountOut>,
    #[schema(format = DateTime)]
    pub opened_at: Option<String>,
}

impl From<Option<Preview>> for PreviewOut {
    fn from(preview: Option<Preview>) -> Self {
        let Some(preview) = preview else {
            return PreviewOut { open: false, audience: None, accounts: Vec::new(), opened_at: None };
        };
        let audience = match preview.audience {
            Audience::Everyone => AudienceOut::Everyone,
            Audience::Accounts(_) => AudienceOut::Accounts,
        };
        PreviewOut {
            open: true,
            audience: Some(audience),
            accounts: preview
                .account_names
                .into_iter()
                .map(|(id, name)| PreviewAccountOut { id: id.0, name })
                .collect(),
            opened_at: Some(rfc3339(preview.opened_at)),
        }
    }
}

/// Whom to open the preview to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    pub audience: AudienceOut,
    /// The developer accounts, with audience `accounts` (1 or more); empty otherwise.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub account_ids: Vec<Uuid>,
}

/// The API's preview: open or not, and to whom.
#[utoipa::path(get, operation_id = "get_api_preview", path = "/admin/api/v1/apis/{id}/preview", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 200, body = PreviewOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(PreviewOut::from(preview::get(&pool, id).await?)))
}

/// Open a draft's preview (or change its audience): developers see it in the catalog,
/// marked as a preview, and subscribe to its published plans; the gateway answers from
/// mocks only until the API is published, which ends the preview.
#[utoipa::path(put, operation_id = "open_api_preview", path = "/admin/api/v1/apis/{id}/preview", tag = "apis", params(("id" = Uuid, Path)), request_body = PreviewIn,
    responses((status = 200, body = PreviewOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The API is not a draft, or has no operation in mock mode"),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    let input: PreviewIn = parse_json(&body)?;
    let audience = match input.audience {
        AudienceOut::Everyone if !input.account_ids.is_empty() => {
            return Err(tollgate_core::Error::invalid(
                "account_ids",
                "a preview for everyone names no accounts; use audience \"accounts\" to choose them",
            )
            .into());
        }
        AudienceOut::Everyone => Audience::Everyone,
        AudienceOut::Accounts => Audience::Accounts(input.account_ids.into_iter().map(AccountId).collect()),
    };
    let opened = preview::open(&pool, id, &audience, &actor).await?;
    Ok(HttpResponse::Ok().json(PreviewOut::from(Some(opened))))
}

/// Close the preview: the draft leaves the catalog and takes no new subscriptions; the
/// applications made meanwhile keep their keys for the API's publication.
#[utoipa::path(delete, operation_id = "close_api_preview", path = "/admin/api/v1/apis/{id}/preview", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    preview::close(&pool, id, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
