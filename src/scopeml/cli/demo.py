"""``scopeml demo``: the built-in end-to-end job, no arguments needed."""

from __future__ import annotations

from pathlib import Path

import typer

from scopeml.demo import OUTPUTS


def demo(
    output: Path = typer.Option(Path("scopeml-demo"), "-o", "--output", help="Output folder."),
    size: int = typer.Option(8192, min=64, help="Sample image size (pixels per side)."),
    channels: int = typer.Option(2, min=1, help="Sample image channels (nuclei in the first)."),
    seed: int = typer.Option(0, min=0, help="Seed of the synthetic sample."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    from scopeml.demo import run_demo

    result = run_demo(
        output,
        size=size,
        channels=channels,
        seed=seed,
        progress=not quiet,
        log=lambda line: typer.echo(line, err=True),
    )
    typer.echo(f"nuclei found:        {result.n_nuclei} (true: {result.n_true_nuclei})")
    scored = min(size, 2048)
    typer.echo(f"object F1 (IoU≥0.5): {result.f1:.3f} on the top-left {scored}×{scored}")
    typer.echo(f"seconds:             {result.seconds}")
    for name in ("segmentation", "nuclei", "table", "overview", "detail"):
        typer.echo(f"{name + ':':<20} {getattr(result, name)}")
    typer.echo(
        f"next:                look at {result.overview.name} and {result.detail.name}; to browse "
        f"the stores: {_napari_install()}napari --plugin scopeml {result.image} "
        f"{result.segmentation}"
    )


def _napari_install() -> str:
    """How to get napari here: nothing where it is installed; the checkout's extra, by its
    path, for an editable install (``-e .`` worked only from inside the checkout)."""
    from importlib.util import find_spec
    from pathlib import Path

    if find_spec("napari") is not None:
        return ""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "scopeml").is_dir():
        return f"pip install -e '{root}[napari]', then "
    return "pip install 'scopeml[napari]', then "


# The help lists what run_demo writes, from the names it writes them under.
demo.__doc__ = "\n".join(
    [
        "Segment a generated sample mosaic with the default nuclei model, measure and draw nuclei.",
        "",
        "Writes, under OUTPUT:",
        "",
        "\b",  # click: keep these lines as they are
        *(f"  {name:<22} {what}" for name, what in OUTPUTS.items()),
    ]
)
