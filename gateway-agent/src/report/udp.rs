//! Reports as UDP datagrams (`TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN`): one JSON object per datagram,
//! `{"decision":"<id>","status":<code>}`, bare or after a syslog header (nginx's
//! `access_log syslog:server=…`), so that nginx reports without a shipper and anything that can
//! send a line over UDP can too (Traefik's JSON access-log lines, read by their own field names). Datagrams can be lost (the agent down, its receive buffer
//! full): such a call is counted in the 2xx class when its wait ends.

use std::sync::Arc;

use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::Pending;

/// A report; Traefik's JSON access-log field names are read too, so its lines need no rewriting.
#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow, alias = "request_X-Tollgate-Decision")]
    decision: &'a str,
    #[serde(alias = "DownstreamStatus")]
    status: u32,
}

/// Reads reports from `socket` until `stop`.
pub(crate) async fn serve(socket: UdpSocket, pending: Arc<Pending>, mut stop: watch::Receiver<bool>) {
    // A syslog line is at most a few hundred bytes; 8 KiB leaves room for a shipper's extra fields.
    let mut buffer = vec![0u8; 8 * 1024];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            _ = stop.changed() => return,
        };
        let Ok((length, _peer)) = received else { continue };
        let datagram = &buffer[..length];
        match read(datagram) {
            Some(report) => {
                pending.settle(report.decision, report.status);
            }
            None => tracing::debug!(bytes = length, "a report datagram without a decision and status: ignored"),
        }
    }
}

/// The report in a datagram: the JSON object from its first `{` (after any syslog header) to
/// its end, trailing whitespace allowed. Lines for calls without a decision (an empty id, as
/// nginx logs a refused call) are not reports.
fn read(datagram: &[u8]) -> Option<Report<'_>> {
    let start = datagram.iter().position(|&b| b == b'{')?;
    let text = std::str::from_utf8(&datagram[start..]).ok()?.trim_end();
    serde_json::from_str::<Report<'_>>(text).ok().filter(|report| !report.decision.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_bare_or_in_syslog() {
        let syslog = b"<190>Dec  1 12:00:00 tollgate: {\"decision\":\"00000000000000ff\",\"status\":503}";
        let report = read(syslog).expect("report");
        assert_eq!((report.decision, report.status), ("00000000000000ff", 503));
        let bare = read(b"{\"status\":200,\"decision\":\"a\",\"extra\":1}\n").expect("report");
        assert_eq!((bare.decision, bare.status), ("a", 200));
        assert!(read(b"{\"decision\":\"\",\"status\":401}").is_none(), "a refused call");
        let traefik =
            br#"{"ClientHost":"127.0.0.1","DownstreamStatus":502,"request_X-Tollgate-Decision":"b","level":"info"}"#;
        let traefik = read(traefik).expect("report");
        assert_eq!((traefik.decision, traefik.status), ("b", 502));
        assert!(read(b"<190>no json").is_none());
        assert!(read(b"{\"decision\":\"a\",\"status\":\"200\"}").is_none());
    }
}
