//! SES's word on what happened to a message after it was accepted: bounces
//! and complaints, as the configuration set's event destination publishes
//! them (to EventBridge, the `detail` of an "SES Email Bounce" or "SES Email
//! Complaint" event; or to SNS, the notification's message), read into
//! what the engine acts on: which shop's customers' addresses must not be
//! written to again.
//!
//! Only a permanent bounce (the mailbox does not exist) or a complaint (the
//! customer marked our email as spam) suppresses an address: a transient
//! bounce (a full mailbox, a greylisting server) may pass on a later send.
//! The shop is the `shop` tag every send carries (`SesNotifier`).

use serde_json::Value;

use cashback_core::ids::{Email, ShopId};

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// A permanent bounce: the address does not take mail.
    Bounce,
    /// The recipient reported the email as spam.
    Complaint,
}

/// Addresses of one shop's customers that must not be written to again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// Bounce or complaint.
    pub kind: FeedbackKind,
    /// The shop whose email it was (the send's `shop` tag).
    pub shop: ShopId,
    /// The recipients concerned.
    pub addresses: Vec<Email>,
}

/// Why an event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// Not an SES event: no event type.
    #[error("not an SES event: {0}")]
    NotSes(&'static str),
    /// A bounce or complaint without the `shop` tag our sends carry: not
    /// sent by this engine (another sender on the configuration set).
    #[error("the message carries no shop tag")]
    NoShop,
}

/// Reads an SES event (the EventBridge `detail`, or the SNS message as
/// JSON). `Ok(None)` for an event that suppresses nobody (a delivery, an
/// open, a transient bounce); the addresses it cannot parse are left out.
pub fn read_feedback(event: &Value) -> Result<Option<Feedback>, FeedbackError> {
    let event_type = event
        .get("eventType")
        .or_else(|| event.get("notificationType"))
        .and_then(Value::as_str)
        .ok_or(FeedbackError::NotSes("no eventType"))?;
    let (kind, recipients) = match event_type {
        "Bounce" => {
            let bounce = event
                .get("bounce")
                .ok_or(FeedbackError::NotSes("no bounce"))?;
            if bounce.get("bounceType").and_then(Value::as_str) != Some("Permanent") {
                return Ok(None);
            }
            (FeedbackKind::Bounce, bounce.get("bouncedRecipients"))
        }
        "Complaint" => {
            let complaint = event
                .get("complaint")
                .ok_or(FeedbackError::NotSes("no complaint"))?;
            (
                FeedbackKind::Complaint,
                complaint.get("complainedRecipients"),
            )
        }
        _ => return Ok(None),
    };
    let shop = event
        .pointer("/mail/tags/shop/0")
        .and_then(Value::as_str)
        .and_then(|shop| ShopId::parse(shop).ok())
        .ok_or(FeedbackError::NoShop)?;
    let addresses = recipients
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| r.get("emailAddress").and_then(Value::as_str))
                .filter_map(|address| Email::parse(strip_name(address)).ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Feedback {
        kind,
        shop,
        addresses,
    }))
}

/// `"Ann <ann@example.com>"` as SES may write it: the address alone.
fn strip_name(address: &str) -> &str {
    match (address.rfind('<'), address.rfind('>')) {
        (Some(start), Some(end)) if start < end => &address[start + 1..end],
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bounce(kind: &str) -> Value {
        json!({
            "eventType": "Bounce",
            "bounce": {
                "bounceType": kind,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {"emailAddress": "Ann <Ann@Example.com>", "action": "failed"},
                    {"emailAddress": "not an address"}
                ],
                "timestamp": "2026-11-30T12:00:00.000Z"
            },
            "mail": {
                "timestamp": "2026-11-30T11:59:59.000Z",
                "source": "shop@example.com",
                "destination": ["ann@example.com"],
                "tags": {"shop": ["demo.myshopify.com"], "kind": ["reminder"]}
            }
        })
    }

    #[test]
    fn a_permanent_bounce_or_a_complaint_names_the_shop_and_the_addresses() {
        let found = read_feedback(&bounce("Permanent")).unwrap().unwrap();
        assert_eq!(found.kind, FeedbackKind::Bounce);
        assert_eq!(found.shop.as_str(), "demo.myshopify.com");
        assert_eq!(
            found
                .addresses
                .iter()
                .map(Email::as_str)
                .collect::<Vec<_>>(),
            vec!["ann@example.com"]
        );
        let complaint = json!({
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "bo@example.com"}]},
            "mail": {"tags": {"shop": ["demo.myshopify.com"]}}
        });
        let found = read_feedback(&complaint).unwrap().unwrap();
        assert_eq!(found.kind, FeedbackKind::Complaint);
        assert_eq!(found.addresses[0].as_str(), "bo@example.com");
    }

    #[test]
    fn transient_bounces_and_other_events_suppress_nobody() {
        assert_eq!(read_feedback(&bounce("Transient")).unwrap(), None);
        assert_eq!(
            read_feedback(&json!({"eventType": "Delivery", "mail": {}})).unwrap(),
            None
        );
        assert!(read_feedback(&json!({"hello": 1})).is_err());
        let mut untagged = bounce("Permanent");
        untagged["mail"]["tags"] = json!({});
        assert_eq!(read_feedback(&untagged), Err(FeedbackError::NoShop));
    }
}
