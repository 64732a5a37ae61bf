//! Secret keys given at start, or read on first use: the link keys (they
//! sign unsubscribe links, the customer page's links and form tokens, the
//! dashboard's session and CSRF tokens) and the Shopify app secret (app
//! proxy requests, App Bridge session tokens).
//!
//! On Lambda they live in SSM. Reading them at start cost every function a
//! round trip to SSM before its first poll, most of a cold start's extra
//! time (BENCHMARKS.md, section 4), though most invocations never use them:
//! a coupon check, a platform sync, a webhook that sends no email. So the
//! wiring hands a loader, and the first use reads them once per container.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;

/// The current key, and the keys before a rotation: links signed with
/// those (emails already sent) keep working while they are listed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Signs every new link and form.
    pub current: Vec<u8>,
    /// Still accepted when checking.
    pub previous: Vec<Vec<u8>>,
}

impl KeySet {
    /// Every key a link may have been signed with, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.current.as_slice()).chain(self.previous.iter().map(Vec::as_slice))
    }
}

impl fmt::Debug for KeySet {
    // Never the keys themselves, in a log line or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// Reads the keys where the deployment keeps them (SSM on Lambda).
#[async_trait]
pub trait KeyLoader: Send + Sync {
    /// The keys, or why they could not be read (naming no key).
    async fn load(&self) -> Result<KeySet, String>;
}

/// A secret could not be read; a later request tries again.
#[derive(Debug, thiserror::Error)]
#[error("a secret could not be read: {0}")]
pub struct SecretUnavailable(pub String);

/// A container's keys of one secret: fixed, or read once on first use.
#[derive(Clone)]
pub struct SecretKeys {
    keys: Arc<OnceCell<KeySet>>,
    loader: Option<Arc<dyn KeyLoader>>,
}

impl SecretKeys {
    /// Keys known at start (local runs, tests).
    pub fn fixed(keys: KeySet) -> SecretKeys {
        SecretKeys {
            keys: Arc::new(OnceCell::new_with(Some(keys))),
            loader: None,
        }
    }

    /// One key known at start, with no previous one.
    pub fn one(key: Vec<u8>) -> SecretKeys {
        SecretKeys::fixed(KeySet {
            current: key,
            previous: Vec::new(),
        })
    }

    /// Keys the first use reads through `loader`. A failed read is not
    /// kept: the next use reads again.
    pub fn on_first_use(loader: Arc<dyn KeyLoader>) -> SecretKeys {
        SecretKeys {
            keys: Arc::new(OnceCell::new()),
            loader: Some(loader),
        }
    }

    /// The keys, read now if this is their first use. Concurrent first
    /// uses share one read.
    pub async fn get(&self) -> Result<&KeySet, SecretUnavailable> {
        self.keys
            .get_or_try_init(|| async {
                match &self.loader {
                    Some(loader) => loader.load().await.map_err(SecretUnavailable),
                    None => Err(SecretUnavailable("no key and no loader".into())),
                }
            })
            .await
    }

    /// The keys if they are already known, without reading them.
    pub fn if_loaded(&self) -> Option<&KeySet> {
        self.keys.get()
    }
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeys")
            .field("loaded", &self.keys.initialized())
            .field("lazy", &self.loader.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    struct Counted {
        reads: AtomicU32,
        fail_first: bool,
    }

    #[async_trait]
    impl KeyLoader for Counted {
        async fn load(&self) -> Result<KeySet, String> {
            let read = self.reads.fetch_add(1, SeqCst);
            if self.fail_first && read == 0 {
                return Err("SSM parameter /x could not be read (ThrottlingException)".into());
            }
            Ok(KeySet {
                current: b"current".to_vec(),
                previous: vec![b"old".to_vec()],
            })
        }
    }

    #[tokio::test]
    async fn keys_are_read_once_on_first_use_and_a_failed_read_is_tried_again() {
        let loader = Arc::new(Counted {
            reads: AtomicU32::new(0),
            fail_first: true,
        });
        let keys = SecretKeys::on_first_use(loader.clone());
        assert!(keys.if_loaded().is_none());
        assert_eq!(loader.reads.load(SeqCst), 0, "nothing read at start");
        let failed = keys.get().await.unwrap_err();
        assert!(failed.to_string().contains("ThrottlingException"));
        let (a, b) = tokio::join!(keys.get(), keys.get());
        assert_eq!(a.unwrap().current, b"current");
        assert_eq!(b.unwrap().previous, vec![b"old".to_vec()]);
        keys.clone().get().await.unwrap();
        assert_eq!(loader.reads.load(SeqCst), 2, "one failed read, one kept");
        assert_eq!(
            keys.if_loaded().map(|k| k.all().count()),
            Some(2),
            "current and previous"
        );
    }

    #[test]
    fn the_keys_never_reach_a_debug_line() {
        let keys = SecretKeys::fixed(KeySet {
            current: b"a-secret-that-must-not-print".to_vec(),
            previous: Vec::new(),
        });
        let printed = format!("{keys:?} {:?}", keys.if_loaded());
        assert!(!printed.contains("must-not-print"), "{printed}");
    }
}
