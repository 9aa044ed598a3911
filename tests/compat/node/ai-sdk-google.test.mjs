// Vercel AI SDK (`ai` + @ai-sdk/google, x-goog-api-key): generateText and streamText. Its base
// URL includes the API version (/v1beta). The AI SDK's `usage` (output with thoughts, as ours)
// equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { generateText, streamText } from 'ai';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

test('generateText and streamText', async () => {
  const token = await h.freshToken();
  const google = createGoogleGenerativeAI({ baseURL: `${h.PROXY_URL}/v1beta`, apiKey: token });
  const model = google(MODEL);
  const plain = await generateText({ model, prompt: 'say hi', maxRetries: 0 });
  assert.equal(plain.text, 'hi');
  const result = streamText({ model, prompt: 'say hi', maxRetries: 0, onError: () => {} });
  let text = '';
  for await (const t of result.textStream) text += t;
  assert.equal(text, 'hi');
  const [plainRec, streamedRec] = await h.assertAllForwarded(2, token, h.CREDS.googGemini);
  assert.equal(plainRec.path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(streamedRec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
  const expected = h.sum(h.fromAiSdk(plain.usage), h.fromAiSdk(await result.usage));
  await h.assertMetered(token, MODEL, expected, 2);
});
