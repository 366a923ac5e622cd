"""IQ handlers declared as data, and the table that dispatches to them.

A handler answers IQs addressed to the server's domain (``target="server"``) or to an
account's bare JID on the account's behalf (``target="account"``; RFC 6120 §10.5.3.1).
Handlers are async; they return the result payload (or ``None`` for an empty result) and
raise :class:`~casper.errors.StanzaError` for an error reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from .config import ConfigError
from .jid import JID

if TYPE_CHECKING:
    from .server import Server
    from .session import Session
    from .stanza import Stanza

TARGETS = ("server", "account")


@dataclass(frozen=True)
class IqRequest:
    """One IQ get/set for a handler.

    :param stanza: the request, ``from`` stamped.
    :param server: the server.
    :param target: the bare JID addressed (the domain or an account).
    :param session: the requesting local session, or ``None`` for a remote requester.
    """

    stanza: Stanza
    server: Server
    target: JID
    session: Session | None

    @property
    def requester(self) -> JID:
        assert self.stanza.from_ is not None
        return self.stanza.from_

    @property
    def payload(self) -> Element:
        payload = self.stanza.payload
        assert payload is not None
        return payload

    @property
    def from_self(self) -> bool:
        """Whether the requester is the addressed account itself."""
        return self.requester.bare == self.target


Handler = Callable[[IqRequest], Awaitable[Element | None]]


@dataclass(frozen=True)
class IqHandler:
    """Declare that ``handler`` answers ``type`` IQs whose payload is ``{ns}name``."""

    type: str
    ns: str
    name: str
    handler: Handler
    target: str = "server"

    def __post_init__(self) -> None:
        if self.type not in ("get", "set"):
            raise ValueError(f"IqHandler type must be get or set, not {self.type!r}")
        if self.target not in TARGETS:
            raise ValueError(f"IqHandler target must be one of {TARGETS}, not {self.target!r}")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.type, f"{{{self.ns}}}{self.name}")


class IqTable:
    """The dispatch table built once at startup from every plugin's declarations.

    :param handlers: ``(plugin name, handler)`` pairs.
    :raises ConfigError: two handlers for the same ``(target, type, payload)``.
    """

    def __init__(self, handlers: Iterable[tuple[str, IqHandler]]) -> None:
        self._table: dict[tuple[str, str, str], IqHandler] = {}
        self._owner: dict[tuple[str, str, str], str] = {}
        for plugin, handler in handlers:
            if handler.key in self._table:
                raise ConfigError(
                    f"plugins {self._owner[handler.key]!r} and {plugin!r} both handle "
                    f"{handler.type} {handler.key[2]} for the {handler.target}"
                )
            self._table[handler.key] = handler
            self._owner[handler.key] = plugin

    def lookup(self, target: str, stanza: Stanza) -> IqHandler | None:
        payload = stanza.payload
        if payload is None or stanza.type not in ("get", "set"):
            return None
        return self._table.get((target, stanza.type, payload.tag))

    def owner(self, handler: IqHandler) -> str:
        """The name of the plugin that declared ``handler``."""
        return self._owner.get(handler.key, "core")

    def namespaces(self, target: str) -> set[str]:
        """Payload namespaces with a handler for ``target`` (used by disco)."""
        return {tag[1:].split("}")[0] for (t, _type, tag) in self._table if t == target}
