//! Black-box tests of `POST /v1/revalidate`: the filter asks whether the tokens of its
//! still-open requests are still valid; no rate-limit unit is charged, no key is returned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ptk_wire::{
    CheckResponse, DenyReason, Provider, RevalidateEntry, RevalidateRequest, RevalidateResponse,
    Revalidation, CHECK_SECRET_HEADER, REVALIDATE_PATH,
};
use token_service::ratelimit::RateLimit;
use token_service::store::TokenStatus;

async fn revalidate(
    app: &TestApp,
    entries: &[(&str, Provider)],
    secret: &str,
) -> reqwest::Response {
    let body = RevalidateRequest {
        entries: entries
            .iter()
            .map(|(hash, provider)| RevalidateEntry {
                hash: (*hash).to_owned(),
                provider: *provider,
            })
            .collect(),
    };
    app.client
        .post(app.url(REVALIDATE_PATH))
        .header(CHECK_SECRET_HEADER, secret)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_token_gets_its_verdict_without_a_key_or_a_rate_limit_unit() {
    let app = spawn_app().await;
    let valid = app
        .add_token("ptk_revalidate_valid", &[Provider::Openai], |r| {
            r.rate_limit = Some(RateLimit {
                limit: 1,
                window_s: 60,
            });
        })
        .await;
    let disabled = app
        .add_token("ptk_revalidate_disabled", &[Provider::Openai], |r| {
            r.status = TokenStatus::Disabled;
        })
        .await;
    let unknown = "0".repeat(64);
    let asked = [
        (valid.as_str(), Provider::Openai),
        (valid.as_str(), Provider::Gemini),
        (disabled.as_str(), Provider::Openai),
        (unknown.as_str(), Provider::Anthropic),
    ];
    for _ in 0..5 {
        let response = revalidate(&app, &asked, SECRET).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(OPENAI_KEY),
            "a revalidation never carries a key"
        );
        let parsed: RevalidateResponse = serde_json::from_str(&text).unwrap();
        let refused = |hash: &str, provider, reason| Revalidation::Refused {
            hash: hash.to_owned(),
            provider,
            reason,
        };
        assert_eq!(parsed.verdicts.len(), 4);
        assert!(matches!(
            &parsed.verdicts[0],
            Revalidation::Valid { hash, provider: Provider::Openai, ttl_ms, .. } if *hash == valid && *ttl_ms > 0
        ));
        assert_eq!(
            parsed.verdicts[1..],
            [
                refused(&valid, Provider::Gemini, DenyReason::ProviderNotAllowed),
                refused(&disabled, Provider::Openai, DenyReason::Invalid),
                refused(&unknown, Provider::Anthropic, DenyReason::Invalid),
            ]
        );
    }
    // Five revalidations later, the token's one request per minute is still unspent.
    assert!(matches!(
        app.check(&valid, Provider::Openai).await,
        CheckResponse::Allow { .. }
    ));
}

#[tokio::test]
async fn the_secret_and_the_batch_are_checked() {
    let app = spawn_app().await;
    let hash = "a".repeat(64);
    assert_eq!(
        revalidate(&app, &[(&hash, Provider::Openai)], "wrong-secret-value")
            .await
            .status(),
        401
    );
    let bad = "A".repeat(64);
    assert_eq!(
        revalidate(&app, &[(&bad, Provider::Openai)], SECRET)
            .await
            .status(),
        400
    );
    let many: Vec<(&str, Provider)> = (0..=ptk_wire::MAX_REVALIDATE_ENTRIES)
        .map(|_| (hash.as_str(), Provider::Openai))
        .collect();
    assert_eq!(revalidate(&app, &many, SECRET).await.status(), 400);
}
