//! Webhook cost (BENCHMARKS.md, part 1): a Shopify `orders/paid` delivery
//! of ten line items through the whole router on the in-memory store,
//! against the floor of parsing the same body and one HMAC-SHA256 of it.
//!
//! Each "new order" iteration is a new order (a duplicate would take the
//! short path), for one of the customers warmed up before timing, so it
//! credits an existing account; the duplicate path is measured on its own.
//! Requests are built and signed outside the timed part (`iter_batched`).
//!
//! ```text
//! cargo bench -p cashback-benches --bench webhook
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

use cashback_benches::webhook::{
    customer_id, floor, order_id, paid_body, request, send, summary, warm_customers, world,
};
use cashback_test_support::samples::DEMO_SECRET;

fn webhook(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let world = rt.block_on(async {
        let world = world().await;
        warm_customers(&world).await;
        world
    });
    let body = paid_body(order_id(0), customer_id(0));

    // The paths measured are the paths meant: checked once, untimed.
    let (_, first) = rt.block_on(send(&world.router, request("orders/paid", &body)));
    assert_eq!(summary(&first)["applied"], 1, "a new order is applied");
    let (_, again) = rt.block_on(send(&world.router, request("orders/paid", &body)));
    assert_eq!(summary(&again)["duplicates"], 1, "a replay is a duplicate");

    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("floor: serde_json Value + HMAC-SHA256", |b| {
        b.iter(|| floor(black_box(body.as_bytes()), DEMO_SECRET.as_bytes()));
    });
    let mut n = 1;
    group.bench_function("handler: new order, existing account", |b| {
        b.iter_batched(
            || {
                n += 1;
                request("orders/paid", &paid_body(order_id(n), customer_id(n)))
            },
            |req| rt.block_on(send(&world.router, req)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("handler: duplicate delivery", |b| {
        b.iter_batched(
            || request("orders/paid", &body),
            |req| rt.block_on(send(&world.router, req)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, webhook);
criterion_main!(benches);
