//! Throttles and conflicts retried inside the use case, within its time
//! budget: a webhook answers once DynamoDB lets it, or gives up in time for
//! the platform to hear 503 and deliver again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use cashback_app::events::{handle_order_event, EventOutcome};
use cashback_app::retry::Backoff;
use cashback_app::store::StoreError;
use cashback_app::{AppConfig, AppError, Context};
use cashback_core::order::OrderEvent;
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};
use cashback_store::MemoryStore;

/// Throttles the first `reads` reads and `writes` writes, as DynamoDB does
/// past a table's capacity: the call never reaches the table.
#[derive(Default)]
struct Throttles {
    reads: AtomicU32,
    writes: AtomicU32,
    throttled: AtomicU32,
}

impl Throttles {
    fn take(&self, left: &AtomicU32) -> bool {
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Interceptor for Throttles {
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        Box::pin(async move {
            let throttle = match call {
                Call::Read => self.take(&self.reads),
                Call::Write => self.take(&self.writes),
                _ => false,
            };
            if throttle {
                self.throttled.fetch_add(1, Ordering::SeqCst);
                return Err(StoreError::Unavailable(
                    "BatchGetItem: ProvisionedThroughputExceededException: throttled".into(),
                ));
            }
            run.await
        })
    }
}

async fn throttled_world(reads: u32, writes: u32) -> (Arc<Intercepted<Throttles>>, Context) {
    let memory = Arc::new(MemoryStore::new());
    cashback_test_support::world::open_shop(memory.as_ref(), &program()).await;
    let store = Arc::new(Intercepted::new(
        memory,
        Throttles {
            reads: AtomicU32::new(reads),
            writes: AtomicU32::new(writes),
            ..Throttles::default()
        },
    ));
    let ctx = Context::new(
        store.clone(),
        Arc::new(KeptNotifier::default()),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    (store, ctx)
}

#[tokio::test]
async fn a_throttled_read_and_a_throttled_write_are_retried_and_the_order_earns() {
    let (store, ctx) = throttled_world(1, 2).await;
    let paid = OrderEvent::Paid(order("1001", "ann", vec![line("1", "100.00", 1)]));
    let outcome = handle_order_event(&ctx, &shop(), &paid, t0())
        .await
        .unwrap();
    assert!(
        matches!(outcome, EventOutcome::Applied { entries: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(store.interceptor().throttled.load(Ordering::SeqCst), 3);
    // Applied once: delivered again, it is a duplicate.
    let again = handle_order_event(&ctx, &shop(), &paid, t0())
        .await
        .unwrap();
    assert_eq!(again, EventOutcome::Duplicate);
}

#[tokio::test]
async fn a_table_that_keeps_throttling_is_given_up_on_within_the_budget() {
    let (store, ctx) = throttled_world(0, u32::MAX).await;
    let paid = OrderEvent::Paid(order("1001", "ann", vec![line("1", "100.00", 1)]));
    // Warm the shop's cache first, as a warm container has it.
    ctx.shop_program(&shop(), t0()).await.unwrap();
    let began = Instant::now();
    let error = handle_order_event(&ctx, &shop(), &paid, t0())
        .await
        .unwrap_err();
    let took = began.elapsed();
    assert!(
        took <= Backoff::REQUEST.budget + Duration::from_millis(200),
        "gave up after {took:?}"
    );
    assert!(error.is_retryable(), "answered 503: {error}");
    match error {
        AppError::Contended { attempts, last } => {
            assert!(attempts > 1, "{attempts}");
            assert!(last.contains("throttled"), "{last}");
            assert_eq!(
                store.interceptor().throttled.load(Ordering::SeqCst),
                attempts
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(store
        .inner()
        .read(
            &shop(),
            &cashback_app::store::ReadRequest::account(
                &cashback_core::ids::CustomerId::parse("ann").unwrap()
            )
        )
        .await
        .unwrap()
        .accounts
        .is_empty());
}
