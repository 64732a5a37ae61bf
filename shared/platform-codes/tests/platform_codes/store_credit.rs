//! Store-credit mode end to end on the in-memory store against the fake
//! Shopify: after each balance change (earn, release, a payment with store
//! credit, a refund back to it, adjustments, expiry) the customer's store
//! credit balance on Shopify equals the ledger's spendable balance; an
//! ambiguous call retried never doubles a credit; nobody but the owner's
//! own store credit transactions moves the owner's ledger.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use cashback_app::admin::{adjust, put_program};
use cashback_app::events::handle_order_event;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::platform_codes::store_credit::{read_job, StoreCreditAccounts, IN_FLIGHT};
use cashback_app::platform_codes::{
    backfill_shop, reconcile_customer, sync_customer_code, BackfillSummary, PlatformCodes,
    PlatformError, PlatformSync, RunLimits, SyncError, SyncOutcome, SyncPolicy,
};
use cashback_app::store::{Platform, ReadRequest, Shop, Store};
use cashback_app::{AppConfig, AppError, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::platform_code::ExistingStoreCredit;
use cashback_core::program::{Issuance, Program};
use cashback_platform_codes::{ShopifyCodes, ShopifyConfig, ShopifyCredentials};
use cashback_store::MemoryStore;
use cashback_test_support::fakes::faults::{Fault, FaultRates};
use cashback_test_support::fakes::shopify::{self as shopify_fake, FakeShopify};

pub(crate) struct Quiet;

#[async_trait::async_trait]
impl Notifier for Quiet {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        Ok(Sent {
            message_id: "m".into(),
        })
    }
}

pub(crate) struct Counting(pub(crate) Mutex<u8>);

impl CodeSource for Counting {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.lock().unwrap();
        *n = n.wrapping_add(1);
        [*n; GENERATED_CODE_LENGTH]
    }
}

pub(crate) fn shop() -> ShopId {
    ShopId::parse("demo.myshopify.com").unwrap()
}

pub(crate) fn ann() -> CustomerId {
    CustomerId::parse("1001").unwrap()
}

fn bob() -> CustomerId {
    CustomerId::parse("1002").unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

pub(crate) fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

pub(crate) fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.issuance = Issuance::Pending { days: 1 };
    program.redemption.min_balance = dec!(5);
    program.redemption.combine_with_order = true;
    program.expiry_days = Some(30);
    program.platform_sync = PlatformSync::StoreCredit;
    program.existing_store_credit = Some(ExistingStoreCredit::KeptApart);
    program
}

/// A context whose clock the test moves.
pub(crate) struct World {
    pub(crate) ctx: Context,
    pub(crate) clock: Arc<Mutex<DateTime<Utc>>>,
    pub(crate) fake: FakeShopify,
    pub(crate) platform: ShopifyCodes,
}

impl World {
    pub(crate) async fn new() -> World {
        World::with(program(), 50).await
    }

    /// A world whose program is `program` and whose adapter reads `page`
    /// store credit transactions per page.
    pub(crate) async fn with(program: Program, page: u32) -> World {
        World::with_shopify(program, page, FakeShopify::start().await).await
    }

    /// A world on `fake` (its bucket and restore rate as the test needs).
    pub(crate) async fn with_shopify(program: Program, page: u32, fake: FakeShopify) -> World {
        let store = Arc::new(MemoryStore::new());
        store
            .create_shop(&Shop {
                shop: shop(),
                platform: Platform::Shopify,
                currency: Currency::USD,
                name: "Demo".into(),
                webhook_secret_ref: "env:CASHBACK_SECRET_DEMO".into(),
                api_key_hash: String::new(),
                created_at: t0(),
                guest_id_key: None,
            })
            .await
            .unwrap();
        program.validate().unwrap();
        store.put_program(&shop(), &program, 0, t0()).await.unwrap();
        let clock = Arc::new(Mutex::new(t0()));
        let read = clock.clone();
        let ctx = Context::new(
            store,
            Arc::new(Quiet),
            Arc::new(Counting(Mutex::new(0))),
            AppConfig::default(),
        )
        .with_clock(Arc::new(move || *read.lock().unwrap()));
        // Shopify's clock is the world's: its transactions are dated on the
        // same timeline as the engine's intents.
        fake.advance_transaction_clock(t0() - Utc::now());
        let mut config = ShopifyConfig::new(
            &fake.url(),
            ShopifyCredentials::AdminToken(shopify_fake::ADMIN_TOKEN.into()),
            Currency::USD,
        )
        .unwrap();
        config.timeout = StdDuration::from_millis(300);
        config.store_credit_page = page;
        let platform = ShopifyCodes::new(config).unwrap();
        World {
            ctx,
            clock,
            fake,
            platform,
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.clock.lock().unwrap() += by;
        self.fake.advance_transaction_clock(by);
    }

    pub(crate) async fn account_of(&self, customer: &CustomerId) -> Account {
        let read = self
            .ctx
            .store
            .read(&shop(), &ReadRequest::account(customer))
            .await
            .unwrap();
        read.accounts[customer].value.clone()
    }

    pub(crate) async fn account(&self) -> Account {
        self.account_of(&ann()).await
    }

    /// A sync of Ann that sends nothing for now and says so as an error to
    /// try again (parked and alarmed if it keeps failing).
    pub(crate) async fn sync_held_back(&self) {
        let held = self.sync_of(&ann()).await;
        assert!(matches!(held, Err(ref e) if e.is_retryable()), "{held:?}");
    }

    pub(crate) async fn sync_of(&self, customer: &CustomerId) -> Result<SyncOutcome, SyncError> {
        sync_customer_code(
            &self.ctx,
            &self.platform,
            &shop(),
            customer,
            None,
            &policy(),
        )
        .await
    }

    /// A second adapter of the same shop (another container), with these
    /// credentials.
    pub(crate) fn container(&self, credentials: ShopifyCredentials) -> ShopifyCodes {
        let mut config = ShopifyConfig::new(&self.fake.url(), credentials, Currency::USD).unwrap();
        config.timeout = StdDuration::from_secs(3);
        ShopifyCodes::new(config).unwrap()
    }

    /// The merchant's goodwill credit of 10.00 to Ann, through the engine.
    pub(crate) async fn goodwill_of_ten(&self) {
        adjust(
            &self.ctx,
            &shop(),
            &ann(),
            r#"{"amount":"10.00","reason":"goodwill"}"#,
            "k1",
            "admin",
            self.now(),
        )
        .await
        .unwrap();
    }

    /// Store credit put on Ann in Shopify by hand (not the engine's).
    pub(crate) async fn credit_by_hand(&self, amount: &str) {
        self.platform
            .store_credit()
            .unwrap()
            .credit(
                &ann(),
                usd(amount),
                tokio::time::Instant::now() + StdDuration::from_secs(10),
            )
            .await
            .unwrap();
    }

    /// Store credit taken from Ann in Shopify by hand (not the engine's).
    pub(crate) async fn debit_by_hand(&self, amount: &str) {
        let account_id = self.fake.credit_accounts()[0].id.clone();
        self.platform
            .store_credit()
            .unwrap()
            .debit(
                &account_id,
                usd(amount),
                tokio::time::Instant::now() + StdDuration::from_secs(10),
            )
            .await
            .unwrap();
    }

    /// A second adapter of the same shop with the Admin API token.
    pub(crate) fn container_with_token(&self) -> ShopifyCodes {
        self.container(ShopifyCredentials::AdminToken(
            shopify_fake::ADMIN_TOKEN.into(),
        ))
    }

    /// Replaces the program (the merchant's PUT).
    pub(crate) async fn switch_to(&self, mode: PlatformSync) {
        let mut changed = program();
        changed.platform_sync = mode;
        let body = serde_json::to_string(&changed).unwrap();
        put_program(&self.ctx, &shop(), &body, None, "admin", self.now())
            .await
            .unwrap();
    }

    /// The backfill the program change asks for, run to its end.
    pub(crate) async fn backfill(&self) {
        let summary = self.backfill_summary().await;
        assert!(
            summary.checkpoint.finished() && summary.failed == 0,
            "{summary:?}"
        );
    }

    /// The backfill run to its end, whatever it came to.
    pub(crate) async fn backfill_summary(&self) -> BackfillSummary {
        let limits = RunLimits::for_budget(StdDuration::from_secs(30));
        backfill_shop(
            &self.ctx,
            &self.platform,
            &shop(),
            true,
            self.now(),
            &limits,
            &policy(),
        )
        .await
        .unwrap()
    }

    pub(crate) async fn refund(&self, order: &str, amount: &str, id: &str) {
        let now = self.now();
        handle_order_event(
            &self.ctx,
            &shop(),
            &OrderEvent::Refunded(Refund {
                refund_id: RefundId::parse(id).unwrap(),
                order_id: OrderId::parse(order).unwrap(),
                basis: RefundBasis::Amount {
                    amount: usd(amount),
                },
                occurred_at: now,
            }),
            now,
        )
        .await
        .unwrap();
    }

    pub(crate) fn balance_of(&self, customer: &CustomerId) -> Decimal {
        self.fake
            .store_credit_balance(customer.as_str(), "USD")
            .unwrap_or(Decimal::ZERO)
    }

    /// Syncs Ann, then checks Shopify holds her spendable balance (nothing
    /// below the minimum).
    pub(crate) async fn sync_and_check(&self, step: &str) {
        self.sync_and_check_beside(step, Decimal::ZERO).await;
    }

    /// Syncs Ann, then checks Shopify holds her spendable balance (nothing
    /// below the minimum) beside `own`, the store credit that is hers.
    pub(crate) async fn sync_and_check_beside(&self, step: &str, own: Decimal) {
        self.sync_of(&ann())
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        let account = self.account().await;
        let spendable = account.spendable().amount();
        let expected = if spendable >= dec!(5) {
            spendable
        } else {
            Decimal::ZERO
        };
        assert_eq!(self.balance_of(&ann()), expected + own, "{step}");
        assert_eq!(
            account.store_credit_share.map(|share| share.amount()),
            Some(expected),
            "{step}: the cashback share"
        );
    }

    pub(crate) async fn paid(
        &self,
        customer: &CustomerId,
        id: &str,
        amount: &str,
        gateways: &[&str],
    ) {
        let now = self.now();
        handle_order_event(
            &self.ctx,
            &shop(),
            &OrderEvent::Paid(order(customer, id, amount, gateways, now)),
            now,
        )
        .await
        .unwrap();
    }

    pub(crate) async fn release(&self) {
        promote_due(
            &self.ctx,
            &TokioClock,
            &JobConfig {
                finish_reserve: StdDuration::ZERO,
                ..JobConfig::default()
            },
            self.now(),
            tokio::time::Instant::now() + StdDuration::from_secs(60),
        )
        .await
        .unwrap();
    }

    pub(crate) fn credit_transactions(&self) -> usize {
        self.fake
            .credit_accounts()
            .iter()
            .flat_map(|a| a.transactions.iter())
            .filter(|t| t.event == "ADJUSTMENT" && t.typename.contains("Credit"))
            .count()
    }
}

fn order(
    customer: &CustomerId,
    id: &str,
    amount: &str,
    gateways: &[&str],
    at: DateTime<Utc>,
) -> Order {
    let email = format!("{customer}@example.com");
    Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(customer.clone()),
            email: Some(Email::parse(&email).unwrap()),
        },
        currency: Currency::USD,
        subtotal: usd(amount),
        lines: vec![Line {
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
        }],
        shipping: usd("0"),
        total: usd(amount),
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: gateways.iter().map(|g| g.to_string()).collect(),
        placed_at: None,
        referral_code: None,
        occurred_at: at,
    }
}

pub(crate) fn policy() -> SyncPolicy {
    SyncPolicy {
        max_attempts: 3,
        base_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(50),
        ..SyncPolicy::default()
    }
}

/// Ann's 12.00 mirrored on Shopify, then a goodwill credit of 10.00 the
/// sync must send, a payment of 5.00 of her store credit that Shopify does
/// not list yet, and a credit of 1.00 made by hand after it (listed, its
/// balance after holding the payment): 8.00 on Shopify.
pub(crate) async fn a_hidden_payment_behind_a_hand_credit() -> World {
    let w = with_a_released_balance().await;
    w.goodwill_of_ten().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(5.00), "2"));
    w.fake.hide_newest_transaction();
    w.credit_by_hand("1.00").await;
    w
}

/// Ann has earned and been released 12.00, mirrored on Shopify.
pub(crate) async fn with_a_released_balance() -> World {
    let w = World::new().await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.sync_and_check("earn").await;
    assert_eq!(w.balance_of(&ann()), dec!(0));
    w.advance(Duration::days(2));
    w.release().await;
    assert_eq!(w.account().await.available, usd("12.00"));
    w.sync_and_check("release").await;
    assert_eq!(w.balance_of(&ann()), dec!(12.00));
    w
}

#[tokio::test]
async fn store_credit_follows_the_ledger_through_every_balance_change() {
    let w = with_a_released_balance().await;
    // Ann pays 4.00 of a 50.00 order with her store credit at Shopify's
    // checkout: the next sync reads the payment back into the ledger and
    // puts nothing back.
    w.paid(
        &ann(),
        "2",
        "50.00",
        &["shopify_store_credit", "shopify_payments"],
    )
    .await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(4.00), "2"));
    w.sync_and_check("redeem with store credit").await;
    assert_eq!(w.account().await.available, usd("8.00"));
    // Read again: the payment is applied once.
    w.sync_and_check("redeem read again").await;
    assert_eq!(w.account().await.available, usd("8.00"));
    // The credit spent earns nothing: the order earns 10% of 46.00.
    w.advance(Duration::days(2));
    w.release().await;
    assert_eq!(w.account().await.available, usd("12.60"));
    w.sync_and_check("release of the order paid partly with store credit")
        .await;
    // The order is refunded: its store credit payment is given back.
    assert!(w
        .fake
        .revert_store_credit_payment("1001", "USD", dec!(4.00), "2", "ORDER_REFUND"));
    w.sync_and_check("refund to store credit").await;
    assert_eq!(w.account().await.available, usd("16.60"));
    // An adjustment below the minimum balance takes the store credit to 0.
    adjust(
        &w.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"-12.00","reason":"correction"}"#,
        "k1",
        "admin",
        w.now(),
    )
    .await
    .unwrap();
    w.sync_and_check("adjust below the minimum").await;
    assert_eq!(w.balance_of(&ann()), dec!(0));
    // Another brings it back.
    adjust(
        &w.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"9.50","reason":"goodwill"}"#,
        "k2",
        "admin",
        w.now(),
    )
    .await
    .unwrap();
    w.sync_and_check("adjust back").await;
    assert_eq!(w.balance_of(&ann()), dec!(14.10));
    // Expiry: past the 30 days everything lapses.
    w.advance(Duration::days(40));
    w.release().await;
    assert!(w.account().await.available.amount() < dec!(14.10));
    w.sync_and_check("expire").await;
    // Nothing moves when nothing changed.
    let calls = w.fake.stats().calls;
    w.sync_and_check("again").await;
    let after = w.fake.stats().calls;
    assert_eq!(
        after.get("store_credit_credit"),
        calls.get("store_credit_credit")
    );
    assert_eq!(
        after.get("store_credit_debit"),
        calls.get("store_credit_debit")
    );
}

#[tokio::test]
async fn an_ambiguous_credit_retried_is_reconciled_and_never_doubled() {
    for fault in [Fault::Timeout, Fault::Duplicate] {
        let w = World::new().await;
        w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
        w.advance(Duration::days(2));
        w.release().await;
        // The first sync's reads pass (the discount code looked up to end
        // it, the account's newest transaction, then its page); the credit
        // is applied but its answer is lost (a timeout, or a 503 after
        // applying).
        for _ in 0..3 {
            w.fake.push_pass();
        }
        w.fake.push_fault(fault);
        let failed = w.sync_of(&ann()).await;
        assert!(
            matches!(failed, Err(ref e) if e.is_retryable()),
            "{fault:?}: {failed:?}"
        );
        assert_eq!(w.balance_of(&ann()), dec!(12.00), "{fault:?}: applied once");
        // Retried at once: the intent is pending and may still land, so
        // nothing is sent.
        let again = w.sync_of(&ann()).await;
        assert!(again.is_err(), "{fault:?}: {again:?}");
        assert_eq!(w.credit_transactions(), 1, "{fault:?}");
        // Once no request can still land, the intent is reconciled from the
        // account's transactions and the difference is zero.
        w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
        w.sync_and_check("after the ambiguous credit").await;
        assert_eq!(
            w.balance_of(&ann()),
            dec!(12.00),
            "{fault:?}: never doubled"
        );
        assert_eq!(w.credit_transactions(), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn a_credit_landing_after_its_timeout_is_waited_for_never_doubled() {
    let w = World::new().await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    // The credit reaches Shopify only after the adapter gave up on it: a
    // sync reading the balance before it lands would send it again.
    w.fake.land_next_store_credit_call_late();
    let failed = w.sync_of(&ann()).await;
    assert!(
        matches!(failed, Err(ref e) if e.is_retryable()),
        "{failed:?}"
    );
    // The pending intent blocks every call meanwhile, even once the
    // balance reads 0.
    assert_eq!(w.balance_of(&ann()), dec!(0));
    assert!(w.sync_of(&ann()).await.is_err());
    // It lands.
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    assert_eq!(w.balance_of(&ann()), dec!(12.00));
    w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
    w.sync_and_check("after the late credit").await;
    assert_eq!(w.balance_of(&ann()), dec!(12.00), "never doubled");
    assert_eq!(w.credit_transactions(), 1);
}

#[tokio::test]
async fn a_refused_or_throttled_call_applies_nothing_and_the_retry_sends_it() {
    let w = World::new().await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    for _ in 0..3 {
        w.fake.push_pass();
    }
    w.fake.push_fault(Fault::Throttle);
    // THROTTLED applied nothing: the intent is settled and the same sync
    // retries after the wait.
    w.sync_and_check("throttled, then sent").await;
    assert_eq!(w.credit_transactions(), 1);
}

#[tokio::test]
async fn only_the_owners_own_order_transactions_move_the_owners_ledger() {
    let w = with_a_released_balance().await;
    // An order claims a store credit payment it never made: the gateway
    // names are the webhook's word, not Shopify's store credit account.
    w.paid(&ann(), "2", "50.00", &["shopify_store_credit"])
        .await;
    let before = w.account().await.available;
    w.sync_and_check("an order claiming store credit").await;
    assert_eq!(w.account().await.available, before);
    // Bob spends his own store credit: the sync reads each owner's own
    // account by their customer id, so Bob's payment moves Bob's ledger
    // (and takes its share out of that order's cashback), never Ann's.
    w.paid(&bob(), "3", "100.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_of(&bob()).await.unwrap();
    assert_eq!(w.balance_of(&bob()), dec!(10.00));
    assert!(w.fake.pay_with_store_credit("1002", "USD", dec!(7), "4"));
    w.sync_and_check("another customer's payment").await;
    assert_eq!(
        w.account().await.available.amount(),
        dec!(12.00) + dec!(5.00)
    );
    w.sync_of(&bob()).await.unwrap();
    assert_eq!(w.account_of(&bob()).await.available, usd("3.00"));
    // Store credit put on Ann's account by hand in Shopify's admin is hers,
    // not the engine's: the next sync leaves it where it is, and the ledger
    // does not grow.
    let ledger = w.account().await.available;
    StoreCreditAccounts::credit(
        &w.platform,
        &ann(),
        usd("50.00"),
        tokio::time::Instant::now() + StdDuration::from_secs(5),
    )
    .await
    .unwrap();
    w.sync_and_check_beside("credit put on by hand", dec!(50.00))
        .await;
    assert_eq!(w.account().await.available, ledger);
}

#[tokio::test]
async fn a_guest_has_no_store_credit_and_other_platforms_refuse_the_mode() {
    let w = World::new().await;
    let email = Email::parse("guest@example.com").unwrap();
    let guest = CustomerId::for_guest(&email);
    assert!(matches!(
        sync_customer_code(&w.ctx, &w.platform, &shop(), &guest, None, &policy()).await,
        Ok(SyncOutcome::NotSynced)
    ));
    // A WooCommerce shop cannot keep its balances as Shopify store credit.
    let woo = ShopId::parse("woo.example.com").unwrap();
    w.ctx
        .store
        .create_shop(&Shop {
            shop: woo.clone(),
            platform: Platform::Woocommerce,
            currency: Currency::USD,
            name: "Woo".into(),
            webhook_secret_ref: "env:CASHBACK_SECRET_WOO".into(),
            api_key_hash: String::new(),
            created_at: t0(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    let body = serde_json::to_string(&program()).unwrap();
    match put_program(&w.ctx, &woo, &body, None, "admin", t0()).await {
        Err(AppError::InvalidFields(errors)) => {
            assert_eq!(errors[0].field, "platform_sync");
            assert!(errors[0].message.contains("only a Shopify shop"));
        }
        other => panic!("{other:?}"),
    }
    put_program(&w.ctx, &shop(), &body, None, "admin", t0())
        .await
        .unwrap();
    // An adapter without store credit refuses to sync rather than guess.
    struct NoStoreCredit;
    #[async_trait::async_trait]
    impl PlatformCodes for NoStoreCredit {
        async fn put(
            &self,
            _: &cashback_app::platform_codes::DesiredCode,
        ) -> Result<cashback_app::platform_codes::PutOutcome, PlatformError> {
            unreachable!("no code is put in store-credit mode")
        }
        async fn deactivate(&self, _: &Code) -> Result<(), PlatformError> {
            unreachable!()
        }
        async fn lookup(
            &self,
            _: &Code,
        ) -> Result<Option<cashback_app::platform_codes::CodeState>, PlatformError> {
            unreachable!()
        }
    }
    w.paid(&ann(), "1", "120.00", &[]).await;
    let refused =
        sync_customer_code(&w.ctx, &NoStoreCredit, &shop(), &ann(), None, &policy()).await;
    assert!(matches!(
        refused,
        Err(SyncError::Platform {
            source: PlatformError::Rejected { .. },
            ..
        })
    ));
}

/// More payments between two syncs than one page holds: every one is read
/// back to the last transaction already followed before anything is sent,
/// so none is credited back.
#[tokio::test]
async fn payments_beyond_one_page_are_all_followed_and_none_credited_back() {
    let w = with_a_released_balance().await;
    let credits = w.credit_transactions();
    // Sixty payments of 0.10 with no sync between them: the first page of
    // the account's transactions holds fifty.
    for n in 0..60 {
        assert!(w
            .fake
            .pay_with_store_credit("1001", "USD", dec!(0.10), &format!("10{n:02}")));
    }
    assert_eq!(w.balance_of(&ann()), dec!(6.00));
    w.sync_and_check("after sixty payments").await;
    assert_eq!(w.account().await.available, usd("6.00"));
    assert_eq!(w.balance_of(&ann()), dec!(6.00));
    assert_eq!(w.credit_transactions(), credits, "nothing credited back");
    // Read again: each payment was followed once.
    w.sync_and_check("read again").await;
    assert_eq!(w.account().await.available, usd("6.00"));
}

/// More pages than one attempt reads: nothing is sent while one is left,
/// and the next attempt goes on from where the last stopped.
#[tokio::test]
async fn a_long_history_is_read_over_several_attempts_and_nothing_is_sent_before_its_end() {
    let w = World::with(program(), 1).await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("release").await;
    let credits = w.credit_transactions();
    // 30 payments, read one per page: more than one attempt reads.
    let pages = cashback_app::platform_codes::store_credit::TRANSACTION_PAGES;
    for n in 0..(pages + 10) {
        assert!(w
            .fake
            .pay_with_store_credit("1001", "USD", dec!(0.10), &format!("20{n:02}")));
    }
    // Read later, as a long history is: a read position never passes a
    // transaction made after the read started (less the clock's margin).
    w.advance(Duration::minutes(10));
    let once = SyncPolicy {
        max_attempts: 1,
        ..policy()
    };
    let first = sync_customer_code(&w.ctx, &w.platform, &shop(), &ann(), None, &once).await;
    assert!(matches!(first, Err(ref e) if e.is_retryable()), "{first:?}");
    assert_eq!(w.credit_transactions(), credits, "nothing sent mid-read");
    assert_eq!(w.balance_of(&ann()), dec!(9.00));
    w.sync_and_check("the rest read").await;
    assert_eq!(w.account().await.available, usd("9.00"));
    assert_eq!(w.credit_transactions(), credits);
}

/// A payment with store credit larger than what the ledger holds when it
/// is read (a clawback landed first) is taken whole: the ledger empties,
/// the rest is the owner's debt, and nothing is credited back.
#[tokio::test]
async fn a_payment_larger_than_the_balance_is_taken_whole_and_the_rest_is_debt() {
    let w = World::new().await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.paid(&ann(), "3", "80.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("release").await;
    assert_eq!(w.balance_of(&ann()), dec!(20.00));
    let credits = w.credit_transactions();
    // Ann spends all 20.00; no sync reads it yet.
    assert!(w
        .fake
        .pay_with_store_credit("1001", "USD", dec!(20.00), "2"));
    // Order 1 is refunded: its 12.00 of cashback is clawed back.
    w.refund("1", "120.00", "r1").await;
    assert_eq!(w.account().await.available, usd("8.00"));
    w.sync_and_check("the payment read after the clawback")
        .await;
    let account = w.account().await;
    assert_eq!(account.available, usd("0.00"));
    assert_eq!(account.debt, usd("12.00"));
    assert_eq!(w.balance_of(&ann()), dec!(0));
    assert_eq!(w.credit_transactions(), credits, "nothing credited back");
}

/// The order paid beyond the balance is refunded back to store credit:
/// the refund pays the debt its payment made before it is spendable, so
/// the customer cannot spend again what they owe.
#[tokio::test]
async fn a_refund_back_to_store_credit_pays_the_debt_its_payment_made_first() {
    let w = World::new().await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.paid(&ann(), "3", "80.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("release").await;
    assert!(w
        .fake
        .pay_with_store_credit("1001", "USD", dec!(20.00), "2"));
    w.refund("1", "120.00", "r1").await;
    w.sync_and_check("the payment read after the clawback")
        .await;
    assert_eq!(w.account().await.debt, usd("12.00"));
    // Order 2 is refunded whole: its store credit payment is given back,
    // 20.00 on Shopify.
    assert!(w
        .fake
        .revert_store_credit_payment("1001", "USD", dec!(20.00), "2", "ORDER_REFUND"));
    assert_eq!(w.balance_of(&ann()), dec!(20.00));
    w.sync_and_check("the refund read").await;
    let account = w.account().await;
    assert_eq!(account.debt, usd("0.00"), "the debt is paid first");
    assert_eq!(account.available, usd("8.00"));
    assert_eq!(
        w.balance_of(&ann()),
        dec!(8.00),
        "what is owed is not spendable"
    );
}

/// While a transaction is not listed yet, what the ledger adds is still put
/// on (the cashback share moves by the ledger's changes alone, so an
/// unlisted payment is never credited back), but what it takes back (a
/// merchant's correction here; a clawback or an expiry alike) waits: the
/// unlisted payment may have spent that cashback, and a debit now would
/// take the customer's own store credit for it. Once listed, the payment
/// is followed and the rest taken back.
#[tokio::test]
async fn a_clawback_during_a_gap_waits_for_the_missing_payment() {
    let w = a_hidden_payment_behind_a_hand_credit().await;
    w.sync_held_back().await;
    assert_eq!(
        w.balance_of(&ann()),
        dec!(18.00),
        "the goodwill credit, nothing more"
    );
    adjust(
        &w.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"-15.00","reason":"correction"}"#,
        "k-held",
        "admin",
        w.now(),
    )
    .await
    .unwrap();
    assert_eq!(w.account().await.available, usd("7.00"));
    w.sync_held_back().await;
    assert_eq!(w.balance_of(&ann()), dec!(18.00), "no debit while held");
    // Listed at last: the 5.00 payment is followed; 2.00 is left, under
    // the program's 5.00 minimum, so the cashback goes to 0 and the 1.00
    // put on by hand, hers, is all that is left.
    w.fake.list_hidden();
    w.sync_and_check_beside("once listed", dec!(1.00)).await;
    let account = w.account().await;
    assert_eq!(account.available, usd("2.00"));
    assert_eq!(account.debt, usd("0.00"));
    assert_eq!(w.balance_of(&ann()), dec!(1.00));
}

/// Cashback earned on an order, spent as store credit on another, then
/// the first order returned (its cashback, spent, is a debt) and the second
/// cancelled: the store credit payment given back pays that debt first, so
/// the cashback is never spendable twice.
#[tokio::test]
async fn a_store_credit_payment_given_back_pays_a_clawbacks_debt_first() {
    let w = with_a_released_balance().await;
    assert!(w
        .fake
        .pay_with_store_credit("1001", "USD", dec!(12.00), "2"));
    w.sync_and_check("the payment").await;
    assert_eq!(w.account().await.available, usd("0.00"));
    w.refund("1", "120.00", "r1").await;
    w.sync_and_check("the clawback").await;
    assert_eq!(w.account().await.debt, usd("12.00"));
    assert!(w.fake.revert_store_credit_payment(
        "1001",
        "USD",
        dec!(12.00),
        "2",
        "ORDER_CANCELLATION"
    ));
    w.sync_and_check("the payment given back").await;
    let account = w.account().await;
    assert_eq!(account.debt, usd("0.00"), "the debt is paid first");
    assert_eq!(account.available, usd("0.00"), "never spendable twice");
    assert_eq!(w.balance_of(&ann()), dec!(0));
}

/// A payment already in the store credit balance but not listed yet (the
/// platform lists late): the sync sends what the ledger added since its
/// last call (the cashback share does not depend on the balance), never
/// the payment back; it fails for a retry until the payment is listed,
/// which is then followed as any payment.
#[tokio::test]
async fn a_payment_in_the_balance_but_not_listed_yet_is_never_credited_back() {
    let w = with_a_released_balance().await;
    let credits = w.credit_transactions();
    // A goodwill credit the sync must send, while Ann's 5.00 payment is in
    // her balance (7.00 left) but not in the list.
    w.goodwill_of_ten().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(5.00), "2"));
    w.fake.hide_newest_transaction();
    w.sync_held_back().await;
    assert_eq!(w.credit_transactions(), credits + 1, "the goodwill alone");
    assert_eq!(w.balance_of(&ann()), dec!(17.00));
    w.sync_held_back().await;
    assert_eq!(w.balance_of(&ann()), dec!(17.00), "sent once");
    // Listed: the payment is followed; nothing more is sent.
    w.fake.list_hidden();
    w.sync_and_check("once listed").await;
    assert_eq!(w.account().await.available, usd("17.00"));
    assert_eq!(w.balance_of(&ann()), dec!(17.00));
}

/// A payment listed late behind a newer transaction whose balance after
/// already holds it (a credit the merchant made by hand): the newest
/// listed transaction ends at the balance, but the chain of balances from
/// the position breaks, so nothing is sent until the payment is listed.
#[tokio::test]
async fn a_payment_listed_late_behind_a_newer_transaction_is_never_credited_back() {
    let w = a_hidden_payment_behind_a_hand_credit().await;
    assert_eq!(w.balance_of(&ann()), dec!(8.00));
    w.sync_held_back().await;
    assert_eq!(w.balance_of(&ann()), dec!(18.00), "the goodwill alone");
    w.fake.list_hidden();
    w.sync_and_check_beside("once listed", dec!(1.00)).await;
    assert_eq!(w.account().await.available, usd("17.00"));
}

/// The same late payment, with a newer transaction more than the read's
/// two-minute overlap after the one whose balance holds it: the attempt
/// that sees the gap must not move its read position past it, or its own
/// retry would start after the gap, find the balances adding up, and
/// credit the payment back.
#[tokio::test]
async fn a_gap_in_the_balances_holds_the_read_position_until_it_is_listed() {
    let w = a_hidden_payment_behind_a_hand_credit().await;
    w.fake
        .advance_transaction_clock(chrono::Duration::minutes(5));
    w.credit_by_hand("1.00").await;
    assert_eq!(w.balance_of(&ann()), dec!(9.00));
    w.sync_held_back().await;
    assert_eq!(
        w.balance_of(&ann()),
        dec!(19.00),
        "the goodwill alone, retries included"
    );
    w.fake.list_hidden();
    w.sync_and_check_beside("once listed", dec!(2.00)).await;
    assert_eq!(w.account().await.available, usd("17.00"));
}

/// A gap in the balances that never closes (a payment Shopify took but
/// does not list) is never passed: the read waits at it, so the payment is
/// followed whenever it is listed, and nothing is charged blind. The
/// customer is not stuck meanwhile: what the ledger adds still reaches
/// their store credit, never the payment back (the syncs fail, are parked
/// and alarmed, for someone to look at the account).
#[tokio::test]
async fn a_gap_that_never_closes_lets_cashback_through_and_is_never_passed() {
    let w = a_hidden_payment_behind_a_hand_credit().await;
    let credits = w.credit_transactions();
    for hours in [0, 2, 30] {
        w.advance(Duration::hours(hours));
        w.sync_held_back().await;
        assert_eq!(w.credit_transactions(), credits + 1, "the goodwill alone");
        assert_eq!(w.balance_of(&ann()), dec!(18.00), "never credited back");
        assert_eq!(
            w.account().await.available,
            usd("22.00"),
            "nothing charged blind"
        );
    }
    // Cashback earned meanwhile still reaches her store credit.
    w.paid(&ann(), "3", "30.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_held_back().await;
    assert_eq!(w.balance_of(&ann()), dec!(21.00));
    // Listed at last: the payment is followed as any.
    w.fake.list_hidden();
    w.sync_and_check_beside("once listed", dec!(1.00)).await;
    assert_eq!(w.account().await.available, usd("20.00"));
    assert_eq!(w.balance_of(&ann()), dec!(21.00));
}

/// The program leaves discount-code mode for store credit: the backfill the
/// change asks for ends each customer's discount code before their balance
/// is put on as store credit, so it is never spendable twice.
#[tokio::test]
async fn switching_to_store_credit_ends_the_discount_code() {
    let mut codes = program();
    codes.platform_sync = PlatformSync::DiscountCode;
    let w = World::with(codes, 50).await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_of(&ann()).await.unwrap();
    let code = w.account().await.code.unwrap();
    let discount = w.fake.discount(&code.display()).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(12.00));
    assert_eq!(w.balance_of(&ann()), dec!(0));

    w.switch_to(PlatformSync::StoreCredit).await;
    w.backfill().await;
    assert!(
        !w.fake.discount(&code.display()).unwrap().is_active(),
        "the discount code is ended"
    );
    assert_eq!(w.balance_of(&ann()), dec!(12.00));
    // Later syncs leave the ended code alone.
    let calls = w.fake.stats().calls.get("deactivate").copied();
    w.sync_and_check("in store-credit mode").await;
    assert_eq!(w.fake.stats().calls.get("deactivate").copied(), calls);
}

/// The program leaves store credit for discount codes: the backfill follows
/// the store credit payments not read yet, takes the store credit to zero,
/// then puts the code at what is left.
#[tokio::test]
async fn switching_back_to_discount_codes_empties_the_store_credit() {
    let w = with_a_released_balance().await;
    // Ann spends 4.00 of her store credit; no sync reads it yet.
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(4.00), "2"));
    w.switch_to(PlatformSync::DiscountCode).await;
    w.backfill().await;
    assert_eq!(w.balance_of(&ann()), dec!(0), "store credit emptied");
    assert_eq!(w.account().await.available, usd("8.00"));
    let code = w.account().await.code.unwrap();
    let discount = w.fake.discount(&code.display()).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(8.00));
    // And back again: the code ends, the store credit holds the balance.
    w.switch_to(PlatformSync::StoreCredit).await;
    w.backfill().await;
    assert!(!w.fake.discount(&code.display()).unwrap().is_active());
    assert_eq!(w.balance_of(&ann()), dec!(8.00));
}

/// The platform refuses the cursor the last read stopped at (the
/// transaction it named is gone): the account is read again from its first
/// transaction, the ones followed before are not followed twice, the new
/// payment is, and later reads go on from a fresh position.
#[tokio::test]
async fn a_refused_read_position_reads_the_account_again_and_follows_each_payment_once() {
    let w = with_a_released_balance().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(2.00), "2"));
    w.sync_and_check("a first payment").await;
    assert_eq!(w.account().await.available, usd("10.00"));
    // The stored position keeps its mark; its cursor is now unknown to
    // the platform (sorted after the real one, so the store keeps it).
    let job = read_job(&shop(), &ann());
    let stored = w.ctx.store.get_checkpoint(&job).await.unwrap().unwrap();
    // `h{generation}|time|id|cursor|skip time|skip id|balance`
    let mut fields: Vec<&str> = stored.split('|').collect();
    assert_eq!(fields.len(), 7, "{stored}");
    fields[3] = "~gone";
    w.ctx
        .store
        .put_checkpoint(&job, &fields.join("|"))
        .await
        .unwrap();
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(3.00), "3"));
    w.sync_and_check("read again from the start").await;
    assert_eq!(
        w.account().await.available,
        usd("7.00"),
        "each payment once"
    );
    let moved = w.ctx.store.get_checkpoint(&job).await.unwrap().unwrap();
    assert!(
        moved.starts_with("h00000001|") && !moved.contains("~gone"),
        "{moved}"
    );
    // And on from there.
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(1.00), "4"));
    w.sync_and_check("after").await;
    assert_eq!(w.account().await.available, usd("6.00"));
}

/// Sync turned off after store credit: nothing would read the store
/// credit's payments any more, so the backfill the change asks for follows
/// the unread ones and empties it (the balance stays in the ledger).
#[tokio::test]
async fn turning_sync_off_after_store_credit_follows_and_empties_it() {
    let w = with_a_released_balance().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(4.00), "2"));
    w.switch_to(PlatformSync::Off).await;
    w.backfill().await;
    assert_eq!(w.balance_of(&ann()), dec!(0), "store credit emptied");
    assert_eq!(
        w.account().await.available,
        usd("8.00"),
        "the payment followed"
    );
    // Nothing more is called for her while sync is off.
    let calls = w.fake.stats().calls.clone();
    w.backfill().await;
    assert_eq!(w.fake.stats().calls, calls);
}

/// Sync turned off while Shopify is down: the backfill cannot empty Ann's
/// store credit and names her for a retry (the function queues it); her
/// reconcile, tried while still down, names her again; once Shopify is up
/// it follows her payment and empties the store credit, minutes after the
/// change instead of at the next day's reconcile.
#[tokio::test]
async fn an_emptying_the_backfill_could_not_finish_is_done_by_the_customers_retry() {
    let w = with_a_released_balance().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(4.00), "2"));
    w.switch_to(PlatformSync::Off).await;
    let down = FaultRates {
        server_error: 1.0,
        ..FaultRates::default()
    };
    w.fake.set_fault_rates(down, 3);
    let summary = w.backfill_summary().await;
    assert_eq!(summary.retry, vec![ann()], "{summary:?}");
    assert_eq!(w.balance_of(&ann()), dec!(8.00), "still live");
    let again = reconcile_customer(&w.ctx, &w.platform, &shop(), &ann(), &policy())
        .await
        .unwrap();
    assert_eq!(again.retry, vec![ann()], "{again:?}");

    w.fake.set_fault_rates(FaultRates::default(), 3);
    let retried = reconcile_customer(&w.ctx, &w.platform, &shop(), &ann(), &policy())
        .await
        .unwrap();
    assert!(retried.retry.is_empty(), "{retried:?}");
    assert_eq!(retried.repaired, 1, "{retried:?}");
    assert_eq!(w.balance_of(&ann()), dec!(0), "store credit emptied");
    assert_eq!(
        w.account().await.available,
        usd("8.00"),
        "the payment followed"
    );
    // In step now: a retry delivered twice changes nothing.
    let twice = reconcile_customer(&w.ctx, &w.platform, &shop(), &ann(), &policy())
        .await
        .unwrap();
    assert!(twice.retry.is_empty() && twice.repaired == 0, "{twice:?}");
    assert_eq!(w.balance_of(&ann()), dec!(0));
    assert_eq!(w.account().await.available, usd("8.00"));
}

/// Sync turned off while a payment of Ann's store credit is in her balance
/// but not listed yet: the balance holds less than her cashback share, so
/// the backfill cannot tell what of it is cashback; it sends nothing and
/// names her for a retry; once Shopify lists the payment, her retry follows
/// it into the ledger and empties the rest.
#[tokio::test]
async fn a_payment_not_listed_when_sync_is_turned_off_is_followed_by_the_customers_retry() {
    let w = with_a_released_balance().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(4.00), "2"));
    w.fake.hide_newest_transaction();
    w.switch_to(PlatformSync::Off).await;
    let summary = w.backfill_summary().await;
    assert_eq!(summary.retry, vec![ann()], "{summary:?}");
    assert_eq!(w.balance_of(&ann()), dec!(8.00), "waits for the payment");
    assert_eq!(
        w.account().await.available,
        usd("12.00"),
        "not followed yet"
    );
    w.fake.list_hidden();
    let retried = reconcile_customer(&w.ctx, &w.platform, &shop(), &ann(), &policy())
        .await
        .unwrap();
    assert!(retried.retry.is_empty(), "{retried:?}");
    assert_eq!(
        w.account().await.available,
        usd("8.00"),
        "the payment followed"
    );
    assert_eq!(w.balance_of(&ann()), dec!(0));
}

/// A credit held back by a slow token fetch past its window is never sent:
/// a second sync (another container) that takes over once the intent's
/// in-flight window closed sends the only credit.
#[tokio::test]
async fn a_credit_that_cannot_leave_within_its_window_is_never_sent_late() {
    let w = with_a_released_balance().await;
    w.goodwill_of_ten().await;
    // Container 1 fetches a token for every call (they expire at once),
    // and each fetch now takes 1.5 s: its account read is sent at 1.5 s,
    // its credit could leave at 3 s.
    w.fake.set_token_ttl(StdDuration::from_secs(1));
    w.fake.set_token_delay(StdDuration::from_millis(1500));
    let slow = w.container(ShopifyCredentials::ClientCredentials {
        client_id: shopify_fake::CLIENT_ID.into(),
        client_secret: shopify_fake::CLIENT_SECRET.into(),
    });
    let fast = w.container(ShopifyCredentials::AdminToken(
        shopify_fake::ADMIN_TOKEN.into(),
    ));
    let window = SyncPolicy {
        send_window: StdDuration::from_secs(1),
        ..policy()
    };
    let (shop, ann) = (shop(), ann());
    let first = sync_customer_code(&w.ctx, &slow, &shop, &ann, None, &window);
    let second = async {
        // Container 1 has written its intent and waits for its token.
        tokio::time::sleep(StdDuration::from_millis(2200)).await;
        w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
        sync_customer_code(&w.ctx, &fast, &shop, &ann, None, &window).await
    };
    let (first, second) = tokio::join!(first, second);
    second.unwrap();
    // Container 1 gave up on its credit; it may have synced again after.
    // Container 1 dropped its credit unsent; it may have synced again after.
    let _ = first;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(w.balance_of(&ann), dec!(22.00), "credited once");
    assert_eq!(w.credit_transactions(), 2);
}
