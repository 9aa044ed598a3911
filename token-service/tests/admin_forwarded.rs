//! Whom the admin listener believes the client to be. `x-forwarded-for` counts only on a
//! request carrying the check secret (Envoy's `/admin` routes add it); any other caller, a
//! local process on loopback included, is its TCP peer whatever it claims, and a wrong secret
//! is simply ignored. The secret header never comes back in a response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::CHECK_SECRET_HEADER;
use reqwest::StatusCode;

const WRONG_SECRET: &str = "test-check-secret-0123456780";

#[tokio::test]
async fn a_direct_caller_is_throttled_in_its_own_bucket_whatever_it_forwards() {
    let app = spawn_app().await;
    // Ten guesses from this loopback peer, each claiming another client; half of them also
    // present a wrong check secret (ignored, not refused: the caller is just not Envoy).
    for i in 0..10 {
        let ip = format!("203.0.113.{i}");
        let mut headers = vec![("x-forwarded-for", ip.as_str())];
        if i % 2 == 1 {
            headers.push((CHECK_SECRET_HEADER, WRONG_SECRET));
        }
        let r = app.login_with_headers("wrong-guess", &headers).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
    }
    // The eleventh attempt is refused, the right password included, whatever it forwards.
    for xff in [
        "198.51.100.200",
        "10.0.0.1, 198.51.100.201",
        "127.0.0.2",
        "",
    ] {
        for secret in [None, Some(WRONG_SECRET), Some("")] {
            let mut headers = vec![("x-forwarded-for", xff)];
            headers.extend(secret.map(|s| (CHECK_SECRET_HEADER, s)));
            let r = app.login_with_headers(ADMIN_SECRET, &headers).await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{headers:?}");
        }
    }
    assert_eq!(
        app.login_json(ADMIN_SECRET, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Envoy's clients are unaffected, except the one whose address is this caller's own:
    // the bucket is the TCP peer's address, 127.0.0.1.
    assert_eq!(
        app.login_json(ADMIN_SECRET, Some("198.51.100.10"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_json(ADMIN_SECRET, Some("127.0.0.1"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn with_the_check_secret_x_forwarded_for_selects_the_bucket() {
    let app = spawn_app().await;
    for _ in 0..10 {
        let r = app.login_json("wrong-guess", Some("198.51.100.1")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = app.login_json(ADMIN_SECRET, Some("198.51.100.1")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    // The rightmost entry is the client (the one Envoy wrote); what is left of it is not.
    for (xff, want) in [
        ("203.0.113.7, 198.51.100.1", StatusCode::TOO_MANY_REQUESTS),
        ("198.51.100.1, 198.51.100.2", StatusCode::OK),
        ("198.51.100.3", StatusCode::OK),
    ] {
        let r = app.login_json(ADMIN_SECRET, Some(xff)).await;
        assert_eq!(r.status(), want, "{xff}");
    }
    // A direct caller (this loopback peer) has its own, untouched bucket.
    assert_eq!(
        app.login_json(ADMIN_SECRET, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_check_secret_never_comes_back() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let via_envoy = |req: reqwest::RequestBuilder| {
        req.header(CHECK_SECRET_HEADER, SECRET)
            .header("x-forwarded-for", "198.51.100.9")
    };
    let responses = [
        app.login_json(ADMIN_SECRET, Some("198.51.100.9")).await,
        app.login_json("wrong", Some("198.51.100.9")).await,
        via_envoy(admin.request(reqwest::Method::GET, "/admin"))
            .send()
            .await
            .unwrap(),
        via_envoy(admin.request(reqwest::Method::GET, "/admin/api/tokens"))
            .send()
            .await
            .unwrap(),
        via_envoy(admin.request(reqwest::Method::GET, "/admin/nope"))
            .send()
            .await
            .unwrap(),
        via_envoy(app.client.get(app.admin_url("/admin")))
            .send()
            .await
            .unwrap(),
    ];
    for r in responses {
        let what = format!("{} {}", r.status(), r.url());
        let headers = format!("{:?}", r.headers());
        assert!(!headers.contains(SECRET), "{what}: {headers}");
        assert!(!headers.contains(CHECK_SECRET_HEADER), "{what}: {headers}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(SECRET), "{what}");
    }
}
