// Raw fetch with the token in Gemini's `?key=` slot: the key parameter is stripped, the other
// query parameters and the body pass through untouched, the real key goes upstream as
// x-goog-api-key (never in the URL). Plain and SSE.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import * as h from './helpers.mjs';

const MODEL = 'gemini-2.5-flash';
const BODY = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'say hi' }] }] });

beforeEach(h.resetUpstream);

test('?key= on generateContent and streamGenerateContent', async () => {
  const key = encodeURIComponent(h.TOKEN);
  const plain = await fetch(`${h.PROXY_URL}/v1beta/models/${MODEL}:generateContent?foo=bar&key=${key}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY,
  });
  assert.equal(plain.status, 200);
  assert.equal((await plain.json()).candidates[0].content.parts[0].text, 'hi');
  const sse = await fetch(`${h.PROXY_URL}/v1beta/models/${MODEL}:streamGenerateContent?key=${key}&alt=sse`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY,
  });
  assert.equal(sse.status, 200);
  assert.match(sse.headers.get('content-type'), /text\/event-stream/);
  const events = (await sse.text()).split('\n').filter((l) => l.startsWith('data: '));
  const text = events.map((l) => JSON.parse(l.slice(6)).candidates?.[0]?.content?.parts?.[0]?.text ?? '').join('');
  assert.equal(text, 'hi');
  const [a, b] = await h.assertAllForwarded(2, h.TOKEN, h.CREDS.googGemini);
  assert.equal(a.path, `/v1beta/models/${MODEL}:generateContent?foo=bar`);
  assert.equal(b.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
  assert.equal(a.body, BODY);
});
