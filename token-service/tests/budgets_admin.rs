//! Budgets in the admin API and the CLI: a token's budgets with spent, reserved (the live
//! grants), remaining and reset; groups created, joined, refused deletion while they have
//! members; the CLI's `--token-budget/--cost-budget/--tpm/--group` and their `--no-` forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use assert_cmd::Command;
use common::admin::error_of;
use common::*;
use ptk_wire::CheckResponse;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_token-service");

#[tokio::test]
async fn the_admin_api_sets_budgets_and_shows_them_with_the_live_reservations() {
    let app = spawn_app().await;
    let admin = app.login().await;
    let created = admin
        .create(json!({"label": "budgeted", "providers": ["openai"]}))
        .await;
    let hash = created["hash"].as_str().unwrap().to_owned();
    let path = format!("/admin/api/tokens/{hash}/budgets");

    let set = admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"token_budget": "100000/day", "tpm": 5000})),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    // A check reserves a grant: the view shows it as reserved.
    let verdict = app.check(&hash, ptk_wire::Provider::Openai).await;
    let CheckResponse::Allow { limits, .. } = verdict else {
        panic!("{verdict:?}")
    };
    let grant = limits.unwrap().budget.unwrap();
    let view: Value = admin.get(&path).await.json().await.unwrap();
    let budgets = view["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2);
    let day = &budgets[0];
    assert_eq!(
        (day["scope"].as_str(), day["kind"].as_str()),
        (Some("token"), Some("tokens"))
    );
    assert_eq!(day["limit"], 100_000);
    assert_eq!(day["spent"], 0);
    assert_eq!(day["reserved"], grant.tokens);
    assert_eq!(day["remaining"], 100_000 - grant.tokens);
    assert!(day["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(budgets[1]["kind"], "tpm");
    assert_eq!(budgets[1]["period"], "minute");

    // Groups: created, joined, not deletable while a token belongs to it.
    let groups = "/admin/api/groups";
    let team = json!({"name": "team-a", "cost_budget": "25.50/month"});
    let made = admin.send(Method::POST, groups, Some(team.clone())).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let again = admin.send(Method::POST, groups, Some(team)).await;
    assert_eq!(error_of(again).await.0, StatusCode::CONFLICT);
    let joined: Value = admin
        .send(
            Method::PATCH,
            &path,
            Some(json!({"group": "team-a", "tpm": null})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(joined["group"], "team-a");
    let kinds: Vec<(&str, &str)> = joined["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["scope"].as_str().unwrap(), b["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("token", "tokens"), ("group", "cost")]);
    let group_cost = &joined["budgets"][1];
    assert_eq!(
        (group_cost["limit"].as_u64(), group_cost["group"].as_str()),
        (Some(25_500_000_000), Some("team-a"))
    );
    let listed: Value = admin.get(groups).await.json().await.unwrap();
    assert_eq!(listed["groups"][0]["members"], 1);
    let refused = admin
        .send(Method::DELETE, "/admin/api/groups/team-a", None)
        .await;
    let (status, code, message) = error_of(refused).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "conflict"));
    assert!(message.contains("1 token(s) belong"), "{message}");
    admin
        .send(Method::PATCH, &path, Some(json!({"group": null})))
        .await;
    let gone = admin
        .send(Method::DELETE, "/admin/api/groups/team-a", None)
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);

    // Bad input names what is wrong; an unknown group or token is refused.
    for (body, words) in [
        (json!({"token_budget": "10/year"}), "TOKENS/PERIOD"),
        (json!({"cost_budget": "1.5"}), "USD/PERIOD"),
        (json!({"tpm": 0}), "tpm must be positive"),
        (json!({"group": "nobody"}), "no group named"),
        (json!({}), "name at least one"),
    ] {
        let (status, _, message) =
            error_of(admin.send(Method::PATCH, &path, Some(body)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert!(message.contains(words), "{message}");
    }
    let unknown = format!("/admin/api/tokens/{}/budgets", "ab".repeat(32));
    assert_eq!(admin.get(&unknown).await.status(), StatusCode::NOT_FOUND);
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_clear()
        .env("PTK_DB", &app.db_path)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_cli_sets_budgets_and_groups_and_shows_what_remains() {
    let app = spawn_app().await;
    let create = |extra: &[&str]| {
        let mut args = vec![
            "tokens",
            "create",
            "--label",
            "cli",
            "--providers",
            "openai",
            "--json",
        ];
        args.extend_from_slice(extra);
        cli(&app, &args)
    };
    // An unknown group refuses the token, and no token is left behind.
    let refused = create(&["--group", "team"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("no group named \"team\""));
    assert!(token_service::store::TokenStore::list(&app.store)
        .await
        .unwrap()
        .is_empty());

    let group = cli(
        &app,
        &["groups", "create", "team", "--cost-budget", "2.5/month"],
    );
    assert!(group.status.success(), "{}", text(&group.stderr));
    assert_eq!(text(&group.stdout).trim(), "created group team: $2.5/month");
    let made = create(&[
        "--group",
        "team",
        "--token-budget",
        "5000/day",
        "--tpm",
        "100",
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(text(&made.stderr).contains("budgets: 5000 tokens/day, 100 tpm; group team"));
    let hash = serde_json::from_slice::<Value>(&made.stdout).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let updated = cli(
        &app,
        &[
            "tokens",
            "update",
            &hash,
            "--no-tpm",
            "--token-budget",
            "10/week",
        ],
    );
    assert!(updated.status.success(), "{}", text(&updated.stderr));
    assert!(
        text(&updated.stdout).contains("budgets: 10 tokens/week; group team ($2.5/month)"),
        "{}",
        text(&updated.stdout)
    );
    let both = cli(&app, &["tokens", "update", &hash, "--tpm", "5", "--no-tpm"]);
    assert!(
        !both.status.success(),
        "--tpm and --no-tpm together are refused"
    );

    let deleting = cli(&app, &["groups", "delete", "team"]);
    assert!(!deleting.status.success());
    assert!(text(&deleting.stderr).contains("1 token(s) belong to group \"team\""));

    let usage = cli(&app, &["tokens", "usage", &hash]);
    let shown = text(&usage.stdout);
    assert!(
        shown.contains(
            "token tokens per week: 0 tokens of 10 tokens spent, 10 tokens remaining; resets "
        ),
        "{shown}"
    );
    assert!(
        shown.contains("group team cost per month: $0.000000 of $2.500000 spent"),
        "{shown}"
    );
    let listed = cli(&app, &["groups", "list"]);
    assert_eq!(text(&listed.stdout).trim(), "team\t1 tokens\t$2.5/month");

    let left = cli(&app, &["tokens", "update", &hash, "--no-group"]);
    assert!(
        text(&left.stdout).contains("; no group"),
        "{}",
        text(&left.stdout)
    );
    assert!(cli(&app, &["groups", "delete", "team"]).status.success());
}
