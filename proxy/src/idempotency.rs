//! The `Idempotency-Key` layer over every POST: replays the first answer to a retry, refuses a
//! key reused for a different request (409), and runs a request only once while its key is in
//! use. The bookkeeping lives in the governance store; this layer only carries bytes.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use warden_governance::{Begin, MAX_IDEMPOTENCY_KEY_LEN};

use crate::{ApiError, ApiState, BODY_LIMIT};

const HEADER: &str = "idempotency-key";

pub async fn layer(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
        return next.run(req).await;
    }
    let key = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN => k.to_owned(),
        _ => {
            return ApiError::field(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Idempotency-Key",
                format!("Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
            )
            .into_response()
        }
    };
    // Without a bearer key the request fails authentication anyway: nothing to remember.
    let Some(bearer) = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than the 1 MiB limit",
        )
        .into_response();
    };
    let mut h = Sha256::new();
    h.update(parts.uri.path().as_bytes());
    h.update([0]);
    h.update(&bytes);
    let request_hash = hex::encode(h.finalize());

    let store = state.store.clone();
    let (b, k) = (bearer.clone(), key.clone());
    let begin =
        tokio::task::spawn_blocking(move || store.idempotency_begin(&b, &k, &request_hash)).await;
    match begin {
        Ok(Ok(Begin::New)) => {}
        Ok(Ok(Begin::Replay { status, body })) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return resp;
        }
        Ok(Ok(Begin::Mismatch)) => {
            return ApiError::field(
                StatusCode::CONFLICT,
                "conflict",
                "Idempotency-Key",
                "Idempotency-Key: already used with a different request",
            )
            .into_response()
        }
        Ok(Ok(Begin::InProgress)) => {
            return ApiError::field(
                StatusCode::CONFLICT,
                "conflict",
                "Idempotency-Key",
                "Idempotency-Key: a request with this key is still in progress",
            )
            .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "idempotency store");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "retry with backoff",
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "retry with backoff",
            )
            .into_response();
        }
    }

    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let status = parts.status;
    let store = state.store.clone();
    let body_copy = body.to_vec();
    // A 5xx (or a refusal to authenticate or a rate limit) may succeed on retry: forget it.
    let keep = !(status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS);
    let _ = tokio::task::spawn_blocking(move || {
        let r = if keep {
            store.idempotency_finish(&bearer, &key, status.as_u16(), &body_copy)
        } else {
            store.idempotency_release(&bearer, &key)
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "idempotency store");
        }
    })
    .await;
    Response::from_parts(parts, Body::from(body))
}
