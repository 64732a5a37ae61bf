//! A router declared in parts by path prefix, so that a function serving
//! many routes builds at start none of them, and on its first request only
//! the part that request needs (BENCHMARKS.md, section 4).
//!
//! axum spends about 20,000 instructions on a route (its path tree, the
//! method router, each layer, the state); admin-api's 34 routes were half
//! of its start. [`RouteParts::on_first_use`] answers every request through
//! the part its path falls in, built by the first request under that
//! prefix and kept for the container's life. [`RouteParts::all`] builds
//! every part at once, one router to merge with others (the local server,
//! tests). Both are built from the same declarations, and each route is
//! checked to be reached, for every value of its parameters, by the part
//! that declares it and by no other, so a request cannot be served by one
//! and missed by the other.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::routing::future::RouteFuture;
use axum::routing::MethodRouter;
use axum::Router;
use tower::Service;

/// A part's routes: (path, its methods). A plain function, so declaring a
/// part builds nothing.
pub type Routes<S> = fn() -> Vec<(&'static str, MethodRouter<S>)>;

/// What every part gets once its routes are in: the layers and the state.
pub type Finish<S> = fn(Router<S>, S) -> Router;

/// The parts of one router (see the module doc).
pub struct RouteParts<S> {
    finish: Finish<S>,
    parts: Vec<Part<S>>,
    rest: Routes<S>,
}

struct Part<S> {
    prefix: Prefix,
    routes: Routes<S>,
}

impl<S: Clone + Send + Sync + 'static> RouteParts<S> {
    /// No part yet; `rest` holds the routes that fall in no part, and
    /// answers every path no route matches.
    pub fn new(finish: Finish<S>, rest: Routes<S>) -> RouteParts<S> {
        RouteParts {
            finish,
            parts: Vec::new(),
            rest,
        }
    }

    /// A part: every path whose first segments are `prefix`'s (a `{name}`
    /// segment stands for any one segment). A path falls in the first part
    /// declared that it matches.
    ///
    /// # Panics
    /// If `prefix` is not an absolute path of non-empty segments: it is
    /// the route table, written in the code, like axum's own paths.
    pub fn part(mut self, prefix: &'static str, routes: Routes<S>) -> RouteParts<S> {
        let prefix = Prefix::parse(prefix)
            .unwrap_or_else(|| panic!("route part prefix {prefix:?} is not /segment/..."));
        self.parts.push(Part { prefix, routes });
        self
    }

    /// Every part at once, as one router.
    ///
    /// # Panics
    /// If a request for a route could reach another part than the one
    /// declaring it (see [`RouteParts::on_first_use`]), or as axum does for
    /// a route declared twice.
    pub fn all(self, state: S) -> Router {
        let mut router = Router::new();
        for index in 0..=self.parts.len() {
            router = self.add_routes(router, index);
        }
        (self.finish)(router, state)
    }

    /// Every route's path, the rest's last (what API Gateway must route to
    /// the function).
    pub fn paths(&self) -> Vec<&'static str> {
        self.parts
            .iter()
            .map(|part| part.routes)
            .chain([self.rest])
            .flat_map(|routes| routes().into_iter().map(|(path, _)| path))
            .collect()
    }

    /// A router that builds each part on the first request under its
    /// prefix, and the rest on the first request in no part.
    pub fn on_first_use(self, state: S) -> Router {
        let built = (0..=self.parts.len()).map(|_| OnceLock::new()).collect();
        Router::new().fallback_service(PartsOnFirstUse(Arc::new(Built {
            parts: self,
            state,
            built,
        })))
    }

    /// The part a path falls in: an index into `parts`, or `parts.len()`
    /// for the rest.
    fn part_of(&self, path: &str) -> usize {
        self.parts
            .iter()
            .position(|part| part.prefix.matches(path))
            .unwrap_or(self.parts.len())
    }

    /// Part `index`'s routes added to `router`, each checked to fall in it.
    fn add_routes(&self, mut router: Router<S>, index: usize) -> Router<S> {
        let routes = match self.parts.get(index) {
            Some(part) => (part.routes)(),
            None => (self.rest)(),
        };
        for (path, methods) in routes {
            if let Some(problem) = self.misplaced(path, index) {
                panic!("{problem}");
            }
            router = router.route(path, methods);
        }
        router
    }

    /// Why some request for route `path`, declared in part `index`, would
    /// not reach that part (None when every one does): the part's prefix
    /// must hold for every value of the route's parameters, and no earlier
    /// part's (every part's, for the rest) may hold for any.
    fn misplaced(&self, path: &str, index: usize) -> Option<String> {
        if let Some(part) = self.parts.get(index) {
            if !part.prefix.covers(path) {
                return Some(format!(
                    "route {path} is declared in {} but not every request for it falls in it",
                    self.name(index)
                ));
            }
        }
        let earlier = index.min(self.parts.len());
        let taken = self.parts[..earlier]
            .iter()
            .position(|part| part.prefix.may_match(path))?;
        Some(format!(
            "route {path} is declared in {} but a request for it can fall in {}",
            self.name(index),
            self.name(taken)
        ))
    }

    fn build(&self, index: usize, state: &S) -> Router {
        (self.finish)(self.add_routes(Router::new(), index), state.clone())
    }

    fn name(&self, index: usize) -> String {
        match self.parts.get(index) {
            Some(part) => format!("the part {}", part.prefix.text),
            None => "the rest".to_string(),
        }
    }
}

/// The parts with the routers built so far, one cell per part and the
/// rest's last.
struct Built<S> {
    parts: RouteParts<S>,
    state: S,
    built: Vec<OnceLock<Router>>,
}

/// The service behind [`RouteParts::on_first_use`].
struct PartsOnFirstUse<S>(Arc<Built<S>>);

impl<S> Clone for PartsOnFirstUse<S> {
    fn clone(&self) -> Self {
        PartsOnFirstUse(self.0.clone())
    }
}

impl<S: Clone + Send + Sync + 'static> Service<Request> for PartsOnFirstUse<S> {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Built {
            parts,
            state,
            built,
        } = self.0.as_ref();
        let index = parts.part_of(request.uri().path());
        let mut router = built[index]
            .get_or_init(|| parts.build(index, state))
            .clone();
        router.call(request)
    }
}

/// A part's path prefix, by segment.
struct Prefix {
    text: &'static str,
    segments: Vec<&'static str>,
}

impl Prefix {
    fn parse(text: &'static str) -> Option<Prefix> {
        let segments: Vec<&'static str> = text.strip_prefix('/')?.split('/').collect();
        let well_formed = |segment: &&str| {
            !segment.is_empty()
                && (is_parameter(segment) && !is_catch_all(segment) || !segment.contains('{'))
        };
        if !segments.iter().all(well_formed) {
            return None;
        }
        Some(Prefix { text, segments })
    }

    /// Whether a request path's first segments are this prefix's.
    fn matches(&self, path: &str) -> bool {
        let mut segments = segments_of(path);
        self.segments.iter().all(|want| match segments.next() {
            Some(got) if is_parameter(want) => !got.is_empty(),
            Some(got) => got == *want,
            None => false,
        })
    }

    /// Whether every request for route `route` (its `{name}` segments any
    /// one segment, a `{*name}` any rest) matches this prefix.
    fn covers(&self, route: &str) -> bool {
        let mut segments = segments_of(route);
        self.segments.iter().all(|want| match segments.next() {
            Some(got) if is_catch_all(got) => false,
            Some(got) if is_parameter(want) => !got.is_empty(),
            // A parameter in part of a segment (`v{n}`) takes many values.
            Some(got) => got == *want && !got.contains('{'),
            None => false,
        })
    }

    /// Whether some request for route `route` matches this prefix.
    fn may_match(&self, route: &str) -> bool {
        let mut segments = segments_of(route);
        for want in &self.segments {
            match segments.next() {
                Some(got) if is_catch_all(got) => return true,
                Some(got) if got.contains('{') || is_parameter(want) => {}
                Some(got) if got == *want => {}
                _ => return false,
            }
        }
        true
    }
}

fn segments_of(path: &str) -> std::str::Split<'_, char> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// A `{*name}`, whole or at the end of a segment: any rest of the path.
fn is_catch_all(segment: &str) -> bool {
    segment.contains("{*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    /// The state: how many parts were built.
    type Built = Arc<AtomicUsize>;

    fn finish(router: Router<Built>, built: Built) -> Router {
        built.fetch_add(1, Ordering::SeqCst);
        router.with_state(built)
    }

    fn customers() -> Vec<(&'static str, MethodRouter<Built>)> {
        vec![
            ("/v1/shops/{shop}/customers", get(|| async { "customers" })),
            (
                "/v1/shops/{shop}/customers/{id}",
                get(|| async { "one customer" }),
            ),
        ]
    }

    fn rest() -> Vec<(&'static str, MethodRouter<Built>)> {
        vec![
            ("/v1/shops", get(|| async { "shops" })),
            ("/v1/shops/{shop}/reports", get(|| async { "reports" })),
        ]
    }

    fn misfiled() -> Vec<(&'static str, MethodRouter<Built>)> {
        vec![("/v1/shops/{shop}/reports", get(|| async { "reports" }))]
    }

    async fn answer(router: &Router, method: &str, path: &str) -> (u16, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("a request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("a body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn each_part_is_built_by_its_first_request_and_answers_as_the_whole_router() {
        let parts = || RouteParts::new(finish, rest).part("/v1/shops/{shop}/customers", customers);
        let eager = parts().all(Built::default());
        let built = Built::default();
        let lazy = parts().on_first_use(built.clone());
        assert_eq!(
            parts().paths(),
            [
                "/v1/shops/{shop}/customers",
                "/v1/shops/{shop}/customers/{id}",
                "/v1/shops",
                "/v1/shops/{shop}/reports"
            ]
        );
        assert_eq!(built.load(Ordering::SeqCst), 0, "nothing built at start");

        let requests = [
            ("GET", "/v1/shops"),
            ("GET", "/v1/shops/s1/customers"),
            ("GET", "/v1/shops/s1/customers/c9"),
            ("GET", "/v1/shops/s1/customers/c9/extra"),
            ("GET", "/v1/shops/s1/customers/"),
            ("GET", "/v1/shops/s1/customersX"),
            ("POST", "/v1/shops/s1/customers"),
            ("GET", "/v1/shops/s1/reports"),
            ("GET", "/nowhere"),
            ("GET", "/"),
        ];
        let first = answer(&lazy, "GET", "/v1/shops/s1/customers/c9").await;
        assert_eq!(first, (200, "one customer".to_string()));
        assert_eq!(built.load(Ordering::SeqCst), 1, "one part built");
        for (method, path) in requests {
            assert_eq!(
                answer(&lazy, method, path).await,
                answer(&eager, method, path).await,
                "{method} {path}"
            );
        }
        answer(&lazy, "GET", "/v1/shops/s2/customers").await;
        answer(&lazy, "GET", "/nowhere").await;
        assert_eq!(built.load(Ordering::SeqCst), 2, "each part built once");
    }

    #[test]
    #[should_panic(
        expected = "route /v1/shops/{shop}/reports is declared in the part /v1/shops/{shop}/customers but not every request for it falls in it"
    )]
    fn a_route_declared_outside_its_prefix_is_refused() {
        let _ = RouteParts::new(finish, rest)
            .part("/v1/shops/{shop}/customers", misfiled)
            .all(Built::default());
    }

    #[test]
    #[should_panic(
        expected = "route /v1/shops/{shop}/customers is declared in the rest but a request for it can fall in the part /v1/shops/{shop}/customers"
    )]
    fn a_rest_route_that_a_part_would_answer_is_refused() {
        let _ = RouteParts::new(finish, customers)
            .part("/v1/shops/{shop}/customers", customers)
            .all(Built::default());
    }

    fn any_shop_page() -> Vec<(&'static str, MethodRouter<Built>)> {
        vec![("/v1/shops/{shop}/{page}", get(|| async { "a page" }))]
    }

    #[test]
    #[should_panic(
        expected = "route /v1/shops/{shop}/{page} is declared in the rest but a request for it can fall in the part /v1/shops/{shop}/customers"
    )]
    fn a_parameter_that_can_name_a_parts_prefix_is_refused() {
        // GET /v1/shops/s1/customers would be "a page" in the whole router
        // and a 404 of the customers' part in the Lambda's.
        let _ = RouteParts::new(finish, any_shop_page)
            .part("/v1/shops/{shop}/customers", customers)
            .all(Built::default());
    }

    #[test]
    fn a_route_covered_by_its_prefix_and_by_no_earlier_one_is_placed() {
        let customers = Prefix::parse("/v1/shops/{shop}/customers").expect("a prefix");
        assert!(customers.covers("/v1/shops/{shop}/customers/{id}"));
        assert!(!customers.covers("/v1/shops/{shop}/{page}"));
        assert!(!customers.covers("/v1/shops/{*rest}"));
        assert!(!customers.covers("/v1/shops/{shop}"));
        assert!(customers.may_match("/v1/shops/{shop}/{page}"));
        assert!(customers.may_match("/v1/{*rest}"));
        assert!(customers.may_match("/v1/shops/s1/customers"));
        assert!(!customers.may_match("/v1/shops/{shop}/reports"));
        assert!(!customers.may_match("/v1/shops/{shop}"));
        // A parameter in part of a segment may name any segment.
        assert!(customers.may_match("/v1/shops/{shop}/cust{omers}"));
        assert!(customers.may_match("/v1/shops/{shop}/c{*rest}"));
        assert!(!customers.covers("/v1/shops/{shop}/cust{omers}"));
        assert!(Prefix::parse("/v1/shops/{shop}").is_some());
        assert!(Prefix::parse("/v1/shop{s}").is_none());
        assert!(Prefix::parse("/v1/{*rest}").is_none());
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let prefix = Prefix::parse("/v1/shops/{shop}/customers").expect("a prefix");
        assert!(prefix.matches("/v1/shops/s1/customers"));
        assert!(prefix.matches("/v1/shops/s1/customers/c1/ledger"));
        assert!(prefix.matches("/v1/shops/{shop}/customers/{id}"));
        assert!(!prefix.matches("/v1/shops//customers"));
        assert!(!prefix.matches("/v1/shops/s1/customersX"));
        assert!(!prefix.matches("/v1/shops/s1"));
        assert!(Prefix::parse("v1/shops").is_none());
        assert!(Prefix::parse("/v1//shops").is_none());
        assert!(Prefix::parse("/").is_none());
    }
}
