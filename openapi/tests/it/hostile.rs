//! Large, deep and hostile documents: each is read or refused in bounded
//! time, with a clear error, and without exhausting the stack.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_openapi::diff::{ChangeKind, compare};
use tollgate_openapi::{ImportError, MAX_SPEC_BYTES, ParsedSpec};

use crate::parse_guarded;

/// Generous: these finish in seconds in debug; the bound only turns a
/// hang into a failure.
const WATCHDOG: Duration = Duration::from_secs(180);

/// Parses on a thread with a 1 MiB stack (half a test thread's) and fails
/// on a panic or on not finishing.
fn parse_bounded(what: &str, source: String) -> Result<ParsedSpec, ImportError> {
    let (tx, rx) = mpsc::channel();
    let name = what.to_owned();
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let started = Instant::now();
            let result = parse_guarded(&name, &source);
            eprintln!("{name}: {} bytes in {:?}", source.len(), started.elapsed());
            let _ = tx.send(result);
        })
        .expect("spawn");
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => panic!("{panic}"),
        Err(_) => panic!("{what}: import::parse did not finish within {WATCHDOG:?}"),
    }
}

fn refused(what: &str, source: String, message: &str) -> ImportError {
    match parse_bounded(what, source) {
        Ok(spec) => panic!("{what}: accepted with {} operations", spec.operations.len()),
        Err(e) => {
            assert!(e.message.contains(message), "{what}: {e}");
            e
        }
    }
}

const HEAD_JSON: &str = r#"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {}, "x-deep": "#;
const HEAD_YAML: &str = "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {}\nx-deep: ";

#[test]
fn too_large_is_refused_before_parsing() {
    let mut source = String::from(HEAD_YAML);
    source.push_str(&"x".repeat(MAX_SPEC_BYTES));
    let e = refused("too large", source, "the limit is");
    assert_eq!((e.pointer.as_str(), e.line), ("", None));
}

#[test]
fn deep_nesting_fails_fast() {
    const DEPTH: usize = 100_000;
    let cases = [
        ("JSON arrays", format!("{HEAD_JSON}{}{}}}", "[".repeat(DEPTH), "]".repeat(DEPTH))),
        ("JSON objects", format!("{HEAD_JSON}{}1{}}}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH))),
        ("JSON unclosed", format!("{HEAD_JSON}{}", "[".repeat(DEPTH))),
        ("YAML flow sequences", format!("{HEAD_YAML}{}{}\n", "[".repeat(DEPTH), "]".repeat(DEPTH))),
        ("YAML flow mappings", format!("{HEAD_YAML}{}1{}\n", "{a: ".repeat(DEPTH), "}".repeat(DEPTH))),
        ("YAML unclosed", format!("{HEAD_YAML}{}\n", "[".repeat(DEPTH))),
        ("YAML flow under the pre-scan limit", format!("{HEAD_YAML}{}{}\n", "[".repeat(900), "]".repeat(900))),
        (
            "YAML flow behind a tag and anchor",
            format!("{HEAD_YAML}{}{}\n", "&a !!seq [".repeat(DEPTH / 10), "]".repeat(DEPTH / 10)),
        ),
        ("YAML block mappings", {
            let mut s = String::from(HEAD_YAML);
            s.push('\n');
            for i in 0..2_000 {
                let _ = writeln!(s, "{}k{i}:", " ".repeat(i + 1));
            }
            s
        }),
    ];
    for (what, source) in cases {
        let e = parse_bounded(what, source).expect_err(what);
        assert!(e.message.contains("nested more than") || e.message.contains("recursion limit"), "{what}: {e}");
        assert!(e.pointer.starts_with("/x-deep") || e.pointer.is_empty(), "{what}: {e}");
    }
}

#[test]
fn wide_documents_are_linear() {
    let wide = format!("{HEAD_YAML}[{}]\n", vec!["0"; 500_000].join(","));
    parse_bounded("YAML wide flow sequence", wide).expect("wide YAML");
    let keys: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": {i}")).collect();
    let wide = format!("{HEAD_JSON}{{{}}}}}", keys.join(","));
    parse_bounded("JSON wide object", wide).expect("wide JSON");
}

#[test]
fn yaml_alias_amplification_is_capped() {
    // Quadratic rather than exponential: one anchor of 20,000 items
    // repeated 20,000 times slips under a per-event repetition limit.
    let n = 20_000;
    let mut source = String::from("openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {}\nx-big: &big [");
    source.push_str(&vec!["0"; n].join(","));
    source.push_str("]\nx-copies: [");
    source.push_str(&vec!["*big"; n].join(","));
    source.push_str("]\n");
    let e = refused("quadratic alias bomb", source, "expands to more than");
    assert!(e.pointer.starts_with("/x-copies/"), "{e}");

    let bomb = crate::read_spec("invalid/alias-bomb.yaml");
    refused("billion laughs", bomb, "repetition limit exceeded");

    // Few aliases of one long string: each copies the whole string, so text counts by its
    // length (2,000 copies of 1 MiB would be 2 GiB).
    let mut source = String::from("openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {}\nx-s: &s \"");
    source.push_str(&"x".repeat(1 << 20));
    source.push_str("\"\nx-c: [");
    source.push_str(&vec!["*s"; 2_000].join(","));
    source.push_str("]\n");
    let e = refused("long string aliases", source, "expands to more than");
    assert!(e.pointer.starts_with("/x-c/"), "{e}");
}

/// A generated "large" document: `paths` × 3 operations, schemas reached
/// through chains of `$ref`s `chain` deep, a recursive schema, shared
/// parameters and responses.
fn large_spec(paths: usize, chain: usize) -> Value {
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Node".into(),
        json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "parent": {"$ref": "#/components/schemas/Node"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}),
    );
    for group in 0..50 {
        for level in 0..chain {
            let next = if level + 1 == chain {
                json!({"$ref": "#/components/schemas/Node"})
            } else {
                json!({"$ref": format!("#/components/schemas/G{group}L{}", level + 1)})
            };
            schemas.insert(
                format!("G{group}L{level}"),
                json!({"type": "object", "description": "A level of a deep chain of references, with enough words to look like a real description.",
                       "required": ["name"],
                       "properties": {"name": {"type": "string", "maxLength": 200}, "count": {"type": "integer", "format": "int32"},
                                      "state": {"type": "string", "enum": ["draft", "live", "retired"]}, "next": next}}),
            );
        }
    }
    let mut path_map = serde_json::Map::new();
    for i in 0..paths {
        let group = i % 50;
        let schema = json!({"$ref": format!("#/components/schemas/G{group}L0")});
        let ok = json!({"description": "The resource.", "content": {"application/json": {"schema": schema}}});
        path_map.insert(
            format!("/tenants/{{tenant}}/resources{i}/{{id}}"),
            json!({
                "parameters": [{"$ref": "#/components/parameters/Tenant"}, {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}],
                "get": {"operationId": format!("get{i}"), "summary": format!("Read resource {i}"), "description": "Reads one resource. ".repeat(8),
                        "parameters": [{"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}],
                        "responses": {"200": ok, "404": {"$ref": "#/components/responses/NotFound"}}},
                "put": {"operationId": format!("put{i}"), "summary": format!("Replace resource {i}"),
                        "requestBody": {"required": true, "content": {"application/json": {"schema": schema}}},
                        "responses": {"200": ok, "404": {"$ref": "#/components/responses/NotFound"}}},
                "delete": {"operationId": format!("delete{i}"), "responses": {"204": {"description": "Deleted."}, "404": {"$ref": "#/components/responses/NotFound"}}}
            }),
        );
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Generated", "version": "1"},
        "paths": path_map,
        "components": {
            "parameters": {"Tenant": {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}}},
            "responses": {"NotFound": {"description": "Not found.", "content": {"application/json": {"schema": {"type": "object", "properties": {"message": {"type": "string"}}}}}}},
            "schemas": schemas
        }
    })
}

#[test]
fn large_generated_spec_parses_and_compares() {
    let doc = large_spec(1_000, 40);
    let source = serde_json::to_string_pretty(&doc).expect("json");
    assert!(source.len() > 2_000_000, "{} bytes", source.len());
    let started = Instant::now();
    let old = parse_bounded("large spec", source).expect("large spec parses");
    assert_eq!(old.operations.len(), 3_000);
    assert_eq!(old.model.operations.len(), 3_000);
    // Chains deeper than the cut depth are cut, and resolvable.
    let get = old.model.operation("GET", "/tenants/{tenant}/resources7/{id}").expect("operation");
    let mut schema = get.responses["200"].content["application/json"].clone().expect("schema");
    for _ in 0..45 {
        let next = old.model.resolve(&schema).properties.get("next").cloned();
        match next {
            Some(next) => schema = next,
            None => break,
        }
    }
    assert_eq!(old.model.resolve(&schema).ref_name.as_deref(), Some("Node"));

    // Remove a field deep in one chain: every operation reaching it breaks.
    let mut changed = doc.clone();
    let props =
        changed.pointer_mut("/components/schemas/G3L30/properties").and_then(Value::as_object_mut).expect("G3L30");
    props.remove("count");
    let new = parse_bounded("large spec, changed", serde_json::to_string(&changed).expect("json"))
        .expect("changed spec parses");
    let compared = Instant::now();
    let report = compare(&old.model, &new.model);
    eprintln!("large spec: compared in {:?}; total {:?}", compared.elapsed(), started.elapsed());
    assert!(!report.truncated);
    // 20 paths use group 3: GET and PUT responses lose the field; PUT's request just no longer has it.
    // The field belongs to one component, so each is one change listing the operations it affects.
    let removed: Vec<_> = report.changes.iter().filter(|c| c.kind == ChangeKind::ResponseFieldRemoved).collect();
    assert_eq!(removed.len(), 1, "{report}");
    assert_eq!(removed[0].operations.len(), 40, "{}", report.summary_lines(3)[0]);
    assert_eq!(report.breaking_count, 1);
    assert_eq!(report.breaking_operations, 40);
    let request: Vec<_> = report.changes.iter().filter(|c| c.kind == ChangeKind::RequestFieldRemoved).collect();
    assert_eq!((request.len(), request[0].operations.len()), (1, 20), "{report}");
    assert!(report.changes.iter().all(|c| c.location == "schema `G3L30` field `count`"), "{report}");
}

#[test]
fn reference_structures_stay_linear() {
    // 40 schemas with 8 properties each referencing the next: 8^40 paths
    // through the tree, one expansion per schema.
    let mut schemas = serde_json::Map::new();
    for i in 0..40 {
        let props: serde_json::Map<String, Value> = (0..8)
            .map(|p| {
                (
                    format!("p{p}"),
                    if i == 39 {
                        json!({"type": "string"})
                    } else {
                        json!({"$ref": format!("#/components/schemas/S{}", i + 1)})
                    },
                )
            })
            .collect();
        schemas.insert(format!("S{i}"), json!({"type": "object", "properties": props}));
    }
    // A pure alias chain much longer than the cut depth.
    for i in 0..1_000 {
        let target =
            if i == 999 { "#/components/schemas/S0".to_owned() } else { format!("#/components/schemas/A{}", i + 1) };
        schemas.insert(format!("A{i}"), json!({"$ref": target}));
    }
    let doc = json!({"openapi": "3.1.0", "info": {"title": "Fan-out", "version": "1"},
        "paths": {"/x": {"post": {
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A0"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}}}}},
        "components": {"schemas": schemas}});
    let source = doc.to_string();
    let old = parse_bounded("fan-out", source.clone()).expect("fan-out parses");
    let same = compare(&old.model, &old.model);
    assert!(same.is_empty(), "{same}");
    let changed = source
        .replace(r#""S39":{"properties":{"p0":{"type":"string"}"#, r#""S39":{"properties":{"p0":{"type":"integer"}"#);
    assert_ne!(changed, source);
    let new = parse_bounded("fan-out, changed", changed).expect("changed fan-out parses");
    let report = compare(&old.model, &new.model);
    // Reported once per direction (request, response), not once per path through the tree.
    let kinds: Vec<(ChangeKind, bool)> = report.changes.iter().map(|c| (c.kind, c.breaking)).collect();
    assert_eq!(kinds, [(ChangeKind::TypeChanged, true), (ChangeKind::TypeChanged, true)], "{report}");
}

/// `allOf` members shared down 12 levels, each level listing the next ten times: merged once
/// per schema, not once per path through them (10¹² merges).
#[test]
fn shared_all_of_members_are_merged_once() {
    let mut schemas = serde_json::Map::new();
    for level in 0..12 {
        let next = json!({"$ref": format!("#/components/schemas/S{}", level + 1)});
        schemas.insert(format!("S{level}"), json!({"allOf": vec![next; 10]}));
    }
    schemas.insert("S12".into(), json!({"type": "object", "properties": {"id": {"type": "string"}}}));
    let doc = json!({"openapi": "3.0.3", "info": {"title": "Shared", "version": "1"},
        "paths": {"/x": {"get": {"responses": {"200": {"description": "ok",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}}}}},
        "components": {"schemas": schemas}});
    let source = doc.to_string();
    let old = parse_bounded("shared allOf", source.clone()).expect("parses");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let changed = source.replace(r#"{"id":{"type":"string"}}"#, r#"{"id":{"type":"integer"}}"#);
        let new = tollgate_openapi::parse(&changed).expect("changed parses");
        let _ = tx.send(compare(&old.model, &new.model).changes.len());
    });
    let changes = rx.recv_timeout(WATCHDOG).expect("compare finishes");
    assert_eq!(changes, 1);
}

/// A release that renames every path: each removed operation is paired with an added one of
/// its shape by an index, not by scanning every added one (30,000 of each: 9 × 10⁸ scans).
#[test]
fn many_removed_and_added_operations_are_paired_in_linear_time() {
    let doc = |prefix: &str| {
        let mut paths = String::new();
        for i in 0..30_000 {
            let _ = write!(
                paths,
                r#"{}"/{prefix}{i}":{{"get":{{"responses":{{"200":{{"description":"ok"}}}}}}}}"#,
                if i == 0 { "" } else { "," }
            );
        }
        format!(r#"{{"openapi":"3.0.3","info":{{"title":"T","version":"1"}},"paths":{{{paths}}}}}"#)
    };
    let old = parse_bounded("30,000 paths", doc("a")).expect("old");
    let new = parse_bounded("30,000 other paths", doc("b")).expect("new");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let report = compare(&old.model, &new.model);
        let _ = tx.send((report.operations_removed.len(), report.operations_added.len()));
    });
    let (removed, added) = rx.recv_timeout(Duration::from_secs(60)).expect("compare finishes within a minute");
    assert_eq!((removed, added), (30_000, 30_000));
}

/// Paths that `$ref` one path item share its schemas: 50,000 references to a path whose
/// parameter lists 200,000 enum values expand them once (10¹⁰ values before).
#[test]
fn path_items_referred_to_are_expanded_once() {
    let values: Vec<Value> = (0..200_000).map(Value::from).collect();
    let mut paths = serde_json::Map::new();
    paths.insert(
        "/a".into(),
        json!({"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "integer", "enum": values}}],
                       "responses": {"200": {"description": "ok"}}}}),
    );
    for i in 0..50_000 {
        paths.insert(format!("/b{i}"), json!({"$ref": "#/paths/~1a"}));
    }
    let doc = json!({"openapi": "3.1.0", "info": {"title": "Refs", "version": "1"}, "paths": paths});
    let parsed = parse_bounded("shared path item", doc.to_string()).expect("parses");
    assert_eq!(parsed.operations.len(), 50_001);
}
