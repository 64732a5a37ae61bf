//! Feeds every platform parser (Shopify, WooCommerce, generic) a large
//! number of arbitrary and mutated inputs and counts panics, which must be
//! zero: whatever a sender puts in a request comes back as `Ok` or a typed
//! error. Outside CI (the property tests in `tests/platforms/robustness.rs`
//! run a few hundred cases per property there); run in release:
//!
//! ```text
//! cargo run --release -p cashback-platforms --example fuzz
//! FUZZ_CASES=5000000 FUZZ_SEED=7 cargo run --release -p cashback-platforms --example fuzz
//! ```
//!
//! Each case, from a seeded generator (the same seed gives the same inputs):
//! - one time in ten, arbitrary bytes (random, or from a JSON-ish alphabet);
//! - otherwise one of the real fixtures (usually of this platform, sometimes
//!   of another) with mutations, either 1 to 3 structured (JSON values
//!   replaced by odd tokens: `null`, `1e400`, `-1`, 2^64, `"\u0000"`, deep
//!   nesting, unicode digits, other statuses...; keys renamed to keys that
//!   matter, so the body mostly stays JSON and reaches the field checks) or
//!   1 to 8 raw (bytes flipped, inserted, deleted, cut short, ranges
//!   duplicated, pieces of another fixture spliced in);
//! - headers of the platform with the fixture's topic, another topic of
//!   the platform (a relabelled delivery) or a random one, and now and then
//!   a garbled shop, signature or timestamp header.
//!
//! Every case calls `identify`, `verify` (with the right signature over the
//! mutated bytes one time in four, so the full `parse_webhook` path is taken
//! too) and `parse`. A panic is caught, counted and its input written to
//! `target/fuzz-panics/`; the process exits non-zero if there was one.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use cashback_core::money::Currency;
use cashback_platforms::{sign_base64, sign_generic, Headers, Platform};
use chrono::{TimeZone, Utc};

const SECRET: &[u8] = b"fuzz-webhook-secret-0123456789";
const GENERIC_NOW: i64 = 1_780_000_000;

struct Fixture {
    platform: Platform,
    topic: &'static str,
    currency: Currency,
    body: &'static [u8],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        platform: Platform::Shopify,
        topic: "orders/paid",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/shopify_orders_paid.json"),
    },
    Fixture {
        platform: Platform::Shopify,
        topic: "orders/paid",
        currency: Currency::EUR,
        body: include_bytes!("../tests/fixtures/shopify_orders_paid_guest.json"),
    },
    Fixture {
        platform: Platform::Shopify,
        topic: "orders/cancelled",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/shopify_orders_cancelled.json"),
    },
    Fixture {
        platform: Platform::Shopify,
        topic: "refunds/create",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/shopify_refunds_create_partial.json"),
    },
    Fixture {
        platform: Platform::Shopify,
        topic: "refunds/create",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/shopify_refunds_create_shipping_only.json"),
    },
    Fixture {
        platform: Platform::WooCommerce,
        topic: "order.created",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/woocommerce_order_processing.json"),
    },
    Fixture {
        platform: Platform::WooCommerce,
        topic: "order.updated",
        currency: Currency::USD,
        body: include_bytes!("../tests/fixtures/woocommerce_order_completed_two_refunds.json"),
    },
    Fixture {
        platform: Platform::Generic,
        topic: "",
        currency: Currency::GBP,
        body: include_bytes!("../tests/fixtures/generic_order_paid.json"),
    },
    Fixture {
        platform: Platform::Generic,
        topic: "",
        currency: Currency::GBP,
        body: include_bytes!("../tests/fixtures/generic_order_refunded.json"),
    },
];

const TOPICS: &[(Platform, &[&str])] = &[
    (
        Platform::Shopify,
        &[
            "orders/paid",
            "orders/fulfilled",
            "orders/cancelled",
            "refunds/create",
            "orders/updated",
            "ORDERS/PAID",
        ],
    ),
    (
        Platform::WooCommerce,
        &[
            "order.created",
            "order.updated",
            "order.deleted",
            "product.updated",
        ],
    ),
    (Platform::Generic, &[""]),
];

const ODD_TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993",
    "4.5e8",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"-0.00\"",
    "\"1e5\"",
    "\"NaN\"",
    "\"Infinity\"",
    "\"\u{661}\u{662}\u{663}\"",
    "\"99999999999999999999999999999.99\"",
    "\"0.001\"",
    "\"12O.00\"",
    "\"2026-13-45T99:99:99Z\"",
    "\"gid://shopify/Refund/1\"",
    "\"https://other.myshopify.com/1/orders/x\"",
    "\"paid\"",
    "\"pending\"",
    "\"fulfilled\"",
    "\"cancelled\"",
    "\"XYZ\"",
    "[]",
    "{}",
    "[null]",
    "[{}]",
    "{\"a\":[1,{\"b\":null}]}",
];

/// splitmix64: small, seeded, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn arbitrary(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(600);
    if rng.one_in(2) {
        (0..len).map(|_| rng.next() as u8).collect()
    } else {
        const ALPHABET: &[u8] = b"{}[]\":,0123456789.-eE truefalsnl\\u\"abc";
        (0..len).map(|_| *rng.pick(ALPHABET)).collect()
    }
}

/// Keys whose values decide the most: swapped in for another key.
const KEYS: &[&str] = &[
    "id",
    "order_id",
    "financial_status",
    "fulfillment_status",
    "cancelled_at",
    "test",
    "order_status_url",
    "admin_graphql_api_id",
    "refund_line_items",
    "transactions",
    "status",
    "billing_period",
    "_links",
    "refunds",
    "line_items",
    "discount_codes",
    "currency",
    "shop",
    "type",
    "amount",
    "quantity",
];

/// A mutation that keeps the JSON well formed (most of the time): a value
/// replaced by an odd token or deep nesting, or a key renamed to another
/// key that matters.
fn mutate_structured(rng: &mut Rng, body: &mut Vec<u8>) {
    match rng.below(4) {
        0 => {
            let depth = 1 + rng.below(300);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            replace_value(rng, body, nested.as_bytes());
        }
        1 => {
            let quotes: Vec<usize> = body
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w == b"\":")
                .map(|(i, _)| i)
                .collect();
            if quotes.is_empty() {
                return;
            }
            let end = *rng.pick(&quotes);
            let start = body[..end]
                .iter()
                .rposition(|b| *b == b'"')
                .map_or(end, |i| i + 1);
            let key = rng.pick(KEYS).as_bytes().to_vec();
            body.splice(start..end, key);
        }
        _ => {
            let token = *rng.pick(ODD_TOKENS);
            replace_value(rng, body, token.as_bytes());
        }
    }
}

fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    let len = body.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            body[i] = rng.next() as u8;
        }
        1 => {
            let i = rng.below(len + 1);
            let count = 1 + rng.below(8);
            for _ in 0..count {
                body.insert(i, rng.next() as u8);
            }
        }
        2 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            body.drain(start..end);
        }
        3 if len > 0 => body.truncate(rng.below(len)),
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(256)).min(len);
            let piece = body[start..end].to_vec();
            let at = rng.below(body.len() + 1);
            body.splice(at..at, piece);
        }
        5 => {
            let other = rng.pick(FIXTURES).body;
            let start = rng.below(other.len());
            let end = (start + 1 + rng.below(200)).min(other.len());
            let at = rng.below(len + 1);
            body.splice(at..at, other[start..end].iter().copied());
        }
        6 => {
            let depth = 1 + rng.below(300);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            replace_value(rng, body, nested.as_bytes());
        }
        _ => {
            let token = *rng.pick(ODD_TOKENS);
            replace_value(rng, body, token.as_bytes());
        }
    }
}

/// Replaces the JSON value after a random `:` with `token` (up to the next
/// `,`, `}` or `]` at the same line: rough, which is the point).
fn replace_value(rng: &mut Rng, body: &mut Vec<u8>, token: &[u8]) {
    let colons: Vec<usize> = body
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b':')
        .map(|(i, _)| i)
        .collect();
    if colons.is_empty() {
        return;
    }
    // A scalar value: objects and arrays are left whole (cutting one open
    // only makes the body not JSON, which the raw mutations do already).
    let mut start = *rng.pick(&colons) + 1;
    for _ in 0..8 {
        let first = body[start..].iter().find(|b| !b.is_ascii_whitespace());
        if !matches!(first, Some(b'{') | Some(b'[')) {
            break;
        }
        start = *rng.pick(&colons) + 1;
    }
    let mut end = start;
    let mut in_string = false;
    while end < body.len() {
        match body[end] {
            b'"' => in_string = !in_string,
            b',' | b'}' | b']' | b'\n' if !in_string => break,
            _ => {}
        }
        end += 1;
    }
    body.splice(start..end, token.iter().copied());
}

fn headers_for(rng: &mut Rng, platform: Platform, topic: &str, body: &[u8]) -> Headers {
    let topics = TOPICS
        .iter()
        .find(|(p, _)| *p == platform)
        .map(|(_, t)| *t)
        .unwrap_or(&[""]);
    let topic = match rng.below(10) {
        0..=5 => topic.to_string(),
        6..=8 => rng.pick(topics).to_string(),
        _ => String::from_utf8_lossy(&arbitrary(rng)[..])
            .chars()
            .take(40)
            .collect(),
    };
    let signed = rng.one_in(4);
    let garble = |rng: &mut Rng, good: String| -> String {
        match rng.below(40) {
            0 => String::new(),
            1 => String::from_utf8_lossy(&arbitrary(rng))
                .chars()
                .take(80)
                .collect(),
            2 => good.chars().rev().collect(),
            _ => good,
        }
    };
    match platform {
        Platform::Shopify => {
            let signature = if signed {
                sign_base64(SECRET, body)
            } else {
                sign_base64(b"another-secret-0123456789", body)
            };
            let shop = garble(rng, "northridge-outfitters.myshopify.com".into());
            let signature = garble(rng, signature);
            Headers::new()
                .with("x-shopify-topic", topic)
                .with("x-shopify-shop-domain", shop)
                .with("x-shopify-hmac-sha256", signature)
                .with(
                    "x-shopify-webhook-id",
                    "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                )
                .with(
                    "x-shopify-triggered-at",
                    garble(rng, "2026-03-14T14:22:33.123Z".into()),
                )
        }
        Platform::WooCommerce => {
            let signature = if signed {
                sign_base64(SECRET, body)
            } else {
                sign_base64(b"another-secret-0123456789", body)
            };
            let source = garble(rng, "https://tea.example.org/".into());
            let signature = garble(rng, signature);
            Headers::new()
                .with("X-WC-Webhook-Source", source)
                .with("X-WC-Webhook-Topic", topic)
                .with("X-WC-Webhook-Signature", signature)
                .with("X-WC-Webhook-ID", "14")
        }
        Platform::Generic => {
            let t = if rng.one_in(8) {
                GENERIC_NOW + 10_000
            } else {
                GENERIC_NOW
            };
            let signature = if signed {
                sign_generic(SECRET, t, body)
            } else {
                sign_generic(b"another-secret-0123456789", t, body)
            };
            let shop = garble(rng, "demo-store.example".into());
            let signature = garble(rng, signature);
            Headers::new()
                .with("X-Cashback-Shop", shop)
                .with("X-Cashback-Signature", signature)
        }
    }
}

#[derive(Default)]
struct Tally {
    cases: u64,
    arbitrary: u64,
    mutated: u64,
    verified: u64,
    parsed_ok: u64,
    events: u64,
    errors: BTreeMap<&'static str, u64>,
    panics: u64,
}

fn run(platform: Platform, cases: u64, seed: u64) -> Tally {
    let mut rng = Rng(seed ^ (platform as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let own: Vec<&Fixture> = FIXTURES.iter().filter(|f| f.platform == platform).collect();
    let now = Utc
        .timestamp_opt(GENERIC_NOW, 0)
        .single()
        .unwrap_or_default();
    let mut tally = Tally::default();
    let panic_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-panics");
    for case in 0..cases {
        tally.cases += 1;
        let fixture = if rng.one_in(10) {
            rng.pick(FIXTURES)
        } else {
            *rng.pick(&own)
        };
        let body = if rng.one_in(10) {
            tally.arbitrary += 1;
            arbitrary(&mut rng)
        } else {
            tally.mutated += 1;
            let mut body = fixture.body.to_vec();
            let structured = rng.one_in(2);
            let count = if structured {
                1 + rng.below(3)
            } else {
                1 + rng.below(8)
            };
            for _ in 0..count {
                if structured {
                    mutate_structured(&mut rng, &mut body);
                } else {
                    mutate(&mut rng, &mut body);
                }
            }
            body
        };
        let headers = headers_for(&mut rng, platform, fixture.topic, &body);
        let currency = fixture.currency;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = platform.identify(&headers, &body);
            let verified = platform.verify(&headers, &body, &[SECRET], now).is_ok();
            let parsed = platform.parse(&headers, &body, currency);
            (verified, parsed)
        }));
        match outcome {
            Ok((verified, parsed)) => {
                tally.verified += u64::from(verified);
                match parsed {
                    Ok(delivery) => {
                        tally.parsed_ok += 1;
                        tally.events += delivery.events().len() as u64;
                    }
                    Err(error) => *tally.errors.entry(error.code()).or_default() += 1,
                }
            }
            Err(_) => {
                tally.panics += 1;
                let _ = std::fs::create_dir_all(&panic_dir);
                let file = panic_dir.join(format!("{}-{seed}-{case}.bin", platform.name()));
                let _ = std::fs::write(&file, &body);
                eprintln!("PANIC on case {case}: input in {}", file.display());
            }
        }
    }
    tally
}

fn main() {
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20_261_130);
    // Panics are caught and counted; the default hook would print each.
    panic::set_hook(Box::new(|_| {}));
    let mut panics = 0;
    for platform in [Platform::Shopify, Platform::WooCommerce, Platform::Generic] {
        let started = Instant::now();
        let tally = run(platform, cases, seed);
        let seconds = started.elapsed().as_secs_f64();
        panics += tally.panics;
        let errors: Vec<String> = tally
            .errors
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        println!(
            "fuzz figures: platform={} seed={seed} cases={} arbitrary={} mutated={} \
             signature_ok={} parsed_ok={} events={} panics={} seconds={seconds:.1} errors: {}",
            platform.name(),
            tally.cases,
            tally.arbitrary,
            tally.mutated,
            tally.verified,
            tally.parsed_ok,
            tally.events,
            tally.panics,
            errors.join(" ")
        );
    }
    if panics > 0 {
        eprintln!("{panics} panics");
        std::process::exit(1);
    }
}
