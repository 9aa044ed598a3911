"""The statistics every table uses: medians that skip missing values, nearest-rank quantiles
of µs samples, and per-round paired ratios (each round ran every target back to back, so
pairing cancels the drift of a shared machine)."""

from __future__ import annotations

import math
from statistics import median


def med(values) -> float | None:
    """Median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return median(values) if values else None


def quantile_ms(samples: list[int], q: float) -> float | None:
    """The `q` quantile of µs samples by nearest rank, in ms."""
    if not samples:
        return None
    s = sorted(samples)
    rank = min(len(s), max(1, math.ceil(q * len(s))))
    return s[rank - 1] / 1000.0


def paired_ratio(a: list[dict], b: list[dict], key: str = "rps") -> float | None:
    """Median over rounds of a[r][key] / b[r][key] (rounds of `a` with errors left out)."""
    by_round = {run["round"]: run[key] for run in b}
    ratios = [run[key] / by_round[run["round"]] for run in a
              if by_round.get(run["round"]) and run["errors"] == 0]
    return med(ratios)
