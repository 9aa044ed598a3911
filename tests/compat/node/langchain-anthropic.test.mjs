// LangChain JS @langchain/anthropic ChatAnthropic. It pins @anthropic-ai/sdk ^0.122, which sends
// x-api-key (not the 1.x SDK's Bearer): invoke and stream. LangChain's `usage_metadata` equals
// what the token-service recorded, but for one count: streamed, it adds `message_start`'s
// `output_tokens` to `message_delta`'s, which Anthropic documents as already cumulative, so it
// reports that many output tokens more than the response's (tests/compat/README.md).
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatAnthropic } from '@langchain/anthropic';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

// The mock's `message_start` says 1 output token so far, as Anthropic's does.
const START_OUTPUT_TOKENS = 1;

test('invoke and stream', async () => {
  const token = await h.freshToken();
  const llm = new ChatAnthropic({
    model: 'claude-sonnet-4-6', apiKey: token, anthropicApiUrl: h.PROXY_URL, maxRetries: 0, maxTokens: 16,
  });
  const plain = await llm.invoke('say hi');
  assert.equal(plain.content, 'hi');
  let streamed;
  for await (const chunk of await llm.stream('say hi')) streamed = streamed ? streamed.concat(chunk) : chunk;
  assert.equal(streamed.text, 'hi');
  await h.assertAllForwarded(2, token, h.CREDS.xApiKeyAnthropic, { path: '/v1/messages' });
  const counted = h.fromLangchain(streamed.usage_metadata);
  const stream = { ...counted, output: counted.output - START_OUTPUT_TOKENS };
  await h.assertMetered(token, 'claude-sonnet-4-6', h.sum(h.fromLangchain(plain.usage_metadata), stream), 2);
});
