//! The referral reward over random histories of its referred order: refunds
//! of random units, a cancellation or not, a release at a random point,
//! every event delivered in any order and some twice. The referrer's and
//! the buyer's accounts keep every ledger invariant after every step; the
//! reward taken back never exceeds it and is exact once the whole order is
//! refunded or cancelled; the referrer ends where one clean delivery ends.

use crate::support::*;
use cashback_core::ids::{CustomerId, Email, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{CustomerRef, Order, OrderEvent};
use cashback_core::orders::{
    apply_order_event_to, release_order, EventContext, OrderRecord, Parties,
};
use cashback_core::program::{Issuance, Program, ReferralReward};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
enum Step {
    Event(Box<OrderEvent>),
    Release,
}

struct Books {
    program: Program,
    buyer: Account,
    referrer: Account,
    buyer_entries: Vec<LedgerEntry>,
    referrer_entries: Vec<LedgerEntry>,
    record: OrderRecord,
}

fn open(id: &str, email: &str) -> Account {
    let mut account = Account::open(
        ShopId::parse("demo.myshopify.com").unwrap(),
        CustomerId::parse(id).unwrap(),
        Currency::USD,
    );
    account.email = Some(Email::parse(email).unwrap());
    account
}

impl Books {
    fn new(program: Program, seeded_cents: u32) -> Books {
        let mut referrer = open("ann", "ann@example.com");
        let mut referrer_entries = Vec::new();
        if seeded_cents > 0 {
            let seed = Money::new(Decimal::new(i64::from(seeded_cents), 2), Currency::USD).unwrap();
            referrer_entries = referrer
                .adjust(seed, "seed", "seed", &program, t0())
                .unwrap()
                .entries;
        }
        Books {
            program,
            buyer: open("bob", "bob@example.com"),
            referrer,
            buyer_entries: Vec::new(),
            referrer_entries,
            record: OrderRecord::new(
                cashback_core::ids::OrderId::parse("o1").unwrap(),
                Currency::USD,
            ),
        }
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Event(event) => {
                let ctx = EventContext {
                    program: &self.program,
                    now: t0(),
                    coupons: &[],
                };
                let applied = apply_order_event_to(
                    &ctx,
                    Parties {
                        buyer: Some(&mut self.buyer),
                        referrer: Some(&mut self.referrer),
                        ..Parties::default()
                    },
                    &mut self.record,
                    event,
                )
                .unwrap();
                self.buyer_entries.extend(applied.buyer.entries);
                self.referrer_entries.extend(applied.referrer.entries);
            }
            Step::Release => {
                let (buyer, referrer) = release_order(
                    &self.program,
                    &mut self.buyer,
                    Some(&mut self.referrer),
                    &mut self.record,
                    days(60),
                )
                .unwrap();
                self.buyer_entries.extend(buyer.entries);
                self.referrer_entries.extend(referrer.entries);
            }
        }
        self.buyer.check(&self.buyer_entries).unwrap();
        self.referrer.check(&self.referrer_entries).unwrap();
    }

    /// The referrer's position: what they have and are owed, less what they owe.
    fn referrer_net(&self) -> Decimal {
        self.referrer.available.amount() + self.referrer.pending.amount()
            - self.referrer.debt.amount()
    }
}

fn bobs_order(lines: &[(u32, u32)]) -> Order {
    let lines = lines
        .iter()
        .enumerate()
        .map(|(n, (cents, quantity))| {
            line(
                &format!("l{n}"),
                &Decimal::new(i64::from(*cents), 2).to_string(),
                *quantity,
                "0.00",
            )
        })
        .collect();
    let mut order = order("o1", lines);
    order.customer = CustomerRef {
        id: Some(CustomerId::parse("bob").unwrap()),
        email: Some(Email::parse("bob@example.com").unwrap()),
    };
    order
}

fn arb_program() -> impl Strategy<Value = Program> {
    (any::<bool>(), 1u32..3_000, 1u32..=30, any::<bool>()).prop_map(
        |(fixed, cents, percent, immediate)| {
            let mut program = Program::new(Currency::USD);
            program.earning.merchant_percent = Decimal::from(5);
            program.referral = Some(if fixed {
                ReferralReward::Fixed {
                    amount: Decimal::new(i64::from(cents), 2),
                }
            } else {
                ReferralReward::Percent {
                    percent: Decimal::from(percent),
                }
            });
            program.issuance = if immediate {
                Issuance::Immediate
            } else {
                Issuance::Pending { days: 14 }
            };
            program
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_referral_reward_follows_its_order_in_any_delivery_order(
        program in arb_program(),
        seeded in prop_oneof![Just(0u32), 1u32..5_000],
        lines in prop::collection::vec((1u32..20_000, 1u32..4), 1..4),
        refunds in prop::collection::vec(prop::collection::vec((0usize..4, 1u32..4), 1..3), 0..4),
        cancel in any::<bool>(),
        release_at in 0usize..8,
        order_of_delivery in any::<u64>(),
        repeats in prop::collection::vec(0usize..8, 0..4),
    ) {
        let order = bobs_order(&lines);
        let mut steps = vec![Step::Event(Box::new(OrderEvent::Paid(order.clone())))];
        for (n, refund) in refunds.iter().enumerate() {
            let units: Vec<(String, u32)> = refund
                .iter()
                .map(|(index, quantity)| (order.lines[index % order.lines.len()].line_id.to_string(), *quantity))
                .collect();
            let borrowed: Vec<(&str, u32)> = units.iter().map(|(id, q)| (id.as_str(), *q)).collect();
            steps.push(Step::Event(Box::new(refund_lines("o1", &format!("r{n}"), &borrowed))));
        }
        if cancel {
            steps.push(Step::Event(Box::new(OrderEvent::Cancelled(order.clone()))));
        }
        let clean_steps: Vec<Step> = steps
            .iter()
            .filter(|s| matches!(s, Step::Event(_)))
            .cloned()
            .collect();
        let mut shuffled = steps.clone();
        let mut state = order_of_delivery;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        for index in repeats {
            if let Some(step) = steps.get(index % steps.len()).cloned() {
                shuffled.push(step);
            }
        }
        shuffled.insert(release_at.min(shuffled.len()), Step::Release);

        let mut books = Books::new(program.clone(), seeded);
        for step in &shuffled {
            books.run(step);
        }
        let mut clean = Books::new(program, seeded);
        for step in &clean_steps {
            clean.run(step);
        }
        let seed = Decimal::new(i64::from(seeded), 2);
        prop_assert_eq!(books.referrer_net(), clean.referrer_net());
        if let Some(referral) = &books.record.referral {
            prop_assert!(referral.clawed_back.amount() <= referral.reward.amount());
            prop_assert_eq!(
                books.referrer_net() - seed,
                referral.reward.amount() - referral.clawed_back.amount()
            );
            let mut units = vec![0u32; order.lines.len()];
            for refund in &refunds {
                for (index, quantity) in refund {
                    units[index % order.lines.len()] += quantity;
                }
            }
            let all_refunded = order.lines.iter().zip(&units).all(|(l, u)| *u >= l.quantity);
            if books.record.cancelled || all_refunded {
                prop_assert_eq!(referral.clawed_back, referral.reward);
            }
        } else {
            prop_assert_eq!(books.referrer_net(), seed);
        }
    }
}
