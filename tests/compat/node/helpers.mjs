// Shared by every Node compat file: the stack's addresses and tokens (handed over in the
// environment by tests/compat/test_node.py), the mock's recording, the assertions every client
// must pass, and the usage check (the SDK's own usage against what the token-service recorded,
// through the admin API: ADMIN_URL, ADMIN_COOKIE, ADMIN_CSRF).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

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

// --- usage: the SDK's own numbers against what the token-service recorded -------------------

// The token-service's admin listener, and a session on it that test_node.py opened once for
// every file (the login is throttled per address).
const ADMIN_URL = process.env.ADMIN_URL;
const admin = () => ({ cookie: need('ADMIN_COOKIE'), csrf: need('ADMIN_CSRF') });

/** A fresh token (all three providers) minted through the admin API, so each test's usage is its own. */
export async function freshToken() {
  const { cookie, csrf } = admin();
  const r = await fetch(`${ADMIN_URL}/admin/api/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf },
    body: JSON.stringify({ label: 'compat-usage', providers: ['openai', 'anthropic', 'gemini'] }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  return (await r.json()).token;
}

/**
 * Token counts in the token-service's normalised shape (README "Token usage (metering)"):
 * `input` includes cache reads and writes, `output` includes reasoning.
 */
export function usage({ input = 0, cached = 0, cacheWrite = 0, output = 0, reasoning = 0 } = {}) {
  return { input, cached, cacheWrite, output, reasoning };
}

/** The sum of normalised usages. */
export function sum(...usages) {
  return usages.reduce((a, b) => usage(Object.fromEntries(Object.keys(a).map((k) => [k, a[k] + b[k]]))), usage());
}

const n = (v) => v ?? 0;

/** Chat Completions' `usage`: the prompt includes cached tokens, the completion reasoning. */
export const fromOpenaiChat = (u) => usage({
  input: n(u?.prompt_tokens), cached: n(u?.prompt_tokens_details?.cached_tokens),
  output: n(u?.completion_tokens), reasoning: n(u?.completion_tokens_details?.reasoning_tokens),
});

/** Responses' `usage`: the same definitions. */
export const fromOpenaiResponses = (u) => usage({
  input: n(u?.input_tokens), cached: n(u?.input_tokens_details?.cached_tokens),
  output: n(u?.output_tokens), reasoning: n(u?.output_tokens_details?.reasoning_tokens),
});

/** Realtime's `response.done` usage: details spelt `input_token_details`; no reasoning count. */
export const fromOpenaiRealtime = (u) => usage({
  input: n(u?.input_tokens), cached: n(u?.input_token_details?.cached_tokens), output: n(u?.output_tokens),
});

/** Anthropic's `usage`: `input_tokens` excludes cache reads and writes, which ours adds. */
export function fromAnthropic(u) {
  const read = n(u?.cache_read_input_tokens);
  const write = n(u?.cache_creation_input_tokens);
  return usage({ input: n(u?.input_tokens) + read + write, cached: read, cacheWrite: write, output: n(u?.output_tokens) });
}

/** Gemini's `usageMetadata` (Live's too): thoughts are outside the candidates (Live: the response). */
export function fromGemini(m) {
  const thoughts = n(m?.thoughtsTokenCount);
  return usage({
    input: n(m?.promptTokenCount), cached: n(m?.cachedContentTokenCount),
    output: n(m?.candidatesTokenCount ?? m?.responseTokenCount) + thoughts, reasoning: thoughts,
  });
}

/** LangChain's `usage_metadata`: already our definitions. */
export const fromLangchain = (m) => usage({
  input: n(m?.input_tokens), cached: n(m?.input_token_details?.cache_read),
  cacheWrite: n(m?.input_token_details?.cache_creation), output: n(m?.output_tokens),
  reasoning: n(m?.output_token_details?.reasoning),
});

/** The AI SDK's `LanguageModelUsage` (v6): totals with the cache and reasoning details beside. */
export const fromAiSdk = (u) => usage({
  input: n(u?.inputTokens), cached: n(u?.inputTokenDetails?.cacheReadTokens),
  cacheWrite: n(u?.inputTokenDetails?.cacheWriteTokens), output: n(u?.outputTokens),
  reasoning: n(u?.outputTokenDetails?.reasoningTokens),
});

/** The token-service's id of a token: its SHA-256 in lowercase hex. */
const tokenHash = (token) => createHash('sha256').update(token).digest('hex');

/**
 * What the token-service recorded for `token` on `model` is `requests` complete responses whose
 * counts sum to `expected`. Usage arrives in batches (the filter's next activity flush): polled
 * through the admin API for up to 10 s.
 */
export async function assertMetered(token, model, expected, requests) {
  const { cookie } = admin();
  const url = `${ADMIN_URL}/admin/api/tokens/${tokenHash(token)}/usage`;
  const deadline = Date.now() + 10_000;
  let body;
  let got;
  for (;;) {
    const r = await fetch(url, { headers: { cookie } });
    assert.equal(r.status, 200);
    body = await r.json();
    got = body.models.find((m) => m.model === model);
    if ((got && got.requests >= requests) || Date.now() > deadline) break;
    await new Promise((resolve) => { setTimeout(resolve, 200); });
  }
  assert.ok(got, `nothing recorded for ${model}: ${JSON.stringify(body)}`);
  assert.deepEqual([got.requests, got.incomplete], [requests, 0], JSON.stringify(got));
  const ours = usage({
    input: got.input_tokens, cached: got.cached_input_tokens, cacheWrite: got.cache_write_tokens,
    output: got.output_tokens, reasoning: got.reasoning_tokens,
  });
  assert.deepEqual(ours, expected, `recorded ${JSON.stringify(ours)}, the SDK said ${JSON.stringify(expected)}`);
}
