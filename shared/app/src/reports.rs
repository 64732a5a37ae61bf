//! The reporting model: running aggregates of a shop's ledger, kept by the
//! store in the same transaction as the entries (docs/reports.md).
//!
//! Day figures are sums of one day's ledger entries, by [`EntryKind`] and
//! [`Metric`]; customer counters count accounts by [`Counter`]. Both are
//! indexed by these enums: how an adapter names them in its items is the
//! adapter's business. [`aggregate_changes`] is the one rule both adapters
//! apply to a write. Re-exported from [`crate::store`], so
//! `cashback_app::store::DayFigures` keeps working.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use cashback_core::bonuses::{BonusKey, BonusKind};
use cashback_core::ids::CustomerId;
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};

use crate::sets::{AccountWrite, WriteSet};

/// Running aggregates are spread over this many items per shop and day
/// (by a hash of the customer), so concurrent transactions for different
/// customers rarely touch the same aggregate item (DynamoDB cancels
/// transactions that touch one item at the same moment).
pub const AGGREGATE_SHARDS: u32 = 4;

/// The aggregate shard a customer's changes are added to.
pub fn aggregate_shard(customer: &CustomerId) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(customer.as_str().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % AGGREGATE_SHARDS
}

/// Every kind of ledger entry, in the order the figures list them.
pub const ENTRY_KINDS: [EntryKind; 8] = [
    EntryKind::Earn,
    EntryKind::Release,
    EntryKind::Redeem,
    EntryKind::Restore,
    EntryKind::Clawback,
    EntryKind::Adjust,
    EntryKind::Expire,
    EntryKind::Bonus,
];

/// What one sum of ledger entries adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// The entries' available deltas (signed).
    Available,
    /// The entries' pending deltas (signed).
    Pending,
    /// The entries' debt deltas (signed).
    Debt,
    /// What the merchant funded (the entries' funding split).
    Merchant,
    /// What the partner funded (its matching percent).
    Partner,
    /// The positive available deltas alone (an adjustment's credits, apart
    /// from its debits).
    Credited,
    /// Bonus entries' credits, by the kind of bonus (zero for other kinds
    /// of entry): birthdays.
    Birthday,
    /// Anniversary bonuses.
    Anniversary,
    /// Win-back bonuses.
    WinBack,
    /// Milestone bonuses.
    Milestone,
}

impl Metric {
    /// Every metric, in the order the figures list them.
    pub const ALL: [Metric; 10] = [
        Metric::Available,
        Metric::Pending,
        Metric::Debt,
        Metric::Merchant,
        Metric::Partner,
        Metric::Credited,
        Metric::Birthday,
        Metric::Anniversary,
        Metric::WinBack,
        Metric::Milestone,
    ];

    /// The metric a kind of bonus is summed under.
    pub fn of_bonus(kind: BonusKind) -> Metric {
        match kind {
            BonusKind::Birthday => Metric::Birthday,
            BonusKind::Anniversary => Metric::Anniversary,
            BonusKind::WinBack => Metric::WinBack,
            BonusKind::Milestone => Metric::Milestone,
        }
    }
}

/// Sums of one kind of ledger entry, one per [`Metric`]: the deltas as the
/// entries carry them (signed), the funding split, and the positive
/// available deltas alone (an adjustment's credits, apart from its debits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSums {
    /// [`Metric::Available`].
    pub available: Decimal,
    /// [`Metric::Pending`].
    pub pending: Decimal,
    /// [`Metric::Debt`].
    pub debt: Decimal,
    /// [`Metric::Merchant`].
    pub merchant: Decimal,
    /// [`Metric::Partner`].
    pub partner: Decimal,
    /// [`Metric::Credited`].
    pub credited: Decimal,
    /// [`Metric::Birthday`].
    #[serde(default)]
    pub birthday: Decimal,
    /// [`Metric::Anniversary`].
    #[serde(default)]
    pub anniversary: Decimal,
    /// [`Metric::WinBack`].
    #[serde(default)]
    pub win_back: Decimal,
    /// [`Metric::Milestone`].
    #[serde(default)]
    pub milestone: Decimal,
}

impl KindSums {
    /// The sum of one metric.
    pub fn get(&self, metric: Metric) -> Decimal {
        match metric {
            Metric::Available => self.available,
            Metric::Pending => self.pending,
            Metric::Debt => self.debt,
            Metric::Merchant => self.merchant,
            Metric::Partner => self.partner,
            Metric::Credited => self.credited,
            Metric::Birthday => self.birthday,
            Metric::Anniversary => self.anniversary,
            Metric::WinBack => self.win_back,
            Metric::Milestone => self.milestone,
        }
    }

    /// The sum of one metric, to change it.
    pub fn get_mut(&mut self, metric: Metric) -> &mut Decimal {
        match metric {
            Metric::Available => &mut self.available,
            Metric::Pending => &mut self.pending,
            Metric::Debt => &mut self.debt,
            Metric::Merchant => &mut self.merchant,
            Metric::Partner => &mut self.partner,
            Metric::Credited => &mut self.credited,
            Metric::Birthday => &mut self.birthday,
            Metric::Anniversary => &mut self.anniversary,
            Metric::WinBack => &mut self.win_back,
            Metric::Milestone => &mut self.milestone,
        }
    }

    fn add(&mut self, other: &KindSums) {
        for metric in Metric::ALL {
            *self.get_mut(metric) += other.get(metric);
        }
    }

    /// Every sum is zero.
    pub fn is_zero(&self) -> bool {
        Metric::ALL.iter().all(|m| self.get(*m).is_zero())
    }
}

/// One shop's ledger entries of one day (UTC), summed by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// [`EntryKind::Earn`] entries.
    pub earn: KindSums,
    /// [`EntryKind::Release`] entries.
    pub release: KindSums,
    /// [`EntryKind::Redeem`] entries.
    pub redeem: KindSums,
    /// [`EntryKind::Restore`] entries.
    pub restore: KindSums,
    /// [`EntryKind::Clawback`] entries.
    pub clawback: KindSums,
    /// [`EntryKind::Adjust`] entries.
    pub adjust: KindSums,
    /// [`EntryKind::Expire`] entries.
    pub expire: KindSums,
    /// [`EntryKind::Bonus`] entries, apart from earned cashback; by kind of
    /// bonus in their [`Metric::Birthday`] ... [`Metric::Milestone`] sums.
    #[serde(default)]
    pub bonus: KindSums,
}

impl DayFigures {
    /// The sums of one kind of entry.
    pub fn kind(&self, kind: EntryKind) -> &KindSums {
        match kind {
            EntryKind::Earn => &self.earn,
            EntryKind::Release => &self.release,
            EntryKind::Redeem => &self.redeem,
            EntryKind::Restore => &self.restore,
            EntryKind::Clawback => &self.clawback,
            EntryKind::Adjust => &self.adjust,
            EntryKind::Expire => &self.expire,
            EntryKind::Bonus => &self.bonus,
        }
    }

    /// The sums of one kind of entry, to change them.
    pub fn kind_mut(&mut self, kind: EntryKind) -> &mut KindSums {
        match kind {
            EntryKind::Earn => &mut self.earn,
            EntryKind::Release => &mut self.release,
            EntryKind::Redeem => &mut self.redeem,
            EntryKind::Restore => &mut self.restore,
            EntryKind::Clawback => &mut self.clawback,
            EntryKind::Adjust => &mut self.adjust,
            EntryKind::Expire => &mut self.expire,
            EntryKind::Bonus => &mut self.bonus,
        }
    }

    /// One metric summed over every kind of entry (e.g. the net change of
    /// the available balances).
    pub fn total(&self, metric: Metric) -> Decimal {
        ENTRY_KINDS.iter().map(|k| self.kind(*k).get(metric)).sum()
    }

    /// Adds one entry to its kind's sums.
    pub fn add_entry(&mut self, entry: &LedgerEntry) {
        let sums = self.kind_mut(entry.kind);
        let available = entry.available_delta.amount();
        sums.available += available;
        sums.pending += entry.pending_delta.amount();
        sums.debt += entry.debt_delta.amount();
        if let Some(funding) = &entry.funding {
            sums.merchant += funding.merchant.amount();
            sums.partner += funding.partner.amount();
        }
        if available > Decimal::ZERO {
            sums.credited += available;
        }
        if entry.kind == EntryKind::Bonus {
            if let Some(kind) = BonusKey::kind_of_entry(&entry.entry_id) {
                *sums.get_mut(Metric::of_bonus(kind)) += available;
            }
        }
    }

    /// Adds another day's (or shard's) figures to these.
    pub fn add(&mut self, other: &DayFigures) {
        for kind in ENTRY_KINDS {
            self.kind_mut(kind).add(other.kind(kind));
        }
    }

    /// Every non-zero sum, by kind and metric: what an adapter adds.
    pub fn nonzero(&self) -> Vec<(EntryKind, Metric, Decimal)> {
        let mut sums = Vec::new();
        for kind in ENTRY_KINDS {
            for metric in Metric::ALL {
                let value = self.kind(kind).get(metric);
                if !value.is_zero() {
                    sums.push((kind, metric, value));
                }
            }
        }
        sums
    }

    /// Sets one sum (as read back from an adapter).
    pub fn set(&mut self, kind: EntryKind, metric: Metric, value: Decimal) {
        *self.kind_mut(kind).get_mut(metric) = value;
    }

    /// Every sum is zero.
    pub fn is_zero(&self) -> bool {
        ENTRY_KINDS.iter().all(|k| self.kind(*k).is_zero())
    }
}

/// What the customer counters need to know of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountStats {
    /// The account's tier (an index into the program's tiers), if any.
    pub tier: Option<usize>,
    /// Orders the account has earned on.
    pub orders_earned: u32,
}

impl AccountStats {
    /// What the counters need of `account`.
    pub fn of(account: &Account) -> AccountStats {
        AccountStats {
            tier: account.tier,
            orders_earned: account.orders_earned,
        }
    }
}

/// One of a shop's customer counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Accounts.
    Customers,
    /// Customers who earned on at least one order.
    Earners,
    /// Customers who earned on two orders or more.
    Repeaters,
    /// Accounts at a tier, by its key ([`CustomerCounts::tier_key`]).
    Tier(String),
}

/// Customer counters of a shop (or changes to them): accounts, customers
/// who earned on at least one order, on two or more, and accounts by tier
/// (keyed by [`CustomerCounts::tier_key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCounts {
    /// [`Counter::Customers`].
    pub customers: i64,
    /// [`Counter::Earners`].
    pub earners: i64,
    /// [`Counter::Repeaters`].
    pub repeaters: i64,
    /// [`Counter::Tier`], by tier key.
    pub tiers: BTreeMap<String, i64>,
}

impl CustomerCounts {
    /// A tier's key among the counters: `"none"` or the tier's index.
    pub fn tier_key(tier: Option<usize>) -> String {
        tier.map_or_else(|| "none".to_string(), |t| t.to_string())
    }

    /// The change an account write makes to the counters, from the
    /// account's state before (None: the account is new) and after.
    pub fn change(before: Option<AccountStats>, after: &Account) -> CustomerCounts {
        let after = AccountStats::of(after);
        let mut change = CustomerCounts::default();
        let old = before.unwrap_or_default();
        if before.is_none() {
            change.customers = 1;
        }
        let step = |was: bool, is: bool| i64::from(is) - i64::from(was);
        change.earners = step(old.orders_earned >= 1, after.orders_earned >= 1);
        change.repeaters = step(old.orders_earned >= 2, after.orders_earned >= 2);
        if before.is_none() || old.tier != after.tier {
            if before.is_some() {
                *change
                    .tiers
                    .entry(CustomerCounts::tier_key(old.tier))
                    .or_default() -= 1;
            }
            *change
                .tiers
                .entry(CustomerCounts::tier_key(after.tier))
                .or_default() += 1;
        }
        change
    }

    /// Adds another set of counters (or changes) to these.
    pub fn add(&mut self, other: &CustomerCounts) {
        self.customers += other.customers;
        self.earners += other.earners;
        self.repeaters += other.repeaters;
        for (tier, count) in &other.tiers {
            *self.tiers.entry(tier.clone()).or_default() += count;
        }
    }

    /// Every non-zero counter: what an adapter adds.
    pub fn nonzero(&self) -> Vec<(Counter, i64)> {
        let mut counters: Vec<(Counter, i64)> = [
            (Counter::Customers, self.customers),
            (Counter::Earners, self.earners),
            (Counter::Repeaters, self.repeaters),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
        for (tier, count) in &self.tiers {
            if *count != 0 {
                counters.push((Counter::Tier(tier.clone()), *count));
            }
        }
        counters
    }

    /// Sets one counter (as read back from an adapter).
    pub fn set(&mut self, counter: Counter, value: i64) {
        match counter {
            Counter::Customers => self.customers = value,
            Counter::Earners => self.earners = value,
            Counter::Repeaters => self.repeaters = value,
            Counter::Tier(tier) => {
                self.tiers.insert(tier, value);
            }
        }
    }

    /// Every counter is zero.
    pub fn is_zero(&self) -> bool {
        self.nonzero().is_empty()
    }
}

/// What one write adds to one aggregate shard: the day figures of its
/// entries (by the day of each entry) and the change to the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateChange {
    /// Figures to add, by day.
    pub days: BTreeMap<NaiveDate, DayFigures>,
    /// The change to the counters.
    pub counts: CustomerCounts,
}

/// The aggregate changes of a write, by shard: the one rule both adapters
/// apply inside `write`, in the same transaction as the entries. `before`
/// gives an existing account's state as of the version the write expects.
/// Entries with the same time and id count once (the ledger keeps one).
pub fn aggregate_changes(
    writes: &WriteSet,
    before: impl Fn(&AccountWrite) -> Option<AccountStats>,
) -> BTreeMap<u32, AggregateChange> {
    let mut changes: BTreeMap<u32, AggregateChange> = BTreeMap::new();
    for write in &writes.accounts {
        let shard = aggregate_shard(&write.account.customer);
        let change = changes.entry(shard).or_default();
        let mut seen = HashSet::new();
        for entry in write.entries.iter().rev() {
            if !seen.insert((entry.at, entry.entry_id.clone())) {
                continue;
            }
            change
                .days
                .entry(entry.at.date_naive())
                .or_default()
                .add_entry(entry);
        }
        let old = if write.expected_version == 0 {
            None
        } else {
            Some(before(write).unwrap_or_default())
        };
        change
            .counts
            .add(&CustomerCounts::change(old, &write.account));
    }
    changes.retain(|_, change| {
        change.days.retain(|_, figures| !figures.is_zero());
        !change.days.is_empty() || !change.counts.is_zero()
    });
    changes
}

/// A shop's aggregates: day figures up to a date, and the counters now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShopAggregates {
    /// Figures by day.
    pub days: BTreeMap<NaiveDate, DayFigures>,
    /// The customer counters now.
    pub counts: CustomerCounts,
}

impl ShopAggregates {
    /// Adds one shard's (or one item's) figures.
    pub fn add_day(&mut self, day: NaiveDate, figures: &DayFigures) {
        self.days.entry(day).or_default().add(figures);
    }
}
