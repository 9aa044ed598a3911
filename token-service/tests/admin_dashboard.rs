//! The dashboard as served: the page shell, the rows fragment, the vendored assets, and the
//! client snippets' base URL. (The browser tier drives the same pages in Chromium.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_page_is_self_contained_and_csp_clean() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let r = admin.get("/admin").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!(
        r#"<meta name="csrf-token" content="{}">"#,
        admin.csrf
    )));
    assert!(html.contains(r#"<script src="/admin/static/admin.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/admin/static/admin.css">"#));
    assert_eq!(html.matches("<script").count(), 1, "no inline scripts");
    for forbidden in [
        " style=",
        " onclick=",
        " onload=",
        "javascript:",
        "//unpkg",
        "//cdn",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the page");
    }
    assert!(html.contains(r#"<form method="post" action="/admin/logout">"#));
    assert!(html.contains(&format!(r#"name="csrf" value="{}""#, admin.csrf)));
    assert!(html.contains("No tokens yet."));
    for (path, content_type) in [
        ("/admin/static/admin.js", "text/javascript; charset=utf-8"),
        ("/admin/static/admin.css", "text/css; charset=utf-8"),
    ] {
        let r = app.client.get(app.admin_url(path)).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "{path} is public (the login page needs the CSS)"
        );
        assert_eq!(r.headers()["content-type"], content_type);
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} loads nothing external"
        );
    }
}

#[tokio::test]
async fn snippets_point_at_the_proxy_the_browser_used() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let page = |host: &'static str, proto: Option<&'static str>| {
        let mut req = admin
            .request(reqwest::Method::GET, "/admin")
            .header("host", host);
        if let Some(proto) = proto {
            // As Envoy sends it: only then is x-forwarded-proto believed.
            req = req
                .header("x-forwarded-proto", proto)
                .header(ptk_wire::CHECK_SECRET_HEADER, SECRET);
        }
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let html = page("127.0.0.1:10000", None).await;
    for want in [
        "OpenAI(base_url=&quot;http://127.0.0.1:10000/v1&quot;, api_key=&quot;__PTK_TOKEN__&quot;)",
        "anthropic.Anthropic(base_url=&quot;http://127.0.0.1:10000&quot;",
        "http_options={&quot;base_url&quot;: &quot;http://127.0.0.1:10000&quot;}",
        "base_url=&quot;http://127.0.0.1:10000/v1beta/openai&quot;",
    ] {
        assert!(html.contains(want), "{want} missing");
    }
    let tls = page("proxy.example:10443", Some("https")).await;
    assert!(tls.contains("https://proxy.example:10443/v1"));

    let fixed = spawn_app_with(Options {
        public_url: Some("https://llm.example.com".into()),
        ..Options::default()
    })
    .await;
    let html = fixed
        .login()
        .await
        .get("/admin")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("https://llm.example.com/v1"));
}

#[tokio::test]
async fn rows_show_state_and_escape_labels() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let evil = admin
        .create(json!({"label": "<script>alert(1)</script>", "providers": ["openai", "gemini"]}))
        .await;
    let expired = admin
        .create(json!({"label": "old", "providers": ["anthropic"], "expires_at": "2001-02-03T04:05:06Z"}))
        .await;
    let off = admin
        .create(json!({"label": "off", "providers": ["openai"]}))
        .await;
    let off_hash = off["hash"].as_str().unwrap();
    admin.patch(off_hash, json!({"status": "disabled"})).await;

    let r = admin.get("/admin/fragments/tokens").await;
    assert_eq!(r.status(), 200);
    let rows = r.text().await.unwrap();
    assert!(rows.starts_with("<tr"), "{rows}");
    assert!(!rows.contains("<script>"));
    assert!(rows.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(rows.contains(&format!("…{}", evil["last4"].as_str().unwrap())));
    assert!(rows.contains(
        r#"<span class="pill openai">openai</span><span class="pill gemini">gemini</span>"#
    ));

    let row_of = |hash: &str| {
        let start = rows.find(&format!(r#"<tr id="tok-{hash}""#)).unwrap();
        let end = rows[start..].find("</tr>").unwrap();
        rows[start..start + end].to_owned()
    };
    let old = row_of(expired["hash"].as_str().unwrap());
    assert!(old.contains(r#"class="dim expired""#), "{old}");
    assert!(old.contains(r#"<strong class="badge">expired</strong>"#));
    assert!(
        old.contains(r#"<time datetime="2001-02-03T04:05:06.000Z">2001-02-03 04:05 UTC</time>"#)
    );
    assert!(old.contains(r#"data-action="clear-expiry""#));
    let disabled = row_of(off_hash);
    assert!(disabled.contains(r#"class="dim disabled""#));
    assert!(disabled.contains(r#"data-next="active">enable</button>"#));
    let live = row_of(evil["hash"].as_str().unwrap());
    assert!(!live.contains("class=\"dim"));
    assert!(live.contains(r#"data-next="disabled">disable</button>"#));
    assert!(live.contains(">never<"), "no expiry, never used");
}
