//! Random order histories applied through the Store port the way the use
//! cases apply them (one read, the core's decision, one transaction guarded
//! by the event's key), with duplicate deliveries and any delivery order:
//! after every step the account agrees with its ledger as read back from
//! the store, and the store's order records agree with the account.
//!
//! Thousands of histories run on the in-memory adapter; a sample of them
//! runs on DynamoDB through moto (moto copies a table on every transaction,
//! so each sampled history gets its own small table).

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use cashback_app::store::*;
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::orders::{apply_order_event, release_pending, EventContext, OrderRecord};
use cashback_core::program::{Issuance, Program};

use crate::cases::{all_entries, read_account, shop};
use cashback_test_support::moto;

#[derive(Debug, Clone)]
enum Step {
    Deliver(Box<OrderEvent>),
    Release { days: i64 },
}

fn money(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::USD).unwrap()
}

fn order(n: usize, lines: &[(i64, u32)], day: i64) -> Order {
    let lines: Vec<Line> = lines
        .iter()
        .enumerate()
        .map(|(i, (cents, quantity))| Line {
            line_id: LineId::parse(&format!("l{i}")).unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: *quantity,
            unit_price: money(*cents),
            discount: money(0),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        })
        .collect();
    let total = lines.iter().fold(money(0), |sum, l| {
        sum.checked_add(l.net_merchandise().unwrap()).unwrap()
    });
    Order {
        order_id: OrderId::parse(&format!("o{n}")).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse("ann").unwrap()),
            email: None,
        },
        currency: Currency::USD,
        lines,
        subtotal: total,
        shipping: money(0),
        total,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::days(day),
    }
}

prop_compose! {
    fn arb_history()(
        immediate in any::<bool>(),
        orders in prop::collection::vec(
            (prop::collection::vec((100i64..30_000, 1u32..4), 1..3), prop::collection::vec((0usize..3, 1u32..3), 0..3), any::<bool>(), 0i64..20),
            1..4,
        ),
        releases in prop::collection::vec(0i64..80, 0..3),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        order_seed in any::<u64>(),
    ) -> (bool, Vec<Step>) {
        let mut steps = Vec::new();
        for (n, (lines, refunds, cancel, day)) in orders.iter().enumerate() {
            let placed = order(n, lines, *day);
            steps.push(Step::Deliver(Box::new(OrderEvent::Paid(placed.clone()))));
            for (r, (line, quantity)) in refunds.iter().enumerate() {
                steps.push(Step::Deliver(Box::new(OrderEvent::Refunded(Refund {
                    refund_id: RefundId::parse(&format!("o{n}-r{r}")).unwrap(),
                    order_id: placed.order_id.clone(),
                    basis: RefundBasis::Lines { lines: vec![RefundedLine { line_id: LineId::parse(&format!("l{}", line % lines.len())).unwrap(), quantity: *quantity }] },
                    occurred_at: placed.occurred_at,
                }))));
            }
            if *cancel {
                steps.push(Step::Deliver(Box::new(OrderEvent::Cancelled(placed))));
            }
        }
        for days in releases {
            steps.push(Step::Release { days });
        }
        // Any delivery order, and some deliveries twice.
        let mut state = order_seed;
        for i in (1..steps.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            steps.swap(i, (state >> 33) as usize % (i + 1));
        }
        for index in duplicates {
            let again = steps[index.index(steps.len())].clone();
            steps.push(again);
        }
        (immediate, steps)
    }
}

fn program(immediate: bool) -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = Decimal::new(75, 1);
    program.issuance = if immediate {
        Issuance::Immediate
    } else {
        Issuance::Pending { days: 30 }
    };
    program.expiry_days = Some(60);
    program
}

async fn deliver(store: &dyn Store, program: &Program, event: &OrderEvent) {
    let customer = CustomerId::parse("ann").unwrap();
    let now = event.occurred_at();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(event.order_id().clone()),
                accounts: vec![customer.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let refunds_stored = read.order_refunds_stored;
    let mut record = read.order.unwrap_or_else(|| {
        Versioned::new(OrderRecord::new(event.order_id().clone(), Currency::USD))
    });
    let mut account =
        read.accounts.get(&customer).cloned().unwrap_or_else(|| {
            Versioned::new(Account::open(shop(), customer.clone(), Currency::USD))
        });
    let applied = apply_order_event(
        &EventContext {
            program,
            now,
            coupons: &[],
        },
        Some(&mut account.value),
        &mut record.value,
        event,
    )
    .unwrap();
    if applied.duplicate {
        return;
    }
    let outcome = store
        .write(
            &shop(),
            WriteSet {
                guard: Some(Guard {
                    key: event.effect_key(),
                    expires_at: now + Duration::days(35),
                    response: None,
                }),
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: record.value,
                    expected_version: record.version,
                    lines_stored: false,
                    refunds_stored,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

async fn release(store: &dyn Store, program: &Program, days: i64) {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::days(days);
    let customer = CustomerId::parse("ann").unwrap();
    for n in 0..4 {
        let order_id = OrderId::parse(&format!("o{n}")).unwrap();
        let read = store
            .read(
                &shop(),
                &ReadRequest {
                    order: Some(order_id),
                    accounts: vec![customer.clone()],
                    ..ReadRequest::default()
                },
            )
            .await
            .unwrap();
        let (Some(mut record), Some(mut account)) =
            (read.order, read.accounts.get(&customer).cloned())
        else {
            continue;
        };
        let mut applied =
            release_pending(program, &mut account.value, &mut record.value, now).unwrap();
        let expired = account.value.expire_balance(now).unwrap();
        applied.merge(expired);
        if applied.entries.is_empty() {
            continue;
        }
        store
            .write(
                &shop(),
                WriteSet {
                    accounts: vec![AccountWrite {
                        account: account.value,
                        expected_version: account.version,
                        entries: applied.entries,
                        reminder_due_at: None,
                        code_change: None,
                    }],
                    order: Some(OrderWrite {
                        refunds_stored: record.value.refunds.len(),
                        record: record.value,
                        expected_version: record.version,
                        lines_stored: false,
                    }),
                    ..WriteSet::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn check(store: &dyn Store) {
    let Some(account) = read_account(store, "ann").await else {
        return;
    };
    let entries = all_entries(store, "ann").await;
    if let Err(broken) = account.value.check(&entries) {
        panic!("invariants broken in the store: {broken:?}");
    }
    let mut pending = money(0);
    for n in 0..4 {
        let read = store
            .read(
                &shop(),
                &ReadRequest {
                    order: Some(OrderId::parse(&format!("o{n}")).unwrap()),
                    ..ReadRequest::default()
                },
            )
            .await
            .unwrap();
        if let Some(record) = read.order {
            pending = pending.checked_add(record.value.pending).unwrap();
        }
    }
    assert_eq!(
        pending, account.value.pending,
        "the orders' pending must add up to the account's"
    );
}

async fn run(store: &dyn Store, immediate: bool, steps: &[Step]) {
    let program = program(immediate);
    for step in steps {
        match step {
            Step::Deliver(event) => deliver(store, &program, event).await,
            Step::Release { days } => release(store, &program, *days).await,
        }
        check(store).await;
    }
}

#[test]
fn random_histories_through_the_in_memory_store_keep_every_invariant() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    });
    runner
        .run(&arb_history(), |(immediate, steps)| {
            runtime.block_on(async {
                let store = cashback_store::MemoryStore::new();
                run(&store, immediate, &steps).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_sample_of_random_histories_through_dynamodb_keeps_every_invariant() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if moto::endpoint("random_histories_on_dynamodb").is_none() {
        return;
    }
    // moto copies a table per transaction: a fresh small table per history,
    // and a sample rather than thousands.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    runner
        .run(&arb_history(), |(immediate, steps)| {
            runtime.block_on(async {
                let store = moto::fresh_store("random_histories")
                    .await
                    .expect("moto is configured");
                run(&store, immediate, &steps).await;
            });
            Ok(())
        })
        .unwrap();
}
