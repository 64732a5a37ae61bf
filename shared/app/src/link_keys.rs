//! The keys that sign links and forms (unsubscribe links, the customer
//! page's links and form tokens, the dashboard's session and CSRF tokens):
//! given at start, or read on first use.
//!
//! On Lambda they live in SSM. Reading them at start cost every function a
//! round trip to SSM before its first poll, most of a cold start's extra
//! time (BENCHMARKS.md, section 4), though most invocations never sign a
//! link: a coupon check, a platform sync, a webhook that sends no email.
//! So the wiring hands a loader, and the first use case that signs or
//! checks a link reads them once per container.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;

/// The current key, and the keys before a rotation: links signed with
/// those (emails already sent) keep working while they are listed.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKeySet {
    /// Signs every new link and form.
    pub current: Vec<u8>,
    /// Still accepted when checking.
    pub previous: Vec<Vec<u8>>,
}

impl LinkKeySet {
    /// Every key a link may have been signed with, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.current.as_slice()).chain(self.previous.iter().map(Vec::as_slice))
    }
}

impl fmt::Debug for LinkKeySet {
    // Never the keys themselves, in a log line or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKeySet")
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// Reads the keys where the deployment keeps them (SSM on Lambda).
#[async_trait]
pub trait LinkKeyLoader: Send + Sync {
    /// The keys, or why they could not be read (naming no key).
    async fn load(&self) -> Result<LinkKeySet, String>;
}

/// The link keys could not be read; a later request tries again.
#[derive(Debug, thiserror::Error)]
#[error("the link secret could not be read: {0}")]
pub struct LinkKeysUnavailable(pub String);

/// The link keys of a container: fixed, or read once on first use.
#[derive(Clone)]
pub struct LinkKeys {
    keys: Arc<OnceCell<LinkKeySet>>,
    loader: Option<Arc<dyn LinkKeyLoader>>,
}

impl LinkKeys {
    /// Keys known at start (local runs, tests).
    pub fn fixed(keys: LinkKeySet) -> LinkKeys {
        LinkKeys {
            keys: Arc::new(OnceCell::new_with(Some(keys))),
            loader: None,
        }
    }

    /// Keys the first use reads through `loader`. A failed read is not
    /// kept: the next use reads again.
    pub fn on_first_use(loader: Arc<dyn LinkKeyLoader>) -> LinkKeys {
        LinkKeys {
            keys: Arc::new(OnceCell::new()),
            loader: Some(loader),
        }
    }

    /// The keys, read now if this is their first use. Concurrent first
    /// uses share one read.
    pub async fn get(&self) -> Result<&LinkKeySet, LinkKeysUnavailable> {
        self.keys
            .get_or_try_init(|| async {
                match &self.loader {
                    Some(loader) => loader.load().await.map_err(LinkKeysUnavailable),
                    None => Err(LinkKeysUnavailable("no key and no loader".into())),
                }
            })
            .await
    }

    /// The keys if they are already known, without reading them.
    pub fn if_loaded(&self) -> Option<&LinkKeySet> {
        self.keys.get()
    }
}

impl fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKeys")
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
    impl LinkKeyLoader for Counted {
        async fn load(&self) -> Result<LinkKeySet, String> {
            let read = self.reads.fetch_add(1, SeqCst);
            if self.fail_first && read == 0 {
                return Err("SSM parameter /x could not be read (ThrottlingException)".into());
            }
            Ok(LinkKeySet {
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
        let keys = LinkKeys::on_first_use(loader.clone());
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
        let keys = LinkKeys::fixed(LinkKeySet {
            current: b"a-secret-that-must-not-print".to_vec(),
            previous: Vec::new(),
        });
        let printed = format!("{keys:?} {:?}", keys.if_loaded());
        assert!(!printed.contains("must-not-print"), "{printed}");
    }
}
