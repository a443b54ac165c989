//! The config stream: one long-lived `GET /agent/v1/config?revision=N` whose NDJSON body
//! carries a snapshot or deltas, then deltas as they commit, and heartbeats.
//!
//! Every update is validated and compiled on a blocking thread (never on the request path),
//! then swapped in with one atomic store, persisted, and reported. An update that fails
//! validation or compilation is reported as rejected and the last good config stays in
//! service. A delta that does not apply to the current revision, a heartbeat announcing a
//! revision the agent has not seen, [`SILENCE`] without a byte, or any stream error ends
//! the connection; the agent reconnects with backoff and `?revision=` of what it enforces.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::header::CONTENT_TYPE;
use tokio::sync::{mpsc, watch};
use tollgate_protocol::binary::{BINARY_CONTENT_TYPE, BinaryError, Frame, FrameKind, FrameReader};
use tollgate_protocol::{
    AgentStatus, CONFIG_STREAM_PATH, ConfigMessage, CurrentUsage, Delta, NDJSON_CONTENT_TYPE, PROTOCOL_VERSION,
    Rejection,
};

use super::Backoff;
use super::client::{ControlPlane, ControlPlaneError};
use crate::config::store::Save;
use crate::config::{
    Config, ConfigError, LiveConfig, apply_delta, compile_frames, compile_snapshot, is_snapshot_line, parse_snapshot,
};
use crate::enforce::Limiter;
use crate::enforce::seed::seed;
use crate::telemetry::Metrics;

/// The server sends a heartbeat at least every 5 s; three missed ones mean a dead link.
pub(crate) const SILENCE: Duration = Duration::from_secs(15);

/// Messages at least this long are parsed on a blocking thread.
const PARSE_INLINE_BYTES: usize = 64 * 1024;

/// Where the config being served came from, for `/ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Source {
    None = 0,
    Disk = 1,
    Server = 2,
}

impl Source {
    pub fn load(cell: &AtomicU8) -> Source {
        match cell.load(Ordering::Acquire) {
            1 => Source::Disk,
            2 => Source::Server,
            _ => Source::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Disk => "disk",
            Source::Server => "server",
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error("the management server refused the agent token (401); check TOLLGATE_AGENT_TOKEN")]
    Unauthorized,
    #[error("the management server answered {0}")]
    Status(StatusCode),
    #[error("the management server answered with content type {0:?}, not {NDJSON_CONTENT_TYPE}")]
    ContentType(String),
    #[error("no data from the management server for {}s", SILENCE.as_secs())]
    Silent,
    #[error("the management server closed the config stream")]
    Closed,
    #[error("reading the config stream: {0}")]
    Body(#[source] hyper::Error),
    #[error("reading the binary config stream: {0}")]
    Frames(#[source] BinaryError),
    #[error("missed an update: delta {base} → {revision} does not apply to revision {current:?}")]
    Gap { base: u64, revision: u64, current: Option<u64> },
    #[error("missed an update: the server is at revision {server}, the agent at {agent:?}")]
    Behind { server: u64, agent: Option<u64> },
    #[error("rejected the update to revision {0}: asking for the whole config")]
    Resync(u64),
    #[error("shutting down")]
    Stopped,
}

/// Everything the sync task updates.
pub(crate) struct ConfigSync {
    pub control_plane: Arc<ControlPlane>,
    pub live: Arc<LiveConfig>,
    pub source: Arc<AtomicU8>,
    /// Set while the server refuses the agent token, for `/ready`.
    pub token_refused: Arc<AtomicBool>,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<Metrics>,
    pub status: watch::Sender<AgentStatus>,
    pub persist: mpsc::UnboundedSender<Save>,
}

struct State {
    /// What deltas apply to: the live config, or the one loaded from disk before it is live.
    base: Option<Arc<Config>>,
    /// Where the config loaded from disk stands.
    disk: DiskCopy,
    rejected: Option<Rejection>,
    /// A config was installed since the last reconnect.
    progressed: bool,
    /// A delta was rejected: the next stream asks for the whole config, not the changes after
    /// this agent's revision (which would bring the same delta again, and every later one
    /// would build on it).
    resync: bool,
    retired: Retired<Config>,
}

/// Why the config loaded from disk goes into service before the server confirmed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StandbyReason {
    Unreachable,
    TokenRefused,
    Rejected,
}

/// The config loaded from disk at start, until the server sends or confirms one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskCopy {
    /// None was loaded, or the server's config has replaced or confirmed it.
    Settled,
    /// Loaded, not in service yet.
    Standby,
    /// In service (the server was unreachable), not confirmed by the server yet.
    Unconfirmed,
}

/// Configs replaced while requests may still hold them. Dropping a million-key config
/// releases some 130,000 table pieces (a millisecond or so): the sync task does it, not
/// whichever proxy worker finishes the last request that held the old config.
struct Retired<T>(Vec<Arc<T>>);

impl<T> Retired<T> {
    fn keep(&mut self, old: Option<Arc<T>>) {
        self.0.extend(old);
        self.sweep();
    }

    /// Drops those no request holds any more.
    fn sweep(&mut self) {
        self.0.retain(|old| Arc::strong_count(old) > 1);
    }
}

impl State {
    fn revision(&self) -> Option<u64> {
        self.base.as_ref().map(|c| c.revision)
    }

    /// The newest revision the agent has seen, applied or rejected.
    fn seen(&self) -> Option<u64> {
        self.revision().max(self.rejected.as_ref().map(|r| r.revision))
    }
}

impl ConfigSync {
    /// Runs until `stop` changes. `standby` is the config loaded from disk, served if the
    /// management server cannot be reached.
    pub async fn run(self, standby: Option<Arc<Config>>, mut stop: watch::Receiver<bool>) {
        let mut state = State {
            disk: if standby.is_some() { DiskCopy::Standby } else { DiskCopy::Settled },
            base: standby,
            rejected: None,
            progressed: false,
            resync: false,
            retired: Retired(Vec::new()),
        };
        let mut backoff = Backoff::new();
        loop {
            let end = tokio::select! {
                end = self.session(&mut state) => end,
                _ = stop.changed() => SessionEnd::Stopped,
            };
            self.metrics.cp_connected.set(0.0);
            match &end {
                SessionEnd::Stopped => return,
                SessionEnd::Unauthorized => {
                    tracing::error!(server = %self.control_plane.server(), "{end}")
                }
                SessionEnd::Gap { .. } | SessionEnd::Behind { .. } => {
                    tracing::info!("{end}; reconnecting")
                }
                _ => {
                    tracing::warn!(server = %self.control_plane.server(), "config stream: {end}; reconnecting")
                }
            }
            if state.disk == DiskCopy::Standby {
                let why = match end {
                    SessionEnd::Unauthorized => StandbyReason::TokenRefused,
                    SessionEnd::Resync(_) => StandbyReason::Rejected,
                    _ => StandbyReason::Unreachable,
                };
                self.serve_standby(&mut state, why);
            }
            // Only progress resets the backoff: a server that keeps sending what the agent
            // rejects, or streams that keep failing, are retried ever more slowly.
            if std::mem::take(&mut state.progressed) {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The server is unreachable before the first config arrived: serve the disk copy.
    fn serve_standby(&self, state: &mut State, why: StandbyReason) {
        state.disk = if state.base.is_some() { DiskCopy::Unconfirmed } else { DiskCopy::Settled };
        if let Some(config) = &state.base {
            match why {
                StandbyReason::TokenRefused => tracing::warn!(
                    revision = config.revision,
                    "the management server refused the agent token: serving the last good config from disk, \
                     which will not change until the agent has a valid token"
                ),
                StandbyReason::Unreachable => tracing::warn!(
                    revision = config.revision,
                    "management server unreachable: serving the last good config from disk"
                ),
                StandbyReason::Rejected => tracing::warn!(
                    revision = config.revision,
                    "the management server's update was rejected: serving the last good config from disk"
                ),
            }
            // The source goes first: `/ready` reads it after the config.
            self.source.store(Source::Disk as u8, Ordering::Release);
            self.live.store(Some(config.clone()));
            self.metrics.config_revision.set(config.revision as f64);
            self.report(state);
        }
    }

    /// The server confirmed that the config loaded from disk is its current one, before or
    /// after it went into service.
    fn confirm_standby(&self, state: &mut State) {
        state.disk = DiskCopy::Settled;
        if let Some(config) = &state.base {
            tracing::info!(revision = config.revision, "the management server confirmed the saved config is current");
            self.source.store(Source::Server as u8, Ordering::Release);
            self.live.store(Some(config.clone()));
            self.metrics.config_revision.set(config.revision as f64);
            state.progressed = true;
            self.report(state);
        }
    }

    async fn session(&self, state: &mut State) -> SessionEnd {
        let path = match state.revision().filter(|_| !state.resync) {
            Some(revision) => format!("{CONFIG_STREAM_PATH}?revision={revision}"),
            None => CONFIG_STREAM_PATH.to_owned(),
        };
        let response = match self.control_plane.open_stream(&path).await {
            Ok(response) => response,
            Err(err) => return err.into(),
        };
        match response.status() {
            StatusCode::OK => self.token_refused.store(false, Ordering::Release),
            StatusCode::UNAUTHORIZED => {
                self.token_refused.store(true, Ordering::Release);
                return SessionEnd::Unauthorized;
            }
            status => return SessionEnd::Status(status),
        }
        let binary = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|k| k.as_bytes().starts_with(BINARY_CONTENT_TYPE.as_bytes()));
        if let Some(kind) = response.headers().get(CONTENT_TYPE)
            && !binary
            && !kind.as_bytes().starts_with(NDJSON_CONTENT_TYPE.as_bytes())
        {
            return SessionEnd::ContentType(String::from_utf8_lossy(kind.as_bytes()).into_owned());
        }
        tracing::info!(server = %self.control_plane.server(), revision = state.revision(), binary, "config stream connected");
        self.metrics.cp_connected.set(1.0);
        if binary {
            return self.binary_session(state, response.into_body()).await;
        }
        let mut body = response.into_body();
        let mut buffer = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(SILENCE, body.frame()).await {
                Err(_) => return SessionEnd::Silent,
                Ok(None) => return SessionEnd::Closed,
                Ok(Some(Err(err))) => return SessionEnd::Body(err),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            // Scan only the new bytes for line ends; a snapshot line can be very long.
            let mut scanned = buffer.len() - data.len();
            while let Some(at) = find_newline(&buffer[scanned..]) {
                let line = buffer.split_to(scanned + at + 1).freeze();
                scanned = 0;
                if let Err(end) = self.handle_line(state, line).await {
                    return end;
                }
            }
            if buffer.is_empty() {
                // Give back the capacity a big snapshot line needed.
                buffer = BytesMut::new();
            }
        }
    }

    async fn handle_line(&self, state: &mut State, mut line: Bytes) -> Result<(), SessionEnd> {
        while line.last().is_some_and(|b| b.is_ascii_whitespace()) {
            line.truncate(line.len() - 1);
        }
        if line.is_empty() {
            return Ok(());
        }
        if is_snapshot_line(&line) {
            // The usual snapshot: parsed and compiled in one pass, off the async workers.
            let claimed = line.clone();
            self.apply_snapshot(state, move || parse_snapshot(&line), move || claimed_revision(&claimed)).await;
            return Ok(());
        }
        let parsed = if line.len() < PARSE_INLINE_BYTES {
            serde_json::from_slice::<ConfigMessage>(&line)
        } else {
            let bytes = line.clone();
            tokio::task::spawn_blocking(move || serde_json::from_slice::<ConfigMessage>(&bytes))
                .await
                .unwrap_or_else(|join| Err(serde::de::Error::custom(join)))
        };
        let message = match parsed {
            Ok(message) => message,
            Err(err) => {
                // Unreadable: reject it under the revision it claims, if any.
                let revision = claimed_revision(&line);
                drop(line);
                self.reject(state, revision, format!("unreadable config message: {err}"));
                return Ok(());
            }
        };
        drop(line);
        self.handle_message(state, message).await
    }

    /// The binary stream: frames are split as bytes arrive; a snapshot's frames go to its
    /// compiler on a blocking thread while the rest is still downloading.
    async fn binary_session(&self, state: &mut State, mut body: hyper::body::Incoming) -> SessionEnd {
        let mut reader = FrameReader::new();
        let mut receiving: Option<Receiving> = None;
        loop {
            let frame = match tokio::time::timeout(SILENCE, body.frame()).await {
                Err(_) => return SessionEnd::Silent,
                Ok(None) => return SessionEnd::Closed,
                Ok(Some(Err(err))) => return SessionEnd::Body(err),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            reader.push(&data);
            loop {
                let frame = match reader.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(err) => return SessionEnd::Frames(err),
                };
                match frame.kind {
                    FrameKind::KeepAlive => {}
                    FrameKind::Message => match frame.message() {
                        Ok(message) => {
                            if let Err(end) = self.handle_message(state, message).await {
                                return end;
                            }
                        }
                        Err(err) => self.reject(state, None, format!("unreadable config message: {err}")),
                    },
                    FrameKind::Head => {
                        let revision = frame.head().ok().map(|head| head.revision);
                        let (frames, rx) = tokio::sync::mpsc::channel::<Frame>(64);
                        let limiter = self.limiter.clone();
                        let compiler = tokio::task::spawn_blocking(move || {
                            let mut rx = rx;
                            let (config, usage) = compile_frames(std::iter::from_fn(|| rx.blocking_recv()))?;
                            seed(&config, &usage, &limiter);
                            Ok::<_, ConfigError>(config)
                        });
                        let _ = frames.send(frame).await;
                        receiving = Some(Receiving { frames, compiler, revision, started: Instant::now() });
                    }
                    FrameKind::End => {
                        let Some(snapshot) = receiving.take() else {
                            return SessionEnd::Frames(BinaryError::Malformed {
                                what: "stream",
                                message: "an end frame without a snapshot".into(),
                            });
                        };
                        // A compiler that stopped early (an invalid snapshot) has its verdict ready.
                        let _ = snapshot.frames.send(frame).await;
                        drop(snapshot.frames);
                        let compiled = snapshot.compiler.await;
                        self.conclude_snapshot(state, compiled, snapshot.started, snapshot.revision);
                    }
                    _ => {
                        if let Some(snapshot) = &receiving {
                            let _ = snapshot.frames.send(frame).await;
                        }
                    }
                }
            }
        }
    }

    async fn handle_message(&self, state: &mut State, message: ConfigMessage) -> Result<(), SessionEnd> {
        match message {
            ConfigMessage::Snapshot(snapshot) => {
                let revision = snapshot.revision;
                self.apply_snapshot(state, move || compile_snapshot(snapshot), move || Some(revision)).await;
            }
            ConfigMessage::Delta(delta) => {
                if state.base.is_none() || state.revision() != Some(delta.base_revision) {
                    // A delta building on a revision this agent rejected is a gap too.
                    return Err(SessionEnd::Gap {
                        base: delta.base_revision,
                        revision: delta.revision,
                        current: state.revision(),
                    });
                }
                let revision = delta.revision;
                self.apply_delta(state, delta).await;
                if state.rejected.as_ref().is_some_and(|r| r.revision == revision) {
                    state.resync = true;
                    return Err(SessionEnd::Resync(revision));
                }
            }
            ConfigMessage::Heartbeat(heartbeat) => {
                state.retired.sweep();
                if state.seen().is_none_or(|seen| heartbeat.revision > seen) {
                    return Err(SessionEnd::Behind { server: heartbeat.revision, agent: state.revision() });
                }
                // A server with nothing newer than the saved config answers with a heartbeat
                // at its revision: the disk copy is current, so it goes into service now (or,
                // already serving, becomes the server's).
                if state.disk != DiskCopy::Settled && state.revision() == Some(heartbeat.revision) {
                    self.confirm_standby(state);
                }
            }
            ConfigMessage::Unknown => {}
        }
        Ok(())
    }

    /// Compiles a snapshot with `compile` on a blocking thread, seeds the counters and
    /// installs it, or reports it rejected under `revision` (for a snapshot line that did
    /// not compile, the revision it claims).
    async fn apply_snapshot(
        &self,
        state: &mut State,
        compile: impl FnOnce() -> Result<(Config, Vec<CurrentUsage>), ConfigError> + Send + 'static,
        revision: impl FnOnce() -> Option<u64>,
    ) {
        let started = Instant::now();
        let limiter = self.limiter.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            let (config, usage) = compile()?;
            seed(&config, &usage, &limiter);
            Ok::<_, ConfigError>(config)
        })
        .await;
        self.conclude_snapshot(state, compiled, started, revision());
    }

    /// Installs a compiled snapshot, or reports it rejected under `revision`.
    fn conclude_snapshot(
        &self,
        state: &mut State,
        compiled: Result<Result<Config, ConfigError>, tokio::task::JoinError>,
        started: Instant,
        revision: Option<u64>,
    ) {
        let reason = match compiled {
            Ok(Ok(config)) => {
                tracing::info!(
                    revision = config.revision,
                    credentials = config.credentials.len(),
                    compile_ms = started.elapsed().as_millis() as u64,
                    "applied config snapshot"
                );
                self.install(state, Save::Whole(Arc::new(config)));
                return;
            }
            Ok(Err(err)) => err.to_string(),
            Err(join) => format!("compiler crashed: {join}"),
        };
        self.reject(state, revision, reason);
    }

    async fn apply_delta(&self, state: &mut State, delta: Delta) {
        let Some(base) = state.base.clone() else {
            return;
        };
        let revision = delta.revision;
        let changes = delta.changes.len();
        let base_revision = delta.base_revision;
        let applied = tokio::task::spawn_blocking(move || {
            // For the journal on disk; the delta is consumed by applying it.
            let json = serde_json::to_vec(&delta);
            apply_delta(&base, delta).map(|config| (Arc::new(config), json))
        })
        .await;
        match applied {
            Ok(Ok((config, json))) => {
                tracing::debug!(revision, changes, "applied config delta");
                let save = match json {
                    Ok(delta) => Save::Delta { config, base_revision, delta },
                    Err(_) => Save::Whole(config),
                };
                self.install(state, save);
            }
            Ok(Err(err)) => self.reject(state, Some(revision), err.to_string()),
            Err(join) => self.reject(state, Some(revision), format!("compiler crashed: {join}")),
        }
    }

    fn install(&self, state: &mut State, save: Save) {
        let config = save.config().clone();
        let revision = config.revision;
        self.source.store(Source::Server as u8, Ordering::Release);
        let replaced = self.live.swap(Some(config.clone()));
        state.retired.keep(replaced);
        self.metrics.config_revision.set(revision as f64);
        state.base = Some(config.clone());
        state.disk = DiskCopy::Settled;
        state.progressed = true;
        state.resync = false;
        if state.rejected.as_ref().is_some_and(|r| r.revision <= revision) {
            state.rejected = None;
        }
        self.report(state);
        // Fails only once the persister has stopped, at shutdown.
        let _ = self.persist.send(save);
    }

    fn reject(&self, state: &mut State, revision: Option<u64>, reason: String) {
        tracing::warn!(revision, %reason, "config update rejected; the last good config stays in service");
        self.metrics.config_rejected.increment(1);
        if let Some(revision) = revision {
            state.rejected = Some(Rejection { revision, reason });
        }
        // A restarted agent whose first update from the server is rejected serves what it
        // saved: the heartbeats that would confirm that copy name the rejected revision.
        if state.disk == DiskCopy::Standby {
            self.serve_standby(state, StandbyReason::Rejected);
        }
        self.report(state);
    }

    fn report(&self, state: &State) {
        // The standby config is not enforced until it is served.
        let applied = if state.disk == DiskCopy::Standby { None } else { state.revision() };
        self.status.send_replace(AgentStatus {
            protocol_version: PROTOCOL_VERSION,
            agent_version: crate::AGENT_VERSION.to_owned(),
            applied_revision: applied,
            rejected: state.rejected.clone(),
        });
    }
}

/// A binary snapshot on its way in: its frames go to `compiler` as they arrive.
struct Receiving {
    frames: tokio::sync::mpsc::Sender<Frame>,
    compiler: tokio::task::JoinHandle<Result<Config, ConfigError>>,
    revision: Option<u64>,
    started: Instant,
}

/// Position of the first `\n`, eight bytes at a time: a snapshot line is hundreds of
/// megabytes, and a byte-by-byte scan of it costs a noticeable part of the load time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // Some byte of x is zero, i.e. some byte of the chunk is a newline.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    bytes[offset..].iter().position(|&b| b == b'\n').map(|at| offset + at)
}

/// The `revision` of a message that does not parse as a whole, if it has one.
fn claimed_revision(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Claim {
        revision: u64,
    }
    serde_json::from_slice::<Claim>(line).ok().map(|c| c.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_config_is_dropped_once_nothing_else_holds_it() {
        let (held, free) = (Arc::new(1), Arc::new(2));
        let request = held.clone();
        let mut retired = Retired(Vec::new());
        retired.keep(Some(held));
        retired.keep(Some(free.clone()));
        assert_eq!(retired.0.len(), 2, "both in use");
        drop(free);
        retired.sweep();
        assert_eq!(retired.0.len(), 1, "the unused one dropped by the sweep");
        drop(request);
        retired.keep(None);
        assert!(retired.0.is_empty());
    }

    #[test]
    fn newlines_are_found_anywhere() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'\n';
                if at + 1 < len {
                    bytes[len - 1] = b'\n';
                }
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_newline(&vec![0x8a; len]), None);
        }
    }
}
