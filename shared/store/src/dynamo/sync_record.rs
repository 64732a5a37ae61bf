//! The code sync's record per shop (`SHOP#{shop}` / `PLATFORM_SYNC`): when
//! a code was last put, the syncs given up on since the last finished
//! reconcile, and the last reconcile's figures (docs/platform-sync.md). One
//! UpdateItem per note (ADD for the counts, so notes of concurrent batches
//! add up), one GetItem to read. The item's writes reach the table's
//! stream like any other; its consumers read no such entity and skip it.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};

use cashback_app::store::{ReconcileRecord, StoreError, SyncNote, SyncRecord};
use cashback_core::ids::ShopId;

use super::attr::*;
use super::errors::from_sdk;
use super::DynamoStore;
use crate::keys;

const ENTITY: &str = "PLATFORM_SYNC";
const SYNCED_AT: &str = "synced_at";
const PARKED: &str = "parked";
const PARKED_REASON: &str = "parked_reason";
const PARKED_AT: &str = "parked_at";
const REC_STARTED: &str = "rec_started_at";
const REC_AT: &str = "rec_at";
const REC_CHECKED: &str = "rec_checked";
const REC_DRIFTED: &str = "rec_drifted";
const REC_REPAIRED: &str = "rec_repaired";
const REC_FAILED: &str = "rec_failed";
const REC_FINISHED: &str = "rec_finished";

fn time(at: DateTime<Utc>) -> AttributeValue {
    s(at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn get_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_s(item, name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|e| corrupt(item, format!("{name}: {e}")))
        })
        .transpose()
}

/// The update expression of a note: its SET and ADD clauses.
fn update(note: &SyncNote, expr: &mut Expr) -> String {
    let mut set = vec![format!(
        "{} = {}",
        expr.name(ENTITY_TYPE),
        expr.value("entity", s(ENTITY))
    )];
    let mut add = Vec::new();
    if let Some(at) = note.synced_at {
        set.push(format!(
            "{} = {}",
            expr.name(SYNCED_AT),
            expr.value("synced", time(at))
        ));
    }
    let finished = note.reconcile.as_ref().is_some_and(|step| step.finished);
    if let Some(parked) = &note.parked {
        if !finished {
            add.push(format!(
                "{} {}",
                expr.name(PARKED),
                expr.value("parked", n_u64(parked.count))
            ));
        }
        set.push(format!(
            "{} = {}",
            expr.name(PARKED_REASON),
            expr.value("reason", s(parked.reason.clone()))
        ));
        set.push(format!(
            "{} = {}",
            expr.name(PARKED_AT),
            expr.value("parked_at", time(parked.at))
        ));
    }
    if let Some(step) = &note.reconcile {
        let at = expr.value("rec_at", time(step.at));
        set.push(format!("{} = {at}", expr.name(REC_AT)));
        set.push(format!(
            "{} = {}",
            expr.name(REC_FINISHED),
            expr.value("finished", AttributeValue::Bool(step.finished))
        ));
        let figures = [
            (REC_CHECKED, step.checked),
            (REC_DRIFTED, step.drifted),
            (REC_REPAIRED, step.repaired),
            (REC_FAILED, step.failed),
        ];
        if step.first {
            set.push(format!("{} = {at}", expr.name(REC_STARTED)));
            for (name, value) in figures {
                set.push(format!(
                    "{} = {}",
                    expr.name(name),
                    expr.value(name, n_u64(value))
                ));
            }
        } else {
            let started = expr.name(REC_STARTED);
            set.push(format!("{started} = if_not_exists({started}, {at})"));
            for (name, value) in figures {
                add.push(format!(
                    "{} {}",
                    expr.name(name),
                    expr.value(name, n_u64(value))
                ));
            }
        }
        if step.finished {
            set.push(format!(
                "{} = {}",
                expr.name(PARKED),
                expr.value("no_parked", n_u64(0))
            ));
        }
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !add.is_empty() {
        expression.push_str(&format!(" ADD {}", add.join(", ")));
    }
    expression
}

fn decode(item: &Item) -> Result<SyncRecord, StoreError> {
    let reconcile = match get_time(item, REC_AT)? {
        None => None,
        Some(at) => Some(ReconcileRecord {
            started_at: get_time(item, REC_STARTED)?.unwrap_or(at),
            at,
            checked: get_u64(item, REC_CHECKED)?.unwrap_or(0),
            drifted: get_u64(item, REC_DRIFTED)?.unwrap_or(0),
            repaired: get_u64(item, REC_REPAIRED)?.unwrap_or(0),
            failed: get_u64(item, REC_FAILED)?.unwrap_or(0),
            finished: item
                .get(REC_FINISHED)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        }),
    };
    Ok(SyncRecord {
        last_synced_at: get_time(item, SYNCED_AT)?,
        parked: get_u64(item, PARKED)?.unwrap_or(0),
        parked_reason: get_s(item, PARKED_REASON).map(str::to_string),
        parked_at: get_time(item, PARKED_AT)?,
        reconcile,
    })
}

impl DynamoStore {
    pub(crate) async fn update_sync_record(
        &self,
        shop: &ShopId,
        note: &SyncNote,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let expression = update(note, &mut expr);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::shop_pk(shop), keys::SYNC_RECORD_SK)))
            .update_expression(expression)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await
            .map_err(|e| from_sdk("UpdateItem", e))?;
        Ok(())
    }

    pub(crate) async fn read_sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        match self
            .get(key(keys::shop_pk(shop), keys::SYNC_RECORD_SK))
            .await?
        {
            Some(item) => decode(&item),
            None => Ok(SyncRecord::default()),
        }
    }
}
