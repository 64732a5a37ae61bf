//! Bonuses that reward more than an order: a birthday, the anniversary of
//! the first order, a win-back after a quiet stretch, lifetime-spend
//! milestones.
//!
//! Each is merchant-funded and credited at most once per period, named by a
//! business key ([`BonusKey`]) exactly as order events are, so a job run
//! twice at the same instant, or a run catching up a missed day, credits
//! nothing twice. Bonuses never pay for themselves: no cashback is earned on
//! them, a refund of an unrelated order does not claw them back, and debt is
//! paid from them only when the program says so ([`Bonuses::pays_debt`]).
//!
//! The rules here say *when* a bonus is due and *what* it is; the account
//! remembers what it needs for them ([`BonusState`]: the birthday, the first
//! and last order, what was already handled) and the one time its next bonus
//! falls due ([`BonusState::due_at`]), which the store files in the due
//! index. The bonus job reads only accounts that are due, asks
//! [`take_due`] what to credit, and credits each through
//! [`Account::credit_bonus`](crate::ledger::Account::credit_bonus).
//!
//! A win-back's extra percent is an offer the job leaves on the account
//! ([`BonusState::extra_percent`]); the customer's next earning order within
//! its window takes it ([`BonusState::take_extra_percent`]) and earns that
//! much more, merchant-funded, as part of the order's cashback.
//!
//! A program offers only what the engine pays: a birthday held pending is
//! refused by [`Bonuses::validate`] until a release pays it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::program::{FieldError, Issuance, MAX_PENDING_DAYS};

/// The most days before a birthday its bonus may arrive.
pub const MAX_BIRTHDAY_DAYS_BEFORE: u32 = 31;
/// The longest quiet stretch a win-back may wait for (about five years).
pub const MAX_WIN_BACK_DAYS: u32 = 1_825;
/// How many milestones one program may name.
pub const MAX_MILESTONES: usize = 20;
/// A birthday the customer gives pays from its first credit day at least
/// this many days later: a date typed today is not paid out tomorrow.
pub const CUSTOMER_BIRTHDAY_LEAD_DAYS: i64 = 30;

/// The bonuses a program pays besides cashback on orders. All off by default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonuses {
    /// A yearly amount around the customer's birthday, when the shop knows it.
    #[serde(default)]
    pub birthday: Option<BirthdayBonus>,
    /// A yearly amount on the anniversary of the customer's first order.
    #[serde(default)]
    pub anniversary: Option<AnniversaryBonus>,
    /// A nudge for a customer who has not ordered for a while.
    #[serde(default)]
    pub win_back: Option<WinBack>,
    /// Lifetime eligible spend thresholds, ascending: an email at each, and
    /// an amount where one is set.
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    /// Whether a bonus pays off the customer's debt first, as earned
    /// cashback does. Off by default: like goodwill, a gift is not taken back
    /// to settle a debt unless the merchant chooses so.
    #[serde(default)]
    pub pays_debt: bool,
}

/// The birthday bonus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthdayBonus {
    /// Credited once a year, in the shop's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Whether it is spendable at once or held like earned cashback.
    #[serde(default = "immediate")]
    pub issuance: Issuance,
    /// Credited this many days before the birthday, so the customer can
    /// treat themselves on the day; 0 credits on the day itself.
    #[serde(default)]
    pub days_before: u32,
}

/// The first-order anniversary bonus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnniversaryBonus {
    /// Credited once a year, in the shop's currency, spendable at once.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The win-back bonus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinBack {
    /// Days without an order after which the customer is won back.
    pub after_days: u32,
    /// What they get.
    pub reward: WinBackReward,
    /// At most one win-back in this many days, however often the customer
    /// goes quiet; at least `after_days`.
    pub once_per_days: u32,
}

/// A win-back's reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WinBackReward {
    /// An amount credited at once, in the shop's currency.
    Amount {
        /// The amount.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// Extra percent earned on the next order placed within `valid_days`.
    ExtraPercent {
        /// Added to the order's cashback percent.
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
        /// How long the offer stands.
        valid_days: u32,
    },
}

/// A lifetime eligible spend threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// Reached when lifetime eligible spend first reaches this, in the
    /// shop's currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub lifetime_spend: Decimal,
    /// Credited on reaching it; none: the email alone.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
}

fn immediate() -> Issuance {
    Issuance::Immediate
}

/// The kinds of bonus, as reports and ledger entries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BonusKind {
    /// [`BirthdayBonus`].
    Birthday,
    /// [`AnniversaryBonus`].
    Anniversary,
    /// [`WinBack`].
    WinBack,
    /// [`Milestone`].
    Milestone,
}

impl BonusKind {
    /// The name in keys, reports and emails.
    pub fn as_str(self) -> &'static str {
        match self {
            BonusKind::Birthday => "birthday",
            BonusKind::Anniversary => "anniversary",
            BonusKind::WinBack => "win_back",
            BonusKind::Milestone => "milestone",
        }
    }
}

/// Names one bonus for one customer and period: the ledger refuses a second
/// entry under the same key, so a bonus is credited at most once per period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BonusKey(String);

impl BonusKey {
    /// The birthday bonus of the year the birthday falls in.
    pub fn birthday(year: i32) -> BonusKey {
        BonusKey(format!("bonus:birthday:{year}"))
    }

    /// The anniversary bonus of one year.
    pub fn anniversary(year: i32) -> BonusKey {
        BonusKey(format!("bonus:anniversary:{year}"))
    }

    /// The win-back for the quiet stretch that began with the order at
    /// `last_order_at`: one per stretch, whatever the runs.
    pub fn win_back(last_order_at: DateTime<Utc>) -> BonusKey {
        BonusKey(format!("bonus:win_back:{}", last_order_at.timestamp()))
    }

    /// A milestone, reached once in a customer's life.
    pub fn milestone(lifetime_spend: Decimal) -> BonusKey {
        BonusKey(format!("bonus:milestone:{}", lifetime_spend.normalize()))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A birthday as shops know it: month and day, never the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BirthdayRepr", into = "BirthdayRepr")]
pub struct Birthday {
    month: u32,
    day: u32,
}

#[derive(Serialize, Deserialize)]
struct BirthdayRepr {
    month: u32,
    day: u32,
}

/// Why a month and day are not a birthday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{month}-{day} is not a day of the year")]
pub struct NotADay {
    /// The month given.
    pub month: u32,
    /// The day given.
    pub day: u32,
}

impl TryFrom<BirthdayRepr> for Birthday {
    type Error = NotADay;
    fn try_from(repr: BirthdayRepr) -> Result<Self, NotADay> {
        Birthday::new(repr.month, repr.day)
    }
}

impl From<Birthday> for BirthdayRepr {
    fn from(birthday: Birthday) -> Self {
        BirthdayRepr {
            month: birthday.month,
            day: birthday.day,
        }
    }
}

impl Birthday {
    /// A month (1-12) and day that exist in some year: 29 February is a
    /// birthday, 30 February is not.
    pub fn new(month: u32, day: u32) -> Result<Birthday, NotADay> {
        // 2024 is a leap year, so every real day of the year exists in it.
        NaiveDate::from_ymd_opt(2024, month, day)
            .map(|_| Birthday { month, day })
            .ok_or(NotADay { month, day })
    }

    /// Reads `MM-DD`, or a full `YYYY-MM-DD` whose year is dropped (as
    /// Shopify's birthday metafields and most exports carry it).
    pub fn parse(text: &str) -> Result<Birthday, NotADay> {
        let parts: Vec<&str> = text.trim().split('-').collect();
        let (month, day) = match parts.as_slice() {
            [month, day] | [_, month, day] => (month, day),
            _ => return Err(NotADay { month: 0, day: 0 }),
        };
        let number = |part: &str| part.parse::<u32>().ok();
        match (number(month), number(day)) {
            (Some(month), Some(day)) => Birthday::new(month, day),
            _ => Err(NotADay { month: 0, day: 0 }),
        }
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The day of the month.
    pub fn day(self) -> u32 {
        self.day
    }

    /// The day it is kept in `year`: 29 February falls on 28 February in a
    /// year without one, so a leap-day customer is never skipped.
    pub fn in_year(self, year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, self.month, self.day)
            .or_else(|| NaiveDate::from_ymd_opt(year, self.month, self.day - 1))
            .unwrap_or_else(|| unreachable!("Birthday::new admits only real days"))
    }
}

/// A birthday bonus due: when, and under which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// When it becomes due (UTC).
    pub at: DateTime<Utc>,
    /// Its business key.
    pub key: BonusKey,
}

/// The next birthday credit at or after `from`: credited `days_before` the
/// birthday, keyed on the birthday's year. A run that missed the day finds
/// the missed credit still due (its key is unchanged) as long as `from` is
/// the last instant already handled, not now.
pub fn next_birthday(birthday: Birthday, days_before: u32, from: DateTime<Utc>) -> Due {
    let credit_day = |year: i32| birthday.in_year(year) - Duration::days(i64::from(days_before));
    // The credit for next year's birthday may fall in this year (a birthday
    // on 3 January credited 7 days before), so look one year ahead.
    let year = from.year();
    let at = |year: i32| start_of(credit_day(year));
    let year = (year..=year + 2)
        .find(|year| at(*year) >= from)
        .unwrap_or(year + 2);
    Due {
        at: at(year),
        key: BonusKey::birthday(year),
    }
}

/// The next anniversary of the first order at or after `from`, keyed on its
/// year; the first order's own day is not an anniversary. A first order on
/// 29 February is celebrated on 28 February in other years.
pub fn next_anniversary(first_order_at: DateTime<Utc>, from: DateTime<Utc>) -> Due {
    let first = first_order_at.date_naive();
    let on = |year: i32| {
        NaiveDate::from_ymd_opt(year, first.month(), first.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, first.month(), first.day() - 1))
            .unwrap_or_else(|| unreachable!("the first order's day exists or is 29 February"))
    };
    let year = (first.year() + 1..)
        .find(|year| start_of(on(*year)) >= from)
        .unwrap_or_else(|| unreachable!("some later year's anniversary is after `from`"));
    Due {
        at: start_of(on(year)),
        key: BonusKey::anniversary(year),
    }
}

/// When the customer whose last order was `last_order_at` is due a win-back,
/// or `None` when the last one was too recent for another: the due item is
/// moved forward by every order, so an order the day before it falls due
/// means no win-back.
pub fn win_back_due(
    rule: &WinBack,
    last_order_at: DateTime<Utc>,
    last_win_back_at: Option<DateTime<Utc>>,
) -> Option<Due> {
    let at = last_order_at + Duration::days(i64::from(rule.after_days));
    let allowed_from = last_win_back_at
        .map(|last| last + Duration::days(i64::from(rule.once_per_days)))
        .unwrap_or(at);
    (at >= allowed_from).then(|| Due {
        at,
        key: BonusKey::win_back(last_order_at),
    })
}

/// The milestones a change of lifetime eligible spend from `before` to
/// `after` reaches, lowest first; none when spend went down (a refund) or a
/// milestone was reached before.
pub fn milestones_reached(
    milestones: &[Milestone],
    before: Decimal,
    after: Decimal,
) -> Vec<Milestone> {
    milestones
        .iter()
        .filter(|m| before < m.lifetime_spend && m.lifetime_spend <= after)
        .copied()
        .collect()
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0)
        .unwrap_or_else(|| unreachable!("midnight exists"))
        .and_utc()
}

/// Where a customer's birthday came from. The customer may give theirs
/// once; the shop (admin API, import) may set or correct it at any time; a
/// platform's customer record fills it only where no person has set one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthdaySource {
    /// The customer, on their page.
    Customer,
    /// The merchant, through the admin API or the dashboard.
    Merchant,
    /// An import from another app.
    Import,
    /// The shop's platform (Shopify's customer birthday metafield).
    Platform,
}

/// Why a birthday was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BirthdayRefused {
    /// The customer gave a birthday before (or the shop set one): only the
    /// shop may change it now.
    #[error("the birthday is already set; only the shop can change it")]
    AlreadySet,
    /// The customer has no order whose cashback is released or still
    /// pending: an account opened by an order never paid, or whose orders
    /// were cancelled or refunded in full, may not give a birthday.
    #[error("your birthday can be saved once you have earned cashback on an order")]
    NoEarningOrder,
}

impl crate::ledger::Account {
    /// Sets the customer's birthday as `source` gives it, at `now`
    /// ([`BonusState::set_birthday`]): the customer themselves may give it
    /// only once an order of theirs has earned cashback that is released
    /// or still pending (neither cancelled nor refunded in full). Returns
    /// whether anything changed.
    pub fn set_birthday(
        &mut self,
        birthday: Birthday,
        source: BirthdaySource,
        bonuses: &Bonuses,
        now: DateTime<Utc>,
    ) -> Result<bool, BirthdayRefused> {
        // An order released, or one whose cashback is still pending (the
        // birthday then pays only once it is released).
        let earning = self.bonus.has_released_order() || self.pending.is_positive();
        if source == BirthdaySource::Customer && !earning {
            return Err(BirthdayRefused::NoEarningOrder);
        }
        self.bonus.set_birthday(birthday, source, bonuses, now)
    }
}

/// What an account keeps for its bonuses: a handful of dates and one
/// amount, the same size whatever the customer's history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BonusState {
    /// Month and day, never the year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<Birthday>,
    /// Who set `birthday`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_source: Option<BirthdaySource>,
    /// Birthday credits are looked for from this instant on: when the
    /// birthday was set (a customer's own entry: [`CUSTOMER_BIRTHDAY_LEAD_DAYS`]
    /// later), then just after the last one handled. A birthday given on
    /// the day itself is next year's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_from: Option<DateTime<Utc>>,
    /// The last birthday year handled: a day moved later in the same year
    /// (a shorter `days_before`, a corrected birthday) pays nothing twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_year: Option<i32>,
    /// The customer's first earning order (its own time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_order_at: Option<DateTime<Utc>>,
    /// Anniversaries are looked for from this instant on (none: from the
    /// first order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anniversary_from: Option<DateTime<Utc>>,
    /// The customer's latest earning order (its own time): the quiet
    /// stretch a win-back waits for starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_order_at: Option<DateTime<Utc>>,
    /// The stretch (named by the order that began it) whose win-back was
    /// handled, paid or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win_back_handled: Option<DateTime<Utc>>,
    /// When the last win-back was credited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_win_back_at: Option<DateTime<Utc>>,
    /// Milestones at or below this lifetime spend are done (reached and
    /// handled, or passed before the program named them).
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub milestone_floor: Option<Decimal>,
    /// An order crossed a milestone; the job handles it from this time on:
    /// once the cashback of every order that counted toward it is released
    /// (a refund before then lowers the spend and pays nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone_noted_at: Option<DateTime<Utc>>,
    /// A win-back's extra percent waiting for the next earning order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_percent: Option<ExtraPercentOffer>,
    /// When the account's next bonus falls due: the time the due index
    /// files it under. Never before the decision that set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

/// A win-back's extra percent on the customer's next earning order placed
/// from `from` and before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraPercentOffer {
    /// Added to the order's cashback percent, merchant-funded.
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
    /// When the offer was made.
    pub from: DateTime<Utc>,
    /// When it lapses.
    pub until: DateTime<Utc>,
}

/// A bonus the job must handle now: credit `amount` (when there is one)
/// under `key`, and announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BonusDue {
    /// Which bonus.
    pub kind: BonusKind,
    /// Its once-only key.
    pub key: BonusKey,
    /// What to credit, in the shop's currency; none: the email alone (a
    /// milestone without an amount).
    pub amount: Option<Decimal>,
    /// For a milestone: the lifetime spend reached.
    pub milestone: Option<Decimal>,
    /// For a win-back paid as an extra percent: the offer left on the
    /// account.
    pub extra_percent: Option<ExtraPercentOffer>,
}

const ONE_SECOND: Duration = Duration::seconds(1);

impl BonusState {
    /// Nothing remembered yet (left out of the account's document).
    pub fn is_unset(&self) -> bool {
        *self == BonusState::default()
    }

    /// Sets the birthday as `source` gives it, at `now`. Returns whether
    /// anything changed; a customer's second entry is refused, and a
    /// platform's value never replaces one a person set.
    pub fn set_birthday(
        &mut self,
        birthday: Birthday,
        source: BirthdaySource,
        bonuses: &Bonuses,
        now: DateTime<Utc>,
    ) -> Result<bool, BirthdayRefused> {
        let allowed = match source {
            BirthdaySource::Customer => self.birthday.is_none(),
            BirthdaySource::Merchant | BirthdaySource::Import => true,
            BirthdaySource::Platform => matches!(
                (self.birthday, self.birthday_source),
                (None, _) | (Some(_), Some(BirthdaySource::Platform))
            ),
        };
        if !allowed {
            return match source {
                BirthdaySource::Platform => Ok(false),
                _ => Err(BirthdayRefused::AlreadySet),
            };
        }
        if self.birthday == Some(birthday) {
            return Ok(false);
        }
        self.birthday = Some(birthday);
        self.birthday_source = Some(source);
        // A changed birthday is looked for from now on; a year's bonus is
        // keyed on its year, so moving the day cannot pay a year twice. The
        // customer's own entry waits a lead time: typing tomorrow's date
        // pays next year, not tomorrow.
        self.birthday_from = Some(match source {
            BirthdaySource::Customer => now + Duration::days(CUSTOMER_BIRTHDAY_LEAD_DAYS),
            _ => now,
        });
        self.schedule(bonuses, now);
        Ok(true)
    }

    /// Notes an order placed at `order_at` (recorded at `now`) that moved
    /// lifetime eligible spend from `spend_before` to `spend_after`, earned
    /// `cashback` (positive or not) and whose cashback is released at
    /// `released_at` (`now` when credited at once): an order that earned
    /// cashback moves the win-back's quiet stretch forward (a refund later
    /// only delays a win-back), and a milestone crossed is noted for the
    /// job, due once this order's cashback is released (and every earlier
    /// one's it waited for): spend refunded before then reaches nothing.
    /// What makes the customer eligible for the birthday, anniversary and
    /// win-back is noted at the release ([`BonusState::order_released`]).
    #[allow(clippy::too_many_arguments)]
    pub fn order_earned(
        &mut self,
        bonuses: &Bonuses,
        spend_before: Decimal,
        spend_after: Decimal,
        order_at: DateTime<Utc>,
        cashback: Decimal,
        released_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if cashback > Decimal::ZERO && self.last_order_at.is_none_or(|last| order_at > last) {
            self.last_order_at = Some(order_at);
        }
        if !bonuses.milestones.is_empty() {
            // Spend before the program named milestones crossed none.
            let floor = *self.milestone_floor.get_or_insert(spend_before);
            if !milestones_reached(&bonuses.milestones, floor, spend_after).is_empty() {
                let at = released_at.max(now);
                self.milestone_noted_at = Some(self.milestone_noted_at.map_or(at, |n| n.max(at)));
            }
        }
        self.schedule(bonuses, now);
    }

    /// Notes that the cashback of an order placed at `order_at` was
    /// released (credited to available balance, at `now`; at once under
    /// immediate issuance): the order still has cashback, neither cancelled
    /// nor refunded in full before then. Only such an order counts toward
    /// the birthday, anniversary and win-back bonuses
    /// ([`BonusState::has_released_order`]): the first starts the
    /// anniversaries, the latest moves the win-back forward. An order that
    /// earned nothing (gift cards only, below the minimum, 0.00) is never
    /// released, nor is one undone before its release.
    pub fn order_released(
        &mut self,
        bonuses: &Bonuses,
        order_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if self.first_order_at.is_none_or(|first| order_at < first) {
            self.first_order_at = Some(order_at);
        }
        if self.last_order_at.is_none_or(|last| order_at > last) {
            self.last_order_at = Some(order_at);
        }
        self.schedule(bonuses, now);
    }

    /// Whether an order of the customer had its cashback released: the one
    /// rule for the birthday, anniversary and win-back bonuses (and for a
    /// birthday the customer gives, see [`crate::ledger::Account::set_birthday`]).
    pub fn has_released_order(&self) -> bool {
        self.first_order_at.is_some()
    }

    /// Whether the birthday pays: one the merchant or an import gave always
    /// does; one the customer (or the platform, which the customer fills
    /// in) gave only with a released order, so an order undone after the
    /// birthday was given earns no birthday.
    fn birthday_pays(&self) -> bool {
        match self.birthday_source {
            Some(BirthdaySource::Merchant | BirthdaySource::Import) => true,
            Some(BirthdaySource::Customer | BirthdaySource::Platform) | None => {
                self.has_released_order()
            }
        }
    }

    /// Takes the win-back's extra percent for an earning order placed at
    /// `order_at`, if one is waiting and the order falls in its window; an
    /// offer that has lapsed is dropped. Each offer serves one order.
    pub fn take_extra_percent(&mut self, order_at: DateTime<Utc>) -> Option<Decimal> {
        let offer = self.extra_percent?;
        if order_at >= offer.until {
            self.extra_percent = None;
            return None;
        }
        if order_at < offer.from {
            // An order placed before the offer (delivered late) keeps it waiting.
            return None;
        }
        self.extra_percent = None;
        Some(offer.percent)
    }

    /// Recomputes [`BonusState::due_at`]: the earliest of the next birthday
    /// and anniversary credit (kept in the index even while the program
    /// offers neither, so a bonus turned on later reaches every customer),
    /// the win-back of the current quiet stretch when the program has one,
    /// and a milestone waiting; never before `now`.
    pub fn schedule(&mut self, bonuses: &Bonuses, now: DateTime<Utc>) {
        let days_before = bonuses.birthday.map_or(0, |b| b.days_before);
        let birthday = self.birthday.map(|birthday| {
            next_birthday(birthday, days_before, self.birthday_from.unwrap_or(now)).at
        });
        let anniversary = self
            .first_order_at
            .map(|first| next_anniversary(first, self.anniversary_from.unwrap_or(first)).at);
        let win_back = match (&bonuses.win_back, self.last_order_at) {
            (Some(rule), Some(last))
                if self.win_back_handled != Some(last) && self.has_released_order() =>
            {
                win_back_due(rule, last, self.last_win_back_at).map(|due| due.at)
            }
            _ => None,
        };
        self.due_at = [birthday, anniversary, win_back, self.milestone_noted_at]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(now));
    }
}

/// Everything due on the account at `now`, each at most once: advances the
/// state past what it returns (and past what falls due while the program
/// offers nothing for it) and reschedules. The caller credits what has an
/// amount and stores the state in the same write; a run repeated at the
/// same instant finds nothing left, and a run that missed a day finds what
/// fell due then.
pub fn take_due(
    bonuses: &Bonuses,
    state: &mut BonusState,
    lifetime_spend: Decimal,
    now: DateTime<Utc>,
) -> Vec<BonusDue> {
    let mut due = Vec::new();
    if let Some(birthday) = state.birthday {
        let days_before = bonuses.birthday.map_or(0, |b| b.days_before);
        let mut latest = None;
        loop {
            let from = state.birthday_from.unwrap_or(now);
            let next = next_birthday(birthday, days_before, from);
            if next.at > now {
                break;
            }
            state.birthday_from = Some(next.at + ONE_SECOND);
            let year = (next.at + Duration::days(i64::from(days_before))).year();
            if state.birthday_year.is_none_or(|handled| year > handled) {
                state.birthday_year = Some(year);
                latest = Some(next.key);
            }
        }
        // A run late by more than a year pays the latest year only; a
        // birthday the customer gave pays once an order of theirs is
        // released (the year passes unpaid otherwise).
        if let (Some(key), Some(rule), true) = (latest, bonuses.birthday, state.birthday_pays()) {
            due.push(BonusDue {
                kind: BonusKind::Birthday,
                key,
                amount: Some(rule.amount),
                milestone: None,
                extra_percent: None,
            });
        }
    }
    if let Some(first) = state.first_order_at {
        let mut latest = None;
        loop {
            let next = next_anniversary(first, state.anniversary_from.unwrap_or(first));
            if next.at > now {
                break;
            }
            state.anniversary_from = Some(next.at + ONE_SECOND);
            latest = Some(next.key);
        }
        if let (Some(key), Some(rule)) = (latest, bonuses.anniversary) {
            due.push(BonusDue {
                kind: BonusKind::Anniversary,
                key,
                amount: Some(rule.amount),
                milestone: None,
                extra_percent: None,
            });
        }
    }
    if let (Some(rule), Some(last)) = (&bonuses.win_back, state.last_order_at) {
        if state.win_back_handled != Some(last) && state.has_released_order() {
            match win_back_due(rule, last, state.last_win_back_at) {
                Some(next) if next.at <= now => {
                    state.win_back_handled = Some(last);
                    state.last_win_back_at = Some(now);
                    let (amount, extra_percent) = match rule.reward {
                        WinBackReward::Amount { amount } => (Some(amount), None),
                        WinBackReward::ExtraPercent {
                            percent,
                            valid_days,
                        } => {
                            let offer = ExtraPercentOffer {
                                percent,
                                from: now,
                                until: now + Duration::days(i64::from(valid_days)),
                            };
                            state.extra_percent = Some(offer);
                            (None, Some(offer))
                        }
                    };
                    due.push(BonusDue {
                        kind: BonusKind::WinBack,
                        key: next.key,
                        amount,
                        milestone: None,
                        extra_percent,
                    });
                }
                Some(_) => {}
                // Too soon after the last win-back: none for this stretch.
                None => state.win_back_handled = Some(last),
            }
        }
    }
    if state.milestone_noted_at.is_some_and(|at| at <= now) {
        state.milestone_noted_at = None;
        let floor = state.milestone_floor.unwrap_or(Decimal::ZERO);
        for milestone in milestones_reached(&bonuses.milestones, floor, lifetime_spend) {
            state.milestone_floor = Some(milestone.lifetime_spend);
            due.push(BonusDue {
                kind: BonusKind::Milestone,
                key: BonusKey::milestone(milestone.lifetime_spend),
                amount: milestone.amount,
                milestone: Some(milestone.lifetime_spend),
                extra_percent: None,
            });
        }
    }
    state.schedule(bonuses, now);
    due
}

impl BonusKey {
    /// The kind of bonus a ledger entry id made under a bonus key names
    /// (`bonus:birthday:2027:0`), for reports; None for any other entry.
    pub fn kind_of_entry(entry_id: &str) -> Option<BonusKind> {
        let kind = entry_id.strip_prefix("bonus:")?.split(':').next()?;
        [
            BonusKind::Birthday,
            BonusKind::Anniversary,
            BonusKind::WinBack,
            BonusKind::Milestone,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

impl Bonuses {
    /// No bonus is offered (the default): left out of the program's JSON.
    pub fn is_off(&self) -> bool {
        self == &Bonuses::default()
    }

    /// Every problem with the bonus settings, as field errors under
    /// `bonuses.`; amounts must be exact at the currency's `minor_units`.
    pub fn validate(&self, minor_units: u32) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: format!("bonuses.{field}"),
                message,
            });
        };
        let amount_ok =
            |value: Decimal| value > Decimal::ZERO && value.normalize().scale() <= minor_units;
        let amount_message = format!("must be more than zero, with at most {minor_units} decimals");
        if let Some(birthday) = &self.birthday {
            if !amount_ok(birthday.amount) {
                fail("birthday.amount", amount_message.clone());
            }
            if birthday.days_before > MAX_BIRTHDAY_DAYS_BEFORE {
                fail(
                    "birthday.days_before",
                    format!("must be at most {MAX_BIRTHDAY_DAYS_BEFORE}"),
                );
            }
            if let Issuance::Pending { days } = birthday.issuance {
                if days == 0 || days > MAX_PENDING_DAYS {
                    fail(
                        "birthday.issuance.days",
                        format!("must be 1 to {MAX_PENDING_DAYS}"),
                    );
                }
                // Nothing releases a pending bonus yet: refuse what would
                // never be paid.
                fail(
                    "birthday.issuance",
                    "a birthday bonus is credited at once (immediate); pending is not offered yet"
                        .to_string(),
                );
            }
        }
        if let Some(anniversary) = &self.anniversary {
            if !amount_ok(anniversary.amount) {
                fail("anniversary.amount", amount_message.clone());
            }
        }
        if let Some(win_back) = &self.win_back {
            if win_back.after_days == 0 || win_back.after_days > MAX_WIN_BACK_DAYS {
                fail(
                    "win_back.after_days",
                    format!("must be 1 to {MAX_WIN_BACK_DAYS}"),
                );
            }
            if win_back.once_per_days < win_back.after_days {
                fail(
                    "win_back.once_per_days",
                    "must be at least after_days".to_string(),
                );
            }
            match win_back.reward {
                WinBackReward::Amount { amount } if !amount_ok(amount) => {
                    fail("win_back.reward.amount", amount_message.clone());
                }
                WinBackReward::ExtraPercent {
                    percent,
                    valid_days,
                } => {
                    if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
                        fail(
                            "win_back.reward.percent",
                            "must be a percent above 0, at most 100".to_string(),
                        );
                    }
                    if valid_days == 0 || valid_days > MAX_WIN_BACK_DAYS {
                        fail(
                            "win_back.reward.valid_days",
                            format!("must be 1 to {MAX_WIN_BACK_DAYS}"),
                        );
                    }
                }
                WinBackReward::Amount { .. } => {}
            }
        }
        if self.milestones.len() > MAX_MILESTONES {
            fail("milestones", format!("at most {MAX_MILESTONES}"));
        }
        let mut previous = Decimal::ZERO;
        for (i, milestone) in self.milestones.iter().enumerate() {
            if !amount_ok(milestone.lifetime_spend) {
                fail(
                    &format!("milestones[{i}].lifetime_spend"),
                    amount_message.clone(),
                );
            } else if milestone.lifetime_spend <= previous {
                fail(
                    &format!("milestones[{i}].lifetime_spend"),
                    "must be above the milestone before it".to_string(),
                );
            }
            if milestone.amount.is_some_and(|amount| !amount_ok(amount)) {
                fail(&format!("milestones[{i}].amount"), amount_message.clone());
            }
            previous = milestone.lifetime_spend;
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn birthdays_are_real_days_and_leap_day_is_kept_on_the_28th() {
        assert!(Birthday::new(2, 29).is_ok());
        assert!(Birthday::new(2, 30).is_err());
        assert!(Birthday::new(13, 1).is_err());
        assert!(Birthday::new(0, 1).is_err());
        let leap = Birthday::parse("1996-02-29").unwrap();
        assert_eq!(leap, Birthday::new(2, 29).unwrap());
        assert_eq!(leap.in_year(2027).to_string(), "2027-02-28");
        assert_eq!(leap.in_year(2028).to_string(), "2028-02-29");
        assert_eq!(Birthday::parse("07-14").unwrap().month(), 7);
        for bad in ["", "14", "July 14", "2020-13-01", "xx-yy"] {
            assert!(Birthday::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_next_birthday_credit_comes_days_before_and_is_keyed_on_its_year() {
        let early_january = Birthday::new(1, 3).unwrap();
        // Credited 7 days before 3 January 2027: 27 December 2026.
        let due = next_birthday(early_january, 7, at("2026-11-30T12:00:00Z"));
        assert_eq!(due.at, at("2026-12-27T00:00:00Z"));
        assert_eq!(due.key, BonusKey::birthday(2027));
        // Handled up to that instant: the next one is a year on.
        let due = next_birthday(early_january, 7, at("2026-12-27T00:00:01Z"));
        assert_eq!(due.key, BonusKey::birthday(2028));
    }

    #[test]
    fn a_missed_day_is_caught_up_and_a_repeated_run_finds_the_same_key() {
        let birthday = Birthday::new(11, 28).unwrap();
        // The job last handled everything up to the 27th and did not run on
        // the 28th: from the 27th the birthday of this year is still due.
        let missed = next_birthday(birthday, 0, at("2026-11-27T00:00:00Z"));
        assert_eq!(missed.at, at("2026-11-28T00:00:00Z"));
        let again = next_birthday(birthday, 0, at("2026-11-27T00:00:00Z"));
        assert_eq!(missed, again, "the same instant gives the same key");
    }

    #[test]
    fn a_leap_day_birthday_is_celebrated_every_year() {
        let leap = Birthday::new(2, 29).unwrap();
        let keys: Vec<String> = [2027, 2028, 2029]
            .iter()
            .map(|year| {
                let due = next_birthday(leap, 0, at(&format!("{year}-01-01T00:00:00Z")));
                format!("{} {}", due.at.date_naive(), due.key.as_str())
            })
            .collect();
        assert_eq!(
            keys,
            [
                "2027-02-28 bonus:birthday:2027",
                "2028-02-29 bonus:birthday:2028",
                "2029-02-28 bonus:birthday:2029"
            ]
        );
    }

    #[test]
    fn anniversaries_start_a_year_after_the_first_order() {
        let first = at("2024-02-29T15:30:00Z");
        let due = next_anniversary(first, first);
        assert_eq!(due.at, at("2025-02-28T00:00:00Z"));
        assert_eq!(due.key, BonusKey::anniversary(2025));
        let due = next_anniversary(first, at("2027-06-01T00:00:00Z"));
        assert_eq!(due.at, at("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn an_order_before_the_win_back_moves_it_and_one_period_allows_one() {
        let rule = WinBack {
            after_days: 90,
            reward: WinBackReward::Amount { amount: dec!(5) },
            once_per_days: 180,
        };
        let last_order = at("2026-01-01T10:00:00Z");
        let due = win_back_due(&rule, last_order, None).unwrap();
        assert_eq!(due.at, at("2026-04-01T10:00:00Z"));
        // An order the day before it was due: the item moves 90 days on from
        // that order, under another key.
        let order_day_before = at("2026-03-31T10:00:00Z");
        let moved = win_back_due(&rule, order_day_before, None).unwrap();
        assert_eq!(moved.at, at("2026-06-29T10:00:00Z"));
        assert_ne!(moved.key, due.key);
        // Won back on 1 April, ordered on 2 April, quiet again: due 1 July,
        // inside 180 days of the last win-back, so none.
        let won_back = at("2026-04-01T10:00:00Z");
        assert_eq!(
            win_back_due(&rule, at("2026-04-02T10:00:00Z"), Some(won_back)),
            None
        );
        // Quiet from 1 August: due 30 October, past the period: allowed.
        assert!(win_back_due(&rule, at("2026-08-01T10:00:00Z"), Some(won_back)).is_some());
    }

    #[test]
    fn milestones_are_reached_once_on_the_way_up() {
        let milestones = [
            Milestone {
                lifetime_spend: dec!(100),
                amount: None,
            },
            Milestone {
                lifetime_spend: dec!(500),
                amount: Some(dec!(10)),
            },
        ];
        let reached = milestones_reached(&milestones, dec!(90), dec!(600));
        assert_eq!(reached.len(), 2);
        assert!(milestones_reached(&milestones, dec!(100), dec!(120)).is_empty());
        assert!(milestones_reached(&milestones, dec!(600), dec!(50)).is_empty());
        assert_eq!(
            BonusKey::milestone(dec!(500.00)),
            BonusKey::milestone(dec!(500))
        );
    }

    #[test]
    fn validation_names_each_bad_field() {
        let bonuses: Bonuses = serde_json::from_str(
            r#"{
                "birthday": {"amount": "5.001", "days_before": 40, "issuance": {"type": "pending", "days": 0}},
                "anniversary": {"amount": "0"},
                "win_back": {"after_days": 0, "once_per_days": 0,
                             "reward": {"type": "extra_percent", "percent": "150", "valid_days": 0}},
                "milestones": [{"lifetime_spend": "500"}, {"lifetime_spend": "100", "amount": "-1"}]
            }"#,
        )
        .unwrap();
        let fields: Vec<String> = bonuses.validate(2).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "bonuses.birthday.amount",
                "bonuses.birthday.days_before",
                "bonuses.birthday.issuance.days",
                "bonuses.birthday.issuance",
                "bonuses.anniversary.amount",
                "bonuses.win_back.after_days",
                "bonuses.win_back.reward.percent",
                "bonuses.win_back.reward.valid_days",
                "bonuses.milestones[1].lifetime_spend",
                "bonuses.milestones[1].amount",
            ]
        );
        assert!(Bonuses::default().validate(2).is_empty());
        assert!(
            serde_json::from_str::<Bonuses>(r#"{"birthday": {"amount": "5", "when": 1}}"#).is_err()
        );
    }

    #[test]
    fn birthdays_serialise_as_month_and_day_only() {
        let birthday = Birthday::new(2, 29).unwrap();
        let json = serde_json::to_string(&birthday).unwrap();
        assert_eq!(json, r#"{"month":2,"day":29}"#);
        assert!(serde_json::from_str::<Birthday>(r#"{"month":2,"day":30}"#).is_err());
    }
}
