//! One error type for every failure of the HTTP API, rendered as the contract's JSON shape:
//! `{"error": {"code": "snake_case", "message": "…"}}`. The framework's own rejections
//! (bad JSON, wrong content type, body too large, bad path) are mapped to it too.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hookline_actors::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The error a request body gives once its deadline (`server.body_read_timeout_s`) has passed
/// (`src/server.rs` sets it; a handler that reads the body raw recognises it).
pub const BODY_TIMEOUT: &str = "the request body did not arrive in time";

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case (described in `schema::error_code`).
    #[schema(schema_with = super::schema::error_code)]
    pub code: String,
    /// For people: names the field or parameter that is wrong.
    pub message: String,
    /// With `schema_violation`: where the payload fails its schema and how (at most 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<crate::catalogue::Problem>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
    /// `ErrorDetail::details`.
    pub details: Vec<crate::catalogue::Problem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            details: Vec::new(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    }
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not act on that tenant",
        )
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "store_unavailable",
                    message: "the durable store is unavailable or did not confirm the write; retry later \
                              (with an idempotency key, a retry never stores an event twice)"
                        .into(),
                    retry_after_s: Some(1),
                    details: Vec::new(),
                }
            }
            StoreError::Fenced(shard) => {
                tracing::warn!(shard, "write refused: lease lost");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "store_unavailable",
                    message: "this node is handing work over; retry".into(),
                    retry_after_s: Some(1),
                    details: Vec::new(),
                }
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "corrupt data in store");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "stored data could not be read",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request with content-type: application/json",
            ),
            JsonRejection::JsonDataError(e) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than allowed",
            ),
            other => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than allowed",
            );
        }
        ApiError::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
