"""What a resumed analysis tells its user: the settings key that refuses it, and the finished
images of the results folder that its summary leaves out.

A resume summarises the images of its own inputs, as every run does: an image's name comes
from how its inputs were given (a folder names what it finds by the path below it), so the
folders an earlier run left may hold other images, or the same files under other names, and
summing them in could count a file twice. They are named in one warning instead, with the way
to include them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scopeml.analysis.image import RECORD
from scopeml.analysis.inputs import shown
from scopeml.analysis.settings import _dotted
from scopeml.errors import count
from scopeml.io.registry import FIELD_SEPARATOR

__all__ = [
    "finished_images",
    "first_difference",
    "left_out_images",
    "left_out_warning",
    "same_files",
    "settings_change",
]

#: A key or list item one side of a comparison lacks.
_MISSING = object()


def first_difference(
    old: Any, new: Any, loc: tuple[Any, ...] = ()
) -> tuple[tuple, Any, Any] | None:
    """The first leaf in which two loaded YAML documents differ, keys in the new one's order:
    ``(location, old value, new value)``, a side that lacks the key holding ``_MISSING``;
    ``None`` when they are equal.

    Examples
    --------
    >>> first_difference({"a": [{"b": 1}, 2]}, {"a": [{"b": 1}, 3]})
    (('a', 1), 2, 3)
    >>> first_difference({"a": 1}, {"a": 1}) is None
    True
    >>> first_difference({"r": {"x": 1, "y": 2}}, {"r": {"y": 2, "x": 1}})  # rules' order
    (('r', '(order)'), ['x', 'y'], ['y', 'x'])
    """
    if isinstance(old, dict) and isinstance(new, dict):
        pairs = [(k, old.get(k, _MISSING), new.get(k, _MISSING)) for k in [*new, *old]]
    elif isinstance(old, list) and isinstance(new, list):
        pairs = [(i, _item(old, i), _item(new, i)) for i in range(max(len(old), len(new)))]
    else:
        return None if old == new else (loc, old, new)
    for key, was, now in pairs:
        found = first_difference(was, now, (*loc, key))
        if found is not None:
            return found
    if isinstance(old, dict) and list(old) != list(new):  # the same keys in another order
        return (*loc, "(order)"), list(old), list(new)  # (rules: the first one met names)
    return None


def _item(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else _MISSING


def settings_change(previous: str, current: str) -> str | None:
    """The first setting that differs between two settings YAML texts, in one phrase with both
    values as YAML writes them: ``classes[0].post[0].min_size: 30 → 40``; ``None`` if none.

    Examples
    --------
    >>> settings_change("tile_size: 256\\n", "tile_size: 512\\n")
    'tile_size: 256 → 512'
    >>> settings_change("classes: [{name: a}]\\n", "classes: [{name: a, parent: b}]\\n")
    'classes[0].parent: (not set) → b'
    """
    found = first_difference(yaml.safe_load(previous), yaml.safe_load(current))
    if found is None:
        return None
    loc, was, now = found
    return f"{_dotted(loc) or '(the whole file)'}: {_shown(was)} → {_shown(now)}"


def _shown(value: Any, width: int = 60) -> str:
    """A setting's value on one line as YAML writes it (``30``, ``otsu``, ``null``,
    ``{kind: remove_small, min_size: 30}``), cut to ``width`` characters."""
    if value is _MISSING:
        return "(not set)"
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=10**6).strip().removesuffix("...").strip()  # fmt: skip
    return text if len(text) <= width else f"{text[: width - 1]}…"


def left_out_images(output: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The records of the finished images in ``output/images`` whose names are not among
    ``names``, by name, in name order."""
    kept = set(names)
    return {name: r for name, r in finished_images(output).items() if name not in kept}


def finished_images(output: Path) -> dict[str, dict[str, Any]]:
    """The records of the finished images in ``output/images`` (a folder with a
    ``record.json`` of status ``done``), by name, in name order."""
    found = {}
    for record_file in sorted((output / "images").glob(f"*/{RECORD}")):
        name = record_file.parent.name
        if name.startswith("."):
            continue
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("status") == "done":
            found[name] = record
    return found


def left_out_warning(
    output: Path,
    left: Mapping[str, Mapping[str, Any]],
    images: Mapping[str, Path],
    public: Callable[[Path], str] | None = None,
) -> str | None:
    """One line on the finished images a resume's summary leaves out (``left``, by name), or
    ``None``: those of other files (how to include them), and those of this run's ``images``
    (name → path) under an earlier name (found in a folder given otherwise). ``public``: names
    files and leaves the results folder unnamed, as a server's records do."""
    if not left:
        return None
    renamed = same_files(left, images, public)
    others = [name for name in left if name not in renamed]
    where = "the results folder's images/" if public else f"{output / 'images'}"
    said = []
    if others:
        first = others[0]
        said.append(
            f"the summary and tables hold this run's {count(len(images), 'image')}; "
            f"{count(len(others), 'finished image')} in {where} {_are(len(others))} left out "
            f"(such as {first}, from {left[first].get('image')}): to include them, resume "
            "with the earlier run's inputs given as it was given them (an image's name depends "
            "on the folder given), which are then not analysed again"
        )
    if renamed:
        old, new = next(iter(renamed.items()))
        said.append(
            f"{count(len(renamed), 'finished image')} in {where} {_are(len(renamed))} this "
            f"run's files under an earlier name (such as {old}, now {new}: an image found in a "
            "folder is named by its path below the folder given); the summary has them once, "
            "by this run's names"
        )
    return "; ".join(said)


def same_files(
    left: Mapping[str, Mapping[str, Any]],
    images: Mapping[str, Path],
    public: Callable[[Path], str] | None = None,
) -> dict[str, str]:
    """Of the finished images ``left`` (name → record), those whose file is one of ``images``
    (name → path) under another name, earlier name → that name: counting both would count
    the file twice, so a summary (and ``scopeml info``) counts it once."""
    by_file = {_file_key(shown(p, public), public): n for n, p in images.items()}
    keys = {name: _file_key(record.get("image"), public) for name, record in left.items()}
    return {name: by_file[key] for name, key in keys.items() if key in by_file}


def _file_key(image: Any, public: Callable[[Path], str] | None) -> str | None:
    """What identifies a recorded image's file: its public name, else its absolute path."""
    if not isinstance(image, str) or not image:
        return None
    if public is not None:
        return image
    parts = image.split(FIELD_SEPARATOR)  # a field's files
    return FIELD_SEPARATOR.join(os.path.abspath(part) for part in parts)


def _are(n: int) -> str:
    return "is" if n == 1 else "are"
