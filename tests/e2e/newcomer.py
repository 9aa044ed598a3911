"""Helpers for the tests that start `tools/run.sh` / `tools/demo.sh` as a new user would: each
on its own free ports and its own data folder, so they never meet another stack."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.harness import ROOT, free_port, require_built


def script_env(data: Path, **extra: str) -> dict[str, str]:
    """The environment of a run on free ports with its data under `data`, no real key."""
    require_built()
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_API_KEY") and not k.endswith("_UPSTREAM")
           and k not in ("PTK_KEYS_FILE", "ADMIN_SECRET", "PTK_CHECK_SECRET", "PTK_DB")}
    env.update({
        "PTK_DATA": str(data),
        "PTK_PROXY_PORT": str(free_port()),
        "PTK_PROXY_TLS_PORT": str(free_port()),
        "PTK_ENVOY_ADMIN_PORT": str(free_port()),
        "PTK_LISTEN": f"127.0.0.1:{free_port()}",
        "PTK_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
        "PTK_ENVOY_CONCURRENCY": "1",
    })
    env.update(extra)
    return env


def start(script: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Starts a script from the repository root in its own process group, output to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen([str(ROOT / script)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_for_line(proc: subprocess.Popen, log: Path, marker: str, timeout: float = 40) -> str:
    """Waits until `marker` appears in `log`; the whole log so far. Fails if the script exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if marker in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"script exited {proc.returncode} before {marker!r}:\n{text}")
        time.sleep(0.1)
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the script (its trap stops its children), then the whole group if needed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)
