//! Balances and codes moved over from another loyalty app.
//!
//! A merchant leaving another app exports what its customers hold: a balance,
//! perhaps a code they already use at checkout, perhaps cashback still pending
//! with its release date. This module reads such a file, CSV with a header
//! row or JSON lines, and checks every row before anything is written, so a
//! dry run can list every bad row with its line and reason and a real run
//! starts only from a clean file.
//!
//! Columns (CSV header names or JSON keys, case-insensitive):
//!
//! | column               | required | meaning                                                  |
//! |----------------------|----------|----------------------------------------------------------|
//! | `customer_id`        | yes      | the platform's customer id                               |
//! | `email`              | yes      | the customer's email                                     |
//! | `balance`            | yes      | spendable balance in the shop's currency, `12.50`        |
//! | `code`               | no       | a code the customer already uses, kept as theirs         |
//! | `pending`            | no       | cashback not yet released                                |
//! | `pending_release_at` | with `pending` | when it releases: RFC 3339 or `YYYY-MM-DD` (UTC midnight) |
//! | `currency`           | no       | if present, must be the shop's currency                  |
//! | `birthday`           | no       | `MM-DD`, or `YYYY-MM-DD` whose year is dropped (bonuses) |
//!
//! Other columns are ignored and named in the plan, so an export from another
//! app can be used as it is and a misspelt column does not go unnoticed.
//!
//! A checked row is credited by [`apply_import`]: the balance as a
//! merchant credit marked as imported ([`IMPORT_NOTE`]), the pending amount
//! as pending cashback on a record of its own ([`import_order_id`]) that
//! the release job releases on its date like an order's. The entries are
//! keyed `import:{customer}`, the row's business key.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::bonuses::{Birthday, BirthdayRefused, BirthdaySource};
use crate::ids::{Code, CustomerId, Email, IdError, OrderId};
use crate::ledger::{Account, Applied, Deltas, EntryKind, Journal, LedgerError, Lot};
use crate::money::{Currency, Money, MoneyError};
use crate::orders::OrderRecord;
use crate::program::Program;

/// How the import file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// Comma- (or semicolon-, as spreadsheets in many locales write it)
    /// separated values with a header row; RFC 4180 quoting.
    Csv,
    /// One JSON object per line; blank lines are skipped.
    JsonLines,
}

/// One customer's migrated holdings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The line of the file where the row starts (1-based, header included),
    /// so a report can point the merchant at it.
    pub line: usize,
    /// The account the holdings are credited to; also the row's key, so a
    /// second run of the same file credits nobody twice.
    pub customer: CustomerId,
    /// Where the customer's emails go.
    pub email: Email,
    /// Spendable at once; zero or more.
    pub balance: Money,
    /// The code the customer already uses at checkout, claimed as theirs.
    pub code: Option<Code>,
    /// Cashback still held back by the old app, released on its own date.
    pub pending: Option<PendingImport>,
    /// The customer's birthday as the old app kept it: month and day only.
    pub birthday: Option<Birthday>,
}

/// Cashback migrated as pending: it becomes spendable at `release_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingImport {
    /// More than zero.
    pub amount: Money,
    /// May be in the past: the next release run then releases it.
    pub release_at: DateTime<Utc>,
}

/// Why a row cannot be imported. Every row is checked; the file is imported
/// only when none has a problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A CSV row with more or fewer fields than the header.
    #[error("has {found} fields where the header has {expected}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A JSON line that is not a JSON object.
    #[error("is not a JSON object: {0}")]
    NotAnObject(String),
    /// A required value is empty or absent.
    #[error("has no {0}")]
    Missing(&'static str),
    /// The customer id cannot be a key.
    #[error("customer_id: {0}")]
    CustomerId(IdError),
    /// The email is not an address.
    #[error("email is not an email address")]
    Email,
    /// The code cannot be a code.
    #[error("code: {0}")]
    Code(IdError),
    /// An amount that is not an exact amount of the shop's currency.
    #[error("{column}: {source}")]
    Amount {
        /// The column holding the amount.
        column: &'static str,
        /// What is wrong with it.
        source: MoneyError,
    },
    /// Balances and pending amounts are never negative: debt is not migrated.
    #[error("{0} is negative")]
    Negative(&'static str),
    /// A pending amount needs a release date, and a release date an amount.
    #[error("pending and pending_release_at go together")]
    PendingWithoutDate,
    /// The release date is neither RFC 3339 nor `YYYY-MM-DD`.
    #[error("pending_release_at {0:?} is not a date (RFC 3339 or YYYY-MM-DD)")]
    Date(String),
    /// The birthday is not a day of the year (`MM-DD` or `YYYY-MM-DD`).
    #[error("birthday {0:?} is not a day of the year (MM-DD or YYYY-MM-DD)")]
    Birthday(String),
    /// The row names another currency than the shop's.
    #[error("currency {found:?} is not the shop's currency {expected}")]
    Currency {
        /// The shop's currency.
        expected: Currency,
        /// What the row says.
        found: String,
    },
    /// The same customer appears twice: which row holds the truth is not
    /// for the importer to guess.
    #[error("customer already appears on line {first_line}")]
    DuplicateCustomer {
        /// The earlier row.
        first_line: usize,
    },
    /// Two customers cannot hold one code.
    #[error("code already appears on line {first_line}")]
    DuplicateCode {
        /// The earlier row.
        first_line: usize,
    },
}

/// The note on every imported entry, so the history says where the money
/// came from.
pub const IMPORT_NOTE: &str = "imported from another app";

/// The business key of a customer's import: their entries' key, and the
/// guard that makes a second run of the same row change nothing.
pub fn import_key(customer: &CustomerId) -> String {
    format!("import:{customer}")
}

/// The record that holds a customer's imported pending cashback until its
/// release date: `import:{customer}`, or `import:` and a SHA-256 of the id
/// when that would be too long for an order id. A platform's order ids
/// (numbers, or the generic scheme's ids) never start so.
pub fn import_order_id(customer: &CustomerId) -> Result<OrderId, IdError> {
    OrderId::parse(&import_key(customer)).or_else(|_| {
        OrderId::parse(&format!(
            "import:{}",
            hex::encode(Sha256::digest(customer.as_str().as_bytes()))
        ))
    })
}

/// Why a checked row could not be credited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The ledger refused the credit (out of range, another currency, the
    /// account of someone else).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The pending record's id could not be made from the customer id.
    #[error("the pending record cannot be named: {0}")]
    RecordId(IdError),
    /// The birthday was not stored.
    #[error(transparent)]
    Birthday(#[from] BirthdayRefused),
}

impl From<MoneyError> for ImportError {
    fn from(error: MoneyError) -> ImportError {
        ImportError::Ledger(LedgerError::Money(error))
    }
}

/// What crediting one row did: the account's entries, and the record of
/// its pending cashback when it brought some (to be written with the
/// account; the release job releases it on its date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportApplied {
    /// The entries and effects on the customer's account.
    pub applied: Applied,
    /// The pending cashback's record, new.
    pub pending: Option<OrderRecord>,
}

/// Credits one checked row to its customer's account (new or existing):
/// - the balance as available balance, a lot of its own that expires as
///   the program's balance does, counted in lifetime issued, recorded as
///   an [`EntryKind::Adjust`] entry noted [`IMPORT_NOTE`] (a migrated
///   balance is the customer's: it pays no clawback debt, like a
///   merchant's credit);
/// - the pending amount as pending cashback on the record
///   [`import_order_id`], released at its date (a date already past is
///   released by the next release run);
/// - the email, when the account has none yet.
///
/// The code is not set here: claiming it is the store's (it must be free).
/// Calling it twice credits twice: the caller guards the write with
/// [`import_key`].
pub fn apply_import(
    account: &mut Account,
    row: &ImportRow,
    program: &Program,
    now: DateTime<Utc>,
) -> Result<ImportApplied, ImportError> {
    let order_id = import_order_id(&row.customer).map_err(ImportError::RecordId)?;
    if account.customer != row.customer {
        return Err(LedgerError::CustomerMismatch { order: order_id }.into());
    }
    account.same_currency(row.balance)?;
    if let Some(birthday) = row.birthday {
        // The merchant's data, as from the admin API: no waiting time.
        account.set_birthday(birthday, BirthdaySource::Import, &program.bonuses, now)?;
    }
    let mut journal = Journal::new(import_key(&row.customer), now, account.currency);
    let note = format!("{IMPORT_NOTE} (line {})", row.line);
    if row.balance.is_positive() {
        account.available = account.available.checked_add(row.balance)?;
        account.add_lot(now, Lot::expiry(program, now), row.balance)?;
        account.lifetime_issued = account.lifetime_issued.checked_add(row.balance)?;
        journal.record(
            EntryKind::Adjust,
            None,
            Deltas {
                available: Some(row.balance),
                note: Some(note.clone()),
                ..Deltas::default()
            },
        );
    }
    let mut record = None;
    if let Some(pending) = row.pending.filter(|p| p.amount.is_positive()) {
        account.same_currency(pending.amount)?;
        account.pending = account.pending.checked_add(pending.amount)?;
        account.lifetime_issued = account.lifetime_issued.checked_add(pending.amount)?;
        journal.record(
            EntryKind::Adjust,
            Some(&order_id),
            Deltas {
                pending: Some(pending.amount),
                note: Some(format!(
                    "{note}, pending until {}",
                    pending.release_at.format("%Y-%m-%d")
                )),
                ..Deltas::default()
            },
        );
        let mut held = OrderRecord::new(order_id, account.currency);
        held.customer = Some(row.customer.clone());
        held.placed_at = Some(now);
        held.pending = pending.amount;
        // The release job reads due work from its last finished hour on: a
        // date already past is released at the next run, not lost before it.
        held.release_at = Some(pending.release_at.max(now));
        record = Some(held);
    }
    if account.email.is_none() {
        account.email = Some(row.email.clone());
    }
    Ok(ImportApplied {
        applied: journal.finish(),
        pending: record,
    })
}

/// A bad row and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The line the row starts on (1-based, header included).
    pub line: usize,
    /// What is wrong.
    pub error: RowError,
}

/// Why the file as a whole cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportFileError {
    /// Nothing but blank lines (or a CSV header alone).
    #[error("the file has no rows")]
    Empty,
    /// The CSV header lacks a required column.
    #[error("the header has no {0} column")]
    MissingColumn(&'static str),
    /// The CSV header names a column twice.
    #[error("the header names {0} twice")]
    DuplicateColumn(String),
    /// A quoted CSV field is never closed: everything after it would be
    /// one field.
    #[error("the quoted field starting on line {0} is never closed")]
    UnclosedQuote(usize),
    /// More rows than one import takes; split the file.
    #[error("the file has more than {0} rows; split it")]
    TooManyRows(usize),
}

/// The checked file: what would be imported and what stops it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportPlan {
    /// Rows that passed every check, in file order.
    pub rows: Vec<ImportRow>,
    /// Every bad row, in file order. Nothing is imported unless empty.
    pub problems: Vec<RowProblem>,
    /// Columns the file has that the import does not read.
    pub ignored_columns: Vec<String>,
}

/// What a clean plan would credit, for the dry run's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportTotals {
    /// Rows that would be imported.
    pub customers: usize,
    /// Sum of spendable balances.
    pub balance: Money,
    /// Sum of pending amounts.
    pub pending: Money,
    /// Rows that bring an existing code.
    pub codes: usize,
}

impl ImportPlan {
    /// True when every row passed: the file may be imported.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Sums over the rows that passed; an error only if the sums leave
    /// the range of an amount.
    pub fn totals(&self, currency: Currency) -> Result<ImportTotals, MoneyError> {
        let zero = Money::zero(currency);
        let mut totals = ImportTotals {
            customers: self.rows.len(),
            balance: zero,
            pending: zero,
            codes: 0,
        };
        for row in &self.rows {
            totals.balance = totals.balance.checked_add(row.balance)?;
            if let Some(pending) = row.pending {
                totals.pending = totals.pending.checked_add(pending.amount)?;
            }
            totals.codes += usize::from(row.code.is_some());
        }
        Ok(totals)
    }
}

const COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "balance",
    "code",
    "pending",
    "pending_release_at",
    "currency",
    "birthday",
];
const REQUIRED: [&str; 3] = ["customer_id", "email", "balance"];

/// Reads and checks a whole import file in the shop's `currency`, refusing
/// files of more than `max_rows` rows.
pub fn plan_import(
    text: &str,
    format: ImportFormat,
    currency: Currency,
    max_rows: usize,
) -> Result<ImportPlan, ImportFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (records, ignored_columns) = match format {
        ImportFormat::Csv => csv_records(text, max_rows)?,
        ImportFormat::JsonLines => (json_records(text, max_rows)?, Vec::new()),
    };
    if records.is_empty() {
        return Err(ImportFileError::Empty);
    }
    let mut plan = ImportPlan {
        ignored_columns,
        ..ImportPlan::default()
    };
    let mut customers: HashMap<CustomerId, usize> = HashMap::new();
    let mut codes: HashMap<Code, usize> = HashMap::new();
    for (line, fields) in records {
        let row = fields.and_then(|fields| check_row(line, &fields, currency));
        let row = row.and_then(|row| {
            if let Some(first_line) = customers.get(&row.customer) {
                return Err(RowError::DuplicateCustomer {
                    first_line: *first_line,
                });
            }
            if let Some(first_line) = row.code.as_ref().and_then(|code| codes.get(code)) {
                return Err(RowError::DuplicateCode {
                    first_line: *first_line,
                });
            }
            Ok(row)
        });
        match row {
            Ok(row) => {
                customers.insert(row.customer.clone(), line);
                if let Some(code) = &row.code {
                    codes.insert(code.clone(), line);
                }
                plan.rows.push(row);
            }
            Err(error) => plan.problems.push(RowProblem { line, error }),
        }
    }
    Ok(plan)
}

/// A row's values by column name, or why the row could not even be split.
type Fields = Result<BTreeMap<&'static str, String>, RowError>;

fn check_row(
    line: usize,
    fields: &BTreeMap<&'static str, String>,
    currency: Currency,
) -> Result<ImportRow, RowError> {
    let value = |column: &'static str| {
        fields
            .get(column)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required = |column: &'static str| value(column).ok_or(RowError::Missing(column));

    let customer = CustomerId::parse(required("customer_id")?).map_err(RowError::CustomerId)?;
    let email = Email::parse(required("email")?).map_err(|_| RowError::Email)?;
    if let Some(found) = value("currency") {
        if !found.eq_ignore_ascii_case(currency.code()) {
            return Err(RowError::Currency {
                expected: currency,
                found: found.to_string(),
            });
        }
    }
    let amount = |column: &'static str, raw: &str| {
        let money =
            Money::parse(raw, currency).map_err(|source| RowError::Amount { column, source })?;
        if money.is_negative() {
            return Err(RowError::Negative(column));
        }
        Ok(money)
    };
    let balance = amount("balance", required("balance")?)?;
    let code = value("code")
        .map(Code::parse)
        .transpose()
        .map_err(RowError::Code)?;
    let pending = match (value("pending"), value("pending_release_at")) {
        (None, None) => None,
        (Some(raw), Some(date)) => {
            let amount = amount("pending", raw)?;
            let release_at = parse_date(date)?;
            // A zero pending amount is no pending at all.
            (!amount.is_zero()).then_some(PendingImport { amount, release_at })
        }
        _ => return Err(RowError::PendingWithoutDate),
    };
    let birthday = value("birthday")
        .map(|raw| Birthday::parse(raw).map_err(|_| RowError::Birthday(raw.to_string())))
        .transpose()?;
    Ok(ImportRow {
        line,
        customer,
        email,
        balance,
        code,
        pending,
        birthday,
    })
}

fn parse_date(raw: &str) -> Result<DateTime<Utc>, RowError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .ok_or_else(|| RowError::Date(raw.to_string()))
}

type CsvRecords = (Vec<(usize, Fields)>, Vec<String>);

fn csv_records(text: &str, max_rows: usize) -> Result<CsvRecords, ImportFileError> {
    let separator = sniff_separator(text);
    let mut records = split_csv(text, separator)?.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(ImportFileError::Empty);
    };
    let mut columns: Vec<Option<&'static str>> = Vec::with_capacity(header.len());
    let mut ignored = Vec::new();
    for name in &header {
        let name = name.trim().to_ascii_lowercase();
        let known = COLUMNS.iter().copied().find(|column| *column == name);
        if known.is_some() && columns.contains(&known) {
            return Err(ImportFileError::DuplicateColumn(name));
        }
        if known.is_none() {
            ignored.push(name);
        }
        columns.push(known);
    }
    for column in REQUIRED {
        if !columns.contains(&Some(column)) {
            return Err(ImportFileError::MissingColumn(column));
        }
    }
    let mut rows = Vec::new();
    for (line, values) in records {
        if rows.len() == max_rows {
            return Err(ImportFileError::TooManyRows(max_rows));
        }
        let fields = if values.len() == columns.len() {
            Ok(columns
                .iter()
                .zip(values)
                .filter_map(|(column, value)| column.map(|column| (column, value)))
                .collect())
        } else {
            Err(RowError::FieldCount {
                expected: columns.len(),
                found: values.len(),
            })
        };
        rows.push((line, fields));
    }
    Ok((rows, ignored))
}

/// Spreadsheets in locales with a decimal comma write `;` between fields.
fn sniff_separator(text: &str) -> char {
    let header = text.lines().next().unwrap_or_default();
    if header.contains(';') && !header.contains(',') {
        ';'
    } else {
        ','
    }
}

/// RFC 4180: fields split on `separator`, double quotes around a field that
/// holds a separator, quote or line break, `""` for a quote inside one; CRLF
/// or LF between records. Blank lines are skipped. Each record comes with
/// the line it starts on.
fn split_csv(text: &str, separator: char) -> Result<Vec<(usize, Vec<String>)>, ImportFileError> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut quoted = false;
    let mut quote_line = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                quote_line = line;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                if !is_blank(&record) {
                    records.push((record_line, std::mem::take(&mut record)));
                }
                record.clear();
                line += 1;
                record_line = line;
            }
            c if c == separator => record.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(ImportFileError::UnclosedQuote(quote_line));
    }
    record.push(field);
    if !is_blank(&record) {
        records.push((record_line, record));
    }
    Ok(records)
}

fn is_blank(record: &[String]) -> bool {
    record.len() == 1 && record[0].trim().is_empty()
}

fn json_records(text: &str, max_rows: usize) -> Result<Vec<(usize, Fields)>, ImportFileError> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        if rows.len() == max_rows {
            return Err(ImportFileError::TooManyRows(max_rows));
        }
        rows.push((index + 1, json_fields(raw)));
    }
    Ok(rows)
}

fn json_fields(raw: &str) -> Fields {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw).map_err(|error| RowError::NotAnObject(error.to_string()))?;
    let mut fields = BTreeMap::new();
    for (key, value) in object {
        let key = key.to_ascii_lowercase();
        let Some(column) = COLUMNS.iter().copied().find(|column| *column == key) else {
            continue;
        };
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => text,
            // A JSON number prints as the shortest form that reads back to
            // the same double, so "12.35" written as 12.35 comes back as
            // "12.35"; Money::parse then refuses anything finer than cents.
            serde_json::Value::Number(number) => number.to_string(),
            other => other.to_string(),
        };
        fields.insert(column, text);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn money(amount: &str) -> Money {
        Money::parse(amount, usd()).unwrap()
    }

    fn plan(text: &str) -> ImportPlan {
        plan_import(text, ImportFormat::Csv, usd(), 1_000).unwrap()
    }

    #[test]
    fn a_clean_csv_becomes_rows_with_their_lines() {
        let plan = plan(
            "customer_id,email,balance,code,pending,pending_release_at\n\
             101,Ann@Example.com,12.50,ANN-OLD,,\n\
             \n\
             102,bo@example.com,0,,4.20,2026-12-24\n",
        );
        assert!(plan.is_clean(), "{:?}", plan.problems);
        assert_eq!(plan.rows.len(), 2);
        let ann = &plan.rows[0];
        assert_eq!(ann.line, 2);
        assert_eq!(ann.email.as_str(), "ann@example.com");
        assert_eq!(ann.balance, money("12.50"));
        assert_eq!(ann.code.as_ref().map(Code::as_str), Some("ann-old"));
        assert_eq!(ann.pending, None);
        let bo = &plan.rows[1];
        assert_eq!(bo.line, 4);
        let pending = bo.pending.unwrap();
        assert_eq!(pending.amount, money("4.20"));
        assert_eq!(pending.release_at.to_rfc3339(), "2026-12-24T00:00:00+00:00");
        let totals = plan.totals(usd()).unwrap();
        assert_eq!(totals.customers, 2);
        assert_eq!(totals.balance, money("12.50"));
        assert_eq!(totals.pending, money("4.20"));
        assert_eq!(totals.codes, 1);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_reason() {
        let plan = plan(
            "customer_id,email,balance,code,pending,pending_release_at\n\
             1,a@example.com,-1.00,,,\n\
             2,not-an-email,1.00,,,\n\
             3,c@example.com,1.005,,,\n\
             4,d@example.com,1.00,,2.00,\n\
             5,e@example.com,1.00,,2.00,next week\n\
             6,f@example.com,1.00,SHARED,,\n\
             7,g@example.com,1.00,shared,,\n\
             6,h@example.com,1.00,,,\n\
             8,i@example.com,1.00\n\
             ,j@example.com,1.00,,,\n\
             9#x,k@example.com,1.00,,,\n\
             10,l@example.com,1.00,no spaces,,\n",
        );
        let found: Vec<(usize, String)> = plan
            .problems
            .iter()
            .map(|p| (p.line, p.error.to_string()))
            .collect();
        assert_eq!(
            found,
            vec![
                (2, "balance is negative".to_string()),
                (3, "email is not an email address".to_string()),
                (
                    4,
                    "balance: 1.005 has more decimals than USD allows (2)".to_string()
                ),
                (5, "pending and pending_release_at go together".to_string()),
                (
                    6,
                    "pending_release_at \"next week\" is not a date (RFC 3339 or YYYY-MM-DD)"
                        .to_string()
                ),
                (8, "code already appears on line 7".to_string()),
                (9, "customer already appears on line 7".to_string()),
                (10, "has 3 fields where the header has 6".to_string()),
                (11, "has no customer_id".to_string()),
                (
                    12,
                    "customer_id: customer id contains a character that is not allowed".to_string()
                ),
                (
                    13,
                    "code: code contains a character that is not allowed".to_string()
                ),
            ]
        );
        assert_eq!(plan.rows.len(), 1, "only line 7 is clean");
        assert!(!plan.is_clean());
    }

    #[test]
    fn quoted_fields_semicolons_crlf_and_a_byte_order_mark_are_read() {
        let text = "\u{feff}Customer_ID;EMAIL;Balance;Note\r\n\
                    \"1\";\"a@example.com\";\"3.10\";\"said \"\"hi\"\";\r\nover two lines\"\r\n";
        let plan = plan(text);
        assert!(plan.is_clean(), "{:?}", plan.problems);
        assert_eq!(plan.rows[0].balance, money("3.10"));
        assert_eq!(plan.ignored_columns, vec!["note".to_string()]);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_refused_whole() {
        let refuse = |text: &str| plan_import(text, ImportFormat::Csv, usd(), 2).unwrap_err();
        assert_eq!(refuse(""), ImportFileError::Empty);
        assert_eq!(
            refuse("customer_id,email,balance\n"),
            ImportFileError::Empty
        );
        assert_eq!(
            refuse("customer_id,email\n1,a@example.com\n"),
            ImportFileError::MissingColumn("balance")
        );
        assert_eq!(
            refuse("customer_id,email,balance,Email\n"),
            ImportFileError::DuplicateColumn("email".to_string())
        );
        assert_eq!(
            refuse("customer_id,email,balance\n1,\"a@example.com,1\n2,b@example.com,1\n"),
            ImportFileError::UnclosedQuote(2)
        );
        assert_eq!(
            refuse("customer_id,email,balance\n1,a@x.io,1\n2,b@x.io,1\n3,c@x.io,1\n"),
            ImportFileError::TooManyRows(2)
        );
    }

    #[test]
    fn json_lines_take_strings_or_numbers_and_report_bad_lines() {
        let text = r#"{"customer_id":"1","email":"a@example.com","balance":12.35,"code":null}

{"customer_id":2,"email":"b@example.com","balance":"0.10","pending":"1","pending_release_at":"2026-12-01T10:00:00+01:00","extra":true}
[1,2]
{"customer_id":"3","email":"c@example.com","balance":0.1234}
{"customer_id":"4","email":"d@example.com","balance":"1","currency":"EUR"}"#;
        let plan = plan_import(text, ImportFormat::JsonLines, usd(), 100).unwrap();
        assert_eq!(plan.rows.len(), 2);
        assert_eq!(plan.rows[0].balance, money("12.35"));
        assert_eq!(plan.rows[1].line, 3);
        assert_eq!(plan.rows[1].customer.as_str(), "2");
        assert_eq!(
            plan.rows[1].pending.unwrap().release_at.to_rfc3339(),
            "2026-12-01T09:00:00+00:00"
        );
        let lines: Vec<usize> = plan.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(matches!(plan.problems[0].error, RowError::NotAnObject(_)));
        assert!(matches!(
            plan.problems[1].error,
            RowError::Amount {
                column: "balance",
                ..
            }
        ));
        assert!(matches!(plan.problems[2].error, RowError::Currency { .. }));
    }

    #[test]
    fn a_zero_pending_amount_is_no_pending() {
        let plan = plan(
            "customer_id,email,balance,pending,pending_release_at\n1,a@example.com,1,0,2026-01-01\n",
        );
        assert_eq!(plan.rows[0].pending, None);
    }

    fn demo_program() -> Program {
        let mut program: Program = serde_json::from_value(serde_json::json!({
            "currency": "USD",
            "earning": {"merchant_percent": "10"}
        }))
        .unwrap();
        program.expiry_days = Some(365);
        program
    }

    #[test]
    fn a_birthday_column_is_kept_as_month_and_day_and_a_bad_one_refuses_the_row() {
        let plan = plan(
            "customer_id,email,balance,birthday\n\
             101,ann@example.com,1.00,1990-02-29\n\
             102,bo@example.com,1.00,04-31\n\
             103,cy@example.com,1.00,\n",
        );
        assert_eq!(plan.rows.len(), 2, "{:?}", plan.problems);
        assert_eq!(plan.problems.len(), 1);
        assert_eq!(plan.problems[0].line, 3);
        assert_eq!(
            plan.problems[0].error,
            RowError::Birthday("04-31".to_string())
        );
        let ann = &plan.rows[0];
        assert_eq!(ann.birthday, Some(Birthday::new(2, 29).unwrap()));
        assert_eq!(plan.rows[1].birthday, None);
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let shop = crate::ids::ShopId::parse("demo.myshopify.com").unwrap();
        let mut account = Account::open(shop, ann.customer.clone(), usd());
        apply_import(&mut account, ann, &demo_program(), now).unwrap();
        assert_eq!(account.bonus.birthday, Some(Birthday::new(2, 29).unwrap()));
        assert_eq!(account.bonus.birthday_source, Some(BirthdaySource::Import));
    }

    #[test]
    fn an_imported_row_credits_balance_and_pending_under_its_key() {
        let plan = plan(
            "customer_id,email,balance,code,pending,pending_release_at\n\
             101,ann@example.com,12.50,ANN-OLD,4.20,2026-12-24\n",
        );
        let row = &plan.rows[0];
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let shop = crate::ids::ShopId::parse("demo.myshopify.com").unwrap();
        let mut account = Account::open(shop, row.customer.clone(), usd());
        let done = apply_import(&mut account, row, &demo_program(), now).unwrap();
        assert_eq!(account.available, money("12.50"));
        assert_eq!(account.pending, money("4.20"));
        assert_eq!(account.lifetime_issued, money("16.70"));
        assert_eq!(
            account.email.as_ref().map(Email::as_str),
            Some("ann@example.com")
        );
        // 365 days on, rounded up to the end of its 12-day expiry period,
        // as every credit.
        let year_on = DateTime::parse_from_rfc3339("2027-12-04T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(account.lots[0].expires_at, Some(year_on));
        let ids: Vec<&str> = done
            .applied
            .entries
            .iter()
            .map(|e| e.entry_id.as_str())
            .collect();
        assert_eq!(ids, vec!["import:101:0", "import:101:1"]);
        assert!(done
            .applied
            .entries
            .iter()
            .all(|e| e.kind == EntryKind::Adjust
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.starts_with(IMPORT_NOTE))));
        let record = done.pending.unwrap();
        assert_eq!(record.order_id.as_str(), "import:101");
        assert_eq!(record.customer.as_ref(), Some(&row.customer));
        assert_eq!(record.pending, money("4.20"));
        assert_eq!(crate::due::release(&record), record.release_at);
        assert_eq!(
            record.release_at.unwrap().to_rfc3339(),
            "2026-12-24T00:00:00+00:00"
        );
        account.check(&done.applied.entries).unwrap();
    }

    #[test]
    fn a_release_date_already_past_falls_due_now_and_a_long_id_is_hashed() {
        let long = "9".repeat(128);
        let plan = plan(&format!(
            "customer_id,email,balance,pending,pending_release_at\n{long},a@example.com,0,1,2020-01-01\n"
        ));
        let row = &plan.rows[0];
        let now = Utc::now();
        let shop = crate::ids::ShopId::parse("demo.myshopify.com").unwrap();
        let mut account = Account::open(shop.clone(), row.customer.clone(), usd());
        let done = apply_import(&mut account, row, &demo_program(), now).unwrap();
        let record = done.pending.unwrap();
        assert_eq!(record.release_at, Some(now));
        assert!(record.order_id.as_str().starts_with("import:"));
        assert_eq!(record.order_id.as_str().len(), 71);
        assert!(done
            .applied
            .entries
            .iter()
            .all(|e| e.available_delta.is_zero()));
        let other = CustomerId::parse("someone-else").unwrap();
        let mut wrong = Account::open(shop, other, usd());
        assert!(matches!(
            apply_import(&mut wrong, row, &demo_program(), now),
            Err(ImportError::Ledger(LedgerError::CustomerMismatch { .. }))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_a_plan_or_a_file_error_never_a_panic(text in "\\PC{0,400}") {
            for format in [ImportFormat::Csv, ImportFormat::JsonLines] {
                let _ = plan_import(&text, format, usd(), 50);
            }
        }

        #[test]
        fn quoted_fields_read_back_as_written(
            id in "[0-9]{1,8}",
            note in "[ -~\n\r]{0,40}",
        ) {
            let quoted = format!("\"{}\"", note.replace('"', "\"\""));
            let text = format!("customer_id,note,email,balance\n{id},{quoted},a@example.com,1.00\n");
            let plan = plan_import(&text, ImportFormat::Csv, usd(), 10).unwrap();
            proptest::prop_assert!(plan.is_clean(), "{:?}", plan.problems);
            proptest::prop_assert_eq!(plan.rows[0].customer.as_str(), id.as_str());
        }
    }
}
