"""Casper: an XMPP server on Trio with pluggable, measurable invisibility."""
