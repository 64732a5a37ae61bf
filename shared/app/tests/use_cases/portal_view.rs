//! The customer's view of their cashback and the unsubscribe link, through
//! the use cases on the in-memory store.

use chrono::Duration;
use rust_decimal_macros::dec;

use cashback_app::events::handle_order_event;
use cashback_app::notices::unsubscribe_signature;
use cashback_app::portal::{customer_view, unsubscribe, EntriesPage, UnsubscribeOutcome};
use cashback_app::store::{AccountWrite, OrderWrite, ReadRequest, Store, WriteSet};
use cashback_core::ids::{CustomerId, OrderId};
use cashback_core::order::OrderEvent;
use cashback_core::orders::release_pending;
use cashback_core::program::{Program, Tier};

use crate::support::*;

fn ann() -> CustomerId {
    CustomerId::parse("ann").unwrap()
}

async fn pay(world: &World, id: &str, days_after_t0: i64, price: &str, quantity: u32) {
    let mut paid = order(id, "ann", vec![line("1", price, quantity)]);
    paid.occurred_at = t0() + Duration::days(days_after_t0);
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(paid), t0())
        .await
        .unwrap();
}

/// Releases an order's pending as the scheduled job does: one read, the
/// core's release, one write.
async fn release(world: &World, program: &Program, id: &str, at: chrono::DateTime<chrono::Utc>) {
    let order_id = OrderId::parse(id).unwrap();
    let mut read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(order_id),
                accounts: vec![ann()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut record = read.order.take().unwrap();
    let mut account = read.accounts.remove(&ann()).unwrap();
    let applied = release_pending(program, &mut account.value, &mut record.value, at).unwrap();
    world
        .store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                order: Some(OrderWrite {
                    record: record.value,
                    expected_version: record.version,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

async fn view(world: &World, page: EntriesPage) -> cashback_app::portal::CustomerView {
    customer_view(&world.ctx, &shop(), &ann(), &page, t0() + Duration::days(1))
        .await
        .unwrap()
}

#[tokio::test]
async fn pending_cashback_is_listed_per_order_with_its_release_date() {
    let program = program();
    let world = world(program.clone()).await;
    pay(&world, "o1", 0, "50.00", 2).await;
    pay(&world, "o2", 1, "30.00", 1).await;
    pay(&world, "o3", 2, "20.00", 1).await;
    // o1 is half refunded: its pending shrinks to 5.00.
    handle_order_event(&world.ctx, &shop(), &refund("o1", "r1", &[("1", 1)]), t0())
        .await
        .unwrap();
    // o3 has been released.
    release(&world, &program, "o3", t0() + Duration::days(40)).await;

    let seen = view(&world, EntriesPage::default()).await;
    assert!(seen.enrolled);
    assert_eq!(seen.pending, usd("8.00"));
    assert_eq!(seen.available, usd("2.00"));
    let releases: Vec<String> = seen
        .pending_releases
        .iter()
        .map(|r| {
            let order = r.order_id.as_ref().map(|o| o.as_str()).unwrap_or("?");
            let date = r.release_at.map(|at| at.to_rfc3339()).unwrap_or_default();
            format!("{order} {} {date}", r.amount)
        })
        .collect();
    let on = |days: i64| (t0() + Duration::days(days)).to_rfc3339();
    assert_eq!(
        releases,
        [
            format!("o1 {} {}", usd("5.00"), on(30)),
            format!("o2 {} {}", usd("3.00"), on(31)),
        ]
    );
    assert_eq!(seen.display_name, program.display_name);
    assert!(seen.code.as_deref().is_some_and(|c| c.starts_with("CB-")));
    assert_eq!(seen.lifetime_issued, usd("10.00"));
}

#[tokio::test]
async fn an_account_with_nothing_pending_costs_one_read_and_one_ledger_page() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", "CB-ANN0000000001", "12.00").await;
    // Warm the shop and program cache as a warm container has it.
    world
        .ctx
        .shop_program(&shop(), t0() + Duration::days(1))
        .await
        .unwrap();
    let before = world.store.request_counts();
    let seen = view(&world, EntriesPage::default()).await;
    let after = world.store.request_counts();
    assert_eq!(seen.available, usd("12.00"));
    assert_eq!(seen.code.as_deref(), Some("CB-ANN0000000001"));
    assert_eq!(after.reads - before.reads, 1);
    assert_eq!(after.queries - before.queries, 1);
    assert_eq!(after.total() - before.total(), 2);
}

#[tokio::test]
async fn the_ledger_pages_newest_first_with_a_cursor_and_no_overlap() {
    let world = world(program()).await;
    for n in 0..5 {
        pay(&world, &format!("o{n}"), n, "10.00", 1).await;
    }
    let everything = view(
        &world,
        EntriesPage {
            cursor: None,
            limit: Some(100),
        },
    )
    .await
    .entries;
    assert_eq!(everything.len(), 5);
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let seen = view(
            &world,
            EntriesPage {
                cursor: cursor.clone(),
                limit: Some(2),
            },
        )
        .await;
        assert!(seen.entries.len() <= 2);
        paged.extend(seen.entries);
        match seen.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, everything);
    assert!(everything.windows(2).all(|w| w[0].at >= w[1].at));
}

#[tokio::test]
async fn a_cursor_this_api_never_gave_is_a_bad_request() {
    let world = world(program()).await;
    let result = customer_view(
        &world.ctx,
        &shop(),
        &ann(),
        &EntriesPage {
            cursor: Some("zz".into()),
            limit: None,
        },
        t0(),
    )
    .await;
    assert!(matches!(result, Err(cashback_app::AppError::Invalid(_))));
}

#[tokio::test]
async fn the_view_shows_the_tier_and_what_is_left_to_reach_the_next() {
    let mut program = program();
    program.tiers = vec![
        Tier {
            name: "Silver".into(),
            min_lifetime_spend: dec!(100),
            percent: dec!(12),
        },
        Tier {
            name: "Gold".into(),
            min_lifetime_spend: dec!(500),
            percent: dec!(15),
        },
    ];
    let world = world(program).await;
    pay(&world, "o1", 0, "150.00", 1).await;
    let seen = view(&world, EntriesPage::default()).await;
    let tier = seen.tier.expect("silver");
    assert_eq!(tier.name, "Silver");
    assert_eq!(seen.earn_percent, dec!(12));
    let next = seen.next_tier.expect("gold is next");
    assert_eq!(next.name, "Gold");
    assert_eq!(next.remaining, usd("350.00"));
}

#[tokio::test]
async fn someone_who_has_not_earned_yet_sees_an_empty_account() {
    let world = world(program()).await;
    let seen = view(&world, EntriesPage::default()).await;
    assert!(!seen.enrolled);
    assert_eq!(seen.available, usd("0.00"));
    assert!(seen.entries.is_empty());
    assert_eq!(seen.code, None);
    assert_eq!(seen.next_tier, None);
}

#[tokio::test]
async fn an_expired_hold_does_not_lower_the_spendable_balance_shown() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", "CB-ANN0000000001", "20.00").await;
    let request = reserving(
        validate_request("CB-ANN0000000001", Some("ann"), "15.00"),
        "chk-1",
        Some(60),
    );
    cashback_app::checkout::validate(&world.ctx, &shop(), &request, "portal", t0())
        .await
        .unwrap();
    let during = customer_view(&world.ctx, &shop(), &ann(), &EntriesPage::default(), t0())
        .await
        .unwrap();
    assert_eq!(during.held, usd("15.00"));
    assert_eq!(during.spendable, usd("5.00"));
    let after = view(&world, EntriesPage::default()).await;
    assert_eq!(after.held, usd("0.00"));
    assert_eq!(after.spendable, usd("20.00"));
}

#[tokio::test]
async fn a_signed_link_unsubscribes_once_and_a_second_click_writes_nothing() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", "CB-ANN0000000001", "5.00").await;
    let signature = unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&world.ctx),
        &shop(),
        &ann(),
    );
    let outcome = unsubscribe(&world.ctx, &shop(), &ann(), &signature, t0())
        .await
        .unwrap();
    assert_eq!(outcome, UnsubscribeOutcome::Unsubscribed);
    assert!(stored_account(&world, "ann").await.reminders.unsubscribed);
    let writes = world.store.request_counts().writes;
    let again = unsubscribe(&world.ctx, &shop(), &ann(), &signature, t0())
        .await
        .unwrap();
    assert_eq!(again, UnsubscribeOutcome::AlreadyUnsubscribed);
    assert_eq!(world.store.request_counts().writes, writes);
    assert!(
        view(&world, EntriesPage::default())
            .await
            .reminders_unsubscribed
    );
}

#[tokio::test]
async fn a_forged_or_borrowed_link_changes_nothing() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", "CB-ANN0000000001", "5.00").await;
    seed_balance(&world, &program(), "bob", "CB-BOB0000000001", "5.00").await;
    let before = world.store.request_counts();
    let forged = unsubscribe(&world.ctx, &shop(), &ann(), "00ff", t0())
        .await
        .unwrap();
    assert_eq!(forged, UnsubscribeOutcome::BadSignature);
    // Bob's link does not unsubscribe Ann.
    let bobs = unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&world.ctx),
        &shop(),
        &CustomerId::parse("bob").unwrap(),
    );
    let borrowed = unsubscribe(&world.ctx, &shop(), &ann(), &bobs, t0())
        .await
        .unwrap();
    assert_eq!(borrowed, UnsubscribeOutcome::BadSignature);
    assert_eq!(world.store.request_counts(), before);
    assert!(!stored_account(&world, "ann").await.reminders.unsubscribed);
}

#[tokio::test]
async fn a_genuine_link_for_a_customer_without_an_account_says_so() {
    let world = world(program()).await;
    let signature = unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&world.ctx),
        &shop(),
        &ann(),
    );
    let outcome = unsubscribe(&world.ctx, &shop(), &ann(), &signature, t0())
        .await
        .unwrap();
    assert_eq!(outcome, UnsubscribeOutcome::UnknownCustomer);
}

#[tokio::test]
async fn the_customer_sees_a_referral_code_of_their_own_when_the_program_pays_referrals() {
    let mut program = program();
    let plain = world(program.clone()).await;
    pay(&plain, "o1", 0, "100.00", 1).await;
    assert_eq!(
        view(&plain, EntriesPage::default()).await.referral_code,
        None
    );

    program.referral = Some(cashback_core::program::ReferralReward::Fixed {
        amount: rust_decimal_macros::dec!(5),
    });
    let referring = world(program).await;
    pay(&referring, "o1", 0, "100.00", 1).await;
    let seen = view(&referring, EntriesPage::default()).await;
    let referral = seen.referral_code.expect("a referral code");
    assert!(referral.starts_with("REF-"));
    assert_ne!(Some(referral), seen.code, "never the balance code");
}
