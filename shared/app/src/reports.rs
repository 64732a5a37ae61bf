//! The reporting model: running aggregates of a shop's ledger, summed off
//! the write path by the report aggregator from the table's change feed
//! (docs/reports.md).
//!
//! Day and month figures are sums of a shop's ledger entries, by
//! [`EntryKind`] and [`Metric`]; customer counters count accounts by
//! [`Counter`]. Both are indexed by these enums: how an adapter names them
//! in its items is the adapter's business. [`ReportStore`] is the port the
//! aggregator adds its sums through, exactly once per run of changes
//! ([`ReportPart`]); the rule that turns changes into sums is in
//! [`crate::aggregator`]. Re-exported from [`crate::store`], so
//! `cashback_app::store::DayFigures` keeps working.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use cashback_core::bonuses::{BonusKey, BonusKind};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};

use crate::store::StoreError;

/// Running aggregates are spread over this many items per shop and day,
/// so aggregator runs reading different parts of the feed at the same time
/// rarely add to the same item (DynamoDB cancels transactions that touch
/// one item at the same moment).
pub const AGGREGATE_SHARDS: u32 = 4;

/// The aggregate shard a part whose first customer is `customer` adds to.
pub fn aggregate_shard(customer: &CustomerId) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(customer.as_str().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % AGGREGATE_SHARDS
}

/// The month a day falls in, named by its first day.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The last day of the month that starts on `month`.
pub fn month_end(month: NaiveDate) -> NaiveDate {
    let next = if month.month() == 12 {
        NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).unwrap_or(month)
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

    /// The change an account's move makes to the counters, from its state
    /// before (None: it did not exist) and after (None: it was deleted).
    pub fn moved(before: Option<&Account>, after: Option<&Account>) -> CustomerCounts {
        match (before, after) {
            (_, Some(after)) => CustomerCounts::change(before.map(AccountStats::of), after),
            (Some(before), None) => {
                let mut gone = CustomerCounts::change(None, before);
                gone.negate();
                gone
            }
            (None, None) => CustomerCounts::default(),
        }
    }

    fn negate(&mut self) {
        self.customers = -self.customers;
        self.earners = -self.earners;
        self.repeaters = -self.repeaters;
        for count in self.tiers.values_mut() {
            *count = -*count;
        }
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

/// A shop's aggregates up to a day, as a report reads them: every day up
/// to `to` is counted once, either in `days` or in its month in `months`,
/// and a month is in `months` only when it lies wholly before the period's
/// first day or wholly inside the period (so the period's own sums never
/// need a day the store did not return). The counters are now's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShopAggregates {
    /// Figures by day.
    pub days: BTreeMap<NaiveDate, DayFigures>,
    /// Figures by month (keyed by the month's first day).
    pub months: BTreeMap<NaiveDate, DayFigures>,
    /// The customer counters now.
    pub counts: CustomerCounts,
}

impl ShopAggregates {
    /// Adds one shard's (or one item's) figures of a day.
    pub fn add_day(&mut self, day: NaiveDate, figures: &DayFigures) {
        self.days.entry(day).or_default().add(figures);
    }

    /// Adds one shard's figures of a month (keyed by its first day).
    pub fn add_month(&mut self, month: NaiveDate, figures: &DayFigures) {
        self.months.entry(month).or_default().add(figures);
    }

    /// The sums of the days `from..=to`, months wholly inside included.
    pub fn period(&self, from: NaiveDate, to: NaiveDate) -> DayFigures {
        let mut sums = DayFigures::default();
        for figures in self.days.range(from..=to).map(|(_, f)| f) {
            sums.add(figures);
        }
        for (month, figures) in &self.months {
            if *month >= from && month_end(*month) <= to {
                sums.add(figures);
            }
        }
        sums
    }

    /// The sums of every day up to `to`.
    pub fn up_to(&self, to: NaiveDate) -> DayFigures {
        let mut sums = DayFigures::default();
        for figures in self.days.range(..=to).map(|(_, f)| f) {
            sums.add(figures);
        }
        for (month, figures) in &self.months {
            if month_end(*month) <= to {
                sums.add(figures);
            }
        }
        sums
    }

    /// The months a store may answer whole for a report of `from..=to`:
    /// those ending by `to` that lie wholly before `from` or wholly inside.
    pub fn whole_month(month: NaiveDate, from: NaiveDate, to: NaiveDate) -> bool {
        let end = month_end(month);
        end <= to && (end < from || month >= from)
    }
}

/// One shop's sums of a run of changes, to be added once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSums {
    /// Figures to add, by day (each also adds to its month).
    pub days: BTreeMap<NaiveDate, DayFigures>,
    /// The change to the customer counters.
    pub counts: CustomerCounts,
}

impl ReportSums {
    /// Nothing to add.
    pub fn is_zero(&self) -> bool {
        self.days.values().all(DayFigures::is_zero) && self.counts.is_zero()
    }

    /// The figures of each month the days fall in.
    pub fn months(&self) -> BTreeMap<NaiveDate, DayFigures> {
        let mut months: BTreeMap<NaiveDate, DayFigures> = BTreeMap::new();
        for (day, figures) in &self.days {
            months.entry(month_of(*day)).or_default().add(figures);
        }
        months
    }
}

/// Some of one shop's changes, summed: what the aggregator adds in one
/// write. A part carries, for each customer whose changes it sums, the
/// positions of the first and last of them in the feed ([`FeedMark`]).
///
/// Exactly once: the feed keeps each customer's changes in order (they live
/// in the customer's partition), and the store keeps, per customer, the
/// position of the last change it added (a marker in the customer's own
/// partition: nothing shared). A part is added only when each of its
/// customers' `first` is after that customer's marker, atomically with
/// moving the markers to `last`. A batch delivered again, or split in
/// halves after an error, adds nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPart {
    /// The shop.
    pub shop: ShopId,
    /// The aggregate shard the sums go to (`0..AGGREGATE_SHARDS`).
    pub shard: u32,
    /// Each customer's first and last change summed in the part.
    pub marks: Vec<FeedMark>,
    /// The day its earliest change was written, when the feed says (a
    /// DynamoDB stream record's creation time). A store that kept day
    /// figures before it kept months trusts a month's item only from the
    /// month after the first part it added.
    pub written: Option<NaiveDate>,
    /// What to add.
    pub sums: ReportSums,
}

/// The first and last of one customer's changes in a part, as positions
/// ([`feed_position`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMark {
    /// The customer.
    pub customer: CustomerId,
    /// The position of the customer's first change in the part.
    pub first: String,
    /// The position of the last.
    pub last: String,
}

/// Width of a position: DynamoDB stream sequence numbers have up to 40
/// digits; padded to this many they sort as numbers.
pub const POSITION_WIDTH: usize = 40;

/// A change's position in the feed as a string that sorts in feed order:
/// its sequence number (decimal digits) left-padded with zeros.
pub fn feed_position(sequence: &str) -> String {
    format!("{sequence:0>POSITION_WIDTH$}")
}

/// Whether a part was added, or refused because some of its changes had
/// been added before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The sums were added and the markers moved.
    Now,
    /// Nothing was added: these customers' markers were at or after the
    /// part's first change of theirs (each with the position of the last
    /// change added). Their changes up to it are to be dropped; the rest
    /// is still to add.
    Before {
        /// The customers refused, with their markers' positions.
        refused: Vec<(CustomerId, String)>,
    },
}

/// The port the report aggregator adds its sums through. Implemented by the
/// DynamoDB and in-memory adapters of shared/store.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// Adds `part` to the shop's day, month and counters items, exactly
    /// once: atomically with moving each customer's marker to the part's
    /// `last` of theirs, and only when every customer's `first` is after
    /// their marker.
    async fn add_report_part(&self, part: &ReportPart) -> Result<Added, StoreError>;
}
