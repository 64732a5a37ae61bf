//! Attacks on a customer's balance and on referrals, performed through the
//! webhook router: a balance code spent by a stranger or a guest, the same
//! code paying twice, a code replaced while a checkout held it, referrals
//! minted by naming any code, and referral rewards outliving their order.
//! Each case runs on the in-memory store and on DynamoDB through moto.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_app::admin;
use cashback_core::ids::{CheckoutId, CustomerId};
use cashback_core::ledger::EntryKind;
use cashback_test_support::samples::{
    self, shopify_delivery, Stage, DEMO_SECRET, SHOPIFY_REFERRAL_CODE,
};

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
    a_guests_order_with_someones_code_debits_the_owner,
    an_order_naming_nobody_with_someones_code_still_debits_the_owner,
    the_same_code_paying_twice_charges_its_owner_twice_and_the_rest_as_debt,
    another_customers_order_with_a_balance_code_pays_no_referral,
    a_code_replaced_while_a_checkout_held_it_settles_against_its_owner,
    an_order_paid_without_the_code_frees_its_checkouts_hold,
    a_balance_code_in_the_referral_attribute_refers_nobody,
    a_referral_reward_is_pending_and_voided_by_a_cancel,
    a_refund_takes_the_referral_reward_back_in_proportion,
    self_referral_by_id_or_email_pays_nothing,
    an_order_with_nothing_eligible_pays_no_referral_reward,
    self_referral_through_a_plus_address_pays_nothing,
    two_owners_codes_on_one_order_each_pay_for_their_own,
    two_owners_codes_are_given_back_to_each_in_proportion,
);

const ANN_CODE: &str = "CB-ANN-BALANCE";
const SECOND_ORDER: u64 = 5_920_381_274_650_002_222;

/// Who a test order is placed by.
enum Buyer {
    /// The sample's registered customer (Maya).
    Maya,
    /// A guest checkout with only an email.
    Guest(&'static str),
    /// No customer and no email at all.
    Nobody,
}

/// The sample Shopify order under `id`, its discount code `code` (instead
/// of TRAIL10) and the buyer given.
fn order_json(id: u64, stage: Stage, code: Option<&str>, buyer: &Buyer) -> String {
    let mut order = samples::shopify_order_with(id, "#2001", stage);
    if let Some(code) = code {
        order["discount_codes"][0]["code"] = json!(code);
        order["discount_applications"][0]["code"] = json!(code);
    }
    match buyer {
        Buyer::Maya => {}
        Buyer::Guest(email) => {
            order["customer"] = Value::Null;
            order["email"] = json!(email);
            order["contact_email"] = json!(email);
        }
        Buyer::Nobody => {
            order["customer"] = Value::Null;
            order["email"] = Value::Null;
            order["contact_email"] = Value::Null;
        }
    }
    order.to_string()
}

async fn shopify(world: &World, topic: &str, body: String) -> (StatusCode, Value) {
    let headers = shopify_delivery(topic, &body, DEMO_SECRET);
    send(world, request("shopify", &headers, body)).await
}

async fn paid(world: &World, id: u64, code: Option<&str>, buyer: Buyer) {
    let (status, body) = shopify(
        world,
        "orders/paid",
        order_json(id, Stage::Paid, code, &buyer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn ann(world: &World) -> cashback_core::ledger::Account {
    let ann = account(world, "ann").await.unwrap();
    ann.check(&ledger(world, "ann").await).unwrap();
    ann
}

async fn a_guests_order_with_someones_code_debits_the_owner(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    paid(
        &world,
        samples::SHOPIFY_ORDER_ID,
        Some(ANN_CODE),
        Buyer::Guest("stranger@example.com"),
    )
    .await;
    let ann = ann(&world).await;
    assert_eq!(ann.available, usd("14.25"), "the 15.75 discount is Ann's");
    assert_eq!(ann.lifetime_used, usd("15.75"));
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.paid_by, Some(CustomerId::parse("ann").unwrap()));
    assert!(ledger(&world, "ann")
        .await
        .iter()
        .any(|e| e.kind == EntryKind::Redeem));
}

async fn an_order_naming_nobody_with_someones_code_still_debits_the_owner(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    paid(
        &world,
        samples::SHOPIFY_ORDER_ID,
        Some(ANN_CODE),
        Buyer::Nobody,
    )
    .await;
    assert_eq!(ann(&world).await.available, usd("14.25"));
    // Its cancellation gives it back.
    let (status, _) = shopify(
        &world,
        "orders/cancelled",
        order_json(
            samples::SHOPIFY_ORDER_ID,
            Stage::Cancelled,
            Some(ANN_CODE),
            &Buyer::Nobody,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ann(&world).await.available, usd("30.00"));
}

async fn the_same_code_paying_twice_charges_its_owner_twice_and_the_rest_as_debt(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "20.00",
        None,
    )
    .await;
    paid(
        &world,
        samples::SHOPIFY_ORDER_ID,
        Some(ANN_CODE),
        Buyer::Guest("one@example.com"),
    )
    .await;
    paid(
        &world,
        SECOND_ORDER,
        Some(ANN_CODE),
        Buyer::Guest("two@example.com"),
    )
    .await;
    let ann = ann(&world).await;
    assert_eq!(
        (ann.available, ann.debt),
        (usd("0.00"), usd("11.50")),
        "20.00 paid 15.75 and 4.25; the other 11.50 is Ann's debt"
    );
    let second = order_record(&world, &SECOND_ORDER.to_string())
        .await
        .unwrap();
    assert_eq!(second.shortfall, usd("11.50"));
    // Cancelling the second order clears what it charged.
    let (status, _) = shopify(
        &world,
        "orders/cancelled",
        order_json(
            SECOND_ORDER,
            Stage::Cancelled,
            Some(ANN_CODE),
            &Buyer::Guest("two@example.com"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ann = self::ann(&world).await;
    assert_eq!((ann.available, ann.debt), (usd("4.25"), usd("0.00")));
}

async fn another_customers_order_with_a_balance_code_pays_no_referral(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    let mut order: Value = serde_json::from_str(&order_json(
        samples::SHOPIFY_ORDER_ID,
        Stage::Paid,
        Some(ANN_CODE),
        &Buyer::Maya,
    ))
    .unwrap();
    order["note_attributes"] = json!([]);
    let (status, _) = shopify(&world, "orders/paid", order.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let ann = ann(&world).await;
    assert_eq!(ann.available, usd("14.25"), "Ann pays for her code");
    assert_eq!(ann.pending, usd("0.00"), "and is not a referrer for it");
    assert_eq!(ann.lifetime_issued, usd("30.00"));
}

async fn a_code_replaced_while_a_checkout_held_it_settles_against_its_owner(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    hold(&world, "ann", "15.75").await;
    let view = admin::regenerate_code(
        &world.ctx,
        &demo_shop(),
        &CustomerId::parse("ann").unwrap(),
        "admin",
    )
    .await
    .unwrap();
    assert_ne!(view.code.as_deref(), Some(ANN_CODE));
    paid(
        &world,
        samples::SHOPIFY_ORDER_ID,
        Some(ANN_CODE),
        Buyer::Guest("stranger@example.com"),
    )
    .await;
    let ann = ann(&world).await;
    assert_eq!(ann.available, usd("14.25"));
    assert!(ann.holds.is_empty(), "the order took its hold");
}

/// Places a hold for the sample order's checkout on `customer`'s balance.
async fn hold(world: &World, customer: &str, amount: &str) {
    use cashback_app::store::{AccountWrite, ReadRequest, WriteSet};
    let id = CustomerId::parse(customer).unwrap();
    let read = world
        .store
        .read(
            &demo_shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut account = read.accounts.get(&id).cloned().unwrap();
    account
        .value
        .place_hold(
            CheckoutId::parse("36512345678902").unwrap(),
            usd(amount),
            now(),
            900,
        )
        .unwrap();
    world
        .store
        .write(
            &demo_shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries: Vec::new(),
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

async fn an_order_paid_without_the_code_frees_its_checkouts_hold(backend: Backend) {
    let world = backend.world().await;
    let maya = shopify_customer();
    seed_customer(&world, &maya, "CB-MAYA", None, "20.00", None).await;
    hold(&world, &maya, "20.00").await;
    // The checkout ends up paying with TRAIL10 alone.
    paid(&world, samples::SHOPIFY_ORDER_ID, None, Buyer::Maya).await;
    let account = account(&world, &maya).await.unwrap();
    assert!(account.holds.is_empty(), "the order ended its checkout");
    assert_eq!(account.spendable(), usd("20.00"));
}

async fn a_balance_code_in_the_referral_attribute_refers_nobody(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    // Ann's balance code is what the cart attribute names.
    seed_customer(
        &world,
        "ann",
        SHOPIFY_REFERRAL_CODE,
        Some("ann@example.com"),
        "0.00",
        None,
    )
    .await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let ann = account(&world, "ann").await.unwrap();
    assert_eq!((ann.available, ann.pending), (usd("0.00"), usd("0.00")));
    assert!(ledger(&world, "ann").await.is_empty());
}

/// Ann refers the sample order's buyer; the change feed then credits her.
async fn referred(world: &World, feed: &Reports) {
    seed_customer(
        world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
    assert_eq!(
        deliver(world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let ann = ann(world).await;
    assert_eq!(ann.pending, usd("5.00"), "pending like any earn");
    assert_eq!(ann.available, usd("0.00"));
    let record = order_record(world, &shopify_order()).await.unwrap();
    let referral = record.referral.unwrap();
    assert_eq!(referral.referrer, CustomerId::parse("ann").unwrap());
    assert_eq!(referral.reward, usd("5.00"));
}

async fn a_referral_reward_is_pending_and_voided_by_a_cancel(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    referred(&world, &feed).await;
    assert_eq!(
        deliver(&world, "shopify-orders-cancelled.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let ann = ann(&world).await;
    assert_eq!(
        (ann.available, ann.pending, ann.debt),
        (usd("0.00"), usd("0.00"), usd("0.00"))
    );
    assert_eq!(ann.lifetime_issued, usd("0.00"));
}

async fn a_refund_takes_the_referral_reward_back_in_proportion(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    referred(&world, &feed).await;
    assert_eq!(
        deliver(&world, "shopify-refunds-create.json").await.0,
        StatusCode::OK
    );
    let record = order_record(&world, &shopify_order()).await.unwrap();
    let referral = record.referral.clone().unwrap();
    let earned = record.earned.clone().unwrap().total;
    // The reward goes back in the order's own proportion, rounded toward zero.
    let expected = usd("5.00").amount() * record.clawed_back.amount() / earned.amount();
    assert!(referral.clawed_back.is_positive());
    assert!(referral.clawed_back.amount() <= expected);
    assert!(expected - referral.clawed_back.amount() < rust_decimal::Decimal::new(2, 2));
    feed.catch_up().await;
    let ann = ann(&world).await;
    assert_eq!(
        ann.pending,
        usd("5.00").checked_sub(referral.clawed_back).unwrap()
    );
}

async fn self_referral_by_id_or_email_pays_nothing(backend: Backend) {
    // The buyer's own referral code on their own cart...
    let (world, feed) = backend.world_with_reports().await;
    seed_customer(
        &world,
        &shopify_customer(),
        "CB-MAYA",
        None,
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let buyer = account(&world, &shopify_customer()).await.unwrap();
    assert_eq!(buyer.pending, usd("14.17"), "only her own cashback");
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert!(record.referral.is_none());

    // ...or the referral code of another account with the buyer's email.
    let (world, feed) = backend.world_with_reports().await;
    seed_customer(
        &world,
        "maya-old",
        "CB-MAYA-OLD",
        Some("maya.chen@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let old = account(&world, "maya-old").await.unwrap();
    assert_eq!((old.available, old.pending), (usd("0.00"), usd("0.00")));
    assert!(ledger(&world, "maya-old").await.is_empty());
}

async fn an_order_with_nothing_eligible_pays_no_referral_reward(backend: Backend) {
    // A fresh guest buys only gift cards (cash to them, eligible for
    // nothing) with a referral code: a fixed reward would be minted for the
    // referrer at no cost, and a refund by lines would take none of it back
    // (nothing eligible was refunded).
    let (world, feed) = backend.world_with_reports().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
    let mut order = samples::shopify_order_with(samples::SHOPIFY_ORDER_ID, "#2001", Stage::Paid);
    order["customer"] = Value::Null;
    order["email"] = json!("fresh-guest@example.com");
    order["contact_email"] = json!("fresh-guest@example.com");
    for line in order["line_items"].as_array_mut().unwrap() {
        line["gift_card"] = json!(true);
    }
    let (status, body) = shopify(&world, "orders/paid", order.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    feed.catch_up().await;
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert!(record.eligible().is_zero());
    assert!(record.referral.is_none(), "{:?}", record.referral);
    let ann = ann(&world).await;
    assert_eq!((ann.available, ann.pending), (usd("0.00"), usd("0.00")));
}

async fn self_referral_through_a_plus_address_pays_nothing(backend: Backend) {
    // Ann checks out as a guest under a tagged address of her own mailbox
    // (ann+1@, ann+2@...: a new guest account, so a new "first order", each
    // time) with her own referral code in the cart.
    let (world, feed) = backend.world_with_reports().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
    paid(
        &world,
        samples::SHOPIFY_ORDER_ID,
        None,
        Buyer::Guest("Ann+1@Example.com"),
    )
    .await;
    feed.catch_up().await;
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert!(
        record.earned.is_some(),
        "the guest's own cashback is earned"
    );
    assert!(record.referral.is_none(), "{:?}", record.referral);
    let ann = ann(&world).await;
    assert_eq!((ann.available, ann.pending), (usd("0.00"), usd("0.00")));
}

const BOB_CODE: &str = "CB-BOB-BALANCE";

/// A guest's order carrying Ann's code (15.75, allocated on the lines) and
/// Bob's (10.00 off the order), as a platform that combines codes sends it.
fn two_owners_order(stage: Stage) -> String {
    let mut order: Value = serde_json::from_str(&order_json(
        samples::SHOPIFY_ORDER_ID,
        stage,
        Some(ANN_CODE),
        &Buyer::Guest("stranger@example.com"),
    ))
    .unwrap();
    order["discount_codes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "code": BOB_CODE, "amount": "10.00", "type": "fixed_amount" }));
    order["discount_applications"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "type": "discount_code",
            "code": BOB_CODE,
            "title": BOB_CODE,
            "value": "10.0",
            "value_type": "fixed_amount",
            "allocation_method": "across",
            "target_selection": "all",
            "target_type": "line_item"
        }));
    order.to_string()
}

async fn two_owners(world: &World) {
    seed_customer(
        world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    seed_customer(
        world,
        "bob",
        BOB_CODE,
        Some("bob@example.com"),
        "4.00",
        None,
    )
    .await;
    let (status, body) = shopify(world, "orders/paid", two_owners_order(Stage::Paid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn bob(world: &World) -> cashback_core::ledger::Account {
    let bob = account(world, "bob").await.unwrap();
    bob.check(&ledger(world, "bob").await).unwrap();
    bob
}

async fn two_owners_codes_on_one_order_each_pay_for_their_own(backend: Backend) {
    let world = backend.world().await;
    two_owners(&world).await;
    let anns = ann(&world).await;
    assert_eq!(anns.available, usd("14.25"), "Ann pays for her code");
    assert_eq!(anns.lifetime_used, usd("15.75"));
    let bobs = bob(&world).await;
    assert_eq!(
        (bobs.available, bobs.debt, bobs.lifetime_used),
        (usd("0.00"), usd("6.00"), usd("10.00")),
        "Bob pays for his, the shortfall as his debt"
    );
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.paid_by, Some(CustomerId::parse("ann").unwrap()));
    assert_eq!(record.co_payers.len(), 1);
    assert_eq!(
        record.co_payers[0].customer,
        CustomerId::parse("bob").unwrap()
    );
    // A second delivery charges nobody again.
    let (status, _) = shopify(&world, "orders/paid", two_owners_order(Stage::Paid)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bob(&world).await.debt, usd("6.00"));
    assert_eq!(ann(&world).await.available, usd("14.25"));
}

async fn two_owners_codes_are_given_back_to_each_in_proportion(backend: Backend) {
    let world = backend.world().await;
    two_owners(&world).await;
    assert_eq!(
        deliver(&world, "shopify-refunds-create.json").await.0,
        StatusCode::OK
    );
    let record = order_record(&world, &shopify_order()).await.unwrap();
    let bobs = record.co_payers[0].clone();
    assert!(record.restored.is_positive() && bobs.restored.is_positive());
    assert!(
        bobs.restored.amount() < bobs.charged().amount(),
        "a part only"
    );
    let ann_share = record.restored.amount() / record.charged().amount();
    let bob_share = bobs.restored.amount() / bobs.charged().amount();
    assert!((ann_share - bob_share).abs() < rust_decimal::Decimal::new(1, 2));
    let bob_after_refund = bob(&world).await;
    // Bob's restore pays his debt first.
    assert_eq!(
        bob_after_refund.debt,
        usd("6.00")
            .checked_sub(bobs.restored)
            .unwrap()
            .clamp_non_negative()
    );
    ann(&world).await;
    // The cancellation gives each the rest.
    let (status, _) = shopify(
        &world,
        "orders/cancelled",
        two_owners_order(Stage::Cancelled),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (anns, bobs) = (ann(&world).await, bob(&world).await);
    assert_eq!(
        (anns.available, anns.lifetime_used),
        (usd("30.00"), usd("0.00"))
    );
    assert_eq!(
        (bobs.available, bobs.debt, bobs.lifetime_used),
        (usd("4.00"), usd("0.00"), usd("0.00"))
    );
}
