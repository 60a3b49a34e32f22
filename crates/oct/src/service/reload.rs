//! Reloading the configuration of a running service (SIGHUP, `svoct oct reload`; issue 14
//! points 3 and 9).
//!
//! A reload reads the file again and runs the checks of `svoct oct check`; with any error the
//! running configuration stays. Otherwise everything is built aside first (keys and
//! certificates read from disk, delivery transports, the ingress's STARTTLS context), and only
//! when all of it loaded is it swapped in, whole: the workers and senders take the new
//! [`Live`] at their next unit of work, the ingress its new settings for new sessions. Nothing
//! is handed from one version to the other, so a reload cannot lose or duplicate a message:
//! messages in hand finish under the snapshot they started with, and the durable queues
//! (spool, outbox, quarantine) are not touched.
//!
//! Settings read once to build the threads and sockets (listen address, spool and state
//! paths, numbers of workers and senders) keep their running values; a changed one is logged
//! as needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

use crate::config::Config;
use crate::inbound::listener::{IngressConfig, IngressSwap, PreparedIngress};
use crate::instance::{self, ReloadAck};
use crate::preflight::{self, Severity};

use super::{Live, Running, ServiceError, Shared};

/// The ingress configuration of `config`: it takes mail for the OCT's own addresses only,
/// never an open relay.
pub(super) fn ingress_config(config: &Config) -> IngressConfig {
    config
        .ingress
        .ingress_config(config.domain(), config.own_addresses())
}

/// Logs each route that forwards claims in clear, at start and at each reload.
pub(super) fn warn_plaintext_routes(config: &Config) {
    for route in config.plaintext_routes() {
        tracing::warn!(%route, "this route forwards claims in clear (plaintext = true)");
    }
}

/// Reloads the running service's configuration, one at a time (two signals in a row apply one
/// after the other), and counts the reloads. One for the service, shared by the SIGHUP path
/// ([`Running::reload_file`]) and the console ([`crate::http::ServiceView::reload`]): the
/// same validation, log lines and acknowledgement whoever asks.
pub(super) struct Reloader {
    shared: Arc<Shared>,
    /// Swaps the ingress's settings for new sessions; `None` only in a service without one.
    ingress: Option<IngressSwap>,
    /// The file the service was started from: what the console reloads. `None` for a service
    /// started from a configuration in memory (tests, `svoct demo`).
    file: Option<PathBuf>,
    generation: Mutex<u64>,
}

impl Reloader {
    pub(super) fn new(shared: Arc<Shared>, ingress: Option<IngressSwap>, file: Option<PathBuf>) -> Reloader {
        Reloader {
            shared,
            ingress,
            file,
            generation: Mutex::new(0),
        }
    }
}

impl crate::http::ServiceView for Reloader {
    fn config(&self) -> Arc<Config> {
        self.shared.live().config.clone()
    }

    fn stats(&self) -> &super::ServiceStats {
        &self.shared.stats
    }

    fn threads(&self) -> &crate::http::health::Threads {
        &self.shared.threads
    }

    fn reload(&self) -> Option<Result<Reloaded, ReloadError>> {
        self.file.as_deref().map(|file| self.reload_file(file))
    }
}

/// Why a reload was refused; the running configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file has errors `svoct oct check` reports (each one is logged); `findings` are
    /// those errors as `key: problem` (what the console shows).
    #[error("{file}: {errors} error(s) (see `svoct oct check`)")]
    Invalid {
        file: String,
        errors: usize,
        findings: Vec<String>,
    },
    /// The file is valid but what it names could not be loaded (a key, a certificate, the
    /// ingress's STARTTLS files).
    #[error("{0}")]
    Load(#[from] ServiceError),
}

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Reloads of this process so far, this one included.
    pub generation: u64,
    /// The settings that changed in the file but keep their running value until a restart.
    pub needs_restart: Vec<&'static str>,
    /// Short summary of what is in force (routes, senders...).
    pub summary: String,
}

/// Settings only a restart changes: the new value is replaced by the running one, and the
/// names of those that differed are returned.
fn keep_restart_settings(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if new.ingress.listen != running.ingress.listen {
        changed.push("ingress.listen");
        new.ingress.listen = running.ingress.listen;
    }
    if new.paths.spool != running.paths.spool {
        changed.push("paths.spool");
        new.paths.spool.clone_from(&running.paths.spool);
    }
    if new.paths.state != running.paths.state {
        changed.push("paths.state");
        new.paths.state.clone_from(&running.paths.state);
    }
    if new.pipeline.workers != running.pipeline.workers {
        changed.push("pipeline.workers");
        new.pipeline.workers = running.pipeline.workers;
    }
    if new.delivery.senders != running.delivery.senders {
        changed.push("delivery.senders");
        new.delivery.senders = running.delivery.senders;
    }
    // The HTTP listener, its TLS pair and its users file are read when it starts.
    if new.http != running.http {
        changed.push("http");
        new.http.clone_from(&running.http);
    }
    changed
}

fn summary(config: &Config) -> String {
    format!(
        "{} route(s), {} AMC route(s), {} sender(s), {} hosted mailbox(es), {} accepted address(es), STARTTLS {}",
        config.routes.len(),
        config.amc.len(),
        config.senders.len(),
        config.delivery.local.len(),
        config.own_addresses().len(),
        if config.ingress.tls_files().is_some() {
            "on"
        } else {
            "off"
        }
    )
}

impl Running {
    /// Reads `file` again, validates it and applies it: see [`Reloader::reload_file`].
    pub fn reload_file(&self, file: &Path) -> Result<Reloaded, ReloadError> {
        self.reloader.reload_file(file)
    }
}

impl Reloader {
    /// Reads `file` again, validates it as `svoct oct check` does and, when it has no error,
    /// applies it (see the module). Logs the outcome (each finding of a refused file at error
    /// level, naming the file) and writes the acknowledgement that `svoct oct reload` and
    /// `quarantine retry` wait for ([`instance::write_reload_ack`]). Blocking: it reads files.
    pub(super) fn reload_file(&self, file: &Path) -> Result<Reloaded, ReloadError> {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *generation += 1;
        let result = validate(file).and_then(|config| self.apply(config, *generation));
        let message = match &result {
            Ok(r) => {
                tracing::info!(file = %file.display(), generation = r.generation, summary = %r.summary, "configuration reloaded");
                // The file the service read: the command that asked may have named another.
                format!("{}: {}", file.display(), r.summary)
            }
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "configuration reload refused: the running configuration is kept");
                e.to_string()
            }
        };
        let ack = ReloadAck {
            pid: std::process::id(),
            generation: *generation,
            ok: result.is_ok(),
            message,
        };
        let state = self.shared.live().config.paths.state.clone();
        if let Err(e) = instance::write_reload_ack(&state, &ack) {
            // The reload itself is done (or refused); only a waiting command misses the answer.
            tracing::warn!(error = %e, "cannot write the reload acknowledgement");
        }
        result
    }

    /// Builds everything `config` names aside, then swaps it in whole (see the module).
    fn apply(&self, mut config: Config, generation: u64) -> Result<Reloaded, ReloadError> {
        let running = self.shared.live();
        let needs_restart = keep_restart_settings(&running.config, &mut config);
        if !needs_restart.is_empty() {
            tracing::warn!(
                settings = %needs_restart.join(", "),
                "changed settings that need a restart keep their running values until then"
            );
        }
        warn_plaintext_routes(&config);
        let config = Arc::new(config);
        let live = Live::load(config.clone())?;
        let ingress = PreparedIngress::new(ingress_config(&config)).map_err(ServiceError::from)?;
        // Everything loaded: from here nothing can fail, so nothing is half applied.
        if let Some(swap) = &self.ingress {
            swap.apply(ingress);
        }
        *self
            .shared
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(live);
        // Senders waiting for work look at the outbox at once (a new relay, a new mailbox).
        self.shared.signal.notify();
        // `[[sender]]` blocks added to the file are registered as at a start (never
        // overwriting a practice the database holds); the workers see them at their next batch.
        let seeded = crate::state::State::open_gated(&config.paths.state, self.shared.gate.clone())
            .and_then(|state| crate::practices::seed(&state, &config));
        if let Err(e) = seeded {
            tracing::warn!(error = %e, "could not register the file's [[sender]] blocks as practices; `svoct oct ps add` does it");
        }
        Ok(Reloaded {
            generation,
            needs_restart,
            summary: summary(&config),
        })
    }
}

/// The checks of `svoct oct check` on `file`; the configuration when it has no error. Every
/// finding is logged, errors at error level, each naming the file.
fn validate(file: &Path) -> Result<Config, ReloadError> {
    let (config, report) = preflight::check_file(file);
    for f in &report.findings {
        match f.severity {
            Severity::Error => {
                tracing::error!(file = %file.display(), key = %f.key, problem = %f.message, "configuration reload: error");
            }
            Severity::Warning => {
                tracing::warn!(file = %file.display(), key = %f.key, problem = %f.message, "configuration reload: warning");
            }
        }
    }
    match config {
        Some(c) if report.passes(false) => Ok(c),
        _ => {
            let mut findings: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| format!("{}: {}", f.key, f.message))
                .collect();
            if findings.is_empty() {
                findings.push(format!("{}: cannot be read or parsed", file.display()));
            }
            Err(ReloadError::Invalid {
                file: file.display().to_string(),
                errors: report.count(Severity::Error).max(1),
                findings,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        Config::parse(include_str!("../../../../docs/oct.example.toml")).expect("example parses")
    }

    #[test]
    fn restart_settings_keep_their_running_values_and_are_named() {
        let running = example();
        let mut new = example();
        assert!(keep_restart_settings(&running, &mut new).is_empty());

        new.ingress.listen = "127.0.0.1:2626".parse().expect("address");
        new.paths.spool = "/elsewhere/spool".into();
        new.paths.state = "/elsewhere/state.sqlite".into();
        new.pipeline.workers = running.pipeline.workers + 3;
        new.delivery.senders = running.delivery.senders + 1;
        // Not restart-only: applied as written.
        new.retry.max_attempts = running.retry.max_attempts + 7;
        let changed = keep_restart_settings(&running, &mut new);
        assert_eq!(
            changed,
            [
                "ingress.listen",
                "paths.spool",
                "paths.state",
                "pipeline.workers",
                "delivery.senders"
            ]
        );
        assert_eq!(new.ingress.listen, running.ingress.listen);
        assert_eq!(new.paths.spool, running.paths.spool);
        assert_eq!(new.paths.state, running.paths.state);
        assert_eq!(new.pipeline.workers, running.pipeline.workers);
        assert_eq!(new.delivery.senders, running.delivery.senders);
        assert_eq!(new.retry.max_attempts, running.retry.max_attempts + 7);
    }
}
