"""Train a :class:`~scopeml.train.unet.UNet` from image + label pairs.

Every epoch draws ``steps_per_epoch`` batches of augmented patches from the training images,
scores the held-out validation images (loss, per-class IoU and F1), keeps the best weights,
stops early when validation has not improved for ``patience`` epochs, and (if asked) writes a
checkpoint that :func:`train_unet` resumes from. Epoch ``e`` draws its patches from a generator
seeded with ``(seed, e)``, so a resumed run continues exactly where the interrupted one was.
Progress is reported, and training cancelled, through :mod:`scopeml.progress` (stage
``"train"``, unit ``"step"``).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from scopeml.errors import InvalidImageError, InvalidRequestError, find_stack_level, summarize
from scopeml.inputs import names_of
from scopeml.io.image import Image
from scopeml.io.nonfinite import replace_nonfinite
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress
from scopeml.train.checkpoint import load_checkpoint, save_checkpoint
from scopeml.train.data import (
    IGNORE,
    channel_statistics,
    check_pairs,
    normalize_globally,
    sample_patches,
    split_indices,
    split_validation,
    targets_from_labels,
    with_channel_axis,
)
from scopeml.train.labels import check_training_labels
from scopeml.train.metrics import class_scores, confusion_matrix
from scopeml.train.unet import ChannelsLastClassifier, Normalize, UNet, he_init

VAL_BLOCK = 256
#: What train_unet takes per image or label image: an array, a file or an ``Image``.
TrainingSource: TypeAlias = "np.ndarray | str | os.PathLike[str] | Image"


@dataclass(frozen=True)
class TrainConfig:
    """How to train; round-trips through :meth:`to_dict` / :meth:`from_dict` (checkpoints, CLI).

    ``patch_size`` is the spatial side of a training patch (a multiple of ``2**depth``);
    ``intensity`` is the amplitude of the random gain/offset augmentation in normalised units;
    ``class_weights`` weigh the cross-entropy per class (``None`` = equal); ``cosine`` anneals
    the learning rate from ``lr`` towards 0 over ``epochs`` (set per epoch, so resuming holds).
    ``ema`` > 0 keeps an exponential moving average of the weights (decay ``ema`` per step,
    torch's ``AveragedModel``): validation, the best weights and export then use the average,
    which is less at the mercy of the last steps' noise than the raw weights are (without
    validation images, the last average is exported). BatchNorm's running statistics are
    averaged with the weights.
    ``batch_norm`` adds BatchNorm after each convolution (fixed running statistics at
    inference, so tiling stays exact).
    ``init="he"`` draws the 3×3 convolutions' weights for ReLU (Kaiming normal, biases 0)
    instead of torch's default, whose smaller weights let a deep plain U-Net start out
    predicting one class for many epochs; ``warmup`` > 0 ramps the learning rate up linearly
    over that many first epochs (epoch ``e`` at ``(e + 1) / (warmup + 1)`` of its value).
    ``normalize`` (e.g. ``"percentile:1,99.8"``) normalises every image over its whole extent,
    as the engine does, and is recorded in the exported container instead of fixed training
    statistics: the model then works on any intensity range. ``None`` bakes the training
    set's mean/std into the graph (raw values in, as ZEN feeds a czann model), with a warning
    for integer images; ``"none"`` does the same by choice, unwarned.
    """

    depth: int = 2
    width: int = 8
    spatial_dims: int = 2
    patch_size: int = 64
    batch_size: int = 8
    epochs: int = 20
    steps_per_epoch: int = 50
    lr: float = 1e-3
    val_fraction: float = 0.2
    patience: int = 5
    seed: int = 0
    augment: bool = True
    intensity: float = 0.2
    class_weights: tuple[float, ...] | None = None
    cosine: bool = False
    normalize: str | None = None
    ema: float = 0.0
    batch_norm: bool = False
    init: str = "torch"
    warmup: int = 0

    def __post_init__(self) -> None:
        step = 2**self.depth
        if self.patch_size < step or self.patch_size % step:
            raise InvalidRequestError(
                f"patch_size {self.patch_size} must be a positive multiple of 2**depth = {step}"
            )
        for name in ("depth", "width", "batch_size", "epochs", "steps_per_epoch", "patience"):
            if getattr(self, name) < 1:
                raise InvalidRequestError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.spatial_dims not in (2, 3):
            raise InvalidRequestError(f"spatial_dims must be 2 or 3; got {self.spatial_dims}")
        if not 0 < self.lr <= 1:  # Adam's steps are about lr: above 1 it only diverges
            raise InvalidRequestError(f"lr must be in (0, 1]; got {self.lr}")
        if self.init not in ("torch", "he"):
            raise InvalidRequestError(f"init must be 'torch' or 'he'; got {self.init!r}")
        if self.warmup < 0:
            raise InvalidRequestError(f"warmup must be >= 0; got {self.warmup}")
        if not 0 <= self.ema < 1:
            raise InvalidRequestError(f"ema must be in [0, 1); got {self.ema}")
        if not 0 <= self.val_fraction < 1:
            raise InvalidRequestError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        bottom = self.batch_size * (self.patch_size // step) ** self.spatial_dims
        if self.batch_norm and bottom < 2:  # BatchNorm's statistics need two values
            raise InvalidRequestError(
                f"batch_norm needs batch_size 2 or a patch_size above 2**depth = {step}; "
                f"got batch_size {self.batch_size}, patch_size {self.patch_size}"
            )
        if self.normalize is not None:
            from scopeml.tiling.normalize import check_recordable

            check_recordable(self.normalize)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class_weights"] = None if self.class_weights is None else list(self.class_weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidRequestError(f"unknown training options {sorted(unknown)}")
        data = dict(data)
        if data.get("class_weights") is not None:
            data["class_weights"] = tuple(float(w) for w in data["class_weights"])
        return cls(**data)


@dataclass
class TrainResult:
    """A trained network with what export needs: its fixed normalisation, classes, history."""

    net: UNet
    normalize: Normalize
    classes: tuple[str, ...]
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    #: the epoch (from 1) whose weights :attr:`net` holds: the best by validation loss (else by
    #: training loss), or the last one (a weight average without validation images)
    exported_epoch: int | None = None
    #: whether training stopped before ``config.epochs``: ``patience`` epochs without improvement
    stopped_early: bool = False
    #: epochs the resumed checkpoint had already trained (0: not resumed)
    resumed_epochs: int = 0
    #: what was held out for validation, in words (``"1 of 4 images: c.tif"``)
    validation: str = ""

    @property
    def normalize_policy(self) -> str | None:
        """The global normalisation the exported container must record (``None``: baked in)."""
        return None if _raw(self.config.normalize) else self.config.normalize

    def classifier(self) -> ChannelsLastClassifier:
        """The exportable module: raw channels-last pixels in, probabilities out (eval mode)."""
        return ChannelsLastClassifier(self.net, self.normalize).eval()

    def save(
        self, path: str | os.PathLike[str], *, name: str = "scopeml U-Net", overwrite: bool = False
    ) -> Path:
        """Export the network as a ``.czann`` (as ``scopeml train unet -o`` writes it), to
        segment with: :func:`scopeml.segment` or any czann reader; an existing file at ``path``
        is refused unless ``overwrite``."""
        from scopeml.train.export import save_czann

        return save_czann(self.classifier(), path, classes=self.classes, model_name=name,
                          normalize=self.normalize_policy, overwrite=overwrite)  # fmt: skip


def masked_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over labelled pixels only (targets ``-1`` contribute nothing).

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 2)
    >>> float(masked_loss(logits, torch.tensor([[[0, -1]]])))  # ln 2
    0.6931...
    """
    return nn.functional.cross_entropy(logits, targets, weight=weight, ignore_index=IGNORE)


def train_unet(
    images: Sequence[TrainingSource],
    labels: Sequence[TrainingSource],
    config: TrainConfig | None = None,
    *,
    classes: Sequence[str] | None = None,
    sparse: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    progress: Progress = False,
    files: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]] | None = None,
) -> TrainResult:
    """Train a U-Net on ``C×[Z×]Y×X`` images (``[Z×]Y×X``: one channel) and their
    ``[Z×]Y×X`` label images.

    Parameters
    ----------
    images
        A list, one entry per image: arrays, files or ``Image`` objects (files are read as
        :func:`~scopeml.train_pixel_classifier` reads them; one scene and time point each).
        NaN or infinite pixels (in any channel) are left out of the loss, with one warning per
        image, and are 0 for the network, as ``segment`` feeds them.
    labels
        A list as long as ``images``: arrays, label files or ``Image`` objects. Dense: the
        class index of every pixel (0 = background). ``sparse=True``: 0 = unlabelled (ignored
        by the loss), ``k`` = class ``k - 1``. Checked first
        (:func:`~scopeml.train.labels.check_training_labels`): an instance mask or an image
        given as labels, gaps in the class numbers or one class only are refused; dense labels
        almost all 0 are warned about (scribbles without ``sparse``).
    classes
        Class names; their number is ``K``. Default: inferred from the largest label.
    checkpoint
        Written (atomically) after every epoch: weights, optimiser, history, best weights.
    resume
        A checkpoint to continue from; its network options must match ``config``. On other
        validation images than it was trained with (its last validation loss is not scored
        again), or with validation images where it had none, its best epoch is not compared
        with this run's: a warning saying which, and the weights kept are the best of this
        run's epochs.
    progress
        See :mod:`scopeml.progress`; silent by default, like every long call (``True``: a bar on
        stderr; the command line and ``scripts/train_nuclei.py`` show it). Stage ``"train"``
        counts steps (``unit="step"``) over all epochs, from the resumed one; ``metrics`` hold
        the last finished epoch's ``loss`` (and ``val_loss``, ``val_mean_iou``). An epoch's last
        step is reported once the epoch is recorded and its checkpoint written; early stopping
        ends the stage with ``total`` set to the steps run. A callback raising
        :class:`~scopeml.errors.Cancelled` stops training after the step in progress: the
        checkpoint keeps the last finished epoch, and ``resume=`` continues from it exactly.
    files
        The ``(image, labels)`` files each pair was read from, named in messages.

    A training loss that becomes NaN or infinite stops training with an
    :class:`~scopeml.errors.InvalidRequestError` (the checkpoint keeps the last finite epoch).

    Returns
    -------
    TrainResult
        ``net`` (the kept weights) with its fixed ``normalize`` and ``classes``; ``config``;
        ``history`` (one dict per epoch: ``loss``, and with validation images ``val_loss``,
        per-class ``val_iou_k``/``val_f1_k``, ``val_mean_iou``); ``exported_epoch`` (whose
        weights ``net`` holds), ``stopped_early``, ``resumed_epochs``, ``validation`` (what
        was held out, in words). ``.save(path)`` writes the ``.czann`` to segment with.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((1, 32, 32)).astype(np.float32)
    >>> config = TrainConfig(depth=1, width=2, patch_size=16, epochs=1, steps_per_epoch=2)
    >>> result = train_unet([image], [image[0] > 0.5], config, progress=False)
    >>> result.classes, len(result.history)
    (('background', 'class 1'), 1)
    >>> events = []
    >>> _ = train_unet([image], [image[0] > 0.5], config, progress=events.append)
    >>> [(e.done, e.total, sorted(e.metrics or {})) for e in events]
    [(0, 2, []), (1, 2, []), (2, 2, ['loss', 'val_loss', 'val_mean_iou'])]
    """
    config = config or TrainConfig()
    images, targets, classes, names = _prepared(images, labels, config, classes, sparse, files)
    train_x, train_y, val_x, val_y, mean, std = _training_data(images, targets, config)

    torch.manual_seed(config.seed)
    net = UNet(images[0].shape[0], len(classes), depth=config.depth, width=config.width,
               spatial_dims=config.spatial_dims, batch_norm=config.batch_norm)  # fmt: skip
    if config.init == "he":
        he_init(net)
    normalize = Normalize(mean, std, config.spatial_dims)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    weight = _class_weight(config, classes)
    average = _weight_average(net, config.ema) if config.ema else None
    state = {"epoch": 0, "history": [], "best": math.inf, "best_net": None, "stale": 0,
             "best_epoch": None}  # fmt: skip
    if resume is not None:
        state = _load_checkpoint(resume, net, normalize, optimizer, config, classes, average)
    resumed = state["epoch"]
    val_blocks = _validation_blocks(val_x, val_y, 2**config.depth)
    scored = net if average is None else average.module  # what is validated, kept and exported
    if resume is not None and val_blocks:
        why = _other_validation(
            state, partial(_validate, scored, normalize, val_blocks, len(classes), weight)
        )
        if why:
            warnings.warn(
                f"{resume}: {why}, so its best epoch is not compared: the best weights are "
                "chosen among this run's epochs",
                stacklevel=2,
            )
            state.update(best=math.inf, best_net=None, stale=0, best_epoch=None)

    counter = _StepCounter(as_progress(progress), config, state)
    step = partial(_train_step, net, normalize, optimizer, weight, config, average)
    for epoch in range(state["epoch"], config.epochs):
        if state["stale"] >= config.patience:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, epoch)
        net.train()
        loss = _train_epoch(step, train_x, train_y, config, epoch, counter.step)
        record = {"epoch": epoch + 1, "loss": loss}
        if val_blocks:
            record.update(_validate(scored, normalize, val_blocks, len(classes), weight))
            _check_loss("validation loss", record["val_loss"], epoch + 1, config)
        _record_epoch(state, record, scored)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, net, normalize, optimizer, config, classes, state, average)
        counter.epoch(record, stopping=state["stale"] >= config.patience)
    # without validation images the best epoch is the raw weights' (training loss): the last
    # average, not the average at that epoch, is the steadier choice
    kept = state["best_net"] if val_blocks or average is None else None
    net.load_state_dict(kept or scored.state_dict())
    net.eval()
    return TrainResult(
        net, normalize, classes, config, state["history"],
        exported_epoch=state["best_epoch"] if kept else state["epoch"] or None,
        stopped_early=state["stale"] >= config.patience and state["epoch"] < config.epochs,
        resumed_epochs=resumed,
        validation=_held_out(names, config, val_x),
    )  # fmt: skip


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (from 0): cosine-annealed over ``epochs`` if asked, and
    ramped up over the first ``warmup`` epochs. A function of the epoch alone, so a resumed
    run (also one whose ``epochs`` grew: a warm restart) continues the same schedule."""
    lr = config.lr
    if config.cosine:
        lr *= 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if epoch < config.warmup:
        lr *= (epoch + 1) / (config.warmup + 1)
    return lr


def _weight_average(net: UNet, decay: float) -> AveragedModel:
    """The moving average of ``net``'s weights and of its buffers (BatchNorm's running
    statistics): the averaged weights are evaluated with statistics averaged alike, not with
    the live network's, which belong to other weights."""
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _prepared(
    images: Sequence[TrainingSource],
    labels: Sequence[TrainingSource],
    config: TrainConfig,
    classes: Sequence[str] | str | None,
    sparse: bool,
    files: Sequence[tuple[Any, Any]] | None,
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[str, ...], list[str]]:
    """Images (``C×[Z×]Y×X``) and loss targets after checking them, the class names (given,
    or ``background, class 1, …`` up to the largest label), and the images' names."""
    from scopeml.train.files import training_arrays

    images, labels, read = training_arrays(images, labels, spatial_dims=config.spatial_dims)
    files = files if files is not None else read
    dims = config.spatial_dims
    images = [with_channel_axis(_pixels(image, i), dims) for i, image in enumerate(images)]
    labels = [np.asarray(label) for label in labels]
    check_pairs(images, labels, config.spatial_dims)
    if files is not None and len(files) != len(images):
        raise InvalidRequestError(f"{len(files)} file pairs named for {len(images)} images")
    label_names = [os.fspath(pair[1]) for pair in files] if files is not None else None
    given = names_of(classes)  # "bg,nucleus" as the command line's --classes
    if given is not None and len(given) < 2:
        raise InvalidRequestError(f"a classifier needs at least 2 classes; got {len(given)}")
    classes = check_training_labels(labels, given, sparse=sparse, names=label_names)
    targets = [
        targets_from_labels(x, sparse=sparse, n_classes=len(classes), path=name)
        for x, name in zip(labels, label_names or [None] * len(labels), strict=True)
    ]
    names = [os.fspath(pair[0]) for pair in files] if files else []
    names = names or [f"image {index}" for index in range(len(images))]
    for image, target, name in zip(images, targets, names, strict=True):
        _leave_out_nonfinite(image, target, name)
    return images, targets, classes, names


def _pixels(image: Any, index: int) -> np.ndarray:
    """An image given as an array (or nested lists) as numpy, refusing what holds no pixels."""
    pixels = np.asarray(image)
    if pixels.dtype.kind not in "biuf":
        raise InvalidImageError(
            f"image {index} pixels are {pixels.dtype}; scopeml computes with integer or float "
            f"pixels (a {type(image).__name__} was given)"
        )
    return pixels


def _leave_out_nonfinite(image: np.ndarray, target: np.ndarray, name: str) -> None:
    """Leave the NaN or infinite pixels of ``image`` (in any channel) out of the loss (their
    targets ignored), with one warning; :func:`_training_data` gives them the value 0."""
    _, invalid = replace_nonfinite(image)
    if invalid is None:
        return
    target[invalid] = IGNORE
    warnings.warn(
        f"{name}: {int(np.count_nonzero(invalid))} pixels are NaN or infinite: they are left "
        "out of training (their labels ignored) and 0 for the network, as segment reads them",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _held_out(names: list[str], config: TrainConfig, val_x: list[np.ndarray]) -> str:
    """What :func:`split_validation` held out for validation, in words."""
    if not val_x:
        return "none (val_fraction 0)"
    if len(names) == 1:
        rows = val_x[0].shape[-2]
        return f"the last {rows} rows (Y) of {os.path.basename(names[0])}"
    held, _ = split_indices(len(names), config.val_fraction, config.seed)
    shown = summarize(os.path.basename(names[i]) for i in held)
    return f"{len(held)} of {len(names)} images: {shown}"


def _training_data(
    images: list[np.ndarray], targets: list[np.ndarray], config: TrainConfig
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray], list, list]:
    """Training and validation images and targets (images with no labelled pixel left out),
    normalised as ``config`` says (NaN or infinite pixels 0), and the per-channel mean and std
    the network applies."""
    patch_shape = (config.patch_size,) * config.spatial_dims
    for index, target in enumerate(targets):
        if any(s < p for s, p in zip(target.shape, patch_shape, strict=True)):
            raise InvalidRequestError(
                f"image {index} of shape {target.shape} is smaller than the patch {patch_shape}"
            )
    train_x, train_y, val_x, val_y = split_validation(
        images, targets, config.val_fraction, patch_shape, config.seed
    )
    keep = [i for i, y in enumerate(train_y) if np.any(y >= 0)]
    if not keep:
        raise InvalidRequestError("no labelled pixels left for training after the validation split")
    train_x, train_y = [train_x[i] for i in keep], [train_y[i] for i in keep]
    if _raw(config.normalize):  # statistics of the finite pixels; the others are 0, raw
        _warn_baked_statistics(images, config.normalize)
        mean, std = channel_statistics(train_x)
    else:  # NaN or infinite pixels are left out of the statistics, then 0, as segment does
        n_channels = images[0].shape[0]
        mean, std = [0.0] * n_channels, [1.0] * n_channels
        train_x = [normalize_globally(x, config.normalize) for x in train_x]
        val_x = [normalize_globally(x, config.normalize) for x in val_x]
    train_x = [replace_nonfinite(x)[0] for x in train_x]
    val_x = [replace_nonfinite(x)[0] for x in val_x]
    return train_x, train_y, val_x, val_y, mean, std


def _raw(policy: str | None) -> bool:
    """Whether ``normalize`` leaves the pixels raw: ``None`` (the default) or ``"none"``."""
    return policy is None or policy.strip().lower() == "none"


def _warn_baked_statistics(images: list[np.ndarray], policy: str | None) -> None:
    """Warn once when integer images train without a normalisation policy by default: the
    training set's mean/std are then baked into the graph, and a model trained on one
    camera's counts finds nothing on another's. ``normalize="none"`` chooses it, unwarned."""
    kinds = sorted({str(x.dtype) for x in images if np.issubdtype(x.dtype, np.integer)})
    if policy is not None or not kinds:
        return
    warnings.warn(
        f"the images are {', '.join(kinds)} and no normalisation is chosen: their mean/std are "
        "baked into the model, which then fits only images of this intensity range; "
        "TrainConfig(normalize='percentile:1,99.8') (--normalize percentile:1,99.8) records "
        "a whole-image normalisation that segment applies to any image "
        "(normalize='none' keeps the baked statistics without this warning)",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _class_weight(config: TrainConfig, classes: tuple[str, ...]) -> torch.Tensor | None:
    """The loss's class weights as a tensor, checked against the number of classes."""
    if config.class_weights is None:
        return None
    if len(config.class_weights) != len(classes):
        raise InvalidRequestError(
            f"{len(config.class_weights)} class weights for {len(classes)} classes"
        )
    return torch.tensor(config.class_weights, dtype=torch.float32)


def _train_epoch(
    step: Callable[[np.ndarray, np.ndarray], float],
    train_x: list[np.ndarray],
    train_y: list[np.ndarray],
    config: TrainConfig,
    epoch: int,
    advance: Callable[[], Any],
) -> float:
    """One epoch of ``config.steps_per_epoch`` steps on random patches; the mean loss.

    The patch generator and torch are seeded from ``(seed, epoch)``, so a resumed run draws
    the same patches as an uninterrupted one.
    """
    rng = np.random.default_rng([config.seed, epoch])
    torch.manual_seed(config.seed * 100_003 + epoch)
    patch_shape = (config.patch_size,) * config.spatial_dims
    losses = []
    for _ in range(config.steps_per_epoch):
        batch, batch_targets = sample_patches(
            train_x, train_y, patch_shape, config.batch_size, rng, augment=config.augment
        )
        losses.append(step(batch, batch_targets))
        _check_loss("training loss", losses[-1], epoch + 1, config)
        advance()
    return float(np.mean(losses))


def _check_loss(name: str, value: float, epoch: int, config: TrainConfig) -> None:
    """Stop a training whose loss is no longer finite: its weights are lost, and a model
    that answers NaN must never be written."""
    if not math.isfinite(value):
        raise InvalidRequestError(
            f"the {name} became {value} in epoch {epoch}: training diverged and no model is "
            f"written (a checkpoint keeps the last finite epoch); try a smaller learning rate "
            f"than {config.lr} (--lr), or check the images for extreme values"
        )


def _train_step(
    net: UNet,
    normalize: Normalize,
    optimizer: torch.optim.Optimizer,
    weight: torch.Tensor | None,
    config: TrainConfig,
    average: AveragedModel | None,
    batch: np.ndarray,
    batch_targets: np.ndarray,
) -> float:
    """One optimiser step on a batch (with random gain and offset when augmenting), then the
    weights' moving average if any; the batch's loss."""
    x = normalize(torch.from_numpy(batch))
    if config.augment and config.intensity > 0:
        shape = (len(x), 1) + (1,) * config.spatial_dims
        gain = torch.exp(torch.empty(shape).uniform_(-config.intensity, config.intensity))
        x = x * gain + torch.empty(shape).uniform_(-config.intensity, config.intensity)
    loss = masked_loss(net(x), torch.from_numpy(batch_targets), weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if average is not None:
        average.update_parameters(net)
    return loss.item()


def _other_validation(
    state: dict[str, Any], validate: Callable[[], dict[str, float]]
) -> str | None:
    """Why the checkpoint's best loss cannot be compared with this run's, else ``None``.

    The restored weights must score on this run's validation images (``validate()``) what the
    checkpoint recorded for its last epoch: else the images differ (a resume with other scenes),
    and a best loss measured on those would wrongly outrank every epoch of this run. A
    checkpoint trained without validation images kept its best by training loss, which is not
    comparable either (known without validating)."""
    if not state["history"]:
        return None
    last = state["history"][-1].get("val_loss")
    if last is None:
        return "the checkpoint was trained without validation images (its best is by training loss)"
    if not math.isclose(validate()["val_loss"], last, rel_tol=1e-5):
        return "the checkpoint was validated on other images (other training data)"
    return None


def _record_epoch(state: dict[str, Any], record: dict[str, float], net: UNet) -> None:
    """Add an epoch's record to ``state``; keep the best weights (by validation loss, else
    training loss) and count the epochs since the last improvement."""
    monitor = record.get("val_loss", record["loss"])
    if monitor < state["best"]:
        state["best"], state["stale"], state["best_epoch"] = monitor, 0, record["epoch"]
        state["best_net"] = copy.deepcopy(net.state_dict())
    else:
        state["stale"] += 1
    state["history"].append(record)
    state["epoch"] = record["epoch"]


_SHOWN = ("loss", "val_loss", "val_mean_iou")


class _StepCounter:
    """Turns training steps into ``train`` progress events (which may cancel between steps).

    An epoch's last step is reported by :meth:`epoch`, once the epoch is recorded and
    checkpointed, with its metrics: a callback cancelling there loses nothing.
    """

    def __init__(self, report: ProgressCallback, config: TrainConfig, state: dict) -> None:
        self.report, self.steps = report, config.steps_per_epoch
        self.done = state["epoch"] * self.steps
        self.total = config.epochs * self.steps
        if state["stale"] >= config.patience or self.done > self.total:
            self.total = self.done  # resumed from a run that had stopped early, or gone further
        history = state["history"]
        self.metrics = _shown(history[-1]) if history else None
        self._send()

    def step(self) -> None:
        """One optimiser step done (the epoch's last waits for :meth:`epoch`)."""
        self.done += 1
        if self.done % self.steps:
            self._send()

    def epoch(self, record: dict[str, float], *, stopping: bool) -> None:
        """The epoch is recorded; ``stopping``: early stopping ends the stage here."""
        self.metrics = _shown(record)
        if stopping:
            self.total = self.done
        self._send()

    def _send(self) -> None:
        self.report(ProgressEvent("train", self.done, self.total, "step", self.metrics))


def _shown(record: dict[str, float]) -> dict[str, float]:
    """The figures of an epoch's record that progress events carry."""
    return {name: record[name] for name in _SHOWN if name in record}


def _validation_blocks(
    images: list[np.ndarray], targets: list[np.ndarray], step: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut validation images into blocks of at most ``VAL_BLOCK`` per side, multiples of step."""
    blocks = []
    for image, target in zip(images, targets, strict=True):
        side = [max(step, min(s, VAL_BLOCK) // step * step) for s in target.shape]
        counts = [max(1, s // b) for s, b in zip(target.shape, side, strict=True)]
        for corner in np.ndindex(*counts):
            region = tuple(
                slice(c * b, min(c * b + b, s))
                for c, b, s in zip(corner, side, target.shape, strict=True)
            )
            block_target = target[region]
            if block_target.shape != tuple(side) or not np.any(block_target >= 0):
                continue
            blocks.append(
                (
                    torch.from_numpy(
                        np.ascontiguousarray(image[(slice(None), *region)], np.float32)
                    ),
                    torch.from_numpy(np.ascontiguousarray(block_target)),
                )
            )
    return blocks


@torch.no_grad()
def _validate(
    net: UNet,
    normalize: Normalize,
    blocks: list[tuple[torch.Tensor, torch.Tensor]],
    n_classes: int,
    weight: torch.Tensor | None,
) -> dict[str, float]:
    net.eval()
    confusion = np.zeros((n_classes, n_classes), np.int64)
    total, count = 0.0, 0
    for image, target in blocks:
        logits = net(normalize(image[None]))
        labelled = int((target >= 0).sum())
        total += float(masked_loss(logits, target[None], weight)) * labelled
        count += labelled
        confusion += confusion_matrix(logits[0].argmax(0).numpy(), target.numpy(), n_classes)
    scores = class_scores(confusion)
    out = {"val_loss": total / max(count, 1)}
    for k in range(n_classes):
        out[f"val_iou_{k}"] = scores["iou"][k]
        out[f"val_f1_{k}"] = scores["f1"][k]
    out["val_mean_iou"] = float(np.nanmean(scores["iou"]))
    out["val_mean_f1"] = float(np.nanmean(scores["f1"]))
    return out


def _save_checkpoint(
    path: str | os.PathLike[str],
    net: UNet,
    normalize: Normalize,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    classes: tuple[str, ...],
    state: dict[str, Any],
    average: AveragedModel | None = None,
) -> None:
    path = Path(path)
    payload = {
        "format": "scopeml-unet-checkpoint/1",
        "config": config.to_dict(),
        "classes": list(classes),
        "in_channels": int(normalize.mean.shape[1]),
        "net": net.state_dict(),
        "normalize": normalize.state_dict(),
        "optimizer": optimizer.state_dict(),
        **state,
    }
    if average is not None:
        payload["average"] = average.state_dict()
    save_checkpoint(path, payload)


def _load_checkpoint(
    path: str | os.PathLike[str],
    net: UNet,
    normalize: Normalize,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    classes: tuple[str, ...],
    average: AveragedModel | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint into the fresh objects; return the loop state to continue from.

    A checkpoint written without a weight average starts one from its weights.
    """
    from scopeml.errors import InvalidContainerError

    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != "scopeml-unet-checkpoint/1":
        raise InvalidContainerError("not a scopeml U-Net checkpoint", path=path)
    saved = TrainConfig.from_dict(payload["config"])
    changed = ("ema",) if saved.ema else ()  # a plain run's checkpoint may start an average
    for name in ("depth", "width", "spatial_dims", "batch_norm", *changed):
        if getattr(saved, name) != getattr(config, name):
            raise InvalidRequestError(
                f"checkpoint has {name} {getattr(saved, name)}; this run asks for "
                f"{getattr(config, name)}",
                path=path,
            )
    if tuple(payload["classes"]) != classes:
        raise InvalidRequestError(
            f"checkpoint has classes {payload['classes']}; this run has {list(classes)}", path=path
        )
    try:
        net.load_state_dict(payload["net"])
        normalize.load_state_dict(payload["normalize"])
        optimizer.load_state_dict(payload["optimizer"])
        if average is not None and "average" in payload:
            average.load_state_dict(payload["average"])
        elif average is not None:
            average.module.load_state_dict(net.state_dict())
    except (RuntimeError, KeyError, ValueError) as err:
        raise InvalidContainerError(
            f"checkpoint does not fit this network ({err})", path=path
        ) from err
    state = {key: payload[key] for key in ("epoch", "history", "best", "best_net", "stale")}
    return {**state, "best_epoch": payload.get("best_epoch", _best_epoch(state))}


def _best_epoch(state: dict[str, Any]) -> int | None:
    """The epoch whose score is the best one kept, for checkpoints that did not record it."""
    for record in state["history"]:
        if record.get("val_loss", record["loss"]) == state["best"]:
            return int(record["epoch"])
    return None
