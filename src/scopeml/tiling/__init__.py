"""The tiling-and-fusion engine: plan tiles, run a model on them, fuse, write, resume.

- :func:`plan_tiles` / :func:`plan_blend_tiles`: pure N-d geometry (cores, reads, windows).
- :func:`segment_image`: one run over an :class:`~scopeml.io.image.Image` into an OME-Zarr
  store, on a local thread pool or a dask.distributed cluster, resumable.
- :class:`SegmentOptions`: the run's options, shared by the API, the CLI and servers.
- :func:`compute_normalization`: global per-channel statistics in one streaming pass.
"""

from scopeml.tiling.engine import build_plan, segment_image
from scopeml.tiling.normalize import Normalization, compute_normalization
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.plan import Tile, TilePlan, plan_blend_tiles, plan_tiles

__all__ = [
    "Normalization",
    "SegmentOptions",
    "Tile",
    "TilePlan",
    "build_plan",
    "compute_normalization",
    "plan_blend_tiles",
    "plan_tiles",
    "segment_image",
]
