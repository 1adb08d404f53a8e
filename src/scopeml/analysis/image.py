"""The analysis of one image: every scene and time point, every class, into one folder.

Model segmenters run first, through :func:`scopeml.segment` (tile by tile, exact: equal to a
whole-image run), writing to a scratch store their class labels (``model``) or their instances
(``instances``: the same code and options as ``scopeml segment --outputs instances``). A 2-D
``(scene, time point)`` plane that fits ``settings.memory_mb`` runs in memory; a larger one runs
out of core (:mod:`scopeml.analysis.plane`): inputs read a tile at a time, labels in zarr,
measurement tile by tile, so memory is flat in image size. Both give the same labels and tables
(``tests/analysis/test_memory.py``). Only classes with a watershed split, a CRF, or mask steps
(fill holes, opening, closing) on instances are computed on the whole plane (with a warning when it
does not fit ``memory_mb``). Z stacks are analysed as 3-D planes held in memory (3-D objects). Each
plane gets its overview PNG (:func:`overview_name`). The folder is written under a temporary name
and moved into place when complete; ``record.json`` inside it marks it complete for ``--resume``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.analysis.check import Resources
from scopeml.analysis.outputs import (
    CLASS_COLOURS,
    OVERVIEW_SIZE,
    LabelStores,
    draw_overview,
    write_tables,
)
from scopeml.analysis.plane import EngineIds
from scopeml.analysis.segment import segment_class, warn_not_grown
from scopeml.analysis.settings import (
    MODEL_SEGMENTERS,
    AnalysisSettings,
    ClassSettings,
    GrowSegmenter,
    InstancesSegmenter,
    RemoveBorder,
    RemoveLarge,
    RemoveSmall,
)
from scopeml.analysis.tables import measure_plane
from scopeml.errors import InvalidImageError, find_stack_level
from scopeml.io.registry import ChannelFiles, input_files
from scopeml.objects.label import iter_tiles
from scopeml.progress import Progress, track
from scopeml.tiling.store import WRITER, writer

__all__ = ["RECORD", "analyze_image", "input_identity", "open_scenes_analysed", "overview_name"]

RECORD = "record.json"


def input_identity(path: str | os.PathLike[str] | ChannelFiles) -> dict[str, Any]:
    """What ``--resume`` knows an input by: a file's size and modification time; a folder's
    (an OME-Zarr store's) total size, file count and a hash of every file's name, size and
    time, since a chunk rewritten in place leaves the folder's own size and time as they were;
    a field's channel files, each's (and their channels).
    """
    if isinstance(path, ChannelFiles):
        files = zip(path.channels, path.paths, strict=True)  # by name: files swapped too
        return {"channel_files": {c: {"name": f.name, **input_identity(f)} for c, f in files}}
    path = Path(path)
    stat = path.stat()
    if not path.is_dir():
        return {"size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}
    listing, size, files = hashlib.sha256(), 0, 0
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            file = os.path.join(root, name)
            stat = os.stat(file)
            relative = os.path.relpath(file, path)
            listing.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            size, files = size + stat.st_size, files + 1
    return {"size": size, "files": files, "listing_sha256": listing.hexdigest()}


def analyze_image(
    settings: AnalysisSettings,
    image_path: str | os.PathLike[str] | ChannelFiles,
    folder: str | os.PathLike[str],
    resources: Resources,
    *,
    digest: str = "",
    engine_workers: int = 1,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    progress: Progress = None,
    public_name: str | None = None,
    model_files: Mapping[str, Any] | None = None,
    say_unnamed: bool = True,
) -> dict[str, Any]:
    """Analyse one image into ``folder`` (created whole, atomically); return its record.

    The record holds the image (its path, or ``public_name``: what a server's client knows it
    by), the object count per class and what identifies the run (settings digest, input size
    and modification time). ``allowed_roots`` confines every file the image reader opens (see
    :func:`~scopeml.io.open_image`). ``model_files``: the fingerprints of the model and
    classifier files ``resources`` were opened from, recorded as they are (a resume compares
    them with the files it opens). ``say_unnamed``: warn of a file that names no channels (a
    batch warns once for all its images instead, :func:`unnamed_warning`).

    The record's ``warnings``: what the analysis warned of (each message once, in order), so
    results whose log was lost still say that an image's pages were read as Z; the caller is
    warned as before (:func:`_warnings_kept`). Kept in the main thread only (the command line's,
    a worker process's, a server's job process): in another (a dask worker's) the record has
    no ``warnings``, as records from before they were kept.
    """
    started = time.perf_counter()
    folder = Path(folder)
    if not isinstance(image_path, ChannelFiles):
        image_path = Path(image_path)
    temp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    temp.mkdir(parents=True)
    try:
        shown = public_name or str(image_path)  # a server's client knows no server path
        kept = _warnings_kept(image_path)
        with kept as caught, open_scenes_analysed(settings, image_path, allowed_roots, name=shown,
                                                  say_unnamed=say_unnamed) as scenes:  # fmt: skip
            sources = calibrate(settings, scenes, shown)
            if not any(_has_finite_pixel(s, settings.tile_size) for s in scenes):
                raise InvalidImageError(  # before a model warns of its NaN pixels
                    f"every pixel of channel{'s' if len(settings.channels) > 1 else ''} "
                    f"{', '.join(settings.channels)} is NaN or infinite: nothing to analyse "
                    "(listed as failed, not counted as 0 objects)", path=image_path,
                )  # fmt: skip
            counts, scales, levels = _analyze(settings, scenes, folder.name, temp, resources,
                                              engine_workers, progress)  # fmt: skip
            sizes = [{**scene.sizes, "S": 1} for scene in scenes]
            pixel_sizes = dict(scenes[0].pixel_sizes)
            named = {str(number): name for number, name in scene_names(scenes).items()}
            first = file_scene_number(scenes[0])  # a scene given by name: its number in this file
        record = {
            "status": "done",
            "image": str(image_path) if public_name is None else public_name,
            "name": folder.name,
            "counts": counts,
            "scales": scales,  # per model class and scene: the factor run (and auto's estimate)
            "thresholds": levels,  # per class with an automatic pooled level: each plane's
            "sizes": {**sizes[0], "S": len(sizes)},  # the summary's object densities
            # scenes of different sizes, each opened on its own: every one's sizes
            **({} if all(s == sizes[0] for s in sizes) else {"scene_sizes": sizes}),
            **({} if settings.scene is None else {"scene": first}),  # S: this one
            "pixel_sizes": pixel_sizes,
            "pixel_size_source": sources,  # per axis: "file", or "settings" (pixel_size)
            **({"scene_names": named} if named else {}),  # by their number in the file
            "settings": digest,
            "input": input_identity(image_path),
            **({} if model_files is None else {"model_files": dict(model_files)}),
            "channels_read": scenes.channels_read,  # a resume with other aliases: the same?
            **({} if caught is None else {"warnings": _said(caught, image_path, public_name)}),
            "seconds": round(time.perf_counter() - started, 3),
            WRITER: writer(),
        }
        (temp / RECORD).write_text(json.dumps(record, indent=2))
        if folder.exists():
            if not (folder / RECORD).is_file():
                raise FileExistsError(17, "exists and is not an analysis result", str(folder))
            shutil.rmtree(folder)
        os.replace(temp, folder)
        return record
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def _warnings_kept(path: Path | ChannelFiles) -> Iterator[list[warnings.WarningMessage] | None]:
    """The warnings given in the block, for the image's record, each given again once it ends
    (the same words and category, so the caller and the command line see them as before, as
    the caller's filters say). Every ``UserWarning`` is caught, also where the caller silences
    them: the record is the trace a batch leaves. The reader's notes on ``path`` this process
    gave already (the batch's check of its first image read it) are given again inside, to be
    kept, but not given twice (:func:`~scopeml.io.tiff.notes_given_again`). ``None`` outside
    the main thread: ``catch_warnings`` swaps process-wide state, so threads side by side (a
    dask worker's) would catch each other's warnings and lose their own."""
    from scopeml.io.tiff import notes_given_again

    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    caught: list[warnings.WarningMessage] = []
    with ExitStack() as files:
        given = set().union(*(files.enter_context(notes_given_again(file))
                              for file in input_files(path)))  # fmt: skip
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)  # others: as the caller filters
                yield caught
        finally:
            for warning in caught:
                key = (warning.category, str(warning.message))
                if key[1] not in given and key not in SHOWN:
                    SHOWN.add(key)
                    warnings.warn(warning.message, stacklevel=find_stack_level())


def _said(
    caught: Sequence[warnings.WarningMessage], path: Path | ChannelFiles, public: str | None
) -> list[str]:
    """The warnings' messages, each once, in order, for the record; ``public``: the image's
    name for its path, and any other absolute path by its file name (a server's client never
    sees where the server keeps its files)."""
    said = dict.fromkeys(str(warning.message) for warning in caught)
    if public is None or public == str(path):  # a local run: paths as they are
        return list(said)
    return [_ABSOLUTE.sub(lambda m: os.path.basename(m[1]), text.replace(str(path), public))
            for text in said]  # fmt: skip


#: An absolute path in a message: after a space, a quote or a parenthesis, up to the next.
_ABSOLUTE = re.compile(r"""(?:(?<=^)|(?<=[\s'"(]))(/[^\s'"():;,]+)""")
#: What :func:`_warnings_kept` gave again in this run, each once (as Python's default filter
#: would have; the capture resets its registry): ``run_analysis`` clears it as it starts.
SHOWN: set[tuple[type[Warning], str]] = set()


@contextmanager
def open_scenes_analysed(
    settings: AnalysisSettings,
    image_path: Path | ChannelFiles,
    allowed_roots: Sequence[str | os.PathLike[str]] | None,
    *,
    name: str | None = None,
    say_unnamed: bool = True,
) -> Iterator[Scenes]:
    """The scenes to analyse, each its own image (``S`` = 1) of the settings' channels under
    the settings' names (:meth:`~AnalysisSettings.channels_of`: by name or alias; a file that
    names none is read in order): the settings' ``scene`` (a name: this file's scene of that
    name, which files of one batch may number differently), else every scene of the file, also
    scenes of different sizes (:func:`~scopeml.io.registry.open_scenes`). ``name`` is the image's in
    warnings (a server's: the name its client knows), else its path; ``say_unnamed``: warn
    where the file names no channels (else only ``channels_read`` says so)."""
    from scopeml.io.registry import open_scenes, scene_numbered

    options = {"allowed_roots": allowed_roots, "axes": settings.axes_of(image_path)}
    number = scene_numbered(image_path, settings.scene, **options)
    with open_scenes(image_path, number, **options) as scenes:
        names = [str(name) for name in scenes[0].channel_names]
        chosen = settings.channels_of(names)
        if chosen is None:
            raise InvalidImageError(settings.channel_problem(names, "the image"), path=image_path)
        if say_unnamed and _in_order(chosen):  # read by position: said, as a guess is
            read = _read_as(names, chosen, settings.channels)
            warnings.warn(f"{name or image_path}: the file names no channels: read {read} "
                          "(in order)", UserWarning, stacklevel=find_stack_level())  # fmt: skip
        opened = Scenes(scene.select_channels(chosen, names=settings.channels) for scene in scenes)
        opened.channels_read = {"file": names, "read": chosen}
        yield opened


def _in_order(chosen: Sequence[Any]) -> bool:
    """Whether :meth:`~AnalysisSettings.channels_of` read a file's channels by position."""
    return all(isinstance(c, int) for c in chosen)


def _read_as(names: Sequence[str], chosen: Sequence[Any], channels: Sequence[str]) -> str:
    return ", ".join(f"{names[i]} as {c}" for i, c in zip(chosen, channels, strict=True))


def unnamed_warning(records: Sequence[Mapping[str, Any]], channels: Sequence[str]) -> str | None:
    """One warning for the images of a batch whose files name no channels, so were read in
    order (their records' ``channels_read``): 14 plain TIFFs gave 14 near-identical lines.
    Counts them and names two; ``None`` where there are none.

    Examples
    --------
    >>> read = {"file": ["C0"], "read": [0]}
    >>> unnamed_warning([{"image": f"{i}.tif", "channels_read": read} for i in "abc"], ["DNA"])
    '3 images name no channels (a.tif, b.tif and 1 more): read C0 as DNA (in order)'
    """
    plain = [r for r in records if _in_order((r.get("channels_read") or {}).get("read", [""]))]
    if not plain:
        return None
    read = _read_as(plain[0]["channels_read"]["file"], plain[0]["channels_read"]["read"], channels)
    if len(plain) == 1:
        return f"{plain[0]['image']}: the file names no channels: read {read} (in order)"
    named = ", ".join(str(r["image"]) for r in plain[:2])
    more = f" and {len(plain) - 2} more" if len(plain) > 2 else ""
    return f"{len(plain)} images name no channels ({named}{more}): read {read} (in order)"


class Scenes(list):  # type: ignore[type-arg]
    """The scenes :func:`open_scenes_analysed` opened, and how: ``channels_read``, the file's
    channel names and what was read of them (:meth:`~AnalysisSettings.channels_of`), so a
    resume with other ``aliases`` can tell whether the file would be read the same."""

    channels_read: dict[str, list[Any]]


def calibrate(settings: AnalysisSettings, scenes: Sequence[Any], name: str) -> dict[str, str]:
    """Give the ``scenes`` the settings' ``pixel_size`` for each axis their file records no
    size of (:func:`~scopeml.pixel_size.resolve_pixel_sizes`: a file's own is kept), so the
    tables, densities, overviews and label stores are in µm; return where the first scene's
    sizes came from, per axis (``file`` or ``settings``)."""
    from scopeml.pixel_size import resolve_pixel_sizes

    given, notes = settings.pixel_sizes(), {}
    found: list[dict[str, str]] = []
    for scene in scenes:
        scene.pixel_sizes, sources, said = resolve_pixel_sizes(
            scene.pixel_sizes,
            given,
            stack=scene.sizes["Z"] > 1,
            name=name,
            series=scene.sizes["T"] > 1,
        )
        notes.update(dict.fromkeys(said))
        found.append(sources)
    for note in notes:  # once an image, not once a scene
        warnings.warn(note, UserWarning, stacklevel=find_stack_level())
    return found[0]


def _has_finite_pixel(image: Any, tile: int) -> bool:
    """Whether an image's channels hold a finite pixel anywhere (an integer image always
    does), read a ``tile`` × ``tile`` window of one Z plane at a time and stopped at the first
    (for most images: the first window). An image with none would find no objects because
    it holds no data, which a count of 0 would hide in the summary; asked before any class
    runs, so a model does not first warn of its NaN pixels. Not the engine's count of NaN
    pixels: threshold classes never run the engine, and a model counts a pixel that is
    non-finite in any one of its own channels."""
    if not np.issubdtype(np.dtype(image.dtype), np.floating):
        return True
    sizes = image.sizes
    corners = itertools.product(
        range(sizes["S"]),
        range(sizes["T"]),
        range(sizes["Z"]),
        range(0, sizes["Y"], tile),
        range(0, sizes["X"], tile),
    )
    for scene, t, z, y, x in corners:  # one Z plane's window at a time: bounded memory
        window = image.read(S=scene, T=t, Z=z, Y=slice(y, y + tile), X=slice(x, x + tile))
        if np.isfinite(window).any():
            return True
    return False


def _warn_unmatched_metadata(settings: AnalysisSettings, name: str) -> None:
    """Say where the image's name does not match the settings' ``metadata`` pattern: its
    tables' metadata columns are then empty."""
    if settings.metadata_of(name) is None:
        said = f"the image's name does not match metadata {settings.metadata!r}"
        warnings.warn(f"{name}: {said}: its metadata columns are empty", UserWarning,
                      stacklevel=find_stack_level())  # fmt: skip


def _analyze(
    settings: AnalysisSettings,
    scenes: Sequence[Any],
    name: str,
    temp: Path,
    resources: Resources,
    engine_workers: int,
    progress: Progress,
) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """The objects per class, per model class the scale each scene ran at, and per class with
    an automatic threshold its level on each plane (:class:`_Found`). ``scenes``: one image
    each (``S`` = 1), numbered from 0 in the label stores and the model outputs."""
    ordered = settings.ordered()
    _warn_unmatched_metadata(settings, name)
    model_labels = _run_models(settings, scenes, temp / "_engine", resources, engine_workers,
                               progress)  # fmt: skip
    stores = None
    if settings.outputs.labels:
        stores = LabelStores(temp, [c.name for c in ordered], scenes=scenes,
                             tile_size=settings.tile_size)  # fmt: skip
    parts: dict[str, list[pd.DataFrame]] = {c.name: [] for c in ordered}
    colours = {
        c.name: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, c in enumerate(settings.classes)
    }
    folder = _ImageFolder(temp, scenes, overview_channels(settings, scenes))
    planes = [(scene, t) for scene, image in enumerate(scenes) for t in range(image.sizes["T"])]
    log = _Found()  # grow's seeds that grew nothing, threshold levels: over the planes
    # several planes: report each (a callback can cancel between them)
    for scene, t in track(planes, progress if len(planes) > 1 else None, "plane", unit="plane"):
        image = scenes[scene]
        analyse = _analyze_plane_tiled if image.sizes["Z"] == 1 else _analyze_stack
        found = analyse(settings, image, model_labels, resources, stores, name, scene, t,
                        folder, colours, log, progress)  # fmt: skip
        for cls_name, table in found.items():
            parts[cls_name].append(table)
    warn_not_grown(settings.classes, log.tally, name)  # one line for all the planes
    shutil.rmtree(temp / "_engine", ignore_errors=True)
    if stores is not None:
        stores.finish(ome_tiff=settings.outputs.ome_tiff)
    tables = {cls: pd.concat(frames, ignore_index=True) for cls, frames in parts.items()}
    named = scene_names(scenes)
    for table in tables.values() if named else ():  # a plate's wells: A1-Pos3 …
        table.insert(table.columns.get_loc("scene") + 1, "scene_name", table["scene"].map(named))
    write_tables(tables, temp, parquet=settings.outputs.parquet)
    scales = {cls: [output.scale for output in outputs] for cls, outputs in model_labels.items()}
    return {cls: len(table) for cls, table in tables.items()}, scales, log.levels


def _analyze_stack(
    settings: AnalysisSettings,
    image: Any,
    model_labels: dict[str, list[EngineOutput]],
    resources: Resources,
    stores: LabelStores | None,
    name: str,
    scene: int,
    t: int,
    folder: _ImageFolder,
    colours: dict[str, tuple[int, int, int]],
    log: _Found,
    progress: Progress = None,
) -> dict[str, pd.DataFrame]:
    """One Z stack of ``image`` (time point ``t`` of scene ``scene``), as
    :func:`_analyze_plane_tiled` a plane, in memory: its objects are 3-D."""
    pixels = image.read(T=t)[0, 0]  # C×Z×Y×X, as stored
    channels = dict(zip(settings.channels, pixels, strict=True))
    labels: dict[str, np.ndarray] = {}
    for cls in track(settings.ordered(), progress, "classes", unit="class"):
        region = None if cls.parent is None else labels[cls.parent]  # ids: per-parent levels
        plane = None
        if cls.name in model_labels:
            plane = model_labels[cls.name][scene].plane(t)[...]
        with log.level_of(cls.name, file_scene_number(image), t):
            labels[cls.name] = segment_class(
                cls, channels, model_labels=plane,
                class_values=resources.class_values.get(cls.name), region=region,
                seeds=_seeds_of(cls, labels), image=name,
                spacing=x_pixels(image.pixel_sizes, 3), tally=log.tally,
            )  # fmt: skip
        if stores is not None:
            stores.write(cls.name, scene, t, labels[cls.name])
    if settings.outputs.overview:
        shown = [channels[c] for c in folder.shown]
        draw_overview(np.stack(shown) if folder.in_colour else shown[0], labels,
                      folder.overview(scene, t), colours=colours,
                      pixel_size=image.pixel_sizes.get("X"),
                      in_colour=folder.in_colour)  # fmt: skip
    return measure_plane(settings, labels, pixels, image.pixel_sizes, resources,
                         name, file_scene_number(image), t)  # fmt: skip


def _analyze_plane_tiled(
    settings: AnalysisSettings,
    image: Any,
    model_labels: dict[str, list[EngineOutput]],
    resources: Resources,
    stores: LabelStores | None,
    name: str,
    scene: int,
    t: int,
    folder: _ImageFolder,
    colours: dict[str, tuple[int, int, int]],
    log: _Found,
    progress: Progress = None,
) -> dict[str, pd.DataFrame]:
    """One 2-D plane of ``image``, scene ``scene`` of the analysis
    (:mod:`scopeml.analysis.plane`): in memory when it fits ``settings.memory_mb``, else out of
    core (inputs read by tile, labels in zarr in the scratch folder ``_plane``); the same stages
    and tiles either way, so the same labels (the tables to float rounding: in memory each
    class is measured whole). Non-tileable classes run on the whole plane (a warning says so
    when the plane does not fit ``memory_mb``). ``log`` keeps what the plane found beside
    its objects (:class:`_Found`). ``progress``: stage ``classes`` (unit ``class``), so a
    callback can cancel between them."""
    from scopeml.analysis.plane import (
        ChannelView,
        PlaneChannels,
        plane_memory,
        segment_class_tiled,
        tileable,
    )

    views = [ChannelView(image, 0, t, c) for c in range(len(settings.channels))]
    grow = any(isinstance(c.segmenter, GrowSegmenter) for c in settings.classes)
    needed = plane_memory(views[0].shape, len(views), views[0].dtype.itemsize,
                          len(settings.classes), grow)  # fmt: skip
    in_memory = needed <= settings.memory_mb * 2**20
    pixels: Any = PlaneChannels(views)
    lazy: dict[str, Any] = dict(zip(settings.channels, views, strict=True))
    if in_memory:
        pixels = np.stack([view[:, :] for view in views])
        lazy = dict(zip(settings.channels, pixels, strict=True))
    tile = settings.tile_size
    scratch = folder.path / "_plane"
    whole: dict[str, np.ndarray] | None = None
    labels: dict[str, Any] = {}
    try:
        for cls in track(settings.ordered(), progress, "classes", unit="class"):
            parent = None if cls.parent is None else labels[cls.parent]
            engine = model_labels[cls.name][scene].plane(t) if cls.name in model_labels else None
            level = log.level_of(cls.name, file_scene_number(image), t)
            if tileable(cls):
                value = resources.class_values.get(cls.name, (None, None))[0]
                with level:
                    labels[cls.name] = segment_class_tiled(
                        cls, lazy, None if in_memory else scratch / cls.name, tile_size=tile,
                        parent=parent, model_labels=engine, class_value=value,
                    )  # fmt: skip
            else:  # the documented exception: watershed split, CRF, mask steps on instances, grow
                if not in_memory:
                    _warn_whole_plane(cls, name, views[0].shape, needed, settings.memory_mb)
                if whole is None:
                    whole = {n: np.asarray(v[:, :]) for n, v in lazy.items()}
                plane = None if engine is None else engine[...]
                with level:
                    labels[cls.name] = segment_class(
                        cls, whole, model_labels=plane,
                        class_values=resources.class_values.get(cls.name),
                        region=None if parent is None else np.asarray(parent[...]),
                        seeds=_seeds_of(cls, labels), image=name,
                        spacing=x_pixels(image.pixel_sizes, 2), tally=log.tally,
                    )  # fmt: skip
            if stores is not None:
                stores.write_tiled(cls.name, scene, t, labels[cls.name], tile)
        found = measure_plane(settings, labels, pixels, image.pixel_sizes, resources, name,
                              file_scene_number(image), t, whole=in_memory)  # fmt: skip
        if settings.outputs.overview:
            _overview_of_tiles(lazy, labels, folder, folder.overview(scene, t), colours,
                               image.pixel_sizes.get("X", 0.0), tile)  # fmt: skip
        return found
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def x_pixels(pixel_sizes: Mapping[str, float], ndim: int) -> tuple[float, ...] | None:
    """Each of the last ``ndim`` axes' pixel size in X pixels, where the image says them all
    (``None`` else: every axis counts as one pixel).

    >>> x_pixels({"Z": 1.0, "Y": 0.25, "X": 0.25}, 3), x_pixels({"Y": 0.25, "X": 0.25}, 3)
    ((4.0, 1.0, 1.0), None)
    """
    axes = "ZYX"[-ndim:]
    if not all(pixel_sizes.get(a) for a in axes):
        return None
    return tuple(float(pixel_sizes[a]) / float(pixel_sizes["X"]) for a in axes)


def _seeds_of(cls: ClassSettings, labels: Mapping[str, Any]) -> np.ndarray | None:
    """A ``grow`` class's seeds: the labels of the class it grows from, read whole."""
    name = getattr(cls.segmenter, "seeds", None)
    return None if name is None else np.asarray(labels[name][...])


def _overview_of_tiles(
    channels: Mapping[str, Any],
    labels: Mapping[str, Any],
    folder: _ImageFolder,
    path: Path,
    colours: dict[str, tuple[int, int, int]],
    pixel_size: float,
    tile: int,
) -> None:
    """A plane's overview from its (lazy) ``channels`` and ``labels``, each subsampled to the
    overview's size a tile at a time (a plane out of core is never read whole)."""
    shown = folder.shown
    step = max(1, -(-max(channels[shown[0]].shape) // OVERVIEW_SIZE))
    pixels = [_subsample(channels[c], step, tile) for c in shown]
    draw_overview(
        np.stack(pixels) if folder.in_colour else pixels[0],
        {n: _subsample(v, step, tile) for n, v in labels.items()},
        path, colours=colours, pixel_size=pixel_size * step or None, in_colour=folder.in_colour,
    )  # fmt: skip


def _warn_whole_plane(
    cls: ClassSettings, image: str, shape: tuple[int, ...], needed: int, memory_mb: int
) -> None:
    """Say, before allocating, that a class runs on its whole plane past ``memory_mb``."""

    kept = (RemoveSmall, RemoveLarge, RemoveBorder)  # drop whole objects: not the reason
    steps = [type(s).__name__ for s in cls.post if not isinstance(s, kept)]
    why = ", ".join(sorted(set(steps))) or f"kind: {cls.segmenter.kind}"
    warnings.warn(
        f"{image}: class {cls.name!r} runs on its whole {'×'.join(map(str, shape))} plane in "
        f"memory ({why}): about {needed // 2**20} MB, over memory_mb {memory_mb}",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def overview_channel(settings: AnalysisSettings) -> str:
    """The channel an overview is drawn on: the one the first class is segmented from (a
    threshold's channel, a model's first), so its outlines lie on what they were found in;
    where a class grows cells along a stain (``grow`` with ``within``), that stain, on which
    the cells' outlines are judged (the nuclei show in it too, as holes).

    Examples
    --------
    >>> from scopeml.analysis.settings import parse_settings
    >>> text = ("version: 1\\nchannels: [GFP, DAPI]\\nclasses:\\n  - name: nuclei\\n"
    ...         "    segmenter: {kind: threshold, channel: DAPI}\\n")
    >>> overview_channel(parse_settings(text))
    'DAPI'
    >>> text += ("  - name: cell\\n    segmenter: {kind: grow, seeds: nuclei, "
    ...          "within: {channel: GFP}}\\n")
    >>> overview_channel(parse_settings(text))
    'GFP'
    """
    stains = [c.segmenter.within for c in settings.classes if getattr(c.segmenter, "within", None)]
    seg = stains[0] if stains else settings.classes[0].segmenter if settings.classes else None
    channel = getattr(seg, "channel", None) or (getattr(seg, "channels", None) or [None])[0]
    return channel if channel in settings.channels else settings.channels[0]


def overview_channels(settings: AnalysisSettings, scenes: Any) -> list[str]:
    """The channels overviews are drawn from: where the file's channels are an RGB image's
    (``R, G, B``) and the settings read all three, those, for an overview in colour (a
    skin section's was grey); else :func:`overview_channel` alone. ``scenes``: as
    :func:`open_scenes_analysed` opened them (their ``channels_read``).

    Examples
    --------
    >>> from scopeml.analysis.settings import parse_settings
    >>> blue = {"name": "x", "segmenter": {"kind": "threshold", "channel": "blue"}}
    >>> s = parse_settings({"version": 1, "channels": ["red", "green", "blue"], "classes": [blue],
    ...                     "aliases": {"red": "R", "green": "G", "blue": "B"}})
    >>> opened = Scenes()
    >>> opened.channels_read = {"file": ["R", "G", "B"], "read": ["R", "G", "B"]}
    >>> overview_channels(s, opened)
    ['red', 'green', 'blue']
    """
    read = getattr(scenes, "channels_read", None)
    if not read:  # not told how the file's channels were read: the one channel
        return [overview_channel(settings)]
    file = list(read["file"])
    by_file = {file[c] if isinstance(c, int) else c: channel
               for c, channel in zip(read["read"], settings.channels, strict=True)}  # fmt: skip
    if file[:3] == ["R", "G", "B"] and all(c in by_file for c in "RGB"):
        return [by_file[c] for c in "RGB"]
    return [overview_channel(settings)]


def file_scene_number(image: Any) -> int:
    """The file's number of the scene ``image`` is (``S`` = 1): the tables and overviews name
    the scene as the file does, also when the analysis opened only one (settings ``scene``)."""
    return image.view()["scene"] or 0


def scene_names(scenes: Sequence[Any]) -> dict[int, str]:
    """The file's names of the ``scenes`` analysed, by their number in the file, where it names
    them (a CZI's scenes, OME Image names, a LIF's series); else none."""
    named = {}
    for image in scenes:
        number, names = file_scene_number(image), getattr(image, "scene_names", ())
        if number < len(names) and names[number] != str(number):
            named[number] = names[number]
    return named


@dataclass
class _Found:
    """What an image's planes found beside their objects: per ``grow`` class the seeds that
    grew nothing (summed, for one warning: :func:`scopeml.analysis.segment.not_grown`), and
    per class the automatic threshold level it was cut at on each plane (``None``: no level,
    such as a blank plane; a ``per_parent`` threshold has one per parent and is not kept)."""

    tally: dict[str, list[int]] = field(default_factory=dict)
    levels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @contextmanager
    def level_of(self, name: str, scene: int, t: int) -> Iterator[None]:
        """Keep the level class ``name`` computes inside the block on plane ``(scene, t)``."""
        from scopeml.analysis.tiled import levels_found

        with levels_found() as found:
            yield
        if found:  # a grow's: its within threshold's
            self.levels.setdefault(name, []).append({"scene": scene, "t": t, "level": found[-1]})


@dataclass(frozen=True)
class _ImageFolder:
    """The folder an image's analysis writes (``path``, under its temporary name), the
    ``scenes`` analysed into it and the channels its overviews show (three: in colour)."""

    path: Path
    scenes: Sequence[Any]
    #: The channels its overviews are drawn from (:func:`overview_channels`).
    shown: Sequence[str] = ()

    @property
    def in_colour(self) -> bool:
        return len(self.shown) == 3

    def overview(self, scene: int, t: int) -> Path:
        """The overview of scene ``scene``'s (of ``scenes``) time point ``t``."""
        sizes = {"S": len(self.scenes), "T": max(image.sizes["T"] for image in self.scenes)}
        first = file_scene_number(self.scenes[0])
        return self.path / overview_name(file_scene_number(self.scenes[scene]), t, sizes, first)


def overview_name(scene: int, t: int, sizes: dict[str, int], first: int = 0) -> str:
    """The overview PNG of a plane: ``overview.png`` for the first (scene ``first``: the one
    analysed of a file's scenes, else 0), then ``overview_s1_t0.png``…, the numbers padded to the
    image's largest (``_t007`` of 120 time points), so the files sort in order.

    Examples
    --------
    >>> overview_name(0, 0, {"S": 2, "T": 4}), overview_name(1, 3, {"S": 2, "T": 4})
    ('overview.png', 'overview_s1_t3.png')
    >>> overview_name(0, 7, {"S": 1, "T": 120}), overview_name(3, 0, {"S": 1, "T": 2}, first=3)
    ('overview_s0_t007.png', 'overview.png')
    """
    if scene == first and t == 0:
        return "overview.png"
    digits = [len(str(max(n - 1, 0))) for n in (sizes["S"] + first, sizes["T"])]
    return f"overview_s{scene:0{digits[0]}d}_t{t:0{digits[1]}d}.png"


def _subsample(array: Any, step: int, tile: int) -> np.ndarray:
    """``array[::step, ::step]`` of a 2-D array-like, read a tile at a time."""
    shape = tuple(int(s) for s in array.shape)
    out = None
    for region in iter_tiles(shape, (tile, tile)):
        starts = [-(-r.start // step) * step for r in region]
        if any(s >= r.stop for s, r in zip(starts, region, strict=True)):
            continue
        part = np.asarray(array[tuple(slice(s, r.stop) for s, r in zip(starts, region,
                                                                     strict=True))])  # fmt: skip
        part = part[::step, ::step]
        if out is None:
            out = np.zeros([-(-n // step) for n in shape], part.dtype)
        out[starts[0] // step : starts[0] // step + part.shape[0],
            starts[1] // step : starts[1] // step + part.shape[1]] = part  # fmt: skip
    return out if out is not None else np.zeros((0, 0))


@dataclass(frozen=True)
class EngineOutput:
    """One scene of what the facade wrote for a model class: its class labels (``model``) or
    its instances (``instances``, with the id each time point's numbering starts after)."""

    image: Any
    offsets: tuple[int, ...]
    #: The factor the model ran at (``scale``); where ``auto`` chose it, also its estimate of
    #: the objects' ``diameter`` and the ``model_diameter`` (pixels), as the store records it.
    scale: dict[str, Any] = field(default_factory=lambda: {"scale": 1.0})

    def plane(self, t: int) -> EngineIds:
        """Time point ``t`` as a lazy ``(Z×)Y×X`` array (instance ids from 1)."""
        return EngineIds(self.image, t, self.offsets[t])


def _run_models(
    settings: AnalysisSettings,
    scenes: Sequence[Any],
    scratch: Path,
    resources: Resources,
    engine_workers: int,
    progress: Progress,
) -> dict[str, list[EngineOutput]]:
    """Run each model segmenter over each of ``scenes`` with :func:`scopeml.segment` (tile by tile,
    out of core): a ``model`` class's labels, an ``instances`` class's instances (made by the
    same code and options as ``scopeml segment --outputs instances``), one output per scene."""
    from scopeml.api import segment
    from scopeml.io.omezarr import open_ome_zarr_array
    from scopeml.tiling.engine import DEFAULT_TILE

    found: dict[str, list[EngineOutput]] = {}
    for cls in settings.classes:
        seg = cls.segmenter
        if not isinstance(seg, MODEL_SEGMENTERS):
            continue
        model = resources.models[cls.name]
        # a model's working memory grows with its tile and every worker process holds one:
        # tiles of at most DEFAULT_TILE, not segment's wider default for a large halo (896² for
        # the shipped nuclei model: 2.1 GB peak on an 8192² image against 1.3 GB in 512², for
        # 0.84× the time). The results do not depend on the tile size: exact tiling.
        model_tile = min(settings.tile_size, DEFAULT_TILE[model.spec.spatial_dims])
        objects = isinstance(seg, InstancesSegmenter)
        found[cls.name] = []
        for scene, image in enumerate(scenes):
            store = scratch / f"{cls.name}-{scene}.ome.zarr"
            # no "stopped; … run again with --resume" naming this scratch store: a stop
            # removes it, and the analysis says how to resume (runner.stopped_note)
            result = segment(
                image,
                model,
                store,
                outputs=("labels", "instances") if objects else ("labels",),
                instances=seg.instance_options() if objects else None,  # type: ignore[union-attr]
                tile_size=model_tile,
                channels=tuple(seg.channels),
                min_confidence=seg.min_confidence or None,
                scale=seg.scale,
                normalize=seg.normalize,
                workers=engine_workers,
                progress=progress or False,
                log_stop=False,
            )
            output = result.instances if objects else result.labels
            offsets = (open_ome_zarr_array(output.path, mode="r").attrs["time_offsets"]
                       if objects else [0] * int(output.sizes["T"]))  # fmt: skip
            found[cls.name].append(EngineOutput(output, tuple(offsets), _scale_run(seg, store)))
    return found


def _scale_run(segmenter: Any, store: Path) -> dict[str, Any]:
    """The factor a model segmenter ran at: what ``auto`` chose (given, or the model's default),
    read back from the store's run record with its estimate, else the factor given (1 for
    none)."""
    from scopeml.tiling.size import recorded_auto_scale

    chosen = recorded_auto_scale(store)
    if chosen is not None:
        return {**chosen.to_dict(), "auto": True}
    return {"scale": float(segmenter.scale) if segmenter.scale is not None else 1.0}
