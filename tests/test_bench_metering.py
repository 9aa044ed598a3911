"""`make bench`'s metering scenarios (bench/harness/metering.py) without running the bench:
the metering-off scenario's Envoy config really turns metering off, the issue 13 targets are
judged on the paired ratio and the TTFE difference, CPU per SSE chunk divides by the events
the clients received, and the CPU clock is fine enough for a few streams' milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import envoy_configs, metering, procs  # noqa: E402
from harness.stack import METERING_OFF  # noqa: E402


def plugin_config(tmp_path: Path, plugin: dict | None) -> dict:
    cfg = envoy_configs.render(tmp_path, "t", mock="http://127.0.0.1:1", proxy_port=10000,
                               admin_port=10001, token_service="127.0.0.1:10002",
                               wasm=tmp_path / "ptk.wasm", deny_ttl_ms=1000, plugin=plugin)
    hcm = envoy_configs._hcm(cfg)
    ptk = next(f for f in hcm["http_filters"] if f["name"] == "ptk")
    return json.loads(ptk["typed_config"]["config"]["configuration"]["value"])


def test_the_metering_off_scenario_turns_metering_off_and_keeps_the_rest(tmp_path):
    on, off = plugin_config(tmp_path, None), plugin_config(tmp_path, METERING_OFF)
    assert on.get("metering", {}).get("enabled", True) is True
    assert off["metering"]["enabled"] is False
    off.pop("metering")
    on.pop("metering", None)
    assert off == on


class Target:
    error = None


def runs(rps_by_round: list[float], cpu_s_per_10k: float = 2.0) -> list[dict]:
    return [{"round": i + 1, "rps": rps, "p50_ms": 1.0, "errors": 0,
             "cpu_s_per_10k": cpu_s_per_10k} for i, rps in enumerate(rps_by_round)]


def sse(ttfe_us: list[int], cpu_s: float, events: int) -> dict:
    return {"sequential": {"ttfe_us": ttfe_us, "ttle_us": ttfe_us},
            "concurrent": {"ttfe_us": [], "ttle_us": []}, "errors": [], "events": events,
            "cpu_s": cpu_s}


def judge(on_rps, off_rps, on_ttfe_us, off_ttfe_us) -> dict[str, str]:
    m = metering.summarize(
        {"filter_warm": Target(), "filter_nometer": Target()},
        {"filter_warm": runs(on_rps), "filter_nometer": runs(off_rps)},
        {"filter_warm": sse([on_ttfe_us] * 4, 0.012, 12),
         "filter_nometer": sse([off_ttfe_us] * 4, 0.008, 12)})
    return {v["target"].split(" ")[0]: v["result"] for v in metering.verdicts(m)}


def test_the_targets_use_the_paired_ratio_and_the_ttfe_difference():
    # Round 3's metering-on run met a burst of other load: the median of per-round ratios
    # is 0.94 (pass); the ratio of the medians would be 800 / 1000 (FAIL).
    assert judge([800, 960, 500], [850, 1000, 1000], 900, 600) == {"metering": "pass",
                                                                  "SSE": "pass"}
    assert judge([850, 440], [1000, 520], 900, 300) == {"metering": "FAIL", "SSE": "FAIL"}


def test_cpu_per_request_and_per_sse_chunk():
    side = metering._side(runs([1000], cpu_s_per_10k=1.5), sse([700] * 4, 0.012, 12))
    assert side["cpu_us_per_request"] == 150.0
    assert side["events_per_stream"] == 3.0
    assert side["cpu_us_per_stream"] == 3000.0
    assert side["cpu_us_per_chunk"] == 1000.0


def test_the_report_table_has_both_sides_and_the_comparison():
    m = metering.summarize(
        {"filter_warm": Target(), "filter_nometer": Target()},
        {"filter_warm": runs([950]), "filter_nometer": runs([1000])},
        {"filter_warm": sse([900], 0.003, 3), "filter_nometer": sse([800], 0.002, 3)})
    table = "\n".join(metering.markdown(m))
    assert "| non-streamed JSON req/s | 950 | 1,000 | 0.950x |" in table
    assert "| CPU µs / SSE chunk received | 1000.0 | 666.7 | +333.3 |" in table


BURN = """
import sys, time
while time.process_time() < 0.215:
    pass
print(time.process_time(), flush=True)
time.sleep(30)
"""


def test_cpu_time_is_read_finer_than_clock_ticks():
    # A child burns CPU to an instant that is no multiple of a 10 ms tick, reports its own
    # CPU time, and waits to be read: /proc/PID/stat's ticks would be off by up to 10 ms.
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        own = float(child.stdout.readline())
        assert abs(procs.cpu_seconds([child.pid]) - own) < 0.002
    finally:
        child.kill()
        child.wait()
