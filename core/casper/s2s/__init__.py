"""Server-to-server federation (RFC 6120 s2s, SASL EXTERNAL, XEP-0220 dialback, XEP-0185 keys).

Modules: :mod:`.wire` (pure helpers), :mod:`.inbound` and :mod:`.outbound` (sans-IO stream
machines), :mod:`.certs` (sans-IO certificate identities, RFC 6125), :mod:`.dns` (sans-IO
SRV messages), :mod:`.resolve` (static routes, SRV, fallback), :mod:`.trust` (pyOpenSSL
contexts that record the peer's verification instead of aborting), :mod:`.tlsstream` (a
Trio stream over them), :mod:`.connections` (Trio connections), :mod:`.manager` (routes,
queues, bounces, the entry points ``server.s2s.send()`` and incoming routing).
Configuration: the ``[s2s]`` section (:mod:`casper.config`).
"""

from casper.s2s.manager import S2SManager as S2SManager
