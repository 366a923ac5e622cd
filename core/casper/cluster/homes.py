"""Which worker is an account's home: the same answer in every worker process."""

from __future__ import annotations

import zlib

from casper.jid import JID


def home_of(account: JID, workers: int) -> int:
    """The home worker of ``account`` (a bare JID) among ``workers``.

    CRC-32 rather than :func:`hash`, which differs between processes.
    """
    return zlib.crc32(str(account.bare).encode()) % workers
