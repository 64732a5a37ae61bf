//! Which side of the platform may hold a customer's balance: their
//! discount code, or their store credit. The program names one mode, but a
//! sync holding an older program (the 60 s cache, or one already running
//! when the mode changed) could put back the side another sync just ended.
//! So the customer's mode record ([`mode_job`]) names the side that may be
//! live, and it is written ahead of every change, as a compare-and-set:
//!
//! 1. **Take over.** A sync in mode P reads the record. When it names the
//!    other mode, the sync first records "P, switching" (the sequence one
//!    past the one it read; only one writer of a sequence wins), then ends
//!    the other side, then records "P, settled". A record left "switching"
//!    (a sync that failed between) makes the next sync in P end the other
//!    side again before it sends anything.
//! 2. **Send** P's side.
//! 3. **Check.** The record is read again. When it moved since the take
//!    over, another sync switched modes while this one sent, and what this
//!    one sent may be live next to the side that sync put: this sync
//!    records "P, switching" (P may be live) and starts over with the
//!    program read fresh, which ends whichever side the program does not
//!    name. The check runs whether the send succeeded or not, since a call
//!    that failed may still have landed.
//!
//! So a side is never left live while the record names the other one, as
//! long as the store answers and no call lands after its caller saw it
//! fail. When step 3 fails (a store error) after store credit was sent,
//! the next sync in discount-code mode or with sync off finds a store
//! credit call newer than the last emptying
//! ([`super::store_credit::credited_since_emptied`]) and empties it again. Store credit calls cannot (each has a send window, and a
//! change of mode waits out every pending one); a put of a discount code
//! can, so the reconcile run looks up the code of every account in
//! store-credit mode and ends one it finds active ([`super::runs`]).

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::platform_code::PlatformSync;

use super::SyncError;
use crate::context::Context;
use crate::error::AppError;

/// The store job holding the side the customer's balance may be live on
/// (`seq|mode|state`, the sequence growing with each change).
pub fn mode_job(shop: &ShopId, customer: &CustomerId) -> String {
    format!("platform-sync-mode#{shop}#{customer}")
}

/// The side of the platform a balance is put on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The customer's discount code (or coupon).
    DiscountCode,
    /// The customer's native store credit.
    StoreCredit,
}

impl Side {
    /// The side a program puts the balance on, None when it syncs nothing.
    pub fn of(mode: PlatformSync) -> Option<Side> {
        match mode {
            PlatformSync::StoreCredit => Some(Side::StoreCredit),
            PlatformSync::Off => None,
            PlatformSync::DiscountCode => Some(Side::DiscountCode),
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::DiscountCode => Side::StoreCredit,
            Side::StoreCredit => Side::DiscountCode,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::DiscountCode => "discount_code",
            Side::StoreCredit => "store_credit",
        }
    }
}

/// The customer's mode record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeRecord {
    /// Grows by one with each write; a write names the one it follows.
    pub seq: u64,
    /// The side that may be live.
    pub side: Side,
    /// The other side was ended after this side was recorded (false: it may
    /// still be live, and is ended before anything is sent on this side).
    pub settled: bool,
}

impl ModeRecord {
    /// The record of a customer never synced in store-credit mode: only a
    /// discount code can be live.
    pub fn initial() -> ModeRecord {
        ModeRecord {
            seq: 0,
            side: Side::DiscountCode,
            settled: true,
        }
    }

    fn encode(&self) -> String {
        let state = if self.settled { "settled" } else { "switching" };
        format!("{:012}|{}|{state}", self.seq, self.side.name())
    }

    /// Reads `seq|mode|state`; `seq|mode` (written before the state was
    /// kept) is read as settled.
    fn decode(value: &str) -> Option<ModeRecord> {
        let mut parts = value.split('|');
        let seq = parts.next()?.parse().ok()?;
        let side = match parts.next()? {
            "store_credit" => Side::StoreCredit,
            "discount_code" => Side::DiscountCode,
            _ => return None,
        };
        let settled = match parts.next() {
            None | Some("settled") => true,
            Some("switching") => false,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ModeRecord { seq, side, settled })
    }

    /// The record that follows this one.
    fn next(&self, side: Side, settled: bool) -> ModeRecord {
        ModeRecord {
            seq: self.seq + 1,
            side,
            settled,
        }
    }
}

/// The customer's mode record ([`ModeRecord::initial`] when none was
/// written).
pub async fn read(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<ModeRecord, SyncError> {
    let stored = ctx
        .store
        .get_checkpoint(&mode_job(shop, customer))
        .await
        .map_err(AppError::from)?;
    match stored {
        None => Ok(ModeRecord::initial()),
        Some(value) => ModeRecord::decode(&value).ok_or_else(|| {
            AppError::Invalid(format!("unreadable platform sync mode for {customer}")).into()
        }),
    }
}

/// Writes `next` and reads the record back: true when this caller's write
/// is the stored one. The store keeps a checkpoint's greatest value, so a
/// write that follows an older record is dropped, and of two writes of one
/// sequence the greater stays; a caller that read its own write back can
/// still be overtaken a moment later, which step 3 (the check after the
/// send) sees.
pub async fn compare_and_set(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    next: &ModeRecord,
) -> Result<bool, SyncError> {
    let job = mode_job(shop, customer);
    let value = next.encode();
    ctx.store
        .put_checkpoint(&job, &value)
        .await
        .map_err(AppError::from)?;
    let stored = ctx
        .store
        .get_checkpoint(&job)
        .await
        .map_err(AppError::from)?;
    Ok(stored.as_deref() == Some(value.as_str()))
}

/// Records that `side` may be live (step 3 of the module doc), retried
/// while other syncs write the record between the read and the write.
pub async fn record_maybe_live(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    side: Side,
) -> Result<(), SyncError> {
    for _ in 0..TRIES {
        let current = read(ctx, shop, customer).await?;
        if current.side == side && !current.settled {
            return Ok(());
        }
        if compare_and_set(ctx, shop, customer, &current.next(side, false)).await? {
            return Ok(());
        }
    }
    Err(contended(customer))
}

/// How many times a write of the record is tried against other syncs'.
pub const TRIES: usize = 8;

pub(super) fn contended(customer: &CustomerId) -> SyncError {
    SyncError::Platform {
        attempts: 0,
        source: super::PlatformError::transient(format!(
            "the platform sync mode of {customer} kept changing under this sync"
        )),
    }
}

/// The record once `side` is taken over from `current`: "switching" when
/// the other side must be ended first, None when `current` already holds
/// it settled.
pub fn take_over_from(current: &ModeRecord, side: Side) -> Option<ModeRecord> {
    if current.side == side && current.settled {
        return None;
    }
    if current.side == side {
        return Some(current.clone());
    }
    Some(current.next(side, false))
}

/// The settled record after the other side was ended under `switching`.
pub fn settled_after(switching: &ModeRecord) -> ModeRecord {
    switching.next(switching.side, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_old_form_reads_as_settled() {
        for record in [
            ModeRecord::initial(),
            ModeRecord {
                seq: 7,
                side: Side::StoreCredit,
                settled: false,
            },
        ] {
            assert_eq!(ModeRecord::decode(&record.encode()), Some(record));
        }
        assert_eq!(
            ModeRecord::decode("000000000003|store_credit"),
            Some(ModeRecord {
                seq: 3,
                side: Side::StoreCredit,
                settled: true
            })
        );
        for bad in [
            "",
            "x|store_credit",
            "1|cash",
            "1|store_credit|maybe",
            "1|store_credit|settled|x",
        ] {
            assert_eq!(ModeRecord::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_record_always_sorts_after_the_one_it_follows() {
        let first = ModeRecord::initial();
        let switching = take_over_from(&first, Side::StoreCredit).unwrap_or_else(|| first.clone());
        let settled = settled_after(&switching);
        assert!(switching.encode() > first.encode());
        assert!(settled.encode() > switching.encode());
        assert!(settled.next(Side::DiscountCode, false).encode() > settled.encode());
    }

    #[test]
    fn a_side_held_settled_needs_no_take_over_and_a_switching_one_is_ended_again() {
        let held = ModeRecord {
            seq: 4,
            side: Side::StoreCredit,
            settled: true,
        };
        assert_eq!(take_over_from(&held, Side::StoreCredit), None);
        let switching = ModeRecord {
            settled: false,
            ..held.clone()
        };
        assert_eq!(
            take_over_from(&switching, Side::StoreCredit),
            Some(switching.clone())
        );
        assert_eq!(
            take_over_from(&held, Side::DiscountCode),
            Some(ModeRecord {
                seq: 5,
                side: Side::DiscountCode,
                settled: false
            })
        );
    }
}
