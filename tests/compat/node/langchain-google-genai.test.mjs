// LangChain JS @langchain/google-genai ChatGoogleGenerativeAI (on the legacy
// @google/generative-ai SDK: x-goog-api-key, /v1beta): invoke and stream.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatGoogleGenerativeAI } from '@langchain/google-genai';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

test('invoke and stream', async () => {
  const llm = new ChatGoogleGenerativeAI({ model: MODEL, apiKey: h.TOKEN, baseUrl: h.PROXY_URL, maxRetries: 0 });
  assert.equal((await llm.invoke('say hi')).content, 'hi');
  let text = '';
  for await (const chunk of await llm.stream('say hi')) text += chunk.text;
  assert.equal(text, 'hi');
  const [plain, streamed] = await h.assertAllForwarded(2, h.TOKEN, h.CREDS.googGemini);
  assert.equal(plain.path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(streamed.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
});
