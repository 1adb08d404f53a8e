"""Run an analysis over many images: checks first, then one folder per image, then the summary.

Everything that can be checked without pixels is checked before the first image is read (the
settings, the models and classifiers they name, the first image's channel names). Images run
one after another, in a local process pool (``workers``), or on a dask.distributed cluster
(``scheduler``). An image that fails is recorded with its reason and the batch goes on; with
``resume`` an image whose folder is complete (same settings, same input file) is skipped, and a
model file replaced since its results were made refuses the resume (each image's
``record.json`` records the files' fingerprints, :mod:`scopeml.analysis.model_files`); other
rules or object classifiers are applied to the finished tables
(:mod:`scopeml.analysis.reclassify`).

Results folder::

    RESULTS/settings.yaml            the settings used (a resume uses the same; new rules
                                     apply to the finished tables: analysis.reclassify)
    RESULTS/images/NAME/             per image: CLASS.ome.zarr, CLASS.csv|.parquet,
                                     overview.png, record.json
    RESULTS/tables/CLASS.csv|.parquet  every image's objects of a class
    RESULTS/summary/                 counts.csv, failures.csv, PNG plots
    RESULTS/index.html               links to all of it
    RESULTS/.scopeml-lock            while a run writes it (one at a time: results_lock)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scopeml.analysis.check import check_image_channels, open_resources
from scopeml.analysis.image import RECORD, analyze_image, input_identity, unnamed_warning
from scopeml.analysis.inputs import FoundImages, collect_images, find_images, shown
from scopeml.analysis.model_files import files_identity, resource_paths, same_content
from scopeml.analysis.results_lock import LOCK, results_lock
from scopeml.analysis.resume import (
    finished_images,
    left_out_images,
    left_out_warning,
    settings_change,
)
from scopeml.analysis.settings import (
    MODEL_SEGMENTERS,
    AnalysisSettings,
    check_file_axes,
    dump_settings,
    load_settings,
    parse_settings,
    scene_value,
)
from scopeml.errors import (
    Cancelled,
    InvalidRequestError,
    OutsideRootError,
    ScopeMLError,
    count,
    find_stack_level,
)
from scopeml.io.confine import Confinement
from scopeml.io.registry import ChannelFiles, input_files
from scopeml.io.replace import write_atomically
from scopeml.pixel_size import PixelSize, pixel_size_value
from scopeml.progress import Progress, as_progress, track

__all__ = ["AnalysisResult", "collect_images", "default_workers", "run_analysis"]

#: A worker process's opened models and classifiers: (settings digest, settings file, base
#: folder, allowed roots: what the settings' paths resolve against) → (what their files were
#: when opened, see :func:`~scopeml.analysis.model_files.files_identity`; the resources). A
#: dask worker outlives one run.
_WORKER_RESOURCES: dict[tuple[Any, ...], tuple[dict[str, dict[str, Any]] | None, Any]] = {}


@dataclass
class AnalysisResult:
    """What a batch produced: the results folder, one record per image, the failures, and the
    files the folders and patterns held that were left out (by reason: ``label images``,
    ``exclude``, ``include``, ``results folders``). ``resumed``: the images a resume found
    complete and did not analyse again (their records are among ``records``).
    ``outside_summary``: the names of the finished images in ``output/images`` that are not
    among this run's images, so its summary and tables leave them out (a resume warns of them).
    ``reclassified``: what a resume that applied new rules or a new classifier to the finished
    images' tables said of it (it warns too), else ``None``.
    The tables the run wrote, as DataFrames: :meth:`table` (a class's objects over all images)
    and :meth:`counts_table` (``summary/counts.csv``).
    """

    output: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)
    resumed: int = 0
    outside_summary: list[str] = field(default_factory=list)
    reclassified: str | None = None

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "done"]

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Objects per class, by image name."""
        return {r["name"]: r["counts"] for r in self.records if r["status"] == "done"}

    def table(self, name: str) -> Any:
        """Every image's objects of class ``name`` as one pandas DataFrame: the run's
        ``tables/NAME.parquet`` where it wrote one (and pyarrow is installed), else
        ``tables/NAME.csv``, so a user need not find and read the files. The ``image``
        column stays text (an image named ``001`` is not read as 1).

        Examples
        --------
        >>> AnalysisResult(Path("no-such-results")).table("nucleus")
        Traceback (most recent call last):
        ...
        scopeml.errors.InvalidRequestError: no-such-results/tables: no table of class 'nucleus' (tables of: none)
        """  # noqa: E501
        import pandas as pd

        from scopeml.analysis.outputs import parquet_available

        tables = self.output / "tables"
        if (tables / f"{name}.parquet").is_file() and parquet_available():
            return pd.read_parquet(tables / f"{name}.parquet")
        if not (tables / f"{name}.csv").is_file():
            have = ", ".join(sorted(p.stem for p in tables.glob("*.csv"))) or "none"
            raise InvalidRequestError(f"no table of class {name!r} (tables of: {have})",
                                      path=tables)  # fmt: skip
        return pd.read_csv(tables / f"{name}.csv", dtype={"image": str})

    def counts_table(self) -> Any:
        """``summary/counts.csv`` as a pandas DataFrame: per image, the objects of each class,
        the imaged area and the densities (:mod:`scopeml.analysis.report`)."""
        import pandas as pd

        path = self.output / "summary" / "counts.csv"
        if not path.is_file():
            raise InvalidRequestError("no counts: the run wrote no summary", path=path)
        return pd.read_csv(path, dtype={"image": str, "file": str})

    def __repr__(self) -> str:
        """One line however large the batch (``print(sm.analyze(...))`` showed every record):
        the folder, the images done, resumed and failed, the objects per class in all.

        Examples
        --------
        >>> AnalysisResult(Path("res"), [{"status": "done", "name": "a", "counts": {"cell": 3}},
        ...                              {"status": "failed", "name": "b", "counts": {}}])
        AnalysisResult('res': 2 images, 1 done, 1 failed; objects: cell 3)
        """
        totals: dict[str, int] = {}
        for counts in self.counts.values():
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
        done = len(self.records) - len(self.failures)
        said = [f"{len(self.records)} image{'' if len(self.records) == 1 else 's'}", f"{done} done"]
        said += [f"{self.resumed} resumed"] if self.resumed else []
        said += [f"{len(self.failures)} failed"] if self.failures else []
        objects = ", ".join(f"{name} {n:,}" for name, n in totals.items()) or "none"
        return f"AnalysisResult({str(self.output)!r}: {', '.join(said)}; objects: {objects})"


def run_analysis(
    settings: AnalysisSettings | Mapping[str, Any] | str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    workers: int | None = 1,
    scheduler: str | Any | None = None,
    resume: bool = False,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    progress: Progress = None,
    public_name: Callable[[Path], str] | None = None,
    base: str | os.PathLike[str] | None = None,
    recursive: bool | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_labels: bool | None = None,
    axes: str | None = None,
    scene: int | str | None = None,
    overwrite: bool = False,
    pixel_size: PixelSize | None = None,
) -> AnalysisResult:
    """Run an analysis over images; write every result into the folder ``output``.

    Parameters
    ----------
    settings
        :class:`AnalysisSettings`, a settings file (errors then name its lines), or the
        mapping such a file holds (a ``dict``, read by :func:`parse_settings`).
    images
        Image files, folders (with their subfolders) and glob patterns; which files they give
        and the name each image gets: :mod:`scopeml.analysis.inputs`. Images found in
        subfolders are named by their path there (``A9/p10d.tif`` → ``A9__p10d``).
    output
        The results folder (created; an existing one is continued only with ``resume``, or
        replaced with ``overwrite``).
    workers
        Images analysed side by side in local processes (1: in this process; ``None``:
        :func:`default_workers`); never more than the images to analyse. Results do not
        depend on it.
    scheduler
        A dask.distributed scheduler address, ``Client`` or cluster (``LocalCluster``); each
        image becomes one task there.
    resume
        Skip images whose results are complete from an earlier run with the same settings;
        refused when a model file changed since those results were made, or naming the first
        setting that differs. Settings that differ in classes' ``rules`` or ``classifier``
        only, or a classifier file retrained since, resume: they are applied to the finished
        images' tables (:mod:`scopeml.analysis.reclassify`), without segmenting them again
        (``result.reclassified`` says so). The summary
        holds ``images`` only: finished images of the folder that are not among them are
        warned of (``outside_summary``).
    allowed_roots
        For a server: every image (and every file its reader opens) and every model or
        classifier file the settings name must lie below one of these folders.
    progress
        See :mod:`scopeml.progress`: stage ``analyze`` in unit ``image``; with one worker
        the engine's ``segment`` tiles too. A callback may cancel between images.
    public_name
        For a server: the name to record for a file instead of its path (each image in its
        ``record.json``, the summary and the report; a file a failure names), so the results
        never show where the server keeps its files. Images are still found (and a resume
        matches its finished images) by their paths; picklable where images run in worker
        processes. ``None``: paths as given.
    base
        For a server: the folder relative model and classifier paths in the settings are
        taken from (its allowed root). ``None``: the settings file's folder.
    axes
        The image files' axes, as :func:`scopeml.segment`'s ``axes=``: one letter of
        ``T C Z Y X`` per axis of the file in its order (``"CYX"``: a plain multi-page TIFF's
        pages are channels; ``"TYX"``: time points; read as Z otherwise), checked before any
        work. It takes the place of the settings' ``axes`` for every image (the TIFF files:
        other formats name their own) and is recorded with them. ``None``: the settings' own.
    scene
        Analyse only this scene of each image, in place of the settings' ``scene``: its number
        (from 0, as the file and the tables number them), or its name as ``scopeml info``
        lists it (``"A1-Pos3"``), which each image resolves to its own number; an image without
        a scene of that name fails on its own, naming its scenes. ``None``: the settings' own
        (by default every scene, also scenes of different sizes: each analysed on its own).
    overwrite
        Replace the results of an earlier analysis in ``output``: they are deleted once the
        settings, models and first image have been checked. Only a folder an analysis wrote
        (:func:`is_results_folder`) is replaced; any other is refused.
    pixel_size
        Micrometres per pixel for images whose file records none, in place of the settings'
        ``pixel_size`` (recorded with them): one number for every axis, ``"Y,X"``, ``"Z,Y,X"``
        (or those numbers, or a mapping by axis), as :mod:`scopeml.pixel_size` reads them. A
        file's own size is kept. ``None``: the settings' own.

    Returns
    -------
    AnalysisResult
        The folder and one record per image (``status`` ``done`` or ``failed`` with ``reason``);
        ``result.table("nucleus")``: that class's objects over all images as a DataFrame.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np, tifffile
    >>> import scopeml as sm
    >>> folder = Path(tempfile.mkdtemp())
    >>> pixels = np.zeros((32, 32), np.uint8); pixels[4:10, 4:10] = pixels[20:28, 3:9] = 200
    >>> tifffile.imwrite(folder / "a.tif", pixels)
    >>> blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0"}}
    >>> settings = {"version": 1, "channels": ["C0"], "classes": [blob]}
    >>> sm.analyze(settings, [folder / "a.tif"], folder / "results").counts
    {'a': {'blob': 2}}
    """
    from scopeml.analysis.image import SHOWN
    from scopeml.analysis.report import write_report

    SHOWN.clear()  # each run says its images' warnings once
    settings, source = _read_settings(settings)
    if workers is not None and workers < 1:
        raise InvalidRequestError(f"workers must be >= 1; got {workers}")
    settings = _with_file_view(settings, axes, scene, pixel_size)
    settings = _with_inputs(settings, recursive, include, exclude, skip_labels)
    found = _find(settings, images, output)
    _confine(found.paths, allowed_roots)
    roots = None if allowed_roots is None else [str(root) for root in allowed_roots]
    text = dump_settings(settings)
    output = Path(output)
    with results_lock(output):  # one run at a time: a second would remove this one's partials
        replace = overwrite and _replaceable(output, resume)
        previous = None if overwrite else _prepare_output(output, text, resume)
        _remove_stale_partials(output)
        result, todo = _split_resumed(settings, found, output, _digests(text, previous), resume)
        if workers is None:
            workers = default_workers(settings, [path for path, _ in todo])
        workers = min(workers, max(len(todo), 1))
        local = workers == 1 and scheduler is None
        resources = open_resources(settings, source=source, model_threads=None if local else 1,
                                   allowed_roots=roots, base=base)  # fmt: skip
        defaults = _model_scales(settings, resources)
        _warn_unsplit_masks(settings, resources)
        changed = _check_same_settings(output, previous, text, defaults)  # rules, classifiers
        run = uuid.uuid4().hex  # each process hashes the model files once for this run
        files = _check_same_files(output, settings, result.records, resources, run)
        _check_first_readable(settings, found.paths, source, roots, public_name,
                              resources.classifiers)  # fmt: skip
        if not replace:  # replaced: the earlier images are about to go
            _note_left_out(result, found, public_name)
        if replace:  # everything checked: the earlier results go
            _clear(output)
        (output / "images").mkdir(parents=True, exist_ok=True)
        report = as_progress(progress)
        result.reclassified = _reclassify(settings, text, result, changed, resources, files, todo,
                                          report)  # fmt: skip
        write_atomically(output / "settings.yaml", _shown_settings(text, defaults))
        jobs = [(settings.model_dump(mode="json", by_alias=True), p,
                 str(output / "images" / n), _digests(text), str(source) if source else None,
                 roots, public_name, None if base is None else str(base), files, run)
                for p, n in todo]  # fmt: skip
        try:
            if local:
                for path, name in track(todo, report, "analyze", unit="image"):
                    result.records.append(_safe(settings, path, output / "images" / name,
                                                resources, _digests(text)[0], roots, report,
                                                public=public_name, files=files))  # fmt: skip
            elif scheduler is not None:
                result.records += _on_cluster(scheduler, jobs, report)
            else:
                result.records += _in_pool(workers, jobs, report)
            _in_input_order(settings, result, found.names)
            write_report(settings, result.records, output, _left_out(found, public_name))
        except (KeyboardInterrupt, Cancelled) as err:
            err.add_note(stopped_note(output, found.names, public_name is not None))
            raise
    return result


def _left_out(found: FoundImages, public: Callable[[Path], str] | None) -> list[tuple[str, str]]:
    """The files the inputs found and left out, each with why (for ``summary/left_out.csv``)."""
    return [(shown(path, public), why) for why, paths in found.skipped.items() for path in paths]


def _in_input_order(
    settings: AnalysisSettings, result: AnalysisResult, names: Sequence[str]
) -> None:
    """Sort the records as the images were given (``names``), and warn once for the batch of
    the images this run read in order, their files naming no channels (each image's record
    keeps it: ``channels_read``)."""
    order = {n: i for i, n in enumerate(names)}
    analysed = result.records[result.resumed :]  # this run's, in the order they finished
    result.records.sort(key=lambda r: order.get(r["name"], len(order)))
    said = unnamed_warning(sorted(analysed, key=lambda r: order.get(r["name"], 0)),
                           settings.channels)  # fmt: skip
    if said is not None:
        warnings.warn(said, UserWarning, stacklevel=find_stack_level())


def _with_file_view(
    settings: AnalysisSettings,
    axes: str | None,
    scene: int | str | None,
    pixel_size: PixelSize | None = None,
) -> AnalysisSettings:
    """The settings with the ``axes``, ``scene`` and ``pixel_size`` given for this run in place
    of their own (checked before any work; recorded with the settings; a warning where they
    differ)."""
    given: dict[str, Any] = {}
    if pixel_size is not None:
        try:
            given["pixel_size"] = pixel_size_value(pixel_size)
        except ValueError as err:
            raise InvalidRequestError(f"pixel_size {err}") from None
    if axes is not None:
        given["axes"] = check_file_axes(axes)
    if scene is not None:
        try:  # a name stays a name: each image resolves it to its own number
            if isinstance(scene, bool) or not isinstance(scene, int | str):
                raise ValueError(scene)
            given["scene"] = scene_value(scene)
        except ValueError:
            raise InvalidRequestError(
                f"scene must be a scene number >= 0 or a scene's name; got {scene!r}"
            ) from None
    for key, value in given.items():
        own = getattr(settings, key)
        if own is not None and own != value:
            warnings.warn(f"{key} {value} given for this run replaces the settings' {key}: {own}",
                          UserWarning, stacklevel=find_stack_level())  # fmt: skip
    return settings.model_copy(update=given)


def _read_settings(
    settings: AnalysisSettings | Mapping[str, Any] | str | os.PathLike[str],
) -> tuple[AnalysisSettings, Path | None]:
    """The settings, and the file they were read from (``None``: given in code), which
    relative model paths are taken from and errors name."""
    if isinstance(settings, Mapping):  # the content of a settings file, as a dict
        return parse_settings(settings), None
    if isinstance(settings, AnalysisSettings):
        return settings, None
    return load_settings(Path(settings)), Path(settings)


def stopped_note(output: Path, names: Sequence[str], public: bool = False) -> str:
    """What a stopped analysis kept and how to go on, in one line: the images whose folders
    are complete (a resume skips them; those it was analysing are left nowhere) and the
    resume; ``public``: the results folder unnamed, as a server's messages are.

    Examples
    --------
    >>> stopped_note(Path("res"), ["a", "b"])
    'analysis stopped: 0 of 2 images finished, in res/images; run again with --resume (resume=True) to analyse the other 2'
    >>> stopped_note(Path("res"), [], public=True)
    'analysis stopped: all 0 images finished, but not the summary; run again with --resume (resume=True) to write it'
    """  # noqa: E501
    done = sum((output / "images" / name / RECORD).is_file() for name in names)
    where = "" if public else f", in {output / 'images'}"
    if done == len(names):  # stopped while writing the summary
        return (
            f"analysis stopped: all {done} images finished{where}, but not the summary; run "
            "again with --resume (resume=True) to write it"
        )
    return (
        f"analysis stopped: {done} of {len(names)} images finished{where}; run again with "
        f"--resume (resume=True) to analyse the other {len(names) - done}"
    )


def _split_resumed(
    settings: AnalysisSettings,
    found: FoundImages,
    output: Path,
    digests: Sequence[str],
    resume: bool,
) -> tuple[AnalysisResult, list[tuple[Path, str]]]:
    """The result so far (with ``resume``, the records of the images already complete) and the
    images still to analyse, with their names."""
    result = AnalysisResult(output, skipped=found.skipped)
    todo: list[tuple[Path, str]] = []
    with_files, expected = _names_files(settings), _files_expected(settings)
    for path, name in zip(found.paths, found.names, strict=True):
        folder = output / "images" / name
        done = _completed(folder, path, digests, with_files) if resume else None
        if done is not None and not all((folder / file).exists() for file in expected):
            done = None  # a file of it deleted since: the summary would miss its objects
        read = None if done is None else done.get("channels_read")  # None: before aliases
        if read is not None and settings.channels_of(read["file"]) != read["read"]:
            done = None  # other aliases read its channels otherwise (or not at all)
        if done is not None:
            result.records.append(done)
            result.resumed += 1
        else:
            todo.append((path, name))
    return result, todo


def _note_left_out(
    result: AnalysisResult, found: FoundImages, public: Callable[[Path], str] | None
) -> None:
    """Record, and warn once of, the finished images of the results folder that this run's
    summary leaves out (:mod:`scopeml.analysis.resume`: why they are not summed in)."""
    left = left_out_images(result.output, found.names)
    result.outside_summary = list(left)
    images = dict(zip(found.names, found.paths, strict=True))
    message = left_out_warning(result.output, left, images, public)
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=find_stack_level())


def _find(
    settings: AnalysisSettings,
    images: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str],
) -> FoundImages:
    """The images to analyse as the settings' ``inputs`` choose them (never in ``output``);
    an ``axes`` pattern naming none of them is warned of (a typo: its files read as they
    say)."""
    inputs = settings.inputs
    found = find_images(
        [images] if isinstance(images, (str, os.PathLike)) else images,
        recursive=inputs.recursive, include=inputs.include, exclude=inputs.exclude,
        skip_labels=inputs.skip_labels, ignore=[output], channel_files=inputs.channel_files,
    )  # fmt: skip
    for pattern in settings.unused_axes([f for image in found.paths for f in input_files(image)]):
        warnings.warn(f"axes: {pattern!r} names none of the {len(found.paths)} images",
                      UserWarning, stacklevel=find_stack_level())  # fmt: skip
    return found


def _with_inputs(
    settings: AnalysisSettings,
    recursive: bool | None,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_labels: bool | None,
) -> AnalysisSettings:
    """The settings with the inputs a caller gave besides them."""
    include = [include] if isinstance(include, str) else list(include or ())  # one pattern
    exclude = [exclude] if isinstance(exclude, str) else list(exclude or ())
    for pattern in (*include, *exclude):
        if not isinstance(pattern, str) or not pattern:
            raise InvalidRequestError(f"include/exclude patterns are file-name patterns such as "
                                      f"'*_labels.*'; got {pattern!r}")  # fmt: skip
    given = settings.inputs
    data = given.model_dump()
    if recursive is not None:
        data["recursive"] = bool(recursive)
    if skip_labels is not None:
        data["skip_labels"] = bool(skip_labels)
    data["include"] = [*given.include, *(p for p in include if p not in given.include)]
    data["exclude"] = [*given.exclude, *(p for p in exclude if p not in given.exclude)]
    if data == given.model_dump():
        return settings
    return settings.model_copy(update={"inputs": type(given).model_validate(data)})


def _check_first_readable(
    settings: AnalysisSettings,
    paths: Sequence[Path],
    source: Path | None,
    roots: Any,
    public: Callable[[Path], str] | None = None,
    classifiers: Mapping[str, Any] | None = None,
) -> None:
    """Check the input channels (and the pixel size the ``classifiers`` need) against the
    first image that opens (a settings error, exit 2 before anything runs); an image that does
    not open fails on its own, listed with the others, wherever it sorts."""
    from scopeml.analysis.settings import InvalidSettingsError

    for path in paths:
        try:
            check_image_channels(settings, path, source=source, allowed_roots=roots,
                                 name=None if public is None else shown(path, public),
                                 classifiers=classifiers)  # fmt: skip
            return
        except InvalidSettingsError:
            raise
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception:  # unreadable: _safe records its reason when its turn comes
            continue


#: Memory of one worker process besides its plane (libraries, tables, the label stores' buffers).
WORKER_BASE_MB = 256
#: What a model segmenter's tiles and runtime add to a worker: the built-in ``nuclei`` model
#: (in the analysis's 512² tiles) took 1.29 GB peak RSS on an 8192² image where a threshold in
#: its place took 0.38 GB.
MODEL_WORKER_MB = 768
#: Input bytes that make one more worker process worth starting: a worker's start (its imports,
#: about 2 s of CPU) costs about as much as analysing two 2048² two-channel planes.
BYTES_PER_WORKER = 32 * 2**20


def default_workers(settings: AnalysisSettings, images: Sequence[Path] = ()) -> int:
    """Worker processes for a local batch: one per core, as many as the available memory holds
    at ``settings.memory_mb`` (the in-memory plane) plus :data:`WORKER_BASE_MB` each, and
    :data:`MODEL_WORKER_MB` more where a class runs a model, and one per
    :data:`BYTES_PER_WORKER` of the ``images``' files (a folder, e.g. OME-Zarr, counts as that
    much) when they are given, so a small batch is not slowed by starting processes.

    Examples
    --------
    >>> from scopeml.analysis.settings import ClassSettings, ThresholdSegmenter
    >>> s = AnalysisSettings(channels=["a"], classes=[ClassSettings(
    ...     name="x", segmenter=ThresholdSegmenter(channel="a"))])
    >>> 1 <= default_workers(s) <= (os.cpu_count() or 1)
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:  # psutil comes with dask; without it, the free pages
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    model = any(isinstance(c.segmenter, MODEL_SEGMENTERS) for c in settings.classes)
    per_worker = (settings.memory_mb + WORKER_BASE_MB + model * MODEL_WORKER_MB) * 2**20
    workers = min(cores or 1, available // per_worker)
    if images:
        files = [file for image in images for file in input_files(image)]
        size = sum(p.stat().st_size if p.is_file() else BYTES_PER_WORKER for p in files)
        workers = min(workers, size // BYTES_PER_WORKER)
    return max(1, workers)


def is_results_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a scopeml analysis's results: its ``settings.yaml`` and an
    ``images`` folder of per-image folders (what ``analyze`` writes), and nothing is a link."""
    if folder.is_symlink() or not (folder / "settings.yaml").is_file():
        return False
    images = folder / "images"
    if images.is_symlink() or not images.is_dir():
        return False
    return all(entry.is_dir() and not entry.is_symlink() for entry in images.iterdir())


def _clear(output: Path) -> None:
    """Delete every entry of ``output`` but the lock (this run's)."""
    for entry in output.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _replaceable(output: Path, resume: bool) -> bool:
    """Whether ``overwrite`` has earlier results in ``output`` to delete; a folder that is
    not an analysis's results is refused (never deleted)."""
    if resume:
        raise InvalidRequestError("overwrite replaces the results and resume continues them; "
                                  "choose one", path=output)  # fmt: skip
    if output.exists() and not output.is_dir():
        raise InvalidRequestError("exists and is not a folder", path=output)
    if not output.is_dir() or not any(p.name != LOCK for p in output.iterdir()):
        return False
    if not is_results_folder(output):
        raise InvalidRequestError(
            "the results folder exists and is not an analysis's; it is not replaced: choose "
            "another",
            path=output,
        )
    return True


def _prepare_output(output: Path, text: str, resume: bool) -> str | None:
    """Check that ``output`` may be written; return the settings YAML of the results a resume
    continues (compared once the models are open, :func:`_check_same_settings`), else ``None``."""
    if output.exists() and not output.is_dir():
        raise InvalidRequestError("exists and is not a folder", path=output)
    if output.is_dir() and any(p.name != LOCK for p in output.iterdir()):
        previous = output / "settings.yaml"
        if not previous.is_file():
            raise InvalidRequestError(
                "the results folder exists and is not an analysis's; choose another", path=output
            )
        if not any((output / "images").glob(f"*/{RECORD}")):
            return None  # an earlier run that finished no image (stopped before its first)
        if not resume:
            raise InvalidRequestError(
                "the results folder exists; pass --resume (resume=True) to continue it, "
                "--overwrite (overwrite=True) to replace it, or choose another",
                path=output,
            )
        return previous.read_text(encoding="utf-8")
    return None


def _check_same_settings(
    output: Path, previous: str | None, text: str, defaults: Mapping[str, Any]
) -> str | None:
    """Refuse to resume results made with other settings (a model's unset scale and its
    default, as ``settings.yaml`` writes it, are the same settings), naming the first that
    differs with both values (``classes[0].post[0].min_size: 30 → 40``); other ``rules``
    only are no refusal: return the first change in them, else ``None``."""
    if previous is None:
        return None
    import yaml

    try:
        was = _results_text(previous, defaults, object_classes=False)
    except yaml.YAMLError as err:  # damaged since: which settings made the results is unknown
        raise InvalidRequestError(
            f"cannot resume: its settings.yaml is not readable YAML ({err.__class__.__name__}); "
            "analyse into a new results folder, or --overwrite to replace this one",
            path=output,
        ) from None
    now = _results_text(text, defaults, object_classes=False)
    if was == now:
        return settings_change(_results_text(previous, defaults), _results_text(text, defaults))
    if was != now:
        change = settings_change(_shown_settings(was, defaults), _shown_settings(now, defaults))
        key, _, values = (change or "").partition(": ")
        earlier = values.split(" → ")[0]  # an option the command line sets: how to repeat it
        option = f"--{key.replace('_', '-')}"
        again = (f" (give {option} {earlier} as the earlier run had it)"
                 if key in _VIEW_KEYS and earlier not in ("null", "(not set)") else "")  # fmt: skip
        raise InvalidRequestError(
            "resuming with other settings than the earlier run's (its settings.yaml)"
            + (f": {change}{again}" if change else "")
            + ("" if again else WAY_ON),
            path=output,
        )  # fmt: skip


def _reclassify(
    settings: AnalysisSettings,
    text: str,
    result: AnalysisResult,
    change: str | None,
    resources: Any,
    files: Mapping[str, Any] | None,
    todo: Sequence[tuple[Path, str]],
    progress: Progress,
) -> str | None:
    """On a resume (``result.resumed``), apply the rules and classifiers to the tables of the
    finished images not analysed again (:mod:`scopeml.analysis.reclassify`) before
    ``settings.yaml`` says them; where they or a classifier file changed, say so (returned)."""
    from scopeml.analysis.reclassify import reapply_object_classes

    output = result.output
    if not (output / "settings.yaml").is_file():
        return None
    again = {name for _, name in todo}
    retrained = None
    for name, record in finished_images(output).items() if files is not None else ():
        then = record.get("model_files") or {}
        found = _changed_file(settings, then, files, resource_paths(resources), ("classifiers",),
                              "the finished images were classified")  # fmt: skip
        retrained = retrained or (None if name in again else found)
    updated, changed = reapply_object_classes(settings, output, resources, files,
                                              _digests(text)[0], again, progress)  # fmt: skip
    result.records[:] = [updated.get(r.get("name"), r) for r in result.records]  # for the report
    checked = len(updated)
    if (change is None and retrained is None) or not checked:
        return None
    if change is not None:  # the key that changed: classes[0].rules.… or classes[0].classifier
        what = "new rules" if ".rules" in change.split(": ")[0] else "a classifier change"
    said = (f"{f'{what} ({change})' if change else retrained}: applied to the tables of "
            f"{count(checked, 'finished image')} without segmenting them again; the object "
            f"classes changed in {len(changed)}")  # fmt: skip
    warnings.warn(said, UserWarning, stacklevel=find_stack_level())
    return said


def _digests(text: str, previous: str | None = None) -> tuple[str, ...]:
    """What identifies the settings an image's results were made with (its record's
    ``settings``): first the settings less their rules and classifiers, which a resume applies
    to finished tables; then what records from before that hold: the digest of the whole
    settings, these and (``previous``: the earlier run's ``settings.yaml``, their model
    classes' scales written out or not) the earlier ones."""
    import yaml

    texts = [_results_text(text, object_classes=False), _results_text(text)]
    with contextlib.suppress(yaml.YAMLError):  # damaged since: the resume is refused anyway
        texts += [] if previous is None else [_results_text(previous),
                                              _results_text(_unset_scales(previous))]  # fmt: skip
    return tuple(dict.fromkeys(hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts))


def _unset_scales(text: str) -> str:
    """Settings YAML with each model class's scale that may be its default (``auto``, 1)
    unset, as the text an earlier run hashed had it where ``settings.yaml`` writes it out."""
    import yaml

    data = yaml.safe_load(text)
    for cls in (data.get("classes") or []) if isinstance(data, dict) else []:
        segmenter = cls.get("segmenter") if isinstance(cls, dict) else None
        if isinstance(segmenter, dict) and str(segmenter.get("scale")).lower() in (
            "auto",
            "1",
            "1.0",
        ):
            segmenter["scale"] = None
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


#: What a refused resume of other settings may do instead (napari's widget says its own).
WAY_ON = "; analyse into a new results folder, or --overwrite to replace this one"

#: Settings the command line's options set (``--axes TYX``): a resume without them differs.
_VIEW_KEYS = ("axes", "scene")


def _model_scales(settings: AnalysisSettings, resources: Any) -> dict[str, Any]:
    """What each model class runs at when its settings leave ``scale`` unset: ``"auto"`` where
    its model makes that its default (the shipped ``nuclei``), else 1."""
    from scopeml.tiling.size import default_scale

    return {name: default_scale(model) or 1.0 for name, model in resources.models.items()
            if name in {c.name for c in settings.classes}}  # fmt: skip


def _confine(paths: Sequence[Path], allowed_roots: Sequence[Any] | None) -> None:
    """Refuse an image outside the allowed roots (a server's) before anything is written."""
    confinement = Confinement.of(allowed_roots)
    for image in paths if confinement is not None else ():
        for path in input_files(image):
            confinement.check(path)


def _warn_unsplit_masks(settings: AnalysisSettings, resources: Any) -> None:
    """Warn of a ``kind: model`` class whose model splits its objects at a boundary class (the
    shipped ``nuclei``): the class's pixels alone leave touching objects joined, and each
    smaller by the ring the boundary class covers, unlike ``segment --outputs instances``."""
    from scopeml.analysis.settings import ModelSegmenter
    from scopeml.objects.instances import BOUNDARY_NAMES

    for cls in settings.classes:
        seg = cls.segmenter
        if isinstance(seg, ModelSegmenter) and cls.name in resources.models:
            classes = resources.models[cls.name].spec.classes
            value = resources.class_values[cls.name][0]
            boundary = next((i for i, n in enumerate(classes, 1) if n in BOUNDARY_NAMES), None)
            if boundary is not None and boundary != value:
                warnings.warn(
                    f"class {cls.name}: kind: model takes the {classes[value - 1]} pixels of "
                    f"{seg.model} alone, so touching objects stay joined and each lacks the "
                    f"{classes[boundary - 1]} ring around it; kind: instances gives the objects "
                    "that scopeml segment's instances output has (split, with their rings)",
                    UserWarning, stacklevel=find_stack_level(),
                )  # fmt: skip


def _shown_settings(text: str, defaults: Mapping[str, Any]) -> str:
    """The settings YAML as ``settings.yaml`` shows it: a model class's unset ``scale`` written
    as what it runs at (``scale: auto``, not ``scale: null``)."""
    import yaml

    data = yaml.safe_load(text)
    for cls in data.get("classes") or []:
        segmenter = cls.get("segmenter") or {}
        if "scale" in segmenter and segmenter["scale"] is None and cls.get("name") in defaults:
            segmenter["scale"] = defaults[cls["name"]]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _same_scale(given: Any, default: Any) -> bool:
    if isinstance(given, str) or isinstance(default, str):
        return str(given).strip().lower() == str(default).strip().lower()
    return given is not None and float(given) == float(default)


def _remove_stale_partials(output: Path) -> None:
    """Remove what a stopped run left of the images it was analysing (``images/.NAME.*.partial``:
    scratch that no run takes up again, and that quotes the image's path in its engine's run
    record), so that a resumed batch's results hold only finished images."""
    import shutil

    for partial in output.glob("images/.*.partial"):
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)


def _results_text(
    text: str, defaults: Mapping[str, Any] | None = None, *, object_classes: bool = True
) -> str:
    """Settings YAML less what does not change the results (``memory_mb`` picks in memory or
    out of core, which give the same objects; ``inputs`` picks the files, each image's results
    are its own; ``aliases`` only say where a file's channels are, each finished image
    checked by its ``channels_read``), so a resume may change them, and results from before
    ``inputs`` existed resume. Without ``object_classes``: less the classes' rules and
    classifiers too, what the segmentation and measurements depend on
    (:mod:`scopeml.analysis.reclassify`)."""
    import yaml

    data = yaml.safe_load(text)
    if isinstance(data, dict):
        data.pop("memory_mb", None)
        data.pop("inputs", None)
        data.pop("aliases", None)  # how each image was read: its record's channels_read
        for key in ("scene", "pixel_size"):  # unset: as results from before the key existed
            if data.get(key) is None:
                data.pop(key, None)
        for cls in data.get("classes") or []:  # results from before 'scope' was written
            if isinstance(cls, dict) and (cls.get("rules") == {} or not object_classes):
                cls.pop("rules", None)  # {}: as results from before 'rules' existed
            if isinstance(cls, dict) and not object_classes:
                cls.pop("classifier", None)
            segmenter = cls.get("segmenter") if isinstance(cls, dict) else None
            if isinstance(segmenter, dict) and segmenter.get("scope") == "pooled":
                del segmenter["scope"]
            if isinstance(segmenter, dict) and segmenter.get("normalize", "") is None:
                del segmenter["normalize"]  # the model's own: results from before the key
        classes = (data.get("classes") or []) if defaults else []
        for cls in classes:  # a model's default scale, given or not, as unset
            segmenter = cls.get("segmenter") if isinstance(cls, dict) else None
            name = cls.get("name") if isinstance(segmenter, dict) else None
            if name in defaults and _same_scale(segmenter.get("scale"), defaults[name]):
                segmenter["scale"] = None
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _completed(
    folder: Path, image: Path | ChannelFiles, digests: Sequence[str], with_files: bool = False
) -> dict[str, Any] | None:
    """The record of a complete earlier result for this image and settings (its settings
    digest one of ``digests``), else ``None``.

    ``with_files``: the settings name model or classifier files, so a record must say what
    they were (``model_files``, compared by :func:`_check_same_files`); one from before scopeml
    recorded them is analysed again rather than trusted.
    """
    try:
        record = json.loads((folder / RECORD).read_text())
        same = record["settings"] in digests and record["input"] == input_identity(image)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if with_files and not isinstance(record.get("model_files"), dict):
        return None
    return record if same and record.get("status") == "done" else None


def _files_expected(settings: AnalysisSettings) -> list[str]:
    """The files every finished image folder holds, whatever it found: a resume analyses a
    folder missing one again (it took it as done, and the combined tables then lacked its
    objects while the counts had them)."""
    names = [f"{c.name}.csv" for c in settings.classes]
    return names + [f"{c.name}.ome.zarr" for c in settings.classes] * settings.outputs.labels


def _names_files(settings: AnalysisSettings) -> bool:
    """Whether the settings name a model or a classifier file (their results depend on it)."""
    return any(
        isinstance(c.segmenter, MODEL_SEGMENTERS) or c.classifier is not None
        for c in settings.classes
    )


def _check_same_files(
    output: Path,
    settings: AnalysisSettings,
    records: Sequence[Mapping[str, Any]],
    resources: Any,
    run: str | None = None,
) -> dict[str, dict[str, Any]] | None:
    """What the model and classifier files of ``resources`` are
    (:func:`~scopeml.analysis.model_files.files_identity`, hashed whole for the ``run``), once
    checked against the finished images' ``records``: a resume into results made with other
    model files (by content, as ``segment --resume`` compares its model) is refused, naming the
    file as the settings give it, since the folder would mix two models' results. Another
    classifier file is no refusal: its classes are applied to the finished images' tables
    (:mod:`scopeml.analysis.reclassify`)."""
    files = files_identity(resources, run)
    if files is None:  # a file went away while being fingerprinted: opening it again says so
        return None
    paths = resource_paths(resources)
    compared: set[str] = set()
    for record in records:
        then = record.get("model_files") or {}
        text = json.dumps(then, sort_keys=True, default=str)
        if text in compared:  # images of one run recorded the same files: compared once
            continue
        compared.add(text)
        changed = _changed_file(settings, then, files, paths, kinds=("models",))
        if changed is not None:
            raise InvalidRequestError(
                f"cannot resume: {changed}; its finished images came from the old one: analyse "
                "into a new results folder (or put the old file back)",
                path=output,
            )
    return files


def _changed_file(
    settings: AnalysisSettings,
    then: Mapping[str, Mapping[str, Any]],
    now: Mapping[str, Mapping[str, Any]],
    paths: Mapping[str, Mapping[str, Any]],
    kinds: Sequence[str] = ("models", "classifiers"),
    since: str = "the run began",
) -> str | None:
    """The first model or classifier file (of ``kinds``) whose content differs between two
    :func:`~scopeml.analysis.model_files.files_identity` (``now``: of the files at ``paths``;
    one not in ``then`` is not compared), in words: ``the model file m.czann (class 'blob')
    changed since the run began (sha256 1a2b… → 3c4d…)``; else ``None``.
    """
    given = {c.name: c for c in settings.classes}
    for kind, by_class in ((k, v) for k, v in now.items() if k in kinds):
        for name, current in by_class.items():
            earlier = (then.get(kind) or {}).get(name)
            if earlier is None or same_content(earlier, current, paths[kind][name]):
                continue
            cls = given[name]
            file = cls.classifier if kind == "classifiers" else cls.segmenter.model
            return (
                f"the {'classifier' if kind == 'classifiers' else 'model'} file {file} (class "
                f"{name!r}) changed since {since} (sha256 {_short(earlier.get('sha256'))} "
                f"→ {_short(current.get('sha256'))})"
            )
    return None


def _short(digest: Any) -> str:
    return f"{digest[:12]}…" if isinstance(digest, str) else repr(digest)


def _safe(
    settings: AnalysisSettings,
    image: Path | ChannelFiles,
    folder: Path,
    resources: Any,
    digest: str,
    roots: list[str] | None,
    progress: Progress,
    engine_workers: int = 2,
    public: Callable[[Path], str] | None = None,
    files: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Analyse one image; a failure becomes a record with the reason instead of stopping.

    ``engine_workers``: threads of the tiling engine (1 where images already run side by side).
    ``public``: the name to record for a file instead of its path (see :func:`run_analysis`).
    ``files``: what the model and classifier files were when ``resources`` were opened
    (:func:`~scopeml.analysis.model_files.files_identity`), recorded with the image.
    """
    name = shown(image, public)
    try:
        return analyze_image(settings, image, folder, resources, digest=digest,
                             engine_workers=engine_workers, allowed_roots=roots,
                             progress=progress, public_name=name, model_files=files,
                             say_unnamed=False)  # fmt: skip
    except (Cancelled, KeyboardInterrupt):
        raise
    except ScopeMLError as err:
        problem = err.problem
        if public is not None and isinstance(err, OutsideRootError):  # not where links lead
            problem = "lies outside the folders this image may read (a link out of them)"
        reason = _naming(err.path, problem, image, public)
    except OSError as err:
        reason = _naming(err.filename, err.strerror or str(err), image, public)
    except Exception as err:  # any failure of one image is reported, not fatal
        reason = f"{type(err).__name__}: {err}"
    if public is not None:  # a message that quotes the image's path names it as the client does
        for each in [image, *image.paths] if isinstance(image, ChannelFiles) else [image]:
            reason = reason.replace(str(each), shown(each, public))
    return {"status": "failed", "image": name, "name": folder.name, "reason": reason,
            "counts": {}}  # fmt: skip


def _naming(
    path: Any, problem: str, image: Path | ChannelFiles, public: Callable[[Path], str] | None = None
) -> str:
    """``problem``, after the file it is about (by its ``public`` name where given) unless that
    is the image (which every failure line already names).

    Examples
    --------
    >>> _naming("plate/x.tif", "no channel 'GFP'", Path("plate/x.tif"))
    "no channel 'GFP'"
    >>> _naming("m.czann", "not a model", Path("x.tif"))
    'm.czann: not a model'
    >>> _naming("/srv/m.czann", "not a model", Path("x.tif"), lambda path: path.name)
    'm.czann: not a model'
    """
    if not path or path == image:
        return problem
    if isinstance(path, ChannelFiles) or isinstance(image, ChannelFiles):  # a field's file
        return f"{shown(path if isinstance(path, ChannelFiles) else Path(path), public)}: {problem}"
    if Path(os.fspath(path)) == image:
        return problem
    try:
        if Path(os.fspath(path)).resolve() == image.resolve():
            return problem
    except (OSError, TypeError, ValueError):
        pass
    return f"{path if public is None else public(Path(os.fspath(path)))}: {problem}"


def _job(
    settings: dict, image: str | Path | ChannelFiles, folder: str, digests: tuple[str, ...],
    source: str | None,
    roots: list[str] | None, public: Callable[[Path], str] | None = None,
    base: str | None = None, expected: dict[str, Any] | None = None, run: str | None = None,
) -> dict:  # fmt: skip
    """One image in a worker process or on a dask worker (models opened once per process).

    ``expected``: what the model and classifier files were when the run began
    (:func:`~scopeml.analysis.model_files.files_identity`); an image whose worker finds
    another file there fails, saying which, so that one run never mixes two models' results.
    ``run``: the run's token; a worker hashes the files once per run, and before each further
    image only ``stat``s them (hashing again where that changed). ``None``: hashed per image.
    ``digests``: :func:`_digests`' (the record's; the whole text's, that its files go with).
    """
    parsed = AnalysisSettings.model_validate(settings)
    digest = digests[0]
    image = image if isinstance(image, ChannelFiles) else Path(image)
    key = (digests[-1], source, base, tuple(roots or ()))  # the same text elsewhere: other files
    opened = _WORKER_RESOURCES.get(key)
    if opened is not None and files_identity(opened[1], run) == opened[0]:
        resources = opened[1]
    else:  # the first image here, or a file replaced since (same path, same settings text)
        resources = open_resources(
            parsed, source=source, model_threads=1, allowed_roots=roots, base=base
        )
        _WORKER_RESOURCES[key] = (files_identity(resources, run), resources)
    files = _WORKER_RESOURCES[key][0]
    paths = resource_paths(resources)
    changed = (
        None if expected is None or files is None
        else _changed_file(parsed, expected, files, paths)
    )  # fmt: skip
    if changed is not None:
        return {"status": "failed", "image": shown(image, public),
                "name": Path(folder).name, "reason": changed, "counts": {}}  # fmt: skip
    return _safe(parsed, image, Path(folder), resources, digest, roots, False, 1, public,
                 files)  # fmt: skip


def _in_pool(workers: int, jobs: list[tuple], report: Any) -> list[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    records = []
    # no forked ONNX Runtime or thread state: workers start from a fresh process (spawn), or
    # are forked from a fork server that imported the analysis once (before any model opened
    # or thread started), so each worker does not pay the imports again (about 2 s of CPU)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])
        _start_fork_server()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_start_worker, initargs=(os.getpid(),))  # fmt: skip
    futures: list[Any] = []
    processes: list[Any] = []  # shutdown forgets them
    caught: list[int] = []
    try:
        with _interrupts_held(caught):  # the workers start here
            futures += [pool.submit(_job_warned, *job) for job in jobs[:workers]]
            processes += pool._processes.values()
        finished = _in_turn(pool, futures, iter(jobs[workers:]))
        for future in track(finished, report, "analyze", total=len(jobs), unit="image"):
            records.append(_warn_again(*future.result()))
    except KeyboardInterrupt:
        _say_finishing(futures)
        raise
    finally:
        _stop_pool(pool, futures, processes, at_once=len(caught) > 1)  # twice while starting
    return records


def _in_turn(pool: Any, futures: list[Any], waiting: Iterator[tuple]) -> Iterator[Any]:
    """The pool's images as each finishes, each replaced in the pool by the next ``waiting``
    (added to ``futures``), so it never holds more images than workers: given them all at
    once, it moved up to ``workers + 1`` more into its call queue, marked running, where Ctrl-C
    could not cancel them: with 2 workers it said "4 images in hand" and analysed them all."""
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            job = next(waiting, None)
            if job is not None:  # before the caller takes its turn: no worker waits on it
                futures.append(pool.submit(_job_warned, *job))
                pending.add(futures[-1])
            yield future


def _job_warned(*job: Any) -> tuple[dict[str, Any], list[tuple[type[Warning], str]]]:
    """:func:`_job` in a worker process, and the warnings it gave, for the parent to give
    again (:func:`_warn_again`): a worker's own reached the terminal as Python's two lines
    naming the pool's source, not as the command line's ``warning: FILE: …``, and a caller
    of the API could not catch them. Not on dask, whose threads would share the capture."""
    with warnings.catch_warnings(record=True) as caught:
        record = _job(*job)
    return record, [_sendable(given) for given in caught]


def _sendable(given: warnings.WarningMessage) -> tuple[type[Warning], str]:
    """A warning's category and text, the category ``UserWarning`` where the parent could not
    make it again (a class made at run time, one that takes more than a message): one that
    failed there would lose the image's record."""
    import pickle

    message = str(given.message)
    try:
        pickle.dumps(given.category)
        given.category(message)
    except Exception:
        return UserWarning, message
    return given.category, message


def _warn_again(record: dict[str, Any], given: list[tuple[type[Warning], str]]) -> dict[str, Any]:
    """The record of an image a worker analysed, once the warnings it gave are given here."""
    for category, message in given:
        warnings.warn(message, category, stacklevel=find_stack_level())
    return record


def _start_worker(parent: int) -> None:
    """A worker ignores Ctrl-C, which a terminal sends to every process of the run: one
    interrupted while reading its next job from the pool's queue left that queue unreadable,
    and the run hung at the stop (1 in 3 Ctrl-Cs with --workers 2); the parent stops the pool
    (:func:`_stop_pool`). And it ends when the run's process (``parent``) is gone: killed
    (SIGKILL, as a scheduler's time limit sends), it stops no pool, and its workers went on
    analysing into the results folder, then idled for minutes. The image in hand is left
    as its hidden scratch folder, which a resume removes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch = threading.Thread(target=_end_with, args=(parent,), name="scopeml-parent", daemon=True)
    watch.start()


#: Seconds between a worker's checks that the run's process is alive.
PARENT_CHECK_S = 1.0


def _end_with(parent: int) -> None:
    """Exit this process at once when the run's process ``parent`` is gone (:func:`_gone`).
    POSIX only: there ``os.kill(pid, 0)`` asks; on Windows it would send Ctrl-C."""
    if os.name != "posix":
        return
    while True:
        time.sleep(PARENT_CHECK_S)
        if _gone(parent):
            os._exit(1)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: its id free or another user's (reused), or on Linux
    a zombie (killed, not reaped yet by whoever started it: it still answers to its id)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (macOS): its id is all there is to ask
        return False
    return state == "Z"


def _start_fork_server() -> None:
    """Start the fork server ignoring Ctrl-C, as its workers then do from birth: a terminal's
    Ctrl-C reaches it too, and one while it imported the analysis printed its traceback."""
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        return  # started with the first worker, as Python does
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: ignored in the server
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _interrupts_held(caught: list[int]) -> Iterator[None]:
    """Ctrl-C and SIGTERM (where Python handles them, in the main thread) take effect when the
    block ends, each noted in ``caught``: one that came while the pool started a worker left
    that worker unknown to the pool, so never stopped, and the process never exited."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(signum)):
            held[signum] = signal.signal(signum, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        if caught:
            held[caught[0]](caught[0], None)


def _say_finishing(futures: Sequence[Any]) -> None:
    """Say at once, on Ctrl-C, that the images in hand finish first: the run said nothing
    until they had (12 s on BBBC007, minutes on large images), as if Ctrl-C had not come."""
    running = sum(future.running() for future in futures)
    if running:
        warnings.warn(
            f"stopping: the {running} image{'s' if running > 1 else ''} in hand finish "
            "first (Ctrl-C again to stop at once; what they wrote is then removed on resume)",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def _stop_pool(
    pool: Any, futures: Sequence[Any], processes: Sequence[Any], at_once: bool = False
) -> None:
    """Stop a pool (at the end, on Ctrl-C, a cancel, an error): its waiting images are
    cancelled and those its workers (``processes``) are analysing finish and are kept; a
    second Ctrl-C or a SIGTERM meanwhile (or ``at_once``) ends the workers at once. Either way
    they are gone when it returns, so none writes after the run says it stopped, or once it
    released the results folder.

    Never ``shutdown(wait=True)``: a Ctrl-C in its ``Thread.join`` marks (before Python 3.13)
    the pool's thread ended while it still runs; the interpreter then closed the queue before
    that thread told the workers to stop, and waited for them for ever at exit.
    """
    try:
        from concurrent.futures import wait

        for future in futures:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        if not at_once:
            wait([f for f in futures if not f.cancelled()])  # unlike a join, safe to interrupt
            _exited(processes, timeout=10)  # told to stop once their images are done
    finally:
        _end_workers(processes)


def _end_workers(processes: Sequence[Any]) -> None:
    """End the worker processes still running (SIGTERM, then SIGKILL after 5 s) and wait for
    them; what one was writing is scratch (``.NAME.*.partial``) that the next run removes."""
    for end in ("terminate", "kill"):
        running = [p for p in processes if not _exited([p], timeout=0)]
        for process in running:
            getattr(process, end)()
        try:
            if _exited(running, timeout=5):
                return
        except KeyboardInterrupt:  # yet another Ctrl-C: kill them now
            continue


def _exited(processes: Sequence[Any], timeout: float) -> bool:
    """Whether ``processes`` have all ended, waiting ``timeout`` seconds at most (on their
    sentinels: joining them would race the pool's thread, which reads their exit codes)."""
    from multiprocessing.connection import wait

    left = [process.sentinel for process in processes]
    deadline = time.monotonic() + timeout
    while left:
        ready = wait(left, max(deadline - time.monotonic(), 0))
        if not ready:
            return False
        left = [sentinel for sentinel in left if sentinel not in ready]
    return True


def _on_cluster(scheduler: Any, jobs: list[tuple], report: Any) -> list[dict[str, Any]]:
    """One task per image; the workers read the images and write the results folder by path,
    so both must be on a file system the workers share."""
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise InvalidRequestError(
            "--scheduler (scheduler=) needs dask.distributed (pip install 'scopeml[dask]')"
        ) from err
    if isinstance(scheduler, Client):  # a caller's client: one of our own to its scheduler
        scheduler = scheduler.scheduler.address
    try:  # dask waits distributed.comm.timeouts.connect (30 s unless configured)
        client = Client(scheduler)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise InvalidRequestError(f"cannot reach the dask scheduler {scheduler!r} ({err})") from err
    from scopeml.tiling.execute import watching_workers

    records = []
    with client:
        futures = [client.submit(_job, *job, pure=False) for job in jobs]
        try:
            with watching_workers(client, scheduler):
                for future in track(as_completed(futures), report, "analyze",
                                    total=len(futures), unit="image"):  # fmt: skip
                    records.append(future.result())
        except BaseException:
            client.cancel(futures)
            raise
    return records
