//! The Store conformance suite: every case runs, unchanged, against every
//! adapter. A case takes a fresh, empty store.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use rust_decimal_macros::dec;

use cashback_app::store::*;
use cashback_core::coupon::{CashbackCoupon, CouponReward, CouponStatus, Stacking};
use cashback_core::ids::*;
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::Currency;
use cashback_core::order::{CustomerRef, Line, Order, OrderEvent};
use cashback_core::orders::{apply_order_event, release_pending, EventContext, OrderRecord};
use cashback_core::program::{Issuance, Program};

pub use cashback_test_support::fixtures::{customer, shop, t0, usd};

mod coupon_shards;
mod coupon_uses;
mod referrals;
pub use coupon_shards::*;
pub use coupon_uses::*;
pub use referrals::*;

/// The base program with balances expiring after a year.
pub fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.expiry_days = Some(365);
    program
}

fn new_account(id: &str) -> Account {
    let mut account = Account::open(shop(), customer(id), Currency::USD);
    account.email = Some(Email::parse(&format!("{id}@example.com")).unwrap());
    account
}

/// An account credited with `amount` by a merchant adjustment.
async fn seeded(store: &dyn Store, id: &str, amount: &str) -> Versioned<Account> {
    let mut account = new_account(id);
    let applied = account
        .adjust(usd(amount), "seed", &format!("seed-{id}"), &program(), t0())
        .unwrap();
    let outcome = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
    read_account(store, id).await.unwrap()
}

pub async fn read_account(store: &dyn Store, id: &str) -> Option<Versioned<Account>> {
    let result = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![customer(id)],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    result.accounts.get(&customer(id)).cloned()
}

pub async fn all_entries(store: &dyn Store, id: &str) -> Vec<LedgerEntry> {
    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .ledger(&shop(), &customer(id), cursor, 3)
            .await
            .unwrap();
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return entries,
        }
    }
}

fn line(id: &str, price: &str, quantity: u32) -> Line {
    Line {
        line_id: LineId::parse(id).unwrap(),
        product_id: None,
        variant_id: None,
        sku: None,
        vendor: None,
        quantity,
        unit_price: usd(price),
        discount: usd("0"),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    }
}

pub(crate) fn paid(
    order_id: &str,
    customer_id: &str,
    price: &str,
    at: DateTime<Utc>,
) -> OrderEvent {
    OrderEvent::Paid(Order {
        order_id: OrderId::parse(order_id).unwrap(),
        customer: CustomerRef {
            id: Some(customer(customer_id)),
            email: None,
        },
        currency: Currency::USD,
        lines: vec![line("1", price, 1)],
        subtotal: usd(price),
        shipping: usd("0"),
        total: usd(price),
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: at,
    })
}

/// Applies an event through the store the way a use case does: one read,
/// the core's decision, one write.
pub(crate) async fn apply_through(
    store: &dyn Store,
    event: &OrderEvent,
    customer_id: &str,
    program: &Program,
    now: DateTime<Utc>,
) -> WriteOutcome {
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(event.order_id().clone()),
                accounts: vec![customer(customer_id)],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut order = read.order.unwrap_or_else(|| {
        Versioned::new(OrderRecord::new(event.order_id().clone(), Currency::USD))
    });
    let mut account = read
        .accounts
        .get(&customer(customer_id))
        .cloned()
        .unwrap_or_else(|| Versioned::new(new_account(customer_id)));
    let ctx = EventContext {
        program,
        now,
        coupons: &[],
    };
    let applied =
        apply_order_event(&ctx, Some(&mut account.value), &mut order.value, event).unwrap();
    store
        .write(
            &shop(),
            WriteSet {
                guard: Some(Guard {
                    key: event.effect_key(),
                    expires_at: now + Duration::days(30),
                    response: None,
                }),
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: order.value,
                    expected_version: order.version,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap()
}

// ---------------------------------------------------------------- cases

pub async fn reading_what_was_never_written_finds_nothing(store: &dyn Store) {
    let result = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("nope").unwrap()),
                accounts: vec![customer("nobody")],
                coupons: vec![Code::parse("none").unwrap()],
                code_owners: vec![Code::parse("none").unwrap()],
                referral_owners: vec![Code::parse("none").unwrap()],
                email_owners: vec![Email::parse("x@example.com").unwrap()],
                coupon_uses: vec![(
                    Code::parse("none").unwrap(),
                    UsageKey::Customer(customer("nobody")),
                )],
                products: vec![ProductId::parse("none").unwrap()],
                counters: vec!["never-counted".into()],
                referral_credits: vec![(customer("nobody"), OrderId::parse("nope").unwrap())],
                coupon_order_uses: vec![(
                    Code::parse("none").unwrap(),
                    OrderId::parse("nope").unwrap(),
                )],
                coupon_shards: vec![(Code::parse("none").unwrap(), 3)],
            },
        )
        .await
        .unwrap();
    assert_eq!(result.counters["never-counted"], 0);
    assert_eq!(
        result.coupon_shards[&(Code::parse("none").unwrap(), 3)],
        Default::default()
    );
    assert!(result.order.is_none() && result.accounts.is_empty() && result.coupons.is_empty());
    assert!(result.code_owners.is_empty() && result.email_owners.is_empty());
    assert!(result.referral_owners.is_empty() && result.products.is_empty());
    assert_eq!(result.coupon_uses.values().copied().sum::<u32>(), 0);
    assert!(store.get_shop(&shop()).await.unwrap().is_none());
    assert!(store.get_program(&shop()).await.unwrap().is_none());
}

pub async fn an_account_round_trips_with_its_balances_and_version(store: &dyn Store) {
    let account = seeded(store, "ann", "12.34").await;
    assert_eq!(account.version, 1);
    assert_eq!(account.value.available, usd("12.34"));
    assert_eq!(account.value.lots.len(), 1);
    assert_eq!(
        account.value.email,
        Some(Email::parse("ann@example.com").unwrap())
    );
    let entries = all_entries(store, "ann").await;
    assert_eq!(entries.len(), 1);
    account.value.check(&entries).unwrap();
    // Debt a payment on the platform left reads back too.
    let mut spent = account.value.clone();
    let order = OrderId::parse("7").unwrap();
    let (applied, _) = spent
        .spend_on_platform(usd("20.00"), Some(&order), "spent", "s1", t0())
        .unwrap();
    assert!(spent.debt.is_positive());
    let written = WriteSet {
        accounts: vec![
            AccountWrite::new(&program(), spent.clone(), 1).with_entries(applied.entries)
        ],
        ..WriteSet::default()
    };
    store.write(&shop(), written).await.unwrap();
    let read = read_account(store, "ann").await.unwrap();
    assert_eq!(read.value, spent);
}

pub async fn a_stale_version_is_a_conflict_and_writes_nothing(store: &dyn Store) {
    let account = seeded(store, "ann", "10.00").await;
    let mut first = account.value.clone();
    let applied = first
        .adjust(usd("1.00"), "a", "a", &program(), t0())
        .unwrap();
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: first,
                    expected_version: 1,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    // A second writer still holding version 1: refused, and its order and entries are not written either.
    let mut second = account.value.clone();
    let applied = second
        .adjust(usd("5.00"), "b", "b", &program(), t0())
        .unwrap();
    let error = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: second,
                    expected_version: 1,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: OrderRecord::new(OrderId::parse("o-1").unwrap(), Currency::USD),
                    expected_version: 0,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                guard: Some(Guard {
                    key: "g-1".into(),
                    expires_at: t0(),
                    response: None,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error:?}");
    let after = read_account(store, "ann").await.unwrap();
    assert_eq!(after.value.available, usd("11.00"));
    assert_eq!(after.version, 2);
    assert_eq!(all_entries(store, "ann").await.len(), 2);
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o-1").unwrap()),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(read.order.is_none(), "half a write must never land");
    // The guard was not written either: the same guard now commits.
    let outcome = store
        .write(
            &shop(),
            WriteSet {
                guard: Some(Guard {
                    key: "g-1".into(),
                    expires_at: t0(),
                    response: None,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

pub async fn creating_an_account_that_exists_is_a_conflict(store: &dyn Store) {
    seeded(store, "ann", "1.00").await;
    let account = new_account("ann");
    let error = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries: vec![],
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(error.is_conflict());
    assert_eq!(
        read_account(store, "ann").await.unwrap().value.available,
        usd("1.00")
    );
}

pub async fn a_negative_balance_is_refused_by_the_store_itself(store: &dyn Store) {
    let account = seeded(store, "ann", "5.00").await;
    // A buggy decision that overdraws: the store must refuse it.
    let mut overdrawn = account.value.clone();
    overdrawn.available = usd("-1.00");
    overdrawn.lots.clear();
    let entry = LedgerEntry {
        entry_id: "bug:0".into(),
        at: t0(),
        kind: cashback_core::ledger::EntryKind::Adjust,
        order_id: None,
        available_delta: usd("-6.00"),
        pending_delta: usd("0"),
        debt_delta: usd("0"),
        funding: None,
        note: None,
    };
    let error = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: overdrawn,
                    expected_version: account.version,
                    entries: vec![entry],
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::BalanceCondition(_)),
        "{error:?}"
    );
    assert_eq!(
        read_account(store, "ann").await.unwrap().value.available,
        usd("5.00")
    );
    assert_eq!(all_entries(store, "ann").await.len(), 1);
}

pub async fn a_guard_lets_a_write_happen_once_and_returns_the_first_response(store: &dyn Store) {
    let guard = |response: &str| Guard {
        key: "adjust:idem-1".into(),
        expires_at: t0() + Duration::days(1),
        response: Some(response.into()),
    };
    let mut account = new_account("ann");
    let applied = account
        .adjust(usd("3.00"), "goodwill", "idem-1", &program(), t0())
        .unwrap();
    let first = store
        .write(
            &shop(),
            WriteSet {
                guard: Some(guard("first")),
                accounts: vec![AccountWrite {
                    account: account.clone(),
                    expected_version: 0,
                    entries: applied.entries.clone(),
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first, WriteOutcome::Committed);
    let second = store
        .write(
            &shop(),
            WriteSet {
                guard: Some(guard("second")),
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 1,
                    entries: vec![],
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        WriteOutcome::Duplicate {
            response: Some("first".into())
        }
    );
    assert_eq!(read_account(store, "ann").await.unwrap().version, 1);
}

pub async fn a_notification_is_recorded_once(store: &dyn Store) {
    let writes = || WriteSet {
        notifications: vec!["ready:ann:o-1".into()],
        ..WriteSet::default()
    };
    assert_eq!(
        store.write(&shop(), writes()).await.unwrap(),
        WriteOutcome::Committed
    );
    assert_eq!(
        store.write(&shop(), writes()).await.unwrap(),
        WriteOutcome::Duplicate { response: None }
    );
}

async fn order_version(store: &dyn Store, order: &OrderId) -> Option<u64> {
    store
        .read(&shop(), &ReadRequest::order(order.clone()))
        .await
        .unwrap()
        .order
        .map(|o| o.version)
}

async fn email_owner(store: &dyn Store, email: &Email) -> Option<CustomerId> {
    store
        .read(&shop(), &ReadRequest::email_owner(email))
        .await
        .unwrap()
        .email_owners
        .get(email)
        .cloned()
}

/// An order's own emails are recorded with the order (the DynamoDB
/// adapter marks them on the order item): a write repeating one is a
/// duplicate that changes nothing, another key still commits.
pub async fn an_orders_email_is_recorded_once_with_the_order(store: &dyn Store) {
    let order_id = OrderId::parse("o-1").unwrap();
    let write = |version: u64, key: &str| WriteSet {
        order: Some(OrderWrite {
            record: OrderRecord::new(order_id.clone(), Currency::USD),
            expected_version: version,
            lines_stored: false,
            refunds_stored: 0,
        }),
        notifications: vec![key.to_string()],
        ..WriteSet::default()
    };
    assert_eq!(
        store
            .write(&shop(), write(0, "earned:ann:o-1"))
            .await
            .unwrap(),
        WriteOutcome::Committed
    );
    assert_eq!(
        store
            .write(&shop(), write(1, "earned:ann:o-1"))
            .await
            .unwrap(),
        WriteOutcome::Duplicate { response: None }
    );
    assert_eq!(
        order_version(store, &order_id).await,
        Some(1),
        "nothing written"
    );
    assert_eq!(
        store
            .write(&shop(), write(1, "clawback:ann:o-1:1.00"))
            .await
            .unwrap(),
        WriteOutcome::Committed
    );
    assert_eq!(order_version(store, &order_id).await, Some(2));
}

/// An address belongs to the account that last took it: an account
/// written again with the email it was read with does not take it back.
pub async fn an_email_owner_moves_only_when_an_account_takes_the_address(store: &dyn Store) {
    let email = Email::parse("shared@example.com").unwrap();
    let mut ann = new_account("ann");
    ann.email = Some(email.clone());
    store
        .write(
            &shop(),
            WriteSet::account(AccountWrite::new(&program(), ann, 0)),
        )
        .await
        .unwrap();
    assert_eq!(email_owner(store, &email).await, Some(customer("ann")));
    let mut bob = new_account("bob");
    bob.email = Some(email.clone());
    store
        .write(
            &shop(),
            WriteSet::account(AccountWrite::new(&program(), bob, 0)),
        )
        .await
        .unwrap();
    assert_eq!(
        email_owner(store, &email).await,
        Some(customer("bob")),
        "bob took it"
    );
    // Ann written again, her email as read: bob keeps the address.
    let read = read_account(store, "ann").await.unwrap();
    let mut again = WriteSet::account(AccountWrite::of(&program(), read.clone()));
    again.accounts_read = AccountsRead::one(&read);
    store.write(&shop(), again).await.unwrap();
    assert_eq!(email_owner(store, &email).await, Some(customer("bob")));
    // Ann given the address again (read with another): she takes it back.
    let mut read = read_account(store, "ann").await.unwrap();
    let before = {
        let mut before = read.clone();
        before.value.email = Some(Email::parse("ann@example.com").unwrap());
        before
    };
    read.value.email = Some(email.clone());
    let mut taken = WriteSet::account(AccountWrite::of(&program(), read));
    taken.accounts_read = AccountsRead::one(&before);
    store.write(&shop(), taken).await.unwrap();
    assert_eq!(email_owner(store, &email).await, Some(customer("ann")));
}

pub async fn the_ledger_pages_newest_first_to_the_end(store: &dyn Store) {
    let mut account = seeded(store, "ann", "1.00").await;
    for n in 1..=7 {
        let mut next = account.value.clone();
        let applied = next
            .adjust(
                usd("1.00"),
                "credit",
                &format!("k{n}"),
                &program(),
                t0() + Duration::minutes(n),
            )
            .unwrap();
        store
            .write(
                &shop(),
                WriteSet {
                    accounts: vec![AccountWrite {
                        account: next,
                        expected_version: account.version,
                        entries: applied.entries,
                        reminder_due_at: None,
                        code_change: None,
                    }],
                    ..WriteSet::default()
                },
            )
            .await
            .unwrap();
        account = read_account(store, "ann").await.unwrap();
    }
    let entries = all_entries(store, "ann").await;
    assert_eq!(entries.len(), 8);
    assert!(
        entries.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first"
    );
    assert_eq!(account.value.available, usd("8.00"));
    account.value.check(&entries).unwrap();
}

pub async fn a_code_belongs_to_one_account_and_stays_its_owners_when_regenerated(
    store: &dyn Store,
) {
    let claim =
        |_: &str, new: &str, old: Option<&str>, version: u64, account: Account| AccountWrite {
            account,
            expected_version: version,
            entries: vec![],
            reminder_due_at: None,
            code_change: Some(CodeChange {
                new_code: Code::parse(new).unwrap(),
                old_code: old.map(|o| Code::parse(o).unwrap()),
                referral_code: None,
            }),
        };
    let mut ann = new_account("ann");
    ann.code = Some(Code::parse("CB-AAAA").unwrap());
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![claim("ann", "CB-AAAA", None, 0, ann.clone())],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    let mut bob = new_account("bob");
    bob.code = Some(Code::parse("CB-AAAA").unwrap());
    let taken = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![claim("bob", "cb-aaaa", None, 0, bob)],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::CodeTaken), "{taken:?}");
    assert!(read_account(store, "bob").await.is_none());
    let owners = |codes: &[&str]| ReadRequest {
        code_owners: codes.iter().map(|c| Code::parse(c).unwrap()).collect(),
        ..ReadRequest::default()
    };
    let read = store.read(&shop(), &owners(&["cb-aaaa"])).await.unwrap();
    assert_eq!(
        read.code_owners.get(&Code::parse("CB-AAAA").unwrap()),
        Some(&customer("ann"))
    );
    // Regenerating gives Ann a new code; the old one stays hers in the
    // index (an order placed with it is still charged to her) and nobody
    // else can claim it. The account names the current one.
    ann.code = Some(Code::parse("CB-BBBB").unwrap());
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![claim("ann", "CB-BBBB", Some("CB-AAAA"), 1, ann.clone())],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    let read = store
        .read(&shop(), &owners(&["cb-aaaa", "cb-bbbb"]))
        .await
        .unwrap();
    assert_eq!(read.code_owners.len(), 2);
    assert!(read.code_owners.values().all(|o| o == &customer("ann")));
    let mut carl = new_account("carl");
    carl.code = Some(Code::parse("CB-AAAA").unwrap());
    let taken = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![claim("carl", "cb-aaaa", None, 0, carl)],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::CodeTaken), "{taken:?}");
    // A referral code has its own index: it resolves there only, and a
    // balance code never resolves as one.
    let referral = |customer: &str, code: &str, version: u64, account: Account| {
        let mut write = claim(customer, "CB-BBBB", None, version, account);
        if let Some(change) = write.code_change.as_mut() {
            change.new_code = write.account.code.clone().unwrap();
            change.referral_code = Some(Code::parse(code).unwrap());
        }
        write
    };
    ann.referral_code = Some(Code::parse("REF-AAAA").unwrap());
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![referral("ann", "REF-AAAA", 2, ann.clone())],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                referral_owners: vec![
                    Code::parse("ref-aaaa").unwrap(),
                    Code::parse("cb-bbbb").unwrap(),
                ],
                code_owners: vec![Code::parse("ref-aaaa").unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.referral_owners.len(), 1);
    assert_eq!(
        read.referral_owners.get(&Code::parse("REF-AAAA").unwrap()),
        Some(&customer("ann"))
    );
    assert!(read.code_owners.is_empty());
    let mut dan = new_account("dan");
    dan.code = Some(Code::parse("CB-DDDD").unwrap());
    let taken = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![referral("dan", "ref-aaaa", 0, dan)],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::CodeTaken), "{taken:?}");
    assert!(read_account(store, "dan").await.is_none());
    let email = Email::parse("ann@example.com").unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                email_owners: vec![email.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.email_owners.get(&email), Some(&customer("ann")));
}

pub(crate) fn coupon(code: &str, total: Option<u32>, per_customer: Option<u32>) -> CouponRecord {
    CouponRecord {
        coupon: CashbackCoupon {
            code: Code::parse(code).unwrap(),
            display_name: "Back 10".into(),
            description: String::new(),
            offer_text: String::new(),
            reward: CouponReward::Percentage {
                percent: dec!(10),
                max_cashback: dec!(0),
            },
            min_cart_value: dec!(0),
            usage_limit_total: total,
            usage_limit_per_customer: per_customer,
            payment_methods: vec![],
            starts_at: None,
            ends_at: None,
            status: CouponStatus::Approved,
            stacking: Stacking::Exclusive,
        },
        uses: 0,
        created_at: t0(),
        updated_at: t0(),
    }
}

pub async fn coupons_are_unique_versioned_and_listed_in_pages(store: &dyn Store) {
    for code in ["alpha", "bravo", "charlie", "delta", "echo"] {
        assert_eq!(
            store
                .put_coupon(&shop(), &coupon(code, None, None), 0)
                .await
                .unwrap(),
            1
        );
    }
    let again = store
        .put_coupon(&shop(), &coupon("ALPHA", None, None), 0)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists(_)), "{again:?}");
    let mut paused = coupon("alpha", None, None);
    paused.coupon.status = CouponStatus::Paused;
    assert_eq!(store.put_coupon(&shop(), &paused, 1).await.unwrap(), 2);
    assert!(store
        .put_coupon(&shop(), &paused, 1)
        .await
        .unwrap_err()
        .is_conflict());
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_coupons(&shop(), cursor, 2).await.unwrap();
        listed.extend(
            page.items
                .into_iter()
                .map(|c| c.value.coupon.code.as_str().to_string()),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupons: vec![Code::parse("Alpha").unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        read.coupons[&Code::parse("alpha").unwrap()]
            .value
            .coupon
            .status,
        CouponStatus::Paused
    );
}

pub async fn coupon_use_limits_are_enforced_by_the_store_and_uses_come_back(store: &dyn Store) {
    store
        .put_coupon(&shop(), &coupon("once", Some(2), Some(1)), 0)
        .await
        .unwrap();
    let code = Code::parse("once").unwrap();
    let use_by = |id: &str, email: &str, delta: i32| WriteSet {
        coupon_uses: vec![CouponUseChange {
            code: code.clone(),
            customer: customer(id),
            email: Some(Email::parse(email).unwrap()),
            delta,
            limit_total: Some(2),
            limit_per_customer: Some(1),
            order: None,
            shard: None,
        }],
        ..WriteSet::default()
    };
    store
        .write(&shop(), use_by("ann", "ann@example.com", 1))
        .await
        .unwrap();
    // Same person under a new account id but the same email: refused.
    let again = store
        .write(&shop(), use_by("ann-2", "ANN@example.com", 1))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::CouponLimit(_)), "{again:?}");
    store
        .write(&shop(), use_by("bob", "bob@example.com", 1))
        .await
        .unwrap();
    let third = store
        .write(&shop(), use_by("cy", "cy@example.com", 1))
        .await
        .unwrap_err();
    assert!(matches!(third, StoreError::CouponLimit(_)));
    // A cancelled order gives its use back.
    store
        .write(&shop(), use_by("bob", "bob@example.com", -1))
        .await
        .unwrap();
    store
        .write(&shop(), use_by("cy", "cy@example.com", 1))
        .await
        .unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupons: vec![code.clone()],
                coupon_uses: vec![
                    (code.clone(), UsageKey::Customer(customer("ann"))),
                    (
                        code.clone(),
                        UsageKey::Email(Email::parse("ann@example.com").unwrap()),
                    ),
                    (code.clone(), UsageKey::Customer(customer("bob"))),
                ],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.coupons[&code].value.uses, 2);
    assert_eq!(
        read.coupon_uses[&(code.clone(), UsageKey::Customer(customer("ann")))],
        1
    );
    assert_eq!(
        read.coupon_uses[&(
            code.clone(),
            UsageKey::Email(Email::parse("ann@example.com").unwrap())
        )],
        1
    );
    assert_eq!(
        read.coupon_uses[&(code.clone(), UsageKey::Customer(customer("bob")))],
        0
    );
    // Editing the coupon never resets its count.
    store
        .put_coupon(&shop(), &coupon("once", Some(5), Some(1)), 1)
        .await
        .unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupons: vec![code.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.coupons[&code].value.uses, 2);
}

pub async fn shops_and_programs_with_kept_versions(store: &dyn Store) {
    let demo = Shop {
        shop: shop(),
        platform: Platform::Shopify,
        currency: Currency::USD,
        name: "Demo".into(),
        webhook_secret_ref: "env:DEMO_SECRET".into(),
        api_key_hash: "00".repeat(32),
        created_at: t0(),
        guest_id_key: None,
    };
    store.create_shop(&demo).await.unwrap();
    assert!(matches!(
        store.create_shop(&demo).await.unwrap_err(),
        StoreError::AlreadyExists(_)
    ));
    assert_eq!(store.get_shop(&shop()).await.unwrap(), Some(demo));
    let first = program();
    assert_eq!(
        store.put_program(&shop(), &first, 0, t0()).await.unwrap(),
        1
    );
    let mut second = program();
    second.earning.merchant_percent = dec!(7);
    assert!(store
        .put_program(&shop(), &second, 0, t0())
        .await
        .unwrap_err()
        .is_conflict());
    assert_eq!(
        store.put_program(&shop(), &second, 1, t0()).await.unwrap(),
        2
    );
    let current = store.get_program(&shop()).await.unwrap().unwrap();
    assert_eq!(
        (current.version, current.value.earning.merchant_percent),
        (2, dec!(7))
    );
    assert_eq!(
        store.get_program_version(&shop(), 1).await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store.get_program_version(&shop(), 2).await.unwrap(),
        Some(second)
    );
    assert_eq!(store.get_program_version(&shop(), 3).await.unwrap(), None);
}

async fn due_everywhere(
    store: &dyn Store,
    kind: DueKind,
    from: DateTime<Utc>,
    up_to: DateTime<Utc>,
) -> Vec<DueRef> {
    let mut found = Vec::new();
    let mut hour = from;
    while hour <= up_to {
        for shard in 0..DUE_SHARDS {
            let mut cursor = None;
            loop {
                let page = store
                    .due(kind, &due_bucket(hour), shard, up_to, cursor, 2)
                    .await
                    .unwrap();
                found.extend(page.items);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        hour += Duration::hours(1);
    }
    found
}

pub async fn pending_orders_are_due_for_release_until_released(store: &dyn Store) {
    let mut program = program();
    program.issuance = Issuance::Pending { days: 0 };
    for (n, id) in ["ann", "bob", "cy", "dee", "eve"].iter().enumerate() {
        let at = t0() + Duration::minutes(10 * n as i64);
        assert_eq!(
            apply_through(
                store,
                &paid(&format!("o-{n}"), id, "100.00", at),
                id,
                &program,
                at
            )
            .await,
            WriteOutcome::Committed
        );
    }
    let due = due_everywhere(store, DueKind::Release, t0(), t0() + Duration::minutes(25)).await;
    let mut orders: Vec<String> = due
        .iter()
        .filter_map(|d| d.order.as_ref().map(|o| o.to_string()))
        .collect();
    orders.sort();
    assert_eq!(orders, ["o-0", "o-1", "o-2"], "only what is due by then");
    assert!(due.iter().all(|d| d.shop == shop() && d.customer.is_some()));
    // Release o-0: it leaves the index.
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o-0").unwrap()),
                accounts: vec![customer("ann")],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut order = read.order.unwrap();
    let mut account = read.accounts[&customer("ann")].clone();
    let applied = release_pending(
        &program,
        &mut account.value,
        &mut order.value,
        t0() + Duration::hours(1),
    )
    .unwrap();
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries: applied.entries,
                    reminder_due_at: Some(t0() + Duration::days(3)),
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: order.value,
                    expected_version: order.version,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    let due = due_everywhere(store, DueKind::Release, t0(), t0() + Duration::hours(2)).await;
    assert_eq!(due.len(), 4);
    assert!(due
        .iter()
        .all(|d| d.order.as_ref().map(|o| o.as_str()) != Some("o-0")));
    let reminders = due_everywhere(
        store,
        DueKind::Reminder,
        t0() + Duration::days(3),
        t0() + Duration::days(3),
    )
    .await;
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0].customer, Some(customer("ann")));
    // Its released balance expires in a year, at the end of that UTC day:
    // the account is in the expiry index then.
    let expiry_at =
        cashback_core::ledger::Lot::expiry(&program, t0() + Duration::hours(1)).unwrap();
    assert!(expiry_at >= t0() + Duration::hours(1) + Duration::days(365));
    let expiring = due_everywhere(store, DueKind::Expiry, expiry_at, expiry_at).await;
    assert_eq!(expiring.len(), 1);
}

/// An account's next bonus sits in the bonus index at the time the core
/// set on it, moves with each write, and a bonus entry reads back as one.
pub async fn an_accounts_next_bonus_is_in_the_bonus_index_and_moves_with_it(store: &dyn Store) {
    use cashback_core::bonuses::{take_due, Birthday, BirthdayBonus, BirthdaySource, Bonuses};
    let mut program = program();
    program.bonuses = Bonuses {
        birthday: Some(BirthdayBonus {
            amount: dec!(5),
            issuance: Issuance::Immediate,
            days_before: 0,
        }),
        ..Bonuses::default()
    };
    let seeded = seeded(store, "ann", "10.00").await;
    let mut account = seeded.value;
    let birthday = Birthday::new(t0().format("%m").to_string().parse().unwrap(), 28).unwrap();
    account
        .bonus
        .set_birthday(birthday, BirthdaySource::Merchant, &program.bonuses, t0())
        .unwrap();
    let due_at = account.bonus.due_at.unwrap();
    store
        .write(
            &shop(),
            WriteSet::account(AccountWrite::new(&program, account, seeded.version)),
        )
        .await
        .unwrap();
    let due = due_everywhere(store, DueKind::Bonus, due_at, due_at).await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].customer, Some(customer("ann")));
    assert_eq!(due[0].due_at, due_at);
    assert!(due_everywhere(store, DueKind::Reminder, due_at, due_at)
        .await
        .is_empty());

    // The job's decision: credited, and the account moves a year on.
    let read = read_account(store, "ann").await.unwrap();
    let mut account = read.value;
    let spend = account.lifetime_eligible_spend.amount();
    let bonuses = take_due(&program.bonuses, &mut account.bonus, spend, due_at);
    assert_eq!(bonuses.len(), 1);
    let applied = account
        .credit_bonus(
            bonuses[0].kind,
            &bonuses[0].key,
            usd("5.00"),
            &program,
            due_at,
        )
        .unwrap();
    let next = account.bonus.due_at.unwrap();
    assert!(next > due_at + Duration::days(300));
    store
        .write(
            &shop(),
            WriteSet::account(
                AccountWrite::new(&program, account, read.version).with_entries(applied.entries),
            ),
        )
        .await
        .unwrap();
    assert!(due_everywhere(store, DueKind::Bonus, due_at, due_at)
        .await
        .is_empty());
    assert_eq!(
        due_everywhere(store, DueKind::Bonus, next, next)
            .await
            .len(),
        1
    );
    let account = read_account(store, "ann").await.unwrap().value;
    assert_eq!(account.available, usd("15.00"));
    assert_eq!(account.bonus.birthday, Some(birthday));
    let entries = all_entries(store, "ann").await;
    assert!(entries
        .iter()
        .any(|e| e.kind == cashback_core::ledger::EntryKind::Bonus
            && e.available_delta == usd("5.00")));
    account.check(&entries).unwrap();
}

pub async fn checkpoints_only_move_forward(store: &dyn Store) {
    assert_eq!(store.get_checkpoint("promote").await.unwrap(), None);
    store
        .put_checkpoint("promote", "2026-11-23T10")
        .await
        .unwrap();
    store
        .put_checkpoint("promote", "2026-11-23T09")
        .await
        .unwrap();
    assert_eq!(
        store.get_checkpoint("promote").await.unwrap().as_deref(),
        Some("2026-11-23T10")
    );
    store
        .put_checkpoint("promote", "2026-11-23T11")
        .await
        .unwrap();
    assert_eq!(
        store.get_checkpoint("promote").await.unwrap().as_deref(),
        Some("2026-11-23T11")
    );
}

pub async fn counters_count_up(store: &dyn Store) {
    for expected in 1..=3 {
        assert_eq!(
            store
                .increment_counter("unknown-code:1.2.3.4:w1", t0())
                .await
                .unwrap(),
            expected
        );
    }
    assert_eq!(
        store
            .increment_counter("unknown-code:other:w1", t0())
            .await
            .unwrap(),
        1
    );
}

pub async fn an_order_history_through_the_store_keeps_every_invariant(store: &dyn Store) {
    let program = program();
    let events = [
        paid("o-1", "ann", "120.00", t0()),
        cashback_core::order::OrderEvent::Refunded(cashback_core::order::Refund {
            refund_id: RefundId::parse("r-1").unwrap(),
            order_id: OrderId::parse("o-1").unwrap(),
            basis: cashback_core::order::RefundBasis::Amount {
                amount: usd("30.00"),
            },
            occurred_at: t0(),
        }),
        paid("o-2", "ann", "50.00", t0()),
    ];
    for event in &events {
        assert_eq!(
            apply_through(store, event, "ann", &program, t0()).await,
            WriteOutcome::Committed
        );
        // A retried delivery is a duplicate at the store.
        assert!(matches!(
            apply_through(store, event, "ann", &program, t0()).await,
            WriteOutcome::Duplicate { .. }
        ));
    }
    let account = read_account(store, "ann").await.unwrap();
    let entries = all_entries(store, "ann").await;
    account.value.check(&entries).unwrap();
    assert_eq!(account.value.pending, usd("14.00"), "12.00 - 3.00 + 5.00");
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o-1").unwrap()),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.order.unwrap().value.pending, usd("9.00"));
}

pub async fn reads_and_writes_are_one_round_trip_each(store: &dyn Store) {
    let before = store.request_counts();
    store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o").unwrap()),
                accounts: vec![customer("a"), customer("b")],
                coupons: vec![Code::parse("c").unwrap()],
                code_owners: vec![Code::parse("d").unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut account = new_account("a");
    let applied = account
        .adjust(usd("1.00"), "x", "x", &program(), t0())
        .unwrap();
    store
        .write(
            &shop(),
            WriteSet {
                guard: Some(Guard {
                    key: "k".into(),
                    expires_at: t0(),
                    response: None,
                }),
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: OrderRecord::new(OrderId::parse("o").unwrap(), Currency::USD),
                    expected_version: 0,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                notifications: vec!["n".into()],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    let after = store.request_counts();
    assert_eq!(after.reads - before.reads, 1);
    assert_eq!(after.writes - before.writes, 1);
    // DynamoDB reads the order's partition in a Query sent beside the
    // BatchGetItem (one round trip); the memory store in its one read.
    assert!(after.queries - before.queries <= 1);
    assert_eq!(after.other - before.other, 0);
}

// ------------------------------------------------- admin API additions

fn catalog_product(id: &str, collections: &[&str], compare_at: Option<&str>) -> CatalogProduct {
    CatalogProduct {
        product_id: ProductId::parse(id).unwrap(),
        collection_ids: collections
            .iter()
            .map(|c| CollectionId::parse(c).unwrap())
            .collect(),
        compare_at_price: compare_at.map(usd),
    }
}

pub async fn the_catalog_is_imported_and_read_with_the_rest_of_a_read(store: &dyn Store) {
    store
        .put_catalog(
            &shop(),
            &[
                catalog_product("p-1", &["c-1"], None),
                catalog_product("p-2", &["c-2", "c-3"], Some("30.00")),
                // The last of a product in one import wins.
                catalog_product("p-1", &["sale"], Some("9.99")),
            ],
        )
        .await
        .unwrap();
    let product = |id: &str| ProductId::parse(id).unwrap();
    let before = store.request_counts();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![customer("ann")],
                products: vec![product("p-1"), product("p-2"), product("p-9")],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.request_counts().reads - before.reads, 1);
    assert_eq!(read.products.len(), 2);
    assert_eq!(
        read.products[&product("p-1")],
        catalog_product("p-1", &["sale"], Some("9.99"))
    );
    assert_eq!(
        read.products[&product("p-2")],
        catalog_product("p-2", &["c-2", "c-3"], Some("30.00"))
    );
    // A later import replaces a product whole.
    store
        .put_catalog(&shop(), &[catalog_product("p-2", &[], None)])
        .await
        .unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                products: vec![product("p-2")],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        read.products[&product("p-2")],
        catalog_product("p-2", &[], None)
    );
    // Another shop sees nothing of it.
    let other = ShopId::parse("other.myshopify.com").unwrap();
    let read = store
        .read(
            &other,
            &ReadRequest {
                products: vec![product("p-2")],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(read.products.is_empty());
}

/// A store whose change feed the report aggregator can read: the in-memory
/// store's log, or moto's stream of the table.
#[async_trait::async_trait]
pub trait Reported: Store + ReportStore {
    /// Runs the aggregator over what the feed holds.
    async fn catch_up(&self) -> cashback_app::aggregator::Outcome;
}

#[async_trait::async_trait]
impl Reported for cashback_store::MemoryStore {
    async fn catch_up(&self) -> cashback_app::aggregator::Outcome {
        cashback_test_support::reports::catch_up(self).await
    }
}

#[async_trait::async_trait]
impl Reported for cashback_store::DynamoStore {
    async fn catch_up(&self) -> cashback_app::aggregator::Outcome {
        let endpoint = std::env::var("MOTO_ENDPOINT").expect("a store on moto");
        cashback_test_support::reports::catch_up_on_moto(self, &endpoint).await
    }
}

/// Writes keep no aggregate: the report aggregator sums the feed, by day
/// and month, with the customer counters; the feed read again adds nothing.
pub async fn the_aggregator_sums_the_feed_by_day_with_customer_counters<S: Reported>(store: &S) {
    let mut program = program();
    program.tiers = vec![cashback_core::program::Tier {
        name: "silver".into(),
        min_lifetime_spend: dec!(100),
        percent: dec!(10),
    }];
    let day_1 = t0();
    let day_2 = t0() + Duration::days(1);
    let refund = cashback_core::order::OrderEvent::Refunded(cashback_core::order::Refund {
        refund_id: RefundId::parse("r-1").unwrap(),
        order_id: OrderId::parse("o-1").unwrap(),
        basis: cashback_core::order::RefundBasis::Amount {
            amount: usd("30.00"),
        },
        occurred_at: day_1,
    });
    let history = [
        (paid("o-1", "ann", "120.00", day_1), "ann", day_1),
        (refund, "ann", day_1),
        (paid("o-2", "bob", "50.00", day_2), "bob", day_2),
        (paid("o-3", "bob", "20.00", day_2), "bob", day_2),
    ];
    for (event, who, at) in &history {
        assert_eq!(
            apply_through(store, event, who, &program, *at).await,
            WriteOutcome::Committed
        );
        // Duplicates add nothing.
        assert!(matches!(
            apply_through(store, event, who, &program, *at).await,
            WriteOutcome::Duplicate { .. }
        ));
    }
    // The write path kept nothing: the report is empty until the feed is read.
    let unread = store
        .aggregates(&shop(), day_1.date_naive(), day_2.date_naive())
        .await
        .unwrap();
    assert!(unread.days.is_empty() && unread.months.is_empty() && unread.counts.is_zero());
    store.catch_up().await;
    let cy = seeded(store, "cy", "7.00").await;
    // A refused write adds nothing either.
    let mut stale = cy.value.clone();
    let applied = stale
        .adjust(usd("1.00"), "x", "stale", &program, day_1)
        .unwrap();
    let refused = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: stale,
                    expected_version: cy.version + 5,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    store.catch_up().await;
    // Read again (a batch delivered twice): nothing more.
    store.catch_up().await;

    let all = store
        .aggregates(&shop(), day_1.date_naive(), day_2.date_naive())
        .await
        .unwrap();
    let first = all.period(day_1.date_naive(), day_1.date_naive());
    assert_eq!(first.earn.pending, dec!(12.00));
    assert_eq!(first.earn.merchant, dec!(12.00));
    assert_eq!(first.earn.partner, dec!(0));
    assert_eq!(first.clawback.pending, dec!(-3.00));
    assert_eq!(first.clawback.merchant, dec!(-3.00));
    assert_eq!(first.adjust.available, dec!(7.00));
    assert_eq!(first.adjust.credited, dec!(7.00));
    assert!(first.release.is_zero() && first.expire.is_zero());
    let both = all.up_to(day_2.date_naive());
    assert_eq!(both.earn.pending, dec!(19.00));
    assert_eq!(both.adjust.available, dec!(7.00));

    let counts = &all.counts;
    assert_eq!(
        (counts.customers, counts.earners, counts.repeaters),
        (3, 2, 1)
    );
    // Ann reached silver, then her refund took her back below it.
    assert_eq!(counts.tiers.get("none").copied(), Some(3));
    assert_eq!(counts.tiers.get("0").copied().unwrap_or(0), 0);

    // Up to the first day: the second is left out; the counters are now's.
    let early = store
        .aggregates(&shop(), day_1.date_naive(), day_1.date_naive())
        .await
        .unwrap();
    assert_eq!(early.up_to(day_1.date_naive()).earn.pending, dec!(12.00));
    assert_eq!(early.counts.customers, 3);
    let other = ShopId::parse("other.myshopify.com").unwrap();
    let none = store
        .aggregates(&other, day_1.date_naive(), day_2.date_naive())
        .await
        .unwrap();
    assert!(none.days.is_empty() && none.months.is_empty() && none.counts.customers == 0);
}

pub async fn a_shops_accounts_are_listed_in_pages(store: &dyn Store) {
    for id in ["e", "a", "d", "b", "c"] {
        seeded(store, id, "1.00").await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store.list_accounts(&shop(), cursor, 2).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(
            page.items
                .iter()
                .map(|a| (a.value.customer.as_str().to_string(), a.version)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert!(seen.iter().all(|(_, version)| *version == 1));
    let other = ShopId::parse("other.myshopify.com").unwrap();
    assert!(store
        .list_accounts(&other, None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}

fn api_key(id: &str, scopes: Vec<KeyScope>) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: id.into(),
        name: format!("key {id}"),
        scopes,
        hash: format!("{id:0>64}"),
        hint: "cbk_0000".into(),
        created_at: t0(),
        created_by: Some("admin-token".into()),
        revoked_at: None,
        last_used_at: None,
    }
}

pub async fn api_keys_are_created_listed_touched_and_revoked_once(store: &dyn Store) {
    let checkout = api_key("key_a", vec![KeyScope::Checkout]);
    let portal = api_key("key_b", vec![KeyScope::PortalServer]);
    store.create_api_key(&shop(), &checkout).await.unwrap();
    store.create_api_key(&shop(), &portal).await.unwrap();
    assert!(matches!(
        store.create_api_key(&shop(), &checkout).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let other = ShopId::parse("other.myshopify.com").unwrap();
    assert!(store.list_api_keys(&other).await.unwrap().is_empty());
    assert_eq!(
        store.list_api_keys(&shop()).await.unwrap(),
        vec![checkout.clone(), portal.clone()]
    );

    // Last use moves forward only; a missing key is left alone.
    let later = t0() + Duration::minutes(10);
    store.touch_api_key(&shop(), "key_a", later).await.unwrap();
    store.touch_api_key(&shop(), "key_a", t0()).await.unwrap();
    store.touch_api_key(&shop(), "key_zz", later).await.unwrap();
    let keys = store.list_api_keys(&shop()).await.unwrap();
    assert_eq!(keys[0].last_used_at, Some(later));
    assert_eq!(keys.len(), 2);

    // Revoked once; the first time stays.
    let revoked_at = t0() + Duration::hours(1);
    assert_eq!(
        store
            .revoke_api_key(&shop(), "key_a", revoked_at)
            .await
            .unwrap(),
        Revoked::Now
    );
    assert_eq!(
        store
            .revoke_api_key(&shop(), "key_a", revoked_at + Duration::hours(1))
            .await
            .unwrap(),
        Revoked::Already(revoked_at)
    );
    assert_eq!(
        store
            .revoke_api_key(&shop(), "key_zz", revoked_at)
            .await
            .unwrap(),
        Revoked::Missing
    );
    let keys = store.list_api_keys(&shop()).await.unwrap();
    assert_eq!(keys[0].revoked_at, Some(revoked_at));
    assert!(!keys[0].is_live() && keys[1].is_live());
    assert_eq!(keys[1], portal);
}

pub async fn counters_are_read_with_the_rest_of_a_read(store: &dyn Store) {
    seeded(store, "ann", "10.00").await;
    for _ in 0..3 {
        store
            .increment_counter("guess#shop#source#1", t0() + Duration::minutes(10))
            .await
            .unwrap();
    }
    let before = store.request_counts();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![customer("ann")],
                counters: vec!["guess#shop#source#1".into(), "guess#shop#other#1".into()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.request_counts().reads - before.reads,
        1,
        "one round trip"
    );
    assert!(read.accounts.contains_key(&customer("ann")));
    assert_eq!(read.counters["guess#shop#source#1"], 3);
    assert_eq!(read.counters["guess#shop#other#1"], 0);
}

/// Files order `id` of `who` with 1.00 pending due at `due`, written at `now`.
async fn pending_order(
    store: &dyn Store,
    id: &str,
    who: &str,
    due: DateTime<Utc>,
    now: Option<DateTime<Utc>>,
) {
    let mut record = OrderRecord::new(OrderId::parse(id).unwrap(), Currency::USD);
    record.customer = Some(customer(who));
    record.pending = usd("1.00");
    record.release_at = Some(due);
    let outcome = store
        .write(
            &shop(),
            WriteSet {
                order: Some(OrderWrite {
                    record,
                    expected_version: 0,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                now,
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

pub async fn a_due_time_in_the_past_is_filed_at_the_writes_now(store: &dyn Store) {
    let now = t0() + Duration::days(10);
    pending_order(store, "late", "ann", t0(), Some(now)).await;
    pending_order(store, "later", "bob", now + Duration::days(1), Some(now)).await;
    assert!(
        due_everywhere(store, DueKind::Release, t0(), t0() + Duration::hours(1))
            .await
            .is_empty(),
        "nothing filed in the past"
    );
    let due = due_everywhere(store, DueKind::Release, now, now).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].order.as_ref().map(|o| o.as_str()), Some("late"));
    assert_eq!(due[0].due_at, now);
    let tomorrow = now + Duration::days(1);
    let due = due_everywhere(store, DueKind::Release, tomorrow, tomorrow).await;
    assert_eq!(due.len(), 1, "a future time is filed as it is");
    assert_eq!(due[0].due_at, tomorrow);
}

pub async fn a_parked_item_leaves_its_index_and_is_listed(store: &dyn Store) {
    pending_order(store, "stuck", "ann", t0(), None).await;
    pending_order(store, "fine", "bob", t0(), None).await;
    let due = due_everywhere(store, DueKind::Release, t0(), t0()).await;
    let stuck = due
        .iter()
        .find(|d| d.order.as_ref().map(|o| o.as_str()) == Some("stuck"))
        .unwrap()
        .clone();
    let parked = ParkedItem {
        job: "promote-pending".into(),
        kind: DueKind::Release,
        due: stuck,
        reason: "corrupt item: bad doc".into(),
        attempts: 1,
        parked_at: t0() + Duration::hours(3),
    };
    store.park(&parked).await.unwrap();
    store.park(&parked).await.unwrap();
    let due = due_everywhere(store, DueKind::Release, t0(), t0()).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].order.as_ref().map(|o| o.as_str()), Some("fine"));
    let listed = store.list_parked(&shop(), None, 10).await.unwrap();
    assert_eq!(
        listed.items,
        vec![parked.clone()],
        "parked twice, listed once"
    );
    assert_eq!(listed.next, None);
    let other = ShopId::parse("other.myshopify.com").unwrap();
    assert!(store
        .list_parked(&other, None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    // An item written since its index item was read stays where it is filed.
    let mut moved = parked.clone();
    moved.due.order = Some(OrderId::parse("fine").unwrap());
    moved.due.customer = Some(customer("bob"));
    moved.due.due_at = t0() - Duration::hours(5);
    store.park(&moved).await.unwrap();
    assert_eq!(
        due_everywhere(store, DueKind::Release, t0(), t0())
            .await
            .len(),
        1
    );
    let listed = store.list_parked(&shop(), None, 1).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let rest = store.list_parked(&shop(), listed.next, 1).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next, None);
}

pub async fn the_code_syncs_record_adds_notes_and_a_finished_reconcile_clears_what_was_parked(
    store: &dyn Store,
) {
    let other = ShopId::parse("other.example.com").unwrap();
    assert_eq!(
        store.sync_record(&shop()).await.unwrap(),
        SyncRecord::default()
    );
    let t1 = t0() + Duration::minutes(1);
    let t2 = t0() + Duration::minutes(2);
    let parked = |count, reason: &str, at| SyncNote {
        parked: Some(ParkedSyncs {
            count,
            reason: reason.into(),
            at,
        }),
        ..SyncNote::default()
    };
    store
        .note_sync(
            &shop(),
            &SyncNote {
                synced_at: Some(t0()),
                ..SyncNote::default()
            },
        )
        .await
        .unwrap();
    store
        .note_sync(&shop(), &parked(2, "throttled", t1))
        .await
        .unwrap();
    store
        .note_sync(&shop(), &parked(1, "refused: amount", t2))
        .await
        .unwrap();
    let step = |first, finished, at, n| SyncNote {
        reconcile: Some(ReconcileStep {
            first,
            finished,
            at,
            checked: n,
            drifted: 2,
            repaired: 1,
            failed: 1,
        }),
        ..SyncNote::default()
    };
    store
        .note_sync(&shop(), &step(true, false, t1, 100))
        .await
        .unwrap();
    let record = store.sync_record(&shop()).await.unwrap();
    assert_eq!(record.last_synced_at, Some(t0()));
    assert_eq!(record.parked, 3);
    assert_eq!(record.parked_reason.as_deref(), Some("refused: amount"));
    assert_eq!(record.parked_at, Some(t2));
    assert_eq!(
        record.reconcile,
        Some(ReconcileRecord {
            started_at: t1,
            at: t1,
            checked: 100,
            drifted: 2,
            repaired: 1,
            failed: 1,
            finished: false,
        })
    );
    // The run's last step adds its figures and clears what was parked (the
    // reconcile repaired it); the newest reason stays to be read.
    store
        .note_sync(&shop(), &step(false, true, t2, 20))
        .await
        .unwrap();
    let record = store.sync_record(&shop()).await.unwrap();
    assert_eq!(record.parked, 0);
    assert_eq!(record.parked_reason.as_deref(), Some("refused: amount"));
    assert_eq!(
        record.reconcile,
        Some(ReconcileRecord {
            started_at: t1,
            at: t2,
            checked: 120,
            drifted: 4,
            repaired: 2,
            failed: 2,
            finished: true,
        })
    );
    // A new run starts its figures over.
    store
        .note_sync(&shop(), &step(true, true, t2, 7))
        .await
        .unwrap();
    let record = store.sync_record(&shop()).await.unwrap();
    let reconcile = record.reconcile.unwrap();
    assert_eq!(
        (reconcile.checked, reconcile.drifted, reconcile.started_at),
        (7, 2, t2)
    );
    // Another shop's record is its own.
    assert_eq!(
        store.sync_record(&other).await.unwrap(),
        SyncRecord::default()
    );
}
