//! Property tests of the ledger invariants (DESIGN.md section 5) over random
//! histories: duplicates, any order, partial and full refunds, cancels,
//! holds, releases, expiries and adjustments.

use crate::support::*;
use cashback_core::ids::{CheckoutId, Code, OrderId, RefundId};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{AppliedCode, DiscountKind, Order, OrderEvent, Refund, RefundBasis};
use cashback_core::program::{Issuance, Program, Trigger};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
enum Step {
    Event(Box<OrderEvent>),
    Release(i64),
    Expire(i64),
    Hold { checkout: u8, cents: u32, day: i64 },
    Credit { cents: u32, key: u8 },
}

fn money_cents(cents: u32) -> Money {
    Money::new(Decimal::new(i64::from(cents), 2), Currency::USD).unwrap()
}

prop_compose! {
    fn arb_order(id: usize)(
        lines in prop::collection::vec((1u32..20_000, 1u32..4, 0u32..30), 1..4),
        code_cents in prop::option::of(1u32..5_000),
        checkout in prop::option::of(0u8..3),
        day in 0i64..40,
    ) -> Order {
        let lines = lines.iter().enumerate().map(|(n, (price, quantity, discount_percent))| {
            let gross = u64::from(*price) * u64::from(*quantity);
            let discount = gross * u64::from(*discount_percent) / 100;
            line(&format!("l{n}"), &money_cents(*price).amount().to_string(), *quantity, &Money::new(Decimal::new(discount as i64, 2), Currency::USD).unwrap().amount().to_string())
        }).collect();
        let mut order = order(&format!("o{id}"), lines);
        if let Some(cents) = code_cents {
            order.discount_codes.push(AppliedCode { code: Code::parse("cb-ann").unwrap(), amount: money_cents(cents), kind: DiscountKind::Order });
        }
        order.checkout_id = checkout.map(|c| CheckoutId::parse(&format!("chk{c}")).unwrap());
        order.occurred_at = days(day);
        order
    }
}

fn events_for(order: &Order, refunds: &[Vec<(usize, u32)>], cancel: bool) -> Vec<OrderEvent> {
    let mut events = vec![
        OrderEvent::Paid(order.clone()),
        OrderEvent::Fulfilled(order.clone()),
    ];
    for (n, refund) in refunds.iter().enumerate() {
        let lines: Vec<(String, u32)> = refund
            .iter()
            .filter_map(|(index, quantity)| {
                order
                    .lines
                    .get(index % order.lines.len())
                    .map(|l| (l.line_id.to_string(), *quantity))
            })
            .collect();
        let borrowed: Vec<(&str, u32)> = lines.iter().map(|(id, q)| (id.as_str(), *q)).collect();
        events.push(refund_lines(
            order.order_id.as_str(),
            &format!("{}-r{n}", order.order_id),
            &borrowed,
        ));
    }
    if cancel {
        events.push(OrderEvent::Cancelled(order.clone()));
    }
    events
}

fn arb_program() -> impl Strategy<Value = Program> {
    (
        0u32..=20,
        0u32..=5,
        any::<bool>(),
        prop::option::of(10u32..120),
        prop::option::of(1u32..5_000),
        any::<bool>(),
    )
        .prop_map(
            |(merchant, partner, immediate, expiry, cap_cents, on_fulfilment)| {
                let mut program = Program::new(Currency::USD);
                program.earning.merchant_percent = Decimal::from(merchant);
                program.earning.partner_match_percent = Decimal::from(partner);
                program.earning.cap_per_order = cap_cents.map(|c| Decimal::new(i64::from(c), 2));
                program.issuance = if immediate {
                    Issuance::Immediate
                } else {
                    Issuance::Pending { days: 30 }
                };
                program.expiry_days = expiry;
                program.trigger = if on_fulfilment {
                    Trigger::Fulfilled
                } else {
                    Trigger::Paid
                };
                program
            },
        )
}

fn arb_history() -> impl Strategy<Value = (Program, Vec<Step>)> {
    let orders = prop::collection::vec(
        (
            prop::collection::vec(prop::collection::vec((0usize..4, 1u32..4), 0..3), 0..3),
            any::<bool>(),
        ),
        1..4,
    );
    (arb_program(), orders, (0u32..10_000), any::<u64>())
        .prop_flat_map(|(program, shapes, seed_credit, _)| {
            let order_strats: Vec<_> = (0..shapes.len()).map(arb_order).collect();
            (
                Just(program),
                Just(shapes),
                Just(seed_credit),
                order_strats,
                prop::collection::vec((0u8..5, 0i64..200, 0u8..3, 1u32..5_000), 0..12),
                any::<prop::sample::Index>(),
            )
        })
        .prop_flat_map(|(program, shapes, seed_credit, orders, extras, _)| {
            let mut steps: Vec<Step> = Vec::new();
            if seed_credit > 0 {
                steps.push(Step::Credit {
                    cents: seed_credit,
                    key: 0,
                });
            }
            for (order, (refunds, cancel)) in orders.iter().zip(&shapes) {
                for event in events_for(order, refunds, *cancel) {
                    steps.push(Step::Event(Box::new(event)));
                }
            }
            for (kind, day, checkout, cents) in extras {
                steps.push(match kind {
                    0 | 1 => Step::Release(day),
                    2 => Step::Expire(day),
                    3 => Step::Hold {
                        checkout,
                        cents,
                        day,
                    },
                    _ => Step::Credit {
                        cents,
                        key: checkout + 1,
                    },
                });
            }
            let len = steps.len();
            // Shuffle, then deliver some steps twice.
            (
                Just(program),
                Just(steps).prop_shuffle(),
                prop::collection::vec(0..len, 0..6),
            )
        })
        .prop_map(|(program, mut steps, duplicates)| {
            for index in duplicates {
                if let Some(step) = steps.get(index).cloned() {
                    steps.push(step);
                }
            }
            (program, steps)
        })
}

fn run(books: &mut Books, step: &Step) {
    match step {
        Step::Event(event) => {
            let at = event.occurred_at();
            books.apply(event, at);
        }
        Step::Release(day) => {
            books.release_due(days(*day));
        }
        Step::Expire(day) => {
            // Expiry never takes what a live checkout holds.
            let live = |account: &cashback_core::ledger::Account| {
                account
                    .holds
                    .iter()
                    .filter(|h| h.expires_at > days(*day))
                    .map(|h| h.amount.amount())
                    .sum::<Decimal>()
            };
            let held_before = live(&books.account);
            let applied = books.account.expire_balance(days(*day)).unwrap();
            assert_eq!(
                live(&books.account),
                held_before,
                "expiry took held balance"
            );
            books.entries.extend(applied.entries);
        }
        Step::Hold {
            checkout,
            cents,
            day,
        } => {
            let checkout = CheckoutId::parse(&format!("chk{checkout}")).unwrap();
            let _ = books
                .account
                .place_hold(checkout, money_cents(*cents), days(*day), 900);
        }
        Step::Credit { cents, key } => {
            let program = books.program.clone();
            if let Ok(applied) = books.account.adjust(
                money_cents(*cents),
                "credit",
                &format!("k{key}-{cents}"),
                &program,
                t0(),
            ) {
                books.entries.extend(applied.entries);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_never_break_the_invariants((program, steps) in arb_history()) {
        let mut books = Books::new(program);
        for step in &steps {
            run(&mut books, step);
            books.check();
            for record in &books.orders {
                let earned = record.earned.as_ref().map(|e| e.total).unwrap_or(usd("0"));
                prop_assert!(record.clawed_back.amount() <= earned.amount());
                prop_assert!(record.restored.amount() <= record.charged().amount());
                prop_assert!(!record.pending.is_negative());
            }
        }
    }

    #[test]
    fn rounding_never_issues_more_than_the_exact_amount(
        cents in 1u64..100_000_000, merchant in 0u32..=100, partner in 0u32..=100, tenths in 0u32..10
    ) {
        let mut program = Program::new(Currency::USD);
        program.earning.merchant_percent = Decimal::from(merchant) + Decimal::new(i64::from(tenths), 1);
        program.earning.partner_match_percent = Decimal::from(partner);
        let base = Money::new(Decimal::new(cents as i64, 2), Currency::USD).unwrap();
        let earned = cashback_core::earn::earn(&program, base, usd("0"), t0()).unwrap();
        let exact = base.amount() * (program.earning.merchant_percent + program.earning.partner_match_percent) / Decimal::ONE_HUNDRED;
        prop_assert!(earned.total.amount() <= exact);
        prop_assert!(exact - earned.total.amount() < Decimal::new(1, 2));
        prop_assert_eq!(earned.merchant_funded.checked_add(earned.partner_funded).unwrap(), earned.total);
        prop_assert!(!earned.merchant_funded.is_negative() && !earned.partner_funded.is_negative());
    }

    #[test]
    fn a_full_refund_claws_back_exactly_what_was_earned(
        program in arb_program(),
        order in arb_order(1),
        split in prop::collection::vec(any::<bool>(), 8),
    ) {
        let mut books = Books::new(program);
        books.apply(&OrderEvent::Paid(order.clone()), order.occurred_at);
        // Refund every unit of every line, spread over several refunds.
        let mut refund_number = 0;
        for (index, line) in order.lines.iter().enumerate() {
            let mut left = line.quantity;
            while left > 0 {
                let take = if split.get(index).copied().unwrap_or(false) && left > 1 { 1 } else { left };
                books.apply(&refund_lines("o1", &format!("r{refund_number}"), &[(line.line_id.as_str(), take)]), order.occurred_at);
                refund_number += 1;
                left -= take;
            }
        }
        books.check();
        let record = &books.orders[0];
        let earned = record.earned.as_ref().map(|e| e.total).unwrap_or(usd("0"));
        prop_assert_eq!(record.clawed_back, earned);
        prop_assert_eq!(record.pending, usd("0"));
        prop_assert_eq!(record.restored, record.charged());
        // Each funder gets back exactly its share, whatever the parts.
        let (merchant, partner) = funding_net(&books);
        prop_assert_eq!((merchant, partner), (usd("0"), usd("0")));
    }

    #[test]
    fn money_refunded_up_to_the_merchandise_claws_back_exactly_what_was_earned(
        program in arb_program(),
        order in arb_order(1),
        shipping_cents in 0u32..2_000,
        parts in prop::collection::vec(1u32..100, 1..4),
    ) {
        let mut order = order;
        order.shipping = money_cents(shipping_cents);
        order.total = order.total.checked_add(order.shipping).unwrap();
        let mut books = Books::new(program);
        books.apply(&OrderEvent::Paid(order.clone()), order.occurred_at);
        // The merchandise's whole worth, refunded as bare amounts in parts.
        let merchandise = order.total.checked_sub(order.shipping).unwrap();
        let weight: u32 = parts.iter().sum();
        let mut left = merchandise;
        for (n, part) in parts.iter().enumerate() {
            let amount = if n + 1 == parts.len() {
                left
            } else {
                Money::round_toward_zero(merchandise.amount() * Decimal::from(*part) / Decimal::from(weight), Currency::USD)
            };
            left = left.checked_sub(amount).unwrap();
            books.apply(&refund_amount("o1", &format!("r{n}"), amount), order.occurred_at);
            books.check();
        }
        let record = &books.orders[0];
        let earned = record.earned.as_ref().map(|e| e.total).unwrap_or(usd("0"));
        prop_assert_eq!(record.clawed_back, earned);
        prop_assert_eq!(record.restored, record.charged());
        prop_assert_eq!(funding_net(&books), (usd("0"), usd("0")));
    }

    #[test]
    fn one_orders_events_in_any_order_with_duplicates_end_as_one_clean_delivery(
        program in arb_program(),
        order in arb_order(1),
        refunds in prop::collection::vec(prop::collection::vec((0usize..4, 1u32..4), 0..3), 0..3),
        cancel in any::<bool>(),
        fulfilled in any::<bool>(),
        order_of_delivery in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        repeats in prop::collection::vec(0usize..8, 0..4),
    ) {
        // Some orders are never fulfilled (refunded first, say).
        let events: Vec<OrderEvent> = events_for(&order, &refunds, cancel)
            .into_iter()
            .filter(|e| fulfilled || !matches!(e, OrderEvent::Fulfilled(_)))
            .collect();
        let replay = |sequence: &[OrderEvent]| {
            let mut books = Books::new(program.clone());
            let credit = books.account.adjust(usd("100.00"), "seed", "seed", &program, t0()).unwrap();
            books.entries.extend(credit.entries);
            for event in sequence {
                books.apply(event, order.occurred_at);
                books.check();
            }
            (books.balances(), books.account.lifetime_eligible_spend)
        };
        let clean = replay(&events);
        let mut shuffled = events.clone();
        let mut state = order_of_delivery;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        for index in repeats {
            if let Some(event) = events.get(index % events.len()).cloned() {
                shuffled.push(event);
            }
        }
        prop_assert_eq!(replay(&shuffled), clean);
    }
}

/// What the order's entries leave each funder paying: earned less clawed back.
fn funding_net(books: &Books) -> (Money, Money) {
    books
        .entries
        .iter()
        .filter_map(|e| e.funding.as_ref())
        .fold((usd("0"), usd("0")), |(merchant, partner), f| {
            (
                merchant.checked_add(f.merchant).unwrap(),
                partner.checked_add(f.partner).unwrap(),
            )
        })
}

fn refund_amount(order_id: &str, refund_id: &str, amount: Money) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap(),
        order_id: OrderId::parse(order_id).unwrap(),
        basis: RefundBasis::Amount { amount },
        occurred_at: t0(),
    })
}

#[test]
fn order_ids_in_the_generator_are_valid() {
    assert!(OrderId::parse("o1").is_ok());
}
