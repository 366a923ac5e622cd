"""``[plugin.muc]``: the MUC service's settings, validated with bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from casper.config import ConfigError
from casper.jid import JID, InvalidJID

NAME = "muc"
_INT_BOUNDS = {
    "history_size": (0, 1000),
    "max_occupants": (1, 100_000),
    "queue_size": (16, 1_000_000),
}


@dataclass(frozen=True)
class Config:
    subdomain: str = "conference"
    name: str = "Chatrooms"
    history_size: int = 20
    max_occupants: int = 200
    lock_new_rooms: bool = True
    queue_size: int = 4096

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object] | None) -> Config:
        """Validate ``[plugin.muc]``; raise ConfigError naming the bad key."""
        values = dict(settings or {})
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        for key, value in values.items():
            if key in _INT_BOUNDS:
                low, high = _INT_BOUNDS[key]
                if (
                    not isinstance(value, int)
                    or isinstance(value, bool)
                    or not low <= value <= high
                ):
                    raise ConfigError(
                        f"plugin.{NAME}.{key} must be an integer in {low}..{high}, got {value!r}"
                    )
            elif key == "lock_new_rooms":
                if not isinstance(value, bool):
                    raise ConfigError(f"plugin.{NAME}.{key} must be true or false, got {value!r}")
            elif not isinstance(value, str) or not value.strip():
                raise ConfigError(f"plugin.{NAME}.{key} must be a non-empty string, got {value!r}")
        return cls(**values)  # type: ignore[arg-type]

    def service_domain(self, server_domain: str) -> str:
        """``<subdomain>.<domain>``, prepared; raise ConfigError if it is not a domain."""
        try:
            jid = JID.make(None, f"{self.subdomain}.{server_domain}")
        except InvalidJID as exc:
            raise ConfigError(f"plugin.{NAME}.subdomain {self.subdomain!r}: {exc}") from None
        if "@" in self.subdomain or "/" in self.subdomain:
            raise ConfigError(
                f"plugin.{NAME}.subdomain must be a domain label, got {self.subdomain!r}"
            )
        return jid.domain
