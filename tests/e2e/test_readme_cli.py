"""Every CLI command the README shows runs as written: each ```sh block that calls
target/release/token-service is run by bash (-euo pipefail) from the repository root on a
temporary store, as a new user would paste it."""

from __future__ import annotations

import os
import re
import subprocess

from tests.e2e.harness import ROOT, SERVICE, require_built

CLI = "target/release/token-service"


def readme_cli_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if CLI in b]


def test_readme_has_cli_blocks():
    blocks = readme_cli_blocks()
    assert len(blocks) >= 2, "the CLI examples left the README (or stopped naming the binary)"
    every = "\n".join(blocks)
    for command in ("tokens create", "tokens list", "tokens disable", "tokens enable",
                    "tokens expire", "tokens update", "tokens delete", "--version"):
        assert command in every, command


def test_every_readme_cli_block_runs_as_written(tmp_path):
    require_built()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PTK_DATABASE_URL", "PTK_DB", "PTK_DATABASE_CA_FILE")}
    for n, block in enumerate(readme_cli_blocks()):
        env["PTK_DB"] = str(tmp_path / f"block{n}" / "ptk.sqlite3")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"block {n} failed:\n{block}\n{run.stdout}\n{run.stderr}"
        assert "error" not in run.stderr.lower(), f"block {n}:\n{run.stderr}"
    # The binary the README names is the one `make service` builds.
    assert SERVICE == ROOT / CLI
