"""``scopeml analyze SETTINGS IMAGE... -o RESULTS/`` and ``scopeml analyze init [PATH]``."""

from __future__ import annotations

from pathlib import Path

import typer

from scopeml.io.axes import AXES_HELP


def analyze(
    settings: str = typer.Argument(
        ..., help="The settings YAML, or 'init' to write a commented example.", metavar="SETTINGS"
    ),
    images: list[str] = typer.Argument(
        None,
        help="Image files, folders (with their subfolders) and glob patterns (after 'init': "
        "the file to write).",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="The results folder.  [required, but for 'init']"
    ),
    workers: int | None = typer.Option(
        None,
        help="Images analysed side by side in local processes [default: one per core, "
        "as many as the memory holds].",
    ),
    scheduler: str | None = typer.Option(
        None, help="A dask.distributed scheduler address; one task per image."
    ),
    resume: bool = typer.Option(
        False,
        help="Skip images whose results are already complete (new rules or a retrained "
        "object classifier are applied to their tables, not segmented again).",
    ),
    overwrite: bool = typer.Option(
        False,
        help="Replace an earlier analysis's results in the folder (deleted once the settings, "
        "models and first image are checked; no other folder is replaced).",
    ),
    recursive: bool | None = typer.Option(
        None,
        "--recursive/--no-recursive",
        help="Search the folders' subfolders too [default: the settings' inputs.recursive, true].",
        show_default=False,
    ),
    include: list[str] = typer.Option(
        None,
        "--include",
        metavar="PATTERN",
        help="Only files matching this (repeatable; added to the settings' inputs.include). "
        "A pattern without '/' matches the file name, one with '/' the path below the folder.",
    ),
    exclude: list[str] = typer.Option(
        None,
        "--exclude",
        metavar="PATTERN",
        help="Leave out files and subfolders matching this, e.g. '*_ch2*' or 'old/*' "
        "(repeatable; added to the settings' inputs.exclude).",
    ),
    skip_labels: bool | None = typer.Option(
        None,
        "--skip-labels/--no-skip-labels",
        help="Leave out label images found in folders (names ending _labels, _label, _mask, "
        "_masks; label stores scopeml wrote) [default: the settings' inputs.skip_labels, true].",
        show_default=False,
    ),
    axes: str | None = typer.Option(
        None, "--axes", help=f"{AXES_HELP} [default: the settings' axes]"
    ),
    scene: str | None = typer.Option(
        None,
        "--scene",
        help="Analyse only this scene of each image: its number (from 0), or its name as "
        "scopeml info lists it, e.g. A1-Pos3 (each image's scene of that name; an image "
        "without one fails on its own) [default: the settings' scene, else every scene, also "
        "scenes of different sizes, each on its own]",
        show_default=False,
    ),
    pixel_size: str | None = typer.Option(
        None,
        "--pixel-size",
        metavar="SIZE",
        help="Micrometres per pixel for images whose file records none (plain TIFFs): one "
        "number for every axis, or Y,X, or Z,Y,X for Z stacks with another Z step. A file's "
        "own size is kept (a warning where it differs) [default: the settings' pixel_size, "
        "else sizes in pixels for such images]",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Run an image analysis over images into one results folder.

    The settings give the class tree, segmenters, post-processing and measurements; the
    results folder gets label stores, tables, overviews and a summary.

    A folder gives its images and its subfolders' (not hidden ones, image folders or results
    folders), each named by its path there (plate/A9/p10d.tif: A9__p10d). Label images found
    beside the images (x_labels.tif, x_mask.tif) are left out, with a warning counting them.

    Bad settings (unknown keys, a cycle in the class tree, a missing model, a channel the
    images lack) stop before any image is read, naming the file and line (exit 2). An image
    that fails is listed in the summary and the others go on (exit 1 at the end).
    """
    if settings == "init":  # the file named, or -o's (as a user may take it to be)
        return _init([*(images or []), *([str(output)] if output is not None else [])])
    if not images:
        raise typer.BadParameter("give at least one image, folder or pattern", param_hint="IMAGE")
    if output is None:
        raise typer.BadParameter("give the results folder", param_hint="-o/--output")
    if workers is not None and workers < 1:  # the option's fault, not the settings file's
        raise typer.BadParameter(f"{workers} is not ≥ 1", param_hint="--workers")
    from scopeml.analysis import run_analysis
    from scopeml.errors import Cancelled

    _check_axes(axes)  # the option's fault, before any folder is made
    try:
        result = run_analysis(
            Path(settings), images, output, workers=workers, scheduler=scheduler, resume=resume,
            overwrite=overwrite, progress=not quiet, recursive=recursive, include=include or (),
            exclude=exclude or (), skip_labels=skip_labels, axes=axes,
            scene=scene, pixel_size=pixel_size_option(pixel_size),
        )  # fmt: skip
    except (KeyboardInterrupt, Cancelled) as err:  # what was kept, and how to go on
        for note in getattr(err, "__notes__", ()):
            typer.echo(note, err=True)
        raise
    done = len(result.records) - len(result.failures)
    for failure in result.failures:
        typer.echo(f"error: {failure['image']}: {failure['reason']}", err=True)
    if result.resumed:
        now = f"{done - result.resumed} of {len(result.records)} images analysed now, "
        now += f"{result.resumed} already done"
    else:
        now = f"{done} of {len(result.records)} images analysed"
    if result.failures:  # the errors above may have scrolled away
        now += f" ({len(result.failures)} failed: see {output / 'summary' / 'failures.csv'})"
    typer.echo(f"{now} → {output / 'index.html'}")
    for line in _auto_scales(result.records):
        typer.echo(line)
    return 1 if result.failures else 0


def _check_axes(axes: str | None) -> None:
    """``--axes`` checked as the settings' ``axes`` are (letters, Y and X as a TIFF's pages put
    them), a bad value an error of the option rather than of every image."""
    from scopeml.analysis.settings import check_file_axes
    from scopeml.errors import InvalidRequestError

    if axes is not None:
        try:
            check_file_axes(axes)
        except InvalidRequestError as err:
            raise InvalidRequestError(err.problem, path="--axes") from None


def pixel_size_option(text: str | None) -> dict[str, float] | None:
    """``--pixel-size`` read as ``objects measure`` reads it (:mod:`scopeml.pixel_size`), a bad
    value an error of the option, before any image is read."""
    from scopeml.pixel_size import parse_pixel_size

    try:
        return None if text is None else parse_pixel_size(text)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--pixel-size") from None


def _auto_scales(records: list[dict]) -> list[str]:
    """Per class whose scale ``auto`` chose: ``nucleus: scale auto chose 0.5 for 2 images
    (objects ~43 px, model 20 px), 1 for 12``; the image's factor and estimate are in
    ``summary/counts.csv``."""
    from scopeml.analysis.report import scale_cells

    chosen: dict[str, dict[str, list[str]]] = {}
    for record in records:
        for name, runs in (record.get("scales") or {}).items():
            if record["status"] == "done" and any(run.get("auto") for run in runs):
                factor, estimate = scale_cells(record, name)
                shown = f"{factor:g}" if isinstance(factor, float) else str(factor)
                chosen.setdefault(name, {}).setdefault(shown, []).append(estimate)
    lines = []
    for name, factors in chosen.items():
        parts = []
        for factor, estimates in factors.items():
            count = f"{len(estimates)} image{'s' if len(estimates) > 1 else ''}"
            parts.append(f"{factor} for {count}" + (f" ({estimates[0]})" if len(estimates) == 1
                                                   else ""))  # fmt: skip
        lines.append(f"{name}: scale auto chose {', '.join(parts)} (per image: summary/counts.csv)")
    return lines


def _init(rest: list[str] | None) -> int:
    """Write the commented example settings (it validates as written)."""
    from scopeml.analysis.example import EXAMPLE_SETTINGS
    from scopeml.errors import InvalidRequestError
    from scopeml.io.replace import write_atomically

    if rest and len(rest) > 1:
        raise typer.BadParameter("init takes one file name (or -o FILE)", param_hint="PATH")
    path = Path(rest[0] if rest else "analysis.yaml")
    if path.exists():
        raise InvalidRequestError("exists; choose another name or remove it", path=path)
    write_atomically(path, EXAMPLE_SETTINGS)
    typer.echo(f"example settings → {path} (edit the channels to your images' names)")
    return 0
