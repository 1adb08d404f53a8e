"""Which files an analysis runs over, and the name each gets in its results.

Sources are files, folders and glob patterns. A folder gives its images and, unless
``recursive`` is off, those of its subfolders (as CellProfiler's Images module takes a dropped
folder, and as microscopes export a plate: a folder per well, position or condition). Found
files (in folders or by a pattern) are filtered:

- ``include`` patterns: when any are given, only files matching one;
- ``exclude`` patterns: files (and subfolders) matching one are left out;
- ``skip_labels``: files that are obviously label images are left out, with a warning that
  counts them: names ending ``_labels``, ``_label``, ``_mask``, ``_masks`` (BBBC, StarDist,
  cellpose ``_cp_masks``), ``_truth`` (the demo's true nuclei), and the label and output
  stores scopeml writes (an NGFF ``image-label``, or a ``segment`` output);
- never searched: hidden files and folders, image folders (``.ome.zarr``), and analysis
  results folders (a ``settings.yaml`` beside ``images/``; the run's own output above all).

A pattern without ``/`` matches a file's (or folder's) name, one with ``/`` its path below the
folder given; ``*`` and ``?`` as in the shell, case-insensitive. A file named as a source is
analysed as named, except when an ``exclude`` pattern matches it (the default label skip only
warns, since the shell may have named it: ``A9/*.tif``).

Each image is named by its path below the folder it was found in, without the image suffix,
folders joined by ``__`` (``A9/p10d.tif`` → ``A9__p10d``), so same-named files in different
subfolders stay apart and the subfolder (a well, a condition) stays in the tables; a named file
or a pattern's file by its path below the pattern's folders without a wildcard
(``plate/*/*.tif``: ``A01/p1.tif`` → ``A01__p1``). A name loses the trailing dots and spaces that
Windows drops from a folder's name (``a .tif`` → ``a``); names that still clash, where case is
ignored, get ``-2``, ``-3`` …; a name Windows keeps for a device (``CON``, ``nul.x``,
``CON .x``: no folder there can have it) begins ``_``.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scopeml.analysis.settings import file_name_key, is_device_name, name_regex, windows_name
from scopeml.errors import (
    InputNotFoundError,
    InvalidRequestError,
    count,
    find_stack_level,
    not_found,
)
from scopeml.io.bioio import PLUGINS, plugin_for, plugin_installed
from scopeml.io.registry import FIELD_SEPARATOR, IMAGE_SUFFIXES, ChannelFiles

__all__ = [
    "LABEL_NAME_ENDINGS",
    "NAME_SEPARATOR",
    "FoundImages",
    "collect_images",
    "find_images",
    "group_fields",
    "shown",
]

#: Name endings (before the image suffix) of the label images ``skip_labels`` leaves out.
LABEL_NAME_ENDINGS = ("_labels", "_label", "_mask", "_masks", "_truth")
#: Joins the folders of an image's path below the folder given into its name.
NAME_SEPARATOR = "__"
#: Why a file was left out (the keys of :attr:`FoundImages.skipped`).
LABELS, EXCLUDED, NOT_INCLUDED, RESULTS = "label images", "exclude", "include", "results folders"
#: Left out by ``channel_files``: a file no pattern names; the files of a field lacking a channel.
NO_CHANNEL, INCOMPLETE = "no channel pattern", "incomplete field"
NO_PLUGIN = "no plugin"


@dataclass
class FoundImages:
    """The images to analyse, their result names, and what was left out (by reason:
    ``label images``, ``exclude``, ``include``, ``results folders``)."""

    paths: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)
    #: Fields ``channel_files`` left out for a missing file: one of theirs, and what it lacks.
    lacking: list[tuple[Path, tuple[str, ...]]] = field(default_factory=list)

    def skip(self, reason: str, path: Path) -> None:
        self.skipped.setdefault(reason, []).append(path)


def shown(image: Path | ChannelFiles, public: Callable[[Path], str] | None = None) -> str:
    """An image's name in records and messages: its path, or its ``public`` name (a server's);
    a field's files joined by `` + ``."""
    if isinstance(image, ChannelFiles):
        return FIELD_SEPARATOR.join(shown(path, public) for path in image.paths)
    return str(image) if public is None else public(Path(image))


def collect_images(
    sources: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_labels: bool = True,
) -> list[Path]:
    """Image files from files, folders (and their subfolders) and glob patterns.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "well B2").mkdir()
    >>> for name in ("b.tif", "a.ome.tif", "notes.txt", "a_labels.tif", "well B2/a.tif"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> [p.relative_to(folder).as_posix() for p in collect_images([folder])]
    ['a.ome.tif', 'b.tif', 'well B2/a.tif']
    >>> [p.name for p in collect_images([folder], recursive=False, exclude=["b*"])]
    ['a.ome.tif']
    >>> [p.name for p in collect_images([folder / "*.tif"])]
    ['a.ome.tif', 'b.tif']
    """
    found = find_images(sources, recursive=recursive, include=include, exclude=exclude,
                        skip_labels=skip_labels, warn=False)  # fmt: skip
    return found.paths


def find_images(
    sources: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_labels: bool = True,
    ignore: Iterable[str | os.PathLike[str]] = (),
    warn: bool = True,
    channel_files: Mapping[str, str] | None = None,
) -> FoundImages:
    """The images ``sources`` give (see the module docstring), each with its result name.

    ``ignore``: folders never searched (the results folder being written). ``warn``: say how
    many label images were left out (a ``UserWarning``, ``warning: …`` on the command line).
    ``channel_files``: channel name → file-name pattern; the files found become fields of
    one file per channel (:func:`group_fields`).

    Raises
    ------
    InputNotFoundError
        A source that is neither a file, a folder nor a pattern matching anything (a
        ``FileNotFoundError`` too).
    InvalidRequestError
        A folder or pattern with no images to analyse (saying what was left out, and whether
        subfolders hold images where ``recursive`` is off).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for sub in ("A9", "f96"):
    ...     (folder / sub).mkdir()
    ...     for name in ("p1.tif", "p1_labels.tif"):
    ...         _ = (folder / sub / name).write_bytes(b"")
    >>> found = find_images([folder], warn=False)
    >>> found.names, {k: len(v) for k, v in found.skipped.items()}
    (['A9__p1', 'f96__p1'], {'label images': 2})
    """
    include = [_lower(p) for p in include]
    exclude = [_lower(p) for p in exclude]
    ignored = {_real(p) for p in ignore}
    skip_unmatched_labels = skip_labels  # with channel_files, after grouping: a pattern
    skip_labels = skip_labels and not channel_files  # may name label images
    found = FoundImages()
    seen: set[Path] = set()
    chosen: list[tuple[Any, str]] = []  # (file, its name), each file once
    named_labels: list[Path] = []
    taken: set[str] = set()
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):  # an array, say: results need names
            raise InvalidRequestError(
                f"images are files, folders or glob patterns, not {type(source).__name__}: "
                "each image's results are named after its file (save an array as a TIFF first)"
            )
        text = os.fspath(source)
        path = Path(text)
        before = {reason: len(paths) for reason, paths in found.skipped.items()}
        if path.is_dir() and not _is_image_name(path.name):
            items = _walk(path, recursive, include, exclude, skip_labels, ignored, found)
        elif path.exists():
            items = _named_file(path, exclude, found, named_labels)
        elif glob.has_magic(text):
            items = _matched(text, include, exclude, skip_labels, found)
        else:
            raise InputNotFoundError(not_found(text), path=text)
        if not items:
            below = 0
            if not recursive and path.is_dir():  # what recursive would have found
                below = len(
                    _walk(path, True, include, exclude, skip_labels, ignored, FoundImages())
                )
            raise InvalidRequestError(
                _nothing_here(found, before, below, include, exclude), path=text
            )
        for file, name in items:
            if (real := _real(file)) not in seen:  # a folder given twice, written two ways
                seen.add(real)
                chosen.append((file, name))
    if channel_files:
        chosen = group_fields(chosen, channel_files, found, skip_labels=skip_unmatched_labels)
        if not chosen:
            raise InvalidRequestError(
                f"no field has a file of each channel_files pattern ({_patterns(channel_files)}):"
                f" {_fields_left(found)}", path=sources[0] if len(sources) == 1 else None,
            )  # fmt: skip
    for image, name in chosen:
        found.paths.append(image)
        found.names.append(_unique(name, taken))
    for paths in found.skipped.values():
        paths.sort()
    if warn:
        _warn(found, named_labels)
    return found


def _matched(
    pattern: str, include: list[str], exclude: list[str], skip_labels: bool, found: FoundImages
) -> list[tuple[Path, str]]:
    """The images a glob pattern matches, each with its name: its path below the pattern's
    last folder without a wildcard (``plate/*/*.tif``: ``A01/p1.tif`` → ``A01__p1``, as a
    folder names what it finds, so two wells' ``p1`` stay apart)."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    items = []
    for match in sorted(glob.glob(pattern), key=natural_key):
        file = Path(match)
        if not _readable(file, found):
            continue
        reason = _reason(file, file.name, include, exclude, skip_labels)
        if reason:
            found.skip(reason, file)
        else:
            below = file.parts[fixed:-1]  # the folders the wildcards matched
            items.append((file, NAME_SEPARATOR.join((*below, _stem(file.name)))))
    return items


def group_fields(
    items: Sequence[tuple[Path, str]],
    channel_files: Mapping[str, str],
    found: FoundImages,
    skip_labels: bool = True,
) -> list[tuple[ChannelFiles, str]]:
    """The ``items`` (file, name) as fields of one file per channel: a file belongs to the
    channel whose ``channel_files`` pattern its name matches (case ignored), and the files of
    one folder whose names give that pattern's ``*`` and ``?`` the same text are one field,
    named by that text (below the folders its files' names hold). Files matching no pattern
    (with ``skip_labels``, those named as label images as such: a pattern may name them) and
    fields lacking a channel are left out (``found.skipped``).

    Examples
    --------
    >>> files = [(Path(f"A9/p1_{w}.tif"), f"A9__p1_{w}") for w in ("D", "F", "R")]
    >>> found = FoundImages()
    >>> [(str(field), name) for field, name in group_fields(
    ...     files, {"DNA": "*_D.tif", "GFP": "*_F.tif"}, found)]
    [('A9/p1_D.tif + A9/p1_F.tif', 'A9__p1')]
    >>> found.skipped
    {'no channel pattern': [PosixPath('A9/p1_R.tif')]}
    """
    patterns = {channel: name_regex(pattern) for channel, pattern in channel_files.items()}
    fields: dict[tuple[Path, tuple[str, ...]], dict[str, tuple[Path, str]]] = {}
    for file, name in items:
        matched = [(c, m) for c, rx in patterns.items() if (m := rx.fullmatch(file.name))]
        if len(matched) > 1:
            both = " and ".join(repr(channel) for channel, _ in matched)
            raise InvalidRequestError(
                f"its name matches the channel_files patterns of {both}: make each pattern "
                "match one channel's files", path=file,
            )  # fmt: skip
        if not matched:
            found.skip(LABELS if skip_labels and _looks_like_labels(file) else NO_CHANNEL, file)
            continue
        channel, match = matched[0]
        key = (file.parent, tuple(_folded(text) for text in match.groups()))
        field_files = fields.setdefault(key, {})
        if channel in field_files:
            raise InvalidRequestError(
                f"its name and {field_files[channel][0].name}'s give the {channel} pattern "
                f"{channel_files[channel]!r} the same text (case ignored): rename one",
                path=file,
            )
        field_files[channel] = (file, name)
    grouped = []
    for files in fields.values():
        if len(files) < len(patterns):
            for file, _name in files.values():
                found.skip(INCOMPLETE, file)
            first = next(iter(files.values()))[0]
            found.lacking.append((first, tuple(c for c in patterns if c not in files)))
            continue
        first = next(iter(patterns))
        file, name = files[first]
        folders = name[: len(name) - len(_stem(file.name))]  # below the folder given
        parts = patterns[first].fullmatch(file.name).groups()  # as its first file writes them
        part = _stem("_".join(text for text in parts if text)).strip(" ._-")
        grouped.append((
            ChannelFiles(tuple(files[c][0] for c in patterns), tuple(patterns)),
            folders + part if part else folders.removesuffix(NAME_SEPARATOR) or file.parent.name,
        ))  # fmt: skip
    return grouped


def _folded(text: str) -> str:
    """``text`` as names are compared where case is ignored: case folded, composed form."""
    return unicodedata.normalize("NFC", text).casefold()


def _patterns(channel_files: Mapping[str, str]) -> str:
    return ", ".join(f"{channel}: {pattern}" for channel, pattern in channel_files.items())


def _fields_left(found: FoundImages) -> str:
    """What ``channel_files`` left out: ``3 files match no pattern, such as x.tif; …``."""
    said = []
    if unnamed := found.skipped.get(NO_CHANNEL):
        said.append(f"{count(len(unnamed), 'file')} match{'es' if len(unnamed) == 1 else ''} "
                    f"no pattern, such as {unnamed[0].name}")  # fmt: skip
    if found.lacking:
        file, missing = found.lacking[0]
        said.append(f"{count(len(found.lacking), 'field')} lacking a channel's file, such as "
                    f"{file}'s (no {' or '.join(missing)} file; a field's files give each "
                    "pattern's * and ? the same text)")  # fmt: skip
    return "; ".join(said) or "no files"


def _named_file(
    path: Path, exclude: list[str], found: FoundImages, named_labels: list[Path]
) -> list[tuple[Path, str]]:
    """A file named as an image, with its name; ``[]`` where an exclude pattern takes it."""
    if path.suffix.lower() in (".yaml", ".yml"):  # analysed, it failed as an image
        raise InvalidRequestError(
            "is a settings file, not an image (analyze SETTINGS IMAGES…)", path=path
        )
    if _excluded(path.name, path.name, exclude):
        found.skip(EXCLUDED, path)
        return []
    if _looks_like_labels(path):
        named_labels.append(path)
    return [(path, _stem(path.name))]


def _walk(
    folder: Path,
    recursive: bool,
    include: list[str],
    exclude: list[str],
    skip_labels: bool,
    ignored: set[Path],
    found: FoundImages,
) -> list[tuple[Path, str]]:
    """A folder's images (and its subfolders', where ``recursive``), sorted by their path
    below it, each with its name."""
    items: list[tuple[tuple[str, ...], Path]] = []
    visited = {_real(folder)}  # symbolic links are followed, each folder searched once
    for top, dirs, files in os.walk(folder, followlinks=True):
        here = Path(top)
        parts = here.relative_to(folder).parts
        entries = [(name, True) for name in dirs] + [(name, False) for name in files]
        dirs.clear()
        for name, is_dir in entries:
            if name.startswith("."):
                continue
            path = here / name
            relative = "/".join((*parts, name))
            if is_dir and not _is_image_name(name):
                if not recursive:
                    continue
                real = _real(path)
                if real in ignored or real in visited:
                    continue
                if _excluded(name, relative, exclude):
                    found.skip(EXCLUDED, path)
                elif _is_results_folder(path):
                    found.skip(RESULTS, path)
                else:
                    visited.add(real)
                    dirs.append(name)
                continue
            if not _readable(path, found):
                continue
            reason = _reason(path, relative, include, exclude, skip_labels)
            if reason:
                found.skip(reason, path)
            else:
                items.append(((*parts, name), path))
    items.sort(key=lambda item: [natural_key(part) for part in item[0]])
    return [(path, NAME_SEPARATOR.join((*key[:-1], _stem(key[-1])))) for key, path in items]


def natural_key(text: str) -> list[int | str]:
    """Sort key of a name with its numbers as numbers: a dose or time series sorts as users
    number it (``p5d`` before ``p10d``), not as text.

    Examples
    --------
    >>> sorted(["p10d.tif", "p9d.tif", "p5d.tif", "A9.tif"], key=natural_key)
    ['A9.tif', 'p5d.tif', 'p9d.tif', 'p10d.tif']
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _reason(
    path: Path, relative: str, include: list[str], exclude: list[str], skip_labels: bool
) -> str | None:
    """Why a found image is left out, or ``None``."""
    if _excluded(path.name, relative, exclude):
        return EXCLUDED
    if include and not _excluded(path.name, relative, include):
        return NOT_INCLUDED
    if skip_labels and _looks_like_labels(path):
        return LABELS
    return None


def _excluded(name: str, relative: str, patterns: Sequence[str]) -> bool:
    """Whether a lower-cased pattern matches: by the name, or (with a ``/``) the path."""
    name, relative = name.lower(), relative.lower()
    return any(fnmatch.fnmatchcase(relative if "/" in p else name, p) for p in patterns)


def _lower(pattern: str) -> str:
    return str(pattern).replace("\\", "/").strip("/").lower()


def _real(path: str | os.PathLike[str]) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _readable(path: Path, found: FoundImages) -> bool:
    """Whether a file found is an image to analyse: a format scopeml reads, or one a bioio
    plugin reads where it is installed; one whose plugin is not is left out and counted (it
    was skipped without a word: ``.bmp`` and ``.gif`` files among TIFFs)."""
    if _is_image_name(path.name):
        return True
    plugin = plugin_for(path.name)
    if plugin is None or path.name.startswith("."):
        return False
    if not plugin_installed(plugin):
        found.skip(NO_PLUGIN, path)
    return plugin_installed(plugin)


def _stem(name: str) -> str:
    """The name without its image suffix (``a.ome.tif`` → ``a``; ``a.nd2`` → ``a``)."""
    lower = name.lower()
    for suffix in (*IMAGE_SUFFIXES, *sorted(PLUGINS, key=len, reverse=True)):  # longest first
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


#: Characters Windows, SMB shares and exFAT/FAT disks refuse in a name, and control characters
#: (a result folder named ``t=0:5?`` could not be copied there): each becomes ``_``.
_PORTABLE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``…, so that no two images' result folders are one folder where
    case is ignored (``A.tif`` and ``a.tif`` from two folders: ``A``, ``a-2``); each of
    ``<>:"\\|?*`` and control characters, which other file systems refuse, as ``_``
    (``t:1?`` → ``t_1_``); ``_name``
    where Windows keeps ``name`` for a device, a folder it cannot make (``CON.tif``,
    ``CON .tif``: ``_CON``); without the trailing dots and spaces Windows drops from a
    folder's name (``a .tif`` beside ``a.tif``: ``a-2``, not ``a `` that is ``a`` there).

    Examples
    --------
    >>> taken = set()
    >>> [_unique(n, taken) for n in ("A", "a", "CON", "nul.b", "_con", "console", "a ", "con.")]
    ['A', 'a-2', '_CON', '_nul.b', '_con-2', 'console', 'a-3', '_con-3']
    >>> [_unique(n, taken) for n in ("t:1?", "t*1|", 'x<"y">', "con:")]
    ['t_1_', 't_1_-2', 'x__y__', 'con_']
    """
    base = windows_name(_PORTABLE.sub("_", name)) or "image"
    if is_device_name(base):
        base = f"_{base}"
    name, n = base, 1
    while file_name_key(name) in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(file_name_key(name))
    return name


def _looks_like_labels(path: Path) -> bool:
    """A name ending ``_labels``/``_mask``…, or a store scopeml wrote (labels, outputs)."""
    if _stem(path.name).lower().endswith(LABEL_NAME_ENDINGS):
        return True
    return path.is_dir() and _is_own_label_store(path)


def _is_own_label_store(path: Path) -> bool:
    """An OME-Zarr marked as an NGFF ``image-label`` (as ``analyze``, ``post`` and
    ``objects label`` write them; with several scenes, in scene ``0``) or a ``segment``
    output store."""
    from scopeml.tiling.store import is_own_store

    if is_own_store(path):
        return True
    return any(image_label(group) is not None for group in (path, path / "0"))


def image_label(group: Path) -> dict[str, Any] | None:
    """The NGFF ``image-label`` metadata of an OME-Zarr image ``group`` (zarr v3 or v2, NGFF
    0.5 under ``ome`` or 0.4 at the top), read from its attributes file alone; ``None``: the
    group is not marked as a label image."""
    for name in ("zarr.json", ".zattrs"):
        attrs = _attributes(group / name)
        ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else {}
        label = attrs.get("image-label", ome.get("image-label"))
        if label is not None:
            return label if isinstance(label, dict) else {}
    return None


def _attributes(file: Path) -> dict:
    try:
        if not file.is_file() or file.stat().st_size > 1 << 22:
            return {}
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    attrs = data.get("attributes", data) if file.name == "zarr.json" else data
    return attrs if isinstance(attrs, dict) else {}


def _is_results_folder(path: Path) -> bool:
    """An analysis's results folder: its ``settings.yaml`` beside ``images/``."""
    return (path / "settings.yaml").is_file() and (path / "images").is_dir()


def _nothing_here(
    found: FoundImages, before: dict[str, int], below: int, include: list[str], exclude: list[str]
) -> str:
    """``no images here`` and why: what was left out, or the subfolders not searched."""
    left = {r: len(p) - before.get(r, 0) for r, p in found.skipped.items()}
    why = []
    if left.get(LABELS):
        why.append(f"{count(left[LABELS], 'label image')} left out: inputs: "
                   "{skip_labels: false} (--no-skip-labels, skip_labels=False) analyses "
                   "them")  # fmt: skip
    if left.get(EXCLUDED):
        why.append(f"{left[EXCLUDED]} left out by exclude {', '.join(exclude)}")
    if left.get(NOT_INCLUDED):
        why.append(f"{count(left[NOT_INCLUDED], 'image')} not matching include "
                   f"{', '.join(include)}")  # fmt: skip
    if left.get(RESULTS):
        why.append(f"{count(left[RESULTS], 'results folder')} not searched")
    if left.get(NO_PLUGIN):
        why.append(_no_plugin(found.skipped[NO_PLUGIN][-left[NO_PLUGIN] :]))
    if below:
        why.append(f"{count(below, 'image')} in its subfolders: inputs: {{recursive: true}} "
                   "(--recursive, recursive=True) takes them")  # fmt: skip
    return "no images here" + (f" ({'; '.join(why)})" if why else "")


def _no_plugin(paths: Sequence[Path]) -> str:
    """``2 files left out: no plugin reads .bmp, .gif here (pip install bioio-imageio)``."""
    suffixes = sorted({p.suffix.lower() for p in paths})
    plugins = sorted({plugin_for(p.name) for p in paths}, key=str)
    return (f"{count(len(paths), 'file')} left out: no plugin reads {', '.join(suffixes)} "
            f"here (pip install {' '.join(map(str, plugins))})")  # fmt: skip


def _warn(found: FoundImages, named_labels: list[Path]) -> None:
    """One line for label images left out by default, one for those named (analysed), and one
    for files of formats no installed plugin reads."""
    if unread := found.skipped.get(NO_PLUGIN):
        warnings.warn(f"{_no_plugin(unread)}, such as {unread[0].name}", UserWarning,
                      stacklevel=find_stack_level())  # fmt: skip
    if found.skipped.get(NO_CHANNEL) or found.skipped.get(INCOMPLETE):
        warnings.warn(f"channel_files left out {_fields_left(found)}", UserWarning,
                      stacklevel=find_stack_level())  # fmt: skip
    left = found.skipped.get(LABELS, [])
    endings = "/".join(LABEL_NAME_ENDINGS)
    if left:
        warnings.warn(
            f"left out {count(len(left), 'label image')} (names ending {endings}, or label "
            f"stores scopeml wrote), such as {left[0].name}; inputs: {{skip_labels: false}} in the "
            "settings (--no-skip-labels, skip_labels=False) analyses them",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    if named_labels:
        warnings.warn(
            f"{len(named_labels)} of the files named look like label images (names ending "
            f"{endings}), such as {named_labels[0].name}; they are analysed as named: give their "
            "folder, or exclude them (--exclude '*_labels.*', exclude=['*_labels.*']), to "
            "leave them out",
            UserWarning,
            stacklevel=find_stack_level(),
        )
