//! The page routes in parts by path prefix ([`RouteParts`]): the Lambda
//! builds a part on the first request under its prefix, so its start
//! builds no route (BENCHMARKS.md, section 4).

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use cashback_edge::route_parts::RouteParts;

use crate::{
    assets, coupons, customer, dashboard, platform_sync, program, reports, widget, with_link_keys,
    PagesState, MAX_BODY_BYTES,
};

/// Every page route, each part under its prefix.
pub(crate) fn parts() -> RouteParts<PagesState> {
    RouteParts::new(finish, rest_routes)
        .part("/pages/proxy", proxy_routes)
        .part("/pages/shops/{shop}/customers", link_routes)
        .part("/dashboard/shops/{shop}/coupons", coupons_routes)
        .part("/dashboard/shops/{shop}/customers", customers_routes)
        .part("/dashboard/shops/{shop}/program", program_routes)
        .part(
            "/dashboard/shops/{shop}/platform-sync",
            platform_sync_routes,
        )
}

/// The link keys are read before anything else (a form's token and a
/// link's signature need them), and no body is read past [`MAX_BODY_BYTES`].
fn finish(routes: Router<PagesState>, state: PagesState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.ctx.clone(),
            with_link_keys,
        ))
        .with_state(state)
}

/// The stylesheet and scripts, the dashboard's sign-in and its reports.
fn rest_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        ("/pages/assets/{file}", get(assets::serve)),
        (
            "/dashboard/login",
            get(dashboard::login_page).post(dashboard::login),
        ),
        ("/dashboard/logout", post(dashboard::logout)),
        ("/dashboard/embedded", get(dashboard::embedded)),
        ("/dashboard/shops/{shop}/reports", get(reports::page)),
    ]
}

/// The customer's page through Shopify's app proxy.
fn proxy_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        ("/pages/proxy/assets/{file}", get(assets::serve)),
        ("/pages/proxy", get(customer::proxy_page)),
        (
            "/pages/proxy/preferences",
            post(customer::proxy_preferences),
        ),
        ("/pages/proxy/birthday", post(customer::proxy_birthday)),
        (widget::PROXY_ROUTE, get(widget::proxy_json)),
    ]
}

/// The customer's page from a signed link, and minting one.
fn link_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        (widget::LINK_ROUTE, get(widget::link_json)),
        (customer::LINK_PAGE_ROUTE, get(customer::link_page)),
        (
            "/pages/shops/{shop}/customers/{id}/preferences",
            post(customer::link_preferences),
        ),
        (
            "/pages/shops/{shop}/customers/{id}/birthday",
            post(customer::link_birthday),
        ),
        (
            "/pages/shops/{shop}/customers/{id}/link",
            post(customer::mint_link),
        ),
    ]
}

/// The dashboard's cashback coupons.
fn coupons_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        (
            "/dashboard/shops/{shop}/coupons",
            get(coupons::list).post(coupons::create),
        ),
        ("/dashboard/shops/{shop}/coupons/new", get(coupons::new)),
        (
            "/dashboard/shops/{shop}/coupons/{code}",
            get(coupons::edit).post(coupons::update),
        ),
        (
            "/dashboard/shops/{shop}/coupons/{code}/status",
            post(coupons::set_status),
        ),
    ]
}

/// The dashboard's customers: ledger, adjustments, code, emails.
fn customers_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        (
            "/dashboard/shops/{shop}/customers",
            get(dashboard::customers),
        ),
        (
            "/dashboard/shops/{shop}/customers/{id}",
            get(dashboard::customer),
        ),
        (
            "/dashboard/shops/{shop}/customers/{id}/adjustments",
            post(dashboard::adjust),
        ),
        (
            "/dashboard/shops/{shop}/customers/{id}/regenerate-code",
            post(dashboard::regenerate_code),
        ),
        (
            "/dashboard/shops/{shop}/customers/{id}/resend-email",
            post(dashboard::resend_email),
        ),
    ]
}

/// The program editor and its versions.
fn program_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        (
            "/dashboard/shops/{shop}/program",
            get(program::page).post(program::save),
        ),
        (
            "/dashboard/shops/{shop}/program/versions/{version}",
            get(program::version),
        ),
    ]
}

/// The platform sync panel.
fn platform_sync_routes() -> Vec<(&'static str, MethodRouter<PagesState>)> {
    vec![
        (
            "/dashboard/shops/{shop}/platform-sync",
            get(platform_sync::page),
        ),
        (
            "/dashboard/shops/{shop}/platform-sync/reconcile",
            post(platform_sync::reconcile),
        ),
    ]
}
