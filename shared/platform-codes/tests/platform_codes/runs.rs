//! The runs over a whole shop on the in-memory store and the fakes: the
//! reconcile finds and repairs drift (its figures counted right), the
//! backfill goes through every account in paced pages and resumes from its
//! checkpoint, and a shop's adapter is built from its credentials.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal_macros::dec;
use tokio::time::Instant;

use cashback_app::platform_codes::{
    backfill_shop, backfill_status, reconcile_shop, sync_customer_code, PlatformSync, RunLimits,
    SyncPolicy,
};
use cashback_app::store::{Platform, Shop};
use cashback_app::Context;
use cashback_core::money::Currency;
use cashback_core::program::Program;
use cashback_platform_codes::{
    ConnectError, ConnectSettings, Connections, CredentialsPlace, ShopifyCodes, ShopifyConfig,
    ShopifyCredentials, StaticCredentials,
};
use cashback_store::MemoryStore;
use cashback_test_support::doubles::KeptNotifier;
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};
use cashback_test_support::fakes::woocommerce::{self as woo_fake, FakeWoo};
use cashback_test_support::fixtures::{customer, shop, t0};
use cashback_test_support::world::{context, open_shop, seed_balance};

fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.redemption.min_balance = dec!(5);
    program.platform_sync = PlatformSync::DiscountCode;
    program
}

fn policy() -> SyncPolicy {
    SyncPolicy {
        max_attempts: 5,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..SyncPolicy::default()
    }
}

fn limits(page_size: u32) -> RunLimits {
    RunLimits {
        page_size,
        concurrency: 4,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

fn shopify(fake: &FakeShopify) -> ShopifyCodes {
    let mut config = ShopifyConfig::new(
        &fake.url(),
        ShopifyCredentials::AdminToken(fake::ADMIN_TOKEN.into()),
        Currency::USD,
    )
    .unwrap();
    config.timeout = Duration::from_millis(500);
    ShopifyCodes::new(config).unwrap()
}

/// A shop whose customers `c0..c{n}` hold 10.00 + i on codes `CB-R{i}`.
async fn shop_with_accounts(n: usize) -> (Context, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    open_shop(store.as_ref(), &program()).await;
    for i in 0..n {
        seed_balance(
            store.as_ref(),
            &program(),
            &format!("c{i:03}"),
            &format!("CB-R{i:03}"),
            &format!("{}.00", 10 + i),
        )
        .await;
    }
    let ctx = context(store.clone(), Arc::new(KeptNotifier::default()));
    (ctx, store)
}

#[tokio::test]
async fn the_reconcile_repairs_every_code_that_drifted_and_counts_it() {
    let fake = FakeShopify::start().await;
    let platform = shopify(&fake);
    let (ctx, store) = shop_with_accounts(12).await;
    for i in 0..12 {
        sync_customer_code(
            &ctx,
            &platform,
            &shop(),
            &customer(&format!("c{i:03}")),
            None,
            &policy(),
        )
        .await
        .unwrap();
    }
    // Drift three ways: the ledger moved without a sync (two accounts), a
    // merchant deleted a code in the admin, and one fell below the minimum.
    let change = |id: &str, amount: &str| {
        let store = store.clone();
        let (id, amount) = (id.to_string(), amount.to_string());
        async move {
            cashback_app::admin::adjust(
                &context(store, Arc::new(KeptNotifier::default())),
                &shop(),
                &customer(&id),
                &format!(r#"{{"amount":"{amount}","reason":"drift"}}"#),
                &format!("k-{id}"),
                "admin",
                t0(),
            )
            .await
            .unwrap();
        }
    };
    change("c001", "4.00").await;
    change("c002", "-1.50").await;
    change("c003", "-11.00").await;
    fake.delete("CB-R004");

    let summary = reconcile_shop(&ctx, &platform, &shop(), None, &limits(5), &policy())
        .await
        .unwrap();
    assert_eq!(
        (
            summary.checked,
            summary.drifted,
            summary.repaired,
            summary.failed
        ),
        (12, 4, 4, 0),
        "{summary:?}"
    );
    assert_eq!(summary.next, None);
    assert_eq!(fake.discount("CB-R001").unwrap().amount, dec!(15.00));
    assert_eq!(fake.discount("CB-R002").unwrap().amount, dec!(10.50));
    assert!(!fake.discount("CB-R003").unwrap().is_active());
    assert_eq!(fake.discount("CB-R004").unwrap().amount, dec!(14.00));

    // A second run finds nothing to repair.
    let again = reconcile_shop(&ctx, &platform, &shop(), None, &limits(5), &policy())
        .await
        .unwrap();
    assert_eq!((again.checked, again.drifted, again.repaired), (12, 0, 0));
}

#[tokio::test]
async fn a_code_held_by_the_merchants_own_discount_is_reported_never_changed() {
    let fake = FakeShopify::start().await;
    let platform = shopify(&fake);
    let (ctx, _store) = shop_with_accounts(2).await;
    fake.add_foreign_code("CB-R001");
    let before = fake.discount("CB-R001").unwrap();
    let summary = reconcile_shop(&ctx, &platform, &shop(), None, &limits(10), &policy())
        .await
        .unwrap();
    assert_eq!(
        (
            summary.checked,
            summary.drifted,
            summary.repaired,
            summary.foreign
        ),
        (2, 1, 1, 1),
        "{summary:?}"
    );
    assert_eq!(fake.discount("CB-R001").unwrap(), before);
}

#[tokio::test]
async fn a_reconcile_past_its_deadline_says_where_to_go_on() {
    let fake = FakeShopify::start().await;
    let platform = shopify(&fake);
    let (ctx, _store) = shop_with_accounts(7).await;
    let past = RunLimits {
        page_size: 3,
        concurrency: 2,
        deadline: Instant::now(),
    };
    let first = reconcile_shop(&ctx, &platform, &shop(), None, &past, &policy())
        .await
        .unwrap();
    assert_eq!((first.checked, first.repaired), (3, 3));
    let next = first.next.clone().expect("more to do");
    let rest = reconcile_shop(&ctx, &platform, &shop(), Some(next), &limits(3), &policy())
        .await
        .unwrap();
    assert_eq!((rest.checked, rest.repaired, rest.next), (4, 4, None));
}

#[tokio::test]
async fn the_backfill_puts_every_existing_code_and_resumes_from_its_checkpoint() {
    let fake = FakeShopify::start().await;
    let platform = shopify(&fake);
    let (ctx, _store) = shop_with_accounts(25).await;
    // One page per step: the deadline is already past after the first.
    let one_page = || RunLimits {
        page_size: 10,
        concurrency: 4,
        deadline: Instant::now(),
    };
    let first = backfill_shop(
        &ctx,
        &platform,
        &shop(),
        false,
        t0(),
        &one_page(),
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!((first.synced, first.checkpoint.done), (10, 10));
    assert!(!first.checkpoint.finished());
    assert_eq!(fake.discounts().len(), 10);
    // A later step (another invocation) goes on where the first stopped.
    let status = backfill_status(&ctx, &shop()).await.unwrap().unwrap();
    assert_eq!(status, first.checkpoint);
    let later = t0() + chrono::Duration::minutes(1);
    let second = backfill_shop(
        &ctx,
        &platform,
        &shop(),
        false,
        later,
        &one_page(),
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!((second.synced, second.checkpoint.done), (10, 20));
    assert_eq!(second.checkpoint.started_at, t0(), "the same run");
    let third = backfill_shop(
        &ctx,
        &platform,
        &shop(),
        false,
        later,
        &limits(10),
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!((third.synced, third.checkpoint.done), (5, 25));
    assert!(third.checkpoint.finished());
    assert_eq!(fake.discounts().len(), 25);
    for discount in fake.discounts() {
        let i: i64 = discount.code[4..].parse().unwrap();
        assert_eq!(
            discount.amount,
            rust_decimal::Decimal::new(1000 + i * 100, 2)
        );
    }
    // A finished run is not resumed: the next request starts a new one.
    let fourth = backfill_shop(
        &ctx,
        &platform,
        &shop(),
        false,
        later,
        &limits(100),
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!((fourth.synced, fourth.checkpoint.done), (25, 25));
    assert_eq!(fourth.checkpoint.started_at, later);
    // The calls were paced inside the shop's bucket.
    assert!(fake.stats().lowest_bucket >= 0.0);
    assert_eq!(fake.stats().throttled, 0);
}

#[tokio::test]
async fn a_restart_starts_the_backfill_over_at_once() {
    let fake = FakeShopify::start().await;
    let platform = shopify(&fake);
    let (ctx, _store) = shop_with_accounts(4).await;
    let past = RunLimits {
        page_size: 2,
        concurrency: 1,
        deadline: Instant::now(),
    };
    let first = backfill_shop(&ctx, &platform, &shop(), false, t0(), &past, &policy())
        .await
        .unwrap();
    assert_eq!(first.checkpoint.done, 2);
    let later = t0() + chrono::Duration::minutes(5);
    let restarted = backfill_shop(
        &ctx,
        &platform,
        &shop(),
        true,
        later,
        &limits(10),
        &policy(),
    )
    .await
    .unwrap();
    assert_eq!((restarted.synced, restarted.checkpoint.done), (4, 4));
    assert_eq!(restarted.checkpoint.started_at, later);
}

fn shop_record(platform: Platform) -> Shop {
    let mut record = cashback_test_support::fixtures::demo_shop_record(
        "env:CASHBACK_SECRET_DEMO_WEBHOOK",
        String::new(),
        t0(),
    );
    record.platform = platform;
    record
}

#[tokio::test]
async fn each_shops_adapter_is_built_from_its_credentials_and_kept() {
    let fake = FakeShopify::start().await;
    let woo = FakeWoo::start().await;
    let place = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
    let reference = place.reference(&shop()).unwrap().to_string();
    let connect = |value: String| {
        Connections::new(
            place.clone(),
            Arc::new(StaticCredentials(HashMap::from([(
                reference.clone(),
                value,
            )]))),
            ConnectSettings::default(),
        )
    };
    let shopify = connect(format!(
        r#"{{"admin_token":"{}","shop_url":"{}"}}"#,
        fake::ADMIN_TOKEN,
        fake.url()
    ));
    let record = shop_record(Platform::Shopify);
    let first = shopify.for_shop(&record).await.unwrap();
    let second = shopify.for_shop(&record).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "kept for the container");
    assert!(first
        .lookup(&cashback_test_support::fixtures::code("CB-NONE"))
        .await
        .unwrap()
        .is_none());

    let woocommerce = connect(format!(
        r#"{{"consumer_key":"{}","consumer_secret":"{}","site_url":"{}"}}"#,
        woo_fake::CONSUMER_KEY,
        woo_fake::CONSUMER_SECRET,
        woo.url()
    ));
    let adapter = woocommerce
        .for_shop(&shop_record(Platform::Woocommerce))
        .await
        .unwrap();
    assert!(adapter
        .lookup(&cashback_test_support::fixtures::code("CB-NONE"))
        .await
        .unwrap()
        .is_none());

    // Wrong or missing credentials are named, their values never shown.
    let wrong = connect(r#"{"admin_token":"shpat_secret","password":"hunter2"}"#.into());
    let error = wrong.for_shop(&record).await.err().unwrap();
    assert!(matches!(error, ConnectError::Invalid { .. }), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!error.to_string().contains("shpat_secret"), "{error}");
    let none = Connections::new(
        place.clone(),
        Arc::new(StaticCredentials::default()),
        ConnectSettings::default(),
    );
    assert!(matches!(
        none.for_shop(&record).await.err().unwrap(),
        ConnectError::Missing(_)
    ));
    assert!(matches!(
        shopify
            .for_shop(&shop_record(Platform::Generic))
            .await
            .err()
            .unwrap(),
        ConnectError::Unsupported(_)
    ));
}

/// A platform holding codes in memory whose next put, once armed, stalls
/// after it was asked (the desired state already read from the ledger)
/// until released, and lands then.
#[derive(Default)]
struct StallingPlatform {
    held: std::sync::Mutex<HashMap<String, cashback_app::platform_codes::CodeState>>,
    stall_next: std::sync::atomic::AtomicBool,
    stalled: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl StallingPlatform {
    fn held(&self, code: &str) -> Option<cashback_app::platform_codes::CodeState> {
        self.held.lock().unwrap().get(code).cloned()
    }
}

#[async_trait::async_trait]
impl cashback_app::platform_codes::PlatformCodes for StallingPlatform {
    async fn put(
        &self,
        desired: &cashback_app::platform_codes::DesiredCode,
    ) -> Result<cashback_app::platform_codes::PutOutcome, cashback_app::platform_codes::PlatformError>
    {
        use cashback_app::platform_codes::{CodeState, PutOutcome};
        if self
            .stall_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.stalled.notify_one();
            self.release.notified().await;
        }
        let state = CodeState {
            code: desired.code.clone(),
            platform_id: format!("p-{}", desired.code),
            amount: desired.amount,
            active: desired.active,
            managed: true,
        };
        let before = self
            .held
            .lock()
            .unwrap()
            .insert(desired.code.to_string(), state.clone());
        Ok(match before {
            Some(_) => PutOutcome::Updated(state),
            None => PutOutcome::Created(state),
        })
    }

    async fn deactivate(
        &self,
        code: &cashback_core::ids::Code,
    ) -> Result<(), cashback_app::platform_codes::PlatformError> {
        if let Some(state) = self.held.lock().unwrap().get_mut(code.as_str()) {
            state.active = false;
        }
        Ok(())
    }

    async fn lookup(
        &self,
        code: &cashback_core::ids::Code,
    ) -> Result<
        Option<cashback_app::platform_codes::CodeState>,
        cashback_app::platform_codes::PlatformError,
    > {
        Ok(self.held(code.as_str()))
    }
}

#[tokio::test]
async fn a_reconcile_put_overtaken_by_a_redemption_and_its_sync_ends_at_the_ledger() {
    use cashback_app::events::handle_order_event;
    use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent};
    use cashback_test_support::world::{line, order, stored_account};

    // Ann (c000) holds 10.00 on CB-R000; the platform has no code yet, so
    // the reconcile finds it drifted and puts 10.00.
    let (ctx, store) = shop_with_accounts(1).await;
    let platform = StallingPlatform::default();
    platform
        .stall_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (the_shop, run_limits, run_policy) = (shop(), limits(5), policy());
    let reconcile = reconcile_shop(&ctx, &platform, &the_shop, None, &run_limits, &run_policy);
    let meanwhile = async {
        // The reconcile read 10.00 and its put is in flight.
        platform.stalled.notified().await;
        // A redemption commits: Ann spends her 10.00 with the code.
        let mut spent = order("9", "c000", vec![line("1", 3000, 1)]);
        spent.discount_codes.push(AppliedCode {
            code: cashback_core::ids::Code::parse("CB-R000").unwrap(),
            amount: cashback_test_support::fixtures::usd("10.00"),
            kind: DiscountKind::Order,
        });
        spent.lines[0].discount = cashback_test_support::fixtures::usd("10.00");
        spent.subtotal = cashback_test_support::fixtures::usd("20.00");
        spent.total = spent.subtotal;
        handle_order_event(&ctx, &shop(), &OrderEvent::Paid(spent), t0())
            .await
            .unwrap();
        let ann = stored_account(store.as_ref(), "c000").await.unwrap().value;
        assert_eq!(ann.spendable().amount(), dec!(0));
        // The change feed's sync of it puts the code at 0.00 (inactive).
        sync_customer_code(&ctx, &platform, &shop(), &customer("c000"), None, &policy())
            .await
            .unwrap();
        assert!(!platform.held("CB-R000").unwrap().active);
        // Then the reconcile's stale put of 10.00 lands.
        platform.release.notify_one();
    };
    let (summary, ()) = tokio::join!(reconcile, meanwhile);
    let summary = summary.unwrap();
    assert_eq!((summary.repaired, summary.failed), (1, 0), "{summary:?}");

    // The platform ends at the ledger's balance: nothing spendable.
    let ann = stored_account(store.as_ref(), "c000").await.unwrap().value;
    let desired = cashback_app::platform_codes::desired_code(&ann, &program()).unwrap();
    let held = platform.held("CB-R000").unwrap();
    assert!(!desired.active);
    assert!(
        !held.active,
        "the code is still spendable for {}",
        held.amount
    );
    assert_eq!(held.amount, desired.amount);
}
