//! Migration from another loyalty app: balances, pending cashback and the
//! codes customers already hold, from a CSV or JSON-lines file.
//!
//! - [`dry_run_import`] checks the whole file (the core's
//!   [`plan_import`]) and every code against the shop's codes, and reports
//!   every bad row with its line and reason; nothing is written.
//! - [`run_import`] imports a clean file a chunk of rows at a time. Each row
//!   is one transaction guarded by the row's business key
//!   ([`import_key`]: `import:{customer}`), as an order event is guarded by
//!   its event id: a second run of the same file, a retried call, or a run
//!   resumed after a crash credits nobody twice. The answer's `next_cursor`
//!   names the next chunk; a call that died mid-way is simply made again
//!   with the cursor it was given (rows already done are skipped as already
//!   imported).
//! - A code is claimed as the customer's balance code in the same
//!   transaction (the code index makes it theirs alone): a code that already
//!   names another customer refuses the row, and nothing of it is written.
//!   The account's change is then pushed to the platforms like any other.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tracing::{info, warn};

use cashback_core::ids::{Code, ShopId};
use cashback_core::import::{
    apply_import, import_key, plan_import, ImportFileError, ImportFormat, ImportPlan, ImportRow,
};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::retry::Attempts;
use crate::store::*;

use super::{field, known_shop};

/// The most rows one file may hold (about 1 MB of CSV, the admin API's body
/// limit); a larger export is split into several files.
pub const MAX_IMPORT_ROWS: usize = 20_000;
/// Rows one call imports when the caller does not say.
pub const DEFAULT_IMPORT_CHUNK: usize = 200;
/// The most rows one call imports: at 8 rows in flight and two round trips
/// a row, well inside API Gateway's 29 s and the function's timeout.
pub const MAX_IMPORT_CHUNK: usize = 1_000;
/// Rows in flight at once during a run.
const IN_FLIGHT: usize = 8;
/// How long a row's guard is kept: a migration is run once, and a guard
/// forgotten too early would let a stray replay credit again, so ten years.
pub const IMPORT_GUARD_DAYS: i64 = 3_660;
/// Codes read per batch during a dry run.
const CODE_BATCH: usize = 100;

/// A row that is not imported, and why, by its line in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowRefusal {
    /// The line the row starts on (1-based, header included).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What a dry run found: what a run would credit, and every bad row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCheck {
    /// True when the file can be imported as it is.
    pub clean: bool,
    /// Rows that passed every check.
    pub rows: usize,
    /// The shop's currency, which every amount is in.
    pub currency: Currency,
    /// Sum of the spendable balances of the rows that passed.
    pub balance: Decimal,
    /// Sum of their pending amounts.
    pub pending: Decimal,
    /// Rows that passed and bring an existing code.
    pub codes: usize,
    /// Columns the file has that the import does not read.
    pub ignored_columns: Vec<String>,
    /// Every bad row, in file order.
    pub problems: Vec<RowRefusal>,
}

/// What one call of a run did, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Rows in the file.
    pub rows: usize,
    /// The index (0-based, among the rows) this call started at.
    pub from: usize,
    /// Rows this call handled.
    pub processed: usize,
    /// Rows credited by this call.
    pub imported: usize,
    /// Rows an earlier run (or call) had already imported: left as they are.
    pub already_imported: usize,
    /// Rows refused, with their line and reason; nothing of them was written.
    pub refused: Vec<RowRefusal>,
    /// Balance credited by this call.
    pub balance: Decimal,
    /// Pending cashback credited by this call.
    pub pending: Decimal,
    /// The shop's currency.
    pub currency: Currency,
    /// Pass back as `cursor` with the same file for the next chunk; None
    /// when the file is done.
    pub next_cursor: Option<String>,
}

/// Checks a file and the codes it claims; writes nothing.
pub async fn dry_run_import(
    ctx: &Context,
    shop: &ShopId,
    text: &str,
    format: ImportFormat,
) -> Result<ImportCheck, AppError> {
    known_shop(ctx, shop).await?;
    let program = super::current_program(ctx, shop).await?.value;
    let plan = plan(text, format, &program)?;
    let mut problems: Vec<RowRefusal> = plan
        .problems
        .iter()
        .map(|p| RowRefusal {
            line: p.line,
            reason: p.error.to_string(),
        })
        .collect();
    let claimed: Vec<&ImportRow> = plan.rows.iter().filter(|r| r.code.is_some()).collect();
    let mut taken = Vec::new();
    for batch in claimed.chunks(CODE_BATCH) {
        let codes: Vec<_> = batch.iter().filter_map(|r| r.code.clone()).collect();
        let request = ReadRequest {
            code_owners: codes.clone(),
            coupons: codes.clone(),
            referral_owners: codes,
            ..ReadRequest::default()
        };
        let read = ctx.store.read(shop, &request).await?;
        for row in batch {
            if let Some(reason) = code_refusal(row, &read) {
                taken.push(row.line);
                problems.push(RowRefusal {
                    line: row.line,
                    reason,
                });
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    let passed: Vec<&ImportRow> = plan
        .rows
        .iter()
        .filter(|r| !taken.contains(&r.line))
        .collect();
    let sum = |pick: fn(&ImportRow) -> Decimal| passed.iter().map(|r| pick(r)).sum::<Decimal>();
    let scaled = |mut amount: Decimal| {
        amount.rescale(program.currency.minor_units());
        amount
    };
    Ok(ImportCheck {
        clean: problems.is_empty(),
        rows: passed.len(),
        currency: program.currency,
        balance: scaled(sum(|r| r.balance.amount())),
        pending: scaled(sum(|r| {
            r.pending.map_or(Decimal::ZERO, |p| p.amount.amount())
        })),
        codes: passed.iter().filter(|r| r.code.is_some()).count(),
        ignored_columns: plan.ignored_columns,
        problems,
    })
}

/// Which part of a file one call of a run imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportChunk<'a> {
    /// How the file is written.
    pub format: ImportFormat,
    /// The previous call's `next_cursor`; None to start at the first row.
    pub cursor: Option<&'a str>,
    /// Rows to import, 1 to [`MAX_IMPORT_CHUNK`]; None for
    /// [`DEFAULT_IMPORT_CHUNK`].
    pub limit: Option<usize>,
}

/// Imports the rows of a clean file from the chunk's cursor on (see the
/// module doc). A file with any bad row is refused whole, each bad row
/// named by its line.
pub async fn run_import(
    ctx: &Context,
    shop: &ShopId,
    text: &str,
    chunk: ImportChunk<'_>,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<ImportSummary, AppError> {
    let ImportChunk {
        format,
        cursor,
        limit,
    } = chunk;
    let limit = match limit {
        None => DEFAULT_IMPORT_CHUNK,
        Some(limit) if (1..=MAX_IMPORT_CHUNK).contains(&limit) => limit,
        Some(_) => {
            return Err(AppError::InvalidFields(vec![field(
                "limit",
                format!("must be a whole number from 1 to {MAX_IMPORT_CHUNK}"),
            )]))
        }
    };
    known_shop(ctx, shop).await?;
    let program = super::current_program(ctx, shop).await?.value;
    let plan = plan(text, format, &program)?;
    if !plan.is_clean() {
        return Err(AppError::InvalidFields(
            plan.problems
                .iter()
                .map(|p| field(format!("line {}", p.line), p.error.to_string()))
                .collect(),
        ));
    }
    let fingerprint = fingerprint(text);
    let from = match cursor {
        None => 0,
        Some(cursor) => parse_cursor(cursor, &fingerprint, plan.rows.len())?,
    };
    let to = from.saturating_add(limit).min(plan.rows.len());
    let rows: Vec<ImportRow> = plan.rows[from..to].to_vec();
    let program = Arc::new(program);
    let principal: Arc<str> = Arc::from(principal);
    let mut outcomes: Vec<(usize, Result<RowOutcome, AppError>)> = Vec::with_capacity(rows.len());
    let mut flying = JoinSet::new();
    for (index, row) in rows.into_iter().enumerate() {
        if flying.len() >= IN_FLIGHT {
            if let Some(done) = flying.join_next().await {
                outcomes.push(joined(done));
            }
        }
        let (ctx, shop, program, principal) = (
            ctx.clone(),
            shop.clone(),
            program.clone(),
            principal.clone(),
        );
        flying.spawn(async move {
            let outcome = import_row(&ctx, &shop, &program, &row, &principal, now).await;
            (index, outcome)
        });
    }
    while let Some(done) = flying.join_next().await {
        outcomes.push(joined(done));
    }
    outcomes.sort_by_key(|(index, _)| *index);

    let mut summary = ImportSummary {
        rows: plan.rows.len(),
        from,
        processed: 0,
        imported: 0,
        already_imported: 0,
        refused: Vec::new(),
        balance: Decimal::ZERO,
        pending: Decimal::ZERO,
        currency: program.currency,
        next_cursor: (to < plan.rows.len()).then(|| format!("{to}.{fingerprint}")),
    };
    for (index, outcome) in outcomes {
        // A failure that may pass on a retry stops the call: the caller
        // makes it again with the same cursor; the rows done are skipped.
        let outcome = outcome?;
        let Some(row) = plan.rows.get(from + index) else {
            continue;
        };
        match outcome {
            RowOutcome::Imported => {
                summary.imported += 1;
                summary.balance += row.balance.amount();
                summary.pending += row.pending.map_or(Decimal::ZERO, |p| p.amount.amount());
            }
            RowOutcome::AlreadyImported => summary.already_imported += 1,
            RowOutcome::Refused(reason) => summary.refused.push(RowRefusal {
                line: row.line,
                reason,
            }),
        }
        summary.processed += 1;
    }
    summary.balance.rescale(program.currency.minor_units());
    summary.pending.rescale(program.currency.minor_units());
    info!(
        shop = %shop,
        from,
        processed = summary.processed,
        imported = summary.imported,
        already_imported = summary.already_imported,
        refused = summary.refused.len(),
        by = %principal,
        "import chunk done"
    );
    Ok(summary)
}

fn joined(
    done: Result<(usize, Result<RowOutcome, AppError>), tokio::task::JoinError>,
) -> (usize, Result<RowOutcome, AppError>) {
    done.unwrap_or_else(|error| {
        warn!(error = %error, "an import row's task failed");
        (
            usize::MAX,
            Err(AppError::Invalid(format!(
                "an import row's task failed: {error}"
            ))),
        )
    })
}

/// How one row went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RowOutcome {
    Imported,
    AlreadyImported,
    Refused(String),
}

fn plan(text: &str, format: ImportFormat, program: &Program) -> Result<ImportPlan, AppError> {
    plan_import(text, format, program.currency, MAX_IMPORT_ROWS).map_err(
        |error: ImportFileError| AppError::InvalidFields(vec![field("file", error.to_string())]),
    )
}

/// Why a row's code cannot be theirs, if it cannot: the code index names
/// another customer, or the code is the shop's cashback coupon or someone's
/// referral code (orders carrying it would then charge this customer's
/// balance, and the platform sync would publish it as a balance code).
fn code_refusal(row: &ImportRow, read: &ReadResult) -> Option<String> {
    let code = row.code.as_ref()?;
    if read.coupons.contains_key(code) {
        return Some("code is one of the shop's cashback coupons".to_string());
    }
    if read.referral_owners.contains_key(code) {
        return Some("code is a referral code".to_string());
    }
    let owner = read.code_owners.get(code)?;
    (owner != &row.customer).then(|| "code already belongs to another customer".to_string())
}

/// A short hash of the file, in the cursor: a cursor given for one file
/// cannot skip rows of another.
fn fingerprint(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn parse_cursor(cursor: &str, fingerprint: &str, rows: usize) -> Result<usize, AppError> {
    let bad = |message: &str| AppError::InvalidFields(vec![field("cursor", message)]);
    let (index, of) = cursor
        .trim()
        .split_once('.')
        .ok_or_else(|| bad("is not a cursor this import gave"))?;
    if of != fingerprint {
        return Err(bad("was given for another file: send the same file again"));
    }
    index
        .parse::<usize>()
        .ok()
        .filter(|index| *index <= rows)
        .ok_or_else(|| bad("is not a cursor this import gave"))
}

/// Imports one row in one guarded transaction, retrying lost races.
async fn import_row(
    ctx: &Context,
    shop: &ShopId,
    program: &Program,
    row: &ImportRow,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<RowOutcome, AppError> {
    let mut attempts = Attempts::new(ctx.config.max_attempts);
    while attempts.start().is_some() {
        let request = ReadRequest {
            code_owners: row.code.iter().cloned().collect(),
            coupons: row.code.iter().cloned().collect(),
            referral_owners: row.code.iter().cloned().collect(),
            ..ReadRequest::account(&row.customer)
        };
        let mut read = ctx.store.read(shop, &request).await?;
        if let Some(reason) = code_refusal(row, &read) {
            return Ok(RowOutcome::Refused(reason));
        }
        let accounts_read = read.accounts_read();
        let existing = read.accounts.remove(&row.customer);
        let version = existing.as_ref().map_or(0, |a| a.version);
        let mut account = existing
            .map(|a| a.value)
            .unwrap_or_else(|| Account::open(shop.clone(), row.customer.clone(), program.currency));
        let done = match apply_import(&mut account, row, program, now) {
            Ok(done) => done,
            Err(error) => return Ok(RowOutcome::Refused(error.to_string())),
        };
        let mut entries = done.applied.entries;
        for entry in &mut entries {
            entry.note = entry
                .note
                .take()
                .map(|note| format!("{note} (by {principal})"));
        }
        let code_change = code_change(ctx, &mut account, row.code.as_ref())?;
        let write = WriteSet {
            guard: Some(Guard {
                key: import_key(&row.customer),
                expires_at: now + Duration::days(IMPORT_GUARD_DAYS),
                response: None,
            }),
            accounts: vec![AccountWrite::new(program, account, version)
                .with_entries(entries)
                .with_code_change(code_change)],
            order: done.pending.map(|record| OrderWrite {
                record,
                expected_version: 0,
                lines_stored: false,
                refunds_stored: 0,
            }),
            accounts_read,
            now: Some(now),
            ..WriteSet::default()
        };
        match ctx.store.write(shop, write).await {
            Ok(WriteOutcome::Committed) => return Ok(RowOutcome::Imported),
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(RowOutcome::AlreadyImported),
            // Claimed by another customer since the read: refused if it was
            // the row's own code, a generated one collided otherwise.
            Err(StoreError::CodeTaken) if row.code.is_some() => {
                return Ok(RowOutcome::Refused(
                    "code already belongs to another customer".into(),
                ))
            }
            Err(error) if error.is_conflict() || matches!(error, StoreError::CodeTaken) => {
                attempts.lost(error).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}

/// The code change a row brings: its own code claimed (the account's
/// current one, if any, stays its owner's in the index, so orders placed
/// with it are still charged to them), or a fresh code for a new account
/// that brings none, so the balance can be spent. None when nothing changes.
fn code_change(
    ctx: &Context,
    account: &mut Account,
    code: Option<&Code>,
) -> Result<Option<CodeChange>, AppError> {
    let new_code = match (code, &account.code) {
        (Some(code), Some(current)) if code == current => return Ok(None),
        (Some(code), _) => code.clone(),
        (None, Some(_)) => return Ok(None),
        (None, None) => ctx.new_code()?,
    };
    let old_code = account.code.replace(new_code.clone());
    Ok(Some(CodeChange {
        new_code,
        old_code,
        referral_code: None,
    }))
}

/// Reads a format name: `csv` or `jsonl` (also `ndjson`, `json-lines`).
pub fn import_format(name: &str) -> Result<ImportFormat, AppError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "csv" => Ok(ImportFormat::Csv),
        "jsonl" | "ndjson" | "json-lines" | "jsonlines" => Ok(ImportFormat::JsonLines),
        _ => Err(AppError::InvalidFields(vec![field(
            "format",
            "must be csv or jsonl",
        )])),
    }
}
