"""``scopeml info IMAGE``: which reader opens a file and what it holds.

The file is opened in a child process (:func:`scopeml.io.probe.probe_image`), so a reader that
crashes on a corrupt file ends in a one-line error, not in a dead terminal. A ``segment``
store (``OUT.ome.zarr`` with its outputs as sub-groups and a run record) is described from its
metadata instead: each output's axes, shape, dtype and classes, and the run (model, scale).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from scopeml.io.axes import AXES_HELP


def info(
    image: Path = typer.Argument(
        ..., help="Image file or folder (any format scopeml or bioio reads)."
    ),
    scene: str | None = typer.Option(
        None, help="Describe only this scene: its number, or its name as listed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    timeout: float = typer.Option(60.0, min=1.0, help="Seconds to wait for the reader."),
    axes: str | None = typer.Option(None, "--axes", help=AXES_HELP),
) -> None:
    """Describe an image, a segment store, an unfinished segment run or analysis results.

    For an image: the reader that opens IMAGE, its axes, shape, dtype, scenes, channels and
    pixel sizes. For a segment store: its outputs (shape, dtype, classes) and the run (model,
    scale). For an unfinished run (OUT.ome.zarr while only OUT.ome.zarr.partial exists, or
    the .partial itself): how many tiles are done, and how to finish it. For an analysis's
    results folder: its images analysed and failed, the objects of each class, its report.
    """
    from scopeml.io.probe import probe_image, scene_number
    from scopeml.tiling.store import describe_partial

    unfinished = describe_partial(image)  # OUT.ome.zarr(.partial) of a stopped run
    if unfinished is not None:
        text = (
            json.dumps(unfinished, indent=2) if as_json else "\n".join(format_partial(unfinished))
        )
        typer.echo(text)
        return
    store = describe_segment_store(image)
    results = describe_results(image) or describe_image_results(image)
    if store is None and results is None:
        refuse_not_an_image(image)
        number = scene_number(image, scene, axes=axes)  # a name → its number
        description = probe_image(image, scene=number, timeout=timeout, axes=axes)
        labels = describe_labels(image)
        if labels is not None:
            description["labels"] = labels
    if as_json:
        typer.echo(json.dumps(store or results or description, indent=2))
        _refuse_unreadable(image, None if store or results else description)
        return
    if store is not None or results is not None:
        lines = (
            format_store(store)
            if store is not None
            else (format_results(results) if "images" in results else format_image_results(results))
        )
    else:
        lines = format_description(description)
    for line in lines:
        typer.echo(line)
    for warning in () if store or results else description.get("warnings") or ():
        typer.echo(f"warning: {warning}", err=True)  # the reader's, said in the child
    _refuse_unreadable(image, None if store or results else description)


def _refuse_unreadable(image: Path, description: dict[str, Any] | None) -> None:
    """Described, but its pixels cannot be read (a bioio plugin's λ or XZ scan): exit 2 after
    the description, so no later command finds out first; other scenes may still read."""
    from scopeml.errors import InvalidImageError

    if not description or not description.get("unreadable"):
        return
    scenes = description["scenes"]  # the scene described first
    other = "; other scenes may read: --scene N" if len(scenes) > 1 else ""
    raise InvalidImageError(
        f"scene {scenes[0].get('number', 0)} ({scenes[0]['name']}): {description['plugin']}: "
        f"{description['unreadable']}{other}",
        path=image,
    )


def describe_results(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An analysis's results folder (``None`` for anything else) as its summary counts it, so
    that info agrees with it: the images of ``summary/counts.csv`` (every finished one while
    no report is written, or an image finished after it), those failed
    (``summary/failures.csv``), the objects of each class over them, over how many time
    points, and the finished images the summary leaves out (a resume given other inputs:
    :mod:`scopeml.analysis.resume`), of which its own files under an earlier name are not
    counted twice."""
    from scopeml.analysis.resume import left_out_images, same_files
    from scopeml.analysis.runner import is_results_folder

    folder = Path(path)
    if not folder.is_dir() or not is_results_folder(folder):
        return None
    finished = left_out_images(folder, [])  # every finished image's record, by name
    summary = _current(folder / "summary" / "counts.csv", folder)
    listed = finished if summary is None else [row.get("image") for row in summary]
    names = [name for name in dict.fromkeys(listed) if name in finished]
    objects: dict[str, int] = {}
    for name in names:
        for kind, count in (finished[name].get("counts") or {}).items():
            objects[kind] = objects.get(kind, 0) + int(count)
    failures = _csv_rows(folder / "summary" / "failures.csv")
    if summary is None and failures:  # an older run's: those finished since did not fail
        failures = [row for row in failures if row.get("image") not in finished]
    left = {name: record for name, record in finished.items() if name not in names}
    files = {
        n: Path(finished[n]["image"]) for n in names if isinstance(finished[n].get("image"), str)
    }
    index = folder / "index.html"
    left_out = Counter(
        row.get("reason") for row in _csv_rows(folder / "summary" / "left_out.csv") or ()
    )
    described = {"path": str(folder), "images": len(names), "failed": len(failures or ()),
                 "objects": objects, **_over_time(folder, names, finished),
                 "object_classes": _object_classes(summary or [], list(objects)),
                 **({"left_out": dict(left_out)} if left_out else {})}  # fmt: skip
    if left:
        described["not_in_summary"] = {"images": list(left),
                                       "same_files": same_files(left, files)}  # fmt: skip
    return {**described, "settings": str(folder / "settings.yaml"),
            "report": str(index) if index.is_file() else None}  # fmt: skip


def _object_classes(rows: list[dict[str, str]], kinds: list[str]) -> dict[str, dict[str, int]]:
    """Each class's objects by the class its rules or object classifier gave them, summed
    over the summary's images (``counts.csv``'s ``CLASS_class_NAME``, ``CLASS_unclassified``).

    >>> _object_classes([{"nucleus_class_big": "2", "nucleus_unclassified": "1"},
    ...                  {"nucleus_class_big": "3", "nucleus_unclassified": "0"}], ["nucleus"])
    {'nucleus': {'big': 5, 'unclassified': 1}}
    >>> _object_classes([{"cell_class_big": "2", "cell_unclassified": "0"}], ["cell", "spot"])
    {'cell': {'big': 2}}
    """
    found: dict[str, dict[str, int]] = {}
    for kind in kinds:
        prefix, left = f"{kind}_class_", f"{kind}_unclassified"
        for row in rows:
            for column, value in row.items():
                if column.startswith(prefix) or column == left:
                    named = column.removeprefix(prefix) if column != left else "unclassified"
                    totals = found.setdefault(kind, {})
                    totals[named] = totals.get(named, 0) + int(float(value or 0))
        if not found.get(kind, {}).get("unclassified", 1):  # every object met a rule
            del found[kind]["unclassified"]
    return found


def describe_image_results(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """One image's folder of an analysis's results (``RESULTS/images/NAME``), as its
    ``record.json`` has it; ``None`` for anything else."""
    from scopeml.analysis.runner import is_results_folder

    folder = Path(path).resolve()  # "." inside it names its results folder too
    record_file = folder / "record.json"
    if not record_file.is_file() or not is_results_folder(folder.parent.parent):
        return None
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    names = sorted(p.name for p in folder.iterdir())
    return {"path": str(path), "results": str(folder.parent.parent),
            "image": record.get("image"), "seconds": record.get("seconds"),
            "objects": record.get("counts") or {}, "warnings": record.get("warnings") or [],
            "label_stores": [n for n in names if n.endswith(".ome.zarr")],
            "tables": [n for n in names if n.endswith(".csv")],
            "overviews": [n for n in names if n.endswith(".png")]}  # fmt: skip


def format_image_results(results: dict[str, Any]) -> list[str]:
    """:func:`describe_image_results` as ``scopeml info`` prints it.

    >>> print("\\n".join(format_image_results({"path": "res/images/a", "results": "res",
    ...     "image": "a.czi", "seconds": 2.5, "objects": {"nucleus": 30, "cell": 30},
    ...     "warnings": [], "label_stores": ["cell.ome.zarr", "nucleus.ome.zarr"],
    ...     "tables": ["cell.csv", "nucleus.csv"], "overviews": ["overview.png"]})))
    res/images/a
      one image of the analysis results res: a.czi, analysed in 2.5 s
      objects: nucleus 30, cell 30
      label stores: cell.ome.zarr, nucleus.ome.zarr (scopeml info on one describes it)
      tables: cell.csv, nucleus.csv
      overviews: overview.png
    """
    objects = ", ".join(f"{name} {count}" for name, count in results["objects"].items())
    seconds = f", analysed in {results['seconds']:g} s" if results.get("seconds") else ""
    lines = [
        results["path"],
        f"  one image of the analysis results {results['results']}: {results['image']}{seconds}",
        f"  objects: {objects or 'none'}",
        *(f"  warning: {warning}" for warning in results["warnings"]),
    ]
    if results["label_stores"]:
        stores = ", ".join(results["label_stores"])
        lines.append(f"  label stores: {stores} (scopeml info on one describes it)")
    for key in ("tables", "overviews"):
        if results[key]:
            lines.append(f"  {key}: {', '.join(results[key])}")
    return lines


def _current(path: Path, folder: Path) -> list[dict[str, str]] | None:
    """The rows of the summary table ``path`` where it is newer than every finished image's
    record; ``None`` where an image finished after it (a resume stopped before it wrote its
    summary: the earlier run's summary would leave that image out) or it is not written."""
    records = [p.stat().st_mtime for p in (folder / "images").glob("*/record.json")]
    try:
        written = path.stat().st_mtime
    except OSError:
        return None
    return None if records and max(records) > written else _csv_rows(path)


def _csv_rows(path: Path) -> list[dict[str, str]] | None:
    """The rows of a summary table, ``None`` where it is not written (or unreadable)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _over_time(folder: Path, names: list[str], records: dict[str, Any]) -> dict[str, Any]:
    """Where one of the images ``names`` is a time series (its counts are sums over time
    points): their time points in all, and the fewest and most objects of each class in one
    (over its scenes; from ``summary/counts_per_time_point.csv``, where written); else ``{}``."""
    times = {n: max(int((records[n].get("sizes") or {}).get("T", 1)), 1) for n in names}
    if max(times.values(), default=1) <= 1:
        return {}
    kinds = list(dict.fromkeys(k for n in names for k in records[n].get("counts") or {}))
    planes: dict[tuple[str, str], dict[str, int]] = {}
    for row in _csv_rows(folder / "summary" / "counts_per_time_point.csv") or ():
        if row.get("image") in times:
            plane = planes.setdefault((row["image"], row.get("t", "")), dict.fromkeys(kinds, 0))
            for kind in kinds:
                plane[kind] += int(float(row.get(kind) or 0))
    spread = {k: [min(p[k] for p in planes.values()), max(p[k] for p in planes.values())]
              for k in kinds} if planes else {}  # fmt: skip
    return {"time_points": sum(times.values()), "objects_per_time_point": spread}


def format_results(results: dict[str, Any]) -> list[str]:
    """:func:`describe_results` as ``scopeml info`` prints it.

    >>> print("\\n".join(format_results({"path": "res", "images": 2, "failed": 0,
    ...     "objects": {"nucleus": 7816}, "time_points": 40,
    ...     "objects_per_time_point": {"nucleus": [156, 225]},
    ...     "settings": "res/settings.yaml", "report": "res/index.html"})))
    res
      analysis results: 2 image(s) analysed, 0 failed
      objects: nucleus 7816 over 40 time points of 2 images (156–225 per time point)
      settings: res/settings.yaml
      report: res/index.html
    """
    times, spread = results.get("time_points"), results.get("objects_per_time_point") or {}
    over = f" over {times} time points" if times else ""
    over += f" of {results['images']} images" if times and results["images"] > 1 else ""
    kinds = results.get("object_classes") or {}
    objects = ", ".join(
        f"{name} {count}{over}" + (f" ({spread[name][0]}–{spread[name][1]} per time point)"
                                   if name in spread else "")
        + (" (" + ", ".join(f"{k} {n}" for k, n in kinds[name].items()) + ")"
           if name in kinds else "")
        for name, count in results["objects"].items()
    )  # fmt: skip
    lines = [
        results["path"],
        f"  analysis results: {results['images']} image(s) analysed, {results['failed']} failed",
        f"  objects: {objects or 'none'}",
    ]
    if results.get("left_out"):  # by the inputs: label images, incomplete fields …
        said = ", ".join(f"{n} ({reason})" for reason, n in results["left_out"].items())
        lines.append(f"  files left out: {said} (summary/left_out.csv)")
    if results.get("not_in_summary"):
        lines.append(f"  not in the summary: {_left_out_text(results['not_in_summary'])}")
    return [
        *lines,
        f"  settings: {results['settings']}",
        f"  report: {results['report'] or 'not written (an unfinished run: --resume)'}",
    ]


def _left_out_text(left: dict[str, Any]) -> str:
    """The finished images of a results folder that its summary leaves out, in a phrase: its
    own files under an earlier name, and other files (how to count them)."""
    same, names = left["same_files"], left["images"]
    others = [name for name in names if name not in same]
    said = []
    if same:
        old, new = next(iter(same.items()))
        said.append(f"{len(same)} of its files under an earlier name (such as {old}, now {new}:"
                    " not counted twice)")  # fmt: skip
    if others:
        said.append(f"{len(others)} of other files (such as {others[0]}): to count them, resume "
                    "with the earlier run's inputs given as it was given them")  # fmt: skip
    plural = "s" if len(names) != 1 else ""
    return f"{len(names)} more finished image{plural} in images/: " + "; ".join(said)


def refuse_not_an_image(path: Path) -> None:
    """A model (a built-in's name, a czmodel container, a bioimage.io package, a classifier)
    is described by ``model inspect``, and a table (an analysis's) is read by pandas or its
    results folder described: say so instead of "unknown image format"."""
    import zipfile

    from scopeml.errors import InvalidRequestError, ScopeMLError
    from scopeml.model.container import CONTAINER_SUFFIXES, read_container
    from scopeml.model.registry import BUILTIN_MODELS, format_of
    from scopeml.objects.table import TABLE_SUFFIXES

    if path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES):
        results = path.parent.parent if path.parent.name == "tables" else None
        hint = (f"scopeml info {results} describes the analysis it comes from"
                if results is not None and describe_results(results) is not None
                else "read it with pandas (pandas.read_csv, pandas.read_parquet)")  # fmt: skip
        raise InvalidRequestError(f"a table, not an image: {hint}", path=path)
    if str(path) in BUILTIN_MODELS and not path.exists():
        kind = "the built-in model"
    elif path.is_file() and path.name.lower().endswith(CONTAINER_SUFFIXES):
        read_container(path)  # a damaged container: what is wrong with it, as inspect says
        kind = f"a model ({format_of(path)})"
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            kind = f"a model ({format_of(path)})"
        except (ScopeMLError, OSError):  # a zip of no known kind: the image readers say so
            return
    else:
        return
    raise InvalidRequestError(
        f"{kind}, not an image: describe it with scopeml model inspect {path}", path=path
    )


#: The outputs a ``segment`` store may hold, each a sub-group, in the order listed.
STORE_OUTPUTS = ("labels", "mask", "instances", "probabilities", "confidence", "image")


def describe_segment_store(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The outputs and run of a ``segment`` store (a zarr group with a ``scopeml`` run record
    naming a model, and outputs as sub-groups); ``None`` for anything else.

    The run: the model's name (without the `` at scale …`` a scaled model's name ends in) and
    classes, the scale it ran at and the source image. Each output: its axes, shape, dtype,
    pixel sizes (µm) and ``classes`` (the model's for ``labels``, the channel names for
    ``probabilities``, the extracted class for ``mask``, the class split into objects for
    ``instances``). Outputs the run record asks for but the store
    lacks (a run stopped before them) are listed under ``missing``.
    """
    import zarr

    from scopeml.tiling.scale import unscaled_name
    from scopeml.tiling.size import AUTO_RECORD, AutoScale
    from scopeml.tiling.store import WRITER, image_place

    path = Path(path)
    if not (path / "zarr.json").is_file():
        return None
    try:
        record = zarr.open_group(str(path), mode="r").attrs.asdict().get("scopeml")
    except Exception:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        return None
    present = [n for n in STORE_OUTPUTS if (path / n / "zarr.json").is_file()]
    if not present:
        return None
    options = record.get("options") or {}
    model = record["model"]
    auto = AutoScale.from_dict(record.get(AUTO_RECORD)) if AUTO_RECORD in record else None
    outputs = {name: _describe_output(path / name, name, record) for name in present}
    wanted = [str(n) for n in options.get("outputs") or ()]
    post = _post_of(record, path, present)
    return {
        "path": str(path),
        "kind": "post-processed store" if post else "segment store",
        **({"post": post} if post else {}),
        "run": {
            "model": unscaled_name(str(model.get("name") or "")),
            "classes": [str(c) for c in model.get("classes") or ()],
            "scale": options.get("scale") or 1.0,
            "auto": auto.text() if auto is not None else None,  # what scale auto chose it from
            "image": image_place(record.get("image") or {}),  # a server's run: its name
            "read": _read_text(record),
            "normalization": _normalization_text(record),
            "written_by": record.get(WRITER),  # None: written before stores said
        },
        "outputs": outputs,
        "missing": [] if post else [n for n in wanted if n not in outputs],  # post: one made
    }


def _read_text(record: dict[str, Any]) -> str:
    """Which scene and channels of its image the run read, as they were asked for (``scene
    1, channels DAPI``); empty where it read the whole image.

    >>> _read_text({"image_view": {"scene": 1, "channels": [0]},
    ...             "options": {"scene": 1, "channels": ["DAPI"]}})
    'scene 1, channels DAPI'
    """
    view, options = record.get("image_view") or {}, record.get("options") or {}
    scene = view.get("scene", options.get("scene"))
    channels = options.get("channels") or view.get("channels")
    said = [f"scene {scene}"] if scene is not None else []
    if channels:
        said.append(f"channels {', '.join(str(c) for c in channels)}")
    return ", ".join(said)


def _normalization_text(record: dict[str, Any]) -> str:
    """How the run normalised the image: the policy given (else the model's), over the whole
    image or each time point on its own; raw values where it did not.

    >>> _normalization_text({"options": {}, "normalization": {"offset": [8.0], "scale": [0.1]}})
    "the model's policy, over the whole image"
    """
    values = record.get("normalization")
    if not values:
        return "none (raw values)"
    given = (record.get("options") or {}).get("normalize")
    scope = "each time point on its own" if "per_time_point" in values else "over the whole image"
    policy = given or "the model's policy"
    return f"{policy}, {scope}"


def _post_of(record: dict[str, Any], path: Path, present: list[str]) -> dict[str, Any] | None:
    """What made a ``post`` store (``None`` for a segment store): its source, steps, pixels
    changed, and the input's outputs it lacks with how to make its objects again (``note``),
    so that it is not taken for the segment store it came from."""
    from scopeml.cli.post import not_carried

    post = record.get("post")
    if not isinstance(post, dict):
        return None
    if "not_carried" not in post:  # a store of an older scopeml: the outputs of its segment run
        wanted = (record.get("options") or {}).get("outputs") or ()
        post = {**post, "not_carried": [str(n) for n in wanted if n not in present]}
    note = not_carried({**record, "post": post}, path, present[0])
    return {"source": post.get("source"), "steps": [str(s) for s in post.get("steps") or ()],
            "changed_pixels": post.get("changed_pixels"),
            "not_carried": list(post.get("not_carried") or ()), "note": note}  # fmt: skip


def _describe_output(group: Path, name: str, record: dict[str, Any]) -> dict[str, Any]:
    import zarr

    from scopeml.errors import InvalidImageError

    try:
        attrs = zarr.open_group(str(group), mode="r").attrs.asdict()
        ome = attrs.get("ome", attrs)
        multiscale = ome["multiscales"][0]
        array = zarr.open_array(str(group / multiscale["datasets"][0]["path"]), mode="r")
    except Exception as err:
        raise InvalidImageError(f"output {name!r} unreadable: {err}", path=group) from err
    axes = "".join(a["name"] for a in multiscale["axes"]).upper()
    scale = next((t["scale"] for t in multiscale["datasets"][0].get("coordinateTransformations", ())
                  if t.get("type") == "scale"), [])  # fmt: skip
    units = {a["name"].upper(): a.get("unit") for a in multiscale["axes"]}
    sizes = {a: float(v) for a, v in zip(axes, scale, strict=False)
             if a in "ZYX" and units.get(a) == "micrometer"}  # fmt: skip
    options = record.get("options") or {}
    classes = {
        "labels": [str(c) for c in record["model"].get("classes") or ()],
        "probabilities": [c.get("label", "") for c in (ome.get("omero") or {}).get("channels", ())],
        "mask": [str(options["extract_class"])] if options.get("extract_class") else [],
        "instances": [str((record.get("instances") or {}).get("class_") or "")],
    }.get(name, [])
    described = {"axes": axes, "shape": list(array.shape), "dtype": str(array.dtype),
                 "pixel_sizes": sizes, "classes": [c for c in classes if c]}  # fmt: skip
    step = dict(zip(axes, scale, strict=False)).get("T")
    if step and units.get("T") == "second":  # the time step the store keeps from its image
        described["time_step"] = float(step)
    if name == "instances" and "n_objects" in array.attrs:
        described.update(_object_counts(dict(array.attrs), axes))
    if len(multiscale["datasets"]) > 1:  # lower resolutions, for viewers
        described["levels"] = len(multiscale["datasets"])
    return described


def _object_counts(attrs: dict[str, Any], axes: str) -> dict[str, Any]:
    """The instances' object count, and per time point where the store holds one scene
    (each time point's ids follow the last one's: the labelling records where each starts).

    >>> _object_counts({"n_objects": 9, "time_offsets": [0, 4, 4]}, "TYX")
    {'objects': 9, 'objects_per_time_point': [4, 0, 5]}
    >>> _object_counts({"n_objects": 9, "time_offsets": [0]}, "YX")
    {'objects': 9}
    """
    total, starts = int(attrs["n_objects"]), [int(v) for v in attrs.get("time_offsets") or ()]
    counts: dict[str, Any] = {"objects": total}
    if "T" in axes and "S" not in axes and len(starts) > 1:
        counts["objects_per_time_point"] = [b - a for a, b in zip(starts, [*starts[1:], total],
                                                                  strict=True)]  # fmt: skip
    return counts


def _objects_text(output: dict[str, Any]) -> str:
    """``: 1808 (154–196 per time point)``: the objects of an instances output that records
    them (after ``objects of nucleus``).

    >>> _objects_text({"objects": 9, "objects_per_time_point": [4, 0, 5]})
    ': 9 (0–5 per time point)'
    """
    if "objects" not in output:
        return ""
    per_time = output.get("objects_per_time_point")
    spread = f" ({min(per_time)}–{max(per_time)} per time point)" if per_time else ""
    return f": {output['objects']}{spread}"


def format_store(description: dict[str, Any]) -> list[str]:
    """The text lines of ``scopeml info`` for a :func:`describe_segment_store` dict.

    Examples
    --------
    >>> print("\\n".join(format_store({"path": "t5.ome.zarr", "kind": "segment store",
    ...     "run": {"model": "nuclei", "classes": ["bg", "nucleus"], "scale": 0.5,
    ...             "image": "t5.ome.tif", "written_by": "scopeml 0.1.0"},
    ...     "outputs": {"labels": {"axes": "TYX", "shape": [5, 70, 110], "dtype": "uint8",
    ...                            "pixel_sizes": {"Y": 0.645, "X": 0.645},
    ...                            "classes": ["bg", "nucleus"], "time_step": 60.0}},
    ...     "missing": ["instances"]})))
    t5.ome.zarr
      segment store of t5.ome.tif: model nuclei (classes bg, nucleus), scale 0.5
      labels: T=5 Y=70 X=110, uint8, classes bg, nucleus
      pixel sizes (µm): Y=0.645 X=0.645
      time step: 60 s
      written by scopeml 0.1.0
      missing: instances (the run stopped before them: run it again with --resume)
    """
    run, post = description["run"], description.get("post")
    source = f" of {run['image']}" if run.get("image") else ""
    source += f" ({run['read']})" if source and run.get("read") else ""
    model = run["model"] or "(unnamed)"
    lines = [description["path"], *([_post_line(post)] if post else ())]
    if not post or run["model"] or run.get("image"):  # post of a plain label image: no run
        lines.append(
            f"  {'from a segment run' if post else 'segment store'}{source}: model {model} "
            f"(classes {', '.join(run['classes'])}), scale {run['scale']:g}"
            + (f" ({run['auto']})" if run.get("auto") else "")
        )
    sizes: dict[str, float] = {}
    step = next((o["time_step"] for o in description["outputs"].values() if "time_step" in o), 0)
    for name, output in description["outputs"].items():
        shape = " ".join(f"{a}={n}" for a, n in zip(output["axes"], output["shape"], strict=True))
        kind = {"probabilities": "channels", "instances": "objects of"}.get(name, "classes")
        classes = f", {kind} {', '.join(output['classes'])}" if output["classes"] else ""
        levels = f"; {output['levels']} resolution levels" if output.get("levels") else ""
        lines.append(f"  {name}: {shape}, {output['dtype']}{classes}{_objects_text(output)}"
                     f"{levels}")  # fmt: skip
        sizes = sizes or output["pixel_sizes"]
    shown = " ".join(f"{a}={v:g}" for a, v in sizes.items()) or "unknown"
    lines.append(f"  pixel sizes (µm): {shown}")
    if step:
        lines.append(f"  time step: {step:g} s")
    if run.get("normalization"):
        lines.append(f"  normalisation: {run['normalization']}")
    if run.get("written_by"):
        lines.append(f"  written by {run['written_by']}")
    if post and post.get("note"):
        lines.append(f"  {post['note']}")
    if description["missing"]:
        lines.append(f"  missing: {', '.join(description['missing'])}"
                     " (the run stopped before them: run it again with --resume)")  # fmt: skip
    return lines


def _post_line(post: dict[str, Any]) -> str:
    """A post-processed store's first line: its source and steps.

    >>> _post_line({"source": "/d/s.ome.zarr/labels", "steps": ["opening:2"],
    ...             "changed_pixels": 1200})
    '  post-processed store of /d/s.ome.zarr/labels: opening:2, 1,200 pixels changed'
    """
    changed = post.get("changed_pixels")
    said = f", {changed:,} pixel{'s' * (changed != 1)} changed" if changed is not None else ""
    steps = ", ".join(post["steps"]) or "no steps"
    return f"  post-processed store of {post['source'] or '(an image in memory)'}: {steps}{said}"


def format_partial(run: dict[str, Any]) -> list[str]:
    """The text lines of ``scopeml info`` for an unfinished run
    (:func:`~scopeml.tiling.store.describe_partial`).

    Examples
    --------
    >>> print("\\n".join(format_partial({"path": "o.ome.zarr.partial", "output": "o.ome.zarr",
    ...     "tiles_done": 3, "tiles": 12, "model": "nuclei", "image": "/data/a.czi"})))
    o.ome.zarr.partial
      unfinished segment run: 3 of 12 tiles done, model nuclei, image /data/a.czi
      finish with: scopeml segment … -o o.ome.zarr --resume (the same image, model and settings)
    >>> format_partial({"path": "o.ome.zarr.partial", "output": "o.ome.zarr", "tiles_done": 12,
    ...     "tiles": 12, "model": "nuclei", "image": "/data/a.czi",
    ...     "options": {"outputs": ["labels", "instances"]}})[1]
    '  unfinished segment run: 12 of 12 tiles done (instances not made yet), model nuclei, \
image /data/a.czi'
    """
    done = f"{run['tiles_done']} of {run['tiles']} tiles done"
    if run["tiles"] is not None and run["tiles_done"] >= run["tiles"]:  # stopped after them
        steps = [o for o in (run.get("options") or {}).get("outputs") or () if o == "instances"]
        done += f" ({', '.join(steps)} not made yet)" if steps else " (not yet published)"
    if run["tiles"] is None:  # a run of a scopeml that did not record it
        done = f"{run['tiles_done']} tiles done (the total is not recorded)"
    if run.get("damaged"):  # no model or image recorded: nothing a resume can check
        return [
            run["path"],
            f"  unfinished segment run: {done}; its run record (.scopeml-run.json) is damaged, "
            "so no resume can be checked against it: run again with --overwrite, or remove it",
        ]
    axes = run.get("image_axes")  # the image as the run read it (--axes TYX: T=20 Y=… X=…)
    read_as = f" read as {' '.join(f'{a}={n}' for a, n in axes.items())}" if axes else ""
    return [
        run["path"],
        f"  unfinished segment run: {done}, model "
        f"{run['model'] or '(unnamed)'}, image {run['image'] or '(in memory)'}{read_as}",
        f"  finish with: scopeml segment … -o {run['output']} --resume (the same image, model "
        "and settings)",
    ]


#: The most pixels ``info`` reads to find a label image's largest id where the store records
#: no object count (an analysis's label stores): a larger one is not read whole for a line.
LABEL_SCAN_PIXELS = 2**24


def describe_labels(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What an OME-Zarr marked as a label image (NGFF ``image-label``, as ``objects label``,
    ``analyze`` and ``post`` write them; several scenes: images ``0``, ``1``…) holds, which
    ``info`` showed as a plain image of channel C0: ``objects`` where each image records its
    count (``objects label``), the ``classes`` its properties name (``post``), else the
    ``largest_id`` where the store has at most :data:`LABEL_SCAN_PIXELS` pixels. ``None``: no
    such store. Only attribute files are read, and the pixels of a small store."""
    from scopeml.analysis.inputs import image_label
    from scopeml.io.omezarr import open_ome_zarr_array

    path = Path(path)
    if not path.is_dir():
        return None
    scenes = sorted((p for p in path.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    groups = [path] if image_label(path) is not None else scenes
    groups = [group for group in groups if image_label(group) is not None]
    if not groups:
        return None
    classes = [p.get("class") for p in image_label(groups[0]).get("properties") or ()
               if isinstance(p, dict)]  # fmt: skip
    if classes:
        return {"kind": "class labels", "classes": [str(c) for c in classes]}
    try:
        arrays = [open_ome_zarr_array(group, mode="r") for group in groups]
    except Exception:  # described as the image it also is
        return {"kind": "labels"}
    if all("n_objects" in a.attrs for a in arrays):  # each scene's: the whole store's count
        count = max(int(array.attrs["n_objects"]) for array in arrays)
        return {"kind": "instance labels", "objects": count}
    if sum(a.size for a in arrays) > LABEL_SCAN_PIXELS:
        return {"kind": "labels"}
    return {"kind": "labels", "largest_id": max(int(a[...].max(initial=0)) for a in arrays)}


def _labels_line(labels: dict[str, Any]) -> str:
    """``info``'s line for :func:`describe_labels`.

    >>> _labels_line({"kind": "instance labels", "objects": 1120})
    '  holds: instance labels, 1,120 objects'
    >>> _labels_line({"kind": "labels", "largest_id": 7}), _labels_line({"kind": "labels"})
    ('  holds: labels, largest id 7', '  holds: labels (too large to count its objects here)')
    """
    if "objects" in labels:
        return f"  holds: {labels['kind']}, {labels['objects']:,} objects"
    if "classes" in labels:
        listed = ", ".join(f"{v} {n}" for v, n in enumerate(labels["classes"], 1))
        return f"  holds: {labels['kind']}: {listed}"
    if "largest_id" in labels:
        return f"  holds: {labels['kind']}, largest id {labels['largest_id']:,}"
    return f"  holds: {labels['kind']} (too large to count its objects here)"


def format_description(description: dict) -> list[str]:
    """The text lines of ``scopeml info`` for a :func:`~scopeml.io.probe.describe_image` dict.

    Examples
    --------
    >>> lines = format_description({
    ...     "path": "a.nd2", "reader": "scopeml.io.bioio:read_bioio", "plugin": "bioio-nd2 2.6.0",
    ...     "axes": "STCZYX", "shape": [1, 1, 2, 1, 8, 9], "dtype": "uint16",
    ...     "scenes": [{"name": "XYPos:0", "shape": [1, 2, 1, 8, 9]}],
    ...     "channel_names": ["DAPI", "GFP"], "pixel_sizes": {"Y": 0.5, "X": 0.5},
    ...     "region_reads": "whole 8×9 planes (the plugin cannot read regions)"})
    >>> print("\\n".join(lines))
    a.nd2
      reader: bioio-nd2 2.6.0 (scopeml.io.bioio:read_bioio)
      shape: S=1 T=1 C=2 Z=1 Y=8 X=9, uint16
      scenes: 1: 0 XYPos:0 (T=1 C=2 Z=1 Y=8 X=9)
      channels: DAPI, GFP
      pixel sizes (µm): Y=0.5 X=0.5
      region reads: whole 8×9 planes (the plugin cannot read regions)
    """
    axes = description["axes"]
    reader = description["reader"]
    if description.get("plugin"):
        reader = f"{description['plugin']} ({reader})"
    shape = " ".join(f"{a}={n}" for a, n in zip(axes, description["shape"], strict=True))
    numbered = [(s.get("number", i), s) for i, s in enumerate(description["scenes"])]
    scenes = ", ".join(
        (s["name"] if s["name"] == str(i) else f"{i} {s['name']}")  # the number, then the name
        + " ("
        + " ".join(f"{a}={n}" for a, n in zip(axes[1:], s["shape"], strict=True))
        + ")"
        for i, s in numbered
    )
    given = description["pixel_sizes"]
    sizes = " ".join(f"{a}={given[a]:g}" for a in "ZYX" if a in given) or "unknown"
    if len({tuple(s["shape"]) for s in description["scenes"]}) > 1:  # only one opens at a time
        shape = (f"{shape} (the first scene; they differ in size: segment one at a time, "
                 "--scene N; analyze takes each on its own)")  # fmt: skip
    lines = [
        description["path"],
        f"  reader: {reader}",
        f"  shape: {shape}, {description['dtype']}",
        f"  scenes: {len(description['scenes'])}: {scenes}",
        f"  channels: {', '.join(description['channel_names'])}",
        f"  pixel sizes (µm): {sizes}",
    ]
    if given.get("T"):
        lines.append(f"  time step: {given['T']:g} s")
    if description.get("region_reads"):
        lines.append(f"  region reads: {description['region_reads']}")
    if description.get("levels", 1) > 1:  # lower resolutions: a viewer shows it whole at once
        lines.append(f"  resolution levels: {description['levels']}")
    if description.get("labels"):
        lines.append(_labels_line(description["labels"]))
    return lines
