//! DynamoDB capacity units computed from item sizes, because moto reports
//! placeholder capacity (it does not size items). The rules are DynamoDB's
//! published ones:
//!
//! - an item's size is the sum over its attributes of the name's UTF-8
//!   length plus the value's size: a string its UTF-8 length, a number
//!   about one byte per two significant digits plus one, binary its length,
//!   a boolean or null one byte, a list or map 3 bytes plus each element
//!   and one byte per element;
//! - a write costs 1 WCU per started KB of the larger of the item before and
//!   after; inside TransactWriteItems every item costs twice that (prepare
//!   and commit); a global secondary index whose key the write adds,
//!   removes or changes costs standard writes of the projected entry (a
//!   changed key is a delete plus a put);
//! - a strongly consistent read costs 1 RCU per started 4 KB of each item,
//!   an item that does not exist still 1; an eventually consistent read (every
//!   GSI query) half; a Query is rounded on the sum of what it returns.
//!
//! The items come from the wire: [`WireLog`] is an SDK interceptor that
//! keeps each request's and response's JSON, and [`Snapshot`] is the whole
//! (small, per-run) table read with a client of its own before and after an
//! operation, so a write is sized on the items it really left behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

/// The due indexes of template.yaml: (key attributes, projected non-keys).
pub const INDEXES: [(&str, &str); 3] = [
    ("release_pk", "release_sk"),
    ("reminder_pk", "reminder_sk"),
    ("expiry_pk", "expiry_sk"),
];
/// What every due index projects besides the keys (template.yaml).
pub const PROJECTED: [&str; 3] = ["shop", "customer", "order_id"];

/// Bytes DynamoDB counts for a number written as `text`.
pub fn number_size(text: &str) -> usize {
    let digits: String = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// The size of a value in DynamoDB's JSON wire format (`{"S": ".."}`...).
pub fn json_value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number_size(n),
        // Base64 on the wire: three bytes per four characters.
        ("B", Value::String(b)) => b.trim_end_matches('=').len() * 3 / 4,
        ("BOOL", _) | ("NULL", _) => 1,
        ("SS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(number_size)
            .sum(),
        ("BS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|b| b.trim_end_matches('=').len() * 3 / 4)
            .sum(),
        ("L", Value::Array(items)) => {
            3 + items.iter().map(|v| 1 + json_value_size(v)).sum::<usize>()
        }
        ("M", Value::Object(map)) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + json_value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// The size of an item in the JSON wire format.
pub fn json_item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + json_value_size(v)).sum()
}

/// The size of an SDK attribute value.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

pub type Item = HashMap<String, AttributeValue>;

pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of one item write: per started KB, at least one.
pub fn wcu(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// Strongly consistent read units: per started 4 KB, at least one.
pub fn rcu(size: usize) -> f64 {
    size.div_ceil(4096).max(1) as f64
}

/// An item's table key: (pk, sk).
pub type Key = (String, String);

fn key_of_item(item: &Item) -> Option<Key> {
    match (item.get("pk"), item.get("sk")) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
            Some((pk.clone(), sk.clone()))
        }
        _ => None,
    }
}

fn key_of_json(key: &Value) -> Option<Key> {
    Some((
        key.get("pk")?.get("S")?.as_str()?.to_string(),
        key.get("sk")?.get("S")?.as_str()?.to_string(),
    ))
}

/// Every item of a table, by key.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(pub HashMap<Key, Item>);

impl Snapshot {
    /// Scans `table` whole (with a client that is not the store's, so the
    /// store's round-trip counts are untouched). For small benchmark tables.
    pub async fn take(client: &Client, table: &str) -> Result<Snapshot, BoxError> {
        let mut items = HashMap::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                if let Some(key) = key_of_item(item) {
                    items.insert(key, item.clone());
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(Snapshot(items));
            }
        }
    }

    pub fn size(&self, key: &Key) -> Option<usize> {
        self.0.get(key).map(item_size)
    }
}

/// One HTTP attempt the SDK made: its operation, request and response JSON.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub request: Value,
    pub response: Option<Value>,
    pub status: Option<u16>,
}

/// An SDK interceptor keeping every request and response body.
#[derive(Debug, Clone, Default)]
pub struct WireLog(Arc<Mutex<Vec<Call>>>);

impl WireLog {
    /// How many calls so far: a mark to take the calls made after it.
    pub fn mark(&self) -> usize {
        self.0.lock().map(|calls| calls.len()).unwrap_or(0)
    }

    pub fn since(&self, mark: usize) -> Vec<Call> {
        self.0
            .lock()
            .map(|calls| calls[mark.min(calls.len())..].to_vec())
            .unwrap_or_default()
    }
}

impl Intercept for WireLog {
    fn name(&self) -> &'static str {
        "BenchWireLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        let request = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        if let Ok(mut calls) = self.0.lock() {
            calls.push(Call {
                operation,
                request,
                response: None,
                status: None,
            });
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let json = response
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok());
        if let Ok(mut calls) = self.0.lock() {
            if let Some(last) = calls.last_mut() {
                last.response = json;
                last.status = Some(response.status().as_u16());
            }
        }
        Ok(())
    }
}

/// What one item of a write cost, for the per-item breakdown.
#[derive(Debug, Clone)]
pub struct ItemCost {
    pub operation: &'static str,
    pub entity: String,
    pub bytes: usize,
    pub table_wcu: f64,
    pub index_wcu: f64,
}

/// The cost of a run of calls, computed from their items.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub calls: HashMap<String, u64>,
    pub rcu: f64,
    pub wcu: f64,
    /// Items asked for by reads (BatchGetItem keys and GetItem), and items
    /// returned by queries.
    pub items_read: u64,
    pub items_queried: u64,
    /// What moto said, for the record (placeholders).
    pub reported: f64,
    pub cancelled_transactions: u64,
    pub written: Vec<ItemCost>,
}

impl Cost {
    pub fn round_trips(&self) -> u64 {
        self.calls.values().sum()
    }

    pub fn count(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }
}

fn entity_of(item: Option<&Item>, key: &Key) -> String {
    match item.and_then(|i| i.get("entity_type")) {
        Some(AttributeValue::S(entity)) => entity.clone(),
        _ => key.0.split('#').next().unwrap_or("?").to_string(),
    }
}

fn index_entry(item: Option<&Item>, (pk, sk): (&str, &str)) -> Option<(String, usize)> {
    let item = item?;
    let (Some(AttributeValue::S(ipk)), Some(AttributeValue::S(isk))) = (item.get(pk), item.get(sk))
    else {
        return None;
    };
    let keys = ["pk", "sk", pk, sk];
    let size = item
        .iter()
        .filter(|(name, _)| keys.contains(&name.as_str()) || PROJECTED.contains(&name.as_str()))
        .map(|(k, v)| k.len() + value_size(v))
        .sum();
    Some((format!("{ipk}\u{0}{isk}"), size))
}

/// GSI write units for an item going from `before` to `after`.
fn index_wcu(before: Option<&Item>, after: Option<&Item>) -> f64 {
    INDEXES
        .iter()
        .map(|&index| {
            match (index_entry(before, index), index_entry(after, index)) {
                (None, None) => 0.0,
                (Some((_, size)), None) | (None, Some((_, size))) => wcu(size),
                // A changed key is a delete of the old entry and a put of the new.
                (Some((a, sa)), Some((b, sb))) if a != b => wcu(sa) + wcu(sb),
                (Some((_, sa)), Some((_, sb))) => {
                    let projected_changed = PROJECTED.iter().any(|name| {
                        before.and_then(|i| i.get(*name)) != after.and_then(|i| i.get(*name))
                    });
                    if projected_changed {
                        wcu(sa.max(sb))
                    } else {
                        0.0
                    }
                }
            }
        })
        .sum()
}

fn transact_keys(request: &Value) -> Vec<(&'static str, Key)> {
    let mut keys = Vec::new();
    for item in request["TransactItems"].as_array().into_iter().flatten() {
        for (operation, field) in [
            ("Put", "Item"),
            ("Update", "Key"),
            ("Delete", "Key"),
            ("ConditionCheck", "Key"),
        ] {
            if let Some(key) = item.get(operation).and_then(|op| key_of_json(&op[field])) {
                keys.push((operation, key));
            }
        }
    }
    keys
}

/// The capacity of `calls`, sizing writes on `before` and `after` (the
/// table around the calls) and reads on what was there to read.
pub fn cost(calls: &[Call], before: &Snapshot, after: &Snapshot) -> Cost {
    let mut cost = Cost::default();
    for call in calls {
        *cost.calls.entry(call.operation.clone()).or_default() += 1;
        let ok = call.status.is_some_and(|s| s < 300);
        if let Some(response) = &call.response {
            let reported = match &response["ConsumedCapacity"] {
                Value::Array(list) => list
                    .iter()
                    .filter_map(|c| c["CapacityUnits"].as_f64())
                    .sum(),
                Value::Object(one) => one
                    .get("CapacityUnits")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                _ => 0.0,
            };
            cost.reported += reported;
        }
        match call.operation.as_str() {
            "BatchGetItem" => {
                for (_, request) in call.request["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    let factor = if request["ConsistentRead"] == Value::Bool(true) {
                        1.0
                    } else {
                        0.5
                    };
                    for key in request["Keys"].as_array().into_iter().flatten() {
                        cost.items_read += 1;
                        let size = key_of_json(key).and_then(|k| before.size(&k)).unwrap_or(0);
                        cost.rcu += factor * rcu(size);
                    }
                }
            }
            "GetItem" => {
                let factor = if call.request["ConsistentRead"] == Value::Bool(true) {
                    1.0
                } else {
                    0.5
                };
                cost.items_read += 1;
                let size = key_of_json(&call.request["Key"])
                    .and_then(|k| before.size(&k))
                    .unwrap_or(0);
                cost.rcu += factor * rcu(size);
            }
            "Query" => {
                let factor = if call.request["ConsistentRead"] == Value::Bool(true) {
                    1.0
                } else {
                    0.5
                };
                let items = call
                    .response
                    .as_ref()
                    .and_then(|r| r["Items"].as_array().cloned())
                    .unwrap_or_default();
                cost.items_queried += items.len() as u64;
                let size: usize = items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(json_item_size)
                    .sum();
                cost.rcu += factor * rcu(size);
            }
            "TransactWriteItems" if !ok => cost.cancelled_transactions += 1,
            "TransactWriteItems" | "PutItem" | "UpdateItem" | "DeleteItem" => {
                let factor = if call.operation == "TransactWriteItems" {
                    2.0
                } else {
                    1.0
                };
                let keys = if call.operation == "TransactWriteItems" {
                    transact_keys(&call.request)
                } else {
                    let field = if call.operation == "PutItem" {
                        "Item"
                    } else {
                        "Key"
                    };
                    let operation = match call.operation.as_str() {
                        "PutItem" => "Put",
                        "UpdateItem" => "Update",
                        _ => "Delete",
                    };
                    key_of_json(&call.request[field])
                        .map(|k| vec![(operation, k)])
                        .unwrap_or_default()
                };
                for (operation, key) in keys {
                    let (old, new) = (before.0.get(&key), after.0.get(&key));
                    let bytes = old
                        .map(item_size)
                        .unwrap_or(0)
                        .max(new.map(item_size).unwrap_or(0));
                    let item = ItemCost {
                        operation,
                        entity: entity_of(new.or(old), &key),
                        bytes,
                        table_wcu: factor * wcu(bytes),
                        index_wcu: index_wcu(old, new),
                    };
                    cost.wcu += item.table_wcu + item.index_wcu;
                    cost.written.push(item);
                }
            }
            _ => {}
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_count_one_byte_per_two_significant_digits_plus_one() {
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("100"), 2);
        assert_eq!(number_size("12.50"), 3);
        assert_eq!(number_size("-0.001"), 2);
        // Leading and trailing zeros are not significant: 17728092.
        assert_eq!(number_size("1772809200"), 5);
    }

    #[test]
    fn an_item_is_its_names_and_values_with_container_overheads() {
        let item = json!({
            "pk": {"S": "SHOP#a"},
            "n": {"N": "42"},
            "m": {"M": {"x": {"BOOL": true}}},
            "l": {"L": [{"S": "ab"}]}
        });
        // pk 2+6, n 1+2, m 1+(3+1+1+1), l 1+(3+1+2)
        assert_eq!(json_item_size(item.as_object().unwrap()), 8 + 3 + 7 + 7);
    }

    #[test]
    fn units_round_up_per_started_block_and_never_below_one() {
        assert_eq!(wcu(0), 1.0);
        assert_eq!(wcu(1024), 1.0);
        assert_eq!(wcu(1025), 2.0);
        assert_eq!(rcu(4097), 2.0);
    }

    #[test]
    fn a_transaction_costs_twice_each_item_and_once_each_index_change() {
        let key = ("ACC#1".to_string(), "A".to_string());
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), AttributeValue::S(key.0.clone()));
        item.insert("sk".into(), AttributeValue::S(key.1.clone()));
        item.insert("doc".into(), AttributeValue::S("x".repeat(1500)));
        item.insert("reminder_pk".into(), AttributeValue::S("R#1".into()));
        item.insert("reminder_sk".into(), AttributeValue::S("t".into()));
        let after = Snapshot(HashMap::from([(key.clone(), item)]));
        let call = Call {
            operation: "TransactWriteItems".into(),
            request: json!({"TransactItems": [{"Put": {"Item": {"pk": {"S": "ACC#1"}, "sk": {"S": "A"}}}}]}),
            response: Some(json!({})),
            status: Some(200),
        };
        let cost = cost(&[call], &Snapshot::default(), &after);
        assert_eq!(cost.wcu, 2.0 * 2.0 + 1.0);
    }
}
