// converse.js (the web chat client, from npm) in Debian's headless chromium, driven by
// playwright-core. The page is served from another origin than Casper (so CORS and the
// WebSocket Origin check are exercised). romeo logs in through converse over WebSocket or
// BOSH; juliet is an @xmpp/client (xmpp.js) over WebSocket. romeo sees juliet online, types a
// message in converse's chat box that juliet receives, juliet answers and the answer shows
// up in the page; then a screenshot. Then romeo goes invisible through converse's own API,
// the way the server's strategy plugin (config.strategy) understands:
//   invisible-command  api.send() of <iq type='set'><invisible xmlns='urn:xmpp:invisible:1'/></iq>
//   xep0018            api.send() of <presence type='invisible'/>
// juliet sees him go unavailable; she still reaches his full JID and he still answers from
// the chat box; a second screenshot; romeo logs out and juliet gets no further presence.
// Usage: node converse.mjs '<json>' with
//   {domain, transport: "websocket"|"bosh", strategy, websocket, bosh, health, screenshot,
//    screenshotInvisible, chromium, tmp}
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
const logs = []; // the page's console
const bare = (jid) => (jid || "").split("/")[0];

// run in the page: converse's own API makes the logged-in user invisible. Not the
// directed-presence way: api.user.presence.send({type: "unavailable"}) does hide, but the
// server reflects the unavailable to the sending resource (RFC 6121 4.5.2) and converse
// answers its own unavailable with a fresh available presence (a workaround for a Prosody
// bug, in roster/contacts.js), so it is visible again at once.
const HIDE = {
  "invisible-command": () => {
    const { api, env } = window.casper;
    return api.send(env.stx`<iq type="set" xmlns="jabber:client"><invisible xmlns="urn:xmpp:invisible:1"/></iq>`);
  },
  xep0018: () => {
    const { api, env } = window.casper;
    return api.send(env.stx`<presence type="invisible" xmlns="jabber:client"/>`);
  },
};

// GET /health on a fresh connection, bounded in time
function getHealth() {
  return new Promise((resolve, reject) => {
    const req = http.get(config.health, { agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("health: no answer in 2 s")));
    req.on("error", reject);
  });
}

async function sessionsLeft(count) {
  const deadline = Date.now() + 10000;
  let health = null;
  for (;;) {
    result.healthPolls = (result.healthPolls ?? 0) + 1;
    try {
      health = await getHealth();
      if (health.sessions === count && health.bosh_sessions === 0) return;
    } catch (err) {
      (result.healthErrors ??= []).push(String(err)); // reported, and polled again
    }
    if (Date.now() > deadline) throw new Error(`health: still ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
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
  window.casper = { connected: false, received: [], sentPresences: [], env: converse.env };
  converse.plugins.add("casper-test", {
    initialize() {
      const api = this._converse.api;
      window.casper.api = api;
      api.listen.on("connected", () => { window.casper.connected = true; });
      api.listen.on("send", (el) => {
        if (el.tagName === "presence") window.casper.sentPresences.push(el.outerHTML);
      });
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

    const romeo = got.from;
    const fromRomeo = (s) => s.name === "presence" && bare(s.from) === bare(romeo);
    const beforeHiding = juliet.mark();
    await tab.evaluate(HIDE[config.strategy]);
    step(`converse went invisible (${config.strategy})`);
    const hidden = await juliet.waitFor((s) => fromRomeo(s) && s.type === "unavailable",
      "romeo's unavailable", beforeHiding);
    result.julietSawUnavailableFrom = hidden.from;
    step("juliet saw romeo go");

    await juliet.message(romeo, "Still there, invisible?");
    await tab.getByText("Still there, invisible?").first().waitFor({ timeout: 15000 });
    const beforeTyping = juliet.mark();
    await box.fill("Yes, only for you");
    await box.press("Enter");
    const answer = await juliet.waitFor((s) => s.name === "message" && s.body, "romeo's invisible answer",
      beforeTyping);
    result.julietReceivedWhileInvisible = { from: answer.from, body: answer.body };
    result.converseReceived = await tab.evaluate(() => window.casper.received);
    step("messages exchanged while invisible");

    await tab.getByText("Yes, only for you").first().waitFor({ timeout: 15000 });
    await tab.screenshot({ path: config.screenshotInvisible });
    result.screenshotInvisible = config.screenshotInvisible;
    step("screenshot while invisible");

    // not awaited in the page: converse resolves logout() after its own teardown
    // (clearSession), which now and then never ends in headless chromium; the server's
    // health count says when the session is really gone
    await tab.evaluate(() => { window.casper.api.user.logout(); });
    step("logout requested");
    await sessionsLeft(1);
    step("session gone");
    await juliet.iq("get", "query", "jabber:iq:roster"); // anything about romeo arrived before this
    // from the unavailable on: converse may have sent presence (caps, vCard) just before
    const seen = juliet.since(beforeHiding).filter(fromRomeo);
    result.julietPresencesFromRomeo = seen
      .slice(seen.indexOf(hidden))
      .map((s) => ({ from: s.from, type: s.type || "available" }));
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
    result.sentPresences = await browser.pages()[0]?.evaluate(() => window.casper.sentPresences).catch(() => null);
    result.browserLog = logs.filter((l) => /error|warn/i.test(l)).slice(-15);
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
    await juliet.stop().catch(() => {});
    web.close();
  }
}

// a hung step still reports where it was (the test's own timeout would only kill node)
const watchdog = setTimeout(() => {
  result.error = `watchdog: stuck after ${result.steps.length} steps`;
  result.browserLog = logs.slice(-40);
  console.log(JSON.stringify(result));
  process.exit(1);
}, 100000);

main()
  .catch((err) => {
    result.error = String(err && err.stack ? err.stack : err).slice(0, 3000);
  })
  .finally(() => {
    clearTimeout(watchdog);
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  });
