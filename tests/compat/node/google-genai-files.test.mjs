// @google/genai files.upload(): a resumable upload. The start carries the token; this SDK then
// sends the bytes to the `x-goog-upload-url` it got back, with its host replaced by the client's
// base URL, and with the API key on every leg, so each leg is an ordinary token request: the
// real key goes up in `x-goog-api-key`, the token nowhere, and the mock assembles every byte.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, test } from 'node:test';
import { ApiError, GoogleGenAI } from '@google/genai';
import * as h from './helpers.mjs';

const CHUNK = 8 * 1024 * 1024; // the SDK's chunk size
const client = (apiKey) => new GoogleGenAI({
  apiKey, httpOptions: { baseUrl: h.PROXY_URL, retryOptions: { attempts: 1 } },
});

beforeEach(h.resetUpstream);

function bodyBytes(rec) {
  return rec.body_base64 ? Buffer.from(rec.body, 'base64') : Buffer.from(rec.body ?? '', 'utf8');
}

async function assertUploaded(data, legs) {
  const recs = await h.assertAllForwarded(1 + legs, h.TOKEN, h.CREDS.googGemini);
  assert.equal(recs[0].path, '/upload/v1beta/files');
  const sent = recs.slice(1);
  for (const rec of sent) assert.match(rec.path, /^\/upload\/v1beta\/files\?upload_id=/);
  assert.ok(Buffer.concat(sent.map(bodyBytes)).equals(data), 'the mock did not get the bytes');
  const sha = createHash('sha256').update(data).digest('hex');
  const sessions = await (await fetch(`${h.MOCK_URL}/__mock/uploads`)).json();
  assert.deepEqual(sessions.filter((s) => s.sha256 === sha).map((s) => s.state), ['final']);
}

test('files.upload of a Blob', async () => {
  const data = randomBytes(100_000);
  const file = await client(h.TOKEN).files.upload({
    file: new Blob([data], { type: 'application/octet-stream' }),
    config: { displayName: 'blob' },
  });
  assert.match(file.name, /^files\//);
  assert.equal(file.sizeBytes, String(data.length));
  assert.equal(file.displayName, 'blob');
  assert.equal(file.state, 'ACTIVE');
  await assertUploaded(data, 1);
});

test('files.upload of a file path, in chunks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptk-upload-'));
  try {
    const data = Buffer.concat([randomBytes(CHUNK), Buffer.from('and a tail')]);
    const path = join(dir, 'notes.txt');
    writeFileSync(path, data);
    const file = await client(h.TOKEN).files.upload({ file: path });
    assert.equal(file.sizeBytes, String(data.length));
    assert.equal(file.mimeType, 'text/plain');
    await assertUploaded(data, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a revoked token uploads nothing', async () => {
  await assert.rejects(
    client(h.TOKEN_REVOKED).files.upload({ file: new Blob(['abc'], { type: 'text/plain' }) }),
    (err) => {
      assert.ok(err instanceof ApiError, `${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      assert.match(err.message, /invalid or revoked token/);
      return true;
    },
  );
  assert.deepEqual(await h.recorded(), []);
});
