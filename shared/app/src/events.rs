//! Applying a platform's order event: the use case behind the order webhook.
//!
//! One read (the order, the customer's account, the coupons and code owners
//! the order names), the core's decision, one transaction guarded by the
//! order item itself: its version condition and the record's memory of what
//! was applied make each event count once (no separate guard item). A
//! concurrent change to the same account or order makes the transaction
//! fail; the use case then starts again from a fresh read, a bounded number
//! of times. Emails the change calls for are recorded in the same
//! transaction and sent after it commits: an email is never sent for a
//! change that did not happen, and never twice.
//!
//! The read also resolves the order's discount codes to their owners: a
//! balance code is debited from its owner whoever the buyer is (a guest, an
//! order naming nobody), and the owner's account (one more read when it is
//! not the buyer's) joins the transaction. A referred customer's first
//! earning order records the referral reward on the order, and its write
//! records the referral credit beside it; the referrer's account is
//! credited off this transaction, from the change feed (see
//! [`crate::referral`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use cashback_core::coupon::{CouponCheck, CouponCredit, CouponUsage};
use cashback_core::earn::eligible_base;
use cashback_core::ids::{Code, CustomerId, ProductId, ShopId};
use cashback_core::ledger::{Account, Applied, Effect};
use cashback_core::order::{Order, OrderEvent};
use cashback_core::orders::{
    apply_order_event_to, CoOwner, EventContext, OrderRecord, Parties, MAX_CODE_OWNERS,
};
use cashback_core::program::Program;

use crate::context::Context;
use crate::coupon_shards;
use crate::error::AppError;
use crate::notices::{notices_for, Notice};
use crate::referral;
use crate::retry::Attempts;
use crate::store::*;

/// How long a processed event's guard item was kept, when order events
/// wrote one. They no longer do: the order record refuses a replay for good
/// and its version condition a concurrent duplicate. Kept for callers that
/// name it.
pub const EVENT_GUARD_DAYS: i64 = 35;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The ledger changed (or the event was recorded for later, e.g. a
    /// refund before its order).
    Applied {
        /// Ledger entries written.
        entries: usize,
        /// Customer emails sent after the commit (a failed send is logged,
        /// not counted).
        emails: usize,
    },
    /// This event was applied before; nothing changed.
    Duplicate,
    /// Nothing to do: an order with no customer, a shop test order...
    Ignored {
        /// Why, for the logs.
        reason: String,
    },
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
    let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
    // After a coupon's limit refused the write, its definition (and the
    // count on it) is read again, not taken from the cache.
    let mut fresh_coupons = false;
    while let Some(attempt) = attempts.start() {
        match attempt_once(ctx, shop, program, event, now, fresh_coupons).await {
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
                if error.is_retryable() || matches!(error, StoreError::CouponLimit(_)) =>
            {
                // Someone else changed the account, the order or the coupon's
                // count, or DynamoDB throttled us: decide again on fresh data.
                fresh_coupons |= matches!(error, StoreError::CouponLimit(_));
                attempts.lost(error).await;
            }
            Err(error) => return Err(error),
        }
    }
    Err(attempts.gave_up())
}

/// The event with its guest (an email, no customer id) named by the shop's
/// keyed guest id; None when there is nothing to change (a customer with an
/// id, or a shop onboarded before guest ids were keyed).
fn with_guest_id(shop: &Shop, event: &OrderEvent) -> Option<OrderEvent> {
    shop.guest_id_key.as_ref()?;
    let order = match event {
        OrderEvent::Created(order)
        | OrderEvent::Paid(order)
        | OrderEvent::Fulfilled(order)
        | OrderEvent::Cancelled(order) => order,
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
        OrderEvent::Created(_) => OrderEvent::Created(keyed),
        OrderEvent::Paid(_) => OrderEvent::Paid(keyed),
        OrderEvent::Fulfilled(_) => OrderEvent::Fulfilled(keyed),
        _ => OrderEvent::Cancelled(keyed),
    })
}

fn customer_of(event: &OrderEvent) -> Option<(CustomerId, Option<cashback_core::ids::Email>)> {
    match event {
        OrderEvent::Created(order)
        | OrderEvent::Paid(order)
        | OrderEvent::Fulfilled(order)
        | OrderEvent::Cancelled(order) => order
            .customer
            .account_id()
            .map(|id| (id, order.customer.email.clone())),
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
    if let OrderEvent::Created(order)
    | OrderEvent::Paid(order)
    | OrderEvent::Fulfilled(order)
    | OrderEvent::Cancelled(order) = &mut event
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
        OrderEvent::Created(order)
        | OrderEvent::Paid(order)
        | OrderEvent::Fulfilled(order)
        | OrderEvent::Cancelled(order) => Some(order),
        OrderEvent::Refunded(_) => None,
    }
}

async fn attempt_once(
    ctx: &Context,
    shop: &ShopId,
    program: &Program,
    event: &OrderEvent,
    now: DateTime<Utc>,
    fresh_coupons: bool,
) -> Result<(EventOutcome, Vec<Notice>), AppError> {
    let store = &ctx.store;
    let customer = customer_of(event);
    let codes: Vec<Code> = order_of(event)
        .map(|o| o.discount_codes.iter().map(|c| c.code.clone()).collect())
        .unwrap_or_default();
    // Coupon definitions from the warm cache; only those it lacks are read
    // (in the same read as the rest).
    let mut cached_coupons = HashMap::new();
    let mut coupons_read = Vec::new();
    for code in &codes {
        match ctx
            .cached_coupon(shop, code, now)
            .filter(|_| !fresh_coupons)
        {
            Some(Some(found)) => {
                cached_coupons.insert(code.clone(), found);
            }
            Some(None) => {}
            None => coupons_read.push(code.clone()),
        }
    }
    let mut request = ReadRequest {
        order: Some(event.order_id().clone()),
        accounts: customer.iter().map(|(id, _)| id.clone()).collect(),
        coupons: coupons_read.clone(),
        // Whose balance codes these are, in the same read: the discount is
        // debited from the owner, whoever bought.
        code_owners: codes.clone(),
        referral_owners: referral::referral_code(program, event)
            .into_iter()
            .collect(),
        products: catalog_products_needed(program, event),
        // Each coupon's sub-counter this order takes its use from: whether
        // the coupon is capped is the store's to say, not the definition's.
        coupon_shards: codes
            .iter()
            .map(|code| (code.clone(), coupon_shards::home_shard(event.order_id())))
            .collect(),
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
    for code in &coupons_read {
        ctx.remember_coupon(shop, code, read.coupons.get(code).cloned(), now);
    }
    read.coupons.extend(cached_coupons);
    let takers = coupon_takers(store.as_ref(), shop, event.order_id(), &read).await?;
    let with_catalog = enriched_by_catalog(event, &read.products);
    let event = with_catalog.as_ref().unwrap_or(event);
    // Lines are written once, with the first event that brings them; lines
    // learnt from an unpaid order (orders/create) are written again, since
    // the event that earns replaces them with the order as paid.
    let as_placed = read.order.as_ref().is_some_and(|o| o.value.lines_as_placed);
    let lines_before = read.order_lines_stored && !as_placed;
    // Refunds are written once each too: those read are stored.
    let refunds_before = read.order_refunds_stored;
    let mut record = read.order.take().unwrap_or_else(|| {
        Versioned::new(OrderRecord::new(event.order_id().clone(), program.currency))
    });

    // A refund names no customer: the order record does, once the order was seen.
    let customer_id = match (&customer, &record.value.customer) {
        (Some((id, _)), _) => Some(id.clone()),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    };
    // Who else this event moves money for: the owners of the order's balance
    // codes (who pay for them, or are given them back) and the buyer's
    // referrer.
    let mut payers = code_payers(event, &record.value, &read);
    if payers.len() > MAX_CODE_OWNERS {
        // Never given away: the codes of owners past the limit are charged
        // to the buyer.
        warn!(shop = %shop, order = %event.order_id(), owners = payers.len(), "more balance code owners than charged on their own: the rest is the buyer's");
        let rest: Vec<Code> = payers
            .split_off(MAX_CODE_OWNERS)
            .into_iter()
            .flat_map(|(_, codes)| codes)
            .collect();
        if let Some(buyer) = &customer_id {
            match payers.iter_mut().find(|(id, _)| id == buyer) {
                Some((_, codes)) => codes.extend(rest),
                None => payers.push((buyer.clone(), rest)),
            }
        }
    }
    // The referrer's account is read for the order that may grant the
    // reward (self-referral and the daily cap are judged on it), and is
    // written only for a reward granted before credits left the order's
    // transaction (see `crate::referral`).
    let referrer_id = match record.value.referral.as_ref() {
        Some(referral) if referral::written_with_order(referral) => Some(referral.referrer.clone()),
        Some(_) => None,
        None => {
            let buyer = customer_id.as_ref().and_then(|id| read.accounts.get(id));
            referral::referrer_named(program, event, &record.value, buyer, &read.referral_owners)
        }
    }
    .filter(|referrer| {
        // A referrer who also pays for the order's code would be the same
        // account twice in one change: the discount wins, the referral
        // pays nothing.
        let also_payer =
            Some(referrer) != customer_id.as_ref() && payers.iter().any(|(id, _)| id == referrer);
        if also_payer {
            info!(shop = %shop, "referrer is also the order's code owner: no referral");
        }
        Some(referrer) != customer_id.as_ref() && !also_payer
    });
    // Accounts the first read could not name: one more read, only for the
    // orders that need it (a refund's buyer, someone else's code, a referral).
    let wanted: Vec<CustomerId> = [customer_id.as_ref(), referrer_id.as_ref()]
        .into_iter()
        .flatten()
        .chain(payers.iter().map(|(id, _)| id))
        .filter(|id| !read.accounts.contains_key(*id))
        .filter(|id| customer.as_ref().is_none_or(|(buyer, _)| buyer != *id))
        .cloned()
        .collect();
    if !wanted.is_empty() {
        let again = store.read(shop, &ReadRequest::accounts(wanted)).await?;
        read.accounts.extend(again.accounts);
    }
    // Handed back with the write: the counters move from the state read.
    let accounts_read = read.accounts_read();
    let mut account = customer_id.as_ref().and_then(|id| read.accounts.remove(id));
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
                referral_code: None,
            });
            account = Some(Versioned::new(opened));
        }
    }
    if let Some(account) = account.as_mut() {
        code_change = referral_code_change(ctx, program, &account.value, code_change)?;
        if let Some(referral) = code_change.as_ref().and_then(|c| c.referral_code.clone()) {
            account.value.referral_code = Some(referral);
        }
    }
    if let (Some(account), Some((_, Some(email)))) = (account.as_mut(), &customer) {
        // Keep the address the platform last gave, for emails.
        if account.value.email.as_ref() != Some(email) {
            account.value.email = Some(email.clone());
        }
    }
    let mut referrer = referrer_id.as_ref().and_then(|id| read.accounts.remove(id));
    // Each owner's account (the buyer's is `account`); an owner without one
    // is left out.
    let mut owners: Vec<(CustomerId, Vec<Code>, Option<Versioned<Account>>)> = Vec::new();
    for (id, codes) in payers {
        if Some(&id) == customer_id.as_ref() {
            owners.push((id, codes, None));
        } else if let Some(owner) = read.accounts.remove(&id) {
            owners.push((id, codes, Some(owner)));
        } else {
            warn!(shop = %shop, order = %event.order_id(), "balance code owner has no account");
        }
    }
    let mut co_owners = owners.split_off(owners.len().min(1));
    let (balance_codes, mut owner) = match owners.pop() {
        Some((_, codes, owner)) => (codes, owner),
        None => (Vec::new(), None),
    };
    if customer_id.is_none()
        && owner.is_none()
        && co_owners.is_empty()
        && !matches!(event, OrderEvent::Refunded(_))
    {
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
            &takers,
            record.value.judged_at(order).min(now),
        ),
        _ => Vec::new(),
    };
    let event_ctx = EventContext {
        program,
        now,
        coupons: &coupons,
    };
    let owner_before = owner.as_ref().map(|o| o.value.clone());
    let referrer_before = referrer.as_ref().map(|r| r.value.clone());
    let co_before: Vec<Option<Account>> = co_owners
        .iter()
        .map(|(_, _, account)| account.as_ref().map(|a| a.value.clone()))
        .collect();
    let mut applied = apply_order_event_to(
        &event_ctx,
        Parties {
            buyer: account.as_mut().map(|a| &mut a.value),
            code_owner: owner.as_mut().map(|a| &mut a.value),
            balance_codes,
            referrer: referrer.as_mut().map(|a| &mut a.value),
            co_owners: co_owners
                .iter_mut()
                .map(|(customer, codes, account)| CoOwner {
                    customer: customer.clone(),
                    account: account.as_mut().map(|a| &mut a.value),
                    codes: codes.clone(),
                })
                .collect(),
        },
        &mut record.value,
        event,
    )?;
    if applied.duplicate() {
        return Ok((EventOutcome::Duplicate, Vec::new()));
    }
    if record.value.referral.is_some() && referrer_before.is_some() {
        info!(shop = %shop, order = %record.value.order_id, "referral reward recorded on the order");
    }
    if !record
        .value
        .referral
        .as_ref()
        .is_some_and(referral::written_with_order)
    {
        // The referrer's account, read to judge the reward, is left alone:
        // the order's write records its referral credit, and the change
        // feed credits the referrer off this transaction.
        referrer = None;
        applied.referrer = Default::default();
    }

    let notices = match &account {
        Some(account) => notices_for(shop, &account.value, &record.value, &applied.buyer, program),
        None => Vec::new(),
    };
    let entries = applied.buyer.entries.len()
        + applied.code_owner.entries.len()
        + applied.referrer.entries.len()
        + applied
            .co_owners
            .iter()
            .map(|a| a.entries.len())
            .sum::<usize>();
    // What the event writes to the ledger, logged once it committed (the
    // saved Logs Insights query "What did this refund claw back").
    let written: Vec<cashback_core::ledger::LedgerEntry> = applied
        .buyer
        .entries
        .iter()
        .chain(&applied.code_owner.entries)
        .chain(&applied.referrer.entries)
        .chain(applied.co_owners.iter().flat_map(|a| &a.entries))
        .cloned()
        .collect();
    // The owner's and the referrer's accounts are written only when this
    // event changed them.
    let other_write = |party: Option<Versioned<Account>>,
                       before: Option<Account>,
                       entries: Vec<cashback_core::ledger::LedgerEntry>| {
        party
            .filter(|p| Some(&p.value) != before.as_ref())
            .map(|p| AccountWrite::of(program, p).with_entries(entries))
    };
    // No guard item: the order item is the event's guard. Its version
    // condition refuses a concurrent duplicate (which then reads the record
    // again and finds the event applied), and the record refuses a replay
    // for good (`applied.duplicate()` above), so the write needs no other
    // once-only item.
    let writes = WriteSet {
        guard: None,
        accounts: account
            .map(|account| {
                AccountWrite::of(program, account)
                    .with_entries(applied.buyer.entries.clone())
                    .with_code_change(code_change)
            })
            .into_iter()
            .chain(other_write(owner, owner_before, applied.code_owner.entries))
            .chain(other_write(
                referrer,
                referrer_before,
                applied.referrer.entries,
            ))
            .chain(
                co_owners
                    .into_iter()
                    .zip(co_before)
                    .zip(applied.co_owners)
                    .filter_map(|(((_, _, account), before), applied)| {
                        other_write(account, before, applied.entries)
                    }),
            )
            .collect(),
        order: Some(
            OrderWrite::of(record.clone(), lines_before).with_refunds_stored(refunds_before),
        ),
        coupon_uses: coupon_use_changes(
            &applied.buyer,
            &record.value,
            &read,
            &takers,
            customer.as_ref(),
        ),
        notifications: notices.iter().map(|n| n.key.clone()).collect(),
        marketing_events: crate::marketing::queued_events(program, &notices, now),
        accounts_read,
        now: Some(now),
        ..WriteSet::default()
    };
    match store.write(shop, writes).await {
        Ok(WriteOutcome::Committed) => {
            for entry in &written {
                info!(
                    shop = %shop,
                    event = %event.effect_key(),
                    entry = %entry.entry_id,
                    kind = ?entry.kind,
                    available = %entry.available_delta,
                    pending = %entry.pending_delta,
                    debt = %entry.debt_delta,
                    "ledger entry written"
                );
            }
            Ok((EventOutcome::Applied { entries, emails: 0 }, notices))
        }
        Ok(WriteOutcome::Duplicate { .. }) => Ok((EventOutcome::Duplicate, Vec::new())),
        Err(StoreError::CodeTaken) => Err(AppError::Store(StoreError::Conflict(
            "generated code collided".into(),
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Whose balance codes the order carries, each with their codes on it, in
/// the order they appear: on the event that settles the redemption, the
/// owners of the order's discount codes that are someone's balance code;
/// afterwards, the owners the order record charged.
fn code_payers(
    event: &OrderEvent,
    record: &OrderRecord,
    read: &ReadResult,
) -> Vec<(CustomerId, Vec<Code>)> {
    let settles = matches!(
        event,
        OrderEvent::Created(_) | OrderEvent::Paid(_) | OrderEvent::Fulfilled(_)
    );
    let order = match order_of(event) {
        Some(order) if settles && !record.redemption_settled => order,
        _ => {
            return record
                .paid_by
                .iter()
                .chain(record.co_payers.iter().map(|c| &c.customer))
                .map(|id| (id.clone(), Vec::new()))
                .collect();
        }
    };
    let mut payers: Vec<(CustomerId, Vec<Code>)> = Vec::new();
    // A code that took nothing off (a cashback coupon named by a cart
    // attribute, or a balance code typed there) charges nobody.
    for applied in order
        .discount_codes
        .iter()
        .filter(|a| a.amount.is_positive())
    {
        let Some(owner) = read.code_owners.get(&applied.code) else {
            continue;
        };
        match payers.iter_mut().find(|(id, _)| id == owner) {
            Some((_, codes)) => codes.push(applied.code.clone()),
            None => payers.push((owner.clone(), vec![applied.code.clone()])),
        }
    }
    payers
}

/// The code change that gives an account its referral code when the
/// program pays referrals and it has none yet (`pending` is a balance code
/// change this write makes anyway).
fn referral_code_change(
    ctx: &Context,
    program: &Program,
    account: &Account,
    pending: Option<CodeChange>,
) -> Result<Option<CodeChange>, AppError> {
    if program.referral.is_none() || account.referral_code.is_some() {
        return Ok(pending);
    }
    let change = match pending {
        Some(change) => change,
        None => match &account.code {
            // Claiming the current code again is a no-op for the index.
            Some(code) => CodeChange {
                new_code: code.clone(),
                old_code: None,
                referral_code: None,
            },
            None => return Ok(None),
        },
    };
    Ok(Some(CodeChange {
        referral_code: Some(ctx.new_referral_code()?),
        ..change
    }))
}

/// Where each capped coupon on an order takes its use
/// ([`crate::coupon_shards`]): the order's own shard when it has room,
/// else the first other shard with room (all read once), else None (the
/// coupon is used up). Coupons without caps are not in it.
async fn coupon_takers(
    store: &dyn crate::store::Store,
    shop: &ShopId,
    order: &cashback_core::ids::OrderId,
    read: &ReadResult,
) -> Result<HashMap<Code, Option<u32>>, StoreError> {
    let mut takers = HashMap::new();
    for ((code, shard), found) in &read.coupon_shards {
        if found.cap.is_none() {
            continue;
        }
        let taker = if found.has_room() {
            Some(*shard)
        } else {
            let shards = store.coupon_shards(shop, code).await?;
            coupon_shards::with_room(&shards, coupon_shards::home_shard(order))
        };
        takers.insert(code.clone(), taker);
    }
    Ok(takers)
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
    takers: &HashMap<Code, Option<u32>>,
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
        // A capped coupon's room is its shards': none left, it is used up;
        // some left, its own count (uses from before it was capped, which
        // the caps already left out) does not refuse it.
        let total = match takers.get(&applied.code) {
            Some(None) => {
                info!(code = %coupon.code.display(), "cashback coupon on order is used up");
                continue;
            }
            Some(Some(_)) => 0,
            None => record.value.uses,
        };
        let usage = CouponUsage {
            total,
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
            payment_methods: &order.payment_methods,
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
    takers: &HashMap<Code, Option<u32>>,
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
                order: Some(record.order_id.clone()),
                shard: takers.get(code).copied().flatten().filter(|_| delta > 0),
            })
        })
        .collect()
}

/// Sends what a committed change recorded. A failure is logged, not
/// retried: the email was recorded as sent, and at most once is the promise.
/// A program whose emails come from Klaviyo alone sends none here: their
/// events were written with the change (`marketing::queued_events`).
pub(crate) async fn send_notices(
    ctx: &Context,
    shop_name: &str,
    program: &Program,
    notices: Vec<Notice>,
) -> usize {
    if !program.email_channel.sends_ses() {
        return 0;
    }
    let mut sent = 0;
    for notice in notices {
        let notification = match notice.into_notification(ctx, shop_name, program).await {
            Ok(notification) => notification,
            Err(error) => {
                // Like a failed send: the change is committed, and the
                // reminder series and the "ready" email still follow.
                warn!(%error, "email not sent");
                continue;
            }
        };
        match ctx.notifier.send(&notification).await {
            Ok(_) => sent += 1,
            Err(error) => warn!(kind = notification.kind.name(), %error, "email not sent"),
        }
    }
    sent
}
