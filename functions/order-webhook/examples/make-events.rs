//! Writes the sample API Gateway events into `events/` (see
//! `cashback_test_support::samples`), signed with the demo shop's development
//! secret.
//!
//! ```text
//! cargo run -p order-webhook --example make-events          # as committed
//! cargo run -p order-webhook --example make-events -- --now # generic events signed now
//! cargo run -p order-webhook --example make-events -- --now --out DIR  # into another folder
//! ```
//!
//! The committed generic events are signed at a fixed time and so fall
//! outside the five-minute tolerance when replayed later; `--now` re-signs
//! them for a manual `cargo lambda invoke` (do not commit those).

use std::path::PathBuf;

use cashback_test_support::samples::{all, GENERIC_SIGNED_AT};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = std::env::args().any(|a| a == "--now");
    let t = if now {
        chrono::Utc::now().timestamp()
    } else {
        GENERIC_SIGNED_AT
    };
    let args: Vec<String> = std::env::args().collect();
    let dir = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out needs a folder")?),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events"),
    };
    std::fs::create_dir_all(&dir)?;
    for sample in all(t) {
        let path = dir.join(sample.file);
        let mut text = serde_json::to_string_pretty(&sample.api_gateway_event())?;
        text.push('\n');
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
