//! A store and a notifier with an await point before each call reaches the
//! inner adapter and another after it took effect, and a way to stop the run
//! at the n-th of them, as a Lambda killed mid-run stops: before a call, or
//! after a write committed (or an email went) without the run learning so.
//! The test picks n at random and drops the run with `tokio::select!` when
//! [`CutPoints::cut`] resolves; nothing after that point happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::Store;
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};

/// Counts the await points passed and stops at the chosen one.
#[derive(Default)]
pub struct CutPoints {
    passed: AtomicU64,
    /// The point (1-based, counted from the start) that never returns; 0: none.
    cut_at: AtomicU64,
    reached: tokio::sync::Notify,
}

impl CutPoints {
    pub fn new() -> Arc<CutPoints> {
        Arc::new(CutPoints::default())
    }

    /// Await points passed so far.
    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// The `nth` await point from now (1 = the next) will never return.
    pub fn cut_after(&self, nth: u64) {
        let now = self.passed.load(Ordering::SeqCst);
        self.cut_at.store(now + nth.max(1), Ordering::SeqCst);
    }

    pub fn never_cut(&self) {
        self.cut_at.store(0, Ordering::SeqCst);
    }

    /// Resolves once the run reached its cut: the moment to drop it.
    pub async fn cut(&self) {
        self.reached.notified().await;
    }

    /// One await point: yields, or hangs forever if it is the cut.
    pub async fn point(&self) {
        let n = self.passed.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.cut_at.load(Ordering::SeqCst) {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
    }
}

/// The await points around the calls a scheduled run makes (reads, writes,
/// the index and checkpoints, shops and programs); admin-only calls pass
/// straight through.
pub struct CutCalls(pub Arc<CutPoints>);

/// A store with an await point before and after each of those calls.
pub type CutStore = Intercepted<CutCalls>;

pub fn cut_store(inner: Arc<dyn Store>, points: Arc<CutPoints>) -> CutStore {
    Intercepted::new(inner, CutCalls(points))
}

impl Interceptor for CutCalls {
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        let cut = matches!(
            call,
            Call::Read
                | Call::Write
                | Call::GetShop
                | Call::GetProgram
                | Call::PutProgram
                | Call::Due
                | Call::GetCheckpoint
                | Call::PutCheckpoint
                | Call::IncrementCounter
        );
        if !cut {
            return run;
        }
        Box::pin(async move {
            self.0.point().await;
            let out = run.await;
            self.0.point().await;
            out
        })
    }
}

/// A notifier with an await point before and after every send: a run can
/// be cut off with an email about to go, or just sent but not yet noted.
pub struct CutNotifier {
    inner: Arc<dyn Notifier>,
    points: Arc<CutPoints>,
}

impl CutNotifier {
    pub fn new(inner: Arc<dyn Notifier>, points: Arc<CutPoints>) -> CutNotifier {
        CutNotifier { inner, points }
    }
}

#[async_trait::async_trait]
impl Notifier for CutNotifier {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        self.points.point().await;
        let sent = self.inner.send(notification).await;
        self.points.point().await;
        sent
    }
}
