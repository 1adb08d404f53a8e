"""``python -m scopeml …``: the ``scopeml`` command, for environments whose scripts are not on
``PATH``."""

from scopeml.cli import main

raise SystemExit(main())
