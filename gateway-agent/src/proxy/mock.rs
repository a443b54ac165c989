//! The mock answer: an admitted request to an operation in mock mode is answered from the
//! bodies the server prepared from the API's description, and no upstream is contacted.
//!
//! Which response: `Prefer: code=404` names the status (an exact response, else its class
//! `4XX`, else `default`); without it, the lowest 2xx response, else `default` (as 200),
//! else the lowest status the document gives. `Prefer: example=name` picks a named example
//! (in the chosen response; without a code, in any response that has it). `Accept` picks
//! the media type (quality values and wildcards; JSON first among equals). A status or
//! example the document does not define is a `404`, and no acceptable media type a `406`,
//! each with an error body naming what is defined, as Stoplight Prism answers. Every mock
//! answer carries `Tollgate-Mock: true`.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tollgate_protocol::{ApiMocks, MockStatus};
use uuid::Uuid;

use super::reply::Body;

pub(crate) static TOLLGATE_MOCK: HeaderName = HeaderName::from_static("tollgate-mock");
static PREFER: HeaderName = HeaderName::from_static("prefer");
static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The compiled mocks of one API: each mocked operation by its metric id.
pub(crate) struct MockTable {
    operations: HashMap<Uuid, Operation>,
}

struct Operation {
    /// In the document's status order (exact codes, classes, `default` last).
    responses: Box<[MockResponse]>,
}

struct MockResponse {
    status: MockStatus,
    content: Box<[Content]>,
}

struct Content {
    content_type: HeaderValue,
    /// `type/subtype`, lowercase, for `Accept`.
    essence: Box<str>,
    /// The default first.
    examples: Box<[(Option<Box<str>>, Bytes)]>,
}

impl MockTable {
    /// Compiles an API's mocks (already validated with the snapshot).
    pub fn compile(mocks: &ApiMocks) -> Result<MockTable, String> {
        let mut operations = HashMap::with_capacity(mocks.operations.len());
        for operation in &mocks.operations {
            let mut responses = Vec::with_capacity(operation.responses.len());
            for response in &operation.responses {
                let status = MockStatus::parse(&response.status)
                    .ok_or_else(|| format!("bad mock status {:?}", response.status))?;
                let mut content = Vec::with_capacity(response.content.len());
                for c in &response.content {
                    let content_type = HeaderValue::from_str(&c.media_type)
                        .map_err(|_| format!("bad mock media type {:?}", c.media_type))?;
                    content.push(Content {
                        content_type,
                        essence: essence(&c.media_type).into(),
                        examples: c
                            .examples
                            .iter()
                            .map(|e| (e.name.as_deref().map(Box::from), Bytes::from(e.body.clone())))
                            .collect(),
                    });
                }
                responses.push(MockResponse { status, content: content.into_boxed_slice() });
            }
            // Exact codes before classes before `default`, so a lookup takes the first match.
            responses.sort_by_key(|r| r.status);
            operations.insert(operation.metric, Operation { responses: responses.into_boxed_slice() });
        }
        Ok(MockTable { operations })
    }

    /// Whether the operation of `metric` is in mock mode.
    pub fn has(&self, metric: Option<Uuid>) -> bool {
        metric.is_some_and(|metric| self.operations.contains_key(&metric))
    }

    /// The answer to a request of the operation `metric`; `None` if it is not mocked.
    pub fn answer(&self, metric: Uuid, headers: &HeaderMap) -> Option<Response<Body>> {
        let operation = self.operations.get(&metric)?;
        let prefer = Prefer::of(headers);
        Some(match operation.choose(&prefer, headers) {
            Ok((status, content, body)) => {
                let mut response = Response::new(Either::Right(Full::new(body)));
                *response.status_mut() = status;
                if let Some(content) = content {
                    response.headers_mut().insert(CONTENT_TYPE, content.content_type.clone());
                }
                if let Some(applied) = prefer.applied() {
                    response.headers_mut().insert(&PREFERENCE_APPLIED, applied);
                }
                response
            }
            Err(miss) => miss.response(),
        })
        .map(|mut response| {
            response.headers_mut().insert(&TOLLGATE_MOCK, HeaderValue::from_static("true"));
            response
        })
    }
}

/// What the request asked for in `Prefer`.
#[derive(Default)]
struct Prefer<'h> {
    code: Option<u16>,
    example: Option<&'h str>,
}

impl<'h> Prefer<'h> {
    fn of(headers: &'h HeaderMap) -> Prefer<'h> {
        let mut prefer = Prefer::default();
        for value in headers.get_all(&PREFER) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split([',', ';']) {
                let Some((name, value)) = token.split_once('=') else { continue };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    // A 1xx is not an answer: hyper would turn it into a 500 or a bare 101.
                    "code" => prefer.code = value.parse().ok().filter(|code| (200..=599).contains(code)),
                    "example" => prefer.example = Some(value),
                    _ => {}
                }
            }
        }
        prefer
    }

    fn applied(&self) -> Option<HeaderValue> {
        let mut parts = Vec::new();
        if let Some(code) = self.code {
            parts.push(format!("code={code}"));
        }
        if let Some(example) = self.example {
            parts.push(format!("example={example}"));
        }
        (!parts.is_empty()).then(|| HeaderValue::from_str(&parts.join(", ")).ok()).flatten()
    }
}

/// Why no body of the document fits the request.
enum Miss {
    /// `Prefer: code=` names a status the operation does not define.
    Code(u16, Vec<String>),
    /// `Prefer: example=` names an example the chosen response does not have.
    Example(String),
    /// None of the response's media types is acceptable.
    NotAcceptable(Vec<String>),
}

impl Miss {
    fn response(self) -> Response<Body> {
        let (status, error, message) = match self {
            Miss::Code(code, defined) => (
                StatusCode::NOT_FOUND,
                "mock_response_not_defined",
                format!("the operation defines no {code} response; it defines: {}", defined.join(", ")),
            ),
            Miss::Example(name) => (
                StatusCode::NOT_FOUND,
                "mock_example_not_defined",
                format!("the response has no example named {name:?}"),
            ),
            Miss::NotAcceptable(types) => (
                StatusCode::NOT_ACCEPTABLE,
                "mock_not_acceptable",
                format!("the response can be sent as: {}", types.join(", ")),
            ),
        };
        let body = serde_json::json!({ "error": error, "message": message }).to_string();
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *response.status_mut() = status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

impl Operation {
    fn choose(&self, prefer: &Prefer<'_>, headers: &HeaderMap) -> Result<(StatusCode, Option<&Content>, Bytes), Miss> {
        let (response, status) = match prefer.code {
            Some(code) => {
                let found = self
                    .responses
                    .iter()
                    .find(|r| r.status == MockStatus::Exact(code))
                    .or_else(|| self.responses.iter().find(|r| r.status == MockStatus::Class(code / 100)))
                    .or_else(|| self.responses.iter().find(|r| r.status == MockStatus::Default));
                let found = found.ok_or_else(|| Miss::Code(code, self.defined()))?;
                (found, code)
            }
            None => {
                let named = prefer
                    .example
                    .and_then(|name| self.responses.iter().find(|r| r.content.iter().any(|c| c.named(name).is_some())));
                let response = named
                    .or_else(|| self.responses.iter().find(|r| r.class() == 2))
                    .or_else(|| self.responses.iter().find(|r| r.status == MockStatus::Default))
                    .or_else(|| self.responses.first());
                let Some(response) = response else {
                    // An operation without responses: an empty 200.
                    return Ok((StatusCode::OK, None, Bytes::new()));
                };
                (response, response.code())
            }
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        if response.content.is_empty() {
            return Ok((status, None, Bytes::new()));
        }
        let content = negotiate(&response.content, headers.get(ACCEPT))
            .ok_or_else(|| Miss::NotAcceptable(response.content.iter().map(|c| c.essence.to_string()).collect()))?;
        let body = match prefer.example {
            Some(name) => content.named(name).ok_or_else(|| Miss::Example(name.to_owned()))?,
            None => content.examples.first().map(|(_, body)| body.clone()).unwrap_or_default(),
        };
        Ok((status, Some(content), body))
    }

    fn defined(&self) -> Vec<String> {
        self.responses
            .iter()
            .map(|r| match r.status {
                MockStatus::Exact(code) => code.to_string(),
                MockStatus::Class(class) => format!("{class}XX"),
                MockStatus::Default => "default".to_owned(),
            })
            .collect()
    }
}

impl MockResponse {
    fn class(&self) -> u16 {
        match self.status {
            MockStatus::Exact(code) => code / 100,
            MockStatus::Class(class) => class,
            MockStatus::Default => 0,
        }
    }

    /// The status sent when the request names none: a class answers its `X00`, `default` 200.
    fn code(&self) -> u16 {
        match self.status {
            MockStatus::Exact(code) => code,
            MockStatus::Class(class) => class * 100,
            MockStatus::Default => 200,
        }
    }
}

impl Content {
    fn named(&self, name: &str) -> Option<Bytes> {
        self.examples.iter().find(|(n, _)| n.as_deref() == Some(name)).map(|(_, body)| body.clone())
    }
}

fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The content `Accept` prefers: the highest quality, then the document's order (JSON
/// first); the first content without an `Accept` header.
fn negotiate<'c>(content: &'c [Content], accept: Option<&HeaderValue>) -> Option<&'c Content> {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()).filter(|a| !a.trim().is_empty()) else {
        return content.first();
    };
    let mut best: Option<(&Content, f32)> = None;
    for c in content {
        let (kind, _) = c.essence.split_once('/').unwrap_or((&c.essence, ""));
        // The most specific range that matches decides the quality.
        let mut quality: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            let specificity = if media == *c.essence {
                3
            } else if media.strip_suffix("/*").is_some_and(|t| t == kind) {
                2
            } else if media == "*/*" {
                1
            } else {
                continue;
            };
            if quality.is_none_or(|(s, _)| specificity > s) {
                quality = Some((specificity, q));
            }
        }
        if let Some((_, q)) = quality
            && q > 0.0
            && best.is_none_or(|(_, b)| q > b)
        {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::{MockContent, MockExample, MockOperation, MockResponse as WireResponse};

    use super::*;

    fn table() -> MockTable {
        let content = |media: &str, bodies: &[(Option<&str>, &str)]| MockContent {
            media_type: media.into(),
            examples: bodies
                .iter()
                .map(|(name, body)| MockExample { name: name.map(str::to_owned), body: (*body).into() })
                .collect(),
        };
        MockTable::compile(&ApiMocks {
            api_id: Uuid::nil(),
            operations: vec![MockOperation {
                metric: Uuid::nil(),
                responses: vec![
                    WireResponse {
                        status: "200".into(),
                        content: vec![
                            content("application/json", &[(Some("cat"), "{\"cat\":1}"), (Some("dog"), "{\"dog\":1}")]),
                            content("application/xml", &[(Some("cat"), "<cat/>")]),
                        ],
                    },
                    WireResponse { status: "404".into(), content: vec![] },
                    WireResponse { status: "5XX".into(), content: vec![content("text/plain", &[(None, "down")])] },
                ],
            }],
        })
        .expect("compile")
    }

    fn ask(headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let response = table().answer(Uuid::nil(), &map).expect("mocked");
        let status = response.status().as_u16();
        let kind = response.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let Either::Right(body) = response.into_body() else { panic!("own body") };
        let body = futures_body(body);
        (status, body, kind)
    }

    fn futures_body(body: Full<Bytes>) -> String {
        use http_body_util::BodyExt;
        let bytes =
            tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(body.collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn the_default_is_the_lowest_2xx_in_the_first_media_type() {
        assert_eq!(ask(&[]), (200, "{\"cat\":1}".into(), Some("application/json".into())));
    }

    #[test]
    fn prefer_picks_the_status_and_the_example() {
        assert_eq!(ask(&[("prefer", "code=404")]).0, 404);
        assert_eq!(ask(&[("prefer", "code=503")]), (503, "down".into(), Some("text/plain".into())));
        assert_eq!(ask(&[("prefer", "example=dog")]).1, "{\"dog\":1}");
        let (status, body, _) = ask(&[("prefer", "code=418")]);
        assert_eq!(status, 404);
        assert!(body.contains("mock_response_not_defined") && body.contains("200, 404, 5XX"), "{body}");
        assert_eq!(ask(&[("prefer", "example=cow")]).0, 404);
    }

    #[test]
    fn accept_picks_the_media_type() {
        assert_eq!(ask(&[("accept", "application/xml")]).1, "<cat/>");
        assert_eq!(ask(&[("accept", "application/xml;q=0.5, application/json")]).1, "{\"cat\":1}");
        assert_eq!(ask(&[("accept", "text/*, application/*;q=0.1")]).2.as_deref(), Some("application/json"));
        assert_eq!(ask(&[("accept", "image/png")]).0, 406);
        assert_eq!(ask(&[("accept", "application/xml"), ("prefer", "example=dog")]).0, 404);
    }
}
