//! The console's actions: plain HTML form POSTs, each checked against the session's CSRF
//! token, logged with who did it, and done by the same [`crate::operate`] functions and
//! [`crate::state::OctStore`] calls as `svoct oct queue` and `svoct oct quarantine`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::App;
use super::auth::csrf_ok;
use super::pages::{Authed, error_page, with_db};
use crate::operate::{self, OperateError};
use crate::state::{OctStore, now_secs};

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn stale(authed: &Authed) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        Some(&authed.session),
        "stale form (CSRF token): reload the page and try again",
    )
}

/// `POST /queue/{id}/{hold|release|flush|delete}`.
pub(crate) async fn queue(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if !csrf_ok(&authed.session, &form.csrf) {
        return stale(&authed);
    }
    let user = authed.session.user.clone();
    let done = match action.as_str() {
        "hold" => with_db(&app, &authed.session, move |_, db| Ok(db.queue_hold(id)?))
            .await
            .map(|()| "held"),
        "release" => with_db(&app, &authed.session, move |_, db| {
            Ok(db.queue_release(id, now_secs())?)
        })
        .await
        .map(|()| "released"),
        "flush" => with_db(&app, &authed.session, move |_, db| {
            Ok(db.queue_flush(Some(id), now_secs())?)
        })
        .await
        .map(|_| "flushed"),
        "delete" => {
            let reason = form.reason;
            with_db(&app, &authed.session, move |config, db| {
                let (_, done, reason) = operate::queue_delete(config, db, id, &reason)?;
                tracing::info!(outbox_id = id, %reason, art = ?done.art, "console: queue delete");
                Ok(())
            })
            .await
            .map(|()| "deleted")
        }
        _ => return error_page(StatusCode::NOT_FOUND, Some(&authed.session), "no such action"),
    };
    match done {
        Ok(done) => {
            tracing::info!(%user, outbox_id = id, action = done, "console: queue action");
            Redirect::to(&format!("/queue/{id}?done={done}")).into_response()
        }
        Err(r) => r,
    }
}

/// `POST /queue/flush`: every pending message due now.
pub(crate) async fn queue_flush_all(
    State(app): State<Arc<App>>,
    authed: Authed,
    Form(form): Form<ActionForm>,
) -> Response {
    if !csrf_ok(&authed.session, &form.csrf) {
        return stale(&authed);
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

/// `POST /quarantine/{id}/{retry|drop}`.
pub(crate) async fn quarantine(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if !csrf_ok(&authed.session, &form.csrf) {
        return stale(&authed);
    }
    let user = authed.session.user.clone();
    let done = match action.as_str() {
        "retry" => with_db(&app, &authed.session, move |_, db| {
            operate::quarantine_retry(db, id)
        })
        .await
        .map(|()| "retry"),
        "drop" => {
            let reason = form.reason;
            with_db(&app, &authed.session, move |_, db| {
                let (dropped, reason) = operate::quarantine_drop(db, id, &reason)?;
                tracing::info!(quarantine_id = id, %reason, bytes = dropped.bytes, "console: quarantine drop");
                Ok::<_, OperateError>(())
            })
            .await
            .map(|()| "dropped")
        }
        _ => return error_page(StatusCode::NOT_FOUND, Some(&authed.session), "no such action"),
    };
    match done {
        Ok(done) => {
            tracing::info!(%user, quarantine_id = id, action = done, "console: quarantine action");
            Redirect::to(&format!("/quarantine/{id}?done={done}")).into_response()
        }
        Err(r) => r,
    }
}
