//! Money: an exact decimal amount in one ISO 4217 currency.
//!
//! Amounts are `rust_decimal::Decimal`, never floats. A [`Money`] always holds
//! its amount at the currency's minor unit (USD 2, JPY 0, KWD 3), so "12.3"
//! becomes "12.30" and serialises as the string `"12.30"`. Mixing currencies
//! is a [`MoneyError`], never a panic and never a silent conversion.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount could not be read or computed. Every money operation that
/// can fail returns one of these instead of panicking or rounding silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A code that is not an active ISO 4217 currency (funds and precious
    /// metals are refused too); holds the raw input.
    #[error("unknown currency code {0:?}: expected an ISO 4217 code such as USD")]
    UnknownCurrency(String),
    /// Two amounts of different currencies met in one sum, difference or
    /// comparison: a payload or a program in another currency than the
    /// shop's ledger. Nothing is ever converted.
    #[error("cannot combine {left} and {right} amounts")]
    CurrencyMismatch {
        /// The currency of the amount the operation was called on.
        left: Currency,
        /// The currency of the amount passed to it.
        right: Currency,
    },
    /// The text is not a plain decimal (`"12.30"`, `"-5"`): empty, or with
    /// letters, spaces, separators like `_` or `,`, or exponents.
    #[error("{amount:?} is not a decimal amount")]
    NotANumber {
        /// The text as received.
        amount: String,
    },
    /// More decimals than the currency's minor unit (`"1.005"` USD, `"10.5"`
    /// JPY): refused rather than rounded, because a platform never sends
    /// such an amount and rounding it would invent or lose money.
    #[error("{amount} has more decimals than {currency} allows ({minor_units})")]
    TooPrecise {
        /// The amount as given.
        amount: String,
        /// The currency it was given in.
        currency: Currency,
        /// Digits after the point that currency allows.
        minor_units: u32,
    },
    /// A sum, difference or product beyond `Decimal`'s range (about 7.9e28):
    /// only a corrupt or hostile input gets there.
    #[error("amount out of range")]
    Overflow,
}

/// ISO 4217 codes whose minor unit is not 2. Everything else in [`KNOWN`] has 2.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const FOUR_DECIMALS: &[&str] = &["CLF", "UYW"];

/// Active ISO 4217 currency codes (funds and precious metals left out),
/// sorted: every amount a payload carries names its currency, so the check
/// is a binary search.
const KNOWN: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYI",
    "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF",
    "YER", "ZAR", "ZMW", "ZWG",
];

/// An ISO 4217 currency code, always upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar, 2 decimals.
    pub const USD: Currency = Currency(*b"USD");
    /// Euro, 2 decimals.
    pub const EUR: Currency = Currency(*b"EUR");
    /// Pound sterling, 2 decimals.
    pub const GBP: Currency = Currency(*b"GBP");
    /// Japanese yen, no decimals: the usual test of a zero-decimal currency.
    pub const JPY: Currency = Currency(*b"JPY");
    /// Kuwaiti dinar, 3 decimals: the usual test of a three-decimal currency.
    pub const KWD: Currency = Currency(*b"KWD");

    /// Parses a code case-insensitively ("usd" and "USD" are the same currency).
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if bytes.len() != 3 || KNOWN.binary_search(&upper.as_str()).is_err() {
            return Err(MoneyError::UnknownCurrency(code.to_string()));
        }
        Ok(Currency([bytes[0], bytes[1], bytes[2]]))
    }

    /// The three upper-case letters, as payloads and stored items carry them.
    pub fn code(&self) -> &str {
        // Only ASCII letters ever get in through `parse` or the constants.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in this currency's minor unit.
    pub fn minor_units(&self) -> u32 {
        let code = self.code();
        if ZERO_DECIMALS.contains(&code) {
            0
        } else if THREE_DECIMALS.contains(&code) {
            3
        } else if FOUR_DECIMALS.contains(&code) {
            4
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount of one currency at that currency's minor unit. May be negative
/// (ledger deltas are); balances check their own sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

#[derive(Serialize, Deserialize)]
struct MoneyRepr {
    amount: String,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;
    fn try_from(repr: MoneyRepr) -> Result<Self, Self::Error> {
        Money::parse(&repr.amount, repr.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(money: Money) -> Self {
        MoneyRepr {
            amount: money.amount.to_string(),
            currency: money.currency,
        }
    }
}

impl Money {
    /// Nothing, in `currency`, at its minor unit (`0.00` USD, `0` JPY).
    pub fn zero(currency: Currency) -> Money {
        Money::at_minor_unit(Decimal::ZERO, currency)
    }

    /// An exact amount; refuses one with more decimals than the currency has.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let minor = currency.minor_units();
        let normalized = amount.normalize();
        if normalized.scale() > minor {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_string(),
                currency,
                minor_units: minor,
            });
        }
        Ok(Money::at_minor_unit(normalized, currency))
    }

    /// Parses a platform's amount string ("12.30", "-5.00", "1500").
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let trimmed = amount.trim();
        // Decimal::from_str accepts forms like "1_000"; platforms never send them.
        if trimmed.is_empty()
            || !trimmed
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        {
            return Err(MoneyError::NotANumber {
                amount: amount.to_string(),
            });
        }
        let value = Decimal::from_str(trimmed).map_err(|_| MoneyError::NotANumber {
            amount: amount.to_string(),
        })?;
        Money::new(value, currency)
    }

    /// Rounds an exact figure toward zero to the minor unit: cashback is never
    /// over-issued by rounding.
    pub fn round_toward_zero(exact: Decimal, currency: Currency) -> Money {
        let rounded =
            exact.round_dp_with_strategy(currency.minor_units(), RoundingStrategy::ToZero);
        Money::at_minor_unit(rounded, currency)
    }

    fn at_minor_unit(amount: Decimal, currency: Currency) -> Money {
        let mut amount = amount;
        amount.rescale(currency.minor_units());
        Money { amount, currency }
    }

    /// The signed decimal, always at the currency's minor unit (scale 2 for
    /// USD), so `to_string` gives `"12.30"`.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency the amount is in; for ledger figures, the shop's.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero (whatever its sign: `-0.00` is zero).
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Strictly below zero: a debit delta, or a balance that broke an invariant.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// Strictly above zero (zero is neither positive nor negative).
    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// The exact sum; [`MoneyError::CurrencyMismatch`] across currencies,
    /// [`MoneyError::Overflow`] out of range.
    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::at_minor_unit(sum, self.currency))
    }

    /// The exact difference `self - other`, which may be negative; errors as
    /// [`Money::checked_add`].
    pub fn checked_sub(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let difference = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::at_minor_unit(difference, self.currency))
    }

    /// Multiplies by a whole quantity (a line's unit price times its quantity).
    pub fn times(&self, quantity: u32) -> Result<Money, MoneyError> {
        let product = self
            .amount
            .checked_mul(Decimal::from(quantity))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::at_minor_unit(product, self.currency))
    }

    /// The same amount with the opposite sign: a credit turned into the
    /// matching debit.
    pub fn negated(&self) -> Money {
        Money::at_minor_unit(-self.amount, self.currency)
    }

    /// The smaller of two amounts of one currency (a cap applied, what a
    /// balance can cover); refuses two currencies.
    pub fn min(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(if other.amount < self.amount {
            other
        } else {
            self
        })
    }

    /// The larger of two amounts of one currency; refuses two currencies.
    pub fn max(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(if other.amount > self.amount {
            other
        } else {
            self
        })
    }

    /// Never below zero: `max(self, 0)`.
    pub fn clamp_non_negative(self) -> Money {
        if self.is_negative() {
            Money::zero(self.currency)
        } else {
            self
        }
    }

    /// The total of `amounts`, zero in `currency` when there are none;
    /// refuses any amount in another currency.
    pub fn sum<'a>(
        currency: Currency,
        amounts: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |total, amount| {
                total.checked_add(*amount)
            })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// `percent` per cent of `amount`, exact (the caller rounds, toward zero for
/// cashback). Percents are written as numbers of hundredths: `5` for 5 %.
pub fn percent_of(amount: Decimal, percent: Decimal) -> Decimal {
    amount * percent / Decimal::ONE_HUNDRED
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amounts_are_kept_at_the_currency_minor_unit() {
        assert_eq!(
            Money::parse("12.3", Currency::USD).unwrap().to_string(),
            "12.30 USD"
        );
        assert_eq!(
            Money::parse("1500", Currency::JPY).unwrap().amount(),
            dec!(1500)
        );
        assert_eq!(
            Money::parse("1.5", Currency::KWD)
                .unwrap()
                .amount()
                .to_string(),
            "1.500"
        );
    }

    #[test]
    fn more_decimals_than_the_currency_has_is_refused() {
        assert!(matches!(
            Money::parse("1.234", Currency::USD),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("10.5", Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(Money::parse("1.234", Currency::KWD).is_ok());
    }

    #[test]
    fn garbage_is_not_a_number() {
        for bad in ["", "abc", "1,00", "1_000", "NaN", "1e5"] {
            assert!(Money::parse(bad, Currency::USD).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mixing_currencies_is_an_error_not_a_panic() {
        let usd = Money::parse("1.00", Currency::USD).unwrap();
        let eur = Money::parse("1.00", Currency::EUR).unwrap();
        assert!(matches!(
            usd.checked_add(eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(usd.checked_sub(eur).is_err());
        assert!(usd.min(eur).is_err());
    }

    #[test]
    fn rounding_is_toward_zero_at_the_minor_unit() {
        assert_eq!(
            Money::round_toward_zero(dec!(3.333), Currency::USD).amount(),
            dec!(3.33)
        );
        assert_eq!(
            Money::round_toward_zero(dec!(3.339), Currency::USD).amount(),
            dec!(3.33)
        );
        assert_eq!(
            Money::round_toward_zero(dec!(-3.339), Currency::USD).amount(),
            dec!(-3.33)
        );
        assert_eq!(
            Money::round_toward_zero(dec!(99.9), Currency::JPY).amount(),
            dec!(99)
        );
        assert_eq!(
            Money::round_toward_zero(dec!(0.0019), Currency::KWD).amount(),
            dec!(0.001)
        );
    }

    #[test]
    fn serialises_amount_as_a_string() {
        let money = Money::parse("12.3", Currency::USD).unwrap();
        let json = serde_json::to_string(&money).unwrap();
        assert_eq!(json, r#"{"amount":"12.30","currency":"USD"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, money);
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.234","currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.00","currency":"ZZZ"}"#).is_err());
    }

    #[test]
    fn the_known_codes_are_sorted_and_unique_for_the_binary_search() {
        assert!(KNOWN.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(KNOWN.contains(&"VED") && KNOWN.contains(&"VES"));
    }

    #[test]
    fn currency_codes_are_case_insensitive_and_must_exist() {
        assert_eq!(Currency::parse("usd").unwrap(), Currency::USD);
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("ABC").is_err());
        assert_eq!(Currency::parse("KWD").unwrap().minor_units(), 3);
        assert_eq!(Currency::parse("JPY").unwrap().minor_units(), 0);
    }
}
