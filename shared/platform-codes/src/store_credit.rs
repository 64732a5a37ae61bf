//! Shopify's native store credit, for programs in store-credit mode
//! (`platform_sync: "store_credit"`), through the same GraphQL Admin API
//! client, bucket and credentials as the discount codes ([`ShopifyCodes`]).
//!
//! - the account: `customer(id).storeCreditAccounts(first: 1, query:
//!   "currency_code:XXX")`, its `balance` and its last
//!   [`TRANSACTIONS_READ`] transactions (`event`, `origin` the order's
//!   transaction, so payments with store credit are read from Shopify
//!   itself, never from a webhook's claim);
//! - `storeCreditAccountCredit(id: customer GID)`: Shopify opens the
//!   account in the currency when there is none; `notify: false`;
//! - `storeCreditAccountDebit(id: account GID)`;
//! - user errors (`INSUFFICIENT_FUNDS`, `MISMATCHING_CURRENCY`, ...) are
//!   [`PlatformError::Rejected`]: nothing was applied. A timeout or a 5xx
//!   is [`PlatformError::Transient`]: it may have been applied, and the
//!   sync reconciles before sending again
//!   ([`cashback_app::platform_codes::store_credit`]).
//!
//! Scopes: `read_store_credit_accounts`, `write_store_credit_account_transactions`
//! (and `read_customers`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use cashback_app::platform_codes::store_credit::{
    CreditAccount, CreditTransaction, Movement, StoreCreditAccounts,
};
use cashback_app::platform_codes::PlatformError;
use cashback_core::ids::CustomerId;
use cashback_core::money::{Currency, Money};

use crate::shopify::{customer_gid, ShopifyCodes, MUTATION_COST};

/// Transactions read with the account: the most recent ones (a sync runs
/// after every balance change and on the reconcile's schedule, so far
/// fewer than this happen between two reads).
pub const TRANSACTIONS_READ: u32 = 25;

/// Cost taken from the bucket before the account query (refunded down to
/// its actual cost by the platform).
pub const ACCOUNT_COST: f64 = 30.0;

/// The account query.
pub const ACCOUNT_DOCUMENT: &str = "query CashbackStoreCreditAccount($id: ID!, $query: String!) {
  customer(id: $id) {
    storeCreditAccounts(first: 1, query: $query) {
      nodes {
        id
        balance { amount currencyCode }
        transactions(last: 25) {
          nodes {
            __typename
            amount { amount currencyCode }
            createdAt
            event
            origin { ... on OrderTransaction { id order { id name } } }
            ... on StoreCreditAccountCreditTransaction { id }
            ... on StoreCreditAccountDebitTransaction { id }
            ... on StoreCreditAccountDebitRevertTransaction { id }
          }
        }
      }
    }
  }
}";

/// The credit mutation.
pub const CREDIT_DOCUMENT: &str = "mutation CashbackStoreCreditCredit($id: ID!, $creditInput: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $creditInput) {
    storeCreditAccountTransaction { id amount { amount currencyCode } balanceAfterTransaction { amount currencyCode } }
    userErrors { field message code }
  }
}";

/// The debit mutation.
pub const DEBIT_DOCUMENT: &str = "mutation CashbackStoreCreditDebit($id: ID!, $debitInput: StoreCreditAccountDebitInput!) {
  storeCreditAccountDebit(id: $id, debitInput: $debitInput) {
    storeCreditAccountTransaction { id amount { amount currencyCode } balanceAfterTransaction { amount currencyCode } }
    userErrors { field message code }
  }
}";

/// The store credit documents, by name (checked against the schema).
pub fn documents() -> Vec<(&'static str, String)> {
    vec![
        ("store_credit_account", ACCOUNT_DOCUMENT.to_string()),
        ("store_credit_credit", CREDIT_DOCUMENT.to_string()),
        ("store_credit_debit", DEBIT_DOCUMENT.to_string()),
    ]
}

/// The account query's variables.
pub fn account_variables(customer: &CustomerId, currency: Currency) -> Value {
    json!({
        "id": customer_gid(customer.as_str()),
        "query": format!("currency_code:{}", currency.code()),
    })
}

fn money_input(amount: Money) -> Value {
    json!({"amount": amount.amount().to_string(), "currencyCode": amount.currency().code()})
}

/// The credit mutation's variables (the customer's id: Shopify opens the
/// account when there is none).
pub fn credit_variables(customer: &CustomerId, amount: Money) -> Value {
    json!({
        "id": customer_gid(customer.as_str()),
        "creditInput": {"creditAmount": money_input(amount), "notify": false},
    })
}

/// The debit mutation's variables.
pub fn debit_variables(account: &str, amount: Money) -> Value {
    json!({"id": account, "debitInput": {"debitAmount": money_input(amount)}})
}

fn decimal(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// An amount of the shop's currency read back; another currency is refused.
fn money(value: &Value, currency: Currency) -> Result<Money, PlatformError> {
    let code = value.get("currencyCode").and_then(Value::as_str);
    if code != Some(currency.code()) {
        return Err(PlatformError::transient(format!(
            "store credit in {code:?}, the shop's currency is {}",
            currency.code()
        )));
    }
    let amount = decimal(value.get("amount"))
        .ok_or_else(|| PlatformError::transient("store credit amount unreadable"))?;
    Money::new(amount, currency)
        .map_err(|e| PlatformError::transient(format!("store credit amount: {e}")))
}

fn transaction(node: &Value, currency: Currency) -> Result<CreditTransaction, PlatformError> {
    let typename = node
        .get("__typename")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let movement = match typename {
        "StoreCreditAccountCreditTransaction" | "StoreCreditAccountDebitRevertTransaction" => {
            Movement::Credit
        }
        _ => Movement::Debit,
    };
    let created_at: DateTime<Utc> = node
        .get("createdAt")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| PlatformError::transient("store credit transaction without createdAt"))?;
    let amount = money(&node["amount"], currency)?;
    // The amount is signed by some shops' answers; its sign is the type's.
    let amount = if amount.is_negative() {
        amount.negated()
    } else {
        amount
    };
    let event = node
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("ADJUSTMENT")
        .to_string();
    // An expiration has no id of its own: its time and amount name it.
    let id = node
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{typename}@{}#{}", created_at.timestamp_millis(), amount));
    let order_id = node
        .pointer("/origin/order/id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let order = node
        .pointer("/origin/order/name")
        .or_else(|| node.pointer("/origin/order/id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(CreditTransaction {
        id,
        movement,
        event,
        amount,
        created_at,
        order,
        order_id,
    })
}

fn user_errors(payload: &Value) -> Option<String> {
    let errors = payload.get("userErrors")?.as_array()?;
    if errors.is_empty() {
        return None;
    }
    Some(
        errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.get("code").and_then(Value::as_str).unwrap_or("INVALID"),
                    e.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("refused")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[async_trait::async_trait]
impl StoreCreditAccounts for ShopifyCodes {
    async fn account(&self, customer: &CustomerId) -> Result<Option<CreditAccount>, PlatformError> {
        let currency = self.currency();
        let data = self
            .graphql(
                ACCOUNT_DOCUMENT,
                account_variables(customer, currency),
                ACCOUNT_COST,
            )
            .await?;
        let customer_node = &data["customer"];
        if customer_node.is_null() {
            return Err(PlatformError::Rejected {
                reason: format!("Shopify has no customer {customer}"),
            });
        }
        let Some(node) = customer_node
            .pointer("/storeCreditAccounts/nodes")
            .and_then(Value::as_array)
            .and_then(|nodes| nodes.first())
        else {
            return Ok(None);
        };
        let id = node
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::transient("store credit account without id"))?
            .to_string();
        let balance = money(&node["balance"], currency)?;
        let transactions = node
            .pointer("/transactions/nodes")
            .and_then(Value::as_array)
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| transaction(n, currency))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Some(CreditAccount {
            id,
            balance,
            transactions,
        }))
    }

    async fn credit(&self, customer: &CustomerId, amount: Money) -> Result<(), PlatformError> {
        let data = self
            .graphql(
                CREDIT_DOCUMENT,
                credit_variables(customer, amount),
                MUTATION_COST,
            )
            .await?;
        match user_errors(&data["storeCreditAccountCredit"]) {
            Some(reason) => Err(PlatformError::Rejected { reason }),
            None => Ok(()),
        }
    }

    async fn debit(&self, account: &str, amount: Money) -> Result<(), PlatformError> {
        let data = self
            .graphql(
                DEBIT_DOCUMENT,
                debit_variables(account, amount),
                MUTATION_COST,
            )
            .await?;
        match user_errors(&data["storeCreditAccountDebit"]) {
            Some(reason) => Err(PlatformError::Rejected { reason }),
            None => Ok(()),
        }
    }
}
