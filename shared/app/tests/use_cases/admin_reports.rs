//! Reports against a history computed by hand: real order events, a refund,
//! a manual credit, releases and expiry by the promote job, a redemption
//! with the customer's code; the report's figures are compared with the
//! figures worked out below, and the liability with the accounts themselves.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::support::jobs::account_of;
use crate::support::*;
use cashback_app::admin::{self, Report};
use cashback_app::aggregator::aggregate;
use cashback_app::events::handle_order_event;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::Store;
use cashback_core::ids::{CustomerId, OrderId, RefundId};
use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent, Refund, RefundBasis};
use cashback_core::program::{Issuance, Program, Tier};
use cashback_test_support::reports::catch_up;

/// 5 % from the merchant, 2 % matched by a partner; ten days pending;
/// balance expires 30 days after release; gold from 190.00 of spend.
fn report_program() -> Program {
    let mut program = program();
    program.earning.merchant_percent = dec!(5);
    program.earning.partner_match_percent = dec!(2);
    program.issuance = Issuance::Pending { days: 10 };
    program.expiry_days = Some(30);
    program.tiers = vec![Tier {
        name: "gold".into(),
        min_lifetime_spend: dec!(190),
        percent: dec!(5),
    }];
    program
}

fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    let year = if month >= 11 { 2026 } else { 2027 };
    Utc.with_ymd_and_hms(year, month, day, hour, 0, 0).unwrap()
}

fn date(month: u32, day: u32) -> NaiveDate {
    at(month, day, 0).date_naive()
}

async fn pay(world: &World, id: &str, who: &str, price: &str, when: DateTime<Utc>) {
    let mut placed = order(id, who, vec![line("1", price, 1)]);
    placed.occurred_at = when;
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed), when)
        .await
        .unwrap();
}

async fn promote(world: &World, when: DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let run = promote_due(
        &world.ctx,
        &TokioClock,
        &JobConfig::default(),
        when,
        deadline,
    )
    .await
    .unwrap();
    assert!(run.is_done());
}

/// A report once the aggregator has read the feed (reports lag the ledger).
async fn report(world: &World, from: NaiveDate, to: NaiveDate) -> Report {
    catch_up(&world.store).await;
    admin::report(&world.ctx, &shop(), from, to).await.unwrap()
}

/// The history, day by day (UTC):
/// - Nov 23: ann pays 100.00 (7.00 pending: 5.00 merchant, 2.00 partner),
///   bob pays 200.00 (14.00: 10.00 + 4.00; bob reaches gold).
/// - Nov 24: ann pays 50.00 (3.50: 2.50 + 1.00): ann has two earning orders.
/// - Nov 25: bob is refunded 50.00 of 200.00: a quarter of 14.00 clawed
///   back from pending, 3.50 (2.50 merchant, 1.00 partner); bob falls back
///   below gold. The merchant credits ann 5.00.
/// - Dec 4: the job releases 7.00 + 3.50 (ann) and 10.50 (bob): 21.00.
/// - Dec 10: ann pays 60.00 less 6.00 with her code: 6.00 redeemed (the
///   5.00 credit's lot, then 1.00 of the next), 3.78 earned on 54.00
///   (2.70 + 1.08); ann reaches gold.
/// - Dec 21: 3.78 released.
/// - Jan 4: the lots released on Dec 4 expired at the end of Jan 3 (30
///   days on, rounded up to the end of the UTC day): ann 6.00 + 3.50, bob
///   10.50.
async fn history() -> World {
    let world = world(report_program()).await;
    pay(&world, "o-1", "ann", "100.00", at(11, 23, 10)).await;
    pay(&world, "o-2", "bob", "200.00", at(11, 23, 11)).await;
    pay(&world, "o-3", "ann", "50.00", at(11, 24, 10)).await;
    let refund = OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse("r-1").unwrap(),
        order_id: OrderId::parse("o-2").unwrap(),
        basis: RefundBasis::Amount {
            amount: usd("50.00"),
        },
        occurred_at: at(11, 25, 9),
    });
    handle_order_event(&world.ctx, &shop(), &refund, at(11, 25, 9))
        .await
        .unwrap();
    let ann = CustomerId::parse("ann").unwrap();
    let credit = admin::adjust(
        &world.ctx,
        &shop(),
        &ann,
        r#"{"amount":"5.00","reason":"goodwill"}"#,
        "credit-ann",
        "admin-token",
        at(11, 25, 12),
    )
    .await
    .unwrap();
    assert_eq!(credit.status, 201);
    promote(&world, at(12, 4, 12)).await;

    let code = account_of(&world.store, "ann").await.value.code.unwrap();
    let mut redeeming = order("o-4", "ann", vec![line("1", "60.00", 1)]);
    redeeming.lines[0].discount = usd("6.00");
    redeeming.subtotal = usd("54.00");
    redeeming.total = usd("54.00");
    redeeming.discount_codes = vec![AppliedCode {
        code,
        amount: usd("6.00"),
        kind: DiscountKind::Order,
    }];
    redeeming.occurred_at = at(12, 10, 10);
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(redeeming),
        at(12, 10, 10),
    )
    .await
    .unwrap();
    promote(&world, at(12, 21, 12)).await;
    promote(&world, at(1, 4, 1)).await;
    world
}

fn rate(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    Some((numerator / denominator).round_dp(4).normalize())
}

#[tokio::test]
async fn the_accounts_end_where_the_history_says() {
    let world = history().await;
    let ann = account_of(&world.store, "ann").await.value;
    let bob = account_of(&world.store, "bob").await.value;
    assert_eq!((ann.available, ann.pending), (usd("3.78"), usd("0.00")));
    assert_eq!((bob.available, bob.pending), (usd("0.00"), usd("0.00")));
    assert_eq!((ann.orders_earned, ann.tier), (3, Some(0)));
    assert_eq!((bob.orders_earned, bob.tier), (1, None));
}

#[tokio::test]
async fn the_first_week_issues_claws_back_and_credits_as_worked_out() {
    let world = history().await;
    let week = report(&world, date(11, 23), date(11, 30)).await;
    assert_eq!(
        (week.issued.total, week.issued.merchant, week.issued.partner),
        (dec!(24.50), dec!(17.50), dec!(7.00))
    );
    assert_eq!(
        (
            week.clawed_back.total,
            week.clawed_back.merchant,
            week.clawed_back.partner
        ),
        (dec!(3.50), dec!(2.50), dec!(1.00))
    );
    assert_eq!(week.adjusted.credited, dec!(5.00));
    assert_eq!(week.adjusted.debited, dec!(0));
    assert_eq!(
        (week.released, week.redeemed, week.expired),
        (dec!(0), dec!(0), dec!(0))
    );
    assert_eq!(week.breakage_rate, None, "nothing released yet");
    assert_eq!(week.redemption_rate, None);
    // At the end of Nov 30: 5.00 available, 7.00 + 3.50 + 10.50 pending.
    let liability = &week.liability;
    assert_eq!(
        (liability.available, liability.pending, liability.total),
        (dec!(5.00), dec!(21.00), dec!(26.00))
    );
    // Partner share: (7.00 - 1.00) of (24.50 - 3.50 + 5.00) = 6 / 26.
    assert_eq!(
        (liability.merchant, liability.partner),
        (dec!(20.00), dec!(6.00))
    );
}

#[tokio::test]
async fn december_releases_and_redeems_as_worked_out() {
    let world = history().await;
    let december = report(&world, date(12, 1), date(12, 31)).await;
    assert_eq!(
        (december.issued.total, december.issued.partner),
        (dec!(3.78), dec!(1.08))
    );
    assert_eq!(december.released, dec!(24.78), "21.00 + 3.78");
    assert_eq!(december.redeemed, dec!(6.00));
    assert_eq!(december.expired, dec!(0));
    assert_eq!(december.clawed_back.total, dec!(0));
    assert_eq!(december.redemption_rate, rate(dec!(6.00), dec!(24.78)));
    assert_eq!(december.redemption_rate, Some(dec!(0.2421)));
    assert_eq!(december.breakage_rate, Some(dec!(0)));
    // End of Dec 31: ann 9.50 + 3.78, bob 10.50.
    let liability = &december.liability;
    assert_eq!(
        (liability.available, liability.pending),
        (dec!(23.78), dec!(0))
    );
    // Partner share: (7.00 + 1.08 - 1.00) of (28.28 - 3.50 + 5.00):
    // 23.78 x 7.08 / 29.78 = 5.6535..., rounded toward zero.
    assert_eq!(liability.partner, dec!(5.65));
    assert_eq!(liability.merchant, dec!(18.13));
}

#[tokio::test]
async fn the_whole_period_gives_breakage_redemption_and_customers() {
    let world = history().await;
    let all = report(&world, date(11, 1), date(1, 31)).await;
    assert_eq!(
        (all.issued.total, all.issued.merchant, all.issued.partner),
        (dec!(28.28), dec!(20.20), dec!(8.08))
    );
    assert_eq!(all.released, dec!(24.78));
    assert_eq!(all.expired, dec!(20.00), "ann 9.50 and bob 10.50");
    assert_eq!(all.breakage_rate, rate(dec!(20.00), dec!(24.78)));
    assert_eq!(all.breakage_rate, Some(dec!(0.8071)));
    assert_eq!(all.redemption_rate, Some(dec!(0.2421)));
    // The liability equals what the accounts hold.
    let ann = account_of(&world.store, "ann").await.value;
    let bob = account_of(&world.store, "bob").await.value;
    let held: Decimal = [ann, bob]
        .iter()
        .map(|a| a.available.amount() + a.pending.amount())
        .sum();
    assert_eq!(all.liability.total, held);
    assert_eq!(all.liability.total, dec!(3.78));
    // Two customers earned; ann on three orders, bob on one.
    assert_eq!(
        (
            all.customers.total,
            all.customers.earned,
            all.customers.repeat
        ),
        (2, 2, 1)
    );
    assert_eq!(all.repeat_purchase_rate, Some(dec!(0.5)));
    let tiers: Vec<(Option<usize>, &str, i64)> = all
        .customers
        .by_tier
        .iter()
        .map(|t| (t.tier, t.name.as_str(), t.customers))
        .collect();
    assert_eq!(tiers, [(None, "no tier", 1), (Some(0), "gold", 1)]);
    // January alone: only the expiry.
    let january = report(&world, date(1, 1), date(1, 31)).await;
    assert_eq!(january.expired, dec!(20.00));
    assert_eq!(january.released, dec!(0));
    assert_eq!(january.breakage_rate, None);
}

#[tokio::test]
async fn a_report_reads_the_aggregates_and_never_the_ledger() {
    let world = history().await;
    catch_up(&world.store).await;
    let before = world.store.request_counts();
    report(&world, date(11, 1), date(1, 31)).await;
    let spent = world.store.request_counts();
    assert_eq!(spent.reads, before.reads, "no account or ledger read");
    assert_eq!(spent.queries - before.queries, 1, "the aggregates query");
    let error = admin::report(&world.ctx, &shop(), date(12, 2), date(12, 1))
        .await
        .unwrap_err();
    assert!(matches!(error, cashback_app::AppError::InvalidFields(_)));
}

#[tokio::test]
async fn a_balance_code_shortfall_shows_as_redeemed_and_as_the_owners_debt() {
    let program = report_program();
    let world = world(program.clone()).await;
    seed_balance(&world, &program, "ann", "CB-ANN", "10.00").await;
    // A guest pays with Ann's code for 25.00: 10.00 from her balance, 15.00
    // charged to her as debt.
    let mut placed = order("g1", "guest", vec![line("1", "80.00", 1)]);
    placed.customer = cashback_core::order::CustomerRef {
        id: None,
        email: Some(cashback_core::ids::Email::parse("guest@example.com").unwrap()),
    };
    placed.occurred_at = at(11, 23, 12);
    placed.discount_codes.push(AppliedCode {
        code: cashback_core::ids::Code::parse("CB-ANN").unwrap(),
        amount: usd("25.00"),
        kind: DiscountKind::Order,
    });
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(placed),
        at(11, 23, 12),
    )
    .await
    .unwrap();
    let ann = account_of(&world.store, "ann").await.value;
    assert_eq!((ann.available, ann.debt), (usd("0.00"), usd("15.00")));
    let report = report(&world, date(11, 23), date(11, 23)).await;
    assert_eq!(report.redeemed, dec!(25.00));
    assert_eq!(report.liability.debt, dec!(15.00));
}

#[tokio::test]
async fn reports_lag_the_ledger_until_the_aggregator_reads_the_feed() {
    let world = world(report_program()).await;
    pay(&world, "o-1", "ann", "100.00", at(11, 23, 10)).await;
    let unread = admin::report(&world.ctx, &shop(), date(11, 23), date(11, 23))
        .await
        .unwrap();
    assert_eq!(unread.issued.total, dec!(0), "the order path added nothing");
    assert_eq!(unread.customers.total, 0);
    let read = report(&world, date(11, 23), date(11, 23)).await;
    assert_eq!(read.issued.total, dec!(7.00));
    assert_eq!(read.customers.total, 1);
}

#[tokio::test]
async fn a_batch_delivered_again_or_split_in_halves_adds_nothing_twice() {
    let world = world(report_program()).await;
    pay(&world, "o-1", "ann", "100.00", at(11, 23, 10)).await;
    pay(&world, "o-2", "bob", "200.00", at(11, 23, 11)).await;
    pay(&world, "o-3", "ann", "50.00", at(11, 24, 10)).await;
    let batch = world.store.take_changes();
    assert!(batch.len() >= 6, "{} changes", batch.len());
    let first = aggregate(world.store.as_ref(), None, &batch).await.unwrap();
    assert!(first.added > 0 && first.skipped == 0, "{first:?}");
    let once = report(&world, date(11, 23), date(11, 24)).await;
    assert_eq!(once.issued.total, dec!(24.50));

    // Delivered again whole: every change is skipped, nothing added.
    let again = aggregate(world.store.as_ref(), None, &batch).await.unwrap();
    assert_eq!((again.added, again.skipped), (0, batch.len()), "{again:?}");
    // Split in halves after it was added (as the event source mapping
    // bisects a batch whose invocation failed late): nothing either.
    let (head, tail) = batch.split_at(batch.len() / 2 + 1);
    for half in [head, tail] {
        let outcome = aggregate(world.store.as_ref(), None, half).await.unwrap();
        assert_eq!(outcome.added, 0, "{outcome:?}");
    }
    assert_eq!(report(&world, date(11, 23), date(11, 24)).await, once);

    // In a fresh store, a half added first, then the whole batch: only the
    // rest is added.
    let world = crate::support::world(report_program()).await;
    aggregate(world.store.as_ref(), None, head).await.unwrap();
    let rest = aggregate(world.store.as_ref(), None, &batch).await.unwrap();
    assert_eq!(rest.skipped, head.len(), "{rest:?}");
    let report = report(&world, date(11, 23), date(11, 24)).await;
    assert_eq!(report.issued, once.issued);
    assert_eq!(report.customers, once.customers);
}

#[tokio::test]
async fn a_report_over_two_years_reads_month_items_and_the_days_of_the_months_it_cuts() {
    let world = world(report_program()).await;
    // One order on the 10th of every month from January 2025 to January 2027.
    for n in 0..25u32 {
        let (year, month) = (2025 + (n / 12) as i32, n % 12 + 1);
        let when = Utc.with_ymd_and_hms(year, month, 10, 12, 0, 0).unwrap();
        pay(&world, &format!("o-{n}"), "ann", "100.00", when).await;
    }
    catch_up(&world.store).await;
    let issued = account_of(&world.store, "ann")
        .await
        .value
        .lifetime_issued
        .amount();
    let from = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2027, 1, 20).unwrap();
    let aggregates = world.store.aggregates(&shop(), from, to).await.unwrap();
    // Every closed month whole (24), and the days of January 2027 alone.
    assert_eq!(aggregates.months.len(), 24);
    assert_eq!(
        aggregates.days.keys().collect::<Vec<_>>(),
        vec![&NaiveDate::from_ymd_opt(2027, 1, 10).unwrap()]
    );
    let two_years = report(&world, from, to).await;
    assert_eq!(two_years.issued.total, issued);
    assert_eq!(two_years.liability.total, issued, "nothing released");

    // Periods that cut months read their days, and the months before whole.
    let dec_5 = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    let dec_10 = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
    let cut = world
        .store
        .aggregates(&shop(), dec_5, dec_10)
        .await
        .unwrap();
    assert_eq!(cut.months.len(), 23, "January 2025 to November 2026");
    assert!(cut
        .days
        .keys()
        .all(|d| *d >= NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()));
    assert_eq!(report(&world, dec_5, dec_5).await.issued.total, dec!(0));
    let december = report(&world, dec_10, dec_10).await;
    let january = report(&world, to, to).await;
    let last = report(&world, NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), to).await;
    assert!(december.issued.total > dec!(0));
    assert_eq!(january.issued.total, dec!(0));
    assert_eq!(december.liability.total + last.issued.total, issued);
}
