//! The use cases on the in-memory store, in one test binary (one link
//! instead of one per file). `cargo test -p cashback-app --test use_cases
//! jobs_` runs the files whose name starts so.
mod support;

mod admin_adjustments;
mod admin_coupons;
mod admin_customers;
mod admin_program;
mod admin_reports;
mod checkout_holds;
mod checkout_validate;
mod jobs_bonuses;
mod jobs_expiry_warnings;
mod jobs_promote;
mod jobs_reminders;
mod marketing_push;
mod order_events;
mod portal_view;
mod retries;
