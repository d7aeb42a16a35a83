//! `POST /v1/chat` and `POST /api/v1/chat`: Gloxi's answers, as JSON or as server-sent events.
//!
//! A stream is chosen by `"stream": true` or `Accept: text/event-stream`. A bad question is
//! refused with an ordinary error status before the stream starts; once it has started,
//! failures arrive as an `error` event. Events, each with a JSON `data` and an increasing `id`:
//! `meta` (conversation, filters, number of passages; sent as soon as retrieval is done, with
//! `retry`), `delta` (`{"text"}`, the answer piece by piece), `citation` (`{"index", ...}`, right
//! after the delta that first uses it), `done` (the whole answer, as the JSON route returns it)
//! or `error` (`{"code","message"}`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;
use warden_governance::gloxi::{Ask, ChatEvent, Gloxi};

use crate::{ApiError, ApiState, Auth, BODY_LIMIT};

/// What the chat routes need.
pub struct ChatState {
    pub api: Arc<ApiState>,
    pub gloxi: Arc<Gloxi>,
}

impl FromRequestParts<Arc<ChatState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ChatState>,
    ) -> Result<Self, Self::Rejection> {
        Auth::from_request_parts(parts, &state.api).await
    }
}

/// The chat routes, under the same request limits as the other REST routes.
pub fn router(state: Arc<ChatState>) -> Router {
    Router::new()
        .route("/v1/chat", post(chat))
        .route("/api/v1/chat", post(chat_api))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.api.limits.clone(),
            crate::ratelimit::layer,
        ))
        .with_state(state)
}

type Body = Result<Json<Ask>, axum::extract::rejection::JsonRejection>;

/// Ask Gloxi a regulatory question; the answer cites its sources.
#[utoipa::path(post, path = "/v1/chat", request_body = warden_governance::gloxi::Ask,
    responses(
        (status = 200, description = "The answer (JSON), or server-sent events `meta`, `delta`, `citation`, `done`, `error` with `stream: true` or `Accept: text/event-stream`", body = warden_governance::gloxi::ChatAnswer),
        (status = 422, description = "Unknown jurisdiction or context; the message lists the known ones", body = crate::ErrorBody),
        (status = 403, description = "The guardians blocked the question (`blocked`, with `reason_codes`)", body = crate::ErrorBody),
        (status = "4XX", description = "Error", body = crate::ErrorBody)),
    security(("bearer" = [])))]
async fn chat(
    State(s): State<Arc<ChatState>>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    answer(s, p, headers, body).await
}

/// The seed's path for `POST /v1/chat`.
#[utoipa::path(post, path = "/api/v1/chat", request_body = warden_governance::gloxi::Ask,
    responses((status = 200, description = "As `POST /v1/chat`", body = warden_governance::gloxi::ChatAnswer),
        (status = "4XX", description = "Error", body = crate::ErrorBody)),
    security(("bearer" = [])))]
async fn chat_api(
    State(s): State<Arc<ChatState>>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    answer(s, p, headers, body).await
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

async fn answer(
    s: Arc<ChatState>,
    p: warden_governance::Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let stream = req.stream.unwrap_or(false) || wants_events(&headers);
    let prepared = s.gloxi.prepare(&p, req).await?;
    if !stream {
        let out = s.gloxi.answer(prepared, None).await?;
        return Ok(Json(out).into_response());
    }
    let (out_tx, out_rx) = mpsc::channel::<Event>(64);
    let meta = Event::default()
        .event("meta")
        .id("0")
        .retry(Duration::from_secs(3))
        .json_data(&prepared.meta)
        .expect("meta serializes");
    let _ = out_tx.send(meta).await;
    let gloxi = s.gloxi.clone();
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<ChatEvent>(64);
        let out = out_tx.clone();
        let forward = async move {
            let mut id = 1u64;
            while let Some(ev) = rx.recv().await {
                let event = match ev {
                    ChatEvent::Delta(text) => Event::default()
                        .event("delta")
                        .json_data(json!({ "text": text })),
                    ChatEvent::Citation { index, citation } => {
                        let mut data = serde_json::to_value(citation).expect("serializes");
                        data["index"] = json!(index);
                        Event::default().event("citation").json_data(data)
                    }
                }
                .expect("event serializes")
                .id(id.to_string());
                id += 1;
                if out.send(event).await.is_err() {
                    break;
                }
            }
            id
        };
        let (result, id) = tokio::join!(gloxi.answer(prepared, Some(tx)), forward);
        let last = match result {
            Ok(answer) => Event::default().event("done").json_data(&answer),
            Err(e) => Event::default()
                .event("error")
                .json_data(ApiError::from(e).body()),
        }
        .expect("event serializes")
        .id(id.to_string());
        let _ = out_tx.send(last).await;
    });
    let events = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
