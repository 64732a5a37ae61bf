//! A bare lambda_runtime hello-world: the floor each function's cold start
//! is measured against (BENCHMARKS.md, cold start). Built by the same
//! `cargo build --release` as the functions, so it has the same profile,
//! the same tokio and the same runtime crate; it only lacks what the
//! functions add on top: logging setup, the SDK clients and our code.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
