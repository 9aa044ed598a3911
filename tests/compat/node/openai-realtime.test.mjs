// openai (Node) Realtime over WebSocket: `OpenAIRealtimeWS` (the `ws` package, server side).
// It always dials wss:// (it sets the URL's protocol to wss whatever the base URL says), so it
// goes through the proxy's TLS listener; the handshake carries `Authorization: Bearer <token>`.
// A `session.created` and a `response.done` sent through the mock's echo come back from
// upstream as a server's would: the SDK's parsed usage is what the token-service recorded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { beforeEach, test } from 'node:test';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import * as h from './helpers.mjs';

const SESSION_CREATED = {
  type: 'session.created', event_id: 'event_0',
  session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime' },
};
const RESPONSE_DONE = {
  type: 'response.done', event_id: 'event_1',
  response: {
    object: 'realtime.response', id: 'resp_1', status: 'completed', output: [],
    usage: {
      total_tokens: 31, input_tokens: 20, output_tokens: 11,
      input_token_details: { cached_tokens: 6, text_tokens: 12, audio_tokens: 8, image_tokens: 0 },
      output_token_details: { text_tokens: 4, audio_tokens: 7 },
    },
  },
};

beforeEach(h.resetUpstream);

test('session.update round-trips through the proxy', async () => {
  const token = await h.freshToken();
  const client = new OpenAI({ baseURL: `${h.PROXY_TLS_URL}/v1`, apiKey: token });
  // `ca` only because the test listener's CA is private.
  const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: readFileSync(h.PROXY_CA_FILE) } }, client);
  const errors = [];
  rt.on('error', (err) => errors.push(err));
  await once(rt.socket, 'open');
  const events = [];
  let wake = () => {};
  rt.on('event', (e) => { events.push(e); wake(); });
  const until = (count) => new Promise((resolve) => {
    wake = () => { if (events.length >= count) resolve(); };
    wake();
  });
  rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'say hi' } });
  await until(1);
  rt.send(SESSION_CREATED);
  rt.send(RESPONSE_DONE);
  await until(3);
  rt.close();
  await once(rt.socket, 'close');
  const [event, , done] = events;
  assert.deepEqual(errors, []);
  assert.equal(event.type, 'session.update');
  assert.equal(event.session.instructions, 'say hi');
  assert.equal(done.type, 'response.done');
  await h.assertAllForwarded(1, token, h.CREDS.bearerOpenai, { path: '/v1/realtime?model=gpt-realtime' }, 'websocket');
  await h.assertMetered(token, 'gpt-realtime', h.fromOpenaiRealtime(done.response.usage), 1);
});
