"""Checks that need more than the schema, done before any pixel is read.

Model files must exist and open, their classes must include the one to extract, and they must
take as many channels as the settings give them; classifier files must load; the first image's
channel names (metadata only) must include every input channel. Each failure is an
:class:`~scopeml.analysis.settings.InvalidSettingsError` naming the settings file and line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scopeml.analysis.settings import (
    AnalysisSettings,
    InstancesSegmenter,
    InvalidSettingsError,
    ThresholdSegmenter,
    _dotted,
    _locate,
)
from scopeml.errors import ScopeMLError

__all__ = ["Resources", "check_image_channels", "open_resources"]


@dataclass
class Resources:
    """What an analysis opens once and keeps: models and object classifiers, by class name."""

    models: dict[str, Any] = field(default_factory=dict)
    model_paths: dict[str, Path] = field(default_factory=dict)
    class_values: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    classifiers: dict[str, Any] = field(default_factory=dict)


def settings_error(
    source: str | os.PathLike[str] | None, loc: Sequence[Any], message: str
) -> InvalidSettingsError:
    """An error naming the settings file and the line of ``loc`` in it (when it is a file)."""
    if source is None:
        return InvalidSettingsError(f"{_dotted(loc)}: {message}", path="settings")
    try:
        root = yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
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
) -> Resources:
    """Open every model and classifier the settings name, checking them against the settings.

    ``source`` is the settings file, for line numbers in errors. With ``allowed_roots`` (a
    server), a model or classifier file must lie below one of them; built-in names always work.
    """
    from scopeml.io.confine import Confinement
    from scopeml.model.registry import BUILTIN_MODELS

    confinement = Confinement.of(allowed_roots)

    from scopeml.api import label_value
    from scopeml.model.registry import open_model, resolve_model
    from scopeml.objects.classifier import load_object_classifier

    found = Resources()
    for index, cls in enumerate(settings.classes):
        seg = cls.segmenter
        where = ("classes", index, "segmenter")
        if not isinstance(seg, ThresholdSegmenter):
            try:
                named = _relative(seg.model, source)
                path = resolve_model(named if named.exists() else seg.model)
                if confinement is not None and seg.model not in BUILTIN_MODELS:
                    confinement.check(path)
            except (ScopeMLError, OSError) as err:
                raise settings_error(source, (*where, "model"), _reason(err)) from err
            try:
                model = open_model(path, workers=model_threads, allowed_roots=allowed_roots)
            except (ScopeMLError, OSError) as err:
                raise settings_error(source, (*where, "model"), _reason(err)) from err
            spec = model.spec
            if spec.in_channels != len(seg.channels):
                raise settings_error(
                    source,
                    (*where, "channels"),
                    f"model {seg.model!r} expects {spec.in_channels} channel(s); "
                    f"the settings give {len(seg.channels)} ({', '.join(seg.channels)})",
                )
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
            if isinstance(seg, InstancesSegmenter):  # as segment resolves them
                try:
                    seg.instance_options().resolve(spec.classes)
                except ScopeMLError as err:
                    raise settings_error(source, (*where, "class"), _reason(err)) from err
            found.models[cls.name] = model
            found.model_paths[cls.name] = path
            found.class_values[cls.name] = (int(values[0]), values[1])  # type: ignore[arg-type]
        if cls.classifier is not None:
            try:
                file = _relative(cls.classifier, source)
                if confinement is not None:
                    confinement.check(file)
                found.classifiers[cls.name] = load_object_classifier(file)
            except (ScopeMLError, OSError) as err:
                raise settings_error(
                    source, ("classes", index, "classifier"), _reason(err)
                ) from err
    return found


def check_image_channels(
    settings: AnalysisSettings,
    image_path: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    name: str | None = None,
) -> None:
    """The image's channel names (from its metadata, no pixels read) include every input channel
    (an error names the image by ``name`` where given, else by its path)."""
    from scopeml.io import open_image

    axes = settings.axes_of(image_path)
    with open_image(image_path, allowed_roots=allowed_roots, axes=axes) as image:
        names = image.channel_names
    missing = [c for c in settings.channels if c not in names]
    if missing:
        index = settings.channels.index(missing[0])
        raise settings_error(
            source,
            ("channels", index),
            f"channel {missing[0]!r} is not in {name or image_path} (it has {', '.join(names)})",
        )


def _relative(name: str, source: str | os.PathLike[str] | None) -> Path:
    """A file named in the settings: absolute, or relative to the settings file's folder."""
    path = Path(name).expanduser()
    if path.is_absolute() or source is None or path.exists():
        return path
    return Path(source).parent / path


def _reason(err: BaseException) -> str:
    if isinstance(err, ScopeMLError):
        return f"{err.path}: {err.problem}" if err.path else err.problem
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return str(err)
