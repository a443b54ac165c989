//! Starting and stopping an agent: wires the listeners and background tasks together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tollgate_protocol::{AgentStatus, PROTOCOL_VERSION};
use uuid::Uuid;

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::{LiveConfig, store};
use crate::enforce::Limiter;
use crate::enforce::counters::LocalCounters;
use crate::error::Error;
use crate::proxy::Proxy;
use crate::proxy::access_log::AccessLog;
use crate::redis::SharedCounters;
use crate::report::{Pending, REPORT_WAIT};
use crate::server::{self, ConnectionLimit, Limits, serve};
use crate::settings::{AccessLogMode, Settings};
use crate::state;
use crate::sync::client::ControlPlane;
use crate::sync::status;
use crate::sync::stream::{self, ConfigSync};
use crate::telemetry::Metrics;
use crate::tls::{self, termination::ServedCertificates, upstream::UpstreamTls};
use crate::trace;
use crate::usage::aggregate::Aggregator;
use crate::usage::report::Reporter;
use crate::usage::spool::Spool;

/// How long a graceful stop waits for in-flight proxied requests.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How long a graceful stop tries to deliver usage before leaving it in the spool.
pub const SHUTDOWN_USAGE_DELIVERY: Duration = Duration::from_secs(3);
/// How often counters of past windows are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Starts agents; see [`Agent::start`].
pub struct Agent;

/// A started agent. Stop it with [`RunningAgent::shutdown`]; dropping it leaves its tasks
/// running until the runtime ends.
pub struct RunningAgent {
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    authz_addr: Option<SocketAddr>,
    authz_grpc_addr: Option<SocketAddr>,
    report_addr: Option<SocketAddr>,
    agent_id: Uuid,
    /// Held until the agent has stopped: no second agent starts on its state directory.
    _state_lock: Option<std::fs::File>,
    stop: watch::Sender<bool>,
    /// Each proxy worker says when it has drained and stopped.
    workers: Vec<oneshot::Receiver<()>>,
    admin: JoinHandle<()>,
    /// The decision endpoint, when it is on.
    authz: Option<JoinHandle<()>>,
    /// The gRPC decision listener, when it is on.
    authz_grpc: Option<JoinHandle<()>>,
    /// Allowed decisions waiting for their report, counted (2xx) at shutdown.
    reports: Option<Arc<Pending>>,
    persister: JoinHandle<()>,
    sealer: JoinHandle<()>,
    sender: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    reporter: Arc<Reporter>,
}

impl Agent {
    /// Prepares the state directory, loads the last good config from disk (served if the
    /// management server cannot be reached), binds both listeners and starts syncing.
    pub async fn start(settings: Settings) -> Result<RunningAgent, Error> {
        let state_dir = settings.state_dir.clone();
        let dir_error = |source| Error::StateDir { path: state_dir.clone(), source };
        std::fs::create_dir_all(&state_dir).map_err(dir_error)?;
        let state_lock = state::lock(&state_dir).map_err(|source| match source.kind() {
            std::io::ErrorKind::WouldBlock => Error::StateDirInUse { path: state_dir.clone() },
            _ => dir_error(source),
        })?;
        let agent_id = state::agent_id(&state_dir).map_err(dir_error)?;
        let metrics = Metrics::new();
        let spool =
            Spool::open(state_dir.join("spool"), settings.spool_max_bytes, metrics.clone()).map_err(dir_error)?;

        // TLS files are all read (and refused) before anything listens.
        let provider = tls::provider();
        let served = ServedCertificates::load(&settings.tls.certificates, provider.clone())?;
        let acceptor = served.as_ref().map(|served| served.acceptor(server::ALPN)).transpose()?;
        let upstream_tls = Arc::new(UpstreamTls::load(settings.tls.upstream.as_deref(), provider.clone())?);
        let server_tls =
            tls::control::server_config(&provider, settings.server.is_https(), settings.tls.server_ca.as_deref())?;
        let redis_ca = settings.tls.redis_ca.as_deref().map(tls::control::redis_ca).transpose()?;

        let shared = match &settings.redis_url {
            Some(url) => {
                let shared = SharedCounters::new(url, redis_ca, &metrics).map_err(|e| Error::Redis(e.to_string()))?;
                if !shared.probe().await {
                    tracing::warn!(redis = %url, "redis unavailable at start: counting locally until it answers");
                }
                Some(Arc::new(shared))
            }
            None => None,
        };
        let limiter = Arc::new(Limiter { local: LocalCounters::new(), shared });
        let (standby, on_disk) = match store::load_standby(&state_dir, &limiter).await {
            Some((config, on_disk)) => (Some(config), on_disk),
            None => (None, None),
        };

        let proxy_sockets = bind_proxy_sockets(settings.listen, settings.workers).map_err(|source| Error::Bind {
            setting: "TOLLGATE_AGENT_LISTEN",
            addr: settings.listen,
            source,
        })?;
        let admin_listener = TcpListener::bind(settings.admin_listen).await.map_err(|source| Error::Bind {
            setting: "TOLLGATE_AGENT_ADMIN_LISTEN",
            addr: settings.admin_listen,
            source,
        })?;
        let authz_listener = match settings.authz_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| Error::Bind {
                setting: "TOLLGATE_AGENT_AUTHZ_LISTEN",
                addr,
                source,
            })?),
            None => None,
        };
        let authz_addr = authz_listener
            .as_ref()
            .map(|listener| {
                listener.local_addr().map_err(|source| Error::Bind {
                    setting: "TOLLGATE_AGENT_AUTHZ_LISTEN",
                    addr: settings.authz_listen.unwrap_or(settings.listen),
                    source,
                })
            })
            .transpose()?;
        let (authz_grpc_listener, authz_grpc_addr) = match settings.authz_grpc_listen {
            Some(addr) => {
                let bind = |source| Error::Bind { setting: "TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN", addr, source };
                let listener = TcpListener::bind(addr).await.map_err(bind)?;
                let local = listener.local_addr().map_err(bind)?;
                (Some(listener), Some(local))
            }
            None => (None, None),
        };
        let report_socket = match settings.authz_report_listen {
            Some(addr) => Some(tokio::net::UdpSocket::bind(addr).await.map_err(|source| Error::Bind {
                setting: "TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN",
                addr,
                source,
            })?),
            None => None,
        };
        let report_addr = report_socket.as_ref().map(|socket| socket.local_addr()).transpose().map_err(|source| {
            Error::Bind { setting: "TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN", addr: settings.listen, source }
        })?;
        let proxy_addr = proxy_sockets
            .first()
            .map_or_else(|| Ok(settings.listen), TcpSocket::local_addr)
            .map_err(|source| Error::Bind { setting: "TOLLGATE_AGENT_LISTEN", addr: settings.listen, source })?;
        let admin_addr = admin_listener.local_addr().map_err(|source| Error::Bind {
            setting: "TOLLGATE_AGENT_ADMIN_LISTEN",
            addr: settings.admin_listen,
            source,
        })?;

        let access_json = match settings.access_log {
            AccessLogMode::Json => {
                Some(AccessLog::open(settings.access_log_path.as_deref()).map_err(|source| Error::AccessLog {
                    path: settings.access_log_path.clone().unwrap_or_else(|| PathBuf::from("stdout")),
                    source,
                })?)
            }
            _ => None,
        };

        // Spans are queued by the proxies and posted by a task on this runtime.
        let (tracer, trace_export) = match &settings.traces {
            Some(export) => {
                let (tracer, spans) = trace::channel(metrics.spans_dropped.clone());
                (Some(tracer), Some((export.clone(), spans)))
            }
            None => (None, None),
        };

        let live = Arc::new(LiveConfig::empty());
        let source = Arc::new(AtomicU8::new(stream::Source::None as u8));
        let token_refused = Arc::new(AtomicBool::new(false));
        let control_plane = Arc::new(ControlPlane::new(settings.server.clone(), &settings.token, agent_id, server_tls));
        let aggregator = Arc::new(Aggregator::new());
        let reports = settings.authz_reports.then(|| Arc::new(Pending::new(aggregator.clone(), REPORT_WAIT, &metrics)));
        let (stop, stop_rx) = watch::channel(false);
        let (status_tx, status_rx) = watch::channel(AgentStatus {
            protocol_version: PROTOCOL_VERSION,
            agent_version: crate::AGENT_VERSION.to_owned(),
            applied_revision: None,
            rejected: None,
        });
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();

        let max_connections = connection_limit(settings.max_connections, open_files_limit());
        let connection_slots = Arc::new(Semaphore::new(max_connections));
        let mut workers = Vec::with_capacity(proxy_sockets.len());
        // Every proxy worker and the decision endpoint get their own `Proxy` over the same
        // live state, and share one connection budget.
        let new_proxy = || {
            Arc::new(
                Proxy::new(
                    &settings,
                    access_json.clone(),
                    live.clone(),
                    limiter.clone(),
                    aggregator.clone(),
                    metrics.clone(),
                    upstream_tls.clone(),
                )
                .reporting(reports.clone())
                .traced(tracer.clone()),
            )
        };
        let shared_limits = || Limits {
            max_header_bytes: settings.max_header_bytes,
            idle_timeout: settings.client_idle_timeout,
            connections: Some(ConnectionLimit {
                slots: connection_slots.clone(),
                refused: metrics.connections_refused.clone(),
                open: metrics.open_connections.clone(),
            }),
            tls: None,
        };
        for (index, socket) in proxy_sockets.into_iter().enumerate() {
            let limits = Limits { tls: acceptor.clone(), ..shared_limits() };
            workers.push(start_worker(index, socket, new_proxy(), limits, stop_rx.clone()).await?);
        }
        // Decisions run on the binary's runtime: they never wait on an upstream.
        let authz = authz_listener.map(|listener| {
            let decider = new_proxy();
            let limits = shared_limits();
            let handler = move |request, _peer| decider.clone().decide(request);
            tokio::spawn(serve(listener, "authz", handler, limits, stop_rx.clone(), SHUTDOWN_DRAIN))
        });
        let authz_grpc = authz_grpc_listener.map(|listener| {
            let (limit, stop) = (settings.max_header_bytes, stop_rx.clone());
            tokio::spawn(crate::grpc::serve(listener, new_proxy(), reports.clone(), limit, stop, SHUTDOWN_DRAIN))
        });
        let admin_handler = Arc::new(Admin {
            live: live.clone(),
            source: source.clone(),
            token_refused: token_refused.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
        });
        let admin = tokio::spawn(serve(
            admin_listener,
            "admin",
            move |request, _peer| {
                let response = admin_handler.handle(&request);
                async move { response }
            },
            Limits {
                max_header_bytes: Settings::DEFAULT_MAX_HEADER_BYTES,
                idle_timeout: Settings::DEFAULT_CLIENT_IDLE_TIMEOUT,
                connections: None,
                tls: None,
            },
            stop_rx.clone(),
            Duration::from_secs(1),
        ));

        let reporter = Arc::new(Reporter {
            aggregator,
            spool: Arc::new(spool),
            control_plane: control_plane.clone(),
            metrics: metrics.clone(),
            agent_id,
            spooled: Notify::new(),
        });
        let sync = ConfigSync {
            control_plane: control_plane.clone(),
            live: live.clone(),
            source,
            token_refused,
            limiter: limiter.clone(),
            metrics: metrics.clone(),
            status: status_tx,
            persist: persist_tx,
        };
        let mut background = vec![
            tokio::spawn(sync.run(standby.clone(), stop_rx.clone())),
            tokio::spawn(status::report(control_plane, status_rx, stop_rx.clone())),
            tokio::spawn(sweep(limiter.clone(), settings.clock.clone(), stop_rx.clone())),
        ];
        // The proxies hold the only senders: the exporter ends once they are gone.
        drop(tracer);
        if let Some((export, spans)) = trace_export {
            background.push(tokio::spawn(trace::export::run(
                export,
                spans,
                metrics.spans_dropped.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(pending) = &reports {
            background.push(tokio::spawn(pending.clone().run_expiry(stop_rx.clone())));
            if let Some(socket) = report_socket {
                background.push(tokio::spawn(crate::report::udp::serve(socket, pending.clone(), stop_rx.clone())));
            }
        }
        if let Some(shared) = &limiter.shared {
            background.push(tokio::spawn(shared.clone().watch(stop_rx.clone())));
        }
        if let Some(served) = served {
            let (applied, refused) = (metrics.tls_reloads("applied"), metrics.tls_reloads("refused"));
            background.push(tokio::spawn(served.watch(
                settings.tls.reload_interval,
                applied,
                refused,
                stop_rx.clone(),
            )));
        }
        if settings.tls.upstream.is_some() {
            let (applied, refused) = (metrics.upstream_tls_reloads("applied"), metrics.upstream_tls_reloads("refused"));
            let watched = upstream_tls.clone().watch(settings.tls.reload_interval, applied, refused, stop_rx.clone());
            background.push(tokio::spawn(watched));
        }
        let sealer = tokio::spawn(reporter.clone().run_sealer(settings.flush_interval, stop_rx.clone()));
        let sender = tokio::spawn(reporter.clone().run_sender(stop_rx.clone()));
        let persister = tokio::spawn(store::persist(
            state_dir,
            persist_rx,
            standby,
            on_disk,
            limiter,
            settings.clock.clone(),
            stop_rx,
        ));
        tracing::info!(
            %proxy_addr,
            %admin_addr,
            // Absent when off: a log shipper reads a field or none, not the text `None`.
            authz_addr = authz_addr.map(tracing::field::display),
            authz_grpc_addr = authz_grpc_addr.map(tracing::field::display),
            %agent_id,
            server = %settings.server,
            "tollgate-agent started"
        );
        Ok(RunningAgent {
            proxy_addr,
            admin_addr,
            authz_addr,
            authz,
            authz_grpc_addr,
            report_addr,
            authz_grpc,
            reports,
            agent_id,
            _state_lock: state_lock,
            stop,
            workers,
            admin,
            persister,
            sealer,
            sender,
            background,
            reporter,
        })
    }
}

impl RunningAgent {
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The decision endpoint's address, if `TOLLGATE_AGENT_AUTHZ_LISTEN` turned it on.
    pub fn authz_addr(&self) -> Option<SocketAddr> {
        self.authz_addr
    }

    /// The gRPC decision listener's address, if `TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN` turned it on.
    pub fn authz_grpc_addr(&self) -> Option<SocketAddr> {
        self.authz_grpc_addr
    }

    /// The UDP address reports are read from, if `TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN` is set.
    pub fn report_addr(&self) -> Option<SocketAddr> {
        self.report_addr
    }

    /// The stable id this agent reports usage under.
    pub fn agent_id(&self) -> Uuid {
        self.agent_id
    }

    /// Stops accepting, lets in-flight requests finish (up to [`SHUTDOWN_DRAIN`]), seals
    /// the remaining usage into the spool and tries to deliver it (up to
    /// [`SHUTDOWN_USAGE_DELIVERY`]; what is left is sent after the next start), writes the
    /// config and counters to disk, and returns.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        let _ = self.admin.await;
        for listener in [self.authz, self.authz_grpc].into_iter().flatten() {
            let _ = listener.await;
        }
        // Calls still waiting for their report are counted as the decision saw them (2xx).
        if let Some(pending) = &self.reports {
            pending.expire(true);
        }
        let _ = self.sender.await;
        // A seal in progress finishes spooling its batches first, so they are delivered now
        // rather than after the next start.
        let _ = self.sealer.await;
        self.reporter.seal().await;
        let deadline = Instant::now() + SHUTDOWN_USAGE_DELIVERY;
        if self.reporter.send_all(Some(deadline)).await.is_err() || !self.reporter.spool.is_empty() {
            let lost = self.reporter.spool.in_memory();
            if lost > 0 {
                self.reporter.metrics.usage_dropped.increment(lost as u64);
                tracing::error!(
                    batches = lost,
                    "usage the spool could not hold on disk is lost: the management server did not take it before the stop"
                );
            }
            tracing::warn!("management server unreachable: usage stays in the spool until the next start");
        }
        for task in self.background {
            let _ = task.await;
        }
        let _ = self.persister.await;
        tracing::info!("tollgate-agent stopped");
        Ok(())
    }
}

/// Descriptors the agent keeps beside its proxied connections: listeners, the control
/// plane, the spool, Redis, logs.
const SPARE_DESCRIPTORS: usize = 64;

/// The proxy's connection limit. Each proxied connection needs a file descriptor for the client
/// and one for the upstream: the default is lowered to what the open-files limit allows, so
/// the agent refuses with a 503 rather than failing to accept; a limit set by the operator is
/// kept, with a warning when the descriptors cannot cover it.
fn connection_limit(set: Option<usize>, open_files: Option<usize>) -> usize {
    let allowed = open_files.map(|soft| (soft.saturating_sub(SPARE_DESCRIPTORS) / 2).max(1));
    match (set, allowed) {
        (Some(set), Some(allowed)) if set > allowed => {
            tracing::warn!(
                max_connections = set,
                open_files_limit = open_files,
                needed = set.saturating_mul(2).saturating_add(SPARE_DESCRIPTORS),
                "TOLLGATE_AGENT_MAX_CONNECTIONS needs more file descriptors than this process may open: \
                 raise the limit (ulimit -n, systemd LimitNOFILE=) or lower the setting"
            );
            set
        }
        (Some(set), _) => set,
        (None, Some(allowed)) if allowed < Settings::DEFAULT_MAX_CONNECTIONS => {
            tracing::info!(
                max_connections = allowed,
                open_files_limit = open_files,
                "connection limit lowered from the default {} to what the open-files limit allows \
                 (raise ulimit -n or set TOLLGATE_AGENT_MAX_CONNECTIONS)",
                Settings::DEFAULT_MAX_CONNECTIONS
            );
            allowed
        }
        (None, _) => Settings::DEFAULT_MAX_CONNECTIONS,
    }
}

/// The soft limit on open files (Linux: `/proc/self/limits`; `None` when unknown or unlimited).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok())
}

/// One socket per proxy worker, all bound to `addr` with `SO_REUSEPORT`, so that the kernel
/// spreads new connections over the workers (port 0: the port the first one got).
fn bind_proxy_sockets(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<TcpSocket>> {
    if addr.port() != 0 {
        // SO_REUSEPORT would let a second agent (or any process of this user) quietly
        // share the port; a plain bind first fails with "address in use" as it should.
        let probe = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        probe.set_reuseaddr(true)?;
        probe.bind(addr)?;
    }
    let mut sockets = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Starts proxy worker `index`: a thread with a single-threaded runtime that listens on
/// `socket` and serves `proxy` until `stop`, then drains its connections (up to
/// [`SHUTDOWN_DRAIN`]). Returns once it listens; the receiver fires when it has stopped.
async fn start_worker(
    index: usize,
    socket: TcpSocket,
    proxy: Arc<Proxy>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) -> Result<oneshot::Receiver<()>, Error> {
    let addr = socket.local_addr().map_err(|source| Error::Bind {
        setting: "TOLLGATE_AGENT_LISTEN",
        addr: ([0; 4], 0).into(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)?;
    let (listening_tx, listening_rx) = oneshot::channel();
    let (stopped_tx, stopped_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("tollgate-proxy-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match socket.listen(LISTEN_BACKLOG) {
                    Ok(listener) => {
                        let _ = listening_tx.send(Ok(()));
                        listener
                    }
                    Err(err) => {
                        let _ = listening_tx.send(Err(err));
                        return;
                    }
                };
                let handler = move |request, peer| proxy.clone().handle(request, peer);
                serve(listener, "proxy", handler, limits, stop, SHUTDOWN_DRAIN).await;
            });
            // Connections still open after the drain end with the runtime.
            drop(runtime);
            let _ = stopped_tx.send(());
        })
        .map_err(Error::Runtime)?;
    match listening_rx.await {
        Ok(Ok(())) => Ok(stopped_rx),
        Ok(Err(source)) => Err(Error::Bind { setting: "TOLLGATE_AGENT_LISTEN", addr, source }),
        Err(_) => Err(Error::Bind {
            setting: "TOLLGATE_AGENT_LISTEN",
            addr,
            source: std::io::Error::other("proxy worker ended"),
        }),
    }
}

/// Pending connections per worker's listener, as the kernel allows (`somaxconn` caps it).
const LISTEN_BACKLOG: u32 = 4096;

/// Forgets counters of windows long past.
async fn sweep(limiter: Arc<Limiter>, clock: Clock, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_INTERVAL) => limiter.local.sweep(clock.now()),
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_limit_fits_the_open_files_limit() {
        assert_eq!(connection_limit(None, Some(1_000_000)), Settings::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_limit(None, None), Settings::DEFAULT_MAX_CONNECTIONS);
        // Two descriptors a connection, and the agent's own.
        assert_eq!(connection_limit(None, Some(20_000)), 9_968);
        assert_eq!(connection_limit(None, Some(1_024)), 480);
        assert_eq!(connection_limit(None, Some(10)), 1);
    }

    #[test]
    fn a_connection_limit_set_by_the_operator_is_kept() {
        assert_eq!(connection_limit(Some(10_000), Some(1_024)), 10_000);
        assert_eq!(connection_limit(Some(300), Some(1_024)), 300);
        assert_eq!(connection_limit(Some(50_000), None), 50_000);
    }
}
