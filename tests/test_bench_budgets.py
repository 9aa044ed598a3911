"""`make bench`'s budgeted scenarios (bench/harness/budgets.py) without running the bench: the
no-hold scenario's Envoy config really turns the body hold off and keeps the rest, the
budgeted scenarios' token is minted with a budget, the issue 14 target is judged on the
paired ratio, and the table splits the cost into the hold and the rest."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import budgets, stack  # noqa: E402
from tests.test_bench_metering import Target, plugin_config, runs  # noqa: E402


def test_the_no_hold_scenario_turns_the_body_hold_off_and_keeps_the_rest(tmp_path):
    on, off = plugin_config(tmp_path, None), plugin_config(tmp_path, stack.BODY_HOLD_OFF)
    assert on["limits"]["body_hold"] is True
    assert off["limits"]["body_hold"] is False
    off["limits"].pop("body_hold")
    on["limits"].pop("body_hold")
    assert off == on


def test_the_budgeted_token_is_minted_with_a_budget_no_round_can_spend(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(stack.subprocess, "run", lambda args, **kw: calls.append(args))
    s = stack.Stack(tmp_path, "envoy")
    s.mint(tmp_path / "a.sqlite3")
    s.mint(tmp_path / "b.sqlite3", stack.BUDGET)
    assert "--token-budget" not in calls[0]
    assert calls[1][calls[1].index("--token-budget") + 1] == stack.BUDGET
    # 10 rounds of 60 s at 100k req/s, each reserving 4,096 + its body: far from the limit.
    assert int(stack.BUDGET.split("/")[0]) > 10 * 60 * 100_000 * 5_000


def summary(budget_rps, unbudgeted_rps, nohold_rps=None) -> dict | None:
    targets = {budgets.BUDGETED: Target(), budgets.UNBUDGETED: Target()}
    got = {budgets.BUDGETED: runs(budget_rps), budgets.UNBUDGETED: runs(unbudgeted_rps)}
    if nohold_rps:
        targets[budgets.HOLD_OFF] = Target()
        got[budgets.HOLD_OFF] = runs(nohold_rps)
    return budgets.summarize(targets, got)


def verdict(budget_rps, unbudgeted_rps) -> str:
    (v,) = budgets.verdicts(summary(budget_rps, unbudgeted_rps))
    return v["result"]


def test_the_target_uses_the_paired_ratio():
    # Round 3's budgeted run met a burst of other load: the median of per-round ratios is
    # 0.94 (pass); the ratio of the medians would be 800 / 1000 (FAIL).
    assert verdict([800, 960, 500], [850, 1000, 1000]) == "pass"
    assert verdict([850, 440], [1000, 520]) == "FAIL"


def test_not_measured_gives_no_verdict():
    assert budgets.summarize({budgets.UNBUDGETED: Target()},
                             {budgets.UNBUDGETED: runs([1000])}) is None
    assert budgets.verdicts(None) == []


def test_the_table_splits_the_hold_from_the_rest_of_the_budget_path():
    table = "\n".join(budgets.markdown(summary([800], [1000], nohold_rps=[900])))
    assert "| JSON req/s | 800 | 900 | 1,000 |" in table
    assert "| budgeted / unbudgeted | 0.800x |" in table
    assert "(estimate + grant CAS + renewals) | 0.900x |" in table
    assert "(the body hold and buffering) | 0.889x |" in table
    without = "\n".join(budgets.markdown(summary([800], [1000])))
    assert "| JSON req/s | 800 | - | 1,000 |" in without


def test_the_token_services_part_of_the_cpu_and_the_callouts():
    r = runs([1000], cpu_s_per_10k=3.0)
    r[0].update(sidecar_cpu_s_per_10k=0.5, callouts_per_1k=210.0)
    side = budgets._side(r)
    assert (side["cpu_us_per_request"], side["sidecar_cpu_us_per_request"]) == (300.0, 50.0)
    assert side["callouts_per_1k"] == 210.0
