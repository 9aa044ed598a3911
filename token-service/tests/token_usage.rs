//! Metered token usage from the filter's report to the operator: `POST /v1/usage` with
//! `token_usage` is priced and stored in today's rollups, and `tokens usage` prints it per
//! model (table and `--json`), with unknown prices said, not guessed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use assert_cmd::Command;
use common::*;
use ptk_wire::Provider;
use serde_json::{json, Value};
use token_service::store::TokenStore as _;

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

async fn report(app: &TestApp, body: Value) -> reqwest::StatusCode {
    app.client
        .post(app.url(ptk_wire::ACTIVITY_PATH))
        .header(ptk_wire::CHECK_SECRET_HEADER, SECRET)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

fn entry(
    hash: &str,
    model: &str,
    requests: u64,
    incomplete: u64,
    input: u64,
    output: u64,
) -> Value {
    json!({"hash": hash, "provider": "openai", "api": "chat_completions", "model": model,
           "status": 200, "streamed": true, "requests": requests, "incomplete": incomplete,
           "usage": {"input": input, "cached_input": 0, "cache_write": 0, "output": output,
                     "reasoning": 0}})
}

fn usage_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .env("PTK_DB", &app.db_path)
        .arg("tokens")
        .arg("usage")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn reported_usage_is_priced_stored_and_shown_per_model() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_usage_test_token_0001", &[Provider::Openai], |_| {})
        .await;
    let two = json!({"entries": [], "token_usage": [
        entry(&hash, "gpt-4o", 2, 1, 2000, 200),
        entry(&hash, "my-finetune", 1, 0, 10, 10),
    ]});
    assert_eq!(report(&app, two).await, 204);
    // A second report adds to the same rows.
    let more = json!({"entries": [], "token_usage": [entry(&hash, "gpt-4o", 1, 0, 1000, 100)]});
    assert_eq!(report(&app, more).await, 204);

    let out = usage_cli(&app, &[&hash[..12], "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["token"], hash.as_str());
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let gpt = &models[0];
    assert_eq!(gpt["model"], "gpt-4o");
    assert_eq!(
        (gpt["requests"].as_u64(), gpt["incomplete"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (gpt["input_tokens"].as_u64(), gpt["output_tokens"].as_u64()),
        (Some(3000), Some(300))
    );
    // 3000 × 2.5 + 300 × 10 USD per million.
    assert_eq!(gpt["cost_usd"], "0.010500");
    // Exact too, for costs below the six decimals' last digit.
    assert_eq!(gpt["cost_nano_usd"], 10_500_000);
    let unknown = &models[1];
    assert_eq!(unknown["cost_usd"], "0.000000");
    assert_eq!(unknown["unpriced_requests"], 1);
    assert_eq!(unknown["unknown_price"], true);

    let out = usage_cli(&app, &[&hash[..12]]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("gpt-4o") && table.contains("0.010500"),
        "{table}"
    );
    assert!(table.contains("unknown price"), "{table}");
    // Since tomorrow: nothing.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = usage_cli(&app, &[&hash[..12], "--since", &tomorrow]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no metered usage"));
}

#[tokio::test]
async fn bad_reports_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_usage_test_token_0002", &[Provider::Openai], |_| {})
        .await;
    let long_model = "m".repeat(129);
    for bad in [
        entry("not-a-hash", "gpt-4o", 1, 0, 1, 1),
        entry(&hash, &long_model, 1, 0, 1, 1),
        json!({"hash": hash, "provider": "", "api": "chat_completions", "model": "m", "status": 200,
               "streamed": false, "requests": 1, "incomplete": 0,
               "usage": {"input": 1, "cached_input": 0, "cache_write": 0, "output": 1, "reasoning": 0}}),
    ] {
        let body = json!({"entries": [], "token_usage": [bad]});
        assert_eq!(report(&app, body).await, 400);
    }
    let out = usage_cli(&app, &[&hash, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["models"], json!([]));
    // A wrong --since is an error, not an empty answer.
    let out = usage_cli(&app, &[&hash, "--since", "last week"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since must be a day"));
}

#[tokio::test]
async fn a_deleted_tokens_usage_still_reads_by_its_full_hash() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_usage_test_token_0003", &[Provider::Openai], |_| {})
        .await;
    let body = json!({"entries": [], "token_usage": [entry(&hash, "gpt-4o", 1, 0, 1, 1)]});
    assert_eq!(report(&app, body).await, 204);
    use token_service::store::TokenStore as _;
    assert!(app.store.delete(&hash).await.unwrap());
    let by_prefix = usage_cli(&app, &[&hash[..12]]);
    assert!(!by_prefix.status.success());
    assert!(String::from_utf8_lossy(&by_prefix.stderr).contains("give its full 64-character hash"));
    let out = usage_cli(&app, &[&hash, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["models"][0]["requests"], 1);
}

#[tokio::test]
async fn the_admin_api_shows_a_tokens_usage_the_fleets_and_exports_csv() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_usage_test_token_0004", &[Provider::Openai], |_| {})
        .await;
    let other = app
        .add_token("ptk_usage_test_token_0005", &[Provider::Openai], |_| {})
        .await;
    let gone = app
        .add_token("ptk_usage_test_token_0006", &[Provider::Openai], |r| {
            r.label = "gone".into()
        })
        .await;
    let body = json!({"entries": [], "token_usage": [
        entry(&hash, "gpt-4o", 2, 0, 2000, 200),
        entry(&hash, "gpt-4o-mini", 1, 0, 10, 10),
        entry(&gone, "gpt-4o-mini", 1, 0, 1, 1),
        entry(&other, "=HYPERLINK(\"x\",\"y\")", 1, 1, 5, 5),
    ]});
    assert_eq!(report(&app, body).await, 204);
    // A session is needed.
    let anonymous = app
        .client
        .get(app.admin_url("/admin/api/usage"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let admin = app.login().await;

    let one: Value = admin
        .get(&format!("/admin/api/tokens/{hash}/usage"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["token"], hash.as_str());
    assert_eq!(one["models"][0]["cost_usd"], "0.007000");
    assert_eq!(one["days"][0]["api"], "chat_completions");
    assert_eq!(one["days"][0]["requests"], 2);
    // Per day: both models summed into today's one row.
    let per_day = one["per_day"].as_array().unwrap();
    assert_eq!(per_day.len(), 1, "{one}");
    assert_eq!(per_day[0]["day"], one["days"][0]["day"]);
    assert_eq!(
        (&per_day[0]["requests"], &per_day[0]["input_tokens"]),
        (&json!(3), &json!(2010))
    );
    assert_eq!(per_day[0]["output_tokens"], 210);

    // A deleted token's usage stays in the fleet's totals, without a label.
    app.store.delete(&gone).await.unwrap();
    let fleet: Value = admin.get("/admin/api/usage").await.json().await.unwrap();
    assert_eq!(fleet["models"].as_array().unwrap().len(), 3);
    assert_eq!(
        fleet["tokens"][0]["token"],
        hash.as_str(),
        "costliest first"
    );
    assert_eq!(fleet["tokens"][0]["label"], "test");
    let unpriced = &fleet["tokens"].as_array().unwrap()[1..];
    assert!(unpriced.iter().any(|t| t["token"] == other.as_str()
        && t["unknown_price"] == true
        && t["label"] == "test"));
    assert!(unpriced
        .iter()
        .any(|t| t["token"] == gone.as_str() && t["label"].is_null()));

    let csv = admin.get("/admin/api/usage.csv").await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("day,token,label,provider,model,api,requests"));
    assert!(text.contains(&format!(
        ",{hash},test,openai,gpt-4o,chat_completions,2,0,2000,"
    )));
    // A deleted token's rows keep their hash, with an empty label.
    assert!(text.contains(&format!(",{gone},,")), "{text}");
    // A model name is the provider's text: never a live formula, quoted as RFC 4180 says.
    assert!(
        text.contains(",\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\","),
        "{text}"
    );

    let bad = admin.get("/admin/api/usage?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    let bad = admin.get("/admin/api/tokens/nothex/usage").await;
    assert_eq!(bad.status(), 400);
    let later: Value = admin
        .get("/admin/api/usage?since=2999-01-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(later["models"], json!([]));
}

#[tokio::test]
async fn reported_usage_shows_in_prometheus_by_provider_model_and_token_type() {
    let app = spawn_app_with(Options {
        metrics: true,
        ..Options::default()
    })
    .await;
    let hash = app
        .add_token("ptk_usage_test_token_0006", &[Provider::Openai], |_| {})
        .await;
    let body = json!({"entries": [], "token_usage": [entry(&hash, "gpt-4o", 3, 1, 2000, 200)]});
    assert_eq!(report(&app, body).await, 204);
    let url = format!("http://{}/metrics", app.metrics_addr.unwrap());
    let text = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(
            r#"ptk_gen_ai_client_token_usage_total{gen_ai_provider_name="openai",gen_ai_response_model="gpt-4o",gen_ai_token_type="input"} 2000"#
        ),
        "{text}"
    );
    assert!(
        has(
            r#"ptk_gen_ai_client_token_usage_total{gen_ai_provider_name="openai",gen_ai_response_model="gpt-4o",gen_ai_token_type="output"} 200"#
        ),
        "{text}"
    );
    assert!(
        has(
            r#"ptk_metered_responses_total{gen_ai_provider_name="openai",gen_ai_response_model="gpt-4o",usage="incomplete"} 1"#
        ),
        "{text}"
    );
    assert!(!text.contains(&hash), "a token hash in a metric");
}

#[tokio::test]
async fn a_workers_fullest_report_is_accepted_and_model_names_cannot_drive_the_terminal() {
    let app = spawn_app().await;
    let hash = app
        .add_token("ptk_usage_test_token_0007", &[Provider::Openai], |_| {})
        .await;
    // The filter's batch bound (4,096 keys) with the longest model names it sends (128 bytes,
    // each escaped to six in JSON: the worst case).
    let entries: Vec<Value> = (0..4096)
        .map(|n| entry(&hash, &format!("{n:04}{}", "\u{1}".repeat(124)), 1, 0, 1, 1))
        .collect();
    let body = json!({"entries": [], "token_usage": entries});
    assert!(serde_json::to_vec(&body).unwrap().len() > 2 * 1024 * 1024);
    assert_eq!(report(&app, body).await, 204);
    let escape =
        json!({"entries": [], "token_usage": [entry(&hash, "\u{1b}[31mred\u{7}", 1, 0, 1, 1)]});
    assert_eq!(report(&app, escape).await, 204);
    let out = usage_cli(&app, &[&hash]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "a control character reached the terminal"
    );
    assert!(
        table.contains("?[31mred?"),
        "{}",
        &table[..200.min(table.len())]
    );
}
