// LangChain JS @langchain/google-genai ChatGoogleGenerativeAI (on the legacy
// @google/generative-ai SDK: x-goog-api-key, /v1beta): invoke and stream. Its `usage_metadata`
// gives `output_tokens` without thoughts (Gemini's candidates; LangChain's own definition and
// the Python package include them) and no reasoning detail; the thoughts are only in
// `total_tokens`. Mapped so, it equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatGoogleGenerativeAI } from '@langchain/google-genai';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

/** Its usage_metadata in our shape: the thoughts are what `total_tokens` has beyond the rest. */
function ours(m) {
  const thoughts = m.total_tokens - m.input_tokens - m.output_tokens;
  return h.usage({
    input: m.input_tokens, cached: m.input_token_details?.cache_read ?? 0,
    output: m.output_tokens + thoughts, reasoning: thoughts,
  });
}

test('invoke and stream', async () => {
  const token = await h.freshToken();
  const llm = new ChatGoogleGenerativeAI({ model: MODEL, apiKey: token, baseUrl: h.PROXY_URL, maxRetries: 0 });
  const plain = await llm.invoke('say hi');
  assert.equal(plain.content, 'hi');
  let streamed;
  for await (const chunk of await llm.stream('say hi')) streamed = streamed ? streamed.concat(chunk) : chunk;
  assert.equal(streamed.text, 'hi');
  const [plainRec, streamedRec] = await h.assertAllForwarded(2, token, h.CREDS.googGemini);
  assert.equal(plainRec.path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(streamedRec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
  await h.assertMetered(token, MODEL, h.sum(ours(plain.usage_metadata), ours(streamed.usage_metadata)), 2);
});
