//! The CSV downloads through the admin router on the in-memory store: the
//! customers with their figures a page at a time, a ledger whose notes try
//! to run formulas in a spreadsheet, and a report.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_store::MemoryStore;
use http_body_util::BodyExt;
use tower::ServiceExt;

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

async fn ctx() -> cashback_app::Context {
    seed(Arc::new(MemoryStore::new())).await
}

struct Download {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn download(ctx: &cashback_app::Context, uri: &str) -> Download {
    let response = app(ctx)
        .oneshot(request("GET", uri, None, &[]))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Download {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn customers_download_a_page_at_a_time_and_the_pages_make_one_file() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    pay(&ctx, "o-2", "bob", "40.00").await;
    pay(&ctx, "o-3", "cy", "10.00").await;

    let whole = download(&ctx, &format!("{BASE}/exports/customers")).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    assert_eq!(whole.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        whole.headers["content-disposition"],
        "attachment; filename=\"customers.csv\""
    );
    assert!(whole.headers.get("x-next-cursor").is_none());
    let lines: Vec<&str> = whole.body.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "customer_id,email,code,currency,available,pending,held,spendable,debt,\
         lifetime_issued,lifetime_used,lifetime_eligible_spend,tier,orders_earned,version"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("ann,ann@example.com,"), "{}", lines[1]);
    assert!(lines[1].contains(",USD,0.00,10.00,"), "{}", lines[1]);

    let mut pages = String::new();
    let mut uri = format!("{BASE}/exports/customers?limit=1");
    let mut calls = 0;
    loop {
        let page = download(&ctx, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        calls += 1;
        pages.push_str(&page.body);
        let Some(next) = page.headers.get("x-next-cursor") else {
            break;
        };
        let link = page.headers["link"].to_str().unwrap().to_string();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        assert!(link.contains("limit=1"), "{link}");
        uri = format!(
            "{BASE}/exports/customers?limit=1&cursor={}",
            encode(next.to_str().unwrap())
        );
    }
    assert_eq!(calls, 3);
    assert_eq!(
        pages, whole.body,
        "the header comes once, on the first page"
    );
}

#[tokio::test]
async fn a_ledger_download_makes_formulas_inert_and_keeps_amounts_numbers() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    for (key, amount, reason) in [
        (
            "k1",
            "5.00",
            "=HYPERLINK(\"http://evil.example\",\"click\")",
        ),
        ("k2", "-2.50", "@SUM(A1:A9), \"quoted\"\nnext line"),
    ] {
        let body = format!(
            "{{\"amount\":\"{amount}\",\"reason\":{}}}",
            serde_json::to_string(reason).unwrap()
        );
        let answer = send(
            app(&ctx),
            request(
                "POST",
                &format!("{BASE}/customers/ann/adjustments"),
                Some(&body),
                &[("idempotency-key", key)],
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    }
    let ledger = download(&ctx, &format!("{BASE}/exports/customers/ann/ledger")).await;
    assert_eq!(ledger.status, StatusCode::OK, "{}", ledger.body);
    let body = &ledger.body;
    assert!(body.starts_with(
        "entry_id,at,kind,order_id,available_delta,pending_delta,debt_delta,\
         funded_by_merchant,funded_by_partner,note\r\n"
    ));
    // Newest first: the debit, its note quoted (comma, quotes, line
    // break) and made inert; its amount a plain negative number.
    assert!(
        body.contains(
            ",adjust,,-2.50,0.00,0.00,,,\"'@SUM(A1:A9), \"\"quoted\"\"\nnext line (by admin-token)\"\r\n"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            ",adjust,,5.00,0.00,0.00,,,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")"
        ),
        "{body}"
    );
    assert!(
        body.contains(",earn,o-1,0.00,10.00,0.00,10.00,0.00,"),
        "{body}"
    );
    // No cell of the file starts a formula.
    for cell in body.split([',', '\n']) {
        let cell = cell.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '@']),
            "a cell starts a formula: {cell:?}"
        );
    }

    let unknown = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/exports/customers/nobody/ledger"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_report_downloads_as_one_row_per_figure() {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    // Reports lag the ledger: the aggregator reads the feed first.
    cashback_test_support::reports::catch_up(&store).await;
    let today = chrono::Utc::now().date_naive();
    let report = download(
        &ctx,
        &format!("{BASE}/exports/report?from={today}&to={today}"),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert_eq!(
        report.headers["content-disposition"],
        format!("attachment; filename=\"report-{today}-{today}.csv\"").as_str()
    );
    assert!(report.body.starts_with("metric,value\r\n"));
    assert!(
        report.body.contains("\r\ncurrency,USD\r\n"),
        "{}",
        report.body
    );
    assert!(
        report.body.contains("\r\nissued.total,10.00\r\n"),
        "{}",
        report.body
    );

    let bad = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/exports/report?from={today}"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let too_many = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/exports/customers?limit=5001"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.json["error"]["fields"][0]["field"], "limit");
}
