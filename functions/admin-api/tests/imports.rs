//! The migration import through the admin router on the in-memory store:
//! the dry run names every bad row, a run imports each row once however
//! often it is made, a chunked run resumes from its cursor, and a row
//! cannot take another customer's code.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_store::MemoryStore;
use chrono::{Duration, Utc};

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

async fn ctx() -> cashback_app::Context {
    seed(Arc::new(MemoryStore::new())).await
}

async fn import(ctx: &cashback_app::Context, query: &str, file: &str) -> Answer {
    send(
        app(ctx),
        request("POST", &format!("{BASE}/imports{query}"), Some(file), &[]),
    )
    .await
}

async fn customer(ctx: &cashback_app::Context, id: &str) -> Answer {
    send(
        app(ctx),
        request("GET", &format!("{BASE}/customers/{id}"), None, &[]),
    )
    .await
}

/// Alice already has an account (and a code) from an order here.
async fn alice_code(ctx: &cashback_app::Context) -> String {
    pay(ctx, "9001", "alice", "100.00").await;
    let alice = customer(ctx, "alice").await;
    alice.json["code"].as_str().unwrap().to_string()
}

fn release_day() -> String {
    (Utc::now() + Duration::days(2))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test]
async fn the_dry_run_names_every_bad_row_with_its_line_and_writes_nothing() {
    let ctx = ctx().await;
    let taken = alice_code(&ctx).await;
    let file = format!(
        "customer_id,email,balance,code,pending,pending_release_at\n\
         101,ann@example.com,12.50,ANN-OLD,,\n\
         102,bo@example.com,-1,,,\n\
         103,cy@example.com,1.00,{taken},,\n\
         104,not-an-email,1.00,,,\n\
         105,di@example.com,1.00,,2.00,\n"
    );
    let answer = import(&ctx, "/dry-run", &file).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["clean"], false);
    assert_eq!(answer.json["rows"], 1);
    assert_eq!(answer.json["balance"], "12.50");
    assert_eq!(answer.json["currency"], "USD");
    let problems: Vec<(u64, String)> = answer.json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        vec![
            (3, "balance is negative".to_string()),
            (4, "code already belongs to another customer".to_string()),
            (5, "email is not an email address".to_string()),
            (6, "pending and pending_release_at go together".to_string()),
        ]
    );
    assert_eq!(
        customer(&ctx, "101").await.status,
        StatusCode::NOT_FOUND,
        "a dry run writes nothing"
    );
    // A real run of the same file is refused whole, every bad line named.
    let refused = import(&ctx, "", &file).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = refused.json["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["line 3", "line 5", "line 6"]);
    assert_eq!(customer(&ctx, "101").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replayed_import_credits_nothing_twice() {
    let ctx = ctx().await;
    let file = format!(
        "customer_id,email,balance,code,pending,pending_release_at\n\
         101,ann@example.com,12.50,ANN-OLD,4.20,{}\n\
         102,bo@example.com,3.00,,,\n",
        release_day()
    );
    let first = import(&ctx, "", &file).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(first.json["imported"], 2);
    assert_eq!(first.json["already_imported"], 0);
    assert_eq!(first.json["balance"], "15.50");
    assert_eq!(first.json["pending"], "4.20");
    assert!(first.json["next_cursor"].is_null());

    let ann = customer(&ctx, "101").await;
    assert_eq!(ann.json["available"], "12.50");
    assert_eq!(ann.json["pending"], "4.20");
    assert_eq!(ann.json["lifetime_issued"], "16.70");
    assert_eq!(ann.json["code"], "ANN-OLD");
    assert_eq!(ann.json["email"], "ann@example.com");
    let bo = customer(&ctx, "102").await;
    assert_eq!(bo.json["available"], "3.00");
    assert!(
        bo.json["code"].is_string(),
        "a new account gets a code to spend it with"
    );

    for _ in 0..2 {
        let again = import(&ctx, "", &file).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json["imported"], 0);
        assert_eq!(again.json["already_imported"], 2);
        assert_eq!(again.json["balance"], "0.00");
    }
    let ann = customer(&ctx, "101").await;
    assert_eq!(ann.json["available"], "12.50");
    assert_eq!(ann.json["pending"], "4.20");
    let ledger = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/101/ledger"), None, &[]),
    )
    .await;
    let entries = ledger.json["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", ledger.json);
    for entry in entries {
        assert_eq!(entry["kind"], "adjust");
        let note = entry["note"].as_str().unwrap();
        assert!(
            note.starts_with("imported from another app (line 2"),
            "{note}"
        );
        assert!(note.ends_with("(by admin-token)"), "{note}");
    }
}

#[tokio::test]
async fn a_row_claiming_another_customers_code_is_refused_and_writes_nothing() {
    let ctx = ctx().await;
    let taken = alice_code(&ctx).await;
    let before = customer(&ctx, "alice").await.json;
    // Lower case or not, a code is one code.
    let file = format!(
        "customer_id,email,balance,code\n\
         mallory,mallory@example.com,50.00,{}\n\
         102,bo@example.com,3.00,BO-OLD\n",
        taken.to_lowercase()
    );
    let answer = import(&ctx, "", &file).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["imported"], 1);
    assert_eq!(answer.json["refused"][0]["line"], 2);
    assert_eq!(
        answer.json["refused"][0]["reason"],
        "code already belongs to another customer"
    );
    assert_eq!(
        customer(&ctx, "mallory").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(customer(&ctx, "alice").await.json, before);
    let owner = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers?code={}", encode(&taken)),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(owner.json["customer_id"], "alice");
}

#[tokio::test]
async fn a_chunked_run_resumes_from_its_cursor_and_refuses_another_files_cursor() {
    let ctx = ctx().await;
    let file = "{\"customer_id\":\"1\",\"email\":\"a@example.com\",\"balance\":\"1.00\"}\n\
                {\"customer_id\":\"2\",\"email\":\"b@example.com\",\"balance\":\"2.00\"}\n\
                {\"customer_id\":\"3\",\"email\":\"c@example.com\",\"balance\":\"3.00\"}\n";
    let first = import(&ctx, "?format=jsonl&limit=2", file).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(first.json["rows"], 3);
    assert_eq!(first.json["processed"], 2);
    assert_eq!(first.json["imported"], 2);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(customer(&ctx, "3").await.status, StatusCode::NOT_FOUND);

    // A crash after the first chunk: the same call is made again, and what
    // it had done is skipped.
    let retried = import(&ctx, "?format=jsonl&limit=2", file).await;
    assert_eq!(retried.json["already_imported"], 2);

    let other = "{\"customer_id\":\"9\",\"email\":\"z@example.com\",\"balance\":\"1\"}\n";
    let wrong = import(
        &ctx,
        &format!("?format=jsonl&cursor={}", encode(&cursor)),
        other,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json["error"]["fields"][0]["field"], "cursor");

    let rest = import(
        &ctx,
        &format!("?format=jsonl&limit=2&cursor={}", encode(&cursor)),
        file,
    )
    .await;
    assert_eq!(rest.json["from"], 2);
    assert_eq!(rest.json["imported"], 1);
    assert!(rest.json["next_cursor"].is_null());
    assert_eq!(customer(&ctx, "3").await.json["available"], "3.00");

    let too_many = import(&ctx, "?format=jsonl&limit=1001", file).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    let unknown = import(&ctx, "?format=xml", file).await;
    assert_eq!(unknown.json["error"]["fields"][0]["field"], "format");
}

#[tokio::test]
async fn imported_pending_cashback_is_released_on_its_date_by_the_release_job() {
    let ctx = ctx().await;
    let file = format!(
        "customer_id,email,balance,pending,pending_release_at\n\
         101,ann@example.com,0,4.20,{}\n",
        release_day()
    );
    assert_eq!(import(&ctx, "", &file).await.json["imported"], 1);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let config = JobConfig {
        finish_reserve: std::time::Duration::ZERO,
        ..JobConfig::default()
    };
    let early = promote_due(&ctx, &TokioClock, &config, Utc::now(), deadline)
        .await
        .unwrap();
    assert_eq!(early.released, 0);
    let later = Utc::now() + Duration::days(3);
    let run = promote_due(&ctx, &TokioClock, &config, later, deadline)
        .await
        .unwrap();
    assert_eq!(run.released, 1);
    let ann = customer(&ctx, "101").await;
    assert_eq!(ann.json["available"], "4.20");
    assert_eq!(ann.json["pending"], "0.00");
}

#[tokio::test]
async fn a_row_cannot_claim_a_cashback_coupon_or_a_referral_code_as_a_balance_code() {
    use cashback_app::store::{AccountWrite, CodeChange, ReadRequest, WriteSet};
    use cashback_core::ids::{Code, CustomerId};

    let ctx = ctx().await;
    let coupon = r#"{"code":"WELCOME10","display_name":"10 back",
        "reward":{"type":"fixed","amount":"10.00"}}"#;
    let created = send(
        app(&ctx),
        request("POST", &format!("{BASE}/coupons"), Some(coupon), &[]),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    // Alice shares a referral code.
    alice_code(&ctx).await;
    let shop = cashback_core::ids::ShopId::parse("demo.myshopify.com").unwrap();
    let alice = CustomerId::parse("alice").unwrap();
    let read = ctx
        .store
        .read(&shop, &ReadRequest::account(&alice))
        .await
        .unwrap();
    let account = read.accounts[&alice].clone();
    let program = ctx.store.get_program(&shop).await.unwrap().unwrap().value;
    let change = CodeChange {
        new_code: account.value.code.clone().unwrap(),
        old_code: account.value.code.clone(),
        referral_code: Some(Code::parse("ALICE-FRIENDS").unwrap()),
    };
    ctx.store
        .write(
            &shop,
            WriteSet::account(AccountWrite::of(&program, account).with_code_change(Some(change))),
        )
        .await
        .unwrap();

    let file = "customer_id,email,balance,code\n\
         mallory,mallory@example.com,50.00,welcome10\n\
         eve,eve@example.com,50.00,ALICE-FRIENDS\n";
    let dry = send(
        app(&ctx),
        request("POST", &format!("{BASE}/imports/dry-run"), Some(file), &[]),
    )
    .await;
    let refused = dry.json["refused"].to_string() + &dry.json.to_string();
    assert!(refused.contains("cashback coupons"), "{}", dry.json);
    assert!(refused.contains("referral code"), "{}", dry.json);
    let answer = import(&ctx, "", file).await;
    assert_eq!(answer.json["imported"], 0, "{}", answer.json);
    for who in ["mallory", "eve"] {
        assert_eq!(customer(&ctx, who).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_imported_birthday_is_kept_as_month_and_day_and_a_bad_one_refuses_its_row() {
    let ctx = ctx().await;
    let file = "customer_id,email,balance,birthday\n\
         101,ann@example.com,1.00,1990-02-29\n\
         102,bo@example.com,1.00,02-30\n";
    let dry = send(
        app(&ctx),
        request("POST", &format!("{BASE}/imports/dry-run"), Some(file), &[]),
    )
    .await;
    assert!(
        dry.json.to_string().contains("birthday \\\"02-30\\\""),
        "{}",
        dry.json
    );
    let refused = import(&ctx, "", file).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(customer(&ctx, "101").await.status, StatusCode::NOT_FOUND);

    let file = "customer_id,email,balance,birthday\n101,ann@example.com,1.00,1990-02-29\n";
    let answer = import(&ctx, "", file).await;
    assert_eq!(answer.json["imported"], 1, "{}", answer.json);
    let ann = customer(&ctx, "101").await;
    assert_eq!(
        ann.json["birthday"],
        serde_json::json!({"month": 2, "day": 29}),
        "{}",
        ann.json
    );
}
