"""``scopeml pixel …``."""

from __future__ import annotations

import typer

app = typer.Typer(help="pixel commands.", no_args_is_help=True)
