"""``scopeml model inspect|validate|convert|run``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Read, validate, convert and run model containers (.czann, .czseg, .czmodel).",
    no_args_is_help=True,
)
