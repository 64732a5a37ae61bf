//! The end-to-end tests, in one test binary (one link instead of one per
//! file): faults, crashes and resumes, races, hostile HTTP, API key scopes,
//! unsubscribing. `cargo test -p cashback-e2e --test e2e faults::` runs one
//! file. The log capture (`--test logs`) is a binary of its own.
mod crash_resume;
mod faults;
mod hostile_http;
mod key_scopes;
mod races;
mod unsubscribe;
