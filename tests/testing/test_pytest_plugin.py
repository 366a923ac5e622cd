"""The pytest plugin plugin authors get (``casper.testing.pytest_plugin``, entry point pytest11).

Most tests run a plugin author's test file end to end with ``pytester``: a conftest that
names plugins, tests that log clients in with ``casper_client``, and the outcome counted.
The fixtures are also used directly here, since this project's own pytest run loads the
plugin through the same entry point.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from casper.testing import pytest_plugin

pytest_plugins = ["pytester"]

TRIO_MODE = "[tool.pytest.ini_options]\ntrio_mode = true\n"

HELLO_PLUGIN = '''
"""Say hello: answers <hello xmlns='urn:example:hello'/> IQs to the server."""
from xml.etree.ElementTree import Element

from casper.hookspecs import hookimpl
from casper.iq import IqHandler


async def hello(request):
    return Element("{urn:example:hello}hello", {"to": str(request.requester.bare)})


class Hello:
    @hookimpl
    def casper_iq_handlers(self):
        return [IqHandler("get", "urn:example:hello", "hello", hello, target="server")]
'''

AUTHOR_TESTS = """
import pytest
from casper_hello import Hello

HELLO = "<iq type='get' to='localhost' id='h1'><hello xmlns='urn:example:hello'/></iq>"


@pytest.fixture
def casper_server_options():
    return {"extra_plugins": [(Hello(), "hello")]}


async def test_hello(casper_client):
    romeo = await casper_client("romeo", presence=True)
    await romeo.send(HELLO)
    reply = await romeo.expect(lambda e: e.get("id") == "h1")
    assert reply.get("type") == "result"
    assert reply[0].get("to") == "romeo@localhost"


async def test_scripted_conversation(casper_client):
    romeo = await casper_client("romeo", resource="garden", presence=True)
    nurse = await casper_client("nurse")
    await nurse.send("<message to='romeo@localhost/garden' id='m1'><body>anon</body></message>")
    assert (await romeo.expect("message")).get("from") == str(nurse.jid)
    await nurse.expect_nothing("message")


async def test_four_accounts(casper_server):
    for user in ("romeo", "juliet", "nurse", "tybalt"):
        assert casper_server.passwords[user] == "secret"
"""


def test_a_plugin_authors_test_file_runs_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(casper_hello=HELLO_PLUGIN, test_hello=AUTHOR_TESTS)
    pytester.syspathinsert()
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_the_fixtures_come_from_the_pytest11_entry_point(pytester: pytest.Pytester) -> None:
    """A fresh interpreter, nothing but the installed entry point: ``--fixtures`` lists them."""
    result = pytester.runpytest_subprocess("--fixtures")
    assert result.ret == 0
    for name in ("casper_server", "casper_tcp_server", "casper_client", "casper_tcp_client",
                 "casper_plugins", "casper_plugin_settings", "casper_accounts",
                 "casper_server_options"):  # fmt: skip
        result.stdout.fnmatch_lines([f"{name}*"])


def test_casper_plugins_enables_plugins_by_entry_point_name(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(
        test_enabled="""
        import pytest

        @pytest.fixture
        def casper_plugins():
            return ["xep0018"]

        async def test_enabled(casper_server):
            assert casper_server.server.pm.get_plugin("xep0018") is not None
            assert casper_server.server.pm.get_plugin("directed-presence") is None

        async def test_invisible_presence_is_consumed(casper_client):
            romeo = await casper_client("romeo")
            await romeo.send("<presence type='invisible'/>")
            await romeo.expect_nothing(lambda e: e.get("type") == "error")
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_settings_and_accounts_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(
        test_settings="""
        import pytest

        @pytest.fixture
        def casper_plugin_settings():
            return {"version": {"show_os": True}}

        @pytest.fixture
        def casper_accounts():
            return {"benvolio": "peace"}

        @pytest.fixture
        def casper_server_options():
            return {"default_plugins": False, "invisibility": False}

        async def test_overrides(casper_server, casper_client):
            server = casper_server.server
            assert server.plugin_config("version")["show_os"] is True
            assert server.pm.get_plugin("disco") is None
            assert server.policy.enabled is False
            benvolio = await casper_client("benvolio")
            assert str(benvolio.jid.bare) == "benvolio@localhost"
            with pytest.raises(KeyError):
                await casper_client("romeo")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_options_that_clash_with_a_fixture_are_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(
        test_clash="""
        import pytest

        @pytest.fixture
        def casper_server_options():
            return {"plugins": ["xep0018"]}

        async def test_clash(casper_server):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)  # pytest-trio sets fixtures up inside the test's run
    result.stdout.fnmatch_lines(["*ValueError: casper_server_options must not set plugins*"])


def test_clients_are_closed_before_the_server_stops(pytester: pytest.Pytester) -> None:
    """Teardown order: every client's stream is closed (its session gone from the router)
    after the test and before ``casper_server`` stops, even when the test fails."""
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(
        test_teardown="""
        import pytest
        import trio

        @pytest.fixture
        async def sessions_after_clients_closed(casper_server):
            yield
            router = casper_server.server.router
            with trio.fail_after(5):
                while router.all_sessions():
                    await trio.sleep(0.01)

        @pytest.mark.parametrize("fails", [False, True])
        async def test_logs_in(sessions_after_clients_closed, casper_client, fails):
            await casper_client("romeo", presence=True)
            await casper_client("juliet", resource="balcony")
            await casper_client("romeo", resource="second")
            assert len(casper_client.server.server.router.all_sessions()) == 3
            assert not fails
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # teardown itself raised no error


def test_a_failed_login_fails_the_test_that_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(TRIO_MODE)
    pytester.makepyfile(
        test_login="""
        import pytest

        async def test_wrong_password(casper_client):
            with pytest.raises(AssertionError, match="expected challenge|expected success"):
                await casper_client("romeo", password="wrong")
            romeo = await casper_client("romeo")   # the factory still works afterwards
            assert romeo.jid is not None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


# ---------------------------------------------------------------- used directly


async def test_tcp_client_talks_to_the_tcp_server_over_loopback(
    casper_tcp_server: object, casper_tcp_client: pytest_plugin.ClientFactory
) -> None:
    romeo = await casper_tcp_client("romeo", presence=True)
    juliet = await casper_tcp_client("juliet", resource="balcony")
    await juliet.send("<message to='romeo@localhost' type='chat' id='t1'><body>hi</body></message>")
    got = await romeo.expect("message")
    assert got.get("id") == "t1"
    assert casper_tcp_client.server is casper_tcp_server
    assert casper_tcp_client.server.tcp_port
    host, _port = romeo.stream.transport_stream.socket.getpeername()  # type: ignore[attr-defined]
    assert host == "127.0.0.1"


async def test_memory_server_has_no_socket(casper_server: object) -> None:
    assert casper_server.tcp_port is None  # type: ignore[attr-defined]
    assert casper_server.listener is not None  # type: ignore[attr-defined]


# ---------------------------------------------------------------- cost of the entry point

LIGHT_MODULES = {"__future__", "collections.abc", "contextlib", "typing", "pytest"}


def test_the_plugin_module_imports_only_pytest_at_module_level() -> None:
    """Everything else (trio, the server, trustme) is imported inside the fixtures."""
    tree = ast.parse(Path(pytest_plugin.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= LIGHT_MODULES, imported - LIGHT_MODULES


def test_loading_the_entry_point_does_not_import_trio() -> None:
    code = (
        "import sys, casper.testing.pytest_plugin; "
        "print(sorted(m for m in ('trio', 'casper.server', 'trustme') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
