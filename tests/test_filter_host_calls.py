"""The filter's shim makes its proxy-wasm host calls through `filter/src/abi.rs`, which returns
every status, and never through the SDK's wrappers (`proxy_wasm::hostcalls::*` and the trait
helpers built on them), which panic on any status they do not expect: a panic traps the VM
and Envoy fails every later request of that worker. The one exception is
`dispatch_http_call`, whose callout token the SDK must register to route the answer (Envoy
returns only the statuses it expects there). The shim's own code is panic-free by its lints."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM = sorted((ROOT / "filter/src").glob("*.rs"))


def code(path: Path) -> str:
    """The file without comments (a doc may name what it avoids)."""
    return re.sub(r"//[^\n]*", "", path.read_text())


def test_the_shim_calls_no_sdk_host_call_but_dispatch():
    assert len(SHIM) >= 4, SHIM
    for path in SHIM:
        for call in re.findall(r"hostcalls::(\w+)", code(path)):
            assert call == "dispatch_http_call", f"{path.name}: hostcalls::{call}"


def test_the_shim_calls_no_sdk_trait_helper():
    # The contexts hand everything to the core (`self.0`); a helper such as
    # `self.set_http_request_header(..)` or `self.get_shared_data(..)` is an SDK wrapper.
    for path in SHIM:
        for helper in re.findall(r"\bself\.(?!0\b)([a-z_]+)\s*\(", code(path)):
            raise AssertionError(f"{path.name}: self.{helper}(..)")


def test_every_host_function_the_abi_declares_returns_its_status():
    abi = code(ROOT / "filter/src/abi.rs")
    block = abi[abi.index('extern "C" {'):]
    block = block[:block.index("\n}\n")]
    declared = re.findall(r"fn (proxy_\w+)\(([^;]*?)\)\s*->\s*(\w+);", block, re.S)
    assert len(declared) >= 20, declared
    for name, _, returned in declared:
        assert returned == "Status", (name, returned)
