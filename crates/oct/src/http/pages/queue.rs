//! `/queue` (like `svoct oct queue list`) and `/queue/{id}` (like `queue show`, with the
//! hold, release, flush and delete forms).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Authed, action_form, csrf_field, layout, respond, when, with_db};
use crate::http::App;
use crate::operate::{age, one_line};
use crate::state::{OutboxState, QueueRow, now_secs};

/// `?done=` after an action: what it did, from a fixed list (nothing from the URL is echoed).
#[derive(Deserialize, Default)]
pub(crate) struct Done {
    #[serde(default)]
    done: Option<String>,
}

pub(super) fn done_message(done: &Done) -> Option<&'static str> {
    Some(match done.done.as_deref()? {
        "held" => "Held: no sender takes it until released.",
        "released" => "Released: due now; the service sends it at its next poll.",
        "flushed" => "Due now: the service sends it at its next poll.",
        "deleted" => "Deleted: it will never be sent (a forward's PS is sent an ART).",
        "retry" => "Marked for retry: the service processes it again at its next poll.",
        "dropped" => "Dropped: its content is removed, its row kept with the reason.",
        "suspended" => "Suspended: its invoices are refused from its next message (returns still reach it).",
        "resumed" => "Resumed: its messages are taken again.",
        "removed" => {
            "Removed: its messages are now from an unknown sender (refused); its audit trail is kept."
        }
        "added" => "Added: a running service takes its messages from its next poll.",
        _ => return None,
    })
}

fn next_attempt(r: &QueueRow, now: i64) -> String {
    crate::operate::next_attempt(r, now, when)
}

fn origin(r: &QueueRow) -> Markup {
    html! {
        @if let (Some(from), Some(subject)) = (&r.origin_from, &r.origin_subject) {
            (from) " — " (subject) " "
        }
        a href=(format!("/trace?q={}", r.row.spool_id)) { "trace " (r.row.spool_id) }
    }
}

/// `GET /queue`.
pub(crate) async fn list(State(app): State<Arc<App>>, authed: Authed, Query(done): Query<Done>) -> Response {
    let rows = match with_db(&app, &authed.session, |config, db| {
        crate::operate::queue_list(config, db)
    })
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = now_secs();
    let s = &authed.session;
    let body = html! {
        @if let Some(m) = done_message(&done) { p class="msg" { (m) } }
        form method="post" action="/queue/flush" {
            (csrf_field(s))
            button type="submit" id="flush-all" { "Flush: every pending message due now" }
        }
        @if rows.is_empty() { p id="queue-empty" { "The queue is empty." } }
        @else {
            table id="queue" {
                tr { th { "#" } th { "state" } th { "kind" } th { "to" } th { "age" } th { "attempts" } th { "next attempt" } th { "last error" } th { "from" } }
                @for r in &rows {
                    tr id=(format!("row-{}", r.row.id)) {
                        td { a href=(format!("/queue/{}", r.row.id)) { (r.row.id) } }
                        td { (r.row.state) } td { (r.row.kind) } td { (r.row.rcpt) }
                        td { (age(now - r.created_at)) } td { (r.row.attempts) }
                        td { (next_attempt(r, now)) }
                        td { (r.row.last_error.as_deref().map(one_line).unwrap_or_default()) }
                        td { (origin(r)) }
                    }
                }
            }
            p { (rows.len()) " message(s) in the queue" }
        }
    };
    respond(StatusCode::OK, layout("Queue", Some(s), body))
}

/// `GET /queue/{id}`.
pub(crate) async fn item(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let r = match with_db(&app, &authed.session, move |config, db| {
        crate::operate::queue_get(config, db, id)
    })
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = now_secs();
    let s = &authed.session;
    let base = format!("/queue/{id}");
    let waiting = matches!(
        r.row.state,
        OutboxState::Pending | OutboxState::Failed | OutboxState::Held
    );
    let body = html! {
        @if let Some(m) = done_message(&done) { p class="msg" id="done" { (m) } }
        table id="item" {
            tr { th { "state" } td id="state" { (r.row.state) } }
            tr { th { "kind" } td { (r.row.kind) } }
            tr { th { "to" } td { (r.row.rcpt) } }
            tr { th { "Message-ID" } td { code { (r.row.message_id) } } }
            tr { th { "from" } td { (origin(&r)) } }
            tr { th { "queued" } td { (when(r.created_at)) " (age " (age(now - r.created_at)) ")" } }
            tr { th { "attempts" } td { (r.row.attempts) } }
            tr { th { "next attempt" } td { (next_attempt(&r, now)) } }
            tr { th { "bytes" } td { (r.bytes) } }
            @if let Some(e) = &r.row.last_error { tr { th { "last error" } td { (one_line(e)) } } }
            @if let (Some(reason), Some(at)) = (&r.abandoned_reason, r.abandoned_at) {
                tr { th { "deleted" } td { (one_line(reason)) " (" (when(at)) ")" } }
            }
        }
        @if waiting {
            p {
                @if r.row.state == OutboxState::Held { (action_form(s, &base, "release", "Release", None)) }
                @else { (action_form(s, &base, "hold", "Hold", None)) }
                @if r.row.state == OutboxState::Pending { (action_form(s, &base, "flush", "Flush (due now)", None)) }
            }
            (action_form(s, &base, "delete", "Delete", Some("Delete for good, because:")))
        }
    };
    respond(
        StatusCode::OK,
        layout(&format!("Outgoing message #{id}"), Some(s), body),
    )
}
