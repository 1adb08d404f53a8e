"""Where a request's images lie and what a client may read of it: paths resolved below the
allowed root, the names uploads keep, and messages without the server's own folders."""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from pathlib import Path

from scopeml.errors import InvalidRequestError, OutsideRootError, ScopeMLError
from scopeml.io.bioio import PLUGINS, SINGLE_FILE_PLUGINS
from scopeml.io.confine import not_from_root
from scopeml.io.registry import IMAGE_SUFFIXES as READ_SUFFIXES
from scopeml.server.config import ServerConfig
from scopeml.server.models import server_problem

#: What a job may name: every built-in reader's suffix, and those of the bioio plugins that
#: read only the one file they are given (the others could read past the allowed root).
IMAGE_SUFFIXES = READ_SUFFIXES + tuple(
    suffix for suffix, plugin in PLUGINS.items() if plugin in SINGLE_FILE_PLUGINS
)
UPLOAD_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if "zarr" not in s)


def resolve_image_path(user_path: str, allowed_root: Path | None) -> Path:
    """Resolve a request's image path and check it stays below ``allowed_root``.

    Relative paths are taken relative to the root; a path with a ``..`` component is refused
    with one message whatever lies there (so no answer tells where the root itself is), and
    symlinks are resolved before the check, so no link leads out.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.tif").write_bytes(b"")
    >>> resolve_image_path("a.tif", root) == (root / "a.tif").resolve()
    True
    >>> resolve_image_path("../etc/passwd", root)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: image path '../etc/passwd': '..' is not allowed; name \
the file from the allowed root
    """
    if allowed_root is None:
        raise InvalidRequestError(
            "this server reads no image files by path (it was started without --allowed-root): "
            "upload the image (POST /images, client.upload_image) and give its upload_id"
        )
    check_relative(user_path)  # also: empty, NUL, too long (one rule, io.confine)
    root = allowed_root.resolve()
    candidate, kind = resolve_below(root, user_path)
    if not candidate.is_relative_to(root):
        raise InvalidRequestError(f"image path {user_path!r} is outside the allowed root")
    if kind is None:
        raise InvalidRequestError(f"image path {user_path!r} does not exist below the root")
    named = candidate.name.lower().endswith(IMAGE_SUFFIXES)
    if kind == "folder" and not (named and candidate.name.lower().endswith(".zarr")):
        raise InvalidRequestError(  # a folder of images (dir.tif too): an analysis takes it
            f"image path {user_path!r} is a folder, not an image: a job runs on one image; "
            "an analysis (POST /analyses, client.submit_analysis) runs over a folder"
        )
    if not named:
        raise InvalidRequestError(
            f"image path {user_path!r} has an unknown suffix; known: {', '.join(IMAGE_SUFFIXES)}"
        )
    return candidate


def resolve_below(root: Path, user_path: str) -> tuple[Path, str | None]:
    """``root / user_path`` with its links followed, and what is there: ``"file"``,
    ``"folder"`` or ``None``. A loop of links, or a path longer than the file system takes
    (a 4,000-character request under a long root), is the request's problem, said in one
    line (it was an internal error, 500, with the server's traceback).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> (root / "a").symlink_to("b"); (root / "b").symlink_to("a")
    >>> resolve_below(root, "a/x.tif")
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: image path 'a/x.tif': a loop of symbolic links
    >>> resolve_below(root, "c.tif")[1] is None
    True
    """
    import errno

    try:
        candidate = (root / user_path).resolve()
        kind = "folder" if candidate.is_dir() else "file" if candidate.exists() else None
    except RuntimeError:  # Path.resolve before Python 3.13: a loop of links
        raise InvalidRequestError(f"image path {user_path!r}: a loop of symbolic links") from None
    except OSError as err:
        said = {errno.ELOOP: "a loop of symbolic links",
                errno.ENAMETOOLONG: "longer than this server's file system takes"}  # fmt: skip
        problem = said.get(err.errno, "cannot be read here")
        raise InvalidRequestError(f"image path {user_path!r}: {problem}") from None
    return candidate, kind


def check_relative(user_path: str) -> None:
    """Refuse a request's path with a ``..`` component, or an absolute one: one that led into
    the root was taken, any other refused, so a client could find where the root lies.

    >>> check_relative("/srv/images/a.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: image path '/srv/images/a.tif': an absolute path is not...
    """
    problem = not_from_root(user_path)  # a server on Windows reads \\ and C: as well
    if problem is not None:
        raise InvalidRequestError(f"image path {user_path!r}: {problem}")


def image_name(image: str | Path, config: ServerConfig) -> tuple[str, str | None]:
    """The name a client knows a server-side image by, and its upload's id: an upload's file
    name (as :func:`upload_name` kept it), or the path below the allowed root; never where
    the server keeps its files.

    Examples
    --------
    >>> config = ServerConfig(Path("/srv/data"), allowed_root=Path("/srv/images"))
    >>> image_name("/srv/images/plate1/a.tif", config)
    ('plate1/a.tif', None)
    >>> image_name("/srv/data/uploads/0123abcd/cells.ome.tif", config)
    ('cells.ome.tif', '0123abcd')
    """
    path = Path(image)
    if path.parent.parent == config.uploads_dir:
        return path.name, path.parent.name
    root = config.allowed_root
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix(), None
    return path.name, None  # an older server's upload, or a root that has moved


def image_names(images: list[str], config: ServerConfig) -> dict[str, str]:
    """Each image's :func:`image_name`, an upload's with its id where another image of the
    batch has that name (two uploads of ``a.tif``: rows a client can tell apart).

    Examples
    --------
    >>> config = ServerConfig(Path("/srv/data"), allowed_root=Path("/srv/images"))
    >>> up = "/srv/data/uploads"
    >>> list(image_names([f"{up}/01/a.tif", f"{up}/02/a.tif", f"{up}/03/b.tif"], config).values())
    ['a.tif (upload 01)', 'a.tif (upload 02)', 'b.tif']
    """
    named = {image: image_name(image, config) for image in images}
    counts = Counter(name for name, _ in named.values())
    return {
        image: f"{name} (upload {upload})" if upload and counts[name] > 1 else name
        for image, (name, upload) in named.items()
    }


def upload_name(filename: str) -> str:
    """The name an upload is kept under (and that analyses name its results by): the client's
    file name without folders, limited to letters, digits, ``-``, ``_`` and ``.`` (others
    become ``_``), at most 100 characters, ending in its image suffix.

    Examples
    --------
    >>> upload_name("../../etc/cell s#1.OME.TIF")
    'cell_s_1.ome.tif'
    >>> upload_name(".tif")
    'image.tif'
    """
    return kept_name(filename, upload_suffix(filename), "image")


def kept_name(filename: str, suffix: str, default: str) -> str:
    """A client's file name as the server keeps and shows it (an upload's, a model's): without
    folders, letters and digits of any script (in Unicode's composed form, NFC, as a Mac's
    decomposed names become too), ``-``, ``_`` and ``.`` only (others, spaces, accents left
    apart and marks become ``_``: no character any file system or shell treats specially), at
    most 100 characters and 200 bytes of UTF-8 before ``suffix`` (its suffix, as known),
    ``default`` where nothing is left.

    Examples
    --------
    >>> kept_name("../../my model?.czann", ".czann", "model")
    'my_model_.czann'
    >>> kept_name("模型 über.tif", ".tif", "image"), kept_name("u\u0308.tif", ".tif", "image")
    ('模型_über.tif', 'ü.tif')
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1][: -len(suffix)]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in base).strip(".")[:100]
    while len(base.encode()) > 200:  # file systems count bytes (255 at most)
        base = base[:-1]
    return (base.strip(".") or default) + suffix


def upload_suffix(filename: str) -> str:
    """The image suffix of an upload's file name, from the known ones (never the name itself).

    Examples
    --------
    >>> upload_suffix("cells.OME.TIFF")
    '.ome.tiff'
    """
    lower = filename.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise InvalidRequestError(
        f"upload {filename!r} has an unknown image suffix; known: {', '.join(UPLOAD_SUFFIXES)}"
    )


def public_error(err: ScopeMLError, name: str | None = None, image: Path | None = None) -> str:
    """An error's one-line message for a client: file names only, never where the server keeps
    its files (a read outside the allowed folders names the file it tried, not the folders; a
    file inside ``image``, such as a zarr chunk, by its path within the image; ``image`` itself,
    swapped for a link since it was checked, as pointing outside).

    Examples
    --------
    >>> from scopeml.errors import OutsideRootError
    >>> err = OutsideRootError("resolves to /x", path="/srv/root/a.ome.zarr/0/c/0/0")
    >>> public_error(err, "a.ome.zarr", Path("/srv/root/a.ome.zarr"))
    'a.ome.zarr: refers to 0/c/0/0, which lies outside the folders this image may read'
    >>> err = OutsideRootError("resolves to /x", path="/srv/root/plate/a.tif")
    >>> public_error(err, "plate/a.tif", Path("/srv/root/plate/a.tif"))
    "plate/a.tif: now lies outside the allowed root (a link out of it, or the server's root \
changed)"
    """
    where = name or (Path(err.path).name if err.path else "")
    prefix = f"{where}: " if where else ""
    if isinstance(err, OutsideRootError):
        if err.path and image is not None and Path(err.path) == image:
            return (f"{prefix}now lies outside the allowed root (a link out of it, or the "
                    "server's root changed)")  # fmt: skip
        tried = Path(err.path).name if err.path else "a file"
        if err.path and image is not None and Path(err.path).is_relative_to(image):
            tried = Path(err.path).relative_to(image).as_posix()
        return f"{prefix}refers to {tried}, which lies outside the folders this image may read"
    return prefix + server_problem(err)


def hide_server_paths(text: str, config: ServerConfig) -> str:
    """``text`` without where the server keeps files: a path below the allowed root as the path
    there, one below the data folder by its file name, also as a ``file://`` URL (zarr's
    messages name a store so): the last resort of every error a client reads; the messages
    themselves name files so already.

    Examples
    --------
    >>> config = ServerConfig(Path("/srv/data"), allowed_root=Path("/srv/images"))
    >>> hide_server_paths("/srv/images/p/a.tif: bad; /srv/data/jobs/1/../x.yaml: gone", config)
    'p/a.tif: bad; x.yaml: gone'
    >>> hide_server_paths("no group in StorePath(Store, 'file:///srv/images/a.zarr')", config)
    "no group in StorePath(Store, 'a.zarr')"
    """
    import re

    places: dict[str, bool] = {}  # folder → whether paths below it keep their path there
    for folder, keep in ((config.data_dir, False), (config.allowed_root, True)):
        if folder is not None:
            for form in (os.fspath(folder), os.path.realpath(folder)):
                if form.rstrip(os.sep):
                    places[form.rstrip(os.sep)] = keep
    for place in sorted(places, key=len, reverse=True):
        below = r"/" if places[place] else r"/(?:[^\s'\"]*/)?"
        text = re.sub(r"(?:file://)?" + re.escape(place) + below, "", text)
        shown = "the allowed root" if places[place] else "the server's folder"
        text = re.sub(re.escape(place) + r"(?![\w.-])", shown, text)
    return text
