"""Real third-party XMPP clients, from the npm registry, against Casper's web transports.

The clients are @xmpp/client (xmpp.js, WebSocket) and strophe.js (BOSH and WebSocket), run
by ``node`` on ``tests/transports/js/chat.mjs``: two of them log in, see each other's
presence, exchange a message each way, and one logs out while the other sees it go. The
script prints one JSON line, checked here.

``js/invisible.mjs`` makes one of them go invisible with a strategy plugin it can speak
(XEP-0186 ``<invisible/>``, directed presence after ``<presence type='unavailable'/>``, or
XEP-0018 ``type='invisible'``) while two contacts watch: both get unavailable, one still
chats with it by full JIDs and is shown it by directed presence, the other sees nothing more,
not even its logout.

The browser test serves converse.js (the web chat client) on localhost and drives it in
Debian's headless chromium through playwright-core (``js/converse.mjs``): log in over
WebSocket or BOSH, see a contact online, receive and send a message, take a screenshot, go
invisible through converse's own API (``api.send`` of XEP-0186 ``<invisible/>`` or XEP-0018
``<presence type='invisible'/>``), still chat with the contact, who saw it go, and take a
second screenshot. (Not the directed-presence way: converse answers the unavailable presence
the server reflects to it with a fresh available one, see ``js/converse.mjs``.)

Setup (what ``.ci/run`` does)::

    apt-get install -y nodejs npm chromium
    npm ci --prefix tests/transports/js

Each test skips, saying why, when ``node``, ``node_modules`` or chromium is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio
from casper.storage.base import RosterItem

from tests.transports.clients import http_request
from tests.transports.conftest import HOST, Web

MakeWeb = Callable[..., AbstractAsyncContextManager[Web]]

JS = Path(__file__).with_name("js")
NODE_TIMEOUT = 60
CHROMIUM = "/usr/bin/chromium"


def _missing() -> str | None:
    """Why the Node.js clients cannot run here, or ``None``."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install -y nodejs npm)"
    if not (JS / "node_modules" / "@xmpp" / "client").is_dir():
        return "tests/transports/js/node_modules is missing (npm ci --prefix tests/transports/js)"
    return None


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if not (JS / "node_modules" / "converse.js" / "dist").is_dir():
        return "converse.js is missing (npm ci --prefix tests/transports/js)"
    return None


# skipped before the test starts, so that the reason is reported (pytest -rs)
needs_node = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
needs_browser = pytest.mark.skipif(
    (_missing() or _browser_missing()) is not None, reason=str(_missing() or _browser_missing())
)


async def _contacts(web: Web, a: str, b: str) -> None:
    rosters = web.srv.server.rosters
    await rosters.put(
        web.srv.jid(a), RosterItem(jid=str(web.srv.jid(b)), subscription="both"), push=False
    )
    await rosters.put(
        web.srv.jid(b), RosterItem(jid=str(web.srv.jid(a)), subscription="both"), push=False
    )


async def run_node(
    script: str, config: dict[str, Any], timeout: float = NODE_TIMEOUT
) -> dict[str, Any]:
    """Run ``node js/<script> <config as JSON>`` and return the JSON it printed last."""
    node = shutil.which("node")
    assert node is not None
    with trio.fail_after(timeout):
        done = await trio.run_process([node, str(JS / script), json.dumps(config)], cwd=JS,
                                      capture_stdout=True, capture_stderr=True, check=False)  # fmt: skip
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    assert lines, f"no JSON from {script}: {done.stdout.decode()}\n{done.stderr.decode()}"
    result = json.loads(lines[-1])
    detail = json.dumps(result, indent=1)[-4000:] + "\n" + done.stderr.decode()[-3000:]
    assert done.returncode == 0 and result.get("ok"), detail
    return result


def _actor(web: Web, lib: str, transport: str, user: str) -> dict[str, str]:
    service = web.ws_url if transport == "websocket" else web.bosh_url
    return {"lib": lib, "service": service, "user": user, "password": "secret", "resource": lib}


PAIRS = [
    pytest.param(("xmpp.js", "websocket"), ("xmpp.js", "websocket"), id="xmppjs-ws--xmppjs-ws"),
    pytest.param(("strophe", "bosh"), ("strophe", "bosh"), id="strophe-bosh--strophe-bosh"),
    pytest.param(("strophe", "websocket"), ("strophe", "bosh"), id="strophe-ws--strophe-bosh"),
    pytest.param(("xmpp.js", "websocket"), ("strophe", "bosh"), id="xmppjs-ws--strophe-bosh"),
]


@needs_node
@pytest.mark.parametrize(("romeo", "juliet"), PAIRS)
async def test_node_clients_chat(web: Web, romeo: tuple[str, str], juliet: tuple[str, str]) -> None:
    await _contacts(web, "romeo", "juliet")
    result = await run_node("chat.mjs", {
        "domain": web.domain,
        "romeo": _actor(web, *romeo, "romeo"),
        "juliet": _actor(web, *juliet, "juliet"),
    })  # fmt: skip
    r, j = result["romeo"], result["juliet"]
    assert r["jid"].startswith("romeo@localhost/") and j["jid"].startswith("juliet@localhost/")
    assert r["sawPresenceFrom"] == j["jid"] and j["sawPresenceFrom"] == r["jid"]
    assert j["received"] == {"from": r["jid"], "body": "Wherefore art thou?"}
    assert r["received"] == {"from": j["jid"], "body": "Here, on the balcony."}
    assert r["sawUnavailableFrom"] == j["jid"]
    await wait_all_gone(web)


# (strategy plugin, romeo who hides, juliet who is shown, benvolio who is hidden from)
INVISIBLE = [
    pytest.param("invisible-command", ("xmpp.js", "websocket"), ("xmpp.js", "websocket"),
                 ("strophe", "bosh"), id="xep0186-xmppjs-ws"),
    pytest.param("directed-presence", ("strophe", "bosh"), ("strophe", "bosh"),
                 ("xmpp.js", "websocket"), id="directed-strophe-bosh"),
    pytest.param("invisible-command", ("strophe", "websocket"), ("strophe", "bosh"),
                 ("xmpp.js", "websocket"), id="xep0186-strophe-ws"),
    pytest.param("directed-presence", ("xmpp.js", "websocket"), ("xmpp.js", "websocket"),
                 ("strophe", "bosh"), id="directed-xmppjs-ws"),
    pytest.param("xep0018", ("strophe", "bosh"), ("xmpp.js", "websocket"),
                 ("strophe", "websocket"), id="xep0018-strophe-bosh"),
]  # fmt: skip


@needs_node
@pytest.mark.parametrize(("strategy", "romeo", "juliet", "benvolio"), INVISIBLE)
async def test_node_client_goes_invisible(
    make_web: MakeWeb,
    strategy: str,
    romeo: tuple[str, str],
    juliet: tuple[str, str],
    benvolio: tuple[str, str],
) -> None:
    """romeo hides with ``strategy``; juliet, shown to later, and benvolio watch."""
    async with make_web(plugins=(strategy,)) as web:
        await _contacts(web, "romeo", "juliet")
        await _contacts(web, "romeo", "benvolio")
        result = await run_node("invisible.mjs", {
            "domain": web.domain,
            "strategy": strategy,
            "health": f"http://{HOST}:{web.port}/health",
            "romeo": _actor(web, *romeo, "romeo"),
            "juliet": _actor(web, *juliet, "juliet"),
            "benvolio": _actor(web, *benvolio, "benvolio"),
        })  # fmt: skip
        r, j, b = result["romeo"], result["juliet"], result["benvolio"]
        assert j["sawPresenceFrom"] == b["sawPresenceFrom"] == r["jid"]
        # going invisible: everyone who saw romeo gets unavailable
        assert j["sawUnavailableFrom"] == b["sawUnavailableFrom"] == r["jid"]
        # invisible, romeo still chats with juliet by full JIDs
        assert r["received"] == {"from": j["jid"], "to": r["jid"], "body": "Are you still there?"}
        assert j["received"] == {"from": r["jid"], "body": "Only for you."}
        # shown to juliet: she sees him online, then his logout; benvolio sees nothing more
        assert j["sawDirectedFrom"] == j["sawLogoutFrom"] == r["jid"]
        gone, back = (r["jid"], "unavailable"), (r["jid"], "available")
        assert [(p["from"], p["type"]) for p in j["presencesFromRomeo"]] == [gone, back, gone]
        assert [(p["from"], p["type"]) for p in b["presencesFromRomeo"]] == [gone]
        if strategy == "directed-presence":  # its bare-JID routing for whom the session showed to
            bare = r["jid"].split("/")[0]
            assert r["receivedBare"] == {"from": j["jid"], "to": bare, "body": "To your bare JID"}
        await wait_all_gone(web)


async def wait_all_gone(web: Web) -> None:
    """Every session the clients opened ends (their logout reached the server)."""
    with trio.fail_after(10):
        while True:
            status, _, content = await http_request(HOST, web.port, "GET", "/health")
            health = json.loads(content)
            if status == 200 and health["sessions"] == 0 and health["bosh_sessions"] == 0:
                return
            await trio.sleep(0.05)


@needs_browser
@pytest.mark.parametrize(
    ("transport", "strategy"),
    [
        pytest.param("websocket", "invisible-command", id="websocket-xep0186"),
        pytest.param("bosh", "invisible-command", id="bosh-xep0186"),
        pytest.param("bosh", "xep0018", id="bosh-xep0018"),
    ],
)
async def test_converse_in_headless_chromium(
    make_web: MakeWeb, transport: str, strategy: str, tmp_path: Path
) -> None:
    async with make_web(plugins=(strategy,)) as web:
        await _contacts(web, "romeo", "juliet")
        screenshot = tmp_path / f"converse-{transport}.png"
        invisible = tmp_path / f"converse-{transport}-invisible.png"
        config = {"domain": web.domain, "transport": transport, "strategy": strategy,
                  "websocket": web.ws_url, "bosh": web.bosh_url,
                  "health": f"http://{HOST}:{web.port}/health", "screenshot": str(screenshot),
                  "screenshotInvisible": str(invisible), "chromium": CHROMIUM,
                  "tmp": str(tmp_path)}  # fmt: skip
        result = await run_node("converse.mjs", config, timeout=120)
        romeo = "romeo@localhost/converse"
        assert result["julietReceived"] == {"from": romeo, "body": "Typed in converse.js"}
        received = [(m["from"], m["body"]) for m in result["converseReceived"]]
        assert ("juliet@localhost/xmppjs", "Answer from xmpp.js") in received
        # invisible: juliet saw romeo go, and nothing after (not even his logout)...
        assert result["julietSawUnavailableFrom"] == romeo
        assert result["julietPresencesFromRomeo"] == [{"from": romeo, "type": "unavailable"}]
        # ...but they still chat: her message to his full JID shows in the page, his answer reaches her
        assert ("juliet@localhost/xmppjs", "Still there, invisible?") in received
        answer = {"from": romeo, "body": "Yes, only for you"}
        assert result["julietReceivedWhileInvisible"] == answer
        for picture in (screenshot, invisible):
            assert picture.stat().st_size > 10_000  # a real picture of the chat
        await wait_all_gone(web)
