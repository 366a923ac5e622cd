"""``casper compare``: invisibility strategies side by side, and what leaks where.

Runs the scenario catalogue (``scenarios/*.toml``) against each strategy on Casper servers
started on loopback, and against foreign servers (``--target``), comparing every
observation with the same account truly offline. See :mod:`casper.compare.cli`.
"""
