// @google/genai (x-goog-api-key, /v1beta): generateContent plain and streamed; 401/403/429
// surface as the SDK's ApiError with the status and the proxy's message. The SDK's own
// `usageMetadata` (thoughts outside the candidates) equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ApiError, GoogleGenAI } from '@google/genai';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';
const client = (apiKey) => new GoogleGenAI({
  apiKey, httpOptions: { baseUrl: h.PROXY_URL, retryOptions: { attempts: 1 } },
});

beforeEach(h.resetUpstream);

test('generateContent, plain and streamed', async () => {
  const token = await h.freshToken();
  const ai = client(token);
  const plain = await ai.models.generateContent({ model: MODEL, contents: 'say hi' });
  assert.equal(plain.text, 'hi');
  let text = '';
  let last; // each chunk's usageMetadata is cumulative: the last one is the stream's
  for await (const ch of await ai.models.generateContentStream({ model: MODEL, contents: 'say hi' })) {
    text += ch.text ?? '';
    last = ch.usageMetadata ?? last;
  }
  assert.equal(text, 'hi');
  const [plainRec, streamedRec] = await h.assertAllForwarded(2, token, h.CREDS.googGemini);
  assert.equal(plainRec.path, `/v1beta/models/${MODEL}:generateContent`);
  assert.equal(streamedRec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
  await h.assertMetered(token, MODEL, h.sum(h.fromGemini(plain.usageMetadata), h.fromGemini(last)), 2);
});

for (const [name, token, status, message] of [
  ['revoked', h.TOKEN_REVOKED, 401, 'invalid or revoked token'],
  ['out of scope', h.TOKEN_OUT_OF_SCOPE.gemini, 403, 'token not allowed for provider'],
  ['rate limited', h.TOKEN_RATE_LIMITED.gemini, 429, 'rate limit exceeded'],
]) {
  test(`${name} token is ApiError ${status}`, async () => {
    const ai = client(token);
    if (name === 'rate limited') {
      await ai.models.generateContent({ model: MODEL, contents: 'say hi' });
      await h.resetUpstream();
    }
    await assert.rejects(ai.models.generateContent({ model: MODEL, contents: 'say hi' }), (err) => {
      assert.ok(err instanceof ApiError, `${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, status);
      assert.match(err.message, new RegExp(message));
      return true;
    });
    assert.deepEqual(await h.recorded(), []);
  });
}
