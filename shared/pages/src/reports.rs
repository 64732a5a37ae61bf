//! Reports in the dashboard: issued and redeemed over time, liability by
//! funder at a date, breakage, redemption and repeat-purchase rates, each as
//! an SVG chart with its numbers in a table under it, and the same numbers
//! as CSV. Every figure is `admin::report`'s (docs/reports.md): the period
//! is cut into buckets and each bucket is one report.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;

use cashback_app::admin::{self, Report};
use cashback_app::AppError;

use crate::charts::{self, Series};
use crate::dashboard::{app_failure, html, message, nav, no_store, signed_in, Nav};
use crate::PagesState;

/// Days shown when the form does not say.
const DEFAULT_DAYS: i64 = 30;

pub struct BucketRow {
    pub from: String,
    pub to: String,
    pub issued: String,
    pub redeemed: String,
}

pub struct Figure {
    pub name: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub from: String,
    pub to: String,
    pub from_error: Option<String>,
    pub to_error: Option<String>,
    pub currency: String,
    pub over_time_svg: String,
    pub buckets: Vec<BucketRow>,
    pub liability_svg: String,
    pub liability: Vec<Figure>,
    pub rates_svg: String,
    pub rates: Vec<Figure>,
    pub csv_url: String,
    pub shown: bool,
}

/// The period's buckets: days up to a month, weeks up to half a year,
/// 30-day blocks beyond.
pub fn buckets(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let days = (to - from).num_days() + 1;
    let size = if days <= 31 {
        1
    } else if days <= 183 {
        7
    } else {
        30
    };
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + Duration::days(size - 1)).min(to);
        out.push((start, end));
        start = end + Duration::days(1);
    }
    out
}

/// A figure as shown: a zero is never "-0.00".
fn shown(value: Decimal) -> String {
    if value.is_zero() {
        value.abs().to_string()
    } else {
        value.to_string()
    }
}

fn rate(value: Option<Decimal>) -> String {
    value
        .map(|r| format!("{} %", (r * Decimal::ONE_HUNDRED).round_dp(2).normalize()))
        .unwrap_or_else(|| "none yet".into())
}

type Params = Vec<(String, String)>;

fn date_param(params: &Params, name: &str) -> Result<Option<NaiveDate>, String> {
    match params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
    {
        None | Some("") => Ok(None),
        Some(raw) => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| "must be a date, YYYY-MM-DD".to_string()),
    }
}

struct Figures {
    whole: Report,
    series: Vec<((NaiveDate, NaiveDate), Report)>,
}

async fn figures(
    state: &PagesState,
    shop: &cashback_core::ids::ShopId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Figures, AppError> {
    let whole = admin::report(&state.ctx, shop, from, to).await?;
    let mut series = Vec::new();
    for (start, end) in buckets(from, to) {
        series.push((
            (start, end),
            admin::report(&state.ctx, shop, start, end).await?,
        ));
    }
    Ok(Figures { whole, series })
}

fn csv(figures: &Figures) -> String {
    let r = &figures.whole;
    let mut out = String::from("from,to,issued,redeemed\n");
    for ((start, end), report) in &figures.series {
        out.push_str(&format!(
            "{start},{end},{},{}\n",
            report.issued.total, report.redeemed
        ));
    }
    out.push_str("\nliability_at,available,pending,total,merchant,partner,debt\n");
    let l = &r.liability;
    out.push_str(&format!(
        "{},{},{},{},{},{},{}\n",
        l.at, l.available, l.pending, l.total, l.merchant, l.partner, l.debt
    ));
    out.push_str("\nbreakage_rate,redemption_rate,repeat_purchase_rate\n");
    let opt = |v: Option<Decimal>| v.map(|d| d.to_string()).unwrap_or_default();
    out.push_str(&format!(
        "{},{},{}\n",
        opt(r.breakage_rate),
        opt(r.redemption_rate),
        opt(r.repeat_purchase_rate)
    ));
    out
}

pub(crate) async fn page(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    query: Query<Params>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path(raw_shop)) = path else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "The address is malformed.",
        );
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let params = query.0;
    let nav = nav(&state, &session);
    let today = now.date_naive();
    let mut page = ReportsPage {
        shop: shop.to_string(),
        nav: Some(nav),
        from: String::new(),
        to: String::new(),
        from_error: None,
        to_error: None,
        currency: String::new(),
        over_time_svg: String::new(),
        buckets: Vec::new(),
        liability_svg: String::new(),
        liability: Vec::new(),
        rates_svg: String::new(),
        rates: Vec::new(),
        csv_url: String::new(),
        shown: false,
    };
    let from = date_param(&params, "from");
    let to = date_param(&params, "to");
    page.from = params
        .iter()
        .find(|(k, _)| k == "from")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    page.to = params
        .iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (from, to) = match (from, to) {
        (Ok(from), Ok(to)) => {
            let to = to.unwrap_or(today);
            (from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1)), to)
        }
        (from, to) => {
            page.from_error = from.err();
            page.to_error = to.err();
            return html(StatusCode::BAD_REQUEST, &page);
        }
    };
    page.from = from.to_string();
    page.to = to.to_string();
    let figures = match figures(&state, &shop, from, to).await {
        Ok(figures) => figures,
        Err(AppError::InvalidFields(errors)) => {
            for error in errors {
                match error.field.as_str() {
                    "from" => page.from_error = Some(error.message),
                    _ => page.to_error = Some(error.message),
                }
            }
            return html(StatusCode::BAD_REQUEST, &page);
        }
        Err(error) => return app_failure(error),
    };
    if params.iter().any(|(k, v)| k == "format" && v == "csv") {
        return no_store(
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"cashback-{shop}-{from}-{to}.csv\""),
                    ),
                ],
                csv(&figures),
            )
                .into_response(),
        );
    }
    let r = &figures.whole;
    page.shown = true;
    page.currency = r.currency.to_string();
    page.csv_url = format!("/dashboard/shops/{shop}/reports?from={from}&to={to}&format=csv");
    let labels: Vec<String> = figures
        .series
        .iter()
        .map(|((start, _), _)| start.format("%-d %b").to_string())
        .collect();
    page.over_time_svg = charts::bars(
        "Cashback issued and redeemed over time",
        &labels,
        &[
            Series {
                name: "issued",
                colour: "#0b5cad",
                values: figures.series.iter().map(|(_, r)| r.issued.total).collect(),
            },
            Series {
                name: "redeemed",
                colour: "#d4a72c",
                values: figures.series.iter().map(|(_, r)| r.redeemed).collect(),
            },
        ],
    );
    page.buckets = figures
        .series
        .iter()
        .map(|((start, end), r)| BucketRow {
            from: start.to_string(),
            to: end.to_string(),
            issued: shown(r.issued.total),
            redeemed: shown(r.redeemed),
        })
        .collect();
    let l = &r.liability;
    page.liability_svg = charts::horizontal(
        &format!("Liability by funder at the end of {}", l.at),
        &[
            ("Merchant".into(), l.merchant, "#0b5cad"),
            ("Partner".into(), l.partner, "#8250df"),
            ("Debt (not liability)".into(), l.debt, "#b3261e"),
        ],
        None,
    );
    page.liability = vec![
        Figure {
            name: "Available",
            value: l.available.to_string(),
        },
        Figure {
            name: "Pending",
            value: l.pending.to_string(),
        },
        Figure {
            name: "Total",
            value: l.total.to_string(),
        },
        Figure {
            name: "Merchant",
            value: l.merchant.to_string(),
        },
        Figure {
            name: "Partner",
            value: l.partner.to_string(),
        },
        Figure {
            name: "Debt (owed by customers)",
            value: l.debt.to_string(),
        },
    ];
    let pct = |v: Option<Decimal>| v.unwrap_or_default() * Decimal::ONE_HUNDRED;
    page.rates_svg = charts::horizontal(
        "Breakage, redemption and repeat-purchase rates, percent",
        &[
            (
                "Breakage".into(),
                pct(r.breakage_rate).round_dp(2),
                "#b3261e",
            ),
            (
                "Redemption".into(),
                pct(r.redemption_rate).round_dp(2),
                "#116329",
            ),
            (
                "Repeat purchase".into(),
                pct(r.repeat_purchase_rate).round_dp(2),
                "#0b5cad",
            ),
        ],
        Some(Decimal::ONE_HUNDRED),
    );
    page.rates = vec![
        Figure {
            name: "Breakage (expired / released)",
            value: rate(r.breakage_rate),
        },
        Figure {
            name: "Redemption ((redeemed - restored) / released)",
            value: rate(r.redemption_rate),
        },
        Figure {
            name: "Repeat purchase (customers now)",
            value: rate(r.repeat_purchase_rate),
        },
    ];
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_cut_into_days_weeks_or_months_without_gaps() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(buckets(d("2026-01-01"), d("2026-01-30")).len(), 30);
        let weeks = buckets(d("2026-01-01"), d("2026-03-01"));
        assert_eq!(weeks.first().unwrap().0, d("2026-01-01"));
        assert_eq!(weeks.last().unwrap().1, d("2026-03-01"));
        assert!(weeks
            .windows(2)
            .all(|w| w[0].1 + Duration::days(1) == w[1].0));
        assert_eq!(buckets(d("2026-01-01"), d("2026-12-31")).len(), 13);
    }
}
