//! Applying a platform's order event: the use case behind the order webhook.
//!
//! One read (the order, the customer's account, the coupons and code owners
//! the order names), the core's decision, one transaction guarded by the
//! event's business key. A concurrent change to the same account or order
//! makes the transaction fail; the use case then starts again from a fresh
//! read, a bounded number of times. Emails the change calls for are recorded
//! in the same transaction and sent after it commits: an email is never sent
//! for a change that did not happen, and never twice.
//!
//! A referred customer's first earning order also credits their referrer
//! (see [`crate::referral`]) in that same transaction.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use cashback_core::coupon::{CouponCheck, CouponCredit, CouponUsage};
use cashback_core::earn::eligible_base;
use cashback_core::ids::{Code, CustomerId, ProductId, ShopId};
use cashback_core::ledger::{Account, Applied, Effect};
use cashback_core::order::{Order, OrderEvent};
use cashback_core::orders::{apply_order_event, EventContext, OrderRecord};
use cashback_core::program::Program;
use cashback_core::reminders::next_reminder;

use crate::context::Context;
use crate::error::AppError;
use crate::notices::{notices_for, Notice};
use crate::referral;
use crate::store::*;

/// How long a processed event's guard is kept. Shopify retries for 4 hours
/// and may deliver a day late; the order record itself also refuses a
/// replay after the guard is gone.
pub const EVENT_GUARD_DAYS: i64 = 35;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The ledger changed (or the event was recorded for later, e.g. a
    /// refund before its order).
    Applied { entries: usize, emails: usize },
    /// This event was applied before; nothing changed.
    Duplicate,
    /// Nothing to do: an order with no customer, a shop test order...
    Ignored { reason: String },
}

/// Applies one order event for a shop.
pub async fn handle_order_event(
    ctx: &Context,
    shop: &ShopId,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<EventOutcome, AppError> {
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let keyed = with_guest_id(&shop_program.shop, event);
    let event = keyed.as_ref().unwrap_or(event);
    let mut last_error = String::new();
    for attempt in 1..=ctx.config.max_attempts {
        match attempt_once(ctx, shop, program, event, now).await {
            Ok((outcome, notices)) => {
                let emails = send_notices(ctx, &shop_program.shop.name, program, notices).await;
                info!(shop = %shop, event = %event.effect_key(), ?outcome, emails, attempt, "order event handled");
                return Ok(match outcome {
                    EventOutcome::Applied { entries, .. } => {
                        EventOutcome::Applied { entries, emails }
                    }
                    other => other,
                });
            }
            Err(AppError::Store(error))
                if error.is_conflict() || matches!(error, StoreError::CouponLimit(_)) =>
            {
                // Someone else changed the account, the order or the coupon's
                // count: decide again on fresh data.
                last_error = error.to_string();
                backoff(attempt).await;
            }
            Err(error) => return Err(error),
        }
    }
    Err(AppError::Contended {
        attempts: ctx.config.max_attempts,
        last: last_error,
    })
}

/// The event with its guest (an email, no customer id) named by the shop's
/// keyed guest id; None when there is nothing to change (a customer with an
/// id, or a shop onboarded before guest ids were keyed).
fn with_guest_id(shop: &Shop, event: &OrderEvent) -> Option<OrderEvent> {
    shop.guest_id_key.as_ref()?;
    let order = match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) | OrderEvent::Cancelled(order) => {
            order
        }
        OrderEvent::Refunded(_) => return None,
    };
    let email = order
        .customer
        .email
        .as_ref()
        .filter(|_| order.customer.id.is_none())?;
    let mut keyed = order.clone();
    keyed.customer.id = Some(shop.guest_id(email));
    Some(match event {
        OrderEvent::Paid(_) => OrderEvent::Paid(keyed),
        OrderEvent::Fulfilled(_) => OrderEvent::Fulfilled(keyed),
        _ => OrderEvent::Cancelled(keyed),
    })
}

pub(crate) async fn backoff(attempt: u32) {
    // Small and jittered: losers of a race should not collide again.
    let jitter = u64::from(std::process::id() ^ attempt.wrapping_mul(2654435761)) % 7;
    let millis = (u64::from(attempt.min(6)) * 5) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

fn customer_of(event: &OrderEvent) -> Option<(CustomerId, Option<cashback_core::ids::Email>)> {
    match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) | OrderEvent::Cancelled(order) => {
            order
                .customer
                .account_id()
                .map(|id| (id, order.customer.email.clone()))
        }
        OrderEvent::Refunded(_) => None,
    }
}

/// Collection and sale-item exclusions need what Shopify's order lines do
/// not carry (collections, compare-at prices): the merchant's imported
/// catalog supplies it, in the event's one read, only when the program
/// excludes by them.
fn catalog_products_needed(program: &Program, event: &OrderEvent) -> Vec<ProductId> {
    let exclusions = &program.exclusions;
    if exclusions.collection_ids.is_empty() && !exclusions.sale_items {
        return Vec::new();
    }
    let mut ids: Vec<ProductId> = order_of(event)
        .map(|order| {
            order
                .lines
                .iter()
                .filter_map(|l| l.product_id.clone())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

/// The event with its lines completed from the catalog, if it knew any.
fn enriched_by_catalog(
    event: &OrderEvent,
    products: &std::collections::HashMap<ProductId, CatalogProduct>,
) -> Option<OrderEvent> {
    if products.is_empty() {
        return None;
    }
    let mut event = event.clone();
    if let OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) | OrderEvent::Cancelled(order) =
        &mut event
    {
        for line in &mut order.lines {
            if let Some(product) = line.product_id.as_ref().and_then(|id| products.get(id)) {
                product.enrich(line);
            }
        }
    }
    Some(event)
}

fn order_of(event: &OrderEvent) -> Option<&Order> {
    match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) | OrderEvent::Cancelled(order) => {
            Some(order)
        }
        OrderEvent::Refunded(_) => None,
    }
}

async fn attempt_once(
    ctx: &Context,
    shop: &ShopId,
    program: &Program,
    event: &OrderEvent,
    now: DateTime<Utc>,
) -> Result<(EventOutcome, Vec<Notice>), AppError> {
    let store = &ctx.store;
    let customer = customer_of(event);
    let codes: Vec<Code> = order_of(event)
        .map(|o| o.discount_codes.iter().map(|c| c.code.clone()).collect())
        .unwrap_or_default();
    let mut request = ReadRequest {
        order: Some(event.order_id().clone()),
        accounts: customer.iter().map(|(id, _)| id.clone()).collect(),
        coupons: codes.clone(),
        // Whose codes these are, in the same read: a referral needs it.
        code_owners: referral::candidate_codes(program, event),
        products: catalog_products_needed(program, event),
        ..ReadRequest::default()
    };
    if let Some((id, email)) = &customer {
        for code in &codes {
            request
                .coupon_uses
                .push((code.clone(), UsageKey::Customer(id.clone())));
            if let Some(email) = email {
                request
                    .coupon_uses
                    .push((code.clone(), UsageKey::Email(email.clone())));
            }
        }
    }
    let mut read = store.read(shop, &request).await?;
    let with_catalog = enriched_by_catalog(event, &read.products);
    let event = with_catalog.as_ref().unwrap_or(event);
    let mut record = read.order.take().unwrap_or_else(|| {
        Versioned::new(OrderRecord::new(event.order_id().clone(), program.currency))
    });

    // A refund names no customer: the order record does, once the order was seen.
    let customer_id = match (&customer, &record.value.customer) {
        (Some((id, _)), _) => Some(id.clone()),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    };
    let mut account = match &customer_id {
        Some(id) => match read.accounts.remove(id) {
            Some(found) => Some(found),
            None if customer.is_none() => {
                // The refund's order is known but its account was not in the
                // first read: one more read (refunds/create carries no customer).
                let again = store
                    .read(
                        shop,
                        &ReadRequest {
                            accounts: vec![id.clone()],
                            ..ReadRequest::default()
                        },
                    )
                    .await?;
                again.accounts.get(id).cloned()
            }
            None => None,
        },
        None => None,
    };
    let mut code_change = None;
    if account.is_none() {
        if let Some(id) = &customer_id {
            let mut opened = Account::open(shop.clone(), id.clone(), program.currency);
            opened.email = customer.as_ref().and_then(|(_, email)| email.clone());
            let code = ctx.new_code()?;
            opened.code = Some(code.clone());
            code_change = Some(CodeChange {
                new_code: code,
                old_code: None,
            });
            account = Some(Versioned::new(opened));
        }
    }
    if let (Some(account), Some((_, Some(email)))) = (account.as_mut(), &customer) {
        // Keep the address the platform last gave, for emails.
        if account.value.email.as_ref() != Some(email) {
            account.value.email = Some(email.clone());
        }
    }
    if customer_id.is_none() && !matches!(event, OrderEvent::Refunded(_)) {
        return Ok((
            EventOutcome::Ignored {
                reason: "order has no customer id or email".into(),
            },
            Vec::new(),
        ));
    }

    let coupons = match (order_of(event), &account) {
        (Some(order), Some(account)) => coupon_credits(
            program,
            order,
            &account.value,
            &read,
            record.value.judged_at(order).min(now),
        ),
        _ => Vec::new(),
    };
    let event_ctx = EventContext {
        program,
        now,
        coupons: &coupons,
    };
    let orders_earned_before = account.as_ref().map(|a| a.value.orders_earned);
    let applied = apply_order_event(
        &event_ctx,
        account.as_mut().map(|a| &mut a.value),
        &mut record.value,
        event,
    )?;
    if applied.duplicate {
        return Ok((EventOutcome::Duplicate, Vec::new()));
    }

    let notices = match &account {
        Some(account) => notices_for(shop, &account.value, &record.value, &applied, program),
        None => Vec::new(),
    };
    let referrer_write = match (order_of(event), &account, orders_earned_before) {
        (Some(order), Some(buyer), Some(before)) => {
            referral_write(
                ctx,
                shop,
                program,
                order,
                &buyer.value,
                before,
                &record.value,
                &read.code_owners,
                now,
            )
            .await?
        }
        _ => None,
    };
    let writes = WriteSet {
        guard: Some(Guard {
            key: event.effect_key(),
            expires_at: now + Duration::days(EVENT_GUARD_DAYS),
            response: None,
        }),
        accounts: account
            .map(|account| AccountWrite {
                reminder_due_at: next_reminder(program, &account.value).map(|due| due.due_at),
                account: account.value,
                expected_version: account.version,
                entries: applied.entries.clone(),
                code_change,
            })
            .into_iter()
            .chain(referrer_write)
            .collect(),
        order: Some(OrderWrite {
            record: record.value.clone(),
            expected_version: record.version,
        }),
        coupon_uses: coupon_use_changes(&applied, &record.value, &read, customer.as_ref()),
        notifications: notices.iter().map(|n| n.key.clone()).collect(),
    };
    match store.write(shop, writes).await {
        Ok(WriteOutcome::Committed) => Ok((
            EventOutcome::Applied {
                entries: applied.entries.len(),
                emails: 0,
            },
            notices,
        )),
        Ok(WriteOutcome::Duplicate { .. }) => Ok((EventOutcome::Duplicate, Vec::new())),
        Err(StoreError::CodeTaken) => Err(AppError::Store(StoreError::Conflict(
            "generated code collided".into(),
        ))),
        Err(error) => Err(error.into()),
    }
}

/// The referrer's credit when this event made a referred buyer's first
/// order earn; None otherwise. Reads the referrer's account (the one extra
/// read a referral costs, only when it pays).
#[allow(clippy::too_many_arguments)]
async fn referral_write(
    ctx: &Context,
    shop: &ShopId,
    program: &Program,
    order: &Order,
    buyer: &Account,
    orders_earned_before: u32,
    record: &OrderRecord,
    owners: &std::collections::HashMap<Code, CustomerId>,
    now: DateTime<Utc>,
) -> Result<Option<AccountWrite>, AppError> {
    if owners.is_empty() || !referral::is_first_earning_order(orders_earned_before, buyer) {
        return Ok(None);
    }
    let Some(referrer_id) = referral::referrer_of(order, &buyer.customer, owners) else {
        return Ok(None);
    };
    let mut read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                accounts: vec![referrer_id.clone()],
                ..ReadRequest::default()
            },
        )
        .await?;
    let Some(mut referrer) = read.accounts.remove(&referrer_id) else {
        warn!(shop = %shop, referrer = %referrer_id, "referral code owner has no account");
        return Ok(None);
    };
    if referral::same_person(&referrer.value, buyer.email.as_ref()) {
        info!(shop = %shop, customer = %buyer.customer, "self-referral through another account pays nothing");
        return Ok(None);
    }
    let entries = referral::credit_referral(
        program,
        &mut referrer.value,
        &buyer.customer,
        &record.order_id,
        record.eligible(),
        now,
    )?;
    if entries.is_empty() {
        return Ok(None);
    }
    info!(shop = %shop, referrer = %referrer_id, referred = %buyer.customer, order = %record.order_id, "referral reward credited");
    Ok(Some(AccountWrite {
        reminder_due_at: next_reminder(program, &referrer.value).map(|due| due.due_at),
        account: referrer.value,
        expected_version: referrer.version,
        entries,
        code_change: None,
    }))
}

/// Cashback from the cashback coupons on an order, checked as at checkout,
/// at the order's own time (`at`: when it was placed, even if fulfilment
/// earns later). A coupon that no longer applies (paused, used up) simply
/// gives nothing.
fn coupon_credits(
    program: &Program,
    order: &Order,
    account: &Account,
    read: &ReadResult,
    at: DateTime<Utc>,
) -> Vec<CouponCredit> {
    let eligible = match eligible_base(&order.lines, &program.exclusions, program.currency) {
        Ok(eligible) => eligible,
        Err(_) => return Vec::new(),
    };
    // Every code on the order counts as company for an exclusive coupon,
    // ordinary discount codes included.
    let code_count = order.discount_codes.len();
    let mut credits = Vec::new();
    for applied in &order.discount_codes {
        let Some(record) = read.coupons.get(&applied.code) else {
            continue;
        };
        let coupon = &record.value.coupon;
        let usage = CouponUsage {
            total: record.value.uses,
            by_customer: read
                .coupon_uses
                .get(&(
                    applied.code.clone(),
                    UsageKey::Customer(account.customer.clone()),
                ))
                .copied()
                .unwrap_or(0),
            by_email: account
                .email
                .as_ref()
                .and_then(|email| {
                    read.coupon_uses
                        .get(&(applied.code.clone(), UsageKey::Email(email.clone())))
                })
                .copied()
                .unwrap_or(0),
        };
        let check = CouponCheck {
            eligible,
            payment_method: order.payment_method.as_deref(),
            other_coupons: code_count.saturating_sub(1),
            usage,
            customer_known: true,
            at,
        };
        match coupon.evaluate(&check) {
            Ok(cashback) => credits.push(CouponCredit {
                code: coupon.code.clone(),
                cashback,
            }),
            Err(refusal) => info!(reason = %refusal, "cashback coupon on order does not apply"),
        }
    }
    credits
}

fn coupon_use_changes(
    applied: &Applied,
    record: &OrderRecord,
    read: &ReadResult,
    customer: Option<&(CustomerId, Option<cashback_core::ids::Email>)>,
) -> Vec<CouponUseChange> {
    let Some(customer_id) = record.customer.clone() else {
        return Vec::new();
    };
    let email = customer.and_then(|(_, email)| email.clone());
    applied
        .effects
        .iter()
        .filter_map(|effect| {
            let (code, delta) = match effect {
                Effect::CouponUsed { code } => (code, 1),
                Effect::CouponUseReturned { code } => (code, -1),
                _ => return None,
            };
            let coupon = read.coupons.get(code).map(|c| &c.value.coupon);
            Some(CouponUseChange {
                code: code.clone(),
                customer: customer_id.clone(),
                email: email.clone(),
                delta,
                limit_total: coupon.and_then(|c| c.usage_limit_total),
                limit_per_customer: coupon.and_then(|c| c.usage_limit_per_customer),
            })
        })
        .collect()
}

/// Sends what a committed change recorded. A failure is logged, not
/// retried: the email was recorded as sent, and at most once is the promise.
pub(crate) async fn send_notices(
    ctx: &Context,
    shop_name: &str,
    program: &Program,
    notices: Vec<Notice>,
) -> usize {
    let mut sent = 0;
    for notice in notices {
        let notification = notice.into_notification(ctx, shop_name, program);
        match ctx.notifier.send(&notification).await {
            Ok(_) => sent += 1,
            Err(error) => warn!(kind = notification.kind.name(), %error, "email not sent"),
        }
    }
    sent
}
