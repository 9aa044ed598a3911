// Vercel AI SDK (`ai` + @ai-sdk/anthropic): x-api-key + anthropic-version by default, and
// Authorization: Bearer when given `authToken`. Its base URL must include /v1.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createAnthropic } from '@ai-sdk/anthropic';
import { generateText, streamText } from 'ai';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

async function exercise(model) {
  assert.equal((await generateText({ model, prompt: 'say hi', maxRetries: 0 })).text, 'hi');
  const result = streamText({ model, prompt: 'say hi', maxRetries: 0, onError: () => {} });
  let text = '';
  for await (const t of result.textStream) text += t;
  assert.equal(text, 'hi');
}

test('apiKey (x-api-key), plain and streamed', async () => {
  const anthropic = createAnthropic({ baseURL: `${h.PROXY_URL}/v1`, apiKey: h.TOKEN });
  await exercise(anthropic('claude-sonnet-4-6'));
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.xApiKeyAnthropic, { path: '/v1/messages' });
});

test('authToken (Bearer + anthropic-version)', async () => {
  const anthropic = createAnthropic({ baseURL: `${h.PROXY_URL}/v1`, authToken: h.TOKEN });
  await exercise(anthropic('claude-sonnet-4-6'));
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerAnthropic, { path: '/v1/messages' });
});
