"""The administrator's invisibility policy, applied inside the visibility decision.

Configuration (``[invisibility]`` and ``[groups]``)::

    [invisibility]
    enabled = true                 # false: nobody may hide ("no caspers in a corporate
                                   #  environment"); strategies refuse with not-allowed
    allowed = ["staff"]            # who may hide: accounts or group names; "*" = everyone
    never_hidden_from = ["managers"]   # nobody may hide from these accounts or groups
    [groups]
    staff = ["alice@example.com", "bob@example.com"]
    managers = ["carol@example.com"]

Because :meth:`casper.visibility.Visibility.hidden` asks the policy before any strategy,
every enforcement point honours it without a strategy doing anything; strategies also ask
it when a user *requests* invisibility, to answer a refused request with ``not-allowed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, ConfigError
from .jid import JID

EVERYONE = "*"


@dataclass(frozen=True)
class InvisibilityPolicy:
    enabled: bool = True
    allowed: frozenset[str] = frozenset({EVERYONE})  # bare JIDs, or EVERYONE
    never_hidden_from: frozenset[str] = frozenset()  # bare JIDs

    @classmethod
    def from_config(cls, config: Config) -> InvisibilityPolicy:
        groups = config.account_groups
        return cls(
            enabled=config.invisibility,
            allowed=_expand(config.invisibility_allowed, groups, "invisibility.allowed"),
            never_hidden_from=_expand(
                config.never_hidden_from, groups, "invisibility.never_hidden_from"
            ),
        )

    def may_hide(self, account: JID) -> bool:
        """Whether ``account`` may be invisible at all."""
        return self.enabled and (EVERYONE in self.allowed or str(account.bare) in self.allowed)

    def always_sees(self, observer: JID) -> bool:
        """Whether nobody may hide from ``observer`` (``never_hidden_from``)."""
        return str(observer.bare) in self.never_hidden_from

    def may_hide_from(self, account: JID, observer: JID) -> bool:
        """Whether ``account`` may be hidden from ``observer``."""
        return self.may_hide(account) and not self.always_sees(observer)


def _expand(entries: tuple[str, ...], groups: object, key: str) -> frozenset[str]:
    """Turn account JIDs and group names into a set of bare JIDs (EVERYONE kept)."""
    members: set[str] = set()
    for entry in entries:
        if entry == EVERYONE:
            members.add(EVERYONE)
        elif entry in groups:  # type: ignore[operator]
            members.update(groups[entry])  # type: ignore[index]
        elif "@" in entry:
            members.add(str(JID.parse(entry).bare))
        else:
            raise ConfigError(f"{key}: {entry!r} is neither an account JID nor a group in [groups]")
    return frozenset(members)
