//! The records the store keeps beside the ledger: shops, coupons, the
//! imported catalog, API keys, and the version every record is read at.
//!
//! They are plain data the use cases decide on; how an adapter lays them
//! out (items, attributes, indexes) is the adapter's business. Re-exported
//! from [`crate::store`], so `cashback_app::store::Shop` keeps working.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::coupon::CashbackCoupon;
use cashback_core::ids::{CollectionId, CustomerId, Email, ProductId, ShopId};
use cashback_core::money::{Currency, Money};

/// A value and the version it was read at. Version 0 means "does not exist
/// yet": writing it creates it, and fails if someone created it meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The value as read (or to write).
    pub value: T,
    /// The version it was read at; 0 for a value not stored yet.
    pub version: u64,
}

impl<T> Versioned<T> {
    /// A value not stored yet (version 0).
    pub fn new(value: T) -> Versioned<T> {
        Versioned { value, version: 0 }
    }
}

/// The shortest webhook secret accepted.
pub const MIN_WEBHOOK_SECRET_LENGTH: usize = 16;

/// A shop that has been onboarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shop {
    /// The shop's id (its domain on the platform).
    pub shop: ShopId,
    /// The platform whose webhooks the shop sends.
    pub platform: Platform,
    /// The shop's currency: the ledger is kept in it.
    pub currency: Currency,
    /// The shop's name, as shown to its customers.
    pub name: String,
    /// Where the webhook secrets live (an env var or SSM parameter name):
    /// never the secret itself.
    pub webhook_secret_ref: String,
    /// SHA-256 (hex) of the shop's API key; the key is shown once.
    pub api_key_hash: String,
    /// When the shop was onboarded.
    pub created_at: DateTime<Utc>,
    /// The shop's secret for guest ids (hex), made at onboarding and never
    /// shown. None for shops onboarded before guest ids were keyed: their
    /// guests keep the unkeyed ids their accounts already have.
    #[serde(default)]
    pub guest_id_key: Option<String>,
}

impl Shop {
    /// The account a guest (an email, no customer id) earns on at this shop.
    pub fn guest_id(&self, email: &Email) -> CustomerId {
        match self.guest_id_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => CustomerId::for_guest_keyed(email, key.as_bytes()),
            None => CustomerId::for_guest(email),
        }
    }
}

/// The e-commerce platform a shop runs on (its webhooks' shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Shopify.
    Shopify,
    /// WooCommerce.
    Woocommerce,
    /// Any shop posting our generic order format.
    Generic,
}

/// A cashback coupon with its running use count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRecord {
    /// The coupon as the merchant set it up.
    pub coupon: CashbackCoupon,
    /// How many times it has been used (uses given back are taken off).
    pub uses: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Whose uses of a coupon a counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "by", content = "key", rename_all = "snake_case")]
pub enum UsageKey {
    /// One customer's uses.
    Customer(CustomerId),
    /// A normalised email, so a new account with the same address does not
    /// reset the per-customer limit.
    Email(Email),
}

/// What the merchant imported about a product, for the exclusions the
/// platform's order payload cannot express (collections, compare-at price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogProduct {
    /// The product's id on the platform.
    pub product_id: ProductId,
    /// The collections the product is in.
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Price before a sale, in the shop's currency; a line sold below it is
    /// a sale item.
    #[serde(default)]
    pub compare_at_price: Option<Money>,
}

impl CatalogProduct {
    /// Fills in what the platform left out of a line: what the platform
    /// itself says about the line wins over the imported catalog.
    pub fn enrich(&self, line: &mut cashback_core::order::Line) {
        if line.collection_ids.is_empty() {
            line.collection_ids = self.collection_ids.clone();
        }
        if line.compare_at_price.is_none() {
            line.compare_at_price = self.compare_at_price;
        }
    }
}

/// Most products one `put_catalog` call takes (the API's batch size).
pub const MAX_CATALOG_BATCH: usize = 500;

// ---- API keys with scopes: several live keys per shop, each stored as its
// ---- SHA-256, with what it may do, when it was last used and revoked.

/// What an API key may do. A key holds one or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// A checkout: validate a code it was given and hold balance for it.
    Checkout,
    /// The shop's portal server: read one customer's view of their cashback.
    PortalServer,
}

impl KeyScope {
    /// Every scope, in the order they are listed.
    pub const ALL: [KeyScope; 2] = [KeyScope::Checkout, KeyScope::PortalServer];

    /// The scope's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Checkout => "checkout",
            KeyScope::PortalServer => "portal_server",
        }
    }
}

/// An API key as stored: never the key, only its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_` and 16 hex digits; names the key in the admin API and logs.
    pub key_id: String,
    /// What the merchant calls it ("WooCommerce checkout").
    pub name: String,
    /// What the key may do.
    pub scopes: Vec<KeyScope>,
    /// SHA-256 (hex) of the key.
    pub hash: String,
    /// The key's first characters, so a merchant can tell keys apart.
    pub hint: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (an IAM principal, or "admin-token").
    #[serde(default)]
    pub created_by: Option<String>,
    /// When the key was revoked, if it was.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Recorded at most every few minutes per container, so a busy key is
    /// not a hot item (`cashback_app::api_keys::LAST_USED_EVERY_SECONDS`).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKeyRecord {
    /// The key holds `scope`.
    pub fn allows(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The key has not been revoked.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// What a revocation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked by this call.
    Now,
    /// Revoked before, at this time.
    Already(DateTime<Utc>),
    /// No such key.
    Missing,
}
