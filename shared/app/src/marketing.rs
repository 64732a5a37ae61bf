//! The Marketing port: the customer's cashback figures as profile
//! properties, and the engine's notices as events, in the shop's marketing
//! tool (Klaviyo: the `cashback-klaviyo` crate), so merchants can segment on
//! the figures and let their own flows send the emails.
//!
//! Everything sent is derived here, purely, from what the engine already
//! knows: the account, the program and the notices a change decided
//! ([`crate::notices`]). An event's `unique_id` is the notice's once-only
//! key, so a retried push can never count twice on the tool's side.
//!
//! Per shop, [`MarketingSettings`] (kept beside the shop's Klaviyo key)
//! choose the property names (a prefix, or the names Onward used); the
//! program's [`EmailChannel`] chooses whether customer emails go through
//! SES, the tool's flows, or both. Events are written with the change that
//! decided them ([`QueuedEvent`], an outbox item) and recorded in the tool
//! from the change feed by the platform-sync function, like the profile
//! push: never on the request path (docs/klaviyo.md).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use cashback_core::ids::{CustomerId, Email, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Money;
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::notices::Notice;
use crate::notify::NotificationKind;
use crate::store::ReadRequest;

/// The prefix of every property unless the shop sets another.
pub const DEFAULT_PREFIX: &str = "cashback_";

/// The longest prefix accepted (property names stay short enough to read
/// in a segment editor).
pub const MAX_PREFIX_LEN: usize = 32;

/// One property's or event field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// An amount, sent as a number so segments can compare it.
    Amount(Decimal),
    /// A whole number (a count, or a 0/1 flag such as `pending`).
    Integer(i64),
    /// A string (a code, a tier's name, an order's name, a currency code).
    Text(String),
    /// A moment, sent as ISO 8601 (the tool recognises it as a date).
    Time(DateTime<Utc>),
    /// Clears the property (no tier, no pending release).
    Null,
}

impl PropertyValue {
    fn money(money: Money) -> PropertyValue {
        PropertyValue::Amount(money.amount())
    }

    fn time(at: Option<DateTime<Utc>>) -> PropertyValue {
        at.map_or(PropertyValue::Null, PropertyValue::Time)
    }

    /// The ISO 8601 form every time is sent in (seconds, `Z`).
    pub fn format_time(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// Property or event field names, already named for the shop, and their values.
pub type Properties = BTreeMap<String, PropertyValue>;

/// Who a profile or an event belongs to on the tool's side: the email
/// address (the identifier every store integration of the tool shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRef {
    /// The customer's address: the profile's identifier on the tool's side.
    pub email: Email,
    /// The account's customer id, also sent so the merchant can match profiles.
    pub customer: CustomerId,
}

/// The customer's profile properties, set to these absolute values (so a
/// late or repeated push is harmless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// Whose profile is set.
    pub profile: ProfileRef,
    /// The values to set; properties not listed are left untouched.
    pub properties: Properties,
}

/// The metrics the engine records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cashback was earned on an order (pending, or issued at once).
    CashbackEarned,
    /// Pending cashback was released and can be spent now.
    CashbackReady,
    /// A balance reminder of the series fell due.
    ReminderDue,
    /// A refund or cancellation took cashback back.
    CashbackClawedBack,
    /// The customer moved up to a higher tier.
    TierUpgraded,
    /// Part of the balance expires soon (sent a set number of hours before).
    CashbackExpiring,
    /// A bonus was credited or a milestone reached (docs/bonuses.md).
    BonusReceived,
}

impl Metric {
    /// Every metric, in a fixed order (to list them, or to create them on the tool).
    pub const ALL: [Metric; 7] = [
        Metric::CashbackEarned,
        Metric::CashbackReady,
        Metric::ReminderDue,
        Metric::CashbackClawedBack,
        Metric::TierUpgraded,
        Metric::CashbackExpiring,
        Metric::BonusReceived,
    ];

    /// The metric's name as merchants see it in their flows' triggers.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::CashbackEarned => "Cashback Earned",
            Metric::CashbackReady => "Cashback Ready",
            Metric::ReminderDue => "Reminder Due",
            Metric::CashbackClawedBack => "Cashback Clawed Back",
            Metric::TierUpgraded => "Tier Upgraded",
            Metric::CashbackExpiring => "Cashback Expiring",
            Metric::BonusReceived => "Bonus Received",
        }
    }
}

/// One event: a metric, its properties, when it happened and its once-only
/// id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingEvent {
    /// Which metric the event counts under (the trigger of the merchant's flows).
    pub metric: Metric,
    /// Whose event it is.
    pub profile: ProfileRef,
    /// The event's fields (order, code, amounts, dates), for the flow's template.
    pub properties: Properties,
    /// The amount the event is about (the tool's `value`), when it has one.
    pub value: Option<Money>,
    /// When it happened: the time the change committed, not the time it is pushed.
    pub time: DateTime<Utc>,
    /// The notice's key: the tool records an id once per profile and metric.
    pub unique_id: String,
}

/// Why the tool did not take a call, typed so the caller knows whether to
/// wait, retry, park or alarm.
#[derive(Debug, thiserror::Error)]
pub enum MarketingError {
    /// The tool's rate limit: nothing applied, retry after this long.
    #[error("rate limited by the marketing tool; retry after {retry_after:?}")]
    RateLimited {
        /// How long the tool asked to wait before the next call.
        retry_after: Duration,
    },
    /// A timeout, a 5xx, a dropped connection: retrying may succeed (and is
    /// safe: profiles are set absolutely, events carry their unique id).
    #[error("marketing tool call failed: {message}")]
    Transient {
        /// What failed, for the logs.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The tool refused the request, with its reason: retrying the same
    /// request cannot succeed.
    #[error("the marketing tool refused the request: {reason}")]
    Rejected {
        /// The tool's reason, as it gave it.
        reason: String,
    },
    /// The key was refused, or lacks the scope the call needs.
    #[error("the marketing tool refused the key")]
    Unauthorized,
}

impl MarketingError {
    /// A transient failure without an underlying error.
    pub fn transient(message: impl Into<String>) -> MarketingError {
        MarketingError::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// Retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MarketingError::RateLimited { .. } | MarketingError::Transient { .. }
        )
    }
}

/// The shop's marketing tool, for one shop (one private key).
#[async_trait::async_trait]
pub trait Marketing: Send + Sync {
    /// Creates the profile or sets these properties on it (others it holds
    /// are left as they are).
    async fn push_profile(&self, update: &ProfileUpdate) -> Result<(), MarketingError>;

    /// Records one event; the same `unique_id` twice is recorded once.
    async fn track(&self, event: &MarketingEvent) -> Result<(), MarketingError>;
}

/// Which shops have an account in the marketing tool (their Klaviyo key is
/// stored), asked when a program that sends events is saved.
#[async_trait::async_trait]
pub trait MarketingAccounts: Send + Sync {
    /// True when the shop's key is stored and usable; false when there is
    /// none. `Rejected` when one is stored but cannot be used (its reason
    /// names what is wrong, never the key); `Transient` when the store of
    /// keys cannot be read now.
    async fn has_account(&self, shop: &ShopId) -> Result<bool, MarketingError>;
}

/// Checks that a program's email channel can be served: `klaviyo` and
/// `both` need the shop's Klaviyo key (else the customers would get no
/// email at all, or the events would have nowhere to go). `accounts` None:
/// this deployment has no Klaviyo place configured. The refusal is a field
/// error on `email_channel` with the reason; nothing is saved.
pub async fn check_email_channel(
    accounts: Option<&dyn MarketingAccounts>,
    shop: &ShopId,
    program: &Program,
) -> Result<(), AppError> {
    if !program.email_channel.sends_events() {
        return Ok(());
    }
    let refuse = |message: String| {
        AppError::InvalidFields(vec![cashback_core::program::FieldError {
            field: "email_channel".into(),
            message,
        }])
    };
    let channel = program.email_channel.as_str();
    let Some(accounts) = accounts else {
        return Err(refuse(format!(
            "`{channel}` sends the emails as Klaviyo events, and Klaviyo is not set up on this \
             deployment (CASHBACK_KLAVIYO_CREDENTIALS); keep `ses`"
        )));
    };
    match accounts.has_account(shop).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(format!(
            "`{channel}` sends the emails as Klaviyo events, and this shop has no Klaviyo \
             private key: store it first (docs/klaviyo.md), or keep `ses`"
        ))),
        Err(MarketingError::Rejected { reason }) => Err(refuse(format!(
            "`{channel}` needs the shop's Klaviyo key, and the one stored is not usable: {reason}"
        ))),
        Err(error) => Err(AppError::Store(crate::store::StoreError::Unavailable(
            crate::store::Unreachable::caused_by("the shop's Klaviyo key could not be read", error),
        ))),
    }
}

/// How profile properties are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyNaming {
    /// Every property is the shop's prefix and the figure's name
    /// (`cashback_balance`).
    #[default]
    Prefixed,
    /// The five figures Onward synced keep Onward's names
    /// (`onward_balance`, `onward_pending_issuance_balance`, ...), so the
    /// segments and flows of a merchant moving from it keep working; the
    /// figures Onward did not have take the prefix.
    OnwardCompatible,
}

/// Where a shop's customer emails come from: a program setting
/// (`Program::email_channel`), so the use cases that decide the emails know
/// it without reading the shop's Klaviyo parameter.
pub use cashback_core::program::EmailChannel;

/// A shop's marketing settings, kept beside its Klaviyo key (docs/klaviyo.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketingSettings {
    /// Put before every figure's name (`cashback_` unless set); checked by
    /// [`MarketingSettings::validate`].
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Whether the figures Onward had keep Onward's names.
    #[serde(default)]
    pub naming: PropertyNaming,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_string()
}

impl Default for MarketingSettings {
    fn default() -> Self {
        MarketingSettings {
            prefix: default_prefix(),
            naming: PropertyNaming::default(),
        }
    }
}

/// Why a shop's marketing settings were refused; nothing is saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The prefix is empty or longer than [`MAX_PREFIX_LEN`].
    #[error("prefix: must be 1 to {MAX_PREFIX_LEN} characters")]
    PrefixLength,
    /// The prefix does not start with a letter, or holds more than `a-z`,
    /// `0-9` and `_`.
    #[error("prefix: must start with a letter and hold only a-z, 0-9 and _")]
    PrefixCharacters,
    /// The prefix is Onward's own `onward_`.
    #[error("prefix: `onward_` is Onward's; choose the onward_compatible naming instead")]
    PrefixTaken,
}

impl MarketingSettings {
    /// Checks the settings as given by the merchant: the prefix is 1 to 32
    /// lower-case letters, digits and underscores, starting with a letter
    /// (names the tool's segment editor shows as typed), and not Onward's
    /// own (half the names would then collide with the migrated ones).
    pub fn validate(&self) -> Result<(), SettingsError> {
        let prefix = self.prefix.as_str();
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(SettingsError::PrefixLength);
        }
        let starts_with_letter = prefix
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase());
        let allowed = prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !starts_with_letter || !allowed {
            return Err(SettingsError::PrefixCharacters);
        }
        if prefix == "onward_" {
            return Err(SettingsError::PrefixTaken);
        }
        Ok(())
    }

    /// The property name of one figure under these settings.
    pub fn property_name(&self, figure: Figure) -> String {
        match (self.naming, figure.onward_name()) {
            (PropertyNaming::OnwardCompatible, Some(onward)) => onward.to_string(),
            _ => format!("{}{}", self.prefix, figure.suffix()),
        }
    }
}

/// The figures pushed as profile properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// The spendable balance, checkouts' holds included (an amount in the
    /// account's currency, never negative).
    Balance,
    /// Cashback earned on orders and not released yet (never negative).
    Pending,
    /// All cashback ever credited, net of clawbacks.
    LifetimeIssued,
    /// All balance ever spent at checkout, net of restores.
    LifetimeUsed,
    /// The customer's balance code, as typed at checkout (cleared when none).
    Code,
    /// The name of the customer's tier (cleared when none).
    Tier,
    /// The earliest release of the account's pending orders (cleared when none).
    NextReleaseDate,
    /// The account's ISO 4217 currency code (`EUR`), for the amounts above.
    Currency,
}

impl Figure {
    /// Every figure, in the order they are pushed.
    pub const ALL: [Figure; 8] = [
        Figure::Balance,
        Figure::Pending,
        Figure::LifetimeIssued,
        Figure::LifetimeUsed,
        Figure::Code,
        Figure::Tier,
        Figure::NextReleaseDate,
        Figure::Currency,
    ];

    /// The name after the prefix.
    pub fn suffix(&self) -> &'static str {
        match self {
            Figure::Balance => "balance",
            Figure::Pending => "pending",
            Figure::LifetimeIssued => "lifetime_issued",
            Figure::LifetimeUsed => "lifetime_used",
            Figure::Code => "code",
            Figure::Tier => "tier",
            Figure::NextReleaseDate => "next_release_date",
            Figure::Currency => "currency",
        }
    }

    /// Onward's name for the figure, where Onward synced it.
    pub fn onward_name(&self) -> Option<&'static str> {
        match self {
            Figure::Balance => Some("onward_balance"),
            Figure::Pending => Some("onward_pending_issuance_balance"),
            Figure::LifetimeIssued => Some("onward_lifetime_issued"),
            Figure::LifetimeUsed => Some("onward_lifetime_used"),
            Figure::Code => Some("onward_discount_code"),
            _ => None,
        }
    }
}

/// The profile properties of an account: balance (what the customer holds,
/// checkouts' holds included, so a checkout in progress does not make it
/// flicker), pending, lifetime issued and used, the balance code, the tier's
/// name and the next release date (`next_release_at`, the earliest release
/// of the account's pending orders; None clears it). None when the account
/// has no email: the tool cannot name the profile.
pub fn profile_update(
    settings: &MarketingSettings,
    account: &Account,
    program: &Program,
    next_release_at: Option<DateTime<Utc>>,
) -> Option<ProfileUpdate> {
    let email = account.email.clone()?;
    let tier = account
        .tier
        .and_then(|index| program.tiers.get(index))
        .map_or(PropertyValue::Null, |tier| {
            PropertyValue::Text(tier.name.clone())
        });
    let code = account.code.as_ref().map_or(PropertyValue::Null, |code| {
        PropertyValue::Text(code.display())
    });
    let mut properties = Properties::new();
    for figure in Figure::ALL {
        let value = match figure {
            Figure::Balance => PropertyValue::money(account.available),
            Figure::Pending => PropertyValue::money(account.pending),
            Figure::LifetimeIssued => PropertyValue::money(account.lifetime_issued),
            Figure::LifetimeUsed => PropertyValue::money(account.lifetime_used),
            Figure::Code => code.clone(),
            Figure::Tier => tier.clone(),
            Figure::NextReleaseDate => PropertyValue::time(next_release_at),
            Figure::Currency => PropertyValue::Text(account.currency.code().to_string()),
        };
        properties.insert(settings.property_name(figure), value);
    }
    Some(ProfileUpdate {
        profile: ProfileRef {
            email,
            customer: account.customer.clone(),
        },
        properties,
    })
}

/// The event of a notice the engine decided, at `at` (when the change
/// committed), its unique id the notice's once-only key.
pub fn event_for_notice(notice: &Notice, at: DateTime<Utc>) -> MarketingEvent {
    event_of(&notice.key, &notice.customer, &notice.to, &notice.kind, at)
}

/// The event of one email's content (a notice's or a queued event's).
fn event_of(
    key: &str,
    customer: &CustomerId,
    to: &Email,
    kind: &NotificationKind,
    at: DateTime<Utc>,
) -> MarketingEvent {
    let mut properties = Properties::new();
    let mut text = |name: &str, value: String| {
        properties.insert(name.to_string(), PropertyValue::Text(value));
    };
    let (metric, value) = match kind {
        NotificationKind::Earned {
            amount,
            order_name,
            release_at,
            code,
        } => {
            text("order", order_name.clone());
            if let Some(code) = code {
                text("code", code.display());
            }
            properties.insert("release_date".into(), PropertyValue::time(*release_at));
            properties.insert(
                "pending".into(),
                PropertyValue::Integer(i64::from(release_at.is_some())),
            );
            (Metric::CashbackEarned, Some(*amount))
        }
        NotificationKind::Ready {
            amount,
            balance,
            code,
        } => {
            text("code", code.display());
            properties.insert("balance".into(), PropertyValue::money(*balance));
            (Metric::CashbackReady, Some(*amount))
        }
        NotificationKind::Reminder {
            position,
            balance,
            code,
            expires_at,
        } => {
            text("code", code.display());
            properties.insert(
                "position".into(),
                PropertyValue::Integer(i64::from(*position)),
            );
            properties.insert("balance".into(), PropertyValue::money(*balance));
            properties.insert("expires_at".into(), PropertyValue::time(*expires_at));
            (Metric::ReminderDue, Some(*balance))
        }
        NotificationKind::ClawedBack {
            amount,
            order_name,
            balance,
            debt,
        } => {
            text("order", order_name.clone());
            properties.insert("balance".into(), PropertyValue::money(*balance));
            properties.insert("debt".into(), PropertyValue::money(*debt));
            (Metric::CashbackClawedBack, Some(*amount))
        }
        NotificationKind::ExpiryWarning {
            amount,
            expires_at,
            hours_before,
            balance,
            code,
        } => {
            if let Some(code) = code {
                text("code", code.display());
            }
            properties.insert("balance".into(), PropertyValue::money(*balance));
            properties.insert("expires_at".into(), PropertyValue::Time(*expires_at));
            properties.insert(
                "hours_before".into(),
                PropertyValue::Integer(i64::from(*hours_before)),
            );
            (Metric::CashbackExpiring, Some(*amount))
        }
        NotificationKind::TierUpgraded { tier_name, percent } => {
            text("tier", tier_name.clone());
            text("percent", percent.clone());
            (Metric::TierUpgraded, None)
        }
        NotificationKind::Bonus {
            bonus,
            amount,
            milestone,
            balance,
            code,
            extra_percent,
        } => {
            text("bonus", bonus.as_str().to_string());
            if let Some(code) = code {
                text("code", code.display());
            }
            if let Some(offer) = extra_percent {
                properties.insert(
                    "extra_percent".into(),
                    PropertyValue::Text(offer.percent.normalize().to_string()),
                );
                properties.insert("extra_until".into(), PropertyValue::time(Some(offer.until)));
            }
            if let Some(milestone) = milestone {
                properties.insert("milestone".into(), PropertyValue::money(*milestone));
            }
            properties.insert("balance".into(), PropertyValue::money(*balance));
            (Metric::BonusReceived, *amount)
        }
    };
    if let Some(amount) = value {
        properties.insert("amount".into(), PropertyValue::money(amount));
        properties.insert(
            "currency".into(),
            PropertyValue::Text(amount.currency().code().to_string()),
        );
    }
    MarketingEvent {
        metric,
        profile: ProfileRef {
            email: to.clone(),
            customer: customer.clone(),
        },
        properties,
        value,
        time: at,
        unique_id: key.to_string(),
    }
}

/// A notice's event, written with the change that decided it (an outbox
/// item in the customer's partition), for the platform-sync function to
/// record in the shop's Klaviyo from the change feed: off the request path,
/// retried and parked like a code sync. Only for programs whose
/// [`EmailChannel`] sends events. It carries no shop: the shop is the one
/// whose partition holds it, so nothing in it can name another account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedEvent {
    /// The notice's once-only key: the event's `unique_id`.
    pub key: String,
    /// The account's customer (the partition the item is written in).
    pub customer: CustomerId,
    /// The address the account held: the profile the event is recorded on.
    pub to: Email,
    /// What the email would say: the event's metric and properties.
    pub kind: NotificationKind,
    /// When the change committed: the event's `time`.
    pub at: DateTime<Utc>,
}

impl QueuedEvent {
    /// The event to record.
    pub fn event(&self) -> MarketingEvent {
        event_of(&self.key, &self.customer, &self.to, &self.kind, self.at)
    }
}

/// The events to write with a change's notices: one per notice when the
/// program's email channel sends events (`klaviyo` or `both`), none
/// otherwise. `at`: when the change is decided.
pub fn queued_events(program: &Program, notices: &[Notice], at: DateTime<Utc>) -> Vec<QueuedEvent> {
    if !program.email_channel.sends_events() {
        return Vec::new();
    }
    notices
        .iter()
        .map(|notice| QueuedEvent {
            key: notice.key.clone(),
            customer: notice.customer.clone(),
            to: notice.to.clone(),
            kind: notice.kind.clone(),
            at,
        })
        .collect()
}

/// What [`push_customer_profile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The tool holds these properties.
    Pushed(ProfileUpdate),
    /// The account has no email: there is no profile to name.
    NoEmail,
}

/// Why a profile push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The shop's program or the account could not be read.
    #[error(transparent)]
    App(#[from] AppError),
    /// The marketing tool did not take the call; see
    /// [`MarketingError::is_retryable`].
    #[error(transparent)]
    Marketing(#[from] MarketingError),
}

impl PushError {
    /// A later run may succeed (park and retry rather than alarm at once).
    pub fn is_retryable(&self) -> bool {
        match self {
            PushError::App(error) => error.is_retryable(),
            PushError::Marketing(error) => error.is_retryable(),
        }
    }
}

/// Brings one customer's profile in the tool in step with their account:
/// reads the account and its pending orders (for the next release date),
/// derives the properties and sets them. The values are absolute, so a
/// push that comes late or twice leaves the latest figures; the adapter
/// keeps the tool's limits and retries what can be retried.
pub async fn push_customer_profile(
    ctx: &Context,
    marketing: &dyn Marketing,
    settings: &MarketingSettings,
    shop: &cashback_core::ids::ShopId,
    customer: &CustomerId,
) -> Result<PushOutcome, PushError> {
    let program = ctx.shop_program(shop, ctx.now()).await?.program;
    let request = ReadRequest::account(customer);
    let read = ctx
        .store
        .read(shop, &request)
        .await
        .map_err(AppError::from)?;
    let Some(account) = read.accounts.get(customer) else {
        return Err(AppError::NotFound(format!("customer {customer}")).into());
    };
    let next_release_at = crate::portal::pending_releases(ctx, shop, &account.value)
        .await?
        .iter()
        .filter_map(|release| release.release_at)
        .min();
    let Some(update) = profile_update(settings, &account.value, &program, next_release_at) else {
        return Ok(PushOutcome::NoEmail);
    };
    marketing.push_profile(&update).await?;
    tracing::info!(shop = %shop, customer = %customer, "marketing profile pushed");
    Ok(PushOutcome::Pushed(update))
}

/// Records queued events in the shop's tool, each on its own; the ones
/// that failed are returned with their error, to be retried (their unique
/// ids make a repeat harmless).
pub async fn track_queued(
    marketing: &dyn Marketing,
    events: &[QueuedEvent],
) -> Vec<(String, MarketingError)> {
    let mut failed = Vec::new();
    for queued in events {
        if let Err(error) = marketing.track(&queued.event()).await {
            tracing::warn!(key = %queued.key, %error, "marketing event not recorded");
            failed.push((queued.key.clone(), error));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::{Code, ShopId};
    use cashback_core::money::Currency;
    use cashback_core::program::Tier;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn money(amount: Decimal) -> Money {
        Money::new(amount, usd()).unwrap()
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
    }

    fn account() -> Account {
        let mut account = Account::open(
            ShopId::parse("shop-1").unwrap(),
            CustomerId::parse("c-1").unwrap(),
            usd(),
        );
        account.email = Some(Email::parse("Ann@Example.com").unwrap());
        account.code = Some(Code::parse("CB-ANN").unwrap());
        account.available = money(dec!(12.50));
        account.pending = money(dec!(4.00));
        account.lifetime_issued = money(dec!(30.00));
        account.lifetime_used = money(dec!(17.50));
        account.tier = Some(0);
        account
    }

    fn program() -> Program {
        let mut program = Program::new(usd());
        program.tiers = vec![Tier {
            name: "Gold".into(),
            min_lifetime_spend: dec!(100),
            percent: dec!(5),
        }];
        program
    }

    #[test]
    fn properties_take_the_prefix_by_default() {
        let settings = MarketingSettings::default();
        let update = profile_update(&settings, &account(), &program(), Some(at(9))).unwrap();
        assert_eq!(update.profile.email.as_str(), "ann@example.com");
        let p = &update.properties;
        assert_eq!(p["cashback_balance"], PropertyValue::Amount(dec!(12.50)));
        assert_eq!(p["cashback_pending"], PropertyValue::Amount(dec!(4.00)));
        assert_eq!(
            p["cashback_lifetime_issued"],
            PropertyValue::Amount(dec!(30.00))
        );
        assert_eq!(
            p["cashback_lifetime_used"],
            PropertyValue::Amount(dec!(17.50))
        );
        assert_eq!(p["cashback_code"], PropertyValue::Text("CB-ANN".into()));
        assert_eq!(p["cashback_tier"], PropertyValue::Text("Gold".into()));
        assert_eq!(p["cashback_next_release_date"], PropertyValue::Time(at(9)));
        assert_eq!(p["cashback_currency"], PropertyValue::Text("USD".into()));
        assert_eq!(p.len(), Figure::ALL.len());
    }

    #[test]
    fn onward_naming_keeps_onwards_five_names() {
        let settings = MarketingSettings {
            naming: PropertyNaming::OnwardCompatible,
            ..MarketingSettings::default()
        };
        let update = profile_update(&settings, &account(), &program(), None).unwrap();
        let names: Vec<&str> = update.properties.keys().map(String::as_str).collect();
        for name in [
            "onward_balance",
            "onward_pending_issuance_balance",
            "onward_lifetime_issued",
            "onward_lifetime_used",
            "onward_discount_code",
            "cashback_tier",
            "cashback_next_release_date",
            "cashback_currency",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert_eq!(
            update.properties["onward_balance"],
            PropertyValue::Amount(dec!(12.50))
        );
        assert_eq!(
            update.properties["cashback_next_release_date"],
            PropertyValue::Null
        );
    }

    #[test]
    fn no_email_no_profile_and_no_tier_clears_it() {
        let mut without = account();
        without.email = None;
        assert!(
            profile_update(&MarketingSettings::default(), &without, &program(), None).is_none()
        );
        let mut below = account();
        below.tier = None;
        below.code = None;
        let update =
            profile_update(&MarketingSettings::default(), &below, &program(), None).unwrap();
        assert_eq!(update.properties["cashback_tier"], PropertyValue::Null);
        assert_eq!(update.properties["cashback_code"], PropertyValue::Null);
    }

    #[test]
    fn settings_are_validated() {
        let with = |prefix: &str| MarketingSettings {
            prefix: prefix.into(),
            ..MarketingSettings::default()
        };
        assert_eq!(MarketingSettings::default().validate(), Ok(()));
        assert_eq!(with("loyalty_").validate(), Ok(()));
        assert_eq!(with("").validate(), Err(SettingsError::PrefixLength));
        assert_eq!(
            with(&"a".repeat(MAX_PREFIX_LEN + 1)).validate(),
            Err(SettingsError::PrefixLength)
        );
        assert_eq!(
            with("Cash_").validate(),
            Err(SettingsError::PrefixCharacters)
        );
        assert_eq!(
            with("1cash").validate(),
            Err(SettingsError::PrefixCharacters)
        );
        assert_eq!(
            with("cash-").validate(),
            Err(SettingsError::PrefixCharacters)
        );
        assert_eq!(with("onward_").validate(), Err(SettingsError::PrefixTaken));
        let parsed: MarketingSettings =
            serde_json::from_str(r#"{"naming": "onward_compatible"}"#).unwrap();
        assert_eq!(parsed.prefix, DEFAULT_PREFIX);
        assert!(EmailChannel::Both.sends_ses() && EmailChannel::Both.sends_events());
        assert!(!EmailChannel::Klaviyo.sends_ses());
        assert!(!EmailChannel::Ses.sends_events());
        assert!(serde_json::from_str::<MarketingSettings>(r#"{"prefx": "a_"}"#).is_err());
    }

    fn notice(key: &str, kind: NotificationKind) -> Notice {
        Notice {
            key: key.into(),
            shop: ShopId::parse("shop-1").unwrap(),
            customer: CustomerId::parse("c-1").unwrap(),
            to: Email::parse("ann@example.com").unwrap(),
            kind,
        }
    }

    #[test]
    fn each_notice_becomes_its_metric_keyed_by_the_notice() {
        let code = Code::parse("CB-ANN").unwrap();
        let cases = [
            (
                "earned:c-1:1001",
                NotificationKind::Earned {
                    amount: money(dec!(5.00)),
                    order_name: "1001".into(),
                    release_at: Some(at(20)),
                    code: Some(code.clone()),
                },
                Metric::CashbackEarned,
            ),
            (
                "ready:c-1:1001",
                NotificationKind::Ready {
                    amount: money(dec!(5.00)),
                    balance: money(dec!(12.50)),
                    code: code.clone(),
                },
                Metric::CashbackReady,
            ),
            (
                "reminder:c-1:2026-03-01T12:00:00Z:2",
                NotificationKind::Reminder {
                    position: 2,
                    balance: money(dec!(12.50)),
                    code: code.clone(),
                    expires_at: None,
                },
                Metric::ReminderDue,
            ),
            (
                "clawback:c-1:1001:5.00",
                NotificationKind::ClawedBack {
                    amount: money(dec!(5.00)),
                    order_name: "1001".into(),
                    balance: money(dec!(7.50)),
                    debt: money(dec!(0.00)),
                },
                Metric::CashbackClawedBack,
            ),
            (
                "tier:c-1:0",
                NotificationKind::TierUpgraded {
                    tier_name: "Gold".into(),
                    percent: "5".into(),
                },
                Metric::TierUpgraded,
            ),
        ];
        for (key, kind, metric) in cases {
            let event = event_for_notice(&notice(key, kind), at(2));
            assert_eq!(event.metric, metric);
            assert_eq!(event.unique_id, key);
            assert_eq!(event.time, at(2));
            assert_eq!(event.profile.email.as_str(), "ann@example.com");
        }
        let reminder = event_for_notice(
            &notice(
                "reminder:k",
                NotificationKind::Reminder {
                    position: 3,
                    balance: money(dec!(1.00)),
                    code,
                    expires_at: Some(at(30)),
                },
            ),
            at(2),
        );
        assert_eq!(reminder.properties["position"], PropertyValue::Integer(3));
        assert_eq!(
            reminder.properties["expires_at"],
            PropertyValue::Time(at(30))
        );
        assert_eq!(Metric::ReminderDue.name(), "Reminder Due");
    }
}
