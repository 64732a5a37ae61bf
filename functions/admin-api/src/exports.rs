//! CSV downloads: the shop's customers with their figures, one customer's
//! ledger, and a period's report (see `cashback_app::admin::export_customers`).
//! A page answers `text/csv`; when more follows, the `X-Next-Cursor` header
//! (and a `Link` with `rel="next"`) names the next page, whose rows continue
//! the file without a second header row.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use cashback_app::admin::{self, CsvPage};
use cashback_core::ids::ShopId;
use cashback_edge::extract::{ApiQuery, InPath};
use cashback_edge::ApiError;

use crate::customers::CustomerPath;
use crate::params::{date_of, Params};
use crate::AdminState;

/// The response header naming the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

fn limit_of(params: &Params) -> Result<Option<u32>, ApiError> {
    match params.get("limit").map(|l| l.trim()) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<u32>().map(Some).map_err(|_| {
            ApiError::invalid_field(
                "limit",
                format!(
                    "must be a whole number from 1 to {}",
                    admin::MAX_EXPORT_ROWS
                ),
            )
        }),
    }
}

fn cursor_of(params: &Params) -> Option<String> {
    params
        .get("cursor")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
}

/// Percent-encodes a query value (cursors hold `#`, `+`, `/`, `=`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The page as a CSV download named `filename`, with the next page's
/// cursor and link when there is one.
fn csv(page: CsvPage, filename: &str, uri: &OriginalUri, params: &Params) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(next) = &page.next_cursor {
        if let Ok(value) = HeaderValue::from_str(next) {
            headers.insert(HeaderName::from_static(NEXT_CURSOR), value);
        }
        let mut query = format!("cursor={}", encode(next));
        if let Some(limit) = params.get("limit") {
            query.push_str(&format!("&limit={}", encode(limit)));
        }
        let link = format!("<{}?{query}>; rel=\"next\"", uri.0.path());
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    (headers, page.body).into_response()
}

pub(crate) async fn customers(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    uri: OriginalUri,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Response, ApiError> {
    let limit = limit_of(&params)?;
    let page = admin::export_customers(&state.ctx, &shop, cursor_of(&params), limit).await?;
    Ok(csv(page, "customers.csv", &uri, &params))
}

pub(crate) async fn ledger(
    State(state): State<AdminState>,
    CustomerPath { shop, customer }: CustomerPath,
    uri: OriginalUri,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Response, ApiError> {
    let limit = limit_of(&params)?;
    let page =
        admin::export_ledger(&state.ctx, &shop, &customer, cursor_of(&params), limit).await?;
    Ok(csv(page, "ledger.csv", &uri, &params))
}

pub(crate) async fn report(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    uri: OriginalUri,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Response, ApiError> {
    let (from, to) = (date_of(&params, "from")?, date_of(&params, "to")?);
    let page = admin::export_report(&state.ctx, &shop, from, to).await?;
    Ok(csv(page, &format!("report-{from}-{to}.csv"), &uri, &params))
}
