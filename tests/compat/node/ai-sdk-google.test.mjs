// Vercel AI SDK (`ai` + @ai-sdk/google, x-goog-api-key): generateText and streamText. Its base
// URL includes the API version (/v1beta).
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { generateText, streamText } from 'ai';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

test('generateText and streamText', async () => {
  const google = createGoogleGenerativeAI({ baseURL: `${h.PROXY_URL}/v1beta`, apiKey: h.TOKEN });
  const model = google(MODEL);
  assert.equal((await generateText({ model, prompt: 'say hi', maxRetries: 0 })).text, 'hi');
  const result = streamText({ model, prompt: 'say hi', maxRetries: 0, onError: () => {} });
  let text = '';
  for await (const t of result.textStream) text += t;
  assert.equal(text, 'hi');
  const [plain, streamed] = await h.assertAllForwarded(2, h.TOKEN, h.CREDS.googGemini);
  assert.equal(plain.path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(streamed.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
});
