//! Envoy's gRPC access-log service (`envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`)
//! on the gRPC decision listener: each HTTP entry that logs the `x-tollgate-decision` request
//! header (`additional_request_headers_to_log`) reports its response code.

use std::sync::Arc;

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogService;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{StreamAccessLogsMessage, StreamAccessLogsResponse};
use tonic::{Status, Streaming};

use super::{Pending, Settled, X_TOLLGATE_DECISION};

/// The access-log service; without reports on (`pending` is `None`) it reads and drops entries.
pub(crate) struct AccessLogs {
    pub pending: Option<Arc<Pending>>,
}

#[tonic::async_trait]
impl AccessLogService for AccessLogs {
    async fn stream_access_logs(
        &self,
        request: tonic::Request<Streaming<StreamAccessLogsMessage>>,
    ) -> Result<tonic::Response<StreamAccessLogsResponse>, Status> {
        let mut stream = request.into_inner();
        let (mut counted, mut unknown) = (0u64, 0u64);
        while let Some(message) = stream.message().await? {
            let (Some(pending), Some(LogEntries::HttpLogs(logs))) = (&self.pending, message.log_entries) else {
                continue;
            };
            for entry in logs.log_entry {
                let id = entry.request.as_ref().and_then(|r| r.request_headers.get(X_TOLLGATE_DECISION.as_str()));
                let Some(id) = id else { continue };
                let status = entry.response.as_ref().and_then(|r| r.response_code.as_ref()).map_or(0, |c| c.value);
                match pending.settle(id, status) {
                    Settled::Counted => counted += 1,
                    Settled::Unknown => unknown += 1,
                }
            }
        }
        tracing::debug!(counted, unknown, "an Envoy access-log stream ended");
        Ok(tonic::Response::new(StreamAccessLogsResponse {}))
    }
}
