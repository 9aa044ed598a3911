// openai (Node): Chat Completions and Responses, plain and streamed, on OpenAI and on Gemini's
// OpenAI-compatible route; 401/403/429 surface as the SDK's own error classes.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import OpenAI from 'openai';
import * as h from './helpers.mjs';

const MSG = [{ role: 'user', content: 'say hi' }];
const client = (apiKey, base = '/v1') => new OpenAI({ baseURL: h.PROXY_URL + base, apiKey, maxRetries: 0 });

beforeEach(h.resetUpstream);

test('chat completions, plain and streamed', async () => {
  const c = client(h.TOKEN);
  const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: MSG });
  assert.equal(r.choices[0].message.content, 'hi');
  let text = '';
  for await (const ch of await c.chat.completions.create({ model: 'gpt-4o-mini', messages: MSG, stream: true })) {
    text += ch.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'hi');
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
});

test('responses, plain and streamed', async () => {
  const c = client(h.TOKEN);
  assert.equal((await c.responses.create({ model: 'gpt-4o-mini', input: 'say hi' })).output_text, 'hi');
  const final = await c.responses.stream({ model: 'gpt-4o-mini', input: 'say hi' }).finalResponse();
  assert.equal(final.output_text, 'hi');
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/responses' });
});

test("Gemini's OpenAI-compatible route", async () => {
  const c = client(h.TOKEN, '/v1beta/openai');
  const r = await c.chat.completions.create({ model: 'gemini-2.5-flash', messages: MSG });
  assert.equal(r.choices[0].message.content, 'hi');
  let text = '';
  for await (const ch of await c.chat.completions.create({ model: 'gemini-2.5-flash', messages: MSG, stream: true })) {
    text += ch.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'hi');
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerGemini, { path: '/v1beta/openai/chat/completions' });
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
