"""The module every end-to-end test loads is the pruned one `make wasm` builds: it exports the
callbacks the filter implements and none of the ones filter/unused-callbacks.txt drops, so
Envoy never enters the VM for trailers, log or done (tools/wasm-prune). The body callbacks
stay: provider errors about the operator's key and usage metering read response bodies, and a
streamed Chat Completions request body is asked for its usage."""

from __future__ import annotations

from .harness import ROOT, WASM, require_built


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def export_names(module: bytes) -> list[str]:
    """Names in a core module's export section (section id 7)."""
    assert module[:4] == b"\0asm", "not a wasm module"
    at, names = 8, []
    while at < len(module):
        section_id = module[at]
        size, body = _leb128(module, at + 1)
        if section_id == 7:
            count, pos = _leb128(module, body)
            for _ in range(count):
                length, pos = _leb128(module, pos)
                names.append(module[pos:pos + length].decode())
                _, pos = _leb128(module, pos + length + 1)  # kind byte, then index
        at = body + size
    return names


def dropped_names() -> list[str]:
    lines = (ROOT / "filter/unused-callbacks.txt").read_text().splitlines()
    return [line.split("#")[0].split()[0] for line in lines if line.split("#")[0].strip()]


def test_built_module_exports_only_the_callbacks_the_filter_implements():
    require_built()
    exports = set(export_names(WASM.read_bytes()))
    dropped = dropped_names()
    assert "proxy_on_log" in dropped
    assert "proxy_on_response_body" not in dropped and "proxy_on_request_body" not in dropped
    assert not exports & set(dropped), f"not pruned (run make wasm): {sorted(exports & set(dropped))}"
    for needed in ("proxy_on_request_headers", "proxy_on_request_body",
                   "proxy_on_request_trailers",
                   "proxy_on_response_headers", "proxy_on_response_body",
                   "proxy_on_http_call_response", "proxy_on_context_create", "proxy_on_delete",
                   "proxy_on_tick", "proxy_on_configure", "proxy_on_vm_start",
                   "proxy_on_memory_allocate", "memory"):
        assert needed in exports, needed
