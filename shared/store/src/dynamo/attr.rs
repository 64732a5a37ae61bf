//! Attribute values in and out: the few conversions every item needs.
//!
//! Money travels as DynamoDB numbers only where an update expression must
//! add to it (the balances); everything else rides in the item's `doc`, a
//! JSON string of the domain type. Numbers are parsed into `Decimal` from
//! their decimal string, never through a float, so a balance read back is
//! exactly the balance written. Cursors handed to callers are opaque: the
//! base64 of a JSON object holding the key attributes of the last item a
//! page returned, checked on the way back in against the query they belong to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use cashback_app::store::StoreError;
use cashback_core::money::{Currency, Money};

/// One DynamoDB item or key.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const ENTITY_TYPE: &str = "entity_type";
pub(crate) const DOC: &str = "doc";
/// The entity type of a marketing event's outbox item.
pub(crate) const MARKETING_EVENT_ENTITY: &str = "MARKETING_EVENT";
pub(crate) const VERSION: &str = "version";
pub(crate) const TTL: &str = "ttl";

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n_u64(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn n_i64(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A decimal as a DynamoDB number: normalised, and never "-0".
pub(crate) fn n_decimal(value: Decimal) -> AttributeValue {
    let value = if value.is_zero() {
        Decimal::ZERO
    } else {
        value.normalize()
    };
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

/// An item's key for error messages and logs. A customer's code is a bearer
/// credential, so the part of a key that holds one is left out.
pub(crate) fn describe(item: &Item) -> String {
    let pk = get_s(item, PK).unwrap_or("?");
    let sk = get_s(item, SK).unwrap_or("?");
    let pk = match pk.find("#CODE#") {
        Some(at) => format!("{}#CODE#<redacted>", &pk[..at]),
        None => pk.to_string(),
    };
    format!("{pk} / {sk}")
}

pub(crate) fn corrupt(item: &Item, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: describe(item),
        message: message.into(),
    }
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    }
}

pub(crate) fn require_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    get_s(item, name).ok_or_else(|| corrupt(item, format!("missing string attribute {name}")))
}

/// A number attribute as an exact decimal; None when absent.
pub(crate) fn get_decimal(item: &Item, name: &str) -> Result<Option<Decimal>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(raw)) => parse_decimal(raw)
            .map(Some)
            .ok_or_else(|| corrupt(item, format!("{name} is not a decimal: {raw:?}"))),
        Some(_) => Err(corrupt(item, format!("{name} is not a number"))),
    }
}

/// DynamoDB hands numbers back in plain or scientific notation; both parse
/// exactly (38 significant digits fit a `Decimal`'s 96-bit mantissa for
/// every amount this engine stores).
pub(crate) fn parse_decimal(raw: &str) -> Option<Decimal> {
    Decimal::from_str_exact(raw)
        .ok()
        .or_else(|| Decimal::from_scientific(raw).ok())
}

pub(crate) fn get_u64(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    match get_decimal(item, name)? {
        None => Ok(None),
        Some(value) => u64::try_from(value)
            .ok()
            .filter(|_| value.fract().is_zero())
            .map(Some)
            .ok_or_else(|| corrupt(item, format!("{name} is not a whole number: {value}"))),
    }
}

/// A use count: a negative stored count (uses given back that were never
/// taken) reads as 0, as the in-memory store saturates at 0.
pub(crate) fn get_count(item: &Item, name: &str) -> Result<u32, StoreError> {
    let value = get_decimal(item, name)?.unwrap_or(Decimal::ZERO);
    if value.is_sign_negative() {
        return Ok(0);
    }
    u32::try_from(value).map_err(|_| corrupt(item, format!("{name} out of range: {value}")))
}

/// A balance attribute rebuilt as money of the account's currency.
pub(crate) fn get_money(
    item: &Item,
    name: &str,
    currency: Currency,
) -> Result<Option<Money>, StoreError> {
    match get_decimal(item, name)? {
        None => Ok(None),
        Some(value) => Money::new(value, currency)
            .map(Some)
            .map_err(|e| corrupt(item, format!("{name}: {e}"))),
    }
}

pub(crate) fn get_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let raw = require_s(item, DOC)?;
    serde_json::from_str(raw).map_err(|e| corrupt(item, format!("doc does not decode: {e}")))
}

pub(crate) fn to_doc<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Other(format!("cannot encode item: {e}")))
}

/// The opaque cursor for a page that ended at `item`: its `key_attributes`.
pub(crate) fn encode_cursor(item: &Item, key_attributes: &[&str]) -> Result<String, StoreError> {
    let mut map = serde_json::Map::new();
    for name in key_attributes {
        let value = require_s(item, name)?;
        map.insert((*name).to_string(), serde_json::Value::String(value.into()));
    }
    let json = serde_json::Value::Object(map).to_string();
    Ok(aws_smithy_types::base64::encode(json))
}

/// The exclusive start key a cursor stands for. A cursor from another
/// query (another partition) is refused rather than silently followed.
pub(crate) fn decode_cursor(
    cursor: &str,
    key_attributes: &[&str],
    partition: (&str, &str),
) -> Result<Item, StoreError> {
    let invalid = || StoreError::InvalidCursor("not one this API returned".into());
    let bytes = aws_smithy_types::base64::decode(cursor).map_err(|_| invalid())?;
    let map: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let mut start = Item::new();
    for name in key_attributes {
        let value = map.get(*name).ok_or_else(invalid)?;
        start.insert((*name).to_string(), s(value.clone()));
    }
    let (attribute, expected) = partition;
    if map.get(attribute).map(String::as_str) != Some(expected) {
        return Err(StoreError::InvalidCursor(
            "it belongs to another list".into(),
        ));
    }
    Ok(start)
}

/// Builds the `#name`/`:value` maps of an expression as it is written.
#[derive(Debug, Default)]
pub(crate) struct Expr {
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// `#name` for an attribute (every name goes through a placeholder, so
    /// reserved words such as `count` and `ttl` never bite).
    pub fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    /// `:label` bound to `value`.
    pub fn value(&mut self, label: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{label}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// The key condition of a Query for the items of partition `pk` whose
    /// sort key starts with `prefix`.
    pub fn partition_prefix(&mut self, pk: &str, prefix: &str) -> String {
        format!(
            "{} = {} AND begins_with({}, {})",
            self.name(PK),
            self.value("pk", s(pk)),
            self.name(SK),
            self.value("prefix", s(prefix)),
        )
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_exactly_in_plain_and_scientific_notation() {
        assert_eq!(parse_decimal("10.05"), Some(Decimal::new(1005, 2)));
        assert_eq!(parse_decimal("1E+1"), Some(Decimal::new(10, 0)));
        assert_eq!(parse_decimal("0.1"), Some(Decimal::new(1, 1)));
        assert_eq!(parse_decimal("abc"), None);
    }

    #[test]
    fn zero_is_written_without_a_sign() {
        let minus_zero = Decimal::new(-0, 2) * Decimal::NEGATIVE_ONE;
        assert_eq!(n_decimal(minus_zero), AttributeValue::N("0".into()));
        assert_eq!(
            n_decimal(Decimal::new(-150, 2)),
            AttributeValue::N("-1.5".into())
        );
    }

    #[test]
    fn a_cursor_round_trips_and_is_refused_by_another_partition() {
        let item = key("A", "B");
        let cursor = encode_cursor(&item, &[PK, SK]).unwrap();
        assert_eq!(decode_cursor(&cursor, &[PK, SK], (PK, "A")).unwrap(), item);
        assert!(decode_cursor(&cursor, &[PK, SK], (PK, "Z")).is_err());
        assert!(decode_cursor("not base64!", &[PK, SK], (PK, "A")).is_err());
    }

    #[test]
    fn a_code_never_appears_in_a_described_key() {
        let item = key("SHOP#s#CODE#secret", "CODE");
        assert_eq!(describe(&item), "SHOP#s#CODE#<redacted> / CODE");
    }
}
