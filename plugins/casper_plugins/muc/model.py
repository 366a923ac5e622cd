"""The room as data: configuration, affiliations, occupants, history, and what a step yields.

Sans-IO: no trio, no server. The protocol modules (:mod:`.occupancy`, :mod:`.chat`,
:mod:`.admin`) change a :class:`Room` in place and append what must be sent to an
:class:`Outcome`; the service (:mod:`.service`) carries the outcome out (routing, storage).

Anonymity (XEP-0045 §4.2) is the ``whois`` setting: ``anyone`` (non-anonymous: every
occupant sees real JIDs), ``moderators`` (semi-anonymous) or ``none`` (fully anonymous:
nobody, owners included, sees real JIDs in the room). Each occupant also keeps the
setting in force when it joined, and is only ever shown as widely as the narrower of the
two: a room turned non-anonymous warns its occupants (status 172) but reveals only those
who join after the change, who are told on joining (status 100).
"""

from __future__ import annotations

import unicodedata
from collections import deque
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from casper.jid import JID
from casper.stanza import Stanza

MUC_NS = "http://jabber.org/protocol/muc"
USER_NS = f"{MUC_NS}#user"
ADMIN_NS = f"{MUC_NS}#admin"
OWNER_NS = f"{MUC_NS}#owner"

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
AFFILIATION_RANK = {"outcast": 0, "none": 1, "member": 2, "admin": 3, "owner": 4}
ROLES = ("moderator", "participant", "visitor", "none")
WHOIS = ("none", "moderators", "anyone")  # ascending exposure of real JIDs
ALLOW_PM = ("anyone", "participants", "moderators", "none")


@dataclass(frozen=True)
class RoomConfig:
    """A room's settings (``muc#roomconfig``); replaced whole, never mutated."""

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password_protected: bool = False
    password: str = ""
    whois: str = "moderators"
    change_subject: bool = False
    allow_invites: bool = False
    allow_pm: str = "anyone"
    max_users: int = 200

    def __post_init__(self) -> None:
        if self.whois not in WHOIS:
            raise ValueError(f"whois must be one of {WHOIS}, not {self.whois!r}")
        if self.allow_pm not in ALLOW_PM:
            raise ValueError(f"allow_pm must be one of {ALLOW_PM}, not {self.allow_pm!r}")
        if self.max_users < 1:
            raise ValueError("max_users must be positive")


def normalize_nick(text: str) -> str:
    """The nick the room uses: surrounding and repeated white space removed."""
    return " ".join(text.split())


def nick_key(nick: str) -> str:
    """What two nicks are compared by (the PRECIS nickname profile, approximated)."""
    return unicodedata.normalize("NFKC", nick).casefold()


@dataclass
class Occupant:
    """One real full JID in the room under a nick."""

    nick: str
    jid: JID  # the real full JID
    room: JID
    role: str
    exposure: str  # the room's whois when this occupant joined (see the module docstring)
    presence: tuple[Element, ...] = ()  # show, status, caps... as last sent to the room

    @property
    def occupant_jid(self) -> JID:
        return self.room.with_resource(self.nick)


@dataclass(frozen=True)
class HistoryEntry:
    """A groupchat message as broadcast (``from`` the occupant JID, no ``to``)."""

    stanza: Stanza
    stamp: float  # POSIX time
    size: int  # characters, for ``<history maxchars=.../>``


@dataclass
class Outcome:
    """What one input made the room do; carried out by the service in this order:
    storage first (so an answer is never sent for a change not yet durable), then the
    stanzas in order."""

    stanzas: list[Stanza] = field(default_factory=list)
    save: bool = False  # persistent state (config, affiliations, subject) changed
    destroyed: bool = False
    # real full JIDs the room put out without their asking (kick, ban, lost membership,
    # error, destroy): the service drops the room from their sessions' presence bookkeeping
    removed: list[JID] = field(default_factory=list)

    def send(self, stanza: Stanza) -> None:
        self.stanzas.append(stanza)


class Room:
    """One room's state. Affiliations are keyed by bare JID, occupants by nick key."""

    def __init__(self, jid: JID, config: RoomConfig, *, history_size: int) -> None:
        self.jid = jid
        self.config = config
        self.affiliations: dict[JID, str] = {}
        self.occupants: dict[str, Occupant] = {}
        self.subject = ""
        self.subject_by: str | None = None
        self.history: deque[HistoryEntry] = deque(maxlen=history_size)
        self.locked = False  # created and not yet configured (XEP-0045 §10.1)
        self.invites: dict[JID, JID] = {}  # invitee's bare JID -> inviter's full JID

    def __repr__(self) -> str:
        return f"<Room {self.jid} occupants={len(self.occupants)} locked={self.locked}>"

    # -------------------------------------------------------------- affiliations

    def affiliation(self, jid: JID) -> str:
        return self.affiliations.get(jid.bare, "none")

    def set_affiliation(self, jid: JID, affiliation: str) -> None:
        if affiliation == "none":
            self.affiliations.pop(jid.bare, None)
        else:
            self.affiliations[jid.bare] = affiliation

    def with_affiliation(self, affiliation: str) -> list[JID]:
        return sorted((j for j, a in self.affiliations.items() if a == affiliation), key=str)

    # -------------------------------------------------------------- occupants

    def by_nick(self, nick: str) -> Occupant | None:
        return self.occupants.get(nick_key(nick))

    def by_real(self, jid: JID | None) -> Occupant | None:
        if jid is None:
            return None
        return next((o for o in self.occupants.values() if o.jid == jid), None)

    def of_account(self, account: JID) -> list[Occupant]:
        return [o for o in self.occupants.values() if o.jid.bare == account.bare]

    def add(self, occupant: Occupant) -> None:
        self.occupants[nick_key(occupant.nick)] = occupant

    def remove(self, occupant: Occupant) -> None:
        self.occupants.pop(nick_key(occupant.nick), None)

    def rename(self, occupant: Occupant, nick: str) -> None:
        self.remove(occupant)
        occupant.nick = nick
        self.add(occupant)

    def default_role(self, affiliation: str) -> str:
        if affiliation in ("owner", "admin"):
            return "moderator"
        if affiliation == "member":
            return "participant"
        if affiliation == "outcast":
            return "none"
        return "visitor" if self.config.moderated else "participant"

    # -------------------------------------------------------------- anonymity

    def exposure(self, occupant: Occupant) -> str:
        """The narrower of the room's whois and the one ``occupant`` joined under."""
        return min(self.config.whois, occupant.exposure, key=WHOIS.index)

    def reveals(self, occupant: Occupant, viewer: Occupant | None) -> bool:
        """Whether ``viewer`` may learn ``occupant``'s real JID."""
        if viewer is not None and viewer.jid == occupant.jid:
            return True
        exposure = self.exposure(occupant)
        if exposure == "anyone":
            return True
        return exposure == "moderators" and viewer is not None and viewer.role == "moderator"

    @property
    def non_anonymous(self) -> bool:
        return self.config.whois == "anyone"
