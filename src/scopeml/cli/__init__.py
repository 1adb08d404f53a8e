"""The ``scopeml`` command line.

Each command group lives in its own module and is registered here. Heavy libraries are imported
inside the commands, so ``scopeml --help`` stays fast. Bad input (any :class:`ScopeMLError`, a
missing file, any other operating-system error) ends with a one-line message naming the file and
the problem, and exit code 2.
"""

from __future__ import annotations

import sys
import warnings

import typer

from scopeml.cli import demo, model, objects, pixel, segment, serve, train
from scopeml.errors import ScopeMLError

# Usage errors derive from click's ClickException, which recent typer releases vendor (and do not
# install click for): find the class through typer's public BadParameter, not by importing click.
_USAGE_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_ABORT = (typer.Abort,)
_EXIT = (typer.Exit,)

app = typer.Typer(
    name="scopeml",
    help="Machine-learning segmentation and classification of large microscopy images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(model.app, name="model")
app.add_typer(pixel.app, name="pixel")
app.add_typer(objects.app, name="objects")
app.add_typer(train.app, name="train")
app.command("segment")(segment.segment)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.add_typer(serve.admin, name="admin")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit code."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = app(args=argv, prog_name="scopeml", standalone_mode=False)
    except ScopeMLError as err:
        typer.echo(f"error: {err}", err=True)
        return _exit(2, argv)
    except OSError as err:  # a missing file, a folder for a file, no space left, no permission
        where = f"{err.filename}: " if err.filename is not None else ""
        typer.echo(f"error: {where}{err.strerror or err}", err=True)
        return _exit(2, argv)
    except _ABORT:
        typer.echo("aborted", err=True)
        return _exit(130, argv)
    except _USAGE_ERRORS as err:
        err.show()
        return _exit(err.exit_code, argv)
    except _EXIT as err:
        return _exit(err.exit_code, argv)
    return _exit(result if isinstance(result, int) else 0, argv)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line, ``warning: …``, instead of a source location and code."""
    typer.echo(f"warning: {message}", err=True)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # called as the console script
        sys.exit(code)
    return code
