//! What an item costs: its size and capacity units by DynamoDB's published
//! rules, so tests can hold the items this adapter writes to the budgets of
//! DESIGN.md section 7 (moto reports placeholder capacity, never a size).
//!
//! - An item's size is the sum over its attributes of the name's UTF-8
//!   length plus the value's size: a string its UTF-8 length; a number one
//!   byte per two significant digits, plus one; binary its length; a
//!   boolean or null one byte; a list or map 3 bytes plus, per element, one
//!   byte and the element (a map's element counts its name too); a set the
//!   sum of its members.
//! - A write costs 1 WCU per started KB of the larger of the item before
//!   and after (at least 1); inside TransactWriteItems every item costs
//!   twice that.
//! - A strongly consistent read costs 1 RCU per started 4 KB of each item
//!   (an item that does not exist still 1).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Bytes DynamoDB counts for a number written as `text`: leading and
/// trailing zeros trimmed, one byte per two significant digits, plus one.
pub fn number_size(text: &str) -> usize {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Bytes DynamoDB counts for one attribute value.
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

/// Bytes DynamoDB counts for an item: attribute names plus values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of one standard write of an item of `bytes` (the larger of
/// before and after): one per started KB, at least one. Double it for an
/// item written inside TransactWriteItems.
pub fn write_units(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

/// Read units of one strongly consistent read of an item of `bytes`: one
/// per started 4 KB, at least one.
pub fn read_units(bytes: usize) -> u64 {
    bytes.div_ceil(4096).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        assert_eq!(
            number_size("12.30"),
            3,
            "3 significant digits: 2 bytes, + 1"
        );
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("-1000"), 2);
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("SHOP#a".into())),
            ("n".to_string(), AttributeValue::N("12345".into())),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "k".to_string(),
                    AttributeValue::Bool(true),
                )])),
            ),
        ]);
        // pk 2 + 6; n 1 + 4; m 1 + (3 + 1 + 1 + 1).
        assert_eq!(item_size(&item), 8 + 5 + 7);
    }

    #[test]
    fn capacity_units_are_per_started_kilobyte_or_four() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(read_units(4096), 1);
        assert_eq!(read_units(4097), 2);
    }
}
