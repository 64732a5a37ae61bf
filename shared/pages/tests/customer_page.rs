//! The customer's page through the real router: the Shopify app proxy and
//! the signed link, and every way of reaching another customer's cashback
//! refused (tampered proxy parameters, another customer's id, an expired or
//! forged link, a form posted from elsewhere).

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;

use cashback_app::store::ReadRequest;
use cashback_app::Context;
use cashback_core::ids::CustomerId;
use cashback_pages::customer::signed_link;
use cashback_pages::{link, router_with, PagesConfig};
use customer_api::{proxy, CustomerApiConfig};

use support::*;

const SECRET: &[u8] = b"hush";

fn config() -> PagesConfig {
    PagesConfig {
        proxy: CustomerApiConfig {
            shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(SECRET.to_vec())),
            proxy_max_age_seconds: 300,
        },
        link_ttl_seconds: 3600,
        shopify_api_key: Some("app-key".into()),
        dashboard_users: Vec::new(),
    }
}

/// Ann's balance on a clock that stands at t0.
async fn ctx() -> Context {
    memory_context("30.00").await.with_clock(Arc::new(t0))
}

fn encode(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query Shopify's app proxy forwards for `logged_in`, signed.
fn proxied_params(logged_in: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("shop", "demo.myshopify.com".to_string()),
        ("logged_in_customer_id", logged_in.to_string()),
        ("path_prefix", "/apps/cashback".to_string()),
        ("timestamp", t0().timestamp().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    .collect();
    let signature = proxy::sign(SECRET, &params);
    params.push(("signature".into(), signature));
    params
}

fn proxied(logged_in: &str) -> String {
    encode(&proxied_params(logged_in, &[]))
}

#[tokio::test]
async fn the_proxy_page_shows_the_logged_in_customers_cashback_in_the_theme() {
    let (status, response, body) = send_text(
        router_with(ctx().await, config()),
        get(&format!("/pages/proxy?{}", proxied("ann"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        response.headers()["content-type"],
        "application/liquid; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    assert!(body.contains("30.00 USD"), "{body}");
    assert!(body.contains(ANN_CODE));
    assert!(body.contains(&format!("href=\"/discount/{ANN_CODE}?redirect=/cart\"")));
    assert!(body.contains("action=\"/apps/cashback/preferences\""));
    assert!(body.contains("/apps/cashback/assets/pages.css"));
    assert!(!body.contains("<html"), "the theme is the layout");
    assert!(
        !body.contains('{') && !body.contains('}'),
        "no Liquid syntax of ours"
    );
}

#[tokio::test]
async fn tampered_proxy_parameters_are_refused() {
    let router = router_with(ctx().await, config());
    // Signed for bob, then changed to ann.
    let tampered = proxied("bob").replace("logged_in_customer_id=bob", "logged_in_customer_id=ann");
    let (status, _, body) =
        send_text(router.clone(), get(&format!("/pages/proxy?{tampered}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00"));
    // Signed for bob, with ann added in front: Shopify signs the repeated key joined.
    let mut params = proxied_params("bob", &[]);
    params.insert(0, ("logged_in_customer_id".into(), "ann".into()));
    let signature = proxy::sign(SECRET, &params[..params.len() - 1]);
    params.pop();
    params.push(("signature".into(), signature));
    let (status, _, body) = send_text(
        router.clone(),
        get(&format!("/pages/proxy?{}", encode(&params))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00"));
    // Signed with another secret.
    let mut forged = proxied_params("ann", &[]);
    forged.pop();
    let signature = proxy::sign(b"guess", &forged);
    forged.push(("signature".into(), signature));
    let (status, _, body) = send_text(
        router.clone(),
        get(&format!("/pages/proxy?{}", encode(&forged))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00"));
    // No signature at all, with or without the shop's API key.
    let request = Request::get("/pages/proxy?shop=demo.myshopify.com&logged_in_customer_id=ann")
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send_text(router.clone(), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00"));
    // Not logged in.
    let (status, _, _) = send_text(router, get(&format!("/pages/proxy?{}", proxied("")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_customer_sees_their_own_page_not_anns() {
    let router = router_with(ctx().await, config());
    // Bob, genuinely logged in, asks for Ann by every name the page might read.
    let params = proxied_params("bob", &[("customer", "ann"), ("id", "ann")]);
    let (status, _, body) =
        send_text(router, get(&format!("/pages/proxy?{}", encode(&params)))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("30.00"), "{body}");
    assert!(!body.contains(ANN_CODE));
    assert!(body.contains("0.00 USD"));
}

#[tokio::test]
async fn a_stale_proxy_request_is_refused() {
    let ctx = ctx()
        .await
        .with_clock(Arc::new(|| t0() + Duration::minutes(30)));
    let (status, _, body) = send_text(
        router_with(ctx, config()),
        get(&format!("/pages/proxy?{}", proxied("ann"))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00"));
}

/// The query Shopify forwards when the shopper's own URL already carries a
/// `path_prefix`: Shopify appends its own after it and signs both.
fn proxied_with_shoppers_prefix(prefix: &str) -> String {
    let mut params = proxied_params("ann", &[]);
    params.pop();
    params.insert(0, ("path_prefix".into(), prefix.into()));
    let signature = proxy::sign(SECRET, &params);
    params.push(("signature".into(), signature));
    encode(&params)
}

#[tokio::test]
async fn a_path_prefix_in_the_shoppers_link_never_sends_the_page_off_the_shop() {
    // An attacker mails Ann `https://shop/apps/cashback?path_prefix=//3627732462`
    // (a host written as one decimal number): her page would load its
    // stylesheet from there (which can read the code in the page) and post
    // its form, token included, there.
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let evil = "//3627732462";
    let query = proxied_with_shoppers_prefix(evil);
    for uri in [
        format!("/pages/proxy?{query}"),
        format!("/pages/proxy/widget.json?{query}"),
    ] {
        let (_, response, body) = send_text(router.clone(), get(&uri)).await;
        assert!(!body.contains("3627732462"), "{uri}: {body}");
        assert!(response.headers().get("location").is_none());
    }
    let token = link::form_token(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let (_, response, _) = send_text(
        router.clone(),
        post_form(
            &format!("/pages/proxy/preferences?{query}"),
            &format!("token={token}&reminders=off"),
        ),
    )
    .await;
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    assert!(
        location
            .as_deref()
            .is_none_or(|l| !l.contains("3627732462")),
        "{location:?}"
    );
    // Even signed alone, a prefix that is not a path on the shop is not used.
    let params = {
        let mut params = proxied_params("ann", &[]);
        params.pop();
        params.retain(|(k, _)| k != "path_prefix");
        params.push(("path_prefix".into(), evil.into()));
        let signature = proxy::sign(SECRET, &params);
        params.push(("signature".into(), signature));
        params
    };
    let (status, _, body) =
        send_text(router, get(&format!("/pages/proxy?{}", encode(&params)))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("3627732462"), "{body}");
    assert!(body.contains("/apps/cashback/assets/pages.css"), "{body}");
}

fn link_for(ctx: &Context, customer: &str, expires_in: Duration) -> String {
    signed_link(
        cashback_test_support::fixtures::link_key(ctx),
        "",
        &shop(),
        &CustomerId::parse(customer).unwrap(),
        t0() + expires_in,
    )
}

#[tokio::test]
async fn a_signed_link_shows_a_whole_page_until_it_expires() {
    let ctx = ctx().await;
    let url = link_for(&ctx, "ann", Duration::hours(1));
    let (status, response, body) = send_text(router_with(ctx.clone(), config()), get(&url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.starts_with("<!doctype html>"));
    assert!(body.contains("30.00 USD") && body.contains(ANN_CODE));
    assert!(body.contains("href=\"/pages/assets/pages.css\""));

    let expired = link_for(&ctx, "ann", Duration::seconds(-1));
    let (status, _, body) = send_text(router_with(ctx, config()), get(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("30.00") && body.contains("expired"));
}

#[tokio::test]
async fn a_link_cannot_be_turned_to_another_customer_or_forged() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    // Bob's own link, pointed at Ann.
    let bobs = link_for(&ctx, "bob", Duration::hours(1));
    let (status, _, body) = send_text(
        router.clone(),
        get(&bobs.replace("/customers/bob", "/customers/ann")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("30.00"));
    // Ann's expired link with a later expiry written in.
    let expired = link_for(&ctx, "ann", Duration::seconds(-1));
    let later = (t0() + Duration::hours(5)).timestamp().to_string();
    let moved = expired.replace(
        &(t0() - Duration::seconds(1)).timestamp().to_string(),
        &later,
    );
    let (status, _, body) = send_text(router.clone(), get(&moved)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("30.00"));
    // A signature made with another key, or none.
    let forged = format!(
        "/pages/shops/demo.myshopify.com/customers/ann?expires={later}&sig={}",
        link::sign(
            b"guess",
            &shop(),
            &CustomerId::parse("ann").unwrap(),
            t0().timestamp() + 3600
        )
    );
    let (status, _, _) = send_text(router.clone(), get(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send_text(
        router.clone(),
        get("/pages/shops/demo.myshopify.com/customers/ann"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An unsubscribe signature is not a page link.
    let unsub = cashback_app::notices::unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let (status, _, _) = send_text(
        router,
        get(&format!(
            "/pages/shops/demo.myshopify.com/customers/ann?expires={later}&sig={unsub}"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_shops_server_mints_links_with_its_api_key_only() {
    let ctx = ctx().await;
    let router = router_with(ctx, config());
    let uri = "/pages/shops/demo.myshopify.com/customers/ann/link";
    let (status, _, _) = send_text(
        router.clone(),
        Request::post(uri).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let request = Request::post(uri)
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send_text(router.clone(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = json["url"].as_str().unwrap();
    let path = &url[url.find("/pages/").unwrap()..];
    let (status, _, body) = send_text(router, get(path)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("30.00 USD"));
}

async fn unsubscribed(ctx: &Context) -> bool {
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts[&ann].value.reminders.unsubscribed
}

#[tokio::test]
async fn the_email_preferences_form_needs_the_pages_token_and_works_both_ways() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let token = link::form_token(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let action = format!("/pages/proxy/preferences?{}", proxied("ann"));
    // A form posted from another site has no token.
    let (status, _, _) =
        send_text(router.clone(), post_form(&action, "token=00&reminders=off")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!unsubscribed(&ctx).await);
    // Bob's page token does not work for Ann.
    let bobs = link::form_token(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("bob").unwrap(),
    );
    let (status, _, _) = send_text(
        router.clone(),
        post_form(&action, &format!("token={bobs}&reminders=off")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!unsubscribed(&ctx).await);

    let (status, response, _) = send_text(
        router.clone(),
        post_form(&action, &format!("token={token}&reminders=off")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/apps/cashback?saved=off");
    assert!(unsubscribed(&ctx).await);
    let (_, _, page) = send_text(
        router.clone(),
        get(&format!(
            "/pages/proxy?{}",
            encode(&proxied_params("ann", &[("saved", "off")]))
        )),
    )
    .await;
    assert!(page.contains("Send me reminders again") && page.contains("no longer receive"));

    // Through the signed link, back on.
    let url = link_for(&ctx, "ann", Duration::hours(1));
    let action = url.replacen("/customers/ann?", "/customers/ann/preferences?", 1);
    let (status, response, _) = send_text(
        router,
        post_form(&action, &format!("token={token}&reminders=on")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(response.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("&saved=on"));
    assert!(!unsubscribed(&ctx).await);
}

async fn stored_birthday(ctx: &Context) -> Option<cashback_core::bonuses::Birthday> {
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(&shop(), &ReadRequest::account(&ann))
        .await
        .unwrap();
    read.accounts[&ann].value.bonus.birthday
}

/// Ann's first order earned cashback and it was released (her seeded
/// balance is a goodwill credit, no order).
async fn ann_has_earned_an_order(ctx: &Context) {
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(&shop(), &ReadRequest::account(&ann))
        .await
        .unwrap();
    let found = read.accounts[&ann].clone();
    let mut account = found.value;
    account.orders_earned = 1;
    account
        .bonus
        .order_released(&program().bonuses, t0() - Duration::days(40), t0());
    ctx.store
        .write(
            &shop(),
            cashback_app::store::WriteSet::account(cashback_app::store::AccountWrite::new(
                &program(),
                account,
                found.version,
            )),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_without_an_earning_order_cannot_give_a_birthday_through_either_form() {
    // The attack: open an account with an order never paid, give a birthday
    // a few days away, collect the bonus. Ann's account exists (a goodwill
    // balance) but no order of hers has earned.
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let token = link::form_token(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let action = format!("/pages/proxy/birthday?{}", proxied("ann"));
    let (status, _, _) = send_text(
        router.clone(),
        post_form(&action, &format!("token={token}&month=1&day=7")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let url = link_for(&ctx, "ann", Duration::hours(1));
    let action = url.replacen("/customers/ann?", "/customers/ann/birthday?", 1);
    let (status, _, _) = send_text(
        router,
        post_form(&action, &format!("token={token}&month=1&day=7")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(stored_birthday(&ctx).await, None, "nothing stored");
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(&shop(), &ReadRequest::account(&ann))
        .await
        .unwrap();
    assert_eq!(read.accounts[&ann].value.bonus.due_at, None);
}

#[tokio::test]
async fn the_customer_gives_a_birthday_once_through_the_pages_form_and_bad_days_change_nothing() {
    let ctx = ctx().await;
    ann_has_earned_an_order(&ctx).await;
    let router = router_with(ctx.clone(), config());
    let token = link::form_token(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let (_, _, page) = send_text(
        router.clone(),
        get(&format!("/pages/proxy?{}", proxied("ann"))),
    )
    .await;
    assert!(
        page.contains("action=\"/apps/cashback/birthday\""),
        "{page}"
    );
    assert!(page.contains("<label for=\"cb-birthday-month\">Month</label>"));
    assert!(
        page.contains("at least 30 days after you tell us"),
        "the page says when the bonus starts"
    );

    let action = format!("/pages/proxy/birthday?{}", proxied("ann"));
    // Posted from elsewhere: refused, nothing stored.
    let (status, _, _) = send_text(
        router.clone(),
        post_form(&action, "token=00&month=2&day=29"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Days no calendar has, and garbage: refused, nothing stored.
    for bad in [
        "month=4&day=31",
        "month=2&day=30",
        "month=13&day=1",
        "month=0&day=0",
        "month=-1&day=5",
        "month=feb&day=29",
        "month=2",
        "month=99999999999999999999&day=1",
    ] {
        let (status, _, _) = send_text(
            router.clone(),
            post_form(&action, &format!("token={token}&{bad}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(stored_birthday(&ctx).await, None);

    let (status, response, _) = send_text(
        router.clone(),
        post_form(&action, &format!("token={token}&month=2&day=29")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/apps/cashback?saved=birthday"
    );
    assert_eq!(
        stored_birthday(&ctx).await,
        Some(cashback_core::bonuses::Birthday::new(2, 29).unwrap())
    );
    let (_, _, page) = send_text(
        router.clone(),
        get(&format!(
            "/pages/proxy?{}",
            encode(&proxied_params("ann", &[("saved", "birthday")]))
        )),
    )
    .await;
    assert!(page.contains("29 February") && page.contains("birthday is saved"));
    assert!(
        !page.contains("cb-birthday-month"),
        "the form is gone once set"
    );

    // Once only: a second entry, through the signed link too, is refused.
    let url = link_for(&ctx, "ann", Duration::hours(1));
    let action = url.replacen("/customers/ann?", "/customers/ann/birthday?", 1);
    let (status, _, _) = send_text(
        router,
        post_form(&action, &format!("token={token}&month=7&day=14")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        stored_birthday(&ctx).await,
        Some(cashback_core::bonuses::Birthday::new(2, 29).unwrap())
    );
}

#[test]
fn liquid_syntax_in_any_value_is_shown_not_run() {
    let safe = cashback_pages::customer::liquid_safe("<p>{{ customer.email }} {% raw %}</p>");
    assert!(!safe.contains('{') && !safe.contains('}'));
    assert!(safe.contains("&#123;&#123; customer.email &#125;&#125;"));
}

// ---- The embeddable widget's JSON ----

/// No figure, no code, no email of Ann's in an answer.
fn reveals_nothing(body: &str) {
    assert!(!body.contains("30.00"), "{body}");
    assert!(!body.contains(ANN_CODE), "{body}");
    assert!(!body.contains("display_name"), "{body}");
}

#[tokio::test]
async fn the_widget_json_through_the_proxy_is_the_logged_in_customers_balance_and_code() {
    let (status, response, body) = send_text(
        router_with(ctx().await, config()),
        get(&format!("/pages/proxy/widget.json?{}", proxied("ann"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "read on the shop's own domain only"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["balance"], "30.00 USD");
    assert_eq!(json["code"], ANN_CODE);
    assert_eq!(
        json["apply_url"],
        format!("/discount/{ANN_CODE}?redirect=/cart")
    );
    assert_eq!(json["page_url"], "/apps/cashback");
    assert_eq!(json["enrolled"], true);
    // Only what the widget shows.
    let mut fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "apply_url",
            "balance",
            "code",
            "display_name",
            "enrolled",
            "page_url",
            "pending"
        ]
    );
}

#[tokio::test]
async fn the_widget_json_is_refused_unsigned_tampered_stale_or_for_another_customer() {
    let router = router_with(ctx().await, config());
    let widget = |query: String| get(&format!("/pages/proxy/widget.json?{query}"));
    // Unsigned, even with the shop's API key.
    let request =
        Request::get("/pages/proxy/widget.json?shop=demo.myshopify.com&logged_in_customer_id=ann")
            .header("authorization", format!("Bearer {API_KEY}"))
            .body(Body::empty())
            .unwrap();
    let (status, _, body) = send_text(router.clone(), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    // Signed for Bob, then changed to Ann.
    let tampered = proxied("bob").replace("logged_in_customer_id=bob", "logged_in_customer_id=ann");
    let (status, _, body) = send_text(router.clone(), widget(tampered)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    // Signed for Bob, with Ann added in front (a repeated key).
    let mut params = proxied_params("bob", &[]);
    params.pop();
    params.insert(0, ("logged_in_customer_id".into(), "ann".into()));
    let signature = proxy::sign(SECRET, &params);
    params.push(("signature".into(), signature));
    let (status, _, body) = send_text(router.clone(), widget(encode(&params))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    // Signed with another secret.
    let mut forged = proxied_params("ann", &[]);
    forged.pop();
    let signature = proxy::sign(b"guess", &forged);
    forged.push(("signature".into(), signature));
    let (status, _, body) = send_text(router.clone(), widget(encode(&forged))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    // Not logged in.
    let (status, _, body) = send_text(router.clone(), widget(proxied(""))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    // Bob, genuinely logged in, naming Ann: he gets his own (empty) cashback.
    let params = proxied_params("bob", &[("customer", "ann"), ("id", "ann")]);
    let (status, _, body) = send_text(router.clone(), widget(encode(&params))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("30.00") && !body.contains(ANN_CODE),
        "{body}"
    );
    assert!(body.contains("0.00 USD"));
    // A request older than five minutes.
    let stale = ctx()
        .await
        .with_clock(Arc::new(|| t0() + Duration::minutes(30)));
    let (status, _, body) = send_text(router_with(stale, config()), widget(proxied("ann"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
}

#[tokio::test]
async fn the_widget_json_from_a_signed_link_is_readable_from_the_shop_until_it_expires() {
    let ctx = ctx().await;
    let router = router_with(ctx.clone(), config());
    let widget_url = |page: String| {
        page.replacen("/customers/ann?", "/customers/ann/widget.json?", 1)
            .replacen("/customers/bob?", "/customers/bob/widget.json?", 1)
    };
    let url = widget_url(link_for(&ctx, "ann", Duration::hours(1)));
    let (status, response, body) = send_text(router.clone(), get(&url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["balance"], "30.00 USD");
    assert_eq!(json["code"], ANN_CODE);
    let page = json["page_url"].as_str().unwrap();
    assert!(
        page.starts_with(&ctx.config.public_base_url)
            && page.contains("/pages/shops/demo.myshopify.com/customers/ann?expires="),
        "{page}"
    );
    // Expired, turned to another customer, forged or without a signature.
    let expired = widget_url(link_for(&ctx, "ann", Duration::seconds(-1)));
    let (status, _, body) = send_text(router.clone(), get(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
    let bobs = widget_url(link_for(&ctx, "bob", Duration::hours(1)));
    let (status, _, body) = send_text(
        router.clone(),
        get(&bobs.replace("/customers/bob/", "/customers/ann/")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    reveals_nothing(&body);
    let last = if url.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &url[..url.len() - 1]);
    let (status, _, body) = send_text(router.clone(), get(&tampered)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    reveals_nothing(&body);
    let (status, _, body) = send_text(
        router,
        get("/pages/shops/demo.myshopify.com/customers/ann/widget.json"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    reveals_nothing(&body);
}

#[tokio::test]
async fn the_widget_script_is_served_beside_the_page_and_through_the_proxy() {
    let router = router_with(ctx().await, config());
    for path in ["/pages/assets/widget.js", "/pages/proxy/assets/widget.js"] {
        let (status, response, body) = send_text(router.clone(), get(path)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert!(body.contains("data-cashback-widget"));
        assert!(!body.contains("innerHTML"), "texts are set as text");
    }
}
