"""Reading a bioimage.io model package: a zip, a folder, or its ``rdf.yaml``/``bioimageio.yaml``.

The description is parsed with :mod:`scopeml.safe_yaml` (no aliases, bounded nesting) and
validated by ``bioimageio.spec`` without any I/O, updated to the latest format (0.4
descriptions become 0.5). Files it names are read from the zip through
:class:`~scopeml.model.safezip.SafeZip` (the czann limits), or from the folder when they
resolve inside it. A URL is never fetched: it is refused, naming the field.
``bioimageio.spec`` checks no file here (no I/O), so :meth:`Package.read` checks each file it
reads against the ``sha256`` the description declares for it, if any, and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml import safe_yaml
from scopeml.errors import InvalidContainerError, InvalidRequestError
from scopeml.model.safezip import DEFAULT_LIMITS, SafeZip

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
_MAX_YAML = 1 << 20


@dataclass
class Package:
    """An opened package: its validated 0.5 description and a reader for the files it names."""

    path: Path
    description: Any
    original_format: str
    _zip: SafeZip | None
    _folder: Path | None
    #: The ``sha256`` the description as written declares, by file: the update of a 0.4
    #: description to 0.5 drops its weights' (bioimageio.spec 0.5), so they are kept here.
    declared: dict[str, str] = field(default_factory=dict)

    def read(self, source: Any, what: str) -> bytes:
        """The content of a file the description names (``what`` says which, for errors).

        ``source`` is the description's entry (a file or weights entry: its ``source`` and
        ``sha256``) or the bare source. The content is read within the czann zip limits and,
        when the entry declares a ``sha256``, hashed and compared with it.

        Raises
        ------
        InvalidContainerError
            A URL, a file outside the package, missing, empty or over the limit, or content
            that does not match its declared ``sha256``; naming the package and the file.
        """
        name = self.check_source(source, what)
        if self._zip is not None:
            if name not in self._zip:
                raise InvalidContainerError(
                    f"{what} {name!r} is missing from the package", path=self.path
                )
            data = self._zip.read(name)
        else:
            data = self._read_file(name, what)
        if not data:
            raise InvalidContainerError(f"{what} {name!r} is empty (0 bytes)", path=self.path)
        expected = getattr(source, "sha256", None) or self.declared.get(name)
        if expected is not None:
            found = hashlib.sha256(data).hexdigest()
            if found != str(expected).lower():
                raise InvalidContainerError(
                    f"{what} {name!r}: sha256 mismatch, the description declares "
                    f"{str(expected)[:12]}…, the file has {found[:12]}… (changed or damaged)",
                    path=self.path,
                )
        return data

    def check_source(self, source: Any, what: str) -> str:
        """The package's name of a file the description names; a URL or a path out of the
        package is refused (at import for every file named, not only those read)."""
        text = str(getattr(source, "source", source))
        if "://" in text:
            raise InvalidContainerError(
                f"{what} is a URL ({text[:120]}); scopeml never downloads: give a package that "
                "holds the file",
                path=self.path,
            )
        name = text.removeprefix("./")
        if _leaves(name):
            raise InvalidContainerError(
                f"{what} {name!r} is outside the package; a package names its own files "
                "(relative paths inside it)",
                path=self.path,
            )
        return name

    def _read_file(self, name: str, what: str) -> bytes:
        """A file of a package folder, streamed within the member limit."""
        folder = Path(self._folder or ".").resolve()
        target = (folder / name).resolve()
        if not target.is_relative_to(folder):
            raise InvalidContainerError(
                f"{what} {name!r} is outside the package folder (a link leading out of it)",
                path=self.path,
            )
        if not target.is_file():
            raise InvalidContainerError(
                f"{what} {name!r} is missing from the package folder", path=self.path
            )
        limit = DEFAULT_LIMITS.max_member_bytes
        too_large = InvalidContainerError(
            f"{what} {name!r} is larger than the limit of {limit} bytes", path=self.path
        )
        if target.stat().st_size > limit:
            raise too_large
        buffer = io.BytesIO()
        with target.open("rb") as file:  # bounded as it is read: the file may grow meanwhile
            while chunk := file.read(1 << 20):
                if buffer.tell() + len(chunk) > limit:
                    raise too_large
                buffer.write(chunk)
        return buffer.getvalue()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def open_package(source: str | PathLike[str]) -> Package:
    """Open a package zip, a package folder, or a description file in its folder.

    Raises
    ------
    InvalidContainerError
        A URL, no description, unparseable YAML, a description ``bioimageio.spec`` rejects,
        or a resource that is not a model.
    """
    import yaml

    text = str(source)
    if "://" in text:
        raise InvalidContainerError(
            "bioimage.io packages are read from files; scopeml never downloads", path=text
        )
    path = Path(source)
    archive = folder = None
    if path.is_dir():
        folder = path
        found = [folder / name for name in DESCRIPTION_NAMES if (folder / name).is_file()]
        if not found:
            raise InvalidContainerError(
                f"no {' or '.join(DESCRIPTION_NAMES)} in the folder", path=path
            )
        raw = _read_small(found[0])
    elif path.suffix.lower() in (".yaml", ".yml"):
        folder, raw = path.parent, _read_small(path)
    else:
        archive = SafeZip(path)
        names = [
            n for n in archive.names if n in DESCRIPTION_NAMES or n.endswith(".bioimageio.yaml")
        ]
        if not names:
            archive.close()
            raise InvalidContainerError(
                f"not a bioimage.io package: no {' or '.join(DESCRIPTION_NAMES)} in the zip",
                path=path,
            )
        raw = archive.read(names[0], max_bytes=_MAX_YAML)
    try:
        content = safe_yaml.load(raw)  # no aliases, no deep nesting
    except yaml.YAMLError as err:
        _close(archive)
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = (getattr(err, "problem", None) or str(err)).splitlines()[0]
        raise InvalidContainerError(
            f"the description is not valid YAML ({where}{problem})", path=path
        ) from err
    try:
        description, version = _validate(content, path)
    except BaseException:
        _close(archive)
        raise
    return Package(path, description, version, archive, folder, declared_hashes(content))


def declared_hashes(content: Any) -> dict[str, str]:
    """Every ``sha256`` a description declares beside a ``source``, by that source's name.

    Examples
    --------
    >>> declared_hashes({"weights": {"onnx": {"source": "./w.onnx", "sha256": "AB12"}}})
    {'w.onnx': 'ab12'}
    """
    found: dict[str, str] = {}
    if isinstance(content, dict):
        source, digest = content.get("source"), content.get("sha256")
        if isinstance(source, str) and isinstance(digest, str):
            found[source.removeprefix("./")] = digest.lower()
    for value in content.values() if isinstance(content, dict) else content:
        if isinstance(value, (dict, list)):
            found.update(declared_hashes(value))
    return found


def _close(archive: SafeZip | None) -> None:
    if archive is not None:
        archive.close()


def _leaves(name: str) -> bool:
    """Whether a file name of the description points out of the package: absolute (a POSIX or
    Windows path) or climbing above it with ``..``.

    Examples
    --------
    >>> [_leaves(n) for n in ("w.onnx", "a/../w.onnx", "../nf/w.onnx", "/tmp/w.onnx", "C:/w")]
    [False, False, True, True, True]
    """
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return True
    normal = posixpath.normpath(text)
    return normal == ".." or normal.startswith("../")


def _read_small(path: Path) -> bytes:
    if path.stat().st_size > _MAX_YAML:
        raise InvalidContainerError(f"the description is larger than {_MAX_YAML} bytes", path=path)
    return path.read_bytes()


def require_spec() -> None:
    """Refuse clearly when the optional ``bioimageio.spec`` is not installed."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError as err:
        raise InvalidRequestError(
            "bioimage.io packages need the bioimageio extra: pip install 'scopeml[bioimageio]'"
        ) from err


def _validate(content: Any, path: Path) -> tuple[Any, str]:
    require_spec()
    from bioimageio.spec import InvalidDescr, ValidationContext, build_description
    from bioimageio.spec.model import v0_5

    if not isinstance(content, dict):
        raise InvalidContainerError("the description is not a YAML mapping", path=path)
    if content.get("type") != "model":
        raise InvalidContainerError(
            f"the description is of type {content.get('type')!r}; scopeml imports models",
            path=path,
        )
    version = str(content.get("format_version", "?"))
    context = ValidationContext(perform_io_checks=False, raise_errors=False, log_warnings=False)
    with warnings.catch_warnings():  # a guess of the 0.4 → 0.5 update no user can act on
        warnings.filterwarnings("ignore", "Conversion of channel size", UserWarning)
        descr = build_description(content, context=context, format_version="latest")
    if isinstance(descr, InvalidDescr) or not isinstance(descr, v0_5.ModelDescr):
        raise InvalidContainerError(
            f"bioimage.io rejects the description (format {version}): {_first_error(descr)}",
            path=path,
        )
    return descr, version


def _first_error(descr: Any) -> str:
    summary = getattr(descr, "validation_summary", None)
    if summary is None:
        return "not a model description"
    for detail in summary.details:
        for error in detail.errors:
            where = ".".join(map(str, error.loc))
            hint = (  # YAML reads a hash of digits only as a number
                " (quote a sha256 of digits only: sha256: '…')"
                if where.endswith("sha256") and "string" in error.msg
                else ""
            )
            return f"{where}: {error.msg}{hint}"[:300]
    return str(summary.status)


def is_package(path: str | PathLike[str]) -> bool:
    """Whether ``path`` looks like a bioimage.io package (the model registry's sniff, and
    ``model convert``'s routing); never raises. A zip counts when it holds a description member
    at its top level.

    Examples
    --------
    >>> is_package("rdf.yaml"), is_package("model.onnx")
    (True, False)
    """
    import zipfile

    path = Path(path)
    if path.name in DESCRIPTION_NAMES or path.name.endswith(".bioimageio.yaml"):
        return True
    if path.is_dir():
        return any((path / name).is_file() for name in DESCRIPTION_NAMES)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return any(n in DESCRIPTION_NAMES or n.endswith(".bioimageio.yaml") for n in names)
