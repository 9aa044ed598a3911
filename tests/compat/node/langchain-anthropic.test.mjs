// LangChain JS @langchain/anthropic ChatAnthropic. It pins @anthropic-ai/sdk ^0.122, which sends
// x-api-key (not the 1.x SDK's Bearer): invoke and stream.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatAnthropic } from '@langchain/anthropic';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

test('invoke and stream', async () => {
  const llm = new ChatAnthropic({
    model: 'claude-sonnet-4-6', apiKey: h.TOKEN, anthropicApiUrl: h.PROXY_URL, maxRetries: 0, maxTokens: 16,
  });
  assert.equal((await llm.invoke('say hi')).content, 'hi');
  let text = '';
  for await (const chunk of await llm.stream('say hi')) text += chunk.text;
  assert.equal(text, 'hi');
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.xApiKeyAnthropic, { path: '/v1/messages' });
});
