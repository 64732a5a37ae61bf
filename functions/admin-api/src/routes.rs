//! The admin routes in parts by path prefix ([`RouteParts`]): the Lambda
//! builds a part on the first request under its prefix, so its start
//! builds no route (BENCHMARKS.md, section 4). The crate doc lists them.

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

use cashback_edge::route_parts::RouteParts;

use crate::{
    api_keys, auth, birthdays, coupons, customers, event_endpoints, exports, imports,
    platform_sync, program, reinstall, shops, table_exports, AdminState, MAX_BODY_BYTES,
};

/// Every admin route, each part under its prefix.
pub(crate) fn parts() -> RouteParts<AdminState> {
    RouteParts::new(finish, rest_routes)
        .part("/v1/shops/{shop}/program", program_routes)
        .part("/v1/shops/{shop}/coupons", coupons_routes)
        .part("/v1/shops/{shop}/customers", customers_routes)
        .part("/v1/shops/{shop}/exports", exports_routes)
        .part("/v1/shops/{shop}/imports", imports_routes)
        .part("/v1/shops/{shop}/api-keys", api_keys_routes)
        .part("/v1/shops/{shop}/platform-sync", platform_sync_routes)
        .part("/v1/shops/{shop}/event-endpoints", event_endpoints_routes)
        .part("/v1/table-exports", table_exports_routes)
}

/// Every route is authorised first (the caller's principal recorded), and
/// no body is read past [`MAX_BODY_BYTES`].
fn finish(routes: Router<AdminState>, state: AdminState) -> Router {
    routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorise,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Onboarding, catalog, reports and profiles: the shop-wide routes.
fn rest_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        ("/v1/shops", post(shops::create_shop)),
        ("/v1/shops/{shop}/profiles", get(customers::export_profiles)),
        (
            "/v1/shops/{shop}/catalog",
            post(shops::import_catalog).put(shops::import_catalog),
        ),
        ("/v1/shops/{shop}/reports", get(shops::report)),
        ("/v1/shops/{shop}/reinstall", post(reinstall::reinstall)),
    ]
}

/// The program and its versions.
fn program_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/program",
            get(program::get_program).put(program::put_program),
        ),
        (
            "/v1/shops/{shop}/program/versions/{version}",
            get(program::get_program_version),
        ),
    ]
}

/// Cashback coupons.
fn coupons_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/coupons",
            get(coupons::list_coupons).post(coupons::create_coupon),
        ),
        (
            "/v1/shops/{shop}/coupons/{code}",
            get(coupons::get_coupon).put(coupons::update_coupon),
        ),
        (
            "/v1/shops/{shop}/coupons/{code}/pause",
            post(coupons::pause_coupon),
        ),
        (
            "/v1/shops/{shop}/coupons/{code}/approve",
            post(coupons::approve_coupon),
        ),
    ]
}

/// One customer: look up, ledger, adjustments, code, profile, birthday.
fn customers_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/customers",
            get(customers::lookup_customer),
        ),
        (
            "/v1/shops/{shop}/customers/{id}",
            get(customers::get_customer),
        ),
        (
            "/v1/shops/{shop}/customers/{id}/ledger",
            get(customers::ledger),
        ),
        (
            "/v1/shops/{shop}/customers/{id}/adjustments",
            post(customers::adjust),
        ),
        (
            "/v1/shops/{shop}/customers/{id}/regenerate-code",
            post(customers::regenerate_code),
        ),
        (
            "/v1/shops/{shop}/customers/{id}/profile",
            get(customers::profile),
        ),
        (
            "/v1/shops/{shop}/customers/{id}/birthday",
            put(birthdays::put_birthday),
        ),
    ]
}

/// The CSV downloads.
fn exports_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/exports/customers",
            get(exports::customers),
        ),
        (
            "/v1/shops/{shop}/exports/customers/{id}/ledger",
            get(exports::ledger),
        ),
        ("/v1/shops/{shop}/exports/report", get(exports::report)),
    ]
}

/// The migration import.
fn imports_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        ("/v1/shops/{shop}/imports", post(imports::run)),
        ("/v1/shops/{shop}/imports/dry-run", post(imports::dry_run)),
    ]
}

/// The shop's API keys.
fn api_keys_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/api-keys",
            get(api_keys::list_api_keys).post(api_keys::create_api_key),
        ),
        (
            "/v1/shops/{shop}/api-keys/{key_id}",
            delete(api_keys::revoke_api_key),
        ),
    ]
}

/// The codes' sync with the platform.
fn platform_sync_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        ("/v1/shops/{shop}/platform-sync", get(platform_sync::status)),
        (
            "/v1/shops/{shop}/platform-sync/reconcile",
            post(platform_sync::reconcile),
        ),
        (
            "/v1/shops/{shop}/platform-sync/backfill",
            post(platform_sync::backfill),
        ),
    ]
}

/// Outgoing event endpoints.
fn event_endpoints_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/shops/{shop}/event-endpoints",
            get(event_endpoints::list).post(event_endpoints::create),
        ),
        (
            "/v1/shops/{shop}/event-endpoints/{endpoint_id}",
            delete(event_endpoints::delete),
        ),
        (
            "/v1/shops/{shop}/event-endpoints/{endpoint_id}/rotate-secret",
            post(event_endpoints::rotate),
        ),
        (
            "/v1/shops/{shop}/event-endpoints/{endpoint_id}/deliveries",
            get(event_endpoints::deliveries),
        ),
    ]
}

/// The table's exports to S3.
fn table_exports_routes() -> Vec<(&'static str, MethodRouter<AdminState>)> {
    vec![
        (
            "/v1/table-exports",
            get(table_exports::list).post(table_exports::start),
        ),
        ("/v1/table-exports/{id}", get(table_exports::get)),
    ]
}
