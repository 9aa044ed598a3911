"""Every response shape the mock upstream produces lives in this module.

Non-streaming bodies are plain dicts (serialised by the server); streaming
bodies are lists of already-encoded SSE events (``bytes``), one element per
event, so the server can write (and flush) them one at a time and hold
between the first and the rest.

Shapes follow the real providers closely enough for the official SDKs and the
common wrappers (LangChain, LiteLLM, Vercel AI SDK, LlamaIndex, instructor,
pydantic-ai, genkit) to parse them:

* OpenAI Chat Completions (``chat.completion`` / ``chat.completion.chunk``)
* OpenAI Responses API (``response`` object and ``response.*`` events)
* OpenAI embeddings (float or base64 encoding) and model list
* Anthropic Messages (``message`` and the ``message_start`` .. ``message_stop``
  event sequence), count_tokens, model list
* Gemini generateContent / streamGenerateContent, embedContent,
  batchEmbedContents, countTokens, model list / model get
* provider-shaped error bodies

Text replies are ``"hi"``. When a request *forces* a tool call (OpenAI
``tool_choice: "required"`` or a named function, Anthropic ``tool_choice``
``any``/``tool``, Gemini ``functionCallingConfig.mode: ANY``) the reply is a
tool call whose arguments are generated from the tool's JSON schema; when a
request asks for JSON-schema structured output the text is a JSON document
generated from that schema. This keeps structured-output libraries
(instructor, pydantic-ai, ``with_structured_output``) working.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

TEXT = "hi"
INPUT_TOKENS = 5
OUTPUT_TOKENS = 1
# Every usage object carries each field its provider defines, with distinct non-zero numbers, so
# a meter (or an SDK) that swaps two fields or drops one gets a different total.
#: Of the prompt, read from the provider's cache (OpenAI and Gemini count them in the prompt).
CACHED_TOKENS = 2
#: Anthropic only: written to the cache (its `input_tokens` counts neither reads nor writes).
CACHE_WRITE_TOKENS = 7
#: Reasoning ("thinking") tokens: OpenAI counts them in the output, Gemini apart from it.
REASONING_TOKENS = 3

DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}

_counter = itertools.count(1)


def _uid(prefix: str) -> str:
    return f"{prefix}mock{next(_counter):06d}{int(time.time() * 1000) % 10**8:08d}"


def _now() -> int:
    return int(time.time())


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE event. ``data`` is JSON-encoded unless it is already a str."""
    payload = data if isinstance(data, str) else _dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# --------------------------------------------------------------------------
# Reply planning: plain text, JSON structured output, or a forced tool call.
# --------------------------------------------------------------------------


@dataclass
class Reply:
    kind: str = "text"  # "text" | "tool"
    text: str = TEXT
    tool_name: str = ""
    tool_args: dict[str, Any] = field(default_factory=dict)
    # OpenAI chat: a *named* forced function returns finish_reason "stop".
    named_choice: bool = False

    @property
    def args_json(self) -> str:
        return _dumps(self.tool_args)

    @property
    def output_tokens(self) -> int:
        if self.kind == "tool":
            return max(1, len(self.args_json) // 4)
        return max(OUTPUT_TOKENS, len(self.text) // 4)


def _get(d: Any, *names: str) -> Any:
    if not isinstance(d, dict):
        return None
    for n in names:
        if n in d:
            return d[n]
    return None


def example_from_schema(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A small value that validates against ``schema`` (JSON Schema or the
    Gemini OpenAPI subset with upper-case type names)."""
    if root is None:
        root = schema
    if depth > 12 or not isinstance(schema, dict):
        return TEXT
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        return example_from_schema(node, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        opts = schema.get(key)
        if isinstance(opts, list) and opts:
            non_null = [o for o in opts if not (isinstance(o, dict) and str(o.get("type", "")).lower() == "null")]
            return example_from_schema((non_null or opts)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            val = example_from_schema(part, root, depth + 1)
            if isinstance(val, dict):
                merged.update(val)
            else:
                return val
        return merged
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if str(t).lower() != "null"), "null")
    typ = str(typ).lower() if typ is not None else None
    if typ is None:
        if "properties" in schema:
            typ = "object"
        elif "items" in schema:
            typ = "array"
        else:
            typ = "string"
    if typ == "object":
        props = schema.get("properties") or {}
        return {k: example_from_schema(v, root, depth + 1) for k, v in props.items()}
    if typ == "array":
        n = max(1, int(schema.get("minItems") or 1))
        return [example_from_schema(schema.get("items") or {}, root, depth + 1) for _ in range(n)]
    if typ == "integer":
        lo = schema.get("minimum")
        return int(lo) if isinstance(lo, (int, float)) and lo > 1 else 1
    if typ == "number":
        lo = schema.get("minimum")
        return float(lo) if isinstance(lo, (int, float)) and lo > 1 else 1.0
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    if fmt == "email":
        return "hi@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/"
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and min_len > len(TEXT):
        return TEXT + "i" * (min_len - len(TEXT))
    return TEXT


def _json_reply(schema: Any) -> Reply:
    value = example_from_schema(schema) if isinstance(schema, dict) else {}
    return Reply(kind="text", text=_dumps(value))


def _pick_tool(tools: list[tuple[str, Any]], name: str | None) -> tuple[str, Any] | None:
    if not tools:
        return None
    if name:
        for t in tools:
            if t[0] == name:
                return t
        return (name, {})
    for t in tools:  # pydantic-ai's output tool
        if t[0].startswith("final_result"):
            return t
    return tools[0]


def plan_reply(kind: str, body: Any) -> Reply:
    """Decide what the assistant "says" for a request body of the given kind
    (``openai_chat`` | ``openai_responses`` | ``anthropic`` | ``gemini``)."""
    if not isinstance(body, dict):
        return Reply()
    if kind == "openai_chat":
        tools = [
            (t["function"].get("name", ""), t["function"].get("parameters") or {})
            for t in body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        tools += [
            (f.get("name", ""), f.get("parameters") or {}) for f in body.get("functions") or [] if isinstance(f, dict)
        ]
        choice = body.get("tool_choice", body.get("function_call"))
        forced_name = None
        forced = False
        if choice == "required":
            forced = True
        elif isinstance(choice, dict):
            fn = choice.get("function") if isinstance(choice.get("function"), dict) else choice
            forced_name = fn.get("name")
            forced = bool(forced_name)
        if forced:
            picked = _pick_tool(tools, forced_name)
            if picked:
                return Reply(
                    kind="tool",
                    tool_name=picked[0],
                    tool_args=example_from_schema(picked[1]) or {},
                    named_choice=forced_name is not None,
                )
        rf = body.get("response_format")
        if isinstance(rf, dict):
            if rf.get("type") == "json_schema":
                return _json_reply((rf.get("json_schema") or {}).get("schema"))
            if rf.get("type") == "json_object":
                return Reply(text="{}")
        return Reply()
    if kind == "openai_responses":
        tools = [
            (t.get("name", ""), t.get("parameters") or {})
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        forced_name = choice.get("name") if isinstance(choice, dict) else None
        if choice == "required" or forced_name:
            picked = _pick_tool(tools, forced_name)
            if picked:
                return Reply(kind="tool", tool_name=picked[0], tool_args=example_from_schema(picked[1]) or {})
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if isinstance(fmt, dict):
            if fmt.get("type") == "json_schema":
                return _json_reply(fmt.get("schema"))
            if fmt.get("type") == "json_object":
                return Reply(text="{}")
        return Reply()
    if kind == "anthropic":
        tools = [
            (t.get("name", ""), t.get("input_schema") or {})
            for t in body.get("tools") or []
            if isinstance(t, dict) and "input_schema" in t
        ]
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            picked = _pick_tool(tools, choice.get("name") if choice.get("type") == "tool" else None)
            if picked:
                return Reply(kind="tool", tool_name=picked[0], tool_args=example_from_schema(picked[1]) or {})
        fmt = body.get("output_format") or _get(body.get("output_config"), "format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return _json_reply(fmt.get("schema"))
        return Reply()
    if kind == "gemini":
        decls: list[tuple[str, Any]] = []
        for t in body.get("tools") or []:
            for d in _get(t, "functionDeclarations", "function_declarations") or []:
                if isinstance(d, dict):
                    params = _get(d, "parametersJsonSchema", "parameters_json_schema", "parameters") or {}
                    decls.append((d.get("name", ""), params))
        fcc = _get(_get(body, "toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config")
        mode = str(_get(fcc, "mode") or "").upper()
        if mode == "ANY":
            allowed = _get(fcc, "allowedFunctionNames", "allowed_function_names") or []
            picked = _pick_tool(decls, allowed[0] if allowed else None)
            if picked:
                return Reply(kind="tool", tool_name=picked[0], tool_args=example_from_schema(picked[1]) or {})
        gc = _get(body, "generationConfig", "generation_config") or {}
        if str(_get(gc, "responseMimeType", "response_mime_type") or "").lower() == "application/json":
            schema = _get(
                gc,
                "responseJsonSchema",
                "response_json_schema",
                "_responseJsonSchema",
                "responseSchema",
                "response_schema",
            )
            return _json_reply(schema) if schema else Reply(text="{}")
        return Reply()
    return Reply()


# --------------------------------------------------------------------------
# OpenAI Chat Completions
# --------------------------------------------------------------------------


def _openai_usage(reply: Reply) -> dict[str, Any]:
    out = reply.output_tokens + REASONING_TOKENS
    return {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": out,
        "total_tokens": INPUT_TOKENS + out,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_finish_reason(reply: Reply) -> str:
    if reply.kind == "tool" and not reply.named_choice:
        return "tool_calls"
    return "stop"


def openai_chat_completion(model: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.kind == "tool":
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": _uid("call_"),
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.args_json},
            }
        ]
    return {
        "id": _uid("chatcmpl-"),
        "object": "chat.completion",
        "created": _now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish_reason(reply)}],
        "usage": _openai_usage(reply),
        "service_tier": "default",
        "system_fingerprint": "fp_mock",
    }


def openai_chat_stream(model: str, reply: Reply, include_usage: bool = False) -> list[bytes]:
    cid, created = _uid("chatcmpl-"), _now()

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            c["usage"] = None
        return c

    if reply.kind == "tool":
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": _uid("call_"),
                    "type": "function",
                    "function": {"name": reply.tool_name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        middle = {"tool_calls": [{"index": 0, "function": {"arguments": reply.args_json}}]}
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        middle = {"content": reply.text}
    chunks = [chunk(first, None), chunk(middle, None), chunk({}, _chat_finish_reason(reply))]
    if include_usage:
        chunks.append(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": _openai_usage(reply),
            }
        )
    return [sse(c) for c in chunks] + [sse("[DONE]")]


# --------------------------------------------------------------------------
# OpenAI Responses API
# --------------------------------------------------------------------------


def _responses_usage(reply: Reply) -> dict[str, Any]:
    out = reply.output_tokens + REASONING_TOKENS
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + out,
    }


def _responses_item(reply: Reply, item_id: str, call_id: str, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if reply.kind == "tool":
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": reply.args_json if done else "",
            "call_id": call_id,
            "name": reply.tool_name,
        }
    content = [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}] if done else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _responses_object(model: str, body: dict[str, Any], reply: Reply, resp_id: str, created: int,
                      output: list[dict[str, Any]], done: bool) -> dict[str, Any]:
    text_cfg = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text_cfg,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _responses_usage(reply) if done else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def openai_response(model: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    item_id = _uid("fc_" if reply.kind == "tool" else "msg_")
    item = _responses_item(reply, item_id, _uid("call_"), done=True)
    return _responses_object(model, body, reply, _uid("resp_"), _now(), [item], done=True)


def openai_responses_stream(model: str, body: dict[str, Any], reply: Reply) -> list[bytes]:
    resp_id, created = _uid("resp_"), _now()
    item_id = _uid("fc_" if reply.kind == "tool" else "msg_")
    call_id = _uid("call_")
    seq = itertools.count(0)
    events: list[bytes] = []

    def ev(type_: str, **fields: Any) -> None:
        events.append(sse({"type": type_, "sequence_number": next(seq), **fields}, event=type_))

    pending = _responses_object(model, body, reply, resp_id, created, [], done=False)
    ev("response.created", response=pending)
    ev("response.in_progress", response=pending)
    ev("response.output_item.added", output_index=0, item=_responses_item(reply, item_id, call_id, done=False))
    if reply.kind == "tool":
        ev("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=reply.args_json)
        ev("response.function_call_arguments.done", item_id=item_id, output_index=0, name=reply.tool_name,
           arguments=reply.args_json)
    else:
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        ev("response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part)
        ev("response.output_text.delta", item_id=item_id, output_index=0, content_index=0, delta=reply.text,
           logprobs=[])
        ev("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=reply.text,
           logprobs=[])
        ev("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
           part={**part, "text": reply.text})
    done_item = _responses_item(reply, item_id, call_id, done=True)
    ev("response.output_item.done", output_index=0, item=done_item)
    ev("response.completed",
       response=_responses_object(model, body, reply, resp_id, created, [done_item], done=True))
    return events


# --------------------------------------------------------------------------
# OpenAI embeddings / models
# --------------------------------------------------------------------------


def _vector(i: int, dims: int) -> list[float]:
    return [round(((i + 1) * 0.01 + k * 0.001) % 1.0, 6) for k in range(dims)]


def openai_embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    inp = body.get("input", "")
    if isinstance(inp, str) or (isinstance(inp, list) and inp and isinstance(inp[0], int)):
        inputs: list[Any] = [inp]
    elif isinstance(inp, list):
        inputs = inp or [""]
    else:
        inputs = [inp]
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and 0 < dims <= 4096 else 8
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, _ in enumerate(inputs):
        vec = _vector(i, dims)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = INPUT_TOKENS * len(inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def openai_models() -> dict[str, Any]:
    ids = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "text-embedding-3-small"]
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
                                       for m in ids]}


def openai_model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "system"}


# --------------------------------------------------------------------------
# Anthropic Messages
# --------------------------------------------------------------------------


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHED_TOKENS,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_delta_usage(output_tokens: int) -> dict[str, Any]:
    usage = _anthropic_usage(output_tokens)
    del usage["service_tier"]
    return usage


def anthropic_message(model: str, reply: Reply) -> dict[str, Any]:
    if reply.kind == "tool":
        content = [{"type": "tool_use", "id": _uid("toolu_"), "name": reply.tool_name, "input": reply.tool_args}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": reply.text}]
        stop = "end_turn"
    return {
        "id": _uid("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(reply.output_tokens),
    }


def anthropic_stream(model: str, reply: Reply) -> list[bytes]:
    start_msg = {
        "id": _uid("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(1),
    }
    if reply.kind == "tool":
        block = {"type": "tool_use", "id": _uid("toolu_"), "name": reply.tool_name, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": reply.args_json}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": reply.text}
        stop = "end_turn"
    seq = [
        ("message_start", {"type": "message_start", "message": start_msg}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        # Cumulative: today's API repeats the input and cache counts next to the final output.
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": _anthropic_delta_usage(reply.output_tokens)}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [sse(data, event=name) for name, data in seq]


def anthropic_count_tokens() -> dict[str, Any]:
    return {"input_tokens": INPUT_TOKENS}


def anthropic_models() -> dict[str, Any]:
    ids = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
    data = [{"type": "model", "id": m, "display_name": m.replace("-", " ").title(),
             "created_at": "2025-01-01T00:00:00Z"} for m in ids]
    return {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}


# --------------------------------------------------------------------------
# Gemini
# --------------------------------------------------------------------------


def _gemini_usage(reply: Reply) -> dict[str, Any]:
    out = reply.output_tokens
    return {
        "promptTokenCount": INPUT_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "candidatesTokenCount": out,
        "thoughtsTokenCount": REASONING_TOKENS,
        "totalTokenCount": INPUT_TOKENS + out + REASONING_TOKENS,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": INPUT_TOKENS}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": CACHED_TOKENS}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": out}],
    }


def _gemini_parts(reply: Reply) -> list[dict[str, Any]]:
    if reply.kind == "tool":
        return [{"functionCall": {"name": reply.tool_name, "args": reply.tool_args}}]
    return [{"text": reply.text}]


def gemini_generate(model: str, reply: Reply) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"parts": _gemini_parts(reply), "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": _gemini_usage(reply),
        "modelVersion": model,
        "responseId": _uid("resp"),
    }


def gemini_stream(model: str, reply: Reply) -> list[bytes]:
    rid = _uid("resp")
    first = {
        "candidates": [{"content": {"parts": _gemini_parts(reply), "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "totalTokenCount": INPUT_TOKENS,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": INPUT_TOKENS}]},
        "modelVersion": model,
        "responseId": rid,
    }
    last = {
        "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": _gemini_usage(reply),
        "modelVersion": model,
        "responseId": rid,
    }
    return [sse(first), sse(last)]


def gemini_embed(dims: int = 8) -> dict[str, Any]:
    return {"embedding": {"values": _vector(0, dims)}}


def gemini_batch_embed(body: dict[str, Any], dims: int = 8) -> dict[str, Any]:
    n = len(body.get("requests") or []) or 1
    return {"embeddings": [{"values": _vector(i, dims)} for i in range(n)]}


def gemini_count_tokens() -> dict[str, Any]:
    return {"totalTokens": INPUT_TOKENS, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": INPUT_TOKENS}]}


def gemini_model(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "description": "mock model",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "embedContent", "batchEmbedContents"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
    }


def gemini_cached_content(path: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """A CachedContent resource (create, get, update: ``PATCH`` applies ``ttl`` / ``expireTime``)."""
    m = re.search(r"/(cachedContents/[^/:?]+)", path)
    name = m.group(1) if m else "cachedContents/" + _uid("c")
    expire = "2026-11-29T13:00:00Z"
    if method == "PATCH" and isinstance(body.get("expireTime"), str):
        expire = body["expireTime"]
    elif method == "PATCH" and isinstance(body.get("ttl"), str):
        expire = "2026-11-29T14:00:00Z"
    return {
        "name": name,
        "model": body.get("model") or "models/gemini-2.5-flash",
        "displayName": body.get("displayName", ""),
        "createTime": "2026-11-29T12:00:00Z",
        "updateTime": "2026-11-29T12:30:00Z" if method == "PATCH" else "2026-11-29T12:00:00Z",
        "expireTime": expire,
        "usageMetadata": {"totalTokenCount": 12},
    }


def gemini_models() -> dict[str, Any]:
    return {"models": [gemini_model(m) for m in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001")]}


# --------------------------------------------------------------------------
# Gemini Live (WebSocket)
# --------------------------------------------------------------------------

GEMINI_LIVE_METHOD = "GenerativeService.BidiGenerateContent"


def gemini_live_reply(path: str, frame: str) -> str | None:
    """The Live server answers the client's first message, ``{"setup": {...}}``, with
    ``{"setupComplete": {}}``; ``@google/genai`` (Node) waits for it before ``live.connect``
    resolves. ``None`` for every other frame (the mock echoes those)."""
    if GEMINI_LIVE_METHOD not in path:
        return None
    try:
        msg = json.loads(frame)
    except ValueError:
        return None
    if isinstance(msg, dict) and "setup" in msg:
        return _dumps({"setupComplete": {}})
    return None


def ws_usage_replies(path: str, frame: str, usage: str | None) -> list[str] | None:
    """With ``x-mock-ws-usage: IN,OUT`` on the handshake, a session answers each request for a
    response with one that used IN input and OUT output tokens, as the real servers report
    them: an OpenAI Realtime ``response.create`` with ``response.created`` then
    ``response.done`` (its ``response.usage``); Responses over a WebSocket with
    ``response.created`` then ``response.completed``; a Gemini Live ``clientContent`` with
    ``turnComplete`` with a model turn, then ``usageMetadata`` and ``turnComplete``. ``None``
    for anything else (echoed)."""
    if usage is None:
        return None
    try:
        tokens_in, tokens_out = (int(n) for n in usage.split(","))
        msg = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(msg, dict):
        return None
    if GEMINI_LIVE_METHOD in path:
        if not (msg.get("clientContent") or {}).get("turnComplete"):
            return None
        meta = {"promptTokenCount": tokens_in, "responseTokenCount": tokens_out,
                "totalTokenCount": tokens_in + tokens_out}
        turn = {"modelTurn": {"role": "model", "parts": [{"text": "hi"}]}}
        return [_dumps({"serverContent": turn}),
                _dumps({"serverContent": {"turnComplete": True}, "usageMetadata": meta})]
    if msg.get("type") != "response.create":
        return None
    rid = _uid("resp_")
    used = {"input_tokens": tokens_in, "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out}
    end = "response.completed" if path.rstrip("/").endswith("/responses") else "response.done"
    return [_dumps({"type": "response.created", "response": {"id": rid, "status": "in_progress"}}),
            _dumps({"type": end, "response": {"id": rid, "status": "completed",
                                              "model": "gpt-realtime", "usage": used}})]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_OPENAI_TYPE = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def error_body(provider: str, status: int) -> dict[str, Any]:
    """``provider`` is ``openai`` | ``anthropic`` | ``gemini``."""
    msg = f"mock upstream forced status {status}"
    if provider == "anthropic":
        etype = _ANTHROPIC_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": msg}, "request_id": _uid("req_")}
    if provider == "gemini":
        gstatus = _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": msg, "status": gstatus}}
    etype, code = _OPENAI_TYPE.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": msg, "type": etype, "param": None, "code": code}}
