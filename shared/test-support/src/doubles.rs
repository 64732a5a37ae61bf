//! Test doubles of the engine's ports: notifiers that keep or drop what
//! they are asked to send, and code sources with known bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::CodeSource;
use cashback_core::ids::GENERATED_CODE_LENGTH;

/// Keeps every notification it is asked to send, in order.
#[derive(Default)]
pub struct KeptNotifier {
    pub sent: Mutex<Vec<Notification>>,
}

#[async_trait::async_trait]
impl Notifier for KeptNotifier {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        let mut sent = self
            .sent
            .lock()
            .map_err(|_| NotifyError::Unavailable("poisoned".into()))?;
        sent.push(notification.clone());
        Ok(Sent {
            message_id: format!("m{}", sent.len()),
        })
    }
}

impl KeptNotifier {
    /// The kinds of what was sent, in order ("earned", "reminder", ...).
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sent
            .lock()
            .map(|sent| sent.iter().map(|n| n.kind.name()).collect())
            .unwrap_or_default()
    }
}

/// Accepts every notification and sends nothing.
pub struct Silent;

#[async_trait::async_trait]
impl Notifier for Silent {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        Ok(Sent {
            message_id: "none".into(),
        })
    }
}

/// Code bytes all equal to a counter (1, 2, 3...): deterministic, so two
/// worlds fed the same events in another order give their customers the
/// same codes. Repeats after 32 codes; [`UniqueCodes`] does not.
pub struct CountingCodes(pub Mutex<u8>);

impl Default for CountingCodes {
    fn default() -> Self {
        CountingCodes(Mutex::new(0))
    }
}

impl CodeSource for CountingCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.wrapping_add(1);
        [*n; GENERATED_CODE_LENGTH]
    }
}

/// Codes from a counter, one base-32 digit per byte, most significant
/// first: unique for any number of customers.
#[derive(Default)]
pub struct UniqueCodes(AtomicU64);

impl CodeSource for UniqueCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; GENERATED_CODE_LENGTH];
        for byte in bytes.iter_mut().rev() {
            *byte = (n % 32) as u8;
            n /= 32;
        }
        bytes
    }
}

/// Codes from a counter, one base-32 digit per byte, least significant
/// first: deterministic, so a test stays reproducible.
pub struct SeqCodes(pub Mutex<u64>);

impl Default for SeqCodes {
    fn default() -> Self {
        SeqCodes(Mutex::new(0))
    }
}

impl CodeSource for SeqCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self
            .0
            .lock()
            .map(|mut n| {
                *n += 1;
                *n
            })
            .unwrap_or(0);
        let mut bytes = [0u8; GENERATED_CODE_LENGTH];
        for byte in bytes.iter_mut() {
            *byte = (n & 0x1f) as u8;
            n >>= 5;
        }
        bytes
    }
}

/// The shops whose Klaviyo key is stored (the `MarketingAccounts` port).
pub struct KlaviyoKeysFor(pub Vec<cashback_core::ids::ShopId>);

#[async_trait::async_trait]
impl cashback_app::marketing::MarketingAccounts for KlaviyoKeysFor {
    async fn has_account(
        &self,
        shop: &cashback_core::ids::ShopId,
    ) -> Result<bool, cashback_app::marketing::MarketingError> {
        Ok(self.0.contains(shop))
    }
}

/// Keeps every sync retry it is asked to queue, as the queue's messages
/// would carry them.
#[derive(Default)]
pub struct KeptRetries {
    pub queued: Mutex<Vec<cashback_app::platform_codes::RetryRequest>>,
}

#[async_trait::async_trait]
impl cashback_app::platform_codes::SyncRetries for KeptRetries {
    async fn retry_later(
        &self,
        requests: &[cashback_app::platform_codes::RetryRequest],
    ) -> Result<(), cashback_app::platform_codes::RetryQueueError> {
        let mut queued = self.queued.lock().expect("the retries' lock");
        queued.extend_from_slice(requests);
        Ok(())
    }
}

impl KeptRetries {
    /// Everything queued so far, taken.
    pub fn take(&self) -> Vec<cashback_app::platform_codes::RetryRequest> {
        std::mem::take(&mut *self.queued.lock().expect("the retries' lock"))
    }

    /// `requests` as the queue hands them to the function: an SQS batch,
    /// message ids `m0`, `m1`, ...
    pub fn sqs_batch(requests: &[cashback_app::platform_codes::RetryRequest]) -> serde_json::Value {
        let records: Vec<serde_json::Value> = requests
            .iter()
            .enumerate()
            .map(|(index, request)| {
                sqs_record(
                    &format!("m{index}"),
                    &serde_json::to_string(request).expect("a request serialises"),
                )
            })
            .collect();
        serde_json::json!({ "Records": records })
    }
}

/// One SQS record as Lambda's SQS event source hands it over.
pub fn sqs_record(message_id: &str, body: &str) -> serde_json::Value {
    serde_json::json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AROAEXAMPLE:platform-sync",
            "ApproximateFirstReceiveTimestamp": "1767225720000"
        },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cashback-sync-retries",
        "awsRegion": "us-east-1"
    })
}
