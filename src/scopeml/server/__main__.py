"""``python -m scopeml.server``: the same as ``scopeml serve``."""

from __future__ import annotations

import typer

from scopeml.cli.serve import serve

if __name__ == "__main__":
    typer.run(serve)
