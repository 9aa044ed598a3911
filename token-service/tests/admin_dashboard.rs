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
    assert!(html.contains(r#"<script src="/admin/static/usage.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/admin/static/admin.css">"#));
    assert_eq!(html.matches("<script").count(), 2, "no inline scripts");
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
        ("/admin/static/usage.js", "text/javascript; charset=utf-8"),
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

/// Rows carry what the CLI needs (the hash: a 12-character prefix shown, the whole one in the
/// row and the title, a copy button) and each token's rate limit, its own or the default.
#[tokio::test]
async fn rows_show_the_hash_and_the_rate_limit() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let own = admin
        .create(json!({"label": "own", "providers": ["openai"], "rate_limit": {"count": 7, "window_s": 30}}))
        .await;
    let plain = admin
        .create(json!({"label": "plain", "providers": ["openai"]}))
        .await;
    let rows = admin
        .get("/admin/fragments/tokens")
        .await
        .text()
        .await
        .unwrap();
    for (token, limit) in [(&own, "7 per 30 s"), (&plain, "default (100 per 60 s)")] {
        let hash = token["hash"].as_str().unwrap();
        let start = rows.find(&format!(r#"<tr id="tok-{hash}""#)).unwrap();
        let row = &rows[start..start + rows[start..].find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(r#"<code title="{hash}">{}…</code>"#, &hash[..12])),
            "{row}"
        );
        assert!(row.contains(r#"data-action="copy-hash""#), "{row}");
        assert!(
            row.contains(&format!(r#"<td class="rate-limit">{limit}</td>"#)),
            "{row}"
        );
    }
    let page = admin.get("/admin").await.text().await.unwrap();
    assert!(page.contains("<th>Hash</th>") && page.contains("<th>Rate limit</th>"));
}

/// The page says which providers have real keys (names, never keys) and where the admin
/// secret is; the test app has keys for OpenAI and Anthropic only.
#[tokio::test]
async fn the_page_names_providers_with_keys_and_where_the_secret_is() {
    let app = spawn_app_with(Options {
        admin_secret_file: Some("data/admin-secret".into()),
        ..Options::default()
    })
    .await;
    let page = app.login().await.get("/admin").await.text().await.unwrap();
    assert!(page.contains(r#"class="pill key-on openai""#), "{page}");
    assert!(page.contains(r#"class="pill key-on anthropic""#), "{page}");
    assert!(page.contains(r#"class="pill key-off gemini""#), "{page}");
    assert!(!page.contains(OPENAI_KEY) && !page.contains(ANTHROPIC_KEY));
    assert!(page.contains("<code>data/admin-secret</code>"), "{page}");
    // The sign-in page too (that is where the secret is needed), without a session.
    let login = app
        .client
        .get(app.admin_url("/admin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains(r#"type="password""#));
    assert!(login.contains("<code>data/admin-secret</code>"), "{login}");
    assert!(!login.contains(ADMIN_SECRET));
    // Without a file, the variable is named.
    let env_app = spawn_app().await;
    let login = env_app
        .client
        .get(env_app.admin_url("/admin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("<code>ADMIN_SECRET</code>"), "{login}");
}

/// Each snippet block names the scope it needs, so the script can show only the created
/// token's (the browser tier checks the showing).
#[tokio::test]
async fn snippets_are_tagged_with_their_provider() {
    let app = spawn_app().await;
    let page = app.login().await.get("/admin").await.text().await.unwrap();
    assert_eq!(page.matches(r#"data-provider="openai"><h4>"#).count(), 1);
    assert_eq!(page.matches(r#"data-provider="anthropic"><h4>"#).count(), 1);
    assert_eq!(page.matches(r#"data-provider="gemini"><h4>"#).count(), 2);
}

/// Browsers ask for the icon on every page: answered, without a session, never 401.
#[tokio::test]
async fn favicon_needs_no_session() {
    let app = spawn_app().await;
    for path in ["/favicon.ico", "/admin/favicon.ico"] {
        let r = app.client.get(app.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 204, "{path}");
    }
}
