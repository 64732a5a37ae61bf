//! Store-credit mode ([`PlatformSync::StoreCredit`], Shopify only): the
//! spendable balance mirrored as the customer's native store credit.
//!
//! The platform's credit and debit calls take an amount to add or take
//! away and have no idempotency key, so unlike a discount code nothing
//! absolute can be sent. [`sync_store_credit`] keeps that safe:
//! 1. **Orders first.** The account's recent store credit transactions are
//!    read; every one an order made (event other than `ADJUSTMENT`: a
//!    payment with store credit, a refund or void back to it) that the
//!    ledger has not seen is applied to the ledger once, under the
//!    transaction's id as the write's guard ([`ingest_transactions`]). So
//!    credit a customer spent is never put back by the next step.
//! 2. **The difference at send time.** The account's balance read from the
//!    platform now is compared with [`store_credit_target`]; only the
//!    difference is sent (credit or debit), never a delta of our own.
//! 3. **The intent before the call.** Before the call the intent (its
//!    sequence, kind, amount and the balance it was computed from) is
//!    written to the store, then claimed with an atomic counter and read
//!    back: only the one caller that both wrote the stored intent and won
//!    its sequence sends. A call that ends for sure (success, user errors,
//!    THROTTLED, a refusal) settles the intent; an ambiguous one (timeout,
//!    5xx, a dropped connection after sending) leaves it pending.
//! 4. **A pending intent is reconciled before anything else is sent**: once
//!    it is older than [`IN_FLIGHT`] (no request can still land) the
//!    account's transactions say whether it was applied; it is settled, and
//!    step 2 reads the balance again. A retry therefore sends the
//!    difference to a balance that already holds the first call's effect:
//!    it can never double a credit.
//!
//! Money put on store credit by hand in Shopify's admin (an `ADJUSTMENT`
//! that is not the engine's) is not the ledger's: the next sync takes the
//! balance back to the ledger's. Issue credit through the engine's
//! adjustment instead (docs/platform-sync.md).
//!
//! [`PlatformSync::StoreCredit`]: cashback_core::platform_code::PlatformSync::StoreCredit

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use cashback_core::ids::{CustomerId, OrderId, RefundId, ShopId};
use cashback_core::money::Money;
use cashback_core::order::{OrderEvent, Refund, RefundBasis};
use cashback_core::platform_code::{desired_code, store_credit_target};
use cashback_core::program::Program;

use super::{
    wait_or_fail, CodeState, PlatformError, PutOutcome, SyncError, SyncOutcome, SyncPolicy, Synced,
};
use crate::context::Context;
use crate::error::AppError;
use crate::store::{
    AccountWrite, AccountsRead, Guard, ReadRequest, StoreError, WriteOutcome, WriteSet,
};

/// How long after an ambiguous call its request may still land on the
/// platform (well past the adapter's 10 s deadline): a pending intent
/// younger than this blocks new calls for its customer.
pub const IN_FLIGHT: Duration = Duration::from_secs(60);

/// How far the platform's clock may be behind ours when a pending intent is
/// matched with the transactions it may have made.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Which way a store credit transaction moved the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Added to the balance (`StoreCreditAccountCreditTransaction`,
    /// `StoreCreditAccountDebitRevertTransaction`).
    Credit,
    /// Taken from the balance (`StoreCreditAccountDebitTransaction`,
    /// `StoreCreditAccountExpirationTransaction`).
    Debit,
}

/// One transaction of a store credit account, as the platform lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransaction {
    /// The platform's id (a global id).
    pub id: String,
    /// Which way it moved the balance.
    pub movement: Movement,
    /// What made it: `ADJUSTMENT` (an Admin API call or the merchant by
    /// hand), `ORDER_PAYMENT`, `ORDER_REFUND`, `ORDER_CANCELLATION`, ...
    pub event: String,
    /// Its amount, positive.
    pub amount: Money,
    /// When the platform made it.
    pub created_at: DateTime<Utc>,
    /// The order it belongs to (its name, else its id), when an order made it.
    pub order: Option<String>,
    /// The platform's id of that order (a Shopify global id or the bare
    /// number), when an order made it.
    pub order_id: Option<String>,
}

impl CreditTransaction {
    /// Whether an order made it (the ledger must follow it) rather than an
    /// adjustment (the engine's own mirror, or money put on by hand).
    pub fn from_order(&self) -> bool {
        self.event != "ADJUSTMENT"
    }

    /// Where it sorts in the account's history (time, then id).
    fn mark(&self) -> String {
        format!(
            "{}|{}",
            self.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.id
        )
    }
}

/// A customer's store credit account in the shop's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditAccount {
    /// The platform's id of the account.
    pub id: String,
    /// Its balance now.
    pub balance: Money,
    /// Its most recent transactions, oldest first.
    pub transactions: Vec<CreditTransaction>,
}

/// The platform's store credit, for one shop.
#[async_trait::async_trait]
pub trait StoreCreditAccounts: Send + Sync {
    /// The customer's account in the shop's currency, with its recent
    /// transactions; None when they have none yet.
    async fn account(&self, customer: &CustomerId) -> Result<Option<CreditAccount>, PlatformError>;

    /// Adds `amount` to the customer's balance (the platform opens the
    /// account when there is none). Not idempotent.
    async fn credit(&self, customer: &CustomerId, amount: Money) -> Result<(), PlatformError>;

    /// Takes `amount` from the account's balance. Not idempotent.
    async fn debit(&self, account: &str, amount: Money) -> Result<(), PlatformError>;
}

/// The store-credit call waiting for its outcome, as written before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Intent {
    seq: u64,
    pending: bool,
    movement: Movement,
    amount: String,
    balance_before: String,
    written_at: DateTime<Utc>,
    nonce: u64,
}

impl Intent {
    /// One string that only grows: the sequence, then `p` (pending) or `s`
    /// (settled), which the store's forward-only checkpoint keeps.
    fn encode(&self) -> String {
        let state = if self.pending { "p" } else { "s" };
        let movement = match self.movement {
            Movement::Credit => "credit",
            Movement::Debit => "debit",
        };
        format!(
            "{:012}|{state}|{movement}|{}|{}|{}|{}",
            self.seq,
            self.amount,
            self.balance_before,
            self.written_at.timestamp_millis(),
            self.nonce
        )
    }

    fn decode(value: &str) -> Option<Intent> {
        let parts: Vec<&str> = value.split('|').collect();
        let [seq, state, movement, amount, before, at, nonce] = parts.as_slice() else {
            return None;
        };
        Some(Intent {
            seq: seq.parse().ok()?,
            pending: *state == "p",
            movement: match *movement {
                "credit" => Movement::Credit,
                "debit" => Movement::Debit,
                _ => return None,
            },
            amount: amount.to_string(),
            balance_before: before.to_string(),
            written_at: DateTime::from_timestamp_millis(at.parse().ok()?)?,
            nonce: nonce.parse().ok()?,
        })
    }
}

/// The store job holding a customer's store credit intent.
pub fn intent_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-intent#{shop}#{customer}")
}

/// The store job holding the last transaction the ledger followed.
pub fn seen_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-seen#{shop}#{customer}")
}

/// The guard of a platform transaction applied to the ledger.
pub fn transaction_guard(id: &str) -> String {
    format!("store-credit-transaction:{id}")
}

fn nonce() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Brings the customer's store credit on the platform in step with the
/// ledger (see the module doc). Called by [`super::sync_customer_code`]
/// for a program in store-credit mode.
pub async fn sync_store_credit(
    ctx: &Context,
    platform: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    policy: &SyncPolicy,
) -> Result<SyncOutcome, SyncError> {
    if customer.is_guest() {
        // Store credit belongs to a platform customer; a guest has none.
        return Ok(SyncOutcome::NotSynced);
    }
    let job = intent_job(shop, customer);
    let mut attempts = 0;
    let mut backoff = policy.base_backoff;
    loop {
        attempts += 1;
        match attempt(ctx, platform, shop, customer, program, &job).await {
            Ok(outcome) => return Ok(outcome),
            Err(SyncError::Platform { source, .. }) => {
                wait_or_fail(source, attempts, policy, &mut backoff).await?;
            }
            Err(SyncError::App(error))
                if error.is_retryable() && attempts < policy.max_attempts =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
            Err(error) => return Err(error),
        }
    }
}

fn platform(source: PlatformError) -> SyncError {
    SyncError::Platform {
        attempts: 1,
        source,
    }
}

async fn attempt(
    ctx: &Context,
    platform_accounts: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    job: &str,
) -> Result<SyncOutcome, SyncError> {
    let now = ctx.now();
    let stored = ctx
        .store
        .get_checkpoint(job)
        .await
        .map_err(AppError::from)?;
    let last = stored.as_deref().and_then(Intent::decode);
    if stored.is_some() && last.is_none() {
        return Err(
            AppError::Invalid(format!("unreadable store credit intent for {customer}")).into(),
        );
    }
    let account = platform_accounts
        .account(customer)
        .await
        .map_err(platform)?;
    if let Some(intent) = last.as_ref().filter(|i| i.pending) {
        let age = (now - intent.written_at).to_std().unwrap_or(Duration::ZERO);
        if age < IN_FLIGHT {
            return Err(platform(PlatformError::transient(
                "a store credit call for this customer may still be in flight",
            )));
        }
        settle(ctx, job, intent, account.as_ref()).await?;
    }
    if let Some(account) = &account {
        ingest_transactions(ctx, shop, customer, program, &account.transactions).await?;
    }
    // The ledger after the orders, read now: what the platform must hold.
    let read = ctx
        .store
        .read(shop, &ReadRequest::account(customer))
        .await
        .map_err(AppError::from)?;
    let Some(ledger) = read.accounts.get(customer) else {
        return Err(AppError::NotFound(format!("customer {customer}")).into());
    };
    let Some(desired) = desired_code(&ledger.value, program) else {
        return Ok(SyncOutcome::NotSynced);
    };
    let target = store_credit_target(&desired);
    let balance = account
        .as_ref()
        .map(|a| a.balance)
        .unwrap_or(Money::zero(target.currency()));
    let code = desired.code.clone();
    let state = |amount: Money, id: &str| CodeState {
        code: code.clone(),
        platform_id: id.to_string(),
        amount,
        active: amount.is_positive(),
        managed: true,
    };
    let account_id = account.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    let difference = target
        .checked_sub(balance)
        .map_err(|e| AppError::Invalid(format!("store credit balance: {e}")))?;
    if difference.is_zero() {
        return Ok(SyncOutcome::Synced(Box::new(Synced {
            desired,
            outcome: PutOutcome::NotNeeded,
            attempts: 1,
        })));
    }
    let movement = if difference.is_positive() {
        Movement::Credit
    } else {
        Movement::Debit
    };
    let amount = if difference.is_positive() {
        difference
    } else {
        difference.negated()
    };
    let intent = Intent {
        seq: last.as_ref().map_or(1, |i| i.seq + 1),
        pending: true,
        movement,
        amount: amount.amount().to_string(),
        balance_before: balance.amount().to_string(),
        written_at: now,
        nonce: nonce(),
    };
    claim(ctx, shop, customer, job, &intent).await?;
    let sent = match movement {
        Movement::Credit => platform_accounts.credit(customer, amount).await,
        Movement::Debit => platform_accounts.debit(&account_id, amount).await,
    };
    match sent {
        Ok(()) => {
            put_settled(ctx, job, &intent).await?;
            tracing::info!(shop = %shop, customer = %customer, movement = ?movement,
                amount = %amount.amount(), balance = %target.amount(), "store credit synced");
            Ok(SyncOutcome::Synced(Box::new(Synced {
                desired,
                outcome: PutOutcome::Updated(state(target, &account_id)),
                attempts: 1,
            })))
        }
        // Timeouts, 5xx, a dropped connection: it may have been applied.
        // The intent stays pending; the next attempt reconciles it.
        Err(error @ PlatformError::Transient { .. }) => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error,
                "store credit call ended ambiguously; its intent stays pending");
            Err(platform(error))
        }
        // Refused or throttled: the platform applied nothing.
        Err(error) => {
            put_settled(ctx, job, &intent).await?;
            Err(platform(error))
        }
    }
}

/// Writes the intent, claims its sequence and reads it back: Ok only for
/// the one caller that may send it.
async fn claim(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    job: &str,
    intent: &Intent,
) -> Result<(), SyncError> {
    let value = intent.encode();
    ctx.store
        .put_checkpoint(job, &value)
        .await
        .map_err(AppError::from)?;
    let counter = format!("store-credit-claim#{shop}#{customer}#{}", intent.seq);
    let claims = ctx
        .store
        .increment_counter(&counter, intent.written_at + chrono::Duration::days(2))
        .await
        .map_err(AppError::from)?;
    let stored = ctx
        .store
        .get_checkpoint(job)
        .await
        .map_err(AppError::from)?;
    if claims != 1 || stored.as_deref() != Some(value.as_str()) {
        // Another sync of this customer got there first: its intent is the
        // stored one; it is settled before anything else is sent.
        return Err(platform(PlatformError::transient(
            "another sync holds this customer's store credit",
        )));
    }
    Ok(())
}

async fn put_settled(ctx: &Context, job: &str, intent: &Intent) -> Result<(), SyncError> {
    let settled = Intent {
        pending: false,
        ..intent.clone()
    };
    ctx.store
        .put_checkpoint(job, &settled.encode())
        .await
        .map_err(AppError::from)?;
    Ok(())
}

/// Settles a pending intent older than [`IN_FLIGHT`]: the account's
/// transactions say whether its call was applied (logged; the balance read
/// next holds its effect either way).
async fn settle(
    ctx: &Context,
    job: &str,
    intent: &Intent,
    account: Option<&CreditAccount>,
) -> Result<(), SyncError> {
    let applied = account.is_some_and(|account| {
        account.transactions.iter().any(|t| {
            !t.from_order()
                && t.movement == intent.movement
                && t.amount.amount().to_string() == intent.amount
                && t.created_at >= intent.written_at - CLOCK_SKEW
        })
    });
    tracing::info!(
        seq = intent.seq,
        movement = ?intent.movement,
        amount = %intent.amount,
        applied,
        "store credit intent reconciled from the account's transactions"
    );
    put_settled(ctx, job, intent).await
}

/// Applies to the ledger, once each, the account's transactions an order
/// made since the last one followed: a payment with store credit is a
/// debit (the redemption), a refund or void back to store credit a credit.
/// Each is guarded by its platform id, so a transaction read again changes
/// nothing.
pub async fn ingest_transactions(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    transactions: &[CreditTransaction],
) -> Result<usize, SyncError> {
    let job = seen_job(shop, customer);
    let seen = ctx
        .store
        .get_checkpoint(&job)
        .await
        .map_err(AppError::from)?;
    let mut fresh: Vec<&CreditTransaction> = transactions
        .iter()
        .filter(|t| seen.as_deref().is_none_or(|s| t.mark().as_str() > s))
        .collect();
    fresh.sort_by_key(|t| t.mark());
    let mut applied = 0;
    for transaction in fresh {
        if transaction.from_order() {
            follow(ctx, shop, customer, program, transaction).await?;
            if transaction.movement == Movement::Debit && transaction.event == "ORDER_PAYMENT" {
                not_eligible(ctx, shop, transaction).await?;
            }
            applied += 1;
        }
        ctx.store
            .put_checkpoint(&job, &transaction.mark())
            .await
            .map_err(AppError::from)?;
    }
    Ok(applied)
}

/// Store credit spent pays part of the order but earns nothing: that part
/// is taken out of the order's cashback as a refund of that amount would
/// take it (a refund of the order's merchandise share, under the
/// transaction's id, so it is taken once; an order not yet known gets it
/// when it arrives).
async fn not_eligible(
    ctx: &Context,
    shop: &ShopId,
    transaction: &CreditTransaction,
) -> Result<(), SyncError> {
    let Some(order) = transaction
        .order_id
        .as_deref()
        .map(|id| id.rsplit('/').next().unwrap_or(id))
        .and_then(|id| OrderId::parse(id).ok())
    else {
        tracing::warn!(shop = %shop, transaction = %transaction.id,
            "store credit payment without its order: its cashback share cannot be taken out");
        return Ok(());
    };
    let tail = transaction.id.rsplit('/').next().unwrap_or(&transaction.id);
    let refund_id = RefundId::parse(&format!("store-credit-{tail}"))
        .map_err(|e| AppError::Invalid(format!("store credit transaction id: {e}")))?;
    let event = OrderEvent::Refunded(Refund {
        refund_id,
        order_id: order,
        basis: RefundBasis::Amount {
            amount: transaction.amount,
        },
        occurred_at: transaction.created_at,
    });
    crate::events::handle_order_event(ctx, shop, &event, ctx.now()).await?;
    Ok(())
}

/// One order transaction applied to the ledger, once.
async fn follow(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    transaction: &CreditTransaction,
) -> Result<(), SyncError> {
    let now = ctx.now();
    let guard = transaction_guard(&transaction.id);
    let signed = match transaction.movement {
        Movement::Credit => transaction.amount,
        Movement::Debit => transaction.amount.negated(),
    };
    let order = transaction.order.as_deref().unwrap_or("an order");
    let note = match (transaction.movement, transaction.event.as_str()) {
        (Movement::Debit, "ORDER_PAYMENT") => format!("store credit spent on {order}"),
        (Movement::Credit, "ORDER_REFUND") => format!("store credit refunded by {order}"),
        (_, event) => format!("store credit {event} of {order}"),
    };
    for _ in 0..5 {
        let read = ctx
            .store
            .read(shop, &ReadRequest::account(customer))
            .await
            .map_err(AppError::from)?;
        let Some(account) = read.accounts.get(customer) else {
            return Err(AppError::NotFound(format!("customer {customer}")).into());
        };
        let mut next = account.value.clone();
        let writes = match next.adjust(signed, &note, &guard, program, now) {
            Ok(applied) => {
                vec![AccountWrite::new(program, next, account.version).with_entries(applied.entries)]
            }
            Err(refusal) => {
                // More spent than the ledger holds (credit put on by hand
                // beside the engine's): the ledger keeps what it can; the
                // guard records that the transaction was read.
                tracing::warn!(shop = %shop, customer = %customer, transaction = %transaction.id,
                    error = %refusal, "store credit transaction not applied to the ledger");
                Vec::new()
            }
        };
        let outcome = ctx
            .store
            .write(
                shop,
                WriteSet {
                    guard: Some(Guard {
                        key: guard.clone(),
                        expires_at: now + chrono::Duration::days(400),
                        response: None,
                    }),
                    accounts: writes,
                    accounts_read: AccountsRead::one(account),
                    now: Some(now),
                    ..WriteSet::default()
                },
            )
            .await;
        match outcome {
            Ok(WriteOutcome::Committed) => {
                tracing::info!(shop = %shop, customer = %customer, transaction = %transaction.id,
                    event = %transaction.event, amount = %signed.amount(), "store credit transaction followed");
                return Ok(());
            }
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(()),
            Err(error) if error.is_conflict() => continue,
            Err(error) => return Err(AppError::from(error).into()),
        }
    }
    Err(AppError::from(StoreError::Conflict(format!("account {customer}"))).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intents_round_trip_and_only_move_forward() {
        let intent = Intent {
            seq: 7,
            pending: true,
            movement: Movement::Credit,
            amount: "5.00".into(),
            balance_before: "10.00".into(),
            written_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            nonce: 42,
        };
        assert_eq!(Intent::decode(&intent.encode()), Some(intent.clone()));
        let settled = Intent {
            pending: false,
            ..intent.clone()
        };
        let next = Intent {
            seq: 8,
            ..intent.clone()
        };
        assert!(intent.encode() < settled.encode());
        assert!(settled.encode() < next.encode());
        assert_eq!(Intent::decode("garbage"), None);
    }
}
