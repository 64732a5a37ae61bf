//! Worlds to run use cases in: a shop with a program on a given store,
//! order builders, and what the engine wrote, read back.

use std::sync::{Arc, Mutex};

use cashback_app::store::{Platform, ReadRequest, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::program::Program;

use crate::doubles::{KeptNotifier, SeqCodes};
use crate::fixtures::{shop, t0, usd};

/// The demo shop with `program` (version 0) on `store`.
pub async fn open_shop(store: &dyn Store, program: &Program) {
    store
        .create_shop(&Shop {
            shop: shop(),
            platform: Platform::Shopify,
            currency: program.currency,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:CASHBACK_SECRET_DEMO_WEBHOOK".into(),
            api_key_hash: String::new(),
            created_at: t0(),
            guest_id_key: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create shop: {e}"));
    store
        .put_program(&shop(), program, 0, t0())
        .await
        .unwrap_or_else(|e| panic!("put program: {e}"));
}

/// A context on `store` with up to 50 attempts per retried write (the
/// faults make many fail) within a minute (a moto serving one request at
/// a time makes one attempt take seconds), `notifier` and [`SeqCodes`].
pub fn context(store: Arc<dyn Store>, notifier: Arc<KeptNotifier>) -> Context {
    let config = AppConfig {
        max_attempts: 50,
        retry_budget: std::time::Duration::from_secs(60),
        ..AppConfig::default()
    };
    Context::new(store, notifier, Arc::new(SeqCodes(Mutex::new(0))), config)
}

pub fn line(id: &str, cents: i64, quantity: u32) -> Line {
    Line {
        line_id: LineId::parse(id).unwrap_or_else(|e| panic!("{e}")),
        product_id: None,
        variant_id: None,
        sku: None,
        vendor: None,
        quantity,
        unit_price: Money::new(rust_decimal::Decimal::new(cents, 2), Currency::USD)
            .unwrap_or_else(|e| panic!("{e}")),
        discount: usd("0"),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    }
}

pub fn order(id: &str, customer: &str, lines: Vec<Line>) -> Order {
    let total = lines.iter().fold(usd("0"), |sum, l| {
        sum.checked_add(l.net_merchandise().unwrap_or(usd("0")))
            .unwrap_or(sum)
    });
    Order {
        order_id: OrderId::parse(id).unwrap_or_else(|e| panic!("{e}")),
        customer: CustomerRef {
            id: Some(CustomerId::parse(customer).unwrap_or_else(|e| panic!("{e}"))),
            email: Some(
                Email::parse(&format!("{customer}@example.com")).unwrap_or_else(|e| panic!("{e}")),
            ),
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

pub fn refund(order_id: &str, refund_id: &str, lines: &[(String, u32)]) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap_or_else(|e| panic!("{e}")),
        order_id: OrderId::parse(order_id).unwrap_or_else(|e| panic!("{e}")),
        basis: RefundBasis::Lines {
            lines: lines
                .iter()
                .map(|(id, q)| RefundedLine {
                    line_id: LineId::parse(id).unwrap_or_else(|e| panic!("{e}")),
                    quantity: *q,
                })
                .collect(),
        },
        occurred_at: t0(),
    })
}

/// The balances of every given customer: (available, pending, debt).
pub async fn balances(
    store: &dyn Store,
    customers: &[String],
) -> Vec<(String, Money, Money, Money)> {
    let ids: Vec<CustomerId> = customers
        .iter()
        .map(|c| CustomerId::parse(c).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: ids.clone(),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    ids.iter()
        .map(|id| {
            let account: Option<&Account> = read.accounts.get(id).map(|v| &v.value);
            match account {
                Some(a) => (id.to_string(), a.available, a.pending, a.debt),
                None => (id.to_string(), usd("0"), usd("0"), usd("0")),
            }
        })
        .collect()
}

/// Opens `customer`'s account with `available` balance on `code`, the way
/// the engine writes one (an adjustment entry, the code index), so the
/// account and its ledger agree from the start.
pub async fn seed_balance(
    store: &dyn Store,
    program: &Program,
    customer: &str,
    code: &str,
    available: &str,
) -> Account {
    use cashback_app::store::{AccountWrite, CodeChange, WriteSet};
    let parsed_code = Code::parse(code).unwrap_or_else(|e| panic!("code {code}: {e}"));
    let mut account = Account::open(
        shop(),
        CustomerId::parse(customer).unwrap_or_else(|e| panic!("{e}")),
        Currency::USD,
    );
    account.email =
        Some(Email::parse(&format!("{customer}@example.com")).unwrap_or_else(|e| panic!("{e}")));
    account.code = Some(parsed_code.clone());
    let applied = account
        .adjust(usd(available), "seed", customer, program, t0())
        .unwrap_or_else(|e| panic!("seed adjustment: {e}"));
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.clone(),
                    expected_version: 0,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: Some(CodeChange {
                        new_code: parsed_code,
                        old_code: None,
                        referral_code: None,
                    }),
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("seed write: {e}"));
    account
}

/// The account of `customer` as stored now, with its version.
pub async fn stored_account(
    store: &dyn Store,
    customer: &str,
) -> Option<cashback_app::store::Versioned<Account>> {
    let id = CustomerId::parse(customer).unwrap_or_else(|e| panic!("{e}"));
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    read.accounts.get(&id).cloned()
}

/// Every ledger entry of `customer`, read page by page.
pub async fn whole_ledger(
    store: &dyn Store,
    customer: &str,
) -> Vec<cashback_core::ledger::LedgerEntry> {
    let id = CustomerId::parse(customer).unwrap_or_else(|e| panic!("{e}"));
    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .ledger(&shop(), &id, cursor, 100)
            .await
            .unwrap_or_else(|e| panic!("ledger: {e}"));
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return entries,
        }
    }
}
