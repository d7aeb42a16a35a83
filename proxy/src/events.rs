//! REST routes of the governance event stream, its webhooks and dead-letter queue, served at
//! `/v1/governance-events...` and at the seed's `/api/v1/governance-events...`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::json;
use warden_governance::{EventQuery, PublishEvent, RegisterWebhook, Replay};

use crate::{blocking, ApiError, ApiState, Auth, Body};

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    let mut r = Router::new();
    for prefix in ["/v1", "/api/v1"] {
        r = r
            .route(
                &format!("{prefix}/governance-events"),
                get(list_events).post(publish_event),
            )
            .route(
                &format!("{prefix}/governance-events/webhooks"),
                get(list_webhooks).post(register_webhook),
            )
            .route(
                &format!("{prefix}/governance-events/webhooks/{{id}}"),
                delete(delete_webhook),
            )
            .route(
                &format!("{prefix}/governance-events/dead-letters"),
                get(dead_letters).post(replay),
            );
    }
    r
}

/// The tenant's governance events, newest first, by cursor.
#[utoipa::path(get, path = "/v1/governance-events", params(("event_type" = Option<String>, Query), ("source_id" = Option<String>, Query), ("finding_id" = Option<String>, Query, description = "the seed's name for source_id"), ("limit" = Option<u32>, Query, description = "1 to 100, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, description = "A page of events", body = warden_governance::EventPage), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn list_events(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    query: QueryResult<EventQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let out = blocking(move || s.decisions.events().list(&p, q)).await?;
    Ok(Json(out).into_response())
}

/// Publish a producer's event (idempotent by `idempotency_key`).
#[utoipa::path(post, path = "/v1/governance-events", request_body = warden_governance::PublishEvent, responses((status = 201, description = "Recorded", body = warden_governance::Published), (status = 200, description = "Already recorded under this idempotency key", body = warden_governance::Published), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn publish_event(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<PublishEvent>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.decisions.events().publish(&p, req)).await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

/// Register a webhook (admin).
#[utoipa::path(post, path = "/v1/governance-events/webhooks", request_body = warden_governance::RegisterWebhook, responses((status = 201, description = "Registered", body = warden_governance::Webhook), (status = "4XX", description = "Error (a refused target_url names its reason)", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn register_webhook(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<RegisterWebhook>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.webhooks.register(&p, req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The tenant's webhooks (admin).
#[utoipa::path(get, path = "/v1/governance-events/webhooks", responses((status = 200, description = "The webhooks"), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn list_webhooks(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.webhooks.list(&p)).await?;
    Ok(Json(json!({ "webhooks": out })).into_response())
}

/// Delete a webhook; its pending deliveries are cancelled (admin).
#[utoipa::path(delete, path = "/v1/governance-events/webhooks/{id}", params(("id" = String, Path)), responses((status = 204, description = "Deleted"), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_webhook(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    blocking(move || s.webhooks.delete(&p, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deliveries that exhausted their attempts (admin).
#[utoipa::path(get, path = "/v1/governance-events/dead-letters", responses((status = 200, description = "The dead letters, newest first"), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn dead_letters(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.webhooks.dead_letters(&p)).await?;
    let count = out.len();
    Ok(Json(json!({ "dead_letters": out, "count": count })).into_response())
}

/// Queue dead letters again, attempts reset (admin); none named: all.
#[utoipa::path(post, path = "/v1/governance-events/dead-letters", request_body = warden_governance::Replay, responses((status = 202, description = "Queued again", body = warden_governance::Replayed), (status = "4XX", description = "Error", body = crate::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn replay(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Replay>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.webhooks.replay(&p, req)).await?;
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}
