// LangChain JS @langchain/openai ChatOpenAI (on the openai SDK: Bearer): invoke and stream.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { ChatOpenAI } from '@langchain/openai';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

test('invoke and stream', async () => {
  const llm = new ChatOpenAI({
    model: 'gpt-4o-mini', apiKey: h.TOKEN, maxRetries: 0, configuration: { baseURL: `${h.PROXY_URL}/v1` },
  });
  assert.equal((await llm.invoke('say hi')).content, 'hi');
  let text = '';
  for await (const chunk of await llm.stream('say hi')) text += chunk.content;
  assert.equal(text, 'hi');
  await h.assertAllForwarded(2, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/chat/completions' });
});
