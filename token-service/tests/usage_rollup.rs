//! Usage reports → daily rows → per-model totals (src/usage/rollup.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ptk_wire::{TokenUsage, UsageApi, UsageEntry};
use token_service::pricing::PriceTable;
use token_service::usage::{per_day, per_model, rollup};

const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn entry(
    model: &str,
    api: UsageApi,
    status: u16,
    requests: u64,
    input: u64,
    output: u64,
) -> UsageEntry {
    UsageEntry {
        hash: H.into(),
        provider: "openai".into(),
        api,
        model: model.into(),
        status,
        streamed: status == 200,
        long_context: false,
        requests,
        incomplete: 0,
        usage: TokenUsage {
            input,
            output,
            ..TokenUsage::default()
        },
        shortfall_tokens: 0,
    }
}

#[test]
fn entries_that_share_a_row_are_merged_and_priced_once_each() {
    let prices = PriceTable::bundled();
    // Same token, day, provider, model and API, different status and streaming: one row.
    let entries = [
        entry("gpt-4o", UsageApi::ChatCompletions, 200, 2, 1000, 100),
        entry("gpt-4o", UsageApi::ChatCompletions, 201, 1, 1000, 100),
        entry("gpt-4o", UsageApi::Responses, 200, 1, 10, 1),
        entry("my-finetune", UsageApi::ChatCompletions, 200, 3, 5, 5),
    ];
    let rows = rollup(&entries, "2026-11-29", prices);
    assert_eq!(rows.len(), 3);
    let chat = rows
        .iter()
        .find(|r| r.key.model == "gpt-4o" && r.key.api == "chat_completions")
        .unwrap();
    assert_eq!(
        (
            chat.counts.requests,
            chat.counts.usage.input,
            chat.counts.usage.output
        ),
        (3, 2000, 200)
    );
    // gpt-4o: 2000 × 2.5 + 200 × 10 USD per million = 0.007 USD.
    assert_eq!(chat.counts.cost_nano_usd, 7_000_000);
    assert_eq!(chat.counts.unpriced_requests, 0);
    let unknown = rows.iter().find(|r| r.key.model == "my-finetune").unwrap();
    assert_eq!(
        (
            unknown.counts.cost_nano_usd,
            unknown.counts.unpriced_requests
        ),
        (0, 3)
    );
    assert!(rows
        .iter()
        .all(|r| r.key.day == "2026-11-29" && r.key.hash == H));
}

#[test]
fn per_model_totals_sum_apis_and_days_and_put_the_costliest_first() {
    let prices = PriceTable::bundled();
    let mut rows = rollup(
        &[entry(
            "gpt-4o-mini",
            UsageApi::ChatCompletions,
            200,
            1,
            10,
            10,
        )],
        "2026-11-28",
        prices,
    );
    rows.extend(rollup(
        &[
            entry("gpt-4o", UsageApi::ChatCompletions, 200, 1, 1000, 100),
            entry("gpt-4o", UsageApi::Responses, 200, 1, 1000, 100),
            entry("gpt-4o-mini", UsageApi::ChatCompletions, 200, 1, 10, 10),
        ],
        "2026-11-29",
        prices,
    ));
    let totals = per_model(&rows);
    let names: Vec<&str> = totals.iter().map(|t| t.model.as_str()).collect();
    assert_eq!(names, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(
        (totals[0].counts.requests, totals[0].counts.usage.input),
        (2, 2000)
    );
    assert_eq!(
        (totals[1].counts.requests, totals[1].counts.usage.output),
        (2, 20)
    );
    let json = serde_json::to_value(&totals[0]).unwrap();
    assert_eq!(json["model"], "gpt-4o");
    assert_eq!(json["requests"], 2);
    assert_eq!(json["usage"]["input"], 2000);
}

#[test]
fn per_day_totals_sum_models_and_apis_newest_day_first() {
    let prices = PriceTable::bundled();
    let mut rows = rollup(
        &[entry(
            "gpt-4o",
            UsageApi::ChatCompletions,
            200,
            1,
            1000,
            100,
        )],
        "2026-11-28",
        prices,
    );
    rows.extend(rollup(
        &[
            entry("gpt-4o", UsageApi::Responses, 200, 1, 1000, 100),
            entry("gpt-4o-mini", UsageApi::ChatCompletions, 200, 1, 10, 10),
        ],
        "2026-11-29",
        prices,
    ));
    let days = per_day(&rows);
    let names: Vec<&str> = days.iter().map(|(day, _)| day.as_str()).collect();
    assert_eq!(names, ["2026-11-29", "2026-11-28"]);
    assert_eq!((days[0].1.requests, days[0].1.usage.input), (2, 1010));
    assert_eq!(days[0].1.usage.output, 110);
    assert_eq!(
        days[0].1.cost_nano_usd,
        rows[1].counts.cost_nano_usd + rows[2].counts.cost_nano_usd
    );
    assert_eq!(days[1].1.requests, 1);
}

#[test]
fn a_response_without_tokens_costs_nothing_even_without_a_price() {
    // A provider's error names no model and used no tokens: no cost, and no "unknown price".
    let rows = rollup(
        &[entry("", UsageApi::ChatCompletions, 500, 1, 0, 0)],
        "2026-11-29",
        PriceTable::bundled(),
    );
    assert_eq!(
        (
            rows[0].counts.cost_nano_usd,
            rows[0].counts.unpriced_requests
        ),
        (0, 0)
    );
}

/// Attack (issue 13): a metered call's error is recorded under the model its request named,
/// which a client chooses. A made-up name must not add a row per name (the store, the
/// dashboard's model table and the CSV export's row bound): only a priced model is kept.
#[test]
fn a_tokenless_response_keeps_only_a_model_the_price_table_knows() {
    let mut entries: Vec<UsageEntry> = (0..50)
        .map(|i| {
            entry(
                &format!("made-up-{i}"),
                UsageApi::ChatCompletions,
                404,
                1,
                0,
                0,
            )
        })
        .collect();
    entries.push(entry("gpt-4o", UsageApi::ChatCompletions, 500, 1, 0, 0));
    entries.push(entry(
        "<img src=x onerror=alert(1)>",
        UsageApi::ChatCompletions,
        400,
        1,
        0,
        0,
    ));
    // Tokens used: the provider's own name for its model, kept whatever it is.
    entries.push(entry(
        "my-finetune",
        UsageApi::ChatCompletions,
        200,
        1,
        5,
        5,
    ));
    let rows = rollup(&entries, "2026-11-29", PriceTable::bundled());
    let models: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r.key.model.as_str(), r.counts.requests))
        .collect();
    assert_eq!(models, [("", 51), ("gpt-4o", 1), ("my-finetune", 1)]);
}
