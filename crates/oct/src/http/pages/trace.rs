//! `/trace?q=`: a message's story, found like `svoct oct trace` finds it (the same
//! [`crate::operate::trace`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Authed, layout, respond, when, with_db};
use crate::http::App;
use crate::operate::one_line;
use crate::state::MessageTrace;

/// Messages shown for one query (a PS number over months finds many).
const SHOWN: usize = 20;
/// A longer query is no key the state knows.
const MAX_QUERY: usize = 200;

#[derive(Deserialize, Default)]
pub(crate) struct TraceQuery {
    #[serde(default)]
    q: String,
}

/// `GET /trace?q=QUERY`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    authed: Authed,
    Query(q): Query<TraceQuery>,
) -> Response {
    let query = q.q.trim().to_owned();
    let s = &authed.session;
    let form = html! {
        form method="get" action="/trace" {
            input type="search" name="q" id="q" value=(query) size="40" placeholder="spool id, compostage, PS number, lot number, Message-ID";
            button type="submit" id="search" { "Trace" }
        }
    };
    if query.is_empty() || query.len() > MAX_QUERY {
        return respond(StatusCode::OK, layout("Trace", Some(s), form));
    }
    let q2 = query.clone();
    let found = match with_db(&app, s, move |config, db| {
        crate::operate::trace(config, db, &q2, SHOWN)
    })
    .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = html! {
        (form)
        @if found.messages.is_empty() {
            p id="nothing" { "Nothing found for " code { (query) } " (searched: spool id, compostage, PS number, lot number, outgoing Message-ID)." }
        }
        @for t in &found.messages { (story(t)) }
        @if found.truncated { p { "More messages match: give a narrower key (the spool id)." } }
        p { small { "Reception (client address, size, time of arrival) is not kept in the state database: grep the service log for the spool id (line \"message received\")." } }
    };
    respond(StatusCode::OK, layout("Trace", Some(s), body))
}

/// One message's story.
pub(super) fn story(t: &MessageTrace) -> Markup {
    html! {
        section class="trace" {
            h2 { "spool id " code { (t.spool_id) } }
            table {
                @match &t.processed {
                    Some(p) => {
                        tr { th { "processed" } td { (when(p.at)) " " (p.outcome) " (" (p.kind) ")" } }
                        @if let Some(r) = &p.reason { tr { th { "reason" } td { (r) } } }
                        tr { th { "from" } td { (p.mail_from) } }
                        tr { th { "subject" } td { (p.subject) } }
                    },
                    None => tr { th { "processed" } td { "no record" } },
                }
                @if let Some(c) = &t.compostage { tr { th { "compostage" } td { (c.compostage) " (sender " (c.sender_number) ")" } } }
                @for l in &t.lots {
                    tr { th { "lot " (l.lot_number) } td { "of " (l.lot_date) ", PS " a href=(format!("/ps/{}", l.ps_number)) { (l.ps_number) } ", file " (l.file_id) " → " (l.destination) } }
                }
                @if let Some(q) = &t.quarantine {
                    tr { th { "quarantine" } td { a href=(format!("/quarantine/{}", q.id)) { "#" (q.id) } " " (q.code) " (" (one_line(&q.reason)) "), " (q.state) " since " (when(q.at)) } }
                }
            }
            @if t.outbox.is_empty() { p { "Nothing produced." } }
            @else {
                table {
                    tr { th { "#" } th { "kind" } th { "to" } th { "state" } th { "attempts" } th { "queued" } th { "sent" } th { "last error" } }
                    @for o in &t.outbox {
                        tr {
                            td { a href=(format!("/queue/{}", o.id)) { (o.id) } }
                            td { (o.kind) } td { (o.rcpt) } td { (o.state) } td { (o.attempts) }
                            td { (when(o.created)) } td { (o.sent.map(when).unwrap_or_default()) }
                            td { (o.last_error.as_deref().map(one_line).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}
