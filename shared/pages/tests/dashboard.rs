//! The merchant dashboard through the real router: sign-in, the session
//! cookie's attributes, CSRF on every form, customer lookup, the ledger,
//! adjustments (field errors beside their field, idempotent), a new code;
//! and one shop's user refused on another shop.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use cashback_app::admin;
use cashback_app::Context;
use cashback_core::ids::{CustomerId, ShopId};
use cashback_pages::auth::{self, hash_password_with, DashboardUser};
use cashback_pages::{router_with, PagesConfig};
use customer_api::CustomerApiConfig;

use support::*;

const OWNER: &str = "owner@demo.test";
const PASSWORD: &str = "a long demo password";
const RIVAL: &str = "rival@other.test";

fn config() -> PagesConfig {
    PagesConfig {
        proxy: CustomerApiConfig {
            shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(
                b"app-secret".to_vec(),
            )),
            proxy_max_age_seconds: 300,
        },
        link_ttl_seconds: 3600,
        shopify_api_key: Some("app-key".into()),
        dashboard_users: vec![
            DashboardUser {
                shop: shop(),
                email: OWNER.into(),
                password_hash: hash_password_with(PASSWORD, [7; 16], 1000),
            },
            DashboardUser {
                shop: ShopId::parse("other.myshopify.com").unwrap(),
                email: RIVAL.into(),
                password_hash: hash_password_with(PASSWORD, [8; 16], 1000),
            },
        ],
    }
}

async fn ctx() -> Context {
    memory_context("30.00").await.with_clock(Arc::new(t0))
}

/// Signs in; the session cookie's `name=value`.
async fn sign_in(router: &axum::Router, shop: &str, email: &str) -> String {
    let (status, response, body) = send_text(
        router.clone(),
        post_form(
            "/dashboard/login",
            &format!(
                "shop={shop}&email={email}&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    cookie.split(';').next().unwrap().to_string()
}

fn get_as(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn post_as(uri: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_string()
}

fn key_of(page: &str) -> String {
    let marker = "name=\"idempotency_key\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    page[at..].split('"').next().unwrap().to_string()
}

async fn available(ctx: &Context) -> String {
    admin::get_customer(ctx, &shop(), &CustomerId::parse("ann").unwrap())
        .await
        .unwrap()
        .available
        .to_string()
}

const ANN: &str = "/dashboard/shops/demo.myshopify.com/customers/ann";

#[tokio::test]
async fn signing_in_sets_a_short_lived_strict_http_only_cookie() {
    let router = router_with(ctx().await, config());
    let (status, response, body) = send_text(
        router.clone(),
        post_form(
            "/dashboard/login",
            "shop=demo.myshopify.com&email=owner@demo.test&password=wrong",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(body.contains("id=\"password-error\""));

    let (status, response, _) = send_text(
        router.clone(),
        post_form(
            "/dashboard/login",
            "shop=demo.myshopify.com&email=OWNER@demo.test&password=a+long+demo+password",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/dashboard/shops/demo.myshopify.com/customers"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=1800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // Without a session, or with a forged one: the sign-in page.
    let (status, response, _) = send_text(router.clone(), get(ANN)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/dashboard/login");
    let (status, _, _) = send_text(router, get_as(ANN, "cb_session=eyJ9.00")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_customer_is_found_by_code_email_or_id_and_shows_the_ledger() {
    let router = router_with(ctx().await, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let base = "/dashboard/shops/demo.myshopify.com/customers";
    for q in [ANN_CODE, "ann"] {
        let (status, response, _) =
            send_text(router.clone(), get_as(&format!("{base}?q={q}"), &cookie)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{q}");
        assert_eq!(response.headers()["location"], ANN);
    }
    let (status, _, body) =
        send_text(router.clone(), get_as(&format!("{base}?q=nobody"), &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("id=\"q-error\""));
    let (status, _, body) = send_text(router, get_as(ANN, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("30.00 USD") && body.contains(ANN_CODE));
    assert!(body.contains("<td>adjust</td>") && body.contains("<td>seed</td>"));
}

#[tokio::test]
async fn an_adjustment_shows_its_field_errors_then_lands_in_the_ledger_once() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    let csrf = csrf_of(&page);
    let key = key_of(&page);
    let action = format!("{ANN}/adjustments");

    let (status, _, body) = send_text(
        router.clone(),
        post_as(
            &action,
            &cookie,
            &format!("csrf={csrf}&idempotency_key={key}&amount=lots&reason=Goodwill"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error_at = body
        .find("id=\"amount-error\"")
        .expect("the amount's error");
    let field_at = body.find("id=\"amount\"").unwrap();
    let next_field = body.find("id=\"reason\"").unwrap();
    assert!(
        field_at < error_at && error_at < next_field,
        "the error is beside its field"
    );
    assert!(
        body.contains("value=\"Goodwill\""),
        "what was typed is kept"
    );
    assert_eq!(available(&ctx).await, "30.00");

    let form = format!("csrf={csrf}&idempotency_key={key}&amount=5.00&reason=Goodwill");
    let (status, response, _) = send_text(router.clone(), post_as(&action, &cookie, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        format!("{ANN}?done=adjusted")
    );
    // Sent twice (a double click, a reload): applied once.
    let (status, _, _) = send_text(router.clone(), post_as(&action, &cookie, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(available(&ctx).await, "35.00");
    let (_, _, body) = send_text(router, get_as(&format!("{ANN}?done=adjusted"), &cookie)).await;
    assert!(
        body.contains("<td>Goodwill (by dashboard:owner@demo.test)</td>")
            && body.contains("35.00 USD")
    );
    assert!(body.contains("The adjustment is in the ledger."));
}

#[tokio::test]
async fn a_form_without_its_sessions_csrf_token_changes_nothing() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let action = format!("{ANN}/adjustments");
    for csrf in ["", "00", &"ab".repeat(32)] {
        let (status, _, _) = send_text(
            router.clone(),
            post_as(
                &action,
                &cookie,
                &format!("csrf={csrf}&idempotency_key=k1&amount=5.00&reason=x"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _, _) = send_text(
        router,
        post_as(&format!("{ANN}/regenerate-code"), &cookie, "csrf=00"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(available(&ctx).await, "30.00");
}

#[tokio::test]
async fn another_shops_user_is_refused_everywhere() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "other.myshopify.com", RIVAL).await;
    // The rival's own CSRF token is genuine for their session.
    let session = auth::read_session(
        cashback_test_support::fixtures::link_key(&ctx),
        cookie.trim_start_matches("cb_session="),
        t0(),
    )
    .unwrap();
    let csrf = auth::csrf_token(cashback_test_support::fixtures::link_key(&ctx), &session);
    for uri in [
        "/dashboard/shops/demo.myshopify.com/customers".to_string(),
        format!("/dashboard/shops/demo.myshopify.com/customers?q={ANN_CODE}"),
        ANN.to_string(),
    ] {
        let (status, _, body) = send_text(router.clone(), get_as(&uri, &cookie)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert!(!body.contains("30.00") && !body.contains(ANN_CODE));
    }
    let (status, _, _) = send_text(
        router.clone(),
        post_as(
            &format!("{ANN}/adjustments"),
            &cookie,
            &format!("csrf={csrf}&idempotency_key=k2&amount=-30.00&reason=x"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send_text(
        router,
        post_as(
            &format!("{ANN}/regenerate-code"),
            &cookie,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(available(&ctx).await, "30.00");
    let view = admin::get_customer(&ctx, &shop(), &CustomerId::parse("ann").unwrap())
        .await
        .unwrap();
    assert_eq!(view.code.as_deref(), Some(ANN_CODE));
}

#[tokio::test]
async fn a_new_code_replaces_the_old_one() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    let (status, _, _) = send_text(
        router,
        post_as(
            &format!("{ANN}/regenerate-code"),
            &cookie,
            &format!("csrf={}", csrf_of(&page)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let view = admin::get_customer(&ctx, &shop(), &CustomerId::parse("ann").unwrap())
        .await
        .unwrap();
    assert_ne!(view.code.as_deref(), Some(ANN_CODE));
}

fn app_bridge_token(shop: &str, secret: &[u8]) -> String {
    let t = t0().timestamp();
    cashback_pages::embedded::sign(
        secret,
        &serde_json::json!({
            "iss": format!("https://{shop}/admin"), "dest": format!("https://{shop}"),
            "aud": "app-key", "sub": "42", "exp": t + 60, "nbf": t - 1, "iat": t - 1
        }),
    )
}

#[tokio::test]
async fn inside_shopify_admin_a_verified_session_token_opens_only_its_shop() {
    let router = router_with(ctx().await, config());
    let token = app_bridge_token("demo.myshopify.com", b"app-secret");
    let (status, response, _) = send_text(
        router.clone(),
        get(&format!("/dashboard/embedded?id_token={token}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("Partitioned"));
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, _, body) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("30.00 USD"));

    // Another shop's genuine token does not open this shop.
    let other = app_bridge_token("other.myshopify.com", b"app-secret");
    let (_, response, _) = send_text(
        router.clone(),
        get(&format!("/dashboard/embedded?id_token={other}")),
    )
    .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, body) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("30.00"));

    // A token signed with another secret starts nothing.
    let forged = app_bridge_token("demo.myshopify.com", b"guess");
    let (status, response, _) = send_text(
        router,
        get(&format!("/dashboard/embedded?id_token={forged}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
}

/// The editor's field form for the program in force, with `changes`.
async fn program_form(ctx: &Context, csrf: &str, changes: &[(&str, &str)]) -> String {
    let view = admin::get_program(ctx, &shop()).await.unwrap();
    let mut leaves = Vec::new();
    cashback_pages::program::flatten(
        &serde_json::to_value(&view.program).unwrap(),
        "",
        &mut leaves,
    );
    let mut pairs = vec![
        ("csrf".to_string(), csrf.to_string()),
        ("version".to_string(), view.version.to_string()),
        ("mode".to_string(), "fields".to_string()),
    ];
    for (path, kind, value) in leaves {
        let value = changes
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| v.to_string())
            .unwrap_or(value);
        pairs.push((format!("f:{}:{path}", kind.tag()), value));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const PROGRAM: &str = "/dashboard/shops/demo.myshopify.com/program";

#[tokio::test]
async fn the_program_editor_shows_each_error_beside_its_field_then_saves_a_version() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (status, _, page) = send_text(router.clone(), get_as(PROGRAM, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<label for=\"p-earning-merchant-percent\">earning.merchant_percent</label>")
    );
    let csrf = csrf_of(&page);

    let bad = program_form(
        &ctx,
        &csrf,
        &[("earning.merchant_percent", "150"), ("display_name", "")],
    )
    .await;
    let (status, _, body) = send_text(router.clone(), post_as(PROGRAM, &cookie, &bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for id in ["p-earning-merchant-percent", "p-display-name"] {
        let input = body.find(&format!("id=\"{id}\"")).unwrap();
        let error = body
            .find(&format!("id=\"{id}-error\""))
            .unwrap_or_else(|| panic!("{id} has its error"));
        let next = body[input..]
            .find("class=\"field\"")
            .map(|at| input + at)
            .unwrap_or(body.len());
        assert!(
            input < error && error < next,
            "the error of {id} is beside it"
        );
    }
    assert!(body.contains("value=\"150\""), "what was typed is kept");
    assert_eq!(admin::get_program(&ctx, &shop()).await.unwrap().version, 1);

    let good = program_form(
        &ctx,
        &csrf,
        &[
            ("earning.merchant_percent", "12.5"),
            ("display_name", "Rewards"),
        ],
    )
    .await;
    let (status, response, _) = send_text(router.clone(), post_as(PROGRAM, &cookie, &good)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], format!("{PROGRAM}?saved=1"));
    let view = admin::get_program(&ctx, &shop()).await.unwrap();
    assert_eq!(view.version, 2);
    assert_eq!(view.program.display_name, "Rewards");
    assert_eq!(view.program.earning.merchant_percent.to_string(), "12.5");
    let (_, _, page) = send_text(router.clone(), get_as(PROGRAM, &cookie)).await;
    assert!(page.contains("Version 2</a> (in force)") && page.contains("Version 1</a>"));
    let (status, _, old) = send_text(
        router.clone(),
        get_as(&format!("{PROGRAM}/versions/1"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(old.contains("merchant_percent&#34;: &#34;10&#34;"), "{old}");
    assert!(old.contains("The first version"), "{old}");
    // Version 2 shows what changed from version 1, field by field.
    let (status, _, changed) = send_text(
        router.clone(),
        get_as(&format!("{PROGRAM}/versions/2"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        changed.contains("What changed since version 1"),
        "{changed}"
    );
    assert!(
        changed.contains(
            "<tr><td><code>earning.merchant_percent</code></td><td>10</td><td>12.5</td></tr>"
        ),
        "{changed}"
    );
    assert!(
        changed.contains("<tr><td><code>display_name</code></td><td>"),
        "{changed}"
    );
    assert!(
        !changed.contains("<code>currency</code>"),
        "unchanged fields are not listed"
    );

    // The same form again was read at version 1: refused, nothing lost.
    let (status, _, _) = send_text(router.clone(), post_as(PROGRAM, &cookie, &good)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another shop's user.
    let rival = sign_in(&router, "other.myshopify.com", RIVAL).await;
    let (status, _, body) = send_text(router.clone(), get_as(PROGRAM, &rival)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("merchant_percent"));
    let (status, _, _) = send_text(router, post_as(PROGRAM, &rival, &good)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(admin::get_program(&ctx, &shop()).await.unwrap().version, 2);
}

#[tokio::test]
async fn the_program_form_sets_the_email_channel_only_for_a_shop_with_its_klaviyo_key() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(PROGRAM, &cookie)).await;
    assert!(page.contains("<label for=\"p-email-channel\">email_channel</label>"));
    assert!(page.contains("value=\"ses\""));
    let csrf = csrf_of(&page);

    // No Klaviyo key for the shop: the reason beside the field, nothing saved.
    let klaviyo = program_form(&ctx, &csrf, &[("email_channel", "klaviyo")]).await;
    let (status, _, body) = send_text(router.clone(), post_as(PROGRAM, &cookie, &klaviyo)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let input = body.find("id=\"p-email-channel\"").unwrap();
    let error = body.find("id=\"p-email-channel-error\"").unwrap();
    assert!(input < error, "the error is beside its field");
    assert!(body.contains("Klaviyo"), "{body}");
    assert_eq!(admin::get_program(&ctx, &shop()).await.unwrap().version, 1);

    // With the shop's key stored: saved.
    let keyed = ctx.with_marketing_accounts(Arc::new(
        cashback_test_support::doubles::KlaviyoKeysFor(vec![shop()]),
    ));
    let router = router_with(keyed.clone(), config());
    let (status, _, _) = send_text(router.clone(), post_as(PROGRAM, &cookie, &klaviyo)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let view = admin::get_program(&keyed, &shop()).await.unwrap();
    assert_eq!(
        view.program.email_channel,
        cashback_core::program::EmailChannel::Klaviyo
    );
}

const COUPONS: &str = "/dashboard/shops/demo.myshopify.com/coupons";

fn starter_form(csrf: &str, code: &str, name: &str, amount: &str) -> String {
    [
        ("csrf", csrf),
        ("version", "0"),
        ("mode", "fields"),
        ("f:t:code", code),
        ("f:t:display_name", name),
        ("f:t:description", ""),
        ("f:t:offer_text", ""),
        ("f:t:reward.type", "fixed"),
        ("f:t:reward.amount", amount),
        ("f:t:min_cart_value", "0"),
        ("f:j:usage_limit_total", "100"),
        ("f:j:usage_limit_per_customer", ""),
        ("f:j:starts_at", ""),
        ("f:j:ends_at", ""),
        ("f:t:status", "draft"),
        ("f:t:stacking", "exclusive"),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
    .collect::<Vec<_>>()
    .join("&")
}

#[tokio::test]
async fn coupons_are_created_with_errors_beside_fields_then_approved_and_paused() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (status, _, page) =
        send_text(router.clone(), get_as(&format!("{COUPONS}/new"), &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<label for=\"p-reward-amount\">reward.amount</label>"));
    let csrf = csrf_of(&page);

    let bad = starter_form(&csrf, "SPRING5", "", "5.00");
    let (status, _, body) = send_text(router.clone(), post_as(COUPONS, &cookie, &bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let input = body.find("id=\"p-display-name\"").unwrap();
    let error = body.find("id=\"p-display-name-error\"").unwrap();
    assert!(input < error && error < body.find("id=\"p-ends-at\"").unwrap());

    let good = starter_form(&csrf, "SPRING5", "Spring offer", "5.00");
    let (status, _, _) = send_text(router.clone(), post_as(COUPONS, &cookie, &good)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, list) = send_text(router.clone(), get_as(COUPONS, &cookie)).await;
    assert!(
        list.contains("SPRING5")
            && list.contains("Spring offer")
            && list.contains("<td>draft</td>")
    );

    let (status, _, _) = send_text(
        router.clone(),
        post_as(
            &format!("{COUPONS}/SPRING5/status"),
            &cookie,
            &format!("csrf={csrf}&status=approved"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let code = cashback_core::ids::Code::parse("SPRING5").unwrap();
    let view = admin::get_coupon(&ctx, &shop(), &code).await.unwrap();
    assert_eq!(format!("{:?}", view.coupon.status), "Approved");
    assert_eq!(view.coupon.usage_limit_total, Some(100));

    // Edited on its page.
    let (status, _, page) = send_text(
        router.clone(),
        get_as(&format!("{COUPONS}/SPRING5"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("used 0 times"));
    let mut edit = starter_form(&csrf, "SPRING5", "Spring offer, bigger", "7.50");
    edit = edit
        .replace("version=0", &format!("version={}", view.version))
        .replace("f%3At%3Astatus=draft", "f%3At%3Astatus=approved");
    let (status, _, body) = send_text(
        router.clone(),
        post_as(&format!("{COUPONS}/SPRING5"), &cookie, &edit),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let view = admin::get_coupon(&ctx, &shop(), &code).await.unwrap();
    assert_eq!(view.coupon.display_name, "Spring offer, bigger");

    let (status, _, _) = send_text(
        router.clone(),
        post_as(
            &format!("{COUPONS}/SPRING5/status"),
            &cookie,
            &format!("csrf={csrf}&status=paused"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, list) = send_text(router.clone(), get_as(COUPONS, &cookie)).await;
    assert!(list.contains("<td>paused</td>"));

    // Another shop's user sees none of it and changes nothing.
    let rival = sign_in(&router, "other.myshopify.com", RIVAL).await;
    let (status, _, body) = send_text(router.clone(), get_as(COUPONS, &rival)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("SPRING5"));
    let (status, _, _) = send_text(
        router,
        post_as(
            &format!("{COUPONS}/SPRING5/status"),
            &rival,
            &format!("csrf={csrf}&status=approved"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

const REPORTS: &str = "/dashboard/shops/demo.myshopify.com/reports";

#[tokio::test]
async fn reports_draw_charts_with_their_numbers_and_download_as_csv() {
    let router = router_with(ctx().await, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (status, _, page) = send_text(
        router.clone(),
        get_as(&format!("{REPORTS}?from=2026-01-01&to=2026-01-05"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
    assert_eq!(
        page.matches("<tr><td>2026-01-0").count(),
        5,
        "one row per day"
    );
    assert!(page.contains("Liability by funder at 2026-01-05"));
    assert!(page.contains("30.00"), "Ann's credit is the liability");

    let (status, response, csv) = send_text(
        router.clone(),
        get_as(
            &format!("{REPORTS}?from=2026-01-01&to=2026-01-05&format=csv"),
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert!(csv.starts_with("from,to,issued,redeemed\n2026-01-01,2026-01-01,"));
    assert!(csv
        .contains("liability_at,available,pending,total,merchant,partner,debt\n2026-01-05,30.00"));

    let (status, _, body) = send_text(
        router.clone(),
        get_as(&format!("{REPORTS}?from=someday"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.find("id=\"from\"").unwrap() < body.find("id=\"from-error\"").unwrap());
    let (status, _, body) = send_text(
        router.clone(),
        get_as(&format!("{REPORTS}?from=2026-02-01&to=2026-01-01"), &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("id=\"to-error\""));

    let rival = sign_in(&router, "other.myshopify.com", RIVAL).await;
    let (status, _, body) =
        send_text(router, get_as(&format!("{REPORTS}?format=csv"), &rival)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("liability"));
}

// ---- Resend the last email ----

/// Keeps what it is asked to send.
#[derive(Default)]
struct Kept(std::sync::Mutex<Vec<cashback_app::notify::Notification>>);

#[async_trait::async_trait]
impl cashback_app::notify::Notifier for Kept {
    async fn send(
        &self,
        notification: &cashback_app::notify::Notification,
    ) -> Result<cashback_app::notify::Sent, cashback_app::notify::NotifyError> {
        let mut sent = self.0.lock().unwrap();
        sent.push(notification.clone());
        Ok(cashback_app::notify::Sent {
            message_id: format!("m{}", sent.len()),
        })
    }
}

impl Kept {
    fn kinds(&self) -> Vec<&'static str> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.kind.name())
            .collect()
    }
}

/// Ann's 30.00, then an order of 80.00 paid (an "earned" email sent), on a
/// clock the test moves; emails kept.
async fn emailed_ctx() -> (Context, Arc<Kept>, Arc<std::sync::atomic::AtomicI64>) {
    use cashback_core::ids::{Email, LineId, OrderId};
    use cashback_core::money::Currency;
    use cashback_core::order::{CustomerRef, Line, Order, OrderEvent};
    let seeded = memory_context("30.00").await;
    let kept = Arc::new(Kept::default());
    let minutes = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let offset = minutes.clone();
    let ctx = Context::new(
        seeded.store.clone(),
        kept.clone(),
        Arc::new(cashback_test_support::doubles::CountingCodes(
            std::sync::Mutex::new(0),
        )),
        cashback_app::AppConfig::default(),
    )
    .with_clock(Arc::new(move || {
        t0() + chrono::Duration::minutes(offset.load(std::sync::atomic::Ordering::SeqCst))
    }));
    let order = Order {
        order_id: OrderId::parse("1001").unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse("ann").unwrap()),
            email: Some(Email::parse(ANN_EMAIL).unwrap()),
        },
        currency: Currency::USD,
        lines: vec![Line {
            line_id: LineId::parse("1").unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: 1,
            unit_price: usd("80.00"),
            discount: usd("0"),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }],
        subtotal: usd("80.00"),
        shipping: usd("0"),
        total: usd("80.00"),
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: t0(),
    };
    cashback_app::events::handle_order_event(&ctx, &shop(), &OrderEvent::Paid(order), t0())
        .await
        .unwrap();
    assert_eq!(kept.kinds(), ["earned"]);
    kept.0.lock().unwrap().clear();
    (ctx, kept, minutes)
}

const RESEND: &str = "/dashboard/shops/demo.myshopify.com/customers/ann/resend-email";

#[tokio::test]
async fn the_last_email_is_resent_at_most_once_every_ten_minutes() {
    let (ctx, kept, minutes) = emailed_ctx().await;
    let router = router_with(ctx, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    assert!(page.contains("Resend the last email") && page.contains("once every 10 minutes"));
    let csrf = csrf_of(&page);

    let (status, response, _) = send_text(
        router.clone(),
        post_as(RESEND, &cookie, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], format!("{ANN}?done=resent"));
    {
        let sent = kept.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to.as_str(), ANN_EMAIL);
        match &sent[0].kind {
            cashback_app::notify::NotificationKind::Earned {
                amount, order_name, ..
            } => {
                assert_eq!(amount.to_string(), "8.00 USD");
                assert_eq!(order_name, "1001");
            }
            other => panic!("resent {other:?}"),
        }
    }
    let (_, _, page) = send_text(
        router.clone(),
        get_as(&format!("{ANN}?done=resent"), &cookie),
    )
    .await;
    assert!(page.contains("last email was sent again"));

    // Again at once, nine and eleven minutes later: refused, nothing sent
    // (ten-minute windows; the one after the resend's is closed too).
    for later in [0, 9, 11] {
        minutes.store(later, std::sync::atomic::Ordering::SeqCst);
        let (status, _, page) = send_text(
            router.clone(),
            post_as(RESEND, &cookie, &format!("csrf={csrf}")),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{later} min");
        assert!(page.contains("once every 10 minutes at most"), "{page}");
        assert!(page.contains("try again after 09:20 UTC"), "{page}");
        assert_eq!(kept.kinds().len(), 1);
    }
    // Twenty minutes on, once more.
    minutes.store(20, std::sync::atomic::Ordering::SeqCst);
    let (status, _, _) = send_text(
        router.clone(),
        post_as(RESEND, &cookie, &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(kept.kinds(), ["earned", "earned"]);
}

#[tokio::test]
async fn a_resend_from_a_server_whose_clock_is_a_second_behind_another_is_refused() {
    // Two instances of the pages function on one store, their clocks a
    // second apart across a window's boundary: 09:10:00 and 09:09:59.
    let (ctx, kept, minutes) = emailed_ctx().await;
    minutes.store(10, std::sync::atomic::Ordering::SeqCst);
    let ahead = router_with(ctx.clone(), config());
    let behind = router_with(
        ctx.with_clock(Arc::new(|| t0() + chrono::Duration::seconds(599))),
        config(),
    );
    let cookie = sign_in(&ahead, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(ahead.clone(), get_as(ANN, &cookie)).await;
    let form = format!("csrf={}", csrf_of(&page));
    let (status, _, _) = send_text(ahead, post_as(RESEND, &cookie, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The click lands on the instance behind, a moment later.
    let (status, _, page) = send_text(behind, post_as(RESEND, &cookie, &form)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert_eq!(
        kept.kinds(),
        ["earned"],
        "one email, not two a second apart"
    );
}

#[tokio::test]
async fn a_resend_needs_the_csrf_token_and_the_shops_own_user() {
    let (ctx, kept, _) = emailed_ctx().await;
    let router = router_with(ctx, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    // No token, or a made-up one.
    for form in ["", "csrf=", &format!("csrf={}", "0".repeat(64))] {
        let (status, _, _) = send_text(router.clone(), post_as(RESEND, &cookie, form)).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST,
            "{form}: {status}"
        );
    }
    // Another shop's user, with their own valid token.
    let rival = sign_in(&router, "other.myshopify.com", RIVAL).await;
    let (_, _, page) = send_text(
        router.clone(),
        get_as("/dashboard/shops/other.myshopify.com/customers", &rival),
    )
    .await;
    let (status, _, body) = send_text(
        router.clone(),
        post_as(RESEND, &rival, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Not your shop"));
    // Not signed in.
    let (status, _, _) = send_text(router, post_form(RESEND, "csrf=x")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(kept.kinds().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_customer_who_stopped_emails_or_was_never_sent_one_gets_nothing() {
    // Only an adjustment so far: no email was ever sent.
    let router = router_with(ctx().await, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    let (status, _, page) = send_text(
        router,
        post_as(RESEND, &cookie, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("nothing to resend"), "{page}");

    // Emailed once, then unsubscribed.
    let (ctx, kept, _) = emailed_ctx().await;
    cashback_app::preferences::set_reminders(
        &ctx,
        &shop(),
        &CustomerId::parse("ann").unwrap(),
        true,
        t0(),
    )
    .await
    .unwrap();
    let router = router_with(ctx, config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (_, _, page) = send_text(router.clone(), get_as(ANN, &cookie)).await;
    let (status, _, page) = send_text(
        router,
        post_as(RESEND, &cookie, &format!("csrf={}", csrf_of(&page))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("stopped cashback emails"), "{page}");
    assert!(kept.kinds().is_empty());
}

const SYNC: &str = "/dashboard/shops/demo.myshopify.com/platform-sync";

/// The demo shop syncing its codes, with a record the sync function noted.
async fn syncing_ctx() -> Context {
    let ctx = ctx().await;
    let mut program = ctx.store.get_program(&shop()).await.unwrap().unwrap();
    program.value.platform_sync = cashback_app::platform_codes::PlatformSync::DiscountCode;
    ctx.store
        .put_program(&shop(), &program.value, program.version, t0())
        .await
        .unwrap();
    ctx.invalidate(&shop());
    ctx.store
        .note_sync(
            &shop(),
            &cashback_app::store::SyncNote {
                synced_at: Some(t0()),
                parked: Some(cashback_app::store::ParkedSyncs {
                    count: 2,
                    reason: "throttled by the platform".into(),
                    at: t0(),
                }),
                reconcile: Some(cashback_app::store::ReconcileStep {
                    first: true,
                    finished: false,
                    at: t0(),
                    checked: 417,
                    drifted: 9,
                    repaired: 8,
                    failed: 1,
                }),
            },
        )
        .await
        .unwrap();
    ctx
}

fn reconcile_job() -> String {
    cashback_app::platform_codes::RunRequest::Reconcile {
        shop: shop(),
        cursor: None,
    }
    .job()
}

#[tokio::test]
async fn the_platform_sync_panel_shows_the_shops_sync_and_asks_for_a_reconcile() {
    let ctx = syncing_ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    let (status, response, page) = send_text(router.clone(), get_as(SYNC, &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    for shown in [
        "Shopify",
        "One discount code per customer",
        "Connected",
        "Installed",
        "throttled by the platform",
        "417",
        "running",
        "Not started.",
        "Reconcile now",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    // Without the session's CSRF token: refused, nothing asked for.
    let (status, _, _) = send_text(
        router.clone(),
        post_as(&format!("{SYNC}/reconcile"), &cookie, "csrf=forged"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        ctx.store.get_checkpoint(&reconcile_job()).await.unwrap(),
        None
    );
    // With it: asked for where the sync function sees it.
    let (status, response, _) = send_text(
        router.clone(),
        post_as(
            &format!("{SYNC}/reconcile"),
            &cookie,
            &format!("csrf={}", csrf_of(&page)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/dashboard/shops/demo.myshopify.com/platform-sync?asked=1"
    );
    assert!(ctx
        .store
        .get_checkpoint(&reconcile_job())
        .await
        .unwrap()
        .is_some());
    let (_, _, page) = send_text(router.clone(), get_as(&format!("{SYNC}?asked=1"), &cookie)).await;
    assert!(page.contains("A reconcile was asked for"), "{page}");

    // Once the app is uninstalled the panel says so and offers no reconcile;
    // a posted one is refused.
    ctx.store
        .set_shop_uninstalled(&shop(), Some(t0()))
        .await
        .unwrap();
    let (_, _, page) = send_text(router.clone(), get_as(SYNC, &cookie)).await;
    assert!(
        page.contains("Uninstalled") && !page.contains("Reconcile now"),
        "{page}"
    );
    let (status, _, _) = send_text(
        router,
        post_as(
            &format!("{SYNC}/reconcile"),
            &cookie,
            &format!("csrf={}", csrf_of(&page)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn another_shops_session_can_neither_see_the_platform_sync_panel_nor_ask_for_a_reconcile() {
    let ctx = syncing_ctx().await;
    let router = router_with(ctx.clone(), config());
    let cookie = sign_in(&router, "other.myshopify.com", RIVAL).await;
    // The rival's own CSRF token is genuine for their session.
    let session = auth::read_session(
        cashback_test_support::fixtures::link_key(&ctx),
        cookie.trim_start_matches("cb_session="),
        t0(),
    )
    .unwrap();
    let csrf = auth::csrf_token(cashback_test_support::fixtures::link_key(&ctx), &session);
    let (status, _, body) = send_text(router.clone(), get_as(SYNC, &cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !body.contains("417") && !body.contains("throttled"),
        "{body}"
    );
    let (status, _, _) = send_text(
        router.clone(),
        post_as(
            &format!("{SYNC}/reconcile"),
            &cookie,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        ctx.store.get_checkpoint(&reconcile_job()).await.unwrap(),
        None
    );
    // Without a session: sent to sign in, nothing asked for.
    let (status, response, _) = send_text(
        router,
        post_form(&format!("{SYNC}/reconcile"), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/dashboard/login");
    assert_eq!(
        ctx.store.get_checkpoint(&reconcile_job()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn opening_the_embedded_app_marks_its_shop_installed_again_and_no_other() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    cashback_app::compliance::uninstall(&ctx, &shop(), t0())
        .await
        .unwrap();

    // Another shop's genuine token, and a forged one, leave it uninstalled.
    for token in [
        app_bridge_token("other.myshopify.com", b"app-secret"),
        app_bridge_token("demo.myshopify.com", b"guess"),
    ] {
        send_text(
            router.clone(),
            get(&format!("/dashboard/embedded?id_token={token}")),
        )
        .await;
        assert_eq!(
            ctx.store.shop_uninstalled_at(&shop()).await.unwrap(),
            Some(t0())
        );
    }

    // Shopify admin opens only an installed app: its own token reinstalls.
    let token = app_bridge_token("demo.myshopify.com", b"app-secret");
    let (status, _, _) = send_text(
        router.clone(),
        get(&format!("/dashboard/embedded?id_token={token}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(ctx.store.shop_uninstalled_at(&shop()).await.unwrap(), None);
    assert!(!cashback_app::compliance::syncing_stopped(&ctx, &shop())
        .await
        .unwrap());
}

/// The link keys as SSM gives them on Lambda: read by the first request,
/// not at start; the first read fails here (a throttled SSM).
struct FlakySsm(std::sync::atomic::AtomicU32);

#[async_trait::async_trait]
impl cashback_app::secret_keys::KeyLoader for FlakySsm {
    async fn load(&self) -> Result<cashback_app::secret_keys::KeySet, String> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err(
                "SSM parameter /cashback/link-secret could not be read (Throttling)".into(),
            );
        }
        Ok(cashback_app::secret_keys::KeySet {
            current: b"the-deployments-link-secret-0123456789".to_vec(),
            previous: Vec::new(),
        })
    }
}

#[tokio::test]
async fn pages_read_the_link_keys_on_the_first_request_and_answer_503_while_they_cannot() {
    let seeded = ctx().await;
    let loader = Arc::new(FlakySsm(std::sync::atomic::AtomicU32::new(0)));
    let ctx = Context::new(
        seeded.store.clone(),
        seeded.notifier.clone(),
        seeded.codes.clone(),
        cashback_app::AppConfig {
            link_keys: cashback_app::secret_keys::SecretKeys::on_first_use(loader.clone()),
            ..cashback_app::AppConfig::default()
        },
    )
    .with_clock(Arc::new(t0));
    let router = router_with(ctx.clone(), config());
    let (status, _, _) = send_text(router.clone(), get("/dashboard/login")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let cookie = sign_in(&router, "demo.myshopify.com", OWNER).await;
    assert_eq!(loader.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The session is signed with the deployment's key, read once.
    let session = auth::new_session(
        b"the-deployments-link-secret-0123456789",
        &shop(),
        OWNER,
        t0(),
    );
    let made_here = format!("{}={session}", cookie.split('=').next().unwrap());
    for cookie in [cookie, made_here] {
        let (status, _, body) = send_text(
            router.clone(),
            get_as("/dashboard/shops/demo.myshopify.com/customers", &cookie),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(loader.0.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_lambda_router_built_in_parts_answers_every_route_as_the_whole_router() {
    // The Lambda's router builds each part on its first request; the local
    // server and the tests above merge the whole one. Each gets its own
    // store, and the same requests in the same order, signed in and not.
    let whole = router_with(ctx().await, config());
    let in_parts = cashback_pages::router_on_first_use(ctx().await, config());
    let whole_cookie = sign_in(&whole, "demo.myshopify.com", OWNER).await;
    let parts_cookie = sign_in(&in_parts, "demo.myshopify.com", OWNER).await;
    let paths = cashback_pages::route_paths();
    assert!(paths.len() >= 28, "{paths:?}");
    let unknown = [
        "/",
        "/pages",
        "/dashboard/shops/demo.myshopify.com/customersX",
    ];
    // Paths that are not the routes as written: each router answers them
    // as the other does.
    let tricks = [
        "//dashboard/shops/demo.myshopify.com/customers/ann",
        "/dashboard/shops/demo.myshopify.com/customers/ann/",
        "/dashboard/shops/demo.myshopify.com/%63ustomers/ann",
        "/dashboard/shops/demo.myshopify.com/coupons/../customers/ann",
        "/pages/proxy/../shops/demo.myshopify.com/customers/ann",
        "/Pages/proxy",
    ];
    let mut sweep = cashback_test_support::seeded::RouteSweep::new(&paths, &unknown, &tricks);
    let uris = sweep.uris.clone();
    for uri in &uris {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for signed_in in [false, true] {
                let request = |cookie: &str| {
                    let mut request = Request::builder().method(method).uri(uri);
                    if signed_in {
                        request = request.header("cookie", cookie);
                    }
                    request.body(Body::empty()).unwrap()
                };
                let (expected, expected_response, expected_body) =
                    send_text(whole.clone(), request(&whole_cookie)).await;
                let (status, response, _) =
                    send_text(in_parts.clone(), request(&parts_cookie)).await;
                assert_eq!(status, expected, "{method} {uri} signed in: {signed_in}");
                for header in ["location", "content-type"] {
                    assert_eq!(
                        response.headers().get(header),
                        expected_response.headers().get(header),
                        "{header} of {method} {uri} signed in: {signed_in}"
                    );
                }
                sweep.answered(uri, expected, &expected_body);
            }
        }
    }
    sweep.assert_routes_answered();
}
