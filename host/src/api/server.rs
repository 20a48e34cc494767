//! The HTTP server: routes, body limits, bearer-token authentication and request metrics.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::error::{parse_json, ApiError};
use super::wire::{GenerateRequest, InitGenerateRequest};
use crate::node::Node;

/// The API prefix of the network's ML node.
pub const PREFIX: &str = "/api/v1/pow";

#[derive(Clone)]
struct AppState {
    node: Arc<Node>,
    token: Option<Arc<str>>,
    max_body: usize,
}

/// The router of the whole API (and `/metrics`).
pub fn router(node: Arc<Node>, token: Option<String>, max_body: usize) -> Router {
    let state = AppState {
        node,
        token: token.map(Arc::from),
        max_body,
    };
    // Flat routes (no `nest`), so middleware sees the matched route for metrics labels.
    let at = |path: &str| format!("{PREFIX}{path}");
    Router::new()
        .route(&at("/init/generate"), post(init_generate))
        .route(&at("/generate"), post(generate))
        .route(&at("/generate/{request_id}"), get(job))
        .route(&at("/status"), get(status))
        .route(&at("/stop"), post(stop))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Turns a body rejection (too large, unreadable) into an API error.
fn body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} bytes (limits.max_body_bytes); split the request",
                    state.max_body
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {rejection}"),
            )
        }
    })
}

fn ok_generating() -> Response {
    Json(json!({"status": "OK", "pow_status": {"status": "GENERATING"}})).into_response()
}

async fn init_generate(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(&state, raw)?;
    let request: InitGenerateRequest = parse_json(&raw)?;
    state.node.init_generate(request)?;
    Ok(ok_generating())
}

async fn generate(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(&state, raw)?;
    let request: GenerateRequest = parse_json(&raw)?;
    let (status, body) = state.node.generate(request).await?;
    Ok((status, Json(body)).into_response())
}

async fn job(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    match state.node.job(&request_id) {
        Some(body) => Ok(Json(body).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no request {request_id:?}: unknown, or finished more than the retention (limits.job_retention_s) ago"
            ),
        )
        .with_field("request_id")),
    }
}

async fn status(State(state): State<AppState>) -> Response {
    Json(state.node.status()).into_response()
}

async fn stop(State(state): State<AppState>) -> Response {
    state.node.stop();
    Json(json!({"status": "OK", "pow_status": {"status": "STOPPED"}})).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(&state.node);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}; the API is under {PREFIX}/ (init/generate, generate, generate/{{request_id}}, status, stop) plus /metrics",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send Authorization: Bearer <token>",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    state.node.http.record(&route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
