//! `JsonBody<T>`: the JSON extractor every route uses. It reads the body under the size
//! limit (413 past it) and deserializes with `serde_path_to_error`, so a 400 names the exact
//! field path (`settlements[3].usage.output_tokens`) of a wrong, missing or unknown field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T`, naming the field path on error.
///
/// A body of the wrong shape (not JSON, a value of the wrong type, a missing or unknown field)
/// is `invalid_json`; a well-typed value its type refuses (a string that is no scope, an unknown
/// enum variant) is `invalid_field`, the same code a bad value in a path or a rule broken after
/// parsing gets. serde words the two through `de::Error::invalid_value` and `unknown_variant`,
/// whose messages start as matched here (stable since serde 1.0).
///
/// A body is parsed without path tracking first: tracking allocates a path segment per field
/// read, a large share of parsing a settle batch of a few hundred settlements. Only a body
/// that fails is parsed again, for its path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let plain = match serde_json::from_slice(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => Err(refusal(e.path().to_string(), e.inner())),
        // Only the characters after the value (which the tracked parse does not read) fail
        // the plain parse.
        Ok(_) => Err(refusal(".".to_owned(), &plain)),
    }
}

fn refusal(field: String, e: &serde_json::Error) -> ApiError {
    let message = e.to_string();
    let bad_value = e.is_data()
        && (message.starts_with("invalid value: ") || message.starts_with("unknown variant "));
    if bad_value {
        ApiError::Invalid { field, message }
    } else {
        ApiError::InvalidJson { field, message }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.body_limit_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(r.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        n: u32,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        A,
    }

    fn refused(body: &str) -> (bool, String, String) {
        match parse::<Body>(body.as_bytes()) {
            Ok(b) => panic!("{body} parsed as {b:?}"),
            Err(ApiError::InvalidJson { field, message }) => (false, field, message),
            Err(ApiError::Invalid { field, message }) => (true, field, message),
            Err(other) => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_good_body_parses_and_a_bad_one_names_its_field() {
        let b: Body = parse(br#"{"items":[{"n":1,"kind":"a"}]} "#).unwrap();
        assert!(matches!(
            b.items[..],
            [Item {
                n: 1,
                kind: Kind::A
            }]
        ));

        let (bad_value, field, _) =
            refused(r#"{"items":[{"n":1,"kind":"a"},{"n":"x","kind":"a"}]}"#);
        assert_eq!((bad_value, field.as_str()), (false, "items[1].n"));
        let (bad_value, field, _) = refused(r#"{"items":[{"n":1,"kind":"z"}]}"#);
        assert_eq!((bad_value, field.as_str()), (true, "items[0].kind"));
        let (bad_value, field, _) = refused(r#"{"items":[{"n":1,"kind":"a","extra":1}]}"#);
        assert_eq!((bad_value, field.as_str()), (false, "items[0].extra"));
    }

    #[test]
    fn characters_after_the_value_are_refused() {
        let (bad_value, field, message) = refused(r#"{"items":[]} {"#);
        assert_eq!((bad_value, field.as_str()), (false, "."));
        assert!(message.contains("trailing"), "{message}");
    }
}
