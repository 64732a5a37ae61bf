//! The embedded default: a demo shop with a program, and fixed development
//! credentials written in the README so anyone can try the engine with curl.
//! They are for a local machine only; a deployed shop gets its own through
//! the admin API (the API key is shown once and stored hashed).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use cashback_app::store::{Platform, Shop, Store, StoreError};
use cashback_core::bonuses::BirthdayBonus;
use cashback_core::ids::ShopId;
use cashback_core::money::Currency;
use cashback_core::program::{Issuance, Program, ReminderPosition};

pub const DEMO_SHOP: &str = cashback_test_support::samples::DEMO_SHOP;
pub const DEMO_WEBHOOK_SECRET: &str = cashback_test_support::samples::DEMO_SECRET;
pub const DEMO_WEBHOOK_SECRET_REF: &str = cashback_test_support::samples::DEMO_SECRET_REF;
pub const DEMO_API_KEY: &str = "cbk_demo_local_development_key";
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

pub fn demo_shop_id() -> ShopId {
    ShopId::parse(DEMO_SHOP).unwrap_or_else(|_| unreachable!("the demo shop id is valid"))
}

/// 5 % from the merchant plus a 2 % partner match, held 30 days, a four-step
/// reminder series (one step switched off), codes usable from 5.00, and a
/// 5.00 birthday bonus.
pub fn demo_program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.display_name = "CashBack".into();
    program.earning.merchant_percent = Decimal::new(5, 0);
    program.earning.partner_match_percent = Decimal::new(2, 0);
    program.issuance = Issuance::Pending { days: 30 };
    program.redemption.min_balance = Decimal::new(5, 0);
    program.shop_url = Some("https://demo.myshopify.com".into());
    program.reminders = [
        (0, true, 0, "Your cashback is ready to spend"),
        (1, true, 3, "Don't forget your cashback"),
        (2, false, 7, "Still there: your cashback"),
        (3, true, 14, "Your cashback is waiting"),
    ]
    .into_iter()
    .map(
        |(position, enabled, offset_days, subject)| ReminderPosition {
            position,
            enabled,
            offset_days,
            subject: subject.into(),
            preview_text: "Use your code at checkout.".into(),
        },
    )
    .collect();
    program.bonuses.birthday = Some(BirthdayBonus {
        amount: Decimal::new(500, 2),
        issuance: Issuance::Immediate,
        days_before: 0,
    });
    program
}

/// Creates the demo shop and its program if they are not there yet.
pub async fn seed(store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    let shop = Shop {
        shop: demo_shop_id(),
        platform: Platform::Shopify,
        currency: Currency::USD,
        name: "Demo Store".into(),
        webhook_secret_ref: DEMO_WEBHOOK_SECRET_REF.into(),
        api_key_hash: cashback_edge::auth::hash_api_key(DEMO_API_KEY),
        created_at: now,
        guest_id_key: None,
    };
    match store.create_shop(&shop).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(error) => return Err(error),
    }
    if store.get_program(&shop.shop).await?.is_none() {
        store
            .put_program(&shop.shop, &demo_program(), 0, now)
            .await?;
    }
    Ok(())
}
