// Genkit with its Google AI plugin (@genkit-ai/google-genai, x-goog-api-key, /v1beta):
// generate and generateStream.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { googleAI } from '@genkit-ai/google-genai';
import { genkit } from 'genkit';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';

beforeEach(h.resetUpstream);

test('generate and generateStream', async () => {
  const ai = genkit({ plugins: [googleAI({ apiKey: h.TOKEN, baseUrl: h.PROXY_URL })] });
  const model = googleAI.model(MODEL);
  assert.equal((await ai.generate({ model, prompt: 'say hi' })).text, 'hi');
  const { stream, response } = ai.generateStream({ model, prompt: 'say hi' });
  let text = '';
  for await (const chunk of stream) text += chunk.text;
  assert.equal(text, 'hi');
  assert.equal((await response).text, 'hi');
  const recs = (await h.recorded()).filter((r) => r.path.includes(':'));
  assert.equal(recs.length, 2, JSON.stringify((await h.recorded()).map((r) => r.path)));
  for (const rec of await h.recorded()) h.assertForwarded(rec, h.TOKEN, h.CREDS.googGemini);
  assert.equal(recs[0].path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(recs[1].path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
});
