//! The console's actions: plain HTML form POSTs to `/{queue|quarantine}/{id}/{action}`, each
//! checked against the session's CSRF token, logged with who did it, and done by the same
//! [`crate::operate`] functions and [`crate::state::OctStore`] calls as `svoct oct queue` and
//! `svoct oct quarantine`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::App;
use super::pages::{Authed, check_csrf, error_page, with_db};
use crate::config::Config;
use crate::operate::{self, OperateError};
use crate::practices::{self, AccountChange, PracticeError};
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
        "retry" => ("retry", Box::new(move |_, db| operate::quarantine_retry(db, id))),
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
        Ok(()) => {
            tracing::info!(user = %authed.session.user, area, key = %key, action = done, "console action");
            Redirect::to(&format!("/{area}/{key}?done={done}")).into_response()
        }
        Err(page) => page,
    }
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
