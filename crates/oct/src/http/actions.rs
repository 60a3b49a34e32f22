//! The console's actions: plain HTML form POSTs to `/{queue|quarantine}/{id}/{action}`, each
//! checked against the session's CSRF token, logged with who did it, and done by the same
//! [`crate::operate`] functions and [`crate::state::OctStore`] calls as `svoct oct queue` and
//! `svoct oct quarantine`.
//!
//! Retry and `POST /reload` first reload the configuration file the service was started from,
//! in-process, by the service's own reloader ([`super::ServiceView::reload`]: the validation,
//! log lines and acknowledgement of SIGHUP), as `svoct oct quarantine retry` has the service
//! reload before it marks: a retry after adding a route is processed with the route.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::App;
use super::pages::{Authed, check_csrf, error_page, layout, respond, with_db};
use crate::config::Config;
use crate::operate::{self, OperateError};
use crate::practices::{self, AccountChange, PracticeError};
use crate::service::{ReloadError, Reloaded};
use crate::state::{OctStore, State as Db, now_secs};

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// What an action does to the state database.
type DbAction = Box<dyn FnOnce(&Config, &Db) -> Result<(), OperateError> + Send>;

/// A queue action: what it did (the `?done=` of the page it returns to) and how.
fn queue_action(id: i64, action: &str, reason: String) -> Option<(&'static str, DbAction)> {
    Some(match action {
        "hold" => ("held", Box::new(move |_, db| Ok(db.queue_hold(id)?))),
        "release" => (
            "released",
            Box::new(move |_, db| Ok(db.queue_release(id, now_secs())?)),
        ),
        "flush" => (
            "flushed",
            Box::new(move |_, db| Ok(db.queue_flush(Some(id), now_secs()).map(drop)?)),
        ),
        "delete" => (
            "deleted",
            Box::new(move |config, db| {
                let (_, done, reason) = operate::queue_delete(config, db, id, &reason)?;
                tracing::info!(outbox_id = id, %reason, art = ?done.art, "console: queue delete");
                Ok(())
            }),
        ),
        _ => return None,
    })
}

/// A quarantine action.
fn quarantine_action(id: i64, action: &str, reason: String) -> Option<(&'static str, DbAction)> {
    Some(match action {
        "drop" => (
            "dropped",
            Box::new(move |_, db| {
                let (dropped, reason) = operate::quarantine_drop(db, id, &reason)?;
                tracing::info!(quarantine_id = id, %reason, bytes = dropped.bytes, "console: quarantine drop");
                Ok(())
            }),
        ),
        _ => return None,
    })
}

/// A practice's account action (`svoct oct ps suspend|resume|remove`), as `actor`; `ps` is a PS
/// number (checked by the caller).
fn ps_action(ps: String, action: &str, reason: String, actor: String) -> Option<(&'static str, DbAction)> {
    let change = move |db: &Db, change: AccountChange<'_>| {
        practices::apply(db, &ps, change, &actor)
            .map(drop)
            .map_err(|e| match e {
                PracticeError::NotFound(what) => OperateError::NotFound(format!("no practice {what}")),
                PracticeError::State(e) => OperateError::State(e),
                other => OperateError::NotFound(other.to_string()),
            })
    };
    Some(match action {
        "suspend" => (
            "suspended",
            Box::new(move |_, db| {
                let reason = required(&reason, "ps suspend")?;
                change(db, AccountChange::Suspend { reason: &reason })
            }),
        ),
        "resume" => (
            "resumed",
            Box::new(move |_, db| change(db, AccountChange::Resume)),
        ),
        "remove" => (
            "removed",
            Box::new(move |_, db| {
                let reason = required(&reason, "ps remove")?;
                change(db, AccountChange::Remove { reason: &reason })
            }),
        ),
        _ => return None,
    })
}

/// The reason of an action that needs one, on one line; refused when empty (the browser's
/// `required` is not a check).
fn required(reason: &str, action: &'static str) -> Result<String, OperateError> {
    let reason = operate::one_line(reason);
    if reason.is_empty() {
        return Err(OperateError::NoReason(action));
    }
    Ok(reason)
}

/// `POST /{queue|quarantine|ps}/{key}/{action}`: the CSRF check first, then the action, logged
/// with who did it; back to the item's page. `key` is the row's id, or a PS number.
pub(crate) async fn act(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path((area, key, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(page) = check_csrf(&authed, &form.csrf) {
        return page;
    }
    let id = key.parse::<i64>().ok();
    if let (("quarantine", Some(id)), "retry") = ((area.as_str(), id), action.as_str()) {
        return quarantine_retry(&app, &authed, id).await;
    }
    let (area, found) = match (area.as_str(), id) {
        ("queue", Some(id)) => ("queue", queue_action(id, &action, form.reason)),
        ("quarantine", Some(id)) => ("quarantine", quarantine_action(id, &action, form.reason)),
        ("ps", _) if super::pages::valid_ps_number(&key) => {
            let actor = authed.session.user.clone();
            ("ps", ps_action(key.clone(), &action, form.reason, actor))
        }
        _ => ("", None),
    };
    let Some((done, run)) = found else {
        return error_page(StatusCode::NOT_FOUND, Some(&authed.session), "no such action");
    };
    match with_db(&app, &authed.session, run).await {
        Ok(()) => acted(&authed, area, &key, done),
        Err(page) => page,
    }
}

/// After an action: logged with who did it, back to the item's page.
fn acted(authed: &Authed, area: &str, key: &str, done: &str) -> Response {
    tracing::info!(user = %authed.session.user, area, key = %key, action = done, "console action");
    Redirect::to(&format!("/{area}/{key}?done={done}")).into_response()
}

/// `POST /queue/flush`: every pending message due now.
pub(crate) async fn queue_flush_all(
    State(app): State<Arc<App>>,
    authed: Authed,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(page) = check_csrf(&authed, &form.csrf) {
        return page;
    }
    match with_db(&app, &authed.session, |_, db| {
        Ok(db.queue_flush(None, now_secs())?)
    })
    .await
    {
        Ok(n) => {
            tracing::info!(user = %authed.session.user, messages = n, "console: queue flush");
            Redirect::to("/queue?done=flushed").into_response()
        }
        Err(r) => r,
    }
}

/// Reloads the configuration file the service was started from, off the async threads;
/// `None` when it was not started from a file.
async fn reload_now(app: &Arc<App>) -> Result<Option<Reloaded>, ReloadError> {
    let service = app.service.clone();
    match tokio::task::spawn_blocking(move || service.reload()).await {
        Ok(Some(result)) => result.map(Some),
        Ok(None) => Ok(None),
        // The reload panicked: the running configuration is whatever it was.
        Err(_) => Err(ReloadError::Load(crate::service::ServiceError::Thread(
            "the reload stopped unexpectedly".into(),
        ))),
    }
}

/// The page of a refused reload: the findings of the file (or why it could not be loaded),
/// and what was not done (`consequence`).
fn refused_page(authed: &Authed, title: &str, e: &ReloadError, consequence: &str) -> Response {
    let findings = match e {
        ReloadError::Invalid { findings, .. } => findings.clone(),
        ReloadError::Load(e) => vec![e.to_string()],
    };
    respond(
        StatusCode::UNPROCESSABLE_ENTITY,
        layout(
            title,
            Some(&authed.session),
            html! {
                p class="err" id="refused" { (e) ": " (consequence) }
                ul id="findings" { @for f in &findings { li { (f) } } }
                p { "Mend the file (" code { "svoct oct check" } " says the same), then try again." }
            },
        ),
    )
}

/// The console's Retry, as `svoct oct quarantine retry`: the entry must be waiting; the file
/// is reloaded (refused with its findings, and nothing marked, when it has errors); only
/// then is the entry marked. A worker reads the configuration in force after it took a marked
/// entry (`Rules::Live`), and the reload swapped it in before the mark: the retry cannot be
/// processed under the configuration of before.
async fn quarantine_retry(app: &Arc<App>, authed: &Authed, id: i64) -> Response {
    let waiting = with_db(app, &authed.session, move |_, db| {
        match db.quarantine_get(id)? {
            Some(q) if q.row.state == "held" => Ok(()),
            _ => Err(OperateError::NotFound(format!(
                "no quarantined message #{id} waiting (see the quarantine)"
            ))),
        }
    })
    .await;
    if let Err(page) = waiting {
        return page;
    }
    let user = &authed.session.user;
    let generation = match reload_now(app).await {
        Ok(reloaded) => reloaded.map(|r| r.generation),
        Err(e) => {
            tracing::warn!(%user, quarantine_id = id, error = %e, "console: quarantine retry refused: the configuration file has errors, nothing marked");
            return refused_page(
                authed,
                "Not retried",
                &e,
                &format!("#{id} is not marked (it would be refused again)"),
            );
        }
    };
    if let Some(generation) = generation {
        tracing::info!(%user, quarantine_id = id, generation, "console: configuration reloaded before a retry");
    }
    with_db(app, &authed.session, move |_, db| {
        operate::quarantine_retry(db, id)
    })
    .await
    .map_or_else(
        |page| page,
        |()| acted(authed, "quarantine", &id.to_string(), "retry"),
    )
}

/// `POST /reload`: the overview's "Reload configuration", as `svoct oct reload`, once the
/// form's CSRF token is the session's.
pub(crate) async fn reload(
    State(app): State<Arc<App>>,
    authed: Authed,
    Form(form): Form<ActionForm>,
) -> Response {
    match check_csrf(&authed, &form.csrf) {
        Some(refused) => refused,
        None => reload_and_say(&app, &authed).await,
    }
}

/// Reloads (logged with who asked); the page says what is in force now, or the findings of a
/// refused file.
async fn reload_and_say(app: &Arc<App>, authed: &Authed) -> Response {
    let user = &authed.session.user;
    tracing::info!(%user, "console: configuration reload requested");
    let reloaded = match reload_now(app).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                StatusCode::CONFLICT,
                Some(&authed.session),
                "this service was not started from a configuration file: nothing to reload",
            );
        }
        Err(e) => {
            tracing::warn!(%user, error = %e, "console: configuration reload refused");
            return refused_page(
                authed,
                "Configuration not reloaded",
                &e,
                "the running configuration is kept",
            );
        }
    };
    tracing::info!(%user, generation = reloaded.generation, "console: configuration reloaded");
    respond(
        StatusCode::OK,
        layout(
            "Configuration reloaded",
            Some(&authed.session),
            html! {
                p class="msg" id="reloaded" { "Reloaded (reload " (reloaded.generation) "): " (reloaded.summary) "." }
                @if !reloaded.needs_restart.is_empty() {
                    p class="err" id="needs-restart" {
                        "Changed, but kept at their running values until a restart: "
                        (reloaded.needs_restart.join(", "))
                    }
                }
                p { a href="/" { "Back to the overview" } }
            },
        ),
    )
}
