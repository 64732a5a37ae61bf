//! Validation cost (BENCHMARKS.md, part 2): `checkout::validate` of a
//! balance code with the customer id, on the in-memory store, for carts of
//! 1, 10 and 100 lines. Criterion reports the mean and median; the p50 and
//! p99 come from the custom loop in `examples/measure.rs` (`validate`),
//! which keeps every sample.
//!
//! ```text
//! cargo bench -p cashback-benches --bench validate
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

use cashback_app::checkout::validate;
use cashback_benches::checkout::{now, request, shop, world, CODE, CUSTOMER};

fn validation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ctx = rt.block_on(world());
    let shop = shop();
    let mut group = c.benchmark_group("validate");
    for lines in [1usize, 10, 100] {
        let req = request(CODE, Some(CUSTOMER), lines);
        let answer = rt
            .block_on(validate(&ctx, &shop, &req, "bench", now()))
            .expect("validates");
        assert!(answer.valid, "the balance code applies");
        group.bench_with_input(BenchmarkId::new("lines", lines), &req, |b, req| {
            b.iter(|| rt.block_on(validate(&ctx, &shop, black_box(req), "bench", now())));
        });
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
