//! Checkout validation as the benches drive it: `checkout::validate` on the
//! in-memory store for a customer with a balance code, with carts of any
//! number of lines. The customer id is given (one read), the common case for
//! a logged-in shopper; no hold is asked, so every call is the same work.

use std::sync::Arc;

use serde_json::json;

use cashback_app::checkout::ValidateRequest;
use cashback_app::store::{AccountWrite, CodeChange, Platform, Shop, Store, WriteSet};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{Code, CustomerId, Email};
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_store::MemoryStore;

use crate::{DiscardNotifier, UniqueCodes};

/// The balance code the shopper types.
pub const CODE: &str = "CB-ANN0000000001";
pub const CUSTOMER: &str = "ann";

pub use cashback_test_support::fixtures::{program, shop, t0 as now};

/// The demo shop on `store`, with `customer` holding `balance` under `code`.
pub async fn world_on(store: Arc<dyn Store>, customer: &str, code: &str, balance: &str) -> Context {
    store
        .create_shop(&Shop {
            shop: shop(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: String::new(),
            created_at: now(),
            guest_id_key: None,
        })
        .await
        .expect("the shop is created");
    store
        .put_program(&shop(), &program(), 0, now())
        .await
        .expect("the program is stored");
    seed_balance(store.as_ref(), customer, code, balance).await;
    Context::new(
        store,
        Arc::new(DiscardNotifier::default()),
        Arc::new(UniqueCodes::default()),
        AppConfig::default(),
    )
}

/// An account with `balance` available and its code claimed.
pub async fn seed_balance(store: &dyn Store, customer: &str, code: &str, balance: &str) {
    let customer_id = CustomerId::parse(customer).unwrap();
    let mut account = Account::open(shop(), customer_id, Currency::USD);
    account.email = Some(Email::parse(&format!("{customer}@example.com")).unwrap());
    account.code = Some(Code::parse(code).unwrap());
    let applied = account
        .adjust(
            Money::parse(balance, Currency::USD).unwrap(),
            "seed",
            customer,
            &program(),
            now(),
        )
        .expect("a positive adjustment applies");
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
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
        .expect("the seed account is written");
}

/// The in-memory world: ann with 500.00.
pub async fn world() -> Context {
    world_on(Arc::new(MemoryStore::new()), CUSTOMER, CODE, "500.00").await
}

/// A request for `code` with a cart of `lines` lines of 10.00 each;
/// `customer` None makes the balance code resolve through its owner first.
pub fn request(code: &str, customer: Option<&str>, lines: usize) -> ValidateRequest {
    let cart_lines: Vec<_> = (0..lines)
        .map(|n| {
            json!({
                "product_id": format!("p{n}"),
                "variant_id": format!("v{n}"),
                "sku": format!("SKU-{n:03}"),
                "quantity": 1,
                "unit_price": "10.00",
            })
        })
        .collect();
    serde_json::from_value(json!({
        "code": code,
        "customer_id": customer,
        "currency": "USD",
        "cart": {
            "lines": cart_lines,
            "subtotal": format!("{}.00", lines * 10),
        },
    }))
    .expect("a valid request")
}
