//! Links the function's binary as a fixed-address executable (`-no-pie`) on
//! Linux: a position-independent one spends about half of a cold start's
//! instructions applying some 48,000 relocations before `main` (BENCHMARKS.md, section 4,
//! "Within 1.3x"). `CASHBACK_PIE=1` at build time keeps the platform's
//! default.

fn main() {
    println!("cargo:rerun-if-env-changed=CASHBACK_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let keep_pie = std::env::var("CASHBACK_PIE").is_ok_and(|v| v == "1");
    if linux && !keep_pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
