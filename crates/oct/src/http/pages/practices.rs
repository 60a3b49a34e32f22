//! `/ps`: the practices (`svoct oct ps list`), filtered and capped, with the forms that add one
//! (`ps add`) and import a CSV text (`ps import [--update]`). The forms are handled here, by
//! the same library functions as the CLI ([`practices::add`], [`practices::import`]), with the
//! console user as the audit trail's actor; a refusal shows the page again with the library's
//! problems and what was typed.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Form;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Authed, check_csrf, csrf_field, error_page, layout, respond, when, with_db};
use crate::config::{Config, Sender};
use crate::http::App;
use crate::http::auth::Session;
use crate::practices::{self, PracticeError};
use crate::state::{ImportOutcome, PracticeRecord, PracticeState, PracticeStore};

/// Rows shown at most; the others are counted ("…and N more"), never dropped silently.
const SHOWN: usize = 200;
/// The largest CSV text an import takes.
pub(crate) const IMPORT_MAX: usize = 8 << 20;
/// The largest import request: the CSV is URL-encoded by the browser (up to three bytes per
/// byte), plus the other fields.
pub(crate) const IMPORT_BODY_MAX: usize = 3 * IMPORT_MAX + (64 << 10);
/// The largest file upload request: the file as is, plus the other parts.
pub(crate) const UPLOAD_BODY_MAX: usize = IMPORT_MAX + (64 << 10);

/// The list's filter (`GET /ps?state=suspended&q=TEXT`); `ps_number` pre-fills the add form
/// (the link of an unregistered PS's page).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    ps_number: String,
}

impl Filter {
    fn suspended_only(&self) -> bool {
        self.state == "suspended"
    }

    /// Whether `p` passes: the state, then the text in its address or numbers (any case).
    fn matches(&self, p: &PracticeRecord) -> bool {
        if self.suspended_only() && p.state != PracticeState::Suspended {
            return false;
        }
        let q = self.q.trim().to_lowercase();
        q.is_empty()
            || [&p.fields.address, &p.fields.ps_number, &p.fields.sender_number]
                .iter()
                .any(|v| v.to_lowercase().contains(&q))
    }
}

/// The rows `filter` selects, at most `cap`, and how many it selects in all.
fn select<'a>(rows: &'a [PracticeRecord], filter: &Filter, cap: usize) -> (Vec<&'a PracticeRecord>, usize) {
    let mut total = 0;
    let mut shown = Vec::new();
    for p in rows.iter().filter(|p| filter.matches(p)) {
        total += 1;
        if shown.len() < cap {
            shown.push(p);
        }
    }
    (shown, total)
}

/// The add form's fields (`svoct oct ps add`), kept to show them again after a refusal.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    sender_number: String,
    #[serde(default)]
    ps_number: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    mailbox: String,
    #[serde(default)]
    certificate: String,
}

impl AddForm {
    /// The practice the form describes, as `ps add` builds it from its options (an empty
    /// category is `ps add`'s default; an empty mailbox or certificate is none).
    fn sender(&self, base: &std::path::Path) -> Sender {
        let some = |v: &str| Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        Sender {
            address: self.address.clone(),
            sender_number: self.sender_number.clone(),
            ps_number: self.ps_number.clone(),
            category: some(&self.category).unwrap_or_else(|| "XX".to_owned()),
            mailbox: some(&self.mailbox),
            // The service's working directory means nothing to the operator: a relative path
            // is taken from the state database's directory, as for an import.
            certificate: some(&self.certificate).map(|c| base.join(c)),
        }
    }
}

/// The import form: the CSV text and `--update`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
    #[serde(default)]
    update: Option<String>,
}

/// What a form POST shows on the page.
#[derive(Default)]
struct Outcome<'a> {
    add: Option<&'a AddForm>,
    add_problems: Vec<String>,
    import_text: Option<&'a str>,
    import_problems: Vec<String>,
    imported: Option<ImportOutcome>,
}

/// Where relative certificate paths are taken from: the state database's directory (the
/// service's own working directory is nobody's reference).
fn base_dir(config: &Config) -> PathBuf {
    config.paths.state.parent().map(PathBuf::from).unwrap_or_default()
}

/// Every practice, by id.
async fn load(app: &App, s: &Session) -> Result<Vec<PracticeRecord>, Response> {
    with_db(app, s, |_, db| Ok(db.practice_list()?)).await
}

/// `GET /ps`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    authed: Authed,
    Query(filter): Query<Filter>,
) -> Response {
    let s = &authed.session;
    match load(&app, s).await {
        Ok(rows) => respond(StatusCode::OK, render(s, &rows, &filter, Outcome::default())),
        Err(r) => r,
    }
}

/// `POST /ps/add`: [`practices::add`] as the console user; to the practice's page when
/// added, else this page again with the problems and what was typed.
pub(crate) async fn add(State(app): State<Arc<App>>, authed: Authed, Form(form): Form<AddForm>) -> Response {
    if let Some(page) = check_csrf(&authed, &form.csrf) {
        return page;
    }
    let s = &authed.session;
    let actor = s.user.clone();
    let form = Arc::new(form);
    let f = form.clone();
    let done = with_db(&app, s, move |config, db| {
        Ok(practices::add(db, &f.sender(&base_dir(config)), &actor))
    })
    .await;
    let problems = match done {
        Err(page) => return page,
        Ok(Ok(p)) => {
            tracing::info!(user = %s.user, id = p.id, address = %p.fields.address, "console: practice added");
            return Redirect::to(&format!("/ps/{}?done=added", p.fields.ps_number)).into_response();
        }
        Ok(Err(PracticeError::Invalid(problems))) => problems,
        Ok(Err(e)) => vec![e.to_string()],
    };
    tracing::info!(user = %s.user, problems = %problems.join("; "), "console: practice refused");
    let outcome = Outcome {
        add: Some(&form),
        add_problems: problems,
        ..Outcome::default()
    };
    page_after_post(&app, s, outcome).await
}

/// `POST /ps/import`: [`practices::import`] (all or nothing) as the console user; the page
/// shows the counts, or every bad line with its number (and the text, to correct it).
pub(crate) async fn import(
    State(app): State<Arc<App>>,
    authed: Authed,
    form: Result<Form<ImportForm>, FormRejection>,
) -> Response {
    let s = &authed.session;
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return too_large(s),
        Err(e) => return error_page(StatusCode::BAD_REQUEST, Some(s), &e.body_text()),
    };
    import_csv(app, authed, form).await
}

/// `POST /ps/upload`: the same import, the CSV sent as a file (`multipart/form-data`): what an
/// operator holding the practices' spreadsheet export does. Bounded like the text: the route's
/// body limit stops a larger upload while it is read.
pub(crate) async fn upload(
    State(app): State<Arc<App>>,
    authed: Authed,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let s = &authed.session;
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, Some(s), &e.body_text()),
    };
    let mut form = ImportForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return upload_error(s, &e),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return upload_error(s, &e),
        };
        match name.as_str() {
            "csrf" => form.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "update" => form.update = Some(String::new()),
            "file" => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => form.csv = text,
                // The CLI refuses the same way: an encoding guessed wrong would register wrong
                // addresses.
                Err(_) => {
                    return error_page(
                        StatusCode::BAD_REQUEST,
                        Some(s),
                        "the file is not UTF-8 text: export it as \"CSV UTF-8\"",
                    );
                }
            },
            _ => {}
        }
    }
    import_csv(app, authed, form).await
}

fn upload_error(s: &Session, e: &MultipartError) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(s);
    }
    error_page(StatusCode::BAD_REQUEST, Some(s), &e.body_text())
}

/// The import of `form` (text or file) as the console user, after its CSRF check.
async fn import_csv(app: Arc<App>, authed: Authed, form: ImportForm) -> Response {
    let s = &authed.session;
    if let Some(page) = check_csrf(&authed, &form.csrf) {
        return page;
    }
    if form.csv.len() > IMPORT_MAX {
        return too_large(s);
    }
    let (actor, update) = (s.user.clone(), form.update.is_some());
    let form = Arc::new(form);
    let f = form.clone();
    let done = with_db(&app, s, move |config, db| {
        Ok(practices::import(db, &f.csv, &base_dir(config), update, &actor))
    })
    .await;
    let mut outcome = Outcome::default();
    match done {
        Err(page) => return page,
        Ok(Ok(o)) => {
            tracing::info!(user = %s.user, added = o.added, updated = o.updated, unchanged = o.unchanged, kept = o.kept, update, "console: practices imported");
            outcome.imported = Some(o);
        }
        Ok(Err(e)) => {
            outcome.import_problems = match e {
                PracticeError::Csv(lines) => lines.iter().map(ToString::to_string).collect(),
                other => vec![other.to_string()],
            };
            tracing::info!(user = %s.user, bad = outcome.import_problems.len(), "console: practices import refused");
            outcome.import_text = Some(&form.csv);
        }
    }
    page_after_post(&app, s, outcome).await
}

fn too_large(s: &Session) -> Response {
    error_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        Some(s),
        &format!(
            "the CSV text is larger than {} MiB: split it, or use svoct oct ps import FILE",
            IMPORT_MAX >> 20
        ),
    )
}

/// The page after a form POST: the whole list, with the form's outcome.
async fn page_after_post(app: &App, s: &Session, outcome: Outcome<'_>) -> Response {
    let refused = !outcome.add_problems.is_empty() || !outcome.import_problems.is_empty();
    let status = if refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match load(app, s).await {
        Ok(rows) => respond(status, render(s, &rows, &Filter::default(), outcome)),
        Err(r) => r,
    }
}

fn render(s: &Session, rows: &[PracticeRecord], filter: &Filter, outcome: Outcome<'_>) -> Markup {
    let (shown, total) = select(rows, filter, SHOWN);
    let body = html! {
        @if let Some(o) = &outcome.imported {
            p class="msg" id="imported" { "Imported: " (o.added) " added, " (o.updated) " updated, " (o.unchanged) " unchanged, " (o.kept) " kept as they are (registered and different: tick \"update existing\" to change them). A running service applies them from its next poll." }
        }
        (filter_form(filter))
        @if shown.is_empty() { p id="practices-none" { "No practice matches." } }
        @else {
            table id="practices" {
                tr { th { "address" } th { "PS number" } th { "sender number" } th { "category" } th { "state" } th { "last change" } }
                @for p in &shown {
                    tr id=(format!("p-{}", p.id)) {
                        td { a href=(format!("/ps/{}", p.fields.ps_number)) { (p.fields.address) } }
                        td { (p.fields.ps_number) } td { (p.fields.sender_number) } td { (p.fields.category) }
                        td { (p.state.as_str()) @if let Some(r) = &p.state_reason { " (" (r) ")" } }
                        td { (when(p.updated_at)) }
                    }
                }
            }
        }
        @if total > shown.len() { p id="more" { "…and " (total - shown.len()) " more: narrow the search." } }
        (add_form(s, outcome.add, &outcome.add_problems, &filter.ps_number))
        (import_form(s, outcome.import_text, &outcome.import_problems))
    };
    layout("Practices", Some(s), body)
}

fn filter_form(filter: &Filter) -> Markup {
    html! {
        form method="get" action="/ps" id="filter" {
            label { "Show " select name="state" id="state" {
                option value="all" selected[!filter.suspended_only()] { "all" }
                option value="suspended" selected[filter.suspended_only()] { "suspended" }
            } }
            " "
            input type="search" name="q" id="ps-q" value=(filter.q) placeholder="address, PS or sender number" size="32";
            button type="submit" id="ps-search" { "Filter" }
        }
    }
}

fn add_form(s: &Session, typed: Option<&AddForm>, problems: &[String], ps_number: &str) -> Markup {
    let empty = AddForm::default();
    let f = typed.unwrap_or(&empty);
    let ps = if typed.is_some() {
        f.ps_number.as_str()
    } else {
        ps_number
    };
    let category = if typed.is_some() {
        f.category.as_str()
    } else {
        "XX"
    };
    let field = |name: &str, label: &str, value: &str, required: bool| {
        html! { tr { th { label for=(format!("add-{name}")) { (label) } } td { input type="text" name=(name) id=(format!("add-{name}")) value=(value) required[required] size="40"; } } }
    };
    html! {
        h2 id="add" { "Add a practice" }
        @if !problems.is_empty() {
            div class="err" id="add-problems" { "Not added:" ul { @for p in problems { li { (p) } } } }
        }
        form method="post" action="/ps/add" {
            (csrf_field(s))
            table {
                (field("address", "address (From of its messages)", &f.address, true))
                (field("sender_number", "sender number", &f.sender_number, true))
                (field("ps_number", "PS number", ps, true))
                (field("category", "category (ART)", category, false))
                (field("mailbox", "mailbox (default: the address)", &f.mailbox, false))
                (field("certificate", "certificate file (returns encrypted)", &f.certificate, false))
            }
            button type="submit" id="add-practice" { "Add" }
        }
    }
}

fn import_form(s: &Session, text: Option<&str>, problems: &[String]) -> Markup {
    html! {
        h2 id="import" { "Import a CSV" }
        p { "Header " code { "address,sender_number,ps_number,category,mailbox,certificate" } ", as " code { "svoct oct ps import" } ": every line is checked first; one bad line and nothing is imported. At most " (IMPORT_MAX >> 20) " MiB (larger: the CLI)." }
        @if !problems.is_empty() {
            div class="err" id="import-problems" { "Nothing imported:" ul { @for p in problems { li { (p) } } } }
        }
        form method="post" action="/ps/import" {
            (csrf_field(s))
            textarea name="csv" id="csv" rows="8" cols="100" required { (text.unwrap_or_default()) }
            br;
            label { input type="checkbox" name="update" id="update" value="1"; " update existing (change the registered addresses to what the text says)" }
            " "
            button type="submit" id="import-csv" { "Import" }
        }
        form method="post" action="/ps/upload" enctype="multipart/form-data" {
            (csrf_field(s))
            "Or a file: "
            input type="file" name="file" id="csv-file" accept=".csv,text/csv" required;
            " "
            label { input type="checkbox" name="update" id="upload-update" value="1"; " update existing" }
            " "
            button type="submit" id="upload-csv" { "Import the file" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PracticeFields;

    fn record(id: i64, address: &str, ps: &str, sender: &str, state: PracticeState) -> PracticeRecord {
        PracticeRecord {
            id,
            fields: PracticeFields {
                address: address.into(),
                sender_number: sender.into(),
                ps_number: ps.into(),
                category: "XX".into(),
                mailbox: None,
                certificate: None,
            },
            state,
            state_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn rows() -> Vec<PracticeRecord> {
        vec![
            record(1, "Dr.Martin@ps.example", "111", "9001", PracticeState::Active),
            record(2, "dr.durand@ps.example", "222", "9002", PracticeState::Suspended),
            record(3, "cabinet@other.example", "333", "7111", PracticeState::Active),
        ]
    }

    fn ids(sel: &[&PracticeRecord]) -> Vec<i64> {
        sel.iter().map(|p| p.id).collect()
    }

    #[test]
    fn the_filter_selects_by_state_and_text_in_address_or_numbers() {
        let rows = rows();
        let f = |state: &str, q: &str| Filter {
            state: state.into(),
            q: q.into(),
            ps_number: String::new(),
        };
        assert_eq!(ids(&select(&rows, &f("", ""), 10).0), [1, 2, 3]);
        assert_eq!(ids(&select(&rows, &f("suspended", ""), 10).0), [2]);
        assert_eq!(ids(&select(&rows, &f("all", "martin"), 10).0), [1], "any case");
        assert_eq!(ids(&select(&rows, &f("all", " 333 "), 10).0), [3], "PS number");
        assert_eq!(
            ids(&select(&rows, &f("all", "111"), 10).0),
            [1, 3],
            "PS or sender number"
        );
        assert_eq!(
            ids(&select(&rows, &f("suspended", "martin"), 10).0),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn the_cap_counts_what_it_does_not_show() {
        let rows = rows();
        let (shown, total) = select(&rows, &Filter::default(), 2);
        assert_eq!((ids(&shown), total), (vec![1, 2], 3));
    }

    #[test]
    fn the_add_form_is_ps_add_s_options() {
        let form = AddForm {
            address: "a@b.example".into(),
            sender_number: "1".into(),
            ps_number: "2".into(),
            category: " ".into(),
            mailbox: "".into(),
            certificate: "certs/ps.pem".into(),
            ..AddForm::default()
        };
        let s = form.sender(std::path::Path::new("/var/lib/svoct"));
        assert_eq!(s.category, "XX", "ps add's default");
        assert_eq!(s.mailbox, None);
        assert_eq!(s.certificate, Some(PathBuf::from("/var/lib/svoct/certs/ps.pem")));
        let absolute = AddForm {
            certificate: "/etc/ps.pem".into(),
            ..AddForm::default()
        };
        assert_eq!(
            absolute.sender(std::path::Path::new("/var")).certificate,
            Some(PathBuf::from("/etc/ps.pem"))
        );
    }
}
