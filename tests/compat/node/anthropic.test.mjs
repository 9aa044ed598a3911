// @anthropic-ai/sdk 1.x (Authorization: Bearer + anthropic-version): Messages, plain and
// streamed; 401/403/429 surface as the SDK's own error classes. The SDK's own `usage` (cache
// reads and writes outside `input_tokens`) equals what the token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import * as h from './helpers.mjs';

const MODEL = 'claude-sonnet-4-6';
const MSG = [{ role: 'user', content: 'say hi' }];
const client = (apiKey) => new Anthropic({ baseURL: h.PROXY_URL, apiKey, maxRetries: 0 });

beforeEach(h.resetUpstream);

test('messages, plain and streamed', async () => {
  const token = await h.freshToken();
  const c = client(token);
  const r = await c.messages.create({ model: MODEL, max_tokens: 16, messages: MSG });
  assert.equal(r.content[0].text, 'hi');
  const stream = c.messages.stream({ model: MODEL, max_tokens: 16, messages: MSG });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, 'hi');
  assert.equal(final.content[0].text, 'hi');
  const recs = await h.assertAllForwarded(2, token, h.CREDS.bearerAnthropic, { path: '/v1/messages' });
  for (const rec of recs) assert.ok(rec.headers.some(([n]) => n === 'anthropic-version'));
  await h.assertMetered(token, MODEL, h.sum(h.fromAnthropic(r.usage), h.fromAnthropic(final.usage)), 2);
});

for (const [name, token, ErrorClass, message] of [
  ['revoked', h.TOKEN_REVOKED, Anthropic.AuthenticationError, 'invalid or revoked token'],
  ['out of scope', h.TOKEN_OUT_OF_SCOPE.anthropic, Anthropic.PermissionDeniedError, 'token not allowed for provider'],
  ['rate limited', h.TOKEN_RATE_LIMITED.anthropic, Anthropic.RateLimitError, 'rate limit exceeded'],
]) {
  test(`${name} token is ${ErrorClass.name}`, async () => {
    const c = client(token);
    if (name === 'rate limited') {
      await c.messages.create({ model: MODEL, max_tokens: 16, messages: MSG });
      await h.resetUpstream();
    }
    await assert.rejects(c.messages.create({ model: MODEL, max_tokens: 16, messages: MSG }), (err) => {
      assert.ok(err instanceof ErrorClass, `${err?.constructor?.name}: ${err?.message}`);
      assert.match(err.message, new RegExp(message));
      assert.equal(err.error?.error?.message, message);
      return true;
    });
    assert.deepEqual(await h.recorded(), []);
  });
}
