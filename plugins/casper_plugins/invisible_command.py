"""Invisible command: <invisible/> and <visible/> IQs that hide one session from everyone (XEP-0186).

Strategy plugin ``invisible-command``, namespace ``urn:xmpp:invisible:1``, advertised in
the server's disco#info. Invisibility belongs to one session and ends with it.

- ``<iq type='set'><invisible xmlns='urn:xmpp:invisible:1' probe='true|false'/></iq>``:
  the session becomes invisible. If it had sent available presence, everyone who saw it
  gets unavailable (contacts and directed recipients alike); last activity then reports
  the moment it went invisible. While invisible nothing is broadcast; undirected presence
  is kept for later. ``probe`` (default false, per XEP-0186) says whether the initial
  presence the session sends while invisible probes its contacts, so the user sees them.
- Outbound directed presence is delivered, and the recipient sees the session; it gets
  unavailable when the session sends unavailable or ends — and nobody else does.
- Inbound presence, full-JID messages and IQs are delivered; bare-JID messages, probes,
  last activity and disco#items on the bare JID are answered as if the account were
  offline unless another resource is visible (the core's offline-equivalent answer).
- ``<visible/>``: the session is visible again, but counts as one that has not sent
  presence yet: nothing is broadcast, and probes, last activity and disco#items answer as
  if it were offline, until the client sends its next presence.
- The administrator's policy (``[invisibility]``) wins: a forbidden ``<invisible/>`` gets
  ``not-allowed`` and changes nothing.

What it cannot hide: IQs to the full JID (version, time, disco#info) reach the client,
which answers them; chat states and receipts the client sends are delivered. Use
``privacy-lists`` to block those.

Hooks: ``casper_iq_handlers``, ``casper_hidden_from``, ``casper_initial_probes_wanted``,
``casper_disco_features``. Config: none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.jid import JID

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

NAME = "invisible-command"
NS = "urn:xmpp:invisible:1"
_TRUE = ("true", "1")
_BOOLEANS = ("true", "1", "false", "0")


@dataclass
class InvisibleState:
    invisible: bool = False
    probe: bool = True


class InvisibleCommand:
    def __init__(self, server: Server) -> None:
        self._server = server

    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("set", NS, "invisible", self._invisible, target="account"),
            IqHandler("set", NS, "visible", self._visible, target="account"),
        ]

    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool | None:
        state: InvisibleState | None = session.peek_plugin_state(NAME)
        # directed presence is the user's explicit act: the core keeps it apart
        return True if state is not None and state.invisible else None

    @hookimpl
    def casper_initial_probes_wanted(self, session: Session) -> bool | None:
        state: InvisibleState | None = session.peek_plugin_state(NAME)
        if state is None or not state.invisible:
            return None
        return state.probe

    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [NS] if target == "server" else []

    async def _invisible(self, request: IqRequest) -> None:
        session = _own_session(request)
        probe = request.payload.get("probe", "false").strip().lower()  # XEP-0186: default false
        if probe not in _BOOLEANS:
            raise StanzaError("bad-request", "probe must be a boolean")
        if not self._server.policy.may_hide(session.account):
            raise StanzaError("not-allowed", "invisibility is not allowed by this server's policy")
        state = session.plugin_state(NAME, InvisibleState)
        state.invisible, state.probe = True, probe in _TRUE
        for entity in list(session.directed_to):  # everyone who saw it gets unavailable
            self._server.presence.withdraw_directed(session, entity)
        await self._server.presence.reconcile(session)

    async def _visible(self, request: IqRequest) -> None:
        session = _own_session(request)
        state = session.plugin_state(NAME, InvisibleState)
        if state.invisible:  # XEP-0186 §3.2: as before initial presence, until the next one
            state.invisible = False
            self._server.presence.forget_broadcast(session)


def _own_session(request: IqRequest) -> Session:
    if not request.from_self or request.session is None:
        raise StanzaError("forbidden", "only the session itself can change its invisibility")
    return request.session


@hookimpl
def casper_configure(server: Server) -> None:
    server.pm.register(InvisibleCommand(server), f"{NAME}.state")
