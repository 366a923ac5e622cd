"""Allow ``python -m casper``."""

from casper.cli import main

raise SystemExit(main())
