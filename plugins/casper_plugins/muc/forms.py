"""XEP-0004 data forms: the room configuration form (``muc#roomconfig``) and the
extended room information (``muc#roominfo``, XEP-0128).

The configuration form is one table, :data:`FIELDS`: each row names the form field, the
:class:`~.model.RoomConfig` attribute, the field type, its label and its options. Both
building and parsing the form read the table, so they can't drift apart. Sans-IO.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.stanza import qname

from .model import ALLOW_PM, WHOIS, Room, RoomConfig

DATA_NS = "jabber:x:data"
ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
_P = "muc#roomconfig_"


@dataclass(frozen=True)
class Field:
    var: str
    attr: str
    type: str  # XEP-0004 field type
    label: str
    options: tuple[tuple[str, str], ...] = ()  # (value, label)


WHOIS_LABELS = {"moderators": "Moderators only (semi-anonymous)",
                "anyone": "Anyone (non-anonymous)",
                "none": "Nobody (fully anonymous)"}  # fmt: skip
PM_LABELS = {"anyone": "Anyone", "participants": "Participants and moderators",
             "moderators": "Moderators only", "none": "Nobody"}  # fmt: skip

FIELDS = (
    Field(f"{_P}roomname", "name", "text-single", "Room name"),
    Field(f"{_P}roomdesc", "description", "text-single", "Description"),
    Field(f"{_P}persistentroom", "persistent", "boolean", "Keep the room when it empties"),
    Field(f"{_P}publicroom", "public", "boolean", "List the room in the directory"),
    Field(f"{_P}membersonly", "members_only", "boolean", "Members only"),
    Field(f"{_P}moderatedroom", "moderated", "boolean", "Moderated (newcomers are visitors)"),
    Field(f"{_P}passwordprotectedroom", "password_protected", "boolean", "Password required"),
    Field(f"{_P}roomsecret", "password", "text-private", "Password"),
    Field(f"{_P}whois", "whois", "list-single", "Who may see occupants' real JIDs",
          tuple((v, WHOIS_LABELS[v]) for v in ("moderators", "anyone", "none"))),
    Field(f"{_P}changesubject", "change_subject", "boolean", "Participants may change the subject"),
    Field(f"{_P}allowinvites", "allow_invites", "boolean", "Participants may invite others"),
    Field(f"{_P}allowpm", "allow_pm", "list-single", "Who may send private messages",
          tuple((v, PM_LABELS[v]) for v in ALLOW_PM)),
    Field(f"{_P}maxusers", "max_users", "text-single", "Maximum number of occupants"),
)  # fmt: skip
_BY_VAR = {f.var: f for f in FIELDS}
assert set(WHOIS) == set(WHOIS_LABELS)


def _field(x: Element, var: str, type_: str, label: str | None, values: list[str]) -> Element:
    element = SubElement(x, qname(DATA_NS, "field"), {"var": var, "type": type_})
    if label is not None:
        element.set("label", label)
    for value in values:
        SubElement(element, qname(DATA_NS, "value")).text = value
    return element


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def config_form(room: Room) -> Element:
    """The ``type='form'`` an owner fills in, showing the current settings."""
    x = Element(qname(DATA_NS, "x"), {"type": "form"})
    SubElement(x, qname(DATA_NS, "title")).text = f"Configuration of {room.jid}"
    _field(x, "FORM_TYPE", "hidden", None, [ROOMCONFIG])
    for spec in FIELDS:
        element = _field(
            x, spec.var, spec.type, spec.label, [_as_text(getattr(room.config, spec.attr))]
        )
        for value, label in spec.options:
            option = SubElement(element, qname(DATA_NS, "option"), {"label": label})
            SubElement(option, qname(DATA_NS, "value")).text = value
    return x


def _parse_value(spec: Field, values: list[str], limit: int) -> object:
    text = values[0].strip() if values else ""
    if spec.type == "boolean":
        if text not in ("0", "1", "false", "true"):
            raise StanzaError("not-acceptable", f"{spec.var} must be a boolean")
        return text in ("1", "true")
    if spec.options and text not in {v for v, _ in spec.options}:
        raise StanzaError("not-acceptable", f"{spec.var} cannot be {text!r}")
    if spec.attr == "max_users":
        if not text.isdigit() or not 1 <= int(text) <= limit:
            raise StanzaError("not-acceptable", f"{spec.var} must be 1..{limit}")
        return int(text)
    return "" if not values else values[0]


def parse_submission(x: Element, current: RoomConfig, max_users: int) -> RoomConfig:
    """Apply a ``type='submit'`` form to ``current``; fields left out keep their values.

    :raises StanzaError: ``not-acceptable`` for a bad value or a password-protected room
        without a password (the configuration is then unchanged).
    """
    form_type = None
    changes: dict[str, object] = {}
    for element in x.findall(qname(DATA_NS, "field")):
        var = element.get("var", "")
        values = [v.text or "" for v in element.findall(qname(DATA_NS, "value"))]
        if var == "FORM_TYPE":
            form_type = values[0] if values else None
        elif var in _BY_VAR:
            spec = _BY_VAR[var]
            changes[spec.attr] = _parse_value(spec, values, max_users)
    if form_type not in (None, ROOMCONFIG):
        raise StanzaError("bad-request", f"not a {ROOMCONFIG} form")
    config = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
    if config.password_protected and not config.password:
        raise StanzaError("not-acceptable", "a password-protected room needs a password")
    if not config.password_protected:
        config = dataclasses.replace(config, password="")
    return config


def roominfo_form(room: Room) -> Element:
    """The XEP-0128 extension of the room's disco#info (``muc#roominfo``)."""
    x = Element(qname(DATA_NS, "x"), {"type": "result"})
    _field(x, "FORM_TYPE", "hidden", None, [ROOMINFO])
    _field(x, "muc#roominfo_description", "text-single", "Description", [room.config.description])
    _field(x, "muc#roominfo_occupants", "text-single", "Number of occupants",
           [str(len(room.occupants))])  # fmt: skip
    _field(x, "muc#roominfo_subject", "text-single", "Subject", [room.subject])
    _field(x, "muc#roominfo_subjectmod", "boolean", "Participants may change the subject",
           [_as_text(room.config.change_subject)])  # fmt: skip
    _field(x, f"{_P}whois", "list-single", "Who may see occupants' real JIDs",
           [room.config.whois])  # fmt: skip
    return x
