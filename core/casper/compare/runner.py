"""Run the catalogue against every column and turn the worlds into a :class:`Report`.

Casper columns: each (column, scenario) pair runs two worlds at once — the user hiding
with the column's strategy, and the same account truly offline — each on its own fresh
Casper server on loopback, started here with the column's plugins (plus ``muc`` for
rooms, when installed). Pairs run concurrently, ``parallel`` at a time.

Targets (foreign servers): the accounts are shared, so a target's worlds run one after the
other: per scenario, the offline control once, then one subject world per strategy.

Error handling: a world that fails reports ``error`` in its cells and the run goes on; a
target that cannot be reached, or whose accounts cannot log in, is refused up front by
:func:`check_target` with a :class:`TargetError` meant for the user.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

import trio

from casper.bench.client import XMPPFailure, login

from .catalogue import ROLES, Scenario
from .report import Cell, Column, Report, flow_json, verdict
from .servers import LocalTLS, open_local_server
from .strategies import ADAPTERS, Combined, resolve
from .world import Endpoint, World

LOCAL_PASSWORD = "casper-compare"
LOCAL_ACCOUNTS = {role: (role, LOCAL_PASSWORD) for role in ROLES}
ROOM_PLUGIN = "muc"
Progress = Callable[[int, int, str], None]


class TargetError(Exception):
    """A target is unusable: unreachable, refusing TLS, or refusing an account."""


@dataclass(frozen=True)
class Target:
    """A foreign XMPP server to audit, with an account per role."""

    name: str
    host: str
    port: int
    domain: str
    accounts: Mapping[str, tuple[str, str]]  # role -> (username, password)
    ssl_context: ssl.SSLContext | None
    muc: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, self.domain, self.ssl_context, self.muc)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "domain": self.domain,
            "muc": self.muc,
        }


@dataclass(frozen=True)
class Plan:
    """A column and how to run it."""

    column: Column
    strategy: Combined
    target: Target | None = None


def installed_plugins() -> set[str]:
    return {ep.name for ep in entry_points(group="casper")}


def default_strategies() -> list[str]:
    """Every built-in adapter whose plugins are installed, ``none`` first."""
    installed = installed_plugins()
    return [name for name, (_, plugins) in ADAPTERS.items() if set(plugins) <= installed]


def casper_plan(spec: str) -> Plan:
    """The plan for ``--strategies`` entry ``spec`` (``a`` or ``a+b``); KeyError if unknown."""
    strategy, plugins = resolve(spec)
    if ROOM_PLUGIN in installed_plugins():
        plugins = (*plugins, ROOM_PLUGIN)
    column = Column(strategy.name, strategy.name, strategy.summary, plugins)
    return Plan(column, strategy)


def target_plan(target: Target, spec: str) -> Plan:
    strategy, _ = resolve(spec)
    column = Column(
        f"{target.name}/{strategy.name}", strategy.name, strategy.summary, target=target.describe()
    )
    return Plan(column, strategy, target)


async def check_target(target: Target, timeout: float = 10.0) -> None:
    """Log every account in once; raise :class:`TargetError` saying what is wrong."""
    where = f"target {target.name} ({target.host}:{target.port})"
    for role in ROLES:
        username, password = target.accounts[role]
        jid = f"{username}@{target.domain}"
        try:
            with trio.fail_after(timeout):
                client = await login(
                    target.host,
                    target.port,
                    target.domain,
                    username,
                    password,
                    ssl_context=target.ssl_context,
                    resource="casper-compare-check",
                )
        except trio.TooSlowError:
            raise TargetError(f"{where}: no answer within {timeout:g} s") from None
        except trio.BrokenResourceError as exc:  # the TLS handshake failed
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise TargetError(
                    f"{where}: TLS certificate not trusted ({cause.verify_message}); "
                    "use --insecure for a self-signed test server, or --cafile"
                ) from None
            raise TargetError(f"{where}: the TLS handshake failed ({cause or exc})") from None
        except ssl.SSLCertVerificationError as exc:
            raise TargetError(
                f"{where}: TLS certificate not trusted ({exc.verify_message}); "
                "use --insecure for a self-signed test server"
            ) from None
        except XMPPFailure as exc:
            if exc.step == "auth":
                raise TargetError(
                    f"{where}: account {role} ({jid}) cannot log in: {exc.condition}"
                ) from None
            raise TargetError(f"{where}: {exc}") from None
        except OSError as exc:
            raise TargetError(f"{where} is unreachable: {_os_reason(exc)}") from None
        await client.aclose()


def _os_reason(exc: OSError) -> str:
    """The most specific reason: trio wraps each failed attempt's error in ``__cause__``."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.strerror:
        return f"{exc.strerror or exc} ({cause.strerror})"
    return str(exc.strerror or exc)


class Runner:
    """Runs worlds and collects their results into ``report``."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        plans: Sequence[Plan],
        *,
        tls: LocalTLS | None,
        parallel: int = 8,
        timeout: float = 10.0,
        grace: float = 0.0,
        target_grace: float = 0.3,
        progress: Progress | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.plans = list(plans)
        self.tls = tls
        self.limiter = trio.CapacityLimiter(parallel)
        self.timeout, self.grace, self.target_grace = timeout, grace, target_grace
        self.progress = progress or (lambda done, total, label: None)
        self.report = Report(self.scenarios, [p.column for p in self.plans])
        local = [p for p in self.plans if p.target is None]
        targets = {p.target.name for p in self.plans if p.target is not None}
        self.total = 2 * len(local) * len(self.scenarios) + sum(
            len(self.scenarios)
            * (1 + sum(p.target is not None and p.target.name == t for p in self.plans))
            for t in targets
        )
        self.done = 0
        self._reference = local[0].column.id if local else None

    def _tick(self, label: str) -> None:
        self.done += 1
        self.progress(self.done, self.total, label)

    async def run(self) -> Report:
        start = trio.current_time()
        self.progress(0, self.total, "starting")
        async with trio.open_nursery() as nursery:
            for plan in self.plans:
                if plan.target is None:
                    for scenario in self.scenarios:
                        nursery.start_soon(self._local_pair, plan, scenario)
            by_target: dict[str, list[Plan]] = {}
            for plan in self.plans:
                if plan.target is not None:
                    by_target.setdefault(plan.target.name, []).append(plan)
            for plans in by_target.values():
                nursery.start_soon(self._target_sequence, plans)
        self.report.duration = trio.current_time() - start
        return self.report

    async def _local_pair(self, plan: Plan, scenario: Scenario) -> None:
        assert self.tls is not None
        tls = self.tls
        async with self.limiter:
            worlds: dict[str, World | str] = {}

            async def one(mode: str) -> None:
                strategy = plan.strategy if mode == "subject" else None
                try:
                    async with open_local_server(
                        plan.column.plugins, dict.fromkeys(ROLES, LOCAL_PASSWORD), tls
                    ) as endpoint:
                        worlds[mode] = await self._world(
                            scenario, strategy, endpoint, LOCAL_ACCOUNTS, self.grace
                        )
                except Exception as exc:  # noqa: BLE001 - e.g. a plugin that fails to load
                    worlds[mode] = f"the server did not start: {type(exc).__name__}: {exc}"
                self._tick(f"{plan.column.id} · {scenario.id} ({mode})")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one, "subject")
                nursery.start_soon(one, "control")
        self._collect(
            scenario,
            plan.column.id,
            worlds["subject"],
            worlds["control"],
            "offline" if plan.column.id == self._reference else None,
        )

    async def _world(
        self,
        scenario: Scenario,
        strategy: Combined | None,
        endpoint: Endpoint,
        accounts: Mapping[str, tuple[str, str]],
        grace: float,
        room: str = "lobby",
        prime: bool = False,
    ) -> World:
        async with trio.open_nursery() as nursery:
            world = World(
                scenario,
                strategy=strategy,
                endpoint=endpoint,
                accounts=accounts,
                nursery=nursery,
                timeout=self.timeout,
                grace=grace,
                room_name=room,
                prime=prime,
            )
            await world.run()
            nursery.cancel_scope.cancel()
        return world

    async def _target_sequence(self, plans: list[Plan]) -> None:
        target = plans[0].target
        assert target is not None
        for scenario in self.scenarios:
            control = await self._target_world(target, scenario, None)
            self._tick(f"{target.name} · {scenario.id} (offline)")
            for plan in plans:
                subject = await self._target_world(target, scenario, plan.strategy)
                self._collect(
                    scenario,
                    plan.column.id,
                    subject,
                    control,
                    f"offline:{target.name}" if plan is plans[0] else None,
                )
                self._tick(f"{plan.column.id} · {scenario.id}")

    async def _target_world(
        self, target: Target, scenario: Scenario, strategy: Combined | None
    ) -> World | str:
        room = f"casper-compare-{secrets.token_hex(4)}"
        try:
            return await self._world(
                scenario,
                strategy,
                target.endpoint,
                target.accounts,
                self.target_grace,
                room,
                prime=True,
            )
        except Exception as exc:  # noqa: BLE001 - reported in the cells; the other worlds go on
            return f"{type(exc).__name__}: {exc}"

    def _collect(
        self,
        scenario: Scenario,
        column_id: str,
        subject: World | str,
        control: World | str,
        control_key: str | None,
    ) -> None:
        for check in scenario.checks:
            if isinstance(subject, str):
                cell = Cell("error", subject)
            elif isinstance(control, str):
                cell = Cell("error", f"offline run: {control}")
            else:
                cell = verdict(check, subject.results.get(check.id), control.results.get(check.id))
            self.report.cells.setdefault(check.id, {})[column_id] = cell
        flows = self.report.flows.setdefault(scenario.id, {})
        if isinstance(subject, World):
            flows[column_id] = flow_json(subject.events, subject.norm)
        if control_key is not None and isinstance(control, World):
            flows[control_key] = flow_json(control.events, control.norm)
