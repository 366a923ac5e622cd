"""Limits on what one address, account or session may cost the server (sans-IO).

Everything here is synchronous bookkeeping: callers pass the time in (``trio.current_time()``
in the server, anything in tests) and act on the answers. One :class:`Limits` belongs to one
:class:`~casper.server.Server` (``server.limits``); there is no module-level state.

The limits, all set in the ``[limits]`` section of the configuration and on by default:

1. **Connections per address** (``max_connections_per_ip``): TCP client connections open at
   once from one IPv4 address, or from one IPv6 /64 (one end user's usual allocation). The
   connection over the limit gets a ``policy-violation`` stream error and is closed before
   TLS or authentication. WebSocket connections and BOSH sessions count too, by the HTTP
   client's address (over the limit: HTTP 429, or the BOSH condition ``policy-violation``),
   except behind a proxy (``http.proxy_tls``), where every request comes from the proxy's
   address. Connections whose address is unknown (memory streams in tests) are not counted.
2. **Sessions per account** (``max_sessions_per_account``): resources bound at once,
   sessions waiting for XEP-0198 resumption included. One more bind request gets the
   RFC 6120 §7.6.2.1 error ``resource-constraint`` (type ``wait``); binding a resource the
   account already has is not one more (the old session is replaced).
3. **Stanza rate per session** (``stanza_rate`` per second, bursts of ``stanza_burst``): a
   token bucket. A session over its rate is *slowed down, not cut off*: the server stops
   reading from it until the bucket allows the next stanza, so TCP flow control pushes back
   on the sender and nothing it sent is lost or reordered. Everyone else's traffic, including
   what is delivered *to* the slowed session, goes on at full speed.
4. **Authentication failures** within ``auth_failure_window`` seconds, per address
   (``auth_failures_per_ip``) and per account (``auth_failures_per_account``). Only wrong
   credentials count (SASL ``not-authorized``), whether or not the account exists, so the
   answer never tells which accounts exist. Over either limit, a new attempt gets the SASL
   failure ``temporary-auth-failure`` *without its credentials being checked*, even if they
   are right; the negotiation's own rule (three failures on one stream, then
   ``policy-violation``) still closes a stream that keeps trying. The block lifts by itself
   as failures age out of the window. A successful login clears its account's failures,
   never its address's. Note the trade-off: someone who knows an account's name can keep it
   locked out from every address by failing often enough; raise the per-account limit or
   switch it off (``false``) where that matters more than slowing down distributed guessing.

Memory is bounded: at most :data:`MAX_TRACKED` addresses and as many accounts are tracked,
the oldest dropped first; per-session buckets die with their session.

The limits that already existed (``max_stanza_size``, ``max_depth``, ``outbox_size``,
``negotiation_timeout``, ``idle_timeout``) are enforced where they apply: the parser, the
session's outbox, the connection's cancel scopes.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

MAX_TRACKED = 100_000  # addresses (and, separately, accounts) with failures remembered
IPV6_PREFIX = 64
COUNTED_AUTH_FAILURES = frozenset({"not-authorized"})  # wrong credentials; not syntax errors


@dataclass(frozen=True)
class LimitSettings:
    """The knobs; ``None`` switches a limit off. See the module docstring."""

    max_connections_per_ip: int | None = 100
    max_sessions_per_account: int | None = 10
    stanza_rate: float | None = 50.0
    stanza_burst: int = 200
    auth_failures_per_ip: int | None = 10
    auth_failures_per_account: int | None = 20
    auth_failure_window: float = 600.0

    @classmethod
    def from_config(cls, config: Any) -> LimitSettings:
        """Take the fields of the same names from a :class:`casper.config.Config`."""
        names = cls.__dataclass_fields__
        return cls(**{name: getattr(config, name) for name in names})


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full.

    :meth:`reserve` always takes the token and says how long to wait before acting on it,
    so a caller that waits that long before its next call stays exactly at ``rate``.
    """

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None and now > self._stamp:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now

    def reserve(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens (going into debt if needed); return the seconds to wait."""
        self._refill(now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class FailureWindow:
    """Failures per key within the last ``window`` seconds, up to ``limit`` remembered each.

    :param max_keys: keys tracked at once; past that the least recently failing is forgotten.
    """

    def __init__(self, limit: int, window: float, max_keys: int = MAX_TRACKED) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._stamps: dict[Hashable, deque[float]] = {}

    def _fresh(self, key: Hashable, now: float) -> deque[float] | None:
        stamps = self._stamps.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._stamps[key]
            return None
        return stamps

    def count(self, key: Hashable, now: float) -> int:
        stamps = self._fresh(key, now)
        return 0 if stamps is None else len(stamps)

    def blocked(self, key: Hashable, now: float) -> bool:
        return self.count(key, now) >= self.limit

    def add(self, key: Hashable, now: float) -> None:
        stamps = self._fresh(key, now)
        if stamps is None:
            if len(self._stamps) >= self.max_keys:
                del self._stamps[next(iter(self._stamps))]  # the least recently failing
            stamps = self._stamps[key] = deque(maxlen=self.limit)
        else:
            self._stamps[key] = self._stamps.pop(key)  # most recent last
        stamps.append(now)

    def clear(self, key: Hashable) -> None:
        self._stamps.pop(key, None)

    def __len__(self) -> int:
        return len(self._stamps)


def address_key(address: str | None) -> str | None:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64, else ``None``.

    IPv4-mapped IPv6 addresses count as their IPv4 address.
    """
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def peer_address(stream: object) -> str | None:
    """The remote IP address of a TCP stream (also inside TLS), or ``None`` if it has none."""
    for _ in range(4):  # a TLS stream -> its transport, possibly an adapter in between
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                peer = sock.getpeername()
            except (OSError, AttributeError):
                return None
            return peer[0] if isinstance(peer, tuple) and peer else None
        stream = getattr(stream, "transport_stream", None)
        if stream is None:
            return None
    return None


class Limits:
    """The server's limit bookkeeping; every method is synchronous and cheap.

    :param settings: which limits apply and how high they are.
    """

    def __init__(self, settings: LimitSettings | None = None) -> None:
        self.settings = settings = settings or LimitSettings()
        self._connections: dict[str, int] = {}
        self._binding: dict[object, int] = {}  # account -> binds answered, not yet bound
        window = settings.auth_failure_window
        self._ip_failures = FailureWindow(settings.auth_failures_per_ip or 1, window)
        self._account_failures = FailureWindow(settings.auth_failures_per_account or 1, window)
        self._buckets: WeakKeyDictionary[Any, TokenBucket] = WeakKeyDictionary()

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        return cls(LimitSettings.from_config(config))

    # -------------------------------------------------------------- connections

    def session_allowed(self, bound: int) -> bool:
        """Whether an account with ``bound`` sessions may bind one more resource."""
        limit = self.settings.max_sessions_per_account
        return limit is None or bound < limit

    def binding(self, account: object) -> int:
        """Binds of ``account`` answered but not yet in the routing table: they count as
        sessions, so that binds racing each other cannot exceed the limit."""
        return self._binding.get(account, 0)

    def bind_started(self, account: object) -> None:
        """Count a bind answered with success; :meth:`bind_finished` uncounts it."""
        self._binding[account] = self._binding.get(account, 0) + 1

    def bind_finished(self, account: object) -> None:
        """The session is bound (or its connection ended first): uncount the bind."""
        remaining = self._binding.get(account, 0) - 1
        if remaining > 0:
            self._binding[account] = remaining
        else:
            self._binding.pop(account, None)

    def connection_opened(self, address: str | None) -> bool:
        """Count a new connection from ``address``; ``False`` (and not counted) if over."""
        key = address_key(address)
        limit = self.settings.max_connections_per_ip
        if key is None or limit is None:
            return True
        current = self._connections.get(key, 0)
        if current >= limit:
            return False
        self._connections[key] = current + 1
        return True

    def connection_closed(self, address: str | None) -> None:
        """Uncount a connection that :meth:`connection_opened` accepted."""
        key = address_key(address)
        if key is None or key not in self._connections:
            return
        remaining = self._connections[key] - 1
        if remaining > 0:
            self._connections[key] = remaining
        else:
            del self._connections[key]

    def connections_from(self, address: str | None) -> int:
        key = address_key(address)
        return 0 if key is None else self._connections.get(key, 0)

    # -------------------------------------------------------------- authentication

    def auth_allowed(self, address: str | None, account: str | None, now: float) -> bool:
        """Whether an authentication attempt may have its credentials checked now."""
        key = address_key(address)
        s = self.settings
        if key is not None and s.auth_failures_per_ip and self._ip_failures.blocked(key, now):
            return False
        if account is not None and s.auth_failures_per_account:
            return not self._account_failures.blocked(account, now)
        return True

    def auth_failed(self, address: str | None, account: str | None, condition: str,
                    now: float) -> None:  # fmt: skip
        """Record a failed attempt; only wrong credentials (``not-authorized``) count."""
        if condition not in COUNTED_AUTH_FAILURES:
            return
        key = address_key(address)
        if key is not None and self.settings.auth_failures_per_ip:
            self._ip_failures.add(key, now)
        if account is not None and self.settings.auth_failures_per_account:
            self._account_failures.add(account, now)

    def auth_succeeded(self, account: str) -> None:
        """Forget the account's failures (never the address's)."""
        self._account_failures.clear(account)

    # -------------------------------------------------------------- stanza rate

    def stanza_delay(self, session: object, now: float) -> float:
        """Take one stanza from ``session``'s bucket; return the seconds to wait first."""
        rate = self.settings.stanza_rate
        if rate is None or math.isinf(rate):
            return 0.0
        bucket = self._buckets.get(session)
        if bucket is None:
            bucket = self._buckets[session] = TokenBucket(rate, self.settings.stanza_burst)
        return bucket.reserve(now)
