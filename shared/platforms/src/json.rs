//! Small pieces shared by the platform parsers: ids that may be JSON numbers
//! or strings, money fields, timestamps, and error helpers that name the field.
//!
//! Shopify ids exceed 2^53, so an id is read as an integer or a string and
//! never through `f64`; a number with a fraction or an exponent is refused.
//! Money is only ever read from strings, parsed by `Money::parse`.

use std::fmt;
use std::str::FromStr;

use cashback_core::ids::Email;
use cashback_core::money::{Currency, Money, MoneyError};
use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::WebhookError;

/// A platform id as text: from a JSON integer (any 64-bit value) or string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawId(pub String);

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawId, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = RawId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or string id")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawId, E> {
                Ok(RawId(value.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawId, E> {
                Ok(RawId(value.to_string()))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawId, E> {
                Ok(RawId(value.to_string()))
            }
            // f64 ids are refused outright: precision is already lost.
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

impl RawId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses an amount string in the shop's currency, naming the field on error.
pub(crate) fn money(field: &str, amount: &str, currency: Currency) -> Result<Money, WebhookError> {
    Money::parse(amount, currency).map_err(|source| WebhookError::Money {
        field: field.to_string(),
        source,
    })
}

/// Parses an amount that may carry more decimals than the currency has
/// (WooCommerce stores line totals unrounded when a shop's price settings
/// have more decimals than the currency, e.g. "1110.60" JPY): it is rounded
/// to the currency's minor unit half away from zero, as WooCommerce's own
/// totals are, and the rounding is logged. Anything that is not a decimal
/// is still an error naming the field.
pub(crate) fn money_rounded(
    field: &str,
    amount: &str,
    currency: Currency,
) -> Result<Money, WebhookError> {
    match Money::parse(amount, currency) {
        Err(MoneyError::TooPrecise { .. }) => {
            let exact = Decimal::from_str(amount.trim()).map_err(|_| WebhookError::Money {
                field: field.to_string(),
                source: MoneyError::NotANumber {
                    amount: amount.to_string(),
                },
            })?;
            let rounded = exact.round_dp_with_strategy(
                currency.minor_units(),
                RoundingStrategy::MidpointAwayFromZero,
            );
            let money = Money::new(rounded, currency).map_err(|source| WebhookError::Money {
                field: field.to_string(),
                source,
            })?;
            tracing::warn!(
                field,
                sent = %exact,
                rounded = %money.amount(),
                currency = %currency,
                "amount rounded to the currency's minor unit"
            );
            Ok(money)
        }
        other => other.map_err(|source| WebhookError::Money {
            field: field.to_string(),
            source,
        }),
    }
}

/// Checks that a currency code given by the platform is the shop's.
pub(crate) fn expect_currency(
    field: &str,
    code: &str,
    expected: Currency,
) -> Result<(), WebhookError> {
    match Currency::parse(code) {
        Ok(currency) if currency == expected => Ok(()),
        _ => Err(WebhookError::CurrencyMismatch {
            field: field.to_string(),
            expected,
            found: code.chars().take(8).collect(),
        }),
    }
}

/// Builds a core id from a platform id, naming the field on error.
pub(crate) fn id<T>(
    field: &str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, cashback_core::ids::IdError>,
) -> Result<T, WebhookError> {
    parse(raw).map_err(|source| WebhookError::Id {
        field: field.to_string(),
        source,
    })
}

/// An RFC 3339 timestamp with any offset ("2026-03-02T11:31:38-05:00").
pub(crate) fn rfc3339(field: &str, value: &str) -> Result<DateTime<Utc>, WebhookError> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| WebhookError::invalid(field, "not an RFC 3339 timestamp"))
}

/// WooCommerce's `*_gmt` fields: UTC without a suffix ("2026-03-22T19:28:08").
/// A value with an offset is accepted too, for plugins that add one.
pub(crate) fn utc_naive(field: &str, value: &str) -> Result<DateTime<Utc>, WebhookError> {
    let value = value.trim();
    if let Ok(at) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(at.and_utc());
    }
    rfc3339(field, value)
}

/// An email the platform sent, or `None` when it is blank or unusable.
///
/// A malformed address is not a reason to refuse an order (the platform has
/// accepted it and would retry a 400 until it disables the webhook); the
/// order is then simply not tied to a guest account.
pub(crate) fn email(value: Option<&str>) -> Option<Email> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| Email::parse(v).ok())
}

/// A string field that is absent, null or blank counts as absent.
pub(crate) fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_two_to_the_53_survive_exactly() {
        let id: RawId = serde_json::from_str("820982911946154508").unwrap();
        assert_eq!(id.as_str(), "820982911946154508");
        let id: RawId = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(id.as_str(), "18446744073709551615");
        let id: RawId = serde_json::from_str("\"gid-42\"").unwrap();
        assert_eq!(id.as_str(), "gid-42");
    }

    #[test]
    fn fractional_or_exponent_ids_are_refused() {
        for bad in ["1.5", "1e3", "18446744073709551616", "true", "null", "{}"] {
            assert!(
                serde_json::from_str::<RawId>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn timestamps_with_offsets_become_utc() {
        let at = rfc3339("processed_at", "2026-03-02T11:31:38-05:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-02T16:31:38+00:00");
        assert!(rfc3339("processed_at", "yesterday").is_err());
        let at = utc_naive("date_paid_gmt", "2026-03-22T19:28:08").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-22T19:28:08+00:00");
    }

    #[test]
    fn blank_or_malformed_emails_count_as_absent() {
        assert_eq!(email(Some("")), None);
        assert_eq!(email(Some("   ")), None);
        assert_eq!(email(Some("not-an-email")), None);
        assert_eq!(email(None), None);
        assert!(email(Some("Ann@Example.com")).is_some());
    }

    #[test]
    fn a_too_precise_amount_is_rounded_half_away_from_zero_and_garbage_still_fails() {
        let jpy = |s: &str| money_rounded("total", s, Currency::JPY).unwrap().amount();
        assert_eq!(jpy("1110.60"), Decimal::from(1111));
        assert_eq!(jpy("1110.50"), Decimal::from(1111));
        assert_eq!(jpy("1110.49"), Decimal::from(1110));
        assert_eq!(jpy("-1110.5"), Decimal::from(-1111));
        assert_eq!(jpy("1110"), Decimal::from(1110));
        assert!(money_rounded("total", "12,5", Currency::JPY).is_err());
        assert!(money_rounded("total", "", Currency::JPY).is_err());
    }

    #[test]
    fn a_foreign_currency_is_named_in_the_error() {
        let err = expect_currency("currency", "EUR", Currency::USD).unwrap_err();
        assert_eq!(
            err.to_string(),
            "currency is in EUR, but the shop keeps its ledger in USD"
        );
    }
}
