//! The aggregate items' attributes (docs/reports.md): how the reporting
//! model's figures and counters are named in DynamoDB. The model indexes
//! them by enums; only this file knows their attribute names.
//!
//! A day item holds one number per non-zero sum, named `{kind}_{metric}`
//! (`earn_available`, `clawback_partner`, ...); a shard's counters item
//! holds `customers`, `earners`, `repeaters` and `tier_{key}` (`tier_none`,
//! `tier_0`, ...). Every one is moved by `ADD`, so concurrent writes add up.

use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;

use cashback_app::store::{
    Counter, CustomerCounts, DayFigures, Metric, ShopAggregates, StoreError, ENTRY_KINDS,
};
use cashback_core::ledger::EntryKind;

use super::attr::*;
use crate::keys;

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Earn => "earn",
        EntryKind::Release => "release",
        EntryKind::Redeem => "redeem",
        EntryKind::Restore => "restore",
        EntryKind::Clawback => "clawback",
        EntryKind::Adjust => "adjust",
        EntryKind::Expire => "expire",
        EntryKind::Bonus => "bonus",
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Available => "available",
        Metric::Pending => "pending",
        Metric::Debt => "debt",
        Metric::Merchant => "merchant",
        Metric::Partner => "partner",
        Metric::Credited => "credited",
        Metric::Birthday => "birthday",
        Metric::Anniversary => "anniversary",
        Metric::WinBack => "win_back",
        Metric::Milestone => "milestone",
    }
}

const CUSTOMERS: &str = "customers";
const EARNERS: &str = "earners";
const REPEATERS: &str = "repeaters";
const TIER_PREFIX: &str = "tier_";

/// The attribute of one day figure: `{kind}_{metric}`.
fn figure_attribute(kind: EntryKind, metric: Metric) -> String {
    format!("{}_{}", kind_name(kind), metric_name(metric))
}

/// The figure an attribute holds, or None for an attribute that is not one.
fn figure_of(attribute: &str) -> Option<(EntryKind, Metric)> {
    let (kind, metric) = attribute.split_once('_')?;
    let kind = ENTRY_KINDS.into_iter().find(|k| kind_name(*k) == kind)?;
    let metric = Metric::ALL
        .into_iter()
        .find(|m| metric_name(*m) == metric)?;
    Some((kind, metric))
}

fn counter_attribute(counter: &Counter) -> String {
    match counter {
        Counter::Customers => CUSTOMERS.to_string(),
        Counter::Earners => EARNERS.to_string(),
        Counter::Repeaters => REPEATERS.to_string(),
        Counter::Tier(key) => format!("{TIER_PREFIX}{key}"),
    }
}

/// The counter an attribute holds, or None for an attribute that is not one.
fn counter_of(attribute: &str) -> Option<Counter> {
    Some(match attribute {
        CUSTOMERS => Counter::Customers,
        EARNERS => Counter::Earners,
        REPEATERS => Counter::Repeaters,
        _ => Counter::Tier(attribute.strip_prefix(TIER_PREFIX)?.to_string()),
    })
}

/// What a day item adds: every non-zero figure, by attribute name.
pub(crate) fn day_attributes(figures: &DayFigures) -> Vec<(String, Decimal)> {
    figures
        .nonzero()
        .into_iter()
        .map(|(kind, metric, value)| (figure_attribute(kind, metric), value))
        .collect()
}

/// What a counters item adds: every non-zero counter, by attribute name.
pub(crate) fn counter_attributes(counts: &CustomerCounts) -> Vec<(String, i64)> {
    counts
        .nonzero()
        .into_iter()
        .map(|(counter, value)| (counter_attribute(&counter), value))
        .collect()
}

/// Adds an aggregate item (a day's figures, or a shard's counters) to what
/// has been read so far. Attributes that are not figures are skipped.
pub(crate) fn decode_aggregate(item: &Item, into: &mut ShopAggregates) -> Result<(), StoreError> {
    let sk = require_s(item, SK)?;
    let numbers = item.iter().filter_map(|(name, value)| match value {
        AttributeValue::N(raw) => Some((name, raw)),
        _ => None,
    });
    if sk == keys::COUNTS_SK {
        let mut counts = CustomerCounts::default();
        for (name, raw) in numbers {
            let value = parse_decimal(raw)
                .and_then(|d| i64::try_from(d).ok())
                .ok_or_else(|| corrupt(item, format!("{name} is not a whole number")))?;
            if let Some(counter) = counter_of(name) {
                counts.set(counter, value);
            }
        }
        into.counts.add(&counts);
        return Ok(());
    }
    let day = sk
        .strip_prefix("DAY#")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| corrupt(item, "an aggregate sort key that is not DAY#yyyy-mm-dd"))?;
    let mut figures = DayFigures::default();
    for (name, raw) in numbers {
        let value =
            parse_decimal(raw).ok_or_else(|| corrupt(item, format!("{name} is not a decimal")))?;
        if let Some((kind, metric)) = figure_of(name) {
            figures.set(kind, metric, value);
        }
    }
    into.add_day(day, &figures);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_and_counter_reads_back_from_its_attribute_name() {
        for kind in ENTRY_KINDS {
            for metric in Metric::ALL {
                let name = figure_attribute(kind, metric);
                assert_eq!(figure_of(&name), Some((kind, metric)), "{name}");
            }
        }
        assert_eq!(
            figure_attribute(EntryKind::Earn, Metric::Available),
            "earn_available"
        );
        for counter in [
            Counter::Customers,
            Counter::Earners,
            Counter::Repeaters,
            Counter::Tier(CustomerCounts::tier_key(None)),
            Counter::Tier(CustomerCounts::tier_key(Some(2))),
        ] {
            let name = counter_attribute(&counter);
            assert_eq!(counter_of(&name), Some(counter), "{name}");
        }
        assert_eq!(
            counter_attribute(&Counter::Tier("none".into())),
            "tier_none"
        );
        assert_eq!(figure_of("entity_type"), None);
        assert_eq!(counter_of("version"), None);
    }
}
