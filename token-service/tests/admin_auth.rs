//! Black-box tests of the admin surface's access control: separate listeners, login and its
//! throttle, the session cookie (attributes, tampering, expiry), CSRF and origin checks, and
//! the security headers. Real app on port 0, fresh database each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::admin::{cookie_pair, error_of};
use common::*;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

use token_service::admin::SessionKeys;
use token_service::ratelimit::RedisRateLimiter;
use token_service::settings::SESSION_MAX_AGE;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn check_api_and_admin_never_share_a_port() {
    let app = spawn_app().await;
    let admin = app.login().await;
    // The check API is not on the admin port...
    let r = app
        .client
        .post(app.admin_url(ptk_wire::CHECK_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(admin.get("/healthz").await.status(), StatusCode::NOT_FOUND);
    // ...and the admin surface is not on the check port, session or not.
    for path in ["/admin", "/admin/api/tokens", "/admin/static/admin.js"] {
        let r = app
            .client
            .get(app.url(path))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn without_an_admin_secret_there_is_no_admin_listener() {
    let app = spawn_app_with(Options {
        admin_secret: None,
        ..Options::default()
    })
    .await;
    assert!(app.admin_addr.is_none());
    let r = app.client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unauthenticated_pages_show_login_and_the_api_answers_401() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.admin_url("/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/admin/login">"#),
        "{html}"
    );
    assert!(html.contains(r#"type="password" name="password""#));
    let hash = "a".repeat(64);
    let token_path = format!("/admin/api/tokens/{hash}");
    let cases = [
        (Method::GET, "/admin/api/tokens"),
        (Method::POST, "/admin/api/tokens"),
        (Method::GET, token_path.as_str()),
        (Method::PATCH, token_path.as_str()),
        (Method::DELETE, token_path.as_str()),
        (Method::GET, "/admin/fragments/tokens"),
    ];
    for (method, path) in cases {
        let r = app
            .client
            .request(method.clone(), app.admin_url(path))
            .json(&json!({"status": "active"}))
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {path}"
        );
        assert_eq!(message, "login required");
    }
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie() {
    let app = spawn_app().await;
    let r = app.login_json(ADMIN_SECRET, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let attrs: Vec<&str> = set_cookie.split("; ").collect();
    assert!(attrs[0].starts_with("ptk_admin="), "{set_cookie}");
    for want in [
        "Path=/admin",
        "Max-Age=86400",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(attrs.contains(&want), "{want} missing in {set_cookie}");
    }
    assert!(!attrs.contains(&"Secure"), "plain http gets no Secure flag");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert!(body["csrf_token"].as_str().unwrap().len() >= 40);

    // Behind a TLS-terminating Envoy (x-forwarded-proto: https, with the check secret that
    // proves it is Envoy): Secure. The same header from anyone else changes nothing.
    let via_envoy = [
        ("x-forwarded-proto", "https"),
        (ptk_wire::CHECK_SECRET_HEADER, SECRET),
    ];
    let r = app.login_with_headers(ADMIN_SECRET, &via_envoy).await;
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    let r = app
        .login_with_headers(ADMIN_SECRET, &[("x-forwarded-proto", "https")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

#[tokio::test]
async fn form_login_redirects_or_shows_the_error_on_the_page() {
    let app = spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(app.admin_url("/admin/login"))
        .form(&[("password", ADMIN_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/admin");
    assert!(r.headers().contains_key("set-cookie"));

    let r = no_redirects
        .post(app.admin_url("/admin/login"))
        .form(&[("password", "not-the-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.headers().contains_key("set-cookie"));
    let html = r.text().await.unwrap();
    assert!(html.contains("invalid password"), "{html}");
    assert!(
        !html.contains("not-the-secret"),
        "the attempt is never echoed"
    );
}

#[tokio::test]
async fn wrong_or_missing_passwords_are_refused() {
    let app = spawn_app().await;
    for wrong in [
        "",
        "x",
        &ADMIN_SECRET[..ADMIN_SECRET.len() - 1],
        &format!("{ADMIN_SECRET}x"),
    ] {
        let (status, code, _) = error_of(app.login_json(wrong, None).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_password"),
            "{wrong:?}"
        );
    }
    let r = app
        .client
        .post(app.admin_url("/admin/login"))
        .json(&json!({"secret": ADMIN_SECRET}))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(r).await;
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::BAD_REQUEST, "password is required")
    );
}

#[tokio::test]
async fn login_is_throttled_per_client_ip() {
    let app = spawn_app().await;
    let ip = Some("198.51.100.1");
    for _ in 0..10 {
        assert_eq!(
            app.login_json("wrong-guess", ip).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The 11th attempt is refused before the password is looked at, even the right one.
    for password in ["wrong-guess", ADMIN_SECRET] {
        let r = app.login_json(password, ip).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(!r.headers().contains_key("set-cookie"));
        let (_, code, _) = error_of(r).await;
        assert_eq!(code, "too_many_attempts");
    }
    // Other clients are unaffected; the rightmost x-forwarded-for entry is the client.
    assert_eq!(
        app.login_json(ADMIN_SECRET, Some("198.51.100.2"))
            .await
            .status(),
        StatusCode::OK
    );
    let spoofed = app
        .login_json(ADMIN_SECRET, Some("203.0.113.7, 198.51.100.1"))
        .await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    let form = app
        .client
        .post(app.admin_url("/admin/login"))
        .header("x-forwarded-for", "198.51.100.1")
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .form(&[("password", ADMIN_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(form.headers().contains_key("retry-after"));
    assert!(form
        .text()
        .await
        .unwrap()
        .contains("too many login attempts"));
}

async fn api_status_with_cookie(app: &TestApp, cookie: &str) -> StatusCode {
    app.client
        .get(app.admin_url("/admin/api/tokens"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn tampered_foreign_and_expired_cookies_are_refused() {
    let app = spawn_app().await;
    let admin = app.login().await;
    assert_eq!(
        api_status_with_cookie(&app, &admin.cookie).await,
        StatusCode::OK
    );
    let value = admin.cookie.strip_prefix("ptk_admin=").unwrap();
    let (payload, sig) = value.rsplit_once('.').unwrap();
    let (ts, nonce) = payload.split_once('.').unwrap();
    let later: i64 = ts.parse::<i64>().unwrap() + 3600;
    let mut flipped = sig.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let ours = SessionKeys::new(&SecretString::from(ADMIN_SECRET), SESSION_MAX_AGE);
    let theirs = SessionKeys::new(
        &SecretString::from("some-other-admin-secret"),
        SESSION_MAX_AGE,
    );
    let refused = [
        format!("ptk_admin={later}.{nonce}.{sig}"),
        format!("ptk_admin={ts}.{nonce}.{flipped}"),
        format!("ptk_admin={ts}.{nonce}AA.{sig}"),
        format!("ptk_admin={ts}.{sig}"),
        format!("ptk_admin={payload}."),
        "ptk_admin=garbage".to_owned(),
        format!("ptk_admin={}", theirs.issue(now())),
        format!("ptk_admin={}", ours.issue(now() - 86_401)),
        format!("ptk_admin={}", ours.issue(now() + 3600)),
        format!("other={value}"),
    ];
    for cookie in refused {
        assert_eq!(
            api_status_with_cookie(&app, &cookie).await,
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
    }
    // Signed with the right secret and within 24 h: accepted (the server checks age itself).
    let old_but_valid = format!("ptk_admin={}", ours.issue(now() - 86_000));
    assert_eq!(
        api_status_with_cookie(&app, &old_but_valid).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_end_at_their_max_age() {
    let app = spawn_app_with(Options {
        session_max_age: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let admin = app.login().await;
    assert_eq!(
        api_status_with_cookie(&app, &admin.cookie).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        api_status_with_cookie(&app, &admin.cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn writes_need_the_session_csrf_token() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let other = app.login().await;
    let body = json!({"label": "x", "providers": ["openai"]});
    let url = admin.url("/admin/api/tokens");
    let attempts = [
        None,
        Some(""),
        Some("not-a-token"),
        Some(other.csrf.as_str()), // another session's token
    ];
    for csrf in attempts {
        let mut req = admin
            .client
            .post(&url)
            .header("cookie", &admin.cookie)
            .json(&body);
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        let (status, code, _) = error_of(req.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "csrf"),
            "{csrf:?}"
        );
    }
    let hash = admin
        .create(json!({"label": "kept", "providers": ["openai"]}))
        .await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/api/tokens/{hash}");
    for method in [Method::PATCH, Method::DELETE] {
        let r = admin
            .client
            .request(method.clone(), admin.url(&path))
            .header("cookie", &admin.cookie)
            .json(&json!({"status": "disabled"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method}");
    }
    let token = admin
        .token(&hash)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(token["status"], "active", "refused writes changed nothing");
    assert_eq!(
        admin.get("/admin/api/tokens").await.status(),
        StatusCode::OK,
        "reads need no token"
    );
}

#[tokio::test]
async fn writes_from_another_origin_are_refused_even_with_the_token() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let host = app.admin_addr.unwrap().to_string();
    let body = json!({"label": "x", "providers": ["openai"]});
    let refused = [
        ("origin", "http://evil.example".to_owned(), "cross_origin"),
        ("origin", "null".to_owned(), "cross_origin"),
        ("sec-fetch-site", "cross-site".to_owned(), "cross_origin"),
        ("sec-fetch-site", "same-site".to_owned(), "cross_origin"),
    ];
    for (name, value, want) in refused {
        let r = admin
            .request(Method::POST, "/admin/api/tokens")
            .header(name, &value)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_of(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, want),
            "{name}: {value}"
        );
    }
    let r = admin
        .request(Method::POST, "/admin/api/tokens")
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Login checks the origin too (no logging in a victim from another site).
    let r = app
        .client
        .post(app.admin_url("/admin/login"))
        .header("origin", "http://evil.example")
        .json(&json!({"password": ADMIN_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_store_that_cannot_check_the_session_is_503_not_a_login_loop() {
    let app = spawn_app().await;
    let admin = app.login().await;
    // Break exactly the session check: the revocation table is gone.
    rusqlite::Connection::open(&app.db_path)
        .unwrap()
        .execute_batch("DROP TABLE revoked_sessions")
        .unwrap();
    let (status, code, _) = error_of(admin.get("/admin/api/tokens").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    assert_eq!(
        admin.get("/admin").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn replicas_sharing_redis_throttle_logins_together() {
    // Two token-service replicas with PTK_REDIS_URL: guesses spread over both still count
    // into one window per client IP.
    let redis = common::redis_server::start_redis();
    let replica = || async {
        let limiter = RedisRateLimiter::connect(&redis.url).await.unwrap();
        spawn_app_with(Options {
            limiter: Arc::new(limiter),
            ..Options::default()
        })
        .await
    };
    let (a, b) = (replica().await, replica().await);
    let ip = Some("198.51.100.7");
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            app.login_json("wrong-guess", ip).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for app in [&a, &b] {
        assert_eq!(
            app.login_json(ADMIN_SECRET, ip).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        b.login_json(ADMIN_SECRET, Some("198.51.100.8"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_needs_the_form_token_and_clears_the_cookie() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let logout = |csrf: &str| {
        client
            .post(admin.url("/admin/logout"))
            .header("cookie", &admin.cookie)
            .form(&[("csrf", csrf)])
    };
    assert_eq!(
        logout("wrong").send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let r = logout(&admin.csrf).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/admin");
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert_eq!(cookie_pair(cleared), "ptk_admin=");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/admin"));
}

#[tokio::test]
async fn a_logged_out_session_is_refused_even_if_its_cookie_was_kept() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let other = app.login().await; // a second browser, signed in separately
    assert_eq!(
        admin.get("/admin/api/tokens").await.status(),
        StatusCode::OK
    );
    let r = app
        .client
        .post(admin.url("/admin/logout"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    // A copy of the cookie (stolen, or a second tab) is dead now: API and dashboard alike.
    assert_eq!(
        admin.get("/admin/api/tokens").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let page = admin.get("/admin").await.text().await.unwrap();
    assert!(
        page.contains("type=\"password\""),
        "expected the login page"
    );
    let write = app
        .client
        .post(admin.url("/admin/api/tokens"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"label": "after logout", "providers": ["openai"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);
    // Only that session ended: the other one still works, and signing in again works.
    assert_eq!(
        other.get("/admin/api/tokens").await.status(),
        StatusCode::OK
    );
    let again = app.login().await;
    assert_eq!(
        again.get("/admin/api/tokens").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_admin_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let responses = [
        app.client
            .get(app.admin_url("/admin"))
            .send()
            .await
            .unwrap(),
        admin.get("/admin").await,
        admin.get("/admin/api/tokens").await,
        app.client
            .get(app.admin_url("/admin/api/tokens"))
            .send()
            .await
            .unwrap(),
        admin.get("/admin/static/admin.js").await,
        admin.get("/admin/nope").await,
        app.login_json("wrong", None).await,
        admin.send(Method::PUT, "/admin/api/tokens", None).await,
    ];
    for r in responses {
        let h = r.headers();
        let what = format!("{} {}", r.status(), r.url());
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "{what}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert!(h.contains_key("cache-control"), "{what}");
    }
    assert_eq!(
        admin.get("/admin/api/tokens").await.headers()["cache-control"],
        "no-store"
    );
}
