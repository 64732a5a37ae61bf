//! A customer's balance code at checkout: the quote, and the checkout's hold
//! placed, replaced or freed in one conditional write.

use cashback_core::ids::ShopId;
use cashback_core::ledger::Account;
use cashback_core::program::Program;
use cashback_core::redeem::{quote, CodeRefusal};

use crate::context::Context;
use crate::error::AppError;
use crate::store::{AccountWrite, AccountsRead, StoreError, Versioned, WriteOutcome, WriteSet};

use super::request::ValidateRequest;
use super::validate::{CodeKind, Decide, Decided, Refusal, Validation};
use super::MAX_HOLD_TTL_SECONDS;

/// A customer's balance code: quote it, and place, replace or free the
/// checkout's hold when asked, in one write.
pub(super) async fn balance_code(
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
        // The reminder schedule is rewritten with the account: kept by the write.
        let writes = WriteSet {
            accounts_read,
            ..WriteSet::account(AccountWrite::new(program, account, versioned.version))
        }
        .at(now);
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

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::money::Currency;

    #[test]
    fn a_hold_ttl_defaults_to_the_program_and_is_capped() {
        let program = Program::new(Currency::USD);
        assert_eq!(hold_ttl(&program, None), program.hold_ttl_seconds);
        assert_eq!(hold_ttl(&program, Some(60)), 60);
        assert_eq!(hold_ttl(&program, Some(0)), 1);
        assert_eq!(hold_ttl(&program, Some(86_400)), MAX_HOLD_TTL_SECONDS);
    }
}
