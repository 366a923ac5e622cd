// Thin adapters giving two third-party XMPP libraries one small interface for chat.mjs and
// invisible.mjs:
//   connect(), presence(attrs), message(to, body), iq(type, child, xmlns), waitFor(predicate,
//   what, since), mark(), since(mark), stop()
// Stanzas are handed to predicates as plain objects: {name, from, to, type, body}; mark()
// numbers the next stanza to arrive, so waitFor(..., since) and since() see only later ones.
// xmpp.js (@xmpp/client) speaks WebSocket; strophe.js speaks BOSH or WebSocket (by URL).

import xhr2 from "xhr2";
import WebSocket from "ws";

// Node 20 has neither a global WebSocket (xmpp.js needs one) nor XMLHttpRequest (strophe's
// BOSH). xhr2 provides the latter but without `responseXML`, which strophe's BOSH reads;
// browsers parse it natively, here strophe's own DOMParser shim (@xmldom/xmldom) does.
class XMLHttpRequestWithXML extends xhr2 {
  get responseXML() {
    const text = this.responseText;
    return text ? new globalThis.DOMParser().parseFromString(text, "text/xml") : null;
  }
}
globalThis.WebSocket ??= WebSocket;
globalThis.XMLHttpRequest ??= XMLHttpRequestWithXML;

const STEP_MS = 10000;

class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    this.items.push(item);
    for (const waiter of [...this.waiters]) waiter();
  }
  mark() {
    return this.items.length;
  }
  since(mark) {
    return this.items.slice(mark);
  }
  waitFor(predicate, what, since = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.items.slice(since).find(predicate);
        if (found) {
          this.waiters = this.waiters.filter((w) => w !== check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        const got = JSON.stringify(this.items.slice(since));
        reject(new Error(`${this.label}: timed out waiting for ${what}; got ${got}`));
      }, STEP_MS);
      this.waiters.push(check);
      check();
    });
  }
}

class Actor {
  waitFor(predicate, what, since = 0) {
    return this.inbox.waitFor(predicate, what, since);
  }
  mark() {
    return this.inbox.mark();
  }
  since(mark) {
    return this.inbox.since(mark);
  }
}

export class XmppJsActor extends Actor {
  constructor({ service, domain, user, password, resource }) {
    super();
    this.options = { service, domain, username: user, password, resource };
    this.inbox = new Inbox(`xmpp.js ${user}`);
    this.library = "@xmpp/client";
  }
  async connect() {
    const { client, xml } = await import("@xmpp/client");
    this.xml = xml;
    this.client = client(this.options);
    this.client.reconnect?.stop?.();
    this.client.on("error", (err) => this.inbox.push({ name: "error", error: String(err) }));
    this.client.on("stanza", (el) =>
      this.inbox.push({
        name: el.name,
        from: el.attrs.from,
        to: el.attrs.to,
        type: el.attrs.type,
        body: el.getChildText("body"),
      }),
    );
    const address = await this.client.start();
    this.jid = address.toString();
    return this.jid;
  }
  // attrs: {to, type}, both optional: broadcast, directed, unavailable, legacy invisible...
  async presence(attrs = {}) {
    await this.client.send(this.xml("presence", attrs));
  }
  async message(to, body) {
    await this.client.send(this.xml("message", { to, type: "chat" }, this.xml("body", {}, body)));
  }
  // an IQ to the own account (no 'to'); resolves with the result, rejects on an error reply
  async iq(type, child, xmlns) {
    const { xml } = this;
    await this.client.iqCaller.request(xml("iq", { type }, xml(child, { xmlns })), STEP_MS);
  }
  async stop() {
    await this.client.stop();
  }
}

export class StropheActor extends Actor {
  constructor({ service, domain, user, password, resource }) {
    super();
    this.service = service;
    this.jidWanted = `${user}@${domain}/${resource}`;
    this.password = password;
    this.inbox = new Inbox(`strophe.js ${user}`);
    this.library = "strophe.js";
  }
  async connect() {
    const strophe = await import("strophe.js");
    const { Strophe } = strophe;
    this.S = strophe;
    this.conn = new Strophe.Connection(this.service);
    this.transport = this.service.startsWith("ws") ? "websocket" : "bosh";
    if (process.env.XMPP_DEBUG) {
      this.conn.rawInput = (data) => console.error(`strophe ${this.jidWanted} IN ${data}`);
      this.conn.rawOutput = (data) => console.error(`strophe ${this.jidWanted} OUT ${data}`);
    }
    const text = (el, name) => {
      const child = el.getElementsByTagName(name)[0];
      return child ? Strophe.getText(child) : null;
    };
    this.conn.addHandler(
      (el) => {
        this.inbox.push({
          name: el.tagName,
          from: el.getAttribute("from"),
          to: el.getAttribute("to"),
          type: el.getAttribute("type") || undefined,
          body: el.tagName === "message" ? text(el, "body") : null,
        });
        return true;
      },
      null,
      null,
    );
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("strophe: login timed out")), STEP_MS);
      this.conn.connect(this.jidWanted, this.password, (status, condition) => {
        const S = Strophe.Status;
        if (status === S.CONNECTED) {
          clearTimeout(timer);
          resolve();
        } else if ([S.CONNFAIL, S.AUTHFAIL, S.ERROR, S.DISCONNECTED].includes(status)) {
          clearTimeout(timer);
          reject(new Error(`strophe: status ${status} ${condition || ""}`));
        }
      });
    });
    this.jid = this.conn.jid;
    return this.jid;
  }
  async presence(attrs = {}) {
    this.conn.send(this.S.$pres(attrs));
  }
  async message(to, body) {
    this.conn.send(this.S.$msg({ to, type: "chat" }).c("body").t(body));
  }
  async iq(type, child, xmlns) {
    const stanza = this.S.$iq({ type }).c(child, { xmlns });
    await new Promise((resolve, reject) => {
      const reply = (el) => (el ? this.S.Strophe.serialize(el) : "timeout");
      const failed = (el) => reject(new Error(`strophe: ${child} IQ failed: ${reply(el)}`));
      this.conn.sendIQ(stanza, resolve, failed, STEP_MS);
    });
  }
  async stop() {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.conn.addHandler(() => {}, null, null);
      const { Strophe } = this.S;
      const previous = this.conn.connect_callback;
      this.conn.connect_callback = (status, condition) => {
        previous?.(status, condition);
        if (status === Strophe.Status.DISCONNECTED) {
          clearTimeout(timer);
          resolve();
        }
      };
      this.conn.disconnect("done");
    });
  }
}

export function makeActor(spec) {
  if (spec.lib === "xmpp.js") return new XmppJsActor(spec);
  if (spec.lib === "strophe") return new StropheActor(spec);
  throw new Error(`unknown library ${spec.lib}`);
}
