"""Embed Casper: run a server on localhost:5222 with the baseline plugins.

    python examples/minimal_server.py

Create an account first with ``casper user add romeo@localhost --data-dir casper-data``.
"""

from pathlib import Path

import trio
from casper.config import Config
from casper.server import serve


def main() -> None:
    config = Config(domain="localhost", host="127.0.0.1", port=5222, tls_port=5223,
                    data_dir=Path("casper-data"))  # fmt: skip
    trio.run(serve, config)


if __name__ == "__main__":
    main()
