//! Who may call the admin API (see the crate doc): the IAM caller API
//! Gateway authorised, or the holder of the admin token; nobody when
//! neither is configured. `authorise` runs before every handler and
//! leaves the caller's [`Principal`] in the request for the handlers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use cashback_edge::auth::{check_api_key, hash_api_key};
use cashback_edge::extract::Principal;
use cashback_edge::ApiError;

use crate::AdminState;

/// The environment variable holding the admin token (local runs).
pub const ADMIN_TOKEN_ENV: &str = "CASHBACK_ADMIN_TOKEN";

/// The environment variable that says how API Gateway authorises admin
/// requests: `iam` to trust its IAM authorizer. Nothing else turns it on.
pub const ADMIN_AUTH_ENV: &str = "CASHBACK_ADMIN_AUTH";

/// The principal recorded for a caller holding the admin token.
pub const TOKEN_PRINCIPAL: &str = "admin-token";

/// How requests are authorised (see the crate doc).
#[derive(Clone, PartialEq, Eq)]
pub enum AdminAuth {
    /// `Authorization: Bearer <token>` whose SHA-256 (hex) is this.
    Token(String),
    /// API Gateway authorised the request with IAM before it got here
    /// (explicitly configured; the request's context names the caller).
    Iam,
    /// No way to authorise: every request is refused.
    Closed,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminAuth::Token(_) => "Token(<redacted>)",
            AdminAuth::Iam => "Iam",
            AdminAuth::Closed => "Closed",
        })
    }
}

impl AdminAuth {
    /// A configured token wins; without one, IAM when explicitly trusted
    /// (`iam`: [`ADMIN_AUTH_ENV`] says so), closed otherwise.
    pub fn new(admin_token_hash: Option<String>, iam: bool) -> AdminAuth {
        match admin_token_hash.filter(|h| !h.trim().is_empty()) {
            Some(hash) => AdminAuth::Token(hash),
            None if iam => AdminAuth::Iam,
            None => AdminAuth::Closed,
        }
    }
}

/// Whether [`ADMIN_AUTH_ENV`] says API Gateway's IAM authorizer is trusted.
pub fn iam_from_env() -> bool {
    std::env::var(ADMIN_AUTH_ENV).is_ok_and(|value| value.trim().eq_ignore_ascii_case("iam"))
}

/// The SHA-256 of `CASHBACK_ADMIN_TOKEN`, if set; the token itself is not kept.
pub fn admin_token_hash_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .map(|token| hash_api_key(&token))
}

/// The IAM caller API Gateway authorised, from the request's context.
fn iam_caller(request: &Request) -> Option<String> {
    let context = request.extensions().get::<RequestContext>()?;
    let iam = match context {
        RequestContext::ApiGatewayV2(context) => context.authorizer.as_ref()?.iam.clone()?,
        RequestContext::ApiGatewayV1(context) => context.authorizer.iam.clone()?,
        _ => return None,
    };
    iam.user_arn
        .or(iam.caller_id)
        .map(|who| who.trim().to_string())
        .filter(|who| !who.is_empty())
}

/// The middleware: 401 unless the request is authorised, and the caller
/// recorded as its [`Principal`] otherwise.
pub(crate) async fn authorise(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = iam_caller(&request);
    let verdict = match state.auth.as_ref() {
        AdminAuth::Iam => caller.map(Principal).ok_or_else(|| {
            ApiError::unauthorized(
                "IAM authorisation is expected from API Gateway and this request carries none",
            )
        }),
        AdminAuth::Token(hash) => check_api_key(request.headers(), hash)
            .map(|()| Principal(caller.unwrap_or_else(|| TOKEN_PRINCIPAL.to_string())))
            .map_err(|_| ApiError::unauthorized("a valid admin token is required")),
        AdminAuth::Closed => Err(ApiError::unauthorized(format!(
            "the admin API is closed: set {ADMIN_TOKEN_ENV} (or {ADMIN_AUTH_ENV}=iam behind \
             API Gateway's IAM authorizer) to use it"
        ))),
    };
    match verdict {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}
