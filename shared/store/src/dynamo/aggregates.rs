//! The aggregate items (docs/reports.md): how the reporting model's figures
//! and counters are named in DynamoDB, how the report aggregator adds to
//! them exactly once, and how a report reads them back. The model indexes
//! them by enums; only this file knows their attribute names.
//!
//! A day item (`DAY#{yyyy-mm-dd}`) and a month item (`MONTH#{yyyy-mm}`)
//! hold one number per non-zero sum, named `{kind}_{metric}`
//! (`earn_available`, `clawback_partner`, ...); a shard's counters item
//! (`COUNTS`) holds `customers`, `earners`, `repeaters` and `tier_{key}`
//! (`tier_none`, `tier_0`, ...), and `months_since`: the day the aggregator
//! first added to the shard. Every number is moved by `ADD`, only by the
//! aggregator, in one transaction with the feed markers of the customers
//! whose changes it sums (`REPORTED` in each customer's partition: the
//! position of their last change added), whose conditions make a part
//! delivered twice add nothing.
//!
//! Month items are kept with their days, so they are exact from the first
//! part the aggregator added. Day items written before there was an
//! aggregator (by the order path of earlier versions) have no month: a
//! shard's months are trusted only after the month of its `months_since`,
//! and a report reads the days of earlier months.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use cashback_app::store::{
    month_end, month_of, Added, Counter, CustomerCounts, DayFigures, Metric, ReportPart,
    ReportStore, ShopAggregates, StoreError, AGGREGATE_SHARDS, ENTRY_KINDS,
};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::EntryKind;

use super::attr::*;
use super::errors::{
    cancellation_reasons, from_sdk, is_condition_failed, is_conflict_code, is_transient_code,
};
use super::items::SHOP;
use super::DynamoStore;
use crate::keys;

/// The COUNTS attribute holding the day the aggregator first added to the
/// shard.
const MONTHS_SINCE: &str = "months_since";

/// The marker's attribute holding the last position added.
const LAST: &str = "last";

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

fn figures_of(item: &Item) -> Result<DayFigures, StoreError> {
    let mut figures = DayFigures::default();
    for (name, value) in item {
        let AttributeValue::N(raw) = value else {
            continue;
        };
        if let Some((kind, metric)) = figure_of(name) {
            let value = parse_decimal(raw)
                .ok_or_else(|| corrupt(item, format!("{name} is not a decimal")))?;
            figures.set(kind, metric, value);
        }
    }
    Ok(figures)
}

fn counts_of(item: &Item) -> Result<CustomerCounts, StoreError> {
    let mut counts = CustomerCounts::default();
    for (name, value) in item {
        let AttributeValue::N(raw) = value else {
            continue;
        };
        if let Some(counter) = counter_of(name) {
            let value = parse_decimal(raw)
                .and_then(|d| i64::try_from(d).ok())
                .ok_or_else(|| corrupt(item, format!("{name} is not a whole number")))?;
            counts.set(counter, value);
        }
    }
    Ok(counts)
}

/// A day item's day.
fn day_of(item: &Item) -> Result<NaiveDate, StoreError> {
    require_s(item, SK)?
        .strip_prefix("DAY#")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            corrupt(
                item,
                "a day aggregate's sort key that is not DAY#yyyy-mm-dd",
            )
        })
}

/// A month item's month (its first day).
fn month_key_of(item: &Item) -> Result<NaiveDate, StoreError> {
    require_s(item, SK)?
        .strip_prefix("MONTH#")
        .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
        .ok_or_else(|| {
            corrupt(
                item,
                "a month aggregate's sort key that is not MONTH#yyyy-mm",
            )
        })
}

/// One `ADD` of figures (and counters) to an aggregate item, creating it.
fn add_item(
    table: &str,
    shop: &ShopId,
    pk: &str,
    sk: String,
    numbers: Vec<(String, AttributeValue)>,
    also: Option<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let mut set = vec![
        format!(
            "{} = {}",
            expr.name(ENTITY_TYPE),
            expr.value("entity", s("AGGREGATE"))
        ),
        format!(
            "{} = {}",
            expr.name(SHOP),
            expr.value("shop", s(shop.as_str()))
        ),
    ];
    if let Some((name, value)) = also {
        let placeholder = expr.name(name);
        set.push(format!(
            "{placeholder} = if_not_exists({placeholder}, {})",
            expr.value("also", value)
        ));
    }
    let adds: Vec<String> = numbers
        .into_iter()
        .enumerate()
        .map(|(n, (name, value))| {
            format!(
                "{} {}",
                expr.name(&name),
                expr.value(&format!("v{n}"), value)
            )
        })
        .collect();
    let mut expression = format!("SET {}", set.join(", "));
    if !adds.is_empty() {
        expression.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key(pk, sk)))
        .update_expression(expression)
        .set_expression_attribute_names(expr.names())
        .set_expression_attribute_values(expr.values())
        .build()
        .map_err(|e| StoreError::Other(format!("cannot build Update: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn figure_numbers(figures: &DayFigures) -> Vec<(String, AttributeValue)> {
    day_attributes(figures)
        .into_iter()
        .map(|(name, value)| (name, n_decimal(value)))
        .collect()
}

/// The transaction that adds one part: the customers' markers first (their
/// conditions are what refuse changes added before), then the day, month
/// and counters items of the part's shard. At most customers + 2 x days +
/// 1 items: the aggregator keeps a part under DynamoDB's 100.
fn part_items(table: &str, part: &ReportPart) -> Result<Vec<TransactWriteItem>, StoreError> {
    let shop = &part.shop;
    let mut items = Vec::new();
    for mark in &part.marks {
        let mut marker = key(
            keys::account_key(shop, &mark.customer),
            keys::REPORT_MARK_SK,
        );
        marker.insert(ENTITY_TYPE.into(), s("REPORT_MARK"));
        marker.insert(LAST.into(), s(mark.last.clone()));
        let mut expr = Expr::default();
        let condition = format!(
            "attribute_not_exists({}) OR {} < {}",
            expr.name(PK),
            expr.name(LAST),
            expr.value("first", s(mark.first.clone()))
        );
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(marker))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build Put: {e}")))?;
        items.push(TransactWriteItem::builder().put(put).build());
    }

    let pk = keys::aggregate_pk(shop, part.shard);
    for (day, figures) in &part.sums.days {
        if !figures.is_zero() {
            let sk = keys::aggregate_day_sk(*day);
            items.push(add_item(
                table,
                shop,
                &pk,
                sk,
                figure_numbers(figures),
                None,
            )?);
        }
    }
    for (month, figures) in part.sums.months() {
        if !figures.is_zero() {
            let sk = keys::aggregate_month_sk(month);
            items.push(add_item(
                table,
                shop,
                &pk,
                sk,
                figure_numbers(&figures),
                None,
            )?);
        }
    }
    let counts: Vec<(String, AttributeValue)> = counter_attributes(&part.sums.counts)
        .into_iter()
        .map(|(name, value)| (name, n_i64(value)))
        .collect();
    let since = part
        .written
        .map(|day| (MONTHS_SINCE, s(day.format("%Y-%m-%d").to_string())));
    if !counts.is_empty() || since.is_some() {
        let sk = keys::COUNTS_SK.to_string();
        items.push(add_item(table, shop, &pk, sk, counts, since)?);
    }
    Ok(items)
}

#[async_trait::async_trait]
impl ReportStore for DynamoStore {
    #[tracing::instrument(skip(self, part), fields(shop = %part.shop, customers = part.marks.len()), err(level = "info"))]
    async fn add_report_part(&self, part: &ReportPart) -> Result<Added, StoreError> {
        let items = part_items(&self.table, part)?;
        let error = match self.transact_items(items).await {
            Ok(()) => return Ok(Added::Now),
            Err(error) => error,
        };
        let Some(reasons) = cancellation_reasons(&error) else {
            return Err(from_sdk("TransactWriteItems", error));
        };
        let mut refused = Vec::new();
        for (mark, reason) in part.marks.iter().zip(&reasons) {
            if !is_condition_failed(reason) {
                continue;
            }
            let last = match reason.item() {
                Some(old) => require_s(old, LAST)?.to_string(),
                // An emulator that ignores ALL_OLD: read it.
                None => self.report_mark(&part.shop, &mark.customer).await?,
            };
            refused.push((mark.customer.clone(), last));
        }
        if !refused.is_empty() {
            return Ok(Added::Before { refused });
        }
        let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
        if codes.iter().any(|c| is_conflict_code(c)) {
            Err(StoreError::Conflict(format!(
                "report aggregates of {}",
                part.shop
            )))
        } else if codes.iter().any(|c| is_transient_code(c)) {
            Err(StoreError::Unavailable(
                "report aggregates throttled".into(),
            ))
        } else {
            Err(from_sdk("TransactWriteItems", error))
        }
    }
}

impl DynamoStore {
    /// The position of a customer's last change added.
    async fn report_mark(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
    ) -> Result<String, StoreError> {
        let marker = key(keys::account_key(shop, customer), keys::REPORT_MARK_SK);
        match self.get(marker).await? {
            Some(item) => Ok(require_s(&item, LAST)?.to_string()),
            None => Err(StoreError::Other(
                "a report marker refused a part but is not there".into(),
            )),
        }
    }

    /// The aggregates a report of `from..=to` reads (the port's
    /// `aggregates`): per shard, its counters item, its month items up to
    /// `to`, and the day items of the months it cannot take whole: months
    /// the shard kept before it had months (up to the month of its
    /// `months_since`), and the months `from` and `to` fall in when the
    /// period covers them in part. Whatever the shop's age: 1 BatchGetItem
    /// and at most 3 Queries per shard.
    pub(crate) async fn read_aggregates(
        &self,
        shop: &ShopId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        let mut result = ShopAggregates::default();
        let counts_keys = (0..AGGREGATE_SHARDS)
            .map(|shard| key(keys::aggregate_pk(shop, shard), keys::COUNTS_SK))
            .collect();
        let mut since: BTreeMap<String, NaiveDate> = BTreeMap::new();
        for item in self.batch_get(counts_keys).await? {
            result.counts.add(&counts_of(&item)?);
            if let Some(day) = get_s(&item, MONTHS_SINCE) {
                let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| corrupt(&item, "months_since is not a date"))?;
                since.insert(require_s(&item, PK)?.to_string(), day);
            }
        }
        for shard in 0..AGGREGATE_SHARDS {
            let pk = keys::aggregate_pk(shop, shard);
            // Months are exact only after the month the aggregator started in.
            let trusted_after = since.get(&pk).map(|day| month_end(month_of(*day)));
            let whole = |month: NaiveDate| {
                trusted_after.is_some_and(|after| month > after)
                    && ShopAggregates::whole_month(month, from, to)
            };
            if trusted_after.is_some() {
                let upper = keys::aggregate_month_sk(month_of(to));
                self.query_range(&pk, "MONTH#", &upper, |item| {
                    let month = month_key_of(item)?;
                    if whole(month) {
                        result.add_month(month, &figures_of(item)?);
                    }
                    Ok(())
                })
                .await?;
            }
            let mut ranges: Vec<(NaiveDate, NaiveDate)> = Vec::new();
            match trusted_after {
                None => ranges.push((NaiveDate::MIN, to)),
                Some(after) => {
                    ranges.push((NaiveDate::MIN, after.min(to)));
                    for month in [month_of(from), month_of(to)] {
                        if month > after && !whole(month) {
                            ranges.push((month, month_end(month).min(to)));
                        }
                    }
                }
            }
            ranges.sort();
            ranges.dedup();
            for (first, last) in ranges {
                if first > last {
                    continue;
                }
                let lower = if first == NaiveDate::MIN {
                    "DAY#".to_string()
                } else {
                    keys::aggregate_day_sk(first)
                };
                let upper = keys::aggregate_day_sk(last);
                self.query_range(&pk, &lower, &upper, |item| {
                    let day = day_of(item)?;
                    if !whole(month_of(day)) {
                        result.add_day(day, &figures_of(item)?);
                    }
                    Ok(())
                })
                .await?;
            }
        }
        Ok(result)
    }

    /// Every item of a partition with `lower <= sk <= upper`.
    async fn query_range(
        &self,
        pk: &str,
        lower: &str,
        upper: &str,
        each: impl FnMut(&Item) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let key_condition = format!(
            "{} = {} AND {} BETWEEN {} AND {}",
            expr.name(PK),
            expr.value("pk", s(pk)),
            expr.name(SK),
            expr.value("lower", s(lower)),
            expr.value("upper", s(upper)),
        );
        self.query_partition(&key_condition, &expr, pk, each).await
    }
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
