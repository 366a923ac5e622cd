// A real XMPP client library goes invisible on Casper with a strategy it can speak, while two
// contacts watch. Usage: node invisible.mjs '<json>' where json is
//   {"domain", "strategy", "health", "romeo": {lib, service, user, password, resource},
//    "juliet": {...}, "benvolio": {...}}
// strategy is the server's strategy plugin, and says how romeo hides and shows himself:
//   invisible-command  <iq type='set'><invisible xmlns='urn:xmpp:invisible:1'/></iq> (XEP-0186),
//                      then directed presence to juliet
//   directed-presence  <presence type='unavailable'/> while staying connected, then directed
//                      presence to juliet (Openfire "Casper" style, plain RFC 6121)
//   xep0018            <presence type='invisible'/>, then <presence type='visible' to=juliet/>
// All three log in and see each other; romeo hides; juliet and benvolio get his unavailable;
// juliet and romeo still exchange full-JID messages; romeo shows himself to juliet only; romeo
// logs out: juliet sees it, benvolio sees nothing after the hiding unavailable. health is
// Casper's /health URL, polled to know romeo's session has ended before checking that.
// Prints one JSON line; exits 1 on any failure.

import http from "node:http";
import { makeActor } from "./actors.mjs";

const config = JSON.parse(process.argv[2]);
const bare = (jid) => (jid || "").split("/")[0];
const result = { ok: false, strategy: config.strategy, steps: [] };
const step = (name) => result.steps.push(name);

const STRATEGIES = {
  "invisible-command": {
    hide: (actor) => actor.iq("set", "invisible", "urn:xmpp:invisible:1"),
    showTo: (actor, to) => actor.presence({ to }),
  },
  "directed-presence": {
    hide: (actor) => actor.presence({ type: "unavailable" }),
    showTo: (actor, to) => actor.presence({ to }),
  },
  xep0018: {
    hide: (actor) => actor.presence({ type: "invisible" }),
    showTo: (actor, to) => actor.presence({ to, type: "visible" }),
  },
};

const presenceFrom = (who, type) => (s) =>
  s.name === "presence" && s.type === type && bare(s.from) === bare(who.jid);

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
      if (health.sessions === count) return;
    } catch (err) {
      (result.healthErrors ??= []).push(String(err)); // reported, and polled again
    }
    if (Date.now() > deadline) throw new Error(`health: still ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main() {
  const strategy = STRATEGIES[config.strategy];
  if (!strategy) throw new Error(`unknown strategy ${config.strategy}`);
  const romeo = makeActor({ domain: config.domain, ...config.romeo });
  const juliet = makeActor({ domain: config.domain, ...config.juliet });
  const benvolio = makeActor({ domain: config.domain, ...config.benvolio });
  const observers = { juliet, benvolio };
  result.romeo = { library: romeo.library, jid: await romeo.connect() };
  for (const [name, actor] of Object.entries(observers)) {
    result[name] = { library: actor.library, jid: await actor.connect() };
  }
  step("all logged in");

  for (const actor of [romeo, juliet, benvolio]) await actor.presence();
  for (const [name, actor] of Object.entries(observers)) {
    result[name].sawPresenceFrom = (await actor.waitFor(presenceFrom(romeo), "romeo's presence")).from;
    await romeo.waitFor(presenceFrom(actor), `${name}'s presence`);
  }
  // a round trip each, so that late presence (probe answers) arrives before the marks
  for (const actor of [romeo, juliet, benvolio]) await actor.iq("get", "query", "jabber:iq:roster");
  step("presence seen");

  const marks = { juliet: juliet.mark(), benvolio: benvolio.mark() };
  await strategy.hide(romeo);
  step(`romeo hid (${config.strategy})`);
  for (const [name, actor] of Object.entries(observers)) {
    const gone = await actor.waitFor(presenceFrom(romeo, "unavailable"), "romeo's unavailable", marks[name]);
    result[name].sawUnavailableFrom = gone.from;
  }
  step("contacts saw romeo go");

  await juliet.message(romeo.jid, "Are you still there?");
  const toRomeo = await romeo.waitFor((s) => s.name === "message" && s.body, "juliet's full-JID message");
  result.romeo.received = { from: toRomeo.from, to: toRomeo.to, body: toRomeo.body };
  await romeo.message(toRomeo.from, "Only for you.");
  const toJuliet = await juliet.waitFor((s) => s.name === "message" && s.body, "romeo's answer");
  result.juliet.received = { from: toJuliet.from, body: toJuliet.body };
  step("full-JID messages exchanged while invisible");

  const beforeShow = juliet.mark();
  await strategy.showTo(romeo, bare(juliet.jid));
  result.juliet.sawDirectedFrom = (
    await juliet.waitFor(presenceFrom(romeo), "romeo's directed presence", beforeShow)
  ).from;
  step("romeo showed himself to juliet");

  if (config.strategy === "directed-presence") {
    // the plugin routes juliet's bare-JID messages to the session that showed itself to her
    const mark = romeo.mark();
    await juliet.message(bare(romeo.jid), "To your bare JID");
    const got = await romeo.waitFor((s) => s.name === "message" && s.body, "juliet's bare-JID message", mark);
    result.romeo.receivedBare = { from: got.from, to: got.to, body: got.body };
    step("bare-JID message reached the session shown to juliet");
  }

  const beforeLogout = juliet.mark();
  await romeo.stop();
  result.juliet.sawLogoutFrom = (
    await juliet.waitFor(presenceFrom(romeo, "unavailable"), "romeo's logout", beforeLogout)
  ).from;
  await sessionsLeft(2);
  // a round trip each: whatever the server sent them about romeo has arrived before the answer
  for (const actor of [juliet, benvolio]) await actor.iq("get", "query", "jabber:iq:roster");
  step("romeo logged out");

  for (const [name, actor] of Object.entries(observers)) {
    result[name].presencesFromRomeo = actor
      .since(marks[name])
      .filter((s) => s.name === "presence" && bare(s.from) === bare(romeo.jid))
      .map((s) => ({ from: s.from, type: s.type || "available" }));
  }
  await juliet.stop();
  await benvolio.stop();
  result.ok = true;
}

// a hung step still reports where it was (the test's own timeout would only kill node)
const watchdog = setTimeout(() => {
  result.error = `watchdog: stuck after ${result.steps.length} steps`;
  console.log(JSON.stringify(result));
  process.exit(1);
}, 50000);

main()
  .catch((err) => {
    result.error = String(err && err.stack ? err.stack : err);
  })
  .finally(() => {
    clearTimeout(watchdog);
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  });
