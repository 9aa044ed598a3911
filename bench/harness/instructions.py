"""Instructions the filter core's metering executes, counted by callgrind on bench-metering-core
(native code; the filter runs the same Rust as wasm in V8): deterministic, so it shows a
metering change's cost even on a machine whose timings drift with other jobs. Skipped, with
the reason, when valgrind is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess

from .stack import RELEASE

#: case -> (what it is, how many units of that case one run covers, unit name)
CASES = {
    "json": ("non-streamed JSON call: request body (model, stream check) + response metered",
             1, "response"),
    "sse-request": ("streamed request body rewritten to ask for usage", 1, "stream"),
    "sse-response": ("stream metered and its usage chunk cut (the mock's 4 events)", 4,
                     "upstream event"),
}
REPEAT = 1000


def available() -> str | None:
    """None if callgrind can run, else why not."""
    if not shutil.which("valgrind"):
        return "valgrind not installed"
    if not (RELEASE / "bench-metering-core").exists():
        return "bench-metering-core not built (make bench builds it)"
    return None


def _collected(case: str, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         str(RELEASE / "bench-metering-core"), case, str(n)],
        capture_output=True, text=True, timeout=300, check=True)
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if not m:
        raise RuntimeError(f"callgrind printed no total:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def count(log) -> dict[str, float]:
    """Instructions per run of each case: (total for REPEAT runs - total for none) / REPEAT."""
    got = {}
    for case in CASES:
        got[case] = (_collected(case, REPEAT) - _collected(case, 0)) / REPEAT
        log(f"  {case:12s} {got[case]:10,.0f} instructions")
    return got


def markdown(got: dict[str, float]) -> str:
    lines = [f"Metering core, instructions counted natively by callgrind ({REPEAT:,} runs minus "
             "the program's fixed cost; the host calls that hand the bytes to the VM not "
             "included):", "", "| work | instructions | per unit |", "|---|---:|---:|"]
    for case, (what, units, unit) in CASES.items():
        n = got[case]
        lines.append(f"| {what} | {n:,.0f} | {n / units:,.0f} / {unit} |")
    return "\n".join(lines) + "\n"
