//! Customers: by id, email or code; their ledger, paged; manual adjustments,
//! idempotent per key; a new code when the old one leaked.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::retry::Attempts;
use crate::store::*;

use super::{
    bad_cursor, current_program, field, known_shop, page_limit, parse_body, IDEMPOTENCY_DAYS,
};

/// The customer's tier in the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierView {
    /// Its position in the program's tiers (0 is the first).
    pub index: usize,
    /// Its name in the program, or a note that it is no longer there.
    pub name: String,
}

/// An account as the merchant sees it. Amounts are strings in the shop's
/// currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerView {
    /// The customer's id at the platform (or the shop's keyed guest id).
    pub customer_id: CustomerId,
    /// Their email, when known.
    pub email: Option<Email>,
    /// The customer's cashback code, as shown to them (upper case).
    pub code: Option<String>,
    /// The currency of every amount.
    pub currency: Currency,
    /// Balance that can be spent, holds included.
    pub available: Decimal,
    /// Cashback earned, not yet released.
    pub pending: Decimal,
    /// Balance held for checkouts in progress.
    pub held: Decimal,
    /// Available less what is held.
    pub spendable: Decimal,
    /// What clawbacks took beyond the balance, to be repaid from future cashback.
    pub debt: Decimal,
    /// Cashback ever credited.
    pub lifetime_issued: Decimal,
    /// Cashback ever spent.
    pub lifetime_used: Decimal,
    /// Eligible spend so far, which sets the tier.
    pub lifetime_eligible_spend: Decimal,
    /// The tier reached, if the program has tiers.
    pub tier: Option<TierView>,
    /// Orders that earned cashback.
    pub orders_earned: u32,
    /// Who last gave the customer a new code through the admin API.
    pub code_changed_by: Option<String>,
    /// The customer's birthday (month and day), when the shop knows it.
    pub birthday: Option<cashback_core::bonuses::Birthday>,
    /// The account's version.
    pub version: u64,
}

pub(super) fn tier_name(program: Option<&Program>, index: usize) -> String {
    program
        .and_then(|p| p.tiers.get(index))
        .map(|t| t.name.clone())
        .unwrap_or_else(|| format!("tier {index} (no longer in the program)"))
}

impl CustomerView {
    /// The view of an account, tier named by the program when given.
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
            birthday: a.bonus.birthday,
            version: account.version,
        }
    }
}

pub(super) async fn read_account(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Versioned<Account>, AppError> {
    let mut read = ctx
        .store
        .read(shop, &ReadRequest::account(customer))
        .await?;
    read.accounts
        .remove(customer)
        .ok_or_else(|| AppError::NotFound(format!("customer {customer}")))
}

/// One customer by id.
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
    /// The latest account that used this email.
    Email(Email),
    /// The owner of this cashback code.
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
        Lookup::Email(email) => ReadRequest::email_owner(email),
        Lookup::Code(code) => ReadRequest::code_owner(code),
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
    /// Why, for the ledger entry (1 to 500 characters).
    pub reason: String,
    /// Store-credit mode: a debit the merchant already took from the
    /// customer's store credit by hand on the platform. The ledger and the
    /// cashback share both move by it, so nothing is sent.
    #[serde(default)]
    pub taken_on_platform: bool,
}

/// The answer to an adjustment, as first given. A retry with the same key
/// and body gets it again (`replayed`), status and body alike.
#[derive(Debug, Clone, PartialEq)]
pub struct AdjustmentOutcome {
    /// The HTTP status of the first answer (201 applied, 422 refused by the ledger).
    pub status: u16,
    /// The first answer's body.
    pub body: serde_json::Value,
    /// This is a retry answered from the stored answer.
    pub replayed: bool,
}

/// What the guard keeps: the request's fingerprint and the answer.
#[derive(Debug, Serialize, Deserialize)]
struct StoredAnswer {
    request_hash: String,
    status: u16,
    body: serde_json::Value,
}

/// The longest idempotency key accepted, in characters.
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
    if request.taken_on_platform {
        if program.platform_sync != cashback_core::platform_code::PlatformSync::StoreCredit {
            errors.push(field(
                "taken_on_platform",
                "only in store-credit mode (platform_sync \"store_credit\")",
            ));
        }
        if amount.is_some_and(|amount| amount.is_positive()) {
            errors.push(field(
                "taken_on_platform",
                "only with a debit (a negative amount): what was taken by hand",
            ));
        }
    }
    let Some(amount) = amount.filter(|_| errors.is_empty()) else {
        return Err(AppError::InvalidFields(errors));
    };
    let request_hash = hex::encode(Sha256::digest(
        json!({
            "customer": customer.as_str(),
            "amount": amount.amount().to_string(),
            "reason": reason,
            "taken_on_platform": request.taken_on_platform,
        })
        .to_string()
        .as_bytes(),
    ));
    let guard_key = format!("admin-adjustment:{key}");

    let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
    while attempts.start().is_some() {
        let account = read_account(ctx, shop, customer).await?;
        let mut next = account.value.clone();
        // The entry's note says who made it, beside why.
        let note = format!("{reason} (by {principal})");
        let adjusted = next
            .adjust(amount, &note, key, program, now)
            .and_then(|applied| {
                if request.taken_on_platform {
                    next.store_credit_taken_by_hand(amount.negated())?;
                }
                Ok(applied)
            });
        let (answer, writes) = match adjusted {
            Ok(applied) => {
                let entries = applied.entries;
                let body = json!({
                    "adjustment": {
                        "customer_id": customer,
                        "amount": amount.amount(),
                        "currency": program.currency,
                        "reason": reason,
                        "taken_on_platform": request.taken_on_platform,
                        "by": principal,
                        "entry_ids": entries.iter().map(|e| e.entry_id.clone()).collect::<Vec<_>>(),
                        "at": now,
                    },
                    "customer": CustomerView::of(
                        &Versioned { value: next.clone(), version: account.version + 1 },
                        Some(program),
                    ),
                });
                let write = AccountWrite::new(program, next, account.version).with_entries(entries);
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
                    now: Some(now),
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
            Err(error) if error.is_retryable() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
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
    let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
    while attempts.start().is_some() {
        let account = read_account(ctx, shop, customer).await?;
        let mut next = account.value.clone();
        let new_code = ctx.new_code()?;
        let old_code = next.code.replace(new_code.clone());
        next.code_changed_by = Some(principal.to_string());
        let write = AccountWrite::new(&program, next.clone(), account.version).with_code_change(
            Some(CodeChange {
                new_code,
                old_code,
                referral_code: None,
            }),
        );
        let writes = WriteSet {
            accounts_read: AccountsRead::one(&account),
            ..WriteSet::account(write)
        }
        .at(ctx.now());
        match ctx.store.write(shop, writes).await {
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
            // A collision with another code, a concurrent change or a
            // throttle: again.
            Err(error) if error.is_retryable() || matches!(error, StoreError::CodeTaken) => {
                attempts.lost(error).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
