"""``python -m casper.bench.privacy``: what one privacy decision costs as the list grows.

In-process and in CPU time, like :mod:`casper.bench.hotpath`, so it stays comparable on a
busy machine. For each source tree (a subprocess with the tree's ``core`` and ``plugins``
first on ``PYTHONPATH``) and each list length (default 0, 10, 100 and 1,000 items), the
list is that many items that match nobody asked (a mix of the four ``jid`` forms, groups
and subscriptions, for every stanza kind or only some), the last one instead denying
``presence-out`` to the contact asked about; the 0-item list is an empty default list.
Two decisions are timed, each a tight loop calibrated to a few tens of milliseconds,
median of five:

- ``match``: the list evaluation itself (``model.match``: presence-out, a contact in the
  roster with two groups);
- ``hidden``: the core's visibility decision for a presence broadcast to that contact
  (``server.visibility.hidden``: both privacy hooks, the list in force, the roster),
  on a test server with the ``privacy-lists`` plugin and one online session.

It prints microseconds per decision per tree and length (median over ``--rounds``) and
the ratio to the 0-item list measured in the same run, then each tree against the first::

    python -m casper.bench.privacy --tree before=/tmp/casper-before --tree after=.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_WORKER = r"""
import json, statistics, sys, time
import trio
from casper.jid import JID
from casper.storage.base import RosterItem
from casper.testing import open_test_server
from casper_plugins.privacy_lists.model import PRESENCE_OUT, PrivacyItem, PrivacyList, match

sizes = [int(n) for n in sys.argv[1].split(",")]
FORMS = [
    lambda i: dict(type="jid", value=f"user{i}@elsewhere.example"),
    lambda i: dict(type="jid", value=f"contact@localhost/other{i}"),
    lambda i: dict(type="jid", value=f"host{i}.example"),
    lambda i: dict(type="jid", value=f"localhost/bot{i}"),
    lambda i: dict(type="group", value=f"group{i}", kinds=frozenset({"presence-out"})),
    lambda i: dict(type="subscription", value="to", kinds=frozenset({"message"})),
    lambda i: dict(type="jid", value=f"user{i}@localhost", kinds=frozenset({"iq", "presence-in"})),
]

def make_list(size):
    items = [PrivacyItem(action="deny", order=i, **FORMS[i % len(FORMS)](i)) for i in range(size - 1)]
    if size:
        items.append(PrivacyItem("deny", size, "jid", "contact@localhost", frozenset({PRESENCE_OUT})))
    return PrivacyList(f"l{size}", tuple(items))

def per_call(fn):
    # microseconds of CPU per call: calibrate to >= 20 ms, then the median of five
    fn()
    n = 1
    while True:
        started = time.process_time()
        for _ in range(n):
            fn()
        spent = time.process_time() - started
        if spent >= 0.02:
            break
        n *= 2 if spent < 0.005 else max(2, int(0.025 / max(spent, 1e-9)))
    samples = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - started) / n * 1e6)
    return statistics.median(samples)

contact = JID.parse("contact@localhost/desk")
roster_item = RosterItem("contact@localhost", subscription="both", groups=("Friends", "Work"))
lists = {size: make_list(size) for size in sizes}
results = {"match": {}, "hidden": {}}
for size, plist in lists.items():
    results["match"][size] = per_call(lambda: match(plist, contact, PRESENCE_OUT, roster_item))

async def hidden():
    async with open_test_server(plugins=("privacy-lists",), accounts=("hub", "contact")) as srv:
        hub = srv.jid("hub")
        await srv.server.rosters.put(hub, roster_item, push=False)
        async with srv.client("hub", presence=True):
            session = srv.server.router.sessions_of(hub)[0]
            store = srv.server.pm.get_plugin("privacy-lists.state").store
            visibility = srv.server.visibility
            for size, plist in lists.items():
                await store.put(hub, plist)
                await store.set_default(hub, plist.name)
                answer = visibility.hidden(session, contact.bare)
                assert answer is bool(size), (size, answer)
                results["hidden"][size] = per_call(lambda: visibility.hidden(session, contact.bare))

trio.run(hidden)
import casper, casper_plugins.privacy_lists as plugin
results["files"] = [casper.__file__, plugin.__file__]
print(json.dumps(results))
"""

DECISIONS = {
    "match": "list evaluation (model.match, presence-out, contact in the roster)",
    "hidden": "visibility decision for one broadcast recipient (server.visibility.hidden)",
}


def _run(tree: Path, sizes: list[int]) -> dict[str, dict[int, float]]:
    env = dict(os.environ)
    paths = [str(tree / "core"), str(tree / "plugins")]
    env["PYTHONPATH"] = os.pathsep.join(
        paths + ([env["PYTHONPATH"]] if "PYTHONPATH" in env else [])
    )
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, ",".join(map(str, sizes))],
        check=False, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"the worker failed in {tree}:\n{done.stderr}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    for imported in raw.pop("files"):  # not an installed copy, nor a tree removed meanwhile
        if not Path(imported).resolve().is_relative_to(tree):
            raise SystemExit(f"the worker for {tree} imported {imported}")
    return {kind: {int(size): us for size, us in by_size.items()} for kind, by_size in raw.items()}


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",")} | {0})
    if sizes[0] < 0:
        raise argparse.ArgumentTypeError("list lengths must be non-negative")
    return sizes


def _report(
    trees: list[str], sizes: list[int], medians: dict[str, dict[str, dict[int, float]]]
) -> None:
    for kind, title in DECISIONS.items():
        print(f"\n{title}: us per decision (ratio to the 0-item list, same tree and run)")
        print(f"{'tree':<10}" + "".join(f"{n:>18,}" for n in sizes))
        for name in trees:
            by_size = medians[name][kind]
            cells = [f"{by_size[n]:9.2f} ({by_size[n] / by_size[0]:5.2f}x)" for n in sizes]
            print(f"{name:<10}" + "".join(f"{cell:>18}" for cell in cells))
        for name in trees[1:]:
            base = medians[trees[0]][kind]
            cells = [f"{medians[name][kind][n] / base[n]:.2f}x" for n in sizes]
            print(f"{name + '/' + trees[0]:<10}" + "".join(f"{cell:>18}" for cell in cells))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; return the exit status."""
    p = argparse.ArgumentParser(prog="python -m casper.bench.privacy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tree", action="append", metavar="NAME=DIR",
                   help="a source tree with core/casper; the first is the baseline "
                        "(default: this tree only)")  # fmt: skip
    p.add_argument("--sizes", type=_sizes, default=[0, 10, 100, 1000],
                   help="list lengths, comma-separated (0,10,100,1000)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3, help="trees alternate; median (3)")
    args = p.parse_args(argv)
    trees = []
    for text in args.tree or [f"this={Path(__file__).resolve().parents[3]}"]:
        name, _, directory = text.partition("=")
        if not (Path(directory) / "core" / "casper").is_dir():
            p.error(f"--tree {text!r}: no core/casper there")
        trees.append((name, Path(directory).resolve()))
    samples: dict[str, list[dict[str, dict[int, float]]]] = {name: [] for name, _ in trees}
    for _ in range(args.rounds):
        for name, tree in trees:
            samples[name].append(_run(tree, args.sizes))
    medians = {
        name: {kind: {n: statistics.median(run[kind][n] for run in runs) for n in args.sizes}
               for kind in DECISIONS}
        for name, runs in samples.items()
    }  # fmt: skip
    _report([name for name, _ in trees], args.sizes, medians)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
