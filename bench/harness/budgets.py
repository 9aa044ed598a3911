"""Issue 14's budgeted scenarios: Envoy + ptk filter with the cache warm and the bench token
given a token budget (`filter_budget`) against the same stack with an unbudgeted token
(`filter_warm`), measured in the same rotated rounds as everything else, with JSON requests
(bench/lua/post.lua). A third variant, `filter_budget_nohold`, is the budgeted token with
`limits.body_hold` false: the filter does not mark the request for the Lua `ptk_body_hold`
filter, so nothing is buffered and the estimate is `content-length` plus the default output
cap. Splitting the cost:

- budgeted vs budgeted without the hold: what holding and buffering the body costs (the Lua
  filter's `request:body()`, the filter's body callback reading the output cap);
- budgeted without the hold vs unbudgeted: the rest of the budget path (the estimate, the
  compare-and-swap on the grant's shared-data entry, the grant renewals (callouts), the
  release in the activity report).

The budget is large (stack.BUDGET), so no round runs out and none needs a reset; the grants
are real (at most 200,000 tokens each), so the callouts per 1k requests show the renewals."""

from __future__ import annotations

from .stats import med, paired_ratio

BUDGETED, HOLD_OFF, UNBUDGETED = "filter_budget", "filter_budget_nohold", "filter_warm"
#: Issue 14's target: a budgeted token's cache-warm req/s within 0.9x of an unbudgeted one.
MIN_RATIO = 0.9


def _side(runs: list[dict]) -> dict:
    clean = [r for r in runs if r["errors"] == 0]
    per_10k = med(r["cpu_s_per_10k"] for r in clean)
    side_10k = med(r.get("sidecar_cpu_s_per_10k") for r in clean)
    return {"rps": med(r["rps"] for r in clean), "p50_ms": med(r["p50_ms"] for r in clean),
            "errors": sum(r["errors"] for r in runs),
            "cpu_us_per_request": per_10k * 100 if per_10k is not None else None,
            "sidecar_cpu_us_per_request": side_10k * 100 if side_10k is not None else None,
            "callouts_per_1k": med(r.get("callouts_per_1k") for r in clean)}


def summarize(targets: dict, runs: dict[str, list[dict]]) -> dict | None:
    """The sides and their paired ratios; None unless the budgeted and unbudgeted sides were
    measured (the no-hold side is optional)."""
    def measured(n: str) -> bool:
        return n in targets and not targets[n].error and bool(runs.get(n))

    if not (measured(BUDGETED) and measured(UNBUDGETED)):
        return None
    out = {"budgeted": _side(runs[BUDGETED]), "unbudgeted": _side(runs[UNBUDGETED]),
           "ratio": paired_ratio(runs[BUDGETED], runs[UNBUDGETED]),
           "nohold": None, "nohold_ratio": None, "hold_ratio": None}
    if measured(HOLD_OFF):
        out.update(nohold=_side(runs[HOLD_OFF]),
                   nohold_ratio=paired_ratio(runs[HOLD_OFF], runs[UNBUDGETED]),
                   hold_ratio=paired_ratio(runs[BUDGETED], runs[HOLD_OFF]))
    return out


def verdicts(m: dict | None) -> list[dict]:
    """Issue 14: a budgeted token's req/s (cache warm) >= 0.9x an unbudgeted one's."""
    if m is None:
        return []
    ratio = m["ratio"]
    return [{"target": f"budgeted token >= {MIN_RATIO}x unbudgeted req/s (cache warm, JSON)",
             "measured": f"{ratio:.3f}x" if ratio else "-",
             "result": "n/a" if ratio is None else ("pass" if ratio >= MIN_RATIO else "FAIL"),
             "note": ""}]


def _f(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


ROWS = [  # label, key, format
    ("JSON req/s", "rps", "{:,.0f}"),
    ("JSON p50 ms", "p50_ms", "{:.3f}"),
    ("CPU µs / request (Envoy + token-service)", "cpu_us_per_request", "{:.1f}"),
    ("of which token-service", "sidecar_cpu_us_per_request", "{:.1f}"),
    # Checks and activity reports; for a budgeted token mostly grant renewals (top-ups).
    ("callouts / 1k requests", "callouts_per_1k", "{:.2f}"),
]


def markdown(m: dict) -> list[str]:
    b, u, n = m["budgeted"], m["unbudgeted"], m["nohold"] or {}
    lines = ["Budgets (issue 14): Envoy + ptk filter, cache warm, the bench token with a token "
             "budget (body held for the estimate; and without the hold filter: "
             "`content-length` + the default output cap) vs without a budget, in the same "
             "rounds (ratios: median of the per-round paired ratios; errors: "
             f"{b['errors']} budgeted / {n.get('errors', '-')} no hold / {u['errors']} "
             "unbudgeted):", "",
             "| | budgeted | budgeted, no body hold | unbudgeted |", "|---|---:|---:|---:|"]
    for label, key, fmt in ROWS:
        lines.append(f"| {label} | {_f(b[key], fmt)} | {_f(n.get(key), fmt)} | "
                     f"{_f(u[key], fmt)} |")
    lines += ["", "| paired req/s ratio | |", "|---|---:|",
              f"| budgeted / unbudgeted | {_f(m['ratio'], '{:.3f}x')} |",
              f"| budgeted, no hold / unbudgeted (estimate + grant CAS + renewals) | "
              f"{_f(m['nohold_ratio'], '{:.3f}x')} |",
              f"| budgeted / budgeted, no hold (the body hold and buffering) | "
              f"{_f(m['hold_ratio'], '{:.3f}x')} |", ""]
    return lines
