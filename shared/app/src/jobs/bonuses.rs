//! Bonuses: birthdays, anniversaries of the first order, win-backs after a
//! quiet stretch, lifetime-spend milestones (docs/bonuses.md).
//!
//! Each account carries the one time its next bonus falls due
//! ([`BonusState::due_at`](cashback_core::bonuses::BonusState::due_at)); the
//! store files it in the `bonus` due index, so a run reads only accounts
//! with something due. For each: one read, the core's [`take_due`] (what is
//! due at `now`, each once, the state moved past it and the next due time
//! set), the credits through
//! [`Account::credit_bonus`](cashback_core::ledger::Account::credit_bonus),
//! then one transaction: the account, its bonus entries and one once-only
//! key per bonus (`bonus:{customer}:{kind}:{period}`, recorded like an
//! email's). Only then is each bonus announced by its own email, paced like
//! the reminders.
//!
//! At most once per period: the account's version makes two runs race, and
//! the loser re-reads and finds the state moved on; the keys refuse a second
//! record of the same bonus even from a stale read. A run that missed a day
//! finds the account still due (its time is in a bucket after the
//! checkpoint) and pays then.
//!
//! Runs on the send-reminders schedule (hourly), after the reminders, with
//! its own checkpoint ([`BONUSES_JOB`]) and summary line.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use cashback_core::bonuses::{take_due, BonusKey};
use cashback_core::ids::CustomerId;
use cashback_core::ledger::LedgerError;
use cashback_core::money::Money;

use crate::context::{Context, ShopProgram};
use crate::error::AppError;
use crate::notices::Notice;
use crate::notify::NotificationKind;
use crate::retry::Attempts;
use crate::store::{AccountWrite, DueKind, DueRef, ReadRequest, WriteOutcome, WriteSet};

use super::promote::json;
use super::*;

/// The checkpoint's name in the store.
pub const BONUSES_JOB: &str = "bonuses";

/// What a bonus run did: the fields of its one summary log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BonusesOutcome {
    /// Bonuses credited (an amount added to the balance).
    pub credited: u64,
    /// What they credited, per currency.
    pub credited_amount: Amounts,
    /// Milestones announced without an amount.
    pub announced: u64,
    /// Bonus emails sent.
    pub emails_sent: u64,
    /// Recorded bonus emails that could not be sent; not tried again.
    pub emails_lost: u64,
    /// Bonuses recorded with no email to send (no address, unsubscribed).
    pub no_email: u64,
    /// Due accounts with nothing due any more (an overlapping run paid it,
    /// an order moved the win-back, the program no longer offers it).
    pub not_due: u64,
    /// Items that failed (logged); their buckets are read again next run.
    pub failed: u64,
    /// How far the walk over the due index got.
    #[serde(flatten)]
    pub scan: ScanProgress,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl BonusesOutcome {
    /// Adds what one item counted.
    fn add(&mut self, item: &BonusesOutcome) {
        self.credited += item.credited;
        for (currency, amount) in &item.credited_amount.0 {
            *self.credited_amount.0.entry(currency.clone()).or_default() += amount;
        }
        self.announced += item.announced;
        self.emails_sent += item.emails_sent;
        self.emails_lost += item.emails_lost;
        self.no_email += item.no_email;
        self.not_due += item.not_due;
        self.failed += item.failed;
    }

    /// Everything due was handled: nothing is left for a later run.
    pub fn is_done(&self) -> bool {
        !self.scan.deadline_reached && self.failed == 0
    }
}

/// The once-only key of a customer's bonus for its period, recorded in the
/// transaction that credits it: `bonus:{customer}:birthday:2027`.
pub fn bonus_record_key(customer: &CustomerId, key: &BonusKey) -> String {
    let period = key.as_str().trim_start_matches("bonus:");
    format!("bonus:{customer}:{period}")
}

/// Credits and announces every bonus due at `now`, until done or `deadline`.
pub async fn send_bonuses(
    ctx: &Context,
    clock: &dyn Clock,
    config: &JobConfig,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<BonusesOutcome, JobError> {
    let run = Run {
        ctx,
        clock,
        config,
        now,
        deadline,
    };
    let sender = Sender::new(ctx, clock, config);
    let bonuses: BonusesRun<'_> = Counted::new(run);
    let kinds = [DueKind::Bonus];
    let end = walk_due(
        run,
        &sender,
        BONUSES_JOB,
        &kinds,
        &bonuses,
        config.email_concurrency,
    )
    .await?;
    let mut outcome = bonuses.into_outcome();
    outcome.failed += end.failed;
    outcome.scan = end.scan.clone();
    outcome.duration_ms = end.duration_ms;
    log_summary(&outcome);
    end.finish()?;
    Ok(outcome)
}

/// The run's state, shared by the items it handles at once.
type BonusesRun<'a> = Counted<'a, BonusesOutcome>;

#[async_trait::async_trait]
impl DueHandler for Counted<'_, BonusesOutcome> {
    async fn handle(
        &self,
        sender: &Sender<'_>,
        _kind: DueKind,
        due: &DueRef,
    ) -> Result<Handled, AppError> {
        // Counted apart, then added: no lock is held across a send.
        let mut counted = BonusesOutcome::default();
        let result = bonus_one(&self.run, sender, due, &mut counted).await;
        self.count(|outcome| outcome.add(&counted));
        result.map(|()| Handled::Done)
    }
}

fn log_summary(outcome: &BonusesOutcome) {
    info!(
        job = BONUSES_JOB,
        credited = outcome.credited,
        announced = outcome.announced,
        emails_sent = outcome.emails_sent,
        emails_lost = outcome.emails_lost,
        no_email = outcome.no_email,
        not_due = outcome.not_due,
        failed = outcome.failed,
        buckets_read = outcome.scan.buckets_read,
        queries = outcome.scan.queries,
        buckets_left = outcome.scan.buckets_left,
        deadline_reached = outcome.scan.deadline_reached,
        checkpoint = outcome.scan.checkpoint.as_deref(),
        duration_ms = outcome.duration_ms,
        summary = %json(outcome),
        "bonuses run finished"
    );
}

/// What one account's bonuses decided, before their emails are sent.
enum Recorded {
    Done {
        credited: Vec<Money>,
        announced: u64,
        notices: Vec<Notice>,
        no_email: u64,
        shop: Box<ShopProgram>,
    },
    NotDue,
}

async fn bonus_one(
    run: &Run<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
    outcome: &mut BonusesOutcome,
) -> Result<(), AppError> {
    match record_bonuses(run, due).await? {
        Recorded::NotDue => outcome.not_due += 1,
        Recorded::Done {
            credited,
            announced,
            notices,
            no_email,
            shop,
        } => {
            outcome.credited += credited.len() as u64;
            for amount in credited {
                outcome.credited_amount.add(amount);
            }
            outcome.announced += announced;
            outcome.no_email += no_email;
            for notice in notices {
                let notification = notice
                    .into_notification(run.ctx, &shop.shop.name, &shop.program)
                    .await?;
                match sender.send(&notification, run.deadline).await {
                    Delivery::Sent => outcome.emails_sent += 1,
                    Delivery::Suppressed => {
                        outcome.emails_lost += 1;
                        if let Some(customer) = &due.customer {
                            mark_suppressed(run, &due.shop, customer).await?;
                        }
                    }
                    Delivery::Lost(reason) => {
                        outcome.emails_lost += 1;
                        warn!(
                            job = BONUSES_JOB,
                            shop = %due.shop,
                            key = notification.idempotency_key,
                            reason,
                            "bonus recorded but its email not sent; it will not be sent again"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// One read, the core's decision, one transaction with the credits and the
/// bonuses' keys; again from a fresh read on conflict.
async fn record_bonuses(run: &Run<'_>, due: &DueRef) -> Result<Recorded, AppError> {
    let (ctx, now) = (run.ctx, run.now);
    let Some(customer) = &due.customer else {
        return Err(AppError::Invalid(format!(
            "bonus index item of shop {} names no customer",
            due.shop
        )));
    };
    let shop = ctx.shop_program(&due.shop, now).await?;
    let program = &shop.program;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let read = ctx
            .store
            .read(&due.shop, &ReadRequest::account(customer))
            .await?;
        let Some(found) = read.accounts.get(customer).cloned() else {
            return Ok(Recorded::NotDue);
        };
        let mut account = found.value.clone();
        let spend = account.lifetime_eligible_spend.amount();
        let bonuses = take_due(&program.bonuses, &mut account.bonus, spend, now);
        if bonuses.is_empty() && account.bonus == found.value.bonus {
            return Ok(Recorded::NotDue);
        }
        let mut entries = Vec::new();
        let mut keys = Vec::new();
        let mut credited = Vec::new();
        let mut announced = 0;
        let mut pending_notices = Vec::new();
        for bonus in &bonuses {
            let amount = match bonus.amount {
                Some(amount) => {
                    let money = Money::new(amount, account.currency).map_err(LedgerError::from)?;
                    let applied =
                        account.credit_bonus(bonus.kind, &bonus.key, money, program, now)?;
                    entries.extend(applied.entries);
                    credited.push(money);
                    Some(money)
                }
                None => {
                    announced += 1;
                    None
                }
            };
            let milestone = bonus
                .milestone
                .map(|spend| Money::new(spend, account.currency))
                .transpose()
                .map_err(LedgerError::from)?;
            let key = bonus_record_key(customer, &bonus.key);
            keys.push(key.clone());
            pending_notices.push((key, bonus.kind, amount, milestone, bonus.extra_percent));
        }
        let reachable = !account.reminders.unsubscribed && !account.reminders.suppressed;
        let mut notices = Vec::new();
        let mut no_email = 0;
        for (key, bonus, amount, milestone, extra_percent) in pending_notices {
            match (&account.email, reachable) {
                (Some(to), true) => notices.push(Notice {
                    key,
                    shop: due.shop.clone(),
                    customer: customer.clone(),
                    to: to.clone(),
                    kind: NotificationKind::Bonus {
                        bonus,
                        amount,
                        milestone,
                        balance: account.available,
                        code: account.code.clone(),
                        extra_percent,
                    },
                }),
                _ => no_email += 1,
            }
        }
        let write = WriteSet {
            notifications: keys,
            marketing_events: crate::marketing::queued_events(program, &notices, now),
            accounts_read: read.accounts_read(),
            ..WriteSet::account(
                AccountWrite::new(program, account, found.version).with_entries(entries),
            )
        };
        match ctx.store.write(&due.shop, write).await {
            Ok(WriteOutcome::Committed) => {
                return Ok(Recorded::Done {
                    credited,
                    announced,
                    notices,
                    no_email,
                    shop: Box::new(shop),
                })
            }
            // A key is recorded: these bonuses were paid from another read.
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(Recorded::NotDue),
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
