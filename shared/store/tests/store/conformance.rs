//! One conformance suite, run unchanged against the in-memory adapter and
//! against DynamoDB (moto's server; see `cashback_test_support::moto`).

use cashback_test_support::moto;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = cashback_store::MemoryStore::new();
                    crate::cases::$case(&store).await;
                }
            )*
        }

        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(store) = super::moto::fresh_store(stringify!($case)).await {
                        crate::cases::$case(&store).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    reading_what_was_never_written_finds_nothing,
    an_account_round_trips_with_its_balances_and_version,
    a_stale_version_is_a_conflict_and_writes_nothing,
    creating_an_account_that_exists_is_a_conflict,
    a_negative_balance_is_refused_by_the_store_itself,
    a_guard_lets_a_write_happen_once_and_returns_the_first_response,
    a_notification_is_recorded_once,
    an_orders_email_is_recorded_once_with_the_order,
    an_email_owner_moves_only_when_an_account_takes_the_address,
    the_ledger_pages_newest_first_to_the_end,
    a_code_belongs_to_one_account_and_stays_its_owners_when_regenerated,
    coupons_are_unique_versioned_and_listed_in_pages,
    coupon_use_limits_are_enforced_by_the_store_and_uses_come_back,
    shops_and_programs_with_kept_versions,
    pending_orders_are_due_for_release_until_released,
    an_accounts_next_bonus_is_in_the_bonus_index_and_moves_with_it,
    checkpoints_only_move_forward,
    counters_count_up,
    an_order_history_through_the_store_keeps_every_invariant,
    reads_and_writes_are_one_round_trip_each,
    the_catalog_is_imported_and_read_with_the_rest_of_a_read,
    a_shops_accounts_are_listed_in_pages,
    api_keys_are_created_listed_touched_and_revoked_once,
    counters_are_read_with_the_rest_of_a_read,
    a_due_time_in_the_past_is_filed_at_the_writes_now,
    a_parked_item_leaves_its_index_and_is_listed,
    a_referral_credit_is_written_with_its_order_and_settled_under_its_version,
    a_reward_granted_with_the_referrers_account_writes_no_credit,
    an_unlimited_coupons_uses_leave_its_count_to_the_feed_and_count_once,
    a_limited_coupon_reaches_its_limit_exactly_under_concurrent_orders,
    a_full_shard_hands_over_to_shards_with_room,
    a_use_given_back_frees_room_on_the_shard_that_took_it,
    a_limit_set_on_an_unlimited_coupon_counts_uses_the_feed_has_not,
    the_code_syncs_record_adds_notes_and_a_finished_reconcile_clears_what_was_parked,
);

// The report aggregator's feed differs by adapter (the in-memory log, or
// moto's stream), so this case is given the store's own type.
mod reports {
    #[tokio::test]
    async fn the_aggregator_sums_the_feed_by_day_with_customer_counters_in_memory() {
        let store = cashback_store::MemoryStore::new();
        crate::cases::the_aggregator_sums_the_feed_by_day_with_customer_counters(&store).await;
    }

    #[tokio::test]
    async fn the_aggregator_sums_the_feed_by_day_with_customer_counters_on_dynamodb() {
        let name = "the_aggregator_sums_the_feed";
        if let Some(store) = super::moto::fresh_store(name).await {
            crate::cases::the_aggregator_sums_the_feed_by_day_with_customer_counters(&store).await;
        }
    }
}

/// Many orders at once on one limited coupon, each a task of its own on a
/// multi-threaded runtime (the in-memory store's lock is the only order
/// between them): exactly the limit is taken, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_coupon_is_never_used_past_its_limit_by_concurrent_tasks() {
    let store: std::sync::Arc<dyn cashback_app::store::Store> =
        std::sync::Arc::new(cashback_store::MemoryStore::new());
    crate::cases::limited(store.as_ref(), 101).await;
    let taken = crate::cases::take_use_concurrently(store.clone(), 400).await;
    assert_eq!(taken, 101);
    assert_eq!(crate::cases::held(store.as_ref()).await, 101);
}
