//! The end-to-end tests, in one test binary (one link instead of one per
//! file): faults, crashes and resumes, races, hostile HTTP, API key scopes,
//! unsubscribing, the deployment template's alarms. `cargo test -p cashback-e2e --test e2e faults::` runs one
//! file. The log capture (`--test logs`) is a binary of its own.
mod crash_resume;
mod deployment;
mod faults;
mod hostile_http;
mod key_scopes;
mod races;
mod unsubscribe;
