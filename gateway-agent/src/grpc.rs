//! The gRPC decision listener (`TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN`): Envoy's `ext_authz`
//! `Authorization/Check` ([`crate::proxy::check`]) over cleartext HTTP/2, served by tonic on the
//! binary's runtime (decisions never wait on an upstream).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::proxy::Proxy;
use crate::proxy::check::CheckService;

/// Serves `listener` until `stop`, then lets in-flight checks finish for up to `drain`.
/// `max_header_bytes` bounds an RPC's headers and, with room for the original request's
/// headers, a `CheckRequest`.
pub(crate) async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    max_header_bytes: usize,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let check = AuthorizationServer::new(CheckService { proxy })
        .max_decoding_message_size(max_header_bytes.saturating_mul(2).saturating_add(16 * 1024));
    let header_list = u32::try_from(max_header_bytes).unwrap_or(u32::MAX);
    let mut stopping = stop.clone();
    let server = Server::builder().http2_max_header_list_size(header_list).serve_with_incoming_shutdown(
        check,
        incoming,
        async move {
            let _ = stopping.wait_for(|stopped| *stopped).await;
        },
    );
    let drained = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => {
            if let Err(err) = result {
                tracing::error!(error = %err, "the gRPC decision listener failed");
            }
        }
        () = drained => tracing::warn!("gRPC decisions still open after the drain: closed"),
    }
}
