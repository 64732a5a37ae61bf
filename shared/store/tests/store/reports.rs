//! The report aggregator over random histories: whatever the order events,
//! adjustments and the way the feed is delivered (in pieces, again, split
//! in halves after it was added), the report sums equal the sums of the
//! ledger, day by day and month by month, and the customer counters equal
//! a count of the accounts.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use cashback_app::aggregator::aggregate;
use cashback_app::changes::Change;
use cashback_app::store::*;
use cashback_core::ids::{OrderId, RefundId};
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::order::{OrderEvent, Refund, RefundBasis};
use cashback_core::program::Tier;

use crate::cases::{all_entries, apply_through, customer, paid, program, read_account, shop};
use cashback_test_support::moto;

const CUSTOMERS: [&str; 3] = ["ann", "bob", "cy"];

#[derive(Debug, Clone)]
enum Step {
    /// A paid order of `cents` on `day` (of November 2026).
    Pay { who: usize, cents: i64, day: u32 },
    /// A refund of `cents` of the customer's last order.
    Refund { who: usize, cents: i64, day: u32 },
    /// A merchant credit (or debit, when negative).
    Adjust { who: usize, cents: i64, day: u32 },
    /// The feed read so far is summed: whole, or split at `split` (in
    /// per-mille of the batch), then delivered again whole when `again`.
    Pump { split: u16, again: bool },
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 100..30_000i64, 1..29u32).prop_map(|(who, cents, day)| Step::Pay { who, cents, day }),
        1 => (0..3usize, 100..20_000i64, 1..29u32).prop_map(|(who, cents, day)| Step::Refund { who, cents, day }),
        2 => (0..3usize, -2_000..5_000i64, 1..29u32).prop_map(|(who, cents, day)| Step::Adjust { who, cents, day }),
        2 => (0..1000u16, any::<bool>()).prop_map(|(split, again)| Step::Pump { split, again }),
    ]
}

fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
}

fn usd(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::USD).unwrap()
}

fn tiered() -> cashback_core::program::Program {
    let mut program = program();
    program.tiers = vec![Tier {
        name: "silver".into(),
        min_lifetime_spend: Decimal::new(200, 0),
        percent: Decimal::new(10, 0),
    }];
    program
}

/// Where a history's changes go: the in-memory log (summed as the steps
/// say), or moto's stream (read from its start at every pump: every pump
/// delivers again all that was delivered before).
enum Feed<'a> {
    Memory(&'a cashback_store::MemoryStore),
    Moto(&'a cashback_store::DynamoStore, String),
}

impl Feed<'_> {
    fn store(&self) -> &dyn Store {
        match self {
            Feed::Memory(store) => *store,
            Feed::Moto(store, _) => *store,
        }
    }

    async fn pump(&self, split: u16, again: bool) {
        match self {
            Feed::Memory(store) => {
                let batch: Vec<Change> = store.take_changes();
                let cut = batch.len() * usize::from(split) / 1000;
                let (head, tail) = batch.split_at(cut);
                for part in [head, tail] {
                    aggregate(*store, None, part).await.unwrap();
                }
                if again {
                    // Delivered again whole, then in its halves: nothing more.
                    let outcome = aggregate(*store, None, &batch).await.unwrap();
                    assert_eq!(outcome.added, 0, "{outcome:?}");
                    aggregate(*store, None, head).await.unwrap();
                    aggregate(*store, None, tail).await.unwrap();
                }
            }
            Feed::Moto(store, endpoint) => {
                cashback_test_support::reports::catch_up_on_moto(store, endpoint).await;
            }
        }
    }
}

async fn run(feed: &Feed<'_>, steps: &[Step]) {
    let store = feed.store();
    let program = tiered();
    let mut orders: BTreeMap<usize, (String, i64)> = BTreeMap::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Pay { who, cents, day } => {
                let order = format!("o{n}");
                let price = Decimal::new(*cents, 2).to_string();
                let event = paid(&order, CUSTOMERS[*who], &price, at(*day));
                apply_through(store, &event, CUSTOMERS[*who], &program, at(*day)).await;
                orders.insert(*who, (order, *cents));
            }
            Step::Refund { who, cents, day } => {
                let Some((order, left)) = orders.get_mut(who) else {
                    continue;
                };
                let refunded = (*cents).min(*left);
                if refunded == 0 {
                    continue;
                }
                *left -= refunded;
                let event = OrderEvent::Refunded(Refund {
                    refund_id: RefundId::parse(&format!("r{n}")).unwrap(),
                    order_id: OrderId::parse(order).unwrap(),
                    basis: RefundBasis::Amount {
                        amount: usd(refunded),
                    },
                    occurred_at: at(*day),
                });
                apply_through(store, &event, CUSTOMERS[*who], &program, at(*day)).await;
            }
            Step::Adjust { who, cents, day } => {
                let current = read_account(store, CUSTOMERS[*who]).await;
                let (mut account, version) = match current {
                    Some(read) => (read.value, read.version),
                    None => (
                        Account::open(shop(), customer(CUSTOMERS[*who]), Currency::USD),
                        0,
                    ),
                };
                let Ok(applied) =
                    account.adjust(usd(*cents), "test", &format!("adj-{n}"), &program, at(*day))
                else {
                    continue;
                };
                let write = AccountWrite {
                    account,
                    expected_version: version,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                };
                store
                    .write(&shop(), WriteSet::account(write))
                    .await
                    .unwrap();
            }
            Step::Pump { split, again } => feed.pump(*split, *again).await,
        }
    }
    feed.pump(500, true).await;
    check(store, matches!(feed, Feed::Memory(_))).await;
}

/// The report sums against the ledger and the accounts. `months_from_start`:
/// the store kept months from its first change (on moto the stream's record
/// times are today's, so this month's item is not trusted and its days are
/// read instead).
async fn check(store: &dyn Store, months_from_start: bool) {
    let mut days: BTreeMap<NaiveDate, DayFigures> = BTreeMap::new();
    let mut counts = CustomerCounts::default();
    for who in CUSTOMERS {
        for entry in all_entries(store, who).await {
            days.entry(entry.at.date_naive())
                .or_default()
                .add_entry(&entry);
        }
        if let Some(account) = read_account(store, who).await {
            counts.add(&CustomerCounts::change(None, &account.value));
        }
    }
    days.retain(|_, figures| !figures.is_zero());
    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let last_day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    // November is cut by the period: read as days, each equal to the ledger's.
    let by_day = store.aggregates(&shop(), first, last_day).await.unwrap();
    let reported: BTreeMap<NaiveDate, DayFigures> = by_day
        .days
        .clone()
        .into_iter()
        .filter(|(_, figures)| !figures.is_zero())
        .collect();
    assert_eq!(reported, days, "day sums against the ledger");
    assert!(by_day.months.is_empty());
    let mut counted = by_day.counts.clone();
    counted.tiers.retain(|_, count| *count != 0);
    counts.tiers.retain(|_, count| *count != 0);
    assert_eq!(counted, counts, "counters against the accounts");

    // Reported from December: November is read whole, as its month item.
    let mut total = DayFigures::default();
    for figures in days.values() {
        total.add(figures);
    }
    let december = first + Duration::days(30);
    let by_month = store
        .aggregates(&shop(), december, december + Duration::days(30))
        .await
        .unwrap();
    if months_from_start {
        assert!(by_month.days.is_empty(), "{:?}", by_month.days);
        assert_eq!(by_month.months.len(), usize::from(!total.is_zero()));
    }
    assert_eq!(
        by_month.up_to(december),
        total,
        "the month against the ledger"
    );
}

#[test]
fn report_sums_equal_the_ledger_after_random_histories_and_deliveries_in_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(arb_step(), 1..40), |steps| {
            runtime.block_on(async {
                let store = cashback_store::MemoryStore::new();
                run(&Feed::Memory(&store), &steps).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn report_sums_equal_the_ledger_after_a_sample_of_random_histories_on_dynamodb() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(endpoint) = moto::endpoint("report_sums_on_dynamodb") else {
        return;
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(arb_step(), 1..14), |steps| {
            runtime.block_on(async {
                let store = moto::fresh_store("report_sums")
                    .await
                    .expect("moto is configured");
                run(&Feed::Moto(&store, endpoint.clone()), &steps).await;
            });
            Ok(())
        })
        .unwrap();
}
