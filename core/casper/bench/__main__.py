"""Allow ``python -m casper.bench``."""

from casper.bench.cli import main

raise SystemExit(main())
