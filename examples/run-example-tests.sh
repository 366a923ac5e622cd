#!/usr/bin/env bash
# Install each example plugin into the current environment and run its own tests.
#
#   bash examples/run-example-tests.sh            # from anywhere, with the venv active
#
# Each example is a separately installable distribution (its own pyproject.toml, entry
# point in the `casper` group, tests that use Casper's pytest fixtures). The install is
# editable: --no-deps (Casper and h11 are already here) and
# --no-build-isolation (hatchling from this environment, nothing downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=(casper-presence-badge casper-strategy-template casper-audit-log)
# --no-build-isolation builds with this environment's hatchling; a fresh venv may lack it
python -c "import hatchling" 2>/dev/null || python -m pip install --quiet hatchling

status=0
for example in "${EXAMPLES[@]}"; do
    echo "== examples/$example"
    python -m pip install --quiet --no-deps --no-build-isolation -e "examples/$example"
    if ! python -m pytest "examples/$example" -q -p no:cacheprovider; then
        status=1
    fi
done
casper plugins | grep -E '^(presence-badge|working-hours|audit-log) '
exit "$status"
