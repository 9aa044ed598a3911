"""Two token-service replicas behind one Envoy; one is killed (-9) under load.

Both replicas serve the same SQLite file (WAL) and are the two endpoints of the check
cluster. The filter's verdict cache is off, so every request is a check. What keeps clients
from seeing the death: the filter sends a check that got no verdict once more
(`token_service.retries`), and the cluster (envoy.yaml) ejects the replica at its first
connect failure or reset (outlier detection) and keeps it out with the /healthz check, so the
retry lands on the live replica.

The documented window (README, "Caching, rate-limit leases, revocation latency"): a client can
see a 503 only in the first WINDOW_S after the death, and only when both its check and the
retry of that check reached the dead replica before Envoy's worker saw it ejected, which takes
other checks racing it for the worker's round-robin pick (measured with 6 clients: 0 or 1 per
kill, 5 to 15 ms after it). A lone client never sees one: its retry is the worker's next pick,
the other replica. Outside the window, before the kill and through the 10 s ejection and past
it (when only the health check keeps the dead replica out), no request may fail.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.deploy.load import Load

SETTINGS = dict(replicas=2, filter_cache=False, cache_ttl_ms=0, timeout_ms=1000,
                rate_limit="1000000/60")
#: Load before the kill, and after it (past base_ejection_time, 10 s).
BEFORE_S, AFTER_S = 2.0, 12.5
#: The only time after the death when a client may see a 503.
WINDOW_S = 0.5
#: At most this many 503s in the window (checks whose retry also met the dead replica).
MAX_IN_WINDOW = 2


def cluster_stat(stack, name: str) -> int:
    stats = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats",
                         params={"filter": f"^cluster\\.token_service\\.{name}$"}, timeout=5)
    return int(stats.text.split(":")[-1].strip() or 0)


def filter_counter(stack, name: str) -> int:
    stats = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats",
                         params={"filter": f"wasmcustom\\.ptk\\.{name}$"}, timeout=5)
    return sum(int(line.split(":")[-1]) for line in stats.text.splitlines() if ":" in line)


def wait_healthy(stack, replicas: int = 2) -> None:
    """Until the health check has seen every replica answer: Envoy's first check runs while
    it is still loading the filter's VM and can time out (then the next one, 1 s later, counts;
    until then the cluster has no healthy host and Envoy's panic mode spreads checks over all,
    the dead one included)."""
    deadline = time.monotonic() + 15
    while cluster_stat(stack, "membership_healthy") < replicas:
        assert time.monotonic() < deadline, "replicas never passed the health check"
        time.sleep(0.1)


def run_kill(stack, after_s: float, threads: int = 6) -> Load:
    """Load through Envoy, replica 2 killed -9 after BEFORE_S, load for `after_s` more."""
    token = stack.mint("openai")["token"]
    wait_healthy(stack)
    load = Load(stack.url, token, threads=threads).start()
    try:
        time.sleep(BEFORE_S)
        # Taken before the kill: the first failures can come back before kill() returns.
        load.killed_at = load.elapsed()
        stack.kill_replica(2)
        time.sleep(after_s)
    finally:
        load.stop()
    return load


def report(stack, load: Load, label: str) -> str:
    before = sum(1 for t, _ in load.results if t < load.killed_at)
    offsets = [round((t - load.killed_at) * 1000) for t, _ in load.failures()]
    return (f"\n{label}: {len(load.results)} requests ({before} before the kill), statuses "
            f"{dict(load.counts())}, failures at +{offsets} ms, retried checks "
            f"{filter_counter(stack, 'callout_retried')}, ejections "
            f"{cluster_stat(stack, 'outlier_detection.ejections_enforced_total')}")


def test_one_replica_dies_under_load_and_no_client_sees_it(make_stack):
    stack = make_stack(**SETTINGS)
    load = run_kill(stack, AFTER_S)
    print(report(stack, load, "failover"))
    after = [t for t, _ in load.results if t >= load.killed_at]
    assert len(load.results) - len(after) > 50 and len(after) > 300, load.counts()
    outside = [(t, s) for t, s in load.failures()
               if not load.killed_at <= t <= load.killed_at + WINDOW_S]
    assert outside == [], outside[:20]
    assert len(load.failures()) <= MAX_IN_WINDOW, load.failures()
    # The death was seen (ejection) and checks that met it were sent again.
    assert cluster_stat(stack, "outlier_detection.ejections_enforced_total") >= 1
    assert filter_counter(stack, "callout_retried") >= 1
    # Past the ejection (10 s), the health check alone keeps the dead replica out.
    assert [t for t in after if t > load.killed_at + 10.5], "load did not outlast the ejection"


@pytest.mark.parametrize("retries", [1, 0])
def test_a_lone_client_never_sees_the_death_unless_the_retry_is_off(make_stack, retries):
    # One client: nothing races a retry for the round-robin pick, so the retry of the check
    # that first meets the dead replica (the one whose failure ejects it) goes to the live one.
    # With `token_service.retries: 0` (the mutation, kept as a test) that check fails.
    stack = make_stack(**SETTINGS, plugin_config={"token_service": {"retries": retries}})
    load = run_kill(stack, 1.5, threads=1)
    print(report(stack, load, f"lone client, retries {retries}"))
    if retries:
        assert load.failures() == [], load.failures()
        assert filter_counter(stack, "callout_retried") >= 1
    else:
        assert filter_counter(stack, "callout_retried") == 0
        assert {s for _, s in load.failures()} == {503}, load.counts()
