//! The tokio shell of the SMTP ingress: sockets, limits, timeouts, TLS and the spool.
//!
//! Every protocol decision is made by the sans-IO [`Session`]; this module only moves bytes
//! and carries out its [`Action`]s. Message content is streamed: it is kept in memory up to
//! [`SPILL_THRESHOLD`] octets, then appended to a spool file ([`Spool::begin`]) as it arrives,
//! so a connection costs the same memory whatever the message size. A message is answered
//! `250` only after [`Spool::commit`] returned, i.e. after the message file and its directory
//! are fsynced; a refused or cut-off message leaves no file.
//!
//! Limits applied before a session starts: a global connection cap and a per-IP concurrent
//! cap (`421 4.7.0` beyond), and a per-IP token bucket on new connections. Within a session,
//! each phase is bounded as a whole, not each read (a client trickling one byte at a time
//! would otherwise hold its slot for ever): a command line, idle wait included, must arrive
//! within the command timeout; DATA must keep up a minimum rate after a grace period; and the
//! connection has a lifetime. Logs carry peers, sizes and spool identifiers, never message
//! content.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use svoct_store::spool::{ReceivedEnvelope, Spool, SpoolError, SpoolWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_openssl::SslStream;

use super::session::{Action, DATA_CHUNK, MessageEnvelope, PersistOutcome, Session, SessionConfig};

/// Certificate and key files for STARTTLS (PEM). Only paths are held: the key never enters
/// a log or a `Debug` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert_chain: PathBuf,
    /// Private key, PEM.
    pub private_key: PathBuf,
}

/// New-connection rate limit per client IP: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Connections allowed at once after a quiet period.
    pub burst: u32,
    /// Tokens regained per second.
    pub per_second: f64,
}

/// Configuration of [`Ingress::bind`].
#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    /// Protocol limits of each session.
    pub session: SessionConfig,
    /// Most connections served at once; beyond, `421` and close.
    pub max_connections: usize,
    /// Most connections at once from one IP address: one address cannot take every slot.
    pub max_connections_per_ip: usize,
    /// New connections per IP address.
    pub rate: RateLimit,
    /// Longest time a whole command line may take, counted from the moment the session is
    /// ready for it (idle wait included), however the bytes trickle in; also bounds a reply
    /// write and the TLS handshake. Shorter than RFC 5321's 5 minutes on purpose: a client
    /// writes its commands at once, and an idle connection holds a slot others need.
    pub command_timeout: Duration,
    /// Longest time between the start of the connection, or the end of a message, and the
    /// next DATA: however quick each command (a `NOOP` every few seconds), a connection that
    /// sends no message does not keep its slot.
    pub transaction_timeout: Duration,
    /// Time DATA may take beyond what [`IngressConfig::min_data_rate`] pays for: after the
    /// `354`, the client must have sent `min_data_rate × (elapsed − data_grace)` octets.
    pub data_grace: Duration,
    /// Minimum DATA rate in octets per second, averaged over the whole DATA phase.
    pub min_data_rate: u64,
    /// Longest life of one connection, however active.
    pub session_lifetime: Duration,
    /// How long [`IngressHandle::shutdown`] lets in-flight sessions finish.
    pub shutdown_grace: Duration,
    /// STARTTLS certificate; `None` (the default) does not offer STARTTLS.
    pub tls: Option<TlsFiles>,
}

/// Default [`IngressConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default [`IngressConfig::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 8;
/// Default [`IngressConfig::command_timeout`], seconds.
pub const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 20;
/// Default [`IngressConfig::transaction_timeout`], seconds.
pub const DEFAULT_TRANSACTION_TIMEOUT_SECS: u64 = 60;
/// Default [`IngressConfig::data_grace`], seconds.
pub const DEFAULT_DATA_GRACE_SECS: u64 = 15;
/// Default [`IngressConfig::min_data_rate`]: 8 KiB/s (64 kbit/s, a poor mobile uplink).
pub const DEFAULT_MIN_DATA_RATE: u64 = 8 * 1024;

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            rate: RateLimit {
                burst: 64,
                per_second: 16.0,
            },
            command_timeout: Duration::from_secs(DEFAULT_COMMAND_TIMEOUT_SECS),
            transaction_timeout: Duration::from_secs(DEFAULT_TRANSACTION_TIMEOUT_SECS),
            data_grace: Duration::from_secs(DEFAULT_DATA_GRACE_SECS),
            min_data_rate: DEFAULT_MIN_DATA_RATE,
            session_lifetime: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Errors of starting the ingress (a running ingress reports per-connection problems in logs).
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The listening socket could not be bound.
    #[error("ingress: binding {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The STARTTLS certificate or key could not be loaded.
    #[error("ingress: TLS setup with {path}: {source}")]
    Tls {
        /// File involved.
        path: PathBuf,
        /// OpenSSL error.
        source: openssl::error::ErrorStack,
    },
}

/// Counters of a running ingress.
#[derive(Debug, Default)]
pub struct IngressStats {
    /// Connections accepted and served.
    pub connections: AtomicU64,
    /// Connections refused by the connection or rate limits.
    pub refused: AtomicU64,
    /// Messages stored in the spool (and answered 250).
    pub messages: AtomicU64,
    /// Octets of stored messages.
    pub bytes: AtomicU64,
    /// Messages the spool failed to store (answered 451).
    pub persist_failures: AtomicU64,
}

/// A running ingress. Dropping it stops accepting too; [`IngressHandle::shutdown`] also waits.
pub struct IngressHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<IngressStats>,
    /// Kept to swap the settings of new sessions ([`IngressHandle::apply`]).
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IngressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Ingress settings ready to be applied to a running ingress ([`IngressHandle::apply`]): built
/// apart, so that a certificate that does not load is found before anything changes (the
/// service applies a reload whole or not at all).
pub struct PreparedIngress(Arc<Settings>);

impl std::fmt::Debug for PreparedIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedIngress")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl PreparedIngress {
    /// Loads the STARTTLS certificate and key of `config`, if any.
    pub fn new(config: IngressConfig) -> Result<PreparedIngress, IngressError> {
        Settings::new(config).map(|s| PreparedIngress(Arc::new(s)))
    }
}

impl IngressHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Live counters.
    pub fn stats(&self) -> &IngressStats {
        &self.stats
    }

    /// The counters, shared (the HTTP listener's `/metrics` reads them).
    pub fn stats_handle(&self) -> Arc<IngressStats> {
        self.stats.clone()
    }

    /// The accept loop's task, for `/healthz` (`is_finished` once it ended).
    pub fn accept_task(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Stops accepting, lets sessions finish their current transaction (idle ones get `421`),
    /// and returns when all are done or the grace period is over.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Swaps in new settings (accepted addresses, limits, timeouts, STARTTLS certificate) for
    /// the sessions accepted from now on. A session takes its settings once, when it is
    /// accepted, and keeps them to its end: a session in progress, or a message half received,
    /// is never judged by two sets of rules. The listening address is not part of this (it
    /// needs a restart).
    pub fn apply(&self, prepared: PreparedIngress) {
        self.swap().apply(prepared);
    }

    /// What [`IngressHandle::apply`] does, as a handle of its own: the service's reloader
    /// (shared with the console, which reloads from its own task) keeps it while the service
    /// keeps the [`IngressHandle`] to shut the ingress down.
    pub fn swap(&self) -> IngressSwap {
        IngressSwap(self.shared.clone())
    }
}

/// Swaps the settings of a running ingress for its new sessions ([`IngressHandle::swap`]).
#[derive(Clone)]
pub struct IngressSwap(Arc<Shared>);

impl std::fmt::Debug for IngressSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressSwap").finish_non_exhaustive()
    }
}

impl IngressSwap {
    /// See [`IngressHandle::apply`].
    pub fn apply(&self, prepared: PreparedIngress) {
        *self
            .0
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = prepared.0;
    }
}

/// The SMTP ingress service.
#[derive(Debug)]
pub struct Ingress;

struct Shared {
    /// What new sessions use; replaced whole by [`IngressHandle::apply`].
    settings: std::sync::RwLock<Arc<Settings>>,
    spool: Arc<Spool>,
    stats: Arc<IngressStats>,
    /// Kept across setting changes: a reload does not hand every client a fresh bucket.
    per_ip: Mutex<HashMap<IpAddr, IpState>>,
}

impl Shared {
    /// The settings of a session starting now.
    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// One version of the ingress settings: the configuration and the STARTTLS context loaded
/// from its files.
struct Settings {
    config: IngressConfig,
    tls: Option<SslAcceptor>,
}

impl Settings {
    fn new(mut config: IngressConfig) -> Result<Settings, IngressError> {
        let tls = match &config.tls {
            None => None,
            Some(files) => Some(tls_acceptor(files)?),
        };
        config.session.starttls = tls.is_some();
        Ok(Settings { config, tls })
    }
}

#[derive(Debug)]
struct IpState {
    active: usize,
    tokens: f64,
    last: Instant,
}

impl Ingress {
    /// Binds `addr` and starts serving in the background of the current tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        config: IngressConfig,
        spool: Arc<Spool>,
    ) -> Result<IngressHandle, IngressError> {
        let settings = Settings::new(config)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| IngressError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| IngressError::Bind { addr, source })?;
        let stats = Arc::new(IngressStats::default());
        let shared = Arc::new(Shared {
            settings: std::sync::RwLock::new(Arc::new(settings)),
            spool,
            stats: stats.clone(),
            per_ip: Mutex::new(HashMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(%local_addr, "smtp ingress listening");
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(IngressHandle {
            local_addr,
            stop,
            task,
            stats,
            shared,
        })
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<SslAcceptor, IngressError> {
    server_acceptor(files).map_err(|(path, source)| IngressError::Tls { path, source })
}

/// A TLS server context (Mozilla's intermediate profile) for a certificate chain and its key,
/// shared by the SMTP ingress and the HTTP listener; the error names the file involved.
pub(crate) fn server_acceptor(
    files: &TlsFiles,
) -> Result<SslAcceptor, (PathBuf, openssl::error::ErrorStack)> {
    let err = |path: &PathBuf| {
        let path = path.clone();
        move |source| (path, source)
    };
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(err(&files.cert_chain))?;
    b.set_certificate_chain_file(&files.cert_chain)
        .map_err(err(&files.cert_chain))?;
    b.set_private_key_file(&files.private_key, SslFiletype::PEM)
        .map_err(err(&files.private_key))?;
    b.check_private_key().map_err(err(&files.private_key))?;
    Ok(b.build())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Read once per connection: the session keeps these settings to its end.
        let settings = shared.settings();
        let admitted = admit(&shared, &settings.config, peer.ip(), tasks.len());
        let shared2 = shared.clone();
        let stop2 = stop.clone();
        tasks.spawn(async move {
            match admitted {
                Err(reason) => {
                    shared2.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, reason, "connection refused");
                    refuse(stream, &settings.config, reason).await;
                }
                Ok(()) => {
                    shared2.stats.connections.fetch_add(1, Ordering::Relaxed);
                    serve(stream, peer, &shared2, &settings, stop2).await;
                    release(&shared2, peer.ip());
                }
            }
        });
    }
    drop(listener);
    tracing::info!(in_flight = tasks.len(), "smtp ingress stopping");
    let grace = shared.settings().config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = tasks.len(), "grace period over, aborting sessions");
        tasks.shutdown().await;
    }
    tracing::info!("smtp ingress stopped");
}

/// Applies the connection and rate limits; on success counts the connection in.
fn admit(shared: &Shared, cfg: &IngressConfig, ip: IpAddr, active_total: usize) -> Result<(), &'static str> {
    if active_total >= cfg.max_connections {
        return Err("too many connections");
    }
    let mut map = shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if map.len() > 65_536 {
        // Bound the table: forget idle addresses whose bucket is full again.
        let burst = f64::from(cfg.rate.burst);
        let rate = cfg.rate.per_second;
        map.retain(|_, s| s.active > 0 || s.tokens + now.duration_since(s.last).as_secs_f64() * rate < burst);
    }
    let state = map.entry(ip).or_insert(IpState {
        active: 0,
        tokens: f64::from(cfg.rate.burst),
        last: now,
    });
    let elapsed = now.duration_since(state.last).as_secs_f64();
    state.tokens = (state.tokens + elapsed * cfg.rate.per_second).min(f64::from(cfg.rate.burst));
    state.last = now;
    if state.active >= cfg.max_connections_per_ip {
        return Err("too many connections from this address");
    }
    if state.tokens < 1.0 {
        return Err("connection rate exceeded");
    }
    state.tokens -= 1.0;
    state.active = state.active.saturating_add(1);
    Ok(())
}

fn release(shared: &Shared, ip: IpAddr) {
    let mut map = shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = map.get_mut(&ip) {
        s.active = s.active.saturating_sub(1);
    }
}

async fn refuse(mut stream: TcpStream, config: &IngressConfig, reason: &str) {
    let mut session = Session::new(config.session.clone());
    let _ = session.take_replies();
    session.refuse(&format!("Service not available: {reason}, try again later"));
    let out = session.take_replies();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The client connection, before or after STARTTLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    /// Transient, while upgrading.
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read_buf(buf).await,
            Conn::Tls(s) => s.read_buf(buf).await,
            Conn::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => s.write_all(bytes).await,
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
            Conn::Gone => Ok(()),
        };
    }
}

/// Size of each socket read; the session consumes every read in full unless it waits for
/// the shell, and the shell does not read while it waits, so the buffer stays near this.
const READ_CHUNK: usize = 64 * 1024;

/// Content of a message kept in memory before it goes to a spool file: a message smaller than
/// this is written in one go at the end (one blocking task, as fast as before streaming); a
/// larger one is appended in pieces of about this size. Memory per connection stays below
/// `READ_CHUNK + SPILL_THRESHOLD + DATA_CHUNK` whatever the message size.
pub const SPILL_THRESHOLD: usize = 256 * 1024;

/// The time bounds of one connection (see [`IngressConfig`]): each phase is bounded as a
/// whole, whatever the bytes trickling in.
struct Deadlines {
    end_of_life: Instant,
    /// The session's [`Session::phase`] and when it started.
    phase: (u64, Instant),
    /// When the connection started or its last message ended.
    idle_since: Instant,
    was_in_data: bool,
}

impl Deadlines {
    fn new(cfg: &IngressConfig, session: &Session) -> Self {
        let now = Instant::now();
        Self {
            end_of_life: now + cfg.session_lifetime,
            phase: (session.phase(), now),
            idle_since: now,
            was_in_data: false,
        }
    }

    /// A message was answered: the transaction timeout starts again.
    fn message_done(&mut self) {
        self.idle_since = Instant::now();
    }

    /// Follows the session's progress; returns when the connection must be cut and why.
    fn next(&mut self, cfg: &IngressConfig, session: &Session, now: Instant) -> (Instant, &'static str) {
        if session.phase() != self.phase.0 {
            self.phase = (session.phase(), now);
        }
        if session.in_data() != self.was_in_data {
            self.was_in_data = session.in_data();
            self.idle_since = now;
        }
        let started = self.phase.1;
        let (phase_end, why) = if session.in_data() {
            // Each octet received buys 1/min_data_rate s: a client must average the minimum
            // rate over the whole DATA phase, beyond the grace period.
            let rate = cfg.min_data_rate.max(1) as f64;
            let earned = Duration::from_secs_f64(session.data_octets() as f64 / rate);
            (started + cfg.data_grace + earned, "DATA below the minimum rate")
        } else {
            let line_end = started + cfg.command_timeout;
            let tx_end = self.idle_since + cfg.transaction_timeout;
            if line_end <= tx_end {
                (line_end, "command line too slow")
            } else {
                (tx_end, "no message within the transaction timeout")
            }
        };
        if self.end_of_life <= phase_end {
            (self.end_of_life, "session lifetime over")
        } else {
            (phase_end, why)
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    settings: &Settings,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &settings.config;
    let mut conn = Conn::Plain(stream);
    let mut session = Session::new(cfg.session.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut draining = *stop.borrow();
    let mut deadlines = Deadlines::new(cfg, &session);
    // The message being received; dropping it removes its spool file.
    let mut inbound: Option<Inbound> = None;
    tracing::debug!(%peer, "session start");
    let end = loop {
        let used = session.feed(&buf);
        buf.drain(..used.min(buf.len()));
        if draining && !session.in_data() && !session.awaiting_persist() && buf.is_empty() {
            session.shutdown();
        }
        let out = session.take_replies();
        if !out.is_empty() {
            match tokio::time::timeout(cfg.command_timeout, conn.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break format!("write error: {e}"),
                Err(_) => break "write timeout".to_owned(),
            }
        }
        if let Some(action) = session.next_action() {
            match action {
                Action::BeginMessage(envelope) => inbound = Some(Inbound::new(envelope, peer)),
                Action::MessageData(chunk) => {
                    if let Some(m) = inbound.as_mut() {
                        m.add(shared, chunk.0).await;
                    }
                }
                Action::AbortMessage => inbound = None,
                Action::Persist => {
                    let outcome = match inbound.take() {
                        Some(m) => m.persist(shared).await,
                        None => PersistOutcome::Failed,
                    };
                    session.persisted(outcome);
                    deadlines.message_done();
                }
                Action::StartTls => {
                    // RFC 3207 §4.2: anything pipelined after STARTTLS is discarded.
                    buf.clear();
                    match upgrade(&mut conn, settings, cfg.command_timeout).await {
                        Ok(()) => session.tls_started(),
                        Err(e) => break format!("TLS handshake failed: {e}"),
                    }
                }
                Action::Close => {
                    conn.shutdown().await;
                    break "closed".to_owned();
                }
            }
            continue;
        }
        if session.is_closed() {
            break "closed".to_owned();
        }
        if !buf.is_empty() {
            // The session neither consumed nor asked for anything: a bug, not a client fault.
            break "session stalled".to_owned();
        }
        let now = Instant::now();
        let (deadline, why) = deadlines.next(cfg, &session, now);
        if now >= deadline {
            tracing::info!(%peer, why, "session timeout");
            session.timeout();
            continue;
        }
        let limit = deadline.saturating_duration_since(now);
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = tokio::time::timeout(limit, conn.read(&mut buf)) => Some(r),
            changed = stop.changed(), if !draining => {
                // A closed channel means the handle is gone: treat it as a stop too.
                let _ = changed;
                draining = true;
                None
            }
        };
        match read {
            // A timeout is handled at the top of the next turn, against the deadlines.
            None | Some(Err(_)) | Some(Ok(Ok(1..))) => {}
            Some(Ok(Err(e))) => break format!("read error: {e}"),
            Some(Ok(Ok(0))) => break "client closed the connection".to_owned(),
        }
    };
    tracing::debug!(%peer, end, "session end");
}
async fn upgrade(conn: &mut Conn, settings: &Settings, limit: Duration) -> Result<(), String> {
    let Some(acceptor) = &settings.tls else {
        return Err("STARTTLS without a TLS configuration".to_owned());
    };
    let Conn::Plain(tcp) = std::mem::replace(conn, Conn::Gone) else {
        return Err("TLS already active".to_owned());
    };
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    match tokio::time::timeout(limit, Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => {
            *conn = Conn::Tls(Box::new(stream));
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timeout".to_owned()),
    }
}

/// A message being received: its envelope, the content not yet written, and its spool file
/// once the content outgrew [`SPILL_THRESHOLD`]. Dropping it removes the file (abort).
struct Inbound {
    envelope: ReceivedEnvelope,
    pending: Vec<u8>,
    writer: Option<SpoolWriter>,
    size: usize,
    /// The first [`HEAD_KEPT`] bytes, kept apart from `pending` (which is emptied when it
    /// spills) so that the "message received" line can name the subject and compostage.
    head: Vec<u8>,
    /// The spool could not take the content: the rest is discarded and the message is
    /// answered `451` at its end (the client retries; nothing was acknowledged).
    failed: bool,
}

/// How much of the start of a message is kept for its "received" log line: enough for the
/// header of any message a PS's software writes.
const HEAD_KEPT: usize = 16 * 1024;

/// The Postfix-style "received" line: one event, keyed by the spool id support staff read in
/// the PS journal's `250` answer. Only what the annex puts in the subject (PS number,
/// compostage) and the envelope is logged, never the content (health data).
fn log_received(envelope: &ReceivedEnvelope, id: &str, size: usize, head: &[u8]) {
    let subject = crate::fidelity::raw_header(head, "subject").unwrap_or_default();
    let ps_number = crate::fidelity::ps_number_in(&subject).unwrap_or_default();
    let compostage = crate::fidelity::compostage_in(&subject).unwrap_or_default();
    // The PS's Message-ID is not kept in the state database: this line is where it meets the
    // spool id that `svoct oct trace` takes.
    let message_id = crate::fidelity::raw_header(head, "message-id").unwrap_or_default();
    tracing::info!(
        spool_id = %id,
        client = %envelope.peer,
        mail_from = ?envelope.mail_from,
        rcpt = envelope.rcpt_to.len(),
        ps_number = %ps_number,
        subject = ?subject,
        compostage = %compostage,
        message_id = ?message_id,
        size,
        "message received"
    );
}

impl Inbound {
    fn new(envelope: MessageEnvelope, peer: SocketAddr) -> Self {
        Self {
            envelope: ReceivedEnvelope {
                helo: envelope.helo,
                mail_from: envelope.mail_from,
                rcpt_to: envelope.rcpt_to,
                peer: peer.to_string(),
                received_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            },
            pending: Vec::new(),
            writer: None,
            size: 0,
            head: Vec::new(),
            failed: false,
        }
    }

    /// Adds content; beyond [`SPILL_THRESHOLD`] in memory, appends it to the spool file.
    async fn add(&mut self, shared: &Shared, chunk: Vec<u8>) {
        if self.failed {
            return;
        }
        self.size = self.size.saturating_add(chunk.len());
        if self.head.len() < HEAD_KEPT {
            let take = chunk.len().min(HEAD_KEPT - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if self.pending.capacity() == 0 {
            // Reserved once, never regrown: pages not touched cost no memory.
            self.pending.reserve_exact(SPILL_THRESHOLD + DATA_CHUNK);
        }
        self.pending.extend_from_slice(&chunk);
        if self.pending.len() < SPILL_THRESHOLD {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let writer = self.writer.take();
        let (spool, envelope) = (shared.spool.clone(), self.envelope.clone());
        let spilled = tokio::task::spawn_blocking(move || {
            let mut w = match writer {
                Some(w) => w,
                None => spool.begin(&envelope)?,
            };
            w.append(&pending)?;
            Ok::<_, SpoolError>((w, pending))
        })
        .await;
        match spilled {
            Ok(Ok((w, mut pending))) => {
                self.writer = Some(w);
                pending.clear();
                self.pending = pending;
            }
            Ok(Err(e)) => self.fail(&e),
            Err(e) => self.fail(&e),
        }
    }

    fn fail(&mut self, error: &dyn std::fmt::Display) {
        tracing::error!(peer = %self.envelope.peer, size = self.size, %error, "spool write failed");
        self.failed = true;
        self.pending = Vec::new();
        // Dropping the writer removes the partial file.
        self.writer = None;
    }

    /// Writes what is left, fsyncs and commits: the outcome for the `250`/`451`.
    async fn persist(mut self, shared: &Shared) -> PersistOutcome {
        let peer = self.envelope.peer.clone();
        let size = self.size;
        let head = std::mem::take(&mut self.head);
        let envelope = self.envelope.clone();
        let fail = |shared: &Shared| {
            shared.stats.persist_failures.fetch_add(1, Ordering::Relaxed);
            PersistOutcome::Failed
        };
        if self.failed {
            return fail(shared);
        }
        let spool = shared.spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut w = match self.writer.take() {
                Some(w) => w,
                None => spool.begin(&self.envelope)?,
            };
            w.append(&self.pending)?;
            spool.commit(w)
        })
        .await;
        match result {
            Ok(Ok(id)) => {
                shared.stats.messages.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .bytes
                    .fetch_add(u64::try_from(size).unwrap_or(u64::MAX), Ordering::Relaxed);
                log_received(&envelope, &id.to_string(), size, &head);
                PersistOutcome::Stored { id: id.to_string() }
            }
            Ok(Err(e)) => {
                tracing::error!(%peer, size, error = %e, "spool write failed");
                fail(shared)
            }
            Err(e) => {
                tracing::error!(%peer, size, error = %e, "spool task failed");
                fail(shared)
            }
        }
    }
}
