//! Status reports to the management server: on every applied or rejected revision (at most
//! one per [`MIN_GAP`], the latest), and every [`INTERVAL`] as the agent's heartbeat.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tollgate_protocol::{AgentStatus, STATUS_PATH};

use super::Backoff;
use super::client::ControlPlane;

/// Heartbeat period of status reports.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// Least time between two reports. Under a burst of changes (an admin script suspending
/// applications one by one) every agent reported every revision, each a request and an
/// `UPDATE` on the management server: the server learns the latest revision within this
/// long instead.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(500);

/// Posts the latest status whenever it changes (coalescing bursts) and every [`INTERVAL`];
/// retries a failed post sooner, with backoff.
pub(crate) async fn report(
    control_plane: Arc<ControlPlane>,
    mut status: watch::Receiver<AgentStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    // Reports repeat every 10 s: log when they start or stop failing, not each one.
    let mut failing = false;
    loop {
        let current = status.borrow_and_update().clone();
        let posted = tokio::time::Instant::now();
        let wait = match post(&control_plane, &current).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("status reports reach the management server again");
                }
                backoff.reset();
                INTERVAL
            }
            Err(reason) => {
                if std::mem::replace(&mut failing, true) {
                    tracing::debug!(%reason, "status report failed");
                } else {
                    tracing::warn!(%reason, "status report failed; retrying with backoff");
                }
                backoff.next_delay().min(INTERVAL)
            }
        };
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        // Changes arriving meanwhile are folded into the next report.
        tokio::select! {
            _ = tokio::time::sleep_until(posted + MIN_GAP) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn post(control_plane: &ControlPlane, status: &AgentStatus) -> Result<(), String> {
    let body = serde_json::to_vec(status).map_err(|e| e.to_string())?;
    match control_plane.post_json(STATUS_PATH, Bytes::from(body)).await {
        Ok((code, _)) if code.is_success() => Ok(()),
        Ok((code, _)) => Err(format!("status {code}")),
        Err(err) => Err(err.to_string()),
    }
}
