"""What an image file holds, and which reader opened it, asked in a child process.

Format libraries are native code: pylibCZIrw and some bioio plugins can crash the process (not
raise) on a corrupt file, or hang in it. :func:`probe_image` opens the file in a fresh Python
process with a time limit and a memory limit, so a server can look at an untrusted image before
it commits a job to it, and ``scopeml info`` cannot be taken down by the file it describes. A
crash, a timeout or running out of memory becomes an :class:`InvalidImageError` naming the file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from os import PathLike
from typing import Any

from scopeml import errors
from scopeml.errors import InvalidImageError

#: A child whose answer is longer than this is not describing an image (bounded memory here).
MAX_ANSWER_BYTES = 1 << 20


def describe_image(
    path: str | PathLike[str],
    *,
    scene: int | None = None,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    axes: str | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of an image file: reader, axes, shape, scenes, channels, sizes
    (``T`` the time step in seconds, then ``Z Y X`` in µm, in that order for every format),
    and ``warnings``: what the reader warned about (axes guessed, most chunks absent, …).

    Scenes of different sizes (which :func:`~scopeml.io.open_image` cannot stack) are each
    listed with their shape; the other fields then describe scene 0, or ``scene``.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> from pathlib import Path
    >>> file = Path(tempfile.mkdtemp()) / "a.tif"
    >>> tifffile.imwrite(file, np.zeros((3, 4), np.uint8))
    >>> info = describe_image(file)
    >>> info["reader"], info["shape"], info["scenes"]  # doctest: +NORMALIZE_WHITESPACE
    ('scopeml.io.tiff:read_tiff', [1, 1, 1, 1, 3, 4],
     [{'number': 0, 'name': '0', 'shape': [1, 1, 1, 3, 4]}])
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        description = _describe(path, scene, allowed_roots, axes)
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    description["warnings"] = list(dict.fromkeys(said))
    return description


def _describe(
    path: str | PathLike[str],
    scene: int | None,
    allowed_roots: Sequence[str | PathLike[str]] | None,
    axes: str | None = None,
) -> dict[str, Any]:
    from scopeml.io._units import ordered_sizes
    from scopeml.io.registry import iter_scenes, open_image, reader_for

    options: dict[str, Any] = {} if allowed_roots is None else {"allowed_roots": allowed_roots}
    if axes is not None:
        options["axes"] = axes
    reader = reader_for(path)
    try:
        image = open_image(path, scene=scene, **options)
        shapes = [image.shape[1:]] * image.shape[0] if scene is None else None
    except InvalidImageError as err:
        if scene is not None or "scenes of different sizes" not in str(err):
            raise
        shapes = [each.shape[1:] for each in iter_scenes(path, **options)]  # one open at once
        image = open_image(path, scene=0, **options)
    with image:
        names = getattr(image, "scene_names", None) or [str(i) for i in range(len(shapes or []))]
        if shapes is None:  # one scene asked for: only that one, by its number in the file
            name = names[scene] if names else str(scene)
            scenes = [{"number": scene, "name": name, "shape": image.shape[1:]}]
        else:
            pairs = enumerate(zip(names, shapes, strict=True))
            scenes = [{"number": i, "name": name, "shape": shape} for i, (name, shape) in pairs]
        return {
            "path": str(path),
            "reader": f"{reader.__module__}:{reader.__name__}",
            "plugin": getattr(image, "plugin", None),
            "axes": "STCZYX",
            "shape": list(image.shape),
            "dtype": str(image.dtype),
            "scenes": [{**s, "shape": list(s["shape"])} for s in scenes],
            "channel_names": list(image.channel_names),
            "pixel_sizes": ordered_sizes(image.pixel_sizes),  # T (s), Z, Y, X (µm)
            "region_reads": getattr(image, "region_reads", None),  # bioio: chunks or planes
            "levels": _level_count(path, reader, scene or 0, options),
            "unreadable": _unreadable(image),
        }


def _unreadable(image: Any) -> str | None:
    """Why a bioio plugin cannot read the pixels of the scene it describes (bioio-lif 2.0.1 on
    λ and XZ scans lists a shape it cannot read), found by reading its first pixel; ``None``
    where it can, or for scopeml's own readers, which read what they describe."""
    if getattr(image, "plugin", None) is None:
        return None
    try:
        image.read(S=0, T=0, C=0, Z=0, Y=(0, 1), X=(0, 1))
    except errors.ScopeMLError as err:
        return err.problem
    except MemoryError:
        raise  # the child's limit, said as such: not the file's fault
    except Exception as err:
        return f"cannot read its pixels: {err!r}"
    return None


def _level_count(
    path: str | PathLike[str], reader: Any, scene: int, options: dict[str, Any]
) -> int:
    """How many resolution levels a scene of an OME-TIFF or OME-Zarr has (a viewer needs more
    than one to show a huge image whole); 1 for other formats, not opened again for it."""
    from scopeml.io.registry import open_levels

    if reader.__module__ not in ("scopeml.io.tiff", "scopeml.io.omezarr"):
        return 1
    levels = open_levels(path, scene=scene, **options)
    for level in levels:
        level.close()
    return len(levels)


def probe_image(
    path: str | PathLike[str],
    *,
    scene: int | None = None,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    timeout: float = 60.0,
    memory_limit: int | None = 4 << 30,
    axes: str | None = None,
) -> dict[str, Any]:
    """:func:`describe_image` in a child process: a reader that crashes, hangs or exhausts
    memory on a corrupt file raises :class:`InvalidImageError` here instead.

    Parameters
    ----------
    timeout
        Seconds the child may take before it is killed.
    memory_limit
        Bytes of address space the child may map (``RLIMIT_AS``; POSIX only), or ``None``.
    axes
        The file's axes as the user names them (see :func:`~scopeml.io.open_image`).

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> from pathlib import Path
    >>> file = Path(tempfile.mkdtemp()) / "a.ome.tif"
    >>> tifffile.imwrite(file, np.zeros((2, 3, 5), np.uint8), metadata={"axes": "ZYX"})
    >>> probe_image(file)["shape"]
    [1, 1, 1, 2, 3, 5]
    """
    path = str(path)
    request = {
        "path": path,
        "scene": scene,
        "allowed_roots": None if allowed_roots is None else [str(r) for r in allowed_roots],
        "memory_limit": memory_limit,
        "axes": axes,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scopeml.io.probe"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise InvalidImageError(
            f"opening it took longer than {timeout:g} s; stopped", path=path
        ) from err
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise InvalidImageError(f"the reader crashed opening it ({name})", path=path)
    if len(done.stdout) > MAX_ANSWER_BYTES:
        raise InvalidImageError(f"its description exceeds {MAX_ANSWER_BYTES} bytes", path=path)
    try:
        answer = json.loads(done.stdout)
    except ValueError as err:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise InvalidImageError(
            f"the reader failed opening it (exit {done.returncode}): {last[0][:300]}", path=path
        ) from err
    if "error" in answer:
        failure = answer["error"]
        cls = getattr(errors, str(failure.get("type")), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.ScopeMLError)):
            cls = InvalidImageError
        raise cls(str(failure.get("problem")), path=failure.get("path"))
    return answer["image"]


def scene_number(
    path: str | PathLike[str], scene: int | str | None, *, axes: str | None = None
) -> int | None:
    """The number of the scene ``scene`` names: a number as it is, else the file's name for a
    scene (``A1-Pos3``, as ``scopeml info`` lists them; the metadata read in a child process,
    as :func:`probe_image` reads it).

    Raises
    ------
    InvalidImageError
        No scene of that name (the scenes are listed), or a file that names none.
    """
    from scopeml.io.registry import named_scene, scene_given

    text = scene_given(scene)
    if not isinstance(text, str):
        return text

    scenes = probe_image(path, axes=axes)["scenes"]
    return named_scene([str(s["name"]) for s in scenes], text, path)


def _main() -> None:
    """The child: a request as JSON on stdin, ``{"image": …}`` or ``{"error": …}`` on stdout.

    Whatever the readers print (Python or native code) goes to stderr, so stdout holds only
    the answer.
    """
    import os

    request = json.loads(sys.stdin.read())
    if request["memory_limit"] is not None and sys.platform != "win32":
        from scopeml.address_space import cap_address_space

        cap_address_space(int(request["memory_limit"]))
    sys.stdout.flush()
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        answer: dict[str, Any] = {
            "image": describe_image(
                request["path"],
                scene=request["scene"],
                allowed_roots=request["allowed_roots"],
                axes=request.get("axes"),
            )
        }
    except errors.ScopeMLError as err:
        answer = {"error": {"type": type(err).__name__, "problem": err.problem, "path": err.path}}
    except MemoryError:
        answer = {"error": {"problem": "reading it ran out of memory", "path": request["path"]}}
    except OSError as err:
        answer = {"error": {"problem": err.strerror or str(err), "path": request["path"]}}
    sys.stdout.flush()
    with os.fdopen(answer_fd, "w") as out:
        out.write(json.dumps(answer))


if __name__ == "__main__":
    _main()
