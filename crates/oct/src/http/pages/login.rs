//! `/login` and `/logout`.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{Authed, COOKIE, check_csrf, error_page, layout, respond};
use crate::http::App;

fn login_page(status: StatusCode, refused: bool) -> Response {
    respond(
        status,
        layout(
            "Log in",
            None,
            html! {
                @if refused { p class="err" id="refused" { "Wrong user name or password." } }
                form method="post" action="/login" {
                    p { label { "User " input type="text" name="user" id="user" autocomplete="username" required; } }
                    p { label { "Password " input type="password" name="password" id="password" autocomplete="current-password" required; } }
                    p { button type="submit" id="login" { "Log in" } }
                }
            },
        ),
    )
}

/// `GET /login`.
pub(crate) async fn form(State(app): State<Arc<App>>) -> Response {
    if app.users.is_none() {
        return error_page(
            StatusCode::NOT_FOUND,
            None,
            "the console is off: set [http] users_file",
        );
    }
    login_page(StatusCode::OK, false)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
}

/// `POST /login`: a session cookie and the overview, or the form again.
pub(crate) async fn submit(State(app): State<Arc<App>>, Form(login): Form<LoginForm>) -> Response {
    let Some(users) = app.users.clone() else {
        return error_page(
            StatusCode::NOT_FOUND,
            None,
            "the console is off: set [http] users_file",
        );
    };
    let user = login.user.clone();
    let password = svoct_mail::secret::Secret::new(login.password.into_bytes());
    // PBKDF2 takes a while by design: off the async threads, a few at a time.
    let Ok(_permit) = app.logins.acquire().await else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, None, "shutting down");
    };
    let checked = tokio::task::spawn_blocking(move || {
        crate::http::auth::Users::load(&users).map(|u| u.verify(&user, password.expose()))
    })
    .await;
    let ok = match checked {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console login: the users file is unusable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the console's users file is unusable: see the service log",
            );
        }
        Err(_) => false,
    };
    // The name is logged only when it is a valid one (a password typed in the name field
    // would otherwise land in the log).
    let shown = if crate::http::auth::valid_name(&login.user) {
        login.user.as_str()
    } else {
        "(invalid name)"
    };
    if !ok {
        tracing::warn!(user = shown, "console login refused");
        return login_page(StatusCode::UNAUTHORIZED, true);
    }
    let token = match app.sessions.open(&login.user) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "console: no session token");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error");
        }
    };
    tracing::info!(user = shown, "console login");
    let secure = if app.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    authed: Authed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(page) = check_csrf(&authed, &form.csrf) {
        return page;
    }
    app.sessions.close(&authed.token);
    tracing::info!(user = %authed.session.user, "console logout");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("svoct_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}
