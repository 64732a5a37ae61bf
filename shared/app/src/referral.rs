//! Referrals: which customer, if any, an order's referral code names, and
//! the referrer's credit, settled off the referred buyer's transaction.
//!
//! Only a referral code refers: the `referral_code` cart attribute (Shopify
//! note attribute, WooCommerce meta, generic field) naming a code from the
//! referral index. Every account gets its own referral code ("REF-...")
//! when the program pays referrals, separate from its balance code: sharing
//! it spends nothing, and a balance code (in the discount codes or in the
//! attribute) never refers anyone.
//!
//! The reward itself is the core's rule (`cashback_core::orders`): paid on
//! the buyer's first earning order, pending with that order under the
//! program's issuance, released with it, taken back in proportion to its
//! refunds and voided by its cancellation; self-referral (same customer id
//! or email) and the referrer's daily cap pay nothing. It is recorded on the
//! referred order, and the order's transaction writes it as a referral
//! credit: an item of its own in the referrer's partition, keyed by the
//! order, that no other customer's order writes. The referrer's account is
//! not in the buyer's transaction, so a popular (or oversized) referrer's
//! account never fails or slows anyone's order. The change feed's consumer
//! ([`settle_credits`], run by the report aggregator with every batch)
//! brings the referrer's account up to each credit in a transaction of its
//! own, exactly once (`cashback_core::referrals`): the credit lags the
//! order by seconds. A reward granted before credits left the order's
//! transaction keeps its referrer's account in its order's writes
//! ([`written_with_order`]).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};
use cashback_core::ledger::Account;
use cashback_core::order::OrderEvent;
use cashback_core::orders::{OrderRecord, ReferralRecord};
use cashback_core::program::Program;
use cashback_core::referrals::{settle_referral, ReferralCredit, ReferralSettled};

use crate::changes::{Change, ChangeKind};
use crate::store::{
    AccountWrite, AccountsRead, OrderWrite, ReadRequest, Store, StoreError, Versioned, WriteSet,
};

/// A referral credit as stored: what the referred order grants, and what
/// the referrer's account has of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralNote {
    /// What the order's last write granted.
    pub credit: ReferralCredit,
    /// What has been applied to the referrer's account.
    pub settled: ReferralSettled,
}

/// The settled part of a referral credit, written with the referrer's
/// account under the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralSettle {
    /// The referrer.
    pub referrer: CustomerId,
    /// The referred order.
    pub order: OrderId,
    /// What the referrer's account has of the credit after this write.
    pub settled: ReferralSettled,
    /// The settled version read (0 for a credit never settled).
    pub expected_version: u64,
}

/// Whether the order's referral reward was granted before credits left the
/// order's transaction: its referrer's account is then read and written
/// with the order's events, as it was.
pub fn written_with_order(referral: &ReferralRecord) -> bool {
    referral.granted_at.is_none()
}

/// The referral credit an order's write records beside the order (in the
/// same transaction), if its record names a referrer whose account is
/// settled off it. Both adapters write exactly this.
pub fn credit_written(order: &OrderWrite) -> Option<ReferralCredit> {
    order
        .record
        .referral
        .as_ref()
        .filter(|r| !written_with_order(r))?;
    ReferralCredit::of(&order.record)
}

/// How many times a credit is settled again after losing a race (another
/// write to the referrer's account, or to the credit) before the batch
/// fails and the feed delivers it again.
pub const SETTLE_ATTEMPTS: u32 = 5;

/// What settling a batch's referral credits did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Credits the batch named.
    pub credits: usize,
    /// Credits that moved the referrer's account (or were refused) now.
    pub written: usize,
}

/// Brings the referrer's account up to every referral credit a batch of
/// the change feed names, each in its own transaction (the account, its
/// entries and the credit's settled part, under the versions read). A
/// credit already settled writes nothing, so a redelivered batch credits
/// nothing twice.
pub async fn settle_credits(
    store: &dyn Store,
    batch: &[Change],
    now: DateTime<Utc>,
) -> Result<Settled, StoreError> {
    let named: BTreeSet<(ShopId, CustomerId, OrderId)> = batch
        .iter()
        .filter_map(|change| match &change.kind {
            ChangeKind::Referral { order } => {
                Some((change.shop.clone(), change.customer.clone(), order.clone()))
            }
            _ => None,
        })
        .collect();
    let mut outcome = Settled {
        credits: named.len(),
        ..Settled::default()
    };
    let mut programs: HashMap<ShopId, Option<Program>> = HashMap::new();
    for (shop, referrer, order) in named {
        if !programs.contains_key(&shop) {
            let program = store.get_program(&shop).await?.map(|p| p.value);
            programs.insert(shop.clone(), program);
        }
        let Some(Some(program)) = programs.get(&shop) else {
            warn!(shop = %shop, "referral credit of a shop without a program");
            continue;
        };
        if settle_one(store, program, &shop, &referrer, &order, now).await? {
            outcome.written += 1;
        }
    }
    Ok(outcome)
}

async fn settle_one(
    store: &dyn Store,
    program: &Program,
    shop: &ShopId,
    referrer: &CustomerId,
    order: &OrderId,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut read = store
            .read(
                shop,
                &ReadRequest {
                    accounts: vec![referrer.clone()],
                    referral_credits: vec![(referrer.clone(), order.clone())],
                    ..ReadRequest::default()
                },
            )
            .await?;
        let Some(note) = read
            .referral_credits
            .remove(&(referrer.clone(), order.clone()))
        else {
            return Ok(false);
        };
        let Some(account) = read.accounts.remove(referrer) else {
            warn!(shop = %shop, order = %order, "referral credit of a referrer without an account");
            return Ok(false);
        };
        let mut after: Versioned<Account> = account.clone();
        let key = format!("order:{order}:referral-credit:{}", note.version + 1);
        let (settled, applied) = match settle_referral(
            program,
            &mut after.value,
            &note.value.credit,
            &note.value.settled,
            &key,
            now,
        ) {
            Ok(done) => done,
            Err(error) => {
                // A rule refused (a currency mismatch): nothing to retry.
                warn!(shop = %shop, order = %order, %error, "referral credit cannot be settled");
                return Ok(false);
            }
        };
        if settled == note.value.settled {
            return Ok(false);
        }
        let writes = WriteSet {
            accounts: vec![AccountWrite::of(program, after).with_entries(applied.entries)],
            accounts_read: AccountsRead::one(&account),
            referral_settled: Some(ReferralSettle {
                referrer: referrer.clone(),
                order: order.clone(),
                settled: settled.clone(),
                expected_version: note.version,
            }),
            now: Some(now),
            ..WriteSet::default()
        };
        match store.write(shop, writes).await {
            Ok(_) => {
                info!(shop = %shop, order = %order, state = ?settled.state, "referral credit settled");
                return Ok(true);
            }
            Err(error) if error.is_retryable() && attempt < SETTLE_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
}

/// The referral code an earning event carries, to resolve in the event's
/// read. None when the program pays no referrals.
pub fn referral_code(program: &Program, event: &OrderEvent) -> Option<Code> {
    match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) if program.referral.is_some() => {
            order.referral_code.clone()
        }
        _ => None,
    }
}

/// The referrer whose account this event needs: the owner of the order's
/// referral code, when the order may still be its buyer's first earning
/// one. The core decides whether it pays.
pub fn referrer_named(
    program: &Program,
    event: &OrderEvent,
    record: &OrderRecord,
    buyer: Option<&Versioned<Account>>,
    owners: &HashMap<Code, CustomerId>,
) -> Option<CustomerId> {
    let code = referral_code(program, event)?;
    let first_order =
        record.earned.is_none() && buyer.is_none_or(|account| account.value.orders_earned == 0);
    if !first_order {
        return None;
    }
    owners.get(&code).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::{LineId, OrderId, ShopId};
    use cashback_core::money::{Currency, Money};
    use cashback_core::order::{AppliedCode, CustomerRef, DiscountKind, Order};
    use cashback_core::program::ReferralReward;
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn code(text: &str) -> Code {
        Code::parse(text).unwrap()
    }

    fn paying() -> Program {
        let mut program = Program::new(Currency::USD);
        program.referral = Some(ReferralReward::Fixed { amount: dec!(5) });
        program
    }

    fn order(referral: Option<&str>, discounts: &[&str]) -> Order {
        Order {
            order_id: OrderId::parse("1001").unwrap(),
            customer: CustomerRef {
                id: Some(CustomerId::parse("buyer").unwrap()),
                email: None,
            },
            currency: Currency::USD,
            lines: vec![cashback_core::order::Line {
                line_id: LineId::parse("l1").unwrap(),
                product_id: None,
                variant_id: None,
                sku: None,
                vendor: None,
                quantity: 1,
                unit_price: usd("100.00"),
                discount: usd("0"),
                included_tax: None,
                gift_card: false,
                compare_at_price: None,
                collection_ids: Vec::new(),
            }],
            subtotal: usd("100.00"),
            shipping: usd("0"),
            total: usd("100.00"),
            discount_codes: discounts
                .iter()
                .map(|c| AppliedCode {
                    code: code(c),
                    amount: usd("5.00"),
                    kind: DiscountKind::Order,
                })
                .collect(),
            checkout_id: None,
            payment_methods: Vec::new(),
            placed_at: None,
            referral_code: referral.map(code),
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
        }
    }

    #[test]
    fn only_the_referral_attribute_is_resolved_and_only_when_referrals_pay() {
        let event = OrderEvent::Paid(order(Some("REF-ANA"), &["CB-ANA", "SUMMER"]));
        assert_eq!(referral_code(&Program::new(Currency::USD), &event), None);
        assert_eq!(referral_code(&paying(), &event), Some(code("REF-ANA")));
        let discount_only = OrderEvent::Paid(order(None, &["CB-ANA"]));
        assert_eq!(referral_code(&paying(), &discount_only), None);
        let cancelled = OrderEvent::Cancelled(order(Some("REF-ANA"), &[]));
        assert_eq!(referral_code(&paying(), &cancelled), None);
    }

    #[test]
    fn a_referrer_is_named_only_by_the_referral_index_on_a_possible_first_order() {
        let ana = CustomerId::parse("ana").unwrap();
        let owners: HashMap<Code, CustomerId> = [(code("REF-ANA"), ana.clone())].into();
        let event = OrderEvent::Paid(order(Some("REF-ANA"), &[]));
        let record = OrderRecord::new(OrderId::parse("1001").unwrap(), Currency::USD);
        assert_eq!(
            referrer_named(&paying(), &event, &record, None, &owners),
            Some(ana)
        );
        let mut buyer = Account::open(
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse("buyer").unwrap(),
            Currency::USD,
        );
        buyer.orders_earned = 1;
        let returning = Versioned::new(buyer);
        assert_eq!(
            referrer_named(&paying(), &event, &record, Some(&returning), &owners),
            None
        );
        // A balance code in the attribute is not in the referral index.
        let balance = OrderEvent::Paid(order(Some("CB-ANA"), &[]));
        assert_eq!(
            referrer_named(&paying(), &balance, &record, None, &owners),
            None
        );
    }
}
