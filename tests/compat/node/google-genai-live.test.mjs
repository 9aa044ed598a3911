// @google/genai (Node) Live over WebSocket: `ai.live.connect` dials ws:// for an http base URL
// and puts the token in `?key=`. The proxy strips it and sends the real key upstream as
// x-goog-api-key, never in the URL. The turn's `usageMetadata` as the SDK parses it is what the
// token-service recorded.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { GoogleGenAI, Modality } from '@google/genai';
import * as h from './helpers.mjs';

// The SDK itself builds the URL with a double slash (base URL + '/' + '/ws/…'); forwarded as is.
const LIVE_PATH = '//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent';
// Live's usage names the answer `responseTokenCount`; thoughts are apart from it, cached content
// inside the prompt.
const SERVER_TURN = {
  serverContent: { modelTurn: { role: 'model', parts: [{ text: 'hi' }] }, turnComplete: true },
  usageMetadata: {
    promptTokenCount: 21, cachedContentTokenCount: 8, responseTokenCount: 13, thoughtsTokenCount: 5, totalTokenCount: 39,
  },
};

beforeEach(h.resetUpstream);

test('a Live session round-trips through the proxy', async () => {
  const token = await h.freshToken();
  const ai = new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl: h.PROXY_URL } });
  const messages = [];
  let wake = () => {};
  const session = await ai.live.connect({
    model: 'gemini-live-2.5-flash',
    config: { responseModalities: [Modality.TEXT] },
    callbacks: {
      onmessage: (m) => { messages.push(m); wake(); },
      onerror: (e) => { messages.push({ error: e }); wake(); },
    },
  });
  const until = (n) => new Promise((resolve) => {
    wake = () => { if (messages.length >= n) resolve(); };
    wake();
  });
  await until(1); // the echo of the SDK's own setup message
  session.sendClientContent({ turns: 'say hi' });
  await until(2); // its echo
  // The echo stands in for the server: feed the SDK a server-shaped turn to parse.
  session.conn.send(JSON.stringify(SERVER_TURN));
  await until(3);
  session.close();
  assert.ok(!messages.some((m) => m.error), String(messages.find((m) => m.error)?.error?.message));
  assert.equal(messages[2].text, 'hi');
  assert.equal(messages[2].serverContent.turnComplete, true);
  const [rec] = await h.assertAllForwarded(1, token, h.CREDS.googGemini, {}, 'websocket');
  assert.equal(rec.path, LIVE_PATH);
  // Recorded under the model the client's `setup` message named (no server message names it).
  await h.assertMetered(token, 'gemini-live-2.5-flash', h.fromGemini(messages[2].usageMetadata), 1);
});
