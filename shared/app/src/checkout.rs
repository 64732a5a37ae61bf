//! Checkout validation: the use case behind `POST /v1/shops/{shop}/coupons/validate`.
//!
//! A checkout sends the code the shopper typed and its cart. The code is
//! either a customer's balance code (the code index names its owner) or a
//! cashback coupon; the answer says whether it works and, if not, the typed
//! reason with the figure that failed, what it takes off now (0.00 for a
//! coupon), the cashback the order will earn (program plus coupon), the
//! balance before and after, and the hold when one was asked for.
//!
//! A balance code is its owner's money. Under the program's default
//! `usable_by: owner_only`, another customer id or another email is refused
//! (`other_customer`) and a request that names no customer id and no email
//! is refused (`customer_required`) before anything of the balance is shown
//! or held. Under `anyone` the code works for whoever holds it, and the hold
//! sits on the owner's account. A code its owner has replaced is answered
//! as unknown (the index still names the owner, for orders already placed
//! with it).
//!
//! Round trips (DESIGN section 7): with the customer id, ONE read fetches
//! their account, the code's owner, the coupon and its use counts together;
//! without it, a first read resolves the code and, for a balance code, a
//! second fetches the owner's account. A reserve adds ONE write: the account
//! with the checkout's hold placed or replaced, conditioned on the version
//! read, so two checkouts racing for one balance cannot both take it: the
//! loser decides again on fresh data.
//!
//! Guessing codes must not pay. Generated codes carry 65 bits, and unknown
//! codes are counted per shop and source address (as API Gateway saw it,
//! never a field the client chooses) in a fixed window ([`GUESS_LIMIT`] per
//! [`GUESS_WINDOW_SECONDS`]), in a counter item of the store with a TTL, so
//! every container sees the same count. Past the limit the source gets 429
//! with the seconds left in the window, for every validation whatever the
//! code: answering known codes while refusing unknown ones would turn the
//! 429 itself into the oracle the limit is meant to close. The count is read
//! in the validation's first round trip (no extra one), and a container
//! that saw a source over the limit refuses it without reading until the
//! window ends ([`GuessBlocks`], kept in the [`Context`]).
//!
//! One request is bounded before anything is read ([`check_limits`]): at
//! most [`MAX_OTHER_DISCOUNTS`] other discounts (each a coupon to read),
//! [`MAX_CART_LINES`] lines and short strings, so a validation is at most
//! two reads of a few dozen keys (one BatchGetItem each).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use cashback_core::coupon::{CouponCheck, CouponRefusal, CouponUsage};
use cashback_core::earn::{earn, eligible_base};
use cashback_core::ids::{
    CheckoutId, Code, CollectionId, CustomerId, Email, LineId, ProductId, ShopId, VariantId,
};
use cashback_core::ledger::{Account, Hold};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{Cart, CartDiscount, DiscountKind, Line};
use cashback_core::program::{CodeUsers, FieldError, Program};
use cashback_core::redeem::{quote, CodeRefusal};
use cashback_core::reminders::next_reminder;

use crate::context::Context;
use crate::error::AppError;
use crate::events::backoff;
use crate::store::{
    AccountWrite, AccountsRead, CouponRecord, ReadRequest, ReadResult, StoreError, UsageKey,
    Versioned, WriteOutcome, WriteSet,
};

/// Unknown codes a caller may try per window before getting 429.
pub const GUESS_LIMIT: u64 = 10;
/// The rate-limit window.
pub const GUESS_WINDOW_SECONDS: i64 = 300;
/// A checkout may hold balance for at most this long (or the program's own
/// TTL if the merchant set a longer one): a hold locks money the customer
/// may want to spend elsewhere.
pub const MAX_HOLD_TTL_SECONDS: u32 = 3600;
/// Lines a cart may carry (Shopify's own cart limit is 500 lines).
pub const MAX_CART_LINES: usize = 500;
/// Other discounts a cart may carry: each may name a coupon the first read
/// fetches, so this bounds that read (Shopify stacks at most 25 codes).
pub const MAX_OTHER_DISCOUNTS: usize = 25;
/// Collections one line may name.
pub const MAX_LINE_COLLECTIONS: usize = 50;
/// The longest code, amount, id, SKU, vendor or payment method accepted.
pub const MAX_STRING_CHARS: usize = 255;

/// What a checkout sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidateRequest {
    /// The code as the shopper typed it (matched case-insensitively).
    pub code: String,
    /// The shopper's customer id, when logged in.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// The shopper's email, when known: per-customer coupon limits also
    /// count by email.
    #[serde(default)]
    pub email: Option<Email>,
    /// The cart's currency (the shop's, as the ledger is kept in it).
    pub currency: Currency,
    pub cart: CartInput,
    /// Reserve the discount for this checkout while the shopper pays.
    #[serde(default)]
    pub reserve: Option<Reserve>,
    /// Accepted for older checkouts and ignored: unknown codes are counted
    /// per shop and source address, never by a field the client chooses
    /// (a new value per request would reset the count).
    #[serde(default)]
    pub caller: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reserve {
    pub checkout_id: CheckoutId,
    /// Default: the program's hold TTL; capped at [`MAX_HOLD_TTL_SECONDS`].
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
}

/// The cart as a checkout sends it; amounts are decimal strings ("12.30").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CartInput {
    #[serde(default)]
    pub lines: Vec<LineInput>,
    /// Merchandise after the other discounts, before this code.
    pub subtotal: String,
    #[serde(default)]
    pub shipping: Option<String>,
    /// Discounts already on the cart, each with its kind.
    #[serde(default)]
    pub other_discounts: Vec<DiscountInput>,
    #[serde(default)]
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineInput {
    /// Optional: lines are numbered in order when the checkout has no ids.
    #[serde(default)]
    pub line_id: Option<LineId>,
    #[serde(default)]
    pub product_id: Option<ProductId>,
    #[serde(default)]
    pub variant_id: Option<VariantId>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    pub quantity: u32,
    pub unit_price: String,
    #[serde(default)]
    pub compare_at_price: Option<String>,
    /// Every discount on the line, for all its units together.
    #[serde(default)]
    pub discount: Option<String>,
    #[serde(default)]
    pub gift_card: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiscountInput {
    pub kind: DiscountKind,
    pub amount: String,
    #[serde(default)]
    pub code: Option<Code>,
}

impl CartInput {
    /// The core's cart, or every field that is not a valid amount.
    pub fn to_cart(&self, currency: Currency) -> Result<Cart, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut money = |field: String, raw: &str| match Money::parse(raw, currency) {
            Ok(amount) if !amount.is_negative() => Some(amount),
            Ok(_) => {
                errors.push(FieldError {
                    field,
                    message: "must not be negative".into(),
                });
                None
            }
            Err(error) => {
                errors.push(FieldError {
                    field,
                    message: error.to_string(),
                });
                None
            }
        };
        let subtotal = money("cart.subtotal".into(), &self.subtotal);
        let shipping = self
            .shipping
            .as_deref()
            .map(|raw| money("cart.shipping".into(), raw));
        let mut lines = Vec::with_capacity(self.lines.len());
        for (index, input) in self.lines.iter().enumerate() {
            let field = |name: &str| format!("cart.lines[{index}].{name}");
            let unit_price = money(field("unit_price"), &input.unit_price);
            let compare_at = input
                .compare_at_price
                .as_deref()
                .map(|raw| money(field("compare_at_price"), raw));
            let discount = input
                .discount
                .as_deref()
                .map(|raw| money(field("discount"), raw));
            let line_id = match &input.line_id {
                Some(id) => Some(id.clone()),
                None => LineId::parse(&(index + 1).to_string()).ok(),
            };
            if let (Some(line_id), Some(unit_price)) = (line_id, unit_price) {
                lines.push(Line {
                    line_id,
                    product_id: input.product_id.clone(),
                    variant_id: input.variant_id.clone(),
                    sku: input.sku.clone(),
                    vendor: input.vendor.clone(),
                    quantity: input.quantity,
                    unit_price,
                    discount: discount.flatten().unwrap_or(Money::zero(currency)),
                    included_tax: None,
                    gift_card: input.gift_card,
                    compare_at_price: compare_at.flatten(),
                    collection_ids: input.collection_ids.clone(),
                });
            }
        }
        let mut other_discounts = Vec::with_capacity(self.other_discounts.len());
        for (index, input) in self.other_discounts.iter().enumerate() {
            if let Some(amount) = money(
                format!("cart.other_discounts[{index}].amount"),
                &input.amount,
            ) {
                other_discounts.push(CartDiscount {
                    kind: input.kind,
                    amount,
                    code: input.code.clone(),
                });
            }
        }
        if self.lines.len() > MAX_CART_LINES {
            errors.push(FieldError {
                field: "cart.lines".into(),
                message: format!("at most {MAX_CART_LINES} lines"),
            });
        }
        match (errors.is_empty(), subtotal) {
            (true, Some(subtotal)) => Ok(Cart {
                currency,
                lines,
                subtotal,
                shipping: shipping.flatten(),
                other_discounts,
                payment_method: self.payment_method.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// The request's sizes, checked before anything is read: every count and
/// string over its limit, named by field.
pub fn check_limits(request: &ValidateRequest) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut too_long = |field: String, value: Option<&str>| {
        if value.is_some_and(|v| v.chars().count() > MAX_STRING_CHARS) {
            errors.push(FieldError {
                field,
                message: format!("at most {MAX_STRING_CHARS} characters"),
            });
        }
    };
    let cart = &request.cart;
    too_long("code".into(), Some(&request.code));
    too_long("caller".into(), request.caller.as_deref());
    too_long("cart.subtotal".into(), Some(&cart.subtotal));
    too_long("cart.shipping".into(), cart.shipping.as_deref());
    too_long("cart.payment_method".into(), cart.payment_method.as_deref());
    for (index, line) in cart.lines.iter().enumerate().take(MAX_CART_LINES) {
        let field = |name: &str| format!("cart.lines[{index}].{name}");
        too_long(field("sku"), line.sku.as_deref());
        too_long(field("vendor"), line.vendor.as_deref());
        too_long(field("unit_price"), Some(&line.unit_price));
        too_long(field("compare_at_price"), line.compare_at_price.as_deref());
        too_long(field("discount"), line.discount.as_deref());
    }
    for (index, discount) in cart
        .other_discounts
        .iter()
        .enumerate()
        .take(MAX_OTHER_DISCOUNTS)
    {
        too_long(
            format!("cart.other_discounts[{index}].amount"),
            Some(&discount.amount),
        );
    }
    if cart.lines.len() > MAX_CART_LINES {
        errors.push(FieldError {
            field: "cart.lines".into(),
            message: format!("at most {MAX_CART_LINES} lines"),
        });
    }
    if let Some(index) = cart
        .lines
        .iter()
        .take(MAX_CART_LINES)
        .position(|line| line.collection_ids.len() > MAX_LINE_COLLECTIONS)
    {
        errors.push(FieldError {
            field: format!("cart.lines[{index}].collection_ids"),
            message: format!("at most {MAX_LINE_COLLECTIONS} collections"),
        });
    }
    if cart.other_discounts.len() > MAX_OTHER_DISCOUNTS {
        errors.push(FieldError {
            field: "cart.other_discounts".into(),
            message: format!("at most {MAX_OTHER_DISCOUNTS} discounts"),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Which kind of code was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    CustomerBalance,
    CashbackCoupon,
}

/// Why the code does not work, with the figure that failed. Serialises as
/// the reason's own object: `{"reason": "below_minimum_subtotal", "minimum": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Refusal {
    Code(CodeRefusal),
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
    pub total: Money,
    pub program: Money,
    pub coupon: Money,
}

/// A coupon's public face, for the checkout to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponOffer {
    pub display_name: String,
    pub offer_text: String,
}

/// The answer to one validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub valid: bool,
    /// None for an unknown code.
    pub kind: Option<CodeKind>,
    pub refusal: Option<Refusal>,
    /// The refusal in words ("minimum subtotal 50.00 USD").
    pub message: Option<String>,
    /// What the code takes off the cart now (0.00 for a cashback coupon).
    pub discount: Money,
    pub cashback: CashbackPreview,
    /// The customer's spendable balance, for a balance code only.
    pub balance_before: Option<Money>,
    pub balance_after: Option<Money>,
    /// The hold placed for the checkout, when a reserve was asked and given.
    pub hold: Option<Hold>,
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
    let mut last_error = String::new();
    for attempt in 1..=ctx.config.max_attempts {
        let attempt_result = attempt_once(
            ctx,
            shop,
            program,
            request,
            &cart,
            code.as_ref(),
            &caller_key,
            now,
        )
        .await;
        match attempt_result {
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
            Err(AppError::Store(error)) if error.is_conflict() => {
                // Another checkout (or an order) changed the account between
                // our read and our write: decide again on fresh data.
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

enum Decided {
    Answer(Validation),
    /// Neither a customer's code nor a coupon: counted against the caller.
    Unknown(Validation),
}

#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    ctx: &Context,
    shop: &ShopId,
    program: &Program,
    request: &ValidateRequest,
    cart: &Cart,
    code: Option<&Code>,
    caller_key: &str,
    now: DateTime<Utc>,
) -> Result<Decided, AppError> {
    let guesses = guess_counter(caller_key, now);
    let mut first = first_read(request, cart, code);
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
    let coupon = code.and_then(|c| read.coupons.get(c).cloned());
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
                    let again = ctx
                        .store
                        .read(
                            shop,
                            &ReadRequest {
                                accounts: vec![owner.clone()],
                                ..ReadRequest::default()
                            },
                        )
                        .await?;
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
            let usage = usage_of(&mut read, code, request, &coupon.value);
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
fn first_read(request: &ValidateRequest, cart: &Cart, code: Option<&Code>) -> ReadRequest {
    let mut read = ReadRequest::default();
    if let Some(code) = code {
        read.code_owners.push(code.clone());
        read.coupons.push(code.clone());
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
) -> CouponUsage {
    let mut count = |key: Option<UsageKey>| {
        key.and_then(|key| read.coupon_uses.remove(&(code.clone(), key)))
            .unwrap_or(0)
    };
    CouponUsage {
        total: record.uses,
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
struct Decide<'a> {
    program: &'a Program,
    cart: &'a Cart,
    same_currency: bool,
    now: DateTime<Utc>,
}

impl Decide<'_> {
    fn zero(&self) -> Money {
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
    fn program_cashback(&self, discount: Money, buyer: Option<&Account>) -> Money {
        let eligible = self.eligible_after(discount);
        let lifetime = buyer
            .map(|account| account.lifetime_eligible_spend)
            .unwrap_or(self.zero());
        earn(self.program, eligible, lifetime, self.now)
            .map(|earned| earned.total)
            .unwrap_or(self.zero())
    }

    fn preview(&self, program: Money, coupon: Money) -> CashbackPreview {
        CashbackPreview {
            total: program.checked_add(coupon).unwrap_or(program),
            program,
            coupon,
        }
    }

    fn refused(&self, kind: CodeKind, refusal: Refusal, buyer: Option<&Account>) -> Validation {
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

/// A customer's balance code: quote it, and place, replace or free the
/// checkout's hold when asked, in one write.
async fn balance_code(
    ctx: &Context,
    shop: &ShopId,
    decide: &Decide<'_>,
    request: &ValidateRequest,
    versioned: Versioned<Account>,
) -> Result<Decided, AppError> {
    let program = decide.program;
    let now = decide.now;
    let accounts_read = AccountsRead::one(&versioned);
    let mut account = versioned.value;
    // Expired holds no longer count, here and in what is written back.
    let expired = !account.expire_holds(now).is_empty();
    let checkout = request.reserve.as_ref().map(|r| &r.checkout_id);
    let spendable = match checkout {
        // The checkout's own previous hold is its own to re-use.
        Some(checkout) => account.spendable_for(checkout),
        None => account.spendable(),
    };
    let quoted = if decide.same_currency {
        quote(program, spendable, decide.cart)
    } else {
        Err(CodeRefusal::CurrencyMismatch {
            cart: decide.cart.currency.to_string(),
            balance: program.currency.to_string(),
        })
    };
    let mut validation = match &quoted {
        Ok(q) => Validation {
            valid: true,
            kind: Some(CodeKind::CustomerBalance),
            refusal: None,
            message: None,
            discount: q.discount,
            cashback: decide.preview(
                decide.program_cashback(q.discount, Some(&account)),
                decide.zero(),
            ),
            balance_before: Some(q.balance_before),
            balance_after: Some(q.balance_after),
            hold: None,
            coupon: None,
        },
        Err(refusal) => {
            let mut validation = decide.refused(
                CodeKind::CustomerBalance,
                Refusal::Code(refusal.clone()),
                Some(&account),
            );
            validation.balance_before = Some(spendable);
            validation.balance_after = Some(spendable);
            validation
        }
    };
    let Some(reserve) = &request.reserve else {
        return Ok(Decided::Answer(validation));
    };
    let changed = match &quoted {
        Ok(q) if q.discount.is_positive() => {
            let ttl = hold_ttl(program, reserve.ttl_seconds);
            let hold = account.place_hold(reserve.checkout_id.clone(), q.discount, now, ttl)?;
            validation.hold = Some(hold);
            true
        }
        // The cart no longer qualifies: what this checkout held is freed.
        _ => account.release_hold(&reserve.checkout_id).is_some() || expired,
    };
    if changed {
        let writes = WriteSet {
            accounts: vec![AccountWrite {
                // The reminder schedule is rewritten with the account: keep it.
                reminder_due_at: next_reminder(program, &account).map(|due| due.due_at),
                account,
                expected_version: versioned.version,
                entries: Vec::new(),
                code_change: None,
            }],
            accounts_read,
            ..WriteSet::default()
        };
        match ctx.store.write(shop, writes).await? {
            WriteOutcome::Committed => {}
            // No guard is set, so a duplicate means the store saw a stale write.
            WriteOutcome::Duplicate { .. } => {
                return Err(AppError::Store(StoreError::Conflict(
                    "hold write reported a duplicate".into(),
                )))
            }
        }
    }
    Ok(Decided::Answer(validation))
}

/// The TTL of a hold: asked for, or the program's; never above the cap.
pub fn hold_ttl(program: &Program, asked: Option<u32>) -> u32 {
    let cap = MAX_HOLD_TTL_SECONDS.max(program.hold_ttl_seconds);
    asked.unwrap_or(program.hold_ttl_seconds).clamp(1, cap)
}

/// The counter key for a shop and source: hashed, so no IP is stored.
fn caller_key(shop: &ShopId, source: &str) -> String {
    let digest = Sha256::digest(format!("{shop}\n{source}").as_bytes());
    hex::encode(&digest[..16])
}

/// The store counter of a caller's unknown codes in the window of `now`.
/// The window is in the key, so a new window starts a new count with no
/// reset to race; the counter outlives its window a little for the TTL.
fn guess_counter(caller_key: &str, now: DateTime<Utc>) -> String {
    let window = now.timestamp().div_euclid(GUESS_WINDOW_SECONDS);
    format!("guess#{caller_key}#{window}")
}

fn window_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let window = now.timestamp().div_euclid(GUESS_WINDOW_SECONDS);
    DateTime::<Utc>::from_timestamp((window + 1) * GUESS_WINDOW_SECONDS, 0)
        .unwrap_or(now + Duration::seconds(GUESS_WINDOW_SECONDS))
}

/// Counts one unknown code for the caller; 429 past the limit.
async fn count_unknown(
    ctx: &Context,
    caller_key: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let end = window_end(now);
    let count = ctx
        .store
        .increment_counter(
            &guess_counter(caller_key, now),
            end + Duration::seconds(GUESS_WINDOW_SECONDS),
        )
        .await?;
    if count > GUESS_LIMIT {
        ctx.guesses.block_until(caller_key, end, now);
        return Err(AppError::RateLimited {
            retry_after_seconds: retry_after(end, now),
        });
    }
    Ok(())
}

fn retry_after(end: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((end - now).num_seconds()).unwrap_or(1).max(1)
}

/// Sources over the limit as this warm container saw them, until their
/// window ends: refused without a read. Kept in the [`Context`]; another
/// container learns the same from the counter in its first read.
#[derive(Default)]
pub struct GuessBlocks(Mutex<BTreeMap<String, DateTime<Utc>>>);

impl GuessBlocks {
    fn blocked_for(&self, caller_key: &str, now: DateTime<Utc>) -> Option<u64> {
        let blocked = self.0.lock().ok()?;
        let until = *blocked.get(caller_key)?;
        (until > now).then(|| retry_after(until, now))
    }

    fn block_until(&self, caller_key: &str, until: DateTime<Utc>, now: DateTime<Utc>) {
        if let Ok(mut blocked) = self.0.lock() {
            // Forget finished windows so the map stays as small as the attack.
            blocked.retain(|_, end| *end > now);
            blocked.insert(caller_key.to_string(), until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_hold_ttl_defaults_to_the_program_and_is_capped() {
        let program = Program::new(Currency::USD);
        assert_eq!(hold_ttl(&program, None), program.hold_ttl_seconds);
        assert_eq!(hold_ttl(&program, Some(60)), 60);
        assert_eq!(hold_ttl(&program, Some(0)), 1);
        assert_eq!(hold_ttl(&program, Some(86_400)), MAX_HOLD_TTL_SECONDS);
    }

    #[test]
    fn the_retry_after_is_what_is_left_of_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 2, 0).unwrap();
        let end = window_end(now);
        assert_eq!(end, Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap());
        assert_eq!(retry_after(end, now), 180);
    }

    #[test]
    fn amounts_that_are_not_money_are_named_by_field() {
        let cart = CartInput {
            lines: vec![LineInput {
                line_id: None,
                product_id: None,
                variant_id: None,
                sku: None,
                vendor: None,
                collection_ids: Vec::new(),
                quantity: 1,
                unit_price: "ten".into(),
                compare_at_price: None,
                discount: Some("-1.00".into()),
                gift_card: false,
            }],
            subtotal: "10.001".into(),
            shipping: None,
            other_discounts: Vec::new(),
            payment_method: None,
        };
        let fields: Vec<String> = cart
            .to_cart(Currency::USD)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "cart.subtotal",
                "cart.lines[0].unit_price",
                "cart.lines[0].discount"
            ]
        );
    }
}
