//! The breaking-change detector on paired versions: every breaking kind is
//! found, and non-breaking changes are not flagged.

use serde_json::{Value, json};
use tollgate_openapi::diff::{ChangeKind, ChangeReport, compare};
use tollgate_openapi::import;

use crate::read_spec;

fn base() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets", "summary": "List pets",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "format": "int32"}},
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["available", "sold"]}}
                    ],
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}},
                        "404": {"description": "none"}
                    }
                },
                "post": {
                    "operationId": "createPet",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}},
                                                                  "application/xml": {"schema": {"$ref": "#/components/schemas/NewPet"}}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}},
                                                                                 "application/xml": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                }
            },
            "/pets/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "get": {"operationId": "getPet", "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}},
                "delete": {"operationId": "deletePet", "responses": {"204": {"description": "gone"}}},
                "patch": {"operationId": "patchPet", "responses": {"200": {"description": "ok"}}}
            }
        },
        "components": {"schemas": {
            "Pet": {"type": "object", "required": ["id", "name"], "properties": {
                "id": {"type": "integer", "format": "int64", "readOnly": true},
                "name": {"type": "string"},
                "status": {"type": "string", "enum": ["available", "sold"]},
                "tag": {"type": "string"},
                "kind": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}]}}},
            "NewPet": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "tag": {"type": "string"},
                "weight": {"type": "integer", "format": "int32"},
                "kind": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}]}}},
            "Cat": {"type": "object", "properties": {"meows": {"type": "boolean"}}},
            "Dog": {"type": "object", "properties": {"barks": {"type": "boolean"}}},
            "Bird": {"type": "object", "properties": {"sings": {"type": "boolean"}}}
        }}
    })
}

fn at<'v>(doc: &'v mut Value, pointer: &str) -> &'v mut Value {
    doc.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the base document"))
}

/// Each change once per operation it affects: (kind, breaking, operation).
pub fn per_operation(report: &ChangeReport) -> Vec<(ChangeKind, bool, String)> {
    report
        .changes
        .iter()
        .flat_map(|c| report.operations_of(c).map(move |op| (c.kind, c.breaking, op.to_owned())))
        .collect()
}

fn report(old: &Value, new: &Value) -> ChangeReport {
    let old = import::parse(&old.to_string()).expect("old version parses");
    let new = import::parse(&new.to_string()).expect("new version parses");
    compare(&old.model, &new.model)
}

/// Applies `change` to the base document and checks the report lists
/// exactly `expected` (kind, breaking, operation), in any order.
fn check(name: &str, change: impl FnOnce(&mut Value), expected: &[(ChangeKind, bool, &str)]) {
    let old = base();
    let mut new = base();
    change(&mut new);
    let report = report(&old, &new);
    let mut got = per_operation(&report);
    let mut want: Vec<(ChangeKind, bool, String)> =
        expected.iter().map(|(k, b, o)| (*k, *b, (*o).to_owned())).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{name}:\n{report}");
    assert_eq!(report.breaking(), expected.iter().any(|e| e.1), "{name}");
    assert_eq!(report.breaking_count + report.non_breaking_count, report.changes.len(), "{name}");
    for c in &report.changes {
        assert!(c.pointer.starts_with('/'), "{name}: {c:?}");
        assert!(!c.message.is_empty() && c.message.ends_with('.'), "{name}: {c:?}");
    }
}

use ChangeKind::*;

#[test]
fn operations_added_and_removed() {
    check(
        "remove",
        |d| drop(at(d, "/paths/~1pets~1{id}").as_object_mut().and_then(|o| o.remove("delete"))),
        &[(OperationRemoved, true, "DELETE /pets/{id}")],
    );
    check(
        "add",
        |d| at(d, "/paths/~1pets~1{id}")["put"] = json!({"responses": {"200": {"description": "ok"}}}),
        &[(OperationAdded, false, "PUT /pets/{id}")],
    );
    check(
        "rename path parameter",
        |d| {
            let item = at(d, "/paths").as_object_mut().and_then(|p| p.remove("/pets/{id}")).expect("item");
            at(d, "/paths")["/pets/{petId}"] = item;
            *at(d, "/paths/~1pets~1{petId}/parameters/0/name") = json!("petId");
        },
        &[
            (PathParameterRenamed, false, "GET /pets/{petId}"),
            (PathParameterRenamed, false, "DELETE /pets/{petId}"),
            (PathParameterRenamed, false, "PATCH /pets/{petId}"),
        ],
    );
}

#[test]
fn parameters() {
    check(
        "new required parameter",
        |d| {
            at(d, "/paths/~1pets/get/parameters")
                .as_array_mut()
                .expect("array")
                .push(json!({"name": "owner", "in": "query", "required": true, "schema": {"type": "string"}}))
        },
        &[(ParameterAddedRequired, true, "GET /pets")],
    );
    check(
        "new optional parameter",
        |d| {
            at(d, "/paths/~1pets/get/parameters")
                .as_array_mut()
                .expect("array")
                .push(json!({"name": "X-Trace", "in": "header", "schema": {"type": "string"}}))
        },
        &[(ParameterAdded, false, "GET /pets")],
    );
    check(
        "parameter became required",
        |d| at(d, "/paths/~1pets/get/parameters/0")["required"] = json!(true),
        &[(ParameterBecameRequired, true, "GET /pets")],
    );
    check(
        "parameter removed",
        |d| drop(at(d, "/paths/~1pets/get/parameters").as_array_mut().expect("array").remove(0)),
        &[(ParameterRemoved, false, "GET /pets")],
    );
    check(
        "parameter type",
        |d| *at(d, "/paths/~1pets/get/parameters/0/schema/type") = json!("string"),
        &[(TypeChanged, true, "GET /pets")],
    );
    check(
        "parameter type widened",
        |d| *at(d, "/paths/~1pets/get/parameters/0/schema/type") = json!("number"),
        &[(TypeChanged, false, "GET /pets")],
    );
    check(
        "parameter format widened",
        |d| *at(d, "/paths/~1pets/get/parameters/0/schema/format") = json!("int64"),
        &[(FormatChanged, false, "GET /pets")],
    );
    check(
        "parameter enum narrowed",
        |d| *at(d, "/paths/~1pets/get/parameters/1/schema/enum") = json!(["available"]),
        &[(EnumNarrowed, true, "GET /pets")],
    );
    check(
        "parameter enum widened",
        |d| *at(d, "/paths/~1pets/get/parameters/1/schema/enum") = json!(["available", "sold", "pending"]),
        &[(EnumWidened, false, "GET /pets")],
    );
    // A path-level parameter affects every operation of the path.
    check(
        "path parameter type",
        |d| *at(d, "/paths/~1pets~1{id}/parameters/0/schema/type") = json!("boolean"),
        &[
            (TypeChanged, true, "GET /pets/{id}"),
            (TypeChanged, true, "DELETE /pets/{id}"),
            (TypeChanged, true, "PATCH /pets/{id}"),
        ],
    );
}

#[test]
fn request_bodies() {
    check(
        "new required request field",
        |d| {
            at(d, "/components/schemas/NewPet/properties")["species"] = json!({"type": "string"});
            at(d, "/components/schemas/NewPet/required").as_array_mut().expect("array").push(json!("species"));
        },
        &[(RequestFieldBecameRequired, true, "POST /pets")],
    );
    check(
        "existing request field became required",
        |d| at(d, "/components/schemas/NewPet/required").as_array_mut().expect("array").push(json!("tag")),
        &[(RequestFieldBecameRequired, true, "POST /pets")],
    );
    check(
        "new optional request field",
        |d| at(d, "/components/schemas/NewPet/properties")["nickname"] = json!({"type": "string"}),
        &[(RequestFieldAdded, false, "POST /pets")],
    );
    check(
        "request field type",
        |d| *at(d, "/components/schemas/NewPet/properties/tag/type") = json!("integer"),
        &[(TypeChanged, true, "POST /pets")],
    );
    check(
        "request field widened to number and int64",
        |d| {
            *at(d, "/components/schemas/NewPet/properties/weight") = json!({"type": "number"});
        },
        &[(TypeChanged, false, "POST /pets"), (FormatChanged, false, "POST /pets")],
    );
    check(
        "request variant removed",
        |d| drop(at(d, "/components/schemas/NewPet/properties/kind/oneOf").as_array_mut().expect("array").pop()),
        &[(VariantRemoved, true, "POST /pets")],
    );
    check(
        "request variant added",
        |d| {
            at(d, "/components/schemas/NewPet/properties/kind/oneOf")
                .as_array_mut()
                .expect("array")
                .push(json!({"$ref": "#/components/schemas/Bird"}))
        },
        &[(VariantAdded, true, "POST /pets")],
    );
    check(
        "request media type removed",
        |d| {
            drop(
                at(d, "/paths/~1pets/post/requestBody/content")
                    .as_object_mut()
                    .and_then(|c| c.remove("application/xml")),
            )
        },
        &[(RequestContentTypeRemoved, true, "POST /pets")],
    );
    check(
        "required request body added",
        |d| {
            at(d, "/paths/~1pets~1{id}/patch")["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}})
        },
        &[(RequestBodyBecameRequired, true, "PATCH /pets/{id}")],
    );
    check(
        "optional request body added",
        |d| {
            at(d, "/paths/~1pets~1{id}/patch")["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}})
        },
        &[(RequestBodyAdded, false, "PATCH /pets/{id}")],
    );
    // Pet's `id` is readOnly: requiring it changes nothing for requests.
    check(
        "readOnly field required in a request schema",
        |d| {
            at(d, "/components/schemas/NewPet/properties")["id"] = json!({"type": "integer", "readOnly": true});
            at(d, "/components/schemas/NewPet/required").as_array_mut().expect("array").push(json!("id"));
        },
        &[],
    );
}

#[test]
fn responses() {
    // Pet is returned by three operations; a schema is reported once per
    // operation and direction even if two media types share it.
    let pet_ops = ["GET /pets", "POST /pets", "GET /pets/{id}"];
    let each =
        |kind: ChangeKind, breaking: bool| pet_ops.iter().map(move |op| (kind, breaking, *op)).collect::<Vec<_>>();
    check(
        "response field removed",
        |d| drop(at(d, "/components/schemas/Pet/properties").as_object_mut().and_then(|p| p.remove("tag"))),
        &each(ResponseFieldRemoved, true),
    );
    check(
        "response field added",
        |d| at(d, "/components/schemas/Pet/properties")["age"] = json!({"type": "integer"}),
        &each(ResponseFieldAdded, false),
    );
    check(
        "response field type",
        |d| *at(d, "/components/schemas/Pet/properties/name/type") = json!("integer"),
        &each(TypeChanged, true),
    );
    check(
        "response field nullable",
        |d| at(d, "/components/schemas/Pet/properties/name")["nullable"] = json!(true),
        &each(BecameNullable, true),
    );
    check(
        "response format narrowed",
        |d| *at(d, "/components/schemas/Pet/properties/id/format") = json!("int32"),
        &each(FormatChanged, false),
    );
    check(
        "response enum widened",
        |d| *at(d, "/components/schemas/Pet/properties/status/enum") = json!(["available", "sold", "pending"]),
        &each(EnumWidened, true),
    );
    check(
        "response enum narrowed",
        |d| *at(d, "/components/schemas/Pet/properties/status/enum") = json!(["available"]),
        &each(EnumNarrowed, false),
    );
    check(
        "response field no longer required",
        |d| *at(d, "/components/schemas/Pet/required") = json!(["id"]),
        &each(ResponseFieldBecameOptional, true),
    );
    check(
        "response variant added",
        |d| {
            at(d, "/components/schemas/Pet/properties/kind/oneOf")
                .as_array_mut()
                .expect("array")
                .push(json!({"$ref": "#/components/schemas/Bird"}))
        },
        &each(VariantAdded, true),
    );
    check(
        "success status removed",
        |d| drop(at(d, "/paths/~1pets/get/responses").as_object_mut().and_then(|r| r.remove("200"))),
        &[(ResponseStatusRemoved, true, "GET /pets")],
    );
    check(
        "error status removed",
        |d| drop(at(d, "/paths/~1pets/get/responses").as_object_mut().and_then(|r| r.remove("404"))),
        &[(ResponseStatusRemoved, false, "GET /pets")],
    );
    check(
        "status added",
        |d| at(d, "/paths/~1pets/get/responses")["429"] = json!({"description": "slow down"}),
        &[(ResponseStatusAdded, false, "GET /pets")],
    );
    check(
        "response media type removed",
        |d| {
            drop(
                at(d, "/paths/~1pets/post/responses/201/content")
                    .as_object_mut()
                    .and_then(|c| c.remove("application/xml")),
            )
        },
        &[(ResponseContentTypeRemoved, true, "POST /pets")],
    );
}

#[test]
fn documentation_changes_are_not_breaking() {
    check(
        "docs",
        |d| {
            *at(d, "/paths/~1pets/get/summary") = json!("List all the pets");
            at(d, "/paths/~1pets/get")["description"] = json!("Longer words.");
            at(d, "/paths/~1pets~1{id}/get")["deprecated"] = json!(true);
            *at(d, "/paths/~1pets~1{id}/get/operationId") = json!("showPet");
            at(d, "/components/schemas/Pet")["description"] = json!("A pet.");
            at(d, "/components/schemas/Pet")["x-internal"] = json!(true);
            *at(d, "/info/version") = json!("2");
        },
        &[
            (SummaryChanged, false, "GET /pets"),
            (DescriptionChanged, false, "GET /pets"),
            (OperationDeprecated, false, "GET /pets/{id}"),
            (OperationIdChanged, false, "GET /pets/{id}"),
        ],
    );
}

#[test]
fn changes_inside_recursive_and_inherited_schemas() {
    let tree = read_spec("valid/cycles-3.0.json");
    let old = import::parse(&tree).expect("cycles");
    // Deep inside a mutual recursion (Person → Company → name).
    let mut doc: Value = serde_json::from_str(&tree).expect("json");
    drop(at(&mut doc, "/components/schemas/Company/properties").as_object_mut().and_then(|p| p.remove("name")));
    // Inside a self-recursive schema, used by a request and a response.
    *at(&mut doc, "/components/schemas/TreeNode/properties/value/type") = json!("integer");
    let new = import::parse(&doc.to_string()).expect("changed cycles");
    let report = compare(&old.model, &new.model);
    let found = per_operation(&report);
    let has = |k: ChangeKind, op: &str| found.contains(&(k, true, op.to_owned()));
    assert!(has(ResponseFieldRemoved, "GET /people"), "{report}");
    assert!(has(TypeChanged, "GET /trees/{id}"), "{report}");
    assert!(has(TypeChanged, "PUT /trees/{id}"), "{report}");
    // Each change belongs to the component it happens in, whatever the path to it.
    assert!(report.changes.iter().any(|c| c.location == "schema `Company` field `name`"), "{report}");

    // allOf: Pet = NewPet + id; removing a NewPet field removes it from Pet.
    let expanded = read_spec("valid/petstore-expanded-3.0.yaml");
    let old = import::parse(&expanded).expect("expanded");
    let new =
        import::parse(&expanded.replacen("        tag:\n          type: string\n", "", 1)).expect("changed expanded");
    let report = compare(&old.model, &new.model);
    let mut removed: Vec<String> =
        per_operation(&report).into_iter().filter(|c| c.0 == ResponseFieldRemoved).map(|c| c.2).collect();
    removed.sort();
    assert_eq!(removed, ["GET /pets", "GET /pets/{id}", "POST /pets"], "{report}");
    assert!(report.changes.iter().any(|c| c.kind == RequestFieldRemoved && !c.breaking), "{report}");
}

/// Paired files under specs/diff/ with their expected report.
#[test]
fn file_pairs() {
    let expected: Value = serde_json::from_str(&read_spec("diff/expected.json")).expect("expected.json");
    for pair in expected["pairs"].as_array().expect("pairs") {
        let (old_file, new_file) = (pair["old"].as_str().expect("old"), pair["new"].as_str().expect("new"));
        let old = import::parse(&read_spec(old_file)).unwrap_or_else(|e| panic!("{old_file}: {e}"));
        let new = import::parse(&read_spec(new_file)).unwrap_or_else(|e| panic!("{new_file}: {e}"));
        let report = compare(&old.model, &new.model);
        let mut got: Vec<String> = per_operation(&report)
            .into_iter()
            .map(|(kind, breaking, op)| format!("{} {kind} {op}", if breaking { "breaking" } else { "ok" }))
            .collect();
        let mut want: Vec<String> =
            pair["changes"].as_array().expect("changes").iter().filter_map(|c| c.as_str().map(str::to_owned)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{old_file} → {new_file}:\n{report}");
        assert_eq!(report.breaking(), pair["breaking"].as_bool().expect("breaking"), "{old_file} → {new_file}");
    }
}

#[test]
fn report_is_stored_as_json_and_read_by_people() {
    let old = base();
    let mut new = base();
    drop(at(&mut new, "/paths/~1pets~1{id}").as_object_mut().and_then(|o| o.remove("delete")));
    at(&mut new, "/paths/~1pets/get/parameters")
        .as_array_mut()
        .expect("array")
        .push(json!({"name": "q", "in": "query", "schema": {"type": "string"}}));
    let report = report(&old, &new);
    let json = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json["breaking_count"], 1);
    assert_eq!(json["changes"][0]["kind"], "operation_removed");
    let back: ChangeReport = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, report);
    let lines = report.summary_lines(10);
    assert_eq!(
        lines[0],
        "1 breaking change affecting 1 operation; 1 other change. Operations: 0 added, 1 removed, 1 changed."
    );
    assert_eq!(lines[1], "BREAKING DELETE /pets/{id}: DELETE /pets/{id} was removed.");
    assert_eq!(lines[2], "change GET /pets: A new optional query parameter `q` was added.");
    assert_eq!(report.to_string(), lines.join("\n") + "\n");
}

/// Edits that keep every schema's shape: each reports no breaking change.
#[test]
fn shape_preserving_edits_are_not_breaking() {
    let pet = "/paths/~1pets~1{id}/get/responses/200/content/application~1json/schema";
    for wrapper in ["allOf", "anyOf", "oneOf"] {
        check(
            &format!("$ref wrapped in a one-element {wrapper}"),
            |d| *at(d, pet) = json!({wrapper: [{"$ref": "#/components/schemas/Pet"}]}),
            &[],
        );
    }
    check(
        "a field that may now be null is reported as exactly that",
        |d| {
            *at(d, "/components/schemas/Pet/properties/tag") = json!({"type": "string", "nullable": true});
            *at(d, "/components/schemas/NewPet/properties/tag") = json!({"type": "string", "nullable": true});
        },
        // Only the nullability itself: a response field that may now be null.
        &[
            (BecameNullable, true, "GET /pets"),
            (BecameNullable, true, "POST /pets"),
            (BecameNullable, true, "GET /pets/{id}"),
            (BecameNullable, false, "POST /pets"),
        ],
    );
    let nullable_tag = |d: &mut Value| {
        *at(d, "/components/schemas/Pet/properties/tag") = json!({"type": "string", "nullable": true});
    };
    let mut old = base();
    nullable_tag(&mut old);
    for wrapped in [
        json!({"anyOf": [{"type": "string"}], "nullable": true}),
        json!({"oneOf": [{"type": "string"}, {"type": "string", "nullable": true, "enum": [null]}]}),
        json!({"allOf": [{"type": "string"}], "nullable": true}),
    ] {
        let mut new = base();
        *at(&mut new, "/components/schemas/Pet/properties/tag") = wrapped.clone();
        let r = report(&old, &new);
        assert!(r.is_empty(), "nullable wrap {wrapped}:\n{r}");
    }
    let mut inline = base();
    for schema in ["Pet", "NewPet"] {
        *at(&mut inline, &format!("/components/schemas/{schema}/properties/kind")) = json!({"oneOf": [
            {"type": "object", "properties": {"meows": {"type": "boolean"}}},
            {"type": "object", "properties": {"barks": {"type": "boolean"}}}]});
    }
    let r = report(&inline, &base());
    assert!(r.is_empty(), "inline variants moved to components:\n{r}");
    let r = report(&base(), &inline);
    assert!(r.is_empty(), "component variants inlined:\n{r}");

    check("renamed component", rename_pet, &[]);
    check(
        "reordered variants",
        |d| {
            *at(d, "/components/schemas/Pet/properties/kind/oneOf") =
                json!([{"$ref": "#/components/schemas/Dog"}, {"$ref": "#/components/schemas/Cat"}]);
            *at(d, "/components/schemas/NewPet/properties/kind/oneOf") =
                json!([{"$ref": "#/components/schemas/Dog"}, {"$ref": "#/components/schemas/Cat"}]);
        },
        &[],
    );
}

/// Renames the `Pet` component to `Animal`, with every reference.
fn rename_pet(d: &mut Value) {
    let text = d.to_string().replace("#/components/schemas/Pet\"", "#/components/schemas/Animal\"");
    *d = serde_json::from_str(&text).expect("json");
    let schemas = at(d, "/components/schemas").as_object_mut().expect("schemas");
    let pet = schemas.remove("Pet").expect("Pet");
    schemas.insert("Animal".into(), pet);
}

/// All the shape-preserving edits at once, next to two real breaking
/// changes: only the real ones are reported.
#[test]
fn real_breaking_changes_next_to_shape_preserving_edits_are_caught() {
    let mut old = base();
    // The old version: Cat requires `meows`, and the variants are inline.
    at(&mut old, "/components/schemas/Cat")["required"] = json!(["meows"]);
    let cat = at(&mut old, "/components/schemas/Cat").clone();
    let dog = at(&mut old, "/components/schemas/Dog").clone();
    for schema in ["Pet", "NewPet"] {
        *at(&mut old, &format!("/components/schemas/{schema}/properties/kind")) = json!({"oneOf": [cat, dog]});
    }
    let mut new = base();
    rename_pet(&mut new);
    // Variants moved to components and reordered; the response one wrapped.
    *at(&mut new, "/components/schemas/Animal/properties/kind") = json!({"anyOf": [{"oneOf": [
        {"$ref": "#/components/schemas/Dog"}, {"$ref": "#/components/schemas/Cat"}]}]});
    // The request oneOf gains a variant.
    *at(&mut new, "/components/schemas/NewPet/properties/kind/oneOf") = json!([
        {"$ref": "#/components/schemas/Dog"}, {"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Bird"}]);
    let pet = "/paths/~1pets~1{id}/get/responses/200/content/application~1json/schema";
    *at(&mut new, pet) = json!({"anyOf": [{"$ref": "#/components/schemas/Animal"}]});

    let r = report(&old, &new);
    let breaking: Vec<(ChangeKind, String, usize)> =
        r.changes.iter().filter(|c| c.breaking).map(|c| (c.kind, c.location.clone(), c.operations.len())).collect();
    assert_eq!(
        breaking,
        [
            // The object variant lost a required field: responses may omit it.
            (ResponseFieldBecameOptional, "schema `Cat` field `meows`".to_owned(), 3),
            // A request that was a Dog might now also match Bird.
            (VariantAdded, "schema `NewPet` field `kind`".to_owned(), 1),
        ],
        "{r}"
    );
    // In requests the field only became optional, which breaks nobody.
    let others: Vec<ChangeKind> = r.changes.iter().filter(|c| !c.breaking).map(|c| c.kind).collect();
    assert_eq!(others, [RequestFieldBecameOptional], "{r}");
    assert_eq!(r.breaking_operations, 3);
}

/// Reports stored by an earlier Tollgate (one entry per operation) still read.
#[test]
fn legacy_reports_still_read() {
    let stored = json!({
        "operations_added": [], "operations_removed": ["DELETE /pets/{id}"], "operations_changed": ["GET /pets"],
        "changes": [
            {"kind": "operation_removed", "breaking": true, "operation": "DELETE /pets/{id}", "pointer": "/paths/~1pets~1{id}/delete", "location": "operation", "message": "DELETE /pets/{id} was removed."},
            {"kind": "enum_widened", "breaking": true, "operation": "GET /pets", "pointer": "/paths/~1pets/get/responses/200", "location": "response 200 (application/json) field `status`", "message": "It now also allows x."}
        ],
        "breaking_count": 2, "non_breaking_count": 0
    });
    let mut report = ChangeReport::from_stored(stored).expect("a legacy report");
    assert!(report.legacy);
    assert_eq!((report.breaking_count, report.breaking_operations, report.operations_changed), (2, 2, 1));
    assert_eq!(per_operation(&report).len(), 2);
    assert_eq!(report.changes[1].side, tollgate_openapi::Side::Response);
    report.apply_policy(tollgate_openapi::CompatibilityPolicy::AdditiveEnums);
    assert_eq!(report.breaking_count, 1);
    // And the current format reads back as written.
    let again = ChangeReport::from_stored(serde_json::to_value(&report).expect("json")).expect("current");
    assert_eq!(again, report);
}
