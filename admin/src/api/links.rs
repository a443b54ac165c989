//! OpenAPI `links` of the admin API: which answer supplies the ids of which
//! next call (the API created by an import is read, changed and planned;
//! a plan created is read, replaced, copied and deleted…). Clients and
//! tools such as schemathesis's stateful phase follow them to real resources.

use utoipa::Modify;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

/// `(operation, status, [(link name, target operation, [(parameter, expression)])])`.
type LinkTable = &'static [(&'static str, &'static str, &'static [(&'static str, &'static str, Params)])];
type Params = &'static [(&'static str, &'static str)];

const API_ID: Params = &[("id", "$response.body#/id")];
const FIRST_API_ID: Params = &[("id", "$response.body#/items/0/id")];
const SAME_API: Params = &[("id", "$request.path.id")];
const PLAN_ID: Params = &[("id", "$response.body#/id")];
const FIRST_ITEM_ID: Params = &[("id", "$response.body#/items/0/id")];

/// Everything that can be done to an API once its id is known.
macro_rules! api_links {
    ($params:expr) => {
        &[
            ("GetApi", "get_api", $params),
            ("UpdateApi", "update_api", $params),
            ("MoveApi", "move_api", $params),
            ("DeleteApi", "delete_api", $params),
            ("StageVersion", "stage_version", $params),
            ("ListMetrics", "list_metrics", $params),
            ("AddMetric", "add_metric", $params),
            ("ListMappingRules", "list_mapping_rules", $params),
            ("AddMappingRule", "add_mapping_rule", $params),
            ("ListPlans", "list_plans", $params),
            ("CreatePlan", "create_plan", $params),
            ("GetRouting", "get_routing", $params),
            ("SetUpstreamWeights", "set_upstream_weights", $params),
            ("UpstreamGroupUsage", "upstream_group_usage", $params),
        ]
    };
}

/// Everything that can be done to a plan once its id is known.
macro_rules! plan_links {
    ($params:expr) => {
        &[
            ("GetPlan", "get_plan", $params),
            ("ReplacePlan", "replace_plan", $params),
            ("CopyPlan", "copy_plan", $params),
            ("DeletePlan", "delete_plan", $params),
            ("SetPlanUpstreamGroup", "set_plan_upstream_group", $params),
        ]
    };
}

/// A key of the application in the path, by the id in the answer.
const KEY_ID: Params = &[("id", "$request.path.id"), ("key", "$response.body#/id")];

/// Everything that can be done to an account once its id is known.
macro_rules! account_links {
    ($params:expr) => {
        &[
            ("GetAccount", "get_account", $params),
            ("InviteToAccount", "invite_to_account", $params),
            ("CreateApplication", "create_application", $params),
            ("SetAccountState", "set_account_state", $params),
        ]
    };
}

/// Everything that can be done to a gateway agent once its id is known.
macro_rules! gateway_links {
    ($params:expr) => {
        &[
            ("GetGateway", "get_gateway", $params),
            ("RenameGateway", "rename_gateway", $params),
            ("RevokeGateway", "revoke_gateway", $params),
        ]
    };
}

/// What can be done to an application's keys once its id is known.
macro_rules! key_links {
    ($params:expr) => {
        &[
            ("GetApplication", "get_application", $params),
            ("ListKeys", "list_application_keys", $params),
            ("IssueKey", "issue_application_key", $params),
        ]
    };
}

/// Everything that can be done to a webhook subscription once its id is known.
macro_rules! webhook_links {
    ($params:expr) => {
        &[
            ("GetWebhook", "get_webhook", $params),
            ("ReplaceWebhook", "replace_webhook", $params),
            ("ListWebhookDeliveries", "list_webhook_deliveries", $params),
            ("DeleteWebhook", "delete_webhook", $params),
        ]
    };
}

const LINKS: LinkTable = &[
    ("create_webhook", "201", webhook_links!(API_ID)),
    ("get_webhook", "200", webhook_links!(API_ID)),
    ("replace_webhook", "200", webhook_links!(API_ID)),
    ("list_webhooks", "200", webhook_links!(&[("id", "$response.body#/0/id")])),
    (
        "list_webhook_deliveries",
        "200",
        &[(
            "RedeliverWebhookDelivery",
            "redeliver_webhook_delivery",
            &[("id", "$request.path.id"), ("delivery", "$response.body#/items/0/id")],
        )],
    ),
    ("import_api", "201", api_links!(API_ID)),
    ("list_apis", "200", api_links!(FIRST_API_ID)),
    ("get_api", "200", api_links!(API_ID)),
    ("update_api", "200", &[("GetApi", "get_api", API_ID), ("MoveApi", "move_api", API_ID)]),
    ("move_api", "200", &[("GetApi", "get_api", API_ID), ("MoveApi", "move_api", API_ID)]),
    (
        "stage_version",
        "201",
        &[
            ("GetVersion", "get_version", &[("id", "$request.path.id"), ("number", "$response.body#/number")]),
            ("PublishVersion", "publish_version", &[("id", "$request.path.id"), ("number", "$response.body#/number")]),
        ],
    ),
    (
        "get_version",
        "200",
        &[("PublishVersion", "publish_version", &[("id", "$request.path.id"), ("number", "$request.path.number")])],
    ),
    (
        "publish_version",
        "200",
        &[
            ("GetVersion", "get_version", &[("id", "$request.path.id"), ("number", "$request.path.number")]),
            ("GetApi", "get_api", SAME_API),
        ],
    ),
    (
        "add_metric",
        "201",
        &[("ListMetrics", "list_metrics", SAME_API), ("AddMappingRule", "add_mapping_rule", SAME_API)],
    ),
    (
        "add_mapping_rule",
        "201",
        &[
            ("ListMappingRules", "list_mapping_rules", SAME_API),
            (
                "DeleteMappingRule",
                "delete_mapping_rule",
                &[("id", "$request.path.id"), ("rule", "$response.body#/0/id")],
            ),
        ],
    ),
    (
        "list_mapping_rules",
        "200",
        &[(
            "DeleteMappingRule",
            "delete_mapping_rule",
            &[("id", "$request.path.id"), ("rule", "$response.body#/0/id")],
        )],
    ),
    ("create_plan", "201", plan_links!(PLAN_ID)),
    ("copy_plan", "201", plan_links!(PLAN_ID)),
    ("get_plan", "200", plan_links!(PLAN_ID)),
    ("replace_plan", "200", plan_links!(PLAN_ID)),
    ("list_plans", "200", plan_links!(&[("id", "$response.body#/0/id")])),
    (
        "list_applications",
        "200",
        &[
            ("GetApplication", "get_application", FIRST_ITEM_ID),
            ("ActOnApplication", "act_on_application", FIRST_ITEM_ID),
            ("ChangeApplicationPlan", "change_application_plan", FIRST_ITEM_ID),
            ("DecidePlanRequest", "decide_application_plan_request", FIRST_ITEM_ID),
            ("ListKeys", "list_application_keys", FIRST_ITEM_ID),
            ("IssueKey", "issue_application_key", FIRST_ITEM_ID),
        ],
    ),
    (
        "get_application",
        "200",
        &[
            ("ActOnApplication", "act_on_application", API_ID),
            ("ChangeApplicationPlan", "change_application_plan", API_ID),
            ("DecidePlanRequest", "decide_application_plan_request", API_ID),
            ("ListPlansOfItsApi", "list_plans", &[("id", "$response.body#/api_id")]),
            ("ListKeys", "list_application_keys", API_ID),
            ("IssueKey", "issue_application_key", API_ID),
        ],
    ),
    ("act_on_application", "200", &[("GetApplication", "get_application", API_ID)]),
    ("change_application_plan", "200", &[("GetApplication", "get_application", API_ID)]),
    ("decide_application_plan_request", "200", &[("GetApplication", "get_application", API_ID)]),
    ("list_accounts", "200", account_links!(FIRST_ITEM_ID)),
    ("get_account", "200", account_links!(API_ID)),
    (
        "list_invoices",
        "200",
        &[
            ("GetInvoice", "get_invoice", FIRST_ITEM_ID),
            ("TransitionInvoice", "transition_invoice", FIRST_ITEM_ID),
            ("RecordInvoicePayment", "record_invoice_payment", FIRST_ITEM_ID),
        ],
    ),
    (
        "get_invoice",
        "200",
        &[
            ("TransitionInvoice", "transition_invoice", API_ID),
            ("RecordInvoicePayment", "record_invoice_payment", API_ID),
        ],
    ),
    ("transition_invoice", "200", &[("GetInvoice", "get_invoice", API_ID)]),
    ("record_invoice_payment", "201", &[("GetInvoice", "get_invoice", API_ID)]),
    ("set_account_state", "200", &[("GetAccount", "get_account", API_ID)]),
    ("create_account", "201", account_links!(API_ID)),
    ("register_gateway", "201", gateway_links!(API_ID)),
    ("list_gateways", "200", gateway_links!(&[("id", "$response.body#/0/id")])),
    ("get_gateway", "200", gateway_links!(API_ID)),
    ("rename_gateway", "200", gateway_links!(API_ID)),
    ("create_application", "201", key_links!(API_ID)),
    (
        "issue_application_key",
        "201",
        &[
            ("RotateKey", "rotate_application_key", KEY_ID),
            ("RevokeKey", "revoke_application_key", KEY_ID),
            ("ListKeys", "list_application_keys", SAME_API),
        ],
    ),
    (
        "rotate_application_key",
        "201",
        &[
            ("RotateReplacement", "rotate_application_key", KEY_ID),
            ("RevokeReplacement", "revoke_application_key", KEY_ID),
            ("ListKeys", "list_application_keys", SAME_API),
        ],
    ),
    ("create_admin_token", "201", &[("RevokeAdminToken", "revoke_admin_token", API_ID)]),
];

pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        for path in openapi.paths.paths.values_mut() {
            let operations =
                [path.get.as_mut(), path.put.as_mut(), path.post.as_mut(), path.delete.as_mut(), path.patch.as_mut()];
            for operation in operations.into_iter().flatten() {
                let Some(id) = operation.operation_id.clone() else { continue };
                for (_, status, links) in LINKS.iter().filter(|(op, _, _)| *op == id) {
                    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else { continue };
                    for (name, target, params) in links.iter() {
                        let link = params
                            .iter()
                            .fold(LinkBuilder::new().operation_id(*target), |b, (param, expr)| {
                                b.parameter(*param, serde_json::Value::from(*expr))
                            })
                            .build();
                        response.links.insert((*name).to_owned(), RefOr::T(link));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi as _;

    #[test]
    fn every_link_joins_two_operations_of_the_document() {
        let doc = super::super::ApiDoc::openapi();
        let ids: Vec<String> = doc
            .paths
            .paths
            .values()
            .flat_map(|p| [&p.get, &p.put, &p.post, &p.delete, &p.patch])
            .flatten()
            .filter_map(|o| o.operation_id.clone())
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique: {ids:?}");
        for (source, _, links) in LINKS {
            assert!(ids.iter().any(|id| id == source), "{source}");
            for (_, target, _) in links.iter() {
                assert!(ids.iter().any(|id| id == target), "{source} -> {target}");
            }
        }
    }
}
