//! Chaos at the adapter: 1,000 balance changes for 100 customers, synced
//! to the fake Shopify while it throttles, fails with 5xx, answers too late
//! (after applying), applies and answers 503 (so the call is sent again),
//! and answers concurrent calls out of order; intents are delivered twice
//! and out of order. Every code must end equal to the last balance, and
//! the shop's cost bucket must never be overdrawn.
//!
//! Prints the figures (syncs per second within the budget, calls per
//! balance change): `cargo test -p cashback-platform-codes --test chaos --
//! --nocapture`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use cashback_app::platform_codes::{
    CodeOwner, Combines, DesiredCode, PlatformCodes, PlatformError,
};
use cashback_core::ids::{Code, CustomerId, Email};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::{
    ShopifyCodes, ShopifyConfig, ShopifyCredentials, WooCodes, WooConfig,
};
use cashback_test_support::fakes::faults::{Fault, FaultRates};
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};
use cashback_test_support::fakes::woocommerce::{self as woo_fake, FakeWoo};

const CUSTOMERS: usize = 100;
const CHANGES: usize = 1000;

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The ledger's spendable balance per customer, in cents.
type Ledger = Arc<Mutex<HashMap<usize, i64>>>;

fn desired_for(customer: usize, cents: i64) -> DesiredCode {
    let amount =
        Money::new(Decimal::new(cents, 2), Currency::USD).unwrap_or_else(|e| panic!("{e}"));
    DesiredCode {
        code: Code::parse(&format!("cb-chaos-{customer}")).unwrap(),
        account: CustomerId::parse(&customer.to_string()).unwrap(),
        amount,
        // The program's minimum balance: 5.00.
        active: cents >= 500,
        restricted_to: Some(CodeOwner {
            customer: Some(CustomerId::parse(&customer.to_string()).unwrap()),
            email: Some(Email::parse(&format!("c{customer}@example.com")).unwrap()),
        }),
        min_subtotal: Money::zero(Currency::USD),
        combines: Combines {
            shipping: true,
            order: false,
            product: true,
        },
    }
}

/// One sync as the use case does it: read the balance at send time, put
/// the absolute amount, wait and retry on throttling and transient
/// failures. Returns the calls' attempts, or the error after `max`.
async fn sync(
    codes: &dyn PlatformCodes,
    ledger: &Ledger,
    customer: usize,
) -> Result<u32, PlatformError> {
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(5);
    loop {
        let cents = ledger.lock().unwrap()[&customer];
        attempts += 1;
        match codes.put(&desired_for(customer, cents)).await {
            Ok(_) => return Ok(attempts),
            Err(error) if error.is_retryable() && attempts < 10 => {
                let wait = match error {
                    PlatformError::Throttled { retry_after } => retry_after,
                    _ => {
                        backoff = (backoff * 2).min(Duration::from_millis(200));
                        backoff
                    }
                };
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// What a chaos run leaves.
struct Run {
    ledger: HashMap<usize, i64>,
    elapsed: Duration,
    syncs: usize,
    parked: u32,
}

/// Makes the 1,000 changes and syncs their intents (delivered twice and
/// out of order) with 24 workers, at most one sync per customer at a time,
/// parking and retrying what fails; returns once every intent is synced.
async fn run_chaos(codes: Arc<dyn PlatformCodes>, seed: u64) -> Run {
    let ledger: Ledger = Arc::new(Mutex::new((0..CUSTOMERS).map(|c| (c, 0)).collect()));
    let locks: Arc<Vec<tokio::sync::Mutex<()>>> = Arc::new(
        (0..CUSTOMERS)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect(),
    );
    let mut rng = Rng(seed);

    // The balance changes, in the order they happen; each leaves an intent.
    let mut intents = Vec::new();
    let mut changes = Vec::new();
    for _ in 0..CHANGES {
        let customer = rng.below(CUSTOMERS as u64) as usize;
        // Earn, redeem, refund, adjust...: a new balance, 0 to 99.99 (a
        // fifth of them below the 5.00 minimum).
        let cents = rng.below(10_000) as i64;
        changes.push((customer, cents));
        intents.push(customer);
        if rng.below(10) == 0 {
            intents.push(customer); // delivered twice
        }
    }
    // Delivered out of order: shuffled within windows of 50.
    for window in intents.chunks_mut(50) {
        for i in (1..window.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            window.swap(i, j);
        }
    }

    let started = Instant::now();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let parked = Arc::new(Mutex::new(0u32));
    // Intents sent and not yet synced (a parked one counts until it is).
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let attempts_total = Arc::new(Mutex::new(0u32));
    let mut workers = Vec::new();
    for _ in 0..24 {
        let (codes, ledger, locks, receiver) = (
            codes.clone(),
            ledger.clone(),
            locks.clone(),
            receiver.clone(),
        );
        let (parked, attempts_total, sender) =
            (parked.clone(), attempts_total.clone(), sender.clone());
        let pending = pending.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(customer) = next else { break };
                if customer == usize::MAX {
                    break;
                }
                // At most one sync in flight per customer.
                let _turn = locks[customer].lock().await;
                match sync(codes.as_ref(), &ledger, customer).await {
                    Ok(attempts) => {
                        *attempts_total.lock().unwrap() += attempts;
                        pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(error) => {
                        // Parked and retried later, as the sync function
                        // parks what keeps failing.
                        assert!(error.is_retryable(), "{error}");
                        *parked.lock().unwrap() += 1;
                        let _ = sender.send(customer);
                    }
                }
            }
        }));
    }
    // The changes happen while intents flow: each change is applied to the
    // ledger before its intent (in the shuffled order) is sent.
    let mut applied = 0;
    let mut sent = 0;
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for customer in &intents {
        let count = seen.entry(*customer).or_default();
        *count += 1;
        // Apply every change of this customer up to this intent's turn.
        while applied < changes.len() && sent * CHANGES >= applied * intents.len() {
            let (c, cents) = changes[applied];
            ledger.lock().unwrap().insert(c, cents);
            applied += 1;
        }
        pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = sender.send(*customer);
        sent += 1;
        if sent % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    while applied < changes.len() {
        let (c, cents) = changes[applied];
        ledger.lock().unwrap().insert(c, cents);
        applied += 1;
    }
    // A final intent per customer changed after their last delivered one
    // (the change's own intent, in a real run) closes the run.
    for customer in 0..CUSTOMERS {
        pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = sender.send(customer);
    }
    // Wait until every intent is synced, then stop the workers.
    while pending.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not settle"
        );
    }
    for _ in 0..workers.len() {
        let _ = sender.send(usize::MAX);
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let ledger = ledger.lock().unwrap().clone();
    let parked = *parked.lock().unwrap();
    Run {
        ledger,
        elapsed,
        syncs: intents.len() + CUSTOMERS,
        parked,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_under_faults_end_with_every_code_equal_to_the_ledger() {
    // Shopify Plus figures (1,000 points restored per second) keep the run
    // short; the figures printed are per point, so they scale to any plan.
    let (maximum, restore) = (1000.0, 1000.0);
    let shop = FakeShopify::with_bucket(maximum, restore).await;
    shop.set_fault_rates(
        FaultRates {
            throttle: 0.04,
            server_error: 0.04,
            timeout: 0.03,
            duplicate: 0.04,
            delay: Duration::from_millis(400),
            jitter: Duration::from_millis(4),
        },
        2026,
    );
    let mut config = ShopifyConfig::new(
        &shop.url(),
        ShopifyCredentials::AdminToken(fake::ADMIN_TOKEN.into()),
        Currency::USD,
    )
    .unwrap();
    config.timeout = Duration::from_millis(200);
    config.assumed_bucket = (maximum, restore);
    let codes = Arc::new(ShopifyCodes::new(config).unwrap());

    let run = run_chaos(codes, 0x5eed_cafe).await;
    let (ledger, elapsed, syncs, parked) = (run.ledger, run.elapsed, run.syncs, run.parked);

    // Every code equals the ledger: the amount when the code works, and
    // not working below the minimum.
    let mut checked = 0;
    for (customer, cents) in &ledger {
        let code = format!("cb-chaos-{customer}");
        match shop.discount(&code) {
            Some(discount) => {
                assert_eq!(
                    discount.is_active(),
                    *cents >= 500,
                    "{code}: {discount:?} vs {cents}"
                );
                if *cents >= 500 {
                    assert_eq!(discount.amount, Decimal::new(*cents, 2), "{code}");
                }
                checked += 1;
            }
            None => assert!(*cents < 500, "{code} missing with {cents}"),
        }
    }
    let stats = shop.stats();
    let injected = shop.injected();
    let calls: u64 = stats.calls.values().sum();
    let throttles_injected = injected.iter().filter(|f| **f == Fault::Throttle).count();
    let server_errors = injected
        .iter()
        .filter(|f| **f == Fault::ServerError)
        .count();
    let requests = calls + stats.throttled + (throttles_injected + server_errors) as u64;
    let points = stats.calls.get("lookup").copied().unwrap_or(0) as f64 * fake::LOOKUP_ACTUAL
        + (calls - stats.calls.get("lookup").copied().unwrap_or(0)) as f64 * fake::MUTATION_COST;
    println!(
        "chaos: {CHANGES} changes, {syncs} syncs for {CUSTOMERS} customers in {:.1} s: {:.1} syncs/s \
         at {restore} points/s; {requests} requests ({:.2} per change), {calls} applied \
         ({:?}); {:.1} points per sync; faults {:?}; natural throttles {}; lowest bucket {:.0}; \
         parked {}; codes checked {checked}",
        elapsed.as_secs_f64(),
        syncs as f64 / elapsed.as_secs_f64(),
        requests as f64 / CHANGES as f64,
        stats.calls,
        points / syncs as f64,
        injected.len(),
        stats.throttled,
        stats.lowest_bucket,
        parked,
    );
    assert!(stats.lowest_bucket >= 0.0, "the bucket was overdrawn");
    assert!(
        stats.throttled * 100 <= requests,
        "the adapter's pacing should keep the shop's own throttling rare: {} of {requests}",
        stats.throttled
    );
    assert!(injected.contains(&Fault::Timeout));
    assert!(injected.contains(&Fault::Duplicate));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_at_the_budget_fill_it_without_passing_it() {
    // A small bucket (200 points, 1,000 restored per second) so the run is
    // bound by the budget, not by the machine: 600 updates of 10 points
    // need 5.8 s of restore after the first 200 points.
    let (maximum, restore) = (200.0, 1000.0);
    let shop = FakeShopify::with_bucket(maximum, restore).await;
    let mut config = ShopifyConfig::new(
        &shop.url(),
        ShopifyCredentials::AdminToken(fake::ADMIN_TOKEN.into()),
        Currency::USD,
    )
    .unwrap();
    config.assumed_bucket = (maximum, restore);
    let codes = Arc::new(ShopifyCodes::new(config).unwrap());
    let ledger: Ledger = Arc::new(Mutex::new((0..CUSTOMERS).map(|c| (c, 1000)).collect()));
    for customer in 0..CUSTOMERS {
        sync(codes.as_ref(), &ledger, customer).await.unwrap();
    }
    let updates = 600;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CUSTOMERS {
        let (codes, ledger) = (codes.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..updates / CUSTOMERS {
                ledger.lock().unwrap().insert(worker, 600 + round as i64);
                sync(codes.as_ref(), &ledger, worker).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = shop.stats();
    let budget = (updates as f64 * fake::MUTATION_COST - maximum) / restore;
    println!(
        "paced: {updates} syncs in {elapsed:.2} s = {:.0} syncs/s at {restore} points/s \
         (budget allows {:.0}/s); natural throttles {}; lowest bucket {:.0}",
        updates as f64 / elapsed,
        restore / fake::MUTATION_COST,
        stats.throttled,
        stats.lowest_bucket
    );
    assert_eq!(stats.throttled, 0, "never throttled by the shop");
    assert!(stats.lowest_bucket >= 0.0);
    assert!(
        elapsed >= budget * 0.9,
        "faster than the budget allows: {elapsed} < {budget}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_under_429_5xx_and_late_answers_end_equal_on_woocommerce() {
    let site = FakeWoo::start().await;
    site.set_fault_rates(
        FaultRates {
            throttle: 0.05,
            server_error: 0.05,
            timeout: 0.03,
            duplicate: 0.04,
            delay: Duration::from_millis(400),
            jitter: Duration::from_millis(3),
        },
        2027,
    );
    let mut config = WooConfig::new(
        &site.url(),
        woo_fake::CONSUMER_KEY,
        woo_fake::CONSUMER_SECRET,
        Currency::USD,
    )
    .unwrap();
    config.timeout = Duration::from_millis(200);
    let run = run_chaos(Arc::new(WooCodes::new(config).unwrap()), 0xfeed).await;
    for (customer, cents) in &run.ledger {
        let code = format!("cb-chaos-{customer}");
        match site.coupon(&code) {
            Some(coupon) => {
                assert_eq!(
                    coupon.is_active(),
                    *cents >= 500,
                    "{code}: {coupon:?} vs {cents}"
                );
                let expected = if *cents >= 500 {
                    Decimal::new(*cents, 2)
                } else {
                    Decimal::ZERO
                };
                assert_eq!(coupon.amount, expected, "{code}");
            }
            None => assert!(*cents < 500, "{code} missing with {cents}"),
        }
    }
    let calls: u64 = site.stats().calls.values().sum();
    println!(
        "woocommerce chaos: {CHANGES} changes, {} syncs in {:.1} s; {calls} requests ({:.2} per change); parked {}",
        run.syncs,
        run.elapsed.as_secs_f64(),
        calls as f64 / CHANGES as f64,
        run.parked
    );
}
