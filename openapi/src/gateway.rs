//! The document as a partner calls the API: through the gateway. A client
//! generated from the stored document would call the servers it names, with
//! the security schemes of the upstream, and know nothing of the gateway's own
//! answers. [`for_gateway`] rewrites those three parts and keeps the rest of
//! the document, in its order and format.

use yaml_serde::{Mapping, Value};

use crate::document::{ImportError, METHODS};
use crate::import::{SpecFormat, parse_format};

/// Where the gateway reads credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsIn {
    Header,
    Query,
}

impl CredentialsIn {
    fn as_str(self) -> &'static str {
        match self {
            CredentialsIn::Header => "header",
            CredentialsIn::Query => "query",
        }
    }
}

/// What a partner needs to know of the gateway to call the API.
#[derive(Debug, Clone)]
pub struct Gateway<'a> {
    /// The gateway's URL with the API's base path, e.g. `https://gw.example.com/weather`.
    pub base_url: &'a str,
    pub credentials_in: CredentialsIn,
    /// The credentials every call sends together: the user key's name, or `app_id` and `app_key`.
    pub credentials: &'a [&'a str],
}

/// The name of the schema of the gateway's error bodies, in the document's components.
pub const ERROR_SCHEMA: &str = "TollgateError";

/// The gateway's own answers that any call can get, with what they mean.
const GATEWAY_ANSWERS: [(&str, &str); 3] = [
    ("401", "No credentials were sent (`missing_credentials`)."),
    (
        "403",
        "The credentials are unknown, expired or revoked (`invalid_credentials`), or the application is pending approval or suspended (`application_not_live`).",
    ),
    ("429", "A usage limit of the plan is used up (`limit_exceeded`); wait the seconds that `Retry-After` gives."),
];

/// The stored document pointed at the gateway: its servers replaced by the
/// gateway's URL (operation and path servers removed), the gateway's
/// credentials as its only security requirement, and the gateway's 401, 403
/// and 429 answers on every operation that does not describe them. The text
/// comes back in the document's own format, keys in their order.
pub fn for_gateway(source: &str, gateway: &Gateway<'_>) -> Result<String, ImportError> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let format = parse_format(text);
    let mut doc: Value = match format {
        SpecFormat::Json => {
            serde_json::from_str(text).map_err(|e| ImportError::at("", format!("invalid JSON: {e}")))?
        }
        SpecFormat::Yaml => {
            yaml_serde::from_str(text).map_err(|e| ImportError::at("", format!("invalid YAML: {e}")))?
        }
    };
    let root = doc.as_mapping_mut().ok_or_else(|| ImportError::at("", "the document is not an object"))?;
    let swagger2 = root.get("swagger").and_then(Value::as_str) == Some("2.0");
    let schemes: Vec<String> = gateway.credentials.iter().map(|name| format!("tollgate_{name}")).collect();
    if swagger2 {
        point_swagger2(root, gateway.base_url);
        let definitions = map_at(root, "securityDefinitions");
        add_schemes(definitions, gateway, &schemes);
        map_at(root, "definitions").insert(ERROR_SCHEMA.into(), error_schema());
    } else {
        root.insert("servers".into(), servers(gateway.base_url));
        let components = map_at(root, "components");
        add_schemes(map_at(components, "securitySchemes"), gateway, &schemes);
        map_at(components, "schemas").insert(ERROR_SCHEMA.into(), error_schema());
    }
    let mut requirement = Mapping::new();
    for scheme in &schemes {
        requirement.insert(scheme.as_str().into(), Value::Sequence(Vec::new()));
    }
    root.insert("security".into(), Value::Sequence(vec![Value::Mapping(requirement)]));
    if let Some(paths) = root.get_mut("paths").and_then(Value::as_mapping_mut) {
        for item in paths.values_mut().filter_map(Value::as_mapping_mut) {
            item.remove("servers");
            for method in METHODS {
                if let Some(operation) = item.get_mut(method).and_then(Value::as_mapping_mut) {
                    operation.remove("servers");
                    // The gateway's requirement is the only one: it strips the credentials it reads.
                    operation.remove("security");
                    add_answers(operation, swagger2);
                }
            }
        }
    }
    match format {
        SpecFormat::Json => serde_json::to_string_pretty(&doc).map_err(|e| ImportError::at("", e.to_string())),
        SpecFormat::Yaml => yaml_serde::to_string(&doc).map_err(|e| ImportError::at("", e.to_string())),
    }
}

/// The mapping under `key`, made one if it is missing or something else.
fn map_at<'m>(map: &'m mut Mapping, key: &str) -> &'m mut Mapping {
    let slot = map.entry(key.into()).or_insert_with(|| Value::Mapping(Mapping::new()));
    if !slot.is_mapping() {
        *slot = Value::Mapping(Mapping::new());
    }
    slot.as_mapping_mut().expect("made a mapping above")
}

fn servers(base_url: &str) -> Value {
    let mut server = Mapping::new();
    server.insert("url".into(), base_url.into());
    server.insert("description".into(), "The API gateway".into());
    Value::Sequence(vec![Value::Mapping(server)])
}

/// Swagger 2.0 names the server by scheme, host and base path.
fn point_swagger2(root: &mut Mapping, base_url: &str) {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("https", base_url));
    let (host, path) = rest.find('/').map_or((rest, "/"), |slash| rest.split_at(slash));
    root.insert("host".into(), host.into());
    root.insert("basePath".into(), path.into());
    root.insert("schemes".into(), Value::Sequence(vec![scheme.into()]));
}

fn add_schemes(into: &mut Mapping, gateway: &Gateway<'_>, schemes: &[String]) {
    for (scheme, name) in schemes.iter().zip(gateway.credentials) {
        let mut definition = Mapping::new();
        definition.insert("type".into(), "apiKey".into());
        definition.insert("in".into(), gateway.credentials_in.as_str().into());
        definition.insert("name".into(), (*name).into());
        definition.insert(
            "description".into(),
            format!("`{name}`, from the developer portal, checked by the API gateway.").into(),
        );
        into.insert(scheme.as_str().into(), Value::Mapping(definition));
    }
}

fn error_schema() -> Value {
    let mut string = Mapping::new();
    string.insert("type".into(), "string".into());
    let mut properties = Mapping::new();
    properties.insert("error".into(), Value::Mapping(string.clone()));
    properties.insert("message".into(), Value::Mapping(string));
    let mut schema = Mapping::new();
    schema.insert("type".into(), "object".into());
    schema.insert("required".into(), Value::Sequence(vec!["error".into(), "message".into()]));
    schema.insert("properties".into(), Value::Mapping(properties));
    schema.insert("description".into(), "An answer of the API gateway itself: a snake_case code and a message.".into());
    Value::Mapping(schema)
}

/// The gateway's answers, where the operation does not describe them (as a
/// string key or, in YAML, a number).
fn add_answers(operation: &mut Mapping, swagger2: bool) {
    let responses = map_at(operation, "responses");
    for (status, description) in GATEWAY_ANSWERS {
        let number: u64 = status.parse().expect("a status code");
        if responses.contains_key(status) || responses.contains_key(Value::from(number)) {
            continue;
        }
        let mut response = Mapping::new();
        response.insert("description".into(), description.into());
        let reference = if swagger2 {
            format!("#/definitions/{ERROR_SCHEMA}")
        } else {
            format!("#/components/schemas/{ERROR_SCHEMA}")
        };
        let mut schema = Mapping::new();
        schema.insert("$ref".into(), reference.into());
        if swagger2 {
            response.insert("schema".into(), Value::Mapping(schema));
        } else {
            let mut media = Mapping::new();
            media.insert("schema".into(), Value::Mapping(schema));
            let mut content = Mapping::new();
            content.insert("application/json".into(), Value::Mapping(media));
            response.insert("content".into(), Value::Mapping(content));
        }
        if status == "429" {
            let mut integer = Mapping::new();
            integer.insert("type".into(), "integer".into());
            let mut header = Mapping::new();
            header.insert("description".into(), "Seconds until the limit's window starts again.".into());
            if swagger2 {
                header.insert("type".into(), "integer".into());
            } else {
                header.insert("schema".into(), Value::Mapping(integer));
            }
            let mut headers = Mapping::new();
            headers.insert("Retry-After".into(), Value::Mapping(header));
            response.insert("headers".into(), Value::Mapping(headers));
        }
        responses.insert(status.into(), Value::Mapping(response));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_KEY: Gateway<'static> = Gateway {
        base_url: "http://127.0.0.1:8081/weather",
        credentials_in: CredentialsIn::Query,
        credentials: &["user_key"],
    };

    #[test]
    fn an_openapi_3_document_names_the_gateway_its_key_and_its_answers_in_its_own_order() {
        let source = r#"{
  "openapi": "3.0.3",
  "info": {"title": "Weather", "version": "1"},
  "servers": [{"url": "https://upstream.internal/v1"}],
  "security": [{"oauth": []}],
  "paths": {
    "/forecast": {
      "servers": [{"url": "https://other.internal"}],
      "get": {"security": [], "servers": [{"url": "https://x"}], "responses": {"200": {"description": "ok"}, "429": {"description": "own"}}}
    }
  },
  "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {}}}}
}"#;
        let text = for_gateway(source, &USER_KEY).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["servers"],
            serde_json::json!([{"url": "http://127.0.0.1:8081/weather", "description": "The API gateway"}])
        );
        assert_eq!(doc["security"], serde_json::json!([{"tollgate_user_key": []}]));
        assert_eq!(
            doc["components"]["securitySchemes"]["tollgate_user_key"],
            serde_json::json!({"type": "apiKey", "in": "query", "name": "user_key",
                "description": "`user_key`, from the developer portal, checked by the API gateway."})
        );
        let item = &doc["paths"]["/forecast"];
        assert!(
            item.get("servers").is_none()
                && item["get"].get("servers").is_none()
                && item["get"].get("security").is_none()
        );
        let responses = &item["get"]["responses"];
        assert_eq!(
            responses["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/TollgateError"
        );
        assert_eq!(responses["429"], serde_json::json!({"description": "own"}), "the document's own answer is kept");
        assert!(text.find("\"openapi\"").unwrap() < text.find("\"info\"").unwrap(), "keys keep their order");
        assert!(text.find("\"info\"").unwrap() < text.find("\"paths\"").unwrap());
        // What comes out is a document the importer reads, with the same operations.
        assert_eq!(crate::parse(&text).unwrap().operations, crate::parse(source).unwrap().operations);
    }

    #[test]
    fn a_swagger_2_yaml_document_gets_host_base_path_and_both_app_credentials_in_headers() {
        let source = "swagger: '2.0'\ninfo:\n  title: Pets\n  version: '1'\nhost: upstream.internal\nbasePath: /v1\nschemes: [https]\npaths:\n  /pets:\n    get:\n      responses:\n        200:\n          description: ok\n        401:\n          description: own\n";
        let gateway = Gateway {
            base_url: "https://gw.example.com/pets",
            credentials_in: CredentialsIn::Header,
            credentials: &["app_id", "app_key"],
        };
        let text = for_gateway(source, &gateway).unwrap();
        let doc: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!((doc["host"].as_str(), doc["basePath"].as_str()), (Some("gw.example.com"), Some("/pets")));
        assert_eq!(doc["schemes"], serde_json::json!(["https"]));
        assert_eq!(
            doc["security"],
            serde_json::json!([{"tollgate_app_id": [], "tollgate_app_key": []}]),
            "both at once"
        );
        assert_eq!(doc["securityDefinitions"]["tollgate_app_key"]["in"], "header");
        let responses = &doc["paths"]["/pets"]["get"]["responses"];
        assert_eq!(responses["401"]["description"], "own", "a numeric YAML key counts as described");
        assert_eq!(responses["403"]["schema"]["$ref"], "#/definitions/TollgateError");
        assert_eq!(responses["429"]["headers"]["Retry-After"]["type"], "integer");
        assert!(text.starts_with("swagger:"), "YAML stays YAML");
        assert_eq!(crate::parse(&text).unwrap().operations, crate::parse(source).unwrap().operations);
    }

    #[test]
    fn a_gateway_at_its_root_is_base_path_slash() {
        let source = "{\"swagger\": \"2.0\", \"info\": {\"title\": \"t\", \"version\": \"1\"}, \"paths\": {}}";
        let gateway = Gateway { base_url: "http://gw:8081", ..USER_KEY };
        let doc: serde_json::Value = serde_json::from_str(&for_gateway(source, &gateway).unwrap()).unwrap();
        assert_eq!((doc["host"].as_str(), doc["basePath"].as_str()), (Some("gw:8081"), Some("/")));
    }
}
