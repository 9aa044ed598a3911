"""Runs each Node compat file (`node/*.test.mjs`, node's own test runner) against this run's
stack, one file at a time with a hard timeout. Tokens are minted here, through the real CLI, and
handed over in the environment together with the stack's addresses and the fake real keys; the
clients' environment carries no real provider key."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.compat import env
from tests.e2e.admin_client import AdminClient
from tests.e2e.harness import REAL_KEYS

NODE_DIR = Path(__file__).parent / "node"
FILES = sorted(p.name for p in NODE_DIR.glob("*.test.mjs"))
FILE_TIMEOUT_S = 90
PROVIDERS = ("openai", "anthropic", "gemini")


def tokens_env(stack) -> dict[str, str]:
    out = {"PROXY_TOKEN": stack.mint()["token"]}
    revoked = stack.mint()
    stack.cli("tokens", "disable", revoked["hash"])
    out["PROXY_TOKEN_REVOKED"] = revoked["token"]
    for p in PROVIDERS:
        others = ",".join(o for o in PROVIDERS if o != p)
        out[f"PROXY_TOKEN_NO_{p.upper()}"] = stack.mint(others)["token"]
        out[f"PROXY_TOKEN_RL_{p.upper()}"] = stack.mint(p, "--rate-limit", "1/60")["token"]
    return out


def test_node_files_exist():
    assert (NODE_DIR / "node_modules").is_dir(), "run `make compat-deps` (npm ci in tests/compat/node)"
    assert len(FILES) >= 10, FILES


@pytest.fixture(scope="module")
def admin_env(stack) -> dict[str, str]:
    """One admin API session for every file (the login is throttled, per address, as it must
    be): its cookie and CSRF token."""
    admin = AdminClient(stack.service_admin_url, stack.admin_secret)
    cookie = "; ".join(f"{c.name}={c.value}" for c in admin.http.cookies)
    return {"ADMIN_URL": stack.service_admin_url, "ADMIN_COOKIE": cookie, "ADMIN_CSRF": admin.csrf}


@pytest.mark.timeout(FILE_TIMEOUT_S + 30)
@pytest.mark.parametrize("name", FILES)
def test_node_file(stack, admin_env, name):
    run_env = env.client_env()
    run_env.update(tokens_env(stack))
    run_env.update(
        PROXY_URL=stack.url,
        PROXY_TLS_URL=stack.tls_url,
        PROXY_CA_FILE=str(stack.ca_cert),
        MOCK_URL=stack.mock_url,
        # Only for helpers.mjs's usage checks: fresh tokens, and what was recorded for them.
        **admin_env,
        REAL_OPENAI_KEY=REAL_KEYS["OPENAI_API_KEY"],
        REAL_ANTHROPIC_KEY=REAL_KEYS["ANTHROPIC_API_KEY"],
        REAL_GEMINI_KEY=REAL_KEYS["GEMINI_API_KEY"],
        NODE_NO_WARNINGS="1",
    )
    # Own process group: on timeout, node and the runner's per-file child die together.
    proc = subprocess.Popen(
        ["node", "--test", "--test-reporter=spec", "--test-timeout=30000", name],
        cwd=NODE_DIR, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=FILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{name} did not finish in {FILE_TIMEOUT_S}s:\n{out}\n{err}")
    finally:
        if proc.poll() is None:  # interrupted (pytest-timeout, Ctrl-C): leave nothing behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        pytest.fail(f"{name} failed ({proc.returncode}):\n{out}\n{err}")
    passed = re.search(r"^\S* ?pass (\d+)$", out, re.M)
    assert passed and int(passed.group(1)) > 0, f"{name} ran no test:\n{out}"
