//! Shopify's native store credit, for programs in store-credit mode
//! (`platform_sync: "store_credit"`), through the same GraphQL Admin API
//! client, bucket and credentials as the discount codes ([`ShopifyCodes`]).
//!
//! - the account: `customer(id).storeCreditAccounts(first: 1, query:
//!   "currency_code:XXX")`, its `balance` and a page of its transactions
//!   (`transactions(first: N, after: cursor)`, oldest first, with each
//!   one's `cursor` and `pageInfo { hasNextPage endCursor }`; `event`,
//!   `origin` the order's transaction, so payments with store credit are
//!   read from Shopify itself, never from a webhook's claim); the newest
//!   transaction alone with `transactions(last: 1)`;
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
    CreditAccount, CreditTransaction, Movement, StoreCreditAccounts, EXPIRATION,
};
use cashback_app::platform_codes::PlatformError;
use cashback_core::ids::CustomerId;
use cashback_core::money::{Currency, Money};

use crate::shopify::{customer_gid, ShopifyCodes, MUTATION_COST};

/// Transactions read per page with the account (the sync reads as many
/// pages as it takes, [`ShopifyConfig::store_credit_page`] sets it).
///
/// [`ShopifyConfig::store_credit_page`]: crate::shopify::ShopifyConfig
pub const TRANSACTIONS_PER_PAGE: u32 = 50;

/// Cost taken from the bucket before the account query (refunded down to
/// its actual cost by the platform).
pub const ACCOUNT_COST: f64 = 60.0;

/// The fields of one transaction.
const TRANSACTION_FIELDS: &str = "__typename
              amount { amount currencyCode }
              balanceAfterTransaction { amount currencyCode }
              createdAt
              event
              origin { ... on OrderTransaction { id order { id name } } }
              ... on StoreCreditAccountCreditTransaction { id }
              ... on StoreCreditAccountDebitTransaction { id }
              ... on StoreCreditAccountDebitRevertTransaction { id }";

/// The account query: its balance and the page of transactions after
/// `$after` (from the first without it).
pub fn account_document() -> String {
    format!(
        "query CashbackStoreCreditAccount($id: ID!, $query: String!, $first: Int!, $after: String) {{
  customer(id: $id) {{
    storeCreditAccounts(first: 1, query: $query) {{
      nodes {{
        id
        balance {{ amount currencyCode }}
        transactions(first: $first, after: $after) {{
          edges {{
            cursor
            node {{
              {TRANSACTION_FIELDS}
            }}
          }}
          pageInfo {{ hasNextPage endCursor }}
        }}
      }}
    }}
  }}
}}"
    )
}

/// The query of the account's newest transaction.
pub fn newest_document() -> String {
    format!(
        "query CashbackStoreCreditNewest($id: ID!, $query: String!) {{
  customer(id: $id) {{
    storeCreditAccounts(first: 1, query: $query) {{
      nodes {{
        id
        transactions(last: 1) {{
          edges {{
            cursor
            node {{
              {TRANSACTION_FIELDS}
            }}
          }}
        }}
      }}
    }}
  }}
}}"
    )
}

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
        ("store_credit_account", account_document()),
        ("store_credit_newest", newest_document()),
        ("store_credit_credit", CREDIT_DOCUMENT.to_string()),
        ("store_credit_debit", DEBIT_DOCUMENT.to_string()),
    ]
}

/// The account query's variables: the page of `first` transactions after
/// `after`.
pub fn account_variables(
    customer: &CustomerId,
    currency: Currency,
    first: u32,
    after: Option<&str>,
) -> Value {
    json!({
        "id": customer_gid(customer.as_str()),
        "query": format!("currency_code:{}", currency.code()),
        "first": first,
        "after": after,
    })
}

/// The newest transaction query's variables.
pub fn newest_variables(customer: &CustomerId, currency: Currency) -> Value {
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

/// One edge of a transactions connection (its cursor and node).
fn edge(edge: &Value, currency: Currency) -> Result<CreditTransaction, PlatformError> {
    let mut read = transaction(&edge["node"], currency)?;
    read.cursor = edge
        .get("cursor")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(read)
}

fn edges(connection: &Value, currency: Currency) -> Result<Vec<CreditTransaction>, PlatformError> {
    connection
        .get("edges")
        .and_then(Value::as_array)
        .map(|edges| {
            edges
                .iter()
                .map(|e| edge(e, currency))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map(Option::unwrap_or_default)
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
    // An expiration is the platform's own, whatever event it names: credit
    // given with an end date (never the engine's) running out.
    let event = match typename {
        "StoreCreditAccountExpirationTransaction" => EXPIRATION,
        _ => node
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("ADJUSTMENT"),
    }
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
    let balance_after = match node.get("balanceAfterTransaction") {
        Some(value) if !value.is_null() => Some(money(value, currency)?),
        _ => None,
    };
    Ok(CreditTransaction {
        id,
        movement,
        event,
        amount,
        balance_after,
        created_at,
        order,
        order_id,
        cursor: None,
    })
}

/// A credit's or debit's answer: refused with its user errors, else the id
/// of the transaction it made (when the answer names it).
fn landed(payload: &Value) -> Result<Option<String>, PlatformError> {
    match user_errors(payload) {
        Some(reason) => Err(PlatformError::Rejected { reason }),
        None => Ok(payload
            .pointer("/storeCreditAccountTransaction/id")
            .and_then(Value::as_str)
            .map(str::to_string)),
    }
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

impl ShopifyCodes {
    /// The customer's first store credit account in the shop's currency as
    /// a query answers it (None: they have none; an unknown customer is
    /// refused).
    fn account_node<'a>(
        data: &'a Value,
        customer: &CustomerId,
    ) -> Result<Option<&'a Value>, PlatformError> {
        let customer_node = &data["customer"];
        if customer_node.is_null() {
            return Err(PlatformError::Rejected {
                reason: format!("Shopify has no customer {customer}"),
            });
        }
        Ok(customer_node
            .pointer("/storeCreditAccounts/nodes")
            .and_then(Value::as_array)
            .and_then(|nodes| nodes.first()))
    }
}

#[async_trait::async_trait]
impl StoreCreditAccounts for ShopifyCodes {
    async fn account(
        &self,
        customer: &CustomerId,
        after: Option<&str>,
    ) -> Result<Option<CreditAccount>, PlatformError> {
        let currency = self.currency();
        let data = self
            .graphql(
                &account_document(),
                account_variables(customer, currency, self.store_credit_page(), after),
                ACCOUNT_COST,
            )
            .await?;
        let Some(node) = Self::account_node(&data, customer)? else {
            return Ok(None);
        };
        let id = node
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::transient("store credit account without id"))?
            .to_string();
        let balance = money(&node["balance"], currency)?;
        let connection = &node["transactions"];
        let transactions = edges(connection, currency)?;
        let page_info = &connection["pageInfo"];
        let has_next_page = page_info
            .get("hasNextPage")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                PlatformError::transient("store credit transactions without pageInfo")
            })?;
        let end_cursor = page_info
            .get("endCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if has_next_page && end_cursor.is_none() {
            // Going on would read the same page again, for ever.
            return Err(PlatformError::transient(
                "store credit transactions: a next page but no cursor",
            ));
        }
        Ok(Some(CreditAccount {
            id,
            balance,
            transactions,
            has_next_page,
            end_cursor,
        }))
    }

    async fn newest(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<CreditTransaction>, PlatformError> {
        let currency = self.currency();
        let data = self
            .graphql(
                &newest_document(),
                newest_variables(customer, currency),
                ACCOUNT_COST,
            )
            .await?;
        let Some(node) = Self::account_node(&data, customer)? else {
            return Ok(None);
        };
        Ok(edges(&node["transactions"], currency)?.pop())
    }

    async fn credit(
        &self,
        customer: &CustomerId,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError> {
        let data = self
            .graphql_by(
                CREDIT_DOCUMENT,
                credit_variables(customer, amount),
                MUTATION_COST,
                Some(send_by),
            )
            .await?;
        landed(&data["storeCreditAccountCredit"])
    }

    async fn debit(
        &self,
        account: &str,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError> {
        let data = self
            .graphql_by(
                DEBIT_DOCUMENT,
                debit_variables(account, amount),
                MUTATION_COST,
                Some(send_by),
            )
            .await?;
        landed(&data["storeCreditAccountDebit"])
    }
}
