//! Shopify's mandatory compliance topics and app/uninstalled through the
//! webhook router, with Shopify's documented payloads: a data request
//! exports what the engine holds, a customer redaction erases the personal
//! data and keeps the money, a shop redaction deletes the data of an
//! uninstalled shop, and an uninstall stops code syncing. The attacks: an
//! unsigned or wrongly signed redaction, redactions aimed across shops,
//! Shopify's requests signed with a WooCommerce shop's secret, a shop
//! redaction of a shop still installed or uninstalled less than 48 hours
//! ago, a signed order delivery taken for a reinstall, and a data request that would
//! hand the customer's data to whoever sent it. Each case runs on
//! the in-memory store and on DynamoDB through moto.

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{json, Value};

use crate::support::*;
use cashback_app::compliance;
use cashback_app::store::*;
use cashback_core::ids::{CustomerId, Email, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;
use cashback_test_support::samples::{self, shopify_delivery, Stage, DEMO_SECRET, DEMO_SHOP};

macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Backend::Memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if crate::support::moto_configured(stringify!($case)) {
                        super::$case(super::Backend::Dynamo).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    a_data_request_is_recorded_and_answers_no_personal_data,
    a_compliance_topic_signed_with_a_woocommerce_shops_secret_is_refused,
    a_shop_redaction_for_an_installed_shop_is_refused,
    a_redaction_erases_the_email_and_keeps_the_money,
    an_unsigned_or_wrongly_signed_redaction_is_refused_and_changes_nothing,
    a_redaction_for_another_shops_customer_cannot_touch_this_shop,
    a_shop_redaction_deletes_the_shops_data_and_nothing_of_another_shop,
    a_shop_redaction_right_after_an_uninstall_is_refused,
    an_uninstall_stops_syncing_and_webhooks_still_answer_200,
);

const ANN: &str = "191167";
const ANN_EMAIL: &str = "ann@example.com";
const ANN_CODE: &str = "CB-ANN-BALANCE";

fn data_request(shop: &str, customer: &str, email: &str) -> String {
    json!({
        "shop_id": 954889,
        "shop_domain": shop,
        "orders_requested": [299938, 280263],
        "customer": {"id": customer.parse::<u64>().unwrap(), "email": email, "phone": "555-625-1199"},
        "data_request": {"id": 9999}
    })
    .to_string()
}

fn redact(shop: &str, customer: &str, email: &str) -> String {
    json!({
        "shop_id": 954889,
        "shop_domain": shop,
        "customer": {"id": customer.parse::<u64>().unwrap(), "email": email, "phone": "555-625-1199"},
        "orders_to_redact": [299938, 280263]
    })
    .to_string()
}

/// A delivery for `header_shop`, signed with `secret` (None: no signature).
async fn deliver_to(
    world: &World,
    topic: &str,
    header_shop: &str,
    body: String,
    secret: Option<&str>,
) -> (StatusCode, Value) {
    let mut headers = shopify_delivery(topic, &body, secret.unwrap_or(DEMO_SECRET));
    headers = with_header(&headers, "X-Shopify-Shop-Domain", Some(header_shop));
    if secret.is_none() {
        headers = with_header(&headers, "X-Shopify-Hmac-Sha256", None);
    }
    send(world, request("shopify", &headers, body)).await
}

async fn shopify(world: &World, topic: &str, body: String) -> (StatusCode, Value) {
    deliver_to(world, topic, DEMO_SHOP, body, Some(DEMO_SECRET)).await
}

async fn seed_ann(world: &World) {
    seed_customer(
        world,
        ANN,
        ANN_CODE,
        Some(ANN_EMAIL),
        "30.00",
        Some("REF-ANN-1"),
    )
    .await;
}

/// Ann's account at the other shop: same platform id and email.
async fn seed_other_shop_ann(world: &World) {
    let other = ShopId::parse(OTHER_SHOP).unwrap();
    let mut account = Account::open(
        other.clone(),
        CustomerId::parse(ANN).unwrap(),
        Currency::USD,
    );
    account.email = Some(Email::parse(ANN_EMAIL).unwrap());
    let entries = account
        .adjust(usd("7.00"), "seed", ANN, &program(), now())
        .unwrap()
        .entries;
    let write = AccountWrite {
        account,
        expected_version: 0,
        entries,
        reminder_due_at: None,
        code_change: None,
    };
    world
        .store
        .write(&other, WriteSet::account(write))
        .await
        .unwrap();
}

async fn account_at(world: &World, shop: &str, customer: &str) -> Option<Account> {
    let id = CustomerId::parse(customer).unwrap();
    let read = world
        .store
        .read(&ShopId::parse(shop).unwrap(), &ReadRequest::account(&id))
        .await
        .unwrap();
    read.accounts.get(&id).map(|a| a.value.clone())
}

async fn email_owner(world: &World, shop: &str, email: &str) -> Option<CustomerId> {
    let email = Email::parse(email).unwrap();
    let read = world
        .store
        .read(
            &ShopId::parse(shop).unwrap(),
            &ReadRequest::email_owner(&email),
        )
        .await
        .unwrap();
    read.email_owners.get(&email).cloned()
}

async fn a_data_request_is_recorded_and_answers_no_personal_data(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    let (status, answer) = shopify(
        &world,
        "customers/data_request",
        data_request(DEMO_SHOP, ANN, ANN_EMAIL),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "recorded");
    assert_eq!(answer["request"], "customer_data_request");
    assert_eq!(answer["reference"], "9999");
    assert_eq!(answer["accounts_found"], 1);
    let answer_by: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(answer["answer_by"].clone()).unwrap();
    assert_eq!(answer_by, now() + Duration::days(30));
    let text = answer.to_string();
    for personal in [ANN_EMAIL, ANN_CODE, "REF-ANN-1"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    assert!(answer.get("export").is_none(), "{answer}");

    // The merchant's export, as the admin API reads it.
    let export = compliance::customer_export(
        &world.ctx,
        &demo_shop(),
        &compliance::Subject {
            customer: Some(CustomerId::parse(ANN).unwrap()),
            email: Some(Email::parse(ANN_EMAIL).unwrap()),
        },
        Some("9999".into()),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(export.accounts.len(), 1);
    let ann = &export.accounts[0];
    assert_eq!(ann.account.customer_id.as_str(), ANN);
    assert_eq!(ann.account.code.as_deref(), Some(ANN_CODE));
    assert_eq!(ann.referral_code.as_deref(), Some("REF-ANN-1"));
    assert_eq!(ann.ledger.len(), 1);

    // A customer the shop never saw: recorded, nothing found, still a 200.
    let (status, answer) = shopify(
        &world,
        "customers/data_request",
        data_request(DEMO_SHOP, "555", "nobody@example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["accounts_found"], 0);
}

const WOO_SHOP: &str = "woo.example";
const WOO_SECRET: &str = "woo-shop-webhook-secret";
const WOO_SECRET_REF: &str = "env:CASHBACK_SECRET_WOO";

/// The demo world plus a WooCommerce shop (its own secret) where Ann has
/// 30.00 and her balance code; the router knows the Woo shop's secret.
async fn world_with_woo_shop(backend: Backend) -> World {
    use order_webhook::secrets::{FixedSecrets, SecretCache};
    use order_webhook::{router, WebhookState};
    use std::sync::Arc;
    let world = backend.world().await;
    let woo = ShopId::parse(WOO_SHOP).unwrap();
    world
        .store
        .create_shop(&Shop {
            shop: woo.clone(),
            platform: Platform::Woocommerce,
            currency: Currency::USD,
            name: "Woo Store".into(),
            webhook_secret_ref: WOO_SECRET_REF.into(),
            api_key_hash: String::new(),
            created_at: now(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    world
        .store
        .put_program(&woo, &program(), 0, now())
        .await
        .unwrap();
    let mut account = Account::open(woo.clone(), CustomerId::parse(ANN).unwrap(), Currency::USD);
    account.email = Some(Email::parse(ANN_EMAIL).unwrap());
    account.code = Some(cashback_core::ids::Code::parse(ANN_CODE).unwrap());
    let entries = account
        .adjust(usd("30.00"), "seed", ANN, &program(), now())
        .unwrap()
        .entries;
    let write = AccountWrite {
        account,
        expected_version: 0,
        entries,
        reminder_due_at: None,
        code_change: Some(CodeChange {
            new_code: cashback_core::ids::Code::parse(ANN_CODE).unwrap(),
            old_code: None,
            referral_code: None,
        }),
    };
    world
        .store
        .write(&woo, WriteSet::account(write))
        .await
        .unwrap();
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([
            (samples::DEMO_SECRET_REF, DEMO_SECRET),
            ("env:CASHBACK_SECRET_OTHER_SHOP", OTHER_SECRET),
            (WOO_SECRET_REF, WOO_SECRET),
        ])),
        300,
    ));
    let state = WebhookState::new(world.ctx.clone(), secrets.clone()).with_clock(Arc::new(now));
    World {
        router: router(state),
        store: world.store.clone(),
        ctx: world.ctx.clone(),
        secrets,
    }
}

async fn a_compliance_topic_signed_with_a_woocommerce_shops_secret_is_refused(backend: Backend) {
    let world = world_with_woo_shop(backend).await;
    let before = account_at(&world, WOO_SHOP, ANN).await.unwrap();
    let owner_before = email_owner(&world, WOO_SHOP, ANN_EMAIL).await;
    // The shop is even marked uninstalled: the platform still refuses.
    world
        .store
        .set_shop_uninstalled(&ShopId::parse(WOO_SHOP).unwrap(), Some(now()))
        .await
        .unwrap();
    let attacks = [
        (
            "shop/redact",
            json!({"shop_id": 1, "shop_domain": WOO_SHOP}).to_string(),
        ),
        (
            "customers/data_request",
            data_request(WOO_SHOP, ANN, ANN_EMAIL),
        ),
        ("customers/redact", redact(WOO_SHOP, ANN, ANN_EMAIL)),
        (
            "app/uninstalled",
            json!({"id": 1, "myshopify_domain": WOO_SHOP}).to_string(),
        ),
    ];
    for (topic, body) in attacks {
        let (status, answer) = deliver_to(&world, topic, WOO_SHOP, body, Some(WOO_SECRET)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{topic}: {answer}");
        assert_eq!(answer["error"]["code"], "not_a_shopify_shop", "{topic}");
        let text = answer.to_string();
        assert!(!text.contains(ANN_CODE), "{topic}: {text}");
        assert!(!text.contains(ANN_EMAIL), "{topic}: {text}");
    }
    assert_eq!(account_at(&world, WOO_SHOP, ANN).await.unwrap(), before);
    assert_eq!(email_owner(&world, WOO_SHOP, ANN_EMAIL).await, owner_before);
    let woo = ShopId::parse(WOO_SHOP).unwrap();
    assert!(world.store.get_shop(&woo).await.unwrap().is_some());
    assert!(world.store.get_program(&woo).await.unwrap().is_some());
    let code = cashback_core::ids::Code::parse(ANN_CODE).unwrap();
    let read = world
        .store
        .read(&woo, &ReadRequest::code_owner(&code))
        .await
        .unwrap();
    assert_eq!(
        read.code_owners.get(&code),
        Some(&CustomerId::parse(ANN).unwrap())
    );
    assert_eq!(ledger_at(&world, WOO_SHOP, ANN).await.len(), 1);
}

async fn a_shop_redaction_for_an_installed_shop_is_refused(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    let before = account_at(&world, DEMO_SHOP, ANN).await.unwrap();
    let body = json!({"shop_id": 954889, "shop_domain": DEMO_SHOP}).to_string();
    let (status, answer) = shopify(&world, "shop/redact", body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "shop_installed");
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
    assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_some());
    assert!(world
        .store
        .get_program(&demo_shop())
        .await
        .unwrap()
        .is_some());
    // Installed again after an uninstall: refused too.
    let shop_resource = json!({"id": 1, "myshopify_domain": DEMO_SHOP}).to_string();
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    world
        .store
        .set_shop_uninstalled(&demo_shop(), None)
        .await
        .unwrap();
    world.ctx.invalidate(&demo_shop());
    let (status, _) = shopify(&world, "shop/redact", body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
}

async fn ledger_at(
    world: &World,
    shop: &str,
    customer: &str,
) -> Vec<cashback_core::ledger::LedgerEntry> {
    world
        .store
        .ledger(
            &ShopId::parse(shop).unwrap(),
            &CustomerId::parse(customer).unwrap(),
            None,
            100,
        )
        .await
        .unwrap()
        .items
}

async fn a_redaction_erases_the_email_and_keeps_the_money(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    // Ann also checked out once as a guest with the same email: that
    // account is hers too.
    let mut order = samples::shopify_order_with(samples::SHOPIFY_ORDER_ID, "#2001", Stage::Paid);
    order["customer"] = Value::Null;
    order["email"] = json!(ANN_EMAIL);
    order["contact_email"] = json!(ANN_EMAIL);
    let (status, _) = shopify(&world, "orders/paid", order.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let shop = world.store.get_shop(&demo_shop()).await.unwrap().unwrap();
    let guest = shop.guest_id(&Email::parse(ANN_EMAIL).unwrap());
    let guest_before = account_at(&world, DEMO_SHOP, guest.as_str()).await.unwrap();
    assert!(guest_before.email.is_some());
    let before = account_at(&world, DEMO_SHOP, ANN).await.unwrap();
    let ledger_before = ledger(&world, ANN).await;

    let (status, answer) = shopify(
        &world,
        "customers/redact",
        redact(DEMO_SHOP, ANN, ANN_EMAIL),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["redacted"]["accounts_redacted"], 2, "{answer}");

    let after = account_at(&world, DEMO_SHOP, ANN).await.unwrap();
    assert_eq!(after.email, None);
    assert_eq!(after.available, before.available);
    assert_eq!(after.lifetime_issued, before.lifetime_issued);
    assert_eq!(
        ledger(&world, ANN).await,
        ledger_before,
        "money entries kept"
    );
    after.check(&ledger(&world, ANN).await).unwrap();
    let guest_after = account_at(&world, DEMO_SHOP, guest.as_str()).await.unwrap();
    assert_eq!(guest_after.email, None);
    assert_eq!(guest_after.pending, guest_before.pending);
    assert_eq!(email_owner(&world, DEMO_SHOP, ANN_EMAIL).await, None);

    // Shopify may repeat it: nothing more to do, still a 200.
    let (status, answer) = shopify(
        &world,
        "customers/redact",
        redact(DEMO_SHOP, ANN, ANN_EMAIL),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["redacted"]["accounts_redacted"], 0);
    assert_eq!(answer["redacted"]["accounts_already_clean"], 2);
    // The merchant's export shows no email any more.
    let export = compliance::customer_export(
        &world.ctx,
        &demo_shop(),
        &compliance::Subject {
            customer: Some(CustomerId::parse(ANN).unwrap()),
            email: Some(Email::parse(ANN_EMAIL).unwrap()),
        },
        None,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(export.accounts.len(), 2);
    let export = serde_json::to_string(&export).unwrap();
    assert!(!export.contains(ANN_EMAIL), "{export}");
}

async fn an_unsigned_or_wrongly_signed_redaction_is_refused_and_changes_nothing(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    let before = account_at(&world, DEMO_SHOP, ANN).await.unwrap();
    let body = redact(DEMO_SHOP, ANN, ANN_EMAIL);
    let (status, answer) =
        deliver_to(&world, "customers/redact", DEMO_SHOP, body.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_signature");
    let (status, _) = deliver_to(
        &world,
        "customers/redact",
        DEMO_SHOP,
        body.clone(),
        Some("a-guessed-secret-value-1234"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another shop's (valid) secret is not this shop's.
    let (status, _) = deliver_to(
        &world,
        "customers/redact",
        DEMO_SHOP,
        body,
        Some(OTHER_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for topic in ["shop/redact", "app/uninstalled"] {
        let body = json!({"shop_domain": DEMO_SHOP, "myshopify_domain": DEMO_SHOP}).to_string();
        let (status, _) = deliver_to(&world, topic, DEMO_SHOP, body, Some(OTHER_SECRET)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{topic}");
    }
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
    assert_eq!(
        email_owner(&world, DEMO_SHOP, ANN_EMAIL).await,
        Some(CustomerId::parse(ANN).unwrap())
    );
    assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_some());
    assert_eq!(
        world.store.shop_uninstalled_at(&demo_shop()).await.unwrap(),
        None
    );
}

async fn a_redaction_for_another_shops_customer_cannot_touch_this_shop(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    seed_other_shop_ann(&world).await;
    let before = account_at(&world, DEMO_SHOP, ANN).await.unwrap();

    // The other shop's own redaction of its Ann: only its account changes.
    let (status, answer) = deliver_to(
        &world,
        "customers/redact",
        OTHER_SHOP,
        redact(OTHER_SHOP, ANN, ANN_EMAIL),
        Some(OTHER_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["redacted"]["accounts_redacted"], 1);
    assert_eq!(
        account_at(&world, OTHER_SHOP, ANN).await.unwrap().email,
        None
    );
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
    assert_eq!(
        email_owner(&world, DEMO_SHOP, ANN_EMAIL).await,
        Some(CustomerId::parse(ANN).unwrap())
    );

    // The other shop's signed redaction relabelled for this shop: the
    // header names this shop, whose secret did not sign it.
    let (status, _) = deliver_to(
        &world,
        "customers/redact",
        DEMO_SHOP,
        redact(OTHER_SHOP, ANN, ANN_EMAIL),
        Some(OTHER_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed by the other shop for its header, but the body names this
    // shop: refused, whichever way round.
    let (status, answer) = deliver_to(
        &world,
        "customers/redact",
        OTHER_SHOP,
        redact(DEMO_SHOP, ANN, ANN_EMAIL),
        Some(OTHER_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "shop_mismatch");
    let (status, answer) = deliver_to(
        &world,
        "shop/redact",
        OTHER_SHOP,
        json!({"shop_id": 1, "shop_domain": DEMO_SHOP}).to_string(),
        Some(OTHER_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "shop_mismatch");
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
    assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_some());
}

async fn a_shop_redaction_deletes_the_shops_data_and_nothing_of_another_shop(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    seed_other_shop_ann(&world).await;
    let (status, _) = deliver(&world, "shopify-orders-paid.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(order_record(&world, &shopify_order()).await.is_some());
    let other_before = account_at(&world, OTHER_SHOP, ANN).await.unwrap();

    // Shopify sends it 48 hours after the uninstall.
    let shop_resource = json!({"id": 1, "myshopify_domain": DEMO_SHOP}).to_string();
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"shop_id": 954889, "shop_domain": DEMO_SHOP}).to_string();
    let later = world.at(now() + Duration::hours(compliance::REDACT_AFTER_UNINSTALL_HOURS));
    let (status, answer) = shopify(&later, "shop/redact", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["items_deleted"].as_u64().unwrap() >= 8, "{answer}");

    assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_none());
    assert!(world
        .store
        .get_program(&demo_shop())
        .await
        .unwrap()
        .is_none());
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await, None);
    assert_eq!(
        account_at(&world, DEMO_SHOP, &shopify_customer()).await,
        None
    );
    assert!(ledger(&world, ANN).await.is_empty());
    assert!(ledger(&world, &shopify_customer()).await.is_empty());
    assert_eq!(email_owner(&world, DEMO_SHOP, ANN_EMAIL).await, None);
    let ann_code = cashback_core::ids::Code::parse(ANN_CODE).unwrap();
    let read = world
        .store
        .read(&demo_shop(), &ReadRequest::code_owner(&ann_code))
        .await
        .unwrap();
    assert!(read.code_owners.is_empty());
    let read = world
        .store
        .read(
            &demo_shop(),
            &ReadRequest::order(cashback_core::ids::OrderId::parse(&shopify_order()).unwrap()),
        )
        .await
        .unwrap();
    assert!(read.order.is_none());
    // The other shop is untouched.
    assert_eq!(
        account_at(&world, OTHER_SHOP, ANN).await.unwrap(),
        other_before
    );
    assert!(world
        .store
        .get_shop(&ShopId::parse(OTHER_SHOP).unwrap())
        .await
        .unwrap()
        .is_some());
    // The same delivery again finds no shop (it is gone): nothing to do.
    world.ctx.invalidate(&demo_shop());
    let (status, _) = shopify(&later, "shop/redact", body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The attack: a leaked secret signs `app/uninstalled` and then
/// `shop/redact` at once. Shopify sends the redaction 48 hours after the
/// uninstall, so one sooner deletes nothing (and Shopify's own, repeated
/// on an error, goes through once it is due).
async fn a_shop_redaction_right_after_an_uninstall_is_refused(backend: Backend) {
    let world = backend.world().await;
    seed_ann(&world).await;
    let (status, _) = deliver(&world, "shopify-orders-paid.json").await;
    assert_eq!(status, StatusCode::OK);
    let before = account_at(&world, DEMO_SHOP, ANN).await.unwrap();
    let ann_ledger = ledger_at(&world, DEMO_SHOP, ANN).await;

    let shop_resource = json!({"id": 1, "myshopify_domain": DEMO_SHOP}).to_string();
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"shop_id": 954889, "shop_domain": DEMO_SHOP}).to_string();
    let due = Duration::hours(compliance::REDACT_AFTER_UNINSTALL_HOURS);
    for at in [now(), now() + due - Duration::seconds(1)] {
        let (status, answer) = shopify(&world.at(at), "shop/redact", body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "redaction_not_due");
        assert_eq!(account_at(&world, DEMO_SHOP, ANN).await.unwrap(), before);
        assert_eq!(ledger_at(&world, DEMO_SHOP, ANN).await, ann_ledger);
        assert!(order_record(&world, &shopify_order()).await.is_some());
        assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_some());
        assert!(world
            .store
            .get_program(&demo_shop())
            .await
            .unwrap()
            .is_some());
    }

    let (status, answer) = shopify(&world.at(now() + due), "shop/redact", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(account_at(&world, DEMO_SHOP, ANN).await, None);
}

async fn an_uninstall_stops_syncing_and_webhooks_still_answer_200(backend: Backend) {
    let world = backend.world().await;
    assert!(!compliance::syncing_stopped(&world.ctx, &demo_shop())
        .await
        .unwrap());
    let shop_resource = json!({
        "id": 548380009,
        "name": "Demo Store",
        "email": "owner@example.com",
        "domain": "shop.example.com",
        "myshopify_domain": DEMO_SHOP,
        "currency": "USD"
    })
    .to_string();
    let (status, answer) = shopify(&world, "app/uninstalled", shop_resource.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["request"], "app_uninstalled");
    assert_eq!(
        world.store.shop_uninstalled_at(&demo_shop()).await.unwrap(),
        Some(now())
    );
    assert!(compliance::syncing_stopped(&world.ctx, &demo_shop())
        .await
        .unwrap());
    // A repeat keeps the first time; the shop record itself is unchanged.
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        world.store.shop_uninstalled_at(&demo_shop()).await.unwrap(),
        Some(now())
    );
    assert!(world.store.get_shop(&demo_shop()).await.unwrap().is_some());
    // Order deliveries still answer 200 (and the ledger stays right).
    let (status, answer) = deliver(&world, "shopify-orders-paid.json").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["applied"], 1);
    // The other shop is still installed.
    assert!(
        !compliance::syncing_stopped(&world.ctx, &ShopId::parse(OTHER_SHOP).unwrap())
            .await
            .unwrap()
    );
}

/// The uninstall flag is read by whoever starts a sync (the change feed's
/// sync in the platform-sync function, each reconcile or backfill run), not
/// by `sync_customer_code` itself: after an uninstall no run calls the
/// platform, and none can be asked for. The feed's side is the
/// platform-sync function's
/// `an_uninstalled_shop_calls_no_platform_from_the_feed_or_a_reconcile`.
#[tokio::test]
async fn after_an_uninstall_no_reconcile_or_backfill_calls_the_platform() {
    use cashback_app::platform_codes::{
        ask_for_run, backfill_shop, reconcile_shop, sync_customer_code, RunLimits, RunRequest,
        SyncOutcome, SyncPolicy,
    };
    use std::sync::atomic::Ordering::SeqCst;
    let world = Backend::Memory.world().await;
    let mut synced = program();
    synced.platform_sync = cashback_core::platform_code::PlatformSync::DiscountCode;
    world
        .store
        .put_program(&demo_shop(), &synced, 1, now())
        .await
        .unwrap();
    world.ctx.invalidate(&demo_shop());
    seed_ann(&world).await;
    let platform = CountingPlatform::default();
    let ann = CustomerId::parse(ANN).unwrap();
    let policy = SyncPolicy::default();
    let limits = || RunLimits::for_budget(std::time::Duration::from_secs(5));
    let outcome = sync_customer_code(&world.ctx, &platform, &demo_shop(), &ann, None, &policy)
        .await
        .unwrap();
    assert!(matches!(outcome, SyncOutcome::Synced(_)), "{outcome:?}");
    assert_eq!(platform.calls.load(SeqCst), 1);
    // Installed, a reconcile looks the code up (the counting platform
    // holds none: drifted, repaired).
    let summary = reconcile_shop(
        &world.ctx,
        &platform,
        &demo_shop(),
        None,
        &limits(),
        &policy,
    )
    .await
    .unwrap();
    assert_eq!((summary.checked, summary.repaired), (1, 1), "{summary:?}");
    let calls = platform.calls.load(SeqCst);

    let shop_resource = json!({"id": 1, "myshopify_domain": DEMO_SHOP}).to_string();
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    let summary = reconcile_shop(
        &world.ctx,
        &platform,
        &demo_shop(),
        None,
        &limits(),
        &policy,
    )
    .await
    .unwrap();
    assert_eq!(summary.checked, 0, "{summary:?}");
    let backfill = backfill_shop(
        &world.ctx,
        &platform,
        &demo_shop(),
        true,
        now(),
        &limits(),
        &policy,
    )
    .await
    .unwrap();
    assert_eq!((backfill.synced, backfill.skipped), (0, 0), "{backfill:?}");
    assert_eq!(platform.calls.load(SeqCst), calls, "no platform call");
    let asked = ask_for_run(
        &world.ctx,
        RunRequest::Reconcile {
            shop: demo_shop(),
            cursor: None,
        },
        now(),
    )
    .await;
    assert!(
        matches!(asked, Err(cashback_app::AppError::Conflict(_))),
        "{asked:?}"
    );
}

#[tokio::test]
async fn after_a_reinstall_the_codes_follow_the_ledger_again() {
    use cashback_app::platform_codes::{
        reconcile_shop, sync_customer_code, RunLimits, SyncOutcome, SyncPolicy,
    };
    use std::sync::atomic::Ordering::SeqCst;
    let world = Backend::Memory.world().await;
    let mut synced = program();
    synced.platform_sync = cashback_core::platform_code::PlatformSync::DiscountCode;
    world
        .store
        .put_program(&demo_shop(), &synced, 1, now())
        .await
        .unwrap();
    world.ctx.invalidate(&demo_shop());
    seed_ann(&world).await;
    let platform = CountingPlatform::default();
    let ann = CustomerId::parse(ANN).unwrap();
    let policy = SyncPolicy::default();
    sync_customer_code(&world.ctx, &platform, &demo_shop(), &ann, None, &policy)
        .await
        .unwrap();
    assert_eq!(*platform.last_amount.lock().unwrap(), Some(usd("30.00")));

    let shop_resource = json!({"id": 1, "myshopify_domain": DEMO_SHOP}).to_string();
    let (status, _) = shopify(&world, "app/uninstalled", shop_resource).await;
    assert_eq!(status, StatusCode::OK);
    // Ann's code is spent while the app is off the shop: the platform took
    // it, so the ledger takes it too.
    let mut order = samples::shopify_order_with(samples::SHOPIFY_ORDER_ID, "#2001", Stage::Paid);
    order["discount_codes"][0]["code"] = json!(ANN_CODE);
    order["discount_applications"][0]["code"] = json!(ANN_CODE);
    let (status, answer) = shopify(&world, "orders/paid", order.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let balance = account_at(&world, DEMO_SHOP, ANN).await.unwrap().available;
    assert_eq!(balance, usd("14.25"));
    // A signed order delivery (a late retry, a replay) is no reinstall.
    let (status, _) = shopify(&world, "orders/paid", order.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        world.store.shop_uninstalled_at(&demo_shop()).await.unwrap(),
        Some(now())
    );
    // The sync function checks this flag where each run of syncs starts.
    assert!(compliance::syncing_stopped(&world.ctx, &demo_shop())
        .await
        .unwrap());
    let calls = platform.calls.load(SeqCst);

    // Installed again (the embedded app opened, or the admin route).
    let reinstalled = compliance::reinstall(&world.ctx, &demo_shop(), now() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(reinstalled.uninstalled_at, Some(now()));
    assert!(reinstalled.reconcile.is_some());
    assert_eq!(
        world.store.shop_uninstalled_at(&demo_shop()).await.unwrap(),
        None
    );
    assert!(!compliance::syncing_stopped(&world.ctx, &demo_shop())
        .await
        .unwrap());
    // The reconcile asked for puts Ann's code at her balance.
    let limits = RunLimits::for_budget(std::time::Duration::from_secs(30));
    reconcile_shop(&world.ctx, &platform, &demo_shop(), None, &limits, &policy)
        .await
        .unwrap();
    assert!(platform.calls.load(SeqCst) > calls);
    assert_eq!(*platform.last_amount.lock().unwrap(), Some(balance));
    // And each later change syncs again.
    let outcome = sync_customer_code(&world.ctx, &platform, &demo_shop(), &ann, None, &policy)
        .await
        .unwrap();
    assert!(matches!(outcome, SyncOutcome::Synced(_)), "{outcome:?}");
    assert_eq!(*platform.last_amount.lock().unwrap(), Some(balance));
}
