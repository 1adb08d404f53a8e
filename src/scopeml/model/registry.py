"""The model-format registry: every kind of model file opens through :func:`open_model`.

As :mod:`scopeml.io.registry` does for images, each format registers a *sniff* (does this file
hold my format? read from the content, never the suffix: a ``.czseg`` is a legacy ZEN container
or a scopeml pixel classifier) and a *loader*. czann, legacy czseg/czmodel and bioimage.io
packages (imported in memory, :mod:`scopeml.model.bioimageio.run`) register here;
the pixel and object classifiers register theirs when their packages are imported, and the
registry imports those packages by name on first use, so the model layer never imports a
higher layer. Built-in models are names (``"nuclei"``) for files shipped with scopeml.

Examples
--------
>>> sorted(model_formats())
['bioimageio', 'czann', 'czmodel', 'object-classifier', 'pixel-classifier']
>>> resolve_model("nuclei").name
'nuclei.czann'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.errors import (
    InvalidContainerError,
    InvalidRequestError,
    ModelNotFoundError,
    ScopeMLError,
)
from scopeml.model.safezip import peek_json

__all__ = [
    "BUILTIN_MODELS",
    "KIND_WORDS",
    "BuiltinModel",
    "ModelFormat",
    "check_kind",
    "format_of",
    "model_formats",
    "open_model",
    "register_format",
    "resolve_model",
]

#: Packages that register a model format when imported (higher layers, named, never imported
#: here at module import time).
_PROVIDERS = ("scopeml.pixel", "scopeml.objects.classifier")


@dataclass(frozen=True)
class ModelFormat:
    """One kind of model file: how to recognise it and how to open it.

    ``sniff(path)`` answers from the file's content and never raises; ``load(path, workers)``
    returns the opened model (``workers`` caps its own threads; ``None`` = its default). A
    format whose models run a graph of unknown cost sets ``time_budget``: its loader then also
    takes ``time_budget=`` (seconds one ``predict`` may run). A format whose files name other
    files (a pixel classifier's feature network) sets ``names_files``: its loader then also
    takes ``allowed_roots=``, below which it must find them (a server's confinement).
    """

    name: str
    description: str
    sniff: Callable[[Path], bool]
    load: Callable[..., Any]
    time_budget: bool = False
    names_files: bool = False


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped with scopeml, opened by name."""

    package: str
    filename: str
    description: str

    @property
    def path(self) -> Path:
        from importlib.resources import files

        return Path(str(files(self.package) / self.filename))


#: Built-in model names → shipped files (``scopeml model list`` prints them).
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "nuclei": BuiltinModel(
        "scopeml.data",
        "nuclei.czann",
        "U-Net for single-channel fluorescence nuclei: background, nucleus, boundary",
    ),
}

_FORMATS: dict[str, ModelFormat] = {}
_providers_loaded = False


def register_format(
    name: str,
    *,
    description: str,
    sniff: Callable[[Path], bool],
    load: Callable[..., Any],
    time_budget: bool = False,
    names_files: bool = False,
) -> ModelFormat:
    """Register (or replace) a model format; formats are sniffed in registration order.

    Examples
    --------
    >>> fmt = register_format("demo", description="d", sniff=lambda p: False, load=print)
    >>> "demo" in model_formats(); _ = _FORMATS.pop("demo")
    True
    """
    entry = ModelFormat(name, description, sniff, load, time_budget, names_files)
    _FORMATS[name] = entry
    return entry


def model_formats() -> dict[str, ModelFormat]:
    """Every registered format by name (importing the packages that provide formats), in the
    order of their names: one order in every list and message, whichever package was imported
    first (the sniffs are exclusive, so their order does not choose a format)."""
    global _providers_loaded
    if not _providers_loaded:
        _providers_loaded = True
        for module in _PROVIDERS:
            importlib.import_module(module)
    return dict(sorted(_FORMATS.items()))


def resolve_model(source: str | PathLike[str]) -> Path:
    """The file of a model: a built-in name (``"nuclei"``) or a path that exists.

    Raises :class:`~scopeml.errors.ModelNotFoundError` (a ``FileNotFoundError``) naming the
    built-in models when ``source`` is neither, and the one a misspelt name is close to.

    Examples
    --------
    >>> resolve_model("nucleii")
    Traceback (most recent call last):
    ...
    scopeml.errors.ModelNotFoundError: nucleii: no such model file or built-in model (built-in \
models: nuclei); did you mean 'nuclei'?
    """
    import os

    if not isinstance(source, (str, os.PathLike)):
        raise InvalidRequestError(
            f"a model is a file path or a built-in name ({', '.join(sorted(BUILTIN_MODELS))}); "
            f"got {type(source).__name__} (an opened model is passed as it is, not opened)"
        )
    text = str(source)
    if text in BUILTIN_MODELS and not Path(text).exists():
        return BUILTIN_MODELS[text].path
    path = Path(source)
    if not path.exists():
        from scopeml.errors import close_matches

        names = ", ".join(sorted(BUILTIN_MODELS))
        bare = path.parent == Path()  # "nuclei.czann": the built-in's file name, say
        near = close_matches(path.stem.lower(), BUILTIN_MODELS, n=1, cutoff=0.75) if bare else []
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ModelNotFoundError(
            f"no such model file or built-in model (built-in models: {names}){hint}", path=text
        )
    return path


def format_of(path: str | PathLike[str]) -> str:
    """The registered format of a model file, from its content.

    Raises
    ------
    InvalidContainerError
        No registered format recognises the file; the message lists the known ones.
    """
    path = Path(path)
    formats = model_formats()
    for name, entry in formats.items():
        if entry.sniff(path):
            return name
    raise InvalidContainerError(not_a_model(path, formats), path=path)


#: Each format in words (what a refusal says a file is).
KIND_WORDS = {
    "czann": "a segmentation model (czann)",
    "czmodel": "a segmentation model (legacy czmodel)",
    "bioimageio": "a segmentation model (bioimage.io package)",
    "pixel-classifier": "a pixel classifier (a segmentation model)",
    "object-classifier": "an object classifier",
}


def check_kind(path: str | PathLike[str], refused: Sequence[str], expected: str) -> None:
    """Refuse a model file of one of the ``refused`` formats by what it is and
    what it is for ("a pixel classifier (a segmentation model), not an object classifier (it
    goes to scopeml segment)"), not by the member the loader misses; a file of no known kind
    passes (its loader names the problem).

    Examples
    --------
    >>> check_kind(resolve_model("nuclei"), ["czann"], "an object classifier")
    Traceback (most recent call last):
    scopeml.errors.InvalidContainerError: ...nuclei.czann: a segmentation model (czann), not an ...
    """
    try:
        kind = format_of(path)
    except (ScopeMLError, OSError):
        return
    if kind in refused:
        words = KIND_WORDS.get(kind, kind)
        use = "scopeml objects classify" if kind == "object-classifier" else "scopeml segment"
        if kind == "czann":
            meta = peek_json(path, "model.json")
            words, use = czann_words(meta.get("Type") if isinstance(meta, dict) else None)
        raise InvalidContainerError(f"{words}, not {expected} (it goes to {use})", path=path)


def czann_words(model_type: Any) -> tuple[str, str]:
    """A czann model of ``model_type`` (its ``model.json`` ``Type``) in words, and the command
    it goes to.

    Examples
    --------
    >>> czann_words("MultiClassClassification")
    ('a classification model (czann)', 'scopeml classify')
    >>> czann_words("Regression")
    ('a regression model (czann)', 'scopeml segment')
    """
    if "Classification" in str(model_type):
        return "a classification model (czann)", "scopeml classify"
    if model_type == "Regression":
        return "a regression model (czann)", "scopeml segment"
    return KIND_WORDS["czann"], "scopeml segment"


def classifier_kind(path: str | PathLike[str]) -> str | None:
    """``"pixel classifier"`` or ``"object classifier"`` when ``path`` is a scopeml classifier
    (a random forest, no graph), else ``None`` (another model, or no model of a known kind):
    for the refusals of what only a graph allows (export, conversion, upload).

    Examples
    --------
    >>> classifier_kind(resolve_model("nuclei")) is None
    True
    """
    try:
        kind = format_of(path)
    except (ScopeMLError, OSError):  # no known kind: reading it names the problem
        return None
    return kind.replace("-", " ") if kind in ("pixel-classifier", "object-classifier") else None


#: The first bytes of image files, which are sometimes passed where a model is asked for.
_IMAGE_MAGIC = {
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"II+\x00": "a BigTIFF image",
    b"MM\x00+": "a BigTIFF image",
    b"ZISRAWFILE": "a CZI image",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}


def not_a_model(path: Path, formats: dict[str, ModelFormat]) -> str:
    """Why ``path``, which no format recognises, is not a model, in one line of under 200
    characters: what it is (an empty file, a folder, a damaged zip, an image…) and the known
    kinds by name (``scopeml model list`` describes them). Every command says this of a file
    it cannot open as a model (``segment -m``, ``model validate``, ``export-bioimageio`` …).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "m.czann").write_bytes(b"")
    >>> not_a_model(folder / "m.czann", model_formats())
    'empty file (0 bytes), not a model; known kinds: bioimageio, czann, czmodel, \
object-classifier, pixel-classifier (scopeml model list)'
    >>> not_a_model(folder, model_formats()).split(";")[0]
    'is a folder, not a model file'
    """
    known = f"known kinds: {', '.join(formats)} (scopeml model list)"
    try:
        if path.is_dir():
            what = (
                "is a folder (an OME-Zarr image?), not a model file"
                if any((path / m).is_file() for m in ("zarr.json", ".zgroup", ".zarray"))
                else "is a folder, not a model file"
            )
            return f"{what}; {known}"
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if size == 0:
        return f"empty file (0 bytes), not a model; {known}"
    image = next((what for magic, what in _IMAGE_MAGIC.items() if head.startswith(magic)), None)
    if image is not None:
        return f"{image}, not a model; {known}"
    if head.startswith(b"PK"):
        members = _zip_names(path)
        if not members:
            return _zip_problem(path, known)
        if "model.json" not in members:
            shown = ", ".join(members[:5]) + (", …" if len(members) > 5 else "")
            return (
                f"zip without model.json, model XML or rdf.yaml (it holds {shown}), not a model; "
                f"{known}"
            )
    if path.suffix.lower() == ".onnx":  # a bare graph: what its classes and halo are is not said
        return (
            "a bare ONNX graph, which says neither its classes nor its halo: wrap it first, "
            f"scopeml model convert {path.name} -o {path.with_suffix('.czann').name} --classes "
            "A,B[,…] [--min-overlap N] [--channels-first] (scopeml.model.convert_onnx)"
        )
    return f"not a model file of a known kind; {known}"


def open_model(
    source: str | PathLike[str],
    *,
    workers: int | None = None,
    time_budget: float | None = None,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
) -> Any:
    """Open any model file (or built-in name) for use: the one place files become models.

    Parameters
    ----------
    source
        A ``.czann``, legacy ``.czseg``/``.czmodel``, bioimage.io package (zip, folder or
        ``rdf.yaml``; imported in memory as ``scopeml model convert`` would), scopeml pixel
        classifier, scopeml object classifier, or a built-in name (see :data:`BUILTIN_MODELS`).
    workers
        Threads the model may use itself (``None``: its default); set 1 when several engine
        workers share one model.
    time_budget
        Seconds one ``predict`` of a graph (czann, legacy) may run before it is stopped
        (``None``: the default budget; ``0``: none). Forests have a bounded cost and ignore it.
    allowed_roots
        Folders below which every further file the model names must lie, checked where it is
        opened (a server job; ``None``: no check). The model file itself is the caller's to check.

    Returns
    -------
    object
        A :class:`~scopeml.model.spec.Model` (czann, legacy, bioimage.io, pixel classifier) or an
        :class:`~scopeml.objects.ObjectClassifier`.

    Examples
    --------
    >>> open_model("nuclei").spec.classes
    ('background', 'nucleus', 'boundary')
    """
    if workers is not None and workers < 1:
        raise InvalidRequestError(f"workers must be >= 1; got {workers}")
    path = resolve_model(source)
    entry = model_formats()[format_of(path)]
    if entry.time_budget:
        return entry.load(path, workers, time_budget=time_budget)
    if entry.names_files:
        return entry.load(path, workers, allowed_roots=allowed_roots)
    return entry.load(path, workers)


def _zip_names(path: Path) -> list[str]:
    """Member names of a zip within the shared limits; empty for anything that is not one."""
    from scopeml.model.safezip import SafeZip

    try:
        with SafeZip(path) as archive:
            return list(archive.names)
    except (InvalidContainerError, OSError):
        return []


def _zip_problem(path: Path, known: str) -> str:
    """Why a file that starts as a zip gives no members: truncated or damaged (its member
    list, at the end, cannot be read), a limit or an unsafe member, or none in it."""
    from scopeml.model.safezip import NOT_A_ZIP, SafeZip

    try:
        with SafeZip(path):
            pass
    except InvalidContainerError as err:
        cause = err.__cause__
        if isinstance(cause, OSError):
            return f"cannot read it ({cause.strerror or cause})"
        if err.problem.startswith(NOT_A_ZIP):
            return (
                "truncated or damaged zip: its list of members cannot be read, so no model can "
                "be opened from it (was it copied in full?)"
            )
        return f"a zip that cannot be read as a model: {err.problem}"
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    return f"empty zip (no members), not a model; {known}"


def _is_czann(path: Path) -> bool:
    """A zip with ``model.json`` that names no other format (a broken one is reported by the
    czann reader, which says what is wrong)."""
    if "model.json" not in _zip_names(path):
        return False
    meta = peek_json(path, "model.json")
    return not (isinstance(meta, dict) and "Format" in meta)


def _is_legacy(path: Path) -> bool:
    names = _zip_names(path)
    return "model.json" not in names and any(
        name.startswith("modelid=") or name.lower().endswith(".xml") for name in names
    )


def _load_container(path: Path, workers: int | None, *, time_budget: float | None = None) -> Any:
    from scopeml.model.runtime import load_model

    return load_model(path, threads=workers, time_budget=time_budget)


register_format(
    "czann",
    description="ZEISS czmodel .czann: ONNX graph + JSON metadata",
    sniff=_is_czann,
    load=_load_container,
    time_budget=True,
)
register_format(
    "czmodel",
    description="legacy ZEN .czseg/.czmodel: ONNX graph + XML metadata",
    sniff=_is_legacy,
    load=_load_container,
    time_budget=True,
)


def _is_package(path: Path) -> bool:
    from scopeml.model.bioimageio.package import is_package

    return is_package(path)


def _load_package(path: Path, workers: int | None, *, time_budget: float | None = None) -> Any:
    from scopeml.model.bioimageio.run import load_package

    return load_package(path, workers, time_budget=time_budget)


register_format(
    "bioimageio",
    description="bioimage.io model package: zip, folder or rdf.yaml with ONNX or TorchScript "
    "weights, imported on opening",
    sniff=_is_package,
    load=_load_package,
    time_budget=True,
)
