//! A change between discount codes and store credit raced by a sync still
//! holding the old program (another container's 60 s cache, or a sync
//! already running): whichever lands last, the balance ends live on one
//! side only, the side the program names.
//!
//! The stale sync runs in a second context that read the program before
//! the change. A wrapper around the adapter runs the fresh sync to its end
//! at the worst moment of the stale one: after the stale sync read the
//! customer's mode, before its call to the platform.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rust_decimal_macros::dec;

use cashback_app::platform_codes::store_credit::{
    CreditAccount, CreditTransaction, StoreCreditAccounts, IN_FLIGHT,
};
use cashback_app::platform_codes::{
    desired_code, reconcile_shop, sync_customer_code, CodeState, DesiredCode, PlatformCodes,
    PlatformError, PlatformSync, PutOutcome, RunLimits,
};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{Code, CustomerId};
use cashback_core::money::Money;
use cashback_platform_codes::ShopifyCodes;

use super::store_credit::{ann, policy, program, shop, usd, with_a_released_balance, World};

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The adapter, with a hook run once before the first put of a code, the
/// first read of a store credit account, or the first ask for its newest
/// transaction.
struct Racing {
    inner: ShopifyCodes,
    before_put: Mutex<Option<Hook>>,
    before_account: Mutex<Option<Hook>>,
    /// Run once after the first read of a store credit account, before
    /// the sync uses what it read.
    after_account: Mutex<Option<Hook>>,
    before_newest: Mutex<Option<Hook>>,
    /// Every account read says more pages are left (the sync follows what
    /// it read and stops before sending).
    incomplete: bool,
}

impl Racing {
    fn new(inner: ShopifyCodes) -> Racing {
        Racing {
            inner,
            before_put: Mutex::new(None),
            before_account: Mutex::new(None),
            after_account: Mutex::new(None),
            before_newest: Mutex::new(None),
            incomplete: false,
        }
    }

    fn accounts(&self) -> &dyn StoreCreditAccounts {
        self.inner.store_credit().expect("Shopify has store credit")
    }

    async fn run(hook: &Mutex<Option<Hook>>) {
        let taken = hook.lock().unwrap().take();
        if let Some(hook) = taken {
            hook().await;
        }
    }
}

#[async_trait::async_trait]
impl PlatformCodes for Racing {
    async fn put(&self, desired: &DesiredCode) -> Result<PutOutcome, PlatformError> {
        Racing::run(&self.before_put).await;
        self.inner.put(desired).await
    }

    async fn deactivate(&self, code: &Code) -> Result<(), PlatformError> {
        self.inner.deactivate(code).await
    }

    async fn lookup(&self, code: &Code) -> Result<Option<CodeState>, PlatformError> {
        self.inner.lookup(code).await
    }

    fn store_credit(&self) -> Option<&dyn StoreCreditAccounts> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl StoreCreditAccounts for Racing {
    async fn account(
        &self,
        customer: &CustomerId,
        after: Option<&str>,
    ) -> Result<Option<CreditAccount>, PlatformError> {
        Racing::run(&self.before_account).await;
        let mut read = self.accounts().account(customer, after).await;
        if self.incomplete {
            if let Ok(Some(page)) = read.as_mut() {
                page.has_next_page = true;
            }
        }
        Racing::run(&self.after_account).await;
        read
    }

    async fn newest(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<CreditTransaction>, PlatformError> {
        Racing::run(&self.before_newest).await;
        self.accounts().newest(customer).await
    }

    async fn credit(
        &self,
        customer: &CustomerId,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError> {
        self.accounts().credit(customer, amount, send_by).await
    }

    async fn debit(
        &self,
        account: &str,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError> {
        self.accounts().debit(account, amount, send_by).await
    }
}

/// A second container's context on the same store, its program read now
/// (and kept for the cache's 60 s).
async fn stale_context(w: &World) -> Context {
    let clock = w.clock.clone();
    let stale = Context::new(
        w.ctx.store.clone(),
        Arc::new(super::store_credit::Quiet),
        Arc::new(super::store_credit::Counting(Mutex::new(100))),
        AppConfig::default(),
    )
    .with_clock(Arc::new(move || *clock.lock().unwrap()));
    stale.shop_program(&shop(), w.now()).await.unwrap();
    stale
}

/// The send of a sync holding the store-credit program in `stale`,
/// without its check of the mode afterwards (as when that check fails).
async fn stale_store_credit_send(stale: &Context, w: &World) {
    let program = stale.shop_program(&shop(), w.now()).await.unwrap().program;
    assert_eq!(program.platform_sync, PlatformSync::StoreCredit);
    cashback_app::platform_codes::store_credit::sync_store_credit(
        stale,
        w.platform.store_credit().unwrap(),
        &shop(),
        &ann(),
        &program,
        &policy(),
    )
    .await
    .unwrap();
}

/// Runs a sync of Ann in `ctx` through `platform` to its end (its outcome
/// is not the point: the state it leaves is).
fn fresh_sync(ctx: Context, platform: ShopifyCodes) -> Hook {
    Box::new(move || {
        Box::pin(async move {
            let _ = sync_customer_code(&ctx, &platform, &shop(), &ann(), None, &policy()).await;
        })
    })
}

/// The program moves to store credit while a sync holding the discount-code
/// program is about to put Ann's code: the fresh sync ends the code and
/// credits her store credit, then the stale put lands. The code must end
/// up ended again, her balance live as store credit only.
#[tokio::test]
async fn a_stale_discount_code_put_after_a_change_to_store_credit_is_ended_again() {
    let mut codes = program();
    codes.platform_sync = PlatformSync::DiscountCode;
    let w = World::with(codes, 50).await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(chrono::Duration::days(2));
    w.release().await;
    w.sync_of(&ann()).await.unwrap();
    let code = w.account().await.code.unwrap();
    let stale = stale_context(&w).await;

    w.switch_to(PlatformSync::StoreCredit).await;
    let racing = Racing::new(w.container_with_token());
    *racing.before_put.lock().unwrap() = Some(fresh_sync(w.ctx.clone(), w.container_with_token()));
    let _ = sync_customer_code(&stale, &racing, &shop(), &ann(), None, &policy()).await;

    assert_eq!(
        w.balance_of(&ann()),
        dec!(12.00),
        "the store credit holds it"
    );
    assert!(
        !w.fake.discount(&code.display()).unwrap().is_active(),
        "the code put by the stale sync is ended again"
    );
    // And it stays so: the next syncs in store-credit mode change nothing.
    w.sync_and_check("after the race").await;
    assert!(!w.fake.discount(&code.display()).unwrap().is_active());
}

/// The program moves back to discount codes while a sync holding the
/// store-credit program is about to read Ann's store credit account: the
/// fresh sync empties her store credit and puts her code, then the stale
/// sync reads a zero balance and credits it back. The store credit must
/// end up empty again, her balance on the code only.
#[tokio::test]
async fn a_stale_store_credit_sync_after_a_change_to_discount_codes_is_emptied_again() {
    let w = with_a_released_balance().await;
    let stale = stale_context(&w).await;

    w.switch_to(PlatformSync::DiscountCode).await;
    let racing = Racing::new(w.container_with_token());
    *racing.before_account.lock().unwrap() =
        Some(fresh_sync(w.ctx.clone(), w.container_with_token()));
    let _ = sync_customer_code(&stale, &racing, &shop(), &ann(), None, &policy()).await;

    assert_eq!(w.balance_of(&ann()), dec!(0), "the store credit is empty");
    let code = w.account().await.code.unwrap();
    let discount = w.fake.discount(&code.display()).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(12.00));
    assert_eq!(w.account().await.available, usd("12.00"));
}

/// A put of the code that failed on the engine's side but landed on
/// Shopify after a change to store credit ended the code (no sync sees
/// it): the reconcile run finds the code active and ends it.
#[tokio::test]
async fn a_code_that_landed_late_in_store_credit_mode_is_ended_by_the_reconcile() {
    let mut codes = program();
    codes.platform_sync = PlatformSync::DiscountCode;
    let w = World::with(codes.clone(), 50).await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.advance(chrono::Duration::days(2));
    w.release().await;
    w.sync_of(&ann()).await.unwrap();
    w.switch_to(PlatformSync::StoreCredit).await;
    w.backfill().await;
    let code = w.account().await.code.unwrap();
    assert!(!w.fake.discount(&code.display()).unwrap().is_active());

    let late = desired_code(&w.account().await, &codes).unwrap();
    w.platform.put(&late).await.unwrap();
    assert!(w.fake.discount(&code.display()).unwrap().is_active());

    let limits = RunLimits::for_budget(std::time::Duration::from_secs(30));
    let summary = reconcile_shop(&w.ctx, &w.platform, &shop(), None, &limits, &policy())
        .await
        .unwrap();
    assert_eq!((summary.checked, summary.repaired), (1, 1), "{summary:?}");
    assert!(!w.fake.discount(&code.display()).unwrap().is_active());
    assert_eq!(w.balance_of(&ann()), dec!(12.00));
}

/// Sync turned off after store credit; the backfill emptied Ann's store
/// credit; then a container still holding the store-credit program (its
/// cache) syncs her. It must send nothing: a credit now would stay live
/// with nobody reading its payments.
#[tokio::test]
async fn a_stale_store_credit_sync_after_sync_was_turned_off_sends_nothing() {
    let w = with_a_released_balance().await;
    let stale = stale_context(&w).await;
    w.switch_to(PlatformSync::Off).await;
    w.backfill().await;
    assert_eq!(w.balance_of(&ann()), dec!(0));

    let synced = sync_customer_code(&stale, &w.platform, &shop(), &ann(), None, &policy()).await;
    assert!(synced.is_ok(), "{synced:?}");
    assert_eq!(w.balance_of(&ann()), dec!(0), "nothing credited back");
    assert_eq!(w.account().await.available, usd("12.00"));
}

/// A sync still holding the store-credit program credits Ann's store
/// credit after the change to discount codes emptied it, and its check of
/// the mode after the send fails (a store error), so the mode record still
/// says discount code, settled. The next discount-code sync sees a store
/// credit call newer than the emptying and empties it again.
#[tokio::test]
async fn store_credit_sent_after_it_was_emptied_is_emptied_by_the_next_sync() {
    let w = with_a_released_balance().await;
    let stale = stale_context(&w).await;
    w.switch_to(PlatformSync::DiscountCode).await;
    w.backfill().await;
    assert_eq!(w.balance_of(&ann()), dec!(0));
    // The stale sync's send, without its mode check (it failed).
    stale_store_credit_send(&stale, &w).await;
    assert_eq!(w.balance_of(&ann()), dec!(12.00), "live on both sides");

    w.sync_of(&ann()).await.unwrap();
    assert_eq!(w.balance_of(&ann()), dec!(0), "emptied again");
    let code = w.account().await.code.unwrap();
    let discount = w.fake.discount(&code.display()).unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(12.00));
}

/// Sync turned off; the backfill emptied Ann's store credit; then a sync
/// still holding the store-credit program credits it and its check of the
/// mode fails. No sync runs with sync off, so the reconcile (which still
/// runs for a shop that used store credit) finds the call newer than the
/// emptying and empties it again.
#[tokio::test]
async fn store_credit_left_live_with_sync_off_is_emptied_by_the_reconcile() {
    let w = with_a_released_balance().await;
    let stale = stale_context(&w).await;
    w.switch_to(PlatformSync::Off).await;
    w.backfill().await;
    stale_store_credit_send(&stale, &w).await;
    assert_eq!(
        w.balance_of(&ann()),
        dec!(12.00),
        "live, and nobody reads it"
    );

    let limits = RunLimits::for_budget(std::time::Duration::from_secs(30));
    let summary = reconcile_shop(&w.ctx, &w.platform, &shop(), None, &limits, &policy())
        .await
        .unwrap();
    assert_eq!(summary.repaired, 1, "{summary:?}");
    assert_eq!(w.balance_of(&ann()), dec!(0));
    assert_eq!(w.account().await.available, usd("12.00"));
    // Once emptied, the next reconcile finds nothing left.
    let again = reconcile_shop(&w.ctx, &w.platform, &shop(), None, &limits, &policy())
        .await
        .unwrap();
    assert_eq!(again.repaired, 0, "{again:?}");
}

/// Two first reads of Ann's store credit account at once (the feed's sync
/// and a reconcile): the one that finds no read position, then asks for the
/// newest transaction after the other has claimed the first position and
/// credited her cashback, starts from the claimed position, not after the
/// engine's own credit: whatever she held before is not the ledger's, and
/// her cashback is sent once.
#[tokio::test]
async fn two_first_reads_at_once_start_from_one_position() {
    for held_before in [dec!(15.00), dec!(0)] {
        let w = World::new().await;
        if held_before > dec!(0) {
            w.credit_by_hand("15.00").await;
        }
        w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
        w.advance(chrono::Duration::days(2));
        w.release().await;
        let racing = Racing::new(w.container_with_token());
        *racing.before_newest.lock().unwrap() =
            Some(fresh_sync(w.ctx.clone(), w.container_with_token()));
        let _ = sync_customer_code(&w.ctx, &racing, &shop(), &ann(), None, &policy()).await;
        assert_eq!(
            w.account().await.available,
            usd("12.00"),
            "held {held_before}"
        );
        assert_eq!(w.balance_of(&ann()), dec!(12.00) + held_before);
        w.sync_and_check_beside("after the race", held_before).await;
        assert_eq!(w.account().await.available, usd("12.00"));
    }
}

/// Two syncs of Ann compute the same next store credit call: the first
/// claims it and sends it (its answer lost, the credit landing late); the
/// second, which read the ledger after one more change, comes to claim the
/// same sequence with another amount. It can never write its intent over
/// the first's, so the first's call is found in the transactions once its
/// answer can no longer come, counted once, and never sent twice.
#[tokio::test]
async fn a_sync_losing_the_claim_never_hides_the_call_that_won_it() {
    let w = with_a_released_balance().await;
    let correction = |amount: &'static str, key: &'static str, ctx: Context, now| async move {
        cashback_app::admin::adjust(
            &ctx,
            &shop(),
            &ann(),
            &format!(r#"{{"amount":"{amount}","reason":"goodwill"}}"#),
            key,
            "admin",
            now,
        )
        .await
        .unwrap();
    };
    correction("6.00", "k1", w.ctx.clone(), w.now()).await;
    // The first sync's adapter gives up on its credit at once; the fake
    // applies it two seconds later.
    let mut config = cashback_platform_codes::ShopifyConfig::new(
        &w.fake.url(),
        cashback_platform_codes::ShopifyCredentials::AdminToken(
            cashback_test_support::fakes::shopify::ADMIN_TOKEN.into(),
        ),
        cashback_core::money::Currency::USD,
    )
    .unwrap();
    config.timeout = std::time::Duration::from_millis(300);
    let first = ShopifyCodes::new(config).unwrap();
    w.fake.land_next_store_credit_call_late();
    let racing = Racing::new(w.container_with_token());
    let (ctx, now) = (w.ctx.clone(), w.now());
    *racing.before_account.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            let sent = sync_customer_code(&ctx, &first, &shop(), &ann(), None, &policy()).await;
            assert!(sent.is_err(), "the first sync's answer is lost");
            correction("1.00", "k2", ctx, now).await;
        })
    }));
    let second = sync_customer_code(&w.ctx, &racing, &shop(), &ann(), None, &policy()).await;
    assert!(
        matches!(second, Err(ref e) if e.is_retryable()),
        "{second:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(w.balance_of(&ann()), dec!(18.00), "the first credit landed");

    w.advance(chrono::Duration::from_std(IN_FLIGHT).unwrap() + chrono::Duration::seconds(1));
    w.sync_and_check("the first call settled, the rest sent")
        .await;
    assert_eq!(w.balance_of(&ann()), dec!(19.00));
    assert_eq!(w.account().await.available, usd("19.00"));
}

/// A sync reads Ann's store credit (6.00, all cashback); order 2, which
/// spent 6.00 of her cashback, is cancelled and its store credit given
/// back; a second sync follows that (the share is 12.00) and stops. The
/// first sync, holding the 6.00 it read, must not change the share from
/// it: the 6.00 given back would be lost from the share and credited
/// again, as the customer's own, out of a clawback's reach.
#[tokio::test]
async fn money_given_back_that_another_sync_followed_is_never_credited_twice() {
    let w = with_a_released_balance().await;
    assert!(w.fake.pay_with_store_credit("1001", "USD", dec!(6.00), "2"));
    w.sync_and_check("6.00 of cashback spent").await;
    assert_eq!(w.balance_of(&ann()), dec!(6.00));
    let (ctx, fake) = (w.ctx.clone(), w.fake.clone());
    let mut second = Racing::new(w.container_with_token());
    second.incomplete = true;
    let first = Racing::new(w.container_with_token());
    *first.after_account.lock().unwrap() = Some(Box::new(move || {
        Box::pin(async move {
            assert!(fake.revert_store_credit_payment(
                "1001",
                "USD",
                dec!(6.00),
                "2",
                "ORDER_CANCELLATION"
            ));
            let followed =
                sync_customer_code(&ctx, &second, &shop(), &ann(), None, &policy()).await;
            assert!(followed.is_err(), "stops before sending: {followed:?}");
        })
    }));
    let _ = sync_customer_code(&w.ctx, &first, &shop(), &ann(), None, &policy()).await;
    w.sync_and_check("after the race").await;
    assert_eq!(w.account().await.spendable(), usd("12.00"));
    assert_eq!(
        w.balance_of(&ann()),
        dec!(12.00),
        "12.00 of cashback, none hers"
    );
}
