// The dashboard's usage view in a real browser (Debian's Chromium via playwright-core), through
// the real Envoy: log in, read the fleet's totals per token and per model, open one token's
// usage per model and per day, see a markup-looking model name shown as text, pick a later
// `since` day (empty state), and download the CSV export with the session. Run by
// tests/e2e/test_dashboard_browser.py, which drove the usage and says what must show:
//   PTK_PROXY_URL  http://127.0.0.1:<envoy port>     PTK_ADMIN_SECRET  the admin secret
//   PTK_SCREENSHOT where to save the screenshot      PTK_USAGE_EXPECT  the expected rows (JSON)
import { readFileSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
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
const SCREENSHOT = env("PTK_SCREENSHOT");
const EXPECT = JSON.parse(env("PTK_USAGE_EXPECT"));

const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

const profile = mkdtempSync(join(tmpdir(), "ptk-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  locale: "en-GB",
  timezoneId: "Europe/Berlin",
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(10_000);
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));

// A usage table's body rows as objects: data-col -> the cell's text.
const rowsOf = (table) => page.locator(`${table} tbody tr`).evaluateAll((rows) => rows.map((row) =>
  Object.fromEntries(Array.from(row.cells).filter((td) => td.dataset.col)
    .map((td) => [td.dataset.col, td.textContent]))));
// The rows keyed by model (the provider column left out: the expectations name models).
const byModel = async (table) => Object.fromEntries((await rowsOf(table))
  .map(({ provider, model, ...counts }) => [model, counts]));

try {
  await page.goto(`${PROXY}/admin`);
  await page.fill('input[name="password"]', SECRET);
  await page.click('button[type="submit"]');
  await page.locator("table#tokens").waitFor();
  step("logged in through Envoy");

  // --- the fleet: per token (costliest first) and per model ------------------------------------
  const fleetRow = page.locator(`#usage-tokens tr[data-token="${EXPECT.hash}"]`);
  await fleetRow.waitFor();
  const tokens = await rowsOf("#usage-tokens");
  const mine = tokens.find((t) => t.token === EXPECT.fleet_token.token);
  assert.deepEqual(mine, EXPECT.fleet_token);
  assert.equal(tokens[0].token, EXPECT.fleet_token.token, "the costliest token first");
  const fleetModels = await byModel("#usage-models");
  for (const [model, counts] of Object.entries(EXPECT.fleet_models)) {
    assert.deepEqual(fleetModels[model], counts, `fleet row of ${model}`);
  }
  // "Incomplete" is explained where it shows.
  assert.match(await page.locator('#usage-models th[data-col="incomplete"]').getAttribute("title"), /aborted stream/);
  assert.match(await page.textContent("#usage-caption"), /Incomplete: responses whose usage was only partly seen/);
  step(`fleet: ${tokens.length} token(s), ${Object.keys(fleetModels).length} model(s) as expected`);

  // --- one token: per model and per day, opened from the token table --------------------------
  await page.locator(`#rows tr[data-hash="${EXPECT.hash}"] button[data-action="usage"]`).click();
  await page.locator("#token-usage").waitFor({ state: "visible" });
  assert.equal(await page.textContent("#token-usage-name"), `${EXPECT.label} (${EXPECT.hash.slice(0, 12)}…)`);
  assert.deepEqual(await byModel("#token-usage-models"), EXPECT.models);
  assert.deepEqual(await rowsOf("#token-usage-days"), [EXPECT.day]);
  // The token's budgets: its own (exact figures) and its group's, with what is left.
  const budgetRows = await page.$$eval("#token-budgets-table tbody tr", (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.equal(budgetRows.length, 2, JSON.stringify(budgetRows));
  assert.deepEqual(budgetRows.find((r) => r[0].startsWith("token")), EXPECT.budgets[0]);
  const groupRow = budgetRows.find((r) => r[0].startsWith("group"));
  assert.equal(groupRow[0], EXPECT.group_budget);
  assert.match(groupRow[1], /^\$5\.00$/);
  assert.equal(await page.locator("#token-budgets-none").isVisible(), false);
  const unknown = page.locator("#token-usage-models td.unknown-price");
  assert.equal(await unknown.count(), 1);
  assert.match(await unknown.getAttribute("title"), /1 of 1 responses had no price/);
  assert.equal(await page.locator("#token-usage-models td.warn").count(), 1, "incomplete marked");
  // The markup-looking model name is text: no element made of it, no script run.
  assert.ok(EXPECT.html_model in EXPECT.models);
  assert.equal(await page.locator("img").count(), 0, "a model name became markup");
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await page.locator("#usage").scrollIntoViewIfNeeded();
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.locator("main").screenshot({ path: SCREENSHOT });
  step("token: per model and per day as expected; model names shown as text");

  // --- the CSV export, downloaded with the session ---------------------------------------------
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#usage-csv")]);
  assert.match(download.suggestedFilename(), /^ptk-usage-since-\d{4}-\d{2}-01\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").split("\n");
  assert.match(csv[0], /^day,token,label,provider,model,api,requests,incomplete,input_tokens,/);
  assert.ok(csv.includes(EXPECT.csv_line), `no ${EXPECT.csv_line} in\n${csv.join("\n")}`);
  assert.equal(csv.filter((line) => line.includes(EXPECT.hash)).length, EXPECT.csv_rows, csv.join("\n"));
  step("CSV downloaded");

  // --- a later `since`: the empty states; back, then open the token from the fleet table --------
  const since = await page.inputValue("#usage-since");
  await page.fill("#usage-since", "2999-01-01");
  await page.locator("#usage-empty", { hasText: "Nothing metered since 2999-01-01" }).waitFor();
  await page.locator("#token-usage-empty", { hasText: "Nothing metered for this token since 2999-01-01" }).waitFor();
  assert.equal(await page.locator("#usage-fleet").isVisible(), false);
  assert.match(await page.getAttribute("#usage-csv", "href"), /since=2999-01-01$/);
  await page.fill("#usage-since", since);
  await page.locator("#token-usage-close").click();
  await fleetRow.locator("button").click();
  await page.locator("#token-usage-days tbody tr").waitFor();
  assert.deepEqual(await rowsOf("#token-usage-days"), [EXPECT.day]);
  step("since picker: empty state, then back; opened from the fleet table");

  assert.deepEqual(consoleErrors, [], "no CSP violations or script errors");
  step("usage view browser test passed");
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
