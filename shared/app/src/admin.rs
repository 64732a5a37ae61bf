//! The merchant's controls and reports: the use cases behind the admin API.
//!
//! Every change here goes through the same Store port as the order events,
//! so the running aggregates the reports read are kept by the store itself,
//! inside the transactions that move the ledger (docs/reports.md).
//!
//! - Program: read, replace (validated, every field error named, the
//!   previous version kept, optionally only if still at an expected
//!   version), and read an earlier version. A new program applies to orders
//!   decided after it; cashback already earned is never recomputed, since
//!   every order record keeps what it earned and its funding.
//! - Cashback coupons: create, list, read, update, pause and approve. Codes
//!   are unique per shop and case-insensitive (a `Code` is lower case), and
//!   may not be a customer's own cashback code.
//! - Customers: by id, email or code; their ledger, paged; manual
//!   adjustments, idempotent as Stripe's API is ([`adjust`]); a new code
//!   when the old one leaked ([`regenerate_code`]).
//! - Catalog import, shop onboarding, reports and the profile properties
//!   email tools sync.
//!
//! Request bodies arrive as JSON text, so that a malformed field is
//! reported by name like any other invalid field.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use cashback_core::coupon::{CashbackCoupon, CouponStatus};
use cashback_core::ids::{Code, CollectionId, CustomerId, Email, ProductId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::program::{FieldError, Program};
use cashback_core::reminders::next_reminder;

use crate::context::Context;
use crate::error::AppError;
use crate::events::backoff;
use crate::store::*;

/// Page sizes: what a caller gets without asking, and the most it may ask.
pub const DEFAULT_PAGE: u32 = 25;
pub const MAX_PAGE: u32 = 100;

/// How long an adjustment's idempotency key is remembered. Stripe keeps
/// keys for 24 hours; a merchant's retry tool may run later than that, and
/// a guard item costs little, so a week.
pub const IDEMPOTENCY_DAYS: i64 = 7;

/// The longest reporting period, in days (ten years).
pub const MAX_REPORT_DAYS: i64 = 3660;

fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

fn field(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a JSON body, naming the field serde stumbled on when it says.
pub fn parse_body<T: DeserializeOwned>(body: &str) -> Result<T, AppError> {
    serde_json::from_str(body).map_err(|error| {
        let message = error.to_string();
        let named = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(str::to_string);
        AppError::InvalidFields(vec![field(
            named.unwrap_or_else(|| "(body)".to_string()),
            message,
        )])
    })
}

/// The shop, read from the store (not the warm cache: an admin sees its
/// own changes at once).
async fn known_shop(ctx: &Context, shop: &ShopId) -> Result<Shop, AppError> {
    ctx.store
        .get_shop(shop)
        .await?
        .ok_or_else(|| AppError::UnknownShop(shop.to_string()))
}

async fn current_program(ctx: &Context, shop: &ShopId) -> Result<Versioned<Program>, AppError> {
    ctx.store
        .get_program(shop)
        .await?
        .ok_or_else(|| AppError::NoProgram(shop.clone()))
}

// ------------------------------------------------------------------ program

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramView {
    pub version: u64,
    pub program: Program,
}

pub async fn get_program(ctx: &Context, shop: &ShopId) -> Result<ProgramView, AppError> {
    known_shop(ctx, shop).await?;
    let current = current_program(ctx, shop).await?;
    Ok(ProgramView {
        version: current.version,
        program: current.value,
    })
}

pub async fn get_program_version(
    ctx: &Context,
    shop: &ShopId,
    version: u64,
) -> Result<ProgramView, AppError> {
    known_shop(ctx, shop).await?;
    let program = ctx
        .store
        .get_program_version(shop, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("program version {version}")))?;
    Ok(ProgramView { version, program })
}

/// A program from JSON, validated, in the shop's currency.
fn parse_program(body: &str, shop: &Shop) -> Result<Program, AppError> {
    let program = Program::from_json(body).map_err(|errors| AppError::InvalidFields(errors.0))?;
    if program.currency != shop.currency {
        return Err(AppError::InvalidFields(vec![field(
            "currency",
            format!("must be the shop's currency, {}", shop.currency.code()),
        )]));
    }
    Ok(program)
}

/// Replaces the program. With `expected_version` (the `If-Match` header)
/// only if it is still that version; without, over whatever is current.
/// The previous version stays readable. Orders already decided keep what
/// they earned: the new program applies to orders decided from now on
/// (within the warm containers' cache TTL, `AppConfig::cache_ttl_seconds`).
/// The version records `principal`, who made it.
pub async fn put_program(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    expected_version: Option<u64>,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<ProgramView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let mut program = parse_program(body, &known)?;
    // Kept with the version: who made it, never what the body claims.
    program.changed_by = Some(principal.to_string());
    let expected = match expected_version {
        Some(version) => version,
        None => ctx
            .store
            .get_program(shop)
            .await?
            .map(|p| p.version)
            .unwrap_or(0),
    };
    let version = match ctx.store.put_program(shop, &program, expected, now).await {
        Ok(version) => version,
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::Conflict(format!(
                "the program is no longer at version {expected}; read it again"
            )))
        }
        Err(error) => return Err(error.into()),
    };
    ctx.invalidate(shop);
    info!(shop = %shop, version, by = principal, "program replaced");
    Ok(ProgramView { version, program })
}

// ------------------------------------------------------------------ coupons

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponView {
    pub version: u64,
    pub coupon: CashbackCoupon,
    /// Orders that used it (a cancelled order gives its use back).
    pub uses: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CouponView {
    fn of(record: Versioned<CouponRecord>) -> CouponView {
        CouponView {
            version: record.version,
            coupon: record.value.coupon,
            uses: record.value.uses,
            created_at: record.value.created_at,
            updated_at: record.value.updated_at,
        }
    }
}

fn parse_coupon(body: &str, currency: Currency) -> Result<CashbackCoupon, AppError> {
    let coupon: CashbackCoupon = parse_body(body)?;
    coupon
        .validate(currency.minor_units())
        .map_err(AppError::InvalidFields)?;
    Ok(coupon)
}

async fn read_coupon(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
) -> Result<Versioned<CouponRecord>, AppError> {
    let mut read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                coupons: vec![code.clone()],
                ..ReadRequest::default()
            },
        )
        .await?;
    read.coupons
        .remove(code)
        .ok_or_else(|| AppError::NotFound(format!("coupon {}", code.display())))
}

/// Creates a coupon (a draft unless the body says otherwise).
pub async fn create_coupon(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let coupon = parse_coupon(body, known.currency)?;
    // One read: is the code a coupon already, or a customer's own code?
    let read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                coupons: vec![coupon.code.clone()],
                code_owners: vec![coupon.code.clone()],
                ..ReadRequest::default()
            },
        )
        .await?;
    let shown = coupon.code.display();
    let taken = || AppError::Conflict(format!("the code {shown} is already in use in this shop"));
    if read.coupons.contains_key(&coupon.code) || read.code_owners.contains_key(&coupon.code) {
        return Err(taken());
    }
    let record = CouponRecord {
        coupon,
        uses: 0,
        created_at: now,
        updated_at: now,
    };
    let version = match ctx.store.put_coupon(shop, &record, 0).await {
        Ok(version) => version,
        Err(StoreError::AlreadyExists(_)) => return Err(taken()),
        Err(error) => return Err(error.into()),
    };
    info!(shop = %shop, version, "coupon created");
    Ok(CouponView::of(Versioned {
        value: record,
        version,
    }))
}

pub async fn list_coupons(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<CouponView>, AppError> {
    known_shop(ctx, shop).await?;
    let page = ctx
        .store
        .list_coupons(shop, cursor, page_limit(limit))
        .await
        .map_err(bad_cursor)?;
    Ok(Page {
        items: page.items.into_iter().map(CouponView::of).collect(),
        next: page.next,
    })
}

/// A cursor the store refuses is the caller's mistake, not ours.
/// A cursor the store did not recognise is the caller's mistake, named as
/// the `cursor` field.
pub(crate) fn bad_cursor(error: StoreError) -> AppError {
    match error {
        StoreError::InvalidCursor(message) => {
            AppError::InvalidFields(vec![field("cursor", message)])
        }
        other => other.into(),
    }
}

pub async fn get_coupon(ctx: &Context, shop: &ShopId, code: &Code) -> Result<CouponView, AppError> {
    known_shop(ctx, shop).await?;
    Ok(CouponView::of(read_coupon(ctx, shop, code).await?))
}

async fn replace_coupon(
    ctx: &Context,
    shop: &ShopId,
    current: Versioned<CouponRecord>,
    coupon: CashbackCoupon,
    expected_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let expected = expected_version.unwrap_or(current.version);
    let record = CouponRecord {
        coupon,
        uses: current.value.uses,
        created_at: current.value.created_at,
        updated_at: now,
    };
    match ctx.store.put_coupon(shop, &record, expected).await {
        Ok(version) => Ok(CouponView::of(Versioned {
            value: record,
            version,
        })),
        Err(StoreError::Conflict(_)) => Err(AppError::Conflict(format!(
            "the coupon is no longer at version {expected}; read it again"
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Replaces a coupon's settings; its use count stays. The body's code must
/// be the one in the path (a code cannot be renamed: create another).
pub async fn update_coupon(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
    body: &str,
    expected_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let coupon = parse_coupon(body, known.currency)?;
    if &coupon.code != code {
        return Err(AppError::InvalidFields(vec![field(
            "code",
            "must be the code in the path; a code cannot be renamed",
        )]));
    }
    let current = read_coupon(ctx, shop, code).await?;
    replace_coupon(ctx, shop, current, coupon, expected_version, now).await
}

/// Pauses or approves a coupon (only an approved coupon works at checkout).
pub async fn set_coupon_status(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
    status: CouponStatus,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    known_shop(ctx, shop).await?;
    let current = read_coupon(ctx, shop, code).await?;
    let mut coupon = current.value.coupon.clone();
    coupon.status = status;
    replace_coupon(ctx, shop, current, coupon, None, now).await
}

// ---------------------------------------------------------------- customers

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierView {
    pub index: usize,
    pub name: String,
}

/// An account as the merchant sees it. Amounts are strings in the shop's
/// currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerView {
    pub customer_id: CustomerId,
    pub email: Option<Email>,
    /// The customer's cashback code, as shown to them (upper case).
    pub code: Option<String>,
    pub currency: Currency,
    pub available: Decimal,
    pub pending: Decimal,
    pub held: Decimal,
    pub spendable: Decimal,
    pub debt: Decimal,
    pub lifetime_issued: Decimal,
    pub lifetime_used: Decimal,
    pub lifetime_eligible_spend: Decimal,
    pub tier: Option<TierView>,
    pub orders_earned: u32,
    /// Who last gave the customer a new code through the admin API.
    pub code_changed_by: Option<String>,
    pub version: u64,
}

fn tier_name(program: Option<&Program>, index: usize) -> String {
    program
        .and_then(|p| p.tiers.get(index))
        .map(|t| t.name.clone())
        .unwrap_or_else(|| format!("tier {index} (no longer in the program)"))
}

impl CustomerView {
    pub fn of(account: &Versioned<Account>, program: Option<&Program>) -> CustomerView {
        let a = &account.value;
        CustomerView {
            customer_id: a.customer.clone(),
            email: a.email.clone(),
            code: a.code.as_ref().map(Code::display),
            currency: a.currency,
            available: a.available.amount(),
            pending: a.pending.amount(),
            held: a.held().amount(),
            spendable: a.spendable().amount(),
            debt: a.debt.amount(),
            lifetime_issued: a.lifetime_issued.amount(),
            lifetime_used: a.lifetime_used.amount(),
            lifetime_eligible_spend: a.lifetime_eligible_spend.amount(),
            tier: a.tier.map(|index| TierView {
                index,
                name: tier_name(program, index),
            }),
            orders_earned: a.orders_earned,
            code_changed_by: a.code_changed_by.clone(),
            version: account.version,
        }
    }
}

async fn read_account(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Versioned<Account>, AppError> {
    let mut read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                accounts: vec![customer.clone()],
                ..ReadRequest::default()
            },
        )
        .await?;
    read.accounts
        .remove(customer)
        .ok_or_else(|| AppError::NotFound(format!("customer {customer}")))
}

pub async fn get_customer(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<CustomerView, AppError> {
    known_shop(ctx, shop).await?;
    let program = ctx.store.get_program(shop).await?;
    let account = read_account(ctx, shop, customer).await?;
    Ok(CustomerView::of(
        &account,
        program.as_ref().map(|p| &p.value),
    ))
}

/// How a merchant names a customer they do not have the id of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Email(Email),
    Code(Code),
}

/// The customer an email (the latest account that used it) or a code
/// belongs to. A code no longer in use (regenerated) finds nobody.
pub async fn lookup_customer(
    ctx: &Context,
    shop: &ShopId,
    lookup: &Lookup,
) -> Result<CustomerView, AppError> {
    known_shop(ctx, shop).await?;
    let request = match lookup {
        Lookup::Email(email) => ReadRequest {
            email_owners: vec![email.clone()],
            ..ReadRequest::default()
        },
        Lookup::Code(code) => ReadRequest {
            code_owners: vec![code.clone()],
            ..ReadRequest::default()
        },
    };
    let read = ctx.store.read(shop, &request).await?;
    let owner = match lookup {
        Lookup::Email(email) => read.email_owners.get(email),
        Lookup::Code(code) => read.code_owners.get(code),
    }
    .cloned()
    .ok_or_else(|| AppError::NotFound("customer".into()))?;
    let view = get_customer(ctx, shop, &owner).await?;
    // A replaced code stays in the index (orders placed with it are still
    // charged to its owner) but names nobody here.
    if let Lookup::Code(code) = lookup {
        if view.code.as_deref() != Some(code.display().as_str()) {
            return Err(AppError::NotFound("customer".into()));
        }
    }
    Ok(view)
}

/// A page of the customer's ledger, newest first.
pub async fn ledger(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<LedgerEntry>, AppError> {
    known_shop(ctx, shop).await?;
    read_account(ctx, shop, customer).await?;
    ctx.store
        .ledger(shop, customer, cursor, page_limit(limit))
        .await
        .map_err(bad_cursor)
}

/// A manual credit (positive amount) or debit (negative), with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Signed decimal string in the shop's currency: "5.00" or "-2.50".
    pub amount: String,
    pub reason: String,
}

/// The answer to an adjustment, as first given. A retry with the same key
/// and body gets it again (`replayed`), status and body alike.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustmentOutcome {
    pub status: u16,
    pub body: serde_json::Value,
    pub replayed: bool,
}

/// What the guard keeps: the request's fingerprint and the answer.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAnswer {
    request_hash: String,
    status: u16,
    body: serde_json::Value,
}

pub const MAX_IDEMPOTENCY_KEY: usize = 255;

fn check_idempotency_key(key: &str) -> Result<&str, AppError> {
    let key = key.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(AppError::InvalidFields(vec![field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        )]));
    }
    Ok(key)
}

/// Applies a manual adjustment once per idempotency key, as Stripe does:
/// - the first request with a key is applied and its answer (success, or
///   a refusal by the ledger such as a debit over the spendable balance)
///   is stored in the write's guard, with a SHA-256 of the request
///   (customer, amount, reason), in the same transaction as the entry;
/// - the same key with the same request gets that first answer again,
///   whatever happened to the balance since, and nothing is applied twice;
/// - the same key with a different request is a 409.
///
/// A request refused before it reaches the ledger (a malformed amount, an
/// unknown customer) stores nothing: it can be corrected and retried under
/// the same key.
pub async fn adjust(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    body: &str,
    idempotency_key: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<AdjustmentOutcome, AppError> {
    let key = check_idempotency_key(idempotency_key)?;
    let request: AdjustmentRequest = parse_body(body)?;
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let mut errors = Vec::new();
    let amount = match Money::parse(&request.amount, program.currency) {
        Ok(amount) if amount.is_zero() => {
            errors.push(field("amount", "must not be zero"));
            None
        }
        Ok(amount) => Some(amount),
        Err(error) => {
            errors.push(field(
                "amount",
                format!("{error} (a signed decimal string, e.g. \"5.00\" or \"-2.50\")"),
            ));
            None
        }
    };
    if let (Some(amount), Some(max)) = (amount, program.max_adjustment) {
        if amount.amount().abs() > max {
            errors.push(field(
                "amount",
                format!(
                    "at most {max} {} per adjustment (the program's max_adjustment)",
                    program.currency.code()
                ),
            ));
        }
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        errors.push(field("reason", "must be 1 to 500 characters"));
    }
    let Some(amount) = amount.filter(|_| errors.is_empty()) else {
        return Err(AppError::InvalidFields(errors));
    };
    let request_hash = hex::encode(Sha256::digest(
        json!({
            "customer": customer.as_str(),
            "amount": amount.amount().to_string(),
            "reason": reason,
        })
        .to_string()
        .as_bytes(),
    ));
    let guard_key = format!("admin-adjustment:{key}");

    let mut last_error = String::new();
    for attempt in 1..=ctx.config.max_attempts {
        let account = read_account(ctx, shop, customer).await?;
        let mut next = account.value.clone();
        // The entry's note says who made it, beside why.
        let note = format!("{reason} (by {principal})");
        let (answer, writes) = match next.adjust(amount, &note, key, program, now) {
            Ok(applied) => {
                let entries = applied.entries;
                let body = json!({
                    "adjustment": {
                        "customer_id": customer,
                        "amount": amount.amount(),
                        "currency": program.currency,
                        "reason": reason,
                        "by": principal,
                        "entry_ids": entries.iter().map(|e| e.entry_id.clone()).collect::<Vec<_>>(),
                        "at": now,
                    },
                    "customer": CustomerView::of(
                        &Versioned { value: next.clone(), version: account.version + 1 },
                        Some(program),
                    ),
                });
                let write = AccountWrite {
                    reminder_due_at: next_reminder(program, &next).map(|due| due.due_at),
                    account: next,
                    expected_version: account.version,
                    entries,
                    code_change: None,
                };
                (
                    StoredAnswer {
                        request_hash: request_hash.clone(),
                        status: 201,
                        body,
                    },
                    vec![write],
                )
            }
            Err(refusal) => (
                StoredAnswer {
                    request_hash: request_hash.clone(),
                    status: 422,
                    body: json!({"error": {"code": "ledger_refused", "message": refusal.to_string()}}),
                },
                Vec::new(),
            ),
        };
        let stored = serde_json::to_string(&answer)
            .map_err(|e| AppError::Invalid(format!("cannot encode the answer: {e}")))?;
        let outcome = ctx
            .store
            .write(
                shop,
                WriteSet {
                    guard: Some(Guard {
                        key: guard_key.clone(),
                        expires_at: now + Duration::days(IDEMPOTENCY_DAYS),
                        response: Some(stored),
                    }),
                    accounts: writes,
                    accounts_read: AccountsRead::one(&account),
                    ..WriteSet::default()
                },
            )
            .await;
        match outcome {
            Ok(WriteOutcome::Committed) => {
                info!(shop = %shop, customer = %customer, status = answer.status, by = principal, "adjustment answered");
                return Ok(AdjustmentOutcome {
                    status: answer.status,
                    body: answer.body,
                    replayed: false,
                });
            }
            Ok(WriteOutcome::Duplicate { response }) => {
                let first: StoredAnswer = response
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .ok_or_else(|| {
                        AppError::Conflict(
                            "this Idempotency-Key was used by another request".into(),
                        )
                    })?;
                if first.request_hash != request_hash {
                    return Err(AppError::Conflict(
                        "this Idempotency-Key was used with a different request".into(),
                    ));
                }
                info!(shop = %shop, customer = %customer, "adjustment replayed");
                return Ok(AdjustmentOutcome {
                    status: first.status,
                    body: first.body,
                    replayed: true,
                });
            }
            Err(error) if error.is_conflict() => {
                last_error = error.to_string();
                backoff(attempt).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(AppError::Contended {
        attempts: ctx.config.max_attempts,
        last: last_error,
    })
}

/// Gives the customer a new code: the old one stops working at checkout at
/// once (validate answers it as unknown), but stays its owner's in the code
/// index, so an order a checkout already placed with it is still charged to
/// them and frees its hold.
pub async fn regenerate_code(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    principal: &str,
) -> Result<CustomerView, AppError> {
    known_shop(ctx, shop).await?;
    let program = current_program(ctx, shop).await?.value;
    let mut last_error = String::new();
    for attempt in 1..=ctx.config.max_attempts {
        let account = read_account(ctx, shop, customer).await?;
        let mut next = account.value.clone();
        let new_code = ctx.new_code()?;
        let old_code = next.code.replace(new_code.clone());
        next.code_changed_by = Some(principal.to_string());
        let write = AccountWrite {
            reminder_due_at: next_reminder(&program, &next).map(|due| due.due_at),
            account: next.clone(),
            expected_version: account.version,
            entries: Vec::new(),
            code_change: Some(CodeChange {
                new_code,
                old_code,
                referral_code: None,
            }),
        };
        match ctx
            .store
            .write(
                shop,
                WriteSet {
                    accounts: vec![write],
                    accounts_read: AccountsRead::one(&account),
                    ..WriteSet::default()
                },
            )
            .await
        {
            Ok(_) => {
                info!(shop = %shop, customer = %customer, by = principal, "customer code regenerated");
                return Ok(CustomerView::of(
                    &Versioned {
                        value: next,
                        version: account.version + 1,
                    },
                    Some(&program),
                ));
            }
            // A collision with another code, or a concurrent change: again.
            Err(error) if error.is_conflict() || matches!(error, StoreError::CodeTaken) => {
                last_error = error.to_string();
                backoff(attempt).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(AppError::Contended {
        attempts: ctx.config.max_attempts,
        last: last_error,
    })
}

// ------------------------------------------------------------------ catalog

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItemInput {
    pub product_id: ProductId,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Decimal string in the shop's currency, or null.
    #[serde(default)]
    pub compare_at_price: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogImport {
    pub products: Vec<CatalogItemInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogImported {
    pub imported: usize,
}

/// Imports up to [`MAX_CATALOG_BATCH`] products; each replaces what was
/// stored for it. The order-event path reads them with the order (one
/// read) to know collections and compare-at prices the platform left out.
pub async fn import_catalog(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
) -> Result<CatalogImported, AppError> {
    let known = known_shop(ctx, shop).await?;
    let import: CatalogImport = parse_body(body)?;
    if import.products.is_empty() || import.products.len() > MAX_CATALOG_BATCH {
        return Err(AppError::InvalidFields(vec![field(
            "products",
            format!("must hold 1 to {MAX_CATALOG_BATCH} products; send more in several calls"),
        )]));
    }
    let mut errors = Vec::new();
    let mut products = Vec::with_capacity(import.products.len());
    for (i, item) in import.products.into_iter().enumerate() {
        let compare_at_price = match item.compare_at_price.as_deref() {
            None => None,
            Some(raw) => match Money::parse(raw, known.currency) {
                Ok(price) if !price.is_negative() => Some(price),
                Ok(_) => {
                    errors.push(field(
                        format!("products[{i}].compare_at_price"),
                        "must be zero or more",
                    ));
                    None
                }
                Err(error) => {
                    errors.push(field(
                        format!("products[{i}].compare_at_price"),
                        error.to_string(),
                    ));
                    None
                }
            },
        };
        products.push(CatalogProduct {
            product_id: item.product_id,
            collection_ids: item.collection_ids,
            compare_at_price,
        });
    }
    if !errors.is_empty() {
        return Err(AppError::InvalidFields(errors));
    }
    ctx.store.put_catalog(shop, &products).await?;
    info!(shop = %shop, products = products.len(), "catalog imported");
    Ok(CatalogImported {
        imported: products.len(),
    })
}

// --------------------------------------------------------------- onboarding

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShop {
    pub shop: ShopId,
    pub platform: Platform,
    pub name: String,
    pub currency: Currency,
    /// `env:CASHBACK_SECRET_<NAME>` or `ssm:/parameter/name`: where the
    /// webhook secret lives, never the secret.
    pub webhook_secret_ref: String,
    /// A first program, optional (the shop earns nothing until it has one).
    #[serde(default)]
    pub program: Option<serde_json::Value>,
}

/// The shop as the admin API shows it: never the API key's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShopView {
    pub shop: ShopId,
    pub platform: Platform,
    pub name: String,
    pub currency: Currency,
    pub webhook_secret_ref: String,
    pub created_at: DateTime<Utc>,
    /// The program's version, when one was given.
    pub program_version: Option<u64>,
}

/// Onboards a shop. The caller made its API key and passes only the hash
/// (the key is shown once, by the caller, and never stored).
pub async fn create_shop(
    ctx: &Context,
    body: &str,
    api_key_hash: &str,
    now: DateTime<Utc>,
) -> Result<ShopView, AppError> {
    let new: NewShop = parse_body(body)?;
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(field("name", "must be 1 to 100 characters"));
    }
    let reference = new.webhook_secret_ref.trim();
    if let Some(problem) = crate::store::secret_ref_problem(reference) {
        errors.push(field(
            "webhook_secret_ref",
            format!("{problem}: where the secret lives, never the secret"),
        ));
    }
    let shop = Shop {
        shop: new.shop.clone(),
        platform: new.platform,
        currency: new.currency,
        name: name.to_string(),
        webhook_secret_ref: reference.to_string(),
        api_key_hash: api_key_hash.to_string(),
        created_at: now,
        guest_id_key: Some(ctx.new_secret()),
    };
    let program = match &new.program {
        None => None,
        Some(value) => match parse_program(&value.to_string(), &shop) {
            Ok(program) => Some(program),
            Err(AppError::InvalidFields(fields)) => {
                errors.extend(fields.into_iter().map(|f| FieldError {
                    field: format!("program.{}", f.field),
                    message: f.message,
                }));
                None
            }
            Err(other) => return Err(other),
        },
    };
    if !errors.is_empty() {
        return Err(AppError::InvalidFields(errors));
    }
    match ctx.store.create_shop(&shop).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(AppError::Conflict(format!(
                "the shop {} is already onboarded",
                shop.shop
            )))
        }
        Err(error) => return Err(error.into()),
    }
    let program_version = match program {
        Some(program) => Some(ctx.store.put_program(&shop.shop, &program, 0, now).await?),
        None => None,
    };
    ctx.invalidate(&shop.shop);
    info!(shop = %shop.shop, platform = ?shop.platform, "shop onboarded");
    Ok(ShopView {
        shop: shop.shop,
        platform: shop.platform,
        name: shop.name,
        currency: shop.currency,
        webhook_secret_ref: shop.webhook_secret_ref,
        created_at: shop.created_at,
        program_version,
    })
}

// ------------------------------------------------------------------ reports

/// Issued or clawed back cashback, by who funds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Funded {
    pub total: Decimal,
    pub merchant: Decimal,
    pub partner: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liability {
    /// End of this day (UTC).
    pub at: NaiveDate,
    pub available: Decimal,
    pub pending: Decimal,
    /// available + pending.
    pub total: Decimal,
    /// The total split pro rata of net funding to date (docs/reports.md).
    pub merchant: Decimal,
    pub partner: Decimal,
    /// Clawbacks not yet recovered and balance code shortfalls charged to
    /// their owners: not part of the liability.
    pub debt: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierCount {
    /// None: customers in no tier.
    pub tier: Option<usize>,
    pub name: String,
    pub customers: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomersReport {
    pub total: i64,
    /// Customers with at least one earning order.
    pub earned: i64,
    /// Customers with two or more earning orders.
    pub repeat: i64,
    pub by_tier: Vec<TierCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjusted {
    pub credited: Decimal,
    pub debited: Decimal,
}

/// A period's figures; every definition is in docs/reports.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub shop: ShopId,
    pub currency: Currency,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub issued: Funded,
    pub released: Decimal,
    pub redeemed: Decimal,
    pub restored: Decimal,
    pub clawed_back: Funded,
    pub expired: Decimal,
    pub adjusted: Adjusted,
    pub liability: Liability,
    /// expired / released; None when nothing was released.
    pub breakage_rate: Option<Decimal>,
    /// (redeemed - restored) / released; None when nothing was released.
    pub redemption_rate: Option<Decimal>,
    /// Customers now: the counters are current, not as of `to`.
    pub customers: CustomersReport,
    /// repeat / earned, of the customers now; None when nobody earned.
    pub repeat_purchase_rate: Option<Decimal>,
}

fn at_minor_unit(value: Decimal, currency: Currency) -> Decimal {
    let mut value = value;
    value.rescale(currency.minor_units());
    value
}

fn rate(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    (!denominator.is_zero()).then(|| (numerator / denominator).round_dp(4).normalize())
}

/// Period sums of one shop's day figures.
#[derive(Default)]
struct Sums {
    figures: DayFigures,
}

impl Sums {
    fn over<'a>(days: impl Iterator<Item = &'a DayFigures>) -> Sums {
        let mut sums = Sums::default();
        for day in days {
            sums.figures.add(day);
        }
        sums
    }

    fn issued(&self) -> Funded {
        let earn = &self.figures.earn;
        let total = earn.available + earn.pending;
        // The partner funds its match; the merchant everything else
        // (program percent, fixed rules, coupons, referrals).
        Funded {
            total,
            merchant: total - earn.partner,
            partner: earn.partner,
        }
    }

    fn clawed_back(&self) -> Funded {
        let c = &self.figures.clawback;
        // What the clawbacks took from the customer's position (balances
        // less debt). Debt recovered later moves balance and debt alike
        // and counts nothing new.
        let total = c.debt - c.available - c.pending;
        Funded {
            total,
            merchant: total + c.partner,
            partner: -c.partner,
        }
    }

    /// Cashback that became spendable: pending released, and cashback
    /// credited straight to available (immediate issuance, referrals).
    fn released(&self) -> Decimal {
        self.figures.release.available + self.figures.earn.available
    }

    /// What balance codes charged: the balance taken, and the shortfall
    /// charged to the code's owner as debt (granted, never free).
    fn redeemed(&self) -> Decimal {
        self.figures.redeem.debt - self.figures.redeem.available
    }

    fn restored(&self) -> Decimal {
        self.figures.restore.available
    }

    fn expired(&self) -> Decimal {
        -self.figures.expire.available
    }

    fn adjusted(&self) -> Adjusted {
        let a = &self.figures.adjust;
        Adjusted {
            credited: a.credited,
            debited: a.credited - a.available,
        }
    }

    fn available(&self) -> Decimal {
        self.figures.total(Metric::Available)
    }

    fn pending(&self) -> Decimal {
        self.figures.total(Metric::Pending)
    }

    fn debt(&self) -> Decimal {
        self.figures.total(Metric::Debt)
    }
}

/// The liability split: balances are fungible once credited (a lot does
/// not remember who funded it), so what is outstanding is split in the
/// proportion each funder has funded, net, up to that date: the partner's
/// share is its issued match less its clawed back match, over all cashback
/// issued less clawed back plus the merchant's net adjustments. The
/// partner's part rounds toward zero; the merchant carries the rest.
fn split_liability(to_date: &Sums, total: Decimal, currency: Currency) -> (Decimal, Decimal) {
    let issued = to_date.issued();
    let clawed = to_date.clawed_back();
    let adjusted = to_date.adjusted();
    let partner_funded = issued.partner - clawed.partner;
    let all_funded = issued.total - clawed.total + adjusted.credited - adjusted.debited;
    if all_funded <= Decimal::ZERO || partner_funded <= Decimal::ZERO || total <= Decimal::ZERO {
        return (total, Decimal::ZERO);
    }
    let share = (partner_funded / all_funded).min(Decimal::ONE);
    let partner = Money::round_toward_zero(total * share, currency).amount();
    (total - partner, partner)
}

/// The shop's report for a period (dates inclusive, UTC days), from the
/// running aggregates: one query per aggregate shard, no scan.
pub async fn report(
    ctx: &Context,
    shop: &ShopId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Report, AppError> {
    if to < from {
        return Err(AppError::InvalidFields(vec![field(
            "to",
            "must not be before from",
        )]));
    }
    if (to - from).num_days() > MAX_REPORT_DAYS {
        return Err(AppError::InvalidFields(vec![field(
            "to",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        )]));
    }
    let known = known_shop(ctx, shop).await?;
    let program = ctx.store.get_program(shop).await?.map(|p| p.value);
    let aggregates = ctx.store.aggregates(shop, to).await?;
    let period = Sums::over(aggregates.days.range(from..=to).map(|(_, f)| f));
    let to_date = Sums::over(aggregates.days.values());
    let currency = known.currency;

    let released = period.released();
    let redeemed = period.redeemed();
    let restored = period.restored();
    let expired = period.expired();
    let available = to_date.available();
    let pending = to_date.pending();
    let total = available + pending;
    let (merchant, partner) = split_liability(&to_date, total, currency);

    let counts = &aggregates.counts;
    let mut by_tier: Vec<TierCount> = counts
        .tiers
        .iter()
        .filter(|(_, count)| **count != 0)
        .map(|(key, count)| {
            let tier = key.parse::<usize>().ok();
            TierCount {
                tier,
                name: match tier {
                    Some(index) => tier_name(program.as_ref(), index),
                    None => "no tier".into(),
                },
                customers: *count,
            }
        })
        .collect();
    by_tier.sort_by_key(|t| t.tier.map_or(0, |i| i + 1));

    // Stores may hand sums back normalised ("20"): amounts are shown at
    // the currency's minor unit ("20.00"), as everywhere else.
    let m = |value: Decimal| at_minor_unit(value, currency);
    let funded = |f: Funded| Funded {
        total: m(f.total),
        merchant: m(f.merchant),
        partner: m(f.partner),
    };
    let adjusted = period.adjusted();
    Ok(Report {
        shop: shop.clone(),
        currency,
        from,
        to,
        issued: funded(period.issued()),
        released: m(released),
        redeemed: m(redeemed),
        restored: m(restored),
        clawed_back: funded(period.clawed_back()),
        expired: m(expired),
        adjusted: Adjusted {
            credited: m(adjusted.credited),
            debited: m(adjusted.debited),
        },
        liability: Liability {
            at: to,
            available: m(available),
            pending: m(pending),
            total: m(total),
            merchant: m(merchant),
            partner: m(partner),
            debt: m(to_date.debt()),
        },
        breakage_rate: rate(expired, released),
        redemption_rate: rate(redeemed - restored, released),
        customers: CustomersReport {
            total: counts.customers,
            earned: counts.earners,
            repeat: counts.repeaters,
            by_tier,
        },
        repeat_purchase_rate: rate(
            Decimal::from(counts.repeaters),
            Decimal::from(counts.earners),
        ),
    })
}

// ----------------------------------------------------------------- profiles

/// What an email tool keeps on a customer's profile (the properties Onward
/// syncs to Klaviyo), under names that say they are ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileProperties {
    pub cashback_balance: Decimal,
    pub cashback_pending_balance: Decimal,
    pub cashback_lifetime_issued: Decimal,
    pub cashback_lifetime_used: Decimal,
    /// The customer's code as shown to them; None until they have one.
    pub cashback_discount_code: Option<String>,
    pub cashback_currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub customer_id: CustomerId,
    pub email: Option<Email>,
    pub properties: ProfileProperties,
}

impl Profile {
    pub fn of(account: &Account) -> Profile {
        Profile {
            customer_id: account.customer.clone(),
            email: account.email.clone(),
            properties: ProfileProperties {
                cashback_balance: account.available.amount(),
                cashback_pending_balance: account.pending.amount(),
                cashback_lifetime_issued: account.lifetime_issued.amount(),
                cashback_lifetime_used: account.lifetime_used.amount(),
                cashback_discount_code: account.code.as_ref().map(Code::display),
                cashback_currency: account.currency,
            },
        }
    }
}

pub async fn profile(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Profile, AppError> {
    known_shop(ctx, shop).await?;
    Ok(Profile::of(&read_account(ctx, shop, customer).await?.value))
}

/// Every customer's profile, a page at a time, from the shop's account
/// index (no scan of the table).
pub async fn export_profiles(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<Profile>, AppError> {
    known_shop(ctx, shop).await?;
    let page = ctx
        .store
        .list_accounts(shop, cursor, page_limit(limit))
        .await
        .map_err(bad_cursor)?;
    Ok(Page {
        items: page.items.iter().map(|a| Profile::of(&a.value)).collect(),
        next: page.next,
    })
}

/// Counts per tier key, for tests and callers that want the raw counters.
pub fn tier_counts(counts: &CustomerCounts) -> BTreeMap<String, i64> {
    counts
        .tiers
        .iter()
        .filter(|(_, c)| **c != 0)
        .map(|(k, c)| (k.clone(), *c))
        .collect()
}
