//! One mapping from every domain error to the API's error body, `{"code","message","field"?}`.
//!
//! Internal causes (store and ledger failures) are logged and answered with a generic message:
//! they may name paths or state a client has no business seeing.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use warden_governance::gloxi::GloxiError;
use warden_governance::{AuthError, GovError};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    /// Guardian or policy reason codes of a refusal.
    reasons: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            reasons: Vec::new(),
        }
    }

    pub fn field(
        status: StatusCode,
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            field: Some(field),
            ..ApiError::new(status, code, message)
        }
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; retry with backoff",
        )
    }
}

impl ApiError {
    /// The error body, `{"code","message","field"?,"reason_codes"?}` (also an SSE `error`
    /// event's data).
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        if !self.reasons.is_empty() {
            body["reason_codes"] = json!(self.reasons);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Gloxi's refusals: an unknown jurisdiction or sector is a 422 that lists the known values; a
/// question or answer the guardians block is a 403 `blocked` with their reason codes.
impl From<GloxiError> for ApiError {
    fn from(e: GloxiError) -> Self {
        let message = e.to_string();
        match e {
            GloxiError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            GloxiError::Invalid { field, .. } => {
                ApiError::field(StatusCode::BAD_REQUEST, "invalid_request", field, message)
            }
            GloxiError::Unknown { field, .. } => ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                field,
                message,
            ),
            GloxiError::NotFound(_) => ApiError::field(
                StatusCode::NOT_FOUND,
                "not_found",
                "conversation_id",
                message,
            ),
            GloxiError::Blocked { reasons, .. } => ApiError {
                reasons,
                ..ApiError::new(StatusCode::FORBIDDEN, "blocked", message)
            },
            GloxiError::Store(e) => ApiError::internal(e),
            GloxiError::Task(e) => ApiError::internal(e),
        }
    }
}

impl From<GovError> for ApiError {
    fn from(e: GovError) -> Self {
        let message = e.to_string();
        match e {
            GovError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            GovError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            GovError::Invalid { field, .. } => ApiError {
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            },
            GovError::Conflict { field, .. } => ApiError {
                field,
                ..ApiError::new(StatusCode::CONFLICT, "conflict", message)
            },
            GovError::Policy(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
            }
            GovError::Store(e) => ApiError::internal(e),
            GovError::Ledger(e) => ApiError::internal(e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            e @ (AuthError::Store(_) | AuthError::Interrupted) => ApiError::internal(e),
            other => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than the 1 MiB limit",
            ),
            // serde's message names the field and what was expected.
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                other.body_text(),
            ),
        }
    }
}
