//! The server's outward addresses, shared with handlers as app data.

/// The URL people reach the server at, for links in emails.
#[derive(Debug, Clone)]
pub struct PublicUrl(pub String);

/// Where API consumers reach the gateway, for docs, samples and try-it.
#[derive(Debug, Clone)]
pub struct GatewayUrl(pub String);
