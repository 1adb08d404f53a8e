"""The one palette of class colours: pixel classes, store labels, object classes and chart series
draw from it (a classifier's k-th class and a store's label k + 1 alike), and a status line can
say a colour's name (Tableau 10: distinct on dark fluorescence and on white pages alike)."""

from __future__ import annotations

__all__ = ["NAMES", "PALETTE", "colour_of", "rgb"]

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
#: Each colour's name, as a status line says it ("nucleus 12 (blue)").
NAMES = dict(
    zip(PALETTE, ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive",
                  "cyan"), strict=True)
)  # fmt: skip


def colour_of(index: int) -> str:
    """The ``index``-th class's colour (from 0); past the tenth the palette starts again."""
    return PALETTE[index % len(PALETTE)]


def rgb(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` as its three 0–255 values.

    >>> rgb(PALETTE[1])
    (255, 127, 14)
    """
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
