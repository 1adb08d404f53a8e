"""``scopeml train unet`` — train a U-Net from image + label pairs and write a ``.czann``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from scopeml.errors import InvalidRequestError

app = typer.Typer(help="Train models from labelled images.", no_args_is_help=True)


@app.command("unet")
def unet(
    images: Path = typer.Argument(..., help="Image file (.tif/.png/.npy) or folder of images."),
    labels: Path = typer.Argument(
        ..., help="Label file or folder (paired by file name): class index per pixel."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The .czann container to write."),
    epochs: int = typer.Option(20, help="Maximum number of epochs."),
    steps_per_epoch: int = typer.Option(50, help="Batches per epoch."),
    depth: int = typer.Option(2, help="Poolings; tile sizes are multiples of 2**depth."),
    width: int = typer.Option(8, help="Channels at the first level (doubled per level)."),
    patch_size: int = typer.Option(64, help="Side of a training patch (multiple of 2**depth)."),
    batch_size: int = typer.Option(8, help="Patches per batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    cosine: bool = typer.Option(False, "--cosine", help="Anneal the learning rate to 0."),
    ema: float = typer.Option(
        0.0,
        help="Keep a moving average of the weights (decay per step, e.g. 0.998; 0: off) and "
        "validate and export it: steadier than the last step's weights.",
    ),
    batch_norm: bool = typer.Option(
        False, "--batch-norm", help="BatchNorm after each convolution (tiling stays exact)."
    ),
    init: str = typer.Option(
        "torch", help="First weights: torch (its default) or he (Kaiming, for deep networks)."
    ),
    warmup: int = typer.Option(0, help="Epochs over which the learning rate ramps up."),
    val_fraction: float = typer.Option(0.2, help="Share of images (or rows) for validation."),
    patience: int = typer.Option(5, help="Stop after this many epochs without improvement."),
    seed: int = typer.Option(0, help="Seed of weights, patches and augmentation."),
    classes: str | None = typer.Option(
        None, help="Comma-separated class names (default: background, class 1, …)."
    ),
    sparse: bool = typer.Option(
        False, "--sparse", help="Labels are 0 = unlabelled, k = class k-1 (scribbles)."
    ),
    three_d: bool = typer.Option(False, "--3d", help="Z×Y×X images and a 3-D U-Net."),
    augment: bool = typer.Option(True, help="Random flips, quarter turns and intensity."),
    normalize: str | None = typer.Option(
        None,
        help="percentile:LOW,HIGH or meanstd: normalise each image over its whole extent and "
        "record this in the model, which segment then applies (any intensity range works); "
        "default (none): the training set's mean/std are baked into the graph.",
    ),
    checkpoint: Path | None = typer.Option(None, help="Write a checkpoint here after every epoch."),
    resume: Path | None = typer.Option(None, help="Continue from this checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Train a U-Net on IMAGES + LABELS and export it, normalisation inside, as a .czann.

    Prints what was held out for validation and which epoch's weights were exported (the best;
    training stops early after PATIENCE epochs without improvement). Labels are checked first:
    an instance mask or the image given as the labels, gaps in the class numbers and one class
    only are refused; labels almost all 0 are warned about (scribbles need --sparse). NaN or
    infinite pixels are left out of the loss, with a warning.
    """
    from scopeml.train.files import pair_files, read_pair_files
    from scopeml.train.loop import train_unet

    _check_outputs(output, overwrite, checkpoint, (images, labels, output))
    names = None
    if classes is not None:
        names = [name.strip() for name in classes.split(",") if name.strip()]
        if len(names) < 2:
            _option_error(f"--classes names {len(names)} class; a classifier needs at least 2")
    config = _config(
        depth=depth, width=width, spatial_dims=3 if three_d else 2, patch_size=patch_size,
        batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr,
        cosine=cosine, ema=ema, batch_norm=batch_norm, init=init, warmup=warmup,
        val_fraction=val_fraction, patience=patience, seed=seed, augment=augment,
        normalize=normalize,  # "none": raw values by choice (unwarned; the default warns)
    )  # fmt: skip
    pairs = pair_files(images, labels)
    pixels, label_images = read_pair_files(pairs, spatial_dims=config.spatial_dims)
    try:
        result = train_unet(pixels, label_images, config, classes=names, sparse=sparse,
                            checkpoint=checkpoint, resume=resume, progress=not quiet,
                            files=pairs)  # fmt: skip
    except KeyboardInterrupt:
        typer.echo(f"aborted: {_kept(checkpoint, config)}", err=True)
        raise typer.Exit(130) from None
    _save_trained(result, output, overwrite)
    for line in _summary(result, output, resume):
        typer.echo(line)


def _check_outputs(
    output: Path, overwrite: bool, checkpoint: Path | None, given: tuple[Path, ...]
) -> None:
    """Refuse, before hours of training, an output that is not a new .czann file (unless
    ``overwrite``) and a checkpoint that is a folder or would replace an input or the output."""
    from scopeml.io.replace import check_output_file

    if output.suffix.lower() != ".czann":
        raise InvalidRequestError("the output must end in .czann", path=output)
    check_output_file(output, overwrite=overwrite)
    if checkpoint is None:
        return
    if checkpoint.is_dir():
        raise InvalidRequestError("is a folder; a checkpoint is written as a file", path=checkpoint)
    for path in given:
        if checkpoint.resolve() == path.resolve():
            raise InvalidRequestError(
                f"the checkpoint would replace the input or output {path}", path=checkpoint
            )


def _option_error(problem: str) -> NoReturn:
    """A bad option: one line that names no file (exit 2)."""
    typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(2)


def _config(**options: Any) -> Any:
    """The :class:`TrainConfig` of the options; a bad value is an option error."""
    from scopeml.train.loop import TrainConfig

    try:
        return TrainConfig(**options)
    except InvalidRequestError as err:
        _option_error(err.problem)


def _kept(checkpoint: Path | None, config: Any) -> str:
    """What an interrupted training keeps, and how to continue it, in one sentence."""
    if checkpoint is None or not checkpoint.is_file():
        return "training stopped; no checkpoint was written (--checkpoint PATH keeps every epoch)"
    try:
        from scopeml.train.checkpoint import load_checkpoint

        done = f" keeps {int(load_checkpoint(checkpoint)['epoch'])} of {config.epochs} epochs"
    except Exception:  # said without the count rather than not at all
        done = " is kept"
    return (
        f"training stopped; the checkpoint {checkpoint}{done}: continue with the same "
        f"command and --resume {checkpoint}"
    )


def _summary(result: Any, output: Path, resume: Path | None) -> list[str]:
    """What the command says when done: the validation data, whether anything was trained
    (a resumed run), which epoch's weights were written and why training ended there."""
    history, config = result.history, result.config
    lines = [f"validation: {result.validation}"]
    if resume is not None and len(history) == result.resumed_epochs:
        lines.append(f"nothing trained: {_finished(result, resume)}")
    if not history or result.exported_epoch is None:
        return [*lines, f"wrote {output}"]
    record = history[result.exported_epoch - 1]
    which = "best" if "val_loss" in record else _without_validation(config)
    shown = ", ".join(
        f"{k} {record[k]:.4g}" for k in ("loss", "val_loss", "val_mean_iou") if k in record
    )
    lines.append(
        f"wrote {output}: {which} of {_epochs(len(history))}: epoch {result.exported_epoch}, "
        f"{shown}"
    )
    if result.stopped_early and len(history) > result.resumed_epochs:
        lines.append(
            f"stopped early after epoch {len(history)}: no improvement for "
            f"{config.patience} epochs (--patience {config.patience})"
        )
    return lines


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def _without_validation(config: Any) -> str:
    """Which epoch is exported without validation images: the weight average's last, else
    the best by training loss."""
    return "last" if config.ema else "best (by training loss)"


def _finished(result: Any, resume: Path) -> str:
    """Why a resumed checkpoint trained no further, and how to continue it."""
    n, config = len(result.history), result.config
    if result.stopped_early:
        return (
            f"{resume} had stopped early at epoch {n} (no improvement for "
            f"{config.patience} epochs, --patience {config.patience}); a larger --patience "
            "continues it"
        )
    return (
        f"{resume} had trained {_epochs(n)} (--epochs {config.epochs}); a larger --epochs "
        "continues it"
    )


def _save_trained(result: Any, output: Path, overwrite: bool) -> None:
    """Save a finished training at ``output``; a file that appeared there while it trained
    is kept, and the model saved beside it (``model.1.czann``), never lost."""
    try:
        result.save(output, overwrite=overwrite)
    except InvalidRequestError:
        if overwrite or not output.exists():
            raise
        kept = next(
            kept
            for k in range(1, 10_000)
            if not (kept := output.with_name(f"{output.stem}.{k}{output.suffix}")).exists()
        )
        result.save(kept)
        raise InvalidRequestError(
            f"appeared while the network trained and is kept; the trained model is {kept}",
            path=output,
        ) from None
