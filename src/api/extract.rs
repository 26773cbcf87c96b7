//! Extractors whose rejections use the API's error shape.

use super::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::Json`, rejecting with `ApiError`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

/// `axum::extract::Path`, rejecting with `ApiError`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// `axum::extract::Query`, rejecting with `ApiError`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// The request body as bytes, whatever its content-type, rejecting with `ApiError` (a body over
/// the limit is the contract's JSON 413, not axum's plain-text one).
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(RawBody(axum::body::Bytes::from_request(req, state).await?))
    }
}

/// `T`, read only from a JSON object. serde lets a struct be written as an array of its
/// fields in order (`[null, null]`), which no client means and the document does not allow;
/// this takes maps alone, in the same single pass (no second parse).
#[derive(Debug, Clone)]
pub struct ObjectOnly<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData)).map(ObjectOnly)
    }
}

/// `Json<T>` for a body that must be a JSON object (see [`ObjectOnly`]).
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(ObjectOnly(value)) = Json::<ObjectOnly<T>>::from_request(req, state).await?;
        Ok(JsonObject(value))
    }
}

/// An optional body: nothing, `null` or whitespace gives the default; otherwise it must be a
/// JSON object of `T`'s fields (`shape` says which, for the message).
pub fn optional_object<T: serde::de::DeserializeOwned + Default>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).unwrap_or("?").trim();
    if text.is_empty() || text == "null" {
        Ok(T::default())
    } else if !text.starts_with('{') {
        Err(ApiError::invalid(format!("body: {shape}, null, or nothing")))
    } else {
        serde_json::from_str(text).map_err(|e| ApiError::invalid(format!("body: {e}")))
    }
}

/// A whole number that JSON may also spell `12.0`: the document calls these fields `integer`,
/// which in JSON Schema admits both spellings of the same number, where serde takes only `12`.
#[derive(Debug, Clone, Copy)]
pub struct Whole<T>(pub T);

impl<'de, T: TryFrom<u64>> serde::Deserialize<'de> for Whole<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected};
        let expected = "a whole number in range";
        let number = serde_json::Number::deserialize(d)?;
        let whole = match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(n), _, _) => n,
            (None, Some(negative), _) => return Err(Error::invalid_value(Unexpected::Signed(negative), &expected)),
            // Whole floats up to 2^53 spell their integer exactly.
            (None, None, Some(f)) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f) => f as u64,
            (None, None, Some(f)) => return Err(Error::invalid_value(Unexpected::Float(f), &expected)),
            (None, None, None) => return Err(Error::invalid_value(Unexpected::Other("number"), &expected)),
        };
        T::try_from(whole)
            .map(Whole)
            .map_err(|_| Error::invalid_value(Unexpected::Unsigned(whole), &expected))
    }
}
