// Shared by every Node compat file: the stack's addresses and tokens (handed over in the
// environment by tests/compat/py/test_node.py), the mock's recording, and the assertions
// every client must pass.
import assert from 'node:assert/strict';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through tests/compat/py/test_node.py`);
  return value;
}

export const PROXY_URL = need('PROXY_URL'); // http://127.0.0.1:PORT
export const PROXY_TLS_URL = need('PROXY_TLS_URL'); // https://127.0.0.1:PORT (test CA)
export const PROXY_CA_FILE = need('PROXY_CA_FILE');
export const MOCK_URL = need('MOCK_URL');
/** A token scoped to all three providers. */
export const TOKEN = need('PROXY_TOKEN');
/** A disabled token. */
export const TOKEN_REVOKED = need('PROXY_TOKEN_REVOKED');
/** Per provider: a token scoped to the two others. */
export const TOKEN_OUT_OF_SCOPE = {
  openai: need('PROXY_TOKEN_NO_OPENAI'),
  anthropic: need('PROXY_TOKEN_NO_ANTHROPIC'),
  gemini: need('PROXY_TOKEN_NO_GEMINI'),
};
/** Per provider: a token limited to one request a minute. */
export const TOKEN_RATE_LIMITED = {
  openai: need('PROXY_TOKEN_RL_OPENAI'),
  anthropic: need('PROXY_TOKEN_RL_ANTHROPIC'),
  gemini: need('PROXY_TOKEN_RL_GEMINI'),
};
export const REAL = {
  openai: need('REAL_OPENAI_KEY'),
  anthropic: need('REAL_ANTHROPIC_KEY'),
  gemini: need('REAL_GEMINI_KEY'),
};

/** The one credential each route must carry upstream: {header: [value]}. */
export const CREDS = {
  bearerOpenai: { authorization: [`Bearer ${REAL.openai}`] },
  bearerGemini: { authorization: [`Bearer ${REAL.gemini}`] },
  bearerAnthropic: { authorization: [`Bearer ${REAL.anthropic}`] },
  xApiKeyAnthropic: { 'x-api-key': [REAL.anthropic] },
  googGemini: { 'x-goog-api-key': [REAL.gemini] },
};

export async function resetUpstream() {
  const r = await fetch(`${MOCK_URL}/__mock/reset`, { method: 'POST' });
  assert.equal(r.status, 200);
}

/** What the mock upstream recorded, of one kind ('http' or 'websocket'). */
export async function recorded(kind = 'http') {
  const r = await fetch(`${MOCK_URL}/__mock/requests`);
  return (await r.json()).filter((rec) => rec.kind === kind);
}

function credentials(rec) {
  const out = {};
  for (const [name, value] of rec.headers) {
    if (['authorization', 'x-api-key', 'x-goog-api-key'].includes(name)) {
      (out[name] ??= []).push(value);
    }
  }
  return out;
}

function bodyText(rec) {
  return rec.body_base64 ? Buffer.from(rec.body, 'base64').toString('utf8') : rec.body ?? '';
}

/**
 * The real key sits in exactly the expected slot, the token is nowhere (headers, path, query,
 * body), no real key rides in the URL, and the upstream path is as expected.
 */
export function assertForwarded(rec, token, creds, { path, pathPrefix } = {}) {
  assert.deepEqual(credentials(rec), creds);
  const everything = JSON.stringify(rec.headers) + rec.path + bodyText(rec);
  assert.ok(!everything.includes(token), 'proxy token reached the upstream');
  for (const key of Object.values(REAL)) assert.ok(!rec.path.includes(key), 'real key in the URL');
  if (path !== undefined) assert.equal(rec.path, path);
  if (pathPrefix !== undefined) assert.ok(rec.path.startsWith(pathPrefix), rec.path);
}

/** Every recorded request of `kind` passes assertForwarded; returns them. */
export async function assertAllForwarded(count, token, creds, opts, kind = 'http') {
  const recs = await recorded(kind);
  assert.equal(recs.length, count, `expected ${count} upstream requests, got ${recs.length}`);
  for (const rec of recs) assertForwarded(rec, token, creds, opts);
  return recs;
}
