"""Several worker processes serving one domain (``[server] workers``).

Each account has a *home* worker (:func:`casper.cluster.homes.home_of`), which holds all of
its sessions and state: the core and plugins run there exactly as in a single process. A
client connection is accepted by any worker, which does TLS and authentication; if the
account's home is another worker, the authenticated stream is piped there
(:mod:`casper.cluster.pipe`). A stanza addressed to an account homed elsewhere is forwarded
to that home, which routes it as if it had arrived locally. Workers talk through ZeroMQ
(:mod:`casper.cluster.bus`); the supervisor (:mod:`casper.cluster.supervisor`) starts them.
"""
