//! A limited coupon's use count, split over sub-counters.
//!
//! One count item that every order using a popular limited coupon adds to
//! is an item all those orders' transactions hold at once, and DynamoDB
//! cancels transactions that meet on one item (about 50 to 100 a second
//! get through, BENCHMARKS.md section 8). So the limit is split over
//! [`SHARDS`] sub-counters (`SHOP#{shop}#COUPON#{code}`, `USES#{i}`), each
//! with its own cap: an order takes its use from the shard its id hashes to
//! ([`home_shard`]), with the condition `count < cap` on that shard alone,
//! so two orders meet only when they hash to the same shard.
//!
//! The caps are written by the coupon's edits, never by orders
//! ([`caps`]): the room left under the limit (the limit less every use
//! already taken, counted or not yet counted by the change feed) is split
//! exactly over the shards, each shard's cap being its own count plus its
//! share. The caps and the uses held outside the shards sum to the limit,
//! and no shard takes a use past its cap, so the uses never exceed the
//! limit, whatever the orders' interleaving.
//! An order whose shard is full reads every shard once and takes the use
//! from the first that has room; the coupon is refused only when no shard
//! has room, that is when the uses reach the limit, except for:
//! - a use given back (refund, cancellation): it returns to the shard that
//!   took it (the order's use item records it) once the change feed has
//!   moved it, seconds later;
//! - a use taken before the limit was set (or, for a coupon limited before
//!   this layout, taken on the coupon's own count) and given back after:
//!   it frees no room until the limit is next edited.
//!
//! The caps are what the store checks: a definition cached by a warm
//! container ([`crate::context::Context::cached_coupon`]) never lets a use past
//! them. A shard without a cap means the coupon has no sub-counters: a
//! coupon limited before this layout (its count is still the coupon's own
//! item, as before, until the admin API next saves, lists or reads it,
//! which sets its caps) or an unlimited one.

use cashback_core::ids::OrderId;

/// How many sub-counters a limited coupon's count is split over: enough
/// that a few hundred orders a second spread to a few dozen per shard,
/// below what one DynamoDB item takes; few enough that one Query reads
/// them all (16 small items, one page).
pub const SHARDS: u32 = 16;

/// One sub-counter as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CouponShard {
    /// Uses the shard holds.
    pub count: u32,
    /// The most it may hold; None when the coupon has no sub-counters.
    pub cap: Option<u32>,
}

impl CouponShard {
    /// The shard takes one more use.
    pub fn has_room(&self) -> bool {
        self.cap.is_some_and(|cap| self.count < cap)
    }
}

/// The shard an order takes its use from first. FNV-1a of the order id: the
/// same in every process and every release (a std hasher is not).
pub fn home_shard(order: &OrderId) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in order.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // The remainder is below SHARDS, so it fits.
    (hash % u64::from(SHARDS)) as u32
}

/// Shard `shard`'s share of `room`: `room` split exactly (the first
/// `room % SHARDS` shards take one more), so the shares sum to `room`.
pub fn share(room: u32, shard: u32) -> u32 {
    room / SHARDS + u32::from(shard < room % SHARDS)
}

/// The caps a coupon limited to `limit` gets, given its shards as read
/// (missing ones count 0) and the uses held outside them (`elsewhere`: on
/// the coupon's own count, or not yet counted by the change feed). Each
/// shard's cap is its count plus its share of what is left, so the caps and
/// the uses held elsewhere sum to the limit whenever the uses are within it
/// (and to the uses, refusing everything, when an earlier, higher limit let
/// more through).
pub fn caps(limit: u32, elsewhere: u32, shards: &[CouponShard]) -> Vec<u32> {
    let counts: Vec<u32> = (0..SHARDS as usize)
        .map(|i| shards.get(i).map_or(0, |s| s.count))
        .collect();
    let used = counts
        .iter()
        .fold(elsewhere, |sum, count| sum.saturating_add(*count));
    let room = limit.saturating_sub(used);
    counts
        .iter()
        .zip(0..SHARDS)
        .map(|(count, shard)| count.saturating_add(share(room, shard)))
        .collect()
}

/// The shard to take a use from: `home` if it has room, else the next one
/// (in order, wrapping) that has; None when none has.
pub fn with_room(shards: &[CouponShard], home: u32) -> Option<u32> {
    (0..SHARDS)
        .map(|step| (home + step) % SHARDS)
        .find(|shard| {
            shards
                .get(*shard as usize)
                .is_some_and(CouponShard::has_room)
        })
}

/// Whether the coupon has sub-counters (a shard with a cap).
pub fn capped(shards: &[CouponShard]) -> bool {
    shards.iter().any(|s| s.cap.is_some())
}

/// The uses the shards hold.
pub fn held(shards: &[CouponShard]) -> u32 {
    shards
        .iter()
        .fold(0u32, |sum, s| sum.saturating_add(s.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(counts: &[u32], caps: &[u32]) -> Vec<CouponShard> {
        counts
            .iter()
            .zip(caps)
            .map(|(count, cap)| CouponShard {
                count: *count,
                cap: Some(*cap),
            })
            .collect()
    }

    #[test]
    fn shares_split_the_room_exactly() {
        for room in [0, 1, 5, 15, 16, 17, 100, 1_000_003] {
            let sum: u32 = (0..SHARDS).map(|shard| share(room, shard)).sum();
            assert_eq!(sum, room);
        }
        assert_eq!(share(5, 4), 1);
        assert_eq!(share(5, 5), 0);
    }

    #[test]
    fn caps_sum_to_the_limit_counting_uses_already_taken() {
        let shards = read(&[3, 0, 7], &[3, 3, 7]);
        let caps = caps(100, 10, &shards);
        assert_eq!(caps.len(), SHARDS as usize);
        // With the 10 uses held elsewhere: the limit.
        assert_eq!(caps.iter().sum::<u32>() + 10, 100);
        assert!(caps[0] >= 3 && caps[2] >= 7);
        // More uses than a lowered limit: every shard is full.
        let caps_lowered = super::caps(5, 10, &shards);
        assert_eq!(caps_lowered[..3], [3, 0, 7]);
        assert_eq!(caps_lowered.iter().sum::<u32>(), 10);
    }

    #[test]
    fn a_full_home_shard_hands_over_to_the_next_with_room() {
        let mut shards = read(&[1; 16], &[1; 16]);
        assert_eq!(with_room(&shards, 3), None);
        shards[1].cap = Some(2);
        assert_eq!(with_room(&shards, 3), Some(1));
        shards[4].cap = Some(2);
        assert_eq!(with_room(&shards, 3), Some(4));
    }

    #[test]
    fn the_home_shard_is_stable_and_spread() {
        let order = OrderId::parse("1001").unwrap();
        assert_eq!(home_shard(&order), home_shard(&order));
        let mut seen = [0u32; SHARDS as usize];
        for n in 0..1600 {
            seen[home_shard(&OrderId::parse(&format!("{n}")).unwrap()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
    }
}
