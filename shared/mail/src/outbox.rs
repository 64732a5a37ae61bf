//! The local outbox: each email becomes an `.eml` file in a folder, so a
//! developer (or an end-to-end test) reads exactly what a customer would get
//! without an AWS account. Open the files in any mail client.
//!
//! A file's name comes from the notification's idempotency key (cleaned,
//! plus a stable hash of the whole key), so sending the same key again finds
//! the file and returns it instead of writing a second one. The file is
//! written under a temporary name and hard-linked into place: the link fails
//! atomically when the name exists, so two concurrent sends of one key still
//! leave one complete file and never a half-written one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tracing::instrument;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_core::ids::Email;

use crate::encoding::fnv1a64;
use crate::mime::{compose, Envelope};
use crate::templates::render;
use crate::{env_opt, parse_from, system_clock, Clock, ConfigError};

/// Where the outbox writes and whom its emails are from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    pub from: Email,
}

impl OutboxConfig {
    pub const DEFAULT_DIR: &'static str = "outbox";
    pub const DEFAULT_FROM: &'static str = "no-reply@cashback.localhost";

    /// `CASHBACK_OUTBOX_DIR` (default `outbox`) and `CASHBACK_MAIL_FROM`
    /// (default `no-reply@cashback.localhost`): local runs need no setup.
    pub fn from_env() -> Result<OutboxConfig, ConfigError> {
        let dir = env_opt("CASHBACK_OUTBOX_DIR").unwrap_or_else(|| Self::DEFAULT_DIR.to_string());
        let from = env_opt("CASHBACK_MAIL_FROM").unwrap_or_else(|| Self::DEFAULT_FROM.to_string());
        Ok(OutboxConfig {
            dir: PathBuf::from(dir),
            from: parse_from("CASHBACK_MAIL_FROM", &from)?,
        })
    }
}

/// Writes each email as an RFC 5322 `.eml` file into a folder.
pub struct OutboxNotifier {
    config: OutboxConfig,
    clock: Clock,
    /// Names temporary files apart when one process sends a key twice at once.
    attempts: AtomicU64,
}

impl OutboxNotifier {
    pub fn new(config: OutboxConfig) -> OutboxNotifier {
        OutboxNotifier {
            config,
            clock: system_clock(),
            attempts: AtomicU64::new(0),
        }
    }

    /// Replaces the clock the `Date:` header is taken from.
    pub fn with_clock(mut self, clock: Clock) -> OutboxNotifier {
        self.clock = clock;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// The file a [`Sent`] returned by this outbox names.
    pub fn path_of(&self, sent: &Sent) -> PathBuf {
        self.config.dir.join(&sent.message_id)
    }
}

/// `ready_shop_cust_order-<16 hex>.eml`: readable in a listing, and the hash
/// of the whole key keeps two keys that clean up alike apart.
pub(crate) fn file_name(idempotency_key: &str) -> String {
    let cleaned: String = idempotency_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{cleaned}-{:016x}.eml", fnv1a64(idempotency_key.as_bytes()))
}

fn unavailable(error: std::io::Error) -> NotifyError {
    NotifyError::Unavailable(format!("outbox: {error}"))
}

#[async_trait]
impl Notifier for OutboxNotifier {
    #[instrument(
        name = "outbox.send",
        skip(self, notification),
        fields(kind = notification.kind.name(), shop = %notification.shop)
    )]
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        let name = file_name(&notification.idempotency_key);
        let path = self.config.dir.join(&name);
        let sent = Sent {
            message_id: name.clone(),
        };
        if tokio::fs::try_exists(&path).await.map_err(unavailable)? {
            tracing::info!(file = %name, "already in the outbox");
            return Ok(sent);
        }

        let email = render(notification);
        let envelope = Envelope {
            from: &self.config.from,
            date: (self.clock)(),
        };
        let message = compose(notification, &email, &envelope)?;

        tokio::fs::create_dir_all(&self.config.dir)
            .await
            .map_err(unavailable)?;
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let temporary = self
            .config
            .dir
            .join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        tokio::fs::write(&temporary, message.as_bytes())
            .await
            .map_err(unavailable)?;
        let linked = tokio::fs::hard_link(&temporary, &path).await;
        // The temporary name has served its purpose either way.
        let _ = tokio::fs::remove_file(&temporary).await;
        match linked {
            Ok(()) => tracing::info!(file = %name, "written to the outbox"),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::info!(file = %name, "a concurrent send wrote it first");
            }
            Err(error) => return Err(unavailable(error)),
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    use cashback_app::notify::{Branding, NotificationKind};
    use cashback_core::ids::{Code, ShopId};
    use cashback_core::money::{Currency, Money};
    use chrono::{TimeZone, Utc};

    use crate::encoding::tests::decode_base64;

    /// A fresh folder per test under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("cashback-mail-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn outbox(dir: &Path) -> OutboxNotifier {
        let fixed = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        OutboxNotifier::new(OutboxConfig {
            dir: dir.to_path_buf(),
            from: Email::parse("rewards@demo.example.com").unwrap(),
        })
        .with_clock(Arc::new(move || fixed))
    }

    fn notification(key: &str, subject: Option<&str>) -> Notification {
        Notification {
            idempotency_key: key.to_string(),
            shop: ShopId::parse("demo.myshopify.com").unwrap(),
            to: Email::parse("ann@example.com").unwrap(),
            branding: Branding {
                display_name: "CashBack".to_string(),
                shop_name: "Demo Shop".to_string(),
                shop_url: Some("https://demo.example.com".to_string()),
                subject: subject.map(str::to_string),
                preview_text: None,
            },
            kind: NotificationKind::Ready {
                amount: Money::parse("12.30", Currency::USD).unwrap(),
                balance: Money::parse("40.00", Currency::USD).unwrap(),
                code: Code::parse("cb-7k2m9q").unwrap(),
            },
            unsubscribe_url: Some("https://demo.example.com/unsubscribe?t=abc".to_string()),
        }
    }

    /// The header block, unfolded, keyed by lower-case name.
    fn parse_headers(message: &str) -> HashMap<String, String> {
        let (head, _) = message
            .split_once("\r\n\r\n")
            .expect("a blank line after the headers");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded
            .split("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("name: value");
                (name.to_ascii_lowercase(), value.to_string())
            })
            .collect()
    }

    /// The decoded bodies of the multipart message's parts, by content type.
    fn parts(message: &str, boundary: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for part in message.split(&format!("--{boundary}")).skip(1) {
            let Some((head, body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let content_type = head
                .lines()
                .find_map(|line| line.strip_prefix("Content-Type: "))
                .unwrap_or_default()
                .to_string();
            let bytes = decode_base64(body);
            out.insert(content_type, String::from_utf8(bytes).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn an_email_is_written_as_a_parseable_multipart_eml_file() {
        let dir = TempDir::new("written");
        let outbox = outbox(&dir.0);
        let n = notification("ready:demo.myshopify.com:42:1001", None);

        let sent = outbox.send(&n).await.unwrap();

        assert_eq!(
            sent.message_id,
            format!(
                "ready_demo_myshopify_com_42_1001-{:016x}.eml",
                fnv1a64(n.idempotency_key.as_bytes())
            )
        );
        let message = std::fs::read_to_string(outbox.path_of(&sent)).unwrap();
        assert!(message.lines().all(|line| line.len() <= 998));
        assert!(!message.replace("\r\n", "").contains('\n'), "CRLF only");

        let headers = parse_headers(&message);
        assert_eq!(headers["from"], "\"Demo Shop\" <rewards@demo.example.com>");
        assert_eq!(headers["to"], "ann@example.com");
        assert_eq!(
            headers["subject"],
            "Your 12.30 USD in CashBack is ready to spend"
        );
        assert_eq!(headers["date"], "Mon, 23 Nov 2026 10:00:00 +0000");
        assert_eq!(headers["mime-version"], "1.0");
        assert_eq!(
            headers["list-unsubscribe"],
            "<https://demo.example.com/unsubscribe?t=abc>"
        );
        assert_eq!(
            headers["list-unsubscribe-post"],
            "List-Unsubscribe=One-Click"
        );
        assert!(headers["message-id"].ends_with(".ready@demo.example.com>"));

        let boundary = headers["content-type"]
            .strip_prefix("multipart/alternative; boundary=\"")
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("multipart/alternative with a quoted boundary");
        let parts = parts(&message, boundary);
        let text = &parts["text/plain; charset=utf-8"];
        let html = &parts["text/html; charset=utf-8"];
        assert!(text.contains("CB-7K2M9Q"));
        assert!(text.contains("40.00 USD"));
        assert!(html.contains("<strong>40.00 USD</strong>"));
        assert!(message.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[tokio::test]
    async fn sending_the_same_key_twice_keeps_the_first_file() {
        let dir = TempDir::new("idempotent");
        let outbox = outbox(&dir.0);

        let first = outbox
            .send(&notification("ready:k", Some("First")))
            .await
            .unwrap();
        let second = outbox
            .send(&notification("ready:k", Some("Second")))
            .await
            .unwrap();

        assert_eq!(first, second);
        let files: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
        assert_eq!(files.len(), 1, "one file, no temporary left behind");
        let message = std::fs::read_to_string(outbox.path_of(&first)).unwrap();
        assert_eq!(parse_headers(&message)["subject"], "First");
    }

    #[tokio::test]
    async fn concurrent_sends_of_one_key_leave_one_complete_file() {
        let dir = TempDir::new("concurrent");
        let outbox = Arc::new(outbox(&dir.0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let outbox = Arc::clone(&outbox);
                tokio::spawn(async move { outbox.send(&notification("ready:race", None)).await })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().unwrap());
        }
        assert!(ids.windows(2).all(|pair| pair[0] == pair[1]));
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn different_keys_write_different_files() {
        let dir = TempDir::new("distinct");
        let outbox = outbox(&dir.0);
        // These two clean up to the same text; the hash keeps them apart.
        let a = outbox.send(&notification("ready:a/b", None)).await.unwrap();
        let b = outbox.send(&notification("ready:a_b", None)).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn a_non_ascii_subject_is_encoded_per_rfc_2047() {
        let dir = TempDir::new("encoded");
        let outbox = outbox(&dir.0);
        let sent = outbox
            .send(&notification(
                "ready:utf8",
                Some("Ihr Guthaben: 12,30 € wartet"),
            ))
            .await
            .unwrap();
        let message = std::fs::read_to_string(outbox.path_of(&sent)).unwrap();
        let subject = &parse_headers(&message)["subject"];
        assert!(message.is_ascii(), "the whole message is 7-bit");
        let decoded: Vec<u8> = subject
            .split(' ')
            .flat_map(|word| {
                decode_base64(
                    word.strip_prefix("=?UTF-8?B?")
                        .and_then(|w| w.strip_suffix("?="))
                        .expect("an encoded word"),
                )
            })
            .collect();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "Ihr Guthaben: 12,30 € wartet"
        );
    }

    #[test]
    fn file_names_are_safe_and_stable() {
        let name = file_name("../../etc/passwd");
        assert!(!name.contains('/'));
        assert!(!name.starts_with('.'));
        assert_eq!(name, file_name("../../etc/passwd"));
        assert!(file_name(&"x".repeat(500)).len() < 120);
    }
}
