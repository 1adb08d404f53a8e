"""The one exception tree of scopeml.

Every error a user can cause (a bad file, a bad request, a model that does not fit an image)
is a :class:`ScopeMLError`; the command line turns it into a one-line message and exit code 2.
Each also subclasses the builtin it refines, so ``except ValueError`` keeps working::

    ScopeMLError
    ├── InvalidContainerError   (ValueError)   a model container is corrupt, unsafe, inconsistent
    ├── InvalidImageError       (ValueError)   an image is unreadable, truncated, of unknown format
    │   └── ImageNotFoundError  (FileNotFoundError) no file or folder at an image's path
    ├── IncompatibleModelError  (ValueError)   a model does not fit an image (channels, dims, dtype)
    ├── InvalidLabelsError      (ValueError)   a training label image is malformed
    ├── InvalidRequestError     (ValueError)   a request or option is malformed
    │   ├── InputNotFoundError  (FileNotFoundError) no file or folder at a table's, settings'
    │   │                                      file's or training file's path
    │   ├── OutputCompleteError                a resumed run's output is already complete
    │   ├── MissingOutputError  (AttributeError) a store lacks the output asked for
    │   └── ServerResponseError                a scopeml server refused a request (its status)
    ├── IncompleteOutputError   (RuntimeError) an output store is half-written or from another run
    ├── ModelNotFoundError      (FileNotFoundError) no model file there nor a built-in by that name
    ├── OutsideRootError        (PermissionError) a file resolves outside the allowed folders
    ├── ModelTimeoutError       (TimeoutError) a model ran past its time budget and was stopped
    └── ServerUnreachableError  (ConnectionError) a scopeml server did not answer

    Cancelled                   (Exception)    a progress callback stopped a long call
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path


class ScopeMLError(Exception):
    """Base of all errors caused by bad input; ``path`` names the file at fault, if any."""

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InvalidContainerError(ScopeMLError, ValueError):
    """A model container is corrupt, unsafe, or its metadata disagrees with its graph."""


class InvalidImageError(ScopeMLError, ValueError):
    """An image cannot be read: unknown format, truncated file, inconsistent metadata."""


class _NoSuchFile(ScopeMLError, FileNotFoundError):
    """A missing file read as any missing file is (``errno`` ENOENT, ``filename`` the source
    given, ``except FileNotFoundError`` catches it), printed as our one-line message."""

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        super().__init__(message, path=path)
        self.errno, self.strerror, self.filename = errno.ENOENT, message, self.path

    def __str__(self) -> str:  # the one-line message, not OSError's "[Errno 2] …"
        return str(self.args[0])


class ImageNotFoundError(InvalidImageError, _NoSuchFile):
    """No file or folder at an image's path: an :class:`InvalidImageError` and, as a missing
    model is, a ``FileNotFoundError``."""


class IncompatibleModelError(ScopeMLError, ValueError):
    """A model cannot run on an image (channel count, spatial dimensions, dtype)."""


class InvalidLabelsError(ScopeMLError, ValueError):
    """A label image for training is malformed (shape, unknown classes, no labels)."""


class InvalidRequestError(ScopeMLError, ValueError):
    """A request or option is malformed (bad tile, bad parameter value)."""


class InputNotFoundError(InvalidRequestError, _NoSuchFile):
    """No file or folder at the path of an input that is not an image nor a model (a table,
    a settings file, images to analyse, a training file): a bad request and, as a missing
    image is, a ``FileNotFoundError``."""


class OutputCompleteError(InvalidRequestError):
    """``resume`` found the output complete: nothing is left to do (a caller that resumes
    idempotently, such as a server job, takes the store as it is)."""


class MissingOutputError(InvalidRequestError, AttributeError):
    """A store lacks the output asked for (``seg.instances`` of a run that wrote labels only);
    an ``AttributeError`` too, so ``hasattr(seg, "instances")`` is ``False``, not an error."""


class IncompleteOutputError(ScopeMLError, RuntimeError):
    """An output store is half-written, or belongs to a different run than the one resuming it."""


class ModelNotFoundError(_NoSuchFile):
    """No model file at a path, and no built-in model by that name (``errno`` is ENOENT and
    ``filename`` the source given, as for any missing file)."""


class OutsideRootError(ScopeMLError, PermissionError):
    """A file an image reader would open resolves (symlinks followed) outside the allowed roots."""


class ModelTimeoutError(ScopeMLError, TimeoutError):
    """A model ran past its per-call time budget; ONNX Runtime was told to stop the run."""


class ServerResponseError(InvalidRequestError):
    """A scopeml server refused a request; ``status_code`` is its HTTP status."""

    def __init__(
        self, message: str, *, status_code: int, path: str | PathLike[str] | None = None
    ) -> None:
        super().__init__(message, path=path)
        self.status_code = status_code


class ServerUnreachableError(ScopeMLError, ConnectionError):
    """A scopeml server did not answer: not running, a wrong address, the network, a timeout."""


def not_found(path: str | os.PathLike[str]) -> str:
    """Why ``path`` is not there: ``no such file or folder``, or, for a symbolic link whose
    target is gone, that target (a dangling link was said to be missing, or named only by its
    target where a caller resolved it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> link = pathlib.Path(tempfile.mkdtemp(), "a.tif"); link.symlink_to("/gone/b.tif")
    >>> not_found(link), not_found(link.with_name("c.tif"))
    ('a symbolic link to /gone/b.tif, which does not exist', 'no such file or folder')
    """
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return "a loop of symbolic links"
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    if os.path.isdir(f"{os.fspath(path)}.partial"):  # a run publishes its store only whole
        return (f"not there yet: a stopped run left {os.path.basename(path)}.partial; run it "
                "again with --resume (resume=True) to finish it")  # fmt: skip
    return "no such file or folder"


def os_problem(err: OSError) -> str:
    """An operating-system error's problem in scopeml's words: a missing file as one wording,
    whoever raised it, and a file standing where a folder is needed (``-o a_file/out.csv``)
    named as such, not as Python's "File exists" or "Not a directory".

    Examples
    --------
    >>> os_problem(FileNotFoundError(2, "No such file or directory", "a.tif"))
    'no such file or folder'
    >>> os_problem(FileNotFoundError(2, "no such file", "a.yaml"))
    'no such file'
    >>> import tempfile, pathlib
    >>> blocker = pathlib.Path(tempfile.mkdtemp(), "notes.txt"); _ = blocker.write_text("x")
    >>> os_problem(FileExistsError(17, "File exists", str(blocker))).endswith(
    ...     "notes.txt is a file where a folder is needed")
    True
    """
    text = str(err.strerror or err)
    if err.errno == errno.ENOENT and text.lower().startswith("no such file"):
        return text.lower().replace(" or directory", " or folder")
    if err.errno in (errno.EEXIST, errno.ENOTDIR) and err.filename:
        path = Path(os.fsdecode(err.filename))
        blocking = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocking is not None:
            return f"{blocking} is a file where a folder is needed"
    return text


def summarize(values: Iterable[object], *, head: int = 5, separator: str = ", ") -> str:
    """The first ``head`` values and how many there are, for messages that could list
    thousands (every label value of an instance image, every differing option).

    Examples
    --------
    >>> summarize(range(1, 5001))
    '1, 2, 3, 4, 5, … (5000 in all)'
    >>> summarize(["a", "b"])
    'a, b'
    """
    shown, count = [], 0
    for value in values:
        if count < head:
            shown.append(str(value))
        count += 1
    more = f"{separator}… ({count} in all)" if count > head else ""
    return separator.join(shown) + more


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``count(2, "image")`` is ``'2 images'``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class Cancelled(Exception):
    """A long call was stopped by its progress callback; what it finished is kept.

    Not a :class:`ScopeMLError`: nothing was wrong with the input. The command line exits with
    130 (as for Ctrl-C); a server job is marked cancelled. A call that keeps what it finished
    adds it to the message (after the callback's own ``reason``) and sets ``path`` to where it
    is kept, so the caller learns how to resume without reading the log.

    >>> err = Cancelled("stopped by the user").kept("3 of 8 tiles are written", path="a.partial")
    >>> str(err), err.reason, err.path
    ('stopped by the user; 3 of 8 tiles are written', 'stopped by the user', 'a.partial')
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        #: the callback's own words; ``str(err)`` adds what the stopped call kept
        self.reason = str(self)
        #: where what the stopped call finished is kept, if it says
        self.path: str | None = None

    def kept(self, what: str, *, path: str | PathLike[str]) -> Cancelled:
        """Add ``what`` was kept, at ``path``, to this exception (itself, to re-raise)."""
        self.path = str(path)
        self.args = (f"{self.reason}; {what}" if self.reason else f"stopped; {what}",)
        return self


def close_matches(
    word: str, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6
) -> list[str]:
    """The ``choices`` a mistyped ``word`` may mean, the one place a did-you-mean is made:
    those it spells in other case (``dapi``: ``DAPI``), else those it starts (three letters or
    more), else those it nearly spells (``difflib``).

    Examples
    --------
    >>> close_matches("gauss", ["gaussian_smoothing", "laplacian_of_gaussian"])
    ['gaussian_smoothing']
    >>> close_matches("nucleii", ["nuclei"], n=1, cutoff=0.75), close_matches("zzz", ["a"])
    (['nuclei'], [])
    >>> close_matches("dapi", ["Other", "DAPI"])
    ['DAPI']
    """
    import difflib

    choices = [str(choice) for choice in choices]
    if cased := [c for c in choices if c != word and c.casefold() == word.casefold()]:
        return cased[:n]
    started = [c for c in choices if c.startswith(word)] if len(word) >= 3 else []
    return (started or difflib.get_close_matches(word, choices, n=n, cutoff=cutoff))[:n]


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for :func:`close_matches`, else ``""``.

    >>> did_you_mean("remove_smal", ["remove_small", "fill_holes"])
    " (did you mean 'remove_small'?)"
    """
    close = close_matches(word, choices, n=n, cutoff=cutoff)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def find_stack_level() -> int:
    """``stacklevel`` for :func:`warnings.warn` that names the first frame outside scopeml.

    A warning about the user's input then points at the line of their code that called
    scopeml, however deep the call path (pandas' ``find_stack_level``); ``contextlib``'s frames
    between scopeml's are passed over too (a warning while a ``with`` opens an image).
    """
    import contextlib
    import inspect
    import os

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = inspect.currentframe(), 0
    while frame is not None and (
        frame.f_code.co_filename.startswith(package)
        or frame.f_code.co_filename == contextlib.__file__
    ):
        frame, level = frame.f_back, level + 1
    return level
