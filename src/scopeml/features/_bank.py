"""Which filters a feature set holds: families, scales, presets, names and the halo they need.

Pure description, no pixels: a :class:`FeatureSet` is a frozen list of ``(family, sigma)`` filters
that round-trips to a dict (it is stored in a classifier's ``model.json``) and knows its names
and its halo, so the tiling engine can make tiled features equal whole-image features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scopeml.errors import InvalidRequestError

#: Filter families and how many outputs each gives per channel in ``(2-D, 3-D)``.
FAMILIES: dict[str, tuple[int, int]] = {
    "gaussian_smoothing": (1, 1),
    "laplacian_of_gaussian": (1, 1),
    "gaussian_gradient_magnitude": (1, 1),
    "difference_of_gaussians": (1, 1),
    "structure_tensor_eigenvalues": (2, 3),
    "hessian_of_gaussian_eigenvalues": (2, 3),
}

#: ilastik's scales, in pixels.
SIGMAS = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)

#: The narrower Gaussian of a difference of Gaussians is ``DOG_RATIO * sigma`` (ilastik's ratio).
DOG_RATIO = 0.66

#: The structure tensor's gradient (inner) scale is ``sigma``, its integration (outer) scale
#: ``ST_OUTER_RATIO * sigma``.
ST_OUTER_RATIO = 0.5

#: The largest scale a feature set may use; bounds the halo and so the tile overhead.
MAX_SIGMA = 32.0
#: The most filters a feature set may hold (feature sets also come from untrusted files).
MAX_FILTERS = 256

_BASIC25 = {
    "gaussian_smoothing": (0.7, 1.0, 1.6, 3.5, 5.0),
    "laplacian_of_gaussian": (1.0, 1.6, 3.5, 5.0),
    "gaussian_gradient_magnitude": (1.0, 1.6, 3.5, 5.0),
    "difference_of_gaussians": (1.6, 3.5),
    "structure_tensor_eigenvalues": (1.6, 3.5),
    "hessian_of_gaussian_eigenvalues": (1.0, 1.6, 3.5),
}
_BASIC33_EXTRA = {
    "gaussian_smoothing": (10.0,),
    "laplacian_of_gaussian": (10.0,),
    "gaussian_gradient_magnitude": (10.0,),
    "difference_of_gaussians": (5.0,),
    "structure_tensor_eigenvalues": (5.0,),
    "hessian_of_gaussian_eigenvalues": (5.0,),
}


#: Up to this scale, gradient and Hessian are exact Gaussian derivative filters; above it,
#: central differences of the smoothed image, which reach one pixel beyond its support.
EXACT_DERIVATIVES_MAX_SIGMA = 2.0

#: Families made of gradient or Hessian entries.
_DERIVATIVES = {
    "laplacian_of_gaussian",
    "gaussian_gradient_magnitude",
    "structure_tensor_eigenvalues",
    "hessian_of_gaussian_eigenvalues",
}


def filter_radius(sigma: float, truncate: float) -> int:
    """Support radius of a Gaussian (derivative) filter, as :mod:`scipy.ndimage` computes it."""
    return int(truncate * float(sigma) + 0.5)


@dataclass(frozen=True)
class FeatureSet:
    """An ordered set of filters, each ``(family, sigma)``, applied to every channel.

    Attributes
    ----------
    filters
        ``(family, sigma)`` pairs; a family from :data:`FAMILIES`, ``sigma`` in pixels.
    truncate
        Filter support in standard deviations (``scipy.ndimage``'s ``truncate``).
    name
        ``"basic25"``, ``"basic33"`` or ``"custom"``; informative only.

    Examples
    --------
    >>> fs = FeatureSet((("gaussian_smoothing", 1.0), ("hessian_of_gaussian_eigenvalues", 1.6)))
    >>> fs.n_per_channel(2), fs.halo
    (3, 6)
    >>> fs.names(n_channels=1, spatial_dims=2)[0]
    'gaussian_smoothing(sigma=1)[C0]'
    """

    filters: tuple[tuple[str, float], ...]
    truncate: float = 4.0
    name: str = "custom"

    def __post_init__(self) -> None:
        filters = tuple((str(f), float(s)) for f, s in self.filters)
        if not 0 < len(filters) <= MAX_FILTERS:
            raise InvalidRequestError(
                f"a feature set holds 1 to {MAX_FILTERS} filters; got {len(filters)}"
            )
        for family, sigma in filters:
            if family not in FAMILIES:
                raise InvalidRequestError(
                    f"unknown feature {family!r}{did_you_mean(family, FAMILIES)}; known: "
                    f"{', '.join(FAMILIES)}"
                )
            if not (math.isfinite(sigma) and 0.0 < sigma <= MAX_SIGMA):
                raise InvalidRequestError(
                    f"{family}: sigma {sigma:g} out of range; it must be in (0, {MAX_SIGMA:g}]"
                )
        if len(set(filters)) != len(filters):
            raise InvalidRequestError("a feature set lists the same filter twice")
        truncate = float(self.truncate)
        if not (math.isfinite(truncate) and 1.0 <= truncate <= 8.0):
            raise InvalidRequestError(f"truncate {truncate:g} out of range; it must be in [1, 8]")
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "truncate", truncate)

    def widths(self, spatial_dims: int) -> list[int]:
        """Number of outputs of each filter, per channel."""
        _check_dims(spatial_dims)
        return [FAMILIES[family][spatial_dims - 2] for family, _ in self.filters]

    def n_per_channel(self, spatial_dims: int) -> int:
        """Number of features computed from each channel."""
        return sum(self.widths(spatial_dims))

    def n_features(self, n_channels: int, spatial_dims: int) -> int:
        """Number of features computed from an image of ``n_channels`` channels."""
        return n_channels * self.n_per_channel(spatial_dims)

    @property
    def step(self) -> int:
        """Block origins may be anywhere (deep features need multiples of their stride)."""
        return 1

    @property
    def block(self) -> int | None:
        """Preferred block edge; ``None``: the classifier's default."""
        return None

    def names(self, n_channels: int, spatial_dims: int) -> list[str]:
        """One name per feature, channel-major: ``"family(sigma=s)[Cc]"``, eigenvalues
        (largest first) with their index appended: ``"family(sigma=s)[Cc][i]"``."""
        names = []
        for c in range(n_channels):
            for (family, sigma), width in zip(self.filters, self.widths(spatial_dims), strict=True):
                base = f"{family}(sigma={sigma:g})[C{c}]"
                names.extend([base] if width == 1 else [f"{base}[{i}]" for i in range(width)])
        return names

    @property
    def halo(self) -> int:
        """Pixels per side a tile needs so that its core features equal whole-image features.

        The largest reach of a filter: the Gaussian support ``int(truncate * sigma + 0.5)`` as
        scipy rounds it, one more where derivatives are differences of the smoothed image
        (scales above :data:`EXACT_DERIVATIVES_MAX_SIGMA`), and the structure tensor's second
        smoothing on top of its gradient.
        """
        return max(_reach(family, sigma, self.truncate) for family, sigma in self.filters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "truncate": self.truncate,
            "filters": [{"family": f, "sigma": s} for f, s in self.filters],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSet:
        """Rebuild from :meth:`to_dict` output; malformed input raises InvalidRequestError."""
        try:
            filters = tuple((str(f["family"]), float(f["sigma"])) for f in data["filters"])
            return cls(filters, float(data.get("truncate", 4.0)), str(data.get("name", "custom")))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, InvalidRequestError):
                raise
            raise InvalidRequestError(f"malformed feature set: {err!r}") from err


def _preset(name: str, *groups: Mapping[str, tuple[float, ...]]) -> FeatureSet:
    filters = []
    for family in FAMILIES:
        sigmas = sorted({s for group in groups for s in group.get(family, ())})
        filters.extend((family, s) for s in sigmas)
    return FeatureSet(tuple(filters), name=name)


#: The small default set: 25 features per channel in 2-D (30 in 3-D), scales 0.7 to 5.
BASIC25 = _preset("basic25", _BASIC25)
#: The larger set: 33 features per channel in 2-D (40 in 3-D), scales 0.7 to 10.
BASIC33 = _preset("basic33", _BASIC25, _BASIC33_EXTRA)
PRESETS: dict[str, FeatureSet] = {"basic25": BASIC25, "basic33": BASIC33}


def parse_features(spec: str | FeatureSet | Mapping[str, Any]) -> FeatureSet:
    """Turn a preset name, a spec string or a dict into a :class:`FeatureSet`.

    A spec string lists ``family:sigma,sigma`` groups separated by ``;`` or spaces. A deep
    feature spec (``vgg19-256+basic25``, see :func:`scopeml.features.deep.parse_deep_features`)
    gives a :class:`~scopeml.features.deep.DeepFeatures` instead.

    Examples
    --------
    >>> parse_features("basic33").n_per_channel(2)
    33
    >>> fs = parse_features("gaussian_smoothing:1,3.5; laplacian_of_gaussian:1.6")
    >>> fs.filters
    (('gaussian_smoothing', 1.0), ('gaussian_smoothing', 3.5), ('laplacian_of_gaussian', 1.6))
    """
    if isinstance(spec, FeatureSet):
        return spec
    if isinstance(spec, (list, tuple)):  # ["basic25"] read as the text "['basic25']"
        given = repr(spec[0]) if len(spec) == 1 else "one text"
        raise InvalidRequestError(
            f"features are one spec, not a list: give {given} (a preset such as 'basic25', "
            "filters such as 'gaussian_smoothing:1,3.5; hessian_of_gaussian:2', or deep "
            "features such as 'vgg19-random-256+basic25')"
        )
    from scopeml.features import deep

    if deep.is_deep_spec(spec):
        return deep.parse_deep_features(spec)  # type: ignore[return-value]
    if isinstance(spec, Mapping):
        return FeatureSet.from_dict(spec)
    text = str(spec).strip()
    if text in PRESETS:
        return PRESETS[text]
    filters = []
    groups = text.replace(";", " ").split()
    for group in groups:
        family, sep, sigmas = group.partition(":")
        if group in PRESETS:  # with other groups, or it would have been taken whole above
            raise InvalidRequestError(
                f"the preset {group} cannot be combined with filter families; give the families "
                f"alone (`scopeml pixel features --list` shows what {group} holds)"
            )
        if not sep or not sigmas:
            from scopeml.features.deep import DEEP_PRESETS

            deep = [*DEEP_PRESETS, *(n.replace("-", "-random-", 1) for n in DEEP_PRESETS)]
            hint = did_you_mean(group, [*FAMILIES, *PRESETS, *deep])
            raise InvalidRequestError(
                f"cannot read feature spec {group!r}{hint}: expected family:sigma[,sigma…], a "
                f"preset ({', '.join(PRESETS)}) or a deep preset ({', '.join(DEEP_PRESETS)}; "
                "untrained: vgg19-random-64…)"
            )
        try:
            filters.extend((family, float(s)) for s in sigmas.split(",") if s)
        except ValueError as err:
            if family not in FAMILIES:  # `net:LAYER` with a network that is not known
                from scopeml.features._network import known_networks

                raise InvalidRequestError(
                    f"cannot read {group!r}: {family!r} is neither a filter family"
                    f"{did_you_mean(family, FAMILIES)} nor a network; for NETWORK:LAYER "
                    f"{known_networks()}"
                ) from err
            raise InvalidRequestError(f"cannot read sigmas in {group!r}") from err
    return FeatureSet(tuple(filters))


def did_you_mean(word: str, choices) -> str:
    """:func:`scopeml.errors.did_you_mean` of a feature name, which is lower case.

    >>> did_you_mean("Gauss", ["gaussian_smoothing", "laplacian_of_gaussian"])
    " (did you mean 'gaussian_smoothing'?)"
    """
    from scopeml.errors import did_you_mean as suggest

    return suggest(word.lower(), choices)


def _reach(family: str, sigma: float, truncate: float) -> int:
    differenced = family in _DERIVATIVES and sigma > EXACT_DERIVATIVES_MAX_SIGMA
    reach = filter_radius(sigma, truncate) + differenced
    if family == "structure_tensor_eigenvalues":
        reach += filter_radius(ST_OUTER_RATIO * sigma, truncate)
    return reach


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise InvalidRequestError(f"features are 2-D or 3-D; got {spatial_dims} spatial dims")
