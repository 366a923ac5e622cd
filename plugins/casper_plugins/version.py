"""Software version: tell clients which server software runs the domain (XEP-0092).

Implements XEP-0092 for the server's domain: ``<name>Casper</name>``, the version of the
installed ``casper-xmpp`` distribution (``0`` if it is not installed as a distribution) and,
only when configured, ``<os/>`` (XEP-0092 §5 notes that revealing the operating system helps
attackers, so it is off by default). IQs to accounts' bare JIDs are not answered here: the
server does not speak for a user's clients.

Hooks: ``casper_configure``, ``casper_iq_handlers``, ``casper_disco_features``
(``jabber:iq:version`` for the server).

Config keys (``[plugin.version]``):

- ``show_os`` (bool, default ``false``): include ``<os/>`` (``platform.system()`` and
  ``platform.release()``).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.stanza import qname

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

if TYPE_CHECKING:
    from casper.server import Server

NAME = "version"
VERSION_NS = "jabber:iq:version"
DISTRIBUTION = "casper-xmpp"
SOFTWARE = "Casper"


@dataclass(frozen=True)
class Config:
    show_os: bool = False

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate ``[plugin.version]``; raise ConfigError naming the bad key."""
        unknown = set(settings) - {"show_os"}
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        show_os = settings.get("show_os", False)
        if not isinstance(show_os, bool):
            raise ConfigError(f"plugin.{NAME}.show_os must be true or false, got {show_os!r}")
        return cls(show_os=show_os)


def software_version() -> str:
    """The installed version of Casper, or ``"0"`` when not installed as a distribution."""
    try:
        return dist_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0"


class SoftwareVersion:
    """The plugin's state: its validated config and the answer it builds from it."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [IqHandler("get", VERSION_NS, "query", self.answer, target="server")]

    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [VERSION_NS] if target == "server" else []

    async def answer(self, request: IqRequest) -> Element:
        query = Element(qname(VERSION_NS, "query"))
        SubElement(query, qname(VERSION_NS, "name")).text = SOFTWARE
        SubElement(query, qname(VERSION_NS, "version")).text = software_version()
        if self.config.show_os:
            os_name = f"{platform.system()} {platform.release()}".strip()
            SubElement(query, qname(VERSION_NS, "os")).text = os_name or "unknown"
        return query


@hookimpl
def casper_configure(server: Server) -> None:
    config = Config.from_mapping(server.plugin_config(NAME))
    server.pm.register(SoftwareVersion(config), f"{NAME}.state")
