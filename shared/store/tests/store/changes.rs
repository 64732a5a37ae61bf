//! The in-memory store's change log: what the table's stream would carry.

use cashback_app::changes::ChangeKind;
use cashback_app::store::{AccountWrite, Store, WriteSet};
use cashback_core::ledger::Account;
use cashback_store::MemoryStore;
use cashback_test_support::fixtures::{customer, program, shop, t0, usd};

#[tokio::test]
async fn each_committed_entry_and_account_write_is_logged_once_in_order() {
    let store = MemoryStore::new();
    let program = program();
    let mut account = Account::open(shop(), customer("c1"), program.currency);
    let entries = account
        .adjust(usd("5"), "goodwill", "k1", &program, t0())
        .expect("credit")
        .entries;
    let first = AccountWrite::new(&program, account.clone(), 0).with_entries(entries.clone());
    store
        .write(&shop(), WriteSet::account(first))
        .await
        .expect("write");

    let changes = store.take_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[0].kind,
        ChangeKind::Entry(Box::new(entries[0].clone()))
    );
    assert!(matches!(
        &changes[1].kind,
        ChangeKind::Account { before: None, after: Some(after) } if after.available == usd("5")
    ));
    assert!(changes[1].is_after(&changes[0].sequence));
    assert!(store.take_changes().is_empty(), "taken changes are gone");

    // An account written without entries (a code change, say) is one change.
    let again = AccountWrite::new(&program, account, 1);
    store
        .write(&shop(), WriteSet::account(again))
        .await
        .expect("write");
    let changes = store.take_changes();
    assert_eq!(changes.len(), 1);
    assert!(matches!(
        &changes[0].kind,
        ChangeKind::Account {
            before: Some(_),
            after: Some(_)
        }
    ));
}
