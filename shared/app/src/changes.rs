//! The change feed: what the store reports after a write committed, for
//! the work that must follow a write but must not be part of it (report
//! sums, the platform's copy of a balance code, referral credits, outgoing
//! events).
//!
//! On DynamoDB it is the table's stream (`cashback_store::dynamo::stream`):
//! at least once, in order per item, with the accounts and ledger entries
//! of one customer in one partition (so in order relative to each other).
//! The in-memory store keeps a log in write order
//! (`MemoryStore::take_changes`). A consumer must tolerate a change it has
//! seen before: a redelivered batch, or one split in two after an error.

use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};

/// One committed change to a customer's money.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The shop the customer belongs to.
    pub shop: ShopId,
    /// The customer whose account or ledger changed.
    pub customer: CustomerId,
    /// Where the change sits in the feed: the stream record's sequence
    /// number (decimal digits, increasing within a partition), or the
    /// in-memory log's position written the same way. Compare with
    /// [`Change::is_after`], not as strings.
    pub sequence: String,
    /// What changed.
    pub kind: ChangeKind,
}

/// What a [`Change`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// The account item was written: as it was (None when created) and as
    /// it is (None when deleted, e.g. a shop's data erased).
    Account {
        /// The account before the write.
        before: Option<Box<Account>>,
        /// The account after the write.
        after: Option<Box<Account>>,
    },
    /// A ledger entry was written. Entries are written once and never
    /// changed, so each one appears once (redeliveries aside).
    Entry(Box<LedgerEntry>),
    /// A referral credit of this customer (the referrer) was written by
    /// its referred order, or settled: the referrer's account is brought up
    /// to it ([`crate::referral::settle_credits`]).
    Referral {
        /// The referred order.
        order: OrderId,
    },
    /// An order took or gave back a use of a coupon with no total limit
    /// (the customer is the order's): the coupon's count takes it
    /// ([`crate::coupon_uses::count_uses`]).
    CouponUse {
        /// The coupon.
        code: Code,
        /// The order.
        order: OrderId,
    },
}

impl Change {
    /// Whether this change comes after `sequence` in the feed (sequence
    /// numbers are decimal digits of varying length: shorter is earlier).
    pub fn is_after(&self, sequence: &str) -> bool {
        sequence_order(&self.sequence, sequence) == std::cmp::Ordering::Greater
    }
}

/// Orders two feed positions (decimal digit strings, no leading zeros
/// beyond the in-memory log's fixed width).
pub fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn sequence_numbers_compare_as_numbers_not_as_strings() {
        assert_eq!(sequence_order("9", "10"), Ordering::Less);
        assert_eq!(sequence_order("000010", "9"), Ordering::Greater);
        assert_eq!(
            sequence_order("111100000000000000000000001", "111100000000000000000000001"),
            Ordering::Equal
        );
    }
}
