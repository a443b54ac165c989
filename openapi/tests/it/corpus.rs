//! Every file of the corpus against openapi/tests/specs/manifest.json.

use std::collections::BTreeSet;

use serde_json::Value;
use tollgate_openapi::{CredentialsIn, Gateway, diff};

use crate::{parse_guarded, read_spec, specs_dir};

fn manifest() -> Value {
    serde_json::from_str(&read_spec("manifest.json")).expect("manifest.json is JSON")
}

fn entries<'m>(manifest: &'m Value, key: &str) -> &'m [Value] {
    manifest[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

#[test]
fn every_corpus_file_has_an_expectation() {
    let manifest = manifest();
    let listed: BTreeSet<String> = ["valid", "invalid"]
        .iter()
        .flat_map(|k| entries(&manifest, k))
        .filter_map(|e| e["file"].as_str().map(str::to_owned))
        .collect();
    for dir in ["valid", "invalid"] {
        for entry in std::fs::read_dir(specs_dir().join(dir)).expect("corpus directory") {
            let name = format!("{dir}/{}", entry.expect("entry").file_name().to_string_lossy());
            assert!(listed.contains(&name), "{name} is not listed in manifest.json");
        }
    }
}

#[test]
fn valid_specs_parse_with_the_expected_operations() {
    let manifest = manifest();
    let mut failures = Vec::new();
    for entry in entries(&manifest, "valid") {
        let file = entry["file"].as_str().expect("file");
        let source = read_spec(file);
        let spec = match parse_guarded(file, &source) {
            Err(panic) => {
                failures.push(panic);
                continue;
            }
            Ok(Err(e)) => {
                failures.push(format!("{file}: rejected: {e}"));
                continue;
            }
            Ok(Ok(spec)) => spec,
        };
        let expected_ops = entry["operations"].as_u64().expect("operations") as usize;
        if spec.operations.len() != expected_ops || spec.model.operations.len() != expected_ops {
            failures.push(format!(
                "{file}: {} operations ({} in the model), expected {expected_ops}",
                spec.operations.len(),
                spec.model.operations.len()
            ));
        }
        if Some(spec.spec_version.as_str()) != entry["spec_version"].as_str() {
            failures.push(format!("{file}: version {}, expected {}", spec.spec_version, entry["spec_version"]));
        }
        if Some(spec.title.as_str()) != entry["title"].as_str() {
            failures.push(format!("{file}: title {:?}, expected {}", spec.title, entry["title"]));
        }
        // The same API in another format reads to the same model.
        if let Some(twin) = entry["same_model_as"].as_str() {
            let other = parse_guarded(twin, &read_spec(twin)).map_err(|p| p.to_string());
            match other {
                Ok(Ok(other)) => {
                    let report = diff::compare(&other.model, &spec.model);
                    if other.model != spec.model || !report.is_empty() {
                        failures.push(format!("{file}: model differs from {twin}: {report}"));
                    }
                }
                other => failures.push(format!("{twin}: {other:?}")),
            }
        }
        // The portal's download for client generators is a document with the same operations.
        let gateway = Gateway {
            base_url: "https://gw.example.com/api",
            credentials_in: CredentialsIn::Header,
            credentials: &["app_id", "app_key"],
        };
        match tollgate_openapi::for_gateway(&source, &gateway).map(|text| tollgate_openapi::parse(&text)) {
            Ok(Ok(again)) if again.operations == spec.operations => {}
            Ok(Ok(again)) => failures.push(format!("{file}: the gateway's document has {:?}", again.operations)),
            Ok(Err(e)) | Err(e) => failures.push(format!("{file}: the gateway's document: {e}")),
        }
        // Comparing a version with itself finds nothing.
        let same = diff::compare(&spec.model, &spec.model);
        if !same.is_empty() {
            failures.push(format!("{file}: compared with itself: {same}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn invalid_specs_fail_at_the_expected_place() {
    let manifest = manifest();
    let mut failures = Vec::new();
    for entry in entries(&manifest, "invalid") {
        let file = entry["file"].as_str().expect("file");
        let source = read_spec(file);
        let err = match parse_guarded(file, &source) {
            Err(panic) => {
                failures.push(panic);
                continue;
            }
            Ok(Ok(spec)) => {
                failures.push(format!("{file}: accepted with {} operations", spec.operations.len()));
                continue;
            }
            Ok(Err(e)) => e,
        };
        let pointer = entry["pointer"].as_str().expect("pointer");
        let line = entry["line"].as_u64().map(|l| l as usize);
        let message = entry["message"].as_str().expect("message");
        if err.pointer != pointer || err.line != line || !err.message.contains(message) {
            failures.push(format!(
                "{file}: got pointer {:?}, line {:?}, message {:?}; expected pointer {pointer:?}, line {line:?}, message containing {message:?}",
                err.pointer, err.line, err.message
            ));
        }
        // The Display form names the place first.
        let shown = err.to_string();
        if !shown.starts_with(if pointer.is_empty() { "/" } else { pointer }) {
            failures.push(format!("{file}: displayed as {shown:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
