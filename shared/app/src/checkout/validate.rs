//! The answer to a validation and how it is decided: the first read, the
//! coupon or balance code it finds, and the pure decision on the cart.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tracing::info;

use cashback_core::coupon::{CouponCheck, CouponRefusal, CouponUsage};
use cashback_core::earn::{earn, eligible_base};
use cashback_core::ids::{Code, ShopId};
use cashback_core::ledger::{Account, Hold};
use cashback_core::money::Money;
use cashback_core::order::Cart;
use cashback_core::program::{CodeUsers, Program};
use cashback_core::redeem::CodeRefusal;

use crate::context::Context;
use crate::coupon_shards::{self, CouponShard};
use crate::error::AppError;
use crate::retry::Attempts;
use crate::store::{CouponRecord, ReadRequest, ReadResult, UsageKey};

use super::holds::balance_code;
use super::limiter::{caller_key, count_unknown, guess_counter, retry_after, window_end};
use super::request::{check_limits, ValidateRequest};
use super::GUESS_LIMIT;

/// Which kind of code was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// A customer's balance code: it takes their balance off the cart.
    CustomerBalance,
    /// A cashback coupon: it adds cashback, takes nothing off.
    CashbackCoupon,
}

/// Why the code does not work, with the figure that failed. Serialises as
/// the reason's own object: `{"reason": "below_minimum_subtotal", "minimum": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Refusal {
    /// Why a balance code does not work.
    Code(CodeRefusal),
    /// Why a cashback coupon does not work.
    Coupon(CouponRefusal),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Code(refusal) => refusal.fmt(f),
            Refusal::Coupon(refusal) => refusal.fmt(f),
        }
    }
}

/// The cashback the order will earn, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashbackPreview {
    /// Program and coupon together.
    pub total: Money,
    /// What the program gives (the buyer's tier when known).
    pub program: Money,
    /// What the coupon adds.
    pub coupon: Money,
}

/// A coupon's public face, for the checkout to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponOffer {
    /// The coupon's name.
    pub display_name: String,
    /// The merchant's words for the offer.
    pub offer_text: String,
}

/// The answer to one validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// The code works for this cart.
    pub valid: bool,
    /// None for an unknown code.
    pub kind: Option<CodeKind>,
    /// Why not, when it does not.
    pub refusal: Option<Refusal>,
    /// The refusal in words ("minimum subtotal 50.00 USD").
    pub message: Option<String>,
    /// What the code takes off the cart now (0.00 for a cashback coupon).
    pub discount: Money,
    /// The cashback the order will earn.
    pub cashback: CashbackPreview,
    /// The customer's spendable balance, for a balance code only.
    pub balance_before: Option<Money>,
    /// The spendable balance once this discount is taken, for a balance code only.
    pub balance_after: Option<Money>,
    /// The hold placed for the checkout, when a reserve was asked and given.
    pub hold: Option<Hold>,
    /// The coupon's public face, for a cashback coupon.
    pub coupon: Option<CouponOffer>,
}

/// Validates a code against a cart for a shop, placing or replacing the
/// checkout's hold when asked. `source` is the address the request came
/// from, as the edge knows it (API Gateway's request context); unknown
/// codes are rate-limited per shop and source.
pub async fn validate(
    ctx: &Context,
    shop: &ShopId,
    request: &ValidateRequest,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Validation, AppError> {
    check_limits(request).map_err(AppError::InvalidFields)?;
    let caller_key = caller_key(shop, source);
    if let Some(retry_after_seconds) = ctx.guesses.blocked_for(&caller_key, now) {
        return Err(AppError::RateLimited {
            retry_after_seconds,
        });
    }
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let cart = request
        .cart
        .to_cart(request.currency)
        .map_err(AppError::InvalidFields)?;
    // A string that cannot be a code is simply not one: it is answered (and
    // counted) as an unknown code, not as a malformed request.
    let code = Code::parse(&request.code).ok();
    let validating = Validating {
        ctx,
        shop,
        program,
        request,
        cart: &cart,
        code: code.as_ref(),
        caller_key: &caller_key,
        now,
    };
    let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
    while let Some(attempt) = attempts.start() {
        match attempt_once(&validating).await {
            Ok(Decided::Answer(validation)) => {
                info!(
                    shop = %shop,
                    kind = ?validation.kind,
                    valid = validation.valid,
                    reason = validation.message.as_deref().unwrap_or(""),
                    discount = %validation.discount,
                    held = validation.hold.is_some(),
                    attempt,
                    "code validated"
                );
                return Ok(validation);
            }
            Ok(Decided::Unknown(validation)) => {
                count_unknown(ctx, &caller_key, now).await?;
                info!(shop = %shop, valid = false, reason = "unknown_code", "code validated");
                return Ok(validation);
            }
            Err(AppError::Store(error)) if error.is_retryable() => {
                // Another checkout (or an order) changed the account between
                // our read and our write, or DynamoDB throttled us: decide
                // again on fresh data.
                attempts.lost(error).await;
            }
            Err(error) => return Err(error),
        }
    }
    Err(attempts.gave_up())
}

pub(super) enum Decided {
    Answer(Validation),
    /// Neither a customer's code nor a coupon: counted against the caller.
    Unknown(Validation),
}

/// What one validation works from, the same on every attempt.
#[derive(Clone, Copy)]
struct Validating<'a> {
    ctx: &'a Context,
    shop: &'a ShopId,
    program: &'a Program,
    request: &'a ValidateRequest,
    cart: &'a Cart,
    /// None when the string typed cannot be a code.
    code: Option<&'a Code>,
    /// The caller's key for the guess limit.
    caller_key: &'a str,
    now: DateTime<Utc>,
}

/// One read, the decision, and for a reserve one write.
async fn attempt_once(validating: &Validating<'_>) -> Result<Decided, AppError> {
    let Validating {
        ctx,
        shop,
        program,
        request,
        cart,
        code,
        caller_key,
        now,
    } = *validating;
    let guesses = guess_counter(caller_key, now);
    // The coupon's definition from the warm cache when fresh. A limited
    // coupon's use count is its sub-counters', read in the same request as
    // the rest (so validation stays one round trip, one request): for a
    // code not cached yet too, as it may be one.
    let cached = code.and_then(|c| ctx.cached_coupon(shop, c, now));
    let limited = match &cached {
        None => true,
        Some(found) => found
            .as_ref()
            .is_some_and(|c| c.value.coupon.usage_limit_total.is_some()),
    };
    let mut first = first_read(request, cart, code, cached.is_none());
    if let (Some(code), true) = (code, limited) {
        first
            .coupon_shards
            .extend((0..coupon_shards::SHARDS).map(|shard| (code.clone(), shard)));
    }
    first.counters.push(guesses.clone());
    let mut read = ctx.store.read(shop, &first).await?;
    // Over the limit in any container: refused, whatever the code.
    if read.counters.get(&guesses).copied().unwrap_or(0) > GUESS_LIMIT {
        let end = window_end(now);
        ctx.guesses.block_until(caller_key, end, now);
        return Err(AppError::RateLimited {
            retry_after_seconds: retry_after(end, now),
        });
    }
    let buyer = request
        .customer_id
        .as_ref()
        .and_then(|id| read.accounts.get(id).cloned());
    let owner = code.and_then(|c| read.code_owners.get(c).cloned());
    let coupon = match (code, cached) {
        (Some(_), Some(found)) => found,
        (Some(c), None) => {
            let found = read.coupons.get(c).cloned();
            ctx.remember_coupon(shop, c, found.clone(), now);
            found
        }
        (None, _) => None,
    };
    let decide = Decide {
        program,
        cart,
        same_currency: request.currency == program.currency,
        now,
    };
    match (owner, coupon, code) {
        (Some(owner), _, Some(code)) => {
            let owner_only = program.redemption.usable_by == CodeUsers::OwnerOnly;
            let refuse = |refusal: CodeRefusal, buyer: Option<&Account>| {
                Ok(Decided::Answer(decide.refused(
                    CodeKind::CustomerBalance,
                    Refusal::Code(refusal),
                    buyer,
                )))
            };
            let someone_else = request.customer_id.as_ref().is_some_and(|c| c != &owner);
            if owner_only && someone_else {
                return refuse(CodeRefusal::OtherCustomer, buyer.as_ref().map(|b| &b.value));
            }
            if owner_only && request.customer_id.is_none() && request.email.is_none() {
                // Nobody named: the owner cannot be told from a stranger.
                return refuse(CodeRefusal::CustomerRequired, None);
            }
            let account = match buyer.filter(|b| b.value.customer == owner) {
                Some(account) => Some(account),
                // The owner is known only now (no customer id, or another
                // customer's when anyone may use the code): the second of
                // the two round trips the budget allows.
                None => {
                    let again = ctx.store.read(shop, &ReadRequest::account(&owner)).await?;
                    again.accounts.get(&owner).cloned()
                }
            };
            let Some(account) = account else {
                // The index names an owner whose account is gone: nothing to spend.
                return refuse(CodeRefusal::NoBalance, None);
            };
            if account.value.code.as_ref() != Some(code) {
                // A code its owner replaced: it spends nothing at checkout
                // (an order already placed with it is still theirs to pay).
                return Ok(Decided::Unknown(decide.refused_unknown(None)));
            }
            if owner_only && request.customer_id.is_none() {
                // Only an email: it must be the owner's.
                let owners = account.value.email.as_ref() == request.email.as_ref();
                if !owners {
                    return refuse(CodeRefusal::OtherCustomer, None);
                }
            }
            balance_code(ctx, shop, &decide, request, account).await
        }
        (None, Some(coupon), Some(code)) => {
            let shards: Vec<CouponShard> = (0..coupon_shards::SHARDS)
                .map(|shard| {
                    read.coupon_shards
                        .get(&(code.clone(), shard))
                        .copied()
                        .unwrap_or_default()
                })
                .collect();
            let usage = usage_of(&mut read, code, request, &coupon.value, &shards);
            let others = other_coupons(cart, code);
            Ok(Decided::Answer(decide.coupon(
                &coupon.value,
                usage,
                others,
                request.customer_id.is_some() || request.email.is_some(),
                buyer.as_ref().map(|b| &b.value),
            )))
        }
        _ => Ok(Decided::Unknown(
            decide.refused_unknown(buyer.as_ref().map(|b| &b.value)),
        )),
    }
}

/// Everything the first round trip can fetch: the code's owner and coupon,
/// the coupons among the cart's other discounts (for stacking), and, with
/// the customer id, their account and their uses of the coupon.
fn first_read(
    request: &ValidateRequest,
    cart: &Cart,
    code: Option<&Code>,
    with_coupon: bool,
) -> ReadRequest {
    let mut read = ReadRequest::default();
    if let Some(code) = code {
        read.code_owners.push(code.clone());
        if with_coupon {
            read.coupons.push(code.clone());
        }
        if let Some(customer) = &request.customer_id {
            read.coupon_uses
                .push((code.clone(), UsageKey::Customer(customer.clone())));
        }
        if let Some(email) = &request.email {
            read.coupon_uses
                .push((code.clone(), UsageKey::Email(email.clone())));
        }
    }
    for discount in &cart.other_discounts {
        if let Some(other) = &discount.code {
            if Some(other) != code && !read.coupons.contains(other) {
                read.coupons.push(other.clone());
            }
        }
    }
    if let Some(customer) = &request.customer_id {
        read.accounts.push(customer.clone());
    }
    read
}

fn usage_of(
    read: &mut ReadResult,
    code: &Code,
    request: &ValidateRequest,
    record: &CouponRecord,
    shards: &[CouponShard],
) -> CouponUsage {
    let mut count = |key: Option<UsageKey>| {
        key.and_then(|key| read.coupon_uses.remove(&(code.clone(), key)))
            .unwrap_or(0)
    };
    // A capped coupon is used up exactly when no sub-counter has room
    // (the caps sum to its limit, counting the uses held elsewhere);
    // otherwise its uses are its own count plus what its shards hold.
    let total = if coupon_shards::capped(shards) {
        match shards.iter().any(CouponShard::has_room) {
            true => 0,
            false => record.coupon.usage_limit_total.unwrap_or(u32::MAX),
        }
    } else {
        record.uses.saturating_add(coupon_shards::held(shards))
    };
    CouponUsage {
        total,
        by_customer: count(request.customer_id.clone().map(UsageKey::Customer)),
        by_email: count(request.email.clone().map(UsageKey::Email)),
    }
}

/// Other discount codes on the cart (cashback coupons and ordinary codes
/// alike): an exclusive coupon works with none of them.
fn other_coupons(cart: &Cart, code: &Code) -> usize {
    cart.other_discounts
        .iter()
        .filter_map(|d| d.code.as_ref())
        .filter(|other| *other != code)
        .count()
}

/// The pure part of a validation: the program, the cart and the time.
pub(super) struct Decide<'a> {
    pub(super) program: &'a Program,
    pub(super) cart: &'a Cart,
    pub(super) same_currency: bool,
    pub(super) now: DateTime<Utc>,
}

impl Decide<'_> {
    pub(super) fn zero(&self) -> Money {
        Money::zero(self.program.currency)
    }

    /// The cart's eligible base once `discount` (the customer code's) is
    /// off it. The code's discount and any order discount not yet allocated
    /// to lines are spread over the lines in proportion, as Shopify
    /// allocates them; rounded down so the preview never promises more than
    /// the order will earn.
    fn eligible_after(&self, discount: Money) -> Money {
        let currency = self.program.currency;
        if !self.same_currency {
            return self.zero();
        }
        let Ok(eligible) = eligible_base(&self.cart.lines, &self.program.exclusions, currency)
        else {
            return self.zero();
        };
        let merchandise: Decimal = self
            .cart
            .lines
            .iter()
            .filter_map(|line| line.net_merchandise().ok())
            .map(|m| m.amount())
            .sum();
        if merchandise <= Decimal::ZERO {
            return self.zero();
        }
        let paid = (self.cart.subtotal.amount() - discount.amount()).max(Decimal::ZERO);
        let share = (paid / merchandise).min(Decimal::ONE);
        Money::round_toward_zero(eligible.amount() * share, currency)
    }

    /// Program cashback for the buyer (their tier), on the base left after `discount`.
    pub(super) fn program_cashback(&self, discount: Money, buyer: Option<&Account>) -> Money {
        let eligible = self.eligible_after(discount);
        let lifetime = buyer
            .map(|account| account.lifetime_eligible_spend)
            .unwrap_or(self.zero());
        earn(self.program, eligible, lifetime, self.now)
            .map(|earned| earned.total)
            .unwrap_or(self.zero())
    }

    pub(super) fn preview(&self, program: Money, coupon: Money) -> CashbackPreview {
        CashbackPreview {
            total: program.checked_add(coupon).unwrap_or(program),
            program,
            coupon,
        }
    }

    pub(super) fn refused(
        &self,
        kind: CodeKind,
        refusal: Refusal,
        buyer: Option<&Account>,
    ) -> Validation {
        let program = self.program_cashback(self.zero(), buyer);
        Validation {
            valid: false,
            kind: Some(kind),
            message: Some(refusal.to_string()),
            refusal: Some(refusal),
            discount: self.zero(),
            cashback: self.preview(program, self.zero()),
            balance_before: None,
            balance_after: None,
            hold: None,
            coupon: None,
        }
    }

    fn refused_unknown(&self, buyer: Option<&Account>) -> Validation {
        let mut validation = self.refused(
            CodeKind::CustomerBalance,
            Refusal::Code(CodeRefusal::UnknownCode),
            buyer,
        );
        validation.kind = None;
        validation
    }

    fn coupon(
        &self,
        record: &CouponRecord,
        usage: CouponUsage,
        other_coupons: usize,
        customer_known: bool,
        buyer: Option<&Account>,
    ) -> Validation {
        let coupon = &record.coupon;
        let offer = CouponOffer {
            display_name: coupon.display_name.clone(),
            offer_text: coupon.offer_text.clone(),
        };
        if !self.same_currency {
            let mut validation = self.refused(
                CodeKind::CashbackCoupon,
                Refusal::Coupon(CouponRefusal::CurrencyMismatch {
                    cart: self.cart.currency.to_string(),
                    shop: self.program.currency.to_string(),
                }),
                buyer,
            );
            validation.coupon = Some(offer);
            return validation;
        }
        // A checkout pays with one method: a list of one.
        let payment_methods: Vec<String> = self.cart.payment_method.iter().cloned().collect();
        let check = CouponCheck {
            eligible: self.eligible_after(self.zero()),
            payment_methods: &payment_methods,
            other_coupons,
            usage,
            customer_known,
            at: self.now,
        };
        match coupon.evaluate(&check) {
            Ok(cashback) => Validation {
                valid: true,
                kind: Some(CodeKind::CashbackCoupon),
                refusal: None,
                message: None,
                // A cashback coupon takes nothing off the cart.
                discount: self.zero(),
                cashback: self.preview(self.program_cashback(self.zero(), buyer), cashback),
                balance_before: None,
                balance_after: None,
                hold: None,
                coupon: Some(offer),
            },
            Err(refusal) => {
                let mut validation =
                    self.refused(CodeKind::CashbackCoupon, Refusal::Coupon(refusal), buyer);
                validation.coupon = Some(offer);
                validation
            }
        }
    }
}
