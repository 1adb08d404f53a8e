"""``scopeml info IMAGE``: which reader opens a file and what it holds.

The file is opened in a child process (:func:`scopeml.io.probe.probe_image`), so a reader that
crashes on a corrupt file ends in a one-line error, not in a dead terminal. A ``segment``
store (``OUT.ome.zarr`` with its outputs as sub-groups and a run record) is described from its
metadata instead: each output's axes, shape, dtype and classes, and the run (model, scale).
"""

from __future__ import annotations

import json
import os
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
    store, results = describe_segment_store(image), describe_results(image)
    if store is None and results is None:
        refuse_a_model(image)
        number = scene_number(image, scene, axes=axes)  # a name → its number
        description = probe_image(image, scene=number, timeout=timeout, axes=axes)
    if as_json:
        typer.echo(json.dumps(store or results or description, indent=2))
        return
    if store is not None or results is not None:
        lines = format_store(store) if store is not None else format_results(results)
    else:
        lines = format_description(description)
    for line in lines:
        typer.echo(line)
    for warning in () if store or results else description.get("warnings") or ():
        typer.echo(f"warning: {warning}", err=True)  # the reader's, said in the child


def describe_results(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An analysis's results folder (``None`` for anything else): its images analysed (their
    records) and failed (``summary/failures.csv``), the objects of each class over them, and
    where its settings and report are."""
    from scopeml.analysis.runner import is_results_folder

    folder = Path(path)
    if not folder.is_dir() or not is_results_folder(folder):
        return None
    objects: dict[str, int] = {}
    done = 0
    for record in sorted((folder / "images").glob("*/record.json")):
        try:
            counts = json.loads(record.read_text()).get("counts") or {}
        except (OSError, ValueError):  # not one this folder's analysis finished
            continue
        done += 1
        for name, count in counts.items():
            objects[name] = objects.get(name, 0) + int(count)
    failures = folder / "summary" / "failures.csv"
    failed = max(len(failures.read_text().splitlines()) - 1, 0) if failures.is_file() else 0
    index = folder / "index.html"
    return {"path": str(folder), "images": done, "failed": failed, "objects": objects,
            "settings": str(folder / "settings.yaml"),
            "report": str(index) if index.is_file() else None}  # fmt: skip


def format_results(results: dict[str, Any]) -> list[str]:
    """:func:`describe_results` as ``scopeml info`` prints it."""
    objects = ", ".join(f"{name} {count}" for name, count in results["objects"].items())
    return [
        results["path"],
        f"  analysis results: {results['images']} image(s) analysed, {results['failed']} failed",
        f"  objects: {objects or 'none'}",
        f"  settings: {results['settings']}",
        f"  report: {results['report'] or 'not written (an unfinished run: --resume)'}",
    ]


def refuse_a_model(path: Path) -> None:
    """A model (a built-in's name, a czmodel container, a bioimage.io package, a classifier)
    is described by ``model inspect``: say so instead of "unknown image format"."""
    import zipfile

    from scopeml.errors import InvalidRequestError, ScopeMLError
    from scopeml.model.registry import BUILTIN_MODELS, format_of

    if str(path) in BUILTIN_MODELS and not path.exists():
        kind = "the built-in model"
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
    from scopeml.tiling.store import image_place

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
    return {
        "path": str(path),
        "kind": "segment store",
        "run": {
            "model": unscaled_name(str(model.get("name") or "")),
            "classes": [str(c) for c in model.get("classes") or ()],
            "scale": options.get("scale") or 1.0,
            "auto": auto.text() if auto is not None else None,  # what scale auto chose it from
            "image": image_place(record.get("image") or {}),  # a server's run: its name
        },
        "outputs": outputs,
        "missing": [n for n in wanted if n not in outputs],
    }


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
    ...             "image": "t5.ome.tif"},
    ...     "outputs": {"labels": {"axes": "TYX", "shape": [5, 70, 110], "dtype": "uint8",
    ...                            "pixel_sizes": {"Y": 0.645, "X": 0.645},
    ...                            "classes": ["bg", "nucleus"], "time_step": 60.0}},
    ...     "missing": ["instances"]})))
    t5.ome.zarr
      segment store of t5.ome.tif: model nuclei (classes bg, nucleus), scale 0.5
      labels: T=5 Y=70 X=110, uint8, classes bg, nucleus
      pixel sizes (µm): Y=0.645 X=0.645
      time step: 60 s
      missing: instances (the run stopped before them: run it again with --resume)
    """
    run = description["run"]
    source = f" of {run['image']}" if run.get("image") else ""
    model = run["model"] or "(unnamed)"
    lines = [
        description["path"],
        f"  segment store{source}: model {model} (classes {', '.join(run['classes'])}),"
        f" scale {run['scale']:g}" + (f" ({run['auto']})" if run.get("auto") else ""),
    ]
    sizes: dict[str, float] = {}
    step = next((o["time_step"] for o in description["outputs"].values() if "time_step" in o), 0)
    for name, output in description["outputs"].items():
        shape = " ".join(f"{a}={n}" for a, n in zip(output["axes"], output["shape"], strict=True))
        kind = {"probabilities": "channels", "instances": "objects of"}.get(name, "classes")
        classes = f", {kind} {', '.join(output['classes'])}" if output["classes"] else ""
        lines.append(f"  {name}: {shape}, {output['dtype']}{classes}{_objects_text(output)}")
        sizes = sizes or output["pixel_sizes"]
    shown = " ".join(f"{a}={v:g}" for a, v in sizes.items()) or "unknown"
    lines.append(f"  pixel sizes (µm): {shown}")
    if step:
        lines.append(f"  time step: {step:g} s")
    if description["missing"]:
        lines.append(f"  missing: {', '.join(description['missing'])}"
                     " (the run stopped before them: run it again with --resume)")  # fmt: skip
    return lines


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
    """
    done = f"{run['tiles_done']} of {run['tiles']} tiles done"
    if run["tiles"] is None:  # a run of a scopeml that did not record it
        done = f"{run['tiles_done']} tiles done (the total is not recorded)"
    axes = run.get("image_axes")  # the image as the run read it (--axes TYX: T=20 Y=… X=…)
    read_as = f" read as {' '.join(f'{a}={n}' for a, n in axes.items())}" if axes else ""
    return [
        run["path"],
        f"  unfinished segment run: {done}, model "
        f"{run['model'] or '(unnamed)'}, image {run['image'] or '(in memory)'}{read_as}",
        f"  finish with: scopeml segment … -o {run['output']} --resume (the same image, model "
        "and settings)",
    ]


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
    return lines
