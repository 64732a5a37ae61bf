//! The admin API: everything a merchant sets in a loyalty app's settings
//! page, and the reports, as JSON over HTTP. One axum [`router`] serves the
//! Lambda (through lambda_http behind API Gateway) and the local server.
//!
//! # Who may call it
//! - On AWS the routes are authorised by IAM at API Gateway (IAM is the
//!   HTTP API's default authorizer in template.yaml; SigV4-signed calls
//!   from the merchant's back office or the operator's tooling). The
//!   function trusts that only when told so explicitly:
//!   `CASHBACK_ADMIN_AUTH=iam` ([`ADMIN_AUTH_ENV`]), never merely because
//!   it runs on Lambda (`cargo lambda watch` sets the function name too, and
//!   listens on every interface). Even then a request must carry the IAM
//!   caller API Gateway puts in its context; one without is refused.
//! - Otherwise the router requires `Authorization: Bearer <token>`, checked
//!   in constant time against the SHA-256 of `CASHBACK_ADMIN_TOKEN`. With
//!   neither configured every request is refused: the admin API never runs
//!   open by accident. A token configured with IAM is checked too (defence
//!   in depth).
//! - Every change records who made it ([`Principal`]): the IAM caller's ARN,
//!   or [`TOKEN_PRINCIPAL`].
//!
//! # Routes (docs/openapi.yaml documents every body)
//! | method | path | what |
//! | --- | --- | --- |
//! | POST | `/v1/shops` | onboard a shop; the API key is in the answer, once |
//! | GET, PUT | `/v1/shops/{shop}/program` | the program; `If-Match: "<version>"` optional |
//! | GET | `/v1/shops/{shop}/program/versions/{version}` | an earlier version |
//! | GET, POST | `/v1/shops/{shop}/coupons` | list (paged), create |
//! | GET, PUT | `/v1/shops/{shop}/coupons/{code}` | read, replace |
//! | POST | `/v1/shops/{shop}/coupons/{code}/pause`, `/approve` | status |
//! | GET | `/v1/shops/{shop}/customers?email=` or `?code=` | look up |
//! | GET | `/v1/shops/{shop}/customers/{id}` | one customer |
//! | GET | `/v1/shops/{shop}/customers/{id}/ledger` | entries, newest first, paged |
//! | POST | `/v1/shops/{shop}/customers/{id}/adjustments` | credit or debit; `Idempotency-Key` required |
//! | POST | `/v1/shops/{shop}/customers/{id}/regenerate-code` | a new code |
//! | GET | `/v1/shops/{shop}/customers/{id}/profile` | email-tool properties |
//! | PUT | `/v1/shops/{shop}/customers/{id}/birthday` | set or correct the birthday (month, day) |
//! | GET | `/v1/shops/{shop}/profiles` | every profile, paged (export) |
//! | PUT, POST | `/v1/shops/{shop}/catalog` | import products |
//! | GET | `/v1/shops/{shop}/reports?from=&to=` | the period's figures |
//! | POST | `/v1/shops/{shop}/imports/dry-run?format=` | check a migration file, every bad row named |
//! | POST | `/v1/shops/{shop}/imports?format=&cursor=&limit=` | import a chunk of it, each row once |
//! | GET | `/v1/shops/{shop}/exports/customers` | customers with their figures, CSV, paged |
//! | GET | `/v1/shops/{shop}/exports/customers/{id}/ledger` | one customer's ledger, CSV, paged |
//! | GET | `/v1/shops/{shop}/exports/report?from=&to=` | the period's report, CSV |
//! | GET, POST | `/v1/shops/{shop}/api-keys` | list the keys (last used), create one (shown once) |
//! | DELETE | `/v1/shops/{shop}/api-keys/{key_id}` | revoke a key |
//! | GET | `/v1/shops/{shop}/platform-sync` | the codes' sync setting, the backfill's checkpoint |
//! | POST | `/v1/shops/{shop}/platform-sync/reconcile`, `/backfill` | ask the sync function for a run (202) |
//! | POST | `/v1/shops/{shop}/reinstall` | the app installed again: syncing resumes, every code reconciled |
//! | GET, POST | `/v1/table-exports[?export_time=]` | the table's exports to S3; start one (202) |
//! | GET | `/v1/table-exports/{id}` | one export, until `completed` |
//! | GET, POST | `/v1/shops/{shop}/event-endpoints` | list the outgoing event endpoints, create one (secret shown once) |
//! | DELETE | `/v1/shops/{shop}/event-endpoints/{endpoint_id}` | delete one |
//! | POST | `/v1/shops/{shop}/event-endpoints/{endpoint_id}/rotate-secret` | a new secret (shown once; the old one signs 24 h more, or `?previous_valid_hours=0..24`) |
//! | GET | `/v1/shops/{shop}/event-endpoints/{endpoint_id}/deliveries` | recent deliveries, newest first |
//!
//! Paged answers are `{"items": [...], "next_cursor": "..." | null}`; pass
//! `cursor=<next_cursor>` (and `limit`, at most 100) for the next page.
//!
//! # Layout
//! Each handler takes its inputs through the extractors of
//! `cashback_edge::extract` (path values, query, principal, idempotency key,
//! `If-Match`, the body), which refuse with the JSON error, and returns
//! `Result<Json<_>, ApiError>`.
//! - [`auth`]: who may call ([`AdminAuth`]), the middleware in front of
//!   every route.
//! - `routes`: the route table, in parts the Lambda builds on first use.
//! - `program`, `coupons`, `customers`, `shops` (onboarding, catalog,
//!   reports), `api_keys`: the handlers of each route group.
//! - `imports`: the migration import (dry run and run); `exports`: the CSV
//!   downloads.
//! - `params`: paging, dates and the paged answer they share.

mod api_keys;
pub mod auth;
mod birthdays;
mod coupons;
mod customers;
pub mod event_endpoints;
mod exports;
mod imports;
mod params;
mod platform_sync;
mod program;
mod reinstall;
mod routes;
mod shops;
mod table_exports;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;

use cashback_app::Context;
use cashback_edge::extract::BodyLimit;

pub use auth::{
    admin_token_hash_from_env, iam_from_env, AdminAuth, ADMIN_AUTH_ENV, ADMIN_TOKEN_ENV,
    TOKEN_PRINCIPAL,
};
pub use cashback_edge::extract::{Principal, IDEMPOTENCY_KEY};
pub use customers::IDEMPOTENT_REPLAYED;
pub use event_endpoints::EndpointChecks;

/// A catalog import of 500 products is about 100 KB; nothing needs more.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct AdminState {
    ctx: Context,
    auth: Arc<AdminAuth>,
    endpoint_checks: EndpointChecks,
}

impl FromRef<AdminState> for BodyLimit {
    fn from_ref(_: &AdminState) -> BodyLimit {
        BodyLimit(MAX_BODY_BYTES)
    }
}

/// The Lambda's router: each group of routes is built by the first request
/// under its prefix (`routes`). `admin_token_hash` is the SHA-256 (hex) of
/// the admin token; None trusts IAM only when `CASHBACK_ADMIN_AUTH=iam`,
/// and refuses everything otherwise.
pub fn router(ctx: Context, admin_token_hash: Option<String>) -> Router {
    routes::parts().on_first_use(AdminState {
        ctx,
        auth: Arc::new(AdminAuth::new(admin_token_hash, iam_from_env())),
        endpoint_checks: EndpointChecks::default(),
    })
}

/// Every admin route, built at once, with an explicit authorisation: one
/// router to merge with others (tests, local server).
pub fn router_with(ctx: Context, auth: AdminAuth) -> Router {
    router_with_checks(ctx, auth, EndpointChecks::default())
}

/// Every admin route, built at once, with an explicit authorisation and the
/// checks of event endpoint URLs (tests resolve names from a table).
pub fn router_with_checks(
    ctx: Context,
    auth: AdminAuth,
    endpoint_checks: EndpointChecks,
) -> Router {
    routes::parts().all(AdminState {
        ctx,
        auth: Arc::new(auth),
        endpoint_checks,
    })
}

/// Every route's path: what API Gateway must send to this function.
pub fn route_paths() -> Vec<&'static str> {
    routes::parts().paths()
}
