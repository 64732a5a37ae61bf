//! Axum extractors that refuse with [`ApiError`], the one JSON error, where
//! axum's own would answer plain text: a handler takes its inputs already
//! checked and returns `Result<Json<T>, ApiError>`.
//!
//! Axum runs a handler's extractors in the order of its arguments, the body
//! last, and answers the first refusal. A handler therefore lists them in the
//! order its checks must run: the path, then the headers, then the body.
//!
//! - [`InPath`]: one named value of the path (`{shop}`, `{code}`, `{id}`),
//!   parsed by its [`PathValue`] impl; a bad one is a 400 naming it.
//! - [`ApiQuery`]: the query string, deserialised.
//! - [`Principal`]: who is calling, as the router's auth layer found it.
//! - [`IdempotencyKey`]: the `Idempotency-Key` header, required.
//! - [`IfMatch`]: the version an `If-Match` header expects, if any.
//! - [`JsonText`]: the body as text, for a use case that parses the JSON
//!   itself and names each field it refuses; at most [`BodyLimit`] bytes.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use cashback_core::ids::{Code, CustomerId, ShopId};
use cashback_core::program::FieldError;

use crate::error::ApiError;

impl ApiError {
    /// 400 `invalid_fields` naming one field (a path value, a query
    /// parameter or a header) and what is wrong with it.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::bad_request("invalid_fields", "some fields are invalid").with_fields(vec![
            FieldError {
                field: field.into(),
                message: message.into(),
            },
        ])
    }
}

/// A value a route names in its path, and how it is read from its segment.
pub trait PathValue: Sized {
    /// Its name in the route (`{shop}` is `shop`), and the field a bad
    /// value is reported under.
    const NAME: &'static str;

    /// The value of a (percent-decoded) segment, or why it is not one.
    fn from_segment(raw: &str) -> Result<Self, String>;
}

impl PathValue for ShopId {
    const NAME: &'static str = "shop";

    fn from_segment(raw: &str) -> Result<ShopId, String> {
        ShopId::parse(raw).map_err(|e| e.to_string())
    }
}

impl PathValue for Code {
    const NAME: &'static str = "code";

    fn from_segment(raw: &str) -> Result<Code, String> {
        Code::parse(raw).map_err(|e| e.to_string())
    }
}

impl PathValue for CustomerId {
    const NAME: &'static str = "id";

    fn from_segment(raw: &str) -> Result<CustomerId, String> {
        CustomerId::parse(raw).map_err(|e| e.to_string())
    }
}

/// The path value `T::NAME`, parsed: 400 `bad_path` for a path that is not
/// UTF-8 once decoded, 400 `invalid_fields` naming `T::NAME` for a value
/// `T` refuses.
#[derive(Debug, Clone)]
pub struct InPath<T>(pub T);

impl<T, S> FromRequestParts<S> for InPath<T>
where
    T: PathValue,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<InPath<T>, ApiError> {
        let Path(values) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("bad_path", e.body_text()))?;
        let raw = values.get(T::NAME).ok_or_else(|| {
            // A handler mounted on a route without this value: a bug of ours.
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the route names no {{{}}}", T::NAME),
            )
        })?;
        T::from_segment(raw)
            .map(InPath)
            .map_err(|message| ApiError::invalid_field(T::NAME, message))
    }
}

/// The query string as `T`: 400 `bad_query` when it does not fit.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|_| ApiError::bad_request("bad_query", "the query string is malformed"))
    }
}

/// Who made a request: what the router's auth layer put in the request's
/// extensions (an IAM caller's ARN, `admin-token`, ...). Recorded on every
/// change it makes. A request that reaches a handler without one is refused
/// (401): a route mounted outside its auth layer does not run anonymously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Principal, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this request was not authorised"))
    }
}

/// The request header naming a change, Stripe's: a retry with the same key
/// answers what the first attempt did.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The [`IDEMPOTENCY_KEY`] header, required: 400 `invalid_fields` naming
/// `Idempotency-Key` without it. A value that is not ASCII reads as empty
/// (the use case refuses an empty key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<IdempotencyKey, ApiError> {
        parts
            .headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| IdempotencyKey(v.to_str().unwrap_or_default().to_string()))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "Idempotency-Key",
                    "required: a unique key per adjustment, reused only to retry it",
                )
            })
    }
}

/// `If-Match: "3"` (or `3`, or a weak `W/"3"`): the version a change
/// expects, None without the header; 400 `invalid_fields` naming
/// `If-Match` when it is not a version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<IfMatch, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let raw = value.to_str().unwrap_or_default().trim();
        let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        raw.parse::<u64>()
            .map(|version| IfMatch(Some(version)))
            .map_err(|_| {
                ApiError::invalid_field("If-Match", "must be a version number, e.g. \"3\"")
            })
    }
}

/// The most bytes a body may have on a router: its state provides it
/// (`impl FromRef<State> for BodyLimit`), so the 413 names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// The body as UTF-8 text, for a use case that parses the JSON itself (and
/// names every field it refuses). 413 `payload_too_large` past the router's
/// [`BodyLimit`], 400 `malformed` for a body that cannot be read or is not
/// UTF-8: JSON errors, where axum's own rejections are plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

impl<S> FromRequest<S> for JsonText
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonText, ApiError> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        let limited = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        let bytes = Bytes::from_request(limited, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(limit)
                } else {
                    ApiError::bad_request("malformed", rejection.body_text())
                }
            })?;
        String::from_utf8(bytes.into())
            .map(JsonText)
            .map_err(|_| ApiError::bad_request("malformed", "the body is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Limited;

    impl FromRef<Limited> for BodyLimit {
        fn from_ref(_: &Limited) -> BodyLimit {
            BodyLimit(16)
        }
    }

    async fn change(
        principal: Principal,
        InPath(shop): InPath<ShopId>,
        InPath(code): InPath<Code>,
        IfMatch(expected): IfMatch,
        IdempotencyKey(key): IdempotencyKey,
        JsonText(body): JsonText,
    ) -> String {
        format!("{} {shop} {code} {expected:?} {key} {body}", principal.0)
    }

    async fn listed(
        InPath(shop): InPath<ShopId>,
        ApiQuery(params): ApiQuery<Vec<(String, u32)>>,
    ) -> String {
        format!("{shop} {params:?}")
    }

    fn app(principal: Option<&str>) -> Router {
        let router = Router::new()
            .route("/shops/{shop}/coupons/{code}", post(change))
            .route("/shops/{shop}", axum::routing::get(listed))
            .with_state(Limited);
        match principal {
            Some(who) => router.layer(axum::Extension(Principal(who.into()))),
            None => router,
        }
    }

    struct Call<'a> {
        uri: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    }

    const GOOD: Call<'static> = Call {
        uri: "/shops/demo.myshopify.com/coupons/summer",
        headers: &[("idempotency-key", b"k-1"), ("if-match", b"W/\"3\"")],
        body: b"{}",
    };

    async fn send(app: Router, call: Call<'_>) -> (u16, String) {
        let method = if call.uri.contains("/coupons/") {
            "POST"
        } else {
            "GET"
        };
        let mut request = Request::builder().method(method).uri(call.uri);
        for (name, value) in call.headers {
            request = request.header(*name, axum::http::HeaderValue::from_bytes(value).unwrap());
        }
        let request = request.body(Body::from(call.body.to_vec())).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_request_that_passes_every_check_reaches_the_handler_with_each_value_parsed() {
        let (status, text) = send(app(Some("admin-token")), GOOD).await;
        assert_eq!(status, 200);
        assert_eq!(text, "admin-token demo.myshopify.com SUMMER Some(3) k-1 {}");
        let no_if_match = Call {
            headers: &[("idempotency-key", b"k-1")],
            ..GOOD
        };
        let (_, text) = send(app(Some("admin-token")), no_if_match).await;
        assert!(text.contains(" None k-1 "), "{text}");
    }

    #[tokio::test]
    async fn each_refusal_is_the_json_error_of_its_check() {
        let cases: Vec<(Call<'_>, u16, &str)> = vec![
            (
                Call {
                    uri: "/shops/%FF/coupons/summer",
                    ..GOOD
                },
                400,
                r#"{"error":{"code":"bad_path","message":"Invalid URL: Invalid UTF-8 in `shop`"}}"#,
            ),
            (
                Call {
                    uri: "/shops/not%20a%20shop/coupons/summer",
                    ..GOOD
                },
                400,
                r#""fields":[{"field":"shop","#,
            ),
            (
                Call {
                    uri: "/shops/demo.myshopify.com/coupons/no%20spaces",
                    ..GOOD
                },
                400,
                r#""fields":[{"field":"code","#,
            ),
            (
                Call {
                    headers: &[("idempotency-key", b"k-1"), ("if-match", b"latest")],
                    ..GOOD
                },
                400,
                r#"{"error":{"code":"invalid_fields","message":"some fields are invalid","fields":[{"field":"If-Match","message":"must be a version number, e.g. \"3\""}]}}"#,
            ),
            (
                Call {
                    headers: &[],
                    ..GOOD
                },
                400,
                r#""fields":[{"field":"Idempotency-Key","#,
            ),
            (
                Call {
                    body: b"{\"seventeen\":\"b\"}",
                    ..GOOD
                },
                413,
                r#"{"error":{"code":"payload_too_large","message":"the body is larger than 16 bytes"}}"#,
            ),
            (
                Call {
                    body: &[0xff, 0xfe],
                    ..GOOD
                },
                400,
                r#"{"error":{"code":"malformed","message":"the body is not UTF-8"}}"#,
            ),
            (
                Call {
                    uri: "/shops/demo.myshopify.com?limit=many",
                    ..GOOD
                },
                400,
                r#"{"error":{"code":"bad_query","message":"the query string is malformed"}}"#,
            ),
        ];
        for (call, status, expected) in cases {
            let uri = call.uri;
            let answer = send(app(Some("admin-token")), call).await;
            assert_eq!(answer.0, status, "{uri}: {}", answer.1);
            assert!(answer.1.contains(expected), "{uri}: {}", answer.1);
        }
    }

    #[tokio::test]
    async fn the_first_check_that_fails_is_the_answer_in_the_order_of_the_arguments() {
        let everything_wrong = Call {
            uri: "/shops/not%20a%20shop/coupons/no%20spaces",
            headers: &[("if-match", b"latest")],
            body: &[0xff; 32],
        };
        let (status, text) = send(app(Some("admin-token")), everything_wrong).await;
        assert_eq!(status, 400);
        assert!(text.contains(r#""field":"shop""#), "{text}");
    }

    #[tokio::test]
    async fn a_handler_mounted_without_its_auth_layer_refuses_instead_of_running_anonymously() {
        let (status, text) = send(app(None), GOOD).await;
        assert_eq!(status, 401);
        assert!(text.contains(r#""code":"unauthorized""#), "{text}");
    }
}
