//! The price table compiled into the service and what usage costs by it (src/pricing.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ptk_wire::TokenUsage;
use token_service::pricing::{format_usd, Cost, PriceTable};

fn usage(
    input: u64,
    cached_input: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
) -> TokenUsage {
    TokenUsage {
        input,
        cached_input,
        cache_write,
        output,
        reasoning,
    }
}

fn nano(cost: Cost) -> (u64, String) {
    match cost {
        Cost::Known {
            nano_usd,
            priced_as,
        } => (nano_usd, priced_as),
        Cost::UnknownPrice => panic!("unknown price"),
    }
}

#[test]
fn the_bundled_table_parses_and_prices_every_provider() {
    let table = PriceTable::parse(include_str!("../prices/prices.json")).unwrap();
    assert!(table.len() > 100, "{}", table.len());
    assert_eq!(PriceTable::bundled().len(), table.len());
    assert!(table.source().starts_with("litellm "));
    for provider in ["openai", "anthropic", "gemini"] {
        assert!(
            table
                .lookup(
                    provider,
                    match provider {
                        "openai" => "gpt-4o",
                        "anthropic" => "claude-sonnet-4-5",
                        _ => "gemini-2.5-flash",
                    }
                )
                .is_some(),
            "{provider}"
        );
    }
    // The licence the data came under ships with it.
    assert!(include_str!("../prices/NOTICE").contains("MIT License"));
}

#[test]
fn openai_input_includes_cached_tokens_priced_at_the_cache_read_price() {
    // gpt-4o: input 2.5, cache read 1.25, output 10 USD per million tokens.
    let table = PriceTable::bundled();
    let (cost, name) = nano(table.cost("openai", "gpt-4o", &usage(1200, 1024, 0, 300, 0), false));
    // 176 × 2.5 + 1024 × 1.25 + 300 × 10 = 4,720 µUSD... per million: 0.00472 USD.
    assert_eq!(cost, 4_720_000);
    assert_eq!(name, "gpt-4o");
    assert_eq!(format_usd(cost), "0.004720");
}

#[test]
fn anthropic_cache_writes_and_reads_and_gemini_thoughts_use_their_own_prices() {
    let table = PriceTable::parse(
        r#"{"source":"test","providers":{
        "anthropic":{"claude-t":{"input":3,"output":15,"cache_read":0.3,"cache_write":3.75}},
        "gemini":{"gemini-t":{"input":0.3,"output":2.5,"reasoning":3.5,"cache_read":0.03,
                              "input_above_200k":0.6,"output_above_200k":5}}}}"#,
    )
    .unwrap();
    // 25 uncached × 3 + 2048 × 0.3 + 100 × 3.75 + 180 × 15 (thinking priced as output).
    let (cost, _) = nano(table.cost(
        "anthropic",
        "claude-t",
        &usage(2173, 2048, 100, 180, 120),
        false,
    ));
    assert_eq!(cost, 75_000 + 614_400 + 375_000 + 2_700_000);
    // 12 × 0.3 + 2 × 2.5 + 40 × 3.5 (reasoning has its own price here).
    let (cost, _) = nano(table.cost("gemini", "gemini-t", &usage(12, 0, 0, 42, 40), false));
    assert_eq!(cost, 3_600 + 5_000 + 140_000);
    // Above 200k input tokens the long-context prices apply to the whole request.
    let (cost, _) = nano(table.cost("gemini", "gemini-t", &usage(200_001, 0, 0, 10, 0), true));
    assert_eq!(cost, 200_001 * 600 + 10 * 5_000);
    // A sum of responses is priced by the tier the filter kept them in, not by the sum's size.
    let two_short = usage(300_000, 0, 0, 10, 0);
    let (cost, _) = nano(table.cost("gemini", "gemini-t", &two_short, false));
    assert_eq!(
        cost,
        300_000 * 300 + 10 * 2_500,
        "two 150k responses stay at the base tier"
    );
    let (cost, _) = nano(table.cost("gemini", "gemini-t", &usage(100, 0, 0, 10, 0), true));
    assert_eq!(cost, 100 * 600 + 10 * 5_000);
}

#[test]
fn names_with_a_date_suffix_a_models_prefix_or_capitals_find_their_model() {
    let table = PriceTable::bundled();
    for (provider, reported, priced_as) in [
        ("openai", "gpt-4o-2099-01-01", "gpt-4o"),
        ("openai", "GPT-4o", "gpt-4o"),
        (
            "anthropic",
            "claude-sonnet-4-5-20991231",
            "claude-sonnet-4-5",
        ),
        ("gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        // An exact dated entry wins over the stripped name.
        ("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    ] {
        let (_, name) = nano(table.cost(provider, reported, &usage(1, 0, 0, 1, 0), false));
        assert_eq!(name, priced_as, "{reported}");
    }
}

#[test]
fn an_unknown_model_or_provider_has_an_unknown_price() {
    let table = PriceTable::bundled();
    let some = usage(10, 0, 0, 10, 0);
    assert_eq!(
        table.cost("openai", "ft:gpt-x:org::abc", &some, false),
        Cost::UnknownPrice
    );
    assert_eq!(table.cost("openai", "", &some, false), Cost::UnknownPrice);
    assert_eq!(
        table.cost("selfhosted", "gpt-4o", &some, false),
        Cost::UnknownPrice
    );
    // A date-like tail that is not a date is not stripped.
    assert_eq!(
        table.cost("openai", "gpt-4o-12345678x", &some, false),
        Cost::UnknownPrice
    );
}

#[test]
fn absurd_counts_saturate_and_bad_prices_are_refused() {
    let table = PriceTable::bundled();
    let max = usage(u64::MAX, 0, 0, u64::MAX, 0);
    assert_eq!(
        nano(table.cost("openai", "gpt-4o", &max, false)).0,
        u64::MAX
    );
    // Counts that contradict each other (more cached than input) never underflow.
    let odd = usage(10, 50, 50, 5, 9);
    let _ = nano(table.cost("openai", "gpt-4o", &odd, false));
    for bad in [
        r#"{"input":-1,"output":1}"#,
        r#"{"input":1,"output":1e300}"#,
    ] {
        let json = format!(r#"{{"source":"t","providers":{{"openai":{{"m":{bad}}}}}}}"#);
        assert!(PriceTable::parse(&json).is_err(), "{bad}");
    }
}
