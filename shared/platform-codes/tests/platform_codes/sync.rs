//! The sync use case end to end on the in-memory store: after each balance
//! change (earn, release, redeem, refund, adjust, a new code), the fake
//! platform's code equals the ledger's spendable balance.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal_macros::dec;

use cashback_app::admin::{adjust, regenerate_code};
use cashback_app::events::handle_order_event;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::platform_codes::{
    sync_customer_code, PlatformCodes, PlatformSync, SyncOutcome, SyncPolicy,
};
use cashback_app::store::{Platform, ReadRequest, Shop, Store};
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::program::{Issuance, Program};
use cashback_platform_codes::{
    ShopifyCodes, ShopifyConfig, ShopifyCredentials, WooCodes, WooConfig,
};
use cashback_store::MemoryStore;
use cashback_test_support::fakes::faults::Fault;
use cashback_test_support::fakes::shopify::{self as shopify_fake, FakeShopify};
use cashback_test_support::fakes::woocommerce::{self as woo_fake, FakeWoo};

struct Quiet;

#[async_trait::async_trait]
impl Notifier for Quiet {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        Ok(Sent {
            message_id: "m".into(),
        })
    }
}

struct Counting(Mutex<u8>);

impl CodeSource for Counting {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.lock().unwrap();
        *n = n.wrapping_add(1);
        [*n; GENERATED_CODE_LENGTH]
    }
}

fn shop() -> ShopId {
    ShopId::parse("demo.myshopify.com").unwrap()
}

fn ann() -> CustomerId {
    CustomerId::parse("1001").unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.issuance = Issuance::Pending { days: 1 };
    program.redemption.min_balance = dec!(5);
    program.redemption.min_order_subtotal = dec!(20);
    program.platform_sync = PlatformSync::DiscountCode;
    program
}

async fn context(program: Program, platform: Platform) -> Context {
    let store = Arc::new(MemoryStore::new());
    store
        .create_shop(&Shop {
            shop: shop(),
            platform,
            currency: Currency::USD,
            name: "Demo".into(),
            webhook_secret_ref: "env:CASHBACK_SECRET_DEMO".into(),
            api_key_hash: String::new(),
            created_at: t0(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    store.put_program(&shop(), &program, 0, t0()).await.unwrap();
    Context::new(
        store,
        Arc::new(Quiet),
        Arc::new(Counting(Mutex::new(0))),
        AppConfig::default(),
    )
}

fn order(id: &str, amount: &str, code: Option<(&Code, &str)>) -> Order {
    let line = Line {
        line_id: LineId::parse("1").unwrap(),
        product_id: None,
        variant_id: None,
        sku: None,
        vendor: None,
        quantity: 1,
        unit_price: usd(amount),
        discount: usd("0"),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    };
    let mut order = Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(ann()),
            email: Some(Email::parse("ann@example.com").unwrap()),
        },
        currency: Currency::USD,
        subtotal: usd(amount),
        lines: vec![line],
        shipping: usd("0"),
        total: usd(amount),
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: t0(),
    };
    if let Some((code, discount)) = code {
        order.discount_codes.push(AppliedCode {
            code: code.clone(),
            amount: usd(discount),
            kind: DiscountKind::Order,
        });
        order.lines[0].discount = usd(discount);
        order.subtotal = order.subtotal.checked_sub(usd(discount)).unwrap();
        order.total = order.subtotal;
    }
    order
}

async fn account(ctx: &Context) -> Account {
    let read = ctx
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts[&ann()].value.clone()
}

fn policy() -> SyncPolicy {
    SyncPolicy {
        max_attempts: 5,
        base_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(100),
        ..SyncPolicy::default()
    }
}

/// What the platform holds for the account's code, as (amount, active).
type Holding<'a> = Box<dyn Fn(&Code) -> Option<(rust_decimal::Decimal, bool)> + 'a>;

/// Syncs, then checks the platform holds the account's spendable balance
/// (an active code) or nothing usable (below the minimum).
async fn sync_and_check(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    holding: &Holding<'_>,
    step: &str,
) {
    let outcome = sync_customer_code(ctx, platform, &shop(), &ann(), None, &policy())
        .await
        .unwrap_or_else(|e| panic!("{step}: {e}"));
    assert!(matches!(outcome, SyncOutcome::Synced(_)), "{step}");
    let account = account(ctx).await;
    let spendable = account.spendable();
    let code = account.code.clone().unwrap();
    let usable = spendable.amount() >= dec!(5);
    match holding(&code) {
        Some((amount, active)) => {
            assert_eq!(active, usable, "{step}: active");
            if usable {
                assert_eq!(amount, spendable.amount(), "{step}: amount");
            }
        }
        None => assert!(!usable, "{step}: the platform has no code for {spendable}"),
    }
}

async fn walk_through_every_balance_change(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    holding: Holding<'_>,
) {
    // Earn: pending only, the code exists but spends nothing yet.
    handle_order_event(
        ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "120.00", None)),
        t0(),
    )
    .await
    .unwrap();
    sync_and_check(ctx, platform, &holding, "earn").await;
    // Release: 12.00 available.
    promote_due(
        ctx,
        &TokioClock,
        &JobConfig {
            finish_reserve: StdDuration::ZERO,
            ..JobConfig::default()
        },
        t0() + Duration::days(2),
        tokio::time::Instant::now() + StdDuration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(account(ctx).await.available, usd("12.00"));
    sync_and_check(ctx, platform, &holding, "release").await;
    // Redeem 4.00 of it at the checkout.
    let code = account(ctx).await.code.unwrap();
    let spent = order("2", "50.00", Some((&code, "4.00")));
    handle_order_event(
        ctx,
        &shop(),
        &OrderEvent::Paid(spent),
        t0() + Duration::days(3),
    )
    .await
    .unwrap();
    assert_eq!(account(ctx).await.available, usd("8.00"));
    sync_and_check(ctx, platform, &holding, "redeem").await;
    // Refund the spending order: the credit spent comes back.
    let refund = OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse("r1").unwrap(),
        order_id: OrderId::parse("2").unwrap(),
        basis: RefundBasis::Lines {
            lines: vec![RefundedLine {
                line_id: LineId::parse("1").unwrap(),
                quantity: 1,
            }],
        },
        occurred_at: t0() + Duration::days(4),
    });
    handle_order_event(ctx, &shop(), &refund, t0() + Duration::days(4))
        .await
        .unwrap();
    sync_and_check(ctx, platform, &holding, "refund").await;
    // A merchant adjustment takes it below the minimum balance...
    let below = format!(
        r#"{{"amount":"-{}","reason":"correction"}}"#,
        account(ctx).await.available.amount() - dec!(3)
    );
    adjust(
        ctx,
        &shop(),
        &ann(),
        &below,
        "k1",
        "admin",
        t0() + Duration::days(5),
    )
    .await
    .unwrap();
    sync_and_check(ctx, platform, &holding, "adjust below the minimum").await;
    // ...and another brings it back.
    adjust(
        ctx,
        &shop(),
        &ann(),
        r#"{"amount":"9.50","reason":"goodwill"}"#,
        "k2",
        "admin",
        t0() + Duration::days(5),
    )
    .await
    .unwrap();
    sync_and_check(ctx, platform, &holding, "adjust back").await;
    // Running the sync again changes nothing.
    sync_and_check(ctx, platform, &holding, "again").await;
}

fn shopify_adapter(shop: &FakeShopify) -> ShopifyCodes {
    let mut config = ShopifyConfig::new(
        &shop.url(),
        ShopifyCredentials::AdminToken(shopify_fake::ADMIN_TOKEN.into()),
        Currency::USD,
    )
    .unwrap();
    config.timeout = StdDuration::from_millis(300);
    ShopifyCodes::new(config).unwrap()
}

#[tokio::test]
async fn the_shopify_code_follows_the_ledger_through_every_balance_change() {
    let fake = FakeShopify::start().await;
    let ctx = context(program(), Platform::Shopify).await;
    let platform = shopify_adapter(&fake);
    let holding: Holding<'_> = Box::new(|code: &Code| {
        fake.discount(code.as_str())
            .map(|d| (d.amount, d.is_active()))
    });
    walk_through_every_balance_change(&ctx, &platform, holding).await;
    let discount = fake
        .discount(account(&ctx).await.code.unwrap().as_str())
        .unwrap();
    assert_eq!(discount.customers, ["gid://shopify/Customer/1001"]);
    assert_eq!(discount.min_subtotal, Some(dec!(20.00)));
}

#[tokio::test]
async fn the_woocommerce_coupon_follows_the_ledger_through_every_balance_change() {
    let fake = FakeWoo::start().await;
    let ctx = context(program(), Platform::Woocommerce).await;
    let mut config = WooConfig::new(
        &fake.url(),
        woo_fake::CONSUMER_KEY,
        woo_fake::CONSUMER_SECRET,
        Currency::USD,
    )
    .unwrap();
    config.timeout = StdDuration::from_millis(300);
    let platform = WooCodes::new(config).unwrap();
    let holding: Holding<'_> = Box::new(|code: &Code| {
        fake.coupon(code.as_str())
            .map(|c| (c.amount, c.is_active()))
    });
    walk_through_every_balance_change(&ctx, &platform, holding).await;
    let coupon = fake
        .coupon(account(&ctx).await.code.unwrap().as_str())
        .unwrap();
    assert_eq!(coupon.email_restrictions, ["ann@example.com"]);
}

#[tokio::test]
async fn a_new_code_ends_the_old_one_and_carries_the_balance() {
    let fake = FakeShopify::start().await;
    let ctx = context(program(), Platform::Shopify).await;
    let platform = shopify_adapter(&fake);
    handle_order_event(
        &ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "120.00", None)),
        t0(),
    )
    .await
    .unwrap();
    adjust(
        &ctx,
        &shop(),
        &ann(),
        r#"{"amount":"20.00","reason":"welcome"}"#,
        "k1",
        "admin",
        t0(),
    )
    .await
    .unwrap();
    sync_customer_code(&ctx, &platform, &shop(), &ann(), None, &policy())
        .await
        .unwrap();
    let old = account(&ctx).await.code.unwrap();
    regenerate_code(&ctx, &shop(), &ann(), "admin")
        .await
        .unwrap();
    let new = account(&ctx).await.code.unwrap();
    sync_customer_code(&ctx, &platform, &shop(), &ann(), Some(&old), &policy())
        .await
        .unwrap();
    assert!(!fake.discount(old.as_str()).unwrap().is_active());
    let discount = fake.discount(new.as_str()).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(20.00));
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_with_the_balance_read_again() {
    let fake = FakeShopify::start().await;
    let ctx = context(program(), Platform::Shopify).await;
    let platform = shopify_adapter(&fake);
    handle_order_event(
        &ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "120.00", None)),
        t0(),
    )
    .await
    .unwrap();
    adjust(
        &ctx,
        &shop(),
        &ann(),
        r#"{"amount":"7.00","reason":"welcome"}"#,
        "k1",
        "admin",
        t0(),
    )
    .await
    .unwrap();
    for fault in [Fault::Throttle, Fault::ServerError, Fault::Timeout] {
        fake.push_fault(fault);
    }
    let outcome = sync_customer_code(&ctx, &platform, &shop(), &ann(), None, &policy())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SyncOutcome::Synced(ref s) if s.attempts == 4),
        "{outcome:?}"
    );
    let code = account(&ctx).await.code.unwrap();
    assert_eq!(fake.discount(code.as_str()).unwrap().amount, dec!(7.00));
}

#[tokio::test]
async fn a_program_that_keeps_sync_off_calls_no_platform() {
    let fake = FakeShopify::start().await;
    let mut off = program();
    off.platform_sync = PlatformSync::Off;
    let ctx = context(off, Platform::Shopify).await;
    let platform = shopify_adapter(&fake);
    handle_order_event(
        &ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "120.00", None)),
        t0(),
    )
    .await
    .unwrap();
    let outcome = sync_customer_code(&ctx, &platform, &shop(), &ann(), None, &policy())
        .await
        .unwrap();
    assert_eq!(outcome, SyncOutcome::NotSynced);
    assert!(fake.stats().calls.is_empty());
}
