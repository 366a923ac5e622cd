"""Limits (casper.limits): the sans-IO bookkeeping, the config keys, and each limit end to end.

- connections per address: over real loopback TCP (memory streams have no address);
- authentication failures: per account over memory streams with a mock clock (expiry too),
  per address over loopback TCP;
- stanza rate: a flooding session is slowed, not cut off, and loses nothing; traffic to it
  and everyone else's goes on (memory streams, mock clock moved by hand);
- idle and negotiation timeouts (mock clock).

Logins run with the mock clock standing still (``autojump_threshold = inf``): autojump would
also fire while the server waits for its storage thread. Time then moves only by
``autojump_clock.jump()``.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
import trio
import trio.testing
from casper.config import Config, ConfigError, load_config
from casper.jid import JID
from casper.limits import FailureWindow, Limits, LimitSettings, TokenBucket, address_key
from casper.testing import TestServer, open_test_server
from casper.testing.client import StreamEnded

from tests.core.conftest import (
    SASL,
    login,
    message_with_id,
    sasl_attempt,
    tls_client,
)
from tests.helpers import error_condition, sync

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "casper.toml"
LOOPBACK = "127.0.0.1"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def sasl_condition(element) -> str:
    assert element.tag == f"{{{SASL}}}failure", element.tag
    return element[0].tag.rpartition("}")[2]


# ---------------------------------------------------------------- sans-IO bookkeeping


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.1) == pytest.approx(0.1)  # one token came back, it was owed
    assert bucket.reserve(10.0) == 0  # refilled, but never beyond the burst
    assert [bucket.reserve(10.0) for _ in range(2)] == [0, 0]
    assert bucket.reserve(10.0) > 0
    assert bucket.reserve(5.0) > 0  # time going backwards adds nothing
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_failure_window_counts_recent_failures_per_key_and_stays_bounded() -> None:
    window = FailureWindow(limit=2, window=60, max_keys=3)
    window.add("a", 0)
    assert not window.blocked("a", 1)
    window.add("a", 10)
    assert window.blocked("a", 59) and window.count("a", 59) == 2
    assert not window.blocked("a", 60.5)  # the first failure aged out
    assert not window.blocked("a", 70.5) and len(window) == 0  # forgotten entirely
    for key in "bcde":
        window.add(key, 100)
    assert len(window) == 3 and window.count("b", 100) == 0  # the oldest was dropped
    window.clear("c")
    assert window.count("c", 100) == 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::99", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, None),
        ("", None),
        ("not an address", None),
    ],
)
def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64(address, key) -> None:
    assert address_key(address) == key


def test_connections_per_address() -> None:
    limits = Limits(LimitSettings(max_connections_per_ip=2))
    assert limits.connection_opened("192.0.2.1") and limits.connection_opened("192.0.2.1")
    assert not limits.connection_opened("192.0.2.1")
    assert limits.connection_opened("192.0.2.2")
    assert limits.connection_opened("2001:db8::1") and limits.connection_opened("2001:db8::2")
    assert not limits.connection_opened("2001:db8::3")  # the same /64
    assert limits.connection_opened(None)  # no address, not counted
    limits.connection_closed("192.0.2.1")
    assert limits.connections_from("192.0.2.1") == 1
    assert limits.connection_opened("192.0.2.1")
    for _ in range(5):
        limits.connection_closed("192.0.2.2")  # more closes than opens stay harmless
    assert limits.connections_from("192.0.2.2") == 0
    unlimited = Limits(LimitSettings(max_connections_per_ip=None))
    assert all(unlimited.connection_opened("192.0.2.1") for _ in range(1000))


def test_auth_failures_per_address_and_per_account() -> None:
    limits = Limits(
        LimitSettings(auth_failures_per_ip=3, auth_failures_per_account=2, auth_failure_window=100)
    )
    for condition in ("malformed-request", "aborted", "temporary-auth-failure"):
        limits.auth_failed("192.0.2.1", "juliet", condition, 0)  # not wrong credentials
    assert limits.auth_allowed("192.0.2.1", "juliet", 0)
    limits.auth_failed("192.0.2.1", "juliet", "not-authorized", 0)
    limits.auth_failed("192.0.2.2", "juliet", "not-authorized", 1)
    assert not limits.auth_allowed("192.0.2.3", "juliet", 2)  # per account, from anywhere
    assert limits.auth_allowed("192.0.2.1", "romeo", 2)
    limits.auth_failed("192.0.2.1", "nobody", "not-authorized", 3)
    assert limits.auth_allowed("192.0.2.1", "romeo", 3)
    limits.auth_failed("192.0.2.1", "nobody", "not-authorized", 3)
    assert not limits.auth_allowed("192.0.2.1", "romeo", 4)  # per address, any account
    assert limits.auth_allowed("192.0.2.9", "romeo", 4)
    assert limits.auth_allowed("192.0.2.1", "romeo", 100.5)  # aged out
    limits.auth_succeeded("juliet")
    assert limits.auth_allowed("192.0.2.3", "juliet", 5)
    off = Limits(LimitSettings(auth_failures_per_ip=None, auth_failures_per_account=None))
    for _ in range(100):
        off.auth_failed("192.0.2.1", "juliet", "not-authorized", 0)
    assert off.auth_allowed("192.0.2.1", "juliet", 0)


def test_stanza_delay_per_session() -> None:
    class FakeSession:
        pass

    limits = Limits(LimitSettings(stanza_rate=2, stanza_burst=1))
    first, second = FakeSession(), FakeSession()
    assert limits.stanza_delay(first, 0) == 0
    assert limits.stanza_delay(first, 0) == pytest.approx(0.5)
    assert limits.stanza_delay(second, 0) == 0  # each session has its own bucket
    assert Limits(LimitSettings(stanza_rate=None)).stanza_delay(first, 0) == 0


def test_module_is_sans_io() -> None:
    source = (Path(__file__).resolve().parents[2] / "core/casper/limits.py").read_text()
    assert "import trio" not in source and "time.time" not in source


# ---------------------------------------------------------------- configuration


def test_limits_are_on_by_default_and_documented_in_the_example() -> None:
    config = Config()
    assert config.max_connections_per_ip == 100
    assert config.max_sessions_per_account == 10
    assert (config.stanza_rate, config.stanza_burst) == (50.0, 200)
    assert (config.auth_failures_per_ip, config.auth_failures_per_account) == (10, 20)
    assert config.auth_failure_window == 600.0
    assert load_config(EXAMPLE, {}) == config
    example = EXAMPLE.read_text()
    for key in LimitSettings.__dataclass_fields__:
        assert f"\n{key} = " in example, key


def test_limits_can_be_switched_off_and_are_range_checked(tmp_path: Path) -> None:
    path = tmp_path / "casper.toml"
    keys = (
        "max_connections_per_ip",
        "max_sessions_per_account",
        "stanza_rate",
        "auth_failures_per_ip",
        "auth_failures_per_account",
    )
    path.write_text("[limits]\n" + "".join(f"{key} = false\n" for key in keys))
    config = load_config(path, {})
    assert all(getattr(config, key) is None for key in keys)
    settings = LimitSettings.from_config(config)
    assert settings.max_connections_per_ip is None and settings.stanza_rate is None
    for bad in (
        "stanza_rate = 0",
        "stanza_burst = 0",
        "max_connections_per_ip = 0",
        "max_sessions_per_account = 0",
        "auth_failure_window = 0",
        "auth_failures_per_ip = -1",
        "stanza_burst = false",
        "auth_failure_window = false",
    ):
        path.write_text(f"[limits]\n{bad}\n")
        with pytest.raises(ConfigError, match=f"limits.{bad.split()[0]}"):
            load_config(path, {})


# ---------------------------------------------------------------- connections per address


async def test_connection_over_the_per_address_limit_gets_policy_violation() -> None:
    server = open_test_server(
        default_plugins=False,
        tcp=True,
        max_connections_per_ip=3,
        accounts=("romeo", "juliet", "nurse"),
    )
    async with server as srv:
        async with srv.client("juliet") as juliet, srv.client("romeo") as romeo:
            third = await srv.connect()
            await third.open_stream()
            assert srv.server.limits.connections_from(LOOPBACK) == 3
            refused = await srv.connect()
            with pytest.raises(StreamEnded) as ended:
                await refused.open_stream()
            assert ended.value.error == "policy-violation"
            await refused.stream.aclose()
            # the refusal cost nobody anything: the others still talk
            await romeo.send(f"<message to='{juliet.jid}' id='m1'><body>hi</body></message>")
            await juliet.expect(message_with_id("m1"))
            await third.stream.aclose()
            with trio.fail_after(10):
                while srv.server.limits.connections_from(LOOPBACK) > 2:
                    await trio.sleep(0.01)
            async with srv.client("nurse") as nurse:  # room again
                assert nurse.jid is not None
        with trio.fail_after(10):
            while srv.server.limits.connections_from(LOOPBACK):
                await trio.sleep(0.01)


# ---------------------------------------------------------------- sessions per account


def test_sessions_per_account() -> None:
    limits = Limits(LimitSettings(max_sessions_per_account=2))
    assert limits.session_allowed(0) and limits.session_allowed(1)
    assert not limits.session_allowed(2)
    assert Limits(LimitSettings(max_sessions_per_account=None)).session_allowed(10**6)


async def _bind_reply(srv: TestServer, user: str, resource: str) -> Element:
    client = await tls_client(srv)
    await client.authenticate(user, "secret")
    await client.send(
        f"<iq type='set' id='b1'><bind xmlns='{BIND}'><resource>{resource}</resource></bind></iq>"
    )
    reply = await client.expect(lambda e: e.get("id") == "b1")
    await client.stream.aclose()
    return reply


async def test_one_more_session_than_the_account_may_have_gets_resource_constraint() -> None:
    async with (
        open_test_server(default_plugins=False, max_sessions_per_account=2) as srv,
        srv.client("romeo", resource="a") as first,
        srv.client("romeo", resource="b"),
        srv.client("juliet", resource="a") as juliet,  # another account is not limited by it
    ):
        refused = await _bind_reply(srv, "romeo", "c")
        assert refused.get("type") == "error"
        assert error_condition(refused) == "resource-constraint"
        assert refused.find("{jabber:client}error").get("type") == "wait"
        assert len(srv.server.router.sessions_of(JID.parse("romeo@localhost"))) == 2
        # rebinding a resource the account has replaces that session: not one more
        replaced = await _bind_reply(srv, "romeo", "a")
        assert replaced.get("type") == "result"
        with pytest.raises(StreamEnded) as ended:
            await first.expect(lambda e: True)
        assert ended.value.error == "conflict"
        await juliet.send(f"<message to='{juliet.jid}' id='m1'><body>me</body></message>")
        await juliet.expect(message_with_id("m1"))


async def test_binds_racing_each_other_cannot_exceed_the_sessions_per_account() -> None:
    """Binds answered but not yet bound count: clients binding at once, each on its own
    connection, get one session between them and ``resource-constraint`` for the rest."""
    async with open_test_server(default_plugins=False, max_sessions_per_account=1) as srv:
        clients = []
        for _ in range(3):
            client = await tls_client(srv)
            await client.authenticate("romeo", "secret")
            clients.append(client)
        for number, client in enumerate(clients):
            await client.send(
                f"<iq type='set' id='b1'><bind xmlns='{BIND}'><resource>r{number}</resource>"
                "</bind></iq>"
            )
        replies = [await c.expect(lambda e: e.get("id") == "b1") for c in clients]
        assert sorted(r.get("type") for r in replies) == ["error", "error", "result"]
        await sync(clients[[r.get("type") for r in replies].index("result")])
        assert len(srv.server.router.sessions_of(JID.parse("romeo@localhost"))) == 1
        for client in clients:
            await client.stream.aclose()


async def test_a_session_that_ends_makes_room_for_another() -> None:
    async with open_test_server(default_plugins=False, max_sessions_per_account=1) as srv:
        async with srv.client("romeo", resource="a"):
            refused = await _bind_reply(srv, "romeo", "b")
            assert error_condition(refused) == "resource-constraint"
        with trio.fail_after(10):
            while srv.server.router.sessions_of(JID.parse("romeo@localhost")):
                await trio.sleep(0.01)
        async with srv.client("romeo", resource="b") as again:
            assert str(again.jid) == "romeo@localhost/b"


# ---------------------------------------------------------------- authentication failures


async def test_account_over_its_failure_limit_gets_temporary_auth_failure_until_they_expire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = math.inf
    server = open_test_server(
        default_plugins=False, auth_failures_per_account=2, auth_failure_window=60
    )
    async with server as srv:
        client = await tls_client(srv)
        for mechanism in ("PLAIN", "SCRAM-SHA-256"):
            reply = await sasl_attempt(client, "juliet", "wrong", mechanism)
            assert sasl_condition(reply) == "not-authorized"
        await client.stream.aclose()
        for mechanism in ("PLAIN", "SCRAM-SHA-256"):  # the right password, refused anyway
            client = await tls_client(srv)
            reply = await sasl_attempt(client, "juliet", "secret", mechanism)
            assert sasl_condition(reply) == "temporary-auth-failure"
            assert reply.findtext(f"{{{SASL}}}text") == "too many failed attempts; try again later"
            await client.stream.aclose()
        romeo = await login(srv, "romeo")  # another account is not affected
        await romeo.stream.aclose()
        autojump_clock.jump(59)
        client = await tls_client(srv)
        reply = await sasl_attempt(client, "juliet", "secret", "SCRAM-SHA-256")
        assert sasl_condition(reply) == "temporary-auth-failure"  # not counted, not extended
        await client.stream.aclose()
        autojump_clock.jump(1.5)
        juliet = await login(srv, "juliet")
        assert juliet.jid is not None
        await juliet.stream.aclose()


async def test_unknown_accounts_are_limited_like_existing_ones() -> None:
    async with open_test_server(default_plugins=False, auth_failures_per_account=1) as srv:
        for user, expected in (
            ("ghost", "not-authorized"),
            ("ghost", "temporary-auth-failure"),
            ("romeo", "not-authorized"),
            ("romeo", "temporary-auth-failure"),
        ):
            client = await tls_client(srv)
            reply = await sasl_attempt(client, user, "wrong", "SCRAM-SHA-256")
            assert sasl_condition(reply) == expected, user
            await client.stream.aclose()


async def test_address_over_its_failure_limit_is_refused_for_every_account() -> None:
    server = open_test_server(
        default_plugins=False, tcp=True, auth_failures_per_ip=3, auth_failures_per_account=None
    )
    async with server as srv:
        client = await tls_client(srv)
        conditions = [
            sasl_condition(await sasl_attempt(client, user, "wrong", "SCRAM-SHA-256"))
            for user in ("juliet", "romeo")
        ]
        await client.stream.aclose()
        client = await tls_client(srv)
        conditions.append(sasl_condition(await sasl_attempt(client, "x", "wrong", "PLAIN")))
        conditions.append(sasl_condition(await sasl_attempt(client, "romeo", "secret", "PLAIN")))
        assert conditions == ["not-authorized"] * 3 + ["temporary-auth-failure"]
        await client.stream.aclose()


async def test_three_failures_on_one_stream_still_end_it_with_policy_violation() -> None:
    async with open_test_server(default_plugins=False, auth_failures_per_account=1) as srv:
        client = await tls_client(srv)
        conditions = [
            sasl_condition(await sasl_attempt(client, "juliet", password, "PLAIN"))
            for password in ("wrong", "secret", "secret")
        ]
        assert conditions == ["not-authorized"] + ["temporary-auth-failure"] * 2
        with pytest.raises(StreamEnded) as ended:
            await client.recv()
        assert ended.value.error == "policy-violation"
        await client.stream.aclose()


# ---------------------------------------------------------------- stanza rate


async def test_a_flooding_session_is_slowed_not_cut_off_and_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = math.inf
    server = open_test_server(default_plugins=False, stanza_rate=10, stanza_burst=5)
    async with server as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        flood = "".join(
            f"<message to='{juliet.jid}' id='f{i}' type='chat'><body>{i}</body></message>"
            for i in range(25)
        )
        await romeo.send_raw(flood)
        await trio.testing.wait_all_tasks_blocked()
        got = await sync(juliet)
        assert [e.get("id") for e in got] == [f"f{i}" for i in range(5)]  # the burst only
        # romeo is still there, and what is sent *to* him is not slowed down
        assert srv.server.router.session_for(romeo.jid) is not None
        await juliet.send(
            f"<message to='{romeo.jid}' id='back' type='chat'><body>ok</body></message>"
        )
        await romeo.expect(message_with_id("back"))
        start = trio.current_time()
        autojump_clock.autojump_threshold = 0  # let time run: 20 more stanzas at 10 a second
        for i in range(5, 25):
            got.append(await juliet.expect(message_with_id(f"f{i}")))
        assert [e.get("id") for e in got] == [f"f{i}" for i in range(25)]  # in order, all
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.15)
        assert srv.server.router.session_for(romeo.jid) is not None


async def test_stanza_rate_can_be_switched_off(autojump_clock: trio.testing.MockClock) -> None:
    autojump_clock.autojump_threshold = math.inf
    server = open_test_server(default_plugins=False, stanza_rate=None, stanza_burst=1)
    async with server as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await romeo.send_raw(
            "".join(
                f"<message to='{juliet.jid}' id='f{i}'><body>x</body></message>" for i in range(50)
            )
        )
        await trio.testing.wait_all_tasks_blocked()
        assert len(await sync(juliet)) == 50


# ---------------------------------------------------------------- timeouts


async def test_idle_session_is_closed_with_connection_timeout_and_traffic_keeps_it_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = math.inf
    async with open_test_server(default_plugins=False, idle_timeout=60) as srv:
        romeo = await login(srv, "romeo")
        autojump_clock.jump(50)
        await romeo.send_raw(" ")  # a whitespace keepalive counts as traffic
        await trio.testing.wait_all_tasks_blocked()
        autojump_clock.jump(50)
        await trio.testing.wait_all_tasks_blocked()
        assert srv.server.router.session_for(romeo.jid) is not None  # 100 s, never 60 idle
        autojump_clock.jump(11)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(StreamEnded) as ended:
            await romeo.recv()
        assert ended.value.error == "connection-timeout"
        assert srv.server.router.session_for(romeo.jid) is None
        await romeo.stream.aclose()


async def test_negotiation_timeout_also_cuts_a_client_that_stalls_in_sasl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.autojump_threshold = math.inf
    async with open_test_server(default_plugins=False, negotiation_timeout=20) as srv:
        client = await tls_client(srv)
        await client.send_raw(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'/>")
        challenge = await client.recv()
        assert challenge.tag == f"{{{SASL}}}challenge"
        autojump_clock.jump(21)  # the deadline counts from the connection, not the last byte
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(StreamEnded) as ended:
            await client.recv()
        assert ended.value.error == "connection-timeout"
        await client.stream.aclose()


async def test_limits_belong_to_each_server() -> None:
    async with (
        open_test_server(default_plugins=False) as one,
        open_test_server(default_plugins=False) as two,
    ):
        assert one.server.limits is not two.server.limits
        assert isinstance(one, TestServer)
