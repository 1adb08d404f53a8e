"""``python -m scopeml.server``: the same as ``scopeml serve`` (its one-line errors too)."""

from __future__ import annotations

import sys

from scopeml.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]]))
