// LangChain JS @langchain/openai ChatOpenAI (on the openai SDK: Bearer): invoke and stream
// (which asks for usage itself). LangChain's `usage_metadata` equals what the token-service
// recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatOpenAI } from '@langchain/openai';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

test('invoke and stream', async () => {
  const token = await h.freshToken();
  const llm = new ChatOpenAI({
    model: 'gpt-4o-mini', apiKey: token, maxRetries: 0, configuration: { baseURL: `${h.PROXY_URL}/v1` },
  });
  const plain = await llm.invoke('say hi');
  assert.equal(plain.content, 'hi');
  let streamed;
  for await (const chunk of await llm.stream('say hi')) streamed = streamed ? streamed.concat(chunk) : chunk;
  assert.equal(streamed.content, 'hi');
  await h.assertAllForwarded(2, token, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
  const expected = h.sum(h.fromLangchain(plain.usage_metadata), h.fromLangchain(streamed.usage_metadata));
  await h.assertMetered(token, 'gpt-4o-mini', expected, 2);
});
