//! The values every test starts from: the demo shop, amounts in dollars,
//! the instant a test's story begins, and the base program (10% cashback,
//! the rest as `Program::new` sets it). A test that needs more builds on
//! these: `let mut program = program(); program.expiry_days = Some(365);`.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal_macros::dec;

use cashback_app::store::{Platform, Shop};
use cashback_core::ids::{Code, CustomerId, ShopId};
use cashback_core::money::{Currency, Money};
use cashback_core::program::Program;

/// The demo shop's domain, as every sample delivery names it.
pub const DEMO_SHOP: &str = crate::samples::DEMO_SHOP;

/// The demo shop.
pub fn shop() -> ShopId {
    ShopId::parse(DEMO_SHOP).unwrap_or_else(|e| panic!("{DEMO_SHOP}: {e}"))
}

/// `amount` US dollars ("12.50").
pub fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap_or_else(|e| panic!("test amount {amount}: {e}"))
}

/// When a test's story starts: 2026-11-23 10:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!("a valid instant"))
}

/// A customer id.
pub fn customer(id: &str) -> CustomerId {
    CustomerId::parse(id).unwrap_or_else(|e| panic!("customer {id}: {e}"))
}

/// A balance or coupon code.
pub fn code(value: &str) -> Code {
    Code::parse(value).unwrap_or_else(|e| panic!("code {value}: {e}"))
}

/// 10% cashback on eligible merchandise, everything else as
/// `Program::new` sets it (pending 30 days, no referral, no expiry).
pub fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program
}

/// The demo shop's record: a Shopify shop in dollars, opened at `created_at`,
/// whose webhook secret is `webhook_secret_ref` and whose API key hashes to
/// `api_key_hash` (empty: no key).
pub fn demo_shop_record(
    webhook_secret_ref: &str,
    api_key_hash: String,
    created_at: DateTime<Utc>,
) -> Shop {
    Shop {
        shop: shop(),
        platform: Platform::Shopify,
        currency: Currency::USD,
        name: "Demo Store".into(),
        webhook_secret_ref: webhook_secret_ref.into(),
        api_key_hash,
        created_at,
        guest_id_key: None,
    }
}

/// The key a test context signs links and forms with: tests build their
/// contexts with fixed keys (the default configuration's, or their own).
pub fn link_key(ctx: &cashback_app::Context) -> &[u8] {
    match ctx.config.link_keys.if_loaded() {
        Some(keys) => &keys.current,
        None => panic!("a test context has fixed link keys"),
    }
}
