"""``scopeml train unet`` — train a U-Net from image + label pairs and write a ``.czann``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    """Train a U-Net on IMAGES + LABELS and export it, normalisation inside, as a .czann."""
    from scopeml.io.replace import check_output_file
    from scopeml.train.files import read_pairs
    from scopeml.train.loop import TrainConfig, train_unet

    if output.suffix.lower() != ".czann":
        raise InvalidRequestError("the output must end in .czann", path=output)
    check_output_file(output, overwrite=overwrite)  # before hours of training
    if checkpoint is not None:
        if checkpoint.is_dir():
            raise InvalidRequestError(
                "is a folder; a checkpoint is written as a file", path=checkpoint
            )
        for given in (images, labels, output):
            if checkpoint.resolve() == given.resolve():
                raise InvalidRequestError(
                    f"the checkpoint would replace the input or output {given}", path=checkpoint
                )
    names = None
    if classes is not None:
        names = [name.strip() for name in classes.split(",") if name.strip()]
    config = TrainConfig(
        depth=depth,
        width=width,
        spatial_dims=3 if three_d else 2,
        patch_size=patch_size,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        lr=lr,
        cosine=cosine,
        ema=ema,
        batch_norm=batch_norm,
        init=init,
        warmup=warmup,
        val_fraction=val_fraction,
        patience=patience,
        seed=seed,
        augment=augment,
        normalize=None if normalize is None or normalize.strip().lower() == "none" else normalize,
    )
    pixels, label_images = read_pairs(images, labels, spatial_dims=config.spatial_dims)
    result = train_unet(
        pixels,
        label_images,
        config,
        classes=names,
        sparse=sparse,
        checkpoint=checkpoint,
        resume=resume,
        progress=not quiet,
    )
    _save_trained(result, output, overwrite)
    last = result.history[-1] if result.history else {}
    shown = {k: round(v, 4) for k, v in last.items() if k in ("loss", "val_loss", "val_mean_iou")}
    typer.echo(f"wrote {output} ({len(result.history)} epochs; {json.dumps(shown)})")


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
