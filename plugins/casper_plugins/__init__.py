"""Casper built-in plugins, packaged exactly like third-party ones."""
