//! DynamoDB-specific tests, against moto's server (see `cashback_test_support::moto`):
//! the table definition, the item layout, each write and how each failure
//! maps to a `StoreError`, paging, round trips, and two concurrency tests
//! with real parallel tasks. What every adapter must do alike is in the
//! conformance suite; this file checks what only DynamoDB can get wrong.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::{AttributeValue, ProjectionType, TimeToLiveStatus};
use chrono::Duration;

use cashback_app::store::*;
use cashback_core::ids::*;
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;
use cashback_store::{keys, DynamoStore};
use cashback_test_support::fixtures::{code, customer, shop, t0, usd};
use cashback_test_support::moto;

macro_rules! store_or_skip {
    ($name:expr) => {
        match moto::fresh_store($name).await {
            Some(store) => store,
            None => return,
        }
    };
}

fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.expiry_days = Some(365);
    program
}

fn new_account(id: &str) -> Account {
    let mut account = Account::open(shop(), customer(id), Currency::USD);
    account.email = Some(Email::parse(&format!("{id}@example.com")).unwrap());
    account
}

fn account_write(account: Account, version: u64, entries: Vec<LedgerEntry>) -> AccountWrite {
    AccountWrite {
        account,
        expected_version: version,
        entries,
        reminder_due_at: None,
        code_change: None,
    }
}

fn accounts(writes: Vec<AccountWrite>) -> WriteSet {
    WriteSet {
        accounts: writes,
        ..WriteSet::default()
    }
}

async fn read_account(store: &DynamoStore, id: &str) -> Option<Versioned<Account>> {
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

/// An account credited with `amount` by a merchant adjustment.
async fn seeded(store: &DynamoStore, id: &str, amount: &str) -> Versioned<Account> {
    let mut account = new_account(id);
    let applied = account
        .adjust(usd(amount), "seed", &format!("seed-{id}"), &program(), t0())
        .unwrap();
    let outcome = store
        .write(
            &shop(),
            accounts(vec![account_write(account, 0, applied.entries)]),
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
    read_account(store, id).await.unwrap()
}

async fn all_entries(store: &DynamoStore, id: &str, page_size: u32) -> (Vec<LedgerEntry>, usize) {
    let mut entries = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .ledger(&shop(), &customer(id), cursor, page_size)
            .await
            .unwrap();
        pages += 1;
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (entries, pages),
        }
    }
}

async fn raw_item(
    store: &DynamoStore,
    pk: &str,
    sk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.clone(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

fn delta(counts: &RequestCounts, before: &RequestCounts) -> RequestCounts {
    RequestCounts {
        reads: counts.reads - before.reads,
        writes: counts.writes - before.writes,
        queries: counts.queries - before.queries,
        other: counts.other - before.other,
    }
}

// ------------------------------------------------------------ the table

#[tokio::test]
async fn the_table_from_the_template_has_four_sparse_due_indexes_ttl_and_backups() {
    let store = store_or_skip!("table-definition");
    let client = store.client();
    let described = client
        .describe_table()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let mut indexes: Vec<(String, Vec<String>)> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let projection = index.projection().unwrap();
            assert_eq!(projection.projection_type(), Some(&ProjectionType::Include));
            let mut projected = projection.non_key_attributes().to_vec();
            projected.sort();
            (index.index_name().unwrap().to_string(), projected)
        })
        .collect();
    indexes.sort();
    let projected: Vec<String> = ["customer", "order_id", "shop"].map(String::from).to_vec();
    assert_eq!(
        indexes,
        [
            ("bonus-due".to_string(), projected.clone()),
            ("expiry-due".to_string(), projected.clone()),
            ("release-due".to_string(), projected.clone()),
            ("reminder-due".to_string(), projected),
        ]
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    let backups = client
        .describe_continuous_backups()
        .table_name(store.table_name())
        .send()
        .await
        .unwrap();
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_string());
    assert_eq!(pitr.as_deref(), Some("ENABLED"));
}

// ------------------------------------------------------------ layout

#[tokio::test]
async fn an_account_is_stored_with_numeric_balances_that_win_over_its_doc() {
    let store = store_or_skip!("account-layout");
    seeded(&store, "ann", "12.30").await;
    let pk = keys::account_key(&shop(), &customer("ann"));
    let item = raw_item(&store, &pk, keys::ACCOUNT_SK).await.unwrap();
    assert_eq!(n(&item, "version"), "1");
    assert_eq!(n(&item, "available"), "12.3");
    assert_eq!(n(&item, "pending"), "0");
    assert_eq!(n(&item, "held"), "0");
    assert_eq!(
        item.get("entity_type"),
        Some(&AttributeValue::S("ACCOUNT".into()))
    );
    // Its lot expires in a year: the account sits in the expiry index, and
    // in no reminder index (none was asked for).
    assert!(item.contains_key("expiry_pk") && item.contains_key("expiry_sk"));
    assert!(!item.contains_key("reminder_pk"));
    // The email owner item is keyed by the email's hash, never the address.
    let email = Email::parse("ann@example.com").unwrap();
    let owner = raw_item(&store, &keys::email_key(&shop(), &email), keys::EMAIL_SK)
        .await
        .unwrap();
    assert_eq!(
        owner.get("customer"),
        Some(&AttributeValue::S("ann".into()))
    );
    assert!(!keys::email_key(&shop(), &email).contains("example.com"));
    // A ledger entry carries its kind and deltas as attributes.
    let (entries, _) = all_entries(&store, "ann", 10).await;
    let entry = raw_item(&store, &pk, &keys::ledger_sort_key(&entries[0]))
        .await
        .unwrap();
    assert_eq!(entry.get("kind"), Some(&AttributeValue::S("adjust".into())));
    assert_eq!(n(&entry, "available_delta"), "12.3");
    // The number is authoritative: moved by hand, it is what a read sees,
    // exactly (no float on the way).
    store
        .client()
        .update_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S(keys::ACCOUNT_SK.into()))
        .update_expression("SET available = :a")
        .expression_attribute_values(":a", AttributeValue::N("0.1".into()))
        .send()
        .await
        .unwrap();
    let account = read_account(&store, "ann").await.unwrap();
    assert_eq!(account.value.available, usd("0.10"));
    assert_eq!(account.value.available.amount().to_string(), "0.10");
}

// ------------------------------------------------------------ writes and failures

#[tokio::test]
async fn a_duplicate_guard_returns_the_stored_response_without_another_read() {
    let store = store_or_skip!("duplicate-guard");
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
                guard: Some(guard("first response")),
                accounts: vec![account_write(account.clone(), 0, applied.entries.clone())],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first, WriteOutcome::Committed);
    let stored = raw_item(
        &store,
        &keys::guard_key(&shop(), "adjust:idem-1"),
        keys::GUARD_SK,
    )
    .await
    .unwrap();
    assert_eq!(
        n(&stored, "ttl"),
        (t0() + Duration::days(1)).timestamp().to_string()
    );

    let before = store.request_counts();
    // The retry carries the same (stale) account write: the guard wins.
    let second = store
        .write(
            &shop(),
            WriteSet {
                guard: Some(guard("second response")),
                accounts: vec![account_write(account, 0, applied.entries)],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        WriteOutcome::Duplicate {
            response: Some("first response".into())
        }
    );
    let spent = delta(&store.request_counts(), &before);
    assert_eq!(
        spent,
        RequestCounts {
            writes: 1,
            ..RequestCounts::default()
        },
        "a duplicate costs its one transaction and nothing else"
    );
}

#[tokio::test]
async fn a_notification_marker_already_written_makes_the_write_a_duplicate() {
    let store = store_or_skip!("notification-marker");
    let account = seeded(&store, "ann", "1.00").await;
    let mut next = account.value.clone();
    let applied = next
        .adjust(usd("1.00"), "x", "x", &program(), t0())
        .unwrap();
    let writes = |account: Account, entries: Vec<LedgerEntry>| WriteSet {
        notifications: vec!["ready:ann:o-1".into(), "ready:ann:o-1".into()],
        accounts: vec![account_write(account, 1, entries)],
        ..WriteSet::default()
    };
    assert_eq!(
        store
            .write(&shop(), writes(next.clone(), applied.entries.clone()))
            .await
            .unwrap(),
        WriteOutcome::Committed,
        "the same key twice in one write is one marker"
    );
    assert_eq!(
        store
            .write(&shop(), writes(next, applied.entries))
            .await
            .unwrap(),
        WriteOutcome::Duplicate { response: None }
    );
    let marker = raw_item(
        &store,
        &keys::notification_key(&shop(), "ready:ann:o-1"),
        keys::NOTIFICATION_SK,
    )
    .await
    .unwrap();
    assert!(marker.contains_key("ttl"));
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_nothing_of_the_write_lands() {
    let store = store_or_skip!("stale-version");
    let account = seeded(&store, "ann", "10.00").await;
    let mut first = account.value.clone();
    let applied = first
        .adjust(usd("1.00"), "a", "a", &program(), t0())
        .unwrap();
    store
        .write(
            &shop(),
            accounts(vec![account_write(first, 1, applied.entries)]),
        )
        .await
        .unwrap();
    let mut second = account.value.clone();
    let applied = second
        .adjust(usd("5.00"), "b", "b", &program(), t0())
        .unwrap();
    let error = store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![account_write(second, 1, applied.entries)],
                notifications: vec!["n-1".into()],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict(ref m) if m == "account ann"),
        "{error:?}"
    );
    // The marker in the same transaction was not written either.
    assert!(raw_item(
        &store,
        &keys::notification_key(&shop(), "n-1"),
        keys::NOTIFICATION_SK
    )
    .await
    .is_none());
    // Creating an account that exists is a conflict too.
    let error = store
        .write(
            &shop(),
            accounts(vec![account_write(new_account("ann"), 0, vec![])]),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    // And so is writing an entry that is already in the ledger.
    let current = read_account(&store, "ann").await.unwrap();
    let (entries, _) = all_entries(&store, "ann", 10).await;
    let error = store
        .write(
            &shop(),
            accounts(vec![account_write(
                current.value.clone(),
                current.version,
                vec![entries[0].clone()],
            )]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict(ref m) if m.starts_with("ledger entry")),
        "{error:?}"
    );
}

/// The account write below looks fine to anyone checking only the new
/// account (its balance is positive), but its entry takes 15.00 from a
/// stored 10.00: DynamoDB's own condition refuses it, at the right version.
#[tokio::test]
async fn a_delta_that_would_overdraw_the_stored_balance_is_refused_by_dynamodb() {
    let store = store_or_skip!("balance-condition");
    let account = seeded(&store, "ann", "10.00").await;
    let entry = |id: &str, amount: &str| LedgerEntry {
        entry_id: id.into(),
        at: t0(),
        kind: EntryKind::Adjust,
        order_id: None,
        available_delta: usd(amount),
        pending_delta: usd("0"),
        debt_delta: usd("0"),
        funding: None,
        note: None,
    };
    let error = store
        .write(
            &shop(),
            accounts(vec![account_write(
                account.value.clone(),
                account.version,
                vec![entry("bug:0", "-15.00")],
            )]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::BalanceCondition(_)),
        "{error:?}"
    );
    assert!(error.is_conflict(), "retried from a fresh read");
    // Holds count: after the delta, what is held must still be covered.
    let mut held = account.value.clone();
    held.place_hold(CheckoutId::parse("c-1").unwrap(), usd("8.00"), t0(), 900)
        .unwrap();
    let error = store
        .write(
            &shop(),
            accounts(vec![account_write(
                held.clone(),
                account.version,
                vec![entry("bug:1", "-3.00")],
            )]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::BalanceCondition(_)),
        "{error:?}"
    );
    // Taking exactly what is there is fine.
    let error_free = store
        .write(
            &shop(),
            accounts(vec![account_write(
                account.value.clone(),
                account.version,
                vec![entry("ok:0", "-10.00")],
            )]),
        )
        .await
        .unwrap();
    assert_eq!(error_free, WriteOutcome::Committed);
    let after = read_account(&store, "ann").await.unwrap();
    assert_eq!(
        after.value.available,
        usd("0.00"),
        "the number moved by the delta"
    );
    assert_eq!(after.version, 2);
}

#[tokio::test]
async fn a_new_account_with_a_negative_balance_is_refused_as_a_balance_condition() {
    let store = store_or_skip!("new-account-negative");
    let mut account = new_account("ann");
    account.available = usd("-1.00");
    let error = store
        .write(&shop(), accounts(vec![account_write(account, 0, vec![])]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::BalanceCondition(_)),
        "{error:?}"
    );
    assert!(read_account(&store, "ann").await.is_none());
}

#[tokio::test]
async fn a_code_owned_by_another_account_is_taken_and_a_replaced_code_stays_its_owners() {
    let store = store_or_skip!("code-taken");
    let claim = |account: Account, version: u64, new: &str, old: Option<&str>| AccountWrite {
        account,
        expected_version: version,
        entries: vec![],
        reminder_due_at: None,
        code_change: Some(CodeChange {
            new_code: code(new),
            old_code: old.map(code),
            referral_code: None,
        }),
    };
    let ann = new_account("ann");
    store
        .write(
            &shop(),
            accounts(vec![claim(ann.clone(), 0, "CB-AAAA", None)]),
        )
        .await
        .unwrap();
    // Claiming one's own code again is fine (the condition allows the owner).
    store
        .write(
            &shop(),
            accounts(vec![claim(ann.clone(), 1, "CB-AAAA", Some("CB-AAAA"))]),
        )
        .await
        .unwrap();
    let error = store
        .write(
            &shop(),
            accounts(vec![claim(new_account("bob"), 0, "cb-aaaa", None)]),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::CodeTaken), "{error:?}");
    assert!(!error.to_string().to_lowercase().contains("cb-aaaa"));
    assert!(read_account(&store, "bob").await.is_none());
    store
        .write(
            &shop(),
            accounts(vec![claim(ann, 2, "CB-BBBB", Some("CB-AAAA"))]),
        )
        .await
        .unwrap();
    // The replaced code stays in the index, still Ann's: an order placed
    // with it is charged to her; nobody else can claim it.
    assert!(raw_item(
        &store,
        &keys::code_key(&shop(), &code("cb-aaaa")),
        keys::CODE_SK
    )
    .await
    .is_some());
    let error = store
        .write(
            &shop(),
            accounts(vec![claim(new_account("bob"), 0, "cb-aaaa", None)]),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::CodeTaken), "{error:?}");
}

fn coupon_record(value: &str, total: Option<u32>) -> CouponRecord {
    use cashback_core::coupon::*;
    CouponRecord {
        coupon: CashbackCoupon {
            code: code(value),
            display_name: "Back 10".into(),
            description: String::new(),
            offer_text: String::new(),
            reward: CouponReward::Percentage {
                percent: 10.into(),
                max_cashback: 0.into(),
            },
            min_cart_value: 0.into(),
            usage_limit_total: total,
            usage_limit_per_customer: Some(1),
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

#[tokio::test]
async fn coupon_limits_are_conditions_on_the_counts_themselves() {
    let store = store_or_skip!("coupon-limits");
    store
        .put_coupon(&shop(), &coupon_record("once", Some(2)), 0)
        .await
        .unwrap();
    let use_by =
        |code_value: &str, id: &str, delta: i32, total: Option<u32>, per: Option<u32>| WriteSet {
            coupon_uses: vec![CouponUseChange {
                code: code(code_value),
                customer: customer(id),
                email: Some(Email::parse(&format!("{id}@example.com")).unwrap()),
                delta,
                limit_total: total,
                limit_per_customer: per,
                order: None,
                shard: None,
            }],
            ..WriteSet::default()
        };
    store
        .write(&shop(), use_by("once", "ann", 1, Some(2), Some(1)))
        .await
        .unwrap();
    let again = store
        .write(&shop(), use_by("once", "ann", 1, Some(2), Some(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::CouponLimit(_)),
        "per customer: {again:?}"
    );
    store
        .write(&shop(), use_by("once", "bob", 1, Some(2), Some(1)))
        .await
        .unwrap();
    let third = store
        .write(&shop(), use_by("once", "cy", 1, Some(2), Some(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(third, StoreError::CouponLimit(_)),
        "in total: {third:?}"
    );
    let item = raw_item(
        &store,
        &keys::shop_pk(&shop()),
        &keys::coupon_sk(&code("once")),
    )
    .await
    .unwrap();
    assert_eq!(n(&item, "uses"), "2");
    let counter = raw_item(
        &store,
        &keys::coupon_use_pk(&shop(), &code("once")),
        &keys::customer_usage_sk(&customer("ann")),
    )
    .await
    .unwrap();
    assert_eq!(n(&counter, "count"), "1");
    // A limit of 0 refuses even the first use, counted or not.
    let zero = store
        .write(&shop(), use_by("once", "dee", 1, Some(0), None))
        .await
        .unwrap_err();
    assert!(matches!(zero, StoreError::CouponLimit(_)), "{zero:?}");
    // A use of a coupon that was never created leaves no coupon behind.
    store
        .write(&shop(), use_by("ghost", "ann", 1, Some(5), Some(1)))
        .await
        .unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupons: vec![code("ghost")],
                coupon_uses: vec![(code("ghost"), UsageKey::Customer(customer("ann")))],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(read.coupons.is_empty());
    assert_eq!(
        read.coupon_uses[&(code("ghost"), UsageKey::Customer(customer("ann")))],
        1
    );
    let listed = store.list_coupons(&shop(), None, 10).await.unwrap();
    assert_eq!(listed.items.len(), 1, "only `once` is a coupon");
    // Creating it later starts from the record's own count.
    assert_eq!(
        store
            .put_coupon(&shop(), &coupon_record("ghost", None), 0)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_write_over_the_transaction_limit_is_refused_before_any_request() {
    let store = store_or_skip!("transaction-limit");
    let writes = WriteSet {
        notifications: (0..101).map(|n| format!("n-{n}")).collect(),
        ..WriteSet::default()
    };
    let error = store.write(&shop(), writes).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Other(ref m) if m.contains("101 items") && m.contains("100")),
        "{error:?}"
    );
    assert_eq!(store.request_counts().total(), 0);
    // An empty write needs no request at all.
    assert_eq!(
        store.write(&shop(), WriteSet::default()).await.unwrap(),
        WriteOutcome::Committed
    );
    assert_eq!(store.request_counts().total(), 0);
}

// ------------------------------------------------------------ paging and round trips

#[tokio::test]
async fn the_ledger_pages_newest_first_across_several_pages() {
    let store = store_or_skip!("ledger-pages");
    let mut account = seeded(&store, "ann", "1.00").await;
    for n in 1..=7 {
        let mut next = account.value.clone();
        let applied = next
            .adjust(
                usd("1.00"),
                "n",
                &format!("n{n}"),
                &program(),
                t0() + Duration::minutes(n),
            )
            .unwrap();
        store
            .write(
                &shop(),
                accounts(vec![account_write(next, account.version, applied.entries)]),
            )
            .await
            .unwrap();
        account = read_account(&store, "ann").await.unwrap();
    }
    let before = store.request_counts();
    let (entries, pages) = all_entries(&store, "ann", 3).await;
    assert_eq!((entries.len(), pages), (8, 3), "3 + 3 + 2");
    assert_eq!(
        delta(&store.request_counts(), &before).queries,
        3,
        "one query a page"
    );
    assert!(
        entries.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first"
    );
    account.value.check(&entries).unwrap();
    // A page that ends exactly at the end says so.
    let (_, pages) = all_entries(&store, "ann", 4).await;
    assert_eq!(pages, 2);
    // A cursor from another account's ledger is refused.
    let page = store
        .ledger(&shop(), &customer("ann"), None, 3)
        .await
        .unwrap();
    let error = store
        .ledger(&shop(), &customer("bob"), page.next, 3)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidCursor(_)), "{error:?}");
}

#[tokio::test]
async fn due_releases_page_within_one_bucket_and_shard_and_leave_when_released() {
    let store = store_or_skip!("due-pages");
    // Orders that land in shard 0, due 10:00..10:40 in one hour bucket.
    let ids: Vec<String> = (0..100)
        .map(|n| format!("o-{n}"))
        .filter(|id| keys::shard_of(&keys::order_key(&shop(), &OrderId::parse(id).unwrap())) == 0)
        .take(5)
        .collect();
    assert_eq!(ids.len(), 5);
    for (n, id) in ids.iter().enumerate() {
        let mut record = OrderRecord::new(OrderId::parse(id).unwrap(), Currency::USD);
        record.customer = Some(customer("ann"));
        record.pending = usd("1.00");
        record.release_at = Some(t0() + Duration::minutes(10 * n as i64));
        store
            .write(
                &shop(),
                WriteSet {
                    order: Some(OrderWrite {
                        record,
                        expected_version: 0,
                        lines_stored: false,
                        refunds_stored: 0,
                    }),
                    ..WriteSet::default()
                },
            )
            .await
            .unwrap();
    }
    let up_to = t0() + Duration::minutes(30);
    let mut found = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .due(DueKind::Release, &due_bucket(t0()), 0, up_to, cursor, 2)
            .await
            .unwrap();
        pages += 1;
        found.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 2, "four due by 10:30, two a page");
    let due_ids: Vec<String> = found
        .iter()
        .map(|d| d.order.clone().unwrap().to_string())
        .collect();
    assert_eq!(due_ids, ids[..4].to_vec(), "in due order");
    assert_eq!(found[1].due_at, t0() + Duration::minutes(10));
    assert!(found
        .iter()
        .all(|d| d.shop == shop() && d.customer == Some(customer("ann"))));
    // Released: the index attributes are removed, so it is no longer due.
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse(&ids[0]).unwrap()),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut order = read.order.unwrap();
    order.value.released = true;
    store
        .write(
            &shop(),
            WriteSet {
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
    let item = raw_item(
        &store,
        &keys::order_key(&shop(), &OrderId::parse(&ids[0]).unwrap()),
        keys::ORDER_SK,
    )
    .await
    .unwrap();
    assert!(!item.contains_key("release_pk") && !item.contains_key("release_sk"));
    let page = store
        .due(DueKind::Release, &due_bucket(t0()), 0, up_to, None, 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
}

#[tokio::test]
async fn a_read_is_one_batch_get_beside_the_orders_query_and_a_write_one_transaction() {
    let store = store_or_skip!("round-trips");
    let before = store.request_counts();
    store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o").unwrap()),
                accounts: vec![customer("a"), customer("b"), customer("a")],
                coupons: vec![code("c")],
                coupon_uses: vec![
                    (code("c"), UsageKey::Customer(customer("a"))),
                    (
                        code("c"),
                        UsageKey::Email(Email::parse("a@example.com").unwrap()),
                    ),
                ],
                code_owners: vec![code("d")],
                email_owners: vec![Email::parse("a@example.com").unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut account = new_account("a");
    let applied = account
        .adjust(usd("1.00"), "x", "x", &program(), t0())
        .unwrap();
    let capacity_before = store.consumed_capacity();
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
                    reminder_due_at: Some(t0() + Duration::days(3)),
                    code_change: Some(CodeChange {
                        new_code: code("cb-1"),
                        old_code: None,
                        referral_code: None,
                    }),
                }],
                order: Some(OrderWrite {
                    record: OrderRecord::new(OrderId::parse("o").unwrap(), Currency::USD),
                    expected_version: 0,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                coupon_uses: vec![CouponUseChange {
                    code: code("c"),
                    customer: customer("a"),
                    email: None,
                    delta: 1,
                    limit_total: None,
                    limit_per_customer: Some(3),
                    order: None,
                    shard: None,
                }],
                notifications: vec!["n".into()],
                marketing_events: Vec::new(),
                accounts_read: AccountsRead::default(),
                now: None,
                referral_settled: None,
                coupon_uses_counted: Vec::new(),
            },
        )
        .await
        .unwrap();
    let spent = delta(&store.request_counts(), &before);
    assert_eq!(
        spent,
        RequestCounts {
            reads: 1,
            writes: 1,
            // The order's partition, sent beside the BatchGetItem.
            queries: 1,
            ..RequestCounts::default()
        }
    );
    eprintln!(
        "capacity units reported: read + write = {}, the write alone = {}",
        store.consumed_capacity(),
        store.consumed_capacity() - capacity_before
    );
}

/// A part of one customer's changes: `cents` of adjustment credit on `day`.
fn credit_part(
    who: &str,
    position: u64,
    day: chrono::NaiveDate,
    cents: i64,
    written: chrono::NaiveDate,
) -> ReportPart {
    let mut figures = DayFigures::default();
    figures.adjust.available = rust_decimal::Decimal::new(cents, 2);
    figures.adjust.credited = rust_decimal::Decimal::new(cents, 2);
    ReportPart {
        shop: shop(),
        shard: aggregate_shard(&customer(who)),
        marks: vec![FeedMark {
            customer: customer(who),
            first: feed_position(&position.to_string()),
            last: feed_position(&position.to_string()),
        }],
        written: Some(written),
        sums: ReportSums {
            days: [(day, figures)].into_iter().collect(),
            counts: CustomerCounts::default(),
        },
    }
}

/// Month items are read whole once the aggregator kept them from the
/// month's start; the days of months it did not (kept before it existed)
/// are read instead, and the sums agree either way. A part whose marker is
/// past it adds nothing and says up to where.
#[tokio::test]
async fn month_items_are_read_whole_from_the_month_after_the_aggregator_started() {
    let store = store_or_skip!("months");
    let day = |y: i32, m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let started = day(2025, 1, 1);
    // Ann: the 5th of every month from January 2025 to November 2026.
    let mut position = 0;
    for n in 0..23u32 {
        position += 1;
        let at = day(2025 + (n / 12) as i32, n % 12 + 1, 5);
        let added = store
            .add_report_part(&credit_part("ann", position, at, 100, started))
            .await
            .unwrap();
        assert_eq!(added, Added::Now);
    }
    let again = store
        .add_report_part(&credit_part("ann", 3, day(2025, 3, 5), 100, started))
        .await
        .unwrap();
    assert_eq!(
        again,
        Added::Before {
            refused: vec![(customer("ann"), feed_position("23"))]
        }
    );

    let (from, to) = (day(2025, 1, 1), day(2026, 11, 20));
    let read = store.aggregates(&shop(), from, to).await.unwrap();
    // The aggregator started in January 2025: February 2025 on is trusted.
    assert_eq!(read.months.len(), 21, "{:?}", read.months.keys());
    assert_eq!(
        read.days.keys().copied().collect::<Vec<_>>(),
        vec![day(2025, 1, 5), day(2026, 11, 5)]
    );
    assert_eq!(
        read.period(from, to).adjust.credited,
        rust_decimal::Decimal::new(2300, 2)
    );
    // A period that cuts October 2026: its days, the months before whole.
    let october = store
        .aggregates(&shop(), day(2026, 10, 3), day(2026, 10, 6))
        .await
        .unwrap();
    assert_eq!(
        october
            .period(day(2026, 10, 3), day(2026, 10, 6))
            .adjust
            .credited,
        rust_decimal::Decimal::ONE
    );
    assert_eq!(
        october.up_to(day(2026, 10, 6)).adjust.credited,
        rust_decimal::Decimal::new(2200, 2)
    );
}

// ------------------------------------------------------------ concurrency
//
// These run against a private moto that serves one request at a time (see
// `moto::serial_moto`): moto's threaded server can lose a committed
// transaction when another is cancelled at the same moment, which DynamoDB
// never does. The 50 tasks still interleave their reads and writes freely.

/// Pause a little, randomly, so retrying tasks do not move in lockstep.
async fn jitter(attempt: u32) {
    let millis = 5 + (rand_u32() % (10 * (attempt + 1)));
    tokio::time::sleep(StdDuration::from_millis(u64::from(millis))).await;
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish() as u32
}

#[derive(Debug, PartialEq, Eq)]
enum Redeemed {
    Spent,
    Insufficient,
    GaveUp,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tasks_redeeming_one_dollar_from_ten_spend_exactly_ten() {
    let Some(moto) = moto::serial_moto("concurrent-redeem").await else {
        return;
    };
    let store = Arc::new(moto::store_on(&moto.endpoint, "concurrent-redeem").await);
    seeded(&store, "ann", "10.00").await;
    let tasks: Vec<_> = (0..50)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for attempt in 0..25 {
                    let account = read_account(&store, "ann").await.unwrap();
                    if account.value.spendable().amount() < usd("1.00").amount() {
                        return Redeemed::Insufficient;
                    }
                    let mut next = account.value.clone();
                    let applied = next
                        .adjust(
                            usd("-1.00"),
                            "redeem",
                            &format!("task-{task}"),
                            &program(),
                            t0(),
                        )
                        .unwrap();
                    let result = store
                        .write(
                            &shop(),
                            accounts(vec![account_write(next, account.version, applied.entries)]),
                        )
                        .await;
                    match result {
                        Ok(WriteOutcome::Committed) => return Redeemed::Spent,
                        Ok(other) => panic!("no guard, yet {other:?}"),
                        Err(error) if error.is_conflict() => jitter(attempt).await,
                        Err(error) => panic!("task {task}: {error}"),
                    }
                }
                Redeemed::GaveUp
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let count = |want: Redeemed| outcomes.iter().filter(|o| **o == want).count();
    assert_eq!(count(Redeemed::GaveUp), 0, "{outcomes:?}");
    assert_eq!(count(Redeemed::Spent), 10, "{outcomes:?}");
    assert_eq!(count(Redeemed::Insufficient), 40);
    let account = read_account(&store, "ann").await.unwrap();
    assert_eq!(account.value.available, usd("0.00"));
    assert_eq!(account.version, 11);
    let (entries, _) = all_entries(&store, "ann", 100).await;
    assert_eq!(entries.len(), 11, "the seed and ten redemptions");
    let sum = Money::sum(Currency::USD, entries.iter().map(|e| &e.available_delta)).unwrap();
    assert_eq!(
        sum, account.value.available,
        "the ledger sums to the balance"
    );
    account.value.check(&entries).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_deliveries_of_one_event_commit_once() {
    let Some(moto) = moto::serial_moto("concurrent-delivery").await else {
        return;
    };
    let store = Arc::new(moto::store_on(&moto.endpoint, "concurrent-delivery").await);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for attempt in 0..25 {
                    let account = read_account(&store, "ann")
                        .await
                        .unwrap_or_else(|| Versioned::new(new_account("ann")));
                    let mut next = account.value.clone();
                    let applied = next
                        .adjust(usd("1.00"), "gift", "event-1", &program(), t0())
                        .unwrap();
                    let result = store
                        .write(
                            &shop(),
                            WriteSet {
                                guard: Some(Guard {
                                    key: "webhook:event-1".into(),
                                    expires_at: t0() + Duration::days(30),
                                    response: Some("200 first".into()),
                                }),
                                accounts: vec![account_write(
                                    next,
                                    account.version,
                                    applied.entries,
                                )],
                                ..WriteSet::default()
                            },
                        )
                        .await;
                    match result {
                        Ok(outcome) => return Some(outcome),
                        Err(error) if error.is_conflict() => jitter(attempt).await,
                        Err(error) => panic!("{error}"),
                    }
                }
                None
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("every delivery settles"));
    }
    let committed = outcomes
        .iter()
        .filter(|o| **o == WriteOutcome::Committed)
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| {
            **o == WriteOutcome::Duplicate {
                response: Some("200 first".into()),
            }
        })
        .count();
    assert_eq!((committed, duplicates), (1, 49), "{outcomes:?}");
    let account = read_account(&store, "ann").await.unwrap();
    assert_eq!(account.value.available, usd("1.00"));
    assert_eq!(account.version, 1);
}

// ------------------------------------------------------------ order items

/// An order with two lines, a refund and pending cashback, as a record.
fn order_with_history() -> OrderRecord {
    use cashback_core::earn::LineValue;
    use cashback_core::order::{RefundBasis, RefundedLine};
    use cashback_core::orders::RecordedRefund;
    let mut record = OrderRecord::new(OrderId::parse("legacy-1").unwrap(), Currency::USD);
    record.customer = Some(customer("ann"));
    record.lines = ["l-1", "l-2"]
        .into_iter()
        .map(|id| LineValue {
            line_id: LineId::parse(id).unwrap(),
            quantity: 2,
            merchandise: usd("20.00"),
            eligible: usd("20.00"),
        })
        .collect();
    record.total = Some(usd("40.00"));
    record.seen_paid = true;
    record.pending = usd("3.00");
    record.clawed_back = usd("1.00");
    record.release_at = Some(t0() + Duration::days(30));
    record.refunds = vec![
        RecordedRefund {
            refund_id: RefundId::parse("r-1").unwrap(),
            basis: RefundBasis::Lines {
                lines: vec![RefundedLine {
                    line_id: LineId::parse("l-1").unwrap(),
                    quantity: 1,
                }],
            },
        },
        RecordedRefund {
            refund_id: RefundId::parse("r-2").unwrap(),
            basis: RefundBasis::Amount {
                amount: usd("0.50"),
            },
        },
    ];
    record
}

async fn read_order(store: &DynamoStore, id: &str) -> ReadResult {
    store
        .read(&shop(), &ReadRequest::order(OrderId::parse(id).unwrap()))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_order_item_of_the_old_layout_reads_and_its_next_write_moves_its_lines_out() {
    let store = store_or_skip!("legacy_order_item");
    let record = order_with_history();
    let pk = keys::order_key(&shop(), &record.order_id);
    // As written before the lines had an item of their own: all in the doc.
    store
        .client()
        .put_item()
        .table_name(store.table_name())
        .item("pk", AttributeValue::S(pk.clone()))
        .item("sk", AttributeValue::S(keys::ORDER_SK.into()))
        .item("entity_type", AttributeValue::S("ORDER".into()))
        .item("version", AttributeValue::N("3".into()))
        .item(
            "doc",
            AttributeValue::S(serde_json::to_string(&record).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let read = read_order(&store, "legacy-1").await;
    assert!(!read.order_lines_stored, "no lines item yet");
    let order = read.order.unwrap();
    assert_eq!((&order.value, order.version), (&record, 3));

    let outcome = store
        .write(
            &shop(),
            WriteSet {
                order: Some(
                    OrderWrite::of(order, read.order_lines_stored)
                        .with_refunds_stored(read.order_refunds_stored),
                ),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
    let state = raw_item(&store, &pk, keys::ORDER_SK).await.unwrap();
    let lines = raw_item(&store, &pk, keys::ORDER_LINES_SK).await;
    assert!(lines.is_some(), "the lines moved to their own item");
    let doc = match state.get("doc") {
        Some(AttributeValue::S(doc)) => doc.clone(),
        other => panic!("doc: {other:?}"),
    };
    assert!(!doc.contains("l-2") && !doc.contains("r-1"), "{doc}");
    assert_eq!(n(&state, "line_count"), "2");
    assert_eq!(n(&state, "refund_count"), "2");
    assert!(
        !state.contains_key("refunds"),
        "the refunds moved to their items"
    );
    for refund in ["r-1", "r-2"] {
        let sk = format!("REFUND#{refund}");
        assert!(raw_item(&store, &pk, &sk).await.is_some(), "{sk}");
    }

    let read = read_order(&store, "legacy-1").await;
    assert!(read.order_lines_stored);
    assert_eq!(read.order_refunds_stored, 2);
    let order = read.order.unwrap();
    assert_eq!((&order.value, order.version), (&record, 4));
}

#[tokio::test]
async fn an_orders_lines_are_written_once_and_its_state_carries_the_rest() {
    let store = store_or_skip!("order_lines_once");
    let mut record = order_with_history();
    record.order_id = OrderId::parse("o-9").unwrap();
    let pk = keys::order_key(&shop(), &record.order_id);
    let write = |record: OrderRecord, version: u64, stored: bool| WriteSet {
        order: Some(OrderWrite {
            record,
            expected_version: version,
            lines_stored: stored,
            refunds_stored: if stored { 2 } else { 0 },
        }),
        ..WriteSet::default()
    };
    store
        .write(&shop(), write(record.clone(), 0, false))
        .await
        .unwrap();
    // Later writes leave the lines item alone: a changed copy of the lines
    // in the record (which never happens) would not reach it.
    let mut later = record.clone();
    later.lines[0].quantity = 99;
    later.released = true;
    store.write(&shop(), write(later, 1, true)).await.unwrap();
    let read = read_order(&store, "o-9").await;
    let order = read.order.unwrap().value;
    assert_eq!(order.lines, record.lines, "the lines as first written");
    assert!(order.released);
    assert_eq!(order.refunds, record.refunds);
    let state = raw_item(&store, &pk, keys::ORDER_SK).await.unwrap();
    assert!(cashback_store::dynamo::size::item_size(&state) < 1024);
}

#[tokio::test]
async fn an_order_whose_state_kept_its_refunds_as_rows_reads_and_its_next_write_moves_them_to_items(
) {
    let store = store_or_skip!("refund_rows_order");
    let mut record = order_with_history();
    record.order_id = OrderId::parse("rows-1").unwrap();
    let pk = keys::order_key(&shop(), &record.order_id);
    // As the layout before refund items wrote it: the rows on the state.
    let write = OrderWrite {
        record: record.clone(),
        expected_version: 2,
        lines_stored: false,
        refunds_stored: 0,
    };
    let (mut state, lines) = cashback_store::dynamo::encode_order(&shop(), &write).unwrap();
    state.remove("refund_count");
    state.insert(
        "refunds".into(),
        AttributeValue::S(r#"[["r-1",[["l-1",1]],null],["r-2",null,"0.5"]]"#.into()),
    );
    for item in [state, lines.unwrap()] {
        store
            .client()
            .put_item()
            .table_name(store.table_name())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let read = read_order(&store, "rows-1").await;
    assert_eq!(read.order_refunds_stored, 0, "no refund items yet");
    let order = read.order.unwrap();
    assert_eq!((&order.value, order.version), (&record, 3));

    let outcome = store
        .write(
            &shop(),
            WriteSet {
                order: Some(
                    OrderWrite::of(order, read.order_lines_stored)
                        .with_refunds_stored(read.order_refunds_stored),
                ),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
    let state = raw_item(&store, &pk, keys::ORDER_SK).await.unwrap();
    assert!(!state.contains_key("refunds"), "the rows left the state");
    assert_eq!(n(&state, "refund_count"), "2");
    let read = read_order(&store, "rows-1").await;
    assert_eq!(read.order_refunds_stored, 2);
    let order = read.order.unwrap();
    assert_eq!((&order.value, order.version), (&record, 4));
}

#[tokio::test]
async fn a_refund_recorded_before_refuses_a_second_write_of_it_as_a_duplicate() {
    let store = store_or_skip!("refund_item_guard");
    let mut record = order_with_history();
    record.order_id = OrderId::parse("guard-1").unwrap();
    let write = |record: OrderRecord, version: u64, refunds_stored: usize| WriteSet {
        order: Some(OrderWrite {
            record,
            expected_version: version,
            lines_stored: version > 0,
            refunds_stored,
        }),
        ..WriteSet::default()
    };
    let first = store
        .write(&shop(), write(record.clone(), 0, 0))
        .await
        .unwrap();
    assert_eq!(first, WriteOutcome::Committed);
    // At the version read, but naming r-2 as new again: its item refuses.
    let mut later = record.clone();
    later.released = true;
    let again = store.write(&shop(), write(later, 1, 1)).await.unwrap();
    assert_eq!(again, WriteOutcome::Duplicate { response: None });
    let read = read_order(&store, "guard-1").await;
    let order = read.order.unwrap();
    assert_eq!(
        (order.value.released, order.version),
        (false, 1),
        "nothing written"
    );
    assert_eq!(order.value.refunds, record.refunds);
}
