//! The pages in headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: every page at desktop (1280)
//! and phone (390) widths, the program editor's field error then a saved
//! change, an adjustment landing in the ledger, the customer's copy button
//! and apply link, the embeddable widget on a theme's page (through a
//! stand-in for Shopify's app proxy, and from a signed link), another shop's
//! user refused, keyboard focus, and axe-core finding no serious or critical
//! violation.
//!
//! Skipped when chromium or chromedriver is missing, unless
//! `REQUIRE_BROWSER=1` (infra/test.sh sets it). axe-core comes from the npm
//! registry: `AXE_CORE_JS` names its `axe.min.js` (infra/test.sh fetches it);
//! without it the accessibility check is skipped, unless `REQUIRE_BROWSER=1`.
//! `UPDATE_SCREENSHOTS=1` writes the screenshots to docs/screenshots/.

mod support;

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::Request;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use cashback_app::{admin, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_pages::auth::{hash_password_with, DashboardUser};
use cashback_pages::customer::signed_link;
use cashback_pages::{router_with, PagesConfig};
use customer_api::{proxy, CustomerApiConfig};
use tower::ServiceExt;

use support::webdriver::{Driver, Session};
use support::*;

const OWNER: &str = "owner@demo.test";
const RIVAL: &str = "rival@other.test";
const PASSWORD: &str = "a long demo password";
const APP_SECRET: &[u8] = b"app-secret";

fn required() -> bool {
    std::env::var("REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn found(env: &str, default: &str) -> Option<String> {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    std::path::Path::new(&path).exists().then_some(path)
}

fn config() -> PagesConfig {
    PagesConfig {
        proxy: CustomerApiConfig {
            shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(
                APP_SECRET.to_vec(),
            )),
            proxy_max_age_seconds: 300,
        },
        link_ttl_seconds: 3600,
        shopify_api_key: None,
        dashboard_users: vec![
            DashboardUser {
                shop: shop(),
                email: OWNER.into(),
                password_hash: hash_password_with(PASSWORD, [1; 16], 1000),
            },
            DashboardUser {
                shop: ShopId::parse("other.myshopify.com").unwrap(),
                email: RIVAL.into(),
                password_hash: hash_password_with(PASSWORD, [2; 16], 1000),
            },
        ],
    }
}

/// The pages on 127.0.0.1 with Ann's 30.00 and a coupon, the program's
/// shop URL pointing back at the server (so the apply link lands here).
fn serve() -> (String, Context) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let ctx = memory_context("30.00").await.with_clock(Arc::new(t0));
            let mut program = program();
            program.shop_url = Some(base.clone());
            program.display_name = "Demo Rewards".into();
            program.platform_sync = cashback_app::platform_codes::PlatformSync::DiscountCode;
            admin::put_program(&ctx, &shop(), &serde_json::to_string(&program).unwrap(), None, "browser-test", t0())
                .await
                .unwrap();
            // The platform sync panel's figures, as the sync function notes them.
            ctx.store
                .note_sync(
                    &shop(),
                    &cashback_app::store::SyncNote {
                        synced_at: Some(t0()),
                        parked: Some(cashback_app::store::ParkedSyncs {
                            count: 1,
                            reason: "platform sync failed after 6 attempt(s): throttled by the platform".into(),
                            at: t0(),
                        }),
                        reconcile: Some(cashback_app::store::ReconcileStep {
                            first: true,
                            finished: true,
                            at: t0(),
                            checked: 120,
                            drifted: 3,
                            repaired: 3,
                            failed: 0,
                        }),
                    },
                )
                .await
                .unwrap();
            admin::create_coupon(
                &ctx,
                &shop(),
                r#"{"code":"SPRING5","display_name":"Spring offer","reward":{"type":"fixed","amount":"5.00"},"status":"approved"}"#,
                t0(),
            )
            .await
            .unwrap();
            // The shop's own `/discount/CODE`, as Shopify answers it.
            let shop_side = Router::new().route(
                "/discount/{code}",
                get(|Path(code): Path<String>| async move {
                    Html(format!("<!doctype html><title>Cart</title><h1 id=\"applied\">Applied {code}</h1>"))
                }),
            );
            let pages = router_with(ctx.clone(), config());
            let shop_side = shop_side
                .route("/apps/cashback/{*rest}", get(app_proxy).with_state(pages.clone()))
                .route("/theme", get(|| async { Html(THEME_PAGE) }));
            let woo_widget = widget_link(&ctx, &base);
            let shop_side = shop_side.route(
                "/my-account",
                get(move || async move { Html(woo_page(&woo_widget)) }),
            );
            let app = pages.merge(shop_side);
            tx.send((base, ctx)).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

/// A page of the shop's theme that includes the widget, as docs/pages.md
/// tells a Shopify theme to.
const THEME_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Demo shop</title></head>\
<body><main><h1>Spring collection</h1><p>Our new things.</p>\
<div data-cashback-widget></div>\
<script src=\"/apps/cashback/assets/widget.js\" defer></script></main></body></html>";

/// A WooCommerce page with the widget reading a signed link.
fn woo_page(widget_src: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>My account</title></head>\
         <body><main><h1>My account</h1>\
         <script src=\"/pages/assets/widget.js\" data-cashback-src=\"{widget_src}\" defer></script>\
         </main></body></html>"
    )
}

fn widget_link(ctx: &Context, base: &str) -> String {
    signed_link(
        cashback_test_support::fixtures::link_key(ctx),
        base,
        &shop(),
        &CustomerId::parse("ann").unwrap(),
        t0() + chrono::Duration::hours(1),
    )
    .replacen("/customers/ann?", "/customers/ann/widget.json?", 1)
}

/// Shopify's app proxy as it forwards `/apps/cashback/...` from the shop's
/// domain: Ann is logged in; her query goes along, with the shop's
/// parameters and their signature added.
async fn app_proxy(
    axum::extract::State(pages): axum::extract::State<Router>,
    Path(rest): Path<String>,
    Query(mut params): Query<Vec<(String, String)>>,
) -> axum::response::Response {
    params.extend([
        ("shop".to_string(), "demo.myshopify.com".to_string()),
        ("logged_in_customer_id".to_string(), "ann".to_string()),
        ("path_prefix".to_string(), "/apps/cashback".to_string()),
        ("timestamp".to_string(), t0().timestamp().to_string()),
    ]);
    let signature = proxy::sign(APP_SECRET, &params);
    params.push(("signature".to_string(), signature));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let uri = format!("/pages/proxy/{rest}?{}", query.join("&"));
    match pages
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
    {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

fn wait(s: &Session, css: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let last = match s.find(css) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        if Instant::now() > deadline {
            let text = s
                .run("return document.body ? document.body.innerText : ''")
                .unwrap_or_default();
            return Err(format!(
                "{css} never appeared at {} ({last}): {text}",
                s.url().unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn body(s: &Session) -> String {
    s.run("return document.body.innerText")
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Shots {
        let dir = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
        } else {
            std::env::temp_dir().join(format!("cashback-screenshots-{}", std::process::id()))
        };
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir }
    }

    /// The page at both widths: a screenshot of each, nothing wider than
    /// the phone's screen, and the accessibility check.
    fn both(&self, s: &Session, axe: Option<&str>, name: &str) {
        for (width, height, label) in [(1280, 1000, "desktop"), (390, 1400, "phone")] {
            s.viewport(width, height).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            let overflow = s
                .run("return document.documentElement.scrollWidth - window.innerWidth")
                .unwrap();
            assert!(
                overflow.as_i64().unwrap_or(0) <= 1,
                "{name} scrolls sideways at {width}px: {overflow}"
            );
            let png = s.screenshot().unwrap();
            assert!(png.starts_with(b"\x89PNG"));
            std::fs::write(self.dir.join(format!("{name}-{label}.png")), png).unwrap();
        }
        s.viewport(1280, 1000).unwrap();
        if let Some(axe) = axe {
            accessible(s, axe, name);
        }
    }
}

/// axe-core: no violation of serious or critical impact.
fn accessible(s: &Session, axe: &str, name: &str) {
    s.run(&format!("{axe}\n;return true;")).unwrap();
    let violations = s
        .run_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(\
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))));",
        )
        .unwrap();
    assert_eq!(
        violations,
        serde_json::json!([]),
        "{name}: accessibility violations"
    );
}

fn sign_in(s: &Session, base: &str, shop: &str, email: &str) {
    s.goto(&format!("{base}/dashboard/login")).unwrap();
    wait(s, "#shop").unwrap();
    s.fill("#shop", shop).unwrap();
    s.fill("#email", email).unwrap();
    s.fill("#password", PASSWORD).unwrap();
    s.click("form button[type=submit].primary").unwrap();
}

#[test]
fn the_pages_work_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        found("CHROMIUM", "/usr/bin/chromium"),
        found("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        assert!(
            !required(),
            "REQUIRE_BROWSER=1 but chromium or chromedriver is missing"
        );
        eprintln!("skipped: chromium and chromedriver are not installed");
        return;
    };
    let axe = std::env::var("AXE_CORE_JS")
        .ok()
        .and_then(|path| std::fs::read_to_string(path).ok());
    assert!(
        axe.is_some() || !required(),
        "REQUIRE_BROWSER=1 but AXE_CORE_JS is not readable"
    );
    let axe = axe.as_deref();

    let (base, ctx) = serve();
    let driver = Driver::start(&chromedriver).unwrap();
    let profile = std::env::temp_dir().join(format!("cashback-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let s = driver.session(&chromium, &profile).unwrap();
    let shots = Shots::new();

    // The customer's page, from the signed link.
    let ann = CustomerId::parse("ann").unwrap();
    let link = signed_link(
        cashback_test_support::fixtures::link_key(&ctx),
        &base,
        &shop(),
        &ann,
        t0() + chrono::Duration::hours(1),
    );
    s.goto(&link).unwrap();
    wait(&s, "[data-copy]").unwrap();
    assert!(body(&s).contains("30.00 USD"));
    shots.both(&s, axe, "customer");
    // Keyboard: the skip link first, and the copy button is reachable.
    s.run("document.activeElement && document.activeElement.blur(); window.scrollTo(0,0)")
        .unwrap();
    s.keys("\u{E004}").unwrap();
    let first = s.run("return document.activeElement.className").unwrap();
    assert_eq!(first, "skip");
    let mut reached = false;
    for _ in 0..10 {
        s.keys("\u{E004}").unwrap();
        if s.run("return document.activeElement.hasAttribute('data-copy')")
            .unwrap()
            == true
        {
            reached = true;
            break;
        }
    }
    assert!(reached, "the copy button is reachable by keyboard");
    // Copy: the code is on the clipboard.
    s.grant("clipboard-read").ok();
    s.grant("clipboard-write").ok();
    s.keys("\u{E007}").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.text("[data-copy-status]").unwrap_or_default().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.text("[data-copy-status]").unwrap(), "Copied.");
    let copied = s
        .run_async("const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, e => done('error: ' + e));")
        .unwrap();
    assert_eq!(copied, ANN_CODE);
    // Apply: the shop's discount link takes the code to the cart.
    s.click("[data-apply]").unwrap();
    wait(&s, "#applied").unwrap();
    assert_eq!(s.text("#applied").unwrap(), format!("Applied {ANN_CODE}"));
    assert!(s
        .url()
        .unwrap()
        .ends_with(&format!("/discount/{ANN_CODE}?redirect=/cart")));

    // The widget on a page of the shop's theme, through the app proxy.
    s.goto(&format!("{base}/theme")).unwrap();
    wait(&s, ".cb-widget [data-cb-balance]").unwrap();
    assert_eq!(s.text(".cb-widget [data-cb-balance]").unwrap(), "30.00 USD");
    assert_eq!(
        s.run("return document.querySelector('.cb-widget input').value")
            .unwrap(),
        ANN_CODE
    );
    shots.both(&s, axe, "widget");
    // Keyboard: the copy button is reachable by Tab, and copies.
    s.run("document.activeElement && document.activeElement.blur(); window.scrollTo(0,0)")
        .unwrap();
    let mut reached = false;
    for _ in 0..6 {
        s.keys("\u{E004}").unwrap();
        if s.run("return document.activeElement.hasAttribute('data-cb-copy')")
            .unwrap()
            == true
        {
            reached = true;
            break;
        }
    }
    assert!(reached, "the widget's copy button is reachable by keyboard");
    s.keys("\u{E007}").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s
        .text("[data-cb-copy-status]")
        .unwrap_or_default()
        .is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.text("[data-cb-copy-status]").unwrap(), "Copied.");
    // Its links: the page through the proxy, the code applied on the shop.
    assert_eq!(
        s.run("return document.querySelector('.cb-widget [data-cb-page]').getAttribute('href')")
            .unwrap(),
        "/apps/cashback"
    );
    s.click(".cb-widget [data-cb-apply]").unwrap();
    wait(&s, "#applied").unwrap();
    assert_eq!(s.text("#applied").unwrap(), format!("Applied {ANN_CODE}"));
    // From a signed link, on another page (WooCommerce My Account).
    s.goto(&format!("{base}/my-account")).unwrap();
    wait(&s, ".cb-widget [data-cb-balance]").unwrap();
    assert_eq!(s.text(".cb-widget [data-cb-balance]").unwrap(), "30.00 USD");
    assert!(s.find(".cb-widget [data-cb-apply]").is_ok());

    // The dashboard: sign in.
    s.goto(&format!("{base}/dashboard/login")).unwrap();
    wait(&s, "#shop").unwrap();
    shots.both(&s, axe, "dashboard-login");
    sign_in(&s, &base, "demo.myshopify.com", OWNER);
    wait(&s, "#q").unwrap();

    // Customers: find Ann by her code, then adjust.
    s.fill("#q", ANN_CODE).unwrap();
    s.click("form[role=search] button").unwrap();
    wait(&s, "#amount").unwrap();
    s.fill("#amount", "lots").unwrap();
    s.fill("#reason", "Goodwill").unwrap();
    s.click("#adjust ~ form button.primary, form[action$='/adjustments'] button.primary")
        .unwrap();
    wait(&s, "#amount-error").unwrap();
    s.fill("#amount", "5.00").unwrap();
    s.click("form[action$='/adjustments'] button.primary")
        .unwrap();
    wait(&s, ".notice").unwrap();
    let page = body(&s);
    assert!(
        page.contains("Goodwill") && page.contains("35.00 USD"),
        "{page}"
    );
    shots.both(&s, axe, "dashboard-customer");

    // The program editor: a field error, then a saved change.
    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/program"
    ))
    .unwrap();
    wait(&s, "#p-earning-merchant-percent").unwrap();
    shots.both(&s, axe, "dashboard-program");
    s.fill("#p-earning-merchant-percent", "150").unwrap();
    s.click("form input[name=mode][value=fields] ~ button.primary")
        .unwrap();
    wait(&s, "#p-earning-merchant-percent-error").unwrap();
    s.fill("#p-earning-merchant-percent", "12").unwrap();
    s.click("form input[name=mode][value=fields] ~ button.primary")
        .unwrap();
    wait(&s, ".notice").unwrap();
    assert_eq!(
        s.run("return document.getElementById('p-earning-merchant-percent').value")
            .unwrap(),
        "12"
    );
    // The new version shows what changed.
    s.click("#versions ~ ul a").unwrap();
    wait(&s, "#changes").unwrap();
    let page = body(&s);
    assert!(
        page.contains("What changed since version") && page.contains("earning.merchant_percent"),
        "{page}"
    );
    if let Some(axe) = axe {
        accessible(&s, axe, "program version");
    }

    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/coupons"
    ))
    .unwrap();
    wait(&s, "#coupon-list").unwrap();
    assert!(body(&s).contains("SPRING5"));
    shots.both(&s, axe, "dashboard-coupons");

    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/reports?from=2026-01-01&to=2026-01-05"
    ))
    .unwrap();
    wait(&s, "svg.chart").unwrap();
    shots.both(&s, axe, "dashboard-reports");

    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/platform-sync"
    ))
    .unwrap();
    wait(&s, "#reconcile").unwrap();
    let page = body(&s);
    assert!(page.contains("Connected") && page.contains("120"), "{page}");
    shots.both(&s, axe, "dashboard-platform-sync");
    s.click("form[action$='/platform-sync/reconcile'] button")
        .unwrap();
    wait(&s, ".notice").unwrap();
    assert!(body(&s).contains("A reconcile was asked for"));

    // Another shop's user is refused.
    s.click("form[action='/dashboard/logout'] button").unwrap();
    wait(&s, "#shop").unwrap();
    sign_in(&s, &base, "other.myshopify.com", RIVAL);
    std::thread::sleep(Duration::from_millis(300));
    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/customers/ann"
    ))
    .unwrap();
    wait(&s, "h1").unwrap();
    let page = body(&s);
    assert!(page.contains("Not your shop"), "{page}");
    assert!(!page.contains("35.00") && !page.contains(ANN_CODE));
    s.goto(&format!(
        "{base}/dashboard/shops/demo.myshopify.com/platform-sync"
    ))
    .unwrap();
    wait(&s, "h1").unwrap();
    let page = body(&s);
    assert!(page.contains("Not your shop"), "{page}");
    assert!(!page.contains("120"), "{page}");

    drop(s);
    let _ = std::fs::remove_dir_all(&profile);
}

/// The README's screenshots of the reports, a customer in the dashboard and
/// the customer's page, from the local demo (`cargo run -p cashback-local`),
/// whose shop has eight weeks of history. Run by hand after the test above:
/// `DEMO_URL=http://127.0.0.1:3000 UPDATE_SCREENSHOTS=1 cargo test -p
/// cashback-pages --test browser -- --ignored`.
#[test]
#[ignore = "needs cashback-local serving at DEMO_URL"]
fn screenshots_of_the_local_demo() {
    let Ok(base) = std::env::var("DEMO_URL") else {
        eprintln!("skipped: DEMO_URL is not set");
        return;
    };
    let base = base.trim_end_matches('/').to_string();
    let (Some(chromium), Some(chromedriver)) = (
        found("CHROMIUM", "/usr/bin/chromium"),
        found("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        panic!("chromium and chromedriver are needed");
    };
    let axe = std::env::var("AXE_CORE_JS")
        .ok()
        .and_then(|path| std::fs::read_to_string(path).ok());
    let axe = axe.as_deref();
    let driver = Driver::start(&chromedriver).unwrap();
    let profile =
        std::env::temp_dir().join(format!("cashback-chromium-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let s = driver.session(&chromium, &profile).unwrap();
    let shots = Shots::new();
    let shop = "demo.myshopify.com";
    let ann = "7000000000000001";

    s.goto(&format!("{base}/dashboard/login")).unwrap();
    wait(&s, "#shop").unwrap();
    s.fill("#shop", shop).unwrap();
    s.fill("#email", "owner@demo.myshopify.com").unwrap();
    s.fill("#password", "demo-dashboard-password").unwrap();
    s.click("form button[type=submit].primary").unwrap();
    wait(&s, "#q").unwrap();

    s.goto(&format!("{base}/dashboard/shops/{shop}/reports"))
        .unwrap();
    wait(&s, "svg.chart").unwrap();
    let page = body(&s);
    assert!(page.contains("Issued and redeemed"), "{page}");
    shots.both(&s, axe, "dashboard-reports");

    s.goto(&format!("{base}/dashboard/shops/{shop}/customers/{ann}"))
        .unwrap();
    wait(&s, "#amount").unwrap();
    shots.both(&s, axe, "dashboard-customer");

    // The customer's page from a link minted with the demo's API key.
    let url = s
        .run_async(&format!(
            "const done = arguments[arguments.length - 1];\
             fetch('/pages/shops/{shop}/customers/{ann}/link', {{method: 'POST', headers: {{authorization: 'Bearer cbk_demo_local_development_key'}}}})\
               .then(r => r.json()).then(j => done(j.url), e => done('error: ' + e));"
        ))
        .unwrap();
    let url = url.as_str().unwrap_or_default().to_string();
    assert!(url.contains("sig="), "{url}");
    s.goto(&url).unwrap();
    wait(&s, "[data-copy]").unwrap();
    shots.both(&s, axe, "customer");

    drop(s);
    let _ = std::fs::remove_dir_all(&profile);
}
