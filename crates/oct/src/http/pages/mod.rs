//! The console's pages, one file each, and what they share: the layout, the login check, the
//! state database access. `/metrics` and `/healthz` are here too (no login).

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::App;
use super::auth::Session;
use crate::config::Config;
use crate::operate::OperateError;
use crate::state::{OctStore, State as Db};

pub(super) mod login;
pub(super) mod overview;
pub(super) mod practices;
pub(super) mod ps;
pub(super) use ps::valid_ps_number;
pub(super) mod quarantine;
pub(super) mod queue;
pub(super) mod trace;

/// The session cookie's name.
pub(super) const COOKIE: &str = "svoct_session";

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}\
header{background:#1f3a5f;color:#fff;padding:.5em 1em;display:flex;gap:1.2em;align-items:center}\
header a{color:#fff;text-decoration:none}header .who{margin-left:auto}\
main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#eef}.flow td,.flow th{text-align:center;padding:.1em .3em;font-size:12px}\
.flow tr:first-child td{height:84px;vertical-align:bottom}\
.vbar{background:#4a7fc1;width:14px;display:block;margin:0 auto}.vbar.q{background:#c14a4a}.msg{background:#e8f5e8;border:1px solid #9c9;padding:.4em .8em}\
.err{background:#fbeaea;border:1px solid #c99;padding:.4em .8em}form.inline{display:inline}\
button{margin:0 .2em}code{background:#f4f4f4}";

/// A whole console page.
pub(super) fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " — svoct OCT console" }
                style { (STYLE) }
            }
            body {
                header {
                    strong { "svoct OCT" }
                    @if let Some(s) = session {
                        a href="/" { "Overview" }
                        a href="/queue" { "Queue" }
                        a href="/quarantine" { "Quarantine" }
                        a href="/ps" { "Practices" }
                        form action="/trace" method="get" class="inline" {
                            input type="search" name="q" placeholder="spool id, compostage, PS number, lot" size="32";
                            button type="submit" { "Trace" }
                        }
                        span class="who" { (s.user) }
                        form action="/logout" method="post" class="inline" {
                            (csrf_field(s))
                            button type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field every POST of a logged-in page carries.
pub(super) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// An action's form: its CSRF token, a reason field when the action needs one (`because`: the
/// field's label; its id `NAME-reason`, as a page may have two), and its button (`name` is the
/// button's id and the URL's last segment).
pub(super) fn action_form(s: &Session, base: &str, name: &str, label: &str, because: Option<&str>) -> Markup {
    html! {
        form method="post" action=(format!("{base}/{name}")) class=[because.is_none().then_some("inline")] {
            (csrf_field(s))
            @if let Some(because) = because {
                label { (because) " " input type="text" name="reason" id=(format!("{name}-reason")) required size="50"; }
            }
            button type="submit" id=(name) { (label) }
        }
    }
}

/// A page as a response: never cached, never framed, no script but what the page inlines.
pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, axum::response::Html(markup.into_string())).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// An error page.
pub(super) fn error_page(status: StatusCode, session: Option<&Session>, text: &str) -> Response {
    respond(
        status,
        layout("Error", session, html! { p class="err" { (text) } }),
    )
}

/// The refusal page for a form whose CSRF token is not the session's; `None` when it is.
pub(super) fn check_csrf(authed: &Authed, sent: &str) -> Option<Response> {
    if super::auth::csrf_ok(&authed.session, sent) {
        return None;
    }
    Some(error_page(
        StatusCode::FORBIDDEN,
        Some(&authed.session),
        "stale form (CSRF token): reload the page and try again",
    ))
}

/// The session token the request's cookie carries.
pub(super) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A logged-in operator: pages that take one send everybody else to the login form.
pub(super) struct Authed {
    pub session: Session,
    pub token: String,
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        if app.users.is_none() {
            return Err(error_page(
                StatusCode::NOT_FOUND,
                None,
                "the console is off: set [http] users_file (see docs/oct.md)",
            ));
        }
        cookie_token(&parts.headers)
            .and_then(|token| app.sessions.get(&token).map(|session| Authed { session, token }))
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// Runs `f` on a connection of its own to the state database, off the async threads.
pub(super) async fn with_db<T: Send + 'static>(
    app: &App,
    session: &Session,
    f: impl FnOnce(&Config, &Db) -> Result<T, OperateError> + Send + 'static,
) -> Result<T, Response> {
    let config = app.service.config();
    let done = tokio::task::spawn_blocking(move || {
        let db = Db::open(&config.paths.state).map_err(OperateError::from)?;
        f(&config, &db)
    })
    .await;
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(OperateError::NotFound(text))) => Err(error_page(StatusCode::NOT_FOUND, Some(session), &text)),
        Ok(Err(e @ OperateError::NoReason(_))) => {
            Err(error_page(StatusCode::BAD_REQUEST, Some(session), &e.to_string()))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: state database");
            Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(session),
                &e.to_string(),
            ))
        }
        Err(_) => Err(error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(session),
            "internal error",
        )),
    }
}

/// Epoch seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn when(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// `GET /metrics`.
pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    let gauges = tokio::task::spawn_blocking(move || scrape_gauges(&app2.service.config())).await;
    let (queue, spool_bytes, quarantine_bytes) = match gauges {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "metrics: state database");
            return (StatusCode::INTERNAL_SERVER_ERROR, "state database unavailable\n").into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let stats = app.service.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let scrape = super::metrics::Scrape {
        received: load(&app.ingress.messages),
        received_bytes: load(&app.ingress.bytes),
        processed: load(&stats.processed),
        delivered: load(&stats.delivered),
        metrics: Some(&stats.metrics),
        queue,
        spool_bytes,
        quarantine_bytes,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        scrape.render(),
    )
        .into_response()
}

type Gauges = (
    std::collections::BTreeMap<String, super::metrics::QueueGauge>,
    u64,
    u64,
);

fn scrape_gauges(config: &Config) -> Result<Gauges, crate::state::StateError> {
    let db = Db::open(&config.paths.state)?;
    let rows = db.queue_list()?;
    let now = crate::state::now_secs();
    let queue = super::metrics::queue_gauges(
        rows.iter()
            .map(|r| (crate::operate::destination(config, &r.row.rcpt), r.created_at)),
        now,
    );
    Ok((
        queue,
        super::metrics::spool_bytes(&config.paths.spool),
        db.quarantine_bytes()?,
    ))
}

/// `GET /healthz`.
pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let (status, body) = super::health::report(app.service.threads());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}
