//! What the use-case tests share: a shop on the in-memory store, a notifier
//! that keeps what it was asked to send (`cashback_test_support`), and
//! fixed code bytes; builders of orders, coupons and checkout requests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use cashback_app::store::Store;
use cashback_app::{AppConfig, Context};
use cashback_core::ids::*;
use cashback_core::money::Currency;
use cashback_core::order::*;
use cashback_core::program::Program;
use cashback_store::MemoryStore;

pub use cashback_test_support::doubles::{CountingCodes, KeptNotifier};
use cashback_test_support::fixtures::demo_shop_record;
pub use cashback_test_support::fixtures::{program, shop, t0, usd};

pub struct World {
    pub store: Arc<MemoryStore>,
    pub notifier: Arc<KeptNotifier>,
    pub ctx: Context,
}

pub async fn world(program: Program) -> World {
    let store = Arc::new(MemoryStore::new());
    let notifier = Arc::new(KeptNotifier::default());
    store
        .create_shop(&demo_shop_record("env:DEMO", String::new(), t0()))
        .await
        .unwrap();
    store.put_program(&shop(), &program, 0, t0()).await.unwrap();
    let ctx = Context::new(
        store.clone(),
        notifier.clone(),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    World {
        store,
        notifier,
        ctx,
    }
}

pub fn line(id: &str, price: &str, quantity: u32) -> Line {
    Line {
        line_id: LineId::parse(id).unwrap(),
        product_id: None,
        variant_id: None,
        sku: None,
        vendor: None,
        quantity,
        unit_price: usd(price),
        discount: usd("0"),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    }
}

pub fn order(id: &str, customer: &str, lines: Vec<Line>) -> Order {
    let total = lines.iter().fold(usd("0"), |sum, l| {
        sum.checked_add(l.net_merchandise().unwrap()).unwrap()
    });
    Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse(customer).unwrap()),
            email: Some(Email::parse(&format!("{customer}@example.com")).unwrap()),
        },
        currency: Currency::USD,
        lines,
        subtotal: total,
        shipping: usd("0"),
        total,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: t0(),
    }
}

pub fn refund(order_id: &str, refund_id: &str, lines: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap(),
        order_id: OrderId::parse(order_id).unwrap(),
        basis: RefundBasis::Lines {
            lines: lines
                .iter()
                .map(|(id, q)| RefundedLine {
                    line_id: LineId::parse(id).unwrap(),
                    quantity: *q,
                })
                .collect(),
        },
        occurred_at: t0(),
    })
}
// ---- Scheduled jobs (jobs_*.rs): a simulated clock, a notifier that can
// ---- throttle or bounce, and a store that can stall mid-run.

pub mod jobs {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use cashback_app::events::handle_order_event;
    use cashback_app::jobs::Clock;
    use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
    use cashback_app::store::*;
    use cashback_app::{AppConfig, Context};
    use cashback_core::ids::*;
    use cashback_core::ledger::{Account, LedgerEntry};
    use cashback_core::order::OrderEvent;
    use cashback_core::program::Program;
    use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};
    use cashback_store::MemoryStore;

    use super::{line, order, shop, t0};

    /// Time that passes only when the job sleeps: sends can be counted per
    /// simulated second, and nothing depends on the machine's speed.
    pub struct FakeClock {
        base: tokio::time::Instant,
        offset: Mutex<Duration>,
    }

    impl FakeClock {
        pub fn new() -> Arc<FakeClock> {
            Arc::new(FakeClock {
                base: tokio::time::Instant::now(),
                offset: Mutex::new(Duration::ZERO),
            })
        }

        pub fn elapsed(&self) -> Duration {
            *self.offset.lock().unwrap()
        }

        pub fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }

        /// A deadline this far ahead on this clock.
        pub fn deadline_in(&self, within: Duration) -> tokio::time::Instant {
            self.now() + within
        }
    }

    #[async_trait::async_trait]
    impl Clock for FakeClock {
        fn now(&self) -> tokio::time::Instant {
            self.base + self.elapsed()
        }

        async fn sleep(&self, duration: Duration) {
            self.advance(duration);
            tokio::task::yield_now().await;
        }
    }

    /// Keeps every send attempt with the simulated time it was made at;
    /// throttles the next `throttle_next` attempts; bounces listed addresses.
    #[derive(Default)]
    pub struct ScriptedNotifier {
        pub clock: Option<Arc<FakeClock>>,
        pub sent: Mutex<Vec<Notification>>,
        /// Simulated time of every attempt, sent or not.
        pub attempts: Mutex<Vec<Duration>>,
        pub throttle_next: AtomicU64,
        pub suppressed: Mutex<HashSet<String>>,
        /// Each send takes this long on the simulated clock.
        pub latency: Duration,
    }

    impl ScriptedNotifier {
        pub fn with_clock(clock: Arc<FakeClock>) -> ScriptedNotifier {
            ScriptedNotifier {
                clock: Some(clock),
                ..ScriptedNotifier::default()
            }
        }

        pub fn sent_of(&self, kind: &str) -> Vec<Notification> {
            self.sent
                .lock()
                .unwrap()
                .iter()
                .filter(|n| n.kind.name() == kind)
                .cloned()
                .collect()
        }

        pub fn keys_of(&self, kind: &str) -> Vec<String> {
            let mut keys: Vec<String> = self
                .sent_of(kind)
                .into_iter()
                .map(|n| n.idempotency_key)
                .collect();
            keys.sort();
            keys
        }
    }

    #[async_trait::async_trait]
    impl Notifier for ScriptedNotifier {
        async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
            if let Some(clock) = &self.clock {
                self.attempts.lock().unwrap().push(clock.elapsed());
                clock.advance(self.latency);
            }
            tokio::task::yield_now().await;
            if self
                .throttle_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(NotifyError::Throttled);
            }
            if self
                .suppressed
                .lock()
                .unwrap()
                .contains(notification.to.as_str())
            {
                return Err(NotifyError::Suppressed);
            }
            let mut sent = self.sent.lock().unwrap();
            sent.push(notification.clone());
            Ok(Sent {
                message_id: format!("m{}", sent.len()),
            })
        }
    }

    /// A way to stop a run at its n-th store call (as a crashed Lambda
    /// stops), before or just after the call took effect, and a yield before
    /// every call so concurrent runs interleave. Counted calls: reads,
    /// writes, the due index and checkpoints.
    #[derive(Default)]
    pub struct Stalls {
        calls: AtomicU64,
        /// The call (1-based) that never returns; 0 for none.
        stall_at: AtomicU64,
        /// The stalled call takes effect first (a write commits, then the
        /// process dies before it learns so).
        stall_after: AtomicBool,
        stalled: tokio::sync::Notify,
    }

    /// The in-memory store behind [`Stalls`].
    pub type StallingStore = Intercepted<Stalls>;

    pub fn stalling_store(inner: Arc<MemoryStore>) -> Arc<StallingStore> {
        Arc::new(Intercepted::new(inner, Stalls::default()))
    }

    impl Stalls {
        /// Stalls the `nth` call from now (1 = the next one).
        pub fn stall_at(&self, nth: u64, after_effect: bool) {
            let done = self.calls.load(Ordering::SeqCst);
            self.stall_after.store(after_effect, Ordering::SeqCst);
            self.stall_at.store(done + nth, Ordering::SeqCst);
        }

        /// Resolves when a call has stalled: the moment to drop the run.
        pub async fn stalled(&self) {
            self.stalled.notified().await;
        }

        pub fn never_stall(&self) {
            self.stall_at.store(0, Ordering::SeqCst);
        }
    }

    impl Interceptor for Stalls {
        fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
            if !matches!(
                call,
                Call::Read | Call::Write | Call::Due | Call::GetCheckpoint | Call::PutCheckpoint
            ) {
                return run;
            }
            Box::pin(async move {
                tokio::task::yield_now().await;
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n == self.stall_at.load(Ordering::SeqCst) {
                    if self.stall_after.load(Ordering::SeqCst) {
                        let _ = run.await;
                    }
                    self.stalled.notify_one();
                    return std::future::pending().await;
                }
                run.await
            })
        }
    }

    pub use cashback_test_support::doubles::UniqueCodes;

    /// A shop with `program` on a fresh in-memory store; the context's store
    /// and notifier are the ones given.
    pub async fn jobs_context(
        memory: &Arc<MemoryStore>,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        program: &Program,
    ) -> Context {
        if memory.get_shop(&shop()).await.unwrap().is_none() {
            memory
                .create_shop(&cashback_test_support::fixtures::demo_shop_record(
                    "env:DEMO",
                    String::new(),
                    t0(),
                ))
                .await
                .unwrap();
            memory.put_program(&shop(), program, 0, t0()).await.unwrap();
        }
        Context::new(
            store,
            notifier,
            Arc::new(UniqueCodes::default()),
            AppConfig::default(),
        )
    }

    /// Pays order `id` of `customer` for `amount` at `at`, through the
    /// order-event use case (which opens the account and issues the code).
    pub async fn pay(ctx: &Context, id: &str, customer: &str, amount: &str, at: DateTime<Utc>) {
        let mut placed = order(id, customer, vec![line("1", amount, 1)]);
        placed.occurred_at = at;
        handle_order_event(ctx, &shop(), &OrderEvent::Paid(placed), at)
            .await
            .unwrap();
    }

    pub async fn account_of(store: &MemoryStore, customer: &str) -> Versioned<Account> {
        let id = CustomerId::parse(customer).unwrap();
        let read = store
            .read(
                &shop(),
                &ReadRequest {
                    accounts: vec![id.clone()],
                    ..ReadRequest::default()
                },
            )
            .await
            .unwrap();
        read.accounts[&id].clone()
    }

    /// The account's ledger, oldest first.
    pub async fn ledger_of(store: &MemoryStore, customer: &str) -> Vec<LedgerEntry> {
        let id = CustomerId::parse(customer).unwrap();
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.ledger(&shop(), &id, cursor, 100).await.unwrap();
            entries.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        entries.reverse();
        entries
    }
}

// ---- Checkout and portal ----------------------------------------------------

/// A customer account with `available` balance and a code, written the way
/// the engine writes one (an adjustment entry, the code index), so the
/// ledger and the account agree.
pub async fn seed_balance(
    world: &World,
    program: &Program,
    customer: &str,
    code: &str,
    available: &str,
) -> cashback_core::ledger::Account {
    use cashback_app::store::{AccountWrite, CodeChange, WriteSet};
    use cashback_core::ledger::Account;
    let mut account = Account::open(shop(), CustomerId::parse(customer).unwrap(), Currency::USD);
    account.email = Some(Email::parse(&format!("{customer}@example.com")).unwrap());
    account.code = Some(Code::parse(code).unwrap());
    let applied = account
        .adjust(usd(available), "seed", customer, program, t0())
        .unwrap();
    world
        .store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.clone(),
                    expected_version: 0,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: Some(CodeChange {
                        new_code: Code::parse(code).unwrap(),
                        old_code: None,
                        referral_code: None,
                    }),
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    account
}

/// The account as stored now.
pub async fn stored_account(world: &World, customer: &str) -> cashback_core::ledger::Account {
    use cashback_app::store::ReadRequest;
    let id = CustomerId::parse(customer).unwrap();
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts
        .get(&id)
        .expect("account exists")
        .value
        .clone()
}

/// An approved coupon: `percent` back, no other limit.
pub fn coupon(code: &str, percent: rust_decimal::Decimal) -> cashback_core::coupon::CashbackCoupon {
    use cashback_core::coupon::*;
    CashbackCoupon {
        code: Code::parse(code).unwrap(),
        display_name: format!("{percent}% back"),
        description: String::new(),
        offer_text: format!("Get {percent}% back in cashback"),
        reward: CouponReward::Percentage {
            percent,
            max_cashback: rust_decimal::Decimal::ZERO,
        },
        min_cart_value: rust_decimal::Decimal::ZERO,
        usage_limit_total: None,
        usage_limit_per_customer: None,
        payment_methods: Vec::new(),
        starts_at: None,
        ends_at: None,
        status: CouponStatus::Approved,
        stacking: Stacking::Exclusive,
    }
}

pub async fn seed_coupon(world: &World, coupon: cashback_core::coupon::CashbackCoupon, uses: u32) {
    use cashback_app::store::CouponRecord;
    world
        .store
        .put_coupon(
            &shop(),
            &CouponRecord {
                coupon,
                uses,
                created_at: t0(),
                updated_at: t0(),
            },
            0,
        )
        .await
        .unwrap();
}

/// A validation request for a cart of one line at `subtotal`.
pub fn validate_request(
    code: &str,
    customer: Option<&str>,
    subtotal: &str,
) -> cashback_app::checkout::ValidateRequest {
    serde_json::from_value(serde_json::json!({
        "code": code,
        "customer_id": customer,
        "currency": "USD",
        "cart": {
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": subtotal}],
            "subtotal": subtotal,
        },
    }))
    .unwrap()
}

/// The same request, reserving for `checkout`.
pub fn reserving(
    mut request: cashback_app::checkout::ValidateRequest,
    checkout: &str,
    ttl_seconds: Option<u32>,
) -> cashback_app::checkout::ValidateRequest {
    request.reserve = Some(cashback_app::checkout::Reserve {
        checkout_id: CheckoutId::parse(checkout).unwrap(),
        ttl_seconds,
    });
    request
}
