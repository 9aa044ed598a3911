// The real browser builds of openai, @anthropic-ai/sdk and @google/genai on a page of another
// origin (http://localhost:<port>) calling the proxy (http://127.0.0.1:<port>) in Debian's
// Chromium via playwright-core. The SDKs are bundled here with esbuild for the browser
// platform, as a web app would; prints the page's results as one JSON line for
// tests/e2e/test_browser_sdks.py. Env: PTK_PROXY_URL, PTK_TOKEN.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const config = { proxy: env("PTK_PROXY_URL"), token: env("PTK_TOKEN") };

const bundle = await build({
  entryPoints: [join(here, "sdk_entry.mjs")], bundle: true, format: "esm",
  platform: "browser", target: "chrome120", write: false, logLevel: "error",
});
const files = {
  "/page.html": ["text/html; charset=utf-8", readFileSync(join(here, "sdk_page.html"))],
  "/sdks.mjs": ["text/javascript; charset=utf-8", bundle.outputFiles[0].contents],
};

const server = createServer((req, res) => {
  const file = files[new URL(req.url, "http://x").pathname];
  if (!file) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { "content-type": file[0] });
  res.end(file[1]);
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
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  await page.addInitScript((cfg) => { window.PTK = cfg; }, config);
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.PTK_RESULTS !== undefined, null, { timeout: 45_000 })
    .catch(() => {});
  const results = await page.evaluate(() => window.PTK_RESULTS ?? null);
  console.log(JSON.stringify({ origin: new URL(pageUrl).origin, results, console: console_ }));
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
