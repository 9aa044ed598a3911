// openai (Node): Chat Completions and Responses, plain and streamed, on OpenAI and on Gemini's
// OpenAI-compatible route, and embeddings; 401/403/429 surface as the SDK's own error classes.
// The SDK's own `usage` equals what the token-service recorded for a fresh token.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import OpenAI from 'openai';
import * as h from './helpers.mjs';

const MSG = [{ role: 'user', content: 'say hi' }];
const client = (apiKey, base = '/v1') => new OpenAI({ baseURL: h.PROXY_URL + base, apiKey, maxRetries: 0 });

beforeEach(h.resetUpstream);

/** Streams a chat completion: its text and the usage it showed (none unless asked). */
async function streamChat(c, model, extra = {}) {
  let text = '';
  let usage = null;
  for await (const ch of await c.chat.completions.create({ model, messages: MSG, stream: true, ...extra })) {
    text += ch.choices[0]?.delta?.content ?? '';
    usage = ch.usage ?? usage;
  }
  return { text, usage };
}

test('chat completions, plain and streamed (with and without include_usage)', async () => {
  const token = await h.freshToken();
  const c = client(token);
  const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: MSG });
  assert.equal(r.choices[0].message.content, 'hi');
  const unasked = await streamChat(c, 'gpt-4o-mini');
  assert.deepEqual([unasked.text, unasked.usage], ['hi', null]);
  const asked = await streamChat(c, 'gpt-4o-mini', { stream_options: { include_usage: true } });
  assert.equal(asked.text, 'hi');
  await h.assertAllForwarded(3, token, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
  // The stream that did not ask shows no usage: the mock's reply is the plain call's.
  const plain = h.fromOpenaiChat(r.usage);
  await h.assertMetered(token, 'gpt-4o-mini', h.sum(plain, plain, h.fromOpenaiChat(asked.usage)), 3);
});

test('responses, plain and streamed', async () => {
  const token = await h.freshToken();
  const c = client(token);
  const plain = await c.responses.create({ model: 'gpt-4o-mini', input: 'say hi' });
  assert.equal(plain.output_text, 'hi');
  const final = await c.responses.stream({ model: 'gpt-4o-mini', input: 'say hi' }).finalResponse();
  assert.equal(final.output_text, 'hi');
  await h.assertAllForwarded(2, token, h.CREDS.bearerOpenai, { path: '/v1/responses' });
  const expected = h.sum(h.fromOpenaiResponses(plain.usage), h.fromOpenaiResponses(final.usage));
  await h.assertMetered(token, 'gpt-4o-mini', expected, 2);
});

test('embeddings', async () => {
  const token = await h.freshToken();
  const r = await client(token).embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
  assert.equal(r.data.length, 2);
  await h.assertAllForwarded(1, token, h.CREDS.bearerOpenai, { path: '/v1/embeddings' });
  await h.assertMetered(token, 'text-embedding-3-small', h.usage({ input: r.usage.prompt_tokens }), 1);
});

test("Gemini's OpenAI-compatible route", async () => {
  const token = await h.freshToken();
  const c = client(token, '/v1beta/openai');
  const r = await c.chat.completions.create({ model: 'gemini-2.5-flash', messages: MSG });
  assert.equal(r.choices[0].message.content, 'hi');
  const streamed = await streamChat(c, 'gemini-2.5-flash', { stream_options: { include_usage: true } });
  assert.equal(streamed.text, 'hi');
  await h.assertAllForwarded(2, token, h.CREDS.bearerGemini, { path: '/v1beta/openai/chat/completions' });
  const expected = h.sum(h.fromOpenaiChat(r.usage), h.fromOpenaiChat(streamed.usage));
  await h.assertMetered(token, 'gemini-2.5-flash', expected, 2);
});

for (const [name, token, ErrorClass, message] of [
  ['revoked', h.TOKEN_REVOKED, OpenAI.AuthenticationError, 'invalid or revoked token'],
  ['out of scope', h.TOKEN_OUT_OF_SCOPE.openai, OpenAI.PermissionDeniedError, 'token not allowed for provider'],
  ['rate limited', h.TOKEN_RATE_LIMITED.openai, OpenAI.RateLimitError, 'rate limit exceeded'],
]) {
  test(`${name} token is ${ErrorClass.name}`, async () => {
    const c = client(token);
    if (name === 'rate limited') {
      await c.chat.completions.create({ model: 'gpt-4o-mini', messages: MSG });
      await h.resetUpstream();
    }
    await assert.rejects(c.chat.completions.create({ model: 'gpt-4o-mini', messages: MSG }), (err) => {
      assert.ok(err instanceof ErrorClass, `${err?.constructor?.name}: ${err?.message}`);
      assert.match(err.message, new RegExp(message));
      assert.equal(err.error?.message, message);
      return true;
    });
    assert.deepEqual(await h.recorded(), []);
  });
}
