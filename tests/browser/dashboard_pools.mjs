// The dashboard's key pool fields in a real browser (Debian's Chromium via playwright-core),
// through the real Envoy: create a token with a model allow-list and a key pool, see both shown
// as text in its row, edit them in place (an HTML-looking model name is refused and never
// rendered), and read the provider keys' states (usable, cooling until, refused until) with no
// key on the page. Run by tests/e2e/test_dashboard_browser.py with:
//   PTK_PROXY_URL  http://127.0.0.1:<envoy port>     PTK_ADMIN_SECRET  the admin secret
//   PTK_POOLS_EXPECT  JSON: {"keys": {name: state}, "secrets": [key values never shown]}
//   PTK_SCREENSHOT where to save the screenshot
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const PROXY = env("PTK_PROXY_URL");
const SECRET = env("PTK_ADMIN_SECRET");
const EXPECT = JSON.parse(env("PTK_POOLS_EXPECT"));
const SCREENSHOT = env("PTK_SCREENSHOT");
const HTML_MODEL = '<img src=x onerror="window.__pwned=1">gpt-x';

const profile = mkdtempSync(join(tmpdir(), "ptk-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  locale: "en-GB",
  timezoneId: "Europe/Berlin",
  viewport: { width: 1400, height: 1000 },
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(10_000);
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));

try {
  await page.goto(`${PROXY}/admin`);
  await page.fill('input[name="password"]', SECRET);
  await page.click('button[type="submit"]');
  await page.locator("table#tokens").waitFor();

  // --- create with models and a pool ----------------------------------------------------------
  await page.fill('#create input[name="label"]', "pooled");
  await page.fill('#create input[name="models"]', " gpt-4o , claude-* ");
  await page.fill('#create input[name="key_pool"]', "team_a");
  await page.click('#create button[type="submit"]');
  await page.locator("#created").waitFor({ state: "visible" });
  const row = page.locator("tr[data-hash]", { has: page.locator("td.label", { hasText: "pooled" }) });
  await row.waitFor();
  assert.equal((await row.locator(".models-text").textContent()).trim(), "gpt-4o, claude-*");
  assert.equal((await row.locator(".key-pool-text").textContent()).trim(), "team_a");
  console.log("created with models and a pool, shown as text");

  // --- edit in place: an HTML-looking model name is refused, shown (if at all) as text ----------
  await row.locator('button[data-action="edit-models"]').click();
  const editor = row.locator('.text-editor[data-field="models"]');
  assert.equal(await editor.inputValue(), "gpt-4o, claude-*");
  await editor.fill(HTML_MODEL);
  await editor.press("Enter");
  await page.locator("#flash", { hasText: "model name" }).waitFor();
  assert.ok((await page.textContent("#flash")).includes("<img"), "the refusal quotes the name as text");
  assert.equal(await page.locator("#flash img, #rows img").count(), 0, "a model name rendered as markup");
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal((await row.locator(".models-text").textContent()).trim(), "gpt-4o, claude-*");
  // Blank clears the list (any model); the pool goes back to the default one the same way.
  await row.locator('button[data-action="edit-models"]').click();
  await editor.fill("");
  await editor.press("Enter");
  await row.locator(".models-text", { hasText: "any" }).waitFor();
  await row.locator('button[data-action="edit-key-pool"]').click();
  const poolEditor = row.locator('.text-editor[data-field="key_pool"]');
  assert.equal(await poolEditor.inputValue(), "team_a");
  await poolEditor.fill("");
  await poolEditor.press("Enter");
  await row.locator(".key-pool-text", { hasText: "default" }).waitFor();
  console.log("edited in place; the HTML-looking model name was refused and never rendered");

  // --- the provider keys' states --------------------------------------------------------------
  await page.reload();
  await page.locator("section#keys").waitFor();
  for (const [name, state] of Object.entries(EXPECT.keys)) {
    const keyRow = page.locator(`#keys tr[data-key="${name}"]`);
    assert.equal(await keyRow.getAttribute("data-state"), state, name);
    const text = (await keyRow.locator("td.state").textContent()).trim();
    if (state === "usable") assert.equal(text, "usable");
    // The browser shows the end in its locale (en-GB, Europe/Berlin).
    else assert.match(text, new RegExp(`^${state} until \\d{1,2} \\w{3} \\d{4}, \\d{2}:\\d{2}$`), text);
  }
  const html = await page.content();
  for (const secret of EXPECT.secrets) assert.ok(!html.includes(secret), "a key on the page");
  await page.locator("section#keys").scrollIntoViewIfNeeded();
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log("keys view: states by name, no key on the page");

  const unexpected = consoleErrors.filter((e) => !/^Failed to load resource: .* 400 /.test(e));
  assert.deepEqual(unexpected, [], "no CSP violations or script errors");
} catch (error) {
  try {
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-failure.png"), fullPage: true });
  } catch { /* the page may be gone */ }
  console.error(error);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
