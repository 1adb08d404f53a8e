"""Checks that need more than the schema, done before any pixel is read.

Model files must exist and open, their classes must include the one to extract, and they must
take as many channels as the settings give them; classifier files must load; the first image's
channel names (metadata only) must include every input channel. Each failure is an
:class:`~scopeml.analysis.settings.InvalidSettingsError` naming the settings file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import yaml

from scopeml import safe_yaml
from scopeml.analysis.settings import (
    MODEL_SEGMENTERS,
    AnalysisSettings,
    ClassSettings,
    InstancesSegmenter,
    InvalidSettingsError,
    _dotted,
    _locate,
    threshold_of,
)
from scopeml.errors import InvalidImageError, OutsideRootError, ScopeMLError, summarize
from scopeml.io.confine import ABSOLUTE, not_from_root, unusable_name
from scopeml.objects.classifier import physical_features

__all__ = ["Resources", "check_image_channels", "check_settings_files", "open_resources"]


@dataclass
class Resources:
    """What an analysis opens once and keeps: models and object classifiers (and the files
    they came from), by class name."""

    models: dict[str, Any] = field(default_factory=dict)
    model_paths: dict[str, Path] = field(default_factory=dict)
    class_values: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    classifiers: dict[str, Any] = field(default_factory=dict)
    classifier_paths: dict[str, Path] = field(default_factory=dict)


def settings_error(
    source: str | os.PathLike[str] | None, loc: Sequence[Any], message: str
) -> InvalidSettingsError:
    """An error naming the settings file and the line of ``loc`` in it (when it is a file)."""
    if source is None:
        return InvalidSettingsError(f"{_dotted(loc)}: {message}", path="settings")
    try:
        root = safe_yaml.compose(Path(source).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        root = None
    line, _ = _locate(root, loc)
    return InvalidSettingsError(f"line {line}: {_dotted(loc)}: {message}", path=source)


def open_resources(
    settings: AnalysisSettings,
    *,
    source: str | os.PathLike[str] | None = None,
    model_threads: int | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> Resources:
    """Open every model and classifier the settings name, checking them against the settings.

    ``source`` is the settings file, for line numbers in errors. A relative model or
    classifier path is taken relative to ``base`` (a server's allowed root); without it,
    relative to the settings file's folder (else the working folder's, where only it has one;
    two different files, one in each, are an error).
    With ``allowed_roots`` (a server), a model or classifier file must lie below one of them
    (checked here, where it is opened; built-in names always work), and errors name files as
    below their root or as the settings give them, never where the server keeps them or where
    a link points.
    """
    from scopeml.api import label_value
    from scopeml.io.confine import Confinement
    from scopeml.model.registry import open_model
    from scopeml.objects.instances import InstanceOptions

    confinement = Confinement.of(allowed_roots)
    found = Resources()
    for index, cls in enumerate(settings.classes):
        seg = cls.segmenter
        where = ("classes", index, "segmenter")
        if isinstance(seg, MODEL_SEGMENTERS):
            loc = (*where, "model")
            path, opened = _settings_file(seg.model, "model", source, loc, base, confinement)
            _check_kind(opened, "model", seg.model, source, loc, base, confinement)
            try:
                model = open_model(opened, workers=model_threads, allowed_roots=allowed_roots)
            except (ScopeMLError, OSError) as err:
                raise settings_error(
                    source, loc, _reason(err, seg.model, base, confinement)
                ) from err
            spec = model.spec
            _check_model_inputs(model, seg, source, where)
            values: list[int | None] = []
            boundary = getattr(seg, "boundary_class", None)
            for key, choice in (("class", seg.class_), ("boundary_class", boundary)):
                if choice is None:
                    values.append(None)
                    continue
                try:
                    values.append(label_value(spec.classes, choice))
                except ScopeMLError as err:
                    raise settings_error(source, (*where, key), _reason(err)) from err
            if isinstance(seg, InstancesSegmenter) or seg.class_ is None:
                # as segment resolves them; no class: the model's one object class
                options = (
                    seg.instance_options() if isinstance(seg, InstancesSegmenter)
                    else InstanceOptions()
                )  # fmt: skip
                try:
                    values[0] = options.resolve(spec.classes)[0]
                except ScopeMLError as err:
                    raise settings_error(source, (*where, "class"), _reason(err)) from err
            found.models[cls.name] = model
            found.model_paths[cls.name] = path
            found.class_values[cls.name] = (int(values[0]), values[1])  # type: ignore[arg-type]
        if cls.classifier is not None:
            found.classifiers[cls.name], found.classifier_paths[cls.name] = _open_classifier(
                settings, index, source, base, confinement
            )
    return found


def _check_model_inputs(model: Any, seg: Any, source: Any, where: tuple) -> None:
    """A model segmenter's channels and normalisation, against what the model takes."""
    from scopeml.model.spec import recorded_normalize
    from scopeml.tiling.model_inputs import check_raw_model
    from scopeml.tiling.normalize import chosen_policy

    if model.spec.in_channels != len(seg.channels):
        raise settings_error(
            source,
            (*where, "channels"),
            f"model {seg.model!r} expects {model.spec.in_channels} channel(s); "
            f"the settings give {len(seg.channels)} ({', '.join(seg.channels)}): name "
            "its channels with the segmenter's channels: [...] (default: the settings')",
        )
    try:  # a pixel classifier trained on raw values, normalised: it found nothing
        check_raw_model(model, chosen_policy(seg.normalize, recorded_normalize(model)))
    except ScopeMLError as err:
        raise settings_error(source, (*where, "normalize"), _reason(err)) from err


def _open_classifier(
    settings: AnalysisSettings, index: int, source: Any, base: Any, confinement: Any
) -> tuple[Any, Path]:
    """The object classifier of class ``index``, checked to fit the table that class gets."""
    from scopeml.objects.classifier import load_object_classifier

    cls = settings.classes[index]
    loc = ("classes", index, "classifier")
    _, opened = _settings_file(cls.classifier, "classifier", source, loc, base, confinement)
    _check_kind(
        opened, "classifier", cls.classifier, source, loc, base, confinement, known=False
    )  # a file of no known kind: the loader says what is wrong with it
    try:
        classifier = load_object_classifier(opened)
    except (ScopeMLError, OSError) as err:
        raise settings_error(source, loc, _reason(err, cls.classifier, base, confinement)) from err
    if unmade := _columns_not_made(classifier.features, cls, settings):
        raise settings_error(source, loc, unmade)
    return classifier, opened


_CHILD_SUMMARY = re.compile(r"(.+)_(?:count|(?:area|area_um2|volume_um3)_(?:mean|sum))")


def _columns_not_made(
    features: Sequence[str], cls: ClassSettings, settings: AnalysisSettings
) -> str | None:
    """Why the class's table will lack some of its classifier's features, or ``None``: the
    summary of a child class it has no child of (a classifier trained under another class
    tree), intensities of channels it does not measure, or shape features it does not
    measure. Pixel sizes, known only from the images, are checked at run time."""
    from scopeml.errors import summarize
    from scopeml.objects.classifier import _INTENSITY, _SHAPE, _pixel_name

    children = {c.name for c in settings.classes if c.parent == cls.name}
    measured = cls.measurements.intensity  # None: every input channel; []: none
    channels = set(settings.channels if measured is None else measured)
    causes = {
        "the summary of a child class it has none of": [
            f for f in features
            if (m := _CHILD_SUMMARY.fullmatch(f)) and m.group(1) not in children
        ],
        f"intensities of channels it does not measure ({', '.join(sorted(channels))})": [
            f for f in features if (m := _INTENSITY.fullmatch(f)) and m.group(1) not in channels
        ],
        "shape features, which it does not measure (shape: false)": [
            f for f in features if _pixel_name(f) in _SHAPE and not cls.measurements.shape
        ],
    }  # fmt: skip
    said = [f"{summarize(names, head=3)} ({why})" for why, names in causes.items() if names]
    if not said:
        return None
    return (
        f"the classifier uses columns that class {cls.name!r} will not have: {'; '.join(said)}; "
        "train it on a table made with these settings, or choose its features (objects "
        "train --features)"
    )


def check_settings_files(
    settings: AnalysisSettings,
    *,
    source: str | os.PathLike[str] | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> None:
    """Check, without opening them, the model and classifier files the settings name: each is a
    built-in name or a file that exists (below ``allowed_roots`` where given, named without
    ``..``; relative paths taken as :func:`open_resources` takes them), a model file is a
    segmentation model and a classifier file an object classifier (from their headers:
    :func:`~scopeml.model.registry.format_of`). A server
    refuses bad ones at submit so; :func:`open_resources` checks them again where it opens them.
    Errors are those of :func:`open_resources`: the settings file, the line, the file by the
    name the settings give it.
    """
    from scopeml.io.confine import Confinement

    confinement = Confinement.of(allowed_roots)
    for index, cls in enumerate(settings.classes):
        seg = cls.segmenter
        if isinstance(seg, MODEL_SEGMENTERS):
            loc = ("classes", index, "segmenter", "model")
            _, opened = _settings_file(seg.model, "model", source, loc, base, confinement)
            _check_kind(opened, "model", seg.model, source, loc, base, confinement)
        if cls.classifier is not None:
            loc = ("classes", index, "classifier")
            _, opened = _settings_file(cls.classifier, "classifier", source, loc, base, confinement)
            _check_kind(opened, "classifier", cls.classifier, source, loc, base, confinement)


def check_image_channels(
    settings: AnalysisSettings,
    image_path: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    name: str | None = None,
    classifiers: Mapping[str, Any] | None = None,
) -> None:
    """The image's channel names (from its metadata, no pixels read) include every input channel
    (an error names the image by ``name`` where given, else by its path), it has the pixel
    size the ``classifiers`` (opened, by class) need, and it has the
    settings' ``scene``: a batch whose first image lacks its number stops before any work, as
    for a channel. A scene name this image lacks is its own failure (``InvalidImageError``),
    as an unreadable image's: the files of one batch may name their scenes differently."""
    from scopeml.io import open_image
    from scopeml.io.registry import scene_numbered

    options = {"allowed_roots": allowed_roots, "axes": settings.axes_of(image_path)}
    try:
        scene = scene_numbered(image_path, settings.scene, **options)  # a name: this file's
        image = open_image(image_path, scene=scene, **options)
    except InvalidImageError as err:
        by_number = isinstance(settings.scene, int)  # a name's failure is the image's own
        if by_number and err.problem.startswith(f"scene {settings.scene} does"):
            raise InvalidSettingsError(
                f"{err.problem}: analyse a scene it has (scene:, --scene)", path=name or image_path
            ) from None
        if settings.scene is not None or "scenes of different sizes" not in err.problem:
            raise
        image = open_image(image_path, scene=0, **options)  # each scene is analysed on its own
    with image:
        check_channel_names(settings, image.channel_names, name or str(image_path), source)
        warn_unreachable_levels(settings, image.dtype, name or str(image_path))
        check_classifier_sizes(
            settings, image.pixel_sizes, name or str(image_path), source, classifiers or {}
        )
        check_rule_dims(settings, image.sizes["Z"], name or str(image_path), source)


def check_rule_dims(
    settings: AnalysisSettings, planes: int, image: str, source: str | os.PathLike[str] | None
) -> None:
    """A rule on a column of 2-D tables only (``eccentricity``) where the first image is a Z
    stack, or of 3-D tables only (``volume_um3``) where it is a plane, stops the batch before
    any image: every image of it failed, one by one, after its segmentation."""
    from scopeml.objects.classifier import _dims

    dims = 3 if planes > 1 else 2
    for index, cls in enumerate(settings.classes):
        for rule, bounds in cls.rules.items():
            other = [c for c in bounds if _dims([c]) not in (None, dims)]
            if other:
                raise settings_error(
                    source, ("classes", index, "rules", rule, other[0]),
                    f"rule {rule!r}: {image} is {dims}-D (Z={planes}), and {other[0]} is "
                    f"measured in {5 - dims}-D images only",
                )  # fmt: skip


def check_classifier_sizes(
    settings: AnalysisSettings,
    pixel_sizes: Mapping[str, float] | None,
    image: str,
    source: str | os.PathLike[str] | None,
    classifiers: Mapping[str, Any],
) -> None:
    """A classifier trained on sizes in µm, or rules on them, need a pixel size (the file's,
    or the settings' ``pixel_size``): without one every image failed after its segmentation,
    one by one."""
    from scopeml.analysis.rules import physical_columns

    if settings.pixel_size is not None or {"Y", "X"} <= set(pixel_sizes or {}):
        return
    for index, cls in enumerate(settings.classes):
        physical = physical_features(getattr(classifiers.get(cls.name), "features", ()))
        if physical:
            raise settings_error(
                source, ("classes", index, "classifier"),
                f"{cls.classifier} was trained on sizes in micrometres ({summarize(physical)}) "
                f"and {image} records no pixel size: give it (pixel_size:, --pixel-size)",
            )  # fmt: skip
        if physical := physical_columns(cls.rules):
            raise settings_error(
                source, ("classes", index, "rules"),
                f"the {cls.name} rules use sizes in micrometres ({summarize(physical)}) "
                f"and {image} records no pixel size: give it (pixel_size:, --pixel-size)",
            )  # fmt: skip


def warn_unreachable_levels(settings: AnalysisSettings, dtype: Any, image: str) -> None:
    """Warn of a ``fixed`` threshold no pixel of an integer channel can pass (300 on 8 bits:
    every image then counts 0 objects, which looks like a result), or every pixel passes (-5
    on unsigned pixels: the whole image one object, which looks like one too)."""
    import warnings

    import numpy as np

    from scopeml.errors import find_stack_level

    if not np.issubdtype(np.dtype(dtype), np.integer):
        return
    info = np.iinfo(np.dtype(dtype))
    for cls in settings.classes:
        seg = threshold_of(cls.segmenter)  # a grow's within too
        if seg is None or seg.method != "fixed" or seg.value is None:
            continue
        side = "below" if seg.dark else "above"
        if (seg.value <= info.min) if seg.dark else (seg.value >= info.max):
            said = f"no pixel of a {np.dtype(dtype)} channel ({info.min}–{info.max}) is {side}"
            found = "it finds no objects"
        elif (seg.value > info.max) if seg.dark else (seg.value < info.min):
            said = f"every pixel of a {np.dtype(dtype)} channel ({info.min}–{info.max}) is {side}"
            found = "the whole image" if cls.parent is None else "each parent object whole"
            found = f"it finds {found} as one object"
        else:
            continue
        if seg is not cls.segmenter:  # a grow's within: the cells, not the objects
            found = "no cell grows beyond its seed" if "no objects" in found else (
                "cells grow over the whole image")  # fmt: skip
        warnings.warn(f"{image}: class {cls.name!r}: {said} its fixed threshold {seg.value:g}: "
                      f"{found}", UserWarning, stacklevel=find_stack_level())  # fmt: skip


def check_channel_names(
    settings: AnalysisSettings,
    names: Sequence[str],
    image: str,
    source: str | os.PathLike[str] | None = None,
) -> None:
    """Every input channel of the settings is among ``names``, those of ``image``, by name or
    alias (or is read by position: :meth:`~AnalysisSettings.channels_of`); else the settings
    error names the first missing one, its line, and the channels the image has."""
    problem = settings.channel_problem(names, image)  # a file naming none: read in order
    if problem is not None:
        missing = settings.missing_channel(names)
        raise settings_error(source, ("channels", settings.channels.index(missing)), problem)


def _settings_file(
    name: str,
    kind: str,
    source: str | os.PathLike[str] | None,
    loc: Sequence[Any],
    base: str | os.PathLike[str] | None,
    confinement: Any,
) -> tuple[Path, Path]:
    """The file a settings entry (``kind``: ``model`` or ``classifier``) names, and the path to
    open it by: its real path where ``confinement`` holds it (so a link swapped in later is not
    followed out), else the path itself. A built-in model name needs neither."""
    from scopeml.model.registry import BUILTIN_MODELS, resolve_model

    if (unusable := unusable_name(name)) is not None:  # opening it raised (a server's 500)
        raise settings_error(source, loc, unusable)
    file = _relative(name, source, base)
    other = _two_files(name, file) if base is None and source is not None else None
    if other is not None:
        raise settings_error(
            source, loc, f"{name} names two files: {file} beside the settings and "
            f"{other.resolve()} in the working folder; give the path of the one meant",
        )  # fmt: skip
    if confinement is None and kind != "model":  # as a local run always found them
        return file, file
    if confinement is None:
        try:
            path = resolve_model(file if file.exists() else name)
        except (ScopeMLError, OSError) as err:
            raise settings_error(source, loc, _reason(err)) from err
        return path, path
    shown = _shown(name, base, confinement)
    problem = not_from_root(name)  # one answer, whatever lies there: no probing the root
    if problem is not None:  # an absolute path by its name only: no server folder quoted
        said = PureWindowsPath(name).name if problem == ABSOLUTE else shown
        raise settings_error(source, loc, f"{said}: {problem}")
    if kind == "model" and name in BUILTIN_MODELS and not file.exists():
        path = BUILTIN_MODELS[name].path
        return path, path
    if not confinement.allows(os.path.realpath(file)):
        raise settings_error(source, loc, f"{shown} is outside the allowed root")
    if not file.exists():
        problem = "no such file"
        if kind == "model":  # with a hint for a misspelt built-in name
            problem = "no such model file or built-in model"
            try:
                if not Path(name).exists():  # not the server's working folder's file
                    resolve_model(name)
            except ScopeMLError as err:
                problem = err.problem
        raise settings_error(source, loc, f"{shown}: {problem}")
    return file, Path(os.path.realpath(file))


def _check_kind(
    opened: Path,
    kind: str,
    name: str,
    source: str | os.PathLike[str] | None,
    loc: Sequence[Any],
    base: str | os.PathLike[str] | None,
    confinement: Any,
    *,
    known: bool = True,
) -> None:
    """Refuse a ``model`` entry that is not a segmentation model file (an object classifier,
    not a model at all) and a ``classifier`` entry that is not an object classifier, from the
    file's header (:func:`~scopeml.model.registry.format_of`; nothing opened); a classifier
    of no known kind too, unless ``known`` is false (the caller's loader then says why)."""
    from scopeml.model.registry import KIND_WORDS, format_of

    try:
        found = format_of(opened)
    except (ScopeMLError, OSError) as err:
        if kind == "model":
            raise settings_error(source, loc, _reason(err, name, base, confinement)) from err
        found = None
    shown = name if confinement is None else _shown(name, base, confinement)
    if kind == "model" and found == "object-classifier":
        problem = "an object classifier, not a segmentation model (it goes under classifier:)"
    elif kind == "classifier" and found in KIND_WORDS and found != "object-classifier":
        problem = f"{KIND_WORDS[found]}, not an object classifier (it goes under segmenter.model:)"
    elif kind == "classifier" and found is None and known:
        problem = "not an object classifier (scopeml objects train writes one)"
    else:
        return
    raise settings_error(source, loc, f"{shown}: {problem}")


def _relative(
    name: str, source: str | os.PathLike[str] | None, base: str | os.PathLike[str] | None = None
) -> Path:
    """A file named in the settings: absolute, or relative to ``base`` where given (no ``~``:
    a server's client does not name the server's home), else relative to the settings file's
    folder, so a settings file and its models travel together (where no such file is there,
    from the working folder, as earlier scopeml found it)."""
    if base is not None:
        path = Path(name)
        return path if path.is_absolute() else Path(base) / path
    path = Path(name).expanduser()
    if path.is_absolute() or source is None:
        return path
    beside = Path(source).parent / path
    return path if path.exists() and not beside.exists() else beside


def _two_files(name: str, file: Path) -> Path | None:
    """Another file ``name`` names from the working folder than ``file``, beside the settings
    (it was taken over the settings' own: a ``cls.zip`` of another project was used, silently)."""
    here = Path(name).expanduser()
    if here.is_absolute() or not here.exists() or not file.exists():
        return None
    return None if os.path.samefile(here, file) else here


def _shown(name: str, base: str | os.PathLike[str] | None, confinement: Any) -> str:
    """How an error names a file the settings name under confinement: an absolute path below
    ``base`` or a root by its path there; anything else as the settings give it."""
    path = Path(name)
    if not path.is_absolute():
        return name
    roots = [] if base is None else [os.fspath(base), os.path.realpath(base)]
    for root in sorted({*roots, *confinement.roots}, key=len, reverse=True):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return name


def _reason(
    err: BaseException,
    name: str | None = None,
    base: str | os.PathLike[str] | None = None,
    confinement: Any = None,
) -> str:
    """``err`` in one line; under ``confinement``, the file it names as below its root (the
    settings entry ``name`` where it is that file), never the folders above it."""
    if confinement is None or name is None:
        if isinstance(err, ScopeMLError):
            return f"{err.path}: {err.problem}" if err.path else err.problem
        if isinstance(err, OSError) and err.filename is not None:
            return f"{err.filename}: {err.strerror or err}"
        return str(err)
    if isinstance(err, ScopeMLError):
        path, problem = err.path, err.problem
    elif isinstance(err, OSError):
        path, problem = err.filename, err.strerror or str(err)
    else:
        path, problem = None, str(err)
    file = _relative(name, None, base)
    own = {os.fspath(file), os.path.realpath(file)}
    if path is not None and (os.fspath(path) in own or os.path.realpath(path) in own):
        shown = _shown(name, base, confinement)
    elif path is not None:
        shown = _shown(os.path.realpath(path), base, confinement)
        if Path(shown).is_absolute():
            shown = Path(shown).name
    else:
        shown = None
    for long in sorted(own, key=len, reverse=True):  # a problem that quotes the file's path
        problem = problem.replace(long, _shown(name, base, confinement))
    if isinstance(err, OutsideRootError):  # a file the model names: not where it points
        problem = "refers to a file outside the allowed root"
    return f"{shown}: {problem}" if shown else problem
