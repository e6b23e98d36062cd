//! The one API error type: every refusal becomes `application/problem+json` with a stable
//! machine `code`; database and unexpected failures become a 500 that is logged, never leaked.

use crate::ledger::CommandError;
use crate::storage::StorageError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kiroku_domain::Refusal;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Itemised problems (e.g. an import's errors by line), as `errors` in the body.
    pub errors: Option<serde_json::Value>,
    /// Seconds after which a retry may succeed (`Retry-After`), for a 503.
    pub retry_after: Option<u32>,
}

/// How long a client should wait before retrying when the database is out of reach.
pub const RETRY_AFTER_UNAVAILABLE: u32 = 5;

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The database is down, restarting, out of connections or locked by another process.
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "the database is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "台帳のデータベースに一時的に接続できません。何も記録していません。少し待ってからもう一度お試しください",
        )
        .retry_after(RETRY_AFTER_UNAVAILABLE)
    }

    /// The projector stopped at an event this version cannot read.
    pub fn stopped(stopped: &crate::projector::Stopped) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "projector_stopped",
            format!(
                "台帳の位置 {} に、この版の Kiroku では読めないイベント（{}）があります。表示は位置 {} までの内容で続けていますが、記録は受け付けられません。何も記録していません。Kiroku を更新してください",
                stopped.position,
                stopped.event_type,
                stopped.position - 1
            ),
        )
        .retry_after(300)
    }

    pub fn with_errors(mut self, errors: serde_json::Value) -> Self {
        self.errors = Some(errors);
        self
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", detail)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "有効なトークン（Authorization: Bearer …）が必要です",
        )
    }

    pub fn forbidden() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "この操作はあなたの役割では行えません",
        )
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "台帳が要求を完了できませんでした。応答で記録済みと示されたもの以外は何も記録されていません",
        )
    }

    fn title(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "入力内容に誤りがあります",
            StatusCode::UNAUTHORIZED => "認証が必要です",
            StatusCode::FORBIDDEN => "この操作は許可されていません",
            StatusCode::NOT_FOUND => "対象が見つかりません",
            StatusCode::METHOD_NOT_ALLOWED => "この操作方法は使えません",
            StatusCode::REQUEST_TIMEOUT => "時間内に届きませんでした",
            StatusCode::CONFLICT => "現在の記録と矛盾します",
            StatusCode::PAYLOAD_TOO_LARGE => "送信データが大きすぎます",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "データ形式が対応していません",
            StatusCode::UNPROCESSABLE_ENTITY => "処理できない要求です",
            _ => "サーバーで問題が発生しました",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:kiroku:problem:{}", self.code),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let (Some(errors), Some(object)) = (self.errors, body.as_object_mut()) {
            object.insert("errors".into(), errors);
        }
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Refused {
                code,
                refusal,
                message,
            } => {
                let status = match refusal {
                    Refusal::Invalid => StatusCode::BAD_REQUEST,
                    Refusal::NotFound => StatusCode::NOT_FOUND,
                    Refusal::Conflict => StatusCode::CONFLICT,
                };
                ApiError::new(status, code, message)
            }
            CommandError::Contended => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contended",
                "同じ記録への同時の変更が多すぎます。何も記録されていません。もう一度お試しください",
            )
            .retry_after(1),
            // Decided again before any answer (`Commander::execute`): seen only should the
            // second decision not be confirmed either, which it never asks.
            CommandError::Unconfirmed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unconfirmed",
                "記録の前提を確かめられませんでした。何も記録されていません。もう一度お試しください",
            )
            .retry_after(1),
            CommandError::Unavailable(error) => ApiError::unavailable(error),
            CommandError::Stopped(stopped) => ApiError::stopped(&stopped),
            CommandError::Storage(error) => ApiError::internal(error),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(_) => ApiError::unavailable(error),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::application::AppError> for ApiError {
    fn from(error: crate::application::AppError) -> Self {
        use crate::application::AppError;
        match error {
            AppError::Forbidden => ApiError::forbidden(),
            AppError::NotFound { code, message } => ApiError::not_found(code, message),
            AppError::Command(error) => error.into(),
            AppError::Storage(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 503 tells the client when to try again (SPEC: never a hang, a 503 with
    /// `Retry-After`), the contended one included.
    #[test]
    fn every_service_unavailable_answer_says_when_to_retry() {
        for error in [
            CommandError::Contended,
            CommandError::Unconfirmed,
            CommandError::Unavailable("down".into()),
        ] {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                response.headers().get(header::RETRY_AFTER).is_some(),
                "{response:?}"
            );
        }
    }
}
