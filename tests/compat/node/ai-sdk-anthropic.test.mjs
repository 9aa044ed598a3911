// Vercel AI SDK (`ai` + @ai-sdk/anthropic): x-api-key + anthropic-version by default, and
// Authorization: Bearer when given `authToken`. Its base URL must include /v1. The AI SDK's
// `usage` (input with cache reads and writes, as ours) equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createAnthropic } from '@ai-sdk/anthropic';
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

test('apiKey (x-api-key), plain and streamed', async () => {
  const token = await h.freshToken();
  const anthropic = createAnthropic({ baseURL: `${h.PROXY_URL}/v1`, apiKey: token });
  const expected = await exercise(anthropic('claude-sonnet-4-6'));
  await h.assertAllForwarded(2, token, h.CREDS.xApiKeyAnthropic, { path: '/v1/messages' });
  await h.assertMetered(token, 'claude-sonnet-4-6', expected, 2);
});

test('authToken (Bearer + anthropic-version)', async () => {
  const token = await h.freshToken();
  const anthropic = createAnthropic({ baseURL: `${h.PROXY_URL}/v1`, authToken: token });
  const expected = await exercise(anthropic('claude-sonnet-4-6'));
  await h.assertAllForwarded(2, token, h.CREDS.bearerAnthropic, { path: '/v1/messages' });
  await h.assertMetered(token, 'claude-sonnet-4-6', expected, 2);
});
