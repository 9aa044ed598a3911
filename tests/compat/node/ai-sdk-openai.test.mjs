// Vercel AI SDK (`ai` + @ai-sdk/openai, Bearer): generateText and streamText on the default
// model call (Responses API, /v1/responses) and on `.chat()` (Chat Completions).
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
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

test('responses (default), plain and streamed', async () => {
  const openai = createOpenAI({ baseURL: `${h.PROXY_URL}/v1`, apiKey: h.TOKEN });
  await exercise(openai('gpt-4o-mini'));
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/responses' });
});

test('chat completions, plain and streamed', async () => {
  const openai = createOpenAI({ baseURL: `${h.PROXY_URL}/v1`, apiKey: h.TOKEN });
  await exercise(openai.chat('gpt-4o-mini'));
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
});
