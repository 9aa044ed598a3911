// The admin dashboard in a real browser (Debian's Chromium via playwright-core), through the
// real Envoy: log in, create a token, read the plaintext once, use it through Envoy against the
// mock upstream, disable it from the table and see the next request refused; plus in-place
// expiry edits, delete with confirmation, server errors shown, and a lost session sent back to
// login. Run by tests/e2e/test_dashboard_browser.py with:
//   PTK_PROXY_URL  http://127.0.0.1:<envoy port>     PTK_ADMIN_SECRET  the admin secret
//   PTK_MOCK_URL   the mock upstream (to read what it recorded)
//   PTK_REAL_OPENAI_KEY  the real key the token-service hands out
//   PTK_SCREENSHOT where to save the dashboard screenshot
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const PROXY = env("PTK_PROXY_URL");
const SECRET = env("PTK_ADMIN_SECRET");
const MOCK = env("PTK_MOCK_URL");
const REAL_KEY = env("PTK_REAL_OPENAI_KEY");
const SCREENSHOT = env("PTK_SCREENSHOT");
const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };

const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

async function chat(token) {
  const r = await fetch(`${PROXY}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(CHAT),
  });
  return { status: r.status, body: await r.json() };
}

// Polls until a request with `token` is refused (the verdict cache may hold an allow up to
// its TTL); returns the latency in ms.
async function refusedWithin(token, limitMs) {
  const t0 = Date.now();
  for (;;) {
    const r = await chat(token);
    if (r.status !== 200) {
      assert.equal(r.status, 401);
      assert.equal(r.body.error.message, "invalid or revoked token");
      return Date.now() - t0;
    }
    if (Date.now() - t0 > limitMs) throw new Error(`still allowed after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Polls until `token` is allowed again: each Envoy worker remembers a refusal for up to the
// deny TTL (1 s), so re-enabling can take that long.
async function allowedWithin(token, limitMs) {
  const t0 = Date.now();
  while ((await chat(token)).status !== 200) {
    if (Date.now() - t0 > limitMs) throw new Error(`still refused after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - t0;
}

const profile = mkdtempSync(join(tmpdir(), "ptk-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  locale: "en-GB",
  timezoneId: "Europe/Berlin",
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(10_000);
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));
const row = (hash) => page.locator(`tr[data-hash="${hash}"]`);
const faviconErrors = [];
page.on("response", (r) => {
  if (new URL(r.url()).pathname.endsWith("favicon.ico") && r.status() >= 400) faviconErrors.push(r.status());
});

try {
  // --- log in -------------------------------------------------------------------------------
  await page.goto(`${PROXY}/admin`);
  // The sign-in page says where the secret is (the stack passes ADMIN_SECRET).
  assert.match(await page.textContent("#secret-hint"), /ADMIN_SECRET/);
  // Browsers ask for /favicon.ico: answered by Envoy, never the filter's 401.
  assert.equal((await fetch(`${PROXY}/favicon.ico`)).status, 204);
  await page.fill('input[name="password"]', "not-the-secret");
  await page.click('button[type="submit"]');
  await page.locator("#login-error", { hasText: "invalid password" }).waitFor();
  await page.fill('input[name="password"]', SECRET);
  await page.click('button[type="submit"]');
  await page.locator("table#tokens").waitFor();
  assert.equal(new URL(page.url()).pathname, "/admin");
  // The stack has real keys for all three providers: each is marked, no key is shown.
  assert.equal(await page.locator("#provider-keys .key-on").count(), 3);
  assert.ok(!(await page.content()).includes(REAL_KEY), "a real key on the page");
  step("logged in through Envoy");

  // --- create, read the plaintext once ------------------------------------------------------
  await page.fill('#create input[name="label"]', "browser-test");
  await page.check('#create input[value="anthropic"]');
  await page.click('#create button[type="submit"]');
  await page.locator("#created").waitFor({ state: "visible" });
  const token = (await page.textContent("#created-token")).trim();
  assert.match(token, /^ptk_[A-Za-z0-9_-]{32}$/);
  // Only the snippets of the token's scopes (OpenAI and Anthropic, not Gemini).
  const snippets = await page.locator("#created .snippet-block:visible pre.snippet").allTextContents();
  assert.equal(snippets.length, 2, snippets.join("\n"));
  assert.ok(snippets.some((s) => s.includes(`OpenAI(base_url="${PROXY}/v1", api_key="${token}")`)), snippets.join("\n"));
  assert.ok(snippets.some((s) => s.includes(`anthropic.Anthropic(base_url="${PROXY}"`)));
  assert.ok(!snippets.some((s) => s.includes("genai.Client")), snippets.join("\n"));
  assert.equal(await page.locator('#created .snippet-block[data-provider="gemini"]:visible').count(), 0);
  const hash = createHash("sha256").update(token).digest("hex");
  await row(hash).waitFor();
  assert.equal((await row(hash).locator("td.label").textContent()).trim(), "browser-test");
  assert.equal((await row(hash).locator("td.last4").textContent()).trim(), `…${token.slice(-4)}`);
  assert.deepEqual(await row(hash).locator(".pill").allTextContents(), ["openai", "anthropic"]);
  // The hash the CLI takes: a prefix shown, the whole hash in the title; the rate limit.
  const hashCell = row(hash).locator("td.hash code");
  assert.equal(await hashCell.getAttribute("title"), hash);
  assert.equal((await hashCell.textContent()).trim(), `${hash.slice(0, 12)}…`);
  assert.match((await row(hash).locator("td.rate-limit").textContent()).trim(), /^default \(\d+ per \d+ s\)$/);
  // Times are rendered in the browser's locale, not the server's UTC text.
  const created = (await row(hash).locator("td time").first().textContent()).trim();
  assert.ok(!created.endsWith("UTC"), `created time not localised: ${created}`);
  step(`created ${token.slice(0, 8)}…, plaintext and snippets shown`);

  // The plaintext is shown once: a reload has it nowhere.
  await page.reload();
  await row(hash).waitFor();
  assert.ok(!(await page.content()).includes(token), "plaintext still on the page after reload");
  assert.equal(await page.locator("#created").isVisible(), false);

  // --- use it through Envoy -----------------------------------------------------------------
  await fetch(`${MOCK}/__mock/reset`, { method: "POST" });
  const ok = await chat(token);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const recorded = await (await fetch(`${MOCK}/__mock/requests`)).json();
  assert.equal(recorded.length, 1);
  const auth = recorded[0].headers.filter(([name]) => name === "authorization").map(([, v]) => v);
  assert.deepEqual(auth, [`Bearer ${REAL_KEY}`], "the mock saw the real key");
  assert.ok(!JSON.stringify(recorded).includes(token), "the proxy token never went upstream");
  step("token used through Envoy; the mock upstream got the real key");

  // --- disable from the table; the next request is refused -------------------------------------
  await row(hash).locator('button[data-action="toggle"]').click();
  await page.locator(`tr[data-hash="${hash}"][data-state="disabled"]`).waitFor();
  assert.match(await row(hash).getAttribute("class"), /\bdim\b/);
  const latency = await refusedWithin(token, 3000);
  step(`disabled in the table; refused through Envoy after ${latency} ms`);
  console.log(`REVOCATION_LATENCY_MS=${latency}`);

  // --- enable again, then edit the expiry in place (past -> expired, then clear) ---------------
  await row(hash).locator('button[data-action="toggle"]').click();
  await page.locator(`tr[data-hash="${hash}"][data-state="active"]`).waitFor();
  await row(hash).locator('button[data-action="edit-expiry"]').click();
  const editor = row(hash).locator("input.expiry-editor");
  await editor.waitFor({ state: "visible" });
  await editor.fill("2020-01-02T03:04");
  await page.locator(`tr[data-hash="${hash}"][data-state="expired"]`).waitFor();
  assert.match(await row(hash).getAttribute("class"), /\bdim expired\b/);
  await row(hash).locator(".badge", { hasText: "expired" }).waitFor();
  const expiredRefused = await chat(token);
  assert.equal(expiredRefused.status, 401);
  step("expiry edited in place: row marked expired and dimmed");

  // A second token, disabled, so the screenshot shows every state.
  await page.fill('#create input[name="label"]', "ci-runner");
  await page.fill('#create input[name="token"]', "ci-runner-custom-token-01");
  await page.fill('#create input[name="rl_count"]', "30");
  await page.fill('#create input[name="rl_window"]', "60");
  await page.click('#create button[type="submit"]');
  await page.locator("#created-token", { hasText: "ci-runner-custom-token-01" }).waitFor();
  await page.locator("tr[data-hash]").nth(1).waitFor();
  const ciHash = createHash("sha256").update("ci-runner-custom-token-01").digest("hex");
  assert.equal((await row(ciHash).locator("td.rate-limit").textContent()).trim(), "30 per 60 s");
  // The second token has the openai scope only: one snippet.
  assert.equal(await page.locator("#created .snippet-block:visible").count(), 1);
  await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  step(`screenshot saved to ${SCREENSHOT}`);

  await row(hash).locator('button[data-action="clear-expiry"]').click();
  await page.locator(`tr[data-hash="${hash}"][data-state="active"]`).waitFor();
  await allowedWithin(token, 3000); // clearing the expiry revives the token

  // --- a server error is shown to the user ----------------------------------------------------
  await page.fill('#create input[name="label"]', "too-short");
  await page.fill('#create input[name="token"]', "short");
  await page.click('#create button[type="submit"]');
  await page.locator("#flash", { hasText: "custom token too short (min 12 chars)" }).waitFor();
  await page.fill('#create input[name="token"]', "");
  step("server validation error shown in the flash area");

  // --- delete with confirmation -----------------------------------------------------------------
  let confirmed = "";
  page.once("dialog", async (dialog) => { confirmed = dialog.message(); await dialog.accept(); });
  await row(hash).locator('button[data-action="delete"]').click();
  await row(hash).waitFor({ state: "detached" });
  assert.match(confirmed, /Delete this token/);
  const deleted = await refusedWithin(token, 3000);
  step(`deleted after confirmation; refused after ${deleted} ms`);

  // --- one page at a time: older/newer, and the refresh re-reads the shown page only -------------
  const api = (method, path, body) => page.evaluate(async ([method, path, body]) => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch(path, { method, credentials: "same-origin",
      headers: { "x-csrf-token": csrf, "content-type": "application/json" },
      body: body === null ? undefined : JSON.stringify(body) });
    return r.status === 201 ? (await r.json()).hash : r.status;
  }, [method, path, body]);
  const paging = [];
  for (let i = 0; i < 101; i++) paging.push(await api("POST", "/admin/api/tokens", { label: `page-${i}`, providers: ["openai"] }));
  assert.ok(paging.every((h) => typeof h === "string"), `creates failed: ${paging}`);
  await page.reload();
  await page.locator("table#tokens").waitFor();
  assert.equal(await page.locator("tr[data-hash]").count(), 100);
  assert.ok(await page.locator("#prev-page").isDisabled());
  const newest = await page.locator("tr[data-hash]").first().getAttribute("data-hash");
  assert.equal(newest, paging[100]);
  await page.click("#next-page");
  await row(newest).waitFor({ state: "detached" });
  await row(paging[0]).waitFor();
  assert.ok(await page.locator("#next-page").isDisabled(), "older still enabled on the last page");
  assert.ok(!(await page.locator("#prev-page").isDisabled()));
  // The 5 s refresh asks for the page on screen (by its cursor), never the whole list.
  const refreshed = await page.waitForRequest((r) => r.url().includes("/admin/fragments/tokens"), { timeout: 7000 });
  assert.match(refreshed.url(), /\/admin\/fragments\/tokens\?after=/);
  await page.waitForTimeout(300);
  await row(paging[0]).waitFor();
  assert.equal(await row(newest).count(), 0, "the refresh went back to the first page");
  await page.click("#prev-page");
  await row(newest).waitFor();
  for (const h of paging) assert.equal(await api("DELETE", `/admin/api/tokens/${h}`, null), 204);
  step("paging: 100 rows a page, older/newer, the refresh re-reads the shown page");

  // --- a lost session sends the user back to login -----------------------------------------------
  await context.clearCookies();
  await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
  await page.locator('input[name="password"]').waitFor();
  step("lost session: back on the login page");

  // The 400 and 401 answers above were provoked on purpose; anything else (a CSP violation,
  // a script error) fails the test.
  const unexpected = consoleErrors.filter((e) => !/^Failed to load resource: .* (400|401) /.test(e));
  assert.deepEqual(faviconErrors, [], "the browser's /favicon.ico got an error status");
  assert.deepEqual(unexpected, [], "no CSP violations or script errors");
  step("dashboard browser test passed");
} catch (error) {
  try {
    const failure = SCREENSHOT.replace(/\.png$/, "-failure.png");
    await page.screenshot({ path: failure, fullPage: true });
    console.error(`failure screenshot: ${failure}`);
  } catch { /* the page may be gone */ }
  console.error(error);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
