"""Load benchmarks that drive XMPP clients over loopback sockets against any server.

Run ``python -m casper.bench --help``; see :mod:`casper.bench.cli` for the command line,
:mod:`casper.bench.workloads` for what each figure means and :mod:`casper.bench.client` for
the client.
"""
