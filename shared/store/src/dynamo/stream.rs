//! The table's stream as the change feed (`cashback_app::changes`).
//!
//! The stream carries every item the engine writes; only accounts and
//! ledger entries are changes to money. Both live in the customer's
//! partition (`SHOP#{shop}#CUST#{customer}`), so their records reach a
//! consumer in the order they were written. Images are decoded with the
//! same decoders as reads, so a stream record and a read agree on what an
//! item means.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;

use cashback_app::changes::{Change, ChangeKind};
use cashback_app::marketing::QueuedEvent;
use cashback_app::store::StoreError;
use cashback_core::ids::{CustomerId, ShopId};

use super::attr::{corrupt, get_s, Item, DOC, ENTITY_TYPE, MARKETING_EVENT_ENTITY, PK};
use super::items::{decode_account, decode_entry};

/// One stream record as a change: `Ok(None)` for an item that is not a
/// change to money (a guard, a due item, a report sum...) or a ledger
/// entry's removal; `Err` for a record that cannot be read (the consumer
/// reports it as a batch item failure, so it is retried and then parked).
pub fn decode_record(record: &EventRecord) -> Result<Option<Change>, StoreError> {
    let new = item_of(&record.change.new_image);
    let old = item_of(&record.change.old_image);
    let Some(image) = new.as_ref().or(old.as_ref()) else {
        return Ok(None);
    };
    let sequence = record
        .change
        .sequence_number
        .clone()
        .ok_or_else(|| corrupt(image, "stream record without a sequence number"))?;
    if get_s(image, ENTITY_TYPE) == Some(super::coupon_uses::ENTITY) {
        // An order's use of an unlimited coupon: its count takes it. In the
        // coupon's partition, so it names its customer itself.
        let Some(item) = &new else {
            return Ok(None);
        };
        let (shop, customer, code, order) = super::coupon_uses::identify(item)?;
        return Ok(Some(Change {
            shop,
            customer,
            sequence,
            kind: ChangeKind::CouponUse { code, order },
        }));
    }
    let kind = match get_s(image, ENTITY_TYPE) {
        Some("ACCOUNT") => ChangeKind::Account {
            before: old
                .as_ref()
                .map(|item| decode_account(item).map(|a| Box::new(a.value)))
                .transpose()?,
            after: new
                .as_ref()
                .map(|item| decode_account(item).map(|a| Box::new(a.value)))
                .transpose()?,
        },
        Some("LEDGER") => match &new {
            // An entry is written once; a later image of it (or its
            // removal with a shop's data) is no new money.
            Some(item) if old.is_none() => ChangeKind::Entry(Box::new(decode_entry(item)?)),
            _ => return Ok(None),
        },
        // A referral credit written by its order or settled: the referrer's
        // account is brought up to it (removed with a shop's data: nothing).
        Some(super::referrals::ENTITY) => match &new {
            Some(item) => ChangeKind::Referral {
                order: super::referrals::order_of(item)?,
            },
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let (shop, customer) = customer_partition(image)?;
    Ok(Some(Change {
        shop,
        customer,
        sequence,
        kind,
    }))
}

/// A marketing event's outbox item as the stream delivers its creation
/// (`marketing::QueuedEvent`, written with the change that decided its
/// notice): the shop and the event. The shop is the partition's, never the
/// item's content, and the event's customer must be the partition's, so
/// nothing written in the item can send one shop's event to another's
/// account. `Ok(None)` for any other record, or for the item's later
/// removal (its TTL); `Err` for an outbox item that cannot be read.
pub fn decode_marketing_event(
    record: &EventRecord,
) -> Result<Option<(ShopId, QueuedEvent)>, StoreError> {
    let Some(new) = item_of(&record.change.new_image) else {
        return Ok(None);
    };
    if get_s(&new, ENTITY_TYPE) != Some(MARKETING_EVENT_ENTITY)
        || item_of(&record.change.old_image).is_some()
    {
        return Ok(None);
    }
    let (shop, customer) = customer_partition(&new)?;
    let doc = get_s(&new, DOC).ok_or_else(|| corrupt(&new, "marketing event without doc"))?;
    let event: QueuedEvent =
        serde_json::from_str(doc).map_err(|e| corrupt(&new, format!("marketing event: {e}")))?;
    if event.customer != customer {
        return Err(corrupt(
            &new,
            "marketing event of another customer's partition",
        ));
    }
    Ok(Some((shop, event)))
}

/// Every record of a stream event, each decoded on its own, beside the
/// sequence number a batch item failure names.
pub fn decode(event: &Event) -> Vec<(String, Result<Option<Change>, StoreError>)> {
    event
        .records
        .iter()
        .map(|record| {
            let sequence = record.change.sequence_number.clone().unwrap_or_default();
            (sequence, decode_record(record))
        })
        .collect()
}

/// The shop and customer of an item in a customer's partition.
fn customer_partition(item: &Item) -> Result<(ShopId, CustomerId), StoreError> {
    let pk = get_s(item, PK).ok_or_else(|| corrupt(item, "no pk"))?;
    let rest = pk
        .strip_prefix("SHOP#")
        .ok_or_else(|| corrupt(item, "pk is not a shop's"))?;
    // A shop id has no `#` (ShopId::parse), so the first `#CUST#` ends it.
    let (shop, customer) = rest
        .split_once("#CUST#")
        .ok_or_else(|| corrupt(item, "pk is not a customer's"))?;
    let shop = ShopId::parse(shop).map_err(|e| corrupt(item, format!("shop: {e}")))?;
    let customer =
        CustomerId::parse(customer).map_err(|e| corrupt(item, format!("customer: {e}")))?;
    Ok((shop, customer))
}

fn item_of(image: &serde_dynamo::Item) -> Option<Item> {
    if image.is_empty() {
        return None;
    }
    Some(
        image
            .iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect(),
    )
}

fn attribute(value: &serde_dynamo::AttributeValue) -> AttributeValue {
    use serde_dynamo::AttributeValue as V;
    match value {
        V::N(n) => AttributeValue::N(n.clone()),
        V::S(s) => AttributeValue::S(s.clone()),
        V::Bool(b) => AttributeValue::Bool(*b),
        V::B(b) => AttributeValue::B(Blob::new(b.clone())),
        V::Null(n) => AttributeValue::Null(*n),
        V::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect::<HashMap<_, _>>(),
        ),
        V::L(l) => AttributeValue::L(l.iter().map(attribute).collect()),
        V::Ss(s) => AttributeValue::Ss(s.clone()),
        V::Ns(n) => AttributeValue::Ns(n.clone()),
        V::Bs(b) => AttributeValue::Bs(b.iter().map(|b| Blob::new(b.clone())).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::attr::{n_decimal, n_u64, s, to_doc, DOC, VERSION};
    use crate::dynamo::items::{ledger_item, AVAILABLE, CUSTOMER, SHOP};
    use crate::keys;
    use cashback_core::ledger::Account;
    use cashback_test_support::fixtures::{customer, program, shop, t0, usd};

    fn account_item(account: &Account, version: u64) -> Item {
        let mut item = crate::dynamo::attr::key(
            keys::account_key(&account.shop, &account.customer),
            keys::ACCOUNT_SK,
        );
        item.insert(ENTITY_TYPE.into(), s("ACCOUNT"));
        item.insert(SHOP.into(), s(account.shop.as_str()));
        item.insert(CUSTOMER.into(), s(account.customer.as_str()));
        item.insert(VERSION.into(), n_u64(version));
        item.insert(AVAILABLE.into(), n_decimal(account.available.amount()));
        item.insert(DOC.into(), to_doc(account).expect("doc"));
        item
    }

    /// An item as the stream's JSON carries it ({"S": ...}, {"N": ...}).
    fn json_image(item: &Item) -> serde_json::Value {
        let mut image = serde_json::Map::new();
        for (name, value) in item {
            let value = match value {
                AttributeValue::S(v) => serde_json::json!({ "S": v }),
                AttributeValue::N(v) => serde_json::json!({ "N": v }),
                other => panic!("the engine's items hold only S and N here: {other:?}"),
            };
            image.insert(name.clone(), value);
        }
        serde_json::Value::Object(image)
    }

    fn record(
        name: &str,
        sequence: &str,
        old: Option<&Item>,
        new: Option<&Item>,
    ) -> serde_json::Value {
        let keys_of = new.or(old).expect("an image");
        let mut change = serde_json::json!({
            "ApproximateCreationDateTime": 1_764_460_800,
            "Keys": { "pk": json_image(keys_of)["pk"], "sk": json_image(keys_of)["sk"] },
            "SequenceNumber": sequence,
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(old) = old {
            change["OldImage"] = json_image(old);
        }
        if let Some(new) = new {
            change["NewImage"] = json_image(new);
        }
        serde_json::json!({
            "eventID": format!("event-{sequence}"),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": change,
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/cashback/stream/2026-11-30T00:00:00.000",
        })
    }

    #[test]
    fn an_account_write_and_its_entry_decode_as_the_reads_decode_them() {
        let program = program();
        let before = Account::open(shop(), customer("c1"), program.currency);
        let mut after = before.clone();
        let applied = after
            .adjust(usd("12.50"), "goodwill", "k1", &program, t0())
            .expect("credit");
        let entry = applied.entries[0].clone();
        let entry_item = ledger_item(&shop(), &customer("c1"), &entry).expect("item");
        let event: Event = serde_json::from_value(serde_json::json!({ "Records": [
            record("INSERT", "100", None, Some(&entry_item)),
            record("MODIFY", "101", Some(&account_item(&before, 1)), Some(&account_item(&after, 2))),
        ]}))
        .expect("a stream event as Lambda delivers it");

        let decoded = decode(&event);
        assert_eq!(decoded.len(), 2);
        let entry_change = decoded[0]
            .1
            .as_ref()
            .expect("decodes")
            .clone()
            .expect("a change");
        assert_eq!(
            (entry_change.shop.clone(), entry_change.customer.clone()),
            (shop(), customer("c1"))
        );
        assert_eq!(entry_change.sequence, "100");
        assert_eq!(entry_change.kind, ChangeKind::Entry(Box::new(entry)));
        let account_change = decoded[1]
            .1
            .as_ref()
            .expect("decodes")
            .clone()
            .expect("a change");
        match account_change.kind {
            ChangeKind::Account {
                before: Some(b),
                after: Some(a),
            } => {
                assert_eq!(b.available, usd("0"));
                assert_eq!(a.available, usd("12.50"));
                assert_eq!(*a, after);
            }
            other => panic!("expected an account change, got {other:?}"),
        }
    }

    #[test]
    fn other_items_and_rewritten_entries_are_no_change_and_a_bad_image_is_an_error() {
        let mut guard = crate::dynamo::attr::key("EVENT#demo#k", "EVENT");
        guard.insert(ENTITY_TYPE.into(), s("GUARD"));
        let program = program();
        let mut account = Account::open(shop(), customer("c1"), program.currency);
        let entry = account
            .adjust(usd("1"), "goodwill", "k1", &program, t0())
            .expect("credit")
            .entries[0]
            .clone();
        let entry_item = ledger_item(&shop(), &customer("c1"), &entry).expect("item");
        let mut corrupt_account = account_item(&account, 1);
        corrupt_account.insert(DOC.into(), s("{not json"));
        let event: Event = serde_json::from_value(serde_json::json!({ "Records": [
            record("INSERT", "1", None, Some(&guard)),
            record("MODIFY", "2", Some(&entry_item), Some(&entry_item)),
            record("REMOVE", "3", Some(&entry_item), None),
            record("INSERT", "4", None, Some(&corrupt_account)),
        ]}))
        .expect("event");
        let decoded = decode(&event);
        assert!(matches!(decoded[0].1, Ok(None)));
        assert!(matches!(decoded[1].1, Ok(None)));
        assert!(matches!(decoded[2].1, Ok(None)));
        assert!(
            decoded[3].1.is_err(),
            "a corrupt account is reported, not skipped"
        );
        assert_eq!(decoded[3].0, "4");
    }
}
