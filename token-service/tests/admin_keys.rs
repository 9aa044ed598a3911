//! The admin surface's provider keys and pool fields: `GET /admin/api/keys` and the dashboard's
//! keys section name each key (label or last 4) with its pools and state, never the key; a
//! filter's report moves a key to refused or cooling; a token's `key_pool` and `models` are
//! set, shown as text in its row, and cleared with `null`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{Provider, ACTIVITY_PATH, CHECK_SECRET_HEADER};
use serde_json::{json, Value};
use token_service::key_pools::parse_list;
use token_service::keys::ProviderKeys;

const KEYS: [&str; 3] = [
    "sk-pool-key-aaaa1111",
    "sk-pool-key-bbbb2222",
    "sk-team-key-cccc3333",
];

fn options() -> Options {
    let default = parse_list(&format!("[a]{},{}", KEYS[0], KEYS[1]), "K").unwrap();
    let team = parse_list(&format!("[t1]{},[a]{}", KEYS[2], KEYS[0]), "K").unwrap();
    Options {
        keys: ProviderKeys::none()
            .with_pool(Provider::Openai, None, default)
            .with_pool(Provider::Openai, Some("team_a"), team),
        ..Options::default()
    }
}

async fn report(app: &TestApp, events: Value) {
    let response = app
        .client
        .post(app.url(ACTIVITY_PATH))
        .header(CHECK_SECRET_HEADER, SECRET)
        .json(&json!({"entries": [], "key_events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

fn states(listing: &Value) -> Vec<(String, String, Value, bool)> {
    listing["providers"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
                k["pools"].clone(),
                k["until"].is_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keys_show_by_name_with_pools_and_state_never_the_key() {
    let app = spawn_app_with(options()).await;
    let admin = app.login().await;
    let listing: Value = admin.get("/admin/api/keys").await.json().await.unwrap();
    assert_eq!(listing["providers"][0]["provider"], "openai");
    assert_eq!(
        states(&listing),
        [
            ("a".into(), "usable".into(), json!([null, "team_a"]), false),
            ("...2222".into(), "usable".into(), json!([null]), false),
            ("t1".into(), "usable".into(), json!(["team_a"]), false),
        ]
    );
    report(
        &app,
        json!([
            {"provider": "openai", "key": "...2222", "event": "refused"},
            {"provider": "openai", "key": "t1", "event": "rate_limited", "cooling_ms": 30000},
        ]),
    )
    .await;
    let listing: Value = admin.get("/admin/api/keys").await.json().await.unwrap();
    let got = states(&listing);
    assert_eq!((got[1].1.as_str(), got[1].3), ("refused", true), "{got:?}");
    assert_eq!((got[2].1.as_str(), got[2].3), ("cooling", true), "{got:?}");
    assert_eq!(got[0].1, "usable");

    let page = admin.get("/admin").await.text().await.unwrap();
    assert!(
        page.contains(r#"<tr data-key="...2222" data-state="refused">"#),
        "{page}"
    );
    assert!(page.contains(r#"<tr data-key="t1" data-state="cooling">"#));
    assert!(
        page.contains(r#"<option value="team_a">"#),
        "the pool is offered"
    );
    for key in KEYS {
        assert!(!listing.to_string().contains(key), "a key in the keys API");
        assert!(!page.contains(key), "a key in the dashboard");
    }
    // Signed out: no listing.
    let anonymous = app.client.get(admin.url("/admin/api/keys")).send().await;
    assert_eq!(anonymous.unwrap().status(), 401);
}

#[tokio::test]
async fn a_tokens_pool_and_models_show_as_text_and_null_clears_them() {
    let app = spawn_app_with(options()).await;
    let admin = app.login().await;
    let created = admin
        .create(json!({"label": "pooled", "providers": ["openai"],
                       "key_pool": "TEAM_A", "models": ["gpt-4o", "claude-*"]}))
        .await;
    assert_eq!(created["key_pool"], "team_a");
    let hash = created["hash"].as_str().unwrap().to_owned();
    let rows = admin
        .get("/admin/fragments/tokens")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        rows.contains(r#"<td class="models" data-models="gpt-4o, claude-*">"#),
        "{rows}"
    );
    assert!(
        rows.contains(r#"<span class="key-pool-text">team_a</span>"#),
        "{rows}"
    );
    // An HTML-looking model name is refused, never stored (so never rendered).
    let r = admin
        .patch(&hash, json!({"models": ["<img src=x onerror=alert(1)>"]}))
        .await;
    assert_eq!(r.status(), 400);
    let r = admin
        .patch(&hash, json!({"key_pool": null, "models": null}))
        .await;
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        (view["key_pool"].clone(), view["models"].clone()),
        (Value::Null, Value::Null)
    );
    let rows = admin
        .get("/admin/fragments/tokens")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        rows.contains(r#"<span class="key-pool-text">default</span>"#),
        "{rows}"
    );
    assert!(
        rows.contains(r#"<span class="models-text">any</span>"#),
        "{rows}"
    );
}
