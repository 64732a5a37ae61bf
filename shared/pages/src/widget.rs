//! The embeddable widget: a script a theme includes on any page, showing
//! the logged-in customer's balance and code from a small JSON answer.
//!
//! The JSON is reached the two ways the page is, and checked exactly as the
//! page checks them ([`crate::customer`]):
//!
//! - `GET /pages/proxy/widget.json` through Shopify's app proxy
//!   (`/apps/cashback/widget.json` on the shop's domain): the proxy
//!   signature, freshness, the shop and one `logged_in_customer_id`. The
//!   customer is the one Shopify says is logged in, never one the request
//!   names.
//! - `GET /pages/shops/{shop}/customers/{id}/widget.json?expires=&sig=`: the
//!   signed page link's signature (WooCommerce), minted server-side.
//!
//! A refusal is the shared JSON error and carries no figure. The answer holds
//! only what the widget shows (the display name, the balance to spend, the
//! code, where to apply it, the page), never the history or an email.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use cashback_app::portal::{self, EntriesPage};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_edge::ApiError;

use crate::customer::{self, Params, Urls};
use crate::PagesState;

pub const PROXY_ROUTE: &str = "/pages/proxy/widget.json";
pub const LINK_ROUTE: &str = "/pages/shops/{shop}/customers/{id}/widget.json";

/// What the widget shows; nothing else of the customer's leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WidgetView {
    pub display_name: String,
    /// False before the first cashback: the widget invites instead.
    pub enrolled: bool,
    /// The balance to spend (available less what checkouts hold), as shown.
    pub balance: String,
    /// Cashback still waiting for its orders' return periods, as shown.
    pub pending: String,
    pub code: Option<String>,
    /// Applies the code at checkout (Shopify's `/discount/CODE`), if the
    /// platform has such a link.
    pub apply_url: Option<String>,
    /// The customer's whole page.
    pub page_url: String,
}

async fn widget_view(
    state: &PagesState,
    shop: &ShopId,
    customer: &CustomerId,
    urls: &Urls,
    now: DateTime<Utc>,
) -> Result<WidgetView, ApiError> {
    // The view's newest page is the cheapest read it makes; one row suffices.
    let page = EntriesPage {
        cursor: None,
        limit: Some(1),
    };
    let view = portal::customer_view(&state.ctx, shop, customer, &page, now).await?;
    Ok(WidgetView {
        display_name: view.display_name.clone(),
        enrolled: view.enrolled,
        balance: view.spendable.to_string(),
        pending: view.pending.to_string(),
        apply_url: customer::apply_url(view.code.as_deref(), urls),
        code: view.code,
        page_url: urls.page.clone(),
    })
}

fn answer(result: Result<WidgetView, ApiError>) -> Response {
    match result {
        Ok(view) => customer::private(Json(view).into_response()),
        Err(error) => {
            if error.status.is_server_error() {
                tracing::warn!(%error, "widget failed");
            }
            customer::private(error.into_response())
        }
    }
}

/// `GET /pages/proxy/widget.json`: through Shopify's app proxy, on the
/// shop's own domain (no CORS needed or given).
pub(crate) async fn proxy_json(
    State(state): State<PagesState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let params = customer::query_params(query)?;
        let (shop, customer, prefix) = customer::proxied_customer(&state, &params, now).await?;
        widget_view(
            &state,
            &shop,
            &customer,
            &customer::proxy_urls(&prefix),
            now,
        )
        .await
    }
    .await;
    answer(result)
}

/// `GET .../widget.json?expires=&sig=`: the signed link, read by the widget
/// from the shop's pages (another origin). The signature in the URL is the
/// only credential (no cookie is read), so any origin may read the answer:
/// it tells no more than the URL already opens.
pub(crate) async fn link_json(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let (shop, customer) = customer::link_ids(path)?;
        let params = customer::query_params(query)?;
        customer::check_link(&state, &shop, &customer, &params, now)?;
        let mut urls = customer::link_page_urls(&state, &shop, &customer, &params, now).await?;
        // Read from the shop's site: the page is on ours.
        urls.page = format!(
            "{}{}",
            state.ctx.config.public_base_url.trim_end_matches('/'),
            urls.page
        );
        widget_view(&state, &shop, &customer, &urls, now).await
    }
    .await;
    let mut response = answer(result);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
