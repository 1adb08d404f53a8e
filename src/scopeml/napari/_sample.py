"""npe2 sample data: the demo nuclei image, small, drawn by :mod:`scopeml.synthetic`."""

from __future__ import annotations

from typing import Any

#: Edge of the sample (pixels): large enough to pan and preview, small enough to make at once.
SAMPLE_SIZE = 1024


def demo_sample(size: int = SAMPLE_SIZE, seed: int = 0) -> list[tuple[Any, dict[str, Any], str]]:
    """The demo image (two channels, named and scaled as the ``scopeml demo`` image).

    Examples
    --------
    >>> [(kind, kwargs["name"]) for _, kwargs, kind in demo_sample(64)]
    [('image', ['DAPI', 'Membrane'])]
    """
    from scopeml.demo import CHANNEL_NAMES, PIXEL_SIZE_UM
    from scopeml.synthetic import synthetic_nuclei

    pixels, _ = synthetic_nuclei((size, size), channels=2, seed=seed)
    return [
        (
            pixels,
            {
                "name": list(CHANNEL_NAMES),
                "channel_axis": 0,
                "scale": [PIXEL_SIZE_UM, PIXEL_SIZE_UM],
                "colormap": ["blue", "green"],
                "blending": "additive",
                "units": "micrometer",
            },
            "image",
        )
    ]
