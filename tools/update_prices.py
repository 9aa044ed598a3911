#!/usr/bin/env python3
"""Refreshes the token-service's price table (token-service/prices/) from LiteLLM's bundled
price JSON (MIT; `litellm/model_prices_and_context_window_backup.json` inside the `litellm`
wheel on PyPI), keeping only what ptk meters: OpenAI, Anthropic and Gemini models priced per
token (chat, responses, embedding, realtime, completion).

    tools/update_prices.py                      # downloads the pinned wheel with pip
    tools/update_prices.py --version 1.111.0    # another release
    tools/update_prices.py --wheel path.whl     # offline, from a wheel you already have

Writes token-service/prices/prices.json (USD per million tokens, as LiteLLM's per-token
figures × 10^6) and token-service/prices/NOTICE (LiteLLM's licence, which MIT requires to be
kept with the data). The token-service compiles the table in; rebuild after an update.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "token-service/prices"
VERSION = "1.110.2"
DATA = "litellm/model_prices_and_context_window_backup.json"

#: LiteLLM's provider names → ours (the token-service's provider names).
PROVIDERS = {"openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic",
             "gemini": "gemini"}
#: Modes priced per token.
MODES = {"chat", "responses", "embedding", "realtime", "completion"}
#: LiteLLM field (USD per token) → ours (USD per million tokens).
FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_token_above_200k_tokens": "input_above_200k",
    "output_cost_per_token_above_200k_tokens": "output_above_200k",
    "cache_read_input_token_cost_above_200k_tokens": "cache_read_above_200k",
}
#: Limits kept as they are (budgets estimate a request's cost from `max_output_tokens`).
LIMITS = ("max_input_tokens", "max_output_tokens")


def per_million(usd_per_token: float) -> float:
    """USD per token → USD per million tokens, rounded to a micro-dollar (no float dust)."""
    return round(usd_per_token * 1_000_000, 6)


def subset(prices: dict) -> dict:
    """{provider: {model: {field: value}}} for the models ptk meters, sorted."""
    out: dict[str, dict[str, dict]] = {}
    for name, spec in prices.items():
        if not isinstance(spec, dict) or spec.get("mode") not in MODES:
            continue
        provider = PROVIDERS.get(spec.get("litellm_provider", ""))
        if provider is None or not isinstance(spec.get("input_cost_per_token"), (int, float)):
            continue
        model = name.removeprefix("gemini/")
        entry = {ours: per_million(spec[theirs]) for theirs, ours in FIELDS.items()
                 if isinstance(spec.get(theirs), (int, float))}
        entry.update({k: spec[k] for k in LIMITS if isinstance(spec.get(k), int)})
        out.setdefault(provider, {})[model] = entry
    return {p: dict(sorted(models.items())) for p, models in sorted(out.items())}


def read_wheel(wheel: Path) -> tuple[dict, str]:
    with zipfile.ZipFile(wheel) as z:
        licence = next(n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        return json.loads(z.read(DATA)), z.read(licence).decode()


def download(version: str, into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", f"litellm=={version}", "--no-deps",
                    "--only-binary", ":all:", "-d", str(into), "-q"], check=True)
    return next(into.glob("litellm-*.whl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=VERSION, help=f"litellm release (default {VERSION})")
    parser.add_argument("--wheel", type=Path, help="read this wheel instead of downloading")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT})")
    args = parser.parse_args()
    out = args.out
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download(args.version, Path(tmp))
        prices, licence = read_wheel(wheel)
    version = wheel.name.split("-")[1]
    table = {
        "source": f"litellm {version}, {DATA} (MIT, see NOTICE)",
        "unit": "USD per million tokens",
        "providers": subset(prices),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "prices.json").write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    (out / "NOTICE").write_text(
        f"token-service/prices/prices.json is derived from LiteLLM {version}'s "
        f"{DATA}\n(https://github.com/BerriAI/litellm), under the licence below.\n\n{licence}")
    count = sum(len(m) for m in table["providers"].values())
    print(f"wrote {out / 'prices.json'}: {count} models from litellm {version}")


if __name__ == "__main__":
    main()
