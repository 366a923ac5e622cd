// converse.js (the web chat client, from npm) in Debian's headless chromium, driven by
// playwright-core. The page is served from another origin than Casper (so CORS and the
// WebSocket Origin check are exercised). romeo logs in through converse over WebSocket or
// BOSH; juliet is an @xmpp/client (xmpp.js) over WebSocket. romeo sees juliet online, types a
// message in converse's chat box that juliet receives, juliet answers and the answer shows
// up in the page; then a screenshot. Usage: node converse.mjs '<json>' with
//   {domain, transport: "websocket"|"bosh", websocket, bosh, screenshot, chromium}
// Prints one JSON line; exits 1 on failure.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { XmppJsActor } from "./actors.mjs";

const config = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "node_modules", "converse.js", "dist");
const result = { ok: false, steps: [], transport: config.transport };
const step = (name) => result.steps.push(name);
const TYPES = { ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
  ".wasm": "application/wasm", ".svg": "image/svg+xml", ".woff2": "font/woff2", ".png": "image/png" };

function page() {
  const connection =
    config.transport === "websocket"
      ? `websocket_url: ${JSON.stringify(config.websocket)}`
      : `bosh_service_url: ${JSON.stringify(config.bosh)}`;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Casper + converse.js</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body class="converse-fullscreen"><script type="module">
  import converse from "/dist/converse.min.js";
  window.casper = { connected: false, received: [] };
  converse.plugins.add("casper-test", {
    initialize() {
      const api = this._converse.api;
      window.casper.api = api;
      api.listen.on("connected", () => { window.casper.connected = true; });
      api.listen.on("message", (data) => {
        const body = data.attrs && data.attrs.body;
        if (body) window.casper.received.push({ from: data.attrs.from, body });
      });
    },
  });
  converse.initialize({
    ${connection},
    assets_path: "/dist/",
    auto_login: true,
    jid: "romeo@${config.domain}/converse",
    password: "secret",
    auto_reconnect: false,
    discover_connection_methods: false,
    view_mode: "fullscreen",
    play_sounds: false,
    show_send_button: true,
    allow_non_roster_messaging: true,
    whitelisted_plugins: ["casper-test"],
    blacklisted_plugins: ["converse-omemo"],
    loglevel: "info",
  });
</script></body></html>`;
}

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page());
      return;
    }
    const file = path.normalize(path.join(dist, url.pathname.replace(/^\/dist\//, "")));
    if (!url.pathname.startsWith("/dist/") || !file.startsWith(dist) || !fs.existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "localhost", () => resolve(server)));
}

async function main() {
  const web = await serve();
  const origin = `http://localhost:${web.address().port}`;
  const juliet = new XmppJsActor({ service: config.websocket, domain: config.domain, user: "juliet",
    password: "secret", resource: "xmppjs" });
  result.juliet = await juliet.connect();
  await juliet.presence();
  step("juliet online");

  const userDataDir = fs.mkdtempSync(path.join(config.tmp, "chromium-"));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: config.chromium,
    headless: true,
    viewport: { width: 1100, height: 700 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const logs = [];
  try {
    const tab = browser.pages()[0] || (await browser.newPage());
    tab.on("console", (msg) => logs.push(`${msg.type()}: ${msg.text()}`.slice(0, 300)));
    tab.on("pageerror", (err) => logs.push(`pageerror: ${err}`));
    await tab.goto(origin + "/");
    await tab.waitForFunction(() => window.casper && window.casper.connected, null, { timeout: 20000 });
    step("converse logged in");

    await tab.waitForFunction(
      async (jid) => {
        const contact = await window.casper.api.contacts.get(jid);
        return contact?.getStatus() === "online";
      },
      `juliet@${config.domain}`,
      { timeout: 20000 },
    );
    step("converse sees juliet online");

    await tab.evaluate((jid) => window.casper.api.chats.open(jid, {}, true), `juliet@${config.domain}`);
    const box = tab.locator("textarea.chat-textarea").first();
    await box.waitFor({ timeout: 15000 });
    await box.fill("Typed in converse.js");
    await box.press("Enter");
    const got = await juliet.waitFor((s) => s.name === "message" && s.body, "converse's message");
    result.julietReceived = { from: got.from, body: got.body };
    step("juliet received the typed message");

    await juliet.message(got.from, "Answer from xmpp.js");
    await tab.waitForFunction(() => window.casper.received.some((m) => m.body === "Answer from xmpp.js"),
      null, { timeout: 15000 });
    await tab.getByText("Answer from xmpp.js").first().waitFor({ timeout: 15000 });
    result.converseReceived = await tab.evaluate(() => window.casper.received);
    step("the answer shows in the page");

    await tab.screenshot({ path: config.screenshot });
    result.screenshot = config.screenshot;
    step("screenshot");

    await tab.evaluate(() => window.casper.api.user.logout());
    const gone = (s) => s.name === "presence" && s.type === "unavailable" && s.from === got.from;
    await juliet.waitFor(gone, "romeo's logout");
    step("logged out");
    result.ok = true;
  } catch (err) {
    const tab = browser.pages()[0];
    result.contact = await tab
      .evaluate(async (jid) => {
        const contact = await window.casper.api.contacts.get(jid);
        return contact ? { attrs: contact.toJSON(), status: contact.getStatus?.() } : null;
      }, `juliet@${config.domain}`)
      .catch((e) => String(e));
    throw err;
  } finally {
    result.browserLog = logs.filter((l) => /error|warn/i.test(l)).slice(-15);
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    await juliet.stop().catch(() => {});
    web.close();
  }
}

main()
  .catch((err) => {
    result.error = String(err && err.stack ? err.stack : err).slice(0, 3000);
  })
  .finally(() => {
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  });
