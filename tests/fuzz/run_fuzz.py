"""Run a bounded fuzz session: the property tests of tests/fuzz, with fresh random examples,
round after round, until the time budget is spent or something breaks.

::

    python tests/fuzz/run_fuzz.py                      # 5 minutes, 2000 examples a property
    python tests/fuzz/run_fuzz.py --budget 60 --examples 500 -k parser

Each round is one ``pytest tests/fuzz`` run with ``CASPER_FUZZ_RANDOM=1`` (new examples) and
``CASPER_FUZZ_EXAMPLES``; a round is never cut short, so the session can overrun the budget
by one round. The ordinary test run (``pytest``) also runs these properties, derandomized
and with a small budget (see ``tests/fuzz/fuzzing.py``).

When a round fails, pytest's report shows the falsifying example (and a reproduction blob):
save the input under ``tests/fuzz/corpus/<target>/`` so it is replayed by every test run
from then on, add a named regression test, and fix the bug (or mark the regression test
``xfail(strict=True)`` with the reason until it is fixed).

Exit status: 0 if every round passed, 1 if one failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--examples", type=int, default=2000, help="per property and round")
    parser.add_argument("-k", dest="select", help="pytest -k expression (e.g. parser)")
    args = parser.parse_args(argv)
    env = {**os.environ, "CASPER_FUZZ_RANDOM": "1", "CASPER_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(HERE)]
    if args.select:
        command += ["-k", args.select]
    deadline = time.monotonic() + args.budget
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, env=env, check=False)
        print(
            f"fuzz round {rounds}: {'ok' if result.returncode == 0 else 'FAILED'} "
            f"in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        if result.returncode != 0:
            return 1
    print(f"fuzz session: {rounds} rounds of {args.examples} examples a property, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
