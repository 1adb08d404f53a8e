"""``scopeml objects …``."""

from __future__ import annotations

import typer

app = typer.Typer(help="objects commands.", no_args_is_help=True)
