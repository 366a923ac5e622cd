"""Turn stanzas into comparable text: what is left once names, ids and clocks are gone.

A stanza seen in the invisible world and one seen in the offline world can only be
compared once everything that differs between any two runs is removed: account names
become roles (``user``, ``friend``; ``user/desk`` for a full JID), the domain becomes
``DOMAIN`` and the room ``ROOM``; stanza ids, archive ids and delay stamps are dropped;
entity time becomes ``T``; last-activity seconds become ``0`` (online now) or ``N``.

The result is a compact, readable XML-like string with sorted attributes and namespaces
only where they change, e.g. ``<iq from="user/desk" type="error"><error type="cancel">
<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.etree.ElementTree import Element

from casper.xml import escape_attr, escape_text

CLIENT = "jabber:client"
JID_ATTRS = ("from", "to", "jid", "by")
DROPPED_ELEMENTS = ("{urn:xmpp:sid:0}stanza-id", "{urn:xmpp:sid:0}origin-id")
TIME = "{urn:xmpp:time}time"
LAST = "{jabber:iq:last}query"
DELAYS = ("{urn:xmpp:delay}delay", "{jabber:x:delay}x")


class Normaliser:
    """Maps one world's names to roles.

    :param accounts: bare JID -> role (``user@example.org`` -> ``user``).
    :param domain: the server's domain.
    :param room: the room's bare JID, if any; its nicknames are roles already.
    """

    def __init__(self, accounts: Mapping[str, str], domain: str, room: str | None = None) -> None:
        self._accounts = {k.lower(): v for k, v in accounts.items()}
        self._domain = domain.lower()
        self._room = room.lower() if room else None
        self._muc = self._room.split("@", 1)[1] if self._room else None

    def jid(self, text: str) -> str:
        """The role-based form of a JID (unknown JIDs are kept, lowercased)."""
        bare, slash, resource = text.partition("/")
        bare = bare.lower()
        if bare in self._accounts:
            name = self._accounts[bare]
        elif self._room is not None and bare == self._room:
            name = "ROOM"
        elif bare == self._domain:
            name = "DOMAIN"
        elif self._muc is not None and bare == self._muc:
            name = "MUC"
        else:
            name = bare
        return f"{name}/{resource}" if slash else name

    def stanza(self, element: Element) -> str:
        """The comparable text of a stanza."""
        out: list[str] = []
        self._write(out, element, CLIENT, top=True)
        return "".join(out)

    def _write(
        self, out: list[str], element: Element, parent_ns: str, *, top: bool = False
    ) -> None:
        ns, _, local = (
            element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
        )
        attrs: dict[str, str] = {}
        for key, value in element.attrib.items():
            if key == "id" and top:
                continue
            if element.tag in DELAYS and key == "stamp":
                continue
            if element.tag == LAST and key == "seconds":
                value = "0" if value.strip() == "0" else "N"
            elif key in JID_ATTRS:
                value = self.jid(value)
            attrs[key] = value
        if ns != parent_ns:
            attrs["xmlns"] = ns
        out.append(f"<{local}")
        for key in sorted(attrs):
            name = key.rpartition("}")[2] if key.startswith("{") else key
            out.append(f' {name}="{escape_attr(attrs[key])}"')
        children = [c for c in element if c.tag not in DROPPED_ELEMENTS]
        text = (element.text or "").strip()
        if not children and not text:
            out.append("/>")
            return
        out.append(">")
        if element.tag == TIME:
            out.append("T")
        else:
            if text:
                out.append(escape_text(self.jid(text) if local == "jid" else text))
            for child in children:
                self._write(out, child, ns)
        out.append(f"</{local}>")
