//! The pages: what an HR clerk, a manager, a staff member and an auditor open in a browser on
//! a closed network (LGWAN). Server-rendered HTML in Japanese, written with maud (the markup is
//! Rust, checked when the binary is compiled, and every value is escaped unless marked
//! otherwise). One stylesheet, embedded in the binary; no script at all; nothing is fetched
//! from another host. Every command goes through the application layer and its policy, as
//! the API's do.

pub mod dashboard;
pub mod imports;
pub mod layout;
pub mod plans;
pub mod session;
pub mod sessions;
pub mod sheet;
pub mod staff;
pub mod staff_forms;

use crate::application::policy::Action;
use crate::application::{AppError, Service};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::storage::tokens::{self, Principal, Role};
use crate::storage::StorageError;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use layout::{page, Page};
use maud::html;
use serde::Deserialize;
use session::{cookie, same_secret, set_cookie, Throttle, COOKIE, LOGIN_COOKIE};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What pages tell the browser: only this server's stylesheet and images, no script, no
/// framing, forms only to this server.
pub const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/static/kiroku.css", get(stylesheet))
        .merge(dashboard::routes())
        .merge(sheet::routes())
        .merge(plans::routes())
        .merge(staff_forms::routes())
        .merge(staff::routes())
        .merge(sessions::routes())
        .merge(imports::routes())
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        layout::STYLE,
    )
        .into_response()
}

/// A signed-in person looking at a page.
pub struct Viewer {
    pub principal: Principal,
    /// The log's head read with the session's token.
    pub head: i64,
    pub csrf: String,
    pub session_id: String,
}

impl Viewer {
    pub fn service<'a>(&self, state: &'a AppState) -> Service<'a> {
        Service::new(&state.ledger)
    }

    /// Whether the policy lets this viewer do `action`.
    pub fn may(&self, state: &AppState, action: Action) -> bool {
        self.service(state)
            .allows(&self.principal, action)
            .unwrap_or(false)
    }

    /// A 403 page unless the policy lets this viewer do `action`.
    pub fn require(&self, state: &AppState, action: Action) -> Result<(), PageError> {
        if self.may(state, action) {
            Ok(())
        } else {
            Err(PageError::Forbidden)
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if same_secret(token, &self.csrf) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    pub fn role_label(&self) -> &'static str {
        role_label(self.principal.role)
    }
}

pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::HrAdmin => "人事担当",
        Role::Manager => "所属長",
        Role::Staff => "職員",
        Role::Auditor => "監査",
    }
}

/// Pages answer a missing session with the sign-in page, not with a 401 body.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| cookie(h, COOKIE))
            .map(str::to_string)
            .ok_or_else(|| SignInFirst.into_response())?;
        let session = state
            .sessions
            .get(&id)
            .ok_or_else(|| SignInFirst.into_response())?;
        // A revoked token ends its sessions at once.
        let head = match tokens::authenticate_at_head(&state.ledger.backend, &session.token_digest)
            .await
        {
            Ok(Some((_, head))) => head,
            Ok(None) => {
                state.sessions.end(&id);
                return Err(SignInFirst.into_response());
            }
            Err(error) => return Err(PageError::from(error).into_response()),
        };
        if let Err(error) = state.ledger.reach_head(head).await {
            return Err(PageError::from(error).into_response());
        }
        match Service::new(&state.ledger).in_service(&session.principal) {
            Ok(true) => {}
            Ok(false) => {
                state.sessions.end(&id);
                return Err(SignInFirst.into_response());
            }
            Err(error) => return Err(PageError::from(error).into_response()),
        }
        Ok(Viewer {
            principal: session.principal,
            head,
            csrf: session.csrf,
            session_id: id,
        })
    }
}

/// Why a page could not be shown. Never shows internals.
#[derive(Debug)]
pub enum PageError {
    Forbidden,
    NotFound(String),
    /// A form whose CSRF token is missing or wrong.
    Csrf,
    /// The input was refused (status and the Japanese reason).
    Refused(StatusCode, String),
    /// The database is out of reach, or commands are stopped (the Japanese reason).
    Unavailable(String),
    Internal,
}

impl PageError {
    pub fn not_found(what: impl Into<String>) -> Self {
        PageError::NotFound(what.into())
    }
}

impl From<StorageError> for PageError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(_) => PageError::from(ApiError::from(error)),
            error => {
                tracing::error!(%error, "page failed");
                PageError::Internal
            }
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error.status {
            StatusCode::FORBIDDEN => PageError::Forbidden,
            StatusCode::NOT_FOUND => PageError::NotFound(error.detail),
            StatusCode::SERVICE_UNAVAILABLE => PageError::Unavailable(error.detail),
            status if status.is_client_error() => PageError::Refused(status, error.detail),
            _ => PageError::Internal,
        }
    }
}

impl From<AppError> for PageError {
    fn from(error: AppError) -> Self {
        PageError::from(ApiError::from(error))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "このページは表示できません",
                "あなたの役割では、このページを表示したりこの操作を行ったりすることはできません。".to_string(),
            ),
            PageError::NotFound(detail) => (
                StatusCode::NOT_FOUND,
                "ページが見つかりません",
                if detail.is_empty() {
                    "お探しのページはありません。アドレスをご確認ください。".to_string()
                } else {
                    detail
                },
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "送信を受け付けられませんでした",
                "フォームの有効期限が切れたか、別の画面から送信されました。何も記録していません。画面を開き直してからもう一度送信してください。".to_string(),
            ),
            PageError::Refused(status, detail) => (status, "入力内容を受け付けられませんでした", detail),
            PageError::Unavailable(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま記録を受け付けられません",
                format!("{detail}。"),
            ),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "処理を完了できませんでした",
                "サーバーで問題が発生しました。画面で記録済みと示されたもの以外は何も記録されていません。問題が続く場合はシステム管理者に連絡してください。".to_string(),
            ),
        };
        let body = page(
            Page::bare(title),
            html! {
                section.problem {
                    h1 { (title) }
                    p { (detail) }
                    p { a href="/" { "トップへ戻る" } }
                }
            },
        );
        let mut response = (status, body).into_response();
        // Also when served outside the pages' router (the 404 of an unknown path).
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// The 404 page for any path that is not a page or an API endpoint.
pub async fn not_found() -> PageError {
    PageError::not_found("")
}

async fn home(viewer: Option<Viewer>) -> Response {
    match viewer {
        None => Redirect::to("/login").into_response(),
        Some(v) => match (v.principal.role, v.principal.staff_id) {
            (Role::Staff, Some(me)) => Redirect::to(&format!("/staff/{me}")).into_response(),
            _ => Redirect::to("/dashboard").into_response(),
        },
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Viewer as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

fn login_page(csrf: &str, problem: Option<&str>) -> axum::response::Html<String> {
    page(
        Page::bare("サインイン"),
        html! {
            section.signin {
                h1 { "Kiroku 記録 — サインイン" }
                p { "人事課から受け取ったアクセストークンを入力してください。サインインは" (session::IDLE.as_secs() / 60) "分間操作がないと終了します。" }
                @if let Some(problem) = problem {
                    p.error role="alert" { (problem) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="token" { "アクセストークン" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "サインイン" }
                }
            }
        },
    )
}

async fn login_form() -> Response {
    let csrf = session::random_id();
    let mut response = login_page(&csrf, None).into_response();
    set_login_cookie(&mut response, &csrf);
    response
}

fn set_login_cookie(response: &mut Response, csrf: &str) {
    if let Ok(value) = HeaderValue::from_str(&set_cookie(
        LOGIN_COOKIE,
        csrf,
        Duration::from_secs(30 * 60),
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

fn client_address(parts: &axum::http::Extensions) -> IpAddr {
    parts
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

async fn login(State(state): State<AppState>, request: axum::extract::Request) -> PageResult {
    let address = client_address(request.extensions());
    let headers: HeaderMap = request.headers().clone();
    let Form(form) = Form::<LoginForm>::from_request(request, &state)
        .await
        .map_err(|_| PageError::Refused(StatusCode::BAD_REQUEST, "フォームを読めません".into()))?;
    let expected = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| cookie(h, LOGIN_COOKIE))
        .unwrap_or("");
    if expected.is_empty() || !same_secret(&form.csrf, expected) {
        return Err(PageError::Csrf);
    }
    if let Some(wait) = state.sessions.locked(address) {
        let minutes = wait.as_secs().div_ceil(60);
        let message = format!(
            "サインインの失敗が続いたため、{minutes}分間受け付けません。トークンを確認してから、時間をおいてお試しください。"
        );
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            login_page(expected, Some(&message)),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(response);
    }
    let token = form.token.trim();
    let principal = match tokens::authenticate(&state.ledger.backend, token).await {
        Ok(principal) => principal,
        Err(error) => return Err(error.into()),
    };
    let Some(principal) = principal else {
        let message = match state.sessions.failed(address) {
            Throttle::Wait(pause) => {
                tokio::time::sleep(pause).await;
                "トークンが正しくないか、無効になっています。"
            }
            Throttle::Locked(_) => {
                "サインインの失敗が続いたため、しばらく受け付けません。時間をおいてお試しください。"
            }
        };
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_page(expected, Some(message)),
        )
            .into_response());
    };
    if let Err(error) = state.ledger.projector.catch_up().await {
        return Err(error.into());
    }
    if !Service::new(&state.ledger).in_service(&principal)? {
        let message = "このトークンの職員は在職していないため、サインインできません。";
        return Ok((
            StatusCode::UNAUTHORIZED,
            login_page(expected, Some(message)),
        )
            .into_response());
    }
    state.sessions.succeeded(address);
    let id = state.sessions.start(principal, tokens::digest(token));
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(COOKIE, &id, session::LIFETIME)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, "", Duration::ZERO)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    viewer.check_csrf(&form.csrf)?;
    state.sessions.end(&viewer.session_id);
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(COOKIE, "", Duration::ZERO)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

use axum::extract::FromRequest;

/// A form body; one that cannot be read is a Japanese page, not axum's English text.
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(value)) => Ok(PageForm(value)),
            Err(_) => Err(PageError::Refused(
                StatusCode::BAD_REQUEST,
                "送信された内容を読めません。画面を開き直してからもう一度送信してください。".into(),
            )),
        }
    }
}

/// A query string; one that cannot be read is a Japanese page.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(PageQuery(value)),
            Err(_) => Err(PageError::Refused(
                StatusCode::BAD_REQUEST,
                "アドレスの指定（? 以降）を読めません。リンクから開き直してください。".into(),
            )),
        }
    }
}
