"""Stanzas: an immutable view over a ``jabber:client`` element, plus constructors and replies.

The element inside a :class:`Stanza` is never mutated once the stanza exists; every change
(stamping ``from``, readdressing, error replies) makes a new element that shares the
unchanged children.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree.ElementTree import Element, SubElement

from .errors import STANZAS_NS, StanzaError
from .jid import JID, InvalidJID
from .verdicts import Bounce

CLIENT_NS = "jabber:client"
MESSAGE = f"{{{CLIENT_NS}}}message"
PRESENCE = f"{{{CLIENT_NS}}}presence"
IQ = f"{{{CLIENT_NS}}}iq"
_KINDS = {MESSAGE: "message", PRESENCE: "presence", IQ: "iq"}
DELAY_NS = "urn:xmpp:delay"


def qname(ns: str, name: str) -> str:
    """Return the Clark-notation tag ``{ns}name``."""
    return f"{{{ns}}}{name}"


class Stanza:
    """A message, presence or iq with parsed addresses.

    :param element: the stanza element (Clark-notation tags, not mutated afterwards).
    :param to: the parsed ``to`` address or ``None``.
    :param from_: the parsed ``from`` address or ``None``.
    """

    __slots__ = ("element", "from_", "kind", "to")

    def __init__(self, element: Element, to: JID | None, from_: JID | None) -> None:
        self.element = element
        self.kind = _KINDS[element.tag]
        self.to = to
        self.from_ = from_

    @classmethod
    def from_element(cls, element: Element) -> Stanza:
        """Wrap a parsed element; raise ``StanzaError('jid-malformed')`` on bad addresses."""
        if element.tag not in _KINDS:
            raise ValueError(f"not a stanza: {element.tag}")
        try:
            to = _parse_optional(element.get("to"))
            from_ = _parse_optional(element.get("from"))
        except InvalidJID as exc:
            raise StanzaError("jid-malformed", str(exc)) from None
        return cls(element, to, from_)

    @property
    def type(self) -> str | None:
        return self.element.get("type")

    @property
    def id(self) -> str | None:
        return self.element.get("id")

    @property
    def payload(self) -> Element | None:
        """The first child element (an IQ's query), or ``None``."""
        for child in self.element:
            return child
        return None

    def find(self, ns: str, name: str) -> Element | None:
        """Return the first direct child ``{ns}name``."""
        return self.element.find(qname(ns, name))

    def text_of(self, name: str) -> str | None:
        """Text of a ``jabber:client`` child such as ``body``, ``status`` or ``show``."""
        child = self.element.find(qname(CLIENT_NS, name))
        return None if child is None else (child.text or "")

    def readdressed(
        self, *, to: JID | None | bool = False, from_: JID | None | bool = False
    ) -> Stanza:
        """Return a copy with ``to`` and/or ``from`` replaced (``False`` keeps the current one)."""
        new_to = self.to if to is False else to
        new_from = self.from_ if from_ is False else from_
        element = _copy_shallow(self.element)
        _set_or_drop(element, "to", new_to)
        _set_or_drop(element, "from", new_from)
        return Stanza(element, new_to if isinstance(new_to, JID) else None,
                      new_from if isinstance(new_from, JID) else None)  # fmt: skip

    def with_child(self, child: Element) -> Stanza:
        """Return a copy with one more child element appended."""
        element = _copy_shallow(self.element)
        element.append(child)
        return Stanza(element, self.to, self.from_)

    def without_children(self, ns: str) -> Stanza:
        """Return a copy without the direct children in namespace ``ns``."""
        element = _copy_shallow(self.element)
        prefix = f"{{{ns}}}"
        element[:] = [c for c in element if not c.tag.startswith(prefix)]
        return Stanza(element, self.to, self.from_)

    def error_reply(self, error: StanzaError | Bounce) -> Stanza:
        """Build the error reply: addresses swapped, ``type='error'`` (RFC 6120 §8.3.1)."""
        element = Element(self.element.tag, _reply_attrs(self, "error"))
        for child in self.element:  # echo the original payload, as most servers do
            element.append(child)
        element.append(error_element(error))
        return Stanza(element, self.from_, self.to)

    def result(self, payload: Element | None = None) -> Stanza:
        """Build an IQ result for this IQ request, with an optional payload."""
        element = Element(IQ, _reply_attrs(self, "result"))
        if payload is not None:
            element.append(payload)
        return Stanza(element, self.from_, self.to)

    def __repr__(self) -> str:
        return f"<Stanza {self.kind} type={self.type} id={self.id} from={self.from_} to={self.to}>"


def error_element(error: StanzaError | Bounce) -> Element:
    """Return ``<error type=...><condition/><text/></error>`` for a stanza error or bounce."""
    condition = error.condition
    type_ = error.type or StanzaError(condition).type
    element = Element(qname(CLIENT_NS, "error"), {"type": type_})
    SubElement(element, qname(STANZAS_NS, condition))
    if error.text:
        SubElement(element, qname(STANZAS_NS, "text")).text = error.text
    app = getattr(error, "app_condition", None)
    if app is not None:
        SubElement(element, qname(*app))
    return element


def make_stanza(
    kind: str,
    *,
    to: JID | None = None,
    from_: JID | None = None,
    type: str | None = None,
    id: str | None = None,
    children: Iterable[Element] = (),
) -> Stanza:
    """Build a new stanza of ``kind`` ('message', 'presence' or 'iq')."""
    element = Element(qname(CLIENT_NS, kind))
    for name, value in (("to", to), ("from", from_), ("type", type), ("id", id)):
        if value is not None:
            element.set(name, str(value))
    element.extend(children)
    return Stanza(element, to, from_)


def delay_element(stamp: float, from_: JID | str) -> Element:
    """XEP-0203 ``<delay/>`` for a stanza stored since ``stamp`` (a POSIX time)."""
    import datetime as _dt

    when = _dt.datetime.fromtimestamp(stamp, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Element(qname(DELAY_NS, "delay"), {"from": str(from_), "stamp": when})


def _parse_optional(value: str | None) -> JID | None:
    return None if value is None else JID.parse(value)


def _copy_shallow(element: Element) -> Element:
    copy = Element(element.tag, dict(element.attrib))
    copy.text = element.text
    copy.extend(list(element))
    return copy


def _set_or_drop(element: Element, name: str, value: JID | None | bool) -> None:
    if isinstance(value, JID):
        element.set(name, str(value))
    else:
        element.attrib.pop(name, None)


def _reply_attrs(stanza: Stanza, type_: str) -> dict[str, str]:
    attrs = {"type": type_}
    if stanza.id is not None:
        attrs["id"] = stanza.id
    if stanza.from_ is not None:
        attrs["to"] = str(stanza.from_)
    if stanza.to is not None:
        attrs["from"] = str(stanza.to)
    return attrs
