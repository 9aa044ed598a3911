// Genkit with its Google AI plugin (@genkit-ai/google-genai, x-goog-api-key, /v1beta):
// generate and generateStream. Genkit's `usage` keeps Gemini's definitions (`outputTokens`
// without `thoughtsTokens`); mapped so, it equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { googleAI } from '@genkit-ai/google-genai';
import { genkit } from 'genkit';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

/** Genkit's GenerationUsage in our shape. */
const ours = (u) => h.usage({
  input: u.inputTokens, cached: u.cachedContentTokens ?? 0,
  output: u.outputTokens + (u.thoughtsTokens ?? 0), reasoning: u.thoughtsTokens ?? 0,
});

test('generate and generateStream', async () => {
  const token = await h.freshToken();
  const ai = genkit({ plugins: [googleAI({ apiKey: token, baseUrl: h.PROXY_URL })] });
  const model = googleAI.model(MODEL);
  const plain = await ai.generate({ model, prompt: 'say hi' });
  assert.equal(plain.text, 'hi');
  const { stream, response } = ai.generateStream({ model, prompt: 'say hi' });
  let text = '';
  for await (const chunk of stream) text += chunk.text;
  assert.equal(text, 'hi');
  const final = await response;
  assert.equal(final.text, 'hi');
  const recs = (await h.recorded()).filter((r) => r.path.includes(':'));
  assert.equal(recs.length, 2, JSON.stringify((await h.recorded()).map((r) => r.path)));
  for (const rec of await h.recorded()) h.assertForwarded(rec, token, h.CREDS.googGemini);
  assert.equal(recs[0].path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(recs[1].path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
  await h.assertMetered(token, MODEL, h.sum(ours(plain.usage), ours(final.usage)), 2);
});
