//! Constructors for what the use cases hand the store: the reads they make
//! most (one account, one order, one coupon, one owner) and an account
//! written back on the version read.
//!
//! An account is always written with the time its next reminder is due
//! (the reminder index moves with it), so [`AccountWrite::new`] asks for
//! the program and computes it: no use case can forget it.

use cashback_core::ids::{Code, CustomerId, Email, OrderId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;
use cashback_core::reminders::next_reminder;

use crate::store::{AccountWrite, CodeChange, ReadRequest, Versioned, WriteSet};

impl ReadRequest {
    /// One customer's account.
    pub fn account(customer: &CustomerId) -> ReadRequest {
        ReadRequest::accounts(vec![customer.clone()])
    }

    /// Several customers' accounts.
    pub fn accounts(customers: Vec<CustomerId>) -> ReadRequest {
        ReadRequest {
            accounts: customers,
            ..ReadRequest::default()
        }
    }

    /// One order's record.
    pub fn order(order: OrderId) -> ReadRequest {
        ReadRequest {
            order: Some(order),
            ..ReadRequest::default()
        }
    }

    /// One cashback coupon.
    pub fn coupon(code: &Code) -> ReadRequest {
        ReadRequest {
            coupons: vec![code.clone()],
            ..ReadRequest::default()
        }
    }

    /// Who a balance code belongs to.
    pub fn code_owner(code: &Code) -> ReadRequest {
        ReadRequest {
            code_owners: vec![code.clone()],
            ..ReadRequest::default()
        }
    }

    /// Who an email belongs to (the latest account that used it).
    pub fn email_owner(email: &Email) -> ReadRequest {
        ReadRequest {
            email_owners: vec![email.clone()],
            ..ReadRequest::default()
        }
    }
}

impl AccountWrite {
    /// `account` written over `expected_version` (0 creates it), with the
    /// time the program says its next reminder is due; no entries, and its
    /// code unchanged.
    pub fn new(program: &Program, account: Account, expected_version: u64) -> AccountWrite {
        AccountWrite {
            reminder_due_at: next_reminder(program, &account).map(|due| due.due_at),
            account,
            expected_version,
            entries: Vec::new(),
            code_change: None,
        }
    }

    /// An account as read (and changed since), written back over the
    /// version it was read at.
    pub fn of(program: &Program, read: Versioned<Account>) -> AccountWrite {
        AccountWrite::new(program, read.value, read.version)
    }

    /// The same write, with the ledger entries that got the account there.
    pub fn with_entries(self, entries: Vec<LedgerEntry>) -> AccountWrite {
        AccountWrite { entries, ..self }
    }

    /// The same write, changing the account's code (or not, with None).
    pub fn with_code_change(self, code_change: Option<CodeChange>) -> AccountWrite {
        AccountWrite {
            code_change,
            ..self
        }
    }
}

impl WriteSet {
    /// One account's write and nothing else.
    pub fn account(write: AccountWrite) -> WriteSet {
        WriteSet {
            accounts: vec![write],
            ..WriteSet::default()
        }
    }
}
