//! The service's HTTP listener (issue 14 points 6 and 7), started by
//! [`crate::service::Running::start`] when the configuration has an `[http]` section:
//!
//! - `GET /metrics` (Prometheus text, [`metrics`]) and `GET /healthz` ([`health`]): no
//!   credential, no health data (Prometheus convention);
//! - the web console (everything else): server-side rendered pages ([`pages`]), plain HTML
//!   forms for the actions ([`actions`]), behind a login ([`auth`]).
//!
//! axum routes the requests; the accept loop is ours so that TLS is openssl's (as the SMTP
//! ingress's) and a stop ends it. The console reads and writes the state database through
//! [`crate::operate`], the functions the CLI uses, on a connection of its own per request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::ssl::{Ssl, SslAcceptor};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::inbound::listener::IngressStats;
use crate::service::ServiceStats;

mod actions;
pub mod auth;
pub mod health;
pub mod metrics;
mod pages;

/// `[http]`: the listener of `/metrics`, `/healthz` and the console (read at start: a reload
/// keeps the running values).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address and port; anything but loopback needs `tls_certificate` and `tls_key`.
    pub listen: SocketAddr,
    /// The console's operators (`svoct oct console-user add`); without it, only `/metrics` and
    /// `/healthz` are served.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// PEM certificate chain served over TLS.
    #[serde(default)]
    pub tls_certificate: Option<PathBuf>,
    /// Its PEM private key (mode 0600).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A console session ends this long after its login.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
}

fn default_session_minutes() -> u64 {
    480
}

impl HttpSettings {
    /// The consistency problems of the section, as `(key, reason)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.tls_certificate, &self.tls_key) {
            (Some(_), None) => out.push(("http.tls_key", "missing: http.tls_certificate is set".to_owned())),
            (None, Some(_)) => out.push(("http.tls_certificate", "missing: http.tls_key is set".to_owned())),
            (None, None) if !self.listen.ip().is_loopback() => out.push((
                "http.listen",
                format!(
                    "{} is not a loopback address: the console and metrics would cross the network in clear; set http.tls_certificate and http.tls_key",
                    self.listen
                ),
            )),
            _ => {}
        }
        if self.session_minutes == 0 {
            out.push(("http.session_minutes", "must be at least 1".to_owned()));
        }
        out
    }

    /// Relative paths made relative to the configuration file's directory.
    pub fn resolve_relative(&mut self, base: &std::path::Path) {
        for p in [&mut self.users_file, &mut self.tls_certificate, &mut self.tls_key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http: TLS setup with {path}: {source}")]
    Tls {
        path: PathBuf,
        source: openssl::error::ErrorStack,
    },
    #[error("http: users file: {0}")]
    Users(#[from] auth::AuthError),
}

/// What the listener reads of the running service.
pub trait ServiceView: Send + Sync + 'static {
    /// The configuration in force.
    fn config(&self) -> Arc<Config>;
    /// The workers' and senders' counters (with the [`metrics::Metrics`]).
    fn stats(&self) -> &ServiceStats;
    /// The threads `/healthz` watches.
    fn threads(&self) -> &health::Threads;
    /// Reloads the configuration file the service was started from, as SIGHUP does (the
    /// console's Reload and Retry); `None` when it was not started from a file. Blocking: it
    /// reads files.
    fn reload(&self) -> Option<Result<crate::service::Reloaded, crate::service::ReloadError>> {
        None
    }
}

/// What the handlers share.
pub(crate) struct App {
    service: Arc<dyn ServiceView>,
    ingress: Arc<IngressStats>,
    /// The users file, read again at each login (a new operator needs no restart); checked
    /// once at start, which refuses a missing or readable one.
    users: Option<PathBuf>,
    sessions: auth::Sessions,
    /// Served over TLS: the session cookie is `Secure`.
    tls: bool,
    /// Password checks running at once: PBKDF2 costs CPU by design, and a flood of logins must
    /// not take every core from the workers.
    logins: tokio::sync::Semaphore,
}

/// Password checks at once (see [`App::logins`]).
const CONCURRENT_LOGINS: usize = 2;
/// Open connections at once; beyond, new ones are closed at once (an operator's browser and a
/// Prometheus scraper need a handful).
const MAX_CONNECTIONS: usize = 64;

/// A running listener.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Loads the users file and the TLS pair, binds and serves in the background of the
    /// current tokio runtime.
    pub async fn start(
        settings: &HttpSettings,
        service: Arc<dyn ServiceView>,
        ingress: Arc<IngressStats>,
    ) -> Result<HttpServer, HttpError> {
        if let Some(path) = &settings.users_file {
            auth::Users::load(path)?;
        }
        let users = settings.users_file.clone();
        let acceptor = match (&settings.tls_certificate, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let files = crate::inbound::listener::TlsFiles {
                    cert_chain: cert.clone(),
                    private_key: key.clone(),
                };
                let acceptor = crate::inbound::listener::server_acceptor(&files)
                    .map_err(|(path, source)| HttpError::Tls { path, source })?;
                Some(acceptor)
            }
            _ => None,
        };
        let addr = settings.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        let app = Arc::new(App {
            service,
            ingress,
            users,
            sessions: auth::Sessions::new(Duration::from_secs(settings.session_minutes.saturating_mul(60))),
            tls: acceptor.is_some(),
            logins: tokio::sync::Semaphore::new(CONCURRENT_LOGINS),
        });
        let router = routes(app);
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(%local_addr, tls = acceptor.is_some(), console = settings.users_file.is_some(), "http listening");
        let task = tokio::spawn(accept_loop(listener, acceptor, router, stop_rx));
        Ok(HttpServer {
            local_addr,
            stop,
            task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and ends the open connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(pages::metrics))
        .route("/healthz", get(pages::healthz))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/", get(pages::overview::page))
        .route("/queue", get(pages::queue::list))
        .route("/queue/flush", post(actions::queue_flush_all))
        .route("/reload", post(actions::reload))
        .route("/queue/{id}", get(pages::queue::item))
        .route("/quarantine", get(pages::quarantine::list))
        .route("/quarantine/{id}", get(pages::quarantine::item))
        .route("/{area}/{key}/{action}", post(actions::act))
        .route("/trace", get(pages::trace::page))
        .route("/ps/{ps}", get(pages::ps::page))
        .route("/ps", get(pages::practices::list))
        .route("/ps/add", post(pages::practices::add))
        .route(
            "/ps/import",
            post(pages::practices::import).layer(DefaultBodyLimit::max(pages::practices::IMPORT_BODY_MAX)),
        )
        .route(
            "/ps/upload",
            post(pages::practices::upload).layer(DefaultBodyLimit::max(pages::practices::UPLOAD_BODY_MAX)),
        )
        .with_state(app)
}

/// A TLS handshake or a request's headers taking longer than this end the connection.
const SLOW_CLIENT: Duration = Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<SslAcceptor>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        if tasks.len() >= MAX_CONNECTIONS {
            tracing::warn!(max = MAX_CONNECTIONS, "http: too many connections; one refused");
            drop(stream);
            continue;
        }
        let (router, acceptor) = (router.clone(), acceptor.clone());
        tasks.spawn(async move {
            let service = TowerToHyperService::new(router);
            match acceptor {
                None => serve_connection(TokioIo::new(stream), service).await,
                Some(acceptor) => {
                    let Ok(ssl) = Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    match tokio::time::timeout(SLOW_CLIENT, Pin::new(&mut tls).accept()).await {
                        Ok(Ok(())) => serve_connection(TokioIo::new(tls), service).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "http TLS handshake failed"),
                        Err(_) => tracing::debug!("http TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

async fn serve_connection<I>(io: TokioIo<I>, service: TowerToHyperService<Router>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(SLOW_CLIENT)
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> HttpSettings {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn anything_but_loopback_needs_the_tls_pair() {
        assert!(settings("listen = \"127.0.0.1:9425\"").problems().is_empty());
        assert!(settings("listen = \"[::1]:9425\"").problems().is_empty());
        let open = settings("listen = \"0.0.0.0:9425\"").problems();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, "http.listen");
        let tls = "listen = \"192.0.2.1:443\"\ntls_certificate = \"c.pem\"\ntls_key = \"k.pem\"";
        assert!(settings(tls).problems().is_empty());
        let half = settings("listen = \"127.0.0.1:1\"\ntls_certificate = \"c.pem\"").problems();
        assert_eq!(half[0].0, "http.tls_key");
        assert_eq!(
            settings("listen = \"127.0.0.1:1\"\nsession_minutes = 0").problems()[0].0,
            "http.session_minutes"
        );
    }
}
