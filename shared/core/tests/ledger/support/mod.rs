//! Builders shared by the core's integration tests.
#![allow(dead_code)]

use cashback_core::coupon::CouponCredit;
use cashback_core::ids::*;
use cashback_core::ledger::{Account, Applied, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::orders::{apply_order_event, EventContext, OrderRecord};
use cashback_core::program::Program;
use chrono::{DateTime, Duration, TimeZone, Utc};

pub fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

pub fn days(n: i64) -> DateTime<Utc> {
    t0() + Duration::days(n)
}

pub fn line(id: &str, price: &str, quantity: u32, discount: &str) -> Line {
    Line {
        line_id: LineId::parse(id).unwrap(),
        product_id: Some(ProductId::parse(&format!("p{id}")).unwrap()),
        variant_id: None,
        sku: None,
        vendor: None,
        quantity,
        unit_price: usd(price),
        discount: usd(discount),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    }
}

pub fn order(id: &str, lines: Vec<Line>) -> Order {
    let merchandise = lines
        .iter()
        .map(|l| l.net_merchandise().unwrap())
        .fold(usd("0"), |a, b| a.checked_add(b).unwrap());
    Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse("cust-1").unwrap()),
            email: Some(Email::parse("ann@example.com").unwrap()),
        },
        currency: Currency::USD,
        lines,
        subtotal: merchandise,
        shipping: usd("0"),
        total: merchandise,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: t0(),
    }
}

pub fn refund_lines(order_id: &str, refund_id: &str, lines: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap(),
        order_id: OrderId::parse(order_id).unwrap(),
        basis: RefundBasis::Lines {
            lines: lines
                .iter()
                .map(|(id, quantity)| RefundedLine {
                    line_id: LineId::parse(id).unwrap(),
                    quantity: *quantity,
                })
                .collect(),
        },
        occurred_at: t0(),
    })
}

pub fn account() -> Account {
    let mut account = Account::open(
        ShopId::parse("demo.myshopify.com").unwrap(),
        CustomerId::parse("cust-1").unwrap(),
        Currency::USD,
    );
    account.code = Some(Code::parse("CB-ANN").unwrap());
    account
}

/// One customer's books: the account, its orders and every entry so far.
pub struct Books {
    pub program: Program,
    pub account: Account,
    pub orders: Vec<OrderRecord>,
    pub entries: Vec<LedgerEntry>,
}

impl Books {
    pub fn new(program: Program) -> Books {
        Books {
            program,
            account: account(),
            orders: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub fn record(&mut self, order_id: &OrderId) -> &mut OrderRecord {
        if let Some(index) = self.orders.iter().position(|o| &o.order_id == order_id) {
            return &mut self.orders[index];
        }
        self.orders
            .push(OrderRecord::new(order_id.clone(), Currency::USD));
        self.orders.last_mut().unwrap()
    }

    pub fn apply_with_coupons(
        &mut self,
        event: &OrderEvent,
        now: DateTime<Utc>,
        coupons: &[CouponCredit],
    ) -> Applied {
        let program = self.program.clone();
        let ctx = EventContext {
            program: &program,
            now,
            coupons,
        };
        let index = {
            self.record(event.order_id());
            self.orders
                .iter()
                .position(|o| &o.order_id == event.order_id())
                .unwrap()
        };
        let mut record = self.orders[index].clone();
        let mut account = self.account.clone();
        let applied = apply_order_event(&ctx, Some(&mut account), &mut record, event).unwrap();
        self.orders[index] = record;
        self.account = account;
        self.entries.extend(applied.entries.clone());
        applied
    }

    pub fn apply(&mut self, event: &OrderEvent, now: DateTime<Utc>) -> Applied {
        self.apply_with_coupons(event, now, &[])
    }

    pub fn release_due(&mut self, now: DateTime<Utc>) -> Applied {
        let mut all = Applied::default();
        for index in 0..self.orders.len() {
            let applied = cashback_core::orders::release_pending(
                &self.program,
                &mut self.account,
                &mut self.orders[index],
                now,
            )
            .unwrap();
            self.entries.extend(applied.entries.clone());
            all.merge(applied);
        }
        all
    }

    pub fn check(&self) {
        if let Err(broken) = self.account.check(&self.entries) {
            panic!(
                "invariants broken: {broken:?}\naccount: {:#?}",
                self.account
            );
        }
        let pending = self
            .orders
            .iter()
            .fold(usd("0"), |sum, o| sum.checked_add(o.pending).unwrap());
        assert_eq!(
            pending, self.account.pending,
            "account pending != orders' pending"
        );
    }

    pub fn balances(&self) -> (Money, Money, Money) {
        (
            self.account.available,
            self.account.pending,
            self.account.debt,
        )
    }
}
