//! Property tests over `import::parse`: arbitrary text, structured
//! mutations of the corpus, and a replayed seed directory. Nothing may
//! panic or hang. PROPTEST_CASES overrides the case count (default 256).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tollgate_openapi::ParsedSpec;
use tollgate_openapi::diff;
use tollgate_openapi::import;

use crate::{parse_guarded, read_spec, specs_dir};

/// One parse of fuzzed input may take this long in debug before it counts
/// as a hang (real inputs here are small; the bound is generous).
const SLOW: Duration = Duration::from_secs(10);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

/// Parses, failing on a panic or a slow parse; a successful parse is also
/// compared with itself, which must find nothing, and with `base` (both
/// ways), which must not panic.
fn exercise_against(what: &str, source: &str, base: Option<&ParsedSpec>) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let result = parse_guarded(what, source).map_err(TestCaseError::fail)?;
    let elapsed = started.elapsed();
    prop_assert!(elapsed < SLOW, "{what}: parse took {elapsed:?}");
    match result {
        Ok(spec) => {
            prop_assert_eq!(spec.operations.len(), spec.model.operations.len());
            let report = diff::compare(&spec.model, &spec.model);
            prop_assert!(report.is_empty(), "{what}: compared with itself: {report}");
            if let Some(base) = base {
                for (old, new) in [(&base.model, &spec.model), (&spec.model, &base.model)] {
                    let report = catch_unwind(AssertUnwindSafe(|| diff::compare(old, new)))
                        .map_err(|_| TestCaseError::fail(format!("{what}: compare panicked")))?;
                    prop_assert_eq!(report.breaking_count + report.non_breaking_count, report.changes.len());
                    prop_assert_eq!(report.breaking(), report.changes.iter().any(|c| c.breaking));
                }
            }
        }
        Err(e) => {
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{what}: pointer {:?}", e.pointer);
        }
    }
    Ok(())
}

fn exercise(what: &str, source: &str) -> Result<(), TestCaseError> {
    exercise_against(what, source, None)
}

fn corpus() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in ["valid", "invalid", "diff"] {
        let mut names: Vec<_> = std::fs::read_dir(specs_dir().join(dir))
            .expect("corpus")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names.into_iter().filter(|n| n.ends_with(".json") || n.ends_with(".yaml")) {
            let path = format!("{dir}/{name}");
            files.push((path.clone(), read_spec(&path)));
        }
    }
    files
}

#[test]
fn seed_corpus_replays() {
    let dir = specs_dir().join("fuzz-seeds");
    let mut names: Vec<_> =
        std::fs::read_dir(&dir).expect("fuzz-seeds").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for path in names.iter().filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "txt")) {
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = exercise(&path.display().to_string(), &source) {
            panic!("{e}");
        }
    }
}

#[test]
fn arbitrary_text_never_panics() {
    let mut runner = TestRunner::new(config());
    let text = prop_oneof![
        any::<String>(),
        // Mostly the characters that matter to JSON, YAML and pointers.
        proptest::string::string_regex(r#"[\[\]{}:,"'&*!|>#\-? \n\t0-9a-z~/%$.<]{0,200}"#).expect("regex"),
        // Text after a valid header, so parsing gets past the first checks.
        proptest::string::string_regex(r#"[\[\]{}:,"'&*!|>#\-? \n0-9a-z$/]{0,200}"#)
            .expect("regex")
            .prop_map(|tail| format!("openapi: 3.1.0\ninfo: {{title: T, version: '1'}}\npaths:\n  /a:\n    {tail}")),
        any::<Vec<u8>>().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ];
    runner.run(&text, |source| exercise("arbitrary text", &source)).unwrap_or_else(|e| panic!("{e}"));
}

/// A structured change to a document.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Replace(usize, Value),
    SwapType(usize),
    InjectRef(usize, String),
    RenameKey(usize, String),
}

fn interesting_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(json!("")),
        Just(json!("3.1.0")),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"$ref": "#/"})),
        Just(json!({"type": ["string", "null"], "enum": [1, "a", null]})),
        Just(
            json!({"allOf": [{"$ref": "#/components/schemas/Pet"}], "oneOf": [{}], "discriminator": {"propertyName": 3}})
        ),
        Just(json!({"name": "x", "in": "query", "content": {"a/b": {}}})),
        Just(json!({"get": {"responses": {"200": {"$ref": "#/paths"}}}})),
        "[a-z/{}~]{0,12}".prop_map(Value::String),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let target = any::<usize>();
    let reference = prop_oneof![
        Just("#".to_owned()),
        Just("#/".to_owned()),
        Just("#/components/schemas/Pet".to_owned()),
        Just("#/components/schemas/Missing".to_owned()),
        Just("#/paths/~1pets/get".to_owned()),
        Just("#/paths/~1pets~1%7BpetId%7D/get/responses/200/content/application~1json/schema".to_owned()),
        Just("#/info".to_owned()),
        Just("#/definitions/Pet".to_owned()),
        Just("#/components/schemas/Pet/properties/tag".to_owned()),
        Just("#/a%zz".to_owned()),
        Just("https://example.com/x.json".to_owned()),
        "#/[a-zA-Z/~01%]{0,20}",
    ];
    prop_oneof![
        target.prop_map(Mutation::Delete),
        target.prop_map(Mutation::Duplicate),
        (target, interesting_value()).prop_map(|(t, v)| Mutation::Replace(t, v)),
        target.prop_map(Mutation::SwapType),
        (target, reference).prop_map(|(t, r)| Mutation::InjectRef(t, r)),
        (
            target,
            prop_oneof![
                Just("$ref".to_owned()),
                Just("x-a".to_owned()),
                Just("get".to_owned()),
                Just("/b".to_owned()),
                "[a-z]{1,5}"
            ]
        )
            .prop_map(|(t, k)| Mutation::RenameKey(t, k)),
    ]
}

/// Paths to every node, in document order.
fn nodes(value: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(k.clone());
                nodes(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(i.to_string());
                nodes(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get_mut(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    nodes(doc, &mut Vec::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match m {
        Mutation::Delete(i) | Mutation::Duplicate(i) | Mutation::RenameKey(i, _) => {
            let path = pick(*i);
            let Some((last, parent)) = path.split_last() else { return };
            let Some(parent) = node_mut(doc, parent) else { return };
            match (parent, m) {
                (Value::Object(map), Mutation::Delete(_)) => drop(map.remove(last)),
                (Value::Object(map), Mutation::Duplicate(_)) => {
                    if let Some(v) = map.get(last).cloned() {
                        map.insert(format!("{last}2"), v);
                    }
                }
                (Value::Object(map), Mutation::RenameKey(_, key)) => {
                    if let Some(v) = map.remove(last) {
                        map.insert(key.clone(), v);
                    }
                }
                (Value::Array(items), Mutation::Delete(_)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        items.remove(i);
                    }
                }
                (Value::Array(items), Mutation::Duplicate(_)) => {
                    if let Some(v) = last.parse::<usize>().ok().and_then(|i| items.get(i)).cloned() {
                        items.push(v);
                    }
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(node) = node_mut(doc, &pick(*i)) {
                *node = v.clone();
            }
        }
        Mutation::SwapType(i) => {
            if let Some(node) = node_mut(doc, &pick(*i)) {
                *node = match node.take() {
                    Value::Object(map) => Value::Array(map.into_iter().map(|(_, v)| v).collect()),
                    Value::Array(items) => {
                        Value::Object(items.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect())
                    }
                    Value::String(s) => s.parse::<f64>().ok().map(Value::from).unwrap_or(Value::Bool(s.is_empty())),
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    Value::Null => json!({}),
                };
            }
        }
        Mutation::InjectRef(i, r) => {
            if let Some(node) = node_mut(doc, &pick(*i)) {
                match node {
                    Value::Object(map) => {
                        map.insert("$ref".into(), Value::String(r.clone()));
                    }
                    other => *other = json!({ "$ref": r }),
                }
            }
        }
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let corpus: Vec<(String, Value, Option<ParsedSpec>)> = corpus()
        .into_iter()
        .filter_map(|(name, text)| {
            let doc = if name.ends_with(".json") {
                serde_json::from_str(&text).ok()
            } else {
                yaml_serde::from_str(&text).ok()
            };
            doc.map(|d| (name, d, import::parse(&text).ok()))
        })
        .collect();
    assert!(corpus.len() >= 15, "corpus has {} documents", corpus.len());
    let mut runner = TestRunner::new(config());
    let strategy = (0..corpus.len(), proptest::collection::vec(mutation(), 1..6), any::<bool>());
    runner
        .run(&strategy, |(which, mutations, as_yaml)| {
            let (name, doc, base) = &corpus[which];
            let mut doc = doc.clone();
            for m in &mutations {
                apply(&mut doc, m);
            }
            let text = if as_yaml {
                yaml_serde::to_string(&doc).unwrap_or_default()
            } else {
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            };
            exercise_against(&format!("{name} after {mutations:?}"), &text, base.as_ref())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
