//! Bonuses through the ledger: what they credit, what they never pay for,
//! and the worked examples of docs/bonuses.md at the account's level.

use crate::support::*;
use cashback_core::bonuses::{
    take_due, AnniversaryBonus, Birthday, BirthdayBonus, BirthdaySource, BonusKind, Bonuses,
    Milestone, WinBack, WinBackReward,
};
use cashback_core::ledger::EntryKind;
use cashback_core::order::OrderEvent;
use cashback_core::program::{Issuance, Program};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal_macros::dec;

fn program(bonuses: Bonuses) -> Program {
    let mut program = Program::new(cashback_core::money::Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.issuance = Issuance::Pending { days: 30 };
    program.bonuses = bonuses;
    program.validate().unwrap();
    program
}

fn birthday_bonus() -> Bonuses {
    Bonuses {
        birthday: Some(BirthdayBonus {
            amount: dec!(5),
            issuance: Issuance::Immediate,
            days_before: 0,
        }),
        ..Bonuses::default()
    }
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// An order paid at `t0()` and released 30 days on: what makes the
/// customer eligible for the birthday, anniversary and win-back bonuses.
fn with_a_released_order(books: &mut Books) {
    books.apply(
        &OrderEvent::Paid(order("released", vec![line("a", "10.00", 1, "0.00")])),
        t0(),
    );
    books.release_due(days(30));
    assert!(books.account.bonus.has_released_order());
}

/// Runs the bonus decision at `now` and credits what it returns, as the
/// job does; returns the kinds credited or announced.
fn run(books: &mut Books, now: DateTime<Utc>) -> Vec<(BonusKind, String)> {
    let program = books.program.clone();
    let spend = books.account.lifetime_eligible_spend.amount();
    let due = take_due(&program.bonuses, &mut books.account.bonus, spend, now);
    let mut done = Vec::new();
    for bonus in due {
        if let Some(amount) = bonus.amount {
            let money = cashback_core::money::Money::new(amount, books.account.currency).unwrap();
            let applied = books
                .account
                .credit_bonus(bonus.kind, &bonus.key, money, &program, now)
                .unwrap();
            books.entries.extend(applied.entries);
        }
        done.push((bonus.kind, bonus.key.as_str().to_string()));
    }
    books.check();
    done
}

#[test]
fn a_bonus_is_merchant_funded_and_pays_no_debt_unless_the_program_says_so() {
    for pays_debt in [false, true] {
        let mut books = Books::new(program(Bonuses {
            pays_debt,
            ..birthday_bonus()
        }));
        books.apply(
            &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
            t0(),
        );
        books.release_due(days(30));
        // Spend the 10.00, then refund the order: 10.00 of debt.
        books.account.available = usd("0.00");
        books.account.lots.clear();
        books.entries.push(cashback_core::ledger::LedgerEntry {
            entry_id: "spent:0".into(),
            at: days(31),
            kind: EntryKind::Redeem,
            order_id: None,
            available_delta: usd("-10.00"),
            pending_delta: usd("0"),
            debt_delta: usd("0"),
            funding: None,
            note: None,
        });
        books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(32));
        assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("10.00")));
        let program = books.program.clone();
        let applied = books
            .account
            .credit_bonus(
                BonusKind::Birthday,
                &cashback_core::bonuses::BonusKey::birthday(2026),
                usd("5.00"),
                &program,
                days(33),
            )
            .unwrap();
        books.entries.extend(applied.entries.clone());
        let bonus = &applied.entries[0];
        assert_eq!(bonus.kind, EntryKind::Bonus);
        assert_eq!(bonus.entry_id, "bonus:birthday:2026:0");
        let funding = bonus.funding.unwrap();
        assert_eq!((funding.merchant, funding.partner), (usd("5.00"), usd("0")));
        assert_eq!(
            cashback_core::bonuses::BonusKey::kind_of_entry(&bonus.entry_id),
            Some(BonusKind::Birthday)
        );
        if pays_debt {
            assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("5.00")));
        } else {
            assert_eq!(books.balances(), (usd("5.00"), usd("0.00"), usd("10.00")));
        }
        books.check();
    }
}

#[test]
fn a_refund_of_an_unrelated_order_does_not_take_the_bonus_back() {
    let mut books = Books::new(program(birthday_bonus()));
    let program = books.program.clone();
    let applied = books
        .account
        .credit_bonus(
            BonusKind::Birthday,
            &cashback_core::bonuses::BonusKey::birthday(2026),
            usd("5.00"),
            &program,
            t0(),
        )
        .unwrap();
    books.entries.extend(applied.entries);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        days(1),
    );
    books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(2));
    // The order's own pending is clawed back; the bonus stays.
    assert_eq!(books.balances(), (usd("5.00"), usd("0.00"), usd("0.00")));
    assert!(books
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Clawback)
        .all(|e| e.available_delta.is_zero()));
    books.check();
}

#[test]
fn a_leap_day_birthday_is_credited_on_the_28th_once_and_again_on_the_29th_in_a_leap_year() {
    let mut books = Books::new(program(birthday_bonus()));
    with_a_released_order(&mut books);
    let bonuses = books.program.bonuses.clone();
    books
        .account
        .bonus
        .set_birthday(
            Birthday::new(2, 29).unwrap(),
            BirthdaySource::Customer,
            &bonuses,
            at(2026, 11, 30, 9),
        )
        .unwrap();
    // The released order's anniversary (not offered) passes first.
    assert!(run(&mut books, at(2027, 1, 1, 1)).is_empty());
    assert_eq!(books.account.bonus.due_at, Some(at(2027, 2, 28, 0)));
    assert!(run(&mut books, at(2027, 2, 27, 23)).is_empty());
    let first = run(&mut books, at(2027, 2, 28, 6));
    assert_eq!(
        first,
        [(BonusKind::Birthday, "bonus:birthday:2027".to_string())]
    );
    // Repeated at the same instant: nothing more.
    assert!(run(&mut books, at(2027, 2, 28, 6)).is_empty());
    // The order's 1.00 and the bonus.
    assert_eq!(books.account.available, usd("6.00"));
    assert!(run(&mut books, at(2028, 1, 1, 1)).is_empty());
    assert_eq!(books.account.bonus.due_at, Some(at(2028, 2, 29, 0)));
    let leap = run(&mut books, at(2028, 2, 29, 1));
    assert_eq!(
        leap,
        [(BonusKind::Birthday, "bonus:birthday:2028".to_string())]
    );
    assert_eq!(books.account.available, usd("11.00"));
}

#[test]
fn a_customer_with_no_birthday_and_no_order_is_never_due() {
    let mut books = Books::new(program(birthday_bonus()));
    assert_eq!(books.account.bonus.due_at, None);
    assert!(run(&mut books, at(2027, 6, 1, 0)).is_empty());
    assert_eq!(books.account.available, usd("0"));
}

#[test]
fn a_missed_day_is_caught_up_at_the_next_run() {
    let mut books = Books::new(program(birthday_bonus()));
    let bonuses = books.program.bonuses.clone();
    books
        .account
        .bonus
        .set_birthday(
            Birthday::new(12, 3).unwrap(),
            BirthdaySource::Merchant,
            &bonuses,
            at(2026, 11, 30, 9),
        )
        .unwrap();
    // No run on the 3rd or the 4th: the run of the 5th pays it.
    let done = run(&mut books, at(2026, 12, 5, 6));
    assert_eq!(
        done,
        [(BonusKind::Birthday, "bonus:birthday:2026".to_string())]
    );
    assert_eq!(books.account.bonus.due_at, Some(at(2027, 12, 3, 0)));
}

#[test]
fn a_customer_sets_their_birthday_once_and_the_platform_never_overrides_a_person() {
    let bonuses = birthday_bonus();
    let mut books = Books::new(program(bonuses.clone()));
    let state = &mut books.account.bonus;
    let now = at(2026, 11, 30, 9);
    let july = Birthday::new(7, 14).unwrap();
    let may = Birthday::new(5, 1).unwrap();
    assert_eq!(
        state.set_birthday(july, BirthdaySource::Customer, &bonuses, now),
        Ok(true)
    );
    assert!(state
        .set_birthday(may, BirthdaySource::Customer, &bonuses, now)
        .is_err());
    assert_eq!(
        state.set_birthday(may, BirthdaySource::Platform, &bonuses, now),
        Ok(false)
    );
    assert_eq!(state.birthday, Some(july));
    assert_eq!(
        state.set_birthday(may, BirthdaySource::Merchant, &bonuses, now),
        Ok(true)
    );
    assert_eq!(state.birthday, Some(may));
}

#[test]
fn a_birthday_moved_later_in_the_year_it_was_paid_pays_nothing_twice() {
    let bonuses = birthday_bonus();
    let mut books = Books::new(program(bonuses.clone()));
    with_a_released_order(&mut books);
    books
        .account
        .bonus
        .set_birthday(
            Birthday::new(3, 1).unwrap(),
            BirthdaySource::Customer,
            &bonuses,
            at(2027, 1, 1, 0),
        )
        .unwrap();
    assert_eq!(run(&mut books, at(2027, 3, 1, 6)).len(), 1);
    books
        .account
        .bonus
        .set_birthday(
            Birthday::new(6, 1).unwrap(),
            BirthdaySource::Merchant,
            &bonuses,
            at(2027, 4, 1, 0),
        )
        .unwrap();
    assert!(run(&mut books, at(2027, 6, 1, 6)).is_empty());
    assert_eq!(run(&mut books, at(2028, 6, 1, 6)).len(), 1);
}

fn win_back() -> Bonuses {
    Bonuses {
        win_back: Some(WinBack {
            after_days: 90,
            reward: WinBackReward::Amount { amount: dec!(7) },
            once_per_days: 180,
        }),
        ..Bonuses::default()
    }
}

#[test]
fn an_order_the_day_before_the_win_back_is_due_moves_it_and_pays_nothing() {
    let mut books = Books::new(program(win_back()));
    let mut first = order("1", vec![line("a", "100.00", 1, "0.00")]);
    first.occurred_at = t0();
    books.apply(&OrderEvent::Paid(first), t0());
    // It counts once its cashback is released.
    assert_eq!(books.account.bonus.due_at, None);
    books.release_due(days(30));
    assert_eq!(books.account.bonus.due_at, Some(days(90)));
    let mut second = order("2", vec![line("b", "20.00", 1, "0.00")]);
    second.occurred_at = days(89);
    books.apply(&OrderEvent::Paid(second), days(89));
    assert_eq!(books.account.bonus.due_at, Some(days(179)));
    assert!(run(&mut books, days(90)).is_empty());
    // Quiet for 90 days after the second order: won back once.
    let done = run(&mut books, days(179));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, BonusKind::WinBack);
    assert!(run(&mut books, days(179)).is_empty());
    assert!(run(&mut books, days(300)).is_empty());
    // Won back at day 179: an order at day 180, quiet again, is due at day
    // 270, inside the 180-day period: no second win-back for that stretch.
    let mut third = order("3", vec![line("c", "20.00", 1, "0.00")]);
    third.occurred_at = days(180);
    books.apply(&OrderEvent::Paid(third), days(180));
    // Nothing is due before the first order's anniversary.
    assert_eq!(books.account.bonus.due_at, Some(at(2027, 1, 1, 0)));
    assert!(run(&mut books, days(270)).is_empty());
}

#[test]
fn milestones_announce_once_and_credit_only_those_with_an_amount() {
    let mut books = Books::new(program(Bonuses {
        milestones: vec![
            Milestone {
                lifetime_spend: dec!(100),
                amount: None,
            },
            Milestone {
                lifetime_spend: dec!(250),
                amount: Some(dec!(10)),
            },
        ],
        ..Bonuses::default()
    }));
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "90.00", 1, "0.00")])),
        t0(),
    );
    assert_eq!(
        books.account.bonus.milestone_noted_at, None,
        "no milestone yet"
    );
    let mut second = order("2", vec![line("b", "200.00", 1, "0.00")]);
    second.occurred_at = days(1);
    books.apply(&OrderEvent::Paid(second), days(1));
    // Due once the crossing order's cashback is released (30 days on).
    assert_eq!(books.account.bonus.due_at, Some(days(31)));
    assert!(run(&mut books, days(1) + Duration::hours(1)).is_empty());
    let done = run(&mut books, days(31) + Duration::hours(1));
    assert_eq!(
        done,
        [
            (BonusKind::Milestone, "bonus:milestone:100".to_string()),
            (BonusKind::Milestone, "bonus:milestone:250".to_string())
        ]
    );
    assert_eq!(books.account.available, usd("10.00"));
    // A refund and the spend again: nothing twice.
    books.apply(&refund_lines("2", "r1", &[("b", 1)]), days(32));
    let mut third = order("3", vec![line("c", "200.00", 1, "0.00")]);
    third.occurred_at = days(33);
    books.apply(&OrderEvent::Paid(third), days(33));
    assert!(run(&mut books, days(63) + Duration::hours(1)).is_empty());
}

#[test]
fn the_first_order_starts_yearly_anniversaries() {
    let mut books = Books::new(program(Bonuses {
        anniversary: Some(AnniversaryBonus { amount: dec!(3) }),
        ..Bonuses::default()
    }));
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "10.00", 1, "0.00")])),
        t0(),
    );
    books.release_due(days(30));
    assert_eq!(books.account.bonus.due_at, Some(at(2027, 1, 1, 0)));
    assert_eq!(
        run(&mut books, at(2027, 1, 1, 6)),
        [(BonusKind::Anniversary, "bonus:anniversary:2027".to_string())]
    );
    assert_eq!(books.account.bonus.due_at, Some(at(2028, 1, 1, 0)));
}

#[test]
fn a_win_back_as_an_extra_percent_pays_on_the_next_order_in_its_window_once() {
    let mut books = Books::new(program(Bonuses {
        win_back: Some(WinBack {
            after_days: 90,
            reward: WinBackReward::ExtraPercent {
                percent: dec!(5),
                valid_days: 30,
            },
            once_per_days: 180,
        }),
        ..Bonuses::default()
    }));
    let mut first = order("1", vec![line("a", "100.00", 1, "0.00")]);
    first.occurred_at = t0();
    books.apply(&OrderEvent::Paid(first), t0());
    books.release_due(days(30));
    let program = books.program.clone();
    let spend = books.account.lifetime_eligible_spend.amount();
    let due = take_due(&program.bonuses, &mut books.account.bonus, spend, days(90));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].amount, None, "nothing credited now");
    let offer = due[0].extra_percent.unwrap();
    assert_eq!((offer.percent, offer.until), (dec!(5), days(120)));

    // The next order inside the window: 10 % + 5 % of 200.00, the 5 % the
    // merchant's.
    let mut second = order("2", vec![line("b", "200.00", 1, "0.00")]);
    second.occurred_at = days(100);
    let applied = books.apply(&OrderEvent::Paid(second), days(100));
    let earn = applied
        .entries
        .iter()
        .find(|e| e.kind == EntryKind::Earn)
        .unwrap();
    assert_eq!(earn.pending_delta, usd("30.00"));
    assert_eq!(earn.funding.unwrap().merchant, usd("30.00"));
    assert_eq!(books.account.bonus.extra_percent, None, "used once");
    let mut third = order("3", vec![line("c", "200.00", 1, "0.00")]);
    third.occurred_at = days(101);
    let applied = books.apply(&OrderEvent::Paid(third), days(101));
    assert_eq!(applied.entries[0].pending_delta, usd("20.00"));
    // A full refund of the order that used it takes all of it back.
    // (What stays pending is the third order's 20.00: the first's was
    // released.)
    books.apply(&refund_lines("2", "r1", &[("b", 1)]), days(102));
    assert_eq!(books.account.pending, usd("20.00"));
    books.check();
}

#[test]
fn an_extra_percent_offer_lapses_after_its_window() {
    let mut books = Books::new(program(Bonuses {
        win_back: Some(WinBack {
            after_days: 90,
            reward: WinBackReward::ExtraPercent {
                percent: dec!(5),
                valid_days: 30,
            },
            once_per_days: 180,
        }),
        ..Bonuses::default()
    }));
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    let program = books.program.clone();
    take_due(
        &program.bonuses,
        &mut books.account.bonus,
        dec!(100),
        days(90),
    );
    let mut late = order("2", vec![line("b", "100.00", 1, "0.00")]);
    late.occurred_at = days(121);
    let applied = books.apply(&OrderEvent::Paid(late), days(121));
    assert_eq!(applied.entries[0].pending_delta, usd("10.00"));
    assert_eq!(books.account.bonus.extra_percent, None);
}

fn every_bonus() -> Bonuses {
    Bonuses {
        anniversary: Some(AnniversaryBonus { amount: dec!(3) }),
        ..Bonuses {
            win_back: win_back().win_back,
            ..birthday_bonus()
        }
    }
}

#[test]
fn an_order_that_earned_nothing_or_was_undone_before_release_qualifies_for_no_bonus() {
    let mut gift_card = line("g", "50.00", 1, "0.00");
    gift_card.gift_card = true;
    let paid = order("1", vec![line("a", "20.00", 1, "0.00")]);
    let cases: Vec<(&str, Vec<OrderEvent>)> = vec![
        (
            "gift cards only",
            vec![OrderEvent::Paid(order("1", vec![gift_card]))],
        ),
        (
            "0.00",
            vec![OrderEvent::Paid(order(
                "1",
                vec![line("a", "0.00", 1, "0.00")],
            ))],
        ),
        (
            "refunded in full",
            vec![
                OrderEvent::Paid(paid.clone()),
                refund_lines("1", "r1", &[("a", 1)]),
            ],
        ),
        (
            "cancelled",
            vec![OrderEvent::Paid(paid.clone()), OrderEvent::Cancelled(paid)],
        ),
    ];
    for (case, events) in cases {
        let mut books = Books::new(program(every_bonus()));
        for (i, event) in events.iter().enumerate() {
            books.apply(event, t0() + Duration::hours(i as i64));
        }
        books.release_due(days(30));
        assert!(!books.account.bonus.has_released_order(), "{case}");
        let bonuses = books.program.bonuses.clone();
        assert!(
            books
                .account
                .set_birthday(
                    Birthday::new(3, 1).unwrap(),
                    BirthdaySource::Customer,
                    &bonuses,
                    days(31),
                )
                .is_err(),
            "{case}"
        );
        for day in [91, 366, 400, 731] {
            assert!(run(&mut books, days(day)).is_empty(), "{case} day {day}");
        }
        assert!(
            books.entries.iter().all(|e| e.kind != EntryKind::Bonus),
            "{case}"
        );
    }
}

#[test]
fn a_birthday_given_while_the_order_was_pending_pays_only_if_it_is_released() {
    for refunded in [false, true] {
        let mut books = Books::new(program(birthday_bonus()));
        books.apply(
            &OrderEvent::Paid(order("1", vec![line("a", "20.00", 1, "0.00")])),
            t0(),
        );
        let bonuses = books.program.bonuses.clone();
        // Pending cashback: the customer may give it.
        books
            .account
            .set_birthday(
                Birthday::new(6, 1).unwrap(),
                BirthdaySource::Customer,
                &bonuses,
                days(1),
            )
            .unwrap();
        if refunded {
            books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(2));
        }
        books.release_due(days(30));
        assert_eq!(books.account.bonus.has_released_order(), !refunded);
        let done = run(&mut books, at(2026, 6, 1, 6));
        let birthday = [(BonusKind::Birthday, "bonus:birthday:2026".to_string())];
        if refunded {
            assert!(done.is_empty(), "{done:?}");
        } else {
            assert_eq!(done, birthday);
        }
    }
}

#[test]
fn a_partial_refund_before_release_still_counts_the_order() {
    let mut books = Books::new(program(every_bonus()));
    books.apply(
        &OrderEvent::Paid(order(
            "1",
            vec![line("a", "20.00", 1, "0.00"), line("b", "30.00", 1, "0.00")],
        )),
        t0(),
    );
    books.apply(&refund_lines("1", "r1", &[("b", 1)]), days(2));
    books.release_due(days(30));
    assert!(books.account.bonus.has_released_order());
    assert_eq!(books.account.bonus.first_order_at, Some(t0()));
    let done = run(&mut books, days(90) + Duration::hours(1));
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].0, BonusKind::WinBack);
}
