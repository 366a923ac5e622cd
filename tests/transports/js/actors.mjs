// Thin adapters giving two third-party XMPP libraries one small interface for chat.mjs:
//   connect(), presence(), message(to, body), waitFor(predicate, what), stop()
// Stanzas are handed to predicates as plain objects: {name, from, to, type, body}.
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
  waitFor(predicate, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.items.find(predicate);
        if (found) {
          this.waiters = this.waiters.filter((w) => w !== check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`${this.label}: timed out waiting for ${what}; got ${JSON.stringify(this.items)}`));
      }, STEP_MS);
      this.waiters.push(check);
      check();
    });
  }
}

export class XmppJsActor {
  constructor({ service, domain, user, password, resource }) {
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
  async presence() {
    await this.client.send(this.xml("presence"));
  }
  async message(to, body) {
    await this.client.send(this.xml("message", { to, type: "chat" }, this.xml("body", {}, body)));
  }
  waitFor(predicate, what) {
    return this.inbox.waitFor(predicate, what);
  }
  async stop() {
    await this.client.stop();
  }
}

export class StropheActor {
  constructor({ service, domain, user, password, resource }) {
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
  async presence() {
    this.conn.send(this.S.$pres());
  }
  async message(to, body) {
    this.conn.send(this.S.$msg({ to, type: "chat" }).c("body").t(body));
  }
  waitFor(predicate, what) {
    return this.inbox.waitFor(predicate, what);
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
