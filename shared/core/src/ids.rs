//! Identifiers, emails and codes, parsed once at the edge.
//!
//! Ids end up inside DynamoDB keys such as `SHOP#{shop}#CUST#{id}`, so none may
//! contain `#`, control characters or be longer than a key can carry.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// Why a value from outside (a webhook, a request, a stored item) is not a
/// usable id, email or code. The message names the kind of value, never the
/// value itself, except for [`IdError::NotAnEmail`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing left once surrounding whitespace is trimmed.
    #[error("{kind} is empty")]
    Empty {
        /// What was being parsed, as shown to the caller ("order id", "shop").
        kind: &'static str,
    },
    /// Longer than a DynamoDB key part may be for this kind of value.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// What was being parsed, as shown to the caller.
        kind: &'static str,
        /// The most characters this kind accepts.
        max: usize,
    },
    /// A `#` (the key separator), a control character, or for shops and
    /// codes anything outside their narrower alphabet.
    #[error("{kind} contains a character that is not allowed")]
    BadCharacter {
        /// What was being parsed, as shown to the caller.
        kind: &'static str,
    },
    /// Not of the shape `local@domain.tld` (or longer than 254 bytes); holds
    /// the raw input, so show it to its sender only, never log it.
    #[error("{0:?} is not an email address")]
    NotAnEmail(String),
}

fn check_id(kind: &'static str, value: &str, max: usize) -> Result<String, IdError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if value.chars().any(|c| c == '#' || c.is_control()) {
        return Err(IdError::BadCharacter { kind });
    }
    Ok(value.to_string())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!(
                "Parses one from outside: trims it and refuses it empty, longer than ",
                stringify!($max), " characters, or holding `#` or a control character ",
                "(it ends up inside DynamoDB keys). Errors call it \"", $kind, "\"."
            )]
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id($kind, value, $max).map($name)
            }
            /// The id as the platform sent it (trimmed), for keys and payloads.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A customer as the platform knows them, or a guest keyed on their email.
    CustomerId, "customer id", 128
);
string_id!(
    /// The platform's id of an order, as its webhooks send it; every event of
    /// one order carries the same id, which keys the order record.
    OrderId, "order id", 128
);
string_id!(
    /// The platform's id of one refund of an order, so a refund delivered
    /// twice is counted once.
    RefundId, "refund id", 128
);
string_id!(
    /// The platform's id of a checkout (cart) in progress; a balance hold is
    /// keyed on it and freed by the order that ends the checkout.
    CheckoutId, "checkout id", 128
);
string_id!(
    /// The platform's id of one line of an order, which line refunds name.
    LineId, "line item id", 128
);
string_id!(
    /// The platform's id of a product, which a program may exclude from the
    /// eligible base.
    ProductId, "product id", 128
);
string_id!(
    /// The platform's id of one variant of a product (a size, a colour),
    /// which a program may exclude on its own.
    VariantId, "variant id", 128
);
string_id!(
    /// The platform's id of a collection (category) of products, which a
    /// program may exclude as a whole.
    CollectionId, "collection id", 128
);

impl CustomerId {
    /// A guest checkout has no customer id; the account is keyed on a hash of
    /// the normalised email so the same shopper accrues on one account and no
    /// address appears in a key or a log line.
    pub fn for_guest(email: &Email) -> CustomerId {
        let digest = Sha256::digest(email.as_str().as_bytes());
        CustomerId(format!("guest-{}", &hex::encode(digest)[..32]))
    }

    /// A guest's id for a shop that keys them: HMAC-SHA256 of the
    /// normalised email under the shop's own secret, so nobody who knows
    /// only the address (or its bare SHA-256) can name the account.
    pub fn for_guest_keyed(email: &Email, key: &[u8]) -> CustomerId {
        use hmac::{Hmac, Mac};
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(email.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        CustomerId(format!("guest-{}", &hex::encode(digest)[..32]))
    }

    /// Whether the id was made from an email by [`CustomerId::for_guest`] or
    /// [`CustomerId::for_guest_keyed`] rather than given by the platform.
    pub fn is_guest(&self) -> bool {
        self.0.starts_with("guest-")
    }
}

/// A shop, named by its platform domain (`example.myshopify.com`), lower case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ShopId(String);

impl ShopId {
    /// Parses a shop's domain from outside: trimmed and lower-cased; only
    /// ASCII letters, digits, `.`, `-` and `_`, at most 255 bytes.
    pub fn parse(value: &str) -> Result<ShopId, IdError> {
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() {
            return Err(IdError::Empty { kind: "shop" });
        }
        if value.len() > 255 {
            return Err(IdError::TooLong {
                kind: "shop",
                max: 255,
            });
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(IdError::BadCharacter { kind: "shop" });
        }
        Ok(ShopId(value))
    }

    /// The lower-case domain, as it appears in keys and URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShopId({:?})", self.0)
    }
}

impl<'de> Deserialize<'de> for ShopId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ShopId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An email address, trimmed and lower-cased so that `Ann@Example.com ` and
/// `ann@example.com` are one customer (usage limits count by it). `Debug`
/// redacts it: addresses never reach the logs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address from outside: trimmed and lower-cased, one `@`, a
    /// dotted domain, no whitespace, control character or `#`, at most 254
    /// bytes. Deliverability is not checked; a bounce marks it later.
    pub fn parse(value: &str) -> Result<Email, IdError> {
        let normalized = value.trim().to_lowercase();
        let valid = normalized.len() <= 254
            && normalized.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !normalized
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#');
        if valid {
            Ok(Email(normalized))
        } else {
            Err(IdError::NotAnEmail(value.to_string()))
        }
    }

    /// The normalised address, for sending mail and for hashing guest ids;
    /// keep it out of logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A discount or coupon code, stored lower case and matched case-insensitively.
/// `Debug` redacts it: a code is a bearer credential for the balance behind it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Code(String);

/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or
/// copied from an email cannot be mistaken for another.
pub const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Generated codes carry 13 characters of 5 bits: 65 bits of randomness.
pub const GENERATED_CODE_LENGTH: usize = 13;

impl Code {
    /// Parses a code typed at checkout or sent by a platform: trimmed and
    /// lower-cased; letters, digits, `-` and `_` only, at most 64 characters.
    pub fn parse(value: &str) -> Result<Code, IdError> {
        let normalized = value.trim().to_lowercase();
        if normalized.is_empty() {
            return Err(IdError::Empty { kind: "code" });
        }
        if normalized.chars().count() > 64 {
            return Err(IdError::TooLong {
                kind: "code",
                max: 64,
            });
        }
        if !normalized
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return Err(IdError::BadCharacter { kind: "code" });
        }
        Ok(Code(normalized))
    }

    /// Builds a customer code from random bytes supplied by the caller (the
    /// core has no randomness source). Each byte's low 5 bits pick a symbol,
    /// so `random` must come from a CSPRNG and hold 13 bytes.
    pub fn generate(prefix: &str, random: &[u8; GENERATED_CODE_LENGTH]) -> Result<Code, IdError> {
        let body: String = random
            .iter()
            .map(|byte| CODE_ALPHABET[(byte & 0x1f) as usize] as char)
            .collect();
        let prefix = prefix.trim();
        if prefix.is_empty() {
            Code::parse(&body)
        } else {
            Code::parse(&format!("{prefix}-{body}"))
        }
    }

    /// The stored, lower-case form: what keys and comparisons use.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How a code is shown to a customer: upper case.
    pub fn display(&self) -> String {
        self.0.to_uppercase()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Code::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_key_separators_and_blank_values() {
        assert!(OrderId::parse("820982911946154508").is_ok());
        assert_eq!(OrderId::parse("  42 ").unwrap().as_str(), "42");
        assert!(matches!(
            OrderId::parse("1#2"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(OrderId::parse("   "), Err(IdError::Empty { .. })));
        assert!(OrderId::parse(&"9".repeat(129)).is_err());
    }

    #[test]
    fn shops_are_lower_case_domains() {
        assert_eq!(
            ShopId::parse("Demo.MyShopify.com").unwrap().as_str(),
            "demo.myshopify.com"
        );
        assert!(ShopId::parse("demo shop").is_err());
        assert!(ShopId::parse("a#b").is_err());
    }

    #[test]
    fn emails_are_normalised_so_one_person_is_one_customer() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap(),
            Email::parse("ann@example.com").unwrap()
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keyed_guest_ids_depend_on_the_shops_secret_not_only_the_address() {
        let email = Email::parse(" Ann@Example.com").unwrap();
        let keyed = CustomerId::for_guest_keyed(&email, b"shop-one-secret");
        assert!(keyed.is_guest());
        assert_eq!(
            keyed,
            CustomerId::for_guest_keyed(
                &Email::parse("ann@example.com").unwrap(),
                b"shop-one-secret"
            )
        );
        assert_ne!(keyed, CustomerId::for_guest(&email));
        assert_ne!(
            keyed,
            CustomerId::for_guest_keyed(&email, b"shop-two-secret")
        );
    }

    #[test]
    fn guest_ids_are_stable_and_reveal_no_address() {
        let email = Email::parse("ann@example.com").unwrap();
        let id = CustomerId::for_guest(&email);
        assert_eq!(
            id,
            CustomerId::for_guest(&Email::parse("ANN@example.com").unwrap())
        );
        assert!(id.is_guest());
        assert!(!id.as_str().contains("ann"));
    }

    #[test]
    fn codes_match_case_insensitively_and_are_redacted_in_debug() {
        let code = Code::parse("SUMMER-10").unwrap();
        assert_eq!(code, Code::parse("summer-10").unwrap());
        assert_eq!(code.as_str(), "summer-10");
        assert_eq!(code.display(), "SUMMER-10");
        assert_eq!(format!("{code:?}"), "Code(<redacted>)");
        assert!(Code::parse("a b").is_err());
        assert!(Code::parse("x#y").is_err());
    }

    #[test]
    fn generated_codes_use_the_unambiguous_alphabet() {
        let code = Code::generate("CB", &[0, 1, 2, 3, 4, 5, 30, 31, 18, 19, 20, 21, 255]).unwrap();
        assert_eq!(code.display(), "CB-012345YZJKMNZ");
        let body = &code.display()[3..];
        assert!(body.chars().all(|c| !"ILOU".contains(c)));
        assert_eq!(body.len(), GENERATED_CODE_LENGTH);
    }
}
