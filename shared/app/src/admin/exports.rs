//! CSV downloads for spreadsheets: the shop's customers with their figures,
//! one customer's ledger, and a report.
//!
//! A large shop is downloaded a page at a time: each answer holds up to a
//! `limit` of rows (read from the store [`super::MAX_PAGE`] at a time) and
//! the cursor of the next page, and only the first page (no cursor) starts
//! with the header row, so the pages concatenated in order are one file.
//!
//! Cells are RFC 4180 (a field holding a comma, quote or line break is
//! quoted, quotes doubled; CRLF between records). Text that came from
//! outside (emails, codes, notes, ids) and starts with `=`, `+`, `-`, `@`, a
//! tab or a carriage return is prefixed with `'`, so a spreadsheet shows it
//! instead of running it as a formula (OWASP's CSV injection advice).
//! Amounts are written as the plain numbers they are: a number is never a
//! formula, and a `'` would turn a debit into text.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::LedgerEntry;

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::customers::{read_account, CustomerView};
use super::{bad_cursor, field, known_shop, report, MAX_PAGE};

/// Rows an export page holds when the caller does not say.
pub const DEFAULT_EXPORT_ROWS: u32 = 1_000;
/// The most rows one export page holds: about 1 MB of CSV, well inside
/// Lambda's 6 MB response.
pub const MAX_EXPORT_ROWS: u32 = 5_000;

/// One page of a CSV download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvPage {
    /// The rows, CRLF-terminated; the header row first on the first page.
    pub body: String,
    /// The next page's cursor; None on the last page.
    pub next_cursor: Option<String>,
}

/// A cell of a CSV row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Text, possibly from outside: guarded against formulas.
    Text(String),
    /// An amount or a count we computed, written as it is.
    Number(String),
}

impl Cell {
    /// Text, or an empty cell.
    pub fn text(value: Option<impl ToString>) -> Cell {
        Cell::Text(value.map(|v| v.to_string()).unwrap_or_default())
    }

    /// A decimal amount.
    pub fn amount(value: Decimal) -> Cell {
        Cell::Number(value.to_string())
    }
}

/// One cell as it goes in the file: quoted when it must be, and text
/// starting like a formula made inert.
pub fn csv_cell(cell: &Cell) -> String {
    let raw = match cell {
        Cell::Number(number) => return number.clone(),
        Cell::Text(text) => text,
    };
    let guarded = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.clone()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// A record: its cells joined by commas, ended by CRLF.
pub fn csv_row(cells: &[Cell]) -> String {
    let mut line = cells.iter().map(csv_cell).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

fn header(names: &[&str]) -> String {
    csv_row(
        &names
            .iter()
            .map(|n| Cell::Text((*n).into()))
            .collect::<Vec<_>>(),
    )
}

fn export_limit(limit: Option<u32>) -> Result<usize, AppError> {
    match limit {
        None => Ok(DEFAULT_EXPORT_ROWS as usize),
        Some(limit) if (1..=MAX_EXPORT_ROWS).contains(&limit) => Ok(limit as usize),
        Some(_) => Err(AppError::InvalidFields(vec![field(
            "limit",
            format!("must be a whole number from 1 to {MAX_EXPORT_ROWS}"),
        )])),
    }
}

/// Reads pages of a list from `cursor` until `limit` rows or the end.
async fn collect<T, F, Fut>(
    cursor: Option<String>,
    limit: usize,
    mut page: F,
) -> Result<(Vec<T>, Option<String>), AppError>
where
    F: FnMut(Option<String>, u32) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut next = cursor;
    loop {
        let want = (limit - items.len()).min(MAX_PAGE as usize) as u32;
        let got = page(next.take(), want).await.map_err(bad_cursor)?;
        items.extend(got.items);
        next = got.next;
        if next.is_none() || items.len() >= limit {
            return Ok((items, next));
        }
    }
}

const CUSTOMER_COLUMNS: [&str; 15] = [
    "customer_id",
    "email",
    "code",
    "currency",
    "available",
    "pending",
    "held",
    "spendable",
    "debt",
    "lifetime_issued",
    "lifetime_used",
    "lifetime_eligible_spend",
    "tier",
    "orders_earned",
    "version",
];

/// A page of the shop's customers with their figures, in customer id order.
pub async fn export_customers(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<CsvPage, AppError> {
    let limit = export_limit(limit)?;
    known_shop(ctx, shop).await?;
    let program = ctx.store.get_program(shop).await?.map(|p| p.value);
    let first = cursor.is_none();
    let (accounts, next_cursor) = collect(cursor, limit, |cursor, want| {
        ctx.store.list_accounts(shop, cursor, want)
    })
    .await?;
    let mut body = if first {
        header(&CUSTOMER_COLUMNS)
    } else {
        String::new()
    };
    for account in &accounts {
        let view = CustomerView::of(account, program.as_ref());
        body.push_str(&csv_row(&[
            Cell::Text(view.customer_id.to_string()),
            Cell::text(view.email.as_ref()),
            Cell::text(view.code.as_ref()),
            Cell::Text(view.currency.code().to_string()),
            Cell::amount(view.available),
            Cell::amount(view.pending),
            Cell::amount(view.held),
            Cell::amount(view.spendable),
            Cell::amount(view.debt),
            Cell::amount(view.lifetime_issued),
            Cell::amount(view.lifetime_used),
            Cell::amount(view.lifetime_eligible_spend),
            Cell::text(view.tier.as_ref().map(|t| &t.name)),
            Cell::Number(view.orders_earned.to_string()),
            Cell::Number(view.version.to_string()),
        ]));
    }
    Ok(CsvPage { body, next_cursor })
}

const LEDGER_COLUMNS: [&str; 10] = [
    "entry_id",
    "at",
    "kind",
    "order_id",
    "available_delta",
    "pending_delta",
    "debt_delta",
    "funded_by_merchant",
    "funded_by_partner",
    "note",
];

fn ledger_row(entry: &LedgerEntry) -> String {
    let kind = serde_json::to_value(entry.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    csv_row(&[
        Cell::Text(entry.entry_id.clone()),
        Cell::Text(entry.at.to_rfc3339()),
        Cell::Text(kind),
        Cell::text(entry.order_id.as_ref()),
        Cell::amount(entry.available_delta.amount()),
        Cell::amount(entry.pending_delta.amount()),
        Cell::amount(entry.debt_delta.amount()),
        entry.funding.map_or(Cell::Number(String::new()), |f| {
            Cell::amount(f.merchant.amount())
        }),
        entry.funding.map_or(Cell::Number(String::new()), |f| {
            Cell::amount(f.partner.amount())
        }),
        Cell::text(entry.note.as_ref()),
    ])
}

/// A page of one customer's ledger, newest first.
pub async fn export_ledger(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<CsvPage, AppError> {
    let limit = export_limit(limit)?;
    known_shop(ctx, shop).await?;
    read_account(ctx, shop, customer).await?;
    let first = cursor.is_none();
    let (entries, next_cursor) = collect(cursor, limit, |cursor, want| {
        ctx.store.ledger(shop, customer, cursor, want)
    })
    .await?;
    let mut body = if first {
        header(&LEDGER_COLUMNS)
    } else {
        String::new()
    };
    for entry in &entries {
        body.push_str(&ledger_row(entry));
    }
    Ok(CsvPage { body, next_cursor })
}

/// The period's report as `metric,value` rows, one per figure, named by
/// its path in the JSON report (`issued.merchant`,
/// `customers.by_tier.0.customers`), so every figure the report gains
/// appears here too.
pub async fn export_report(
    ctx: &Context,
    shop: &ShopId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<CsvPage, AppError> {
    let report = report(ctx, shop, from, to).await?;
    let value = serde_json::to_value(&report)
        .map_err(|e| AppError::Invalid(format!("cannot encode the report: {e}")))?;
    let mut body = header(&["metric", "value"]);
    let mut rows = Vec::new();
    flatten(String::new(), &value, &mut rows);
    for (metric, cell) in rows {
        body.push_str(&csv_row(&[Cell::Text(metric), cell]));
    }
    Ok(CsvPage {
        body,
        next_cursor: None,
    })
}

fn flatten(path: String, value: &Value, rows: &mut Vec<(String, Cell)>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(join(key), inner, rows);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                flatten(join(&index.to_string()), inner, rows);
            }
        }
        Value::Null => rows.push((path, Cell::Text(String::new()))),
        Value::Bool(flag) => rows.push((path, Cell::Text(flag.to_string()))),
        Value::Number(number) => rows.push((path, Cell::Number(number.to_string()))),
        // Amounts are decimal strings in the JSON: numbers here.
        Value::String(text) if text.parse::<Decimal>().is_ok() => {
            rows.push((path, Cell::Number(text.clone())));
        }
        Value::String(text) => rows.push((path, Cell::Text(text.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> String {
        csv_cell(&Cell::Text(value.into()))
    }

    #[test]
    fn cells_are_quoted_when_they_must_be_and_formulas_made_inert() {
        assert_eq!(text("plain"), "plain");
        assert_eq!(text("a,b"), "\"a,b\"");
        assert_eq!(text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text("two\nlines"), "\"two\nlines\"");
        assert_eq!(text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text("+1"), "'+1");
        assert_eq!(text("-2+3"), "'-2+3");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("\tcmd"), "'\tcmd");
        assert_eq!(text("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_cell(&Cell::amount(Decimal::new(-250, 2))), "-2.50");
        assert_eq!(
            csv_row(&[Cell::Text("a".into()), Cell::Number("1".into())]),
            "a,1\r\n"
        );
    }

    #[test]
    fn a_report_flattens_to_one_row_per_figure() {
        let value = serde_json::json!({
            "shop": "demo",
            "issued": {"total": "12.00"},
            "rate": null,
            "tiers": [{"name": "=Gold", "customers": 2}],
        });
        let mut rows = Vec::new();
        flatten(String::new(), &value, &mut rows);
        let mut lines: Vec<String> = rows
            .into_iter()
            .map(|(metric, cell)| csv_row(&[Cell::Text(metric), cell]))
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                "issued.total,12.00\r\n",
                "rate,\r\n",
                "shop,demo\r\n",
                "tiers.0.customers,2\r\n",
                "tiers.0.name,'=Gold\r\n",
            ]
        );
    }
}
