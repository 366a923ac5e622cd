"""Sessions leave nothing behind: after logins and logouts, the server's state is as before.

The soak benchmark (``python -m casper.bench.soak``) shows memory over minutes; this is its
quick, exact counterpart. Accounts log in again and again with a new resource each time,
go available or XEP-0018 invisible, chat (also to an account that is offline, so offline
storage fills and is delivered), change their visibility to all and to one contact, and
leave properly or by dropping the connection. Afterwards no session object is alive, no
address with one of those resources is kept anywhere (the JID parse cache aside, which is
bounded and emptied first), the per-account caches are empty and the number of tasks is
back where it was.
"""

from __future__ import annotations

import gc
import random

import trio
from casper.jid import JID, _parse_cached
from casper.session import Session
from casper.testing import TestServer, open_test_server

from tests.core.conftest import login, make_contacts
from tests.helpers import sync

ACCOUNTS = ("romeo", "juliet", "nurse", "benvolio")
ONLINE = ACCOUNTS[:3]  # benvolio logs in only every other round: his messages wait offline
ROUNDS = 4
RESOURCE_PREFIX = "churn-"


def _task_count() -> int:
    count, todo = 0, [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def _one_session(srv: TestServer, user: str, resource: str, rng: random.Random) -> None:
    client = await login(srv, user, resource)
    invisible = rng.random() < 0.5
    await client.send("<presence type='invisible'/>" if invisible else "<presence/>")
    for peer in rng.sample(ACCOUNTS, 3):
        await client.send(f"<message to='{peer}@localhost' type='chat'><body>hi</body></message>")
        kind = rng.choice(("visible", "invisible"))
        await client.send(f"<presence to='{peer}@localhost' type='{kind}'/>")
    await client.send(
        "<presence type='visible'/>" if invisible else "<presence><show>away</show></presence>"
    )
    await sync(client)
    if rng.random() < 0.5:
        await client.close()  # </stream:stream>
    else:
        await client.stream.aclose()  # the connection just drops


async def test_churned_sessions_leave_no_state_behind() -> None:
    rng = random.Random(7)
    async with open_test_server(plugins=["xep0018"], accounts=ACCOUNTS) as srv:
        for i, a in enumerate(ACCOUNTS):
            for b in ACCOUNTS[i + 1 :]:
                await make_contacts(srv, a, b)
        server = srv.server
        tasks_before = _task_count()
        for round_ in range(ROUNDS):
            users = ACCOUNTS if round_ % 2 else ONLINE
            async with trio.open_nursery() as nursery:
                for user in users:
                    resource = f"{RESOURCE_PREFIX}{round_}-{user}"
                    nursery.start_soon(_one_session, srv, user, resource, rng)
        with trio.fail_after(10):
            while server.router.all_sessions() or _task_count() > tasks_before:
                await trio.sleep(0.01)

        _parse_cached.cache_clear()  # bounded, and it holds parsed senders of offline messages
        gc.collect()
        assert [o for o in gc.get_objects() if isinstance(o, Session)] == []
        kept = [o for o in gc.get_objects() if isinstance(o, JID)
                and (o.resource or "").startswith(RESOURCE_PREFIX)]  # fmt: skip
        assert kept == []
        assert server.resumable.detached == 0
        for user in ACCOUNTS:
            assert server.rosters.cached(srv.jid(user)) is None
        assert _task_count() == tasks_before
