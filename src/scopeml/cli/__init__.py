"""The ``scopeml`` command line.

Each command group lives in its own module and is registered here. Heavy libraries are imported
inside the commands, so ``scopeml --help`` stays fast. Bad input (any :class:`ScopeMLError`, a
missing file, any other operating-system error, memory exhausted by what a file declares) ends
with a one-line message naming the file and the problem, and exit code 2. Anything else is a bug
of scopeml: exit code 1, one line, and the traceback in a log file whose path the line gives.
A run stopped by Ctrl-C, SIGTERM or a progress callback exits with 130.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import inspect
import itertools
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from typer.core import TyperCommand

from scopeml.cli import (
    analyze,
    classify,
    convert,
    demo,
    info,
    model,
    objects,
    pixel,
    post,
    segment,
    serve,
    train,
)
from scopeml.errors import Cancelled, ScopeMLError, os_problem
from scopeml.extras import missing_extra
from scopeml.progress import close_bars

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


def _print_version(value: bool) -> None:
    """``--version``: the line a bug report needs, then stop (no command runs)."""
    if value:
        from scopeml import __version__

        typer.echo(f"scopeml {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    pass


app.add_typer(model.app, name="model")
app.add_typer(pixel.app, name="pixel")
app.add_typer(objects.app, name="objects")
app.add_typer(train.app, name="train")
app.command("segment")(segment.segment)
app.command("post")(post.post)
app.command("analyze")(analyze.analyze)
app.command("classify")(classify.classify)
app.command("convert")(convert.convert)
app.command("info")(info.info)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.add_typer(serve.admin, name="admin")


def _plain_help(typer_app: typer.Typer) -> None:
    """Help in click's plain layout, from every command's own text: flags shown without a
    value (``-q, --quiet``, where typer's rich tables show ``--quiet -q <bool>``), paragraphs
    reflowed to the terminal (rich keeps a docstring's line breaks and cuts a long word such
    as an environment variable), no reStructuredText quotes (````segment````), and each
    command listed by its whole first paragraph (click would cut it at the terminal width).
    The one place the command line's help layout is set."""
    from typer.main import solve_typer_info_help

    typer_app.rich_markup_mode = None
    for command in typer_app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _PlainCommand
        text = command.help if command.help is not None else inspect.getdoc(command.callback)
        command.help = _plain(text or "")
        command.short_help = command.short_help or _summary(command.help)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)
        group.help = _plain(solve_typer_info_help(group) or "")
        group.short_help = _summary(group.help)


class _PlainCommand(TyperCommand):
    """A command whose usage line and argument list name each argument as ``IMAGE``,
    ``[IMAGES]...`` (where typer writes ``{image}`` and ``images... <list[str]>``), and whose
    help marks a required option or argument ``[required]``."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = _argument_name(param)
            if not param.required:
                name = f"[{name}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = _argument_name(param) + ("..." if param.nargs != 1 else "")
                arguments.append((name, record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param) -> str:
    """An argument's name as usage lines write it: its metavar, else its name, upper case."""
    return (param.metavar or param.name or "").upper()


def _show_usage_error(err) -> None:
    """A usage error as the other errors read: the usage and hint, then ``error: …``."""
    ctx = getattr(err, "ctx", None)
    if ctx is not None:
        hint = ""
        if ctx.command.get_help_option(ctx) is not None:
            hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n"
        typer.echo(f"{ctx.get_usage()}\n{hint}", err=True)
    typer.echo(_line(f"error: {err.format_message()}"), err=True)


def _plain(text: str) -> str:
    """A docstring as help text: ````name```` → ``name``, line breaks inside a paragraph kept
    for click to reflow.

    Examples
    --------
    >>> _plain("for a ``segment`` store")
    'for a segment store'
    """
    return re.sub(r"``([^`]+)``", r"\1", text)


def _summary(text: str) -> str:
    """The first paragraph of a help text on one line (the command list's entry)."""
    return " ".join(text.split("\n\n")[0].split())


_plain_help(app)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (and, as a script, exit with) its exit code."""
    try:
        with warnings.catch_warnings(), _terminate_as_interrupt():
            warnings.showwarning = _once(_show_warning)
            try:
                result = app(args=argv, prog_name="scopeml", standalone_mode=False)
            finally:  # a command that raised leaves its bar drawn: the message starts clean
                close_bars()
    except ScopeMLError as err:
        where = err.path or _input_file(argv)
        problem = getattr(err, "problem", None) or str(err)
        typer.echo(_line(f"error: {where + ': ' if where else ''}{problem}"), err=True)
        return _exit(2, argv)
    except OSError as err:  # a missing file, a folder for a file, no space left, no permission
        where = _os_error_place(err, argv)
        problem = os_problem(err)
        where = "" if where and problem.startswith(os.fsdecode(where)) else where  # said once
        typer.echo(_line(f"error: {where + ': ' if where else ''}{problem}"), err=True)
        return _exit(2, argv)
    except MemoryError as err:  # an allocation sized by what an input declares
        where = _input_file(argv)
        detail = f" ({err})" if str(err) else ""
        typer.echo(
            _line(
                f"error: {where + ': ' if where else ''}not enough memory for what this input "
                f"needs{detail}; try smaller tiles, fewer workers or a smaller region"
            ),
            err=True,
        )
        return _exit(2, argv)
    except (*_ABORT, KeyboardInterrupt, Cancelled) as err:
        with _interrupts_ignored():  # Ctrl-C again while it is said: still exit 130
            typer.echo(_line(f"stopped: {err}" if isinstance(err, Cancelled) else "aborted"),
                       err=True)  # fmt: skip
            return _exit(130, argv)
    except _USAGE_ERRORS as err:
        _show_usage_error(err)
        return _exit(err.exit_code, argv)
    except _EXIT as err:
        return _exit(err.exit_code, argv)
    except Exception as err:  # a bug: one line here, the traceback in a log file
        missing = missing_extra(err) if isinstance(err, ImportError) else None
        if missing is not None:  # an optional dependency: the extra that installs it
            typer.echo(f"error: {missing}", err=True)
            return _exit(2, argv)
        loop = _LOOP.fullmatch(str(err)) if isinstance(err, RuntimeError) else None
        if loop is not None:  # Path.resolve before Python 3.13 (later: OSError ELOOP)
            typer.echo(_line(f"error: {loop[1]}: a loop of symbolic links"), err=True)
            return _exit(2, argv)
        log = _write_log(err, argv)
        summary = _line(f"{type(err).__name__}: {err}", limit=300)
        typer.echo(f"error: internal error, {summary} (traceback in {log})", err=True)
        return _exit(1, argv)
    return _exit(result if isinstance(result, int) else 0, argv)


#: What ``pathlib.Path.resolve`` raises, before Python 3.13, for a loop of symbolic links.
_LOOP = re.compile(r"Symlink loop from '(.*)'")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (what Slurm, systemd and ``timeout`` send) stops a command as Ctrl-C does: the
    same message (a segmentation says how far it got and how to resume) and exit code 130.
    Only where SIGTERM has its default action, in the main thread; a process forked meanwhile
    still ends at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != pid:  # a forked child: end as the signal asks
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: Longest message printed; the rest is cut (a message must never flood a terminal).
MESSAGE_LIMIT = 1000


def _line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """One line of at most ``limit`` characters: line breaks folded, the rest cut off.

    Examples
    --------
    >>> _line("a\\nb")
    'a b'
    >>> _line("x" * 50, limit=30)
    'xxxxxxxxxxxx … (50 characters)'
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    tail = f" … ({len(text)} characters)"
    return text[: max(limit - len(tail), 0)] + tail


def _os_error_place(err: OSError, argv: list[str] | None) -> str | None:
    """The file an operating-system error is about, as the user named it: a temporary one's
    final name (``.t.csv.3fa2….tmp`` is ``t.csv``), the output for a full or read-only disk,
    or a file past a size limit, that named no file (it was blamed on the input), else the
    input."""
    if err.filename is not None:
        name = os.fsdecode(err.filename)
        final = _TEMPORARY.fullmatch(os.path.basename(name))
        return os.path.join(os.path.dirname(name), final["name"]) if final else name
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
        args = sys.argv[1:] if argv is None else argv
        for flag, value in itertools.pairwise(args):
            if flag in ("-o", "--output"):
                return value
        given = [a.partition("=")[2] for a in args if a.startswith("--output=")]
        if given:
            return given[0]
    return _input_file(argv)


#: The names scopeml gives what it writes before moving it into place.
_TEMPORARY = re.compile(
    r"\.(?P<name>.+?)(?:\.partial)?\.(?:[0-9a-f]{8,}\.)?(?:tmp|partial(?:\.\w+)?)"
)  # a new store's: .OUT.partial.HEX.tmp


def _input_file(argv: list[str] | None) -> str | None:
    """The first existing file or folder named on the command line: the command's input, named
    by messages whose error did not name one."""
    args = sys.argv[1:] if argv is None else argv
    for arg in args:
        if not arg.startswith("-") and os.path.exists(arg):
            return arg
    return None


def _write_log(err: BaseException, argv: list[str] | None) -> str:
    """Write the traceback of an internal error to a new log file; return its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"scopeml {' '.join(sys.argv[1:] if argv is None else argv)}\n" + "".join(
        traceback.format_exception(err)
    )
    for folder in (Path.home() / ".cache" / "scopeml" / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f"scopeml-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            return name
        except OSError:
            continue
    return "(no writable log folder)"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line, ``warning: …``, instead of a source location and code."""
    typer.echo(f"warning: {message}", err=True)


def _once(show: Callable[..., None]) -> Callable[..., None]:
    """``show`` for each warning text once per command: a value checked where it is read and
    again where it is used (``--pixel-size``: by the option, the settings and each image)
    printed the same line three times. A long ``serve`` stops remembering at 10,000 texts."""
    shown: set[str] = set()

    def show_once(message, *args, **kwargs) -> None:
        if str(message) not in shown:
            if len(shown) < 10_000:
                shown.add(str(message))
            show(message, *args, **kwargs)

    return show_once


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored in the block (the main thread's; restored after): a second Ctrl-C while
    a stopped run says so and exits 130 killed the process by the signal instead (exit -2)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # called as the console script
        if code:  # zarr's reads still pending on its event loop's thread: no shutdown noise
            _quiet_pending_tasks()  # ("Task was destroyed but it is pending!" × 12)
        sys.exit(code)
    return code


def _quiet_pending_tasks() -> None:
    """Let the interpreter end without asyncio's reports of the tasks a failed run left on
    zarr's event loop (reads of other tiles in flight when one failed): the error said above
    is the run's; they would bury it."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
