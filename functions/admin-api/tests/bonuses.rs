//! Bonuses through the admin router: the program's `bonuses` validated like
//! every field, and a customer's birthday set by the merchant (29 February
//! kept, days that exist in no year and garbage refused, nothing changed).

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_store::MemoryStore;

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

async fn ctx() -> cashback_app::Context {
    seed(Arc::new(MemoryStore::new())).await
}

fn fields(answer: &Answer) -> Vec<String> {
    answer.json["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_programs_bonuses_are_validated_field_by_field_and_kept() {
    let ctx = ctx().await;
    let bad = r#"{"currency":"USD","bonuses":{
        "birthday":{"amount":"5.001","days_before":40},
        "win_back":{"after_days":90,"once_per_days":30,"reward":{"type":"extra_percent","percent":"150","valid_days":30}},
        "milestones":[{"lifetime_spend":"500"},{"lifetime_spend":"100"}]}}"#;
    let refused = send(
        app(&ctx),
        request("PUT", &format!("{BASE}/program"), Some(bad), &[]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(
        fields(&refused),
        [
            "bonuses.birthday.amount",
            "bonuses.birthday.days_before",
            "bonuses.win_back.once_per_days",
            "bonuses.win_back.reward.percent",
            "bonuses.milestones[1].lifetime_spend",
        ]
    );
    let unknown = r#"{"currency":"USD","bonuses":{"birthday":{"amount":"5","when":"soon"}}}"#;
    let refused = send(
        app(&ctx),
        request("PUT", &format!("{BASE}/program"), Some(unknown), &[]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let current = send(
        app(&ctx),
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    assert_eq!(current.json["version"], 1, "nothing was stored");
    assert!(current.json["program"].get("bonuses").is_none());

    let good = r#"{"currency":"USD","earning":{"merchant_percent":"10"},"bonuses":{
        "birthday":{"amount":"5.00","days_before":3},
        "anniversary":{"amount":"2.00"},
        "win_back":{"after_days":90,"once_per_days":180,"reward":{"type":"amount","amount":"7.00"}},
        "milestones":[{"lifetime_spend":"500"},{"lifetime_spend":"1000","amount":"10.00"}]}}"#;
    let stored = send(
        app(&ctx),
        request("PUT", &format!("{BASE}/program"), Some(good), &[]),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.json);
    let bonuses = &stored.json["program"]["bonuses"];
    assert_eq!(bonuses["birthday"]["amount"], "5.00");
    assert_eq!(bonuses["birthday"]["days_before"], 3);
    assert_eq!(bonuses["milestones"][1]["amount"], "10.00");
    assert_eq!(bonuses["pays_debt"], false);
}

#[tokio::test]
async fn the_merchant_sets_a_birthday_as_month_and_day_and_bad_days_change_nothing() {
    let ctx = ctx().await;
    pay(&ctx, "1", "ann", "20.00").await;
    let uri = format!("{BASE}/customers/ann/birthday");
    let leap = send(
        app(&ctx),
        request("PUT", &uri, Some(r#"{"month":2,"day":29}"#), &[]),
    )
    .await;
    assert_eq!(leap.status, StatusCode::OK, "{}", leap.json);
    assert_eq!(
        leap.json["birthday"],
        serde_json::json!({"month": 2, "day": 29})
    );

    for bad in [
        r#"{"month":4,"day":31}"#,
        r#"{"month":2,"day":30}"#,
        r#"{"month":13,"day":1}"#,
        r#"{"month":0,"day":0}"#,
        r#"{"month":-1,"day":3}"#,
        r#"{"month":"02","day":"29"}"#,
        r#"{"month":2,"day":29,"year":1990}"#,
        r#"{"birthday":"1990-02-29"}"#,
        r#"[]"#,
        r#"garbage"#,
        r#"{"month":4294967296,"day":1}"#,
    ] {
        let refused = send(app(&ctx), request("PUT", &uri, Some(bad), &[])).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.json
        );
        assert_eq!(fields(&refused), ["birthday"], "{bad}");
    }
    let customer = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/ann"), None, &[]),
    )
    .await;
    assert_eq!(
        customer.json["birthday"],
        serde_json::json!({"month": 2, "day": 29}),
        "the refused days changed nothing"
    );
    let nobody = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/customers/nobody/birthday"),
            Some(r#"{"month":1,"day":1}"#),
            &[],
        ),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
}
