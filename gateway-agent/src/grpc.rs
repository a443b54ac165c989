//! The gRPC decision listener (`TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN`): Envoy's `ext_authz`
//! `Authorization/Check` ([`crate::proxy::check`]) and access-log service
//! ([`crate::report::envoy`]) over cleartext HTTP/2, served by tonic on the binary's runtime
//! (decisions never wait on an upstream).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogServiceServer;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::proxy::Proxy;
use crate::proxy::check::CheckService;
use crate::report::Pending;
use crate::report::envoy::AccessLogs;

/// Serves `listener` until `stop`, then lets in-flight calls finish for up to `drain`.
/// `max_header_bytes` bounds an RPC's headers and, with room for the original request's
/// headers, a `CheckRequest`.
pub(crate) async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    reports: Option<Arc<Pending>>,
    max_header_bytes: usize,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let max_message = max_header_bytes.saturating_mul(2).saturating_add(16 * 1024);
    let services = Services {
        check: AuthorizationServer::new(CheckService { proxy }).max_decoding_message_size(max_message),
        logs: AccessLogServiceServer::new(AccessLogs { pending: reports }).max_decoding_message_size(max_message),
    };
    let header_list = u32::try_from(max_header_bytes).unwrap_or(u32::MAX);
    let mut stopping = stop.clone();
    let server = Server::builder().http2_max_header_list_size(header_list).serve_with_incoming_shutdown(
        services,
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
        () = drained => tracing::warn!("gRPC calls still open after the drain: closed"),
    }
}

/// The listener's two services, routed by the RPC's path (tonic's own router would bring in
/// axum for this one `match`).
#[derive(Clone)]
struct Services {
    check: AuthorizationServer<CheckService>,
    logs: AccessLogServiceServer<AccessLogs>,
}

impl Service<http::Request<Body>> for Services {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let service = path.strip_prefix('/').and_then(|p| p.split_once('/')).map_or("", |(service, _)| service);
        if service == <AuthorizationServer<CheckService> as NamedService>::NAME {
            self.check.call(request)
        } else if service == <AccessLogServiceServer<AccessLogs> as NamedService>::NAME {
            self.logs.call(request)
        } else {
            Box::pin(async { Ok(tonic::Status::unimplemented("no such service").into_http()) })
        }
    }
}
