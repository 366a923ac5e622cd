"""Prosody and ejabberd from Debian's packages, run privately on loopback by the bench.

``apt-get install -y prosody ejabberd`` installs them; neither's system service is used or
needed. Each gets a directory of its own under the bench's temporary directory: config,
data (Prosody's files, ejabberd's Mnesia spool), log, and a self-signed EC P-256 certificate
for its domain (the same kind of certificate Casper makes for itself), and listens on free
loopback ports only.

Both are configured like the spawned Casper, so the same work is measured: STARTTLS
required, SCRAM-SHA-1 at :data:`~casper.bench.spawn.ITERATIONS` iterations, roster, disco,
ping, version, time, last activity and offline storage, no stream management, carbons or
MUC, no traffic shapers or per-user session limits (Casper's stanza rate and per-address
connection limits are switched off too), logging at warning level.

- **Prosody** (``prosody.test``): ``prosody -F --config FILE`` (``run_as_root`` so it may
  run as root here); accounts with ``prosodyctl --config FILE register`` before the first
  start; rosters in band (:func:`casper.bench.presence.subscribe_contacts`).
- **ejabberd** (``ejabberd.test``): the Erlang VM started directly as ejabberdctl would
  (``erl -noinput -mnesia dir SPOOL -s ejabberd`` with ``EJABBERD_CONFIG_PATH``), without a
  distributed node name, so no epmd, cookie or ``ejabberd`` system user is needed;
  accounts through its admin API (``mod_http_api``'s ``register``, the command
  ``ejabberdctl register`` runs, on a loopback-only HTTP port) after the first start;
  rosters in band.

Error handling: a missing package raises :class:`~casper.bench.spawn.SpawnError` naming the
``apt-get`` command; a failing admin command raises it with the command's output.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import trio

from casper.bench.presence import subscribe_contacts
from casper.bench.spawn import ITERATIONS, LOOPBACK, SpawnedServer, SpawnError, free_port
from casper.bench.workloads import Bench
from casper.tls import ensure_certificate

INSTALL_HINT = "apt-get update && apt-get install -y prosody ejabberd"
API_TIMEOUT = 10.0


def package_version(package: str) -> str:
    """The installed Debian version of ``package`` ('' if unknown)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SpawnError(f"{program} is not installed: {INSTALL_HINT}")
    return path


# -- Prosody --------------------------------------------------------------------------------------

PROSODY_CONFIG = """\
pidfile = "{root}/prosody.pid"
daemonize = false
run_as_root = true
data_path = "{root}/data"
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{root}/prosody.log" }} }}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version", "time",
                    "lastactivity" }}
modules_disabled = {{ "s2s" }}
interfaces = {{ "{host}" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
c2s_require_encryption = true
authentication = "internal_hashed"
default_iteration_count = {iterations}
storage = "internal"
allow_registration = false
ssl = {{ certificate = "{cert}", key = "{key}" }}
VirtualHost "{domain}"
"""


@dataclass
class ProsodyServer(SpawnedServer):
    """Prosody 0.12 (Debian); see the module doc."""

    domain: str = "prosody.test"
    kind = "prosody"

    @property
    def config_path(self) -> Path:
        return self.root / "prosody.cfg.lua"

    @property
    def log_path(self) -> Path:
        return self.root / "prosody.log"

    def prepare(self) -> None:
        _need("prosody")
        prosodyctl = _need("prosodyctl")
        cert, key = ensure_certificate(self.root / "data", self.domain)
        (self.root / "data").mkdir(exist_ok=True)
        self.config_path.write_text(PROSODY_CONFIG.format(
            root=self.root, host=LOOPBACK, port=self.port, iterations=ITERATIONS,
            cert=cert, key=key, domain=self.domain,
        ))  # fmt: skip
        password = self.provision.accounts.password

        def register(name: str) -> None:
            command = [prosodyctl, "--config", str(self.config_path), "register", name,
                       self.domain, password]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0:
                raise SpawnError(f"prosodyctl register {name} failed:\n{done.stdout}{done.stderr}")

        with ThreadPoolExecutor(max_workers=4) as pool:  # one Lua process per account
            list(pool.map(register, self.provision.usernames()))

    def command(self) -> list[str]:
        return [_need("prosody"), "-F", "--config", str(self.config_path)]

    async def provision_online(self, bench: Bench) -> None:
        await subscribe_contacts(bench, self.provision.hub, self.provision.contact_accounts,
                                 self.provision.contacts)  # fmt: skip

    def version(self) -> str:
        return f"prosody {package_version('prosody')}"


# -- ejabberd -------------------------------------------------------------------------------------

EJABBERD_CONFIG = """\
loglevel: warning
log_rotate_count: 0
hosts:
  - "{domain}"
certfiles:
  - "{cert}"
  - "{key}"
listen:
  -
    port: {port}
    ip: "{host}"
    module: ejabberd_c2s
    max_stanza_size: 262144
    starttls_required: true
    backlog: 1024
  -
    port: {api_port}
    ip: "{host}"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
auth_password_format: scram
auth_scram_hash: sha
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  c2s:
    allow: all
api_permissions:
  "bench admin over loopback":
    from:
      - mod_http_api
    who:
      acl: loopback
    what: "*"
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_version: {{}}
  mod_time: {{}}
  mod_last: {{}}
  mod_offline: {{}}
  mod_http_api: {{}}
"""


def _erl_libs() -> str:
    """The directory holding Debian's ``ejabberd-VERSION`` application (ejabberdctl's ERL_LIBS)."""
    found = sorted(glob.glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app"))
    if not found:
        raise SpawnError(f"ejabberd is not installed: {INSTALL_HINT}")
    return str(Path(found[-1]).parents[2])


@dataclass
class EjabberdServer(SpawnedServer):
    """ejabberd 23.01 (Debian); see the module doc."""

    domain: str = "ejabberd.test"
    api_port: int = field(default_factory=free_port)
    kind = "ejabberd"

    @property
    def log_path(self) -> Path:
        return self.root / "ejabberd.log"

    def prepare(self) -> None:
        _need("erl")
        _erl_libs()
        cert, key = ensure_certificate(self.root / "data", self.domain)
        (self.root / "spool").mkdir(exist_ok=True)
        (self.root / "ejabberd.yml").write_text(EJABBERD_CONFIG.format(
            domain=self.domain, cert=cert, key=key, host=LOOPBACK, port=self.port,
            api_port=self.api_port,
        ))  # fmt: skip

    def command(self) -> list[str]:
        return [_need("erl"), "-noinput", "+K", "true", "+P", "250000",
                "-mnesia", "dir", json.dumps(str(self.root / "spool")), "-s", "ejabberd"]  # fmt: skip

    def environment(self) -> dict[str, str] | None:
        return {
            **os.environ,
            "ERL_LIBS": _erl_libs(),
            "EJABBERD_CONFIG_PATH": str(self.root / "ejabberd.yml"),
            "EJABBERD_LOG_PATH": str(self.log_path),
            "ERL_CRASH_DUMP": str(self.root / "erl_crash.dump"),
            "HOME": str(self.root),
        }

    def api(self, command: str, arguments: dict[str, object]) -> object:
        """Run an admin command through ``mod_http_api`` (blocking)."""
        url = f"http://{LOOPBACK}:{self.api_port}/api/{command}"
        request = urllib.request.Request(url, data=json.dumps(arguments).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
                return json.loads(response.read() or b"null")
        except OSError as exc:
            raise SpawnError(f"ejabberd API {command} failed: {exc}") from exc

    def _register_all(self) -> None:
        password = self.provision.accounts.password
        # mod_http_api answers registered_users with a JSON list of user names
        users = cast("list[str] | None", self.api("registered_users", {"host": self.domain}))
        existing = set(users or [])
        for name in self.provision.usernames():
            if name not in existing:
                self.api("register", {"user": name, "host": self.domain, "password": password})

    async def provision_online(self, bench: Bench) -> None:
        await _wait_api(self)
        await trio.to_thread.run_sync(self._register_all)
        await subscribe_contacts(bench, self.provision.hub, self.provision.contact_accounts,
                                 self.provision.contacts)  # fmt: skip

    def version(self) -> str:
        return f"ejabberd {package_version('ejabberd')}"


async def _wait_api(server: EjabberdServer, timeout: float = 30.0) -> None:
    """Wait until the admin API answers (it may start after the c2s port)."""
    with trio.move_on_after(timeout):
        while True:
            try:
                await trio.to_thread.run_sync(server.api, "status", {})
                return
            except SpawnError:
                await trio.sleep(0.2)
    raise SpawnError(f"ejabberd's admin API did not answer within {timeout:g} s")
