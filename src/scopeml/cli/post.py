"""``scopeml post``: morphology on a label image, tile by tile, into an OME-Zarr store."""

from __future__ import annotations

from pathlib import Path

import typer

from scopeml.post.steps import MAX_BALL_RADIUS

STEP_HELP = (
    "A step, in the order given (repeat the option): crf[:ITERATIONS] (first, on a segment store "
    "written with --outputs labels,probabilities: dense CRF labels from the probabilities and "
    "the image, exact tile by tile with 40 pixels of halo per iteration, default 5), "
    "fill_holes (holes of any size, a whole-plane "
    "pass out of core) or fill_holes:MAX_PIXELS (smaller holes only, one tile pass), "
    "remove_small:MIN_PIXELS, opening[:RADIUS], closing[:RADIUS] (RADIUS 1.."
    f"{MAX_BALL_RADIUS}). Each runs on every class but the background class."
)
BACKGROUND_HELP = (
    "The background class, by name or label value: the steps run on every other class, it takes "
    "the pixels they remove (unless another class is nearer) and holes in it are filled. "
    "Default: the class named background or bg, else the first class (as in ZEN), for a segment "
    "store's labels; 0 for labels without class names (a mask: 0 is the background)."
)


def post(
    image: Path = typer.Argument(
        ..., help="Label image (a segment output's labels, any format), or a scopeml segment store."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output store (OUT.ome.zarr)."),
    step: list[str] = typer.Option(..., "--step", "-s", help=STEP_HELP),
    background: str | None = typer.Option(None, "--background", "-b", help=BACKGROUND_HELP),
    guide: Path | None = typer.Option(
        None,
        "--image",
        help="For crf: the image whose edges guide it (default: the one the store was "
        "segmented from; at most 3 channels, and each channel makes it far slower).",
    ),
    contrast: float = typer.Option(
        0.05,
        "--crf-contrast",
        help="For crf: the intensity difference, as a fraction of the image's range, that "
        "the CRF treats as an edge (smaller: boundaries follow fainter edges).",
    ),
    tile_size: int | None = typer.Option(
        None,
        help="Tile edge in pixels along every axis, clipped to the image (read with the steps' "
        "halo). Default: 1024×1024 in 2-D; in a Z stack at most 128³ voxels.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Post-process a label image exactly as a whole-image run would, in bounded memory.

    The result keeps the input's output name (OUT.ome.zarr/labels, …), its class names and
    pixel sizes, so later steps take it as they take a segment store
    (scopeml objects label OUT.ome.zarr --class NAME). Ends with one line on what changed.
    """
    import time

    from scopeml.post import PostStep, post_process_file
    from scopeml.post.crf_tiled import split_crf

    start = time.perf_counter()
    crf, rest = split_crf(step)  # bad steps are refused before any work
    steps = [*([crf] if crf else []), *(PostStep.parse(text) for text in rest)]
    written = post_process_file(
        image,
        output,
        steps,
        background=background,
        image=guide,
        contrast=contrast,
        tile_size=tile_size,
        overwrite=overwrite,
        progress=not quiet,
    )
    typer.echo(summary(written, time.perf_counter() - start))
    from scopeml.tiling.store import recorded_run

    left = not_carried(recorded_run(written.parent) or {}, written.parent, written.name)
    if left:
        typer.echo(f"note: {left}", err=True)


def not_carried(record: dict, store: str | Path, written: str = "labels") -> str | None:
    """The outputs of its input that a post-processed ``store`` (its ``scopeml`` ``record``,
    holding the output ``written``) lacks, and how to make its objects again, in a phrase;
    ``None`` where it lacks none. Said so that neither ``post`` nor ``info`` drops them unsaid.

    >>> not_carried({"post": {"source": "/d/s.ome.zarr/labels", "not_carried": ["instances"]},
    ...              "instances": {"class_": "nucleus"}}, "p.ome.zarr")[:71]
    'not carried over from /d/s.ome.zarr: instances (post writes labels only'
    """
    post = record.get("post") or {}
    left = [str(name) for name in post.get("not_carried") or ()]
    if not left:
        return None
    source = Path(post["source"]).parent if post.get("source") else "its input"
    said = f"not carried over from {source}: {', '.join(left)} (post writes {written} only"
    made = record.get("instances") or {}
    if "instances" in left and made.get("boundary_class"):  # labelling these would join them
        said += (f"; the instances were split at the {made['boundary_class']} class, which "
                 f"labelling these labels loses: filter them where they are, scopeml objects "
                 f"filter {source} -o OBJECTS.ome.zarr (--min-size, --remove-border)")  # fmt: skip
    elif "instances" in left:
        name = made.get("class_")
        option = f" --class {name}" if name and written == "labels" else ""
        said += ("; the instances were made from the labels and probabilities before it: label "
                 f"the objects of these with scopeml objects label {store}{option} "
                 "-o OBJECTS.ome.zarr")  # fmt: skip
    return f"{said})"


def summary(written: Path, seconds: float) -> str:
    """The line a run ends with: ``labels → OUT.ome.zarr; fill_holes, remove_small:200:
    1,204 pixels changed (background: label 1, 'background'); 0.4 s``."""
    import zarr

    record = zarr.open_group(str(written.parent), mode="r").attrs.get("scopeml", {})
    post = record.get("post", {})
    classes = record.get("model", {}).get("classes", []) if written.name == "labels" else []
    value = post.get("background")
    if value is None:
        background = "0 is the background"
    else:
        name = classes[value - 1] if 0 < value <= len(classes) else ""
        background = f"background: label {value}" + (f", {name!r}" if name else "")
    steps = ", ".join(post.get("steps", []))
    changed = post.get("changed_pixels")
    if changed is None:  # crf from a store without labels: nothing to compare with
        return f"{written.name} → {written.parent}; {steps} ({background}); {seconds:.1f} s"
    return (
        f"{written.name} → {written.parent}; {steps}: {changed:,} pixel{'s' * (changed != 1)} "
        f"changed ({background}); {seconds:.1f} s"
    )
