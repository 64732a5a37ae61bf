//! Outgoing events derived from the change feed: one per ledger entry that
//! moves a customer's money, and one per tier change of an account.
//!
//! Pure: a batch of [`Change`]s in, [`OutgoingEvent`]s out. The event id is
//! derived from what the change is (the ledger entry's id, which a replayed
//! event never mints anew; for a tier change, the account's figures that
//! moved it), never from when or how often it was delivered, so a
//! redelivered stream batch yields the same ids and a merchant drops the
//! duplicates by id.
//!
//! `balance_after` comes from the account write in the same batch: the
//! account and the entries of one write are one transaction in one
//! partition, so the stream carries them together. The account image
//! nearest after the entry (in feed order) is the one that write left; when
//! a batch split leaves the entry without it, `balance_after` is None and
//! the delivery fills it from a read of the account (which may then include
//! a later change).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::money::{Currency, Money};

use crate::changes::{sequence_order, Change, ChangeKind};

/// The version of the event body; a field is only ever added within one.
pub const BODY_VERSION: u32 = 1;

/// What an event reports. The ledger's kinds, folded into what a merchant's
/// system reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Cashback earned on an order, or a bonus credited (pending or available).
    Earned,
    /// Pending cashback became spendable.
    Released,
    /// Balance spent through the customer's code; a restore after a refund
    /// is a redemption given back (negative amount).
    Redeemed,
    /// Cashback taken back after a refund or cancellation, or debt recovered.
    ClawedBack,
    /// A merchant's manual credit or debit.
    Adjusted,
    /// Available balance past the program's expiry.
    Expired,
    /// The customer's tier changed (up or down).
    TierChanged,
}

impl EventKind {
    /// Every kind, in documentation order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Earned,
        EventKind::Released,
        EventKind::Redeemed,
        EventKind::ClawedBack,
        EventKind::Adjusted,
        EventKind::Expired,
        EventKind::TierChanged,
    ];

    /// The name in bodies, headers and EventBridge's `detail-type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Earned => "earned",
            EventKind::Released => "released",
            EventKind::Redeemed => "redeemed",
            EventKind::ClawedBack => "clawed_back",
            EventKind::Adjusted => "adjusted",
            EventKind::Expired => "expired",
            EventKind::TierChanged => "tier_changed",
        }
    }

    /// The event a ledger entry of `kind` reports.
    pub fn of_entry(kind: EntryKind) -> EventKind {
        match kind {
            EntryKind::Earn | EntryKind::Bonus => EventKind::Earned,
            EntryKind::Release => EventKind::Released,
            EntryKind::Redeem | EntryKind::Restore => EventKind::Redeemed,
            EntryKind::Clawback => EventKind::ClawedBack,
            EntryKind::Adjust => EventKind::Adjusted,
            EntryKind::Expire => EventKind::Expired,
        }
    }
}

/// The signed changes of one entry, as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deltas {
    /// Change to spendable balance.
    pub available: String,
    /// Change to pending cashback.
    pub pending: String,
    /// Change to clawback debt.
    pub debt: String,
}

/// The account's balances after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Spendable balance.
    pub available: String,
    /// Earned, not yet released.
    pub pending: String,
    /// Clawbacks not yet recovered.
    pub debt: String,
}

impl Balance {
    /// The balances of `account`.
    pub fn of(account: &Account) -> Balance {
        Balance {
            available: decimal(account.available),
            pending: decimal(account.pending),
            debt: decimal(account.debt),
        }
    }
}

/// A tier change: indexes into the program's tiers (None: below every tier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChange {
    /// The tier before.
    pub from: Option<usize>,
    /// The tier now.
    pub to: Option<usize>,
    /// The lifetime eligible spend that set it.
    pub lifetime_eligible_spend: String,
}

/// The JSON body every endpoint receives and EventBridge's `detail` holds
/// (version [`BODY_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBody {
    /// The stable event id (also the `X-Cashback-Event-Id` header).
    pub id: String,
    /// The body's version.
    pub version: u32,
    /// What happened.
    pub kind: EventKind,
    /// The shop.
    pub shop: String,
    /// The platform's customer id.
    pub customer_id: String,
    /// When the engine applied the change.
    pub occurred_at: DateTime<Utc>,
    /// The shop's currency, which every amount is in.
    pub currency: Currency,
    /// How much, positive, as a decimal string (see docs/outgoing-events.md
    /// per kind); None for a tier change.
    pub amount: Option<String>,
    /// The ledger entry's signed changes; None for a tier change.
    pub deltas: Option<Deltas>,
    /// The ledger entry's kind as the ledger names it (`earn`, `bonus`,
    /// `restore`, ...); None for a tier change.
    pub entry_kind: Option<EntryKind>,
    /// The ledger entry's id; None for a tier change.
    pub entry_id: Option<String>,
    /// The order the change belongs to, if any.
    pub order_id: Option<String>,
    /// The balances after the change (see the module's note).
    pub balance_after: Option<Balance>,
    /// The tier change; None for the other kinds.
    pub tier: Option<TierChange>,
}

/// One event, with where it came from in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// The shop.
    pub shop: ShopId,
    /// The customer.
    pub customer: CustomerId,
    /// The feed position of the change it came from (a stream batch item
    /// failure names it).
    pub sequence: String,
    /// The body.
    pub body: EventBody,
}

impl OutgoingEvent {
    /// The event's id.
    pub fn id(&self) -> &str {
        &self.body.id
    }

    /// The body as sent: compact JSON.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.body)
    }
}

fn decimal(money: Money) -> String {
    money.amount().to_string()
}

/// `evt_` and 32 hex digits of SHA-256 over the parts (NUL-separated).
fn event_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    format!("evt_{}", &hex::encode(hash.finalize())[..32])
}

/// The positive amount an entry reports, per kind (docs/outgoing-events.md):
/// earned = everything credited (debt it paid included); released = what
/// left pending; redeemed = what was spent (shortfall included), negative
/// for a restore; clawed back = what was taken (debt recorded included);
/// adjusted and expired = the change to available, debt paid included.
fn amount_of(entry: &LedgerEntry) -> Option<Money> {
    let (a, p, d) = (entry.available_delta, entry.pending_delta, entry.debt_delta);
    let sum = |x: Money, y: Money| x.checked_add(y).ok();
    let sub = |x: Money, y: Money| x.checked_sub(y).ok();
    match entry.kind {
        EntryKind::Earn | EntryKind::Bonus => sub(sum(a, p)?, d),
        EntryKind::Release => Some(p.negated()),
        EntryKind::Redeem | EntryKind::Restore => sub(d, a),
        EntryKind::Clawback => sub(d, sum(a, p)?),
        EntryKind::Adjust => sub(a, d),
        EntryKind::Expire => Some(a.negated()),
    }
}

/// The event of one ledger entry.
pub fn entry_event(
    shop: &ShopId,
    customer: &CustomerId,
    sequence: &str,
    entry: &LedgerEntry,
    after: Option<&Account>,
) -> OutgoingEvent {
    let kind = EventKind::of_entry(entry.kind);
    let currency = entry.available_delta.currency();
    OutgoingEvent {
        shop: shop.clone(),
        customer: customer.clone(),
        sequence: sequence.to_string(),
        body: EventBody {
            id: event_id(&[shop.as_str(), customer.as_str(), "entry", &entry.entry_id]),
            version: BODY_VERSION,
            kind,
            shop: shop.as_str().to_string(),
            customer_id: customer.as_str().to_string(),
            occurred_at: entry.at,
            currency,
            amount: amount_of(entry).map(decimal),
            deltas: Some(Deltas {
                available: decimal(entry.available_delta),
                pending: decimal(entry.pending_delta),
                debt: decimal(entry.debt_delta),
            }),
            entry_kind: Some(entry.kind),
            entry_id: Some(entry.entry_id.clone()),
            order_id: entry.order_id.as_ref().map(|o| o.as_str().to_string()),
            balance_after: after.map(Balance::of),
            tier: None,
        },
    }
}

/// The tier change an account write made, if it made one, at
/// `occurred_at` (the time of the write's entries: a tier moves with an
/// earn or a clawback).
pub fn tier_event(
    shop: &ShopId,
    customer: &CustomerId,
    sequence: &str,
    before: Option<&Account>,
    after: &Account,
    occurred_at: DateTime<Utc>,
) -> Option<OutgoingEvent> {
    let from = before.and_then(|b| b.tier);
    // A new account below every tier is no change; a new account created
    // straight into a tier is one.
    if from == after.tier {
        return None;
    }
    let spend = decimal(after.lifetime_eligible_spend);
    let show = |tier: Option<usize>| tier.map_or_else(|| "none".to_string(), |t| t.to_string());
    let id = event_id(&[
        shop.as_str(),
        customer.as_str(),
        "tier",
        &show(from),
        &show(after.tier),
        &spend,
        &after.orders_earned.to_string(),
        &decimal(after.lifetime_issued),
    ]);
    Some(OutgoingEvent {
        shop: shop.clone(),
        customer: customer.clone(),
        sequence: sequence.to_string(),
        body: EventBody {
            id,
            version: BODY_VERSION,
            kind: EventKind::TierChanged,
            shop: shop.as_str().to_string(),
            customer_id: customer.as_str().to_string(),
            occurred_at,
            currency: after.currency,
            amount: None,
            deltas: None,
            entry_kind: None,
            entry_id: None,
            order_id: None,
            balance_after: Some(Balance::of(after)),
            tier: Some(TierChange {
                from,
                to: after.tier,
                lifetime_eligible_spend: spend,
            }),
        },
    })
}

/// The sums of a group of entries' deltas (available, pending, debt).
fn delta_sums(entries: &[&LedgerEntry]) -> Option<(Money, Money, Money)> {
    let first = entries.first()?;
    let zero = Money::zero(first.available_delta.currency());
    entries.iter().try_fold((zero, zero, zero), |(a, p, d), e| {
        Some((
            a.checked_add(e.available_delta).ok()?,
            p.checked_add(e.pending_delta).ok()?,
            d.checked_add(e.debt_delta).ok()?,
        ))
    })
}

/// What an account write changed (available, pending, debt).
fn account_diff(before: Option<&Account>, after: &Account) -> Option<(Money, Money, Money)> {
    let zero = Money::zero(after.currency);
    let (a0, p0, d0) = before.map_or((zero, zero, zero), |b| (b.available, b.pending, b.debt));
    Some((
        after.available.checked_sub(a0).ok()?,
        after.pending.checked_sub(p0).ok()?,
        after.debt.checked_sub(d0).ok()?,
    ))
}

/// Every event of a batch of changes, in feed order. `written_at` is the
/// time of a tier change whose write left no entry in the batch (the
/// stream record's creation time, the same on every redelivery).
///
/// One write's entries share their time (the "now" the engine was given)
/// and their customer; they are paired with the account image of that
/// customer whose change equals their deltas' sums, the nearest in the
/// feed when several do (the stream does not order the items of one
/// transaction among themselves).
pub fn events_from_changes(changes: &[Change], written_at: DateTime<Utc>) -> Vec<OutgoingEvent> {
    let accounts: Vec<(usize, &Change, Option<&Account>, &Account)> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.kind {
            ChangeKind::Account {
                before,
                after: Some(after),
            } => Some((i, c, before.as_deref(), after.as_ref())),
            _ => None,
        })
        .collect();
    let entries: Vec<(usize, &Change, &LedgerEntry)> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.kind {
            ChangeKind::Entry(entry) => Some((i, c, entry.as_ref())),
            // A referral credit or a coupon use moves no balance by itself:
            // the referrer's credit arrives as its own ledger entry.
            ChangeKind::Account { .. }
            | ChangeKind::Referral { .. }
            | ChangeKind::CouponUse { .. } => None,
        })
        .collect();
    let same = |a: &Change, b: &Change| a.shop == b.shop && a.customer == b.customer;
    let mut events = Vec::new();
    for &(index, change, entry) in &entries {
        let group: Vec<&LedgerEntry> = entries
            .iter()
            .filter(|(_, c, e)| same(c, change) && e.at == entry.at)
            .map(|(_, _, e)| *e)
            .collect();
        let sums = delta_sums(&group);
        let after = accounts
            .iter()
            .filter(|(_, c, before, after)| {
                same(c, change) && sums.is_some() && account_diff(*before, after) == sums
            })
            .min_by_key(|(i, ..)| i.abs_diff(index))
            .map(|(_, _, _, after)| *after);
        events.push(entry_event(
            &change.shop,
            &change.customer,
            &change.sequence,
            entry,
            after,
        ));
    }
    for &(index, change, before, after) in &accounts {
        // The write's time: its entries' (the customer's nearest entry).
        let at = entries
            .iter()
            .filter(|(_, c, _)| same(c, change))
            .min_by_key(|(i, ..)| i.abs_diff(index))
            .map_or(written_at, |(_, _, e)| e.at);
        if let Some(event) = tier_event(
            &change.shop,
            &change.customer,
            &change.sequence,
            before,
            after,
            at,
        ) {
            events.push(event);
        }
    }
    events.sort_by(|a, b| sequence_order(&a.sequence, &b.sequence));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::parse("USD").unwrap()).unwrap()
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, minute, 0).unwrap()
    }

    fn shop() -> ShopId {
        ShopId::parse("demo.myshopify.com").unwrap()
    }

    fn ann() -> CustomerId {
        CustomerId::parse("ann").unwrap()
    }

    fn entry(id: &str, kind: EntryKind, a: &str, p: &str, d: &str, minute: u32) -> LedgerEntry {
        LedgerEntry {
            entry_id: id.into(),
            at: at(minute),
            kind,
            order_id: None,
            available_delta: usd(a),
            pending_delta: usd(p),
            debt_delta: usd(d),
            funding: None,
            note: None,
        }
    }

    fn account(available: &str, pending: &str, tier: Option<usize>) -> Account {
        let mut account = Account::open(shop(), ann(), Currency::parse("USD").unwrap());
        account.available = usd(available);
        account.pending = usd(pending);
        account.tier = tier;
        account.lifetime_eligible_spend = usd("500.00");
        account
    }

    fn change(sequence: u64, kind: ChangeKind) -> Change {
        Change {
            shop: shop(),
            customer: ann(),
            sequence: format!("{sequence:020}"),
            kind,
        }
    }

    fn entry_change(sequence: u64, entry: LedgerEntry) -> Change {
        change(sequence, ChangeKind::Entry(Box::new(entry)))
    }

    fn account_change(sequence: u64, before: Option<Account>, after: Account) -> Change {
        change(
            sequence,
            ChangeKind::Account {
                before: before.map(Box::new),
                after: Some(Box::new(after)),
            },
        )
    }

    #[test]
    fn every_ledger_kind_maps_to_one_of_the_seven_event_kinds_with_a_positive_amount() {
        let cases = [
            (
                EntryKind::Earn,
                ("0.00", "5.00", "0.00"),
                EventKind::Earned,
                "5.00",
            ),
            (
                EntryKind::Bonus,
                ("3.00", "0.00", "0.00"),
                EventKind::Earned,
                "3.00",
            ),
            (
                EntryKind::Release,
                ("4.00", "-5.00", "-1.00"),
                EventKind::Released,
                "5.00",
            ),
            (
                EntryKind::Redeem,
                ("-7.00", "0.00", "2.00"),
                EventKind::Redeemed,
                "9.00",
            ),
            (
                EntryKind::Restore,
                ("2.00", "0.00", "0.00"),
                EventKind::Redeemed,
                "-2.00",
            ),
            (
                EntryKind::Clawback,
                ("-1.00", "-2.00", "0.50"),
                EventKind::ClawedBack,
                "3.50",
            ),
            (
                EntryKind::Adjust,
                ("-4.00", "0.00", "0.00"),
                EventKind::Adjusted,
                "-4.00",
            ),
            (
                EntryKind::Expire,
                ("-6.00", "0.00", "0.00"),
                EventKind::Expired,
                "6.00",
            ),
        ];
        for (kind, (a, p, d), expected, amount) in cases {
            let event = entry_event(&shop(), &ann(), "1", &entry("e:0", kind, a, p, d, 0), None);
            assert_eq!(event.body.kind, expected, "{kind:?}");
            assert_eq!(event.body.amount.as_deref(), Some(amount), "{kind:?}");
            assert_eq!(event.body.entry_kind, Some(kind));
        }
    }

    #[test]
    fn the_body_carries_amounts_as_decimal_strings_and_the_version() {
        let changes = [
            entry_change(
                1,
                entry("adj:1:0", EntryKind::Adjust, "5.00", "0.00", "0.00", 1),
            ),
            account_change(2, None, account("5.00", "0.00", None)),
        ];
        let events = events_from_changes(&changes, at(59));
        assert_eq!(events.len(), 1);
        let json: serde_json::Value = serde_json::from_str(&events[0].json().unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["kind"], "adjusted");
        assert_eq!(json["shop"], "demo.myshopify.com");
        assert_eq!(json["customer_id"], "ann");
        assert_eq!(json["currency"], "USD");
        assert_eq!(json["amount"], "5.00");
        assert_eq!(json["deltas"]["available"], "5.00");
        assert_eq!(json["balance_after"]["available"], "5.00");
        assert_eq!(json["occurred_at"], "2026-11-30T12:01:00Z");
        assert!(json["id"].as_str().unwrap().starts_with("evt_"));
    }

    #[test]
    fn the_event_id_depends_on_the_entry_not_on_the_delivery() {
        let earn = entry("order:1:earn:0", EntryKind::Earn, "0.00", "5.00", "0.00", 1);
        let first = events_from_changes(&[entry_change(7, earn.clone())], at(0));
        let again = events_from_changes(&[entry_change(7, earn.clone())], at(30));
        let elsewhere = events_from_changes(&[entry_change(99, earn)], at(0));
        assert_eq!(first[0].id(), again[0].id());
        assert_eq!(first[0].id(), elsewhere[0].id());
        let other = entry("order:2:earn:0", EntryKind::Earn, "0.00", "5.00", "0.00", 1);
        assert_ne!(
            first[0].id(),
            events_from_changes(&[entry_change(7, other)], at(0))[0].id()
        );
    }

    #[test]
    fn an_entry_is_paired_with_its_own_writes_account_whichever_comes_first() {
        // Two writes of Ann's: the first's account record arrives before its
        // entry, the second's after.
        let first_after = account("5.00", "0.00", None);
        let second_after = account("5.00", "3.00", None);
        let changes = [
            account_change(1, None, first_after.clone()),
            entry_change(
                2,
                entry("a:0", EntryKind::Adjust, "5.00", "0.00", "0.00", 1),
            ),
            entry_change(3, entry("b:0", EntryKind::Earn, "0.00", "3.00", "0.00", 2)),
            account_change(4, Some(first_after), second_after),
        ];
        let events = events_from_changes(&changes, at(0));
        assert_eq!(events.len(), 2);
        let balance = |i: usize| events[i].body.balance_after.clone().unwrap();
        assert_eq!(
            (balance(0).available.as_str(), balance(0).pending.as_str()),
            ("5.00", "0.00")
        );
        assert_eq!(
            (balance(1).available.as_str(), balance(1).pending.as_str()),
            ("5.00", "3.00")
        );
    }

    #[test]
    fn an_entry_whose_account_is_in_another_batch_has_no_balance_after() {
        let changes = [entry_change(
            1,
            entry("a:0", EntryKind::Adjust, "5.00", "0.00", "0.00", 1),
        )];
        assert_eq!(
            events_from_changes(&changes, at(0))[0].body.balance_after,
            None
        );
    }

    #[test]
    fn a_tier_change_is_an_event_and_the_same_tier_is_none() {
        let before = account("5.00", "0.00", None);
        let after = account("5.00", "10.00", Some(0));
        let changes = [
            entry_change(1, entry("o:0", EntryKind::Earn, "0.00", "10.00", "0.00", 3)),
            account_change(2, Some(before), after.clone()),
            account_change(3, Some(after.clone()), after),
        ];
        let events = events_from_changes(&changes, at(0));
        let tiers: Vec<_> = events
            .iter()
            .filter(|e| e.body.kind == EventKind::TierChanged)
            .collect();
        assert_eq!(tiers.len(), 1);
        let tier = tiers[0].body.tier.clone().unwrap();
        assert_eq!((tier.from, tier.to), (None, Some(0)));
        assert_eq!(tiers[0].body.occurred_at, at(3));
        assert_eq!(tier.lifetime_eligible_spend, "500.00");
        // Redelivered alone, far from its entry: the same id.
        let alone = events_from_changes(&changes[1..2], at(40));
        assert_eq!(alone[0].id(), tiers[0].id());
        assert_eq!(
            Decimal::from_str(&tier.lifetime_eligible_spend).unwrap(),
            Decimal::from(500)
        );
    }

    #[test]
    fn kinds_are_named_as_documented() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "earned",
                "released",
                "redeemed",
                "clawed_back",
                "adjusted",
                "expired",
                "tier_changed"
            ]
        );
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
