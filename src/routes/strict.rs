//! `Strict<T>`: the JSON body of a native `/v1` route, refusing members the route does not
//! know. A misspelt or unsupported option (`"stdn"`, `"timeout"` for `timeoutMs`) must not
//! run silently without it. The compatibility routes (Loopai's JSON-RPC, the seeds'
//! `/api/execute`) keep axum's lenient `Json`, as their clients send extra members.

use axum::extract::{FromRequest, Request};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::requests::RequestError;

/// A JSON body with no member `T` does not declare.
pub struct Strict<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // axum's own checks first (content type, size, body timeout, syntax), with their
        // errors; the body is only validated here, not built into a tree.
        let Json(raw) = Json::<Box<RawValue>>::from_request(req, state).await?;
        parse(raw.get()).map(Strict)
    }
}

/// Deserializes `text`, naming the first member `T` does not declare.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let value: Result<T, _> = serde_ignored::deserialize(&mut de, |path| {
        unknown.push(path.to_string());
    });
    let value = value.map_err(|e| {
        let message = format!("the request body does not fit this route: {e}");
        if message.contains(codebeaker_proto::TOO_DEEP) {
            RequestError::Malformed(message)
        } else {
            RequestError::Invalid(message)
        }
    })?;
    if let Some(field) = unknown.first() {
        return Err(RequestError::UnknownField(field.clone()).into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_member_is_named_at_any_depth() {
        let e = parse::<crate::requests::ExecuteRequest>(
            r#"{"language":"python","code":"x","stdn":"hello"}"#,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("stdn"), "{e}");
        let e = parse::<crate::batch::BatchRequest>(
            r#"{"language":"python","code":"x","items":[{"id":"a","inputs":{}}]}"#,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("items.0.inputs"), "{e}");
        assert!(parse::<crate::requests::ExecuteRequest>(
            r#"{"language":"python","code":"x","input":{"anything":1}}"#
        )
        .is_ok());
    }
}
