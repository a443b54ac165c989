//! Mock mode: answers an agent gives from an API's description instead of its upstream.
//!
//! The management server reads each mocked operation's responses from the API's OpenAPI
//! document (its examples, else a value generated from the schema) and sends them ready to
//! write, so the agent only picks one per request (see `docs/MOCKS.md`). Only APIs with at
//! least one operation in mock mode have an [`ApiMocks`], so snapshots of installs without
//! mocks do not grow.
//!
//! Mocks are the feature [`FEATURE_MOCKS`] ([`crate::features`]): a snapshot that carries any
//! requires it at protocol version 2 (an agent of version 1 refuses it by name instead of
//! proxying mocked operations to an upstream that may not exist), and deltas carry them in
//! [`crate::Change`]s an agent of version 1 cannot parse, so it refuses those too.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::ValidationError;

/// The feature a snapshot with mocks requires.
pub const FEATURE_MOCKS: &str = "mocks";

/// The most bytes one mocked body may have (the server leaves out larger generated ones).
pub const MAX_MOCK_BODY: usize = 1024 * 1024;

/// The mocked operations of one API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMocks {
    pub api_id: Uuid,
    pub operations: Vec<MockOperation>,
}

/// One operation in mock mode, named by its method metric (the metric of the imported
/// mapping rule made for it), with its responses in the document's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockOperation {
    pub metric: Uuid,
    pub responses: Vec<MockResponse>,
}

/// One response of the operation: `status` as the document keys it: `200`, `4XX` or
/// `default`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockResponse {
    pub status: String,
    /// Empty: the response has no body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<MockContent>,
}

/// A media type of a response and its examples, the first being the default one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockContent {
    pub media_type: String,
    pub examples: Vec<MockExample>,
}

/// A body ready to send; `name` is the key of a named example (`Prefer: example=name`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockExample {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub body: String,
}

/// A response status as a document keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MockStatus {
    /// `200`.
    Exact(u16),
    /// `4XX`: the class's first digit.
    Class(u16),
    /// `default`.
    Default,
}

impl MockStatus {
    pub fn parse(status: &str) -> Option<MockStatus> {
        if status == "default" {
            return Some(MockStatus::Default);
        }
        let bytes = status.as_bytes();
        if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
            return None;
        }
        if bytes[1..].eq_ignore_ascii_case(b"XX") {
            return Some(MockStatus::Class(u16::from(bytes[0] - b'0')));
        }
        status.parse::<u16>().ok().filter(|code| (100..=599).contains(code)).map(MockStatus::Exact)
    }
}

/// Checks the mocks of a snapshot against its APIs: `metric_api` maps each metric id to
/// its API's id.
pub(crate) fn validate(
    mocks: &[ApiMocks],
    api_ids: &HashSet<Uuid>,
    metric_api: &std::collections::HashMap<Uuid, Uuid>,
) -> Result<(), ValidationError> {
    let mut apis = HashSet::new();
    for (i, api) in mocks.iter().enumerate() {
        let at = format!("mocks[{i}]");
        if !api_ids.contains(&api.api_id) {
            return Err(ValidationError::new(format!("{at}.api_id"), format!("unknown API {}", api.api_id)));
        }
        if !apis.insert(api.api_id) {
            return Err(ValidationError::new(format!("{at}.api_id"), format!("second mocks for API {}", api.api_id)));
        }
        let mut operations = HashSet::new();
        for (j, operation) in api.operations.iter().enumerate() {
            let at = format!("{at}.operations[{j}]");
            if metric_api.get(&operation.metric) != Some(&api.api_id) {
                return Err(ValidationError::new(
                    format!("{at}.metric"),
                    format!("metric {} is not one of the API's", operation.metric),
                ));
            }
            if !operations.insert(operation.metric) {
                return Err(ValidationError::new(format!("{at}.metric"), "second mock of this operation"));
            }
            let mut statuses = HashSet::new();
            for (k, response) in operation.responses.iter().enumerate() {
                let at = format!("{at}.responses[{k}]");
                let Some(status) = MockStatus::parse(&response.status) else {
                    return Err(ValidationError::new(
                        format!("{at}.status"),
                        format!("{:?} is not a status such as 200, 4XX or default", response.status),
                    ));
                };
                if !statuses.insert(status) {
                    return Err(ValidationError::new(format!("{at}.status"), "second response with this status"));
                }
                for (m, content) in response.content.iter().enumerate() {
                    let at = format!("{at}.content[{m}]");
                    let media = &content.media_type;
                    if !media.contains('/') || !media.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                        return Err(ValidationError::new(
                            format!("{at}.media_type"),
                            format!("{media:?} is not a media type"),
                        ));
                    }
                    if content.examples.is_empty() {
                        return Err(ValidationError::new(format!("{at}.examples"), "a media type needs a body"));
                    }
                    for (e, example) in content.examples.iter().enumerate() {
                        if example.body.len() > MAX_MOCK_BODY {
                            return Err(ValidationError::new(
                                format!("{at}.examples[{e}].body"),
                                format!("larger than {MAX_MOCK_BODY} bytes"),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_as_documents_key_them() {
        assert_eq!(MockStatus::parse("200"), Some(MockStatus::Exact(200)));
        assert_eq!(MockStatus::parse("4XX"), Some(MockStatus::Class(4)));
        assert_eq!(MockStatus::parse("5xx"), Some(MockStatus::Class(5)));
        assert_eq!(MockStatus::parse("default"), Some(MockStatus::Default));
        for bad in ["600", "99", "6XX", "20", "2000", "", "Default"] {
            assert_eq!(MockStatus::parse(bad), None, "{bad}");
        }
    }
}
