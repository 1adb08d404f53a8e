"""Deep features: activations of a network's layers, upsampled to the pixel grid.

As ZEN's "Deep Feature Extraction" (VGG19 conv1_2, conv2_2, conv3_2) and napari-convpaint
(VGG16 layers at input scales 1, 2, 4): each tapped layer's maps are upsampled bilinearly
(half-pixel centres, edges clamped) to the input grid, optionally at several input scales (the
image averaged over ``s×s`` blocks first), optionally reduced by a fixed seeded Gaussian random
projection, and optionally followed by a filter bank (:class:`~scopeml.features.FeatureSet`).

Input mapping, stated once:

- **intensities**: ``(x - lo) / (hi - lo)`` with ``input_range = (lo, hi)`` fixed when the
  classifier is trained (the 0.1 and 99.9 percentiles of the training images, a global pass),
  so every tile of every image sees the same per-pixel map;
- **channels**: a 3-channel network (VGG) takes a 3-channel image as R, G, B; any other image
  feeds each channel separately as grey (copied to R, G and B), features channel-major; a
  network with ``C`` inputs takes a ``C``-channel image as it is, and a 1-input network takes
  each channel separately;
- **normalisation**: the network's own — ImageNet mean and std for VGG; none for a user's graph
  (it gets the range-mapped values).

Edges: the network sees the image mirrored by :attr:`DeepFeatures.halo` pixels at its true
edges (``np.pad`` mode ``symmetric``, which is scipy's ``reflect`` that the filter bank uses), its
maps then cropped back; fed as it is, its convolutions would zero-pad there, which looked like
an edge in the image and misclassified the outer pixels. A block says which of its sides are the
image's edges (``edges`` of :meth:`DeepFeatures.compute`); a whole image mirrors every side.

Exact tiling: the virtual image is the image mirrored by the halo on every side, the same for a
whole-image run and a tiled one. Block origins are multiples of :attr:`DeepFeatures.step` (the
network's step, the product of the strides the taps depend on, times the largest scale: a tap
after a U-Net's decoder has stride 1 but joins maps of 1/16 the size; the halo is a multiple of
it, so the mirrored margin keeps the pooling grids aligned) and blocks carry
:attr:`DeepFeatures.halo` pixels (half the receptive field plus one output pixel, at the largest
scale), so a block's core never sees what lies beyond its inner sides; a side whose length
(mirror included) is not a multiple of the step is extended at its far end by edge replication,
the same in a block as in the whole image. ONNX Runtime's convolutions may sum in a different
order for different block sizes (the projection sums in float64 for this reason), so tiled and
whole-image features agree to float32 rounding (:data:`TILING_RTOL`), asserted in the tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.features._bank import PRESETS as BANK_PRESETS
from scopeml.features._bank import FeatureSet, parse_features
from scopeml.features._network import (
    BUILTIN,
    FeatureNetwork,
    open_network,
    open_network_bytes,
    resolve_network,
    tap_alignment,
    tap_halo,
)
from scopeml.features._vgg import IMAGENET_MEAN, IMAGENET_STD, MissingWeightsError

#: Tiled and whole-image deep features agree within this relative tolerance (of each map's
#: largest magnitude); measured differences are ~1e-6.
TILING_RTOL = 1e-5
#: Most input scales, and the largest.
MAX_SCALE = 8
#: Maps upsampled together (bounds the temporaries of a block's upsampling).
UPSAMPLE_MAPS = 32
#: Core edge of a block of deep features (pixels): the maps of a block of 128² plus halo take
#: ~100 MB at 448 maps before projection.
BLOCK = 128

_ZEN_LAYERS = ("conv1_2", "conv2_2", "conv3_2")


@dataclass(frozen=True)
class DeepFeatures:
    """Which network layers, scales and projection make the deep features; see the module doc.

    Attributes
    ----------
    network
        ``vgg16``, ``vgg19`` (ImageNet weights), ``vgg16-random``, ``vgg19-random`` (untrained,
        seeded), or the path of an ``.onnx`` / ``.czann`` file.
    layers
        Names of the tensors to tap (VGG: ``conv1_2``, ``pool2``…; a graph: node output names).
    scales
        Input scales (1: full resolution, 2: half…), each a power of 2.
    projection
        Dimensions of the seeded Gaussian random projection of all deep maps, or ``None``.
    seed
        Seed of the projection and of a ``-random`` network's weights.
    filters
        A filter bank computed besides, or ``None``.
    input_range
        ``(lo, hi)`` intensities mapped to ``[0, 1]``; set by training (see :meth:`fit`).
    sha256
        Content hash of the network the classifier was trained with; a different one is refused.
    name
        Preset name or ``"custom"``.

    Examples
    --------
    >>> fs = parse_deep_features("vgg19-random:conv1_2")
    >>> fs.n_features(n_channels=1, spatial_dims=2), fs.halo, fs.step
    (64, 4, 1)
    >>> x = np.random.default_rng(0).random((1, 20, 20), dtype=np.float32)
    >>> fs.fit([x]).compute(x).shape
    (64, 20, 20)
    """

    network: str
    layers: tuple[str, ...]
    scales: tuple[int, ...] = (1,)
    projection: int | None = None
    seed: int = 0
    filters: FeatureSet | None = None
    input_range: tuple[float, float] | None = None
    sha256: str | None = None
    name: str = "custom"
    _net: list = field(default_factory=list, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        layers = tuple(str(n) for n in self.layers)
        scales = tuple(sorted({int(s) for s in self.scales}))
        if not layers or len(set(layers)) != len(layers):
            raise InvalidRequestError("deep features need one or more distinct layers")
        if not scales or any(s < 1 or s > MAX_SCALE or s & (s - 1) for s in scales):
            raise InvalidRequestError(
                f"scales {list(self.scales)}: each must be a power of 2 up to {MAX_SCALE}"
            )
        if self.projection is not None and not 1 <= int(self.projection) <= 4096:
            raise InvalidRequestError(f"projection to {self.projection} dims; must be 1..4096")
        if self.input_range is not None:
            lo, hi = (float(v) for v in self.input_range)
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise InvalidRequestError(f"input_range {self.input_range} is not lo < hi")
            object.__setattr__(self, "input_range", (lo, hi))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "network", resolve_network(self.network))  # nuclei → its file

    # -- the network, opened once -------------------------------------------------------------
    @property
    def net(self) -> FeatureNetwork:
        """The opened network; refuses one whose content differs from :attr:`sha256`."""
        if not self._net:
            try:
                net = open_network(self.network, self.layers, seed=self.seed)
            except MissingWeightsError as err:  # suggest the untrained variant of this spec
                raise err.for_spec(self._spec()) from err
            if self.sha256 is not None and net.sha256 != self.sha256:
                raise InvalidRequestError(
                    f"feature network {self.network} has SHA-256 {net.sha256[:12]}…; the "
                    f"classifier was trained with {self.sha256[:12]}… (a different network)"
                )
            self._net.append(net)
        return self._net[0]

    def _spec(self) -> str:
        """The spec this feature set was parsed from (rebuilt for a ``custom`` one)."""
        if self.name != "custom":
            return self.name
        scales = "" if self.scales == (1,) else "@" + ",".join(map(str, self.scales))
        bank = f"+{self.filters.name}" if self.filters is not None else ""
        return f"{self.network}:{','.join(self.layers)}{scales}{bank}"

    def pinned(self) -> DeepFeatures:
        """This feature set with :attr:`sha256` of the network it opens."""
        return self if self.sha256 else replace(self, sha256=self.net.sha256, _net=[self.net])

    # -- shape and geometry -------------------------------------------------------------------
    def _groups(self, n_channels: int) -> int:
        """How many times the network runs per scale: once (image fed as it is) or per
        channel."""
        return 1 if n_channels == self.net.in_channels else n_channels

    def n_deep(self, n_channels: int) -> int:
        if self.projection is not None:
            return int(self.projection)
        per = sum(t.channels for t in self.net.taps) * len(self.scales)
        return per * self._groups(n_channels)

    def n_features(self, n_channels: int, spatial_dims: int) -> int:
        """Features per pixel: deep maps (or projection dims), then the filter bank's."""
        _check_2d(spatial_dims)
        bank = self.filters.n_features(n_channels, spatial_dims) if self.filters else 0
        return self.n_deep(n_channels) + bank

    def names(self, n_channels: int, spatial_dims: int) -> list[str]:
        """``deep(layer,scale=s)[Cc][i]``, ``deep(projection)[i]``, then the bank's names."""
        _check_2d(spatial_dims)
        if self.projection is not None:
            net = Path(self.network).name  # a file moved with its classifier keeps its names
            names = [f"deep({net},projection)[{i}]" for i in range(self.projection)]
        else:
            groups = self._groups(n_channels)
            names = [
                f"deep({t.name},scale={s})" + (f"[C{c}]" if groups > 1 else "") + f"[{i}]"
                for c in range(groups)
                for s in self.scales
                for t in self.net.taps
                for i in range(t.channels)
            ]
        if self.filters:
            names += self.filters.names(n_channels, spatial_dims)
        return names

    @property
    def step(self) -> int:
        """Block origins are multiples of this (pooling grids must line up)."""
        return tap_alignment(self.net.taps, self.scales, self.net.step)

    @property
    def halo(self) -> int:
        bank = self.filters.halo if self.filters else 0
        deep = tap_halo(self.net.taps, self.scales)
        return self.step * math.ceil(max(deep, bank) / self.step)

    @property
    def block(self) -> int:
        return self.step * max(1, BLOCK // self.step)

    # -- computation ----------------------------------------------------------------------------
    def fit(self, images: Iterable[np.ndarray]) -> DeepFeatures:
        """Fix :attr:`input_range` from the 0.1 and 99.9 percentiles of the training images
        (given whole or block by block; a regular subsample of at most 2**16 values per
        array) and pin the network's hash."""
        if self.input_range is not None:
            return self.pinned()
        samples = []
        for image in images:
            flat = np.asarray(image, np.float32).reshape(-1)
            stride = max(1, flat.size // 2**16)
            samples.append(flat[::stride])
        values = np.concatenate(samples)
        values = values[np.isfinite(values)]  # NaN or infinite pixels are left out of training
        if not values.size:
            raise InvalidRequestError("the training images have no finite pixel values")
        lo, hi = (float(v) for v in np.percentile(values, (0.1, 99.9)))
        if not hi > lo:
            hi = lo + 1.0
        return replace(self, input_range=(lo, hi), _net=list(self._net)).pinned()

    def compute(
        self, image: np.ndarray, *, edges: Sequence[tuple[bool, bool]] | None = None
    ) -> np.ndarray:
        """Features of a ``C×Y×X`` image (or block): ``F×Y×X`` float32, :meth:`names` order.

        ``edges``: per spatial axis, whether the block's (low, high) side is the image's true
        edge, where the network sees the image mirrored (see the module doc); ``None``: the
        image is whole, so every side is. The filter bank reflects at the block's sides anyway.
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 3:
            raise InvalidRequestError(f"deep features are 2-D; got an image of shape {image.shape}")
        if self.input_range is None:
            raise InvalidRequestError("deep features need input_range; call fit() first")
        net = self.net
        lo, hi = self.input_range
        x = (image - np.float32(lo)) * np.float32(1.0 / (hi - lo))
        x, window = self._padded(x, edges)
        padded = list(x.shape[1:])
        inputs = self._network_inputs(x)
        projection = self._projection(image.shape[0])
        deep = []
        for group in inputs:
            for s in self.scales:
                small = _downsample(group, s) if s > 1 else group
                for tap, maps in zip(net.taps, net.run(small[None]), strict=True):
                    deep.append((maps, tap.stride * s))
        out_rows = self.n_deep(image.shape[0])
        out = np.zeros((out_rows, *padded), np.float32)
        row = 0
        for maps, factor in deep:
            if projection is not None:
                w = projection[row : row + len(maps)]  # float64: see _projection
                maps = np.tensordot(w.T, maps.astype(np.float64), axes=1).astype(np.float32)
                out += _upsample(maps, factor, padded)
                row += len(w)
            else:  # a few maps at a time: the upsampling's temporaries stay small
                for lo in range(0, len(maps), UPSAMPLE_MAPS):
                    part = maps[lo : lo + UPSAMPLE_MAPS]
                    out[row + lo : row + lo + len(part)] = _upsample(part, factor, padded)
                row += len(maps)
        out = out[(slice(None), *window)]
        if self.filters:
            from scopeml.features._filters import compute_features

            out = np.concatenate([out, compute_features(image, self.filters)])
        return out

    def _padded(
        self, x: np.ndarray, edges: Sequence[tuple[bool, bool]] | None
    ) -> tuple[np.ndarray, tuple[slice, ...]]:
        """``C×Y×X`` mirrored by :attr:`halo` on the sides that are the image's edges (the
        network would zero-pad there), then edge-replicated at its far ends to a multiple of
        :attr:`step` (pooling needs whole windows); and where ``x`` lies in the result."""
        shape = x.shape[1:]
        edges = ((True, True),) * len(shape) if edges is None else tuple(edges)
        if len(edges) != len(shape):
            raise InvalidRequestError(f"edges {edges} given for {len(shape)} spatial axes")
        mirror = [(self.halo * bool(low), self.halo * bool(high)) for low, high in edges]
        x = np.pad(x, [(0, 0), *mirror], "symmetric")
        x = np.pad(x, [(0, 0)] + [(0, -n % self.step) for n in x.shape[1:]], "edge")
        window = tuple(slice(m, m + n) for (m, _), n in zip(mirror, shape, strict=True))
        return x, window

    def _network_inputs(self, x: np.ndarray) -> list[np.ndarray]:
        """The range-mapped image as network inputs: one per group (see the module doc)."""
        net = self.net
        if x.shape[0] == net.in_channels:
            groups = [x]
        else:
            groups = [np.repeat(x[c : c + 1], net.in_channels, axis=0) for c in range(len(x))]
        if self.network in BUILTIN:  # VGG: ImageNet normalisation of RGB in [0, 1]
            mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
            std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
            groups = [(g - mean) / std for g in groups]
        return [np.ascontiguousarray(g, np.float32) for g in groups]

    def _projection(self, n_channels: int) -> np.ndarray | None:
        """The fixed ``(deep maps, dims)`` Gaussian matrix, scaled to keep distances. Applied in
        float64: BLAS sums in another order for another block size, and in float32 that moved a
        fifth of the features by one unit in the last place, enough to flip a forest's vote;
        in float64 the float32 result moves only for a sum within ~1e-15 of a rounding edge."""
        if self.projection is None:
            return None
        n_in = sum(t.channels for t in self.net.taps) * len(self.scales)
        n_in *= self._groups(n_channels)
        rng = np.random.default_rng(self.seed)
        w = rng.standard_normal((n_in, self.projection)) / math.sqrt(self.projection)
        return w.astype(np.float32)

    # -- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """As stored in a classifier: a network file as an absolute path (the container adds
        its path relative to itself, and may embed the network, see
        :func:`scopeml.pixel.save_classifier`)."""
        return {
            "kind": "deep",
            "name": self.name,
            "network": network_path(self.network),
            "sha256": self.pinned().sha256,
            "layers": list(self.layers),
            "scales": list(self.scales),
            "projection": self.projection,
            "seed": self.seed,
            "input_range": list(self.input_range) if self.input_range else None,
            "filters": self.filters.to_dict() if self.filters else None,
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base: str | PathLike[str] | None = None,
        embedded: bytes | None = None,
        allowed_roots: Sequence[str | PathLike[str]] | None = None,
    ) -> DeepFeatures:
        """Rebuild from :meth:`to_dict`; the network is opened and its hash checked.

        ``embedded``: the network's ONNX bytes stored with the classifier, used instead of any
        file. Otherwise a network file is looked for where :func:`find_network` looks, ``base``
        being the classifier's folder, only below ``allowed_roots`` where they are given.
        """
        try:
            fs = cls(
                network=str(data["network"]),
                layers=tuple(data["layers"]),
                scales=tuple(data.get("scales", (1,))),
                projection=None if data.get("projection") is None else int(data["projection"]),
                seed=int(data.get("seed", 0)),
                filters=FeatureSet.from_dict(data["filters"]) if data.get("filters") else None,
                input_range=tuple(data["input_range"]) if data.get("input_range") else None,
                sha256=str(data["sha256"]) if data.get("sha256") else None,
                name=str(data.get("name", "custom")),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, InvalidRequestError):
                raise
            raise InvalidRequestError(f"malformed deep feature set: {err!r}") from err
        if embedded is not None:
            net = open_network_bytes(fs.network, embedded, fs.layers)
            if fs.sha256 is not None and net.sha256 != fs.sha256:
                raise InvalidRequestError(
                    f"the embedded feature network has SHA-256 {net.sha256[:12]}…; the "
                    f"classifier was trained with {fs.sha256[:12]}…"
                )
            fs._net.append(net)
        elif fs.network not in BUILTIN:
            found = find_network(
                fs.network, data.get("network_relative"), base, allowed_roots=allowed_roots
            )
            fs = replace(fs, network=str(found))
        fs.net  # noqa: B018 (opens the network and checks its hash now, not at first tile)
        return fs


def network_path(network: str) -> str:
    """A builtin network's name, or a network file's absolute path (what a classifier stores)."""
    if network in BUILTIN:
        return network
    return str(Path(network).expanduser().resolve())


def find_network(
    network: str,
    relative: str | None,
    base: str | PathLike[str] | None,
    *,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
) -> Path:
    """The file of a classifier's feature network: at its recorded path, else at its path
    relative to the classifier's folder ``base``, else beside the classifier (same name).
    With ``allowed_roots`` (a server job) a place outside them is not even looked at.

    Raises :class:`InvalidRequestError` naming every place looked at.
    """
    from scopeml.io.confine import Confinement

    confinement = Confinement.of(allowed_roots)
    recorded = Path(network)
    places = [recorded]
    if base is not None:
        if relative:
            places.append(Path(base) / relative)
        places.append(Path(base) / recorded.name)
    places = list(dict.fromkeys(places))
    skipped = ""
    if confinement is not None:
        inside = [p for p in places if confinement.allows(os.path.realpath(p))]
        if len(inside) < len(places):
            skipped = "; places outside the allowed folders are not looked at"
        places = inside
    for place in places:
        if place.is_file():
            return place
    where = ", ".join(str(p) for p in places) or "nothing"
    raise InvalidRequestError(
        f"feature network {recorded.name} not found (looked at {where}{skipped}); "
        "copy it beside the classifier"
    )


def _vgg_preset(arch: str, layers: tuple[str, ...], projection: int | None = None) -> dict:
    return {"network": arch, "layers": layers, "projection": projection}


#: Named deep presets; ``+basic25`` / ``+basic33`` adds a filter bank to any of them, and a
#: ``-random`` network name (``vgg19-random-256``) the untrained network.
DEEP_PRESETS: dict[str, dict] = {
    "vgg19-64": _vgg_preset("vgg19", ("conv1_2",)),
    "vgg19-128": _vgg_preset("vgg19", ("conv2_2",)),
    "vgg19-256": _vgg_preset("vgg19", ("conv3_2",)),
    "vgg19-448": _vgg_preset("vgg19", _ZEN_LAYERS),
    "vgg19-50": _vgg_preset("vgg19", _ZEN_LAYERS, 50),
    "vgg19-70": _vgg_preset("vgg19", _ZEN_LAYERS, 70),
    "vgg16-convpaint": {"network": "vgg16", "layers": ("conv1_2",), "scales": (1, 2, 4)},
}


def parse_deep_features(spec: str | DeepFeatures | Mapping[str, Any]) -> DeepFeatures:
    """A deep preset (``vgg19-256``, ``vgg19-random-256+basic25``…) or ``network:layer,layer``
    (``vgg19:conv1_2,conv2_2``, ``model.onnx:/enc/Relu_1``), optionally ``@scales`` (``@1,2,4``)
    and ``+bank``.

    Examples
    --------
    >>> fs = parse_deep_features("vgg19-random-64@1,2+basic25")
    >>> fs.network, fs.layers, fs.scales, fs.filters.name
    ('vgg19-random', ('conv1_2',), (1, 2), 'basic25')
    """
    if isinstance(spec, DeepFeatures):
        return spec
    if isinstance(spec, Mapping):
        return DeepFeatures.from_dict(spec)
    text = _deep_first(str(spec).strip())
    deep, _, bank = text.partition("+")
    filters = parse_features(bank) if bank else None
    deep, _, scales_text = deep.partition("@")
    try:
        scales = tuple(int(s) for s in scales_text.split(",")) if scales_text else (1,)
    except ValueError as err:
        raise InvalidRequestError(f"cannot read scales {scales_text!r}") from err
    random = "-random" in deep
    preset = deep.replace("-random", "")
    if preset in DEEP_PRESETS:
        options = dict(DEEP_PRESETS[preset])
        if random:
            options["network"] += "-random"
        options.setdefault("scales", (1,))
        if scales_text:
            options["scales"] = scales
        return DeepFeatures(**options, filters=filters, name=text)
    network, sep, layers = deep.rpartition(":")
    if not sep or not network or not layers:
        raise InvalidRequestError(
            f"cannot read deep feature spec {text!r}: expected a preset "
            f"({', '.join(DEEP_PRESETS)}) or network:layer[,layer…]"
        )
    return DeepFeatures(network, tuple(layers.split(",")), scales, filters=filters, name="custom")


def is_deep_spec(spec: Any) -> bool:
    """Whether ``spec`` names deep features rather than a filter bank."""
    if isinstance(spec, DeepFeatures):
        return True
    if isinstance(spec, Mapping):
        return spec.get("kind") == "deep"
    if isinstance(spec, FeatureSet):
        return False
    return _names_deep(_deep_first(str(spec).strip()).partition("+")[0])


def _names_deep(part: str) -> bool:
    """Whether one part of a feature spec (before any ``+``) names a network's features."""
    from scopeml.model.registry import BUILTIN_MODELS

    text = part.partition("@")[0]
    return (
        text.replace("-random", "") in DEEP_PRESETS
        or (":" in text and text.rpartition(":")[0] in BUILTIN | set(BUILTIN_MODELS))
        or text.rpartition(":")[0].lower().endswith((".onnx", ".czann"))
    ) and text not in BANK_PRESETS


def _deep_first(text: str) -> str:
    """A combination in either order, the network's part first: ``basic25+vgg19-64`` is
    ``vgg19-64+basic25`` (it was refused as a filter spec, suggesting the network alone).

    >>> _deep_first("basic25+vgg19-random-64"), _deep_first("basic25")
    ('vgg19-random-64+basic25', 'basic25')
    """
    first, plus, second = text.partition("+")
    if plus and not _names_deep(first) and _names_deep(second):
        return f"{second}+{first}"
    return text


def _downsample(x: np.ndarray, s: int) -> np.ndarray:
    """Mean over ``s×s`` blocks of ``C×H×W`` (H, W multiples of ``s``)."""
    c, h, w = x.shape
    return x.reshape(c, h // s, s, w // s, s).mean(axis=(2, 4), dtype=np.float32)


def _upsample(maps: np.ndarray, factor: int, shape: list[int]) -> np.ndarray:
    """Bilinear upsampling by an integer ``factor`` (half-pixel centres, edges clamped):
    ``M×h×w`` → ``M×(h·factor)×(w·factor)`` float32; each output depends only on its two
    neighbours per axis and its phase, so blocks on the factor's grid agree with the whole."""
    if factor == 1:
        return maps
    for axis in (1, 2):
        n = maps.shape[axis]
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5
        lo = np.floor(pos).astype(np.intp)
        frac = (pos - lo).astype(np.float32)
        a = np.take(maps, np.clip(lo, 0, n - 1), axis=axis)
        b = np.take(maps, np.clip(lo + 1, 0, n - 1), axis=axis)
        shape_w = [1, 1, 1]
        shape_w[axis] = -1
        frac = frac.reshape(shape_w)
        maps = a + (b - a) * frac
    return maps[:, : shape[0], : shape[1]]


def _check_2d(spatial_dims: int) -> None:
    if spatial_dims != 2:
        raise InvalidRequestError(f"deep features are 2-D; got {spatial_dims} spatial dims")
