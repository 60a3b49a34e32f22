//! `/quarantine` (like `svoct oct quarantine list`) and `/quarantine/{id}` (like
//! `quarantine show`, with the retry and drop forms).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::queue::{Done, done_message};
use super::{Authed, action_form, layout, respond, when, with_db};
use crate::http::App;
use crate::operate::{OperateError, one_line};
use crate::state::OctStore;

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    /// Include the messages already retried or dropped.
    #[serde(default)]
    all: Option<String>,
}

/// `GET /quarantine`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    authed: Authed,
    Query(q): Query<ListQuery>,
) -> Response {
    let all = q.all.is_some();
    let rows = match with_db(&app, &authed.session, move |_, db| Ok(db.quarantine_list(all)?)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = html! {
        p {
            @if all { a href="/quarantine" { "Only the messages waiting" } }
            @else { a href="/quarantine?all=1" { "Also those retried or dropped" } }
        }
        @if rows.is_empty() { p id="quarantine-empty" { "The quarantine is empty." } }
        @else {
            table id="quarantine" {
                tr { th { "#" } th { "state" } th { "reason" } th { "from" } th { "subject" } th { "since" } th { "why" } }
                @for q in &rows {
                    tr id=(format!("q-{}", q.id)) {
                        td { a href=(format!("/quarantine/{}", q.id)) { (q.id) } }
                        td { (q.state) } td class="code" { (q.code) } td { (q.mail_from) }
                        td { (q.subject) } td { (when(q.at)) } td { (one_line(&q.reason)) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Quarantine", Some(&authed.session), body))
}

/// `GET /quarantine/{id}` (`?done=` after an action).
pub(crate) async fn item(
    Query(done): Query<Done>,
    Path(id): Path<i64>,
    State(app): State<Arc<App>>,
    authed: Authed,
) -> Response {
    let found = with_db(&app, &authed.session, move |_, db| {
        let m = db
            .quarantine_get(id)?
            .ok_or_else(|| OperateError::NotFound(format!("no quarantined message #{id}")))?;
        Ok((m.row, m.summary, db.quarantine_purge_record(id)?))
    })
    .await;
    let (row, summary, purged) = match found {
        Ok(f) => f,
        Err(r) => return r,
    };
    let s = &authed.session;
    let base = format!("/quarantine/{id}");
    let body = html! {
        @if let Some(m) = done_message(&done) { p class="msg" id="done" { (m) } }
        table id="item" {
            tr { th { "state" } td id="state" { (row.state) } }
            tr { th { "reason" } td { code { (row.code) } " " (one_line(&row.reason)) } }
            tr { th { "from" } td { (row.mail_from) } }
            tr { th { "to" } td { (row.rcpt.join(", ")) } }
            tr { th { "subject" } td { (row.subject) } }
            tr { th { "spool id" } td { a href=(format!("/trace?q={}", row.spool_id)) { (row.spool_id) } } }
            tr { th { "since" } td { (when(row.at)) } }
            tr { th { "bytes" } td { (row.bytes) } }
            @if let Some(p) = &purged { tr { th { "content removed" } td { (p.cause) " at " (when(p.at)) } } }
            @if !summary.is_null() { tr { th { "summary" } td { pre { (serde_json::to_string_pretty(&summary).unwrap_or_default()) } } } }
        }
        @if row.state == "held" {
            p { (action_form(s, &base, "retry", "Retry (after fixing the cause)", None)) }
            @if purged.is_none() {
                (action_form(s, &base, "drop", "Drop", Some("Drop for good, because:")))
            }
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Quarantined message #{id}"), Some(s), body),
    )
}
