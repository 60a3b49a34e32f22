//! The running concentrator, in the shape of a mail queue: the ingress spools, workers
//! (`worker.rs`) turn spooled messages into outbox rows, senders (`sender.rs`) deliver the
//! outbox through `delivery.rs`. What they share is one `Shared` behind one `Arc`.
//!
//! - The ingress (the SMTP shell of [`crate::inbound::listener`]) acknowledges a message only once it is
//!   durably in the spool.
//! - Each worker thread loops `claim_next` → [`crate::pipeline::Pipeline::process`] → [`OctStore::commit`] (one
//!   transaction: processed row + outbox + quarantine) → `complete` / `quarantine` on the spool.
//!   A message already committed (crash between commit and `complete`) is only completed.
//! - Sender threads (`delivery.senders`) deliver the outbox, each claiming a row first: local
//!   Maildirs for mailboxes the operator hosts, an `.eml` directory when configured, SMTP otherwise; transient failures are retried with
//!   exponential backoff, permanent ones (or exhausted retries) mark the row failed.
//! - Shutdown stops the ingress (in-flight SMTP sessions finish), then lets every worker finish
//!   the message in hand and the sender finish the delivery in hand. Nothing else is needed:
//!   everything not finished is durable and resumes at the next start.
//! - A reload (`reload.rs`, SIGHUP) swaps the configuration, keys and delivery the threads read
//!   (`Shared::live`) and the ingress's settings for new sessions, whole, after validating and
//!   loading everything aside.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use svoct_store::spool::{Spool, SpoolId};

use crate::config::Config;
use crate::inbound::listener::{Ingress, IngressHandle};
use crate::pipeline::{Keys, PipelineError};
use crate::state::{OctStore, State, StateError, WriteGate};

mod delivery;
mod reload;
mod sender;
mod worker;

pub use delivery::{AUTH_REJECTED, Delivered, Delivery};
pub use reload::{ReloadError, Reloaded};
pub use sender::{Abandoned, abandon, send_once};
pub use worker::{Blocks, StateEnv, work_batch, work_once};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Keys(#[from] PipelineError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Spool(#[from] svoct_store::spool::SpoolError),
    #[error("{0}")]
    Ingress(#[from] crate::inbound::listener::IngressError),
    #[error("downstream SMTP: {0}")]
    Smtp(String),
    #[error("thread: {0}")]
    Thread(String),
    #[error("{0}")]
    Http(#[from] crate::http::HttpError),
}

/// Live counters of a running service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Spooled messages committed by the workers.
    pub processed: AtomicU64,
    /// Of which quarantined.
    pub quarantined: AtomicU64,
    /// Outbox messages delivered.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed (transient or permanent).
    pub delivery_failures: AtomicU64,
    /// What `/metrics` adds: quarantine reasons, delivery outcomes, processing latency.
    pub metrics: crate::http::metrics::Metrics,
}

/// Wakes idle senders as soon as a worker has queued outgoing messages, instead of letting
/// them poll the outbox.
#[derive(Debug, Default)]
struct OutboxSignal {
    generation: std::sync::Mutex<u64>,
    queued: std::sync::Condvar,
}

impl OutboxSignal {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify(&self) {
        *self.lock() += 1;
        self.queued.notify_all();
    }

    fn generation(&self) -> u64 {
        *self.lock()
    }

    /// Waits until something was queued after `seen` was read, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.lock();
        let _ = self.queued.wait_timeout_while(guard, timeout, |g| *g == seen);
    }
}

/// A running concentrator.
pub struct Running {
    ingress: Option<IngressHandle>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    senders: Vec<JoinHandle<()>>,
    /// Serialises reloads and counts them (`reload.rs`); the console holds it too.
    reloader: Arc<reload::Reloader>,
    /// `/metrics`, `/healthz` and the console, when `[http]` is set.
    http: Option<crate::http::HttpServer>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("ingress", &self.ingress.as_ref().map(IngressHandle::local_addr))
            .finish_non_exhaustive()
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(20);
    let mut left = total;
    while !stop.load(Ordering::Relaxed) && !left.is_zero() {
        let d = left.min(step);
        std::thread::sleep(d);
        left = left.saturating_sub(d);
    }
}

/// Deletes the spool's copies of quarantined messages that the state database holds: versions
/// before the quarantine kept one copy in each. Entries the spool set aside because it could
/// not read them (no quarantine row) stay. Returns how many were deleted.
pub fn remove_second_copies(spool: &Spool, state: &dyn OctStore) -> Result<usize, ServiceError> {
    let mut removed = 0;
    for entry in spool.list()? {
        if entry.state == svoct_store::spool::EntryState::Quarantined
            && state.has_quarantine_row(&entry.id.to_string())?
        {
            spool.remove_quarantined(entry.id)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "spool copies of quarantined messages deleted (the state database keeps each one)"
        );
    }
    Ok(removed)
}

/// One version of what the configuration file says, as the threads use it: swapped whole by a
/// reload (`reload.rs`), never edited in place.
struct Live {
    config: Arc<Config>,
    keys: Keys,
    delivery: Delivery,
}

impl Live {
    /// Loads the keys and certificates `config` names and prepares its delivery.
    fn load(config: Arc<Config>) -> Result<Live, ServiceError> {
        Ok(Live {
            keys: Keys::load(&config)?,
            delivery: Delivery::new(config.clone())?,
            config,
        })
    }
}

/// What the worker and sender threads share: one value behind one `Arc`.
struct Shared {
    /// The configuration, keys and delivery in force. Each thread takes a snapshot (a clone of
    /// the `Arc`) once per unit of work (a worker's batch or retry, a sender's step) and keeps
    /// it to the end of that unit: a reload never changes the rules under a message in hand,
    /// and the lock is held only for the clone. A `RwLock` rather than a lock-free swap crate:
    /// it is taken a few times per batch, not per byte.
    live: std::sync::RwLock<Arc<Live>>,
    spool: Arc<Spool>,
    stop: AtomicBool,
    stats: ServiceStats,
    /// Queues this process's writers to the state database.
    gate: WriteGate,
    /// Wakes idle senders when a worker queued something.
    signal: OutboxSignal,
    /// The threads and the ingress task `/healthz` watches.
    threads: crate::http::health::Threads,
}

/// Starts a service thread that `/healthz` watches: it is alive while `f` runs.
fn spawn_watched(
    shared: &Arc<Shared>,
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, ServiceError> {
    let alive = shared.threads.register(&name);
    spawn(name, move || {
        let _alive = alive;
        f()
    })
}

/// Starts the HTTP listener when `[http]` is set; on failure, stops what was started.
async fn start_http(
    shared: &Arc<Shared>,
    reloader: &Arc<reload::Reloader>,
    config: &Config,
    ingress: &IngressHandle,
) -> Result<Option<crate::http::HttpServer>, ServiceError> {
    let Some(settings) = &config.http else {
        return Ok(None);
    };
    shared.threads.watch_task("smtp-ingress", ingress.accept_task());
    let view: Arc<dyn crate::http::ServiceView> = reloader.clone();
    Ok(Some(
        crate::http::HttpServer::start(settings, view, ingress.stats_handle()).await?,
    ))
}

impl Shared {
    /// The configuration, keys and delivery in force now.
    fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts a named service thread.
fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ServiceError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| ServiceError::Thread(e.to_string()))
}

/// Opens the state once before any thread, so that schema problems stop the start, not a
/// thread; seeds the practices from the `[[sender]]` blocks (`crate::practices::seed`); deletes
/// spool copies of quarantined messages; puts rows a crash left in delivery back in the queue.
fn prepare_state(config: &Config, spool: &Spool) -> Result<(), ServiceError> {
    let state = State::open(&config.paths.state)?;
    crate::practices::seed(&state, config)?;
    remove_second_copies(spool, &state)?;
    let reset = state.reset_sending()?;
    if reset > 0 {
        tracing::warn!(
            messages = reset,
            "messages claimed for delivery when the service stopped are queued again (at most one per sender may already have been delivered: same Message-ID)"
        );
    }
    Ok(())
}

/// The thread that removes the spool entries the workers committed; it ends when every worker
/// (every clone of the returned sender) is gone.
fn spawn_reaper(
    spool: Arc<Spool>,
) -> Result<(std::sync::mpsc::Sender<SpoolId>, JoinHandle<()>), ServiceError> {
    let (reap, reaped) = std::sync::mpsc::channel::<SpoolId>();
    let reaper = spawn("oct-reaper".into(), move || {
        for id in reaped {
            if let Err(e) = spool.complete_recorded(id) {
                // Left in the spool: the next start completes it (outcome known).
                tracing::warn!(spool_id = %id, error = %e, "could not remove a processed spool entry");
            }
        }
    })?;
    Ok((reap, reaper))
}

impl Running {
    /// Loads keys, opens the spool and the state, binds the ingress and starts the workers and
    /// the senders. Must be called inside a tokio runtime (the ingress runs on it). The
    /// console cannot reload such a service (no file): see [`Running::start_from_file`].
    pub async fn start(config: Config) -> Result<Running, ServiceError> {
        Running::start_with(config, None).await
    }

    /// [`Running::start`] for `config` read from `file` (`svoct oct serve`): the console's
    /// Reload and Retry read `file` again, as SIGHUP does.
    pub async fn start_from_file(config: Config, file: std::path::PathBuf) -> Result<Running, ServiceError> {
        Running::start_with(config, Some(file)).await
    }

    async fn start_with(config: Config, file: Option<std::path::PathBuf>) -> Result<Running, ServiceError> {
        let config = Arc::new(config);
        reload::warn_plaintext_routes(&config);
        let live = Live::load(config.clone())?;
        let spool = Arc::new(Spool::open(&config.paths.spool)?);
        prepare_state(&config, &spool)?;
        let shared = Arc::new(Shared {
            live: std::sync::RwLock::new(Arc::new(live)),
            spool,
            stop: AtomicBool::new(false),
            stats: ServiceStats::default(),
            gate: WriteGate::default(),
            signal: OutboxSignal::default(),
            threads: crate::http::health::Threads::default(),
        });
        let (reap, reaper) = spawn_reaper(shared.spool.clone())?;
        let mut workers = Vec::new();
        for n in 0..config.pipeline.workers {
            let (run, reap) = (shared.clone(), reap.clone());
            workers.push(spawn_watched(&shared, format!("oct-worker-{n}"), move || {
                worker::run(&run, &reap)
            })?);
        }
        drop(reap);
        // The reaper is joined after the workers (shutdown joins workers first), once drained.
        let mut senders = vec![reaper];
        for n in 0..config.delivery.senders.max(1) {
            let run = shared.clone();
            senders.push(spawn_watched(&shared, format!("oct-sender-{n}"), move || {
                sender::run(&run)
            })?);
        }
        let ic = reload::ingress_config(&config);
        let started = match Ingress::bind(config.ingress.listen, ic, shared.spool.clone()).await {
            Ok(ingress) => {
                let reloader = Arc::new(reload::Reloader::new(shared.clone(), Some(ingress.swap()), file));
                match start_http(&shared, &reloader, &config, &ingress).await {
                    Ok(http) => Ok((ingress, http, reloader)),
                    Err(e) => {
                        ingress.shutdown().await;
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e.into()),
        };
        let (ingress, http, reloader) = match started {
            Ok(s) => s,
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                for w in workers.into_iter().chain(senders) {
                    let _ = w.join();
                }
                return Err(e);
            }
        };
        tracing::info!(listen = %ingress.local_addr(), workers = config.pipeline.workers, "concentrator started");
        Ok(Running {
            ingress: Some(ingress),
            shared,
            workers,
            senders,
            http,
            reloader,
        })
    }

    /// The address the ingress listens on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.ingress.as_ref().map(IngressHandle::local_addr)
    }

    /// The address the HTTP listener listens on, when `[http]` is set.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(crate::http::HttpServer::local_addr)
    }

    /// Live counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.shared.stats
    }

    /// Graceful shutdown: the ingress stops accepting and finishes its sessions, then workers
    /// finish the message in hand and the sender the delivery in hand.
    pub async fn shutdown(mut self) {
        if let Some(http) = self.http.take() {
            http.shutdown().await;
        }
        if let Some(ingress) = self.ingress.take() {
            ingress.shutdown().await;
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        let workers = std::mem::take(&mut self.workers);
        let senders = std::mem::take(&mut self.senders);
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers.into_iter().chain(senders) {
                let _ = w.join();
            }
        })
        .await;
        tracing::info!("concentrator stopped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
