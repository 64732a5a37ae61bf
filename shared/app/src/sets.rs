//! The read and write sets: what a use case asks for in its ONE
//! [`Store::read`](crate::store::Store::read), what it finds, and
//! everything its decision changed, committed in ONE
//! [`Store::write`](crate::store::Store::write).
//!
//! Re-exported from [`crate::store`], so `cashback_app::store::WriteSet`
//! keeps working.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use cashback_core::ids::{Code, CustomerId, Email, OrderId, ProductId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;

use crate::coupon_shards::CouponShard;
use crate::coupon_uses::{CouponOrderUse, CouponUseCounted};
use crate::records::{CatalogProduct, CouponRecord, UsageKey, Versioned};
use crate::referral::{ReferralNote, ReferralSettle};
use crate::reports::AccountStats;

/// What a use case wants in its single read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// The order to read, if any.
    pub order: Option<OrderId>,
    /// The accounts to read.
    pub accounts: Vec<CustomerId>,
    /// The coupons to read, by code.
    pub coupons: Vec<Code>,
    /// Coupon use counters to read.
    pub coupon_uses: Vec<(Code, UsageKey)>,
    /// Balance codes to resolve to the customer they belong to. A code its
    /// owner has replaced still resolves (an order placed with it is still
    /// theirs to pay); the owner's account names the current one.
    pub code_owners: Vec<Code>,
    /// Referral codes to resolve to the customer who shares them. A
    /// separate index from balance codes: one never reads as the other.
    pub referral_owners: Vec<Code>,
    /// Emails to resolve to the customer (the latest account using it).
    pub email_owners: Vec<Email>,
    /// Products to look up in the imported catalog (to enrich order lines
    /// with collections and compare-at prices in the same read).
    pub products: Vec<ProductId>,
    /// Rate-limit counters (as
    /// [`Store::increment_counter`](crate::store::Store::increment_counter)
    /// names them) to read with the rest: a limit checked at no extra round
    /// trip.
    pub counters: Vec<String>,
    /// Referral credits to read (referrer, referred order), with what has
    /// been applied of them (the change feed's consumer settles them).
    pub referral_credits: Vec<(CustomerId, OrderId)>,
    /// An order's uses of unlimited coupons (coupon, order), with whether
    /// the coupon's count has them (the change feed counts them).
    pub coupon_order_uses: Vec<(Code, OrderId)>,
    /// Sub-counters of limited coupons to read (coupon, shard:
    /// [`crate::coupon_shards`]): an order reads its own shard with the
    /// rest, and so knows whether the coupon is capped now, whatever its
    /// cached definition says.
    pub coupon_shards: Vec<(Code, u32)>,
}

/// What a single read found: only what exists is in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// The order, if it exists.
    pub order: Option<Versioned<OrderRecord>>,
    /// The order's lines are stored where the adapter keeps them (hand it
    /// back as [`OrderWrite::lines_stored`], so they are written once).
    pub order_lines_stored: bool,
    /// How many of the order's refunds are stored where the adapter keeps
    /// them apart from its state (hand it back as
    /// [`OrderWrite::refunds_stored`], so each is written once).
    pub order_refunds_stored: usize,
    /// The requested accounts that exist.
    pub accounts: HashMap<CustomerId, Versioned<Account>>,
    /// The requested coupons that exist.
    pub coupons: HashMap<Code, Versioned<CouponRecord>>,
    /// Each requested coupon use counter (0 for one never counted).
    pub coupon_uses: HashMap<(Code, UsageKey), u32>,
    /// The balance codes that have an owner, and who.
    pub code_owners: HashMap<Code, CustomerId>,
    /// The referral codes that have an owner, and who.
    pub referral_owners: HashMap<Code, CustomerId>,
    /// The emails that have an owner, and who.
    pub email_owners: HashMap<Email, CustomerId>,
    /// The requested products the catalog knows.
    pub products: HashMap<ProductId, CatalogProduct>,
    /// Each requested counter's count (0 for one never incremented).
    pub counters: HashMap<String, u64>,
    /// The requested referral credits that exist, versioned by what was
    /// applied of them ([`ReferralSettle::expected_version`]).
    pub referral_credits: HashMap<(CustomerId, OrderId), Versioned<ReferralNote>>,
    /// The requested order uses that exist.
    pub coupon_order_uses: HashMap<(Code, OrderId), CouponOrderUse>,
    /// Each requested sub-counter (count 0 and no cap for one never
    /// written).
    pub coupon_shards: HashMap<(Code, u32), CouponShard>,
}

impl ReadResult {
    /// What the customer counters need of every account read, at the
    /// version read: to hand back with the write ([`WriteSet::accounts_read`]).
    pub fn accounts_read(&self) -> AccountsRead {
        let mut read = AccountsRead::default();
        for account in self.accounts.values() {
            read.add(account);
        }
        read
    }
}

/// What the customer counters need (tier, earning orders) of the accounts
/// a use case read, each at the version it was read at.
///
/// A write hands it back so the adapter moves the counters from the state
/// the write replaces without reading the accounts again: the write's
/// version condition on each account makes sure that state is still the
/// stored one when the write commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountsRead {
    accounts: HashMap<CustomerId, Versioned<AccountStats>>,
    /// Each account's email at the version read: an adapter writes the
    /// email owner only when a write changes it.
    emails: HashMap<CustomerId, Versioned<Option<Email>>>,
}

impl AccountsRead {
    /// One account, as read.
    pub fn one(account: &Versioned<Account>) -> AccountsRead {
        let mut read = AccountsRead::default();
        read.add(account);
        read
    }

    /// Records an account as read (before the decision changes it).
    pub fn add(&mut self, account: &Versioned<Account>) {
        self.accounts.insert(
            account.value.customer.clone(),
            Versioned {
                value: AccountStats::of(&account.value),
                version: account.version,
            },
        );
        self.emails.insert(
            account.value.customer.clone(),
            Versioned {
                value: account.value.email.clone(),
                version: account.version,
            },
        );
    }

    /// Whether a write of `account` over `version` keeps the email it had
    /// when read at that version (then its email owner needs no write).
    pub fn email_unchanged(&self, account: &Account, version: u64) -> bool {
        version > 0
            && self
                .emails
                .get(&account.customer)
                .is_some_and(|read| read.version == version && read.value == account.email)
    }

    /// The account's stats if it was read at exactly `version`.
    pub fn at(&self, customer: &CustomerId, version: u64) -> Option<AccountStats> {
        self.accounts
            .get(customer)
            .filter(|read| read.version == version)
            .map(|read| read.value)
    }
}

/// The new state of an account and the entries that got it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountWrite {
    /// The account as the decision left it.
    pub account: Account,
    /// The version read; 0 to create the account.
    pub expected_version: u64,
    /// The ledger entries the decision made (immutable once written).
    pub entries: Vec<LedgerEntry>,
    /// When the next reminder, or warning before balance expires, is due
    /// (the program decides: `cashback_core::due::reminder`), or None.
    pub reminder_due_at: Option<DateTime<Utc>>,
    /// The account's code changes: the new code must be free; the old one
    /// stops working at checkout but stays its owner's in the index, so an
    /// order already placed with it is still charged to them.
    pub code_change: Option<CodeChange>,
}

impl AccountWrite {
    /// When the account next has balance or holds to expire (the core
    /// decides, from the account written), or None.
    pub fn expiry_due_at(&self) -> Option<DateTime<Utc>> {
        cashback_core::due::expiry(&self.account)
    }

    /// When the account's next bonus falls due (the core set it on the
    /// account with the decision), or None.
    pub fn bonus_due_at(&self) -> Option<DateTime<Utc>> {
        cashback_core::due::bonus(&self.account)
    }

    /// Where the due indexes file this account for a write made at `now`
    /// ([`WriteSet::now`]): its next reminder and its next expiry, neither
    /// before `now` (`cashback_core::due::filed_at`). The adapters file
    /// exactly these.
    pub fn due_filed_at(&self, now: Option<DateTime<Utc>>) -> DueFiled {
        let filed = |at: Option<DateTime<Utc>>| at.map(|at| cashback_core::due::filed_at(at, now));
        DueFiled {
            reminder: filed(self.reminder_due_at),
            expiry: filed(self.expiry_due_at()),
            bonus: filed(self.bonus_due_at()),
        }
    }
}

/// An account's positions in the due indexes, as a write files them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueFiled {
    /// In the reminder index, if its series runs.
    pub reminder: Option<DateTime<Utc>>,
    /// In the expiry index, if it has balance or holds to expire.
    pub expiry: Option<DateTime<Utc>>,
    /// In the bonus index, if a bonus waits.
    pub bonus: Option<DateTime<Utc>>,
}

/// A new balance code for an account (and its referral code with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    /// The code the account gets; must be free or already its own.
    pub new_code: Code,
    /// The code it replaces, if any.
    pub old_code: Option<Code>,
    /// A referral code to claim for the account (must be free in the
    /// referral index; claiming it again for the same account is a no-op).
    pub referral_code: Option<Code>,
}

/// The new state of an order record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderWrite {
    /// The record as the decision left it.
    pub record: OrderRecord,
    /// The version read; 0 to create the record.
    pub expected_version: u64,
    /// The record's lines were already stored (they came with the record
    /// read): an adapter that keeps them apart from the order's state
    /// writes them once, not again. False is always safe (they are written
    /// again, at a cost).
    pub lines_stored: bool,
    /// How many of the record's refunds (the first ones: a refund is only
    /// ever added at the end) are already stored: an adapter that keeps
    /// each refund as its own item, written once, writes the others. A
    /// count too low makes the write refuse as a duplicate, never store a
    /// refund twice.
    pub refunds_stored: usize,
}

impl OrderWrite {
    /// The record as read (and changed since), written back over the
    /// version it was read at; `lines_stored` as the read said
    /// ([`ReadResult::order_lines_stored`]); every refund of the record
    /// taken as stored: a write of a record read from a store says how many
    /// were with [`OrderWrite::with_refunds_stored`]
    /// ([`ReadResult::order_refunds_stored`]), so a refund the event added,
    /// or refunds an older layout kept inside the state, are written.
    pub fn of(record: Versioned<OrderRecord>, lines_stored: bool) -> OrderWrite {
        OrderWrite {
            refunds_stored: record.value.refunds.len(),
            record: record.value,
            expected_version: record.version,
            lines_stored,
        }
    }

    /// The write with `stored` of its refunds already stored, as the read
    /// said ([`ReadResult::order_refunds_stored`]).
    pub fn with_refunds_stored(mut self, stored: usize) -> OrderWrite {
        self.refunds_stored = stored;
        self
    }

    /// When the order's pending cashback falls due for release (the core
    /// decides, from the record written), or None when nothing is pending.
    pub fn release_due_at(&self) -> Option<DateTime<Utc>> {
        cashback_core::due::release(&self.record)
    }

    /// Where the release index files this order for a write made at `now`
    /// ([`WriteSet::now`]): never before `now` (`cashback_core::due::filed_at`).
    pub fn release_filed_at(&self, now: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        self.release_due_at()
            .map(|at| cashback_core::due::filed_at(at, now))
    }

    /// Where the ready-email index files this order for a write made at
    /// `now`: while its "cashback ready" email waits to be sent
    /// (`cashback_core::due::ready`), never before `now`.
    pub fn ready_filed_at(&self, now: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        cashback_core::due::ready(&self.record).map(|at| cashback_core::due::filed_at(at, now))
    }
}

/// One use of a coupon taken (+1) or given back (-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponUseChange {
    /// The coupon's code.
    pub code: Code,
    /// The customer whose use it is.
    pub customer: CustomerId,
    /// The customer's email, counted too when known.
    pub email: Option<Email>,
    /// +1 for a use taken, -1 for one given back.
    pub delta: i32,
    /// Limits checked by the store on +1, so two orders racing for the last
    /// use cannot both get it.
    pub limit_total: Option<u32>,
    /// The most uses one customer (or email) may have, checked on +1.
    pub limit_per_customer: Option<u32>,
    /// The order taking or giving back the use. A coupon with no total
    /// limit is not counted on its own item by the order's write: the use
    /// is recorded on an item of the order's own, and the change feed adds
    /// it to the coupon's count ([`crate::coupon_uses`]). None counts it on
    /// the coupon item, as a coupon limited before its count was split
    /// is.
    pub order: Option<OrderId>,
    /// For a use taken (+1) of a coupon with sub-counters: the shard that
    /// takes it, under that shard's cap alone (`limit_total` is then not
    /// checked: the caps sum to it, [`crate::coupon_shards`]); the order's
    /// use item records the shard, so the use goes back to it when given
    /// back. A use given back always goes through the order's use item.
    pub shard: Option<u32>,
}

/// A guard makes a write happen at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The business key of the effect (e.g. the platform event's).
    pub key: String,
    /// When the guard may be forgotten (DynamoDB TTL).
    pub expires_at: DateTime<Utc>,
    /// Stored with the guard and handed back on a duplicate (e.g. the first
    /// response to an idempotent API call).
    pub response: Option<String>,
}

/// Everything one decision changed: committed all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// Makes the write happen at most once, if given.
    pub guard: Option<Guard>,
    /// The accounts changed (at most one write per account).
    pub accounts: Vec<AccountWrite>,
    /// The order changed, if any.
    pub order: Option<OrderWrite>,
    /// Coupon uses taken or given back.
    pub coupon_uses: Vec<CouponUseChange>,
    /// Emails recorded as sent by this change (each key at most once; a key
    /// already recorded fails the write as a duplicate).
    pub notifications: Vec<String>,
    /// The events of this change's notices for the shop's Klaviyo (only
    /// when its program sends events), written beside the accounts and
    /// recorded in Klaviyo from the change feed (the outbox).
    pub marketing_events: Vec<crate::marketing::QueuedEvent>,
    /// The accounts as the use case read them: an account written with the
    /// email it was read with leaves its email owner item alone. (The
    /// customer counters are moved by the report aggregator from the change
    /// feed, not from this.)
    pub accounts_read: AccountsRead,
    /// When the decision was made (the use case's `now`). No due time is
    /// filed before it ([`AccountWrite::due_filed_at`],
    /// [`OrderWrite::release_filed_at`]), so work decided in the past is
    /// found by the next scheduled run. Every use case sets it; None files
    /// the times as they are.
    pub now: Option<DateTime<Utc>>,
    /// What the referrer's account now has of a referral credit, written
    /// with that account (the change feed's consumer). An order's own
    /// write records its referral credit from its record
    /// ([`crate::referral::credit_written`]), never through this.
    pub referral_settled: Option<ReferralSettle>,
    /// Order uses of unlimited coupons the change feed counts now: each
    /// moves its coupon's count by one, once (its `counted` condition).
    pub coupon_uses_counted: Vec<CouponUseCounted>,
}

impl WriteSet {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.guard.is_none()
            && self.accounts.is_empty()
            && self.order.is_none()
            && self.coupon_uses.is_empty()
            && self.notifications.is_empty()
            && self.marketing_events.is_empty()
            && self.referral_settled.is_none()
            && self.coupon_uses_counted.is_empty()
    }
}

/// How a write ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Everything was written.
    Committed,
    /// The guard (or a notification key) existed: nothing was written.
    /// Carries the guard's stored response, if any.
    Duplicate {
        /// The guard's stored response, if any.
        response: Option<String>,
    },
}

// Constructors for the reads use cases make most (one account, one order,
// one coupon, one owner) and for an account written back on the version
// read. An account is always written with the time its next reminder is
// due (the reminder index moves with it; an expiry warning is filed there
// too), so `AccountWrite::new` asks for the program and computes it: no use
// case can forget it.

impl ReadRequest {
    /// One customer's account.
    pub fn account(customer: &CustomerId) -> ReadRequest {
        ReadRequest::accounts(vec![customer.clone()])
    }

    /// Several customers' accounts.
    pub fn accounts(customers: Vec<CustomerId>) -> ReadRequest {
        ReadRequest {
            accounts: customers,
            ..ReadRequest::default()
        }
    }

    /// One order's record.
    pub fn order(order: OrderId) -> ReadRequest {
        ReadRequest {
            order: Some(order),
            ..ReadRequest::default()
        }
    }

    /// One cashback coupon.
    pub fn coupon(code: &Code) -> ReadRequest {
        ReadRequest {
            coupons: vec![code.clone()],
            ..ReadRequest::default()
        }
    }

    /// Who a balance code belongs to.
    pub fn code_owner(code: &Code) -> ReadRequest {
        ReadRequest {
            code_owners: vec![code.clone()],
            ..ReadRequest::default()
        }
    }

    /// Who an email belongs to (the latest account that used it).
    pub fn email_owner(email: &Email) -> ReadRequest {
        ReadRequest {
            email_owners: vec![email.clone()],
            ..ReadRequest::default()
        }
    }
}

impl AccountWrite {
    /// `account` written over `expected_version` (0 creates it), with the
    /// time the program says its next reminder is due; no entries, and its
    /// code unchanged.
    pub fn new(program: &Program, account: Account, expected_version: u64) -> AccountWrite {
        AccountWrite {
            reminder_due_at: cashback_core::due::reminder(program, &account),
            account,
            expected_version,
            entries: Vec::new(),
            code_change: None,
        }
    }

    /// An account as read (and changed since), written back over the
    /// version it was read at.
    pub fn of(program: &Program, read: Versioned<Account>) -> AccountWrite {
        AccountWrite::new(program, read.value, read.version)
    }

    /// The same write, with the ledger entries that got the account there.
    pub fn with_entries(self, entries: Vec<LedgerEntry>) -> AccountWrite {
        AccountWrite { entries, ..self }
    }

    /// The same write, changing the account's code (or not, with None).
    pub fn with_code_change(self, code_change: Option<CodeChange>) -> AccountWrite {
        AccountWrite {
            code_change,
            ..self
        }
    }
}

impl WriteSet {
    /// One account's write and nothing else.
    pub fn account(write: AccountWrite) -> WriteSet {
        WriteSet {
            accounts: vec![write],
            ..WriteSet::default()
        }
    }

    /// The same write, made at `now` (see [`WriteSet::now`]).
    pub fn at(self, now: DateTime<Utc>) -> WriteSet {
        WriteSet {
            now: Some(now),
            ..self
        }
    }
}
