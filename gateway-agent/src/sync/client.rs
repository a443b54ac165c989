//! The HTTP client for the management server's agent endpoints, over `http://` or
//! `https://` (verified against `TOLLGATE_AGENT_SERVER_CA`, else the system's roots).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tollgate_protocol::{AGENT_HOST_HEADER, AGENT_ID_HEADER, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER};
use uuid::Uuid;

use crate::settings::{ServerUrl, Token};

/// How long a POST (status, usage) may take in all.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the config stream may take to answer with its response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlPlaneError {
    #[error("cannot reach the management server: {}", causes(.0))]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("the management server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("reading the management server's response: {0}")]
    Body(#[source] hyper::Error),
    #[error("cannot build a request for the management server: {0}")]
    Request(String),
}

/// An error and its causes, `a: b: c`: hyper's own text is only `client error (Connect)`, the
/// same for a refused port, an unknown host and TLS spoken to a plain server.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) struct ControlPlane {
    server: ServerUrl,
    authorization: Option<HeaderValue>,
    /// The agent's id and host name, so the server tells apart agents that share a token.
    agent_id: HeaderValue,
    host: Option<HeaderValue>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ControlPlane {
    /// `tls` is used for an `https://` server.
    pub fn new(server: ServerUrl, token: &Token, agent_id: Uuid, tls: Arc<rustls::ClientConfig>) -> ControlPlane {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        // `https://` URLs get TLS; `http://` ones stay plain, as the operator wrote them.
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        ControlPlane {
            server,
            authorization: token.authorization(),
            agent_id: HeaderValue::from_str(&agent_id.to_string()).expect("a UUID is a header value"),
            host: host_name().and_then(|name| HeaderValue::from_str(&name).ok()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ControlPlaneError> {
        let uri = self.server.endpoint(path_and_query).map_err(|e| ControlPlaneError::Request(e.to_string()))?;
        let mut builder = Request::builder().method(method).uri(uri).header(PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION);
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        builder = builder.header(AGENT_ID_HEADER, self.agent_id.clone());
        if let Some(host) = &self.host {
            builder = builder.header(AGENT_HOST_HEADER, host.clone());
        }
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder.body(Full::new(body)).map_err(|e| ControlPlaneError::Request(e.to_string()))
    }

    /// Posts a JSON body; returns the status and the whole response body.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), ControlPlaneError> {
        let request = self.request(Method::POST, path, body)?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(ControlPlaneError::Unreachable)?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(ControlPlaneError::Body)?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(POST_TIMEOUT, exchange).await.map_err(|_| ControlPlaneError::Timeout(POST_TIMEOUT))?
    }

    /// Opens a long-lived GET (the config stream) and returns once its head arrives. Asks
    /// for the binary encoding; servers before it answer NDJSON.
    pub async fn open_stream(&self, path_and_query: &str) -> Result<Response<Incoming>, ControlPlaneError> {
        let mut request = self.request(Method::GET, path_and_query, Bytes::new())?;
        request.headers_mut().insert(ACCEPT, HeaderValue::from_static(ACCEPT_CONFIG));
        tokio::time::timeout(CONNECT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| ControlPlaneError::Timeout(CONNECT_TIMEOUT))?
            .map_err(ControlPlaneError::Unreachable)
    }
}

/// The machine's (or container's) host name, as the kernel has it; `None` where it cannot be
/// read or is not plain text.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name.len() <= 253 && name.bytes().all(|b| b.is_ascii_graphic())).then(|| name.to_owned())
}

/// Binary (format version 3) first, NDJSON from servers that write another version or no
/// binary form; checked against the protocol's constants by a test. A server writing only
/// version 1 matches the type without its parameter and sends version 1, which this agent
/// reads too.
const ACCEPT_CONFIG: &str = "application/vnd.tollgate.config+bin; version=3, application/x-ndjson;q=0.5";

#[cfg(test)]
mod tests {
    use tollgate_protocol::NDJSON_CONTENT_TYPE;
    use tollgate_protocol::binary::{BINARY_MEDIA_TYPE, accepts_binary};

    use super::*;

    #[test]
    fn the_accept_header_names_both_encodings() {
        assert_eq!(ACCEPT_CONFIG, format!("{BINARY_MEDIA_TYPE}, {NDJSON_CONTENT_TYPE};q=0.5"));
        assert!(accepts_binary(ACCEPT_CONFIG));
    }
}
