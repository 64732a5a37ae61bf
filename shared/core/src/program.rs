//! A shop's cashback program: how customers earn, when it is released, how the
//! code may be spent, and the reminder series. One per shop, JSON, validated
//! on load so that every later rule can trust its figures.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::bonuses::Bonuses;
use crate::ids::{CollectionId, ProductId, VariantId};
use crate::money::Currency;
use crate::platform_code::{
    store_credit_refusals, ExistingStoreCredit, PlatformSync, MAX_PERCENT_UNSUPPORTED,
};

/// A validation failure, naming the field as a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Where the problem is, as a JSON path into the submitted document
    /// (`tiers[1].percent`), so a form can show it beside its field;
    /// `(body)` when the JSON itself could not be read.
    pub field: String,
    /// What is wrong and what is accepted, for a person to read.
    pub message: String,
}

/// Every problem found in a program, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid program: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ProgramErrors(pub Vec<FieldError>);

/// What the cashback is called when the merchant has not renamed it.
pub const DEFAULT_DISPLAY_NAME: &str = "CashBack";
/// Days earned cashback stays pending by default: long enough for most
/// returns to come back before the balance can be spent.
pub const DEFAULT_PENDING_DAYS: u32 = 30;
/// The longest pending period a program may set.
pub const MAX_PENDING_DAYS: u32 = 365;
/// How long a checkout's hold on balance lasts by default (15 minutes).
pub const DEFAULT_HOLD_TTL_SECONDS: u32 = 15 * 60;
/// Reminder positions a series has: 0 to 6.
pub const REMINDER_POSITIONS: u8 = 7;
/// Referral rewards one referrer may earn per UTC day by default, against
/// farming rewards with made-up customers.
pub const DEFAULT_REFERRAL_DAILY_CAP: u32 = 5;
/// The highest daily referral cap a program may set.
pub const MAX_REFERRAL_DAILY_CAP: u32 = 1000;

/// A shop's cashback program: one per shop, stored and edited as JSON.
/// Amounts are plain decimals in `currency` at its minor unit and percents
/// are numbers of hundredths (`5` for 5 %); [`Program::validate`] checks
/// both, so the rules that read a program trust its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// What the cashback is called everywhere the customer sees it (emails,
    /// pages, checkout messages); 1 to 40 characters, "CashBack" by default.
    #[serde(default = "default_display_name")]
    pub display_name: String,
    /// The shop's currency, the one every account's ledger is kept in;
    /// orders and carts in another currency are refused.
    pub currency: Currency,
    /// How much an order earns.
    #[serde(default)]
    pub earning: Earning,
    /// Lines that earn nothing.
    #[serde(default)]
    pub exclusions: Exclusions,
    /// Ascending by `min_lifetime_spend`; the tier a customer is in before an
    /// order sets that order's rate.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Seasonal bonuses added to the earn percent while active.
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// What a referrer earns on a referred customer's first order; None: the
    /// shop runs no referral program.
    #[serde(default)]
    pub referral: Option<ReferralReward>,
    /// Referral rewards one referrer may earn per day (UTC); referred
    /// orders past it pay the referrer nothing.
    #[serde(default = "default_referral_daily_cap")]
    pub referral_daily_cap: u32,
    /// Which order event earns the cashback.
    #[serde(default)]
    pub trigger: Trigger,
    /// Whether earned cashback is spendable at once or waits pending.
    #[serde(default)]
    pub issuance: Issuance,
    /// How the customer's balance code may be spent.
    #[serde(default)]
    pub redemption: RedemptionRules,
    /// The reminder series, one entry per position used, in any order;
    /// positions left out are never sent.
    #[serde(default)]
    pub reminders: Vec<ReminderPosition>,
    /// Available balance expires this many days after it was credited,
    /// rounded up to the end of an expiry period ([`Lot::expiry`]), oldest
    /// first (1 to 3650); None: it never expires.
    ///
    /// [`Lot::expiry`]: crate::ledger::Lot::expiry
    #[serde(default)]
    pub expiry_days: Option<u32>,
    /// When the balance expires (`expiry_days`), the customer is warned by
    /// email this many hours before each lot goes, once per offset (at most
    /// 5 distinct offsets, each 1 to 8,760 hours); empty: no warnings.
    /// 30 days, 7 days and 24 hours unless set.
    #[serde(default = "default_expiry_warning_hours")]
    pub expiry_warning_hours: Vec<u32>,
    /// How long a checkout may hold balance before it is freed, in seconds
    /// (1 to 86,400).
    #[serde(default = "default_hold_ttl")]
    pub hold_ttl_seconds: u32,
    /// Where emails send the customer back to shop; an http(s) URL.
    #[serde(default)]
    pub shop_url: Option<String>,
    /// Subject and preview of the transactional emails, when the merchant
    /// changes them.
    #[serde(default)]
    pub emails: EmailTexts,
    /// The largest manual adjustment (a credit or a debit) the admin API
    /// accepts in one request, in the shop's currency; none: no limit.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub max_adjustment: Option<Decimal>,
    /// Who made this version of the program (set by the admin API from the
    /// caller's principal; whatever a request body says is replaced).
    #[serde(default)]
    pub changed_by: Option<String>,
    /// Whether the platform's test orders (Shopify `test: true`) earn and
    /// change balances like real ones. Off by default: a test checkout in a
    /// live shop pays nobody.
    #[serde(default)]
    pub test_orders_earn: bool,
    /// Whether the balance code is also kept on the shop's platform (off by
    /// default); see [`crate::platform_code`].
    #[serde(default, skip_serializing_if = "PlatformSync::is_off")]
    pub platform_sync: PlatformSync,
    /// What the store credit customers hold before the engine first reads
    /// their account is; required in store-credit mode, ignored otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_store_credit: Option<ExistingStoreCredit>,
    /// Birthday, anniversary, win-back and milestone bonuses, all off by
    /// default; see [`crate::bonuses`].
    #[serde(default, skip_serializing_if = "Bonuses::is_off")]
    pub bonuses: Bonuses,
    /// Where the customer emails come from: the engine's SES emails (the
    /// default), events in the shop's Klaviyo for the merchant's own flows,
    /// or both. Klaviyo needs the shop's key, checked when the program is
    /// saved (docs/klaviyo.md). Always written out, so the dashboard's
    /// program form shows it as a field.
    #[serde(default)]
    pub email_channel: EmailChannel,
}

/// Where a shop's customer emails come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailChannel {
    /// The engine's own emails through SES; no events.
    #[default]
    Ses,
    /// Events only: the merchant's Klaviyo flows send the emails.
    Klaviyo,
    /// Both: the engine's emails and the events.
    Both,
}

impl EmailChannel {
    /// The engine sends the customer emails itself, through SES.
    pub fn sends_ses(&self) -> bool {
        matches!(self, EmailChannel::Ses | EmailChannel::Both)
    }

    /// The engine records events, so the merchant's own flows can send the emails.
    pub fn sends_events(&self) -> bool {
        matches!(self, EmailChannel::Klaviyo | EmailChannel::Both)
    }

    /// The default (left out of the stored program).
    pub fn is_ses(&self) -> bool {
        *self == EmailChannel::Ses
    }

    /// The setting's name as the API and the dashboard spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            EmailChannel::Ses => "ses",
            EmailChannel::Klaviyo => "klaviyo",
            EmailChannel::Both => "both",
        }
    }
}

fn default_display_name() -> String {
    DEFAULT_DISPLAY_NAME.to_string()
}

fn default_hold_ttl() -> u32 {
    DEFAULT_HOLD_TTL_SECONDS
}

fn default_referral_daily_cap() -> u32 {
    DEFAULT_REFERRAL_DAILY_CAP
}

/// How much an order earns: a percent of its eligible base plus the best
/// fixed rule met, capped per order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earning {
    /// Percent of the eligible base the merchant funds (0 to 100); a tier's
    /// percent replaces it for customers in that tier.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub merchant_percent: Decimal,
    /// Percent a partner matches on top, funded by the partner.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub partner_match_percent: Decimal,
    /// Flat amounts for orders at or over a threshold, added to the percent;
    /// only the largest one met applies.
    #[serde(default)]
    pub fixed_rules: Vec<FixedRule>,
    /// At most this much cashback per order from the program (coupons come
    /// on top), in the shop's currency; None: no cap.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub cap_per_order: Option<Decimal>,
    /// Orders whose eligible base is below this earn nothing (gift cards and
    /// excluded lines do not count toward it); 0 = no minimum.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub min_order_subtotal: Decimal,
}

/// A flat reward for a large enough order ("10.00 on orders of 50.00 or
/// more").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedRule {
    /// Cashback added to the order's percent earn, in the shop's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The least eligible base that meets the rule (compared with `>=`).
    #[serde(with = "rust_decimal::serde::str")]
    pub min_order: Decimal,
}

/// Lines that do not count toward the eligible base: they earn nothing, meet
/// no threshold, and their refunds claw nothing back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusions {
    /// Products that never earn, whichever variant is sold.
    #[serde(default)]
    pub product_ids: Vec<ProductId>,
    /// Single variants that never earn.
    #[serde(default)]
    pub variant_ids: Vec<VariantId>,
    /// SKUs that never earn, matched trimmed and case-insensitively.
    #[serde(default)]
    pub skus: Vec<String>,
    /// Vendors (brands) whose products never earn, matched trimmed and
    /// case-insensitively.
    #[serde(default)]
    pub vendors: Vec<String>,
    /// Collections whose products never earn.
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Leave out lines sold below their compare-at price.
    #[serde(default)]
    pub sale_items: bool,
    /// Leave out gift card purchases (true by default): cashback is earned
    /// when the card is spent, not twice.
    #[serde(default = "yes")]
    pub gift_cards: bool,
}

fn yes() -> bool {
    true
}

impl Default for Exclusions {
    fn default() -> Self {
        Exclusions {
            product_ids: Vec::new(),
            variant_ids: Vec::new(),
            skus: Vec::new(),
            vendors: Vec::new(),
            collection_ids: Vec::new(),
            sale_items: false,
            gift_cards: true,
        }
    }
}

/// A loyalty level reached by lifetime eligible spend (net of refunds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The tier's name as the customer sees it ("Gold"); not empty.
    pub name: String,
    /// Lifetime eligible spend from which a customer is in this tier, in the
    /// shop's currency; strictly ascending across the program's tiers.
    #[serde(with = "rust_decimal::serde::str")]
    pub min_lifetime_spend: Decimal,
    /// Replaces the merchant percent for customers in this tier (0 to 100);
    /// the partner match and promotions still add to it.
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
}

/// A seasonal bonus ("double cashback weekend"), judged at the order's own
/// time, not when its webhook arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// The merchant's name for it, for the dashboard and reports.
    pub name: String,
    /// First moment orders get the bonus (inclusive).
    pub starts_at: DateTime<Utc>,
    /// Moment the bonus stops (exclusive); after `starts_at`.
    pub ends_at: DateTime<Utc>,
    /// Percent added to the earn percent (0 to 100); the bonuses of
    /// overlapping promotions add up.
    #[serde(with = "rust_decimal::serde::str")]
    pub bonus_percent: Decimal,
}

impl Promotion {
    /// Whether an order at `at` gets the bonus: `starts_at <= at < ends_at`.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }
}

/// What a referrer earns when a customer they referred pays a first order
/// with something eligible. It follows the program's issuance and is taken
/// back in proportion when that order is refunded or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReferralReward {
    /// A flat amount per referred first order, in the shop's currency.
    Fixed {
        /// The reward, zero or more, at the currency's minor unit.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A share of the referred order's eligible base, rounded toward zero.
    Percent {
        /// Per cent of the eligible base (0 to 100).
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
    },
}

/// Which order event earns the cashback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Earn when the order is paid (the default).
    #[default]
    Paid,
    /// Earn when the order ships, so an order cancelled before shipping
    /// never earns. A balance code is still redeemed on payment.
    Fulfilled,
}

/// When earned cashback becomes spendable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Issuance {
    /// Available at once (it pays any debt first).
    Immediate,
    /// Held pending, then released by the scheduled job, so a refund within
    /// the period takes it back before it can be spent.
    Pending {
        /// Days from the order's own time (paid or fulfilled at) to release,
        /// 0 to 365; 30 by default.
        days: u32,
    },
}

impl Default for Issuance {
    fn default() -> Self {
        Issuance::Pending {
            days: DEFAULT_PENDING_DAYS,
        }
    }
}

/// How the customer's balance code may be spent at checkout. The same
/// settings go to the platform's own code (minimum subtotal, combinations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRules {
    /// The least cart subtotal (merchandise after other discounts) the code
    /// works on, in the shop's currency; 0 = no minimum.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub min_order_subtotal: Decimal,
    /// The code works only once this much has accrued.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub min_balance: Decimal,
    /// The code may be used beside a shipping discount (true by default).
    #[serde(default = "yes")]
    pub combine_with_shipping: bool,
    /// The code may be used beside another order discount (false by
    /// default).
    #[serde(default)]
    pub combine_with_order: bool,
    /// The code may be used beside a product discount (true by default).
    #[serde(default = "yes")]
    pub combine_with_product: bool,
    /// The code takes at most this percent of the cart's subtotal (more
    /// than 0, at most 100); None: up to all of it.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub max_percent_of_order: Option<Decimal>,
    /// Who may spend a customer's balance code. Whoever uses it, the
    /// discount is debited from the code's owner.
    #[serde(default)]
    pub usable_by: CodeUsers,
}

/// Who may spend a customer's balance code at checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeUsers {
    /// Only its owner: validate refuses another customer, and a request
    /// that names no customer (id or email) at all.
    #[default]
    OwnerOnly,
    /// Anyone holding the code, like a gift card (the owner still pays).
    Anyone,
}

impl Default for RedemptionRules {
    fn default() -> Self {
        RedemptionRules {
            min_order_subtotal: Decimal::ZERO,
            min_balance: Decimal::ZERO,
            combine_with_shipping: true,
            combine_with_order: false,
            combine_with_product: true,
            max_percent_of_order: None,
            usable_by: CodeUsers::OwnerOnly,
        }
    }
}

/// One email of the reminder series, which brings a customer back while
/// balance is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderPosition {
    /// 0 to 6, unique in the program; sent at most once per series.
    pub position: u8,
    /// A disabled position is skipped; the others keep their offsets.
    pub enabled: bool,
    /// Days after the cashback became available (the series' start), at
    /// most 3650; strictly increasing with the position.
    pub offset_days: u32,
    /// The email's subject; not empty.
    pub subject: String,
    /// The line mail clients show after the subject; empty: the default.
    #[serde(default)]
    pub preview_text: String,
}

/// The merchant's own subject and preview for each transactional email;
/// None keeps the built-in text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTexts {
    /// The email telling a customer an order earned cashback.
    #[serde(default)]
    pub earned: Option<EmailText>,
    /// The "cashback ready" email sent when pending cashback is released.
    #[serde(default)]
    pub ready: Option<EmailText>,
    /// The email telling a customer a refund or cancellation took cashback
    /// back.
    #[serde(default)]
    pub clawback: Option<EmailText>,
    /// The email announcing a move up to a higher tier.
    #[serde(default)]
    pub tier_upgrade: Option<EmailText>,
}

/// A merchant's wording for one email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailText {
    /// The email's subject.
    pub subject: String,
    /// The line mail clients show after the subject; empty: the default.
    #[serde(default)]
    pub preview_text: String,
}

/// The expiry warnings a program sends unless it says otherwise: 30 days,
/// 7 days and 24 hours before the balance goes.
pub fn default_expiry_warning_hours() -> Vec<u32> {
    crate::expiry_warnings::DEFAULT_OFFSETS_HOURS.to_vec()
}

impl Program {
    /// A program with the defaults and no earning rule: a starting point.
    pub fn new(currency: Currency) -> Program {
        Program {
            display_name: default_display_name(),
            currency,
            earning: Earning::default(),
            exclusions: Exclusions::default(),
            tiers: Vec::new(),
            promotions: Vec::new(),
            referral: None,
            referral_daily_cap: DEFAULT_REFERRAL_DAILY_CAP,
            trigger: Trigger::default(),
            issuance: Issuance::default(),
            redemption: RedemptionRules::default(),
            reminders: Vec::new(),
            expiry_days: None,
            expiry_warning_hours: default_expiry_warning_hours(),
            hold_ttl_seconds: DEFAULT_HOLD_TTL_SECONDS,
            shop_url: None,
            emails: EmailTexts::default(),
            max_adjustment: None,
            changed_by: None,
            test_orders_earn: false,
            platform_sync: PlatformSync::Off,
            existing_store_credit: None,
            bonuses: Bonuses::default(),
            email_channel: EmailChannel::Ses,
        }
    }

    /// Whether a delivery the platform marked as a test may change the
    /// ledger. The one place this rule lives.
    pub fn accepts_test_orders(&self) -> bool {
        self.test_orders_earn
    }

    /// Parses and validates a program from JSON. Unknown fields are refused,
    /// so a misspelt setting is an error rather than silently ignored.
    pub fn from_json(json: &str) -> Result<Program, ProgramErrors> {
        let program: Program = serde_json::from_str(json).map_err(|error| {
            ProgramErrors(vec![FieldError {
                field: json_error_field(&error),
                message: error.to_string(),
            }])
        })?;
        program.validate()?;
        Ok(program)
    }

    /// Checks every figure of the program (percents 0 to 100, amounts not
    /// negative and at the currency's minor unit, tiers ascending, reminder
    /// positions unique with increasing offsets, ...) and returns every
    /// problem found, each named by its JSON path.
    pub fn validate(&self) -> Result<(), ProgramErrors> {
        let mut errors = Vec::new();
        let mut fail = |field: String, message: &str| {
            errors.push(FieldError {
                field,
                message: message.to_string(),
            });
        };
        let minor = self.currency.minor_units();
        let amount_ok =
            |value: Decimal| !value.is_sign_negative() && value.normalize().scale() <= minor;
        let amount_message = format!("must be zero or more, with at most {minor} decimals");

        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 40 {
            fail("display_name".into(), "must be 1 to 40 characters");
        }
        check_percent(
            &mut fail,
            "earning.merchant_percent",
            self.earning.merchant_percent,
        );
        check_percent(
            &mut fail,
            "earning.partner_match_percent",
            self.earning.partner_match_percent,
        );
        for (i, rule) in self.earning.fixed_rules.iter().enumerate() {
            if !amount_ok(rule.amount) {
                fail(format!("earning.fixed_rules[{i}].amount"), &amount_message);
            }
            if !amount_ok(rule.min_order) {
                fail(
                    format!("earning.fixed_rules[{i}].min_order"),
                    &amount_message,
                );
            }
        }
        if let Some(cap) = self.earning.cap_per_order {
            if !amount_ok(cap) {
                fail("earning.cap_per_order".into(), &amount_message);
            }
        }
        if !amount_ok(self.earning.min_order_subtotal) {
            fail("earning.min_order_subtotal".into(), &amount_message);
        }
        let mut previous: Option<Decimal> = None;
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.name.trim().is_empty() {
                fail(format!("tiers[{i}].name"), "must not be empty");
            }
            if !amount_ok(tier.min_lifetime_spend) {
                fail(format!("tiers[{i}].min_lifetime_spend"), &amount_message);
            }
            if previous.is_some_and(|p| tier.min_lifetime_spend <= p) {
                fail(
                    format!("tiers[{i}].min_lifetime_spend"),
                    "tier thresholds must be strictly ascending",
                );
            }
            previous = Some(tier.min_lifetime_spend);
            check_percent(&mut fail, &format!("tiers[{i}].percent"), tier.percent);
        }
        for (i, promotion) in self.promotions.iter().enumerate() {
            if promotion.ends_at <= promotion.starts_at {
                fail(
                    format!("promotions[{i}].ends_at"),
                    "must be after starts_at",
                );
            }
            check_percent(
                &mut fail,
                &format!("promotions[{i}].bonus_percent"),
                promotion.bonus_percent,
            );
        }
        match &self.referral {
            Some(ReferralReward::Fixed { amount }) if !amount_ok(*amount) => {
                fail("referral.amount".into(), &amount_message);
            }
            Some(ReferralReward::Percent { percent }) => {
                check_percent(&mut fail, "referral.percent", *percent);
            }
            _ => {}
        }
        if self.referral_daily_cap == 0 || self.referral_daily_cap > MAX_REFERRAL_DAILY_CAP {
            fail("referral_daily_cap".into(), "must be between 1 and 1000");
        }
        if let Issuance::Pending { days } = self.issuance {
            if days > MAX_PENDING_DAYS {
                fail("issuance.days".into(), "must be between 0 and 365");
            }
        }
        let r = &self.redemption;
        if !amount_ok(r.min_order_subtotal) {
            fail("redemption.min_order_subtotal".into(), &amount_message);
        }
        if !amount_ok(r.min_balance) {
            fail("redemption.min_balance".into(), &amount_message);
        }
        if let Some(percent) = r.max_percent_of_order {
            if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
                fail(
                    "redemption.max_percent_of_order".into(),
                    "must be more than 0 and at most 100",
                );
            } else if self.platform_sync == PlatformSync::DiscountCode {
                fail(
                    "redemption.max_percent_of_order".into(),
                    MAX_PERCENT_UNSUPPORTED,
                );
            }
        }
        for (field, reason) in store_credit_refusals(self) {
            let percent_out_of_range = field == "redemption.max_percent_of_order"
                && r.max_percent_of_order
                    .is_some_and(|p| p <= Decimal::ZERO || p > Decimal::ONE_HUNDRED);
            if !percent_out_of_range {
                fail(field.into(), reason);
            }
        }
        let mut seen = [false; REMINDER_POSITIONS as usize];
        let mut by_position: Vec<&ReminderPosition> = Vec::new();
        for (i, reminder) in self.reminders.iter().enumerate() {
            if reminder.position >= REMINDER_POSITIONS {
                fail(
                    format!("reminders[{i}].position"),
                    "must be between 0 and 6",
                );
                continue;
            }
            if seen[reminder.position as usize] {
                fail(
                    format!("reminders[{i}].position"),
                    "positions must be unique",
                );
                continue;
            }
            seen[reminder.position as usize] = true;
            if reminder.subject.trim().is_empty() {
                fail(format!("reminders[{i}].subject"), "must not be empty");
            }
            if reminder.offset_days > 3650 {
                fail(
                    format!("reminders[{i}].offset_days"),
                    "must be at most 3650",
                );
            }
            by_position.push(reminder);
        }
        by_position.sort_by_key(|r| r.position);
        for pair in by_position.windows(2) {
            if pair[1].offset_days <= pair[0].offset_days {
                let index = self
                    .reminders
                    .iter()
                    .position(|r| r.position == pair[1].position)
                    .unwrap_or(0);
                fail(
                    format!("reminders[{index}].offset_days"),
                    "offsets must increase with the position",
                );
            }
        }
        if let Some(days) = self.expiry_days {
            if days == 0 || days > 3650 {
                fail("expiry_days".into(), "must be between 1 and 3650");
            }
        }
        crate::expiry_warnings::check_offsets(&self.expiry_warning_hours, &mut fail);
        if self.hold_ttl_seconds == 0 || self.hold_ttl_seconds > 24 * 3600 {
            fail("hold_ttl_seconds".into(), "must be between 1 and 86400");
        }
        if let Some(max) = self.max_adjustment {
            if !amount_ok(max) || max.is_zero() {
                fail(
                    "max_adjustment".into(),
                    &format!("must be more than zero, with at most {minor} decimals"),
                );
            }
        }
        if let Some(url) = &self.shop_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                fail("shop_url".into(), "must be an http(s) URL");
            }
        }
        errors.extend(self.bonuses.validate(minor));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ProgramErrors(errors))
        }
    }

    /// The tier (index into `tiers`) a customer with this lifetime eligible
    /// spend is in, if any.
    pub fn tier_for(&self, lifetime_spend: Decimal) -> Option<usize> {
        self.tiers
            .iter()
            .rposition(|tier| lifetime_spend >= tier.min_lifetime_spend)
    }

    /// Days earned cashback waits before release; None under immediate
    /// issuance.
    pub fn pending_days(&self) -> Option<u32> {
        match self.issuance {
            Issuance::Immediate => None,
            Issuance::Pending { days } => Some(days),
        }
    }
}

fn check_percent(fail: &mut impl FnMut(String, &str), field: &str, value: Decimal) {
    if value < Decimal::ZERO || value > Decimal::ONE_HUNDRED {
        fail(field.to_string(), "must be a percent between 0 and 100");
    }
}

/// serde_json reports "unknown field `x`" or "missing field `x`" without a
/// path; name the field when the message carries it.
fn json_error_field(error: &serde_json::Error) -> String {
    let message = error.to_string();
    // An unknown variant names the value, not the field: name the one
    // setting whose choices are these.
    if message.contains("`owner_only`") {
        return "redemption.usable_by".to_string();
    }
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_string)
        .unwrap_or_else(|| "(body)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn fields(result: Result<(), ProgramErrors>) -> Vec<String> {
        result
            .err()
            .map(|e| e.0.into_iter().map(|f| f.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_program_takes_the_documented_defaults() {
        let program = Program::from_json(r#"{"currency":"USD"}"#).unwrap();
        assert_eq!(program.display_name, "CashBack");
        assert_eq!(program.issuance, Issuance::Pending { days: 30 });
        assert_eq!(program.trigger, Trigger::Paid);
        assert!(program.exclusions.gift_cards);
        assert_eq!(program.hold_ttl_seconds, 900);
    }

    #[test]
    fn percents_outside_0_to_100_name_their_field() {
        let mut program = Program::new(Currency::USD);
        program.earning.merchant_percent = dec!(101);
        program.earning.partner_match_percent = dec!(-1);
        assert_eq!(
            fields(program.validate()),
            ["earning.merchant_percent", "earning.partner_match_percent"]
        );
    }

    #[test]
    fn negative_caps_and_over_precise_amounts_are_refused() {
        let mut program = Program::new(Currency::USD);
        program.earning.cap_per_order = Some(dec!(-5));
        program.redemption.min_balance = dec!(1.001);
        assert_eq!(
            fields(program.validate()),
            ["earning.cap_per_order", "redemption.min_balance"]
        );
    }

    #[test]
    fn tier_thresholds_must_ascend() {
        let mut program = Program::new(Currency::USD);
        let tier = |name: &str, spend| Tier {
            name: name.into(),
            min_lifetime_spend: spend,
            percent: dec!(5),
        };
        program.tiers = vec![tier("silver", dec!(500)), tier("gold", dec!(500))];
        assert_eq!(fields(program.validate()), ["tiers[1].min_lifetime_spend"]);
        program.tiers = vec![tier("silver", dec!(500)), tier("gold", dec!(1000))];
        assert!(program.validate().is_ok());
        assert_eq!(program.tier_for(dec!(499.99)), None);
        assert_eq!(program.tier_for(dec!(500)), Some(0));
        assert_eq!(program.tier_for(dec!(5000)), Some(1));
    }

    #[test]
    fn reminder_positions_are_0_to_6_unique_with_rising_offsets() {
        let mut program = Program::new(Currency::USD);
        let reminder = |position, offset_days| ReminderPosition {
            position,
            enabled: true,
            offset_days,
            subject: "Your cashback is waiting".into(),
            preview_text: String::new(),
        };
        program.reminders = vec![reminder(0, 0), reminder(0, 3), reminder(7, 9)];
        assert_eq!(
            fields(program.validate()),
            ["reminders[1].position", "reminders[2].position"]
        );
        program.reminders = vec![reminder(0, 5), reminder(1, 3)];
        assert_eq!(fields(program.validate()), ["reminders[1].offset_days"]);
    }

    #[test]
    fn pending_days_are_0_to_365() {
        let mut program = Program::new(Currency::USD);
        program.issuance = Issuance::Pending { days: 366 };
        assert_eq!(fields(program.validate()), ["issuance.days"]);
        program.issuance = Issuance::Pending { days: 0 };
        assert!(program.validate().is_ok());
    }

    #[test]
    fn a_balance_code_is_its_owners_alone_unless_the_program_says_anyone() {
        let program = Program::from_json(r#"{"currency":"USD"}"#).unwrap();
        assert_eq!(program.redemption.usable_by, CodeUsers::OwnerOnly);
        assert_eq!(program.referral_daily_cap, DEFAULT_REFERRAL_DAILY_CAP);
        let gift = Program::from_json(
            r#"{"currency":"USD","redemption":{"usable_by":"anyone"},"referral_daily_cap":3}"#,
        )
        .unwrap();
        assert_eq!(gift.redemption.usable_by, CodeUsers::Anyone);
        assert_eq!(gift.referral_daily_cap, 3);
        let errors =
            Program::from_json(r#"{"currency":"USD","redemption":{"usable_by":"friends"}}"#)
                .unwrap_err();
        assert_eq!(errors.0[0].field, "redemption.usable_by");
        let errors =
            Program::from_json(r#"{"currency":"USD","referral_daily_cap":0}"#).unwrap_err();
        assert_eq!(errors.0[0].field, "referral_daily_cap");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let errors = Program::from_json(r#"{"currency":"USD","merchant_pct":"5"}"#).unwrap_err();
        assert_eq!(errors.0[0].field, "merchant_pct");
        let errors = Program::from_json(r#"{"currency":"XYZ"}"#).unwrap_err();
        assert!(errors.0[0].message.contains("XYZ"));
    }

    #[test]
    fn test_orders_earn_only_when_the_program_says_so() {
        let program = Program::from_json(r#"{"currency":"USD"}"#).unwrap();
        assert!(!program.accepts_test_orders());
        let program = Program::from_json(r#"{"currency":"USD","test_orders_earn":true}"#).unwrap();
        assert!(program.accepts_test_orders());
        let errors =
            Program::from_json(r#"{"currency":"USD","test_orders_earn":"yes"}"#).unwrap_err();
        assert!(errors.0[0].message.contains("boolean"));
    }

    #[test]
    fn a_full_program_round_trips_through_json() {
        let json = r#"{
            "display_name": "Rewards",
            "currency": "EUR",
            "earning": {"merchant_percent": "5", "partner_match_percent": "2.5",
                        "fixed_rules": [{"amount": "10.00", "min_order": "50.00"}],
                        "cap_per_order": "200.00", "min_order_subtotal": "20.00"},
            "exclusions": {"skus": ["GIFT-WRAP"], "sale_items": true},
            "tiers": [{"name": "Gold", "min_lifetime_spend": "1000.00", "percent": "8"}],
            "promotions": [{"name": "Black Friday", "starts_at": "2026-11-27T00:00:00Z",
                            "ends_at": "2026-11-30T00:00:00Z", "bonus_percent": "5"}],
            "referral": {"type": "fixed", "amount": "15.00"},
            "trigger": "fulfilled",
            "issuance": {"type": "pending", "days": 14},
            "redemption": {"min_order_subtotal": "50.00", "min_balance": "5.00",
                           "combine_with_order": true, "max_percent_of_order": "50"},
            "reminders": [{"position": 0, "enabled": true, "offset_days": 0, "subject": "Ready"},
                          {"position": 1, "enabled": false, "offset_days": 7, "subject": "A week"}],
            "expiry_days": 365
        }"#;
        let program = Program::from_json(json).unwrap();
        let again = Program::from_json(&serde_json::to_string(&program).unwrap()).unwrap();
        assert_eq!(program, again);
        assert_eq!(program.earning.partner_match_percent, dec!(2.5));
    }
}
