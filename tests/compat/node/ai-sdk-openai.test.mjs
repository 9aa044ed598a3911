// Vercel AI SDK (`ai` + @ai-sdk/openai, Bearer): generateText and streamText on the default
// model call (Responses API, /v1/responses) and on `.chat()` (Chat Completions). The AI SDK's
// `usage` (v6: totals with cache and reasoning details) equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

/** generateText and streamText; the AI SDK's own usage of both, in our shape. */
async function exercise(model) {
  const plain = await generateText({ model, prompt: 'say hi', maxRetries: 0 });
  assert.equal(plain.text, 'hi');
  const result = streamText({ model, prompt: 'say hi', maxRetries: 0, onError: () => {} });
  let text = '';
  for await (const t of result.textStream) text += t;
  assert.equal(text, 'hi');
  return h.sum(h.fromAiSdk(plain.usage), h.fromAiSdk(await result.usage));
}

test('responses (default), plain and streamed', async () => {
  const token = await h.freshToken();
  const openai = createOpenAI({ baseURL: `${h.PROXY_URL}/v1`, apiKey: token });
  const expected = await exercise(openai('gpt-4o-mini'));
  await h.assertAllForwarded(2, token, h.CREDS.bearerOpenai, { path: '/v1/responses' });
  await h.assertMetered(token, 'gpt-4o-mini', expected, 2);
});

test('chat completions, plain and streamed', async () => {
  const token = await h.freshToken();
  const openai = createOpenAI({ baseURL: `${h.PROXY_URL}/v1`, apiKey: token });
  const expected = await exercise(openai.chat('gpt-4o-mini'));
  await h.assertAllForwarded(2, token, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
  await h.assertMetered(token, 'gpt-4o-mini', expected, 2);
});
