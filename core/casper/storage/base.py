"""The storage interface: what the server keeps between connections.

Every method is synchronous and may block on disk I/O, so async callers run them in a worker
thread (``await server.db(storage.get_roster, jid)``). Implementations must be
safe to call from several threads at once.

All JIDs are normalised bare-JID strings (``user@domain``); normalising is the caller's job.
Stanzas are stored as serialized XML strings so storage never depends on the stanza model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from casper.sasl.scram import ScramCredentials

SUBSCRIPTION_STATES = frozenset({"none", "to", "from", "both"})


@dataclass(frozen=True)
class RosterItem:
    """One contact in an account's roster (RFC 6121 §2.1.2).

    :param jid: the contact's bare JID.
    :param name: the user-assigned display name, if any.
    :param subscription: ``none``, ``to``, ``from`` or ``both``.
    :param ask: an outbound subscription request is pending.
    :param approved: the user pre-approved an inbound subscription request (§3.4).
    :param groups: the roster groups the contact belongs to.
    """

    jid: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    approved: bool = False
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.subscription not in SUBSCRIPTION_STATES:
            raise ValueError(f"invalid roster subscription {self.subscription!r}")


class StorageError(Exception):
    """The storage backend cannot be used (e.g. a database written by a newer Casper)."""


class AccountExists(Exception):
    """``create_account`` was asked to create an account that already exists."""


class AccountNotFound(Exception):
    """An operation needed an account that does not exist."""


class Storage(Protocol):
    """Persistent state of the server's local accounts.

    Every write is durable when the method returns.
    """

    # -- accounts -------------------------------------------------------------------------------

    def create_account(self, jid: str, credentials: Mapping[str, ScramCredentials]) -> None:
        """Create ``jid`` with SCRAM ``credentials`` keyed by mechanism name.

        :raises AccountExists: if the account already exists.
        """
        ...

    def set_credentials(self, jid: str, credentials: Mapping[str, ScramCredentials]) -> None:
        """Replace every stored credential of ``jid`` (a password change).

        :raises AccountNotFound: if the account does not exist.
        """
        ...

    def delete_account(self, jid: str) -> None:
        """Delete ``jid`` and everything stored for it.

        :raises AccountNotFound: if the account does not exist.
        """
        ...

    def get_credentials(self, jid: str, mechanism: str) -> ScramCredentials | None:
        """Return the credentials of ``jid`` for ``mechanism``, or ``None``."""
        ...

    def account_exists(self, jid: str) -> bool:
        """Return whether ``jid`` is a local account."""
        ...

    def list_accounts(self) -> list[str]:
        """Return every account JID, sorted."""
        ...

    # -- roster ---------------------------------------------------------------------------------

    def get_roster(self, jid: str) -> list[RosterItem]:
        """Return the roster of ``jid``, ordered by contact JID."""
        ...

    def put_roster_item(self, jid: str, item: RosterItem) -> None:
        """Insert ``item`` into the roster of ``jid``, replacing any item for the same contact."""
        ...

    def delete_roster_item(self, jid: str, contact: str) -> None:
        """Remove ``contact`` from the roster of ``jid``; absent contacts are ignored."""
        ...

    def get_roster_version(self, jid: str) -> int:
        """Return a counter incremented by every roster change of ``jid`` (XEP-0237)."""
        ...

    # -- pending inbound subscription requests ---------------------------------------------------

    def add_pending_subscription(self, jid: str, from_jid: str, stanza_xml: str) -> None:
        """Remember a subscription request to ``jid`` from ``from_jid``, replacing an older one."""
        ...

    def remove_pending_subscription(self, jid: str, from_jid: str) -> None:
        """Forget the pending request from ``from_jid``; absent requests are ignored."""
        ...

    def get_pending_subscriptions(self, jid: str) -> list[tuple[str, str]]:
        """Return ``(from_jid, stanza_xml)`` pairs in arrival order."""
        ...

    # -- offline messages -----------------------------------------------------------------------

    def store_offline(self, jid: str, stanza_xml: str, stamp: float) -> None:
        """Queue a stanza for ``jid``, received at ``stamp`` (seconds since the epoch)."""
        ...

    def pop_offline(self, jid: str) -> list[tuple[str, float]]:
        """Atomically remove and return the queued ``(stanza_xml, stamp)`` in arrival order."""
        ...

    def count_offline(self, jid: str) -> int:
        """Return how many stanzas are queued for ``jid``."""
        ...

    # -- last activity (XEP-0012) ---------------------------------------------------------------

    def set_last_activity(self, jid: str, stamp: float, status: str | None) -> None:
        """Record when ``jid`` last went offline and its last status text."""
        ...

    def get_last_activity(self, jid: str) -> tuple[float, str | None] | None:
        """Return ``(stamp, status)`` as last recorded, or ``None``."""
        ...

    # -- plugin data ----------------------------------------------------------------------------

    def plugin_get(self, plugin: str, jid: str, key: str) -> str | None:
        """Return the value ``plugin`` stored under ``key`` for ``jid``, or ``None``."""
        ...

    def plugin_put(self, plugin: str, jid: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` for ``jid`` on behalf of ``plugin``, replacing any."""
        ...

    def plugin_delete(self, plugin: str, jid: str, key: str) -> None:
        """Remove ``key``; absent keys are ignored."""
        ...

    def plugin_keys(self, plugin: str, jid: str) -> list[str]:
        """Return the keys ``plugin`` stored for ``jid``, sorted."""
        ...

    # service data: plugins' data not tied to an account (e.g. a MUC service's rooms)
    def service_get(self, plugin: str, key: str) -> str | None: ...
    def service_put(self, plugin: str, key: str, value: str) -> None: ...
    def service_delete(self, plugin: str, key: str) -> None: ...
    def service_keys(self, plugin: str) -> list[str]: ...

    def close(self) -> None:
        """Release the backend's resources; the object is unusable afterwards."""
        ...
