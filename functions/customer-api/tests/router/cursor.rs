//! The ledger cursor of the customer view is the caller's input: one that
//! is not a cursor this API returned is a 400, on DynamoDB too (through
//! moto; it used to reach the store and come back as a 500).

use std::sync::Arc;

use axum::http::StatusCode;

use crate::support::*;
use cashback_test_support::moto;
use customer_api::{router_with, CustomerApiConfig};

fn config() -> CustomerApiConfig {
    CustomerApiConfig {
        shopify_app_secret: None,
        proxy_max_age_seconds: 300,
    }
}

#[tokio::test]
async fn on_dynamodb_a_malformed_cursor_is_400_not_500() {
    let Some(store) = moto::fresh_store("customer_api_cursor").await else {
        return;
    };
    let ctx = seed(Arc::new(store), "30.00").await;
    // Hex (as this API's cursors are) of something that is no cursor, and
    // not hex at all.
    for cursor in [hex_of("not a cursor"), hex_of("{}"), "zz".to_string()] {
        let uri = format!("/v1/shops/demo.myshopify.com/customers/ann/cashback?cursor={cursor}");
        let (status, _, json) =
            send(router_with(ctx.clone(), config()), get(&uri, Some(API_KEY))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {json}");
        assert!(json["error"]["code"].is_string(), "{json}");
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
