"""Who may do what: the privilege rules of XEP-0045 §5 as tables and pure checks.

Each check raises :class:`casper.errors.StanzaError` carrying the protocol answer
(``forbidden``, ``not-allowed``, ``conflict``), h11-style; callers just pass it on.

Roles (moderator > participant > visitor) last one visit; affiliations (owner > admin >
member > none > outcast) are kept with the room. Rules:

- a role change needs a moderator; granting or revoking *moderator* needs an admin or
  owner; nobody's role may be lowered while their affiliation is admin or owner
  (``not-allowed``: kick the admin after removing the affiliation);
- an affiliation change needs an admin or owner; admins move JIDs only between none,
  member and outcast; owners move any; a room never loses its last owner (``conflict``);
- lists: affiliation lists for admins and owners, role lists for moderators.
"""

from __future__ import annotations

from casper.errors import StanzaError

from .model import AFFILIATIONS, ROLES

_LOW = frozenset({"none", "member", "outcast"})
_ALL = frozenset(AFFILIATIONS)

# actor's affiliation -> (affiliations it may take a JID from, affiliations it may give)
AFFILIATION_POWERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "owner": (_ALL, _ALL),
    "admin": (_LOW, _LOW),
}

# what each role may do in the room (XEP-0045 §5.1, the table of privileges)
ROLE_PRIVILEGES: dict[str, frozenset[str]] = {
    "moderator": frozenset(
        {"present", "receive", "speak", "subject", "invite", "pm", "kick", "voice", "list-roles"}
    ),
    "participant": frozenset({"present", "receive", "speak", "invite", "pm"}),
    "visitor": frozenset({"present", "receive", "pm"}),
    "none": frozenset(),
}


def has(role: str, privilege: str) -> bool:
    return privilege in ROLE_PRIVILEGES[role]


def check_role_change(actor_role: str, actor_affiliation: str, target_role: str,
                      target_affiliation: str, new_role: str) -> None:  # fmt: skip
    """Raise unless a ``actor`` may give ``new_role`` to the target occupant."""
    if new_role not in ROLES:
        raise StanzaError("bad-request", f"unknown role {new_role!r}")
    if actor_role != "moderator":
        raise StanzaError("forbidden", "only moderators change roles")
    moderator_change = "moderator" in (new_role, target_role)
    if moderator_change and actor_affiliation not in ("admin", "owner"):
        raise StanzaError("forbidden", "only admins and owners grant or revoke moderation")
    if target_affiliation in ("admin", "owner") and new_role != "moderator":
        raise StanzaError("not-allowed", "the occupant is an admin or owner of the room")


def check_affiliation_change(actor_affiliation: str, current: str, new: str) -> None:
    """Raise unless ``actor_affiliation`` may move a JID from ``current`` to ``new``."""
    if new not in AFFILIATIONS:
        raise StanzaError("bad-request", f"unknown affiliation {new!r}")
    powers = AFFILIATION_POWERS.get(actor_affiliation)
    if powers is None:
        raise StanzaError("forbidden", "only admins and owners change affiliations")
    may_take, may_give = powers
    if current not in may_take or new not in may_give:
        raise StanzaError("forbidden", f"an {actor_affiliation} cannot make {current} {new}")


def check_owners_left(owners: int) -> None:
    if owners == 0:
        raise StanzaError("conflict", "a room needs at least one owner")


def check_list(actor_role: str, actor_affiliation: str, *, affiliation: str | None = None,
               role: str | None = None) -> None:  # fmt: skip
    """Raise unless the actor may read the list asked for."""
    if affiliation is not None:
        if affiliation not in AFFILIATIONS or affiliation == "none":
            raise StanzaError("bad-request", f"no list for affiliation {affiliation!r}")
        if actor_affiliation not in ("admin", "owner"):
            raise StanzaError("forbidden", "only admins and owners read affiliation lists")
    elif role is not None:
        if role not in ROLES or role == "none":
            raise StanzaError("bad-request", f"no list for role {role!r}")
        if not has(actor_role, "list-roles"):
            raise StanzaError("forbidden", "only moderators read role lists")
    else:
        raise StanzaError("bad-request", "ask for an affiliation or a role")
