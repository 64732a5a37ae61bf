//! A value built by its first use, once per container: the functions'
//! clients, so that a cold start builds none (BENCHMARKS.md, section 4).

use std::sync::OnceLock;

/// The value `build` makes, made by the first [`OnFirstUse::get`].
pub struct OnFirstUse<T> {
    build: Box<dyn Fn() -> T + Send + Sync>,
    value: OnceLock<T>,
}

impl<T> OnFirstUse<T> {
    /// Nothing is built here.
    pub fn new(build: impl Fn() -> T + Send + Sync + 'static) -> OnFirstUse<T> {
        OnFirstUse {
            build: Box::new(build),
            value: OnceLock::new(),
        }
    }

    /// The value, built by the first caller.
    pub fn get(&self) -> &T {
        self.value.get_or_init(|| (self.build)())
    }
}

impl<T: Clone + Send + Sync + 'static> OnFirstUse<T> {
    /// A value built elsewhere (a clone of it is taken by the first use).
    pub fn built(value: T) -> OnFirstUse<T> {
        OnFirstUse::new(move || value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn built_by_the_first_use_and_only_once() {
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let lazy = OnFirstUse::new(move || count.fetch_add(1, Ordering::SeqCst) + 41);
        assert_eq!(built.load(Ordering::SeqCst), 0, "nothing built by new");
        assert_eq!(*lazy.get(), 41);
        assert_eq!(*lazy.get(), 41);
        assert_eq!(built.load(Ordering::SeqCst), 1);
    }
}
