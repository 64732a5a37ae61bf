//! End-to-end tests across crates, in `tests/`: fault injection, replays,
//! races, hostile HTTP, crash and resume, logs. What they share (faulty and
//! cut-off stores, worlds, fixtures, moto) is in `cashback-test-support`.
