// A browser Realtime app with a client secret (issue 10 item 13), in Debian's Chromium via
// playwright-core. This script is the app's backend: it serves the page and the bundled browser
// build of `openai`, and on POST /session mints a client secret through the proxy with the Node
// build of `openai` and a proxy token (`client.realtime.clientSecrets.create()`), as a real
// backend does with its API key. The page then opens Realtime over the WebSocket subprotocol
// through the proxy's TLS listener. Prints the page's results as one JSON line for
// tests/e2e/test_browser_client_secrets.py. Env: PTK_PROXY_URL, PTK_PROXY_TLS_URL, PTK_TOKEN.
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import OpenAI from "openai";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const backend = new OpenAI({ apiKey: env("PTK_TOKEN"), baseURL: env("PTK_PROXY_URL") + "/v1",
                             maxRetries: 0 });
const tls = env("PTK_PROXY_TLS_URL");

const bundle = await build({
  entryPoints: [join(here, "realtime_entry.mjs")], bundle: true, format: "esm",
  platform: "browser", target: "chrome120", write: false, logLevel: "error",
});
const files = {
  "/page.html": ["text/html; charset=utf-8", readFileSync(join(here, "realtime_page.html"))],
  "/sdk.mjs": ["text/javascript; charset=utf-8", bundle.outputFiles[0].contents],
};

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/session" && req.method === "POST") {
    try {
      const secret = await backend.realtime.clientSecrets.create({
        session: { type: "realtime", model: "gpt-realtime" },
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ value: secret.value, expires_at: secret.expires_at }));
    } catch (e) {
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: String(e) }));
    }
    return;
  }
  const file = files[path];
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
  // The proxy's TLS listener has the test stack's development certificate.
  ignoreHTTPSErrors: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  await page.addInitScript((cfg) => { window.PTK = cfg; }, { tls });
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
