"""What a model is fed, checked against what it was trained on: channels by name, intensity range.

A model may carry a training record, ``model.info`` (a pixel classifier does), with

- ``"channels"``: the names of the image channels it was trained on, in its order;
- ``"intensity_range"``: ``{"percentiles": [LOW, HIGH], "low": [...], "high": [...]}``, the
  training pixels' percentiles per channel.

Before a run, :func:`fit_model_inputs` selects the recorded channels by name from an image that
has them (when the caller chose none) and warns once when the image's intensities are far from
the training range (a classifier trained on 16-bit pixels sees an 8-bit image as all dark).
:func:`channel_mismatch` words the error when the channels still do not fit
(:func:`chosen_channels_mismatch` when the caller chose them).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scopeml.errors import InvalidRequestError, count, find_stack_level, summarize
from scopeml.io.image import ARRAY_AXES, Image, names_no_channels
from scopeml.model.spec import Model
from scopeml.tiling.normalize import parse_normalize
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.scale import model_name

#: An image whose high percentile is this many times above or below the training one is
#: warned about.
RANGE_FACTOR = 10.0
#: The sample of an image's intensities: up to GRID × GRID windows of WINDOW² pixels.
GRID = 4
WINDOW = 256


def recorded_channels(model: Model) -> tuple[str, ...] | None:
    """The channel names ``model`` was trained on, if its training record has them.

    Examples
    --------
    >>> class Trained:
    ...     info = {"channels": ["DAPI"]}
    >>> recorded_channels(Trained()), recorded_channels(object())
    (('DAPI',), None)
    """
    names = _record(model).get("channels")
    if not isinstance(names, (list, tuple)) or not names:
        return None
    return tuple(str(name) for name in names)


@dataclasses.dataclass(frozen=True)
class ChannelOption:
    """How a caller chooses an image's channels, as :func:`channel_mismatch` names the fix:
    the option's ``name`` and an ``example`` of it choosing channels by name (a server job
    has no command line: its words are the job's ``channels`` field)."""

    name: str
    example: Callable[[Sequence[str]], str]


#: The command line's and Python's words (the default).
CLI_CHANNELS = ChannelOption(
    "--channels (channels= in Python)", lambda names: f"--channels {','.join(names)}"
)


def channel_mismatch(image: Image, model: Model, option: ChannelOption = CLI_CHANNELS) -> str:
    """The message for an image whose channel count differs from the model's: both counts,
    the image's channel names, what the model was trained on, and the fix (chosen with
    ``option``: the command line's ``--channels`` unless the caller has other words).

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Nuclei:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
    ...                      name="nuclei")
    >>> pixels = np.zeros((1, 1, 3, 1, 2, 2))
    >>> image = Image(pixels, channel_names=["GFP", "DAPI", "BF"], path="a.tif")
    >>> print(channel_mismatch(image, Nuclei()))  # doctest: +NORMALIZE_WHITESPACE
    image has 3 channels; model 'nuclei' expects 1: choose it with --channels
    (channels= in Python) from GFP, DAPI, BF
    """
    spec = model.spec
    have, want = image.sizes["C"], spec.in_channels
    names = summarize(image.channel_names, head=8)
    trained = recorded_channels(model)
    message = f"image has {count(have, 'channel')}; model {model_name(model)!r} expects {want}"
    if trained:
        message += f", trained on {', '.join(trained)}"
    if have < want:
        message += f": give an image with {want} (this one has {names})"
    else:
        which = "it" if want == 1 else f"{want} of them"
        message += f": choose {which} with {option.name} from {names}"
        if trained and all(name in image.channel_names for name in trained):
            message += f", e.g. {option.example(trained)}"
    told = getattr(image.data, "axes", None) not in (None, *ARRAY_AXES.values())  # axes=
    if image.path is None and have > want and image.sizes["Z"] == 1 and not told:
        message += (" (an array is read as C×Y×X or C×Z×Y×X unless axes= names its axes: "
                    "a Z stack is axes='ZYX' or Z[None], an RGB picture axes='YXC')")  # fmt: skip
    return message


def chosen_channels_mismatch(
    image: Image, model: Model, chosen: Sequence[int | str], names: Sequence[str]
) -> str:
    """The message for channels ``chosen`` (``--channels``, ``channels=``) that the model
    cannot take as many of: what the choice selected (``image``, the view it made), the
    model's count and what to choose from (``names``: every channel of the image), so the
    user is not told to use the option just used.

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Nuclei:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
    ...                      name="nuclei")
    >>> view = Image(np.zeros((1, 1, 2, 1, 2, 2)), channel_names=["DAPI", "GFP"], path="a.tif")
    >>> print(chosen_channels_mismatch(view, Nuclei(), (0, 1), ["DAPI", "GFP", "BF"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    --channels 0,1 (channels= in Python) selects 2 channels (DAPI, GFP); model 'nuclei'
    expects 1: choose 1 of DAPI, GFP, BF
    """
    want, trained = model.spec.in_channels, recorded_channels(model)
    selected = summarize(image.channel_names, head=8)
    message = (
        f"--channels {','.join(map(str, chosen))} (channels= in Python) selects "
        f"{count(image.sizes['C'], 'channel')} ({selected}); model {model_name(model)!r} "
        f"expects {want}"
    )
    if trained:
        message += f", trained on {', '.join(trained)}"
    if len(names) < want:
        return message + f": give an image with {want} (this one has {summarize(names, head=8)})"
    message += f": choose {want} of {summarize(names, head=8)}"
    if trained and all(name in names for name in trained):
        message += f", e.g. {CLI_CHANNELS.example(trained)}"
    return message


def _unnamed_elsewhere(model: Model, trained: Sequence[str], names: Sequence[str]) -> bool:
    """Whether an image whose file names no channels is not known to be laid out as the one
    the model's channels were chosen from, where those are named as a file naming none names
    them (``C0``…``Ck``, in order: ``C1`` alone was chosen from a larger file), and that file
    had another number of channels than this image (a model recording none: any). A model
    trained on a one-channel file ran on the first of an RGB array read as 960 channels
    (Y×X×3 taken for C×Y×X), with a warning only."""
    if not (names_no_channels(trained) and names_no_channels(names)):
        return False
    source = _record(model).get("image_channels")
    return not isinstance(source, int) or source != len(names)


def fit_model_inputs(
    image: Image, image_ref: Any, model: Model, options: SegmentOptions
) -> tuple[Image, Any, SegmentOptions]:
    """The image, its worker reference and the options a run should use with ``model``.

    With no channels chosen (``options.channels`` is ``None``) and a model whose training
    record names channels the image has, those are selected by name: the options then name
    them (so the run's record in the store says so), ``image_ref`` (a
    :class:`~scopeml.tiling.execute.LoadRef` whose last argument is the channel selection)
    reopens the same view, and one warning says which channels were taken. Then
    :func:`warn_intensity_range`. Anything else is left to the engine's check.
    """
    trained = recorded_channels(model)
    names = image.channel_names
    if (
        options.channels is None
        and trained
        and tuple(names) != trained
        and all(name in names for name in trained)
        and len(trained) == model.spec.in_channels
        and not _unnamed_elsewhere(model, trained, names)  # a file's C0 is not another's
    ):
        image = image.select_channels(list(trained))
        options = dataclasses.replace(options, channels=trained)
        if image_ref is not None:
            image_ref = type(image_ref)(image_ref.loader, (*image_ref.args[:-1], trained))
        warnings.warn(
            f"model {model_name(model)!r} was trained on {_noun(len(trained), 'channel')} "
            f"{', '.join(trained)}: using the image's {', '.join(trained)} (of its "
            f"{summarize(names, head=8)}) "
            "(choose others with --channels, channels= in Python)",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    warn_intensity_range(image, model, options)
    return image, image_ref, options


def check_raw_model(model: Model, normalize: str | None) -> None:
    """Refuse to normalise the input of a model trained on raw intensities (one that records
    their range, as a pixel classifier does): it saw values of 0..1 where it was trained on,
    say, 33000..35000, and found nothing, without a word.

    >>> from scopeml.model.spec import ModelSpec
    >>> class Trained:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
    ...                      name="dapi")
    ...     info = {"intensity_range": {"percentiles": [0.1, 99.9], "low": [100], "high": [3800]}}
    >>> check_raw_model(Trained(), "none"), check_raw_model(Trained(), None)
    (None, None)
    >>> check_raw_model(Trained(), "meanstd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: normalize 'meanstd': model 'dapi' works on the raw ...
    """
    recorded = _recorded_range(model)
    if parse_normalize(normalize)[0] == "none" or recorded is None:  # a bad value raises
        return
    _, low, high = recorded
    span = ", ".join(f"{_g(lo)}..{_g(hi)}" for lo, hi in zip(low, high, strict=True))
    raise InvalidRequestError(
        f"normalize {normalize!r}: model {model_name(model)!r} works on the raw intensities "
        f"it was trained on ({span}); normalised values would not match them: leave "
        "normalize out (retrain on images like this one if their range differs)"
    )


def warn_intensity_range(image: Image, model: Model, options: SegmentOptions) -> bool:
    """Warn once, naming the model and both ranges, when the image's high percentile is more
    than :data:`RANGE_FACTOR` times above or below the one recorded from the training pixels
    in some channel; whether it warned.

    The image side is a cheap sample (:func:`sample_range`). Nothing is checked for a model
    without a recorded range, a channel count that does not fit (the engine's error follows),
    or a run that normalises the image (the model then sees other values than the raw ones).

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Trained:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
    ...                      name="dapi")
    ...     info = {"intensity_range": {"percentiles": [0.1, 99.9], "low": [100], "high": [3800]}}
    >>> image = Image(np.arange(64, dtype=np.uint8).reshape(1, 1, 1, 1, 8, 8))
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_intensity_range(image, Trained(), SegmentOptions())
    True
    >>> print(caught[0].message)  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    model 'dapi' was trained on intensities 100..3800 (0.1..99.9th percentile); this image
    has 0.063..62.9: ...
    """
    recorded = _recorded_range(model)
    if recorded is None or image.sizes["C"] != len(recorded[1]):
        return False
    if parse_normalize(options.normalize)[0] != "none":
        return False
    percentiles, train_low, train_high = recorded
    scene = options.scene if options.scene is not None and image.sizes["S"] > 1 else 0
    low, high = sample_range(image, percentiles, scene=scene)
    far = [
        c
        for c in range(len(high))
        if train_high[c] > 0
        and not train_high[c] / RANGE_FACTOR <= high[c] <= train_high[c] * RANGE_FACTOR
    ]
    if not far:
        return False
    names = image.channel_names
    prefix = (lambda c: f"{names[c]} ") if len(high) > 1 else (lambda c: "")
    trained = ", ".join(f"{prefix(c)}{_g(train_low[c])}..{_g(train_high[c])}" for c in far)
    where = f"{image.path}: " if image.path else ""
    warnings.warn(
        f"{where}model {model_name(model)!r} was trained on intensities {trained} "
        f"({_g(percentiles[0])}..{_g(percentiles[1])}th percentile); "
        + _found_range([(prefix(c), low[c], high[c]) for c in far]),
        UserWarning,
        stacklevel=find_stack_level(),
    )
    return True


def _found_range(found: list[tuple[str, float, float]]) -> str:
    """The end of the range warning: the image's ranges (``(name prefix, low, high)`` per
    channel, NaN for a channel whose sample has no finite pixel) and what to make of them. A
    sample with no finite pixel is said to be so, not shown as a range such as ``0..0``."""
    if all(np.isnan(high) for _, _, high in found):
        return "this image's sampled pixels are all NaN or infinite: no intensities to compare"
    ranges = ", ".join(
        f"{name}no finite pixel" if np.isnan(high) else f"{name}{_g(low)}..{_g(high)}"
        for name, low, high in found
    )
    return (
        f"this image has {ranges}: its classes may be wrong (another bit depth or exposure? "
        "retrain on such images)"
    )


def sample_range(
    image: Image, percentiles: Sequence[float], *, scene: int = 0
) -> tuple[list[float], list[float]]:
    """Per-channel ``percentiles`` (low, high) of a cheap sample of one scene: up to
    :data:`GRID` × :data:`GRID` windows of :data:`WINDOW`² pixels spread over the middle time
    point and Z plane (a few chunk reads even on a slide scan). Non-finite pixels are left out;
    a channel with none left gives NaN..NaN (no range, which a warning must not show as one).

    Examples
    --------
    >>> image = Image(np.arange(100, dtype=np.uint16).reshape(1, 1, 1, 1, 10, 10))
    >>> sample_range(image, (0, 100))
    ([0.0], [99.0])
    """
    sizes = image.sizes
    t, z = sizes["T"] // 2, sizes["Z"] // 2
    parts = []
    for y in _starts(sizes["Y"]):
        for x in _starts(sizes["X"]):
            block = image.read(S=scene, T=t, Z=z, Y=slice(y, y + WINDOW), X=slice(x, x + WINDOW))
            parts.append(block.reshape(sizes["C"], -1))
    values = np.concatenate(parts, axis=1).astype(np.float64)
    low, high = [], []
    for channel in values:
        finite = channel[np.isfinite(channel)]
        lo, hi = np.percentile(finite, percentiles) if finite.size else (np.nan, np.nan)
        low.append(float(lo))
        high.append(float(hi))
    return low, high


def _starts(size: int) -> list[int]:
    """Window starts spread evenly over an axis (one window when it is short)."""
    if size <= WINDOW * GRID:
        return list(range(0, size, WINDOW))
    return [int(v) for v in np.linspace(0, size - WINDOW, GRID)]


def _record(model: Model) -> dict[str, Any]:
    info = getattr(model, "info", None)
    return info if isinstance(info, dict) else {}


def _recorded_range(model: Model) -> tuple[list[float], list[float], list[float]] | None:
    entry = _record(model).get("intensity_range")
    if not isinstance(entry, dict):
        return None
    try:
        percentiles = [float(v) for v in entry["percentiles"]]
        low = [float(v) for v in entry["low"]]
        high = [float(v) for v in entry["high"]]
    except (KeyError, TypeError, ValueError):
        return None
    if len(percentiles) != 2 or len(low) != len(high):
        return None
    return percentiles, low, high


def _noun(n: int, noun: str) -> str:
    return noun if n == 1 else f"{noun}s"


def _g(value: float) -> str:
    """A pixel value, short: whole numbers as such, others to 3 significant digits."""
    if value == int(value) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
