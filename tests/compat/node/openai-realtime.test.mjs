// openai (Node) Realtime over WebSocket: `OpenAIRealtimeWS` (the `ws` package, server side).
// It always dials wss:// (it sets the URL's protocol to wss whatever the base URL says), so it
// goes through the proxy's TLS listener; the handshake carries `Authorization: Bearer <token>`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { beforeEach, test } from 'node:test';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import * as h from './helpers.mjs';

beforeEach(h.resetUpstream);

test('session.update round-trips through the proxy', async () => {
  const client = new OpenAI({ baseURL: `${h.PROXY_TLS_URL}/v1`, apiKey: h.TOKEN });
  // `ca` only because the test listener's CA is private.
  const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: readFileSync(h.PROXY_CA_FILE) } }, client);
  const errors = [];
  rt.on('error', (err) => errors.push(err));
  await once(rt.socket, 'open');
  const echoed = new Promise((resolve) => rt.on('event', resolve));
  rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'say hi' } });
  const event = await echoed;
  rt.close();
  assert.deepEqual(errors, []);
  assert.equal(event.type, 'session.update');
  assert.equal(event.session.instructions, 'say hi');
  await h.assertAllForwarded(1, h.TOKEN, h.CREDS.bearerOpenai, { path: '/v1/realtime?model=gpt-realtime' }, 'websocket');
});
