//! Which emails a change calls for, and their once-only keys.
//!
//! A notice is decided with the change and its key is recorded in the same
//! transaction; it becomes a [`Notification`] for the Notifier only after the
//! change committed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use cashback_core::ids::{CustomerId, Email, OrderId, ShopId};
use cashback_core::ledger::{Account, Applied, Effect, EntryKind};
use cashback_core::money::Money;
use cashback_core::orders::OrderRecord;
use cashback_core::program::{EmailText, Program};

use crate::context::Context;
use crate::error::AppError;
use crate::notify::{Branding, Notification, NotificationKind};

/// An email a committed change calls for, decided with the change and not
/// yet rendered: what to tell whom, and its once-only key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Unique per email; recorded before sending.
    pub key: String,
    /// The shop the account belongs to.
    pub shop: ShopId,
    /// The account's customer.
    pub customer: CustomerId,
    /// The address the account holds now.
    pub to: Email,
    /// What the email says.
    pub kind: NotificationKind,
}

/// The emails a committed change should send to the account's owner. They
/// state where the change left the customer, not each step on the way:
/// - "earned" announces the order's cashback net of what the same change
///   took back (a refund recorded before its paid event) and, when it is
///   credited at once, of the debt it paid; nothing when nothing is left;
///   such a clawback has no email of its own;
/// - "ready" states what became spendable: the release less the debt it
///   paid, and is not sent when debt took it all;
/// - a tier is announced only when the account ends the change in it.
pub fn notices_for(
    shop: &ShopId,
    account: &Account,
    record: &OrderRecord,
    applied: &Applied,
    program: &Program,
) -> Vec<Notice> {
    let Some(to) = account.email.clone() else {
        return Vec::new();
    };
    // An unsubscribed customer gets no cashback email at all, not only no
    // reminders; a suppressed address cannot be written to.
    if account.reminders.unsubscribed || account.reminders.suppressed {
        return Vec::new();
    }
    let customer = &account.customer;
    let earned_here = |order: &OrderId| {
        applied
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Earned { order_id, .. } if order_id == order))
    };
    let clawed_here = |order: &OrderId| -> Money {
        let amounts: Vec<Money> = applied
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::ClawedBack {
                    order_id, amount, ..
                } if order_id == order => Some(*amount),
                _ => None,
            })
            .collect();
        Money::sum(account.currency, &amounts).unwrap_or(Money::zero(account.currency))
    };
    // Debt paid from the credits of one kind: a credit's debt recovery is
    // the entry right after it.
    let debt_paid_from = |kind: EntryKind| -> Money {
        let amounts: Vec<Money> = applied
            .entries
            .windows(2)
            .filter(|pair| {
                pair[0].kind == kind
                    && pair[0].available_delta.is_positive()
                    && pair[1].kind == EntryKind::Clawback
                    && pair[1].debt_delta.is_negative()
            })
            .map(|pair| pair[1].debt_delta.negated())
            .collect();
        Money::sum(account.currency, &amounts).unwrap_or(Money::zero(account.currency))
    };
    let mut notices = Vec::new();
    for effect in &applied.effects {
        let (key, kind) = match effect {
            Effect::Earned {
                order_id,
                amount,
                release_at,
            } => {
                let mut net = amount.checked_sub(clawed_here(order_id)).unwrap_or(*amount);
                // Credited at once ("ready to spend now"): what debt took
                // is not spendable either.
                if release_at.is_none() {
                    net = net
                        .checked_sub(debt_paid_from(EntryKind::Earn))
                        .unwrap_or(net);
                }
                if !net.is_positive() {
                    continue;
                }
                (
                    format!("earned:{customer}:{order_id}"),
                    NotificationKind::Earned {
                        amount: net,
                        order_name: order_id.to_string(),
                        release_at: *release_at,
                        code: account.code.clone(),
                    },
                )
            }
            Effect::Released { order_id, amount } => {
                let Some(code) = account.code.clone() else {
                    continue;
                };
                let spendable = amount
                    .checked_sub(debt_paid_from(EntryKind::Release))
                    .unwrap_or(*amount);
                if !spendable.is_positive() {
                    continue;
                }
                (
                    format!("ready:{customer}:{order_id}"),
                    NotificationKind::Ready {
                        amount: spendable,
                        balance: account.available,
                        code,
                    },
                )
            }
            // The earn announced with it already says what is left.
            Effect::ClawedBack { order_id, .. } if earned_here(order_id) => continue,
            Effect::ClawedBack {
                order_id,
                amount,
                debt,
            } => (
                format!(
                    "clawback:{customer}:{order_id}:{}",
                    record.clawed_back.amount()
                ),
                NotificationKind::ClawedBack {
                    amount: *amount,
                    order_name: order_id.to_string(),
                    balance: account.available,
                    debt: *debt,
                },
            ),
            Effect::TierUpgraded { tier } => {
                if account.tier != Some(*tier) {
                    continue;
                }
                let Some(found) = program.tiers.get(*tier) else {
                    continue;
                };
                (
                    format!("tier:{customer}:{tier}"),
                    NotificationKind::TierUpgraded {
                        tier_name: found.name.clone(),
                        percent: found.percent.normalize().to_string(),
                    },
                )
            }
            _ => continue,
        };
        notices.push(Notice {
            key,
            shop: shop.clone(),
            customer: customer.clone(),
            to: to.clone(),
            kind,
        });
    }
    notices
}

impl Notice {
    /// The email ready for the Notifier: the merchant's subject and preview
    /// text for its kind (or the reminder position's), the shop's branding and a
    /// signed unsubscribe link. Fails only when the link keys cannot be
    /// read (their first use in a container reads them).
    pub async fn into_notification(
        self,
        ctx: &Context,
        shop_name: &str,
        program: &Program,
    ) -> Result<Notification, AppError> {
        let unsubscribe_url = unsubscribe_url(ctx, &self.shop, &self.customer).await?;
        let texts = &program.emails;
        let custom: Option<&EmailText> = match &self.kind {
            NotificationKind::Earned { .. } => texts.earned.as_ref(),
            NotificationKind::Ready { .. } => texts.ready.as_ref(),
            NotificationKind::ClawedBack { .. } => texts.clawback.as_ref(),
            NotificationKind::TierUpgraded { .. } => texts.tier_upgrade.as_ref(),
            // The template's own words (the amount and the date).
            NotificationKind::ExpiryWarning { .. } => None,
            // A reminder's texts live on its position, below.
            NotificationKind::Reminder { .. } => None,
            NotificationKind::Bonus { .. } => None,
        };
        let (subject, preview_text) = match (&self.kind, custom) {
            (NotificationKind::Reminder { position, .. }, _) => program
                .reminders
                .iter()
                .find(|r| r.position == *position)
                .map(|r| {
                    (
                        Some(r.subject.clone()),
                        Some(r.preview_text.clone()).filter(|p| !p.is_empty()),
                    )
                })
                .unwrap_or((None, None)),
            (_, Some(text)) => (
                Some(text.subject.clone()),
                Some(text.preview_text.clone()).filter(|p| !p.is_empty()),
            ),
            _ => (None, None),
        };
        Ok(Notification {
            unsubscribe_url: Some(unsubscribe_url),
            idempotency_key: self.key,
            shop: self.shop,
            to: self.to,
            branding: Branding {
                display_name: program.display_name.clone(),
                shop_name: shop_name.to_string(),
                shop_url: program.shop_url.clone(),
                subject,
                preview_text,
            },
            kind: self.kind,
        })
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The signature that proves an unsubscribe link came from our email.
pub fn unsubscribe_signature(secret: &[u8], shop: &ShopId, customer: &CustomerId) -> String {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("unsubscribe:{shop}:{customer}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks an unsubscribe link's signature in constant time.
pub fn verify_unsubscribe(
    secret: &[u8],
    shop: &ShopId,
    customer: &CustomerId,
    signature: &str,
) -> bool {
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(format!("unsubscribe:{shop}:{customer}").as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The signed link that turns the customer's reminders off, under the
/// current link secret; it does not expire.
pub async fn unsubscribe_url(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<String, AppError> {
    let keys = ctx.config.link_keys.get().await?;
    Ok(format!(
        "{}/v1/shops/{}/customers/{}/unsubscribe?sig={}",
        ctx.config.public_base_url.trim_end_matches('/'),
        shop,
        customer,
        unsubscribe_signature(&keys.current, shop, customer)
    ))
}
