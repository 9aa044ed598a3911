//! The reference shapes of every provider's API, each found; the same bodies carrying their
//! input, none found.

use super::*;
use serde_json::json;
use UsageApi::*;

fn found(api: UsageApi, body: Value) -> Option<&'static str> {
    referenced(api, &body).map(|r| r.0)
}

#[test]
fn openai_references_are_found() {
    let cases: [(UsageApi, Value, &str); 17] = [
        (
            Responses,
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            Responses,
            json!({"input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            Responses,
            json!({"input": "x", "conversation": {"id": "conv_1"}}),
            "conversation",
        ),
        (
            Responses,
            json!({"prompt": {"id": "pmpt_1", "variables": {}}}),
            "prompt",
        ),
        (
            Responses,
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item_reference",
        ),
        (
            Responses,
            json!({"input": [{"id": "msg_1"}]}),
            "item_reference",
        ),
        (
            Responses,
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
            "file_id",
        ),
        (
            Responses,
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]}),
            "file_url",
        ),
        (
            Responses,
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]}),
            "image_url",
        ),
        (
            Responses,
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-2"}]}]}),
            "file_id",
        ),
        (
            Responses,
            json!({"input": [{"type": "function_call_output", "call_id": "c",
                              "output": [{"type": "input_image", "image_url": "http://x"}]}]}),
            "image_url",
        ),
        (
            Responses,
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "a server-side tool",
        ),
        (
            Responses,
            json!({"tools": [{"type": "function", "name": "f"}, {"type": "mcp", "server_url": "https://m"}]}),
            "a server-side tool",
        ),
        (
            ChatCompletions,
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": " HTTPS://x/a.png"}}]}]}),
            "image_url",
        ),
        (
            ChatCompletions,
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-3"}}]}]}),
            "file_id",
        ),
        (
            ChatCompletions,
            json!({"messages": [], "web_search_options": {}}),
            "web_search_options",
        ),
        // Gemini's OpenAI-compatible endpoint: its context cache.
        (
            ChatCompletions,
            json!({"messages": [], "extra_body": {"google": {"cached_content": "cachedContents/c"}}}),
            "cached_content",
        ),
    ];
    for (api, body, want) in cases {
        assert_eq!(found(api, body.clone()), Some(want), "{body}");
    }
}

#[test]
fn anthropic_references_are_found() {
    let image = |source: Value| json!({"messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]});
    let cases: [(Value, &str); 9] = [
        (
            image(json!({"type": "url", "url": "https://x/a.png"})),
            "source url",
        ),
        (
            image(json!({"type": "file", "file_id": "file_1"})),
            "source file",
        ),
        (
            json!({"system": [{"type": "text", "text": "s"}, {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}),
            "source url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                   "content": [{"type": "document", "source": {"type": "url", "url": "https://x"}}]}]}]}),
            "source url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "container_upload", "file_id": "file_2"}]}]}),
            "file_id",
        ),
        (
            json!({"messages": [], "mcp_servers": [{"type": "url", "url": "https://m", "name": "m"}]}),
            "mcp_servers",
        ),
        (
            json!({"messages": [], "container": "container_1"}),
            "container",
        ),
        (
            json!({"messages": [], "tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]}),
            "a server tool",
        ),
        (
            json!({"messages": [], "tools": [{"name": "f", "input_schema": {}}, {"type": "code_execution_20250825", "name": "c"}]}),
            "a server tool",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(found(Messages, body.clone()), Some(want), "{body}");
    }
}

#[test]
fn gemini_references_are_found() {
    let cases: [(Value, &str); 7] = [
        (
            json!({"contents": [], "cachedContent": "cachedContents/c"}),
            "cachedContent",
        ),
        (
            json!({"contents": [], "cached_content": "cachedContents/c"}),
            "cachedContent",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "https://youtu.be/x", "mimeType": "video/mp4"}}]}]}),
            "fileData",
        ),
        (
            json!({"system_instruction": {"parts": [{"file_data": {"file_uri": "files/f"}}]}}),
            "fileData",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {},
                   "parts": [{"fileData": {"fileUri": "files/f"}}]}}]}]}),
            "fileData",
        ),
        (
            json!({"contents": [], "tools": [{"googleSearch": {}}]}),
            "a server-side tool",
        ),
        (
            json!({"contents": [], "tools": [{"functionDeclarations": []}, {"url_context": {}}]}),
            "a server-side tool",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(found(GenerateContent, body.clone()), Some(want), "{body}");
    }
}

#[test]
fn carried_input_is_not_a_reference() {
    let cases: [(UsageApi, Value); 13] = [
        (
            Responses,
            json!({"input": "x", "previous_response_id": null, "tools": [{"type": "function", "name": "f"}]}),
        ),
        (
            Responses,
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}),
        ),
        (
            Responses,
            json!({"input": [{"type": "input_file", "file_data": "data:application/pdf;base64,AA"}]}),
        ),
        // Completions' prompt is text, carried.
        (
            ChatCompletions,
            json!({"prompt": "once upon a time", "max_tokens": 5}),
        ),
        (
            ChatCompletions,
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"file_id": {"type": "string"}}}}}],
                   "metadata": {"file_id": "x"}}),
        ),
        (Embeddings, json!({"input": ["a", "b"], "model": "m"})),
        (
            Messages,
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA"}}]}]}),
        ),
        (
            Messages,
            json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"file_id": "x"}}]}],
                   "tools": [{"name": "f", "input_schema": {}}, {"type": "custom", "name": "g"}, {"type": "bash_20250124", "name": "bash"}],
                   "mcp_servers": []}),
        ),
        (
            Messages,
            json!({"system": "s", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            GenerateContent,
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA"}}]}]}),
        ),
        (
            GenerateContent,
            json!({"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"fileData": 1}}}]}],
                   "tools": [{"functionDeclarations": [{"name": "f"}]}]}),
        ),
        // Another API's references are not this one's fields.
        (
            GenerateContent,
            json!({"contents": [], "previous_response_id": "r"}),
        ),
        (Messages, json!({"messages": [], "cachedContent": "c"})),
    ];
    for (api, body) in cases {
        assert_eq!(found(api, body.clone()), None, "{body}");
    }
}
