//! Orders that move money on more than the buyer's account: a balance code
//! spent by someone other than its owner, and the referral reward hanging
//! on a referred order. Also the holds an order frees and expiry leaves.

use crate::support::*;
use cashback_core::ids::{CheckoutId, Code, CustomerId, Email, OrderId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry, LedgerError};
use cashback_core::money::Currency;
use cashback_core::order::{AppliedCode, CustomerRef, DiscountKind, Order, OrderEvent};
use cashback_core::orders::{
    apply_order_event, apply_order_event_to, release_order, EventContext, OrderRecord, Parties,
};
use cashback_core::program::{Issuance, Program, ReferralReward};
use rust_decimal_macros::dec;

/// Three customers' books: Ann (owner of CB-ANN, referrer), Bob (buyer).
struct World {
    program: Program,
    ann: Account,
    bob: Account,
    ann_entries: Vec<LedgerEntry>,
    bob_entries: Vec<LedgerEntry>,
    orders: Vec<OrderRecord>,
}

fn open(id: &str, email: &str, code: &str) -> Account {
    let mut account = Account::open(
        ShopId::parse("demo.myshopify.com").unwrap(),
        CustomerId::parse(id).unwrap(),
        Currency::USD,
    );
    account.email = Some(Email::parse(email).unwrap());
    account.code = Some(Code::parse(code).unwrap());
    account
}

fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.referral = Some(ReferralReward::Fixed { amount: dec!(15) });
    program
}

impl World {
    fn new(program: Program) -> World {
        World {
            program,
            ann: open("ann", "ann@example.com", "CB-ANN"),
            bob: open("bob", "bob@example.com", "CB-BOB"),
            ann_entries: Vec::new(),
            bob_entries: Vec::new(),
            orders: Vec::new(),
        }
    }

    fn credit_ann(&mut self, amount: &str) {
        let program = self.program.clone();
        let applied = self
            .ann
            .adjust(usd(amount), "seed", amount, &program, t0())
            .unwrap();
        self.ann_entries.extend(applied.entries);
    }

    fn record(&mut self, order: &OrderId) -> usize {
        match self.orders.iter().position(|o| &o.order_id == order) {
            Some(index) => index,
            None => {
                self.orders
                    .push(OrderRecord::new(order.clone(), Currency::USD));
                self.orders.len() - 1
            }
        }
    }

    /// Bob's order event; Ann's account takes part as the code owner
    /// (`owner`) and/or the referrer (`referrer`).
    fn apply(&mut self, event: &OrderEvent, owner: bool, referrer: bool) {
        let program = self.program.clone();
        let ctx = EventContext {
            program: &program,
            now: t0(),
            coupons: &[],
        };
        let index = self.record(event.order_id());
        let mut record = self.orders[index].clone();
        let (mut ann_owner, mut ann_referrer) = (self.ann.clone(), self.ann.clone());
        let parties = Parties {
            buyer: Some(&mut self.bob),
            code_owner: owner.then_some(&mut ann_owner),
            balance_codes: if owner {
                vec![Code::parse("CB-ANN").unwrap()]
            } else {
                Vec::new()
            },
            referrer: referrer.then_some(&mut ann_referrer),
            co_owners: Vec::new(),
        };
        let applied = apply_order_event_to(&ctx, parties, &mut record, event).unwrap();
        if owner {
            self.ann = ann_owner;
        } else if referrer {
            self.ann = ann_referrer;
        }
        self.ann_entries.extend(applied.code_owner.entries);
        self.ann_entries.extend(applied.referrer.entries);
        self.bob_entries.extend(applied.buyer.entries);
        self.orders[index] = record;
    }

    fn check(&self) {
        self.ann.check(&self.ann_entries).unwrap();
        self.bob.check(&self.bob_entries).unwrap();
    }
}

fn bobs_order(id: &str, with_anns_code: Option<&str>) -> Order {
    let mut order = order(id, vec![line("a", "100.00", 2, "0.00")]);
    order.customer = CustomerRef {
        id: Some(CustomerId::parse("bob").unwrap()),
        email: Some(Email::parse("bob@example.com").unwrap()),
    };
    if let Some(amount) = with_anns_code {
        order.discount_codes.push(AppliedCode {
            code: Code::parse("CB-ANN").unwrap(),
            amount: usd(amount),
            kind: DiscountKind::Order,
        });
    }
    order
}

#[test]
fn a_strangers_order_with_someones_code_debits_the_owner_not_the_buyer() {
    let mut world = World::new(program());
    world.credit_ann("30.00");
    world.apply(
        &OrderEvent::Paid(bobs_order("1", Some("20.00"))),
        true,
        false,
    );
    assert_eq!(world.ann.available, usd("10.00"));
    assert_eq!(world.ann.lifetime_used, usd("20.00"));
    assert_eq!(world.bob.available, usd("0.00"));
    let record = &world.orders[0];
    assert_eq!(record.paid_by, Some(CustomerId::parse("ann").unwrap()));
    assert_eq!(record.redeemed, usd("20.00"));
    world.check();
}

#[test]
fn the_same_code_paying_twice_charges_the_owner_twice_and_the_rest_as_debt() {
    let mut world = World::new(program());
    world.credit_ann("30.00");
    world.apply(
        &OrderEvent::Paid(bobs_order("1", Some("20.00"))),
        true,
        false,
    );
    world.apply(
        &OrderEvent::Paid(bobs_order("2", Some("20.00"))),
        true,
        false,
    );
    assert_eq!(
        (world.ann.available, world.ann.debt),
        (usd("0.00"), usd("10.00")),
        "the second 20.00 finds 10.00: the other 10.00 is Ann's debt"
    );
    assert_eq!(world.orders[1].shortfall, usd("10.00"));
    let redeem = world
        .ann_entries
        .iter()
        .rfind(|e| e.kind == EntryKind::Redeem)
        .unwrap();
    assert_eq!(redeem.debt_delta, usd("10.00"));
    world.check();
}

#[test]
fn cancelling_a_strangers_order_restores_the_owner_and_clears_the_shortfall() {
    let mut world = World::new(program());
    world.credit_ann("10.00");
    let placed = bobs_order("1", Some("25.00"));
    world.apply(&OrderEvent::Paid(placed.clone()), true, false);
    assert_eq!(
        (world.ann.available, world.ann.debt),
        (usd("0.00"), usd("15.00"))
    );
    world.apply(&OrderEvent::Cancelled(placed), true, false);
    assert_eq!(
        (world.ann.available, world.ann.debt),
        (usd("10.00"), usd("0.00"))
    );
    assert_eq!(world.bob.available, usd("0.00"));
    assert_eq!(world.ann.lifetime_used, usd("0.00"));
    world.check();
}

#[test]
fn a_refund_of_half_restores_half_to_the_owner() {
    let mut world = World::new(program());
    world.credit_ann("40.00");
    world.apply(
        &OrderEvent::Paid(bobs_order("1", Some("20.00"))),
        true,
        false,
    );
    world.apply(&refund_lines("1", "r1", &[("a", 1)]), true, false);
    assert_eq!(world.ann.available, usd("30.00"));
    world.check();
}

#[test]
fn a_guest_order_with_a_code_and_no_buyer_account_still_debits_the_owner() {
    let program = program();
    let ctx = EventContext {
        program: &program,
        now: t0(),
        coupons: &[],
    };
    let mut ann = open("ann", "ann@example.com", "CB-ANN");
    ann.adjust(usd("5.00"), "seed", "s", &program, t0())
        .unwrap();
    let mut order = bobs_order("1", Some("5.00"));
    order.customer = CustomerRef {
        id: None,
        email: None,
    };
    let mut record = OrderRecord::new(order.order_id.clone(), Currency::USD);
    let applied = apply_order_event_to(
        &ctx,
        Parties {
            code_owner: Some(&mut ann),
            balance_codes: vec![Code::parse("CB-ANN").unwrap()],
            ..Parties::default()
        },
        &mut record,
        &OrderEvent::Paid(order),
    )
    .unwrap();
    assert_eq!(ann.available, usd("0.00"));
    assert_eq!(applied.code_owner.entries[0].kind, EntryKind::Redeem);
    assert_eq!(record.customer, None);
}

#[test]
fn an_order_paid_without_the_code_frees_its_checkouts_hold() {
    let mut books = Books::new(Program {
        issuance: Issuance::Immediate,
        ..program()
    });
    let credit = books
        .account
        .adjust(usd("50.00"), "seed", "s", &books.program.clone(), t0())
        .unwrap();
    books.entries.extend(credit.entries);
    let checkout = CheckoutId::parse("chk-1").unwrap();
    books
        .account
        .place_hold(checkout.clone(), usd("20.00"), t0(), 900)
        .unwrap();
    let mut placed = order("1", vec![line("a", "40.00", 1, "0.00")]);
    placed.checkout_id = Some(checkout);
    books.apply(&OrderEvent::Paid(placed), t0());
    assert!(
        books.account.holds.is_empty(),
        "the order ended its checkout"
    );
    assert_eq!(books.account.spendable(), books.account.available);
    books.check();
}

#[test]
fn expiry_never_takes_what_a_live_checkout_holds() {
    let mut books = Books::new(Program {
        expiry_days: Some(30),
        ..program()
    });
    let credit = books
        .account
        .adjust(usd("50.00"), "seed", "s", &books.program.clone(), t0())
        .unwrap();
    books.entries.extend(credit.entries);
    let checkout = CheckoutId::parse("chk-1").unwrap();
    // The credit expires at the end of the UTC day 30 days on (t0 is noon).
    let expires = days(30) + chrono::Duration::hours(12);
    let held_at = expires - chrono::Duration::minutes(5);
    books
        .account
        .place_hold(checkout.clone(), usd("20.00"), held_at, 900)
        .unwrap();
    let expired = books.account.expire_balance(expires).unwrap();
    books.entries.extend(expired.entries.clone());
    assert_eq!(expired.entries[0].available_delta, usd("-30.00"));
    assert_eq!(books.account.available, usd("20.00"));
    assert_eq!(books.account.held(), usd("20.00"));
    // The order the checkout was for arrives: it spends what was held.
    let mut placed = order("1", vec![line("a", "40.00", 1, "20.00")]);
    placed.checkout_id = Some(checkout);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("CB-ANN").unwrap(),
        amount: usd("20.00"),
        kind: DiscountKind::Order,
    });
    let mut unpaid = Books {
        program: books.program.clone(),
        account: books.account.clone(),
        orders: books.orders.clone(),
        entries: books.entries.clone(),
    };
    books.apply(&OrderEvent::Paid(placed), expires);
    assert_eq!(books.account.available, usd("0.00"));
    assert_eq!(books.account.debt, usd("0.00"), "no shortfall");
    books.check();
    // Had it not come, the held part expires once the hold lapses.
    let lapsed = held_at + chrono::Duration::seconds(900);
    assert_eq!(unpaid.account.next_expiry(), Some(lapsed));
    unpaid.account.expire_holds(lapsed);
    let expired = unpaid.account.expire_balance(lapsed).unwrap();
    unpaid.entries.extend(expired.entries);
    assert_eq!(unpaid.account.available, usd("0.00"));
    unpaid.check();
}

fn referral_program(days: u32) -> Program {
    Program {
        issuance: Issuance::Pending { days },
        ..program()
    }
}

#[test]
fn a_referral_reward_is_pending_with_the_referred_order_and_released_with_it() {
    let mut world = World::new(referral_program(14));
    world.apply(&OrderEvent::Paid(bobs_order("1", None)), false, true);
    assert_eq!(world.ann.pending, usd("15.00"));
    assert_eq!(world.ann.available, usd("0.00"));
    let referral = world.orders[0].referral.clone().unwrap();
    assert_eq!(referral.referrer, CustomerId::parse("ann").unwrap());
    assert_eq!(world.orders[0].due_at(), Some(days(14)));
    // The release job releases both, in one go, once.
    let mut record = world.orders[0].clone();
    let missing = release_order(
        &world.program,
        &mut world.bob.clone(),
        None,
        &mut record.clone(),
        days(14),
    );
    assert!(matches!(missing, Err(LedgerError::PartyMissing { .. })));
    let (bob, ann) = release_order(
        &world.program,
        &mut world.bob,
        Some(&mut world.ann),
        &mut record,
        days(14),
    )
    .unwrap();
    world.bob_entries.extend(bob.entries);
    world.ann_entries.extend(ann.entries);
    world.orders[0] = record;
    assert_eq!(world.ann.available, usd("15.00"));
    assert_eq!(world.ann.pending, usd("0.00"));
    assert_eq!(world.bob.available, usd("20.00"));
    assert_eq!(world.orders[0].due_at(), None);
    world.check();
}

#[test]
fn cancelling_the_referred_order_voids_the_reward() {
    let mut world = World::new(referral_program(14));
    let placed = bobs_order("1", None);
    world.apply(&OrderEvent::Paid(placed.clone()), false, true);
    world.apply(&OrderEvent::Cancelled(placed), false, true);
    assert_eq!(
        (world.ann.available, world.ann.pending, world.ann.debt),
        (usd("0.00"), usd("0.00"), usd("0.00"))
    );
    assert_eq!(world.ann.lifetime_issued, usd("0.00"));
    assert_eq!(world.orders[0].due_at(), None);
    world.check();
}

#[test]
fn refunds_take_the_reward_back_in_proportion_and_exactly_at_the_end() {
    let mut program = referral_program(14);
    program.referral = Some(ReferralReward::Percent { percent: dec!(5) });
    let mut world = World::new(program);
    // 3 units of 33.33: 5% of 99.99 is 4.99.
    let mut placed = order("1", vec![line("a", "33.33", 3, "0.00")]);
    placed.customer = bobs_order("1", None).customer;
    world.apply(&OrderEvent::Paid(placed), false, true);
    assert_eq!(world.ann.pending, usd("4.99"));
    world.apply(&refund_lines("1", "r1", &[("a", 1)]), false, true);
    assert_eq!(
        world.ann.pending,
        usd("3.33"),
        "4.99 less 1.66, rounded toward zero"
    );
    world.apply(&refund_lines("1", "r2", &[("a", 1)]), false, true);
    world.apply(&refund_lines("1", "r3", &[("a", 1)]), false, true);
    assert_eq!(world.ann.pending, usd("0.00"));
    assert_eq!(
        world.orders[0].referral.as_ref().unwrap().clawed_back,
        usd("4.99")
    );
    world.check();
}

#[test]
fn a_refund_after_release_takes_the_reward_from_available_then_as_debt() {
    let mut world = World::new(Program {
        issuance: Issuance::Immediate,
        ..program()
    });
    world.apply(&OrderEvent::Paid(bobs_order("1", None)), false, true);
    assert_eq!(world.ann.available, usd("15.00"));
    // Ann spends 10.00 of it through an adjustment debit.
    let program = world.program.clone();
    let debit = world
        .ann
        .adjust(usd("-10.00"), "spent", "d", &program, t0())
        .unwrap();
    world.ann_entries.extend(debit.entries);
    world.apply(&refund_lines("1", "r1", &[("a", 2)]), false, true);
    assert_eq!(
        (world.ann.available, world.ann.debt),
        (usd("0.00"), usd("10.00"))
    );
    world.check();
}

#[test]
fn self_referral_pays_nothing_by_id_or_by_email() {
    // By id: the referral code is the buyer's own.
    let mut world = World::new(referral_program(14));
    world.ann = open("bob", "other@example.com", "CB-X");
    world.apply(&OrderEvent::Paid(bobs_order("1", None)), false, true);
    assert!(world.orders[0].referral.is_none());
    // By email: another account with the buyer's address.
    let mut world = World::new(referral_program(14));
    world.ann = open("ann", "bob@example.com", "CB-ANN");
    world.apply(&OrderEvent::Paid(bobs_order("1", None)), false, true);
    assert!(world.orders[0].referral.is_none());
    assert_eq!(world.ann.pending, usd("0.00"));
}

#[test]
fn only_the_first_earning_order_refers_and_a_referrer_is_capped_per_day() {
    let mut program = referral_program(14);
    program.referral_daily_cap = 1;
    let mut world = World::new(program.clone());
    world.apply(&OrderEvent::Paid(bobs_order("1", None)), false, true);
    world.apply(&OrderEvent::Paid(bobs_order("2", None)), false, true);
    assert!(world.orders[1].referral.is_none(), "not a first order");
    // Another new buyer the same day: past Ann's cap.
    world.bob = open("cid", "cid@example.com", "CB-CID");
    let mut third = bobs_order("3", None);
    third.customer = CustomerRef {
        id: Some(CustomerId::parse("cid").unwrap()),
        email: Some(Email::parse("cid@example.com").unwrap()),
    };
    world.apply(&OrderEvent::Paid(third), false, true);
    assert!(world.orders[2].referral.is_none(), "past the daily cap");
    assert_eq!(world.ann.pending, usd("15.00"));
}

#[test]
fn the_buyer_only_entry_point_spends_only_the_buyers_own_code() {
    let mut books = Books::new(program());
    let credit = books
        .account
        .adjust(usd("30.00"), "seed", "s", &books.program.clone(), t0())
        .unwrap();
    books.entries.extend(credit.entries);
    let mut placed = order("1", vec![line("a", "40.00", 1, "0.00")]);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("CB-SOMEONE-ELSE").unwrap(),
        amount: usd("10.00"),
        kind: DiscountKind::Order,
    });
    let program = books.program.clone();
    let mut record = OrderRecord::new(placed.order_id.clone(), Currency::USD);
    apply_order_event(
        &EventContext {
            program: &program,
            now: t0(),
            coupons: &[],
        },
        Some(&mut books.account),
        &mut record,
        &OrderEvent::Paid(placed),
    )
    .unwrap();
    assert_eq!(books.account.available, usd("30.00"));
}
