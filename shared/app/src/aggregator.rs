//! The report aggregator: sums a batch of the change feed into the report
//! items, off the write path, exactly once (docs/reports.md).
//!
//! The order path writes nothing shared across customers (DESIGN section
//! 7): the running aggregates the reports read are summed here, from the
//! changes the writes left in the feed (the DynamoDB table's stream, or the
//! in-memory store's change log). For each shop in a batch, every ledger
//! entry written adds to its day (and month) by kind, and every account's
//! move from its state before to its state after moves the customer
//! counters. A shop's sums are added in [`ReportStore`] writes that also
//! move a marker per customer (the feed position of the customer's last
//! change added), so a batch delivered again (or split in halves) adds
//! nothing twice.
//!
//! The Lambda (`functions/report-aggregator`), the local server and the
//! tests call [`aggregate`]: one function "sum one batch -> outcome".

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration as StdDuration;

use chrono::NaiveDate;

use cashback_core::ids::{CustomerId, ShopId};

use crate::changes::{Change, ChangeKind};
use crate::reports::{
    aggregate_shard, feed_position, Added, CustomerCounts, FeedMark, ReportPart, ReportStore,
    ReportSums,
};
use crate::store::StoreError;

/// The most days one write adds to (a day item and a month item each)...
pub const MAX_PART_DAYS: usize = 18;

/// ... and the most customers (a marker each): with the counters item, a
/// part is at most 97 items, under DynamoDB's 100 per transaction.
pub const MAX_PART_CUSTOMERS: usize = 60;

/// How many times a part is tried when the store is busy (another
/// aggregator run added to the same item at that moment, or a throttle)
/// before the batch fails and the feed delivers it again.
pub const MAX_ATTEMPTS: u32 = 5;

/// What summing one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Changes read.
    pub changes: usize,
    /// Writes that added sums.
    pub added: usize,
    /// Changes skipped because the store had added them before (a batch
    /// delivered again, or split in halves).
    pub skipped: usize,
}

/// A part being built.
#[derive(Default)]
struct Building {
    marks: Vec<FeedMark>,
    sums: ReportSums,
    /// Entries summed, by customer, time and id (entry ids are unique per
    /// account, not across accounts).
    seen: HashSet<(CustomerId, chrono::DateTime<chrono::Utc>, String)>,
    /// How many changes of each customer it took.
    taken: Vec<(CustomerId, usize)>,
}

impl Building {
    fn add(&mut self, change: &Change) {
        match &change.kind {
            ChangeKind::Entry(entry) => {
                // An entry is written once (its item's create condition);
                // the same entry read twice in one batch counts once.
                let key = (change.customer.clone(), entry.at, entry.entry_id.clone());
                if self.seen.insert(key) {
                    self.sums
                        .days
                        .entry(entry.at.date_naive())
                        .or_default()
                        .add_entry(entry);
                }
            }
            ChangeKind::Account { before, after } => {
                self.sums
                    .counts
                    .add(&CustomerCounts::moved(before.as_deref(), after.as_deref()));
            }
            // Settled on the referrer's account, whose entries are summed.
            ChangeKind::Referral { .. } | ChangeKind::CouponUse { .. } => {}
        }
    }

    /// Takes as many of one customer's changes (in feed order) as fit; a
    /// customer is split over parts only when alone in one.
    fn take(&mut self, customer: &CustomerId, changes: &VecDeque<(String, &Change)>) {
        let alone = self.marks.is_empty();
        let mut days: Vec<NaiveDate> = Vec::new();
        let mut count = 0;
        for (_, change) in changes {
            if let ChangeKind::Entry(entry) = &change.kind {
                let day = entry.at.date_naive();
                if !days.contains(&day) && !self.sums.days.contains_key(&day) {
                    days.push(day);
                }
                if self.sums.days.len() + days.len() > MAX_PART_DAYS {
                    if !alone {
                        return;
                    }
                    break;
                }
            }
            count += 1;
        }
        if count == 0 {
            return;
        }
        for (_, change) in changes.iter().take(count) {
            self.add(change);
        }
        self.marks.push(FeedMark {
            customer: customer.clone(),
            first: changes[0].0.clone(),
            last: changes[count - 1].0.clone(),
        });
        self.taken.push((customer.clone(), count));
    }
}

/// Sums one batch of the feed and adds each shop's sums exactly once, in
/// as few writes as fit ([`MAX_PART_DAYS`], [`MAX_PART_CUSTOMERS`]).
/// `written` is the day the batch's earliest change was written, when the
/// feed says. An error leaves the parts added so far added: delivering the
/// batch again adds only the rest.
///
/// When the store refuses a part because some of its customers' changes
/// were added before, it says up to which position: those customers'
/// changes up to it are dropped and the rest summed again (a batch split in
/// halves after an error can start in the middle of what was added).
pub async fn aggregate(
    store: &dyn ReportStore,
    written: Option<NaiveDate>,
    batch: &[Change],
) -> Result<Outcome, StoreError> {
    let mut outcome = Outcome {
        changes: batch.len(),
        ..Outcome::default()
    };
    type Pending<'a> = BTreeMap<CustomerId, VecDeque<(String, &'a Change)>>;
    let mut shops: BTreeMap<&ShopId, Pending<'_>> = BTreeMap::new();
    // Coupon uses live outside the customer's partition, where feed
    // positions do not compare with the customer's: not summed here.
    for change in batch
        .iter()
        .filter(|c| !matches!(c.kind, ChangeKind::CouponUse { .. }))
    {
        shops
            .entry(&change.shop)
            .or_default()
            .entry(change.customer.clone())
            .or_default()
            .push_back((feed_position(&change.sequence), change));
    }
    for (shop, mut pending) in shops {
        while !pending.is_empty() {
            let mut building = Building::default();
            for (customer, changes) in &pending {
                if building.marks.len() >= MAX_PART_CUSTOMERS {
                    break;
                }
                building.take(customer, changes);
            }
            let Some(first) = building.marks.first() else {
                break;
            };
            let part = ReportPart {
                shop: shop.clone(),
                shard: aggregate_shard(&first.customer),
                marks: building.marks,
                written,
                sums: ReportSums {
                    days: building
                        .sums
                        .days
                        .into_iter()
                        .filter(|(_, figures)| !figures.is_zero())
                        .collect(),
                    counts: building.sums.counts,
                },
            };
            let added = if part.sums.is_zero() {
                // Nothing to add (accounts written without moving a
                // counter): no write at all.
                Added::Now
            } else {
                let added = add_with_retries(store, &part).await?;
                outcome.added += usize::from(added == Added::Now);
                added
            };
            match added {
                Added::Now => {
                    for (customer, count) in building.taken {
                        if let Some(changes) = pending.get_mut(&customer) {
                            changes.drain(..count);
                        }
                    }
                }
                Added::Before { refused } if refused.is_empty() => {
                    return Err(StoreError::Other(
                        "the store refused a report part without naming a customer".into(),
                    ));
                }
                Added::Before { refused } => {
                    for (customer, last) in refused {
                        tracing::info!(shop = %shop, customer = %customer, %last, "changes added before: skipped");
                        if let Some(changes) = pending.get_mut(&customer) {
                            let before = changes.len();
                            changes.retain(|(position, _)| *position > last);
                            outcome.skipped += before - changes.len();
                        }
                    }
                }
            }
            pending.retain(|_, changes| !changes.is_empty());
        }
    }
    Ok(outcome)
}

async fn add_with_retries(store: &dyn ReportStore, part: &ReportPart) -> Result<Added, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.add_report_part(part).await {
            Err(error) if error.is_retryable() && attempt < MAX_ATTEMPTS => {
                tracing::info!(shop = %part.shop, attempt, %error, "report part retried");
                let millis = 20u64 << attempt.min(6);
                tokio::time::sleep(StdDuration::from_millis(millis)).await;
            }
            other => return other,
        }
    }
}
