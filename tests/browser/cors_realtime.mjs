// A page on another origin (http://localhost:<port>) calls the proxy (http://127.0.0.1:<port>)
// the way browser builds of the SDKs do: fetch for OpenAI, Anthropic (with its direct-browser
// opt-in header) and Gemini, and the OpenAI Realtime WebSocket with the subprotocol key. Runs in
// Debian's Chromium via playwright-core; prints the page's results as one JSON line for
// tests/e2e/test_browser_cors_realtime.py to check. Env: PTK_PROXY_URL, PTK_TOKEN,
// PTK_GEMINI_ONLY_TOKEN.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const config = {
  proxy: env("PTK_PROXY_URL"),
  token: env("PTK_TOKEN"),
  geminiOnly: env("PTK_GEMINI_ONLY_TOKEN"),
};
const html = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "cors_page.html"));

// The page's own origin: a different port (and host name) than the proxy, both on loopback.
const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(html);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://localhost:${server.address().port}/page.html`;

const profile = mkdtempSync(join(tmpdir(), "ptk-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.addInitScript((cfg) => { window.PTK = cfg; }, config);
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.PTK_RESULTS !== undefined, null, { timeout: 20_000 });
  const results = await page.evaluate(() => window.PTK_RESULTS);
  console.log(JSON.stringify({ origin: new URL(pageUrl).origin, results }));
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
