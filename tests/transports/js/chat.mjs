// Two real XMPP client libraries log in to Casper, see each other's presence and exchange a
// message each way. Usage: node chat.mjs '<json>' where json is
//   {"domain": "localhost", "romeo": {lib, service, user, password, resource}, "juliet": {...}}
// lib is "xmpp.js" (@xmpp/client, WebSocket) or "strophe" (strophe.js, BOSH or WebSocket by
// the service URL). Prints one JSON line with what each side saw; exits 1 on any failure.

import { makeActor } from "./actors.mjs";

const config = JSON.parse(process.argv[2]);
const bare = (jid) => (jid || "").split("/")[0];
const result = { ok: false, steps: [] };
const step = (name) => result.steps.push(name);

async function main() {
  const romeo = makeActor({ domain: config.domain, ...config.romeo });
  const juliet = makeActor({ domain: config.domain, ...config.juliet });
  result.romeo = { library: romeo.library, jid: await romeo.connect() };
  step("romeo logged in");
  result.juliet = { library: juliet.library, jid: await juliet.connect() };
  step("juliet logged in");

  await romeo.presence();
  await juliet.presence();
  const available = (who) => (s) => s.name === "presence" && !s.type && bare(s.from) === bare(who.jid);
  result.romeo.sawPresenceFrom = (await romeo.waitFor(available(juliet), "juliet's presence")).from;
  result.juliet.sawPresenceFrom = (await juliet.waitFor(available(romeo), "romeo's presence")).from;
  step("presence seen both ways");

  await romeo.message(bare(juliet.jid), "Wherefore art thou?");
  const toJuliet = await juliet.waitFor((s) => s.name === "message" && s.body, "romeo's message");
  result.juliet.received = { from: toJuliet.from, body: toJuliet.body };
  await juliet.message(toJuliet.from, "Here, on the balcony.");
  const toRomeo = await romeo.waitFor((s) => s.name === "message" && s.body, "juliet's reply");
  result.romeo.received = { from: toRomeo.from, body: toRomeo.body };
  step("messages exchanged");

  await juliet.stop();
  const gone = (s) => s.name === "presence" && s.type === "unavailable" && s.from === juliet.jid;
  result.romeo.sawUnavailableFrom = (await romeo.waitFor(gone, "juliet's unavailable presence")).from;
  step("logout seen");
  await romeo.stop();
  result.ok = true;
}

main()
  .catch((err) => {
    result.error = String(err && err.stack ? err.stack : err);
  })
  .finally(() => {
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  });
