//! Key strings, built in one place for both adapters.
//!
//! The single-table layout (docs/data-model.md) names every item by
//! `pk`/`sk`; the in-memory adapter uses the same strings for the due index
//! and the ledger order, so both adapters sort and page alike.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use cashback_app::store::DUE_SHARDS;
use cashback_core::ids::{Code, CustomerId, Email, OrderId, ShopId};
use cashback_core::ledger::LedgerEntry;

pub fn shop_pk(shop: &ShopId) -> String {
    format!("SHOP#{shop}")
}

pub fn account_key(shop: &ShopId, customer: &CustomerId) -> String {
    format!("SHOP#{shop}#CUST#{customer}")
}

pub fn order_key(shop: &ShopId, order: &OrderId) -> String {
    format!("SHOP#{shop}#ORDER#{order}")
}

pub fn coupon_sk(code: &Code) -> String {
    format!("COUPON#{}", code.as_str())
}

pub fn coupon_use_pk(shop: &ShopId, code: &Code) -> String {
    format!("SHOP#{shop}#COUPON#{}", code.as_str())
}

pub fn code_key(shop: &ShopId, code: &Code) -> String {
    format!("SHOP#{shop}#CODE#{}", code.as_str())
}

/// Referral codes have their own index: a balance code never reads as one.
pub fn referral_key(shop: &ShopId, code: &Code) -> String {
    format!("SHOP#{shop}#REFERRAL#{}", code.as_str())
}

/// An order's use of a coupon with no total limit, beside the coupon's
/// per-customer counters (`coupon_use_pk`).
pub fn coupon_order_use_sk(order: &OrderId) -> String {
    format!("ORDER#{order}")
}

/// Every order's use item of a coupon starts with this.
pub const COUPON_ORDER_USE_SK_PREFIX: &str = "ORDER#";

/// One sub-counter of a limited coupon's count, beside its per-customer
/// counters (`coupon_use_pk`): `cashback_app::coupon_shards`.
pub fn coupon_shard_sk(shard: u32) -> String {
    format!("USES#{shard}")
}

/// Every sub-counter's sort key starts with this.
pub const COUPON_SHARD_SK_PREFIX: &str = "USES#";

/// A referral credit, in the referrer's partition: one per referred order.
pub fn referral_credit_sk(order: &OrderId) -> String {
    format!("REFERRED#{order}")
}

/// Emails are keyed by their hash: no address in a key.
pub fn email_key(shop: &ShopId, email: &Email) -> String {
    format!("SHOP#{shop}#EMAIL#{}", hash_hex(email.as_str()))
}

pub fn email_usage_sk(email: &Email) -> String {
    format!("EMAIL#{}", hash_hex(email.as_str()))
}

pub fn guard_key(shop: &ShopId, key: &str) -> String {
    format!("EVENT#{shop}#{key}")
}

pub fn notification_key(shop: &ShopId, key: &str) -> String {
    format!("NOTIFY#{shop}#{key}")
}

/// Ledger entries sort by time, then id: `LEDGER#2026-01-01T12:00:00.000000Z#order:1:paid:0`.
pub fn ledger_sort_key(entry: &LedgerEntry) -> String {
    format!(
        "LEDGER#{}#{}",
        entry.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        entry.entry_id
    )
}

pub fn due_pk(kind: &str, bucket: &str, shard: u32) -> String {
    format!("DUE#{kind}#{bucket}#{shard}")
}

pub fn due_sort_key(at: DateTime<Utc>, item_key: &str) -> String {
    format!(
        "{}#{item_key}",
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// Every sort key of an item due at or before `at` is <= this.
pub fn due_sort_upper_bound(at: DateTime<Utc>) -> String {
    // '$' sorts after '#', so every "{time}#..." with time == at is included.
    format!("{}$", at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub fn shard_of(item_key: &str) -> u32 {
    let digest = Sha256::digest(item_key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % DUE_SHARDS
}

pub fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

// ---- Sort keys and partitions used only by the DynamoDB layout (additions
// ---- for `dynamo`; the in-memory adapter has no need of them).

pub const SHOP_SK: &str = "SHOP";
pub const PROGRAM_SK: &str = "PROGRAM";
pub const ACCOUNT_SK: &str = "ACCOUNT";
pub const ORDER_SK: &str = "ORDER";
/// The order's lines, written once beside its state item (same partition).
pub const ORDER_LINES_SK: &str = "LINES";
/// Prefix of the order's refund records, one item each (same partition),
/// `REFUND#{refund id}`: written once, its key the refund's once-only guard.
pub const ORDER_REFUND_SK_PREFIX: &str = "REFUND#";

/// The sort key of one refund's record in its order's partition.
pub fn order_refund_sk(refund: &cashback_core::ids::RefundId) -> String {
    format!("{ORDER_REFUND_SK_PREFIX}{}", refund.as_str())
}
pub const CODE_SK: &str = "CODE";
pub const REFERRAL_SK: &str = "REFERRAL";
pub const EMAIL_SK: &str = "EMAIL";
pub const GUARD_SK: &str = "EVENT";
pub const NOTIFICATION_SK: &str = "NOTIFY";
/// A notice's event for the shop's marketing tool (the outbox), in the
/// customer's partition: `MKTEVENT#{notice key}`.
pub const MARKETING_EVENT_SK_PREFIX: &str = "MKTEVENT#";

pub fn marketing_event_sk(key: &str) -> String {
    format!("{MARKETING_EVENT_SK_PREFIX}{key}")
}
pub const CHECKPOINT_SK: &str = "CHECKPOINT";
pub const COUNTER_SK: &str = "COUNTER";
/// The code sync's record, in the shop's partition beside its item.
pub const SYNC_RECORD_SK: &str = "PLATFORM_SYNC";
/// Every coupon's sort key starts with this (list by `begins_with`).
pub const COUPON_SK_PREFIX: &str = "COUPON#";
/// Every ledger entry's sort key starts with this.
pub const LEDGER_SK_PREFIX: &str = "LEDGER#";

/// A kept program version; zero-padded so versions sort as numbers.
pub fn program_version_sk(version: u64) -> String {
    format!("PROGRAM#v{version:020}")
}

/// The per-customer coupon use counter's sort key.
pub fn customer_usage_sk(customer: &CustomerId) -> String {
    format!("CUST#{customer}")
}

pub fn checkpoint_pk(job: &str) -> String {
    format!("JOB#{job}")
}

pub fn counter_pk(key: &str) -> String {
    format!("COUNTER#{key}")
}

// ---- Admin API additions: running aggregates, the account index, the catalog.

/// One aggregate shard of a shop: its day items and its counters item.
pub fn aggregate_pk(shop: &ShopId, shard: u32) -> String {
    format!("SHOP#{shop}#AGG#{shard}")
}

/// A day's aggregate item; ISO dates sort as dates.
pub fn aggregate_day_sk(day: chrono::NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}

/// A month's aggregate item, beside its days ("DAY#" sorts before "MONTH#").
pub fn aggregate_month_sk(month: chrono::NaiveDate) -> String {
    format!("MONTH#{}", month.format("%Y-%m"))
}

/// The counters item of an aggregate shard ("COUNTS" sorts before every
/// "DAY#...").
pub const COUNTS_SK: &str = "COUNTS";

/// The report aggregator's marker in a customer's partition (beside the
/// account): the feed position of the last change of theirs it added.
pub const REPORT_MARK_SK: &str = "REPORTED";

/// The shop's account index partition: one small item per account, written
/// when the account is created, so exports page through a shop's accounts
/// without a scan.
pub fn account_index_pk(shop: &ShopId) -> String {
    format!("SHOP#{shop}#ACCOUNTS")
}

pub fn account_index_sk(customer: &CustomerId) -> String {
    format!("CUST#{customer}")
}

pub fn product_key(shop: &ShopId, product: &cashback_core::ids::ProductId) -> String {
    format!("SHOP#{shop}#PRODUCT#{product}")
}

pub const PRODUCT_SK: &str = "PRODUCT";

/// Every API key's sort key starts with this, in the shop's partition.
pub const API_KEY_SK_PREFIX: &str = "APIKEY#";

pub fn api_key_sk(key_id: &str) -> String {
    format!("{API_KEY_SK_PREFIX}{key_id}")
}

/// A shop's parked due items (a partition of their own, listed in pages).
pub fn parked_pk(shop: &ShopId) -> String {
    format!("SHOP#{shop}#PARKED")
}

/// Keys of the outgoing events' items (endpoints, deliveries, pending
/// retries; docs/outgoing-events.md).
pub mod outgoing {
    use chrono::SecondsFormat;

    use cashback_app::outgoing::endpoints::{DeliveryRecord, PendingDelivery};
    use cashback_core::ids::ShopId;

    /// Pending retries are spread over this many partitions.
    pub const PENDING_SHARDS: u32 = 4;

    /// An endpoint's sort key in the shop's partition.
    pub fn endpoint_sk(id: &str) -> String {
        format!("{ENDPOINT_SK_PREFIX}{id}")
    }

    /// What every endpoint's sort key starts with.
    pub const ENDPOINT_SK_PREFIX: &str = "EVENTENDPOINT#";

    /// The partition of an endpoint's deliveries.
    pub fn delivery_pk(shop: &ShopId, endpoint_id: &str) -> String {
        format!("SHOP#{shop}#EVENTDELIVERY#{endpoint_id}")
    }

    /// A delivery's sort key: its first attempt's time (fixed width, so
    /// the keys sort as the times do) and the event.
    pub fn delivery_sk(record: &DeliveryRecord) -> String {
        format!(
            "{}#{}",
            record
                .first_attempt_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            record.event_id
        )
    }

    /// A pending retry's sort key: shop, endpoint and event.
    pub fn pending_sk(pending: &PendingDelivery) -> String {
        format!(
            "{}#{}#{}",
            pending.shop, pending.endpoint_id, pending.event_id
        )
    }

    /// A pending retry's partition.
    pub fn pending_pk(pending: &PendingDelivery) -> String {
        pending_shard_pk(super::shard_of(&pending_sk(pending)) % PENDING_SHARDS)
    }

    /// One partition of the pending retries.
    pub fn pending_shard_pk(shard: u32) -> String {
        format!("{PENDING_PK_PREFIX}{shard}")
    }

    /// What every pending retry's partition key starts with.
    pub const PENDING_PK_PREFIX: &str = "EVENTRETRY#";
}
