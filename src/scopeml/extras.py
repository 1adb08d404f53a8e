"""Optional dependencies: which extra of scopeml installs a module, read from the package's own
metadata (``pyproject.toml``'s ``optional-dependencies``), so a missing one is said as the
command that installs it, never as an internal error."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from os import PathLike

from scopeml.errors import InvalidRequestError


@cache
def _extras() -> dict[str, str]:
    """Top-level import name (lower case) → the extra that installs it."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        found = requires("scopeml") or []
    except PackageNotFoundError:  # run from a source tree that is not installed
        return {}
    extras: dict[str, str] = {}
    for requirement in found:
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        if extra is None:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("-", "_")
        for module in {name.split(".")[0], name.removeprefix("python_")}:  # python-multipart
            extras.setdefault(module, extra.group(1))
    return extras


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (any dotted name), or ``None`` if none does.

    Examples
    --------
    >>> extra_for("fastapi.routing"), extra_for("torch"), extra_for("numpy")
    ('server', 'train', None)
    """
    if not module:
        return None
    return _extras().get(module.split(".")[0].lower())


def missing_extra(err: ImportError) -> str | None:
    """For an import that failed for want of an optional dependency, the one line to say:
    ``fastapi is not installed; this needs the server extra: pip install 'scopeml[server]'``."""
    if not isinstance(err, ModuleNotFoundError):
        return None
    extra, top = extra_for(err.name), str(err.name).split(".")[0]
    if extra is None or _installed(top):  # installed, but broken: a bug's traceback is due
        return None
    return f"{top} is not installed; this needs the {extra} extra: pip install 'scopeml[{extra}]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str, path: str | PathLike[str] | None = None) -> None:
    """Refuse, before any work, ``what`` (``"a Parquet table"``, of the file ``path``) when
    ``module``, which it needs, is not installed."""
    if not _installed(module):
        extra = extra_for(module)
        install = f": pip install 'scopeml[{extra}]'" if extra else ""
        raise InvalidRequestError(
            f"{what} needs {module}, which is not installed{install}", path=path
        )
