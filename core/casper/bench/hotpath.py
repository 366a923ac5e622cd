"""``python -m casper.bench.hotpath``: the CPU cost of Casper's per-stanza code, two trees compared.

The server figures of :mod:`casper.bench.cli` need a quiet machine; this one measures the
pure per-stanza work in-process, in CPU time, so it stays comparable on a busy one. Each
round runs, for every source tree in turn (a subprocess with the tree's ``core`` and
``plugins`` first on ``PYTHONPATH``), the steps a routed chat message takes in the core
files this benchmark covers: parse a batch of ``<message/>`` stanzas from bytes
(``XMLStreamParser``), wrap them (``Stanza.from_element``), stamp ``from`` (``readdressed``),
look up the bare JID and its string, call a hook without implementations (``call_safely``)
and serialize. It prints microseconds per message per tree (median over ``--rounds``) and
the ratio of each tree to the first, measured in the same run::

    python -m casper.bench.hotpath --tree before=/tmp/casper-before --tree after=.
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
import json, sys, time
from casper.jid import JID
from casper.plugins import call_safely, make_plugin_manager
from casper.config import Config
from casper.stanza import Stanza
from casper.xml import XMLStreamParser, StanzaReceived, serialize

count = int(sys.argv[1])
pm = make_plugin_manager(Config(domain="localhost", default_plugins=False))
sender = JID.parse("romeo@localhost/balcony")
head = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
batch = b"".join(
    b"<message to='juliet%d@localhost/r%d' type='chat' id='m%d'><body>%d</body></message>"
    % (i % 50, i % 50, i, time.perf_counter_ns()) for i in range(count))

def once():
    parser = XMLStreamParser()
    parser.feed(head)
    parser.next_event()
    for start in range(0, len(batch), 4096):
        parser.feed(batch[start:start + 4096])
    out = 0
    while True:
        event = parser.next_event()
        if type(event) is not StanzaReceived:
            break
        stanza = Stanza.from_element(event.element).readdressed(from_=sender)
        bare = stanza.to.bare
        str(bare); hash(bare)
        call_safely(pm, "casper_handle_outgoing", None, stanza=stanza, session=None)
        out += len(serialize(stanza.element))
    return out

once()
started = time.process_time()
once()
print(json.dumps((time.process_time() - started) / count * 1e6))
"""


def _run(tree: Path, count: int) -> float:
    env = dict(os.environ)
    paths = [str(tree / "core"), str(tree / "plugins")]
    env["PYTHONPATH"] = os.pathsep.join(
        paths + ([env["PYTHONPATH"]] if "PYTHONPATH" in env else [])
    )
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(count)],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; return the exit status."""
    p = argparse.ArgumentParser(prog="python -m casper.bench.hotpath", description=__doc__)
    p.add_argument("--tree", action="append", required=True, metavar="NAME=DIR",
                   help="a source tree with core/casper; the first is the baseline")  # fmt: skip
    p.add_argument("--messages", type=int, default=20000, help="per measurement (20000)")
    p.add_argument("--rounds", type=int, default=5, help="trees alternate; median (5)")
    args = p.parse_args(argv)
    trees = []
    for text in args.tree:
        name, _, directory = text.partition("=")
        if not (Path(directory) / "core" / "casper").is_dir():
            p.error(f"--tree {text!r}: no core/casper there")
        trees.append((name, Path(directory).resolve()))
    samples: dict[str, list[float]] = {name: [] for name, _ in trees}
    for _ in range(args.rounds):
        for name, tree in trees:
            samples[name].append(_run(tree, args.messages))
    base = statistics.median(samples[trees[0][0]])
    print(f"{'tree':<12} {'us/message':>10}  ratio to {trees[0][0]} (below 1 = faster)")
    for name, _ in trees:
        value = statistics.median(samples[name])
        print(f"{name:<12} {value:>10.2f}  {value / base:.2f}x   rounds: "
              + ", ".join(f"{v:.2f}" for v in samples[name]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
