//! API errors: a status code and a message that says which field was wrong and what would be
//! right, answered as `{"detail": "...", "field": "..."}` (the `detail` key is what the network's
//! own FastAPI node answers with; `field` is ours, `null` where no single field is to blame).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (always 4xx or 5xx).
    pub status: StatusCode,
    /// What was wrong and what would be right.
    pub detail: String,
    /// The request field to blame (`params.k_dim`, `nonces[3]`), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    /// An error about one field of the request body: 422 Unprocessable Entity.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// An error with an explicit status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// The same error, blamed on `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.status, self.detail),
            None => write!(f, "{}: {}", self.status, self.detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail, "field": self.field });
        (self.status, Json(body)).into_response()
    }
}

/// Parses a JSON request body into `T`, naming the offending field on failure.
///
/// Malformed JSON (syntax, truncation, trailing garbage) is 400 Bad Request; a body that is JSON
/// but has a missing field, a wrong type, an out-of-range integer or an unknown `params` field is
/// 422 with the field's path (`params.seq_len`, `nonces[2]`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(inner, &path)
    })?;
    de.end().map_err(|err| json_error(err, "."))?;
    Ok(value)
}

fn json_error(err: serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {err}"),
        ),
        Category::Data => {
            // serde names a missing field in the message, with the path of its parent object.
            let message = err.to_string();
            let field = match (path, missing_field_name(&message)) {
                (".", Some(name)) => name.to_string(),
                (parent, Some(name)) => format!("{parent}.{name}"),
                (path, None) => path.to_string(),
            };
            ApiError::field(field.clone(), format!("{field}: {message}"))
        }
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::InitGenerateRequest;

    const GOOD: &str = r#"{"block_hash":"h","block_height":1,"public_key":"p","node_id":0,
        "node_count":1,"params":{"model":"m","seq_len":4}}"#;

    #[test]
    fn good_body_parses() {
        let req: InitGenerateRequest = parse_json(GOOD.as_bytes()).unwrap();
        assert_eq!(req.params.seq_len, 4);
    }

    #[test]
    fn malformed_json_is_400() {
        let trailing = format!("{GOOD} trailing");
        for body in [
            "",
            "{",
            "{\"block_hash\":",
            "{\"a\":1,}",
            &trailing,
            "\u{0}",
        ] {
            let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body:?}: {err}");
            assert!(err.detail.contains("not valid JSON"), "{err}");
        }
    }

    #[test]
    fn missing_field_is_named() {
        let body = GOOD.replace(r#""node_count":1,"#, "");
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.field.as_deref(), Some("node_count"), "{err}");
        let body = GOOD.replace(r#""seq_len":4"#, r#""k_dim":4"#);
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("params.seq_len"), "{err}");
    }

    #[test]
    fn wrong_types_and_unknown_params_fields_are_named() {
        let body = GOOD.replace(r#""seq_len":4"#, r#""seq_len":"four""#);
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("params.seq_len"), "{err}");
        let body = GOOD.replace(r#""seq_len":4"#, r#""seq_len":4,"temperature":1"#);
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert!(err.detail.contains("unknown field `temperature`"), "{err}");
        assert!(err.field.as_deref().unwrap().starts_with("params"), "{err}");
        let body = GOOD.replace(r#""node_id":0"#, r#""node_id":-1"#);
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("node_id"), "{err}");
        let body = GOOD.replace(r#""block_height":1"#, r#""block_height":1e300"#);
        let err = parse_json::<InitGenerateRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("block_height"), "{err}");
    }
}
