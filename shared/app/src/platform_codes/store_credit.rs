//! Store-credit mode ([`PlatformSync::StoreCredit`], Shopify only): the
//! spendable balance kept as the customer's native store credit, beside
//! whatever store credit is theirs.
//!
//! The platform's credit and debit calls take an amount to add or take
//! away and have no idempotency key, so unlike a discount code nothing
//! absolute can be sent. The account keeps the part of the store credit
//! that is cashback (its share, [`cashback_core::store_credit`]), and
//! [`sync_store_credit`] keeps it safe:
//! 1. **Orders first.** The account's store credit transactions are read
//!    page by page, oldest first, from where the last sync stopped
//!    ([`read_job`]) to the newest; every one an order made (event other
//!    than `ADJUSTMENT`, not an expiration: a payment with store credit, a
//!    refund or void back to it) is applied to the ledger once, under the
//!    transaction's id as the write's guard (`ingest_transactions`): a
//!    payment spends cashback first, up to the share (what the balance
//!    cannot cover is the owner's debt), the rest was the customer's own;
//!    money given back is cashback up to what its order took of it. Nothing
//!    is sent while a page is left unread (at most [`TRANSACTION_PAGES`]
//!    pages per attempt; the next attempt goes on from there).
//! 2. **The difference to the share.** The ledger's target
//!    ([`store_credit_target`]) is compared with the share, never with the
//!    balance: only the difference is sent (credit or debit), and the share
//!    moves by what landed. So a payment not listed yet is never credited
//!    back (the share does not hold the balance), and credit the customer
//!    holds beside the cashback is never taken.
//! 3. **The intent before the call.** Before the call the intent (its
//!    sequence, kind, amount and the balance it was computed from) claims
//!    its sequence (a once-only guard holding it: of two syncs computing
//!    one sequence, one owns it and the other never writes over it), is
//!    written to the store and read back: only its owner sends. While a
//!    transaction is not listed yet no debit is sent (an unlisted payment
//!    may have spent that cashback). The call must leave within
//!    [`SyncPolicy::send_window`] of the intent (at most
//!    [`MAX_SEND_WINDOW`]): the adapter drops it rather than send it after
//!    a long rate-limit wait or token fetch, so it has landed or failed
//!    well inside [`IN_FLIGHT`]. A call that ends for sure (success, user
//!    errors, THROTTLED, not sent in time, a refusal) settles the intent
//!    (a success moves the share first); an ambiguous one (timeout, 5xx, a
//!    dropped connection after sending) leaves it pending.
//! 4. **A pending intent is reconciled before anything else is sent**: once
//!    it is older than [`IN_FLIGHT`] (no request can still land) and the
//!    account is read to its newest transaction with every balance
//!    explained, the transactions say whether it landed (one of its kind
//!    and amount, made after it, not one of the engine's earlier calls);
//!    the share moves by it if it did, once, and it is settled. A retry
//!    therefore never doubles a credit.
//!
//! Money put on store credit by hand in Shopify's admin (an `ADJUSTMENT`
//! that is not the engine's), credit running out, and money refunded to
//! store credit beyond what its order spent of cashback are the
//! customer's: the engine leaves them. A debit by hand larger than what is
//! theirs took cashback: the share is never changed from a balance read (a
//! read can be older than what another sync followed); the sync logs an
//! alert and later debits take at most what is there. Take cashback back
//! through the engine's adjustment instead. What the account
//! held when the engine first read it is the customer's or cashback as the
//! program says (`existing_store_credit`).
//!
//! A program that leaves store-credit mode empties the cashback share
//! ([`empty_store_credit`]) before the next code is put, and one that
//! enters it ends the customer's discount code first
//! ([`super::sync_customer_code`]), so the balance is never spendable
//! both ways.
//!
//! [`PlatformSync::StoreCredit`]: cashback_core::platform_code::PlatformSync::StoreCredit

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use cashback_core::ids::{CustomerId, OrderId, RefundId, ShopId};
use cashback_core::money::Money;
use cashback_core::order::{OrderEvent, Refund, RefundBasis};
use cashback_core::orders::OrderRecord;
use cashback_core::platform_code::{desired_code, store_credit_target, ExistingStoreCredit};
use cashback_core::program::Program;
use cashback_core::store_credit::opening_share;

use super::{
    wait_or_fail, CodeState, PlatformError, PutOutcome, SyncError, SyncOutcome, SyncPolicy, Synced,
};
use crate::context::Context;
use crate::error::AppError;
use crate::records::Versioned;
use crate::store::{
    AccountWrite, AccountsRead, Guard, OrderWrite, ReadRequest, StoreError, WriteOutcome, WriteSet,
};

/// How long after an ambiguous call its request may still land on the
/// platform (well past the adapter's 10 s deadline): a pending intent
/// younger than this blocks new calls for its customer.
pub const IN_FLIGHT: Duration = Duration::from_secs(60);

/// The longest a credit or debit may wait to be sent after its intent is
/// written (the token fetch and the rate limit's wait included). With the
/// adapter's 10 s deadline on the request itself, a call has landed or
/// failed 30 s after its intent, well inside [`IN_FLIGHT`].
pub const MAX_SEND_WINDOW: Duration = Duration::from_secs(20);

/// Pages of transactions read per attempt at most; the next attempt goes
/// on from the last one read.
pub const TRANSACTION_PAGES: usize = 20;

/// How far the platform's clock may be behind ours when a pending intent is
/// matched with the transactions it may have made.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// How far back from the newest transaction read the next read starts
/// again: one the platform lists late, behind a newer one already read,
/// is still read (the guards make reading one twice harmless).
const OVERLAP: chrono::Duration = chrono::Duration::minutes(2);

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
    /// The account's balance right after it, as the platform computed it.
    pub balance_after: Option<Money>,
    /// When the platform made it.
    pub created_at: DateTime<Utc>,
    /// The order it belongs to (its name, else its id), when an order made it.
    pub order: Option<String>,
    /// The platform's id of that order (a Shopify global id or the bare
    /// number), when an order made it.
    pub order_id: Option<String>,
    /// Where it sits in the account's list (the platform's cursor): a
    /// later read goes on after it.
    pub cursor: Option<String>,
}

/// The event the adapter gives an expiration (credit given with an end
/// date running out): the platform's own, never an order's.
pub const EXPIRATION: &str = "EXPIRATION";

impl CreditTransaction {
    /// Whether an order made it (the ledger must follow it) rather than an
    /// adjustment (the engine's own, or money put on or taken by hand) or
    /// an expiration.
    pub fn from_order(&self) -> bool {
        self.event != "ADJUSTMENT" && self.event != EXPIRATION
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

/// A customer's store credit account in the shop's currency, with one
/// page of its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditAccount {
    /// The platform's id of the account.
    pub id: String,
    /// Its balance now (it holds every transaction up to the page's last).
    pub balance: Money,
    /// The page's transactions, oldest first.
    pub transactions: Vec<CreditTransaction>,
    /// Newer transactions are left after this page.
    pub has_next_page: bool,
    /// The cursor of the page's last transaction, when it has one.
    pub end_cursor: Option<String>,
}

/// The platform's store credit, for one shop.
#[async_trait::async_trait]
pub trait StoreCreditAccounts: Send + Sync {
    /// The customer's account in the shop's currency, with the page of its
    /// transactions that follows `after` (a transaction's cursor; None: the
    /// first page), oldest first; None when they have no account yet.
    async fn account(
        &self,
        customer: &CustomerId,
        after: Option<&str>,
    ) -> Result<Option<CreditAccount>, PlatformError>;

    /// The newest transaction of the customer's account in the shop's
    /// currency, if any.
    async fn newest(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<CreditTransaction>, PlatformError>;

    /// Adds `amount` to the customer's balance (the platform opens the
    /// account when there is none). Not idempotent. Not sent after
    /// `send_by` ([`PlatformError::NotSent`]). Returns the id of the
    /// transaction it made, when the platform names it.
    async fn credit(
        &self,
        customer: &CustomerId,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError>;

    /// Takes `amount` from the account's balance. Not idempotent. Not sent
    /// after `send_by` ([`PlatformError::NotSent`]). Returns the id of the
    /// transaction it made, when the platform names it.
    async fn debit(
        &self,
        account: &str,
        amount: Money,
        send_by: tokio::time::Instant,
    ) -> Result<Option<String>, PlatformError>;
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

/// The store job holding the last transaction the ledger followed, as
/// earlier versions kept it (a read starts from the account's first
/// transaction when only this one is there).
pub fn seen_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-seen#{shop}#{customer}")
}

/// The store job holding where the next read of the customer's
/// transactions starts (`Position`).
pub fn read_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-read#{shop}#{customer}")
}

/// Where the next read of an account's transactions starts: after the
/// transaction named by `mark` and `cursor` (no cursor: from the first
/// transaction), following only transactions after `skip` (those up to it
/// were followed already: a read that had to start over from the first
/// transaction, its cursor refused, or a position kept by the preview's
/// earlier version), with the account's balance right after that
/// transaction (`balance`, when known), which the transactions read next
/// must continue. Kept as `h{generation}|time|id|cursor|skip time|skip
/// id|balance`, which only grows as the reads go forward (the store's
/// checkpoints move only forward); a position behind the stored one (a
/// read started over) takes the next generation, so the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    generation: u32,
    mark: String,
    cursor: Option<String>,
    skip: Option<String>,
    balance: Option<Money>,
}

impl Position {
    fn start() -> Position {
        Position {
            generation: 0,
            mark: "0|start".into(),
            cursor: None,
            skip: None,
            balance: None,
        }
    }

    /// After `transaction`, in `generation`, still skipping up to `skip`
    /// while the transaction is not past it.
    fn after(
        transaction: &CreditTransaction,
        generation: u32,
        skip: Option<&str>,
    ) -> Option<Position> {
        let mark = transaction.mark();
        Some(Position {
            generation,
            skip: skip
                .filter(|skip| mark.as_str() <= *skip)
                .map(str::to_string),
            mark,
            cursor: Some(transaction.cursor.clone()?),
            balance: transaction.balance_after,
        })
    }

    /// Read again from the first transaction, following only those after
    /// this position's, in a new generation (its cursor was refused).
    fn started_over(&self) -> Position {
        Position {
            generation: self.generation + 1,
            mark: self.mark.clone(),
            cursor: None,
            skip: Some(self.skip.clone().unwrap_or_else(|| self.mark.clone())),
            balance: None,
        }
    }

    /// Transactions up to this mark were followed before.
    fn followed_up_to(&self) -> Option<&str> {
        self.skip.as_deref()
    }

    /// The balance before the first transaction this read lists: none
    /// before an account's first transaction, else the one kept.
    fn balance_before_read(&self, currency: cashback_core::money::Currency) -> Option<Money> {
        match self.cursor {
            None => Some(Money::zero(currency)),
            Some(_) => self.balance,
        }
    }

    fn encode(&self) -> String {
        let (skip_time, skip_id) = self
            .skip
            .as_deref()
            .and_then(|skip| skip.split_once('|'))
            .unwrap_or(("", ""));
        format!(
            "h{:08}|{}|{}|{skip_time}|{skip_id}|{}",
            self.generation,
            self.mark,
            self.cursor.as_deref().unwrap_or(""),
            self.balance
                .map(|b| format!("{}:{}", b.amount(), b.currency()))
                .unwrap_or_default()
        )
    }

    /// Reads this format and the two earlier ones (`time|id|cursor`, and
    /// the preview's `g{generation}|time|id|cursor`; this one starts with
    /// `h`, so it sorts after both and the store keeps its first write). An
    /// earlier position without a cursor follows only what came after its
    /// mark, as one started over does.
    fn decode(value: &str) -> Option<Position> {
        let parts: Vec<&str> = value.split('|').collect();
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let earlier = |generation: u32, time: &str, id: &str, cursor: &str| {
            let mark = format!("{time}|{id}");
            let cursor = text(cursor);
            Position {
                generation,
                skip: (cursor.is_none() && mark != Position::start().mark).then(|| mark.clone()),
                mark,
                cursor,
                balance: None,
            }
        };
        match parts.as_slice() {
            [time, id, cursor] => Some(earlier(0, time, id, cursor)),
            [generation, time, id, cursor] => Some(earlier(
                generation.strip_prefix('g')?.parse().ok()?,
                time,
                id,
                cursor,
            )),
            [generation, time, id, cursor, skip_time, skip_id, balance] => {
                let balance = match balance.split_once(':') {
                    Some((amount, currency)) => {
                        Some(Money::parse(amount, currency.parse().ok()?).ok()?)
                    }
                    None if balance.is_empty() => None,
                    None => return None,
                };
                Some(Position {
                    generation: generation.strip_prefix('h')?.parse().ok()?,
                    mark: format!("{time}|{id}"),
                    cursor: text(cursor),
                    skip: (!skip_time.is_empty()).then(|| format!("{skip_time}|{skip_id}")),
                    balance,
                })
            }
            _ => None,
        }
    }
}

/// Whether the balance holds a transaction the platform has not listed
/// (yet): the transactions read must continue one another from the
/// balance the position kept (each one's balance after is the one before
/// it moved by its amount), and the newest listed must end at `balance`.
/// Shopify may list a transaction late, even behind a newer one; such a
/// gap may be a payment the ledger has not followed, and sending now would
/// credit it back.
fn gap_in_balances(
    before: Option<Money>,
    transactions: &[CreditTransaction],
    newest_listed: Option<&CreditTransaction>,
    balance: Option<Money>,
) -> Option<Gap> {
    let mut running = before;
    // A group of one instant may be listed in another order than it was
    // applied in: it is checked as a group.
    for (start, end) in instants(transactions) {
        let at = transactions[start].created_at;
        let group = &transactions[start..end];
        running = match running {
            Some(was) if group.iter().all(|t| t.balance_after.is_some()) => {
                match chain_through(was, group) {
                    Some(after) => Some(after),
                    // The last group of a read that stopped before the
                    // newest: the rest of its instant may be on the next
                    // page (the next read starts before it, checks it again).
                    None if balance.is_none() && end == transactions.len() => return None,
                    None => return Some(Gap { since: Some(at) }),
                }
            }
            // Nothing known to check it against (a read from the first
            // transaction, or a balance not given): the chain starts here.
            _ => group_end(group),
        };
    }
    // An incomplete read (None) is checked up to its last transaction.
    let balance = balance?;
    // The chain's end, or the newest listed when nothing new was read (or
    // when the chain's end is not known: a group of one instant read with
    // nothing before it to order it by).
    let listed = match newest_listed {
        Some(newest) if transactions.is_empty() => newest.balance_after,
        _ => running.or_else(|| transactions.last().and_then(|t| t.balance_after)),
    };
    listed
        .is_some_and(|listed| listed != balance)
        .then_some(Gap { since: None })
}

/// The runs of transactions of one instant (the same `created_at`), as
/// `start..end` index pairs, in order.
fn instants(transactions: &[CreditTransaction]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < transactions.len() {
        let at = transactions[start].created_at;
        let end = transactions[start..]
            .iter()
            .position(|t| t.created_at != at)
            .map_or(transactions.len(), |n| start + n);
        runs.push((start, end));
        start = end;
    }
    runs
}

/// The balance after `group` (transactions of one instant) when, in some
/// order, each continues from the one before, the first from `was`; None
/// when no order does.
fn chain_through(was: Money, group: &[CreditTransaction]) -> Option<Money> {
    let mut left: Vec<&CreditTransaction> = group.iter().collect();
    let mut balance = was;
    while !left.is_empty() {
        let next = left
            .iter()
            .position(|t| balance_before(t) == Some(balance))?;
        balance = left.remove(next).balance_after?;
    }
    Some(balance)
}

/// The balance right before `transaction`, from its balance after.
fn balance_before(transaction: &CreditTransaction) -> Option<Money> {
    let after = transaction.balance_after?;
    match transaction.movement {
        Movement::Credit => after.checked_sub(transaction.amount).ok(),
        Movement::Debit => after.checked_add(transaction.amount).ok(),
    }
}

/// The balance after a group of one instant read with nothing to check it
/// against: the one balance after in it that no other starts from (the
/// last applied), when there is exactly one.
fn group_end(group: &[CreditTransaction]) -> Option<Money> {
    if group.iter().any(|t| t.balance_after.is_none()) {
        return None;
    }
    let befores: Vec<Option<Money>> = group.iter().map(balance_before).collect();
    let mut ends = group
        .iter()
        .filter_map(|t| t.balance_after)
        .filter(|after| !befores.contains(&Some(*after)));
    match (ends.next(), ends.next()) {
        (Some(end), None) => Some(end),
        _ => None,
    }
}

/// [`gap_in_balances`], as a yes or no.
#[cfg(test)]
fn balance_unexplained(
    before: Option<Money>,
    transactions: &[CreditTransaction],
    newest_listed: Option<&CreditTransaction>,
    balance: Option<Money>,
) -> bool {
    gap_in_balances(before, transactions, newest_listed, balance).is_some()
}

/// Where the balances read stop adding up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    /// The transaction whose balance after its predecessor does not
    /// explain (None: the account's balance after the newest listed).
    since: Option<DateTime<Utc>>,
}

/// The `alert` field of the log line saying a customer's store credit
/// holds less than their cashback (a debit by hand took some); the
/// template's `StoreCreditBelowCashbackAlarm` watches it.
pub const BELOW_CASHBACK_ALERT: &str = "store_credit_below_cashback";

/// How long a gap in the balances may last before every read that finds
/// it logs an error: far longer than Shopify lists late. The gap is never
/// passed (the read keeps its position and no credit is sent): moving on
/// would credit back a payment never listed, and charging the difference
/// blind can take the engine's own debit or a hand debit as the
/// customer's. The customer's syncs fail, are parked and alarmed, for
/// someone to look at the account on Shopify.
pub const GAP_HOLD: chrono::Duration = chrono::Duration::hours(1);

/// The guard of a platform transaction applied to the ledger.
pub fn transaction_guard(id: &str) -> String {
    format!("store-credit-transaction:{id}")
}

fn nonce() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// What the platform's store credit is brought to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// The ledger's spendable balance (store-credit mode).
    Ledger,
    /// No cashback: the program left store-credit mode (what is the
    /// customer's own stays).
    Empty,
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
    run(ctx, platform, shop, customer, program, policy, Goal::Ledger)
        .await
        .map(|(outcome, _)| outcome)
}

/// Follows the customer's unread store credit payments into the ledger,
/// then takes the cashback in their store credit on the platform to zero
/// (what is theirs stays): the program left store-credit mode, and the
/// balance is about to be put on a discount code instead.
pub async fn empty_store_credit(
    ctx: &Context,
    platform: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    policy: &SyncPolicy,
) -> Result<(), SyncError> {
    if customer.is_guest() {
        return Ok(());
    }
    let (_, settled) = run(ctx, platform, shop, customer, program, policy, Goal::Empty).await?;
    ctx.store
        .put_checkpoint(&emptied_job(shop, customer), &format!("{settled:012}"))
        .await
        .map_err(AppError::from)?;
    Ok(())
}

/// The store job marking a shop one of whose customers was synced as
/// store credit (the reconcile then checks what is left of it after a
/// change of mode).
pub fn used_job(shop: &ShopId) -> String {
    format!("store-credit-used#{shop}")
}

/// The store job holding the sequence of the last store credit call an
/// emptying accounted for: a call of a later sequence was sent after the
/// store credit was emptied.
pub fn emptied_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-emptied#{shop}#{customer}")
}

/// Whether a store credit call was sent after the customer's store credit
/// was last emptied (a sync still holding the store-credit program, whose
/// check of the mode after its send failed), so it may be live again.
pub async fn credited_since_emptied(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<bool, SyncError> {
    let read =
        |job: String| async move { ctx.store.get_checkpoint(&job).await.map_err(AppError::from) };
    let Some(intent) = read(intent_job(shop, customer)).await? else {
        return Ok(false);
    };
    let Some(intent) = Intent::decode(&intent) else {
        return Err(
            AppError::Invalid(format!("unreadable store credit intent for {customer}")).into(),
        );
    };
    let emptied = read(emptied_job(shop, customer))
        .await?
        .and_then(|seq| seq.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(intent.seq > emptied)
}

async fn run(
    ctx: &Context,
    platform: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    policy: &SyncPolicy,
    goal: Goal,
) -> Result<(SyncOutcome, u64), SyncError> {
    let job = intent_job(shop, customer);
    let mut attempts = 0;
    let mut backoff = policy.base_backoff;
    loop {
        attempts += 1;
        match attempt(ctx, platform, shop, customer, program, &job, policy, goal).await {
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

/// The account as read to its newest transaction (or as far as one
/// attempt reads).
struct History {
    /// The account's id and its balance as of the last page read.
    account: Option<(String, Money)>,
    /// Every transaction read, oldest first.
    transactions: Vec<CreditTransaction>,
    /// The newest transaction was read (no page is left).
    complete: bool,
    /// Where this read started.
    from: Position,
    /// When the read found nothing after its position: the newest
    /// transaction the platform lists, if it had to be asked for.
    newest_listed: Option<CreditTransaction>,
}

/// The guard of the first read of a customer's store credit: one per
/// customer and shop, whichever sync claims it first.
fn opening_guard(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-opening:{shop}:{customer}")
}

/// The first read of a customer's store credit account starts after its
/// newest listed transaction, and opens the share of it that is cashback
/// ([`opening_share`]: none when the program keeps what the customer held
/// apart, up to the ledger's target when it counts it as cashback; none
/// when the store credit is being emptied, as the engine never sent any).
/// That position and the share are claimed together under one once-only
/// guard per customer that keeps the position, before the engine sends
/// anything for them: a first read that failed before storing its
/// position, or a second first read at the same time (a reconcile beside
/// the feed's sync), starts from the same place, so no payment made in
/// between is stepped over and the share is opened once. Returns the
/// position, and whether this read made the claim.
async fn claim_opening(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    newest: Option<&CreditTransaction>,
    program: &Program,
    goal: Goal,
) -> Result<(Position, bool), SyncError> {
    let position = newest
        .and_then(|newest| Position::after(newest, 0, None))
        .unwrap_or_else(Position::start);
    let now = ctx.now();
    for _ in 0..5 {
        let read = ctx
            .store
            .read(shop, &ReadRequest::account(customer))
            .await
            .map_err(AppError::from)?;
        let Some(account) = read.accounts.get(customer) else {
            return Err(AppError::NotFound(format!("customer {customer}")).into());
        };
        let zero = Money::zero(account.value.currency);
        let existing = match goal {
            // Emptying an account never read: the engine sent it nothing.
            Goal::Empty => ExistingStoreCredit::KeptApart,
            // A program saved before the choice was asked for: never guessed
            // (one way gives imported balances twice, the other takes the
            // customer's own credit as cashback). The sync fails, is parked
            // and alarmed until the program says.
            Goal::Ledger => program.existing_store_credit.ok_or_else(|| {
                AppError::Invalid(
                    "the program does not say what the store credit customers already hold is \
                     (existing_store_credit)"
                        .into(),
                )
            })?,
        };
        let share = match existing {
            ExistingStoreCredit::KeptApart => zero,
            ExistingStoreCredit::CountedAsCashback => {
                let held = match newest {
                    None => zero,
                    Some(newest) => newest.balance_after.ok_or_else(|| {
                        platform(PlatformError::transient(
                            "the store credit account's balance was not given",
                        ))
                    })?,
                };
                // The spendable balance, not the target: an imported
                // balance under the program's minimum is still cashback.
                opening_share(existing, held, account.value.spendable())
            }
        };
        let mut next = account.value.clone();
        let opened = next
            .open_store_credit_share(share)
            .map_err(|e| AppError::Invalid(format!("store credit share: {e}")))?;
        let accounts = if opened {
            vec![AccountWrite::new(program, next, account.version)]
        } else {
            Vec::new()
        };
        let written = ctx
            .store
            .write(
                shop,
                WriteSet {
                    guard: Some(Guard {
                        key: opening_guard(shop, customer),
                        // As long as the read position it starts: for good.
                        expires_at: now + chrono::Duration::days(3650),
                        response: Some(position.encode()),
                    }),
                    accounts,
                    accounts_read: AccountsRead::one(account),
                    now: Some(now),
                    ..WriteSet::default()
                },
            )
            .await;
        return match written {
            Ok(WriteOutcome::Committed) => {
                tracing::info!(shop = %shop, customer = %customer, share = %share.amount(),
                    existing = ?existing, "store credit account opened");
                Ok((position, true))
            }
            Ok(WriteOutcome::Duplicate { response }) => {
                let kept = response
                    .as_deref()
                    .and_then(Position::decode)
                    .ok_or_else(|| {
                        AppError::Invalid(format!("unreadable first read position for {customer}"))
                    })?;
                Ok((kept, false))
            }
            Err(error) if error.is_conflict() => continue,
            Err(error) => Err(AppError::from(error).into()),
        };
    }
    Err(AppError::from(StoreError::Conflict(format!("account {customer}"))).into())
}

/// Reads the account's transactions from where the last read stopped, a
/// page at a time, to the newest or [`TRANSACTION_PAGES`] pages.
async fn read_history(
    ctx: &Context,
    platform_accounts: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    goal: Goal,
) -> Result<History, SyncError> {
    let stored = ctx
        .store
        .get_checkpoint(&read_job(shop, customer))
        .await
        .map_err(AppError::from)?;
    let mut first_newest = None;
    let from = match stored.as_deref().map(Position::decode) {
        Some(Some(position)) => position,
        Some(None) => {
            return Err(AppError::Invalid(format!(
                "unreadable store credit read position for {customer}"
            ))
            .into())
        }
        None => {
            let legacy = ctx
                .store
                .get_checkpoint(&seen_job(shop, customer))
                .await
                .map_err(AppError::from)?;
            if let Some(legacy) = legacy {
                // Read by an earlier version, which kept the mark of the
                // last transaction it followed but no cursor: from the first
                // transaction, following only those after that mark.
                Position {
                    skip: Some(legacy.clone()),
                    mark: legacy,
                    ..Position::start()
                }
            } else {
                // Never read: what the account holds is from before the
                // engine mirrored anything, not the ledger's.
                let newest = platform_accounts.newest(customer).await.map_err(platform)?;
                let (position, claimed) =
                    claim_opening(ctx, shop, customer, newest.as_ref(), program, goal).await?;
                if claimed {
                    first_newest = newest;
                }
                position
            }
        }
    };
    let mut from = from;
    let mut cursor = from.cursor.clone();
    let mut account = None;
    let mut transactions = Vec::new();
    let mut complete = false;
    let mut pages = TRANSACTION_PAGES;
    while pages > 0 {
        pages -= 1;
        let answer = platform_accounts.account(customer, cursor.as_deref()).await;
        let answer = match answer {
            Err(PlatformError::Rejected { reason })
                if from.cursor.is_some() && cursor == from.cursor =>
            {
                // The stored cursor is no longer the platform's (the
                // transaction it named is gone, or its format changed): the
                // account is read again from its first transaction.
                tracing::warn!(shop = %shop, customer = %customer, reason = %reason,
                    "store credit read position refused; the account is read from its start");
                from = from.started_over();
                cursor = None;
                pages = TRANSACTION_PAGES;
                continue;
            }
            other => other.map_err(platform)?,
        };
        let Some(page) = answer else {
            account = None;
            complete = true;
            break;
        };
        account = Some((page.id.clone(), page.balance));
        if let Some(end) = page.end_cursor.clone() {
            cursor = Some(end);
        }
        transactions.extend(page.transactions);
        if !page.has_next_page {
            complete = true;
            break;
        }
    }
    // The read position stays behind the newest transaction read, so a
    // read lists it again; only a read that found nothing new asks for it.
    let newest_listed = match (transactions.is_empty(), &account) {
        // Nothing after the position, whose balance is kept: it is the newest.
        (true, Some(_)) if from.cursor.is_some() && from.balance.is_some() => None,
        (true, Some(_)) if complete => match first_newest {
            Some(newest) => Some(newest),
            None => platform_accounts.newest(customer).await.map_err(platform)?,
        },
        _ => None,
    };
    Ok(History {
        account,
        transactions,
        complete,
        from,
        newest_listed,
    })
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    ctx: &Context,
    platform_accounts: &dyn StoreCreditAccounts,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    job: &str,
    policy: &SyncPolicy,
    goal: Goal,
) -> Result<(SyncOutcome, u64), SyncError> {
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
    let pending = last.as_ref().filter(|i| i.pending);
    if let Some(intent) = pending {
        let age = (ctx.now() - intent.written_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        if age < IN_FLIGHT {
            return Err(platform(PlatformError::transient(
                "a store credit call for this customer may still be in flight",
            )));
        }
    }
    let started = ctx.now();
    let history = read_history(ctx, platform_accounts, shop, customer, program, goal).await?;
    // Checked before the read position moves: a retry must not start
    // past a transaction the platform has not listed yet.
    let gap = history.account.as_ref().and_then(|(_, balance)| {
        gap_in_balances(
            history.from.balance_before_read(balance.currency()),
            &history.transactions,
            history.newest_listed.as_ref(),
            history.complete.then_some(*balance),
        )
    });
    let unexplained = gap.is_some();
    if let Some(Gap { since: Some(since) }) = gap {
        if ctx.now() - since > GAP_HOLD {
            // Never passed: the read keeps its position. The customer's
            // store credit still follows the ledger (the share does not
            // depend on the balance); the syncs fail, are parked and
            // alarmed, for someone to look at the account on Shopify.
            tracing::error!(shop = %shop, customer = %customer, since = %since,
                "store credit balances have not added up for an hour; the read waits for the missing transaction to be listed");
        }
    }
    let held = || {
        platform(PlatformError::transient(
            "the store credit balance holds a transaction not listed yet",
        ))
    };
    let more_to_read = || {
        platform(PlatformError::transient(
            "the store credit account has more transactions to read",
        ))
    };
    // Whether a pending call landed is told by the transactions only when
    // every one is read and listed: the missing one may be it.
    let mut settles = pending.is_some() && history.complete && !unexplained;
    let mut undecided = None;
    if let Some(intent) = pending.filter(|_| settles) {
        if let Err(error) = settle(
            ctx,
            shop,
            customer,
            program,
            job,
            intent,
            &history.transactions,
        )
        .await
        {
            // Still pending: what was read is followed all the same, the
            // read position kept before the call.
            settles = false;
            undecided = Some(error);
        }
    }
    // Every call up to this sequence has landed or never will.
    let settled = last.as_ref().map_or(0, |intent| intent.seq);
    // A call still pending may be among what was read: the read position
    // stays before it, so the attempt that settles it reads it.
    // So does a call another sync makes after this attempt started (this
    // read may list it, and a slow read could otherwise pass it).
    let undecided_call = pending
        .filter(|_| !settles)
        .map(|intent| intent.written_at - CLOCK_SKEW);
    let keep_before =
        Some(undecided_call.map_or(started - CLOCK_SKEW, |call| call.min(started - CLOCK_SKEW)));
    ingest_transactions(
        ctx,
        shop,
        customer,
        program,
        &history.transactions,
        &history.from,
        history.complete,
        unexplained,
        keep_before,
        undecided_call,
    )
    .await?;
    if !history.complete {
        // Payments may be left unread: their cashback part is not known.
        return Err(more_to_read());
    }
    if let Some(error) = undecided {
        return Err(error);
    }
    if pending.is_some() && !settles {
        return Err(held());
    }
    let balance = history
        .account
        .as_ref()
        .map(|(_, balance)| *balance)
        .unwrap_or(Money::zero(program.currency));
    let account_id = history
        .account
        .as_ref()
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    // The ledger after the orders, read now: what the platform must hold.
    let mut ledger = read_account(ctx, shop, customer).await?;
    let zero = Money::zero(ledger.currency);
    let target_of = |ledger: &cashback_core::ledger::Account| match goal {
        Goal::Ledger => desired_code(ledger, program).map(|desired| {
            let target = store_credit_target(&desired);
            (Some(desired), target)
        }),
        Goal::Empty => Some((None, zero)),
    };
    if ledger.store_credit_share.is_none() {
        // Synced before the share was kept, when the engine took the whole
        // balance to the ledger's: the balance is taken as cashback, up to
        // the ledger's spendable balance (what is beyond, not taken back
        // yet, is the customer's), whatever the goal (an emptying then
        // takes it), once every transaction in it is listed (an unlisted
        // payment would be counted as cashback still held).
        if unexplained {
            return Err(held());
        }
        let opening = balance.min(ledger.spendable()).unwrap_or(balance);
        write_once(ctx, shop, customer, program, None, None, |next, _| {
            next.open_store_credit_share(opening)?;
            Ok(cashback_core::ledger::Applied::default())
        })
        .await?;
        ledger = read_account(ctx, shop, customer).await?;
        if ledger.store_credit_share.is_none() {
            return Err(platform(PlatformError::transient(
                "the store credit share is not open yet",
            )));
        }
    }
    let share = ledger.store_credit_share.unwrap_or(zero);
    let next_seq = last.as_ref().map_or(1, |i| i.seq + 1);
    // Every transaction listed and the balance below the share: a debit by
    // hand (or an expiry) took cashback. The share is not changed from a
    // read (a read can be older than what another sync followed); debits
    // take at most what is there, and the merchant is told to take the
    // cashback back through the engine's adjustment.
    let short = !unexplained && share.amount() > balance.amount();
    if short {
        let short_by = share.checked_sub(balance).unwrap_or(share);
        tracing::warn!(shop = %shop, customer = %customer, share = %share.amount(),
            balance = %balance.amount(), short_by = %short_by.amount(), alert = BELOW_CASHBACK_ALERT,
            "store credit holds less than its cashback: if a debit by hand took cashback, record it as an adjustment taken_on_platform");
    }
    let Some((desired, target)) = target_of(&ledger) else {
        return Ok((SyncOutcome::NotSynced, settled));
    };
    let outcome = |put: PutOutcome| match &desired {
        Some(desired) => SyncOutcome::Synced(Box::new(Synced {
            desired: desired.clone(),
            outcome: put,
            attempts: 1,
        })),
        None => SyncOutcome::NotSynced,
    };
    // Only the cashback part moves: what the customer holds beside it
    // (the shop's own credit, money refunded to store credit) stays.
    let difference = target
        .checked_sub(share)
        .map_err(|e| AppError::Invalid(format!("store credit balance: {e}")))?;
    if difference.is_zero() {
        return match unexplained {
            true => Err(held()),
            false => Ok((outcome(PutOutcome::NotNeeded), settled)),
        };
    }
    let movement = if difference.is_positive() {
        Movement::Credit
    } else {
        Movement::Debit
    };
    let amount = if difference.is_positive() {
        difference
    } else if short {
        // What a hand debit took is not there to take.
        difference.negated().min(balance).unwrap_or(balance)
    } else {
        difference.negated()
    };
    if amount.is_zero() {
        return Ok((outcome(PutOutcome::NotNeeded), settled));
    }
    if movement == Movement::Debit && (unexplained || amount.amount() > balance.amount()) {
        // A transaction not listed yet may be a payment that spent this
        // cashback: a debit now would take the customer's own store credit
        // for it (or more than is there). It waits for the listing; what
        // the payment took is then the owner's debt, as for any payment
        // beyond the balance. (A credit is sent: the share does not hold
        // the balance, so it never gives a payment back.)
        return Err(held());
    }
    // The window starts here, before the intent is stored: the call may
    // not leave later than `send_window` after the time the intent names.
    let send_by = tokio::time::Instant::now() + policy.send_window.min(MAX_SEND_WINDOW);
    let intent = Intent {
        seq: next_seq,
        pending: true,
        movement,
        amount: amount.amount().to_string(),
        balance_before: balance.amount().to_string(),
        written_at: ctx.now(),
        nonce: nonce(),
    };
    claim(ctx, shop, customer, job, &intent).await?;
    let sent = match movement {
        Movement::Credit => platform_accounts.credit(customer, amount, send_by).await,
        Movement::Debit => platform_accounts.debit(&account_id, amount, send_by).await,
    };
    match sent {
        Ok(transaction) => {
            // The share first: an intent left pending by a failure here is
            // settled from the transactions, under the same once-only guard.
            record_sent(
                ctx,
                shop,
                customer,
                program,
                &intent,
                amount,
                transaction.as_deref(),
            )
            .await?;
            put_settled(ctx, job, &intent).await?;
            tracing::info!(shop = %shop, customer = %customer, movement = ?movement,
                amount = %amount.amount(), cashback = %target.amount(), "store credit synced");
            if unexplained {
                return Err(held());
            }
            let synced = match &desired {
                Some(desired) => outcome(PutOutcome::Updated(CodeState {
                    code: desired.code.clone(),
                    platform_id: account_id.clone(),
                    amount: target,
                    active: target.is_positive(),
                    managed: true,
                })),
                None => SyncOutcome::NotSynced,
            };
            Ok((synced, intent.seq))
        }
        // Timeouts, 5xx, a dropped connection: it may have been applied.
        // The intent stays pending; the next attempt reconciles it.
        Err(error @ PlatformError::Transient { .. }) => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error,
                "store credit call ended ambiguously; its intent stays pending");
            Err(platform(error))
        }
        // Refused, throttled or never sent: the platform applied nothing.
        Err(error) => {
            put_settled(ctx, job, &intent).await?;
            Err(platform(error))
        }
    }
}

/// The customer's account as stored now.
async fn read_account(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<cashback_core::ledger::Account, SyncError> {
    let read = ctx
        .store
        .read(shop, &ReadRequest::account(customer))
        .await
        .map_err(AppError::from)?;
    read.accounts
        .get(customer)
        .map(|account| account.value.clone())
        .ok_or_else(|| AppError::NotFound(format!("customer {customer}")).into())
}

/// The guard that gives one sync a customer's next sequence.
fn claim_guard(shop: &ShopId, customer: &CustomerId, seq: u64) -> String {
    format!("store-credit-claim:{shop}:{customer}:{seq}")
}

/// Claims the intent's sequence (a once-only guard holding the intent, so
/// of two syncs computing the same sequence exactly one owns it and the
/// other can never write over its intent), then stores it and reads it
/// back: Ok only for the one caller that may send it.
async fn claim(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    job: &str,
    intent: &Intent,
) -> Result<(), SyncError> {
    // The shop's reconcile checks what is left of store credit after a
    // change of mode from now on (written first: a failure here leaves no
    // claimed intent unsent). Once, with the customer's first call: the
    // mark is the shop's, and every call writing it would make it an item
    // every customer's sync writes.
    if intent.seq == 1 {
        ctx.store
            .put_checkpoint(&used_job(shop), "1")
            .await
            .map_err(AppError::from)?;
    }
    let value = intent.encode();
    let claimed = ctx
        .store
        .write(
            shop,
            WriteSet {
                guard: Some(Guard {
                    key: claim_guard(shop, customer, intent.seq),
                    expires_at: intent.written_at + chrono::Duration::days(2),
                    response: Some(value.clone()),
                }),
                now: Some(ctx.now()),
                ..WriteSet::default()
            },
        )
        .await
        .map_err(AppError::from)?;
    let busy = || {
        platform(PlatformError::transient(
            "another sync holds this customer's store credit",
        ))
    };
    if let WriteOutcome::Duplicate { response } = claimed {
        // Another sync owns this sequence. Once its call can no longer
        // leave, its intent is stored (its sync may have failed before
        // storing it) for the next attempt to settle from the transactions.
        let theirs = response.as_deref().and_then(Intent::decode);
        if let Some(theirs) = theirs {
            let age = (ctx.now() - theirs.written_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if age >= IN_FLIGHT {
                ctx.store
                    .put_checkpoint(job, &theirs.encode())
                    .await
                    .map_err(AppError::from)?;
            }
        }
        return Err(busy());
    }
    ctx.store
        .put_checkpoint(job, &value)
        .await
        .map_err(AppError::from)?;
    let stored = ctx
        .store
        .get_checkpoint(job)
        .await
        .map_err(AppError::from)?;
    if stored.as_deref() != Some(value.as_str()) {
        return Err(busy());
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

/// Settles a pending intent older than [`IN_FLIGHT`], from an account read
/// to its newest transaction with every balance explained. Its call landed
/// when a transaction of the engine's kind and amount, made while the call
/// could land (from [`CLOCK_SKEW`] before the intent to [`IN_FLIGHT`] and
/// [`CLOCK_SKEW`] after it), is there and is not one of the engine's
/// earlier calls; then the share moves by it ([`record_sent`]) before the
/// intent is settled. Of two such transactions (one made by hand, of the
/// same kind and amount, in the same minute) the one that continues from
/// the balance the call was computed from is taken; when that does not
/// tell them apart the intent stays pending (the customer's syncs fail and
/// are alarmed) for [`GAP_HOLD`], then the earliest is taken and an error
/// names them: a credit is never sent twice, nor a debit taken twice from
/// the customer.
#[allow(clippy::too_many_arguments)]
async fn settle(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    job: &str,
    intent: &Intent,
    transactions: &[CreditTransaction],
) -> Result<(), SyncError> {
    let landed_calls = LandedCalls::decode(
        ctx.store
            .get_checkpoint(&calls_job(shop, customer))
            .await
            .map_err(AppError::from)?
            .as_deref(),
    );
    let could_land = (intent.written_at - CLOCK_SKEW)
        ..=(intent.written_at
            + chrono::Duration::from_std(IN_FLIGHT).unwrap_or_default()
            + CLOCK_SKEW);
    let candidates: Vec<&CreditTransaction> = transactions
        .iter()
        .filter(|t| {
            !t.from_order()
                && t.event != EXPIRATION
                && t.movement == intent.movement
                && t.amount.amount().to_string() == intent.amount
                && could_land.contains(&t.created_at)
                && !landed_calls.contains(&t.id)
        })
        .collect();
    let landed = match candidates.as_slice() {
        [] => None,
        [only] => Some(*only),
        several => {
            let continuing: Vec<&CreditTransaction> = several
                .iter()
                .copied()
                .filter(|t| {
                    balance_before(t).map(|b| b.amount().to_string())
                        == Some(intent.balance_before.clone())
                })
                .collect();
            let ids: Vec<&str> = several.iter().map(|t| t.id.as_str()).collect();
            match continuing.as_slice() {
                [one] => Some(*one),
                _ if ctx.now() - intent.written_at < GAP_HOLD => {
                    tracing::error!(shop = %shop, customer = %customer, seq = intent.seq,
                        candidates = ?ids,
                        "a store credit call whose answer was lost cannot be told apart from another of the same amount; held for someone to look");
                    return Err(platform(PlatformError::transient(
                        "a lost store credit call cannot be told apart from another of the same amount",
                    )));
                }
                _ => {
                    tracing::error!(shop = %shop, customer = %customer, seq = intent.seq,
                        candidates = ?ids, taken = %several[0].id,
                        "a store credit call whose answer was lost was taken for the earliest of several of its amount; check the customer's store credit");
                    Some(several[0])
                }
            }
        }
    };
    tracing::info!(
        seq = intent.seq,
        movement = ?intent.movement,
        amount = %intent.amount,
        applied = landed.is_some(),
        transaction = ?landed.map(|t| t.id.as_str()),
        "store credit intent reconciled from the account's transactions"
    );
    if let Some(landed) = landed {
        record_sent(
            ctx,
            shop,
            customer,
            program,
            intent,
            landed.amount,
            Some(&landed.id),
        )
        .await?;
    }
    put_settled(ctx, job, intent).await
}

/// Applies to the ledger, once each and in the platform's order, the
/// account's transactions an order made: a payment with store credit spends
/// cashback first, up to the share (the part the ledger's balance cannot
/// cover is debt); money given back to store credit is cashback up to what
/// its order took of it ([`follow`]). Each is guarded by its
/// platform id, so a transaction read again changes nothing. Then moves
/// the read position forward: to [`OVERLAP`] before the newest read when
/// the read reached the newest, else to the last read (the next attempt
/// goes on from there).
#[allow(clippy::too_many_arguments)]
async fn ingest_transactions(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    transactions: &[CreditTransaction],
    from: &Position,
    complete: bool,
    hold: bool,
    keep_before: Option<DateTime<Utc>>,
    follow_before: Option<DateTime<Utc>>,
) -> Result<usize, SyncError> {
    let mut applied = 0;
    let followed_up_to = from.followed_up_to();
    let mut orders: Vec<&CreditTransaction> = transactions
        .iter()
        .filter(|t| t.from_order())
        .filter(|t| followed_up_to.is_none_or(|mark| t.mark().as_str() > mark))
        // While a call of the engine is undecided, what came after it is
        // split against a share that may lack the call: it waits.
        .filter(|t| follow_before.is_none_or(|cut| t.created_at < cut))
        .collect();
    // Within one instant (whose order the platform may not list as it
    // applied it) payments first: a payment and its reversal of the same
    // instant give cashback back only once it was taken.
    orders.sort_by_key(|t| (t.created_at, t.movement == Movement::Credit));
    for transaction in orders {
        follow(ctx, shop, customer, program, transaction).await?;
        if transaction.movement == Movement::Debit && transaction.event == "ORDER_PAYMENT" {
            not_eligible(ctx, shop, transaction).await?;
        }
        applied += 1;
    }
    let generation = from.generation;
    let before = keep_before.map_or(transactions.len(), |cut| {
        transactions
            .iter()
            .position(|t| t.created_at >= cut)
            .unwrap_or(transactions.len())
    });
    let next = settled_position(
        &transactions[..before],
        complete && before == transactions.len(),
        from,
    );
    // Held where it was while the balances read do not add up.
    let next = if hold { None } else { next };
    let next = match next {
        // A read from the first transaction can stop behind where the one
        // before it stood: a new generation, so the store keeps it.
        Some(next) if next.encode() < from.encode() => Position {
            generation: generation + 1,
            ..next
        },
        Some(next) => next,
        None => from.clone(),
    };
    ctx.store
        .put_checkpoint(&read_job(shop, customer), &next.encode())
        .await
        .map_err(AppError::from)?;
    Ok(applied)
}

/// Where the next read starts after this one: after the newest
/// transaction read that is settled ([`OVERLAP`] behind the newest when
/// the read reached it; when it did not, before the last group of one
/// instant read, whose rest may be on the next page), always at the end
/// of a group of one instant, with the balance the chain has there
/// ([`position_balances`]).
fn settled_position(
    transactions: &[CreditTransaction],
    complete: bool,
    from: &Position,
) -> Option<Position> {
    let newest = transactions.last()?;
    let currency = newest.amount.currency();
    let balances = position_balances(from.balance_before_read(currency), transactions);
    (0..transactions.len()).rev().find_map(|index| {
        let transaction = &transactions[index];
        let settled = if complete {
            transaction.created_at <= newest.created_at - OVERLAP
        } else {
            transactions
                .get(index + 1)
                .is_some_and(|next| next.created_at != transaction.created_at)
        };
        let balance = balances[index].filter(|_| settled)?;
        Position::after(transaction, from.generation, from.followed_up_to()).map(|position| {
            Position {
                balance: Some(balance),
                ..position
            }
        })
    })
}

/// The balance right after each transaction read that may hold a read
/// position, by index: only the last of a group of one instant has one
/// (the platform may list such a group in another order than it applied
/// it, so only the group's end is a balance the chain reaches: the one
/// before the group moved by every amount in it), and only when the
/// balance before a group of several is known.
fn position_balances(
    before: Option<Money>,
    transactions: &[CreditTransaction],
) -> Vec<Option<Money>> {
    let mut balances = vec![None; transactions.len()];
    let mut running = before;
    for (start, end) in instants(transactions) {
        running = match (&transactions[start..end], running) {
            ([only], _) => only.balance_after,
            (group, Some(was)) => group.iter().try_fold(was, |balance, t| match t.movement {
                Movement::Credit => balance.checked_add(t.amount).ok(),
                Movement::Debit => balance.checked_sub(t.amount).ok(),
            }),
            (_, None) => None,
        };
        balances[end - 1] = running;
    }
    balances
}

/// The engine's id of the order a transaction belongs to, when it names one.
fn order_of(transaction: &CreditTransaction) -> Option<OrderId> {
    transaction
        .order_id
        .as_deref()
        .map(|id| id.rsplit('/').next().unwrap_or(id))
        .and_then(|id| OrderId::parse(id).ok())
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
    let Some(order) = order_of(transaction) else {
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

/// One order transaction applied to the ledger, once: a payment spends
/// cashback first, up to the share; money given back is cashback up to
/// what its order took of it ([`cashback_core::store_credit`]); the rest
/// is the customer's own and only the guard is written.
async fn follow(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    transaction: &CreditTransaction,
) -> Result<(), SyncError> {
    let now = ctx.now();
    let guard = transaction_guard(&transaction.id);
    let order = transaction.order.as_deref().unwrap_or("an order");
    let order_id = order_of(transaction);
    if order_id.is_none() {
        // Not tied to its order, its cashback part cannot be kept: money
        // given back without it is the customer's.
        tracing::warn!(shop = %shop, customer = %customer, transaction = %transaction.id,
            event = %transaction.event, "store credit transaction of an order without the order's id");
    }
    let note = match (transaction.movement, transaction.event.as_str()) {
        (Movement::Debit, "ORDER_PAYMENT") => format!("store credit spent on {order}"),
        (Movement::Credit, "ORDER_REFUND") => format!("store credit refunded by {order}"),
        (_, event) => format!("store credit {event} of {order}"),
    };
    let committed = write_once(
        ctx,
        shop,
        customer,
        program,
        Some(&guard),
        order_id.as_ref(),
        |next, order| {
            let split = match transaction.movement {
                // Spent at the checkout already: taken whole, never refused.
                Movement::Debit => {
                    next.pay_with_store_credit(transaction.amount, order, &note, &guard, now)?
                }
                // Given back by an order: the cashback part pays the
                // owner's debt first.
                Movement::Credit => next.store_credit_given_back(
                    transaction.amount,
                    order,
                    &note,
                    &guard,
                    program,
                    now,
                )?,
            };
            tracing::info!(shop = %shop, customer = %customer, transaction = %transaction.id,
                event = %transaction.event, amount = %transaction.amount.amount(),
                cashback = %split.cashback.amount(), debt = %split.debt.amount(),
                "store credit transaction followed");
            Ok(split.applied)
        },
    )
    .await?;
    if !committed {
        tracing::debug!(shop = %shop, customer = %customer, transaction = %transaction.id,
            "store credit transaction followed before");
    }
    Ok(())
}

/// Records on the customer's account that the engine's own call of
/// `intent` landed (the share moves by its amount), once per intent, then
/// keeps the call's platform id with the last ones ([`calls_job`]).
async fn record_sent(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    intent: &Intent,
    amount: Money,
    transaction: Option<&str>,
) -> Result<(), SyncError> {
    let guard = sent_guard(shop, customer, intent);
    write_once(
        ctx,
        shop,
        customer,
        program,
        Some(&guard),
        None,
        |next, _| {
            next.store_credit_sent(intent.movement == Movement::Credit, amount)?;
            Ok(cashback_core::ledger::Applied::default())
        },
    )
    .await?;
    if let Some(id) = transaction {
        // After the share: kept first, a crash between would exclude the
        // call itself when its intent is settled, and send it again. Lost
        // here, a later lost call of the same amount may be taken for it
        // (short, never doubled).
        let job = calls_job(shop, customer);
        let stored = ctx
            .store
            .get_checkpoint(&job)
            .await
            .map_err(AppError::from)?;
        let kept = LandedCalls::decode(stored.as_deref()).with(intent.seq, id);
        ctx.store
            .put_checkpoint(&job, &kept.encode())
            .await
            .map_err(AppError::from)?;
    }
    Ok(())
}

/// How many of the engine's own landed calls are kept by the platform's
/// id: far more than one customer's calls in the minutes a lost answer is
/// looked for.
const CALLS_KEPT: usize = 16;

/// The store job holding the platform's ids of the engine's last landed
/// store credit calls for a customer (`{seq}|{id},{id},...`). Apart from the
/// account, which every order writes: only the sync reads or writes it.
pub fn calls_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("store-credit-calls#{shop}#{customer}")
}

/// The engine's last landed calls: a call whose answer was lost is never
/// taken for one of them. Kept as `{seq}|{id},{id},...` (the sequence of
/// the newest), which only grows with the calls, as the store's
/// checkpoints only move forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LandedCalls {
    seq: u64,
    ids: Vec<String>,
}

impl LandedCalls {
    fn decode(value: Option<&str>) -> LandedCalls {
        let Some((seq, ids)) = value.and_then(|v| v.split_once('|')) else {
            return LandedCalls::default();
        };
        LandedCalls {
            seq: seq.parse().unwrap_or(0),
            ids: ids
                .split(',')
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    fn encode(&self) -> String {
        format!("{:012}|{}", self.seq, self.ids.join(","))
    }

    /// These calls and the one of `seq` that landed as `id`, the last
    /// [`CALLS_KEPT`].
    fn with(mut self, seq: u64, id: &str) -> LandedCalls {
        if !self.contains(id) {
            self.ids.push(id.to_string());
            let over = self.ids.len().saturating_sub(CALLS_KEPT);
            self.ids.drain(..over);
        }
        self.seq = self.seq.max(seq);
        self
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.iter().any(|kept| kept == id)
    }
}

/// The guard of what an intent changed on the account: once per sequence.
fn sent_guard(shop: &ShopId, customer: &CustomerId, intent: &Intent) -> String {
    format!("store-credit-sent:{shop}:{customer}:{}", intent.seq)
}

/// Applies `change` to the customer's account, and to the order's record
/// when `order` names one (a record is started when the order is not known
/// yet), in one write: once under `guard` when given (kept 400 days; true
/// when this call committed it, false when the guard was already there).
/// A change the ledger refuses (another currency, a zero amount) is logged
/// and only the guard is written, so the same platform record is not tried
/// again. What did not change is not written.
async fn write_once(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    program: &Program,
    guard: Option<&str>,
    order: Option<&OrderId>,
    change: impl Fn(
        &mut cashback_core::ledger::Account,
        Option<&mut OrderRecord>,
    ) -> Result<cashback_core::ledger::Applied, cashback_core::ledger::LedgerError>,
) -> Result<bool, SyncError> {
    let now = ctx.now();
    for _ in 0..5 {
        let request = ReadRequest {
            order: order.cloned(),
            ..ReadRequest::account(customer)
        };
        let read = ctx
            .store
            .read(shop, &request)
            .await
            .map_err(AppError::from)?;
        let Some(account) = read.accounts.get(customer) else {
            return Err(AppError::NotFound(format!("customer {customer}")).into());
        };
        let mut next = account.value.clone();
        let mut record = order.map(|order| match &read.order {
            Some(stored) => stored.value.clone(),
            None => OrderRecord::new(order.clone(), account.value.currency),
        });
        let (accounts, order_write) = match change(&mut next, record.as_mut()) {
            Ok(applied) => {
                let accounts = if next != account.value {
                    vec![AccountWrite::new(program, next, account.version)
                        .with_entries(applied.entries)]
                } else {
                    Vec::new()
                };
                let order_write = match (record, &read.order) {
                    (Some(record), Some(stored)) if record != stored.value => Some(
                        OrderWrite::of(
                            Versioned {
                                value: record,
                                version: stored.version,
                            },
                            read.order_lines_stored,
                        )
                        .with_refunds_stored(read.order_refunds_stored),
                    ),
                    (Some(record), None) if record.store_credit.is_some() => Some(OrderWrite {
                        record,
                        expected_version: 0,
                        lines_stored: false,
                        refunds_stored: 0,
                    }),
                    _ => None,
                };
                (accounts, order_write)
            }
            Err(refusal) => {
                tracing::warn!(shop = %shop, customer = %customer, guard = ?guard,
                    error = %refusal, "store credit record not applied to the ledger");
                (Vec::new(), None)
            }
        };
        if guard.is_none() && accounts.is_empty() && order_write.is_none() {
            return Ok(true);
        }
        let outcome = ctx
            .store
            .write(
                shop,
                WriteSet {
                    guard: guard.map(|key| Guard {
                        key: key.to_string(),
                        expires_at: now + chrono::Duration::days(400),
                        response: None,
                    }),
                    accounts,
                    order: order_write,
                    accounts_read: AccountsRead::one(account),
                    now: Some(now),
                    ..WriteSet::default()
                },
            )
            .await;
        match outcome {
            Ok(WriteOutcome::Committed) => return Ok(true),
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(false),
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
        let kept = (0..20).fold(LandedCalls::decode(None), |kept, n| {
            kept.with(n, &format!("t{n}"))
        });
        assert_eq!(LandedCalls::decode(Some(&kept.encode())), kept);
        assert!(kept.contains("t19") && kept.contains("t4"));
        assert!(!kept.contains("t3"), "only the last are kept");
        assert_eq!(kept.ids.len(), CALLS_KEPT);
        assert_eq!(kept.clone().with(20, "t19").ids, kept.ids);
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

    #[test]
    fn positions_round_trip_and_a_read_started_over_sorts_after_the_old_one() {
        let usd = |a: &str| Money::parse(a, cashback_core::money::Currency::USD).unwrap();
        let old = Position {
            generation: 0,
            mark: "2026-11-23T10:00:00.000Z|gid://shopify/StoreCreditAccountDebitTransaction/9"
                .into(),
            cursor: Some("sc39".into()),
            skip: None,
            balance: Some(usd("12.50")),
        };
        assert_eq!(Position::decode(&old.encode()), Some(old.clone()));
        assert_eq!(old.followed_up_to(), None);
        let over = old.started_over();
        assert_eq!(Position::decode(&over.encode()), Some(over.clone()));
        assert_eq!(over.followed_up_to(), Some(old.mark.as_str()));
        assert!(over.encode() > old.encode());
        // A position behind the old mark, in the new generation, sorts
        // after every position of the old one and keeps skipping.
        let earlier = CreditTransaction {
            id: "gid://shopify/StoreCreditAccountCreditTransaction/2".into(),
            movement: Movement::Credit,
            event: "ADJUSTMENT".into(),
            amount: usd("5.00"),
            balance_after: Some(usd("5.00")),
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap(),
            order: None,
            order_id: None,
            cursor: Some("sc32".into()),
        };
        let behind = Position::after(&earlier, 1, over.followed_up_to()).unwrap();
        assert_eq!(behind.followed_up_to(), Some(old.mark.as_str()));
        assert!(behind.encode() > old.encode());
        assert_eq!(Position::decode(&behind.encode()), Some(behind.clone()));
        // Past the skip mark, nothing is skipped any more.
        let later = CreditTransaction {
            created_at: Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(),
            ..earlier.clone()
        };
        assert_eq!(
            Position::after(&later, 1, Some(&old.mark))
                .unwrap()
                .followed_up_to(),
            None
        );
        assert!(Position::start().encode() < old.encode());
        assert_eq!(Position::start().followed_up_to(), None);
        // The two earlier forms still read.
        let plain = Position::decode("2026-11-23T10:00:00.000Z|gid://x/9|sc39").unwrap();
        assert_eq!(
            (plain.generation, plain.cursor.as_deref()),
            (0, Some("sc39"))
        );
        let preview = Position::decode("g0001|2026-11-23T10:00:00.000Z|gid://x/9|").unwrap();
        assert_eq!((preview.generation, preview.cursor.clone()), (1, None));
        assert_eq!(
            preview.followed_up_to(),
            Some("2026-11-23T10:00:00.000Z|gid://x/9")
        );
        // Whatever this format holds, it sorts after both earlier ones.
        for stored in [
            "g0001|2026-11-23T10:00:00.000Z|gid://x/9|",
            "9999-12-31T00:00:00.000Z|z|z",
        ] {
            assert!(Position::start().encode().as_str() > stored, "{stored}");
        }
        assert_eq!(Position::decode("g|x"), None);
        assert_eq!(Position::decode("nothing"), None);
    }

    fn usd(amount: &str) -> Money {
        Money::parse(amount, cashback_core::money::Currency::USD).unwrap()
    }

    /// An adjustment of `amount` at 10:`minute`, leaving `after`.
    fn at(minute: u32, movement: Movement, amount: &str, after: &str) -> CreditTransaction {
        CreditTransaction {
            id: format!("t{minute}-{amount}"),
            movement,
            event: "ADJUSTMENT".into(),
            amount: usd(amount),
            balance_after: Some(usd(after)),
            created_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap(),
            order: None,
            order_id: None,
            cursor: Some(format!("c{minute}-{amount}")),
        }
    }

    #[test]
    fn a_balance_the_transactions_read_do_not_explain_is_caught() {
        let chain = [
            at(1, Movement::Credit, "50.00", "50.00"),
            at(2, Movement::Debit, "10.00", "40.00"),
        ];
        assert!(!balance_unexplained(
            Some(usd("0")),
            &chain,
            chain.last(),
            Some(usd("40.00"))
        ));
        // A payment of 30.00 in the balance, not listed: the newest does
        // not end at the balance.
        assert!(balance_unexplained(
            Some(usd("0")),
            &chain,
            chain.last(),
            Some(usd("10.00"))
        ));
        // The same payment listed late behind a newer credit of 5.00 whose
        // balance after holds it: the chain breaks.
        let hidden = [
            at(1, Movement::Credit, "50.00", "50.00"),
            at(3, Movement::Credit, "5.00", "25.00"),
        ];
        assert!(balance_unexplained(
            Some(usd("0")),
            &hidden,
            hidden.last(),
            Some(usd("25.00"))
        ));
        // From a kept position: the first transaction read continues it.
        let after_position = [at(3, Movement::Credit, "5.00", "25.00")];
        assert!(balance_unexplained(
            Some(usd("50.00")),
            &after_position,
            after_position.last(),
            Some(usd("25.00"))
        ));
        assert!(!balance_unexplained(
            Some(usd("20.00")),
            &after_position,
            after_position.last(),
            Some(usd("25.00"))
        ));
        // Two of one instant listed in the other order than applied: the
        // chain still closes.
        let swapped = [
            at(1, Movement::Credit, "50.00", "50.00"),
            at(2, Movement::Debit, "10.00", "35.00"),
            at(2, Movement::Debit, "5.00", "45.00"),
        ];
        assert!(!balance_unexplained(
            Some(usd("0")),
            &swapped,
            swapped.last(),
            Some(usd("35.00"))
        ));
        // Three of one instant, listed in an order none of them was applied
        // in (10.00, then 5.00, then 2.00 credited): the group still closes;
        // the same with one balance off does not.
        let rotated = [
            at(1, Movement::Credit, "50.00", "50.00"),
            at(2, Movement::Credit, "5.00", "65.00"),
            at(2, Movement::Credit, "2.00", "67.00"),
            at(2, Movement::Credit, "10.00", "60.00"),
        ];
        assert!(!balance_unexplained(
            Some(usd("0")),
            &rotated,
            rotated.last(),
            Some(usd("67.00"))
        ));
        let mut broken = rotated.clone();
        broken[2].balance_after = Some(usd("66.00"));
        assert!(balance_unexplained(
            Some(usd("0")),
            &broken,
            broken.last(),
            Some(usd("66.00"))
        ));
        // Read from the first transaction (nothing to check the first
        // group against): its end is the balance no other starts from.
        assert!(!balance_unexplained(
            None,
            &rotated[1..],
            rotated.last(),
            Some(usd("67.00"))
        ));
        // A group with nothing before it that no order chains (an unlisted
        // transaction between them): its end is not known, and the balance
        // is still checked, against the last listed.
        let unordered = [
            at(3, Movement::Credit, "5.00", "15.00"),
            at(3, Movement::Credit, "1.00", "21.00"),
        ];
        assert!(balance_unexplained(
            None,
            &unordered,
            unordered.last(),
            Some(usd("16.00"))
        ));
        // Nothing read after a kept position: the balance is the one kept.
        assert!(!balance_unexplained(
            Some(usd("20.00")),
            &[],
            None,
            Some(usd("20.00"))
        ));
        assert!(balance_unexplained(
            Some(usd("20.00")),
            &[],
            None,
            Some(usd("15.00"))
        ));
    }

    #[test]
    fn a_read_position_never_sits_inside_an_instant_and_keeps_the_chains_balance() {
        // Two of minute 2 listed in the other order than applied (5.00
        // then 10.00), then a credit seven minutes later.
        let read = [
            at(1, Movement::Credit, "50.00", "50.00"),
            at(2, Movement::Debit, "10.00", "35.00"),
            at(2, Movement::Debit, "5.00", "45.00"),
            at(9, Movement::Credit, "1.00", "36.00"),
        ];
        let from = Position::start();
        // After the pair, at the balance the chain has there (not the
        // 45.00 listed last), so the next read's chain closes.
        let next = settled_position(&read, true, &from).unwrap();
        assert_eq!(next.mark, read[2].mark());
        assert_eq!(next.balance, Some(usd("35.00")));
        assert!(!balance_unexplained(
            next.balance,
            &read[3..],
            read.last(),
            Some(usd("36.00"))
        ));
        // A read that stopped inside the instant: the position stays before
        // it, and the half it read is not a gap yet.
        let next = settled_position(&read[..2], false, &from).unwrap();
        assert_eq!(next.mark, read[0].mark());
        assert_eq!(next.balance, Some(usd("50.00")));
        assert!(!balance_unexplained(Some(usd("0")), &read[..2], None, None));
        // Nothing settled: no position.
        assert_eq!(settled_position(&read[..1], false, &from), None);
        assert_eq!(settled_position(&[], true, &from), None);
    }
}
