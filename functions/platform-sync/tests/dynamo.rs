//! End to end on DynamoDB (moto) through the real functions: Shopify
//! webhooks through the order-webhook router (earn, redeem with the code,
//! refund), the admin router (adjust, regenerate the code), the release and
//! expiry job, and the platform-sync handler fed the stream records of the
//! account item as DynamoDB writes it (old and new images read back from
//! the table). After each step the fake Shopify's code amount equals the
//! ledger's spendable balance.
//!
//! Skipped without `MOTO_ENDPOINT` (fails with `REQUIRE_MOTO=1`):
//! `source infra/moto.sh && moto_start`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use tower::ServiceExt;

use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::platform_codes::{PlatformSync, SyncPolicy};
use cashback_app::store::{Platform, ReadRequest, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;
use cashback_core::platform_code::ExistingStoreCredit;
use cashback_core::program::{Issuance, Program};
use cashback_edge::auth::hash_api_key;
use cashback_platform_codes::{ConnectSettings, Connections, CredentialsPlace, StaticCredentials};
use cashback_store::DynamoStore;
use cashback_test_support::doubles::{KeptNotifier, SeqCodes};
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};
use cashback_test_support::samples::{
    self, shopify_delivery, Stage, DEMO_SECRET, DEMO_SECRET_REF, DEMO_SHOP, SHOPIFY_CUSTOMER_ID,
};
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::WebhookState;
use platform_sync::shops::FixedShops;
use platform_sync::{handle, Deps};

const ADMIN_TOKEN: &str = "admin-token-for-the-sync-test";

fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.issuance = Issuance::Pending { days: 1 };
    program.redemption.min_balance = dec!(5);
    program.expiry_days = Some(30);
    program.platform_sync = PlatformSync::DiscountCode;
    program
}

/// The sample orders are dated 2026-03-02.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
}

struct World {
    store: Arc<DynamoStore>,
    ctx: Context,
    raw: aws_sdk_dynamodb::Client,
    deps: Deps,
    webhook: Router,
    admin: Router,
    /// The account item as last read (the next record's old image).
    last_image: Mutex<Option<Value>>,
    sequence: Mutex<u64>,
}

fn maya() -> CustomerId {
    CustomerId::parse(&SHOPIFY_CUSTOMER_ID.to_string()).unwrap()
}

fn shop() -> ShopId {
    ShopId::parse(DEMO_SHOP).unwrap()
}

/// An attribute as the stream's JSON carries it.
fn stream_value(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::L(items) => {
            json!({ "L": items.iter().map(stream_value).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => {
            json!({ "M": map.iter().map(|(k, v)| (k.clone(), stream_value(v))).collect::<serde_json::Map<_, _>>() })
        }
        AttributeValue::Ss(items) => json!({ "SS": items }),
        AttributeValue::Ns(items) => json!({ "NS": items }),
        other => panic!("an attribute the engine does not write: {other:?}"),
    }
}

/// The shop's adapter, connected to the fake Shopify with its admin token.
fn connected_to(shopify: &FakeShopify) -> Arc<Connections> {
    let place = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
    Arc::new(Connections::new(
        place.clone(),
        Arc::new(StaticCredentials(HashMap::from([(
            place.reference(&shop()).unwrap().to_string(),
            format!(
                r#"{{"admin_token":"{}","shop_url":"{}"}}"#,
                fake::ADMIN_TOKEN,
                shopify.url()
            ),
        )]))),
        ConnectSettings {
            timeout: StdDuration::from_millis(500),
            ..ConnectSettings::default()
        },
    ))
}

impl World {
    async fn new(endpoint: &str) -> World {
        let store =
            Arc::new(cashback_test_support::moto::store_on(endpoint, "platform_sync_e2e").await);
        let sdk = cashback_test_support::moto::sdk_config().await;
        let raw = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build(),
        );
        store
            .create_shop(&Shop {
                shop: shop(),
                platform: Platform::Shopify,
                currency: Currency::USD,
                name: "Demo Store".into(),
                webhook_secret_ref: DEMO_SECRET_REF.into(),
                api_key_hash: String::new(),
                created_at: now() - Duration::days(30),
                guest_id_key: None,
            })
            .await
            .unwrap();
        store
            .put_program(&shop(), &program(), 0, now() - Duration::days(30))
            .await
            .unwrap();
        let ctx = Context::new(
            store.clone(),
            Arc::new(KeptNotifier::default()),
            Arc::new(SeqCodes(Mutex::new(7))),
            AppConfig::default(),
        );
        let secrets = Arc::new(SecretCache::new(
            Arc::new(FixedSecrets::new([(DEMO_SECRET_REF, DEMO_SECRET)])),
            300,
        ));
        let at = now();
        let webhook = order_webhook::router(
            WebhookState::new(ctx.clone(), secrets).with_clock(Arc::new(move || at)),
        );
        let admin = admin_api::router_with(
            ctx.clone(),
            admin_api::AdminAuth::Token(hash_api_key(ADMIN_TOKEN)),
        );
        World {
            store,
            ctx: ctx.clone(),
            raw,
            deps: Deps {
                ctx,
                connections: Arc::new(Connections::new(
                    CredentialsPlace::parse("ssm:/cashback/platform/").unwrap(),
                    Arc::new(StaticCredentials(HashMap::new())),
                    ConnectSettings::default(),
                )),
                shops: Arc::new(FixedShops(vec![shop()])),
                policy: SyncPolicy {
                    max_attempts: 4,
                    base_backoff: StdDuration::from_millis(5),
                    max_backoff: StdDuration::from_millis(50),
                    ..SyncPolicy::default()
                },
                concurrency: 4,
                run_budget: StdDuration::from_secs(20),
                marketing: None,
                retries: None,
            },
            webhook,
            admin,
            last_image: Mutex::new(None),
            sequence: Mutex::new(1000),
        }
    }

    /// The account item's write, as the table's stream delivers it, to
    /// the platform-sync function.
    async fn stream_the_account(&self) -> Value {
        let pk = cashback_store::keys::account_key(&shop(), &maya());
        let item = self
            .raw
            .get_item()
            .table_name(self.store.table_name())
            .key("pk", AttributeValue::S(pk.clone()))
            .key(
                "sk",
                AttributeValue::S(cashback_store::keys::ACCOUNT_SK.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the account item");
        let image: serde_json::Map<String, Value> = item
            .iter()
            .map(|(k, v)| (k.clone(), stream_value(v)))
            .collect();
        let image = Value::Object(image);
        let old = self.last_image.lock().unwrap().replace(image.clone());
        let sequence = {
            let mut s = self.sequence.lock().unwrap();
            *s += 1;
            *s
        };
        let mut change = json!({
            "Keys": { "pk": { "S": pk }, "sk": { "S": cashback_store::keys::ACCOUNT_SK } },
            "NewImage": image,
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 900,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(old) = &old {
            change["OldImage"] = old.clone();
        }
        let record = json!({
            "eventID": format!("e{sequence}"),
            "eventName": if old.is_some() { "MODIFY" } else { "INSERT" },
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        });
        handle(&self.deps, json!({ "Records": [record] }), now())
            .await
            .unwrap()
    }

    async fn account(&self) -> Account {
        let read = self
            .store
            .read(&shop(), &ReadRequest::account(&maya()))
            .await
            .unwrap();
        read.accounts[&maya()].value.clone()
    }

    async fn post(
        &self,
        router: &Router,
        uri: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Value {
        let mut builder = Request::post(uri);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = router
            .clone()
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "{uri}: {status} {json}");
        json
    }

    async fn shopify(&self, topic: &str, body: String) {
        let headers = shopify_delivery(topic, &body, DEMO_SECRET);
        self.post(&self.webhook, "/webhooks/shopify", &headers, body)
            .await;
    }

    async fn admin(&self, path: &str, body: &str, key: &str) {
        let headers = vec![
            ("authorization".to_string(), format!("Bearer {ADMIN_TOKEN}")),
            ("content-type".to_string(), "application/json".to_string()),
            ("idempotency-key".to_string(), key.to_string()),
        ];
        let uri = format!("/v1/shops/{DEMO_SHOP}/customers/{}/{path}", maya());
        self.post(&self.admin, &uri, &headers, body.to_string())
            .await;
    }

    async fn promote(&self, at: DateTime<Utc>) {
        promote_due(
            &self.ctx,
            &TokioClock,
            // Two days back and no checkpoint: each run reads only the due
            // buckets around its own time (moto answers a query slowly).
            &JobConfig {
                finish_reserve: StdDuration::ZERO,
                lookback: Duration::days(2),
                settle: Duration::days(3650),
                ..JobConfig::default()
            },
            at,
            tokio::time::Instant::now() + StdDuration::from_secs(60),
        )
        .await
        .unwrap();
    }
}

/// The platform's code says what the ledger says.
fn assert_in_step(shopify: &FakeShopify, account: &Account, step: &str) {
    let code = account.code.clone().expect("a code");
    let spendable = account.spendable().amount();
    let usable = spendable >= dec!(5);
    match shopify.discount(code.as_str()) {
        Some(discount) => {
            assert_eq!(
                discount.is_active(),
                usable,
                "{step}: {discount:?} vs {spendable}"
            );
            if usable {
                assert_eq!(discount.amount, spendable, "{step}");
            }
        }
        None => assert!(!usable, "{step}: no code on the platform for {spendable}"),
    }
}

#[tokio::test]
async fn every_balance_change_through_the_real_functions_reaches_the_fake_shopify() {
    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_e2e") else {
        return;
    };
    let shopify = FakeShopify::start().await;
    let mut w = World::new(&endpoint).await;
    w.deps.connections = connected_to(&shopify);
    let no_failures = json!({ "batchItemFailures": [] });

    // Earn: the sample order, paid (pending cashback; the code spends nothing yet).
    let paid = samples::shopify_order(Stage::Paid).to_string();
    w.shopify("orders/paid", paid).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    assert_in_step(&shopify, &w.account().await, "earn");

    // Release.
    w.promote(now() + Duration::days(2)).await;
    assert!(w.account().await.available.is_positive());
    assert_eq!(w.stream_the_account().await, no_failures);
    assert_in_step(&shopify, &w.account().await, "release");

    // Adjust: a goodwill credit.
    w.admin(
        "adjustments",
        r#"{"amount":"20.00","reason":"goodwill"}"#,
        "k1",
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    let before_redeem = w.account().await;
    assert_in_step(&shopify, &before_redeem, "adjust");

    // Redeem: a second order pays 15.75 with her code.
    let code = before_redeem.code.clone().unwrap();
    let mut second = samples::shopify_order_with(5_920_381_274_650_003_333, "#3001", Stage::Paid);
    second["discount_codes"][0]["code"] = json!(code.as_str());
    second["discount_applications"][0]["code"] = json!(code.as_str());
    w.shopify("orders/paid", second.to_string()).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    let after_redeem = w.account().await;
    assert!(
        after_redeem.lifetime_used.is_positive(),
        "the code was spent"
    );
    assert_in_step(&shopify, &after_redeem, "redeem");

    // Refund of part of the first order: cashback clawed back.
    let refund = samples::named("shopify-refunds-create.json", samples::GENERIC_SIGNED_AT)
        .expect("the refund sample");
    w.post(
        &w.webhook,
        "/webhooks/shopify",
        &refund.headers,
        refund.body,
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    assert_in_step(&shopify, &w.account().await, "refund");

    // Expire: at the end of the UTC day 30 days after the goodwill credit
    // (the admin's clock is the wall clock), what is left of it lapses.
    let before_expiry = w.account().await.available;
    w.promote(Utc::now() + Duration::days(31) + Duration::hours(1))
        .await;
    let expired = w.account().await;
    assert!(
        expired.available.amount() < before_expiry.amount(),
        "{before_expiry:?} -> {:?}",
        expired.available
    );
    assert_eq!(w.stream_the_account().await, no_failures);
    assert_in_step(&shopify, &expired, "expire");

    // A new balance and a new code: the old code ends.
    w.admin(
        "adjustments",
        r#"{"amount":"12.00","reason":"welcome back"}"#,
        "k2",
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    w.admin("regenerate-code", "{}", "k3").await;
    assert_eq!(w.stream_the_account().await, no_failures);
    let renewed = w.account().await;
    assert_ne!(renewed.code.as_ref(), Some(&code));
    assert!(
        !shopify.discount(code.as_str()).unwrap().is_active(),
        "the old code ends"
    );
    assert_in_step(&shopify, &renewed, "regenerate");
    assert_eq!(
        shopify
            .discount(renewed.code.unwrap().as_str())
            .unwrap()
            .customers,
        [format!("gid://shopify/Customer/{SHOPIFY_CUSTOMER_ID}")]
    );
}

/// Store-credit mode through the same functions: after each step the fake
/// Shopify's store credit balance for the customer equals the ledger's
/// spendable balance (nothing below the minimum); a payment with store
/// credit at Shopify's checkout and a refund back to it are read from the
/// account's transactions into the ledger by the sync (the reconcile run
/// brings them in when no balance change of the customer's does).
#[tokio::test]
async fn store_credit_through_the_real_functions_follows_the_ledger() {
    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_e2e") else {
        return;
    };
    let shopify = FakeShopify::start().await;
    let mut w = World::new(&endpoint).await;
    let mut store_credit = program();
    store_credit.platform_sync = PlatformSync::StoreCredit;
    store_credit.existing_store_credit = Some(ExistingStoreCredit::KeptApart);
    store_credit.redemption.combine_with_order = true;
    store_credit.validate().unwrap();
    w.store
        .put_program(&shop(), &store_credit, 1, now() - Duration::days(29))
        .await
        .unwrap();
    w.ctx.invalidate(&shop());
    w.deps.connections = connected_to(&shopify);
    let no_failures = json!({ "batchItemFailures": [] });
    let maya_id = SHOPIFY_CUSTOMER_ID.to_string();
    let in_step = |account: &Account, step: &str| {
        let spendable = account.spendable().amount();
        let expected = if spendable >= dec!(5) {
            spendable
        } else {
            dec!(0)
        };
        let held = shopify
            .store_credit_balance(&maya_id, "USD")
            .unwrap_or_default();
        assert_eq!(held, expected, "{step}");
    };
    let reconcile = json!({ "run": "reconcile", "shop": DEMO_SHOP });

    // Earn: pending, nothing to spend yet.
    let paid = samples::shopify_order(Stage::Paid).to_string();
    w.shopify("orders/paid", paid).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    in_step(&w.account().await, "earn");

    // Release, then a goodwill adjustment.
    w.promote(now() + Duration::days(2)).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    in_step(&w.account().await, "release");
    w.admin(
        "adjustments",
        r#"{"amount":"20.00","reason":"goodwill"}"#,
        "k1",
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    let before_redeem = w.account().await;
    in_step(&before_redeem, "adjust");
    assert!(shopify.store_credit_balance(&maya_id, "USD").unwrap() > dec!(20));

    // Redeem: a second order pays 5.00 with her store credit at Shopify's
    // checkout; the reconcile reads it into the ledger, once.
    let second_id = 5_920_381_274_650_003_333_u64;
    let second = samples::shopify_order_with(second_id, "#3001", Stage::Paid);
    w.shopify("orders/paid", second.to_string()).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    assert!(shopify.pay_with_store_credit(&maya_id, "USD", dec!(5.00), &second_id.to_string()));
    handle(&w.deps, reconcile.clone(), now()).await.unwrap();
    handle(&w.deps, reconcile.clone(), now()).await.unwrap();
    let after_redeem = w.account().await;
    assert_eq!(
        after_redeem.available.amount(),
        before_redeem.available.amount() - dec!(5.00)
    );
    in_step(&after_redeem, "redeem with store credit");

    // An order whose payload claims a store credit payment it never made
    // (its gateway names, a note attribute): the ledger moves only by the
    // transactions on her store credit account.
    let mut claiming = samples::shopify_order_with(5_920_381_274_650_004_444, "#3002", Stage::Paid);
    claiming["payment_gateway_names"] = json!(["shopify_store_credit"]);
    claiming["note_attributes"] = json!([{"name": "store_credit_used", "value": "50.00"}]);
    w.shopify("orders/paid", claiming.to_string()).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    handle(&w.deps, reconcile.clone(), now()).await.unwrap();
    let after_claim = w.account().await;
    assert_eq!(after_claim.available, after_redeem.available);
    in_step(&after_claim, "an order claiming store credit");

    // The store credit payment given back: the ledger follows at the next sync
    // (here the refund webhook's clawback of the first order).
    assert!(shopify.revert_store_credit_payment(
        &maya_id,
        "USD",
        dec!(5.00),
        &second_id.to_string(),
        "ORDER_REFUND"
    ));
    let refund = samples::named("shopify-refunds-create.json", samples::GENERIC_SIGNED_AT)
        .expect("the refund sample");
    w.post(
        &w.webhook,
        "/webhooks/shopify",
        &refund.headers,
        refund.body,
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    handle(&w.deps, reconcile.clone(), now()).await.unwrap();
    in_step(&w.account().await, "refund to store credit");

    // Expire: what is left of the credits lapses: the released cashback
    // dated by the samples (filed for expiry at the sync's write, on the
    // wall clock), then the credits made on the wall clock.
    let before_expiry = w.account().await.available;
    w.promote(Utc::now() + Duration::hours(1)).await;
    w.promote(Utc::now() + Duration::days(31) + Duration::hours(1))
        .await;
    let expired = w.account().await;
    assert!(expired.available.amount() < before_expiry.amount());
    assert_eq!(w.stream_the_account().await, no_failures);
    in_step(&expired, "expire");
}

/// The program item's write, as the table's stream delivers it.
fn program_record(old: &Program, new: &Program, sequence: u64) -> Value {
    let pk = cashback_store::keys::shop_pk(&shop());
    let image = |p: &Program| {
        json!({
            "pk": {"S": pk}, "sk": {"S": cashback_store::keys::PROGRAM_SK},
            "doc": {"S": serde_json::to_string(p).unwrap()}
        })
    };
    json!({ "Records": [{
        "eventID": format!("p{sequence}"),
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": cashback_store::keys::PROGRAM_SK}},
            "NewImage": image(new),
            "OldImage": image(old),
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 900,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    }]})
}

/// A program switching between discount codes and store credit, through
/// the real functions: the program's write asks for a backfill started
/// over, and its run ends the other mode's side for the customer before it
/// puts the balance on the new one, so it is never spendable both ways.
#[tokio::test]
async fn a_change_of_mode_through_the_real_functions_ends_the_other_side() {
    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_e2e") else {
        return;
    };
    let shopify = FakeShopify::start().await;
    let mut w = World::new(&endpoint).await;
    let mut codes = program();
    codes.redemption.combine_with_order = true;
    codes.validate().unwrap();
    let mut store_credit = codes.clone();
    store_credit.platform_sync = PlatformSync::StoreCredit;
    store_credit.existing_store_credit = Some(ExistingStoreCredit::KeptApart);
    store_credit.validate().unwrap();
    w.store
        .put_program(&shop(), &codes, 1, now() - Duration::days(29))
        .await
        .unwrap();
    w.ctx.invalidate(&shop());
    w.deps.connections = connected_to(&shopify);
    let no_failures = json!({ "batchItemFailures": [] });
    let maya_id = SHOPIFY_CUSTOMER_ID.to_string();
    let backfill = json!({ "run": "backfill", "shop": DEMO_SHOP, "restart": true });

    // Discount-code mode: her balance is a live code.
    let paid = samples::shopify_order(Stage::Paid).to_string();
    w.shopify("orders/paid", paid).await;
    assert_eq!(w.stream_the_account().await, no_failures);
    w.promote(now() + Duration::days(2)).await;
    w.admin(
        "adjustments",
        r#"{"amount":"20.00","reason":"goodwill"}"#,
        "k1",
    )
    .await;
    assert_eq!(w.stream_the_account().await, no_failures);
    let account = w.account().await;
    let code = account.code.clone().unwrap().display();
    let balance = account.spendable().amount();
    assert!(shopify.discount(&code).unwrap().is_active());
    assert_eq!(shopify.discount(&code).unwrap().amount, balance);

    // To store credit: the code ends, the balance becomes store credit.
    w.store
        .put_program(&shop(), &store_credit, 2, now())
        .await
        .unwrap();
    w.ctx.invalidate(&shop());
    assert_eq!(
        handle(&w.deps, program_record(&codes, &store_credit, 5000), now())
            .await
            .unwrap(),
        no_failures
    );
    handle(&w.deps, backfill.clone(), now()).await.unwrap();
    assert!(
        !shopify.discount(&code).unwrap().is_active(),
        "the discount code is ended"
    );
    assert_eq!(shopify.store_credit_balance(&maya_id, "USD"), Some(balance));

    // She spends 5.00 of it; then back to discount codes: the payment is
    // read, the store credit emptied, the code put at what is left.
    assert!(shopify.pay_with_store_credit(&maya_id, "USD", dec!(5.00), "5920381274650009999"));
    w.store
        .put_program(&shop(), &codes, 3, now())
        .await
        .unwrap();
    w.ctx.invalidate(&shop());
    assert_eq!(
        handle(&w.deps, program_record(&store_credit, &codes, 5001), now())
            .await
            .unwrap(),
        no_failures
    );
    handle(&w.deps, backfill, now()).await.unwrap();
    assert_eq!(shopify.store_credit_balance(&maya_id, "USD"), Some(dec!(0)));
    let left = w.account().await.spendable().amount();
    assert_eq!(left, balance - dec!(5.00));
    let discount = shopify.discount(&code).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, left);
}

/// The function's own clients are built by their first call, not at start
/// (BENCHMARKS.md, section 4): the shop scan of a scheduled run and an
/// `ssm:` credential read each build theirs once, and answer from moto.
#[tokio::test]
async fn the_shop_scan_and_the_credential_read_build_their_clients_on_first_use() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cashback_app::secret_ref::SecretRef;
    use cashback_platform_codes::{CredentialSource, EnvAndSsm};
    use platform_sync::shops::{ShopDirectory, TableShops};

    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_first_use") else {
        return;
    };
    let world = World::new(&endpoint).await;
    let sdk = cashback_test_support::moto::sdk_config_at(&endpoint).await;
    let parameter = format!(
        "/cashback/test/{}",
        cashback_test_support::moto::unique_table_name("key")
    );
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&parameter)
        .value("shpat_first_use")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    let scans = Arc::new(AtomicUsize::new(0));
    let counted = (scans.clone(), sdk.clone());
    let shops = TableShops::on_first_use(
        move || {
            counted.0.fetch_add(1, Ordering::SeqCst);
            aws_sdk_dynamodb::Client::new(&counted.1)
        },
        world.store.table_name().to_string(),
    );
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = (reads.clone(), sdk.clone());
    let source = EnvAndSsm::on_first_use(move || {
        counted.0.fetch_add(1, Ordering::SeqCst);
        aws_sdk_ssm::Client::new(&counted.1)
    });
    assert_eq!(
        scans.load(Ordering::SeqCst) + reads.load(Ordering::SeqCst),
        0
    );

    let reference = SecretRef::parse(&format!("ssm:{parameter}")).unwrap();
    for _ in 0..2 {
        assert_eq!(shops.shops().await.unwrap(), vec![shop()]);
        assert_eq!(source.fetch(&reference).await.unwrap(), "shpat_first_use");
    }
    assert_eq!(scans.load(Ordering::SeqCst), 1, "one client for every scan");
    assert_eq!(reads.load(Ordering::SeqCst), 1, "one client for every read");
}

/// A backfill's failed sync through the real retry queue (SQS on moto):
/// queued with its delay (not handed back before it), then handed to the
/// function, whose reconcile puts the code once Shopify answers again.
#[tokio::test]
async fn a_failed_backfill_sync_comes_back_through_the_sqs_retry_queue() {
    use cashback_test_support::fakes::faults::FaultRates;

    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_retry_queue") else {
        return;
    };
    let shopify = FakeShopify::start().await;
    let mut w = World::new(&endpoint).await;
    w.deps.connections = connected_to(&shopify);
    let sdk = cashback_test_support::moto::sdk_config_at(&endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(cashback_test_support::moto::unique_table_name("retries"))
        .send()
        .await
        .unwrap()
        .queue_url
        .expect("a queue url");
    let built = (sdk.clone(), queue.clone());
    w.deps.retries = Some(Arc::new(platform_sync::retries::SqsRetries::on_first_use(
        move || aws_sdk_sqs::Client::new(&built.0),
        built.1.clone(),
        StdDuration::from_secs(2),
    )));
    cashback_test_support::world::seed_balance(
        w.store.as_ref(),
        &program(),
        maya().as_str(),
        "CB-MAYA",
        "25.00",
    )
    .await;

    shopify.set_fault_rates(
        FaultRates {
            server_error: 1.0,
            ..FaultRates::default()
        },
        11,
    );
    let backfill = cashback_app::platform_codes::RunRequest::Backfill {
        shop: shop(),
        restart: true,
    };
    let outcome = platform_sync::run_request(&w.deps, &backfill, None, now())
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(outcome).unwrap()["summary"]["failed"],
        1
    );
    let receive = || {
        sqs.receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
    };
    let early = receive().await.unwrap();
    assert!(early.messages().is_empty(), "handed back before its delay");

    shopify.set_fault_rates(FaultRates::default(), 11);
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let received = receive().await.unwrap();
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|message| {
            cashback_test_support::doubles::sqs_record(
                message.message_id().unwrap(),
                message.body().unwrap(),
            )
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let answer = handle(&w.deps, json!({ "Records": records }), now())
        .await
        .unwrap();
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    assert_in_step(&shopify, &w.account().await, "retried");
}

/// A queue SQS does not have (a wrong URL, a deleted queue): every retry,
/// in batches of ten, is tried twice and counted as not queued, so the run
/// logs how many wait for the next reconcile.
#[tokio::test]
async fn retries_the_queue_does_not_take_are_counted() {
    use cashback_app::platform_codes::{RetryRequest, SyncRetries};

    let Some(endpoint) = cashback_test_support::moto::endpoint("platform_sync_retry_unqueued")
    else {
        return;
    };
    let sdk = cashback_test_support::moto::sdk_config_at(&endpoint).await;
    let retries = platform_sync::retries::SqsRetries::on_first_use(
        move || aws_sdk_sqs::Client::new(&sdk),
        format!("{endpoint}/123456789012/no-such-queue"),
        StdDuration::ZERO,
    );
    let requests: Vec<RetryRequest> = (0..12)
        .map(|i| RetryRequest {
            shop: shop(),
            customer: CustomerId::parse(&format!("c{i}")).unwrap(),
        })
        .collect();
    let error = retries.retry_later(&requests).await.unwrap_err();
    assert_eq!(error.unqueued, 12, "{error}");
    assert!(
        std::error::Error::source(&error).is_some(),
        "its cause kept"
    );
}
