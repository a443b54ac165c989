//! Mock responses, among them those of the real Swagger Petstore 3.0 description (the
//! server's test fixture, `server/tests/fixtures/petstore-openapi-3.0.json`).

use tollgate_openapi::{MockSource, mock_operations, parse};

fn petstore3() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/fixtures/petstore-openapi-3.0.json"))
        .expect("read")
}

#[test]
fn every_petstore_operation_has_mocked_responses() {
    let source = petstore3();
    let parsed = parse(&source).expect("petstore3 imports");
    let mocks = mock_operations(&source).expect("mocks");
    assert_eq!(mocks.len(), parsed.operations.len());
    assert_eq!(mocks.len(), 19);
    for op in &mocks {
        assert!(!op.responses.is_empty(), "{} {}", op.method, op.path);
    }
    let get_pet = mocks.iter().find(|o| o.method == "GET" && o.path == "/pet/{petId}").expect("getPetById");
    let statuses: Vec<&str> = get_pet.responses.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["200", "400", "404", "default"]);
    // JSON first, then XML rendered from the schema's `xml` hints.
    let ok = &get_pet.responses[0];
    assert_eq!(ok.content[0].media_type, "application/json");
    let pet: serde_json::Value = serde_json::from_str(&ok.content[0].examples[0].1).expect("JSON body");
    // Property examples are used; required properties are there.
    assert_eq!(pet["name"], "doggie");
    assert_eq!(pet["id"], 10);
    assert!(pet["photoUrls"].is_array());
    assert_eq!(pet["status"], "available");
    let xml = &ok.content[1];
    assert_eq!(xml.media_type, "application/xml");
    let body = &xml.examples[0].1;
    assert!(body.starts_with("<?xml") && body.contains("<pet>") && body.contains("<name>doggie</name>"), "{body}");
    assert!(body.contains("<photoUrls><photoUrl>"), "wrapped arrays keep their item names: {body}");
    // Assembled from property examples, not written as a whole: it counts as generated.
    assert_eq!(get_pet.default_source(), MockSource::Generated);
    // No content at all: an empty body.
    let delete = mocks.iter().find(|o| o.method == "DELETE" && o.path == "/pet/{petId}").expect("deletePet");
    assert_eq!(delete.default_source(), MockSource::Empty);
}

#[test]
fn written_examples_come_first_and_keep_their_names() {
    let source = r##"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/cats":{"get":{"responses":{
        "200":{"description":"ok","content":{"application/json":{"schema":{"type":"array","items":{"$ref":"#/components/schemas/Cat"}},
            "examples":{"two":{"value":[{"name":"Tom"},{"name":"Kit"}]},"one":{"$ref":"#/components/examples/One"}}}}},
        "404":{"description":"none","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Error"}}}}}}}},
        "components":{"examples":{"One":{"value":[{"name":"Tom"}]}},"schemas":{
            "Cat":{"type":"object","required":["name"],"properties":{"name":{"type":"string","minLength":2},"age":{"type":"integer","minimum":1,"maximum":30},"parent":{"$ref":"#/components/schemas/Cat"},"tag":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"kind":{"type":"string","enum":["tabby","black"]},"owner":{"type":"string","nullable":true,"format":"email"}}},
            "Error":{"allOf":[{"type":"object","required":["code"],"properties":{"code":{"type":"integer"}}},{"type":"object","properties":{"message":{"type":"string"}}}]}}}}"##;
    let mocks = mock_operations(source).expect("mocks");
    let cats = &mocks[0];
    assert_eq!(cats.default_source(), MockSource::Example);
    let examples = &cats.responses[0].content[0].examples;
    let names: Vec<Option<&str>> = examples.iter().map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names, [Some("one"), Some("two")]);
    let error: serde_json::Value = serde_json::from_str(&cats.responses[1].content[0].examples[0].1).expect("json");
    assert_eq!(error, serde_json::json!({"code": 0, "message": "string"}));
    assert_eq!(cats.responses[1].source(), MockSource::Generated);
}

#[test]
fn recursive_schemas_are_cut_and_bounds_kept() {
    let source = r##"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/cats":{"get":{"responses":{
        "200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Cat"}}}}}}}},
        "components":{"schemas":{
            "Cat":{"type":"object","required":["name","age"],"properties":{"name":{"type":"string","minLength":5},"age":{"type":"integer","exclusiveMinimum":3},"kids":{"type":"array","items":{"$ref":"#/components/schemas/Cat"}},"tag":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"owner":{"type":["null","string"],"format":"email"}}}}}}"##;
    let mocks = mock_operations(source).expect("mocks");
    let cat: serde_json::Value = serde_json::from_str(&mocks[0].responses[0].content[0].examples[0].1).expect("json");
    assert_eq!(cat["name"], "string");
    assert_eq!(cat["age"], 4);
    assert_eq!(cat["tag"], "AA-000");
    assert_eq!(cat["owner"], "user@example.com");
    // Recursion ends: some depth down, `kids` is left out (it is optional).
    let mut depth = 0;
    let mut node = &cat;
    while let Some(kids) = node.get("kids") {
        node = &kids[0];
        depth += 1;
        assert!(depth < 10, "recursion is bounded");
    }
    assert!(depth >= 1);
}
