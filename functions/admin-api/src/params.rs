//! What several route groups read from the query string (a page, a date)
//! and the paged answer they give.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Json;
use chrono::NaiveDate;
use serde::Serialize;

use cashback_app::admin;
use cashback_app::store::Page;
use cashback_edge::extract::ApiQuery;
use cashback_edge::ApiError;

/// A query string's parameters.
pub(crate) type Params = HashMap<String, String>;

/// `{"items": [...], "next_cursor": ...}`.
#[derive(Serialize)]
pub(crate) struct PageBody<T: Serialize> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// A page of items as the paged answer.
pub(crate) fn page_body<T: Serialize>(page: Page<T>) -> Json<PageBody<T>> {
    Json(PageBody {
        items: page.items,
        next_cursor: page.next,
    })
}

/// `cursor=` and `limit=` (1 to [`admin::MAX_PAGE`]) from the query
/// string: which page a paged route answers.
pub(crate) struct Paging {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Paging, ApiError> {
        let ApiQuery(params) = ApiQuery::<Params>::from_request_parts(parts, state).await?;
        let limit = match params.get("limit").map(|l| l.trim()) {
            None | Some("") => None,
            Some(raw) => Some(
                raw.parse::<u32>()
                    .ok()
                    .filter(|l| (1..=admin::MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            "limit",
                            format!("must be a whole number from 1 to {}", admin::MAX_PAGE),
                        )
                    })?,
            ),
        };
        let cursor = params
            .get("cursor")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        Ok(Paging { cursor, limit })
    }
}

/// The required date parameter `name`, `YYYY-MM-DD`.
pub(crate) fn date_of(params: &Params, name: &str) -> Result<NaiveDate, ApiError> {
    let raw = params
        .get(name)
        .ok_or_else(|| ApiError::invalid_field(name, "required: a date, YYYY-MM-DD"))?;
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::invalid_field(name, "must be a date, YYYY-MM-DD"))
}
