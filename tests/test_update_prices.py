"""tools/update_prices.py on a wheel of our own making (offline): it keeps only the OpenAI,
Anthropic and Gemini models priced per token, converts USD per token to USD per million
tokens without float dust, strips LiteLLM's `gemini/` prefix and writes the licence notice;
and the committed table is in the format the token-service parses (token-service/tests/pricing.rs
parses the same file)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools/update_prices.py"

PRICES = {
    "sample_spec": {"input_cost_per_token": 0},
    "gpt-t": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06,
              "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
              "max_output_tokens": 16384, "supports_vision": True},
    "gemini/gemini-t": {"litellm_provider": "gemini", "mode": "chat",
                        "input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06,
                        "output_cost_per_reasoning_token": 3.5e-06,
                        "input_cost_per_token_above_200k_tokens": 6e-07},
    "gemini-t": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
                 "input_cost_per_token": 9.0, "output_cost_per_token": 9.0},
    "claude-t": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 3e-06,
                 "output_cost_per_token": 1.5e-05, "cache_creation_input_token_cost": 3.75e-06},
    "dall-t": {"litellm_provider": "openai", "mode": "image_generation",
               "input_cost_per_pixel": 1e-08},
    "emb-t": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08,
              "output_cost_per_token": 0.0},
}


def test_the_tool_keeps_what_ptk_meters_in_usd_per_million_tokens(tmp_path):
    wheel = tmp_path / "litellm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("litellm/model_prices_and_context_window_backup.json", json.dumps(PRICES))
        z.writestr("litellm-9.9.9.dist-info/licenses/LICENSE", "MIT License\n\nCopyright (c) Berri AI\n")
    out = tmp_path / "prices"
    done = subprocess.run([sys.executable, str(TOOL), "--wheel", str(wheel), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    assert "4 models from litellm 9.9.9" in done.stdout
    table = json.loads((out / "prices.json").read_text())
    assert table["source"].startswith("litellm 9.9.9")
    assert table["providers"] == {
        "anthropic": {"claude-t": {"input": 3.0, "output": 15.0, "cache_write": 3.75}},
        "gemini": {"gemini-t": {"input": 0.3, "output": 2.5, "reasoning": 3.5,
                                "input_above_200k": 0.6}},
        "openai": {"emb-t": {"input": 0.02, "output": 0.0},
                   "gpt-t": {"input": 2.5, "output": 10.0, "cache_read": 1.25,
                             "max_output_tokens": 16384}},
    }
    notice = (out / "NOTICE").read_text()
    assert "LiteLLM 9.9.9" in notice and "MIT License" in notice


def test_the_committed_table_names_its_source_and_ships_its_notice():
    table = json.loads((ROOT / "token-service/prices/prices.json").read_text())
    assert table["source"].startswith("litellm ") and table["unit"] == "USD per million tokens"
    assert set(table["providers"]) == {"openai", "anthropic", "gemini"}
    assert "MIT License" in (ROOT / "token-service/prices/NOTICE").read_text()
