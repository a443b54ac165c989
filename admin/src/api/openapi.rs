use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, apis, applications, audit, error, gateways, page, plans, rules};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description =
            Some("An admin token (`tg_adm_…`), from the admin UI or `tollgate admin token --email E`.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", version = "1", description = "Manage API products, plans, applications, accounts and gateways. Errors are `{\"error\": \"<code>\", \"message\": \"…\"}`."),
    paths(
        apis::list, apis::import, apis::show, apis::update, apis::lifecycle, apis::stage_version, apis::show_version, apis::publish_version,
        rules::list_metrics, rules::add_metric, rules::list_rules, rules::add_rule, rules::delete_rule,
        plans::list, plans::create, plans::show, plans::replace, plans::delete, plans::copy,
        applications::list, applications::show, applications::act, applications::change_plan,
        accounts::list, accounts::show, accounts::set_state,
        audit::list, gateways::list,
    ),
    components(schemas(error::ErrorBody, page::Page<apis::ApiOut>)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}
