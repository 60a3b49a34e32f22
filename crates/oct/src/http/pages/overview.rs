//! `/`: the flow per hour over the last 24 hours, the queue per destination, the oldest
//! message still waiting, the quarantine by reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::{Authed, layout, respond, when, with_db};
use crate::http::App;
use crate::operate::age;
use crate::operate::destination;
use crate::state::{ConsoleQueries, HourFlow, OctStore, QueueRow, now_secs};

struct Overview {
    flow: Vec<HourFlow>,
    queue: BTreeMap<String, (u64, i64)>,
    oldest: Option<QueueRow>,
    quarantine: BTreeMap<String, u64>,
    now: i64,
}

/// `GET /`.
pub(crate) async fn page(State(app): State<Arc<App>>, authed: Authed) -> Response {
    let data = with_db(&app, &authed.session, |config, db| {
        let now = now_secs();
        let since = (now - 23 * 3600) / 3600 * 3600;
        let rows = crate::operate::queue_list(config, db)?;
        let mut queue: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for r in &rows {
            let e = queue.entry(destination(config, &r.row.rcpt)).or_insert((0, now));
            e.0 += 1;
            e.1 = e.1.min(r.created_at);
        }
        let mut quarantine = BTreeMap::new();
        for q in db.quarantine_list(false)? {
            *quarantine.entry(q.code).or_insert(0u64) += 1;
        }
        Ok(Overview {
            flow: db.flow_per_hour(since)?,
            oldest: rows.into_iter().min_by_key(|r| r.created_at),
            queue,
            quarantine,
            now,
        })
    })
    .await;
    let o = match data {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = html! {
        (render(&o))
        h2 { "Configuration" }
        // As `svoct oct reload`: the file the service was started from, validated first.
        (super::action_form(&authed.session, "", "reload", "Reload configuration", None))
    };
    respond(StatusCode::OK, layout("Overview", Some(&authed.session), body))
}

/// `13h` for the hour starting at `secs` (UTC).
fn hour_label(secs: i64) -> String {
    format!("{:02}h", secs.rem_euclid(86_400) / 3600)
}

fn render(o: &Overview) -> maud::Markup {
    let first = (o.now - 23 * 3600) / 3600 * 3600;
    let hours: Vec<HourFlow> = (0..24)
        .map(|i| {
            let hour = first + i * 3600;
            o.flow
                .iter()
                .find(|f| f.hour == hour)
                .cloned()
                .unwrap_or(HourFlow {
                    hour,
                    ..HourFlow::default()
                })
        })
        .collect();
    let top = hours
        .iter()
        .map(|h| h.processed + h.quarantined)
        .max()
        .unwrap_or(0)
        .max(1);
    // Bars 80 px high at most: the day fits on one line.
    let height = |n: u64| n * 80 / top;
    let total: (u64, u64) = hours
        .iter()
        .fold((0, 0), |(p, q), h| (p + h.processed, q + h.quarantined));
    html! {
        h2 { "Messages per hour (last 24 h, UTC)" }
        p { (total.0) " processed, " (total.1) " quarantined; blue: processed, red: quarantined." }
        table id="flow" class="flow" {
            tr {
                @for h in &hours {
                    td title=(format!("{}: {} processed, {} quarantined", when(h.hour), h.processed, h.quarantined)) {
                        span class="vbar q" style=(format!("height:{}px", height(h.quarantined))) {}
                        span class="vbar" style=(format!("height:{}px", height(h.processed))) {}
                    }
                }
            }
            tr { @for h in &hours { th { (hour_label(h.hour)) } } }
            tr { @for h in &hours { td { (h.processed + h.quarantined) } } }
        }
        h2 { "Queue per destination" }
        @if o.queue.is_empty() { p id="queue-empty" { "Nothing waits." } }
        @else {
            table id="queue-summary" {
                tr { th { "destination" } th { "messages" } th { "oldest" } }
                @for (d, (n, oldest)) in &o.queue {
                    tr { td { (d) } td { (n) } td { (age(o.now - oldest)) } }
                }
            }
        }
        h2 { "Oldest message waiting" }
        @match &o.oldest {
            Some(r) => p id="oldest" {
                a href=(format!("/queue/{}", r.row.id)) { "#" (r.row.id) }
                " " (r.row.kind) " [" (r.row.state) "], waiting for " (age(o.now - r.created_at))
                @if let Some(e) = &r.row.last_error { ": " (crate::operate::one_line(e)) }
            },
            None => p { "None." },
        }
        h2 { "Quarantine by reason" }
        @if o.quarantine.is_empty() { p { "Empty." } }
        @else {
            table id="quarantine-summary" {
                tr { th { "reason" } th { "messages" } }
                @for (code, n) in &o.quarantine {
                    tr { td { a href="/quarantine" { (code) } } td { (n) } }
                }
            }
        }
    }
}
